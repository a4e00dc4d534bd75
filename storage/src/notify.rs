//! Change notifications: what the writer publishes after each commit, in commit order.
//!
//! Sessions subscribe with [`crate::Store::subscribe`] and filter by account and mailbox.
//! A subscriber that falls behind gets `RecvError::Lagged` from tokio's broadcast
//! channel and must resynchronise its view from storage.
//!
//! Several nodes (PostgreSQL): the writer also sends, inside each transaction, a
//! `NOTIFY` on [`CHANGES_CHANNEL`] naming the mailboxes it changed; PostgreSQL delivers
//! it to every listening node at commit, in commit order. Each node's listener turns
//! the mailboxes changed by other nodes into [`ChangeKind::OtherNode`]; a session reads
//! what changed with `changes_since`, as it does after a lag. When the listener's
//! connection drops, notifications may have been missed: it publishes
//! [`ChangeKind::Resync`] once it is back, and every session rereads its mailbox.

use crate::error::Result;
use crate::types::{AccountId, Flags, MailboxId, ModSeq, Uid};
use sqlx::postgres::PgListener;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::broadcast;

/// Capacity of the broadcast channel; a session lagging further than this resyncs.
pub const CHANGE_CHANNEL_CAPACITY: usize = 16_384;

/// The PostgreSQL notification channel the nodes of one database share.
pub(crate) const CHANGES_CHANNEL: &str = "letterbox_changes";

/// PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; a batch naming more
/// mailboxes is sent as several notifications.
const NOTIFY_PAYLOAD_LIMIT: usize = 7_900;

/// How long the listener waits before connecting again after its connection failed.
const LISTENER_RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A message was added (delivery, APPEND, COPY, MOVE).
    Appended { uid: Uid, modseq: ModSeq },
    /// A message's flags changed.
    FlagsChanged {
        uid: Uid,
        modseq: ModSeq,
        flags: Flags,
    },
    /// A message was removed.
    Expunged { uid: Uid, modseq: ModSeq },
    /// The mailbox was created, deleted, renamed or (un)subscribed.
    MailboxChanged,
    /// Another node committed changes to this mailbox: read them with `changes_since`.
    OtherNode,
    /// Changes from other nodes may have been missed (the listener reconnected): every
    /// mailbox may have changed. `account` and `mailbox` are 0.
    Resync,
}

impl Change {
    /// Every session rereads its mailbox (see [`ChangeKind::Resync`]).
    pub(crate) fn resync() -> Change {
        Change {
            account: AccountId(0),
            mailbox: MailboxId(0),
            kind: ChangeKind::Resync,
        }
    }

    /// True when a session showing `mailbox` must reread it.
    pub fn concerns(&self, mailbox: MailboxId) -> bool {
        self.mailbox == mailbox || self.kind == ChangeKind::Resync
    }
}

/// The NOTIFY payloads for a committed batch: `NODE ACCOUNT:MAILBOX ...`, each mailbox
/// once, split to stay under PostgreSQL's payload limit.
pub(crate) fn notify_payloads(node: u64, changes: &[Change]) -> Vec<String> {
    let mailboxes: BTreeSet<(i64, i64)> =
        changes.iter().map(|c| (c.account.0, c.mailbox.0)).collect();
    let mut payloads = Vec::new();
    let mut current = String::new();
    for (account, mailbox) in mailboxes {
        let item = format!(" {account}:{mailbox}");
        if !current.is_empty() && current.len() + item.len() > NOTIFY_PAYLOAD_LIMIT {
            payloads.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current = node.to_string();
        }
        current.push_str(&item);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// The mailboxes a payload from another node names; nothing for this node's own.
fn changes_from_other_node(payload: &str, this_node: u64) -> Vec<Change> {
    let mut words = payload.split(' ');
    match words.next().and_then(|node| node.parse::<u64>().ok()) {
        Some(node) if node != this_node => {}
        _ => return Vec::new(),
    }
    words
        .filter_map(|word| {
            let (account, mailbox) = word.split_once(':')?;
            Some(Change {
                account: AccountId(account.parse().ok()?),
                mailbox: MailboxId(mailbox.parse().ok()?),
                kind: ChangeKind::OtherNode,
            })
        })
        .collect()
}

/// A connection listening on [`CHANGES_CHANNEL`].
async fn listener(url: &str) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// Starts this node's listener for other nodes' changes (PostgreSQL). Returns once it
/// listens, so that nothing committed after `Store::open` returns is missed.
pub(crate) async fn listen_to_other_nodes(
    url: &str,
    this_node: u64,
    changes: broadcast::Sender<Change>,
) -> Result<()> {
    let mut listening = listener(url).await?;
    // The task ends once the store is gone (no sender left but this weak one).
    let weak_changes = changes.downgrade();
    drop(changes);
    let url = url.to_owned();
    tokio::spawn(async move {
        loop {
            let received = listening.try_recv().await;
            let Some(changes) = weak_changes.upgrade() else {
                return;
            };
            match received {
                Ok(Some(notification)) => {
                    for change in changes_from_other_node(notification.payload(), this_node) {
                        // No subscriber is fine: nobody is watching.
                        let _ = changes.send(change);
                    }
                }
                // The connection was lost and sqlx made a new one at once, listening
                // again; what other nodes committed in between went unheard.
                Ok(None) => {
                    tracing::warn!("lost the connection listening for other nodes' changes");
                    let _ = changes.send(Change::resync());
                }
                // The connection failed and could not be made again at once (the server
                // restarts): listen anew, and once listening, have every session reread.
                Err(error) => {
                    tracing::warn!(%error, "listening for other nodes' changes failed");
                    drop(changes);
                    listening = loop {
                        tokio::time::sleep(LISTENER_RECONNECT_DELAY).await;
                        match listener(&url).await {
                            Ok(new) => break new,
                            Err(error) => tracing::warn!(%error, "listening again failed"),
                        }
                    };
                    tracing::info!("listening for other nodes' changes again");
                    let Some(changes) = weak_changes.upgrade() else {
                        return;
                    };
                    let _ = changes.send(Change::resync());
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appended(account: i64, mailbox: i64) -> Change {
        Change {
            account: AccountId(account),
            mailbox: MailboxId(mailbox),
            kind: ChangeKind::Appended {
                uid: Uid(1),
                modseq: ModSeq(1),
            },
        }
    }

    #[test]
    fn payloads_name_each_mailbox_once_and_stay_under_the_limit() {
        let changes: Vec<Change> = (0..3000).map(|n| appended(7, n % 1500)).collect();
        let payloads = notify_payloads(42, &changes);
        assert!(payloads.len() > 1);
        let mut seen = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8000);
            assert!(payload.starts_with("42 "));
            seen.extend(
                changes_from_other_node(payload, 1)
                    .into_iter()
                    .map(|c| c.mailbox.0),
            );
        }
        assert_eq!(seen, (0..1500).collect::<Vec<_>>());
    }

    #[test]
    fn a_node_ignores_its_own_payloads_and_garbage() {
        let payload = &notify_payloads(42, &[appended(3, 9)])[0];
        assert!(changes_from_other_node(payload, 42).is_empty());
        assert_eq!(
            changes_from_other_node(payload, 5),
            vec![Change {
                account: AccountId(3),
                mailbox: MailboxId(9),
                kind: ChangeKind::OtherNode
            }]
        );
        assert!(changes_from_other_node("x 1:2", 5).is_empty());
        assert!(changes_from_other_node("", 5).is_empty());
    }
}
