//! Messages in mailboxes: COPY, MOVE, flag changes, EXPUNGE, and the mailbox reads a
//! session's view needs (entries, changes since a MODSEQ); delivery and APPEND are in
//! `delivery/`, what a message holds is read in `message_reads.rs`. Each write is one
//! writer job: all or nothing.

use crate::entries::{bump_modseq, copy_in_tx, expunge_in_tx, mailbox_account_in_tx};
use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::mime::{MessageMeta, analyse_off_workers, unfolded_fields};
use crate::notify::{Change, ChangeKind};
use crate::types::{FlagOperation, Flags, MailboxId, MessageId, ModSeq, Uid};
use crate::{IN_LIST_CHUNK, Store, placeholders};
use sqlx::AnyConnection;
use sqlx::{Connection, Row};

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

impl Store {
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
            return Err(StoreError::not_found("mailbox", mailbox));
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
