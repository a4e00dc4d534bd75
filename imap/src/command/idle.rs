//! IDLE (RFC 2177, RFC 9051 §6.3.13): a `select!` over the client's DONE, change
//! notifications for the selected mailbox, a keepalive timer, the autologout deadline
//! and shutdown. Changes are reported at once, with EXPUNGE allowed.

use crate::command::notify::notify_changed;
use crate::error::{CommandError, SessionError};
use crate::proto::response::{self, Status};
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::SyncPoint;
use std::future::pending;
use tokio::time::{Instant, sleep_until};

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
        let mut next_keepalive = Instant::now() + keepalive;
        // One timer for the keepalive and the deadline, made once: a wake-up of thousands
        // of sessions would otherwise poll two timers in each, and put a new one in the
        // timer wheel at every turn of the loop (issue 17). Likewise the shutdown token
        // is waited on by one future for the whole IDLE, not registered anew each turn.
        let alarm = sleep_until(next_keepalive.min(deadline));
        tokio::pin!(alarm);
        let shutdown = self.server.net.shutdown.token.clone();
        let shutdown = shutdown.cancelled();
        tokio::pin!(shutdown);
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
                    () = &mut shutdown => Event::Shutdown,
                    read = conn.read_some() => Event::Input(read),
                    () = changed => Event::Changed,
                    // The keepalive first when both are due, as two timers polled in
                    // that order did.
                    () = &mut alarm => if Instant::now() >= next_keepalive {
                        Event::Keepalive
                    } else {
                        Event::Timeout
                    },
                }
            };
            match event {
                Event::Input(Ok(0)) => return Err(SessionError::Closed.into()),
                Event::Input(Ok(_)) => {}
                Event::Input(Err(error)) => return Err(error.into()),
                Event::Changed => {
                    self.tell_notifications().await?;
                    if let State::Selected { view, .. } = &mut self.state {
                        // The arrivals at once, then RECENT: a session that does not get
                        // `\Recent` need not wait for the claim of the one that does (the
                        // same lines in the same order, sent in two writes at most).
                        view.sync_arrivals(&self.server.store, SyncPoint::Full, &mut self.conn.out)
                            .await?;
                        self.conn.flush().await?;
                        view.sync_recent(&self.server.store, &mut self.conn.out)
                            .await?;
                    }
                    self.conn.flush().await?;
                }
                Event::Keepalive => {
                    // As an interval that skips missed ticks: the next a period after
                    // this one was due, or after now when it came late.
                    let now = Instant::now();
                    next_keepalive += keepalive;
                    if next_keepalive <= now {
                        next_keepalive = now + keepalive;
                    }
                    alarm.as_mut().reset(next_keepalive.min(deadline));
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
