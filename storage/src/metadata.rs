//! Annotations of RFC 5464 METADATA: entries with octet values on a mailbox, or on the
//! server (IMAP's mailbox name ""), each named by a path under `/private` or `/shared`.
//!
//! letterbox has no annotations shared between accounts: a mailbox belongs to one
//! account, and server annotations are kept per account (as Dovecot 2.3 keeps them), so
//! `/private` and `/shared` are two name spaces of the same owner. The server's
//! `/shared/comment` and `/shared/admin` (§3.2.1.1) are the administrator's: they read
//! as NIL and cannot be set here.
//!
//! Invariants:
//! - A stored name is a valid [`EntryName`]: lower case (§3.2 "Entry names are
//!   case-insensitive"), so one entry has one row.
//! - A change of several entries is all or nothing (§4.3: when one cannot be set "the
//!   server MUST NOT change the values for other annotations"): one writer job.
//! - Within the limits below after every change that adds entries or octets; a change
//!   that only removes or shrinks is always allowed.
//!
//! Nothing is published: no session is told of a change unasked (RFC 5464 §4.4.2
//! unsolicited METADATA responses are optional, and Dovecot 2.3 sends none).

use crate::Store;
use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::mailboxes::mailbox_in_tx;
use crate::types::{AccountId, MailboxId};
use sqlx::{AnyConnection, Row};
use std::fmt;

/// Octets of one value. RFC 5464 §4.1: "the server MUST accept an annotation data size
/// of at least 1024 bytes"; what clients keep there (a comment, a folder's type or
/// colour, a client's settings) is well under that, and 64 KiB is the largest literal
/// the IMAP framer takes outside APPEND, so a larger value is refused as too large
/// (`[METADATA MAXSIZE]`) before the client sends it.
pub const MAX_METADATA_VALUE_BYTES: usize = 64 * 1024;
/// Entries of one mailbox (or of the server). RFC 5464 §4.1 asks a server to take at
/// least 10 a mailbox; clients set a handful.
pub const MAX_METADATA_ENTRIES_PER_MAILBOX: u64 = 100;
/// Entries of one account, server and mailboxes together: ten of the most a mailbox may
/// have, or a few on each of a few hundred mailboxes.
pub const MAX_METADATA_ENTRIES_PER_ACCOUNT: u64 = 1000;
/// Octets of names and values of one account together (RFC 5464 §7: "servers MUST
/// ensure that size limits are enforced"): sixteen values at their largest; also what
/// one GETMETADATA can have to send at most.
pub const MAX_METADATA_BYTES_PER_ACCOUNT: u64 = 1024 * 1024;
/// Octets of an entry name, prefix included: vendor names such as
/// `/shared/vendor/vendor.example/folder/colour` are tens of octets.
pub const MAX_METADATA_NAME_BYTES: usize = 512;

/// The scopes of RFC 5464 §3.2 (private and shared, §3.3): the first component of every
/// entry name.
const SCOPES: [&str; 2] = ["/private", "/shared"];
/// Server entries that are the administrator's (RFC 5464 §3.2.1.1): a user cannot set
/// them (§3.3 lets a server refuse to create server annotations).
const ADMIN_SERVER_ENTRIES: [&str; 2] = ["/shared/comment", "/shared/admin"];

/// A valid entry name (RFC 5464 §3.2), lower-cased: `/private` or `/shared`, then
/// components after single slashes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryName(String);

impl EntryName {
    /// Checks `name` against RFC 5464 §3.2 and lower-cases it. The reason of an
    /// [`StoreError::Invalid`] may be told to the client (IMAP answers BAD: "Invalid entry
    /// names result in a BAD response in any IMAP command in which they are used").
    pub fn new(name: &str) -> Result<EntryName> {
        let invalid = |reason: &str| Err(StoreError::invalid("entry name", reason));
        if !name.starts_with('/') {
            return invalid("it must begin with /");
        }
        if name.len() > MAX_METADATA_NAME_BYTES {
            return invalid("too long");
        }
        // §3.2: "An entry name MUST NOT contain two consecutive "/" characters and MUST
        // NOT end with a "/" character."
        if name.contains("//") {
            return invalid("it has two consecutive /");
        }
        if name.ends_with('/') {
            return invalid("it ends with /");
        }
        // §3.2: "Entry names MUST NOT contain asterisk ("*") or percent ("%") characters
        // and MUST NOT contain non-ASCII characters or characters with octet values in
        // the range 0x00 to 0x19."
        if name.contains(['*', '%']) {
            return invalid("it has * or %");
        }
        if name.bytes().any(|b| !b.is_ascii() || b <= 0x19) {
            return invalid("it has a control or non-ASCII character");
        }
        let name = name.to_ascii_lowercase();
        let scope = name.get(1..).and_then(|rest| rest.split('/').next());
        if !SCOPES.iter().any(|s| s.get(1..) == scope) {
            return invalid("it must begin with /private or /shared");
        }
        Ok(EntryName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `/private` or `/shared` alone: a scope, which can be asked for (its entries with
    /// DEPTH) but holds no value itself.
    pub fn is_scope(&self) -> bool {
        SCOPES.contains(&self.0.as_str())
    }

    /// RFC 5464 §4.2.2: true when `self` is below `root` within `depth` ("depth 1 for an
    /// entry "/a" will match "/a" as well as its children entries (e.g., "/a/b"), but
    /// will not match grandchildren entries (e.g., "/a/b/c")"); `root` itself is not.
    pub fn is_below(&self, root: &EntryName, depth: MetadataDepth) -> bool {
        let rest = self
            .0
            .strip_prefix(root.as_str())
            .and_then(|rest| rest.strip_prefix('/'));
        match (rest, depth) {
            (None, _) | (_, MetadataDepth::Zero) => false,
            (Some(rest), MetadataDepth::One) => !rest.contains('/'),
            (Some(_), MetadataDepth::Infinity) => true,
        }
    }
}

/// RFC 5464 §4.2.2 `scope-opt = "DEPTH" SP ("0" / "1" / "infinity")`: which entries below
/// a requested one GETMETADATA returns. "If the DEPTH option is not specified, this is
/// the same as specifying "DEPTH 0"."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataDepth {
    /// "no entries below the specified entry are returned"
    #[default]
    Zero,
    /// "only entries immediately below the specified entry are returned"
    One,
    /// "all entries below the specified entry are returned"
    Infinity,
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose annotations: the server's as one account sees them (RFC 5464 §3.2.1.1, IMAP
/// mailbox name ""), or one mailbox's (§3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataOwner {
    Server(AccountId),
    Mailbox(MailboxId),
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataEntry {
    pub name: EntryName,
    pub value: Vec<u8>,
}

/// Entries and their octets (names and values), of one owner or of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Usage {
    entries: u64,
    bytes: u64,
}

impl Usage {
    fn grew_past(self, before: Usage, max_entries: u64, max_bytes: u64) -> Option<StoreError> {
        if self.entries > max_entries && self.entries > before.entries {
            return Some(StoreError::MetadataTooMany { max: max_entries });
        }
        (self.bytes > max_bytes && self.bytes > before.bytes).then_some(StoreError::OverQuota)
    }
}

/// The table, key column and key of an owner's entries.
fn owner_key(owner: MetadataOwner) -> (&'static str, &'static str, i64) {
    match owner {
        MetadataOwner::Server(account) => ("server_metadata", "account_id", account.0),
        MetadataOwner::Mailbox(mailbox) => ("mailbox_metadata", "mailbox_id", mailbox.0),
    }
}

/// Entries and octets of `owner`.
async fn owner_usage(conn: &mut AnyConnection, owner: MetadataOwner) -> Result<Usage> {
    let (table, column, key) = owner_key(owner);
    // CAST: PostgreSQL sums to NUMERIC. The names are ASCII: characters are octets.
    let row = sqlx::query(&format!(
        "SELECT COUNT(*) AS entries, CAST(COALESCE(SUM(length(name) + length(value)), 0) AS BIGINT) AS bytes
         FROM {table} WHERE {column} = $1"
    ))
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    usage_from_row(&row)
}

/// Entries and octets of every owner of `account`.
async fn account_usage(conn: &mut AnyConnection, account: AccountId) -> Result<Usage> {
    let server = owner_usage(conn, MetadataOwner::Server(account)).await?;
    let row = sqlx::query(
        "SELECT COUNT(*) AS entries, CAST(COALESCE(SUM(length(md.name) + length(md.value)), 0) AS BIGINT) AS bytes
         FROM mailbox_metadata md JOIN mailboxes mb ON mb.id = md.mailbox_id WHERE mb.account_id = $1",
    )
    .bind(account.0)
    .fetch_one(&mut *conn)
    .await?;
    let mailboxes = usage_from_row(&row)?;
    Ok(Usage {
        entries: server.entries + mailboxes.entries,
        bytes: server.bytes + mailboxes.bytes,
    })
}

fn usage_from_row(row: &sqlx::any::AnyRow) -> Result<Usage> {
    let number = |column| {
        row.try_get::<i64, _>(column)
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    Ok(Usage {
        entries: number("entries")?,
        bytes: number("bytes")?,
    })
}

impl Store {
    /// Every entry of `owner`, in name order (bytewise, the same on both backends). At
    /// most [`MAX_METADATA_BYTES_PER_ACCOUNT`] octets.
    pub async fn metadata(&self, owner: MetadataOwner) -> Result<Vec<MetadataEntry>> {
        let (table, column, key) = owner_key(owner);
        let rows = sqlx::query(&format!(
            "SELECT name, value FROM {table} WHERE {column} = $1"
        ))
        .bind(key)
        .fetch_all(&self.reader)
        .await?;
        let mut entries = rows
            .iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                let name = EntryName::new(&name)
                    .map_err(|_| StoreError::Corrupt(format!("metadata entry name {name:?}")))?;
                Ok(MetadataEntry {
                    name,
                    value: row.try_get("value")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// RFC 5464 §4.3 SETMETADATA: sets each entry to its value, or removes it (`None`,
    /// "Clients can use NIL for the value of entries it wants to remove"), in order (a
    /// later change of the same entry wins), all or nothing. A value over
    /// [`MAX_METADATA_VALUE_BYTES`] is [`StoreError::MetadataTooLarge`]; more entries
    /// than the mailbox or account may have, [`StoreError::MetadataTooMany`]; more octets
    /// than the account may have, [`StoreError::OverQuota`]; a scope alone or an
    /// administrator's server entry, [`StoreError::Invalid`].
    pub async fn set_metadata(
        &self,
        owner: MetadataOwner,
        changes: Vec<(EntryName, Option<Vec<u8>>)>,
    ) -> Result<()> {
        for (name, value) in &changes {
            if name.is_scope() {
                return Err(StoreError::invalid(
                    "entry name",
                    format!("{name} is a scope, not an entry"),
                ));
            }
            if matches!(owner, MetadataOwner::Server(_))
                && ADMIN_SERVER_ENTRIES.contains(&name.as_str())
            {
                return Err(StoreError::invalid(
                    "entry name",
                    format!("the server's {name} is set by the administrator"),
                ));
            }
            if value
                .as_ref()
                .is_some_and(|v| v.len() > MAX_METADATA_VALUE_BYTES)
            {
                return Err(StoreError::MetadataTooLarge {
                    max: MAX_METADATA_VALUE_BYTES,
                });
            }
        }
        // The annotations belong to the account: its lock on PostgreSQL (issue 18).
        let scope = match owner {
            MetadataOwner::Server(account) => Scope::account(account),
            MetadataOwner::Mailbox(mailbox) => Scope::mailboxes([mailbox]),
        };
        self.writer
            .run(scope, move |conn| {
                Box::pin(async move {
                    let account = match owner {
                        MetadataOwner::Server(account) => account,
                        MetadataOwner::Mailbox(mailbox) => {
                            mailbox_in_tx(conn, mailbox).await?.account
                        }
                    };
                    let owner_before = owner_usage(conn, owner).await?;
                    let account_before = account_usage(conn, account).await?;
                    let (table, column, key) = owner_key(owner);
                    let upsert = format!(
                        "INSERT INTO {table} ({column}, name, value) VALUES ($1, $2, $3)
                         ON CONFLICT ({column}, name) DO UPDATE SET value = excluded.value"
                    );
                    let delete = format!("DELETE FROM {table} WHERE {column} = $1 AND name = $2");
                    for (name, value) in &changes {
                        let query = match value {
                            Some(value) => sqlx::query(&upsert)
                                .bind(key)
                                .bind(name.as_str())
                                .bind(value),
                            None => sqlx::query(&delete).bind(key).bind(name.as_str()),
                        };
                        query.execute(&mut *conn).await?;
                    }
                    let owner_after = owner_usage(conn, owner).await?;
                    if let Some(error) = owner_after.grew_past(
                        owner_before,
                        MAX_METADATA_ENTRIES_PER_MAILBOX,
                        u64::MAX,
                    ) {
                        return Err(error);
                    }
                    let account_after = account_usage(conn, account).await?;
                    if let Some(error) = account_after.grew_past(
                        account_before,
                        MAX_METADATA_ENTRIES_PER_ACCOUNT,
                        MAX_METADATA_BYTES_PER_ACCOUNT,
                    ) {
                        return Err(error);
                    }
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> EntryName {
        EntryName::new(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn entry_names_follow_rfc_5464_section_3_2() {
        assert_eq!(name("/private/comment").as_str(), "/private/comment");
        assert_eq!(
            name("/Shared/Vendor/X.Y/Colour").as_str(),
            "/shared/vendor/x.y/colour"
        );
        assert_eq!(name("/shared/a b\"c").as_str(), "/shared/a b\"c");
        assert!(name("/shared").is_scope());
        assert!(name("/PRIVATE").is_scope());
        assert!(!name("/private/comment").is_scope());
        for bad in [
            "",
            "private/comment",
            "/private//comment",
            "/private/comment/",
            "/private/",
            "/private/com*",
            "/shared/100%",
            "/shared/\u{e9}",
            "/shared/a\u{1}",
            "/shared/a\u{19}",
            "/privatefoo",
            "/public/comment",
            "/",
        ] {
            assert!(EntryName::new(bad).is_err(), "{bad:?}");
        }
        assert!(EntryName::new("/shared/\u{1a}\u{7f}").is_ok());
        let long = format!("/shared/{}", "x".repeat(MAX_METADATA_NAME_BYTES));
        assert!(EntryName::new(&long).is_err());
        assert!(EntryName::new(&long[..MAX_METADATA_NAME_BYTES]).is_ok());
    }

    #[test]
    fn depth_selects_children_and_descendants() {
        let root = name("/shared/a");
        let child = name("/shared/a/b");
        let grandchild = name("/shared/a/b/c");
        let sibling = name("/shared/ab");
        use MetadataDepth::{Infinity, One, Zero};
        assert!(child.is_below(&root, One));
        assert!(!grandchild.is_below(&root, One));
        assert!(grandchild.is_below(&root, Infinity));
        assert!(!child.is_below(&root, Zero));
        assert!(!sibling.is_below(&root, Infinity));
        assert!(!root.is_below(&root, Infinity));
        assert!(child.is_below(&name("/shared"), Infinity));
        assert!(!child.is_below(&name("/shared"), One));
    }
}
