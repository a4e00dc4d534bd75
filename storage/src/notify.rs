//! Change notifications: what the writer publishes after each commit, in commit order.
//!
//! Sessions subscribe with [`crate::Store::subscribe`] and filter by account and mailbox.
//! A subscriber that falls behind gets `RecvError::Lagged` from tokio's broadcast
//! channel and must resynchronise its view from storage.

use crate::types::{AccountId, Flags, MailboxId, ModSeq, Uid};

/// Capacity of the broadcast channel; a session lagging further than this resyncs.
pub const CHANGE_CHANNEL_CAPACITY: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
}
