//! A session's NOTIFY state (RFC 5465): what the last NOTIFY SET asked to hear of, the
//! mailboxes it watches and what the client was last told of them, and the pure rules
//! on them (which filter names a mailbox, what a STATUS change tells). The session holds
//! it (`session.rs`); the command and the writing of notifications, with the
//! invariants, are in `command/notify.rs`.

use crate::proto::command::{FetchItem, NotifyEvent, NotifyEvents};
use std::collections::{BTreeMap, BTreeSet};
use storage::{
    AccountId, MAILBOX_DELIMITER, MailboxId, MailboxName, MailboxStatus, MailboxWatch, Store,
};

/// Mailboxes one session watches for message events. Each costs a watch and, when it
/// changes, one STATUS query; an account with more mailboxes than this asking for
/// `personal` is refused (§3.1 NO [NOTIFICATIONOVERFLOW]), or told §5.8's overflow when
/// it grows past it.
pub(crate) const MAX_NOTIFY_WATCHED_MAILBOXES: usize = 500;
/// The events of one mailbox, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Events(u8);

impl Events {
    const NEW: u8 = 1;
    const EXPUNGE: u8 = 2;
    pub(crate) const FLAGS: u8 = 4;
    pub(crate) const NAME: u8 = 8;
    pub(crate) const SUBSCRIPTION: u8 = 16;

    pub(crate) fn of(events: &NotifyEvents) -> Events {
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

    pub(crate) fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Events about the messages of a mailbox (§5.1 to §5.3): the mailbox is watched.
    pub(crate) fn messages(self) -> bool {
        self.has(Events::NEW | Events::EXPUNGE | Events::FLAGS)
    }
}

/// One non-selected filter with its names as storage knows them.
pub(crate) struct Group {
    pub(crate) filter: Filter,
    pub(crate) events: Events,
}

pub(crate) enum Filter {
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
pub(crate) struct Told {
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

pub(crate) struct Watched {
    pub(crate) id: MailboxId,
    pub(crate) name: String,
    pub(crate) events: Events,
    pub(crate) watch: MailboxWatch,
    pub(crate) told: Option<Told>,
}

/// The account's mailboxes (by id) and subscriptions, as last told.
#[derive(Default)]
pub(crate) struct Listing {
    pub(crate) names: BTreeMap<MailboxId, String>,
    pub(crate) subscriptions: BTreeSet<String>,
}

/// The selected mailbox's events (§6.1).
pub(crate) struct SelectedEvents {
    /// §6.1.2 SELECTED-DELAYED: "delays notification of expunges until the client
    /// issues a command" that allows them.
    pub(crate) delayed: bool,
    pub(crate) events: Events,
    pub(crate) fetch: Vec<FetchItem>,
}

/// A session's NOTIFY state (RFC 5465 §3.1: what the last NOTIFY SET asked for).
pub(crate) struct Notify {
    pub(crate) account: AccountId,
    pub(crate) groups: Vec<Group>,
    pub(crate) selected: Option<SelectedEvents>,
    /// The account's list of mailboxes and subscriptions, when a filter depends on it.
    pub(crate) account_watch: Option<MailboxWatch>,
    pub(crate) listing: Listing,
    pub(crate) watched: Vec<Watched>,
    /// The selected mailbox and the last UID whose MessageNew fetch attributes were sent
    /// (or that the client knew of when it selected).
    pub(crate) fetched_through: Option<(MailboxId, u32)>,
    /// The watch that woke the session, whose change its wait took.
    pub(crate) woken: Option<Wake>,
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
pub(crate) enum Overflow {
    TooMany,
}

impl Notify {
    pub(crate) async fn read_listing(&self, store: &Store) -> storage::Result<Listing> {
        if self.groups.is_empty() {
            return Ok(Listing::default());
        }
        let names = store
            .list_mailboxes(self.account)
            .await?
            .into_iter()
            .map(|m| (m.id, m.name.into_string()))
            .collect();
        let subscriptions = store
            .subscriptions(self.account)
            .await?
            .into_iter()
            .map(MailboxName::into_string)
            .collect();
        Ok(Listing {
            names,
            subscriptions,
        })
    }

    /// The events the filters give a mailbox (§6: each filter that names it).
    pub(crate) fn events_of(&self, name: &str, listing: &Listing) -> Events {
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
    pub(crate) fn rewatch(&mut self, store: &Store, listing: Listing) -> Result<(), Overflow> {
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
}

/// A watched mailbox's STATUS now; `None` (logged) when storage cannot say, and the next
/// wake-up tries again.
pub(crate) async fn status_now(store: &Store, mailbox: MailboxId) -> Option<MailboxStatus> {
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
pub(crate) fn list_attributes(name: &str, listing: &Listing) -> String {
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
pub(crate) fn status_change(
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
