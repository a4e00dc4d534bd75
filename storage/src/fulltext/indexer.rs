//! SQLite: the full-text index is written after delivery, by a background indexer.
//!
//! Why: SQLite has one write lock, and the index's FTS5 work (tokenizing every trigram of
//! a message and merging the index's segments) was three quarters of the instructions
//! of an SMTP delivery (`benches/smtp-callgrind.sh`, issue 17), all of it on the one
//! writer that every delivery waits for. A delivery now only lists its message in
//! `fulltext_pending` with `queued = 1` (migration sqlite 0017), which SEARCH already
//! treats as "not indexed: search it in full", so answers stay exact while a message
//! waits. Dovecot's FTS plugins work the same way: its indexer process indexes after
//! delivery, or when a search needs it.
//!
//! When: the indexer waits for a pause in deliveries ([`QUIET`]), so a burst is stored at
//! the writer's full speed and indexed once it is over, in chunks of [`CHUNK`] messages
//! (each one writer job; deliveries queue behind at most one chunk). It stops waiting
//! for a pause when [`MAX_DEFERRED`] messages wait: under load that never pauses,
//! indexing takes its share of the writer, and a search never scans more than about
//! that many messages besides the index.
//!
//! Crash: what was queued stays queued (it is a row of the database); the indexer of
//! the next `letterbox serve` indexes it. Only the server runs the indexer
//! ([`Store::start_fulltext_indexer`]); the admin CLI opening the same database does not.
//!
//! PostgreSQL writes the index row in the delivery's transaction, as before: its writers
//! run in parallel, and the GIN insertions are PostgreSQL's CPU, not the writer's.

use super::IndexedText;
use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::mime::analyse;
use crate::placeholders;
use crate::types::MessageId;
use crate::writer::{WeakWriter, Writer};
use crate::{Backend, Store};
use sqlx::AnyPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Deliveries closer together than this are a burst: the indexer waits until one is
/// this long without a delivery. Short enough that a message arriving alone is indexed
/// at once for any human's purposes.
const QUIET: Duration = Duration::from_millis(100);

/// Queued messages after which the indexer no longer waits for a pause. A SEARCH
/// BODY/TEXT reads the messages not yet indexed in full (about 0.1 ms each for a 5 KB
/// message), so this bounds what a search pays for a burst to about a second.
const MAX_DEFERRED: u64 = 10_000;

/// Messages indexed per writer job: each holds its raw bytes in memory until stored,
/// and deliveries wait behind one chunk at most (a few tens of ms at 5 KB).
const CHUNK: usize = 64;

/// The most raw bytes one chunk reads into memory (beyond its first message): a chunk
/// of messages near the size limit must not hold gigabytes.
const CHUNK_BYTES: i64 = 32 * 1024 * 1024;

/// After a failure (the database busy or broken), the indexer tries again this late.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// What deliveries and the indexer tell each other (SQLite).
#[derive(Debug)]
pub(crate) struct IndexerSignals {
    /// Messages queued for the indexer by this process's deliveries, committed (counts
    /// up only). Its sender lives as long as the store: the indexer ends with it.
    queued: watch::Sender<u64>,
    /// The value of `queued` up to which every queued message is indexed; `None` until
    /// the indexer has indexed what it found queued when it started.
    caught_up: Arc<watch::Sender<Option<u64>>>,
}

impl IndexerSignals {
    pub(crate) fn new() -> Arc<IndexerSignals> {
        Arc::new(IndexerSignals {
            queued: watch::Sender::new(0),
            caught_up: Arc::new(watch::Sender::new(None)),
        })
    }

    /// `messages` were queued by a delivery that committed.
    pub(crate) fn queued(&self, messages: u64) {
        if messages > 0 {
            self.queued.send_modify(|queued| *queued += messages);
        }
    }
}

impl Store {
    /// Starts the background indexer (SQLite; nothing on PostgreSQL, which indexes at
    /// delivery). The server calls it once; it ends when the last handle of the store
    /// is dropped.
    pub fn start_fulltext_indexer(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let indexer = Indexer {
            queued: self.indexer.queued.subscribe(),
            caught_up: Arc::clone(&self.indexer.caught_up),
            reader: self.reader.clone(),
            writer: self.writer.downgrade(),
        };
        tokio::spawn(indexer.run());
    }

    /// Indexes every message queued for the indexer now, without waiting for a pause;
    /// returns how many were looked at. For tests and for the admin CLI.
    pub async fn index_queued(&self) -> Result<u64> {
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        let mut indexed = 0;
        loop {
            let chunk = index_chunk(&self.reader, &self.writer).await?;
            if chunk == 0 {
                return Ok(indexed);
            }
            indexed += chunk;
        }
    }

    /// Waits until the running indexer ([`Store::start_fulltext_indexer`]) has indexed
    /// what was queued when it started and every message this process queued before
    /// the call. On PostgreSQL it returns at once.
    pub async fn fulltext_caught_up(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let target = *self.indexer.queued.borrow();
        let mut caught_up = self.indexer.caught_up.subscribe();
        // Err only when the sender is gone, and the store holds it.
        let _ = caught_up
            .wait_for(|through| through.is_some_and(|through| through >= target))
            .await;
    }
}

struct Indexer {
    queued: watch::Receiver<u64>,
    caught_up: Arc<watch::Sender<Option<u64>>>,
    reader: AnyPool,
    /// Weak: the writer ends when the store's last handle goes, indexer or not.
    writer: WeakWriter,
}

impl Indexer {
    async fn run(mut self) {
        // What a crash or an upgrade left queued is indexed first, without waiting.
        let mut deferred = 0;
        let mut seen = *self.queued.borrow_and_update();
        loop {
            // Every message counted up to `seen` is committed: when the chunk's query
            // finds nothing queued, they are all indexed.
            let through = seen;
            let Some(writer) = self.writer.upgrade() else {
                return;
            };
            let indexed = index_chunk(&self.reader, &writer).await;
            drop(writer);
            match indexed {
                Ok(0) => {
                    self.caught_up.send_replace(Some(through));
                    deferred = 0;
                    // Wait for a delivery, then for its burst to end.
                    if self.queued.changed().await.is_err() {
                        return;
                    }
                    if !self.wait_for_a_pause(&mut seen, &mut deferred).await {
                        return;
                    }
                }
                Ok(chunk) => {
                    deferred = deferred.saturating_sub(chunk);
                    // Deliveries came meanwhile: they go first, unless too many wait.
                    if self.queued.has_changed().unwrap_or(false)
                        && !self.wait_for_a_pause(&mut seen, &mut deferred).await
                    {
                        return;
                    }
                }
                Err(StoreError::WriterStopped) => return,
                Err(error) => {
                    tracing::error!(%error, "full-text indexer failed; trying again later");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_AFTER) => {}
                        changed = self.queued.changed() => if changed.is_err() {
                            return;
                        },
                    }
                }
            }
        }
    }

    /// Waits until no delivery came for [`QUIET`], or [`MAX_DEFERRED`] messages wait;
    /// false when the store is gone.
    async fn wait_for_a_pause(&mut self, seen: &mut u64, deferred: &mut u64) -> bool {
        loop {
            let now = *self.queued.borrow_and_update();
            *deferred += now.saturating_sub(*seen);
            *seen = now;
            if *deferred >= MAX_DEFERRED {
                return true;
            }
            match tokio::time::timeout(QUIET, self.queued.changed()).await {
                Err(_quiet) => return true,
                Ok(Ok(())) => continue,
                Ok(Err(_gone)) => return false,
            }
        }
    }
}

/// Indexes up to [`CHUNK`] queued messages in one writer job; returns how many it
/// looked at (0: none queued).
async fn index_chunk(reader: &AnyPool, writer: &Writer) -> Result<u64> {
    let queued: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT p.message_id, m.size FROM fulltext_pending p
         JOIN messages m ON m.id = p.message_id
         WHERE p.queued = 1 ORDER BY p.message_id LIMIT $1",
    )
    .bind(CHUNK as i64)
    .fetch_all(reader)
    .await?;
    let ids = fitting_chunk(queued, CHUNK_BYTES);
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "SELECT id, raw, body_text FROM messages WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in &ids {
        query = query.bind(*id);
    }
    let messages: Vec<(i64, Vec<u8>, String)> = query.fetch_all(reader).await?;
    // MIME analysis and folding: CPU work, off the async workers.
    let texts = tokio::task::spawn_blocking(move || {
        messages
            .into_iter()
            .map(|(id, raw, body_text)| (MessageId(id), text_of(&raw, &body_text)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let looked_at = ids.len() as u64;
    writer
        .run(Scope::nothing(), move |conn| {
            Box::pin(async move {
                for (id, text) in &texts {
                    let query = match text {
                        // Staged, into the index at COMMIT (`SQLITE_STAGING_TABLE`); only if
                        // still queued (a `reindex` may have indexed it meanwhile).
                        Some(text) => sqlx::query(
                            "INSERT OR REPLACE INTO temp.fulltext_staging (message_id, body, headers)
                                 SELECT message_id, $2, $3 FROM fulltext_pending
                                 WHERE message_id = $1 AND queued = 1;
                             DELETE FROM fulltext_pending WHERE message_id = $1 AND queued = 1",
                        )
                        .bind(id.0)
                        .bind(text.body.as_str())
                        .bind(text.headers.as_str()),
                        // Too large: stays pending, searched in full.
                        None => sqlx::query(
                            "UPDATE fulltext_pending SET queued = 0 WHERE message_id = $1",
                        )
                        .bind(id.0),
                    };
                    query.execute(&mut *conn).await?;
                }
                Ok(JobOutput::new((), Vec::new()))
            })
        })
        .await?;
    // A queued message that is gone has no pending row (ON DELETE CASCADE): nothing left.
    Ok(looked_at)
}

/// The ids of `queued` (id, size) to index in one chunk: the first, then as many as fit
/// in `max_bytes` together.
fn fitting_chunk(queued: Vec<(i64, i64)>, max_bytes: i64) -> Vec<i64> {
    let mut bytes = 0;
    queued
        .into_iter()
        .take_while(|&(_, size)| {
            let first = bytes == 0;
            bytes += size.max(1);
            first || bytes <= max_bytes
        })
        .map(|(id, _)| id)
        .collect()
}

/// What the index keeps of a stored message; `None` when it cannot be indexed (too
/// large, or our code panicked on it: one bad message affects only itself).
pub(super) fn text_of(raw: &[u8], body_text: &str) -> Option<IndexedText> {
    std::panic::catch_unwind(|| {
        let analysis = analyse(raw);
        IndexedText::of(raw, &analysis.meta, body_text)
    })
    .unwrap_or_else(|_| {
        tracing::warn!(
            size = raw.len(),
            "message cannot be indexed; searched in full"
        );
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_holds_at_least_one_message_and_otherwise_fits_its_bytes() {
        assert_eq!(fitting_chunk(vec![], 100), Vec::<i64>::new());
        assert_eq!(fitting_chunk(vec![(1, 500), (2, 10)], 100), vec![1]);
        assert_eq!(
            fitting_chunk(vec![(1, 40), (2, 60), (3, 1)], 100),
            vec![1, 2]
        );
        assert_eq!(
            fitting_chunk(vec![(1, 0), (2, 0), (3, 0)], 100),
            vec![1, 2, 3]
        );
    }
}
