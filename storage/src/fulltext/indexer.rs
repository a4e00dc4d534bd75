//! The full-text index is written after delivery, by a background indexer (both backends).
//!
//! Why: the index's work (tokenizing every trigram of a message; SQLite: merging FTS5's
//! segments, PostgreSQL: inserting about 3,500 trigram keys per row into two GIN
//! indexes) was the largest part of what a delivery cost. SQLite: three quarters of the
//! instructions of an SMTP delivery (`benches/smtp-callgrind.sh`, issue 17), all of it on
//! the one writer that every delivery waits for. PostgreSQL: about three quarters of a
//! delivery's CPU was PostgreSQL's, the GIN insertions its largest part (issue 18). A
//! delivery now only lists its message in `fulltext_pending` with `queued = 1`
//! (migrations sqlite 0017, postgres 0015), which SEARCH already treats as "not indexed:
//! search it in full", so answers stay exact while a message waits. Dovecot's FTS
//! plugins work the same way: its indexer process indexes after delivery, or when a
//! search needs it.
//!
//! When: the indexer waits for a pause in this process's deliveries ([`QUIET`]), so a
//! burst is stored at full speed and indexed once it is over, in chunks of [`CHUNK`]
//! messages. It stops waiting for a pause when [`MAX_DEFERRED`] messages wait: under
//! load that never pauses, indexing takes its share, and a search never scans more
//! than about that many messages besides the index. The MIME analysis of a chunk runs
//! on the blocking pool.
//!
//! SQLite: a chunk is one writer job (deliveries queue behind at most one chunk).
//!
//! PostgreSQL: a chunk is a transaction of its own on a reader connection, beside the
//! writers, and several nodes share the database: the transaction claims its rows
//! (`FOR UPDATE ... SKIP LOCKED` on the pending rows, `FOR KEY SHARE` on their message
//! rows), reads and analyses them, inserts the index rows, deletes the pending rows and
//! commits. No two nodes index one message (the second skips what the first holds),
//! and a node that dies mid-chunk loses its connection, which releases the rows for any
//! other indexer. It takes no account lock: it writes only index rows of messages that
//! exist (their rows held `KEY SHARE`, so an expunge that drops one waits for the chunk
//! to commit, then drops the index row with the message row; one already being dropped
//! is skipped), and SEARCH joins the index with the mailbox's entries, so an expunged
//! message is never found by its index row. An indexer that finds nothing it can claim
//! while another node holds queued rows looks again after [`QUIET`]: "caught up" means
//! nothing is queued anywhere.
//!
//! Crash: what was queued stays queued (it is a row of the database); the indexer of
//! the next `letterbox serve` (or, on PostgreSQL, of any other node, after its next
//! delivery) indexes it. Only the server runs the indexer
//! ([`Store::start_fulltext_indexer`]); the admin CLI opening the same database does
//! not, and indexes what it stored itself ([`Store::index_queued`]).

use super::IndexedText;
use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::mime::analyse;
use crate::placeholders;
use crate::types::MessageId;
use crate::writer::{WeakWriter, Writer};
use crate::{Backend, Store};
use sqlx::{AnyConnection, AnyPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Deliveries closer together than this are a burst: the indexer waits until one is
/// this long without a delivery. Short enough that a message arriving alone is indexed
/// at once for any human's purposes. Also how long an indexer waits before looking
/// again at rows another node's indexer holds (PostgreSQL).
const QUIET: Duration = Duration::from_millis(100);

/// Queued messages after which the indexer no longer waits for a pause. A SEARCH
/// BODY/TEXT reads the messages not yet indexed in full (about 0.1 ms each for a 5 KB
/// message), so this bounds what a search pays for a burst to about a second.
const MAX_DEFERRED: u64 = 10_000;

/// Messages indexed per chunk: each holds its raw bytes in memory until stored, and
/// deliveries (SQLite) or an expunge of one of them (PostgreSQL) wait behind one chunk
/// at most (a few tens of ms at 5 KB).
const CHUNK: usize = 64;

/// The most raw bytes one chunk reads into memory (beyond its first message): a chunk
/// of messages near the size limit must not hold gigabytes.
pub(super) const CHUNK_BYTES: i64 = 32 * 1024 * 1024;

/// After a failure (the database busy or broken), the indexer tries again this late.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// PostgreSQL ends a chunk's transaction that waits this long on its node (the node froze
/// mid-chunk), so that its claimed rows go to another node's indexer and the expunges
/// waiting for them go on, as for the writers (`writer.rs`).
const POSTGRES_CHUNK_IDLE_TIMEOUT: &str = "60s";

/// The queued messages a chunk may take, with their sizes, in id order.
const QUEUED: &str = "SELECT p.message_id, m.size FROM fulltext_pending p
     JOIN messages m ON m.id = p.message_id
     WHERE p.queued = 1 ORDER BY p.message_id LIMIT $1";

/// What one chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// It looked at this many messages (more than 0).
    LookedAt(u64),
    /// Nothing is queued.
    NothingQueued,
    /// PostgreSQL: what is queued is held by another node's chunk (or by an expunge of
    /// its messages), which will index (or drop) it, or die and leave it to us.
    HeldElsewhere,
}

/// What deliveries and the indexer tell each other.
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
    /// Starts the background indexer. The server calls it once; it ends when the last
    /// handle of the store is dropped.
    pub fn start_fulltext_indexer(&self) {
        let indexer = Indexer {
            queued: self.indexer.queued.subscribe(),
            caught_up: Arc::clone(&self.indexer.caught_up),
            reader: self.reader.clone(),
            writer: self.writer.downgrade(),
            backend: self.backend,
        };
        tokio::spawn(indexer.run());
    }

    /// Indexes every message queued for the indexer now, without waiting for a pause;
    /// returns how many were looked at. On PostgreSQL it leaves what another node's
    /// indexer holds to that node. For tests and for the admin CLI.
    pub async fn index_queued(&self) -> Result<u64> {
        let mut indexed = 0;
        loop {
            match index_chunk(self.backend, &self.reader, &self.writer).await? {
                Chunk::LookedAt(chunk) => indexed += chunk,
                Chunk::NothingQueued | Chunk::HeldElsewhere => return Ok(indexed),
            }
        }
    }

    /// Waits until the running indexer ([`Store::start_fulltext_indexer`]) has indexed
    /// what was queued when it started and every message this process queued before
    /// the call (on PostgreSQL, whichever node's indexer indexed it).
    pub async fn fulltext_caught_up(&self) {
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
    backend: Backend,
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
            let indexed = index_chunk(self.backend, &self.reader, &writer).await;
            drop(writer);
            match indexed {
                Ok(Chunk::NothingQueued) => {
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
                Ok(Chunk::HeldElsewhere) => {
                    // Another node's chunk commits soon, or its node died and PostgreSQL
                    // releases its rows: look again then.
                    tokio::time::sleep(QUIET).await;
                }
                Ok(Chunk::LookedAt(chunk)) => {
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

/// Indexes up to [`CHUNK`] queued messages (see the module's comment for how each
/// backend writes them).
async fn index_chunk(backend: Backend, reader: &AnyPool, writer: &Writer) -> Result<Chunk> {
    match backend {
        Backend::Sqlite => sqlite_chunk(reader, writer).await,
        Backend::Postgres => postgres_chunk(reader).await,
    }
}

/// SQLite: the chunk's messages read by a reader, their rows written in one writer job
/// (one writer: nobody else indexes them meanwhile but a `reindex`).
async fn sqlite_chunk(reader: &AnyPool, writer: &Writer) -> Result<Chunk> {
    let queued: Vec<(i64, i64)> = sqlx::query_as(QUEUED)
        .bind(CHUNK as i64)
        .fetch_all(reader)
        .await?;
    let ids = fitting_chunk(queued, CHUNK_BYTES);
    if ids.is_empty() {
        return Ok(Chunk::NothingQueued);
    }
    let texts = analysed(&mut *reader.acquire().await?, &ids).await?;
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
                        None => not_indexable(*id),
                    };
                    query.execute(&mut *conn).await?;
                }
                Ok(JobOutput::new((), Vec::new()))
            })
        })
        .await?;
    // A queued message that is gone has no pending row (ON DELETE CASCADE): nothing left.
    Ok(Chunk::LookedAt(ids.len() as u64))
}

/// PostgreSQL: the chunk in one transaction of its own that claims its rows (see the
/// module's comment).
async fn postgres_chunk(reader: &AnyPool) -> Result<Chunk> {
    let mut tx = reader.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL idle_in_transaction_session_timeout = '{POSTGRES_CHUNK_IDLE_TIMEOUT}'"
    ))
    .execute(&mut *tx)
    .await?;
    // Skipped: pending rows another chunk (or a reindex) holds, and message rows an
    // expunge is deleting (FOR UPDATE); not those a delivery or COPY points at (KEY
    // SHARE) nor those the unreferenced-message trigger looks at (FOR NO KEY UPDATE).
    let queued: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "{QUEUED} FOR UPDATE OF p SKIP LOCKED FOR KEY SHARE OF m SKIP LOCKED"
    ))
    .bind(CHUNK as i64)
    .fetch_all(&mut *tx)
    .await?;
    // The claimed rows that do not fit stay queued, for the next chunk.
    let ids = fitting_chunk(queued, CHUNK_BYTES);
    if ids.is_empty() {
        let queued_elsewhere: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM fulltext_pending WHERE queued = 1 LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        tx.rollback().await?;
        return Ok(match queued_elsewhere {
            Some(_) => Chunk::HeldElsewhere,
            None => Chunk::NothingQueued,
        });
    }
    let texts = analysed(&mut tx, &ids).await?;
    for (id, text) in &texts {
        let query = match text {
            // The message row is held (KEY SHARE): the foreign key holds.
            Some(text) => sqlx::query(
                "WITH claimed AS (DELETE FROM fulltext_pending WHERE message_id = $1)
                 INSERT INTO message_fulltext (message_id, body, headers) VALUES ($1, $2, $3)",
            )
            .bind(id.0)
            .bind(text.body.as_str())
            .bind(text.headers.as_str()),
            None => not_indexable(*id),
        };
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Chunk::LookedAt(ids.len() as u64))
}

/// The statement that leaves a message too large to index pending, no longer queued:
/// searched in full.
fn not_indexable<'q>(
    id: MessageId,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query("UPDATE fulltext_pending SET queued = 0 WHERE message_id = $1").bind(id.0)
}

/// What the index keeps of each of the messages `ids` (read on `conn`), analysed off the
/// async workers; a message gone meanwhile is left out.
pub(super) async fn analysed(
    conn: &mut AnyConnection,
    ids: &[i64],
) -> Result<Vec<(MessageId, Option<IndexedText>)>> {
    let sql = format!(
        "SELECT id, raw, body_text FROM messages WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    let messages: Vec<(i64, Vec<u8>, String)> = query.fetch_all(&mut *conn).await?;
    // MIME analysis and folding: CPU work, off the async workers.
    tokio::task::spawn_blocking(move || {
        messages
            .into_iter()
            .map(|(id, raw, mut body_text)| {
                // Deliveries store it without NULs (`delivery/prepared.rs`); a row from
                // before they did would not fit PostgreSQL's TEXT (`reindex` copies it).
                if body_text.contains('\0') {
                    body_text = body_text.replace('\0', "");
                }
                (MessageId(id), text_of(&raw, &body_text))
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The ids of `queued` (id, size) to index in one chunk: the first, then as many as fit
/// in `max_bytes` together.
pub(super) fn fitting_chunk(queued: Vec<(i64, i64)>, max_bytes: i64) -> Vec<i64> {
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
fn text_of(raw: &[u8], body_text: &str) -> Option<IndexedText> {
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
