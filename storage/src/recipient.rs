//! Everything SMTP needs to accept a local recipient and deliver to it, in one statement:
//! whether the domain is ours, the account the address reaches, its quota, its INBOX and
//! its active Sieve script. RCPT used to ask four reader queries for this (domain,
//! address, account, then at DATA the script and the INBOX); under a load of short
//! sessions they were a tenth of the server's instructions.
//!
//! The address is resolved as [`Store::resolve_recipient`] does (the account, an alias,
//! the same without a `+tag`, a catch-all `@domain`); the rare postmaster fallback
//! (RFC 5321 §4.5.1) goes through `resolve_recipient` and then one statement by id.

use crate::accounts::split_address;
use crate::{AccountId, MailboxId, Result, SieveScript, Store};
use sqlx::Row;

/// A local recipient as found at RCPT, for the quota check and for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRecipient {
    pub account: AccountId,
    pub quota_bytes: Option<i64>,
    pub used_bytes: i64,
    /// The account's INBOX, where mail goes unless its Sieve script says otherwise.
    pub inbox: MailboxId,
    /// The account's active Sieve script (RFC 5228), if it has one.
    pub active_script: Option<SieveScript>,
}

impl LocalRecipient {
    /// True when the account is at or over its quota.
    pub fn is_over_quota(&self) -> bool {
        self.quota_bytes
            .is_some_and(|quota| self.used_bytes >= quota)
    }
}

/// What [`Store::local_recipient`] found for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientLookup {
    /// The domain is not one of ours.
    NotLocal,
    /// The domain is ours but nobody receives mail at this address.
    Unknown,
    Local(LocalRecipient),
}

/// The columns of a [`LocalRecipient`], of the account `a`. Every account has an INBOX
/// (made with it, and RFC 9051 §6.3.4 forbids deleting it); one without would find no row.
const RECIPIENT_COLUMNS: &str = "a.id AS account_id, a.quota_bytes, a.used_bytes, m.id AS inbox,
     s.name AS script_name, s.content AS script_content
     FROM accounts a
     JOIN mailboxes m ON m.account_id = a.id AND m.name = 'INBOX'
     LEFT JOIN sieve_scripts s ON s.account_id = a.id AND s.active != 0";

impl Store {
    /// Finds where mail for `address` goes, in one statement (see the module comment).
    pub async fn local_recipient(&self, address: &str) -> Result<RecipientLookup> {
        // As `is_local_domain`: the domain without a trailing dot, in lower case.
        let domain = address
            .rsplit_once('@')
            .map(|(_, domain)| domain.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        let Ok((local, owned_domain)) = split_address(address) else {
            // No account has such an address; the domain alone decides the reply.
            return Ok(if self.names_local_domain(&domain).await? {
                RecipientLookup::Unknown
            } else {
                RecipientLookup::NotLocal
            });
        };
        let exact = format!("{local}@{owned_domain}");
        // Plus-addressing: user+tag@domain delivers to user@domain.
        let untagged = match local.split_once('+') {
            Some((base, _tag)) if !base.is_empty() => format!("{base}@{owned_domain}"),
            _ => exact.clone(),
        };
        // The first match in the order of `resolve_recipient`: `priority` orders them.
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM domains WHERE name = $1) AS local_domain, r.*
             FROM (SELECT 1 AS one) one
             LEFT JOIN (SELECT {RECIPIENT_COLUMNS}
                 WHERE a.id = (SELECT account_id FROM (
                         SELECT 0 AS priority, id AS account_id FROM accounts WHERE lower(email) = lower($2)
                         UNION ALL SELECT 1, account_id FROM aliases WHERE lower(address) = lower($2)
                         UNION ALL SELECT 2, id FROM accounts WHERE lower(email) = lower($3)
                         UNION ALL SELECT 3, account_id FROM aliases WHERE lower(address) = lower($3)
                         UNION ALL SELECT 4, account_id FROM aliases WHERE lower(address) = lower($4)
                     ) candidates ORDER BY priority LIMIT 1)
             ) r ON 1 = 1"
        );
        let row = sqlx::query(&sql)
            .bind(&domain)
            .bind(&exact)
            .bind(&untagged)
            .bind(format!("@{owned_domain}"))
            .fetch_one(&self.reader)
            .await?;
        if row.try_get::<i64, _>("local_domain")? == 0 {
            return Ok(RecipientLookup::NotLocal);
        }
        if let Some(found) = recipient_from_row(&row)? {
            return Ok(RecipientLookup::Local(found));
        }
        // RFC 5321 §4.5.1: the postmaster fallback, rare enough for a second look.
        if local.eq_ignore_ascii_case("postmaster")
            && let Some(account) = self.resolve_recipient(address).await?
        {
            return self.local_account(account).await;
        }
        Ok(RecipientLookup::Unknown)
    }

    /// The [`LocalRecipient`] of an account found otherwise (the postmaster fallback).
    pub async fn local_account(&self, account: AccountId) -> Result<RecipientLookup> {
        let row = sqlx::query(&format!("SELECT {RECIPIENT_COLUMNS} WHERE a.id = $1"))
            .bind(account.0)
            .fetch_optional(&self.reader)
            .await?;
        Ok(match row.as_ref().map(recipient_from_row).transpose()? {
            Some(Some(found)) => RecipientLookup::Local(found),
            _ => RecipientLookup::Unknown,
        })
    }
}

fn recipient_from_row(row: &sqlx::any::AnyRow) -> Result<Option<LocalRecipient>> {
    let (Some(account), Some(inbox)) = (
        row.try_get::<Option<i64>, _>("account_id")?,
        row.try_get::<Option<i64>, _>("inbox")?,
    ) else {
        return Ok(None);
    };
    let script_name: Option<String> = row.try_get("script_name")?;
    let script_content: Option<String> = row.try_get("script_content")?;
    Ok(Some(LocalRecipient {
        account: AccountId(account),
        quota_bytes: row.try_get("quota_bytes")?,
        used_bytes: row.try_get::<Option<i64>, _>("used_bytes")?.unwrap_or(0),
        inbox: MailboxId(inbox),
        active_script: script_name
            .zip(script_content)
            .map(|(name, content)| SieveScript {
                name,
                content,
                active: true,
            }),
    }))
}
