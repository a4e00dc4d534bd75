//! Mailbox entries inside a writer transaction: the steps that delivery, COPY, MOVE,
//! EXPUNGE, STORE and RENAME of INBOX share (taking UIDs and modseqs, charging the quota,
//! inserting and removing entries). Each takes the writer's connection; the `Store`
//! methods that run them as writer jobs are in `messages.rs`, `delivery` and
//! `mailboxes.rs`.

use crate::error::{Result, StoreError};
use crate::notify::{Change, ChangeKind};
use crate::types::{AccountId, MailboxId, MessageId, ModSeq, Uid, UidValidity};
use crate::{Backend, unix_now};
use crate::{IN_LIST_CHUNK, placeholders};
use sqlx::AnyConnection;
use sqlx::Row;

/// Places a message in a mailbox: every insertion sets the save date (RFC 8514 §3).
const INSERT_ENTRY: &str = "INSERT INTO mailbox_messages
     (mailbox_id, uid, message_id, modseq, flags, internal_date, save_date)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Takes `count` UIDs and one new modseq in `mailbox`.
async fn allocate(
    conn: &mut AnyConnection,
    mailbox: MailboxId,
    count: u32,
) -> Result<(AccountId, UidValidity, Uid, ModSeq)> {
    let row = sqlx::query(
        "UPDATE mailboxes SET uidnext = uidnext + $1, highestmodseq = highestmodseq + 1 WHERE id = $2
         RETURNING account_id, uidvalidity, uidnext - $1 AS first_uid, highestmodseq",
    )
    .bind(count as i64)
    .bind(mailbox.0)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found("mailbox", mailbox))?;
    let first_uid: i64 = row.try_get("first_uid")?;
    // RFC 9051 §2.3.1.1: UIDs are 32-bit; a mailbox that runs out must get a new UIDVALIDITY.
    if first_uid + count as i64 > u32::MAX as i64 {
        return Err(StoreError::invalid("mailbox", "UID space exhausted"));
    }
    Ok((
        AccountId(row.try_get("account_id")?),
        UidValidity(row.try_get::<i64, _>("uidvalidity")? as u32),
        Uid(first_uid as u32),
        ModSeq(row.try_get::<i64, _>("highestmodseq")? as u64),
    ))
}

/// Takes the given `uid` and one new modseq in `mailbox`: UIDNEXT moves past it. The UID
/// must be at or above UIDNEXT, so it was never used in this UIDVALIDITY and stays above
/// every UID in the mailbox (RFC 9051 §2.3.1.1: strictly ascending, never reused).
async fn allocate_at(
    conn: &mut AnyConnection,
    mailbox: MailboxId,
    uid: Uid,
) -> Result<(AccountId, UidValidity, Uid, ModSeq)> {
    // RFC 9051 §2.3.1.1: UIDs are 32-bit, and UIDNEXT must stay representable.
    if uid.0 == 0 || uid.0 == u32::MAX {
        return Err(StoreError::invalid(
            "uid",
            format!("{uid} is not a usable UID"),
        ));
    }
    let row = sqlx::query(
        "UPDATE mailboxes SET uidnext = $1 + 1, highestmodseq = highestmodseq + 1
         WHERE id = $2 AND uidnext <= $1
         RETURNING account_id, uidvalidity, highestmodseq",
    )
    .bind(i64::from(uid.0))
    .bind(mailbox.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        // Either the mailbox is gone or the UID is below UIDNEXT: say which.
        let next: i64 = sqlx::query_scalar("SELECT uidnext FROM mailboxes WHERE id = $1")
            .bind(mailbox.0)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::not_found("mailbox", mailbox))?;
        let next = Uid(next as u32);
        return Err(StoreError::invalid(
            "uid",
            format!("{uid} is below the mailbox's UIDNEXT {next}"),
        ));
    };
    Ok((
        AccountId(row.try_get("account_id")?),
        UidValidity(row.try_get::<i64, _>("uidvalidity")? as u32),
        uid,
        ModSeq(row.try_get::<i64, _>("highestmodseq")? as u64),
    ))
}

pub(crate) async fn bump_modseq(conn: &mut AnyConnection, mailbox: MailboxId) -> Result<ModSeq> {
    let modseq: i64 = sqlx::query_scalar(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq",
    )
    .bind(mailbox.0)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found("mailbox", mailbox))?;
    Ok(ModSeq(modseq as u64))
}

/// Adds `bytes` to an account's usage, refusing when it would pass the quota: one
/// statement, so one round trip to PostgreSQL per delivery. The account exists (its
/// mailbox points at it), so no row updated means over quota.
async fn charge_quota(conn: &mut AnyConnection, account: AccountId, bytes: i64) -> Result<()> {
    sqlx::query_scalar::<_, i64>(
        "UPDATE accounts SET used_bytes = used_bytes + $1
         WHERE id = $2 AND (quota_bytes IS NULL OR used_bytes + $1 <= quota_bytes)
         RETURNING id",
    )
    .bind(bytes)
    .bind(account.0)
    .fetch_optional(&mut *conn)
    .await?
    .map(drop)
    .ok_or(StoreError::OverQuota)
}

/// The account a mailbox belongs to, inside a writer job.
pub(crate) async fn mailbox_account_in_tx(
    conn: &mut AnyConnection,
    mailbox: MailboxId,
) -> Result<AccountId> {
    let row = sqlx::query("SELECT account_id FROM mailboxes WHERE id = $1")
        .bind(mailbox.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::not_found("mailbox", mailbox))?;
    Ok(AccountId(row.try_get(0)?))
}

struct SourceEntry {
    uid: Uid,
    message: MessageId,
    flags: String,
    internal_date: i64,
    size: i64,
}

async fn source_entries(
    conn: &mut AnyConnection,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<SourceEntry>> {
    let mut entries = Vec::with_capacity(uids.len());
    for chunk in uids.chunks(IN_LIST_CHUNK) {
        let sql = format!(
            "SELECT mm.uid, mm.message_id, mm.flags, mm.internal_date, m.size FROM mailbox_messages mm
             JOIN messages m{} ON m.id = mm.message_id
             WHERE mm.mailbox_id = $1 AND mm.uid IN ({}) ORDER BY mm.uid",
            Backend::of_connection(conn).sql(" INDEXED BY messages_size"),
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(mailbox.0);
        for uid in chunk {
            query = query.bind(uid.0 as i64);
        }
        for row in query.fetch_all(&mut *conn).await? {
            entries.push(SourceEntry {
                uid: Uid(row.try_get::<i64, _>(0)? as u32),
                message: MessageId(row.try_get(1)?),
                flags: row.try_get(2)?,
                internal_date: row.try_get(3)?,
                size: row.try_get(4)?,
            });
        }
    }
    entries.sort_by_key(|e| e.uid);
    Ok(entries)
}

/// Removes `uids` from `mailbox`, recording them for VANISHED; returns what went.
pub(crate) async fn expunge_in_tx(
    conn: &mut AnyConnection,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<(Vec<Uid>, Vec<Change>)> {
    let entries = source_entries(conn, mailbox, uids).await?;
    if entries.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let account = mailbox_account_in_tx(conn, mailbox).await?;
    let modseq = bump_modseq(conn, mailbox).await?;
    let mut freed = 0;
    let mut changes = Vec::with_capacity(entries.len());
    for entry in &entries {
        freed += entry.size;
        changes.push(Change {
            account,
            mailbox,
            kind: ChangeKind::Expunged {
                uid: entry.uid,
                modseq,
            },
        });
    }
    // In message order: the trigger that drops a message with its last entry locks the
    // message's row (migration postgres 0010), and another account's expunge of the same
    // messages locks them in the same order, so the two cannot deadlock.
    let mut by_message: Vec<&SourceEntry> = entries.iter().collect();
    by_message.sort_by_key(|entry| entry.message);
    for entry in by_message {
        sqlx::query("DELETE FROM mailbox_messages WHERE mailbox_id = $1 AND uid = $2")
            .bind(mailbox.0)
            .bind(entry.uid.0 as i64)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES ($1, $2, $3)
                     ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq",
        )
        .bind(mailbox.0)
        .bind(entry.uid.0 as i64)
        .bind(modseq.0 as i64)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE accounts SET used_bytes = CASE WHEN used_bytes > $1 THEN used_bytes - $1 ELSE 0 END WHERE id = $2")
        .bind(freed)
        .bind(account.0)
        .execute(&mut *conn)
        .await?;
    Ok((entries.iter().map(|e| e.uid).collect(), changes))
}

/// Copies (or moves) `uids` of `source` into `target`; the message bytes are shared.
pub(crate) async fn copy_in_tx(
    conn: &mut AnyConnection,
    source: MailboxId,
    uids: &[Uid],
    target: MailboxId,
    remove_from_source: bool,
) -> Result<(Vec<(Uid, Uid)>, Vec<Change>)> {
    let entries = source_entries(conn, source, uids).await?;
    if entries.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (account, _, first_uid, modseq) = allocate(conn, target, entries.len() as u32).await?;
    let now = unix_now();
    let total: i64 = entries.iter().map(|e| e.size).sum();
    charge_quota(conn, account, total).await?;
    let mut mapping = Vec::with_capacity(entries.len());
    let mut changes = Vec::with_capacity(entries.len() * 2);
    for (offset, entry) in entries.iter().enumerate() {
        let uid = Uid(first_uid.0 + offset as u32);
        // RFC 8514 §3: the copy's save date is now; its internal date is the original's.
        sqlx::query(INSERT_ENTRY)
            .bind(target.0)
            .bind(uid.0 as i64)
            .bind(entry.message.0)
            .bind(modseq.0 as i64)
            .bind(&entry.flags)
            .bind(entry.internal_date)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        mapping.push((entry.uid, uid));
        changes.push(Change {
            account,
            mailbox: target,
            kind: ChangeKind::Appended { uid, modseq },
        });
    }
    if remove_from_source {
        let moved: Vec<Uid> = entries.iter().map(|e| e.uid).collect();
        let (_, expunge_changes) = expunge_in_tx(conn, source, &moved).await?;
        changes.extend(expunge_changes);
    }
    Ok((mapping, changes))
}

/// A mailbox entry to make for a stored message.
pub(crate) struct NewEntry<'a> {
    pub(crate) mailbox: MailboxId,
    pub(crate) message: MessageId,
    pub(crate) size: i64,
    pub(crate) flags: &'a str,
    pub(crate) internal_date: i64,
    pub(crate) save_date: i64,
}

/// Places a stored message in a mailbox at the next UID: takes the UID and a new modseq,
/// charges the account's quota and inserts the entry.
pub(crate) async fn place(
    conn: &mut AnyConnection,
    entry: &NewEntry<'_>,
) -> Result<(AccountId, UidValidity, Uid, ModSeq)> {
    let allocated = allocate(conn, entry.mailbox, 1).await?;
    insert_entry(conn, entry, allocated).await?;
    Ok(allocated)
}

/// Places a stored message in a mailbox at the given UID (an import; see `allocate_at`).
pub(crate) async fn place_at(
    conn: &mut AnyConnection,
    entry: &NewEntry<'_>,
    uid: Uid,
) -> Result<(AccountId, UidValidity, Uid, ModSeq)> {
    let allocated = allocate_at(conn, entry.mailbox, uid).await?;
    insert_entry(conn, entry, allocated).await?;
    Ok(allocated)
}

/// Charges the quota and inserts the entry at the UID and modseq `allocated` took.
async fn insert_entry(
    conn: &mut AnyConnection,
    entry: &NewEntry<'_>,
    (account, _, uid, modseq): (AccountId, UidValidity, Uid, ModSeq),
) -> Result<()> {
    charge_quota(conn, account, entry.size).await?;
    sqlx::query(INSERT_ENTRY)
        .bind(entry.mailbox.0)
        .bind(uid.0 as i64)
        .bind(entry.message.0)
        .bind(modseq.0 as i64)
        .bind(entry.flags)
        .bind(entry.internal_date)
        .bind(entry.save_date)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
