//! What this process knows of `\Recent` claims (RFC 3501 §2.3.2), so that the sessions
//! woken by one arrival do not each run a write transaction to learn that one of them
//! already claimed it.
//!
//! A claim is a write transaction (`Store::claim_recent`). When one delivery wakes every
//! IDLE session of a mailbox, each IMAP4rev1 session asks to claim the new message; one
//! wins, and before this cache every other one still queued a job on the writer, each a
//! savepoint and a read of `first_recent_uid` (2,000 sessions: 2,000 jobs; the profile of
//! the wake-up showed the writer's lane at 13% of the server's CPU).
//!
//! Invariants:
//! - An entry `(uid_validity, through)` says: a committed claim covered every UID up to
//!   `through` under that UIDVALIDITY. `first_recent_uid` never goes down while the
//!   UIDVALIDITY stays (only `adopt_uid_validity`, an import into an empty mailbox, resets
//!   it, and it gives a new UIDVALIDITY), so the entry stays true for as long as it is
//!   kept; other nodes and processes can only make more true than it says.
//! - Claims of one mailbox in this process run one at a time (the mailbox's gate), so the
//!   sessions woken together find the first one's result here instead of on the writer.
//! - The map holds an entry only while a claim on it is running or it is worth keeping;
//!   it is bounded by [`MAX_REMEMBERED_MAILBOXES`].

use crate::types::{MailboxId, Uid, UidValidity};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Mailboxes whose last claim is remembered; past it the map is emptied (every entry is
/// only a shortcut, so forgetting costs one write transaction per mailbox, not
/// correctness). A mailbox's entry is a few dozen bytes.
const MAX_REMEMBERED_MAILBOXES: usize = 100_000;

/// The last claim this process saw committed in a mailbox: its UIDVALIDITY and the
/// highest UID claimed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Claimed {
    pub uid_validity: Option<UidValidity>,
    pub through: u32,
}

impl Claimed {
    /// Whether a claim up to `through` under `uid_validity` would find nothing left.
    pub fn covers(&self, uid_validity: UidValidity, through: Uid) -> bool {
        self.uid_validity == Some(uid_validity) && through.0 <= self.through
    }
}

/// Per mailbox, a gate that claims pass one at a time, holding what the last one found.
#[derive(Debug, Default)]
pub(crate) struct RecentClaims {
    gates: Mutex<HashMap<MailboxId, Arc<tokio::sync::Mutex<Claimed>>>>,
}

impl RecentClaims {
    /// The gate of `mailbox`.
    pub fn gate(&self, mailbox: MailboxId) -> Arc<tokio::sync::Mutex<Claimed>> {
        // A poisoned lock only means a panic elsewhere while holding it; the map itself
        // is still a valid map of shortcuts.
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if gates.len() >= MAX_REMEMBERED_MAILBOXES && !gates.contains_key(&mailbox) {
            gates.clear();
        }
        gates.entry(mailbox).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_covers_only_its_own_uidvalidity_and_uids() {
        let claimed = Claimed {
            uid_validity: Some(UidValidity(7)),
            through: 10,
        };
        assert!(claimed.covers(UidValidity(7), Uid(10)));
        assert!(claimed.covers(UidValidity(7), Uid(3)));
        assert!(!claimed.covers(UidValidity(7), Uid(11)));
        assert!(!claimed.covers(UidValidity(8), Uid(3)));
        assert!(!Claimed::default().covers(UidValidity(7), Uid(1)));
    }
}
