//! NOTIFY (RFC 5465): the client names the mailboxes and events it wants to hear of, and
//! hears of them at any time, also while no command is in progress (§1: "the client
//! listens for event notifications all the time").
//!
//! Invariants:
//! - A NOTIFY session watches exactly the mailboxes its filters name that have message
//!   events (`Store::watch_mailbox`, at most
//!   [`MAX_NOTIFY_WATCHED_MAILBOXES`](crate::notify_state::MAX_NOTIFY_WATCHED_MAILBOXES))
//!   and, when it has other filters than the selected mailbox, the account's list of
//!   mailboxes and subscriptions (`Store::watch_account`). It is woken by nothing else.
//!   The state itself (`Notify`) is in `notify_state.rs`.
//! - A wake-up carries nothing: what changed is read from storage (the mailbox's STATUS,
//!   the account's mailboxes and subscriptions) and compared with what the client was
//!   last told, so no change is lost however many come between two looks, and nothing
//!   queues up. What one look may write is bounded (watched mailboxes, new messages
//!   fetched, [`MAX_NOTIFY_FETCH_PER_LOOK`]); past that the client is told
//!   `OK [NOTIFICATIONOVERFLOW]` and notifications stop (§5.8).
//! - Notifications are written only between commands (or in IDLE), never inside
//!   another command's responses.

use crate::connection::Stop;
use crate::error::{CommandError, SessionError};
use crate::notify_state::{
    Events, Filter, Group, Listing, Notify, Overflow, SelectedEvents, Told, Wake, list_attributes,
    status_change, status_now,
};
use crate::proto::command::{FetchCommand, NotifyEvent, NotifyFilter, NotifySet};
use crate::proto::response::{self, Code, Status};
use crate::proto::{SequenceSet, SetOrSaved};
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::SyncPoint;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use storage::{MAILBOX_DELIMITER, MailboxId, MailboxName, MailboxWatch};
use tokio::time::Instant;

/// New messages of the selected mailbox whose MessageNew fetch attributes are sent in
/// one look (one FETCH response each): more arrived at once than a client can use as
/// notifications, and it is told §5.8's overflow instead (it resynchronises).
pub(crate) const MAX_NOTIFY_FETCH_PER_LOOK: usize = 256;

/// The events we send (RFC 5465 §3.1: BADEVENT "MUST list names of all events supported
/// by the server"). AnnotationChange is about message annotations (RFC 5257 ANNOTATE),
/// which we do not have. MailboxMetadataChange and ServerMetadataChange (§5.6, §5.7) are
/// refused as Dovecot 2.3 refuses them: storage publishes no change of an annotation.
const SUPPORTED_EVENTS: [NotifyEvent; 5] = [
    NotifyEvent::MessageNew,
    NotifyEvent::MessageExpunge,
    NotifyEvent::FlagChange,
    NotifyEvent::MailboxName,
    NotifyEvent::SubscriptionChange,
];

impl Session {
    /// RFC 5465 §3.1 NOTIFY SET / NOTIFY NONE.
    pub(crate) async fn notify(&mut self, set: Option<NotifySet>) -> CommandResult {
        let account = self.account()?;
        let Some(set) = set else {
            self.notify = None;
            return Ok(Completion::ok("NOTIFY completed"));
        };
        // §3.1: "If the client requests information for events of an unsupported type,
        // the server MUST refuse the command with a tagged NO response (not a BAD). This
        // response SHOULD contain the BADEVENT response code, which MUST list names of
        // all events supported by the server."
        let unsupported = set.groups.iter().any(|g| {
            !g.events.unknown.is_empty()
                || g.events.list.iter().any(|e| !SUPPORTED_EVENTS.contains(e))
        });
        if unsupported {
            let names: Vec<&str> = SUPPORTED_EVENTS.iter().map(|e| e.name()).collect();
            return Err(CommandError::no(
                Some(Code::BadEvent(names.join(" "))),
                "Unsupported NOTIFY events",
            ));
        }
        let mut groups = Vec::new();
        let mut selected = None;
        for group in set.groups {
            let events = Events::of(&group.events);
            let filter = match group.filter {
                NotifyFilter::Selected | NotifyFilter::SelectedDelayed => {
                    selected = Some(SelectedEvents {
                        delayed: group.filter == NotifyFilter::SelectedDelayed,
                        events,
                        fetch: group.events.fetch,
                    });
                    continue;
                }
                NotifyFilter::Inboxes | NotifyFilter::Personal => Filter::Personal,
                NotifyFilter::Subscribed => Filter::Subscribed,
                NotifyFilter::Subtree(names) => Filter::Subtree(self.storage_names(&names)?),
                NotifyFilter::Mailboxes(names) => Filter::Mailboxes(self.storage_names(&names)?),
            };
            // §5: NONE is as good as leaving the group out.
            if events != Events::default() {
                groups.push(Group { filter, events });
            }
        }
        let store = self.server.store.clone();
        let account_watch = (!groups.is_empty()).then(|| store.watch_account(account));
        let mut notify = Notify {
            account,
            groups,
            selected,
            account_watch,
            listing: Listing::default(),
            watched: Vec::new(),
            fetched_through: None,
            woken: None,
        };
        let listing = notify.read_listing(&store).await?;
        if notify.rewatch(&store, listing).is_err() {
            // §3.1: "the server MAY refuse the command with a tagged NO
            // [NOTIFICATIONOVERFLOW] response".
            return Err(CommandError::no(
                Some(Code::NotificationOverflow),
                "Too many mailboxes to watch",
            ));
        }
        let selected_id = self.selected_mailbox();
        if let State::Selected { view, .. } = &self.state {
            notify.fetched_through = Some((view.mailbox, view.uids().last().copied().unwrap_or(0)));
        }
        // What each watched mailbox is now; with STATUS, the client is told it (§3.1:
        // "the server MUST send a STATUS response for that mailbox before NOTIFY's
        // tagged OK"), the selected mailbox excepted (§6.1: its events are the selected
        // filter's).
        let condstore = self.enabled.condstore;
        for watched in &mut notify.watched {
            let Some(status) = status_now(&store, watched.id).await else {
                continue;
            };
            watched.told = Some(Told::from(&status));
            if set.status && Some(watched.id) != selected_id {
                let name = self.encode_mailbox(&watched.name);
                let mut items = format!(
                    "MESSAGES {} UIDNEXT {} UIDVALIDITY {} UNSEEN {}",
                    status.messages, status.uid_next, status.uid_validity, status.unseen
                );
                if condstore || watched.events.has(Events::FLAGS) {
                    items.push_str(&format!(" HIGHESTMODSEQ {}", status.highest_modseq));
                }
                response::untagged(&mut self.conn.out, &format!("STATUS {name} ({items})"));
            }
        }
        self.notify = Some(Box::new(notify));
        Ok(Completion::ok("NOTIFY completed"))
    }

    /// Mailbox names from the wire as storage knows them; a name that cannot be a
    /// mailbox's names none (§6.6 watches mailboxes that exist, now or later).
    fn storage_names(&self, names: &[String]) -> Result<Vec<String>, CommandError> {
        let mut decoded = Vec::with_capacity(names.len());
        for name in names {
            if let Ok(name) = MailboxName::new(&self.decode_mailbox(name)?) {
                decoded.push(name.into_string());
            }
        }
        Ok(decoded)
    }

    fn selected_mailbox(&self) -> Option<MailboxId> {
        match &self.state {
            State::Selected { view, .. } => Some(view.mailbox),
            _ => None,
        }
    }

    /// Waits for the client's next octets like `Connection::fill`, telling the client
    /// of what NOTIFY asked for meanwhile (RFC 5465 §1).
    pub(crate) async fn wait_notifying(&mut self, timeout: Duration) -> Result<(), Stop> {
        let deadline = Instant::now() + timeout;
        loop {
            self.tell_notifications().await.map_err(Stop::Failed)?;
            if self.notify.is_none() {
                return self
                    .conn
                    .fill(
                        deadline.saturating_duration_since(Instant::now()),
                        &self.server.net.shutdown.token,
                    )
                    .await;
            }
            self.conn.flush().await.map_err(Stop::Failed)?;
            self.conn.release_memory();
            enum Event {
                Read(Result<usize, SessionError>),
                Woken,
                Shutdown,
                TimedOut,
            }
            let event = {
                let Session {
                    state,
                    conn,
                    server,
                    notify,
                    ..
                } = self;
                let woken = notify_changed(notify.as_deref_mut(), state, false);
                tokio::select! {
                    biased;
                    _ = server.net.shutdown.token.cancelled() => Event::Shutdown,
                    read = conn.read_some() => Event::Read(read),
                    () = woken => Event::Woken,
                    () = tokio::time::sleep_until(deadline) => Event::TimedOut,
                }
            };
            match event {
                Event::Read(Ok(0)) => return Err(Stop::Eof),
                Event::Read(Ok(_)) => return Ok(()),
                Event::Read(Err(error)) => return Err(Stop::Failed(error)),
                Event::Woken => {}
                Event::Shutdown => return Err(Stop::ShuttingDown),
                Event::TimedOut => return Err(Stop::TimedOut),
            }
        }
    }

    /// Writes what changed in the watched mailboxes and the account's list since the
    /// client was last told (RFC 5465 §5). Storage failures are logged; the next wake-up
    /// tries again.
    pub(crate) async fn tell_notifications(&mut self) -> Result<(), SessionError> {
        let Some(mut notify) = self.notify.take() else {
            return Ok(());
        };
        match notify.tell(self).await {
            Ok(()) => self.notify = Some(notify),
            Err(Overflow::TooMany) => {
                // §5.8: "It MUST notify these clients by sending an untagged "OK
                // [NOTIFICATIONOVERFLOW]" response and behave as if a NOTIFY NONE command
                // had just been received."
                response::untagged_status(
                    &mut self.conn.out,
                    Status::Ok,
                    Some(&Code::NotificationOverflow),
                    "Too many changes, notifications are off",
                );
            }
        }
        self.conn.flush_if_full().await
    }
}

/// Waits until a watch of `notify` (or the selected mailbox, when NOTIFY asked for its
/// events or `idle`) is woken. Cancel-safe. Waits forever without NOTIFY.
pub(crate) async fn notify_changed(notify: Option<&mut Notify>, state: &mut State, idle: bool) {
    let Some(notify) = notify else {
        return std::future::pending().await;
    };
    let view = match state {
        State::Selected { view, .. } if idle || notify.selected.is_some() => Some(view),
        _ => None,
    };
    let Notify {
        account_watch,
        watched,
        woken,
        ..
    } = notify;
    type Wait<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
    let mut waits: Vec<(Wake, Wait<'_>)> = watched
        .iter_mut()
        .map(|w| (Wake::Mailbox(w.id), Box::pin(w.watch.changed()) as Wait<'_>))
        .collect();
    if let Some(account) = account_watch {
        waits.push((Wake::Account, Box::pin(account.changed())));
    }
    if let Some(view) = view {
        // The view marks itself dirty; `tell` syncs it.
        waits.push((Wake::Selected, Box::pin(view.changed())));
    }
    let fired = std::future::poll_fn(|cx| {
        for (wake, wait) in &mut waits {
            if wait.as_mut().poll(cx).is_ready() {
                return Poll::Ready(*wake);
            }
        }
        Poll::Pending
    })
    .await;
    drop(waits);
    *woken = Some(fired);
}

impl Notify {
    /// Tells the client what changed since the last look.
    async fn tell(&mut self, session: &mut Session) -> Result<(), Overflow> {
        let store = session.server.store.clone();
        let woken = self.woken.take();
        let account_changed = woken == Some(Wake::Account)
            || self
                .account_watch
                .as_mut()
                .is_some_and(MailboxWatch::take_change);
        if account_changed {
            match self.read_listing(&store).await {
                Ok(listing) => {
                    self.tell_listing(session, &listing);
                    self.rewatch(&store, listing)?;
                    // Watches new since the last look start from what is stored now.
                    for watched in self.watched.iter_mut().filter(|w| w.told.is_none()) {
                        watched.told = status_now(&store, watched.id).await.map(|s| Told::from(&s));
                    }
                }
                Err(error) => tracing::warn!(%error, "NOTIFY could not list the mailboxes"),
            }
        }
        let selected = session.selected_mailbox();
        let condstore = session.enabled.condstore;
        for watched in &mut self.watched {
            // The watch that woke us has had its change taken by the wait.
            if woken != Some(Wake::Mailbox(watched.id)) && !watched.watch.take_change() {
                continue;
            }
            // §6.1: the selected mailbox's events are the selected filter's.
            if Some(watched.id) == selected {
                continue;
            }
            let Some(status) = status_now(&store, watched.id).await else {
                continue;
            };
            let now = Told::from(&status);
            let before = watched.told.replace(now);
            if let Some(line) = status_change(before, now, watched.events, condstore) {
                let name = session.encode_mailbox(&watched.name);
                response::untagged(&mut session.conn.out, &format!("STATUS {name} ({line})"));
            }
        }
        self.tell_selected(session).await
    }

    /// §5.4 MailboxName and §5.5 SubscriptionChange: a LIST response for each mailbox
    /// created, deleted or renamed, and each name (un)subscribed, that a filter with the
    /// event names.
    fn tell_listing(&self, session: &mut Session, now: &Listing) {
        let before = &self.listing;
        let wants = |name: &str, bit: u8| {
            self.events_of(name, now).has(bit) || self.events_of(name, before).has(bit)
        };
        let mut lines = Vec::new();
        for (id, name) in &now.names {
            match before.names.get(id) {
                // §5.4: "For each LISTable mailbox renamed, the server sends an extended
                // LIST response [RFC5258] for the new mailbox name, containing the
                // OLDNAME extended data item with the old mailbox name."
                Some(old) if old != name && wants(name, Events::NAME) => {
                    let attributes = list_attributes(name, now);
                    lines.push(format!(
                        "LIST ({attributes}) \"{MAILBOX_DELIMITER}\" {} (\"OLDNAME\" ({}))",
                        session.encode_mailbox(name),
                        session.encode_mailbox(old)
                    ));
                }
                None if wants(name, Events::NAME) => {
                    let attributes = list_attributes(name, now);
                    lines.push(format!(
                        "LIST ({attributes}) \"{MAILBOX_DELIMITER}\" {}",
                        session.encode_mailbox(name)
                    ));
                }
                _ => {}
            }
        }
        for (id, name) in &before.names {
            // §5.4: "If, after the event, the mailbox name does not refer to a mailbox
            // accessible to the client, the \Nonexistent flag MUST be included."
            if !now.names.contains_key(id) && wants(name, Events::NAME) {
                lines.push(format!(
                    "LIST (\\NonExistent) \"{MAILBOX_DELIMITER}\" {}",
                    session.encode_mailbox(name)
                ));
            }
        }
        // §5.5: "If and only if the mailbox is subscribed after the event, the
        // \Subscribed attribute (see [RFC5258]) is included."
        for name in now
            .subscriptions
            .symmetric_difference(&before.subscriptions)
            .filter(|name| wants(name, Events::SUBSCRIPTION))
        {
            let attributes = list_attributes(name, now);
            lines.push(format!(
                "LIST ({attributes}) \"{MAILBOX_DELIMITER}\" {}",
                session.encode_mailbox(name)
            ));
        }
        for line in lines {
            response::untagged(&mut session.conn.out, &line);
        }
    }

    /// The selected mailbox (§5.1 to §5.3): EXISTS, EXPUNGE (unless SELECTED-DELAYED) and
    /// FETCH FLAGS as at a sync point, then MessageNew's fetch attributes for the new
    /// messages.
    async fn tell_selected(&mut self, session: &mut Session) -> Result<(), Overflow> {
        let Some(selected) = &self.selected else {
            return Ok(());
        };
        let (delayed, events, fetch) = (selected.delayed, selected.events, selected.fetch.clone());
        let store = session.server.store.clone();
        let State::Selected { view, .. } = &mut session.state else {
            self.fetched_through = None;
            return Ok(());
        };
        if !events.messages() {
            return Ok(());
        }
        let point = if delayed {
            SyncPoint::NoExpunge
        } else {
            SyncPoint::Full
        };
        let through = match self.fetched_through {
            Some((mailbox, through)) if mailbox == view.mailbox => through,
            // A mailbox selected since: the client knows what SELECT told it.
            _ => view.uids().last().copied().unwrap_or(0),
        };
        if let Err(error) = view.sync(&store, point, &mut session.conn.out).await {
            tracing::warn!(%error, "could not bring the mailbox view up to date");
        }
        let last = view.uids().last().copied().unwrap_or(0);
        self.fetched_through = Some((view.mailbox, last));
        if fetch.is_empty() || last <= through {
            return Ok(());
        }
        let new: Vec<u32> = view
            .uids()
            .iter()
            .copied()
            .filter(|&uid| uid > through)
            .collect();
        if new.len() > MAX_NOTIFY_FETCH_PER_LOOK {
            return Err(Overflow::TooMany);
        }
        let Some(set) = SequenceSet::from_numbers(&new) else {
            return Ok(());
        };
        // §5.2: "an unsolicited FETCH response containing the information requested by
        // the client", as UID FETCH gives it.
        let tag = std::mem::take(&mut session.tag);
        if let Err(error) = session
            .fetch(FetchCommand {
                uid: true,
                set: SetOrSaved::Set(set),
                items: fetch,
                changed_since: None,
                vanished: false,
                partial: None,
            })
            .await
        {
            tracing::debug!(?error, "NOTIFY could not fetch new messages");
        }
        session.tag = tag;
        Ok(())
    }
}
