//! Domains, accounts, aliases and address resolution.

use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::password::{hash_password, verify_password};
use crate::types::{AccountId, DEFAULT_MAILBOXES, Domain, Secret};
use crate::{Store, mailboxes, unix_now};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

/// A statement with its parameters bound so far.
type AnyQuery = Query<'static, Any, AnyArguments<'static>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub email: String,
    pub quota_bytes: Option<i64>,
    pub used_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// `local@domain`, or `@domain` for a catch-all.
    pub address: String,
    pub target: String,
}

/// The id of `domain`; [`StoreError::NotFound`] when it is not one of ours.
async fn domain_id(conn: &mut AnyConnection, domain: &str) -> Result<i64> {
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM domains WHERE name = $1")
        .bind(domain)
        .fetch_optional(&mut *conn)
        .await?;
    id.ok_or_else(|| StoreError::not_found("domain", domain))
}

/// [`StoreError::AlreadyExists`] when `address` is an account's or an alias's already
/// (compared case-insensitively, as delivery resolves it).
async fn refuse_taken_address(conn: &mut AnyConnection, address: &str) -> Result<()> {
    let taken: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM accounts WHERE lower(email) = lower($1)) + (SELECT COUNT(*) FROM aliases WHERE lower(address) = lower($1))",
    )
    .bind(address)
    .fetch_one(&mut *conn)
    .await?;
    if taken > 0 {
        return Err(StoreError::AlreadyExists(format!("address {address}")));
    }
    Ok(())
}

/// Splits and normalises an address: the domain is lower-cased (RFC 5321 §2.4: domains
/// are case-insensitive); the local part is kept as given and compared case-insensitively.
pub(crate) fn split_address(address: &str) -> Result<(String, String)> {
    let address = address.trim();
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| StoreError::invalid("address", format!("{address:?} has no @")))?;
    if domain.is_empty() || domain.contains(char::is_whitespace) {
        return Err(StoreError::invalid(
            "address",
            format!("{address:?} has no valid domain"),
        ));
    }
    // Control characters (a NUL in a quoted local part, RFC 5321 §4.1.2 qtextSMTP excludes
    // them) name nobody here, and PostgreSQL's TEXT cannot even hold a NUL.
    if local.contains(char::is_control) {
        return Err(StoreError::invalid(
            "address",
            format!("{address:?} has control characters"),
        ));
    }
    if local.contains(char::is_whitespace) {
        return Err(StoreError::invalid(
            "address",
            format!("{address:?} has spaces"),
        ));
    }
    Ok((local.to_owned(), domain.to_ascii_lowercase()))
}

impl Store {
    // ---- domains ----

    pub async fn add_domain(&self, name: &Domain) -> Result<()> {
        let name = name.clone();
        self.writer
            .run(Scope::directory(), move |conn| {
                Box::pin(async move {
                    let inserted = sqlx::query(
                        "INSERT INTO domains (name) VALUES ($1) ON CONFLICT DO NOTHING",
                    )
                    .bind(name.as_str())
                    .execute(&mut *conn)
                    .await?;
                    if inserted.rows_affected() == 0 {
                        return Err(StoreError::AlreadyExists(format!("domain {name}")));
                    }
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    pub async fn list_domains(&self) -> Result<Vec<Domain>> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM domains ORDER BY name")
            .fetch_all(&self.reader)
            .await?;
        Ok(names.into_iter().map(Domain::from_stored).collect())
    }

    /// Removes a domain with its accounts, aliases and their mail.
    pub async fn remove_domain(&self, name: &Domain) -> Result<()> {
        let name = name.clone();
        self.writer
            .run(Scope::directory(), move |conn| {
                Box::pin(async move {
                    // lower(): LIKE ignores ASCII case on SQLite only.
                    sqlx::query("DELETE FROM aliases WHERE lower(address) LIKE $1 ESCAPE '\\'")
                        .bind(format!("%@{}", like_escape(name.as_str())))
                        .execute(&mut *conn)
                        .await?;
                    let removed = sqlx::query("DELETE FROM domains WHERE name = $1")
                        .bind(name.as_str())
                        .execute(&mut *conn)
                        .await?;
                    if removed.rows_affected() == 0 {
                        return Err(StoreError::not_found("domain", name));
                    }
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    pub async fn is_local_domain(&self, domain: &Domain) -> Result<bool> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM domains WHERE name = $1")
                .bind(domain.as_str())
                .fetch_one(&self.reader)
                .await?
                > 0,
        )
    }

    /// [`Store::is_local_domain`] of the domain part of an address: a name that is no
    /// [`Domain`] is no local domain.
    pub(crate) async fn names_local_domain(&self, name: &str) -> Result<bool> {
        match Domain::new(name) {
            Ok(domain) => self.is_local_domain(&domain).await,
            Err(_) => Ok(false),
        }
    }

    // ---- accounts ----

    /// Creates an account with its default mailboxes. The domain must exist.
    pub async fn add_account(&self, email: &str, password: &Secret) -> Result<AccountId> {
        let (local, domain) = split_address(email)?;
        let email = format!("{local}@{domain}");
        let hash = hash_password(password.clone()).await?;
        self.writer
            .run(Scope::directory(), move |conn| {
                Box::pin(async move {
                    let domain_id = domain_id(conn, &domain).await?;
                    refuse_taken_address(conn, &email).await?;
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO accounts (email, domain_id, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(&email)
                    .bind(domain_id)
                    .bind(&hash)
                    .bind(unix_now())
                    .fetch_one(&mut *conn)
                    .await?;
                    let account = AccountId(id);
                    for (name, role) in DEFAULT_MAILBOXES {
                        mailboxes::insert_mailbox(conn, account, name, *role, true).await?;
                    }
                    Ok(JobOutput::new(account, Vec::new()))
                })
            })
            .await
    }

    pub async fn set_password(&self, email: &str, password: &Secret) -> Result<()> {
        let hash = hash_password(password.clone()).await?;
        self.change_one(
            "UPDATE accounts SET password_hash = $2 WHERE lower(email) = lower($1)",
            email,
            "account",
            |query| query.bind(hash),
        )
        .await
    }

    pub async fn set_quota(&self, email: &str, quota_bytes: Option<i64>) -> Result<()> {
        self.change_one(
            "UPDATE accounts SET quota_bytes = $2 WHERE lower(email) = lower($1)",
            email,
            "account",
            move |query| query.bind(quota_bytes),
        )
        .await
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        let rows =
            sqlx::query("SELECT id, email, quota_bytes, used_bytes FROM accounts ORDER BY email")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.iter().map(account_from_row).collect())
    }

    pub async fn account(&self, id: AccountId) -> Result<Account> {
        let row =
            sqlx::query("SELECT id, email, quota_bytes, used_bytes FROM accounts WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.reader)
                .await?
                .ok_or_else(|| StoreError::not_found("account", id))?;
        Ok(account_from_row(&row))
    }

    /// The account whose address is `email` (case-insensitive), not through aliases: an
    /// RFC 4467 URLAUTH URL names its owner by login name, which is the address.
    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        // A name with a control character is no account (and PostgreSQL refuses a NUL).
        if email.contains(char::is_control) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT id, email, quota_bytes, used_bytes FROM accounts WHERE lower(email) = lower($1)",
        )
        .bind(email)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(account_from_row))
    }

    /// Removes an account, its aliases and all its mail.
    pub async fn remove_account(&self, email: &str) -> Result<()> {
        self.change_one(
            "DELETE FROM accounts WHERE lower(email) = lower($1)",
            email,
            "account",
            |query| query,
        )
        .await
    }

    /// Checks a login. Returns the account when the password matches; `None` for an
    /// unknown account or a wrong password alike, taking the same time for both.
    pub async fn authenticate(&self, email: &str, password: &Secret) -> Result<Option<Account>> {
        // A name with a control character is no account (and PostgreSQL refuses a NUL).
        let row = if email.contains(char::is_control) {
            None
        } else {
            sqlx::query("SELECT id, email, quota_bytes, used_bytes, password_hash FROM accounts WHERE lower(email) = lower($1)")
                .bind(email.trim())
                .fetch_optional(&self.reader)
                .await?
        };
        let (account, hash) = match &row {
            Some(row) => (
                Some(account_from_row(row)),
                row.try_get::<String, _>("password_hash")?,
            ),
            None => (None, DUMMY_HASH.to_owned()),
        };
        let matches = verify_password(password.clone(), hash).await?;
        Ok(account.filter(|_| matches))
    }

    // ---- aliases ----

    /// Adds an alias `local@domain` (or a catch-all `@domain`) delivering to `target`.
    pub async fn add_alias(&self, address: &str, target: &str) -> Result<()> {
        let address = address.trim().to_owned();
        let (local, domain) = split_address(&address)?;
        let address = format!("{local}@{domain}");
        let target = target.trim().to_owned();
        self.writer
            .run(Scope::directory(), move |conn| {
                Box::pin(async move {
                    domain_id(conn, &domain).await?;
                    let account: Option<i64> = sqlx::query_scalar(
                        "SELECT id FROM accounts WHERE lower(email) = lower($1)",
                    )
                    .bind(&target)
                    .fetch_optional(&mut *conn)
                    .await?;
                    let account =
                        account.ok_or_else(|| StoreError::not_found("account", target))?;
                    refuse_taken_address(conn, &address).await?;
                    sqlx::query("INSERT INTO aliases (address, account_id) VALUES ($1, $2)")
                        .bind(&address)
                        .bind(account)
                        .execute(&mut *conn)
                        .await?;
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    pub async fn list_aliases(&self) -> Result<Vec<Alias>> {
        let rows = sqlx::query(
            "SELECT aliases.address, accounts.email FROM aliases JOIN accounts ON accounts.id = aliases.account_id ORDER BY aliases.address",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Alias {
                    address: row.try_get(0)?,
                    target: row.try_get(1)?,
                })
            })
            .collect()
    }

    pub async fn remove_alias(&self, address: &str) -> Result<()> {
        self.change_one(
            "DELETE FROM aliases WHERE lower(address) = lower($1)",
            address,
            "alias",
            |query| query,
        )
        .await
    }

    /// Runs `statement` as a writer job with `$1` bound to `key` (trimmed), then what
    /// `bind` adds; `NotFound` naming `what` when it changed no row.
    async fn change_one(
        &self,
        statement: &'static str,
        key: &str,
        what: &'static str,
        bind: impl FnOnce(AnyQuery) -> AnyQuery + Send + 'static,
    ) -> Result<()> {
        let key = key.trim().to_owned();
        self.writer
            .run(Scope::directory(), move |conn| {
                Box::pin(async move {
                    let changed = bind(sqlx::query(statement).bind(key.clone()))
                        .execute(&mut *conn)
                        .await?;
                    if changed.rows_affected() == 0 {
                        return Err(StoreError::NotFound { what, key });
                    }
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }

    /// Finds the account that receives mail for `address`: the account itself, an alias,
    /// the same with a `+tag` removed from the local part, then a catch-all `@domain`.
    pub async fn resolve_recipient(&self, address: &str) -> Result<Option<AccountId>> {
        let Ok((local, domain)) = split_address(address) else {
            return Ok(None);
        };
        if let Some(account) = self.resolve_owned(&local, &domain).await? {
            return Ok(Some(account));
        }
        let catch_all: Option<i64> =
            sqlx::query_scalar("SELECT account_id FROM aliases WHERE lower(address) = lower($1)")
                .bind(format!("@{domain}"))
                .fetch_optional(&self.reader)
                .await?;
        if let Some(account) = catch_all {
            return Ok(Some(AccountId(account)));
        }
        // RFC 5321 §4.5.1: every domain must accept mail for its postmaster (the local
        // part compared without regard to case). Without an account or alias of that
        // name it goes to the domain's first account (for the quickstart, the account
        // made at the first start), else to the installation's first account.
        if local.eq_ignore_ascii_case("postmaster") && self.names_local_domain(&domain).await? {
            // One statement, whatever the number of accounts: a sender may name the
            // postmaster in every RCPT. `!` escapes LIKE's wildcards in the domain.
            let escaped: String = domain
                .to_lowercase()
                .chars()
                .flat_map(|c| match c {
                    '!' | '%' | '_' => vec!['!', c],
                    c => vec![c],
                })
                .collect();
            let first: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM accounts
                 ORDER BY CASE WHEN lower(email) LIKE $1 ESCAPE '!' THEN 0 ELSE 1 END, id
                 LIMIT 1",
            )
            .bind(format!("%@{escaped}"))
            .fetch_optional(&self.reader)
            .await?;
            return Ok(first.map(AccountId));
        }
        Ok(None)
    }

    /// True when `account` may use `address` as its sender: its own address, one of its
    /// aliases, or either with a `+tag`. A catch-all does not make every address its own.
    pub async fn account_owns_address(&self, account: AccountId, address: &str) -> Result<bool> {
        let Ok((local, domain)) = split_address(address) else {
            return Ok(false);
        };
        Ok(self.resolve_owned(&local, &domain).await? == Some(account))
    }

    /// The domains `account` has an address in: that of its own address and those of its
    /// aliases (a catch-all `@domain` included), lower-case, sorted, each once.
    pub async fn account_domains(&self, account: AccountId) -> Result<Vec<Domain>> {
        let addresses: Vec<String> = sqlx::query_scalar(
            "SELECT email FROM accounts WHERE id = $1 UNION ALL SELECT address FROM aliases WHERE account_id = $1",
        )
        .bind(account.0)
        .fetch_all(&self.reader)
        .await?;
        // Each was a local domain when the address was added (`domain_id`).
        let mut domains: Vec<Domain> = addresses
            .iter()
            .filter_map(|address| address.rsplit_once('@'))
            .filter_map(|(_, domain)| Domain::new(domain).ok())
            .collect();
        domains.sort();
        domains.dedup();
        Ok(domains)
    }

    async fn resolve_owned(&self, local: &str, domain: &str) -> Result<Option<AccountId>> {
        let mut candidates = vec![format!("{local}@{domain}")];
        // Plus-addressing: user+tag@domain delivers to user@domain.
        if let Some((base, _tag)) = local.split_once('+')
            && !base.is_empty()
        {
            candidates.push(format!("{base}@{domain}"));
        }
        for candidate in candidates {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM accounts WHERE lower(email) = lower($1) UNION ALL SELECT account_id FROM aliases WHERE lower(address) = lower($1) LIMIT 1",
            )
            .bind(&candidate)
            .fetch_optional(&self.reader)
            .await?;
            if let Some(id) = found {
                return Ok(Some(AccountId(id)));
            }
        }
        Ok(None)
    }
}

/// A valid argon2id hash of a random password, verified against when the account does
/// not exist so that a failed login takes as long either way.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$H6LJzUgrPlxvCaSgPcCgc6+cHBEC5nxVPL4aVdErtj8";

fn account_from_row(row: &sqlx::any::AnyRow) -> Account {
    Account {
        id: AccountId(row.get("id")),
        email: row.get("email"),
        quota_bytes: row.get("quota_bytes"),
        used_bytes: row.get("used_bytes"),
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
