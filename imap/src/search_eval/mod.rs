//! Search key evaluation below the session: the messages of a batch with what a key
//! needs of them loaded from storage ([`Batch`]), the keys an updating search keeps
//! ([`UpdateKey`], RFC 5267 §4.3) and their evaluation on messages that arrived or
//! changed ([`match_updates`]), and the per-key rules (`matching.rs`). It knows neither
//! the session nor the view: the SEARCH command and `find` are in `command/search.rs`,
//! the view's bounds for sequence sets in `view.rs` ([`crate::view::View::set_bounds`]).

use crate::batches::{MAX_BATCH_BYTES, batches};
use crate::error::CommandError;
use crate::proto::RangeSet;
use crate::proto::command::{CommandBody, SearchKey};
use crate::proto::response::Code;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use storage::fulltext::IndexedText;
use storage::{MessageEntry, MessageId, MessageMeta, ModSeq, Store, Uid};

pub(crate) mod matching;

use matching::*;

/// Messages whose meta is loaded at once; texts and raw messages are further bounded by
/// [`MAX_BATCH_BYTES`].
pub(crate) const SEARCH_CHUNK: usize = 512;

/// A message that matched: its sequence number, UID and modseq.
pub(crate) struct Found {
    pub(crate) seq: u32,
    pub(crate) uid: Uid,
    pub(crate) modseq: ModSeq,
}

/// A search key kept by an updating search (RFC 5267 §4.3), asked again about each
/// message that arrives or changes: sequence sets and `$` stand for the messages they
/// named when the search ran.
pub(crate) struct UpdateKey {
    key: Arc<Key>,
    needs: Needs,
    /// OLDER and YOUNGER (RFC 5032) change their answer as time passes, with nothing in
    /// the mailbox changing: such a search is not kept up to date.
    pub(crate) time_relative: bool,
}

/// True when the key uses OLDER or YOUNGER anywhere.
fn time_relative(key: &SearchKey) -> bool {
    match key {
        SearchKey::Older(_) | SearchKey::Younger(_) => true,
        SearchKey::And(keys) => keys.iter().any(time_relative),
        SearchKey::Or(a, b) => time_relative(a) || time_relative(b),
        SearchKey::Not(k) => time_relative(k),
        _ => false,
    }
}

impl UpdateKey {
    /// `bounds` are the view's ([`crate::view::View::set_bounds`]), `uids` its UIDs now:
    /// sequence numbers stand for the messages they name now.
    pub(crate) fn compile<'a>(
        key: &SearchKey,
        mut bounds: SetBounds<'a>,
        uids: &'a [u32],
    ) -> UpdateKey {
        bounds.freeze_seqs = Some(uids);
        UpdateKey {
            key: Arc::new(Key::compile(key, &bounds)),
            needs: Needs::of(key),
            time_relative: time_relative(key),
        }
    }
}

/// For each of `keys`, the UIDs of the `entries` (sequence number, entry) it matches.
/// What the keys need of the messages is loaded once for all of them, in bounded
/// batches, and compared off the async workers when it is message contents (as `find`).
pub(crate) async fn match_updates(
    store: &Store,
    keys: &[&UpdateKey],
    entries: &[(u32, MessageEntry)],
    now: i64,
) -> Result<Vec<Vec<Uid>>, CommandError> {
    let needs = keys
        .iter()
        .fold(Needs::default(), |needs, key| needs.with(key.needs));
    let max_bytes = if needs.contents() {
        MAX_BATCH_BYTES
    } else {
        u64::MAX
    };
    let positions: Vec<usize> = (0..entries.len()).collect();
    let size = |i: usize| entries.get(i).map_or(0, |(_, e)| u64::from(e.size));
    let mut matched = vec![Vec::new(); keys.len()];
    for chunk in batches(&positions, SEARCH_CHUNK, max_bytes, size) {
        let chunk: Vec<(u32, MessageEntry)> = chunk
            .iter()
            .filter_map(|&i| entries.get(i).cloned())
            .collect();
        let batch = Batch::load(store, needs, chunk, &HashSet::new()).await?;
        let keys: Vec<Arc<Key>> = keys.iter().map(|k| Arc::clone(&k.key)).collect();
        let evaluate = move || {
            keys.iter()
                .map(|key| batch.matching(key, now).iter().map(|f| f.uid).collect())
                .collect::<Vec<Vec<Uid>>>()
        };
        let found = if needs == Needs::default() {
            evaluate()
        } else {
            tokio::task::spawn_blocking(evaluate)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "search update task failed");
                    CommandError::no(Some(Code::ServerBug), "Search failed")
                })?
        };
        for (all, more) in matched.iter_mut().zip(found) {
            all.extend(more);
        }
    }
    Ok(matched)
}

/// Messages of one batch with what the key needs of them, owned, to be searched away
/// from the session.
pub(crate) struct Batch {
    /// Sequence number and entry of each message, in mailbox order.
    entries: Vec<(u32, MessageEntry)>,
    metas: HashMap<MessageId, Arc<MessageMeta>>,
    texts: HashMap<MessageId, String>,
    raws: HashMap<MessageId, Vec<u8>>,
    /// The full-text index's texts of the messages that have a row.
    indexed: HashMap<MessageId, IndexedText>,
    /// Messages whose BODY and TEXT keys the index answered (`IndexAnswer::answered` in
    /// `command/search.rs`):
    /// nothing of their contents is loaded.
    answered: HashSet<MessageId>,
    needs_text: bool,
}

impl Batch {
    /// The batch of `entries` with what `needs` asks for loaded.
    pub(crate) async fn load(
        store: &Store,
        needs: Needs,
        entries: Vec<(u32, MessageEntry)>,
        answered: &HashSet<MessageId>,
    ) -> Result<Batch, CommandError> {
        let ids: Vec<MessageId> = entries.iter().map(|(_, e)| e.message).collect();
        let answered: HashSet<MessageId> = ids
            .iter()
            .filter(|id| answered.contains(id))
            .copied()
            .collect();
        // The contents of the messages the index did not answer for.
        let open: Vec<MessageId> = ids
            .iter()
            .filter(|id| !answered.contains(id))
            .copied()
            .collect();
        let indexed = if needs.text && !needs.unindexed {
            store.indexed_texts(&open).await?
        } else {
            HashMap::new()
        };
        // What the index does not hold is read from the messages.
        let rest: Vec<MessageId> = open
            .iter()
            .filter(|id| !indexed.contains_key(id))
            .copied()
            .collect();
        let meta_of = if needs.meta { &ids } else { &rest };
        Ok(Batch {
            metas: if needs.meta || needs.headers {
                store.message_meta(meta_of).await?
            } else {
                HashMap::new()
            },
            texts: if needs.text {
                store.message_texts(&rest).await?
            } else {
                HashMap::new()
            },
            raws: if needs.headers {
                store.raw_messages(&rest).await?
            } else {
                HashMap::new()
            },
            indexed,
            answered,
            entries,
            needs_text: needs.text,
        })
    }

    /// True when the index answered for every message of the batch, so matching is a few
    /// comparisons per message, not a search of contents.
    pub(crate) fn contents_answered(&self) -> bool {
        self.entries
            .iter()
            .all(|(_, entry)| self.answered.contains(&entry.message))
    }

    pub(crate) fn matching(&self, key: &Key, now: i64) -> Vec<Found> {
        let mut found = Vec::new();
        for (seq, entry) in &self.entries {
            let indexed = self.indexed.get(&entry.message);
            let text = self.needs_text.then(|| match indexed {
                Some(indexed) => indexed.body.as_str(),
                None => self
                    .texts
                    .get(&entry.message)
                    .map(String::as_str)
                    .unwrap_or_default(),
            });
            let candidate = Candidate {
                seq: *seq,
                entry,
                meta: self.metas.get(&entry.message).map(Arc::as_ref),
                text,
                raw: self.raws.get(&entry.message).map(Vec::as_slice),
                indexed_headers: indexed.map(|i| i.headers.as_str()),
                index_answered: self.answered.contains(&entry.message),
            };
            if matches(key, &candidate, now) {
                found.push(Found {
                    seq: *seq,
                    uid: entry.uid,
                    modseq: entry.modseq,
                });
            }
        }
        found
    }
}

/// SEARCH over messages given as raw bytes, for the fuzz target: `criteria` is what
/// follows `SEARCH ` on the command line; message n has sequence number and UID n, no
/// flags, and its meta and text as analysed at delivery. The matching numbers, or `None`
/// when the command does not parse.
pub(crate) fn search_messages(criteria: &[u8], messages: &[&[u8]], now: i64) -> Option<Vec<u32>> {
    let line = [b"a SEARCH ".as_slice(), criteria, b"\r\n"].concat();
    let CommandBody::Search(command) = crate::proto::parse_command(&line).ok()?.body else {
        return None;
    };
    let count = u32::try_from(messages.len()).ok()?;
    let key = Key::compile(
        &command.key,
        &SetBounds {
            largest_uid: count,
            exists: count,
            saved: &[],
            recent: RangeSet::default(),
            freeze_seqs: None,
        },
    );
    let mut batch = Batch {
        entries: Vec::new(),
        metas: HashMap::new(),
        texts: HashMap::new(),
        raws: HashMap::new(),
        indexed: HashMap::new(),
        answered: HashSet::new(),
        needs_text: true,
    };
    for (n, raw) in (1..=count).zip(messages) {
        let analysis = storage::mime::analyse(raw);
        let entry = MessageEntry {
            uid: Uid(n),
            modseq: ModSeq(u64::from(n)),
            flags: storage::Flags::default(),
            internal_date: now,
            size: u32::try_from(raw.len()).unwrap_or(u32::MAX),
            message: MessageId(i64::from(n)),
            save_date: Some(now),
        };
        batch.metas.insert(entry.message, Arc::new(analysis.meta));
        batch.texts.insert(entry.message, analysis.body_text);
        batch.raws.insert(entry.message, raw.to_vec());
        batch.entries.push((n, entry));
    }
    Some(batch.matching(&key, now).iter().map(|f| f.seq).collect())
}
