//! The full-text index of SEARCH BODY and TEXT (RFC 9051 §6.4.4, issue 18).
//!
//! BODY and TEXT are "case-insensitive substring matches" (§6.4.4): a word index cannot
//! answer them, a trigram index can. Each message stored for a mailbox gets one row of
//! what SEARCH looks at (from the background indexer, soon after it is stored, on both
//! backends: `indexer.rs`), case-folded
//! ([`IndexedText`]): its decoded body text (every text part, attachments included;
//! binary parts have none) and its header lines (every header section, MIME parts'
//! included, unfolded, and the top-level header decoded). SQLite keeps it in an FTS5
//! table with the trigram tokenizer (migration sqlite 0015), PostgreSQL in a table with
//! `pg_trgm` GIN indexes (migration postgres 0012). The row goes with the message row.
//!
//! SEARCH asks the index which messages hold a needle ([`Store::fulltext_matches`]). For a
//! message with a row the answer is exact, not a guess to confirm: a trigram phrase
//! query (FTS5) or a `LIKE '%…%'` (PostgreSQL) is a substring match on the folded text,
//! the needle is folded by the same rule ([`fold`]), and that folded text is what the
//! IMAP matcher would otherwise load and search with the folded needle, so both compute
//! one predicate (`tests/imap_search_index.rs` checks the answers against a full scan
//! with the index emptied). A message without a row (waiting for the indexer, its text
//! over [`MAX_INDEXED_TEXT_BYTES`], or stored before the index) is listed in
//! `fulltext_pending`, is always a candidate and is searched in full; `letterbox reindex`
//! indexes such messages ([`Store::reindex`]).
//!
//! Invariant: every message row stored for a mailbox has exactly one of a
//! `message_fulltext` row and a `fulltext_pending` row.

mod indexer;

pub(crate) use indexer::IndexerSignals;

use crate::IN_LIST_CHUNK;
use crate::error::Result;
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::mime::{MessageMeta, header_sections, unfolded_fields};
use crate::types::{AccountId, MailboxId, MessageId};
use crate::{Backend, Store};
use sqlx::{AnyConnection, Row};
use std::collections::{HashMap, HashSet};

/// The most folded text (body and header lines together) one message may have in the
/// index. Both indexes hold about one entry per character, and a single text part of
/// several MB is rarely text anyone searches; a message over it is searched without the
/// index (listed in `fulltext_pending`), which gives the same answers, only slower.
pub const MAX_INDEXED_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// The shortest needle, in characters, the index finds candidates for: both indexes are
/// of trigrams (FTS5: "substrings of less than 3 unicode characters do not match any
/// rows"). A shorter one is searched without the index.
pub const MIN_INDEXED_NEEDLE_CHARS: usize = 3;

/// Messages reindexed per writer job: each holds its raw bytes in memory until stored.
const REINDEX_CHUNK: usize = 64;

/// Separates the units that SEARCH matches one by one (header lines) in
/// [`IndexedText::headers`]. A needle holding it is searched without the index
/// ([`needle_fits_index`]): for every other needle a match in the joined text is a match
/// in one unit, since a match cannot span the separator.
pub const UNIT_SEPARATOR: char = '\n';

/// What the index keeps of one message, case-folded ([`fold`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexedText {
    /// The decoded body text as SEARCH BODY matches it.
    pub body: String,
    /// Header lines, one per [`UNIT_SEPARATOR`]: `name: value` of every field of every
    /// header section, unfolded, then the decoded values of the top-level header.
    pub headers: String,
}

/// Which texts of a message a needle is looked for in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextScope {
    /// RFC 9051 §6.4.4 BODY: "in the body of the message".
    Body,
    /// RFC 9051 §6.4.4 TEXT: "in the header (including MIME header fields) or body".
    Text,
}

/// The case folding of SEARCH strings and texts: lower-casing by Unicode rules (what
/// the IMAP matcher does), so that a folded needle is a substring of the folded text
/// exactly when the matcher finds it.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// True when the index can answer for `needle` (as given by the client): it has at least
/// [`MIN_INDEXED_NEEDLE_CHARS`] characters once folded and no line break or NUL (see
/// [`UNIT_SEPARATOR`]; a NUL of a header line is stored as one).
pub fn needle_fits_index(needle: &str) -> bool {
    !needle.contains(['\0', '\r', '\n']) && fold(needle).chars().count() >= MIN_INDEXED_NEEDLE_CHARS
}

impl IndexedText {
    /// What the index keeps of a message, from its raw bytes, meta and decoded body text
    /// (as stored: without NULs); `None` when it is over [`MAX_INDEXED_TEXT_BYTES`].
    pub fn of(raw: &[u8], meta: &MessageMeta, body_text: &str) -> Option<IndexedText> {
        if body_text.len() > MAX_INDEXED_TEXT_BYTES {
            return None;
        }
        let mut headers = String::new();
        let mut push = |unit: &str| {
            if !headers.is_empty() {
                headers.push(UNIT_SEPARATOR);
            }
            // PostgreSQL's TEXT cannot hold a NUL; as a separator it splits the unit,
            // which changes no match of a needle without one.
            headers.push_str(&fold(unit).replace('\0', "\n"));
        };
        for section in header_sections(raw, &meta.root) {
            for (name, value) in unfolded_fields(section) {
                push(&format!("{name}: {value}"));
            }
        }
        for (_, value) in &meta.headers {
            push(value);
        }
        let body = fold(body_text);
        (body.len() + headers.len() <= MAX_INDEXED_TEXT_BYTES)
            .then_some(IndexedText { body, headers })
    }
}

/// SQLite: the index rows that the writer's jobs wrote wait in this table of the writer
/// connection (a TEMP table: never in the WAL, never fsynced) and go into the FTS5 table
/// once per batch, just before COMMIT ([`SQLITE_INDEX_STAGED_ROWS_AND_COMMIT`]). FTS5
/// writes the rows it holds in memory to a new segment of its index at every SAVEPOINT
/// and RELEASE (it must be able to roll back to it), and the writer runs every job in a
/// savepoint: with the rows written in the jobs, each delivery became a segment of its
/// own and FTS5 spent its time merging them (38% of the SMTP path's instructions;
/// flushing, merging and tokenizing together 80%). The staging table takes part in the transaction and its
/// savepoints like any other, so a job rolled back leaves no staged row.
pub(crate) const SQLITE_STAGING_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS fulltext_staging (
     message_id INTEGER PRIMARY KEY, body TEXT NOT NULL, headers TEXT NOT NULL)";

/// SQLite: the COMMIT of a writer batch, after its staged index rows go into the index.
/// A message deleted in the batch after its row was staged gets no index row (its id is
/// never used again: `id_sequence.rs`).
pub(crate) const SQLITE_INDEX_STAGED_ROWS_AND_COMMIT: &str =
    "INSERT INTO message_fulltext (rowid, body, headers)
         SELECT s.message_id, s.body, s.headers FROM temp.fulltext_staging s
         JOIN messages m ON m.id = s.message_id;
     DELETE FROM temp.fulltext_staging;
     COMMIT";

/// Lists a message for the background indexer (`fulltext/indexer.rs`); followed by
/// `VALUES (id, 1)`. (PostgreSQL's `letterbox_deliver` lists it by the column's default,
/// migration postgres 0015.)
pub(crate) const QUEUE_FOR_INDEXER: &str = "INSERT INTO fulltext_pending (message_id, queued)";

/// A new message waits for the background indexer, searched in full meanwhile.
pub(crate) async fn queue_in_tx(conn: &mut AnyConnection, message: MessageId) -> Result<()> {
    sqlx::query(&format!("{QUEUE_FOR_INDEXER} VALUES ($1, 1)"))
        .bind(message.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores what the index keeps of a message that has no row (or leaves it pending, not
/// queued, when `text` is `None`: too large), in the writer's transaction (on SQLite
/// staged until the batch commits: [`SQLITE_STAGING_TABLE`]).
async fn store_in_tx(
    conn: &mut AnyConnection,
    message: MessageId,
    text: Option<&IndexedText>,
) -> Result<()> {
    let Some(text) = text else {
        sqlx::query(&format!("{QUEUE_FOR_INDEXER} VALUES ($1, 0)"))
            .bind(message.0)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    };
    let sql = match Backend::of_connection(conn) {
        Backend::Sqlite => {
            "INSERT OR REPLACE INTO temp.fulltext_staging (message_id, body, headers) VALUES ($1, $2, $3)"
        }
        Backend::Postgres => {
            "INSERT INTO message_fulltext (message_id, body, headers) VALUES ($1, $2, $3)"
        }
    };
    sqlx::query(sql)
        .bind(message.0)
        .bind(&text.body)
        .bind(&text.headers)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Replaces the index row of a message that still exists (reindex); nothing when it is
/// gone.
async fn replace_in_tx(
    conn: &mut AnyConnection,
    message: MessageId,
    text: Option<&IndexedText>,
) -> Result<()> {
    let backend = Backend::of_connection(conn);
    let delete_row = match backend {
        Backend::Sqlite => {
            "DELETE FROM message_fulltext WHERE rowid = $1;
             DELETE FROM temp.fulltext_staging WHERE message_id = $1"
        }
        Backend::Postgres => "DELETE FROM message_fulltext WHERE message_id = $1",
    };
    // The pending row first: on PostgreSQL a node's indexer may hold it (claimed, `FOR
    // UPDATE`) and be about to write the index row; the DELETE waits for its commit, and
    // the next statement, with a snapshot of its own, then finds that row to delete.
    for sql in [
        "DELETE FROM fulltext_pending WHERE message_id = $1",
        delete_row,
    ] {
        sqlx::query(sql).bind(message.0).execute(&mut *conn).await?;
    }
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM messages WHERE id = $1")
        .bind(message.0)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        store_in_tx(conn, message, text).await?;
    }
    Ok(())
}

/// The FTS5 query for `needle` (folded): a phrase, which the trigram tokenizer matches
/// as a substring; `"` doubled inside it (FTS5 §3.1 strings).
fn fts5_query(needle: &str, scope: TextScope) -> String {
    let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
    match scope {
        TextScope::Body => format!("body : {phrase}"),
        TextScope::Text => phrase,
    }
}

/// The LIKE pattern that matches texts holding `needle` (folded): `\`, `%` and `_`
/// escaped with PostgreSQL's default escape character `\`.
fn like_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// What the index answers for one needle in one mailbox ([`Store::fulltext_matches`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FulltextMatches {
    /// Messages with an index row whose folded text holds the folded needle: exactly the
    /// indexed messages the IMAP matcher would find (see the module's documentation).
    pub found: HashSet<MessageId>,
    /// Messages of the mailbox without an index row (`fulltext_pending`): the index
    /// cannot tell, they are searched in full.
    pub unindexed: HashSet<MessageId>,
}

impl FulltextMatches {
    /// Every message that may hold the needle: those found and those not indexed.
    pub fn candidates(&self) -> HashSet<MessageId> {
        self.found.union(&self.unindexed).copied().collect()
    }
}

impl Store {
    /// The messages of `mailbox` that may hold `needle` (as the client gave it) in the
    /// texts of `scope` ([`FulltextMatches::candidates`]). `None` when the index cannot
    /// answer for this needle ([`needle_fits_index`]): every message is then a candidate.
    pub async fn fulltext_candidates(
        &self,
        mailbox: MailboxId,
        needle: &str,
        scope: TextScope,
    ) -> Result<Option<HashSet<MessageId>>> {
        Ok(self
            .fulltext_matches(mailbox, needle, scope)
            .await?
            .map(|matches| matches.candidates()))
    }

    /// Which messages of `mailbox` hold `needle` (as the client gave it) in the texts of
    /// `scope` by the index, and which the index cannot tell about. `None` when the index
    /// cannot answer for this needle ([`needle_fits_index`]).
    pub async fn fulltext_matches(
        &self,
        mailbox: MailboxId,
        needle: &str,
        scope: TextScope,
    ) -> Result<Option<FulltextMatches>> {
        if !needle_fits_index(needle) {
            return Ok(None);
        }
        let folded = fold(needle);
        // One index scan per text, their ids in a UNION (an OR of both would keep
        // PostgreSQL's planner from using either index).
        let (indexed, pattern) = match (self.backend, scope) {
            (Backend::Sqlite, _) => (
                "SELECT rowid FROM message_fulltext WHERE message_fulltext MATCH $2",
                fts5_query(&folded, scope),
            ),
            (Backend::Postgres, TextScope::Body) => (
                "SELECT message_id FROM message_fulltext WHERE body LIKE $2",
                like_pattern(&folded),
            ),
            (Backend::Postgres, TextScope::Text) => (
                "SELECT message_id FROM message_fulltext WHERE body LIKE $2
                 UNION SELECT message_id FROM message_fulltext WHERE headers LIKE $2",
                like_pattern(&folded),
            ),
        };
        // Each id with 1 when the index found it, 0 when it has no row (one round trip;
        // the invariant above makes the two parts disjoint).
        let sql = format!(
            "SELECT message_id, 1 FROM mailbox_messages WHERE mailbox_id = $1
             AND message_id IN ({indexed})
             UNION ALL
             SELECT mm.message_id, 0 FROM mailbox_messages mm
             JOIN fulltext_pending p ON p.message_id = mm.message_id
             WHERE mm.mailbox_id = $1"
        );
        let rows: Vec<(i64, i32)> = sqlx::query_as(&sql)
            .bind(mailbox.0)
            .bind(pattern)
            .fetch_all(&self.reader)
            .await?;
        let mut matches = FulltextMatches::default();
        for (id, found) in rows {
            let set = if found == 1 {
                &mut matches.found
            } else {
                &mut matches.unindexed
            };
            set.insert(MessageId(id));
        }
        Ok(Some(matches))
    }

    /// What the index keeps of each message; a message without an index row (pending, or
    /// gone) is left out.
    pub async fn indexed_texts(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, IndexedText>> {
        let id = match self.backend {
            Backend::Sqlite => "rowid",
            Backend::Postgres => "message_id",
        };
        let select = format!("SELECT {id}, body, headers FROM message_fulltext WHERE {id}");
        let mut found = HashMap::with_capacity(messages.len());
        for chunk in messages.chunks(IN_LIST_CHUNK) {
            for row in self.rows_of_messages(&select, chunk).await? {
                let text = IndexedText {
                    body: row.try_get(1)?,
                    headers: row.try_get(2)?,
                };
                found.insert(MessageId(row.try_get(0)?), text);
            }
        }
        Ok(found)
    }

    /// Rebuilds the full-text index of the messages in the mailboxes of `account` (every
    /// account when `None`) from their raw bytes; returns the messages indexed (those
    /// over [`MAX_INDEXED_TEXT_BYTES`] are left pending, and counted).
    pub async fn reindex(&self, account: Option<AccountId>) -> Result<u64> {
        let accounts: Vec<i64> = match account {
            Some(account) => vec![account.0],
            None => {
                sqlx::query_scalar("SELECT id FROM accounts ORDER BY id")
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        let mut indexed = 0;
        for account in accounts.into_iter().map(AccountId) {
            let mut messages: &[(i64, i64)] = &sqlx::query_as(
                "SELECT DISTINCT mm.message_id, msg.size FROM mailbox_messages mm
                 JOIN mailboxes m ON m.id = mm.mailbox_id
                 JOIN messages msg ON msg.id = mm.message_id
                 WHERE m.account_id = $1 ORDER BY mm.message_id",
            )
            .bind(account.0)
            .fetch_all(&self.reader)
            .await?;
            while !messages.is_empty() {
                let ids = next_reindex_chunk(&mut messages, indexer::CHUNK_BYTES);
                let ids: Vec<i64> = ids.into_iter().map(|id| id.0).collect();
                // Read and analysed as the indexer does it (off the async workers).
                let rows = indexer::analysed(&mut *self.reader.acquire().await?, &ids).await?;
                indexed += rows.len() as u64;
                // The account's lock on PostgreSQL: its expunges wait, so a message
                // found above is either still there or already gone.
                self.writer
                    .run(Scope::account(account), move |conn| {
                        Box::pin(async move {
                            for (id, text) in &rows {
                                replace_in_tx(conn, *id, text.as_ref()).await?;
                            }
                            Ok(JobOutput::new((), Vec::new()))
                        })
                    })
                    .await?;
            }
        }
        Ok(indexed)
    }
}

/// Takes the next chunk for `reindex` off the front of `messages` (id, size): as the
/// indexer's chunks, at most [`REINDEX_CHUNK`] messages: the first, then as many as fit
/// in `max_bytes` of raw messages together, so a mailbox of messages near the size limit
/// is not held in memory 64 at a time. Never empty while `messages` is not.
fn next_reindex_chunk(messages: &mut &[(i64, i64)], max_bytes: i64) -> Vec<MessageId> {
    let candidates = messages.get(..REINDEX_CHUNK).unwrap_or(messages);
    let chunk = indexer::fitting_chunk(candidates.to_vec(), max_bytes);
    *messages = messages.get(chunk.len()..).unwrap_or_default();
    chunk.into_iter().map(MessageId).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::analyse;

    #[test]
    fn reindex_chunks_are_bounded_by_count_and_by_bytes() {
        let ids = |chunk: Vec<MessageId>| chunk.into_iter().map(|id| id.0).collect::<Vec<_>>();
        // 70 small messages: 64, then 6.
        let small: Vec<(i64, i64)> = (1..=70).map(|id| (id, 10)).collect();
        let mut rest = small.as_slice();
        assert_eq!(
            ids(next_reindex_chunk(&mut rest, 1000)),
            (1..=64).collect::<Vec<_>>()
        );
        assert_eq!(
            ids(next_reindex_chunk(&mut rest, 1000)),
            (65..=70).collect::<Vec<_>>()
        );
        assert!(rest.is_empty());
        // Large ones: each chunk holds what fits in the bytes, one at least.
        let large = [(1, 600), (2, 300), (3, 200), (4, 2000), (5, 1)];
        let mut rest = large.as_slice();
        assert_eq!(ids(next_reindex_chunk(&mut rest, 1000)), vec![1, 2]);
        assert_eq!(ids(next_reindex_chunk(&mut rest, 1000)), vec![3]);
        assert_eq!(ids(next_reindex_chunk(&mut rest, 1000)), vec![4]);
        assert_eq!(ids(next_reindex_chunk(&mut rest, 1000)), vec![5]);
        assert!(rest.is_empty());
    }

    #[test]
    fn folding_twice_is_folding_once() {
        // The matcher folds the stored (folded) text again: it must find what it would
        // have found in the text as written.
        for text in ["Grüße ẞ Σ ΣΑΣ", "İstanbul \u{212A}elvin", "ǅ ǈ ﬃ", "ΌΣΟΣ σ"]
        {
            assert_eq!(fold(&fold(text)), fold(text), "{text}");
        }
    }

    #[test]
    fn header_lines_hold_every_section_and_the_decoded_top_level() {
        let raw = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-Long: first\r\n second\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Description: The Inner Words\r\n\r\nHello Body\r\n--b--\r\n";
        let analysis = analyse(raw);
        let text = IndexedText::of(raw, &analysis.meta, &analysis.body_text).expect("indexed");
        let lines: Vec<&str> = text.headers.split(UNIT_SEPARATOR).collect();
        assert!(lines.contains(&"x-long: first second"), "{lines:?}");
        assert!(lines.contains(&"content-description: the inner words"));
        assert!(lines.contains(&"grüße"));
        assert!(text.body.contains("hello body"));
        assert!(!text.body.contains("inner words"));
    }

    #[test]
    fn text_over_the_limit_is_not_indexed() {
        let body = "a".repeat(MAX_INDEXED_TEXT_BYTES + 1);
        let raw = format!("Subject: big\r\n\r\n{body}");
        let analysis = analyse(raw.as_bytes());
        assert_eq!(
            IndexedText::of(raw.as_bytes(), &analysis.meta, &analysis.body_text),
            None
        );
    }

    #[test]
    fn needles_the_index_answers() {
        assert!(needle_fits_index("abc"));
        assert!(needle_fits_index("grü"));
        assert!(!needle_fits_index("ab"));
        assert!(!needle_fits_index("a\r\nb"));
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(
            fts5_query("say \"hi\"", TextScope::Body),
            "body : \"say \"\"hi\"\"\""
        );
    }
}
