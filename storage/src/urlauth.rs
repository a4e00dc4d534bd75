//! Mailbox access keys of RFC 4467 URLAUTH: one random key a mailbox, made by the first
//! GENURLAUTH on it and replaced by RESETKEY. A URLAUTH-authorised URL carries a MAC of
//! itself under its mailbox's key (computed by the IMAP side); replacing or removing the
//! key revokes every URL made with it (RFC 4467 §6.1 RESETKEY).
//!
//! Invariants:
//! - A key is [`URLAUTH_KEY_BYTES`] octets from the operating system's CSPRNG
//!   (`rand::rngs::OsRng`); it never leaves storage except as an [`UrlAuthKey`], whose
//!   Debug does not show it.
//! - Keys change only through the writer, under the lock of their account (issue 18);
//!   nothing is published: no session is told (a session holds no key).
//! - A key goes with its mailbox (`ON DELETE CASCADE`), and with its account, whose
//!   mailboxes go with it.

use crate::Store;
use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::types::{AccountId, MailboxId};
use rand::RngCore;
use rand::rngs::OsRng;
use sqlx::{AnyConnection, Row};
use std::fmt;

/// Octets of a mailbox access key: 256 bits, as long as the HMAC-SHA-256 output the IMAP
/// side computes with it, and twice the 128 bits that already put guessing out of reach.
pub const URLAUTH_KEY_BYTES: usize = 32;

/// A mailbox access key (RFC 4467). Hidden in Debug: it is a secret (house rule 8).
#[derive(Clone, PartialEq, Eq)]
pub struct UrlAuthKey(Vec<u8>);

impl UrlAuthKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A key of known octets, for tests of what is computed with keys.
    pub fn from_bytes(bytes: [u8; URLAUTH_KEY_BYTES]) -> UrlAuthKey {
        UrlAuthKey(bytes.to_vec())
    }

    fn random() -> UrlAuthKey {
        let mut key = vec![0u8; URLAUTH_KEY_BYTES];
        OsRng.fill_bytes(&mut key);
        UrlAuthKey(key)
    }
}

impl fmt::Debug for UrlAuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlAuthKey(***)")
    }
}

async fn key_in(conn: &mut AnyConnection, mailbox: MailboxId) -> Result<Option<UrlAuthKey>> {
    let row = sqlx::query("SELECT access_key FROM urlauth_keys WHERE mailbox_id = $1")
        .bind(mailbox.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| key_from_row(&row)).transpose()
}

fn key_from_row(row: &sqlx::any::AnyRow) -> Result<UrlAuthKey> {
    let key: Vec<u8> = row.try_get("access_key")?;
    if key.len() != URLAUTH_KEY_BYTES {
        return Err(StoreError::Corrupt(format!(
            "URLAUTH key of {} octets",
            key.len()
        )));
    }
    Ok(UrlAuthKey(key))
}

impl Store {
    /// The access key of `mailbox`, if one was made and not removed since.
    pub async fn urlauth_key(&self, mailbox: MailboxId) -> Result<Option<UrlAuthKey>> {
        let row = sqlx::query("SELECT access_key FROM urlauth_keys WHERE mailbox_id = $1")
            .bind(mailbox.0)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| key_from_row(&row)).transpose()
    }

    /// RFC 4467 §6.2 GENURLAUTH: the key of `mailbox`, made now if it has none, as
    /// GENURLAUTH does for a mailbox without a key. A mailbox
    /// that does not exist is [`StoreError::NotFound`].
    pub async fn urlauth_key_or_new(&self, mailbox: MailboxId) -> Result<UrlAuthKey> {
        if let Some(key) = self.urlauth_key(mailbox).await? {
            return Ok(key);
        }
        self.writer
            .run(Scope::mailboxes([mailbox]), move |conn| {
                Box::pin(async move {
                    // Another session may have made it since the read above.
                    if let Some(key) = key_in(conn, mailbox).await? {
                        return Ok(JobOutput::new(key, Vec::new()));
                    }
                    let key = UrlAuthKey::random();
                    insert_key(conn, mailbox, &key).await?;
                    Ok(JobOutput::new(key, Vec::new()))
                })
            })
            .await
    }

    /// RFC 4467 §6.1 RESETKEY with a mailbox: a new key in place of the old one,
    /// which revokes every URL authorised with the old one. A mailbox that does not exist is [`StoreError::NotFound`].
    pub async fn reset_urlauth_key(&self, mailbox: MailboxId) -> Result<()> {
        self.writer
            .run(Scope::mailboxes([mailbox]), move |conn| {
                Box::pin(async move {
                    insert_key(conn, mailbox, &UrlAuthKey::random()).await?;
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    /// RFC 4467 §6.1 RESETKEY without arguments: every key of the account goes, which
    /// revokes every URL the user authorised.
    pub async fn remove_urlauth_keys(&self, account: AccountId) -> Result<()> {
        self.writer
            .run(Scope::account(account), move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "DELETE FROM urlauth_keys WHERE mailbox_id IN
                         (SELECT id FROM mailboxes WHERE account_id = $1)",
                    )
                    .bind(account.0)
                    .execute(&mut *conn)
                    .await?;
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }
}

/// Sets `key` as the key of `mailbox`, replacing any. A mailbox that does not exist is
/// [`StoreError::NotFound`], not a foreign-key error.
async fn insert_key(conn: &mut AnyConnection, mailbox: MailboxId, key: &UrlAuthKey) -> Result<()> {
    crate::mailboxes::mailbox_in_tx(conn, mailbox).await?;
    sqlx::query(
        "INSERT INTO urlauth_keys (mailbox_id, access_key) VALUES ($1, $2)
         ON CONFLICT (mailbox_id) DO UPDATE SET access_key = excluded.access_key",
    )
    .bind(mailbox.0)
    .bind(key.as_bytes())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hidden() {
        let (a, b) = (UrlAuthKey::random(), UrlAuthKey::random());
        assert_eq!(a.as_bytes().len(), URLAUTH_KEY_BYTES);
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "UrlAuthKey(***)");
    }
}
