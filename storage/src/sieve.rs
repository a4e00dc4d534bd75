//! Sieve scripts (RFC 5228) of each account, as ManageSieve (RFC 5804) and the admin CLI
//! manage them, and the record of vacation replies (RFC 5230 §4.2) that keeps `:days`.
//!
//! Storage keeps the script text only; whether it compiles is checked by whoever stores
//! it (the `filter` crate), and delivery compiles it again (a script is small, and a
//! compiled form would tie the database to one interpreter version).
//!
//! Invariant: at most one script of an account is active (RFC 5804 §1.2), held by the
//! unique partial index `sieve_scripts_one_active` and by [`Store::activate_sieve_script`]
//! clearing the old one in the same transaction.

use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::types::AccountId;
use crate::{Store, unix_now};
use sqlx::Row;

/// Scripts per account: a user keeps a handful (a filter, a vacation, a few includes);
/// 32 leaves room without letting one account fill the database through ManageSieve.
pub const MAX_SIEVE_SCRIPTS: usize = 32;
/// Bytes of one script: hand-written filters are a few KiB; 64 KiB also bounds the
/// compile time a delivery spends on it.
pub const MAX_SIEVE_SCRIPT_BYTES: usize = 64 * 1024;
/// RFC 5804 §1.6 lets the server limit names; 128 octets is more than any client offers.
pub const MAX_SIEVE_NAME_BYTES: usize = 128;
/// Vacation records read for one sender at delivery: the `:handle`s a user's scripts
/// could tell apart are few; more rows than this are old handles, read newest first.
const MAX_VACATION_RECORDS_PER_SENDER: i64 = 256;

/// One script as listed: its name and whether it is the active one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SieveScriptInfo {
    pub name: String,
    pub active: bool,
}

/// One script with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SieveScript {
    pub name: String,
    pub content: String,
    pub active: bool,
}

/// A vacation reply that was sent: `sender` is not answered again under `handle` before
/// `expires_at` (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacationRecord {
    pub sender: String,
    pub handle: String,
    pub expires_at: i64,
}

/// RFC 5804 §1.6: a script name is UTF-8 without control characters (Cc), not empty;
/// we also bound its length.
pub fn check_sieve_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::invalid("script name", "empty"));
    }
    if name.len() > MAX_SIEVE_NAME_BYTES {
        return Err(StoreError::invalid("script name", "too long"));
    }
    // RFC 5804 §1.6: no characters in the Cc category, U+2028 or U+2029.
    if name
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(StoreError::invalid("script name", "control character"));
    }
    Ok(())
}

impl Store {
    /// The account's scripts in name order.
    pub async fn sieve_scripts(&self, account: AccountId) -> Result<Vec<SieveScriptInfo>> {
        let rows = sqlx::query(
            "SELECT name, active FROM sieve_scripts WHERE account_id = $1 ORDER BY name",
        )
        .bind(account.0)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SieveScriptInfo {
                    name: row.try_get("name")?,
                    active: row.try_get::<i64, _>("active")? != 0,
                })
            })
            .collect()
    }

    /// One script by name, `None` when the account has none of that name.
    pub async fn sieve_script(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<SieveScript>> {
        let row = sqlx::query(
            "SELECT name, content, active FROM sieve_scripts WHERE account_id = $1 AND name = $2",
        )
        .bind(account.0)
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(script_from_row).transpose()
    }

    /// The active script, if the account has one.
    pub async fn active_sieve_script(&self, account: AccountId) -> Result<Option<SieveScript>> {
        let row = sqlx::query(
            "SELECT name, content, active FROM sieve_scripts WHERE account_id = $1 AND active != 0",
        )
        .bind(account.0)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(script_from_row).transpose()
    }

    /// Stores `content` under `name`, replacing a script of that name (which stays active
    /// if it was: RFC 5804 §2.6 "replaces ... the active script is replaced"). A new
    /// name beyond [`MAX_SIEVE_SCRIPTS`] or content beyond [`MAX_SIEVE_SCRIPT_BYTES`] is
    /// [`StoreError::OverQuota`] (ManageSieve `NO (QUOTA/...)`).
    pub async fn put_sieve_script(
        &self,
        account: AccountId,
        name: &str,
        content: &str,
    ) -> Result<()> {
        check_sieve_name(name)?;
        if content.len() > MAX_SIEVE_SCRIPT_BYTES {
            return Err(StoreError::OverQuota);
        }
        let name = name.to_owned();
        let content = content.to_owned();
        self.writer
            .run(Scope::account(account), move |conn| {
                Box::pin(async move {
                    if script_state(conn, account, &name).await?.is_some() {
                        sqlx::query(
                            "UPDATE sieve_scripts SET content = $1, updated_at = $2 WHERE account_id = $3 AND name = $4",
                        )
                        .bind(&content)
                        .bind(unix_now())
                        .bind(account.0)
                        .bind(&name)
                        .execute(&mut *conn)
                        .await?;
                    } else {
                        let count: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM sieve_scripts WHERE account_id = $1",
                        )
                        .bind(account.0)
                        .fetch_one(&mut *conn)
                        .await?;
                        if count >= MAX_SIEVE_SCRIPTS as i64 {
                            return Err(StoreError::OverQuota);
                        }
                        sqlx::query(
                            "INSERT INTO sieve_scripts (account_id, name, content, active, updated_at) VALUES ($1, $2, $3, 0, $4)",
                        )
                        .bind(account.0)
                        .bind(&name)
                        .bind(&content)
                        .bind(unix_now())
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    /// RFC 5804 §2.8 SETACTIVE: makes `name` the active script (the one active before is
    /// no longer), or with `None` deactivates every script.
    pub async fn activate_sieve_script(
        &self,
        account: AccountId,
        name: Option<&str>,
    ) -> Result<()> {
        let name = name.map(str::to_owned);
        self.writer
            .run(Scope::account(account), move |conn| {
                Box::pin(async move {
                    if let Some(name) = &name {
                        script_active(conn, account, name).await?;
                    }
                    sqlx::query("UPDATE sieve_scripts SET active = 0 WHERE account_id = $1 AND active != 0")
                        .bind(account.0)
                        .execute(&mut *conn)
                        .await?;
                    if let Some(name) = &name {
                        sqlx::query(
                            "UPDATE sieve_scripts SET active = 1 WHERE account_id = $1 AND name = $2",
                        )
                        .bind(account.0)
                        .bind(name)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    /// RFC 5804 §2.10 DELETESCRIPT: "The server MUST NOT allow the client to delete an
    /// active script": that is [`StoreError::SieveScriptActive`].
    pub async fn delete_sieve_script(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.writer
            .run(Scope::account(account), move |conn| {
                Box::pin(async move {
                    let active = script_active(conn, account, &name).await?;
                    if active {
                        return Err(StoreError::SieveScriptActive);
                    }
                    sqlx::query("DELETE FROM sieve_scripts WHERE account_id = $1 AND name = $2")
                        .bind(account.0)
                        .bind(&name)
                        .execute(&mut *conn)
                        .await?;
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    /// RFC 5804 §2.11.1 RENAMESCRIPT: the script keeps its active flag; a script of the
    /// new name is [`StoreError::AlreadyExists`].
    pub async fn rename_sieve_script(
        &self,
        account: AccountId,
        old: &str,
        new: &str,
    ) -> Result<()> {
        check_sieve_name(new)?;
        let (old, new) = (old.to_owned(), new.to_owned());
        self.writer
            .run(Scope::account(account), move |conn| {
                Box::pin(async move {
                    script_active(conn, account, &old).await?;
                    if script_state(conn, account, &new).await?.is_some() {
                        return Err(StoreError::AlreadyExists(new.clone()));
                    }
                    sqlx::query(
                        "UPDATE sieve_scripts SET name = $1, updated_at = $2 WHERE account_id = $3 AND name = $4",
                    )
                    .bind(&new)
                    .bind(unix_now())
                    .bind(account.0)
                    .bind(&old)
                    .execute(&mut *conn)
                    .await?;
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    /// The vacation handles under which `sender` (lower case) was answered and must not
    /// be again yet (RFC 5230 §4.2), as of `now`.
    pub async fn vacation_handles(
        &self,
        account: AccountId,
        sender: &str,
        now: i64,
    ) -> Result<Vec<String>> {
        let handles = sqlx::query_scalar(
            "SELECT handle FROM sieve_vacation WHERE account_id = $1 AND sender = $2 AND expires_at > $3 ORDER BY expires_at DESC LIMIT $4",
        )
        .bind(account.0)
        .bind(sender)
        .bind(now)
        .bind(MAX_VACATION_RECORDS_PER_SENDER)
        .fetch_all(&self.reader)
        .await?;
        Ok(handles)
    }

    /// Records vacation replies sent (a later record of the same sender and handle
    /// replaces the earlier), and forgets the account's records that have expired.
    pub async fn record_vacation_replies(
        &self,
        account: AccountId,
        records: Vec<VacationRecord>,
    ) -> Result<()> {
        self.writer
            .run(Scope::account(account), move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM sieve_vacation WHERE account_id = $1 AND expires_at <= $2")
                        .bind(account.0)
                        .bind(unix_now())
                        .execute(&mut *conn)
                        .await?;
                    for record in &records {
                        sqlx::query(
                            "DELETE FROM sieve_vacation WHERE account_id = $1 AND sender = $2 AND handle = $3",
                        )
                        .bind(account.0)
                        .bind(&record.sender)
                        .bind(&record.handle)
                        .execute(&mut *conn)
                        .await?;
                        sqlx::query(
                            "INSERT INTO sieve_vacation (account_id, sender, handle, expires_at) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(account.0)
                        .bind(&record.sender)
                        .bind(&record.handle)
                        .bind(record.expires_at)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }
}

/// Whether the script `name` is active; [`StoreError::NotFound`] when there is none.
async fn script_active(
    conn: &mut sqlx::AnyConnection,
    account: AccountId,
    name: &str,
) -> Result<bool> {
    script_state(conn, account, name)
        .await?
        .ok_or_else(|| StoreError::not_found("script", name))
}

/// `Some(active)` for a script of that name, `None` when there is none.
async fn script_state(
    conn: &mut sqlx::AnyConnection,
    account: AccountId,
    name: &str,
) -> Result<Option<bool>> {
    let active: Option<i64> =
        sqlx::query_scalar("SELECT active FROM sieve_scripts WHERE account_id = $1 AND name = $2")
            .bind(account.0)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(active.map(|active| active != 0))
}

fn script_from_row(row: &sqlx::any::AnyRow) -> Result<SieveScript> {
    Ok(SieveScript {
        name: row.try_get("name")?,
        content: row.try_get("content")?,
        active: row.try_get::<i64, _>("active")? != 0,
    })
}
