//! NOTIFY (RFC 5465): the client names the mailboxes and events it wants to hear of, and
//! hears of them at any time, also while no command is in progress (§1: "the client
//! listens for event notifications all the time").
//!
//! Invariants:
//! - A NOTIFY session watches exactly the mailboxes its filters name that have message
//!   events (`Store::watch_mailbox`, at most [`MAX_NOTIFY_WATCHED_MAILBOXES`]) and, when it
//!   has other filters than the selected mailbox, the account's list of mailboxes and
//!   subscriptions (`Store::watch_account`). It is woken by nothing else.
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
use crate::proto::command::{FetchItem, NotifyEvent, NotifyEvents, NotifyFilter, NotifySet};
use crate::proto::response::{self, Code, Status};
use crate::proto::{SequenceSet, SetOrSaved};
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::SyncPoint;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use storage::{
    AccountId, MAILBOX_DELIMITER, MailboxId, MailboxStatus, MailboxWatch, Store,
    normalise_mailbox_name,
};
use tokio::time::Instant;

/// Mailboxes one session watches for message events. Each costs a watch and, when it
/// changes, one STATUS query; an account with more mailboxes than this asking for
/// `personal` is refused (§3.1 NO [NOTIFICATIONOVERFLOW]), or told §5.8's overflow when
/// it grows past it.
pub(crate) const MAX_NOTIFY_WATCHED_MAILBOXES: usize = 500;
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

/// The events of one mailbox, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Events(u8);

impl Events {
    const NEW: u8 = 1;
    const EXPUNGE: u8 = 2;
    const FLAGS: u8 = 4;
    const NAME: u8 = 8;
    const SUBSCRIPTION: u8 = 16;

    fn of(events: &NotifyEvents) -> Events {
        let mut bits = 0;
        for event in &events.list {
            bits |= match event {
                NotifyEvent::MessageNew => Events::NEW,
                NotifyEvent::MessageExpunge => Events::EXPUNGE,
                NotifyEvent::FlagChange => Events::FLAGS,
                NotifyEvent::MailboxName => Events::NAME,
                NotifyEvent::SubscriptionChange => Events::SUBSCRIPTION,
                _ => 0,
            };
        }
        Events(bits)
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Events about the messages of a mailbox (§5.1 to §5.3): the mailbox is watched.
    fn messages(self) -> bool {
        self.has(Events::NEW | Events::EXPUNGE | Events::FLAGS)
    }
}

/// One non-selected filter with its names as storage knows them.
struct Group {
    filter: Filter,
    events: Events,
}

enum Filter {
    /// §6.2 `personal`, and §6.3 `inboxes`: "If the server cannot easily compute this
    /// set, it MUST treat "inboxes" as equivalent to "personal"" (Sieve may file new mail
    /// into any mailbox).
    Personal,
    /// §6.4.
    Subscribed,
    /// §6.5: the mailboxes and all their descendants.
    Subtree(Vec<String>),
    /// §6.6: "The server MUST NOT do a wildcard expansion".
    Mailboxes(Vec<String>),
}

impl Group {
    fn matches(&self, name: &str, subscriptions: &BTreeSet<String>) -> bool {
        match &self.filter {
            Filter::Personal => true,
            Filter::Subscribed => subscriptions.contains(name),
            Filter::Subtree(roots) => roots.iter().any(|root| {
                name == root
                    || name
                        .strip_prefix(root.as_str())
                        .is_some_and(|rest| rest.starts_with(MAILBOX_DELIMITER))
            }),
            Filter::Mailboxes(names) => names.iter().any(|n| n == name),
        }
    }
}

/// What the client was last told of a watched mailbox (its STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Told {
    messages: u32,
    uid_next: u32,
    uid_validity: u32,
    unseen: u32,
    highest_modseq: u64,
}

impl From<&MailboxStatus> for Told {
    fn from(status: &MailboxStatus) -> Told {
        Told {
            messages: status.messages,
            uid_next: status.uid_next.0,
            uid_validity: status.uid_validity.0,
            unseen: status.unseen,
            highest_modseq: status.highest_modseq.0,
        }
    }
}

struct Watched {
    id: MailboxId,
    name: String,
    events: Events,
    watch: MailboxWatch,
    told: Option<Told>,
}

/// The account's mailboxes (by id) and subscriptions, as last told.
#[derive(Default)]
struct Listing {
    names: BTreeMap<MailboxId, String>,
    subscriptions: BTreeSet<String>,
}

/// The selected mailbox's events (§6.1).
struct SelectedEvents {
    /// §6.1.2 SELECTED-DELAYED: "delays notification of expunges until the client
    /// issues a command" that allows them.
    delayed: bool,
    events: Events,
    fetch: Vec<FetchItem>,
}

/// A session's NOTIFY state (RFC 5465 §3.1: what the last NOTIFY SET asked for).
pub(crate) struct Notify {
    account: AccountId,
    groups: Vec<Group>,
    selected: Option<SelectedEvents>,
    /// The account's list of mailboxes and subscriptions, when a filter depends on it.
    account_watch: Option<MailboxWatch>,
    listing: Listing,
    watched: Vec<Watched>,
    /// The selected mailbox and the last UID whose MessageNew fetch attributes were sent
    /// (or that the client knew of when it selected).
    fetched_through: Option<(MailboxId, u32)>,
    /// The watch that woke the session, whose change its wait took.
    woken: Option<Wake>,
}

/// Which watch woke a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Mailbox(MailboxId),
    Account,
    /// The selected mailbox's view, which marked itself dirty.
    Selected,
}

/// Why a NOTIFY state cannot go on.
enum Overflow {
    TooMany,
}

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
            if let Ok(name) = normalise_mailbox_name(&self.decode_mailbox(name)?) {
                decoded.push(name);
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
                        &self.server.shutdown.token,
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
                    _ = server.shutdown.token.cancelled() => Event::Shutdown,
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
    async fn read_listing(&self, store: &Store) -> storage::Result<Listing> {
        if self.groups.is_empty() {
            return Ok(Listing::default());
        }
        let names = store
            .list_mailboxes(self.account)
            .await?
            .into_iter()
            .map(|m| (m.id, m.name))
            .collect();
        let subscriptions = store
            .subscriptions(self.account)
            .await?
            .into_iter()
            .collect();
        Ok(Listing {
            names,
            subscriptions,
        })
    }

    /// The events the filters give a mailbox (§6: each filter that names it).
    fn events_of(&self, name: &str, listing: &Listing) -> Events {
        let mut events = Events::default();
        for group in &self.groups {
            if group.matches(name, &listing.subscriptions) {
                events.0 |= group.events.0;
            }
        }
        events
    }

    /// Watches the mailboxes of `listing` that the filters give message events, keeping
    /// what the client was told of those already watched (§6.4: the set is re-evaluated
    /// when subscriptions change; likewise on create, rename and delete).
    fn rewatch(&mut self, store: &Store, listing: Listing) -> Result<(), Overflow> {
        let mut old: BTreeMap<MailboxId, Watched> =
            self.watched.drain(..).map(|w| (w.id, w)).collect();
        let mut watched = Vec::new();
        for (id, name) in &listing.names {
            let events = self.events_of(name, &listing);
            if !events.messages() {
                continue;
            }
            if watched.len() >= MAX_NOTIFY_WATCHED_MAILBOXES {
                return Err(Overflow::TooMany);
            }
            let entry = match old.remove(id) {
                Some(mut known) => {
                    known.name.clone_from(name);
                    known.events = events;
                    known
                }
                None => Watched {
                    id: *id,
                    name: name.clone(),
                    events,
                    watch: store.watch_mailbox(*id),
                    told: None,
                },
            };
            watched.push(entry);
        }
        self.watched = watched;
        self.listing = listing;
        Ok(())
    }

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
            .fetch(true, &SetOrSaved::Set(set), fetch, None, false, None)
            .await
        {
            tracing::debug!(?error, "NOTIFY could not fetch new messages");
        }
        session.tag = tag;
        Ok(())
    }
}

/// A watched mailbox's STATUS now; `None` (logged) when storage cannot say, and the next
/// wake-up tries again.
async fn status_now(store: &Store, mailbox: MailboxId) -> Option<MailboxStatus> {
    match store.mailbox_status(mailbox).await {
        Ok(status) => Some(status),
        Err(error) => {
            tracing::debug!(%error, "NOTIFY could not read a mailbox's status");
            None
        }
    }
}

/// The attributes of a mailbox in a NOTIFY LIST response: `\Subscribed` when it is, and
/// its children, as LIST gives them (RFC 5465 §5.4 "SHOULD" send them).
fn list_attributes(name: &str, listing: &Listing) -> String {
    let mut attributes = Vec::new();
    if listing.subscriptions.contains(name) {
        attributes.push("\\Subscribed");
    }
    if listing.names.values().any(|n| n == name) {
        let prefix = format!("{name}{MAILBOX_DELIMITER}");
        let children = listing.names.values().any(|n| n.starts_with(&prefix));
        attributes.push(if children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        });
    } else {
        attributes.push("\\NonExistent");
    }
    attributes.join(" ")
}

/// The items of the STATUS response for a change of a non-selected mailbox from
/// `before` to `now`, or `None` when there is nothing the client asked to hear of.
/// §5.2 and §5.3: "STATUS (UIDNEXT MESSAGES)", with "the HIGHESTMODSEQ status data item"
/// when CONDSTORE is enabled; §5.1: a flag change with HIGHESTMODSEQ (and the UNSEEN
/// count, which is what a flag change changes for a client that has no CONDSTORE).
/// A new UIDVALIDITY is always told (§5.1: "the server MUST notify the client about
/// mailbox UIDVALIDITY changes").
fn status_change(
    before: Option<Told>,
    now: Told,
    events: Events,
    condstore: bool,
) -> Option<String> {
    let before = before?;
    if before == now {
        return None;
    }
    let mut items = Vec::new();
    let counts = before.messages != now.messages || before.uid_next != now.uid_next;
    let validity = before.uid_validity != now.uid_validity;
    let messages_told = validity || (counts && events.has(Events::NEW | Events::EXPUNGE));
    let flags_told = events.has(Events::FLAGS)
        && (before.unseen != now.unseen
            || (condstore && before.highest_modseq != now.highest_modseq));
    if !messages_told && !flags_told {
        return None;
    }
    if messages_told {
        items.push(format!("MESSAGES {}", now.messages));
        items.push(format!("UIDNEXT {}", now.uid_next));
    }
    if validity {
        items.push(format!("UIDVALIDITY {}", now.uid_validity));
    }
    items.push(format!("UNSEEN {}", now.unseen));
    if condstore {
        items.push(format!("HIGHESTMODSEQ {}", now.highest_modseq));
    }
    Some(items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(messages: u32, uid_next: u32, unseen: u32, highest_modseq: u64) -> Told {
        Told {
            messages,
            uid_next,
            uid_validity: 7,
            unseen,
            highest_modseq,
        }
    }

    #[test]
    fn status_tells_only_what_the_events_ask_for() {
        let all = Events(Events::NEW | Events::EXPUNGE | Events::FLAGS);
        let messages = Events(Events::NEW | Events::EXPUNGE);
        let before = told(1, 2, 1, 5);
        let cases = [
            // A new message.
            (
                told(2, 3, 2, 6),
                messages,
                false,
                Some("MESSAGES 2 UIDNEXT 3 UNSEEN 2"),
            ),
            (
                told(2, 3, 2, 6),
                messages,
                true,
                Some("MESSAGES 2 UIDNEXT 3 UNSEEN 2 HIGHESTMODSEQ 6"),
            ),
            // \Seen set: only for FlagChange.
            (told(1, 2, 0, 6), messages, false, None),
            (told(1, 2, 0, 6), all, false, Some("UNSEEN 0")),
            // A keyword: only with CONDSTORE, as HIGHESTMODSEQ.
            (told(1, 2, 1, 6), all, false, None),
            (
                told(1, 2, 1, 6),
                all,
                true,
                Some("UNSEEN 1 HIGHESTMODSEQ 6"),
            ),
            // Nothing changed.
            (before, all, true, None),
        ];
        for (now, events, condstore, expected) in cases {
            assert_eq!(
                status_change(Some(before), now, events, condstore).as_deref(),
                expected,
                "{now:?} {events:?} {condstore}"
            );
        }
        // Nothing known before.
        assert_eq!(status_change(None, before, all, true), None);
    }

    #[test]
    fn filters_match_names_as_rfc_5465_section_6_says() {
        let subscriptions = BTreeSet::from(["Lists".to_owned()]);
        let subtree = Group {
            filter: Filter::Subtree(vec!["Lists".into()]),
            events: Events::default(),
        };
        assert!(subtree.matches("Lists", &subscriptions));
        assert!(subtree.matches("Lists/imap", &subscriptions));
        assert!(!subtree.matches("Listserv", &subscriptions));
        let exact = Group {
            filter: Filter::Mailboxes(vec!["Lists/*".into()]),
            events: Events::default(),
        };
        // §6.6: no wildcard expansion.
        assert!(!exact.matches("Lists/imap", &subscriptions));
        assert!(exact.matches("Lists/*", &subscriptions));
        let subscribed = Group {
            filter: Filter::Subscribed,
            events: Events::default(),
        };
        assert!(subscribed.matches("Lists", &subscriptions));
        assert!(!subscribed.matches("Lists/imap", &subscriptions));
    }
}
