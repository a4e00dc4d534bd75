//! Mailboxes: hierarchy (delimiter `/`), UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
//! subscriptions and special-use roles.

use crate::error::{Result, StoreError};
use crate::id_sequence::{IdSequence, next_id};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::notify::{Change, ChangeKind};
use crate::recent::Claimed;
use crate::types::{
    AccountId, MAILBOX_DELIMITER, MailboxId, MailboxName, ModSeq, SpecialUse, Uid, UidValidity,
};
use crate::{Backend, Store, unix_now};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account: AccountId,
    pub name: MailboxName,
    pub uid_validity: UidValidity,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    pub special_use: Option<SpecialUse>,
    /// RFC 3501 §2.3.2: the first UID no session has been told of as `\Recent` yet;
    /// messages from here on are recent to the next read-write session that sees them.
    pub first_recent_uid: Uid,
}

/// RFC 9051 §6.3.11 STATUS items (and RFC 8438 SIZE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    /// Messages no session has been told of as `\Recent` yet (RFC 3501 §6.3.10 RECENT).
    pub recent: u32,
    pub unseen: u32,
    pub deleted: u32,
    pub size: u64,
    /// Octets of the messages flagged \Deleted (RFC 9208 §4.2 DELETED-STORAGE).
    pub deleted_size: u64,
    pub uid_next: Uid,
    pub uid_validity: UidValidity,
    pub highest_modseq: ModSeq,
}

const MAILBOX_COLUMNS: &str =
    "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use, first_recent_uid";

fn mailbox_from_row(row: &AnyRow) -> Result<Mailbox> {
    let special_use: Option<String> = row.try_get("special_use")?;
    Ok(Mailbox {
        id: MailboxId(row.try_get("id")?),
        account: AccountId(row.try_get("account_id")?),
        name: MailboxName::from_stored(row.try_get("name")?),
        uid_validity: UidValidity(row.try_get::<i64, _>("uidvalidity")? as u32),
        uid_next: Uid(row.try_get::<i64, _>("uidnext")? as u32),
        highest_modseq: ModSeq(row.try_get::<i64, _>("highestmodseq")? as u64),
        special_use: special_use.as_deref().and_then(SpecialUse::from_attribute),
        first_recent_uid: Uid(row.try_get::<i64, _>("first_recent_uid")? as u32),
    })
}

/// A UIDVALIDITY never used before in this store: the current time in seconds, or one
/// more than the largest ever given out when the clock is behind (RFC 9051 §2.3.1.1).
async fn next_uid_validity(conn: &mut AnyConnection) -> Result<u32> {
    let largest: Option<i64> = sqlx::query_scalar("SELECT MAX(uidvalidity) FROM mailboxes")
        .fetch_one(&mut *conn)
        .await?;
    let now = (unix_now() as u64 & 0xffff_ffff) as u32;
    let next = largest.map_or(now, |l| now.max((l as u32).wrapping_add(1)));
    Ok(next.max(1))
}

pub(crate) async fn insert_mailbox(
    conn: &mut AnyConnection,
    account: AccountId,
    name: &str,
    special_use: Option<SpecialUse>,
    subscribed: bool,
) -> Result<MailboxId> {
    let exists: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM mailboxes WHERE account_id = $1 AND name = $2")
            .bind(account.0)
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    if exists > 0 {
        return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
    }
    if let Some(role) = special_use {
        special_use_free(conn, account, role).await?;
    }
    let uid_validity = next_uid_validity(conn).await?;
    // RFC 8474 §4.1: the id is the MAILBOXID, never given to another mailbox.
    let id = next_id(conn, IdSequence::Mailboxes).await?;
    sqlx::query(
        "INSERT INTO mailboxes (id, account_id, name, uidvalidity, special_use) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(account.0)
    .bind(name)
    .bind(uid_validity as i64)
    .bind(special_use.map(SpecialUse::attribute))
    .execute(&mut *conn)
    .await?;
    if subscribed {
        subscribe_in_tx(conn, account, name, true).await?;
    }
    Ok(MailboxId(id))
}

/// RFC 6154 §3: a server may refuse a special use it "cannot be assigned to the specified
/// mailbox". One mailbox per role and account, so that a client looking for `\Sent`
/// finds one answer; checked in the writer's transaction, so two CREATEs cannot both
/// take the role.
async fn special_use_free(
    conn: &mut AnyConnection,
    account: AccountId,
    role: SpecialUse,
) -> Result<()> {
    let holder: Option<String> = sqlx::query_scalar(
        "SELECT name FROM mailboxes WHERE account_id = $1 AND special_use = $2 LIMIT 1",
    )
    .bind(account.0)
    .bind(role.attribute())
    .fetch_optional(&mut *conn)
    .await?;
    match holder {
        Some(holder) => Err(StoreError::SpecialUseTaken { role, holder }),
        None => Ok(()),
    }
}

/// Adds `name` to the account's subscription list or takes it off; either is a no-op
/// when the name is already (or not) there.
async fn subscribe_in_tx(
    conn: &mut AnyConnection,
    account: AccountId,
    name: &str,
    subscribed: bool,
) -> Result<()> {
    let statement = if subscribed {
        "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM subscriptions WHERE account_id = $1 AND name = $2"
    };
    sqlx::query(statement)
        .bind(account.0)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Creates the superior levels of `name` that do not exist (RFC 9051 §6.3.4, §6.3.6),
/// unsubscribed and without a special use; returns their changes.
async fn create_superiors(
    conn: &mut AnyConnection,
    account: AccountId,
    name: &str,
) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    let levels: Vec<&str> = name.split(MAILBOX_DELIMITER).collect();
    for depth in 1..levels.len() {
        let superior = levels[..depth].join("/");
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mailboxes WHERE account_id = $1 AND name = $2",
        )
        .bind(account.0)
        .bind(&superior)
        .fetch_one(&mut *conn)
        .await?;
        if exists == 0 {
            let id = insert_mailbox(conn, account, &superior, None, false).await?;
            changes.push(mailbox_changed(account, id));
        }
    }
    Ok(changes)
}

pub(crate) async fn mailbox_in_tx(conn: &mut AnyConnection, id: MailboxId) -> Result<Mailbox> {
    let row = sqlx::query(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found("mailbox", id))?;
    mailbox_from_row(&row)
}

fn mailbox_changed(account: AccountId, mailbox: MailboxId) -> Change {
    Change {
        account,
        mailbox,
        kind: ChangeKind::MailboxChanged,
    }
}

impl Store {
    pub async fn list_mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        let rows = sqlx::query(&format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 ORDER BY name"
        ))
        .bind(account.0)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(mailbox_from_row).collect()
    }

    pub async fn mailbox(&self, id: MailboxId) -> Result<Mailbox> {
        let row = sqlx::query(&format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| StoreError::not_found("mailbox", id))?;
        mailbox_from_row(&row)
    }

    pub async fn mailbox_by_name(
        &self,
        account: AccountId,
        name: &MailboxName,
    ) -> Result<Option<Mailbox>> {
        let row = sqlx::query(&format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 AND name = $2"
        ))
        .bind(account.0)
        .bind(name.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(mailbox_from_row).transpose()
    }

    pub async fn inbox(&self, account: AccountId) -> Result<Mailbox> {
        self.mailbox_by_name(account, &MailboxName::inbox())
            .await?
            .ok_or_else(|| StoreError::not_found("mailbox", format!("INBOX of account {account}")))
    }

    pub async fn mailbox_status(&self, id: MailboxId) -> Result<MailboxStatus> {
        let mailbox = self.mailbox(id).await?;
        // ESCAPE '!': the backslash of a system flag is literal (PostgreSQL's LIKE
        // would read it as its default escape). CAST: PostgreSQL sums BIGINT to NUMERIC.
        let row = sqlx::query(&self.backend.sql(
            "SELECT COUNT(*) AS messages,
                    CAST(COALESCE(SUM(CASE WHEN (' ' || mm.flags || ' ') LIKE '% \\Seen %' ESCAPE '!' THEN 0 ELSE 1 END), 0) AS BIGINT) AS unseen,
                    CAST(COALESCE(SUM(CASE WHEN mm.uid >= $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS recent,
                    CAST(COALESCE(SUM(CASE WHEN (' ' || mm.flags || ' ') LIKE '% \\Deleted %' ESCAPE '!' THEN 1 ELSE 0 END), 0) AS BIGINT) AS deleted,
                    CAST(COALESCE(SUM(m.size), 0) AS BIGINT) AS size,
                    CAST(COALESCE(SUM(CASE WHEN (' ' || mm.flags || ' ') LIKE '% \\Deleted %' ESCAPE '!' THEN m.size ELSE 0 END), 0) AS BIGINT) AS deleted_size
             FROM mailbox_messages mm JOIN messages m INDEXED BY messages_size ON m.id = mm.message_id
             WHERE mm.mailbox_id = $1",
        ))
        .bind(id.0)
        .bind(i64::from(mailbox.first_recent_uid.0))
        .fetch_one(&self.reader)
        .await?;
        Ok(MailboxStatus {
            messages: row.try_get::<i64, _>("messages")? as u32,
            recent: row.try_get::<i64, _>("recent")? as u32,
            unseen: row.try_get::<i64, _>("unseen")? as u32,
            deleted: row.try_get::<i64, _>("deleted")? as u32,
            size: row.try_get::<i64, _>("size")? as u64,
            deleted_size: row.try_get::<i64, _>("deleted_size")? as u64,
            uid_next: mailbox.uid_next,
            uid_validity: mailbox.uid_validity,
            highest_modseq: mailbox.highest_modseq,
        })
    }

    /// RFC 9051 §6.3.4 CREATE. Superior levels that do not exist are created too.
    pub async fn create_mailbox(
        &self,
        account: AccountId,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxId> {
        let name = name.clone();
        self.writer
            .run(Scope::account(account), move |conn| {
                Box::pin(async move {
                    let mut changes = create_superiors(conn, account, name.as_str()).await?;
                    let id =
                        insert_mailbox(conn, account, name.as_str(), special_use, false).await?;
                    changes.push(mailbox_changed(account, id));
                    Ok(JobOutput::new(id, changes))
                })
            })
            .await
    }

    /// RFC 9051 §6.3.5 DELETE: the mailbox and its messages go; its children stay.
    /// INBOX cannot be deleted.
    pub async fn delete_mailbox(&self, id: MailboxId) -> Result<()> {
        self.writer
            .run(Scope::mailboxes([id]), move |conn| {
                Box::pin(async move {
                    let mailbox = mailbox_in_tx(conn, id).await?;
                    if mailbox.name.is_inbox() {
                        return Err(StoreError::invalid("mailbox", "INBOX cannot be deleted"));
                    }
                    sqlx::query(&Backend::of_connection(conn).sql(
                        "UPDATE accounts SET used_bytes = used_bytes - (
                             SELECT CAST(COALESCE(SUM(m.size), 0) AS BIGINT) FROM mailbox_messages mm
                             JOIN messages m INDEXED BY messages_size ON m.id = mm.message_id WHERE mm.mailbox_id = $1)
                         WHERE id = $2",
                    ))
                    .bind(id.0)
                    .bind(mailbox.account.0)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query("DELETE FROM mailbox_messages WHERE mailbox_id = $1")
                        .bind(id.0)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("DELETE FROM mailboxes WHERE id = $1")
                        .bind(id.0)
                        .execute(&mut *conn)
                        .await?;
                    Ok(JobOutput::new(
                        (),
                        vec![mailbox_changed(mailbox.account, id)],
                    ))
                })
            })
            .await
    }

    /// RFC 9051 §6.3.6 RENAME, with every child renamed too. Renaming INBOX moves its
    /// messages into a new mailbox and leaves INBOX empty.
    pub async fn rename_mailbox(&self, id: MailboxId, new_name: &MailboxName) -> Result<()> {
        let new_name = new_name.as_str().to_owned();
        self.writer
            .run(Scope::mailboxes([id]), move |conn| {
                Box::pin(async move {
                    let mailbox = mailbox_in_tx(conn, id).await?;
                    let account = mailbox.account;
                    if new_name == "INBOX" || new_name.starts_with("INBOX/") && mailbox.name.is_inbox() {
                        return Err(StoreError::AlreadyExists(format!("mailbox {new_name}")));
                    }
                    let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mailboxes WHERE account_id = $1 AND name = $2")
                        .bind(account.0)
                        .bind(&new_name)
                        .fetch_one(&mut *conn)
                        .await?;
                    if taken > 0 {
                        return Err(StoreError::AlreadyExists(format!("mailbox {new_name}")));
                    }
                    let mut changes = Vec::new();
                    if mailbox.name.is_inbox() {
                        let target = insert_mailbox(conn, account, &new_name, None, false).await?;
                        let uids: Vec<i64> = sqlx::query_scalar("SELECT uid FROM mailbox_messages WHERE mailbox_id = $1 ORDER BY uid")
                            .bind(id.0)
                            .fetch_all(&mut *conn)
                            .await?;
                        let uids: Vec<Uid> = uids.into_iter().map(|u| Uid(u as u32)).collect();
                        let (_, move_changes) = crate::entries::copy_in_tx(conn, id, &uids, target, true).await?;
                        changes.extend(move_changes);
                        changes.push(mailbox_changed(account, target));
                    } else {
                        let old_prefix = format!("{}/", mailbox.name);
                        let children: Vec<(i64, String)> = sqlx::query_as(
                            "SELECT id, name FROM mailboxes WHERE account_id = $1 AND substr(name, 1, CAST($2 AS INTEGER)) = $3",
                        )
                        .bind(account.0)
                        // substr counts characters on both backends.
                        .bind(old_prefix.chars().count() as i64)
                        .bind(&old_prefix)
                        .fetch_all(&mut *conn)
                        .await?;
                        sqlx::query("UPDATE mailboxes SET name = $1 WHERE id = $2")
                            .bind(&new_name)
                            .bind(id.0)
                            .execute(&mut *conn)
                            .await?;
                        changes.push(mailbox_changed(account, id));
                        for (child_id, child_name) in children {
                            let renamed = format!("{new_name}/{}", &child_name[old_prefix.len()..]);
                            sqlx::query("UPDATE mailboxes SET name = $1 WHERE id = $2")
                                .bind(&renamed)
                                .bind(child_id)
                                .execute(&mut *conn)
                                .await?;
                            changes.push(mailbox_changed(account, MailboxId(child_id)));
                        }
                        // Superior levels of the new name are created (RFC 9051 §6.3.6).
                        changes.extend(create_superiors(conn, account, &new_name).await?);
                    }
                    Ok(JobOutput::new((), changes))
                })
            })
            .await
    }

    /// RFC 9051 §6.3.7/§6.3.8 SUBSCRIBE / UNSUBSCRIBE: the subscription list holds
    /// names, whether or not a mailbox has the name (now or later). Published as
    /// [`ChangeKind::SubscriptionsChanged`] for the account's watchers (IMAP NOTIFY,
    /// RFC 5465 §5.5); no selected mailbox changes.
    pub async fn set_subscribed(
        &self,
        account: AccountId,
        name: &MailboxName,
        subscribed: bool,
    ) -> Result<()> {
        let name = name.clone();
        self.writer
            .run(Scope::account(account), move |conn| {
                Box::pin(async move {
                    subscribe_in_tx(conn, account, name.as_str(), subscribed).await?;
                    let change = Change {
                        account,
                        mailbox: MailboxId(0),
                        kind: ChangeKind::SubscriptionsChanged,
                    };
                    Ok(JobOutput::new((), vec![change]))
                })
            })
            .await
    }

    /// The account's subscription list in name order (RFC 9051 §6.3.9: names stay on it
    /// after their mailbox is deleted or renamed).
    pub async fn subscriptions(&self, account: AccountId) -> Result<Vec<MailboxName>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name",
        )
        .bind(account.0)
        .fetch_all(&self.reader)
        .await?;
        Ok(names.into_iter().map(MailboxName::from_stored).collect())
    }

    /// RFC 3501 §2.3.2: claims `\Recent` for the messages of `mailbox` up to and
    /// including `through` that no session has claimed yet, and returns the first UID
    /// of them (the claim is `first..=through`), or `None` when another session already
    /// claimed them all. `uid_validity` is the caller's view of the mailbox. Each message
    /// is claimed by exactly one session: the claim is one write transaction, and those
    /// of one account commit one after another (its lock, `locks.rs`). Claims of one
    /// mailbox in this process pass one at a time, and one that a committed claim already
    /// covers is answered `None` without a transaction (`recent.rs`). Nothing is
    /// published: `\Recent` belongs to the claiming session, no other session hears of it.
    pub async fn claim_recent(
        &self,
        mailbox: MailboxId,
        uid_validity: UidValidity,
        through: Uid,
    ) -> Result<Option<Uid>> {
        let Some(turn) = self
            .recent_claims
            .turn(mailbox, uid_validity, through)
            .await
        else {
            return Ok(None);
        };
        let (first, current_validity) = self
            .writer
            .run(Scope::mailboxes([mailbox]), move |conn| {
                Box::pin(async move {
                    let row: Option<(i64, i64)> = sqlx::query_as(
                        "SELECT first_recent_uid, uidvalidity FROM mailboxes WHERE id = $1",
                    )
                    .bind(mailbox.0)
                    .fetch_optional(&mut *conn)
                    .await?;
                    let (first, validity) =
                        row.ok_or_else(|| StoreError::not_found("mailbox", mailbox))?;
                    let validity = UidValidity(validity as u32);
                    if first > i64::from(through.0) {
                        return Ok(JobOutput::new((None, validity), Vec::new()));
                    }
                    sqlx::query("UPDATE mailboxes SET first_recent_uid = $1 WHERE id = $2")
                        .bind(i64::from(through.0) + 1)
                        .bind(mailbox.0)
                        .execute(&mut *conn)
                        .await?;
                    Ok(JobOutput::new(
                        (Some(Uid(first as u32)), validity),
                        Vec::new(),
                    ))
                })
            })
            .await?;
        // Committed (or found committed): everything through `through` is claimed under
        // the mailbox's UIDVALIDITY as it is now. What was remembered before covered less
        // (`covers` said no), or another UIDVALIDITY.
        if current_validity == uid_validity {
            turn.committed(Claimed {
                uid_validity: Some(uid_validity),
                through: through.0,
            });
        }
        Ok(first)
    }
}
