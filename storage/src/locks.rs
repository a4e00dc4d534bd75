//! What a write locks (PostgreSQL): one lock per account, one for the directory, so that
//! writes to different accounts, on one node or on several sharing one database, run
//! side by side, while the writes of one account run one after another.
//!
//! Invariants:
//! - Every writer job names its [`Scope`]: the directory (domains, accounts, aliases),
//!   the accounts it changes, or the mailboxes it changes (whose accounts are looked
//!   up). Its transaction holds the lock of each before its first statement, as
//!   `pg_advisory_xact_lock` in one statement after BEGIN, and until COMMIT or ROLLBACK.
//! - One fixed order everywhere: the directory lock first, then the accounts in
//!   ascending [`LockKey`] order. A transaction takes no advisory lock after its first
//!   statement, so two writers never wait on each other in a cycle.
//! - Whatever belongs to one account (its mailboxes' UIDNEXT and HIGHESTMODSEQ, its
//!   entries, flags, expunged UIDs, quota use, subscriptions, Sieve scripts and vacation
//!   records) is written only under that account's lock. So UIDs and MODSEQs of a
//!   mailbox are handed out and committed in one order on every node (RFC 9051
//!   §2.3.1.1, RFC 7162 §3.1: a session that has read up to MODSEQ n never later finds
//!   a commit below n), and a job that reads and then writes an account's rows sees
//!   the latest commit: the lock is granted only after the previous holder's commit is
//!   visible (PostgreSQL releases locks after marking the transaction committed).
//! - Directory jobs lock the directory only. They reach an account's mail only through
//!   cascading deletes (an account or domain removed), which wait for the row locks of
//!   that account's running writes; those never wait for the directory lock.
//! - Rows of no account: a `messages` row is written once, by the delivery that makes
//!   it (holding the locks of every account it is delivered to), and deleted by the
//!   last reference going (a trigger that locks the row first, migration postgres
//!   0010); queue items are claimed with `FOR UPDATE SKIP LOCKED` and changed by their
//!   lease holder only (`queue.rs`).
//! - A mailbox's account never changes and a mailbox id is never given again
//!   (`id_sequence.rs`), so [`MailboxOwners`] keeps what it looked up for ever. A
//!   caller learns a mailbox id only after the mailbox's creation committed, so the
//!   lookup finds every mailbox a job can change.
//! - In one process, [`LocalLocks`] mirror the same keys in the same order, taken
//!   before BEGIN and held until the changes are published: two write connections of
//!   one node never hold one account's jobs at once (no connection sits waiting on
//!   PostgreSQL for its own node), and one account's changes are published in commit
//!   order.
//!
//! SQLite has one writer and no scope is looked at (see `writer.rs`).

use crate::error::Result;
use crate::types::{AccountId, MailboxId};
use sqlx::AnyPool;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use tokio::sync::OwnedMutexGuard;

/// The first key of every advisory lock of letterbox ("lb" in ASCII, then 'a' for
/// accounts, 'd' for the directory), so that they do not collide with another
/// application's locks on the same database. PostgreSQL's two-key form keeps them apart
/// from the one-key (bigint) form too.
const ACCOUNT_LOCK_SPACE: i32 = 0x6c62_0061;
const DIRECTORY_LOCK_SPACE: i32 = 0x6c62_0064;

/// Mailbox owners kept before the map is cleared (then it fills again on demand).
const MAILBOX_OWNERS_KEPT: usize = 100_000;
/// Local locks kept before those nobody holds are dropped.
const LOCAL_LOCKS_BEFORE_PRUNE: usize = 1024;

/// One lock: the directory sorts before every account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum LockKey {
    Directory,
    /// An account's id, folded into PostgreSQL's 32-bit second key. Two accounts whose
    /// ids fold alike share a lock (they only wait on each other); the order is that of
    /// the folded keys, the same for both.
    Account(i32),
}

impl LockKey {
    pub(crate) fn account(account: AccountId) -> LockKey {
        LockKey::Account(account.0.rem_euclid(1 << 31) as i32)
    }
}

/// What a writer job changes (see the module's comment).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    directory: bool,
    accounts: BTreeSet<AccountId>,
    mailboxes: BTreeSet<MailboxId>,
}

impl Scope {
    /// Rows of no account: queue items (claimed with `FOR UPDATE SKIP LOCKED`).
    pub(crate) fn nothing() -> Scope {
        Scope::default()
    }

    /// Domains, accounts and aliases.
    pub(crate) fn directory() -> Scope {
        Scope {
            directory: true,
            ..Scope::default()
        }
    }

    pub(crate) fn account(account: AccountId) -> Scope {
        Scope {
            accounts: BTreeSet::from([account]),
            ..Scope::default()
        }
    }

    /// The accounts the mailboxes belong to.
    pub(crate) fn mailboxes(mailboxes: impl IntoIterator<Item = MailboxId>) -> Scope {
        Scope {
            mailboxes: mailboxes.into_iter().collect(),
            ..Scope::default()
        }
    }
}

/// Which account each mailbox belongs to, as far as looked up (see the module's comment
/// for why it never goes stale).
#[derive(Default)]
pub(crate) struct MailboxOwners {
    known: Mutex<HashMap<MailboxId, AccountId>>,
}

impl MailboxOwners {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<MailboxId, AccountId>> {
        // Poisoned only by a panic while holding it; the map is still valid.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keys `scope` locks, in the order they are taken. A mailbox that does not
    /// exist adds nothing: the job fails on it.
    pub(crate) async fn keys(&self, reader: &AnyPool, scope: Scope) -> Result<BTreeSet<LockKey>> {
        let mut keys: BTreeSet<LockKey> = scope
            .accounts
            .iter()
            .map(|&a| LockKey::account(a))
            .collect();
        if scope.directory {
            keys.insert(LockKey::Directory);
        }
        let mut unknown = Vec::new();
        {
            let known = self.known();
            for mailbox in &scope.mailboxes {
                match known.get(mailbox) {
                    Some(&account) => {
                        keys.insert(LockKey::account(account));
                    }
                    None => unknown.push(*mailbox),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(keys);
        }
        // A handful of ids at most (a delivery's recipients, COPY's two mailboxes), all
        // integers of ours: written into the statement.
        let list = unknown
            .iter()
            .map(|m| m.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let found: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT id, account_id FROM mailboxes WHERE id IN ({list})"
        ))
        .fetch_all(reader)
        .await?;
        let mut known = self.known();
        if known.len() + found.len() > MAILBOX_OWNERS_KEPT {
            known.clear();
        }
        for (mailbox, account) in found {
            known.insert(MailboxId(mailbox), AccountId(account));
            keys.insert(LockKey::account(AccountId(account)));
        }
        Ok(keys)
    }
}

/// The statements that open a PostgreSQL write transaction holding `keys`, in their
/// order (see the module's comment), sent as one simple query: one round trip.
pub(crate) fn postgres_begin(keys: &BTreeSet<LockKey>) -> String {
    let mut sql = String::from("BEGIN");
    // A BTreeSet iterates in ascending order: the directory, then accounts.
    for key in keys {
        let (space, key) = match *key {
            LockKey::Directory => (DIRECTORY_LOCK_SPACE, 0),
            LockKey::Account(key) => (ACCOUNT_LOCK_SPACE, key),
        };
        // Writing to a String cannot fail.
        let _ = write!(sql, "; SELECT pg_advisory_xact_lock({space}, {key})");
    }
    sql
}

/// The in-process mirror of the advisory locks (see the module's comment).
#[derive(Default)]
pub(crate) struct LocalLocks {
    locks: Mutex<LocalLockMap>,
}

#[derive(Default)]
struct LocalLockMap {
    by_key: HashMap<LockKey, Weak<tokio::sync::Mutex<()>>>,
    prune_at: usize,
}

/// Held local locks; dropping them releases them.
pub(crate) struct LocalGuards {
    _held: Vec<OwnedMutexGuard<()>>,
}

impl LocalLocks {
    fn lock_of(&self, key: LockKey) -> Arc<tokio::sync::Mutex<()>> {
        // Poisoned only by a panic while holding it; the map is still valid.
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lock) = locks.by_key.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.by_key.len() >= locks.prune_at.max(LOCAL_LOCKS_BEFORE_PRUNE) {
            locks.by_key.retain(|_, lock| lock.strong_count() > 0);
            locks.prune_at = locks.by_key.len() * 2;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.by_key.insert(key, Arc::downgrade(&lock));
        lock
    }

    /// Takes every key's lock, in ascending order.
    pub(crate) async fn acquire(&self, keys: &BTreeSet<LockKey>) -> LocalGuards {
        let mut guards = Vec::with_capacity(keys.len());
        for &key in keys {
            guards.push(self.lock_of(key).lock_owned().await);
        }
        LocalGuards { _held: guards }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_key
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_taken_directory_first_then_accounts_ascending() {
        let keys: BTreeSet<LockKey> = [
            LockKey::account(AccountId(7)),
            LockKey::Directory,
            LockKey::account(AccountId(3)),
            LockKey::account(AccountId(7)),
        ]
        .into();
        assert_eq!(
            postgres_begin(&keys),
            format!(
                "BEGIN; SELECT pg_advisory_xact_lock({DIRECTORY_LOCK_SPACE}, 0); \
                 SELECT pg_advisory_xact_lock({ACCOUNT_LOCK_SPACE}, 3); \
                 SELECT pg_advisory_xact_lock({ACCOUNT_LOCK_SPACE}, 7)"
            )
        );
        assert_eq!(postgres_begin(&BTreeSet::new()), "BEGIN");
    }

    #[test]
    fn account_ids_fold_into_the_32_bit_key() {
        assert_eq!(LockKey::account(AccountId(5)), LockKey::Account(5));
        assert_eq!(
            LockKey::account(AccountId((1 << 31) + 5)),
            LockKey::Account(5)
        );
        assert_eq!(
            LockKey::account(AccountId(i64::MAX)),
            LockKey::Account(i32::MAX)
        );
        assert!(LockKey::Directory < LockKey::account(AccountId(0)));
    }

    #[tokio::test]
    async fn a_local_lock_waits_for_its_holder_and_unheld_locks_are_dropped() {
        let locks = Arc::new(LocalLocks::default());
        let a: BTreeSet<LockKey> = [LockKey::account(AccountId(1))].into();
        let ab: BTreeSet<LockKey> = [
            LockKey::account(AccountId(1)),
            LockKey::account(AccountId(2)),
        ]
        .into();
        let b: BTreeSet<LockKey> = [LockKey::account(AccountId(2))].into();
        let held = locks.acquire(&a).await;
        let waiting = tokio::spawn({
            let locks = Arc::clone(&locks);
            async move { drop(locks.acquire(&ab).await) }
        });
        // Another account is free meanwhile.
        drop(locks.acquire(&b).await);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "took a lock that was held");
        drop(held);
        waiting.await.expect("acquired once released");
        for n in 10..(10 + LOCAL_LOCKS_BEFORE_PRUNE as i64 * 2) {
            drop(
                locks
                    .acquire(&[LockKey::account(AccountId(n))].into())
                    .await,
            );
        }
        assert!(locks.kept() <= LOCAL_LOCKS_BEFORE_PRUNE + 1);
    }
}
