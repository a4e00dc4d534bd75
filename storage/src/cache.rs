//! A bounded in-memory cache of what reads need of a stored message: its meta (computed at
//! delivery, stored as JSON) and its top-level header bytes. FETCH and SEARCH ask for the
//! same messages again and again; parsing their meta JSON on every command was most of
//! their time.
//!
//! Invariants that make it sound without any invalidation:
//! - a `messages` row never changes once written (its meta and header are computed at
//!   delivery), and
//! - a message id is never given to another message: ids come from `id_sequences`
//!   (SQLite migration 0003) or a sequence (PostgreSQL migration 0010), which only grow,
//!   even when the newest message is deleted by this process or by another one (the
//!   admin CLI, another node on PostgreSQL); see `id_sequence.rs`.
//!
//! So an entry may outlive its row, but it can never describe another message. The lock
//! is held only to look up or insert, never across an await.

use crate::mime::MessageMeta;
use crate::types::MessageId;
use std::collections::HashMap;
use std::mem;
use std::sync::{Arc, Mutex, PoisonError};

/// Messages kept at most. An entry is a few KB (meta with the unfolded header, and the
/// header bytes), so this is some tens of MB at worst: the working set of a handful of
/// busy mailboxes on a small machine.
pub(crate) const MESSAGE_CACHE_CAPACITY: usize = 8192;

/// What the cache holds of one message.
#[derive(Clone)]
pub(crate) struct CachedMessage {
    pub meta: Arc<MessageMeta>,
    pub header: Arc<[u8]>,
}

/// Two generations, an approximation of LRU with O(1) work and no per-entry bookkeeping:
/// inserts go to `current`; when it is full it becomes `previous` and the old `previous`
/// is dropped; a hit in `previous` moves the entry back into `current`.
#[derive(Default)]
struct Generations {
    current: HashMap<MessageId, CachedMessage>,
    previous: HashMap<MessageId, CachedMessage>,
}

impl Generations {
    fn insert(&mut self, id: MessageId, message: CachedMessage) {
        if self.current.len() >= MESSAGE_CACHE_CAPACITY / 2 {
            self.previous = mem::take(&mut self.current);
        }
        self.current.insert(id, message);
    }
}

#[derive(Default)]
pub(crate) struct MessageCache {
    generations: Mutex<Generations>,
}

impl MessageCache {
    /// The cached messages among `ids`; the others are pushed onto `missing`.
    pub fn lookup(
        &self,
        ids: &[MessageId],
        missing: &mut Vec<MessageId>,
    ) -> HashMap<MessageId, CachedMessage> {
        let mut found = HashMap::with_capacity(ids.len());
        // A panic elsewhere while holding the lock leaves the maps whole (every change
        // is a single insert or swap), so a poisoned lock is still usable.
        let mut generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &id in ids {
            if let Some(message) = generations.current.get(&id) {
                found.insert(id, message.clone());
            } else if let Some(message) = generations.previous.remove(&id) {
                found.insert(id, message.clone());
                generations.insert(id, message);
            } else {
                missing.push(id);
            }
        }
        found
    }

    pub fn insert(&self, id: MessageId, message: CachedMessage) {
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, message);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let generations = self
            .generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        generations.current.len() + generations.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::analyse;

    fn cached() -> CachedMessage {
        CachedMessage {
            meta: Arc::new(analyse(b"Subject: x\r\n\r\nbody\r\n").meta),
            header: Arc::from(&b"Subject: x\r\n\r\n"[..]),
        }
    }

    #[test]
    fn stays_bounded_and_keeps_what_is_used() {
        let cache = MessageCache::default();
        let message = cached();
        let hot = MessageId(0);
        cache.insert(hot, message.clone());
        for id in 1..(3 * MESSAGE_CACHE_CAPACITY as i64) {
            cache.insert(MessageId(id), message.clone());
            // Touching the entry keeps it through every generation change.
            let mut missing = Vec::new();
            assert!(cache.lookup(&[hot], &mut missing).contains_key(&hot));
            assert!(missing.is_empty());
            assert!(cache.len() <= MESSAGE_CACHE_CAPACITY);
        }
        let mut missing = Vec::new();
        let found = cache.lookup(&[MessageId(1), hot], &mut missing);
        assert_eq!(missing, [MessageId(1)]);
        assert!(found.contains_key(&hot));
    }
}
