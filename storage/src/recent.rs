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
//! The sessions that ask while a claim runs wait for it together and are all let go when
//! it ends (a `watch` channel whose sender the claim holds): they used to queue on an
//! async mutex, which lets one waiter go at a time, each woken by the one before it
//! (issue 17: with 4,000 sessions that chain was the whole fan-out after the claim, and
//! it ran on one worker thread at a time, as a task woken by the task running keeps to
//! that worker).
//!
//! Invariants:
//! - An entry `(uid_validity, through)` says: a committed claim covered every UID up to
//!   `through` under that UIDVALIDITY. `first_recent_uid` never goes down while the
//!   UIDVALIDITY stays (only `adopt_uid_validity`, an import into an empty mailbox, resets
//!   it, and it gives a new UIDVALIDITY), so the entry stays true for as long as it is
//!   kept; other nodes and processes can only make more true than it says.
//! - At most one claim of a mailbox runs in this process at a time (the holder of its
//!   [`ClaimTurn`]); the sessions woken together find its result here instead of on the
//!   writer.
//! - The map holds an entry only while a claim on it is running or it is worth keeping;
//!   it is bounded by [`MAX_REMEMBERED_MAILBOXES`]. No lock here is held across an await.

use crate::types::{MailboxId, Uid, UidValidity};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

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

/// One mailbox: what the last claim found, and the claim running, if any.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    claimed: Claimed,
    /// While a claim runs: a receiver whose sender its [`ClaimTurn`] holds; the turn's
    /// end (claim committed, failed, or the session gone) closes the channel, which
    /// wakes every waiter at once.
    running: Option<watch::Receiver<()>>,
}

impl Gate {
    fn state(&self) -> MutexGuard<'_, GateState> {
        // Poisoned only by a panic while holding it; the state is still a valid shortcut.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The right to run the claim of one mailbox; the waiters go on once it is dropped.
pub(crate) struct ClaimTurn {
    gate: Arc<Gate>,
    /// Dropped after [`ClaimTurn::drop`] cleared `running`: the waiters that wake find
    /// no claim running and either the result or their own turn.
    _running: watch::Sender<()>,
}

impl ClaimTurn {
    /// The claim committed and covered `claimed`.
    pub fn committed(&self, claimed: Claimed) {
        self.gate.state().claimed = claimed;
    }
}

impl Drop for ClaimTurn {
    fn drop(&mut self) {
        self.gate.state().running = None;
    }
}

/// Per mailbox, the last claim committed and the one running.
#[derive(Debug, Default)]
pub(crate) struct RecentClaims {
    gates: Mutex<HashMap<MailboxId, Arc<Gate>>>,
}

impl RecentClaims {
    /// The gate of `mailbox`.
    fn gate(&self, mailbox: MailboxId) -> Arc<Gate> {
        // A poisoned lock only means a panic elsewhere while holding it; the map itself
        // is still a valid map of shortcuts.
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        if gates.len() >= MAX_REMEMBERED_MAILBOXES && !gates.contains_key(&mailbox) {
            gates.clear();
        }
        Arc::clone(gates.entry(mailbox).or_default())
    }

    /// `None` when a committed claim seen by this process covers `through` under
    /// `uid_validity`; otherwise this caller's turn to claim, once no other claim of the
    /// mailbox runs (a claim running when asked may cover it: then `None` too).
    pub async fn turn(
        &self,
        mailbox: MailboxId,
        uid_validity: UidValidity,
        through: Uid,
    ) -> Option<ClaimTurn> {
        let gate = self.gate(mailbox);
        loop {
            let mut running = {
                let mut state = gate.state();
                if state.claimed.covers(uid_validity, through) {
                    return None;
                }
                match &state.running {
                    Some(running) => running.clone(),
                    None => {
                        let (sender, receiver) = watch::channel(());
                        state.running = Some(receiver);
                        drop(state);
                        return Some(ClaimTurn {
                            gate,
                            _running: sender,
                        });
                    }
                }
            };
            // Nothing is ever sent: this returns (an error) once the running claim's
            // turn is dropped, and at once if it already was.
            let _ = running.changed().await;
        }
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

    /// The sessions asking while a claim runs wait for it and all go on when it ends:
    /// with nothing left to claim once it committed, and with one of them claiming
    /// instead when it did not.
    #[tokio::test]
    async fn waiters_go_on_together_when_the_running_claim_ends() {
        let claims = Arc::new(RecentClaims::default());
        let (mailbox, validity) = (MailboxId(1), UidValidity(7));
        let ask = |through| {
            let claims = Arc::clone(&claims);
            tokio::spawn(async move { claims.turn(mailbox, validity, Uid(through)).await })
        };

        let running = claims.turn(mailbox, validity, Uid(3)).await.expect("turn");
        let waiting: Vec<_> = (0..3).map(|_| ask(3)).collect();
        commit_while_they_wait(running, waiting, validity, 3, "waited for the claim").await;

        // A claim that ends without committing (failed, or its session went away): one
        // waiter claims instead, and the others wait for that claim.
        let running = claims.turn(mailbox, validity, Uid(4)).await.expect("turn");
        let mut waiting: Vec<_> = (0..3).map(|_| ask(4)).collect();
        tokio::task::yield_now().await;
        drop(running);
        let next = loop {
            tokio::task::yield_now().await;
            if let Some(at) = waiting.iter().position(|w| w.is_finished()) {
                break waiting.remove(at).await.expect("task").expect("its turn");
            }
        };
        commit_while_they_wait(next, waiting, validity, 4, "one claim at a time").await;
    }

    /// Checks that `waiting` still wait while `turn` runs (`why` if not), then commits
    /// `turn` through `through` and checks that every waiter finds nothing left to claim.
    async fn commit_while_they_wait(
        turn: ClaimTurn,
        waiting: Vec<tokio::task::JoinHandle<Option<ClaimTurn>>>,
        validity: UidValidity,
        through: u32,
        why: &str,
    ) {
        tokio::task::yield_now().await;
        assert!(waiting.iter().all(|w| !w.is_finished()), "{why}");
        turn.committed(Claimed {
            uid_validity: Some(validity),
            through,
        });
        drop(turn);
        for waiter in waiting {
            assert!(waiter.await.expect("task").is_none(), "claimed already");
        }
    }
}
