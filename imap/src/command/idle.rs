//! IDLE (RFC 2177, RFC 9051 §6.3.13): a `select!` over the client's DONE, change
//! notifications for the selected mailbox, a keepalive timer, the autologout deadline
//! and shutdown. Changes are reported at once, with EXPUNGE allowed.

use crate::command::notify::notify_changed;
use crate::error::{CommandError, SessionError};
use crate::proto::response::{self, Status};
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::SyncPoint;
use std::future::pending;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};

/// The only thing a client sends during IDLE is `DONE`; a longer line is garbage.
const MAX_IDLE_LINE: usize = 1024;

enum Event {
    Input(Result<usize, SessionError>),
    Changed,
    Keepalive,
    Shutdown,
    Timeout,
}

impl Session {
    pub(crate) async fn idle(&mut self) -> CommandResult {
        response::continuation(&mut self.conn.out, "idling");
        if let State::Selected { view, .. } = &mut self.state {
            view.sync(&self.server.store, SyncPoint::Full, &mut self.conn.out)
                .await?;
        }
        self.conn.flush().await?;
        // An IDLE session may wait for hours: it keeps only small buffers meanwhile.
        self.conn.release_memory();
        let keepalive = self.server.config.idle_keepalive;
        let deadline = Instant::now() + self.server.config.idle_timeout;
        let mut ticker = interval_at(Instant::now() + keepalive, keepalive);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if let Some(line) = self.conn.take_line(MAX_IDLE_LINE) {
                return match line {
                    Ok(line) if line.eq_ignore_ascii_case(b"DONE") => {
                        Ok(Completion::ok("IDLE terminated"))
                    }
                    Ok(_) | Err(()) => Err(CommandError::bad("Expected DONE")),
                };
            }
            let event = {
                let Session {
                    state,
                    conn,
                    server,
                    notify,
                    ..
                } = self;
                // RFC 5465 §4: "the server MUST send exactly the same events as
                // instructed by the client using the NOTIFY command" while it IDLEs.
                let changed = async {
                    match (notify, state) {
                        (Some(notify), state) => notify_changed(Some(notify), state, true).await,
                        (None, State::Selected { view, .. }) => view.changed().await,
                        (None, _) => pending::<()>().await,
                    }
                };
                tokio::select! {
                    biased;
                    _ = server.shutdown.token.cancelled() => Event::Shutdown,
                    read = conn.read_some() => Event::Input(read),
                    () = changed => Event::Changed,
                    _ = ticker.tick() => Event::Keepalive,
                    () = sleep_until(deadline) => Event::Timeout,
                }
            };
            match event {
                Event::Input(Ok(0)) => return Err(SessionError::Closed.into()),
                Event::Input(Ok(_)) => {}
                Event::Input(Err(error)) => return Err(error.into()),
                Event::Changed => {
                    self.tell_notifications().await?;
                    if let State::Selected { view, .. } = &mut self.state {
                        view.sync(&self.server.store, SyncPoint::Full, &mut self.conn.out)
                            .await?;
                    }
                    self.conn.flush().await?;
                }
                Event::Keepalive => {
                    response::untagged_status(&mut self.conn.out, Status::Ok, None, "Still here");
                    self.conn.flush().await?;
                }
                Event::Shutdown => {
                    response::bye(&mut self.conn.out, "Server shutting down");
                    self.state = State::Logout;
                    return Ok(Completion::Sent);
                }
                Event::Timeout => {
                    response::bye(&mut self.conn.out, "Autologout; idle for too long");
                    self.state = State::Logout;
                    return Ok(Completion::Sent);
                }
            }
        }
    }
}
