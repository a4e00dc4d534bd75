//! Messages in mailboxes: delivery, APPEND, COPY, MOVE, flag changes, EXPUNGE, and the
//! mailbox reads a session's view needs (entries, changes since a MODSEQ); what a
//! message holds is read in `message_reads.rs`. Each write is one writer job: all or
//! nothing.

use crate::cache::CachedMessage;
use crate::entries::{
    NewEntry, bump_modseq, copy_in_tx, expunge_in_tx, mailbox_account_in_tx, place, place_at,
};
use crate::error::{Result, StoreError};
use crate::fulltext::{self, IndexedText};
use crate::id_sequence::{IdSequence, next_id};
use crate::locks::Scope;
use crate::mime::{MessageMeta, analyse, top_header, unfolded_fields};
use crate::notify::{Change, ChangeKind};
use crate::queue::{Outbound, insert_queue_item};
use crate::types::{
    AccountId, FlagOperation, Flags, MailboxId, MessageId, ModSeq, QueueId, Uid, UidValidity,
};
use crate::writer::JobOutput;
use crate::{Backend, Store, unix_now};
use sqlx::AnyConnection;
use sqlx::{Connection, Row};
use std::sync::Arc;

/// Placeholders per `IN (...)` list; SQLite allows 32766 variables, we stay far below.
pub(crate) const IN_LIST_CHUNK: usize = 500;

/// A message to store: into mailboxes (local delivery, APPEND) and/or the outbound queue.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub raw: Vec<u8>,
    pub mailboxes: Vec<MailboxId>,
    pub flags: Flags,
    /// Seconds since the epoch; now when `None`.
    pub internal_date: Option<i64>,
    /// Envelope sender and remote recipients when the message also goes out.
    pub outbound: Option<Outbound>,
}

/// Where a delivered message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub message: MessageId,
    pub placed: Vec<(MailboxId, UidValidity, Uid)>,
    pub queued: Option<QueueId>,
}

/// One message in a mailbox, as a session's view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEntry {
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: Flags,
    pub internal_date: i64,
    pub size: u32,
    pub message: MessageId,
    /// RFC 8514 §3: when the message was saved into this mailbox (delivery, APPEND, the
    /// target of COPY or MOVE), seconds since the epoch; `None` for entries stored before
    /// save dates were kept (migration 0012).
    pub save_date: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFlagsOutcome {
    /// Messages whose flags changed, with their new modseq and flags.
    pub changed: Vec<(Uid, ModSeq, Flags)>,
    /// RFC 7162 §3.1.3: messages left alone because they changed after UNCHANGEDSINCE.
    pub modified: Vec<Uid>,
}

/// What changed in a mailbox after a modseq (RFC 7162 CHANGEDSINCE / QRESYNC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxChanges {
    pub changed: Vec<MessageEntry>,
    pub expunged: Vec<Uid>,
    /// The mailbox's HIGHESTMODSEQ in the same snapshot as the changes.
    pub highest_modseq: ModSeq,
}

/// `$first, $first+1, ...`: `count` numbered parameters (both backends take `$N`).
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A message up to this size is analysed on the async worker that has it: cheaper than
/// handing it to the blocking pool, and done in well under a millisecond.
const ANALYSE_INLINE_MAX: usize = 256 * 1024;

/// Analyses a message on the blocking pool, so that a large or hostile message never
/// holds an async worker (and with it other clients' sessions).
pub(crate) async fn analyse_off_workers(raw: Vec<u8>) -> Result<crate::mime::Analysis> {
    tokio::task::spawn_blocking(move || analyse(&raw))
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Meta rows per transaction when filling in `unfolded_headers`.
const BACKFILL_CHUNK: i64 = 500;

/// Fills in `MessageMeta::unfolded_headers` of messages stored before it existed, from
/// their stored header: once, when the store is opened, so that reads never parse.
pub(crate) async fn backfill_unfolded_headers(conn: &mut AnyConnection) -> Result<()> {
    let mut after = 0i64;
    loop {
        let mut tx = conn.begin().await?;
        // json_type fails the whole statement on a row SQLite cannot read as JSON (nested
        // deeper than its limit, or damaged): such rows are picked by json_valid first
        // (CASE evaluates lazily) and analysed again from their raw bytes below.
        let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, meta, header FROM messages
             WHERE id > $1
               AND CASE WHEN json_valid(meta) THEN json_type(meta, '$.unfolded_headers') IS NULL
                        ELSE 1 END
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(BACKFILL_CHUNK)
        .fetch_all(&mut *tx)
        .await?;
        let Some(&(last, _, _)) = rows.last() else {
            return Ok(());
        };
        for (id, json, header) in rows {
            let meta = match serde_json::from_str::<MessageMeta>(&json) {
                Ok(mut meta) => {
                    meta.unfolded_headers = unfolded_fields(&header);
                    meta
                }
                Err(error) => {
                    tracing::warn!(message_id = id, %error, "stored meta unreadable; analysing the message again");
                    let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM messages WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    analyse_off_workers(raw).await?.meta
                }
            };
            let json =
                serde_json::to_string(&meta).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query("UPDATE messages SET meta = $1 WHERE id = $2")
                .bind(json)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        after = last;
    }
}

/// A delivery with what IMAP needs computed (house rule 11), ready for the writer.
pub(crate) struct PreparedDelivery {
    delivery: Delivery,
    /// The UID to place the message at (an import keeping another server's UIDs, see
    /// `import.rs`); the next free one when `None`. Only with a single mailbox.
    pub(crate) uid: Option<Uid>,
    meta: String,
    /// The top-level header bytes, stored beside the raw message for header FETCHes.
    header: Arc<[u8]>,
    /// What the cache keeps of it once committed.
    cached: CachedMessage,
    body_text: String,
    /// What the full-text index keeps of it; `None` leaves it pending (`fulltext.rs`).
    fulltext: Option<IndexedText>,
    sent_date: Option<i64>,
}

impl PreparedDelivery {
    pub(crate) async fn new(delivery: Delivery) -> Result<Self> {
        if delivery.mailboxes.is_empty() && delivery.outbound.is_none() {
            return Err(StoreError::invalid(
                "delivery",
                "no mailbox and no recipient",
            ));
        }
        let mut delivery = delivery;
        delivery.raw = crlf_line_ends(std::mem::take(&mut delivery.raw));
        let analysis = if delivery.raw.len() > ANALYSE_INLINE_MAX {
            analyse_off_workers(delivery.raw.clone()).await?
        } else {
            analyse(&delivery.raw)
        };
        let meta = serde_json::to_string(&analysis.meta)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let header: Arc<[u8]> = Arc::from(top_header(&delivery.raw, &analysis.meta.root));
        // PostgreSQL's TEXT cannot hold NUL; SEARCH never matches one (RFC 9051 §6.4.4
        // searches strings, and a NUL is not a character of any).
        let body_text = if analysis.body_text.contains('\0') {
            analysis.body_text.replace('\0', "")
        } else {
            analysis.body_text
        };
        // Only what is placed in a mailbox is searched.
        let fulltext = (!delivery.mailboxes.is_empty())
            .then(|| IndexedText::of(&delivery.raw, &analysis.meta, &body_text))
            .flatten();
        Ok(PreparedDelivery {
            uid: None,
            sent_date: analysis.meta.sent_date,
            cached: CachedMessage {
                meta: Arc::new(analysis.meta),
                header: Arc::clone(&header),
            },
            header,
            body_text,
            fulltext,
            meta,
            delivery,
        })
    }
}

/// Stores one prepared message and places it, inside the writer's transaction.
async fn deliver_in_tx(
    conn: &mut AnyConnection,
    prepared: &PreparedDelivery,
) -> Result<(Delivered, Vec<Change>)> {
    let delivery = &prepared.delivery;
    let size = delivery.raw.len() as i64;
    let now = unix_now();
    let message = insert_message(conn, prepared, now).await?;
    if !delivery.mailboxes.is_empty() {
        fulltext::store_in_tx(conn, message, prepared.fulltext.as_ref()).await?;
    }
    let internal_date = delivery.internal_date.unwrap_or(now);
    let flags = delivery.flags.to_stored();
    let mut placed = Vec::with_capacity(delivery.mailboxes.len());
    let mut changes = Vec::with_capacity(delivery.mailboxes.len());
    for &mailbox in &delivery.mailboxes {
        let entry = NewEntry {
            mailbox,
            message,
            size,
            flags: &flags,
            internal_date,
            // RFC 8514 §3: "the current date and time at which the message is delivered
            // to a mailbox MUST be used to set the save date attribute" (APPEND too).
            save_date: now,
        };
        let (account, uid_validity, uid, modseq) = match prepared.uid {
            Some(uid) => place_at(conn, &entry, uid).await?,
            None => place(conn, &entry).await?,
        };
        placed.push((mailbox, uid_validity, uid));
        changes.push(Change {
            account,
            mailbox,
            kind: ChangeKind::Appended { uid, modseq },
        });
    }
    let queued = match &delivery.outbound {
        Some(outbound) => Some(insert_queue_item(conn, message, outbound, now).await?),
        None => None,
    };
    let delivered = Delivered {
        message,
        placed,
        queued,
    };
    Ok((delivered, changes))
}

impl PreparedDelivery {
    /// True when [`deliver_in_one_statement`] can store it: the next UIDs of its
    /// mailboxes, nothing to queue.
    fn fits_one_statement(&self) -> bool {
        self.uid.is_none()
            && self.delivery.outbound.is_none()
            && !self.delivery.mailboxes.is_empty()
    }
}

/// PostgreSQL: one delivery in one round trip, which leaves nothing behind when it is
/// refused (`letterbox_deliver`, migration postgres 0010): what `deliver_in_tx` does
/// for a message to the next UIDs of its mailboxes and no queue.
async fn deliver_in_one_statement(
    conn: &mut AnyConnection,
    prepared: &PreparedDelivery,
) -> Result<(Delivered, Vec<Change>)> {
    let delivery = &prepared.delivery;
    let now = unix_now();
    // Ids of ours, for the function's comma-separated list (the Any driver binds no arrays).
    let mailboxes = delivery
        .mailboxes
        .iter()
        .map(|m| m.0.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let rows = sqlx::query(
        "SELECT * FROM letterbox_deliver($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&delivery.raw)
    .bind(&prepared.header[..])
    .bind(&prepared.meta)
    .bind(&prepared.body_text)
    .bind(prepared.sent_date)
    .bind(now)
    .bind(mailboxes)
    .bind(delivery.flags.to_stored())
    .bind(delivery.internal_date.unwrap_or(now))
    // The full-text index row (migration postgres 0012), or pending when NULL.
    .bind(prepared.fulltext.as_ref().map(|t| t.body.as_str()))
    .bind(prepared.fulltext.as_ref().map(|t| t.headers.as_str()))
    .fetch_all(&mut *conn)
    .await?;
    let mut message = None;
    let mut placed = Vec::with_capacity(rows.len());
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let outcome: String = row.try_get(0)?;
        let mailbox = MailboxId(row.try_get(2)?);
        match outcome.as_str() {
            "ok" => {}
            "no mailbox" => {
                return Err(StoreError::NotFound {
                    what: "mailbox",
                    key: mailbox.to_string(),
                });
            }
            "over quota" => return Err(StoreError::OverQuota),
            // RFC 9051 §2.3.1.1: a mailbox that runs out must get a new UIDVALIDITY.
            "uid space exhausted" => {
                return Err(StoreError::invalid("mailbox", "UID space exhausted"));
            }
            other => return Err(StoreError::Corrupt(format!("letterbox_deliver: {other}"))),
        }
        message = Some(MessageId(row.try_get(1)?));
        let account = AccountId(row.try_get(3)?);
        let uid = Uid(row.try_get::<i64, _>(5)? as u32);
        let modseq = ModSeq(row.try_get::<i64, _>(6)? as u64);
        placed.push((mailbox, UidValidity(row.try_get::<i64, _>(4)? as u32), uid));
        changes.push(Change {
            account,
            mailbox,
            kind: ChangeKind::Appended { uid, modseq },
        });
    }
    let message =
        message.ok_or_else(|| StoreError::Corrupt("letterbox_deliver placed nothing".into()))?;
    let delivered = Delivered {
        message,
        placed,
        queued: None,
    };
    Ok((delivered, changes))
}

/// Stores the message's bytes and what was computed of them; returns its new id, one
/// never used before (see `id_sequence.rs` and `cache.rs`).
async fn insert_message(
    conn: &mut AnyConnection,
    prepared: &PreparedDelivery,
    now: i64,
) -> Result<MessageId> {
    let delivery = &prepared.delivery;
    let columns = "raw, header, size, meta, body_text, sent_date, created_at";
    let values = "$1, $2, $3, $4, $5, $6, $7";
    let (sql, id) = match Backend::of_connection(conn) {
        // One round trip: the id from the column's sequence (migration postgres 0010).
        Backend::Postgres => (
            format!("INSERT INTO messages ({columns}) VALUES ({values}) RETURNING id"),
            None,
        ),
        // The id is bound, not written into the statement: one statement that the
        // connection keeps prepared, instead of a new one to prepare at every delivery.
        Backend::Sqlite => (
            format!("INSERT INTO messages (id, {columns}) VALUES ($8, {values}) RETURNING id"),
            Some(next_id(conn, IdSequence::Messages).await?),
        ),
    };
    let query = sqlx::query_scalar(&sql)
        .bind(&delivery.raw)
        .bind(&prepared.header[..])
        .bind(delivery.raw.len() as i64)
        .bind(&prepared.meta)
        .bind(&prepared.body_text)
        .bind(prepared.sent_date)
        .bind(now);
    // PostgreSQL's statement has no `$8`.
    let query = match id {
        Some(id) => query.bind(id),
        None => query,
    };
    let id: i64 = query.fetch_one(&mut *conn).await?;
    Ok(MessageId(id))
}

impl Store {
    /// Stores a message once and places it in every given mailbox and/or the outbound
    /// queue, atomically. Returns after the commit is durable (fsynced).
    pub async fn deliver(&self, delivery: Delivery) -> Result<Delivered> {
        let started = std::time::Instant::now();
        let prepared = PreparedDelivery::new(delivery).await?;
        let delivered = self
            .deliver_prepared(vec![prepared])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a delivery placed nothing".into()))?;
        metrics::histogram!(crate::DELIVER_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(crate::MESSAGES_DELIVERED).increment(delivered.placed.len() as u64);
        Ok(delivered)
    }

    /// Several deliveries in one transaction: all are stored or none (RFC 3502
    /// MULTIAPPEND). Returns after the commit is durable.
    pub async fn deliver_all(&self, deliveries: Vec<Delivery>) -> Result<Vec<Delivered>> {
        let started = std::time::Instant::now();
        let mut prepared = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            prepared.push(PreparedDelivery::new(delivery).await?);
        }
        let delivered = self.deliver_prepared(prepared).await?;
        metrics::histogram!(crate::DELIVER_SECONDS).record(started.elapsed().as_secs_f64());
        let placed: usize = delivered.iter().map(|d| d.placed.len()).sum();
        metrics::counter!(crate::MESSAGES_DELIVERED).increment(placed as u64);
        Ok(delivered)
    }

    /// Stores prepared deliveries in one transaction (all or none), then caches them.
    pub(crate) async fn deliver_prepared(
        &self,
        prepared: Vec<PreparedDelivery>,
    ) -> Result<Vec<Delivered>> {
        let prepared = Arc::new(prepared);
        let in_writer = Arc::clone(&prepared);
        // A delivery to several accounts locks them all (in order) before writing.
        let scope = Scope::mailboxes(
            prepared
                .iter()
                .flat_map(|one| one.delivery.mailboxes.iter().copied()),
        );
        let delivered: Vec<Delivered> = if let [one] = prepared.as_slice()
            && self.backend == Backend::Postgres
            && one.fits_one_statement()
        {
            self.writer
                .run_self_undoing(scope, move |conn| {
                    Box::pin(async move {
                        let one = in_writer.first().ok_or(StoreError::WriterStopped)?;
                        let (delivered, changes) = deliver_in_one_statement(conn, one).await?;
                        Ok(JobOutput::new(vec![delivered], changes))
                    })
                })
                .await?
        } else {
            self.deliver_with_savepoint(scope, in_writer).await?
        };
        // Committed: the first FETCH of a new message needs no query.
        for (one, stored) in prepared.iter().zip(&delivered) {
            self.cache.insert(stored.message, one.cached.clone());
        }
        Ok(delivered)
    }

    /// The deliveries, one after the other in one writer job.
    async fn deliver_with_savepoint(
        &self,
        scope: Scope,
        in_writer: Arc<Vec<PreparedDelivery>>,
    ) -> Result<Vec<Delivered>> {
        self.writer
            .run(scope, move |conn| {
                Box::pin(async move {
                    let mut delivered = Vec::with_capacity(in_writer.len());
                    let mut changes = Vec::new();
                    for one in in_writer.iter() {
                        let (placed, more) = deliver_in_tx(conn, one).await?;
                        delivered.push(placed);
                        changes.extend(more);
                    }
                    Ok(JobOutput::new(delivered, changes))
                })
            })
            .await
    }

    /// RFC 9051 §6.4.7 COPY; returns (source UID, new UID) pairs for COPYUID.
    pub async fn copy_messages(
        &self,
        source: MailboxId,
        uids: Vec<Uid>,
        target: MailboxId,
    ) -> Result<Vec<(Uid, Uid)>> {
        self.copy_or_move(source, uids, target, false).await
    }

    /// RFC 6851 MOVE: copy and expunge in one transaction.
    pub async fn move_messages(
        &self,
        source: MailboxId,
        uids: Vec<Uid>,
        target: MailboxId,
    ) -> Result<Vec<(Uid, Uid)>> {
        self.copy_or_move(source, uids, target, true).await
    }

    async fn copy_or_move(
        &self,
        source: MailboxId,
        uids: Vec<Uid>,
        target: MailboxId,
        remove: bool,
    ) -> Result<Vec<(Uid, Uid)>> {
        self.writer
            .run(Scope::mailboxes([source, target]), move |conn| {
                Box::pin(async move {
                    let (mapping, changes) =
                        copy_in_tx(conn, source, &uids, target, remove).await?;
                    Ok(JobOutput::new(mapping, changes))
                })
            })
            .await
    }

    /// RFC 9051 §6.4.6 STORE, with RFC 7162 §3.1.3 UNCHANGEDSINCE.
    pub async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        operation: FlagOperation,
        flags: Flags,
        unchanged_since: Option<ModSeq>,
    ) -> Result<StoreFlagsOutcome> {
        self.writer
            .run(Scope::mailboxes([mailbox]), move |conn| {
                Box::pin(async move {
                    let account = mailbox_account_in_tx(conn, mailbox).await?;
                    let mut outcome = StoreFlagsOutcome::default();
                    let mut updates = Vec::new();
                    for chunk in uids.chunks(IN_LIST_CHUNK) {
                        let sql = format!(
                            "SELECT uid, flags, modseq FROM mailbox_messages WHERE mailbox_id = $1 AND uid IN ({}) ORDER BY uid",
                            placeholders(2, chunk.len())
                        );
                        let mut query = sqlx::query(&sql).bind(mailbox.0);
                        for uid in chunk {
                            query = query.bind(uid.0 as i64);
                        }
                        for row in query.fetch_all(&mut *conn).await? {
                            let uid = Uid(row.try_get::<i64, _>(0)? as u32);
                            let old = Flags::from_stored(&row.try_get::<String, _>(1)?);
                            let modseq = ModSeq(row.try_get::<i64, _>(2)? as u64);
                            if unchanged_since.is_some_and(|since| modseq > since) {
                                outcome.modified.push(uid);
                                continue;
                            }
                            let new = match operation {
                                FlagOperation::Replace => flags.clone(),
                                FlagOperation::Add => {
                                    let mut new = old.clone();
                                    flags.iter().for_each(|f| new.insert(f));
                                    new
                                }
                                FlagOperation::Remove => {
                                    let mut new = old.clone();
                                    flags.iter().for_each(|f| new.remove(f));
                                    new
                                }
                            };
                            if new != old {
                                updates.push((uid, new));
                            }
                        }
                    }
                    let mut changes = Vec::with_capacity(updates.len());
                    if !updates.is_empty() {
                        let modseq = bump_modseq(conn, mailbox).await?;
                        for (uid, new) in updates {
                            sqlx::query("UPDATE mailbox_messages SET flags = $1, modseq = $2 WHERE mailbox_id = $3 AND uid = $4")
                                .bind(new.to_stored())
                                .bind(modseq.0 as i64)
                                .bind(mailbox.0)
                                .bind(uid.0 as i64)
                                .execute(&mut *conn)
                                .await?;
                            changes.push(Change {
                                account,
                                mailbox,
                                kind: ChangeKind::FlagsChanged {
                                    uid,
                                    modseq,
                                    flags: new.clone(),
                                },
                            });
                            outcome.changed.push((uid, modseq, new));
                        }
                    }
                    Ok(JobOutput::new(outcome, changes))
                })
            })
            .await
    }

    /// Removes the given messages from a mailbox (RFC 9051 §6.4.3 EXPUNGE and UID
    /// EXPUNGE); returns the UIDs actually removed.
    pub async fn expunge(&self, mailbox: MailboxId, uids: Vec<Uid>) -> Result<Vec<Uid>> {
        self.writer
            .run(Scope::mailboxes([mailbox]), move |conn| {
                Box::pin(async move {
                    let (removed, changes) = expunge_in_tx(conn, mailbox, &uids).await?;
                    Ok(JobOutput::new(removed, changes))
                })
            })
            .await
    }

    /// Every message of a mailbox in UID order: what SELECT builds a session view from.
    pub async fn mailbox_entries(&self, mailbox: MailboxId) -> Result<Vec<MessageEntry>> {
        let rows = sqlx::query(&self.backend.sql(
            "SELECT mm.uid, mm.modseq, mm.flags, mm.internal_date, mm.message_id, m.size, mm.save_date
             FROM mailbox_messages mm JOIN messages m INDEXED BY messages_size ON m.id = mm.message_id
             WHERE mm.mailbox_id = $1 ORDER BY mm.uid",
        ))
        .bind(mailbox.0)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The stored message a UID names in a mailbox, if it is still there: what an IMAP URL
    /// (RFC 5092) resolves to without reading the whole mailbox.
    pub async fn message_by_uid(&self, mailbox: MailboxId, uid: Uid) -> Result<Option<MessageId>> {
        let id: Option<i64> = sqlx::query_scalar(
            &self
                .backend
                .sql("SELECT message_id FROM mailbox_messages WHERE mailbox_id = $1 AND uid = $2"),
        )
        .bind(mailbox.0)
        .bind(i64::from(uid.0))
        .fetch_optional(&self.reader)
        .await?;
        Ok(id.map(MessageId))
    }

    /// RFC 7162: messages changed and UIDs expunged after `since`, with the mailbox's
    /// HIGHESTMODSEQ, all read in one snapshot.
    pub async fn changes_since(&self, mailbox: MailboxId, since: ModSeq) -> Result<MailboxChanges> {
        // One statement: SQLite reads it in one snapshot, so nothing committed meanwhile
        // can be half seen, and a session catching up costs one round trip to a reader.
        // `kind` 0: a changed entry, 1: an expunged UID, 2: the mailbox's HIGHESTMODSEQ.
        let rows = sqlx::query(&self.backend.sql(
            "SELECT 0 AS kind, mm.uid, mm.modseq, mm.flags, mm.internal_date, mm.message_id, m.size, mm.save_date
             FROM mailbox_messages mm JOIN messages m INDEXED BY messages_size ON m.id = mm.message_id
             WHERE mm.mailbox_id = $1 AND mm.modseq > $2
             UNION ALL
             SELECT 1, uid, modseq, '', 0, 0, 0, NULL FROM expunged WHERE mailbox_id = $1 AND modseq > $2
             UNION ALL
             SELECT 2, 0, highestmodseq, '', 0, 0, 0, NULL FROM mailboxes WHERE id = $1
             ORDER BY 1, 2",
        ))
        .bind(mailbox.0)
        .bind(since.0 as i64)
        .fetch_all(&self.reader)
        .await?;
        let mut changes = MailboxChanges {
            changed: Vec::new(),
            expunged: Vec::new(),
            highest_modseq: ModSeq(0),
        };
        let mut found = false;
        for row in &rows {
            let uid = Uid(row.try_get::<i64, _>(1)? as u32);
            let modseq = ModSeq(row.try_get::<i64, _>(2)? as u64);
            match row.try_get::<i64, _>(0)? {
                0 => changes.changed.push(MessageEntry {
                    uid,
                    modseq,
                    flags: Flags::from_stored(row.try_get(3)?),
                    internal_date: row.try_get(4)?,
                    message: MessageId(row.try_get(5)?),
                    size: row.try_get::<i64, _>(6)? as u32,
                    save_date: row.try_get(7)?,
                }),
                1 => changes.expunged.push(uid),
                _ => {
                    changes.highest_modseq = modseq;
                    found = true;
                }
            }
        }
        if !found {
            return Err(StoreError::NotFound {
                what: "mailbox",
                key: mailbox.to_string(),
            });
        }
        Ok(changes)
    }

    /// RFC 9051 §6.4.3 EXPUNGE / RFC 4315 UID EXPUNGE: removes the messages that carry
    /// `\Deleted` at the moment of the commit (among `within`, when given), so a flag
    /// removed by another session just before is respected.
    pub async fn expunge_deleted(
        &self,
        mailbox: MailboxId,
        within: Option<Vec<Uid>>,
    ) -> Result<Vec<Uid>> {
        self.writer
            .run(Scope::mailboxes([mailbox]), move |conn| {
                Box::pin(async move {
                    let rows: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT uid, flags FROM mailbox_messages WHERE mailbox_id = $1 ORDER BY uid",
                    )
                    .bind(mailbox.0)
                    .fetch_all(&mut *conn)
                    .await?;
                    let mut doomed: Vec<Uid> = rows
                        .into_iter()
                        .filter(|(_, flags)| Flags::from_stored(flags).contains("\\Deleted"))
                        .map(|(uid, _)| Uid(uid as u32))
                        .collect();
                    if let Some(within) = &within {
                        doomed.retain(|uid| within.binary_search(uid).is_ok());
                    }
                    let (removed, changes) = expunge_in_tx(conn, mailbox, &doomed).await?;
                    Ok(JobOutput::new(removed, changes))
                })
            })
            .await
    }
}

/// RFC 5322 §2.3: CR and LF occur only together. A bare LF and a bare CR are each stored
/// as CRLF, so that IMAP serves text with CRLF line ends (RFC 9051 §7.5.2: BINARY
/// sections MUST use CRLF) and sizes, offsets and line counts agree with what is sent.
/// The bare CR matters for SMTP smuggling: a `\r.\r` that DATA kept as content must not
/// reach a receiver that ends lines at CR when we relay it; as CRLF it is an ordinary
/// line that the relay dot-stuffs. Nothing else in the message changes; 8-bit octets
/// are kept.
pub fn crlf_line_ends(raw: Vec<u8>) -> Vec<u8> {
    let is_bare = |at: usize| match raw.get(at) {
        Some(b'\n') => at.checked_sub(1).and_then(|before| raw.get(before)) != Some(&b'\r'),
        Some(b'\r') => raw.get(at + 1) != Some(&b'\n'),
        _ => false,
    };
    // Only CRs and LFs are looked at, found by a SIMD search.
    let bare = memchr::memchr2_iter(b'\r', b'\n', &raw)
        .filter(|&at| is_bare(at))
        .count();
    if bare == 0 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + bare);
    let mut copied = 0;
    for at in memchr::memchr2_iter(b'\r', b'\n', &raw).filter(|&at| is_bare(at)) {
        out.extend_from_slice(raw.get(copied..at).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
        copied = at + 1;
    }
    out.extend_from_slice(raw.get(copied..).unwrap_or_default());
    out
}

fn entry_from_row(row: &sqlx::any::AnyRow) -> Result<MessageEntry> {
    Ok(MessageEntry {
        uid: Uid(row.try_get::<i64, _>(0)? as u32),
        modseq: ModSeq(row.try_get::<i64, _>(1)? as u64),
        flags: Flags::from_stored(&row.try_get::<String, _>(2)?),
        internal_date: row.try_get(3)?,
        message: MessageId(row.try_get(4)?),
        size: row.try_get::<i64, _>(5)? as u32,
        save_date: row.try_get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::crlf_line_ends;

    #[test]
    fn bare_cr_and_bare_lf_become_crlf() {
        for (raw, stored) in [
            (&b""[..], &b""[..]),
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\nb", b"a\r\nb"),
            (b"\n", b"\r\n"),
            (b"\r", b"\r\n"),
            // The smuggling shape: `\r.\r` becomes a line holding a dot.
            (b"a\r.\rMAIL", b"a\r\n.\r\nMAIL"),
            (b"a\r\r\nb", b"a\r\n\r\nb"),
            (b"a\n\rb", b"a\r\n\r\nb"),
            (b"\xff\r\xfe", b"\xff\r\n\xfe"),
        ] {
            assert_eq!(crlf_line_ends(raw.to_vec()), stored, "{raw:?}");
        }
    }
}
