//! One `changes_since` read for all the sessions that a commit wakes together (issue 17).
//!
//! A delivery to a mailbox that 4,000 IDLE sessions have selected wakes all of them, and
//! each asks what changed after the same MODSEQ. Read one by one, that is 4,000 equal
//! queries (the profile of the IDLE bench showed them as the largest cost once the
//! wake-ups themselves were cheap). Here the first session of a mailbox and MODSEQ reads;
//! every other that asks the same while the answer is still current gets a copy.
//!
//! Soundness: a session asks after it was woken for a commit, which the writer publishes
//! only after the commit ([`crate::notify`]). A read is shared only among sessions asking
//! while the mailbox's watch version is the one the read was started under: no commit to
//! the mailbox was published since it started, so every commit a sharer was woken for
//! was committed before the read began, and the read's snapshot holds it. Once a later
//! commit is published, the next session to ask starts a new read.
//!
//! Invariant: an entry's answer is returned only while `version` equals the mailbox's
//! current watch version; the map holds at most [`MAX_SHARED_READS`] entries, and keeps
//! answers of at most [`MAX_KEPT_ENTRIES`] message entries.

use crate::Store;
use crate::error::Result;
use crate::messages::MailboxChanges;
use crate::types::{MailboxId, ModSeq};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OnceCell;

/// Reads kept for sharing; past it the map is emptied (only sharing is lost). Each
/// session has one mailbox selected, and sessions of one mailbox mostly ask from the same
/// MODSEQ, so a busy installation needs about one entry per mailbox being woken. With
/// [`MAX_KEPT_ENTRIES`], what the map keeps is bounded (1024 × 64 message entries).
const MAX_SHARED_READS: usize = 1024;

/// An answer with more entries than this is not kept once read: a wake-up brings a few
/// changes; a session catching up from far back (or a resync) is rare and its answer
/// large, so others would seldom ask the same and the memory is better returned.
const MAX_KEPT_ENTRIES: usize = 64;

/// One read of a mailbox's changes after a MODSEQ.
struct SharedRead {
    /// The mailbox's watch version when the read was set up.
    version: u64,
    /// The answer, once read; `None` when the read failed (each caller then reads for
    /// itself and gets its own error).
    answer: OnceCell<Option<MailboxChanges>>,
}

/// The reads being shared, by mailbox and MODSEQ.
#[derive(Default)]
pub(crate) struct SharedReads {
    reads: Mutex<HashMap<(MailboxId, ModSeq), Arc<SharedRead>>>,
}

impl SharedReads {
    /// The read to share for `key` at watch `version`: the current one, or a new one.
    fn read_for(&self, key: (MailboxId, ModSeq), version: u64) -> Arc<SharedRead> {
        // Poisoned only by a panic while holding it; the map is still valid.
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(read) = reads.get(&key)
            && read.version == version
        {
            return Arc::clone(read);
        }
        if reads.len() >= MAX_SHARED_READS {
            reads.clear();
        }
        let read = Arc::new(SharedRead {
            version,
            answer: OnceCell::new(),
        });
        reads.insert(key, Arc::clone(&read));
        read
    }

    /// Forgets the read of `key` if it is still `read` (its answer is too large to keep).
    fn forget(&self, key: (MailboxId, ModSeq), read: &Arc<SharedRead>) {
        let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
        if reads.get(&key).is_some_and(|kept| Arc::ptr_eq(kept, read)) {
            reads.remove(&key);
        }
    }
}

impl Store {
    /// [`Store::changes_since`] for a session whose watch of `mailbox` woke it: sessions
    /// asking for the same mailbox and MODSEQ at the same time share one read (see the
    /// module's documentation for why the answer is as fresh as a read of its own).
    pub async fn shared_changes_since(
        &self,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<MailboxChanges> {
        let Some(version) = self.changes.version_of(mailbox) else {
            // Nobody watches the mailbox: nobody to share with.
            return self.changes_since(mailbox, since).await;
        };
        let key = (mailbox, since);
        let read = self.shared_reads.read_for(key, version);
        // The first caller reads; the others wait for its answer. A caller dropped
        // midway leaves the cell empty, and the next one reads instead.
        let answer = read
            .answer
            .get_or_init(|| async { self.changes_since(mailbox, since).await.ok() })
            .await;
        match answer {
            Some(changes) => {
                if changes.changed.len() + changes.expunged.len() > MAX_KEPT_ENTRIES {
                    self.shared_reads.forget(key, &read);
                }
                Ok(changes.clone())
            }
            None => self.changes_since(mailbox, since).await,
        }
    }
}
