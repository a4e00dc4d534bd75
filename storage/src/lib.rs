//! Mailbox storage for letterbox: the only way to read or change mail state.
//!
//! Every change runs through a writer task (see [`writer`]) that commits in groups and
//! then publishes [`Change`]s. Reads go to a pool of connections that see every
//! committed change (SQLite WAL). The front ends (SMTP, IMAP) use this crate's public
//! API only.
//!
//! Backends: SQLite (the embedded default) and PostgreSQL (several nodes may share one),
//! both through sqlx's `Any` driver with one set of statements (placeholders `$N`, which
//! both accept) and migrations per backend. SQLite has one writer per process. On
//! PostgreSQL each node has several writers, and every write transaction locks the
//! accounts it changes (see [`locks`]): writes to different accounts run side by side on
//! every node, while UIDs and MODSEQs of a mailbox are handed out and committed in one
//! order across nodes, as on SQLite.
#![forbid(unsafe_code)]

mod accounts;
mod cache;
mod delivery;
mod entries;
mod error;
pub mod fulltext;
mod id_sequence;
mod import;
mod job;
mod locks;
mod mailboxes;
mod message_reads;
mod messages;
mod metadata;
mod migrate;
pub mod mime;
mod notify;
mod password;
pub mod preview;
mod queue;
mod recent;
mod recipient;
pub mod rfc5322;
mod shared_changes;
mod sieve;
mod subject;
mod types;
mod urlauth;
mod writer;

/// Test databases on CI's PostgreSQL, shared with the storage suite.
#[cfg(test)]
#[path = "../../tests/common/postgres.rs"]
mod test_postgres;

pub use accounts::{Account, Alias};
pub use delivery::{Delivered, Delivery, crlf_line_ends};
pub use error::{Result, StoreError};
pub use import::ImportedMessage;
pub use mailboxes::{Mailbox, MailboxStatus};
pub use messages::{MailboxChanges, MessageEntry, StoreFlagsOutcome};
pub use metadata::{
    EntryName, MAX_METADATA_BYTES_PER_ACCOUNT, MAX_METADATA_ENTRIES_PER_ACCOUNT,
    MAX_METADATA_ENTRIES_PER_MAILBOX, MAX_METADATA_NAME_BYTES, MAX_METADATA_VALUE_BYTES,
    MetadataDepth, MetadataEntry, MetadataOwner,
};
pub use migrate::CopyReport;
pub use mime::MessageMeta;
pub use notify::{CHANGE_CHANNEL_CAPACITY, Change, ChangeKind, MailboxWatch};
pub use password::generate_password;
pub use queue::{Outbound, QueueAttempt, QueueItem, QueueItemState, QueueStats, QueuedRecipient};
pub use recipient::{LocalRecipient, RecipientLookup};
pub use sieve::{
    MAX_SIEVE_NAME_BYTES, MAX_SIEVE_SCRIPT_BYTES, MAX_SIEVE_SCRIPTS, SieveScript, SieveScriptInfo,
    VacationRecord, check_sieve_name,
};
pub use types::*;
pub use urlauth::{URLAUTH_KEY_BYTES, UrlAuthKey};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool};
use sqlx::{ConnectOptions, Connection, Executor};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use writer::Writer;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a write waits for another process (the admin CLI) holding the database lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers: enough for IMAP sessions to read in parallel on a small machine.
const SQLITE_READ_CONNECTIONS: u32 = 8;
/// Readers per node on PostgreSQL: each is a server process there, so several nodes
/// together (with their writers, listener and notifier) stay well under its default
/// `max_connections` of 100.
const POSTGRES_READ_CONNECTIONS: u32 = 16;

/// Counter: messages placed in a mailbox by [`Store::deliver`] and [`Store::deliver_all`]
/// (one per mailbox).
pub const MESSAGES_DELIVERED: &str = "letterbox_messages_delivered_total";
/// Histogram: seconds from [`Store::deliver`] (or [`Store::deliver_all`]) being called to
/// its commit being durable.
pub const DELIVER_SECONDS: &str = "letterbox_storage_deliver_seconds";
/// Histogram: seconds one group commit of the writer takes (every job in it waits that).
pub const COMMIT_SECONDS: &str = "letterbox_storage_commit_seconds";

/// The database behind a [`Store`]: the SQL both run is the same except where a method
/// of this type says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file, one node: the embedded default.
    Sqlite,
    /// A PostgreSQL server that several letterbox nodes may share.
    Postgres,
}

impl Backend {
    /// The backend a storage URL names: `postgres://` or `postgresql://` is PostgreSQL,
    /// everything else (`sqlite:PATH`, a plain path) SQLite.
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// The backend of a connection (writer jobs get only their connection).
    pub(crate) fn of_connection(conn: &AnyConnection) -> Backend {
        if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// `sql` for this backend. The statements are written for both; the one SQLite-only
    /// clause is `INDEXED BY messages_size` (see migration 0004), a hint that
    /// PostgreSQL's planner does not need and its grammar does not have.
    pub(crate) fn sql(self, sql: &'static str) -> std::borrow::Cow<'static, str> {
        match self {
            Backend::Sqlite => sql.into(),
            Backend::Postgres => sql.replace(" INDEXED BY messages_size", "").into(),
        }
    }
}

/// The largest message a server takes unless configured otherwise, in bytes: SMTP's SIZE
/// (RFC 1870), IMAP's APPENDLIMIT (RFC 7889) and the configuration's
/// `limits.max_message_size` start from this one figure, so the front ends agree.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 50 * 1024 * 1024;

/// Placeholders per `IN (...)` list; SQLite allows 32766 variables, we stay far below.
pub(crate) const IN_LIST_CHUNK: usize = 500;

/// `$first, $first+1, ...`: `count` numbered parameters (both backends take `$N`).
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Handle to the mail store. Cheap to clone; every clone shares the writer and readers.
#[derive(Clone)]
pub struct Store {
    reader: AnyPool,
    writer: Writer,
    changes: Arc<notify::ChangeHub>,
    /// Meta and header bytes of messages read recently (see `cache` for why it is sound).
    cache: Arc<cache::MessageCache>,
    /// The `\Recent` claims this process saw committed, per mailbox (`recent.rs`).
    recent_claims: Arc<recent::RecentClaims>,
    /// `changes_since` reads shared by the sessions one commit wakes (`shared_changes`).
    shared_reads: Arc<shared_changes::SharedReads>,
    /// SQLite: deliveries tell the full-text indexer what they queued (`fulltext/indexer.rs`).
    indexer: Arc<fulltext::IndexerSignals>,
    backend: Backend,
}

impl Store {
    /// Opens (creating when missing) the store at `url`: `postgres://...` for
    /// PostgreSQL, otherwise SQLite at `sqlite:PATH`, `sqlite://PATH` or a plain file
    /// path. Runs migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url);
        let changes = notify::ChangeHub::new();
        // Tells this node's NOTIFY payloads from other nodes' (PostgreSQL).
        let node: u64 = rand::random();
        let (reader, writer) = match backend {
            Backend::Sqlite => {
                let options =
                    AnyConnectOptions::from_str(&sqlite_url(url))?.disable_statement_logging();
                let mut write_conn = AnyConnection::connect_with(&options).await?;
                // Durability: a commit returns only after the WAL is fsynced.
                write_conn
                    .execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
                    .await?;
                set_sqlite_connection_options(&mut write_conn).await?;
                SQLITE_MIGRATIONS.run(&mut write_conn).await?;
                messages::backfill_unfolded_headers(&mut write_conn).await?;
                writer::configure_writer_connection(&mut write_conn, backend).await?;
                let reader = AnyPoolOptions::new()
                    .max_connections(SQLITE_READ_CONNECTIONS)
                    // A connection to a file in this process has no peer to lose: the
                    // ping sqlx sends before every checkout is a round trip to the
                    // connection's thread and nothing else (sqlx still pings at release).
                    // The profile of 2,000 IDLE sessions woken at once showed the pings
                    // at 8% of the server's CPU.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move { set_sqlite_connection_options(conn).await })
                    })
                    .connect_with(options.clone())
                    .await?;
                let writer = Writer::start_sqlite(write_conn, options, changes.clone());
                (reader, writer)
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                let mut first = AnyConnection::connect_with(&options).await?;
                // sqlx holds an advisory lock while migrating: nodes starting together
                // migrate once.
                POSTGRES_MIGRATIONS.run(&mut first).await?;
                let mut write_conns = vec![first];
                while write_conns.len() < writer::POSTGRES_WRITE_CONNECTIONS {
                    write_conns.push(AnyConnection::connect_with(&options).await?);
                }
                for conn in &mut write_conns {
                    writer::configure_writer_connection(conn, backend).await?;
                }
                let reader = AnyPoolOptions::new()
                    .max_connections(POSTGRES_READ_CONNECTIONS)
                    .connect_with(options.clone())
                    .await?;
                notify::listen_to_other_nodes(url, node, Arc::downgrade(&changes)).await?;
                let notifier = notify::Notifier::start(options.clone(), node);
                let writer = Writer::start_postgres(
                    write_conns,
                    options,
                    changes.clone(),
                    notifier,
                    reader.clone(),
                );
                (reader, writer)
            }
        };
        Ok(Store {
            reader,
            writer,
            changes,
            cache: Arc::default(),
            recent_claims: Arc::default(),
            shared_reads: Arc::default(),
            indexer: fulltext::IndexerSignals::new(),
            backend,
        })
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial read, for health checks: `Ok` when the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query_scalar::<_, i64>("SELECT CAST(1 AS BIGINT)")
            .fetch_one(&self.reader)
            .await?;
        Ok(())
    }

    /// Subscribes to every change committed from now on, in commit order (on PostgreSQL
    /// also those committed by other nodes; see [`notify`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Watches one mailbox: woken by changes committed to it from now on (on PostgreSQL
    /// also by other nodes), and by a [`ChangeKind::Resync`]. What changed is read with
    /// `changes_since`.
    pub fn watch_mailbox(&self, mailbox: MailboxId) -> MailboxWatch {
        self.changes.watch(mailbox)
    }

    /// Watches the account's list of mailboxes and subscriptions (IMAP NOTIFY, RFC 5465
    /// §5.4, §5.5): woken when one of its mailboxes is created, deleted or renamed, when
    /// its subscriptions change, by a [`ChangeKind::Resync`], and on PostgreSQL by any
    /// change another node made to the account. What changed is read by listing again.
    pub fn watch_account(&self, account: AccountId) -> MailboxWatch {
        self.changes.watch_account(account)
    }
}

/// The sqlx URL of a SQLite store, one that creates the file when missing (unless the URL
/// sets its own `mode`): a plain path is made into a `sqlite://` URL.
fn sqlite_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return match url.split_once('?') {
            Some((_, query)) if query.split('&').any(|pair| pair.starts_with("mode=")) => {
                url.to_owned()
            }
            Some(_) => format!("{url}&mode=rwc"),
            None => format!("{url}?mode=rwc"),
        };
    }
    // The path is percent-decoded by sqlx: encode what a URL would otherwise read as
    // its own syntax.
    let mut path = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '%' => path.push_str("%25"),
            '?' => path.push_str("%3F"),
            '#' => path.push_str("%23"),
            c => path.push(c),
        }
    }
    format!("sqlite://{path}?mode=rwc")
}

/// The file a SQLite storage URL names, as [`Store::open`] reads it: `sqlite://PATH` and
/// `sqlite:PATH` are URLs (the query cut off, percent-escapes decoded), anything else a
/// plain path. `None` for PostgreSQL and for an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if Backend::of_url(url) != Backend::Sqlite {
        return None;
    }
    let url = sqlite_url(url);
    let database = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()?;
    if database == ":memory:" {
        return None;
    }
    // sqlx's own reading of the URL, the one the store is opened with.
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url).ok()?;
    Some(options.get_filename().to_owned())
}

/// Per-connection settings of SQLite (the Any driver takes only a URL, so they are
/// PRAGMAs run after connecting).
async fn set_sqlite_connection_options(conn: &mut AnyConnection) -> sqlx::Result<()> {
    conn.execute(
        format!(
            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}",
            SQLITE_BUSY_TIMEOUT.as_millis()
        )
        .as_str(),
    )
    .await?;
    Ok(())
}

/// Seconds since the Unix epoch, as storage keeps times (0 if the clock is before it).
pub fn unix_now() -> i64 {
    UnixTime::now().0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn sqlite_file_reads_urls_as_sqlx_does() {
        for (url, file) in [
            ("/var/lib/mail.sqlite", Some("/var/lib/mail.sqlite")),
            (
                "sqlite:///var/lib/mail.sqlite?mode=rwc",
                Some("/var/lib/mail.sqlite"),
            ),
            ("sqlite:mail.sqlite", Some("mail.sqlite")),
            ("sqlite://data/a%3Fb%25.sqlite", Some("data/a?b%.sqlite")),
            // A plain path is not a URL: nothing in it is an escape.
            ("data/a%3F.sqlite", Some("data/a%3F.sqlite")),
            ("sqlite://100%.sqlite", Some("100%.sqlite")),
            ("sqlite::memory:", None),
            ("postgres://u@localhost/mail", None),
        ] {
            assert_eq!(sqlite_file(url), file.map(PathBuf::from), "{url}");
        }
        // What `sqlite_url` makes of a plain path names the same file.
        let odd = "/tmp/a%b?c#d.sqlite";
        let url = sqlite_url(odd);
        assert_eq!(sqlite_file(&url), Some(PathBuf::from(odd)));
    }
}
