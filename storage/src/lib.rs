//! Mailbox storage for letterbox: the only way to read or change mail state.
//!
//! Every change runs through one writer task (see [`writer`]) that commits in groups and
//! then publishes [`Change`]s in commit order. Reads go to a pool of connections that
//! see every committed change (SQLite WAL). The front ends (SMTP, IMAP) use this crate's
//! public API only.
//!
//! Backends: SQLite today (the embedded default); the API is shaped so that PostgreSQL
//! can stand behind it with its own migrations.
#![forbid(unsafe_code)]

mod accounts;
mod cache;
mod error;
mod mailboxes;
mod messages;
pub mod mime;
mod notify;
mod password;
mod queue;
mod rfc5322;
mod types;
mod writer;

pub use accounts::{Account, Alias};
pub use error::{Result, StoreError};
pub use mailboxes::{Mailbox, MailboxStatus};
pub use messages::{
    Delivered, Delivery, MailboxChanges, MessageEntry, Outbound, StoreFlagsOutcome,
};
pub use mime::MessageMeta;
pub use notify::{CHANGE_CHANNEL_CAPACITY, Change, ChangeKind};
pub use password::generate_password;
pub use queue::{QueueAttempt, QueueItem, QueueItemState, QueueStats, QueuedRecipient};
pub use types::*;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use writer::Writer;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a write waits for another process (the admin CLI) holding the database lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers: enough for IMAP sessions to read in parallel on a small machine.
const SQLITE_READ_CONNECTIONS: u32 = 8;

/// Counter: messages placed in a mailbox by [`Store::deliver`] (one per mailbox).
pub const MESSAGES_DELIVERED: &str = "letterbox_messages_delivered_total";
/// Histogram: seconds from [`Store::deliver`] being called to its commit being durable.
pub const DELIVER_SECONDS: &str = "letterbox_storage_deliver_seconds";
/// Histogram: seconds one group commit of the writer takes (every job in it waits that).
pub const COMMIT_SECONDS: &str = "letterbox_storage_commit_seconds";

/// Handle to the mail store. Cheap to clone; every clone shares the writer and readers.
#[derive(Clone)]
pub struct Store {
    reader: SqlitePool,
    writer: Writer,
    changes: broadcast::Sender<Change>,
    /// Meta and header bytes of messages read recently (see `cache` for why it is sound).
    cache: Arc<cache::MessageCache>,
}

impl Store {
    /// Opens (creating when missing) the store at `url`: `sqlite:PATH`, `sqlite://PATH`,
    /// or a plain file path. Runs migrations.
    pub async fn open(url: &str) -> Result<Store> {
        let options = sqlite_options(url)?;
        let mut write_conn = SqliteConnection::connect_with(&options).await?;
        SQLITE_MIGRATIONS.run(&mut write_conn).await?;
        messages::backfill_unfolded_headers(&mut write_conn).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(SQLITE_READ_CONNECTIONS)
            .connect_with(options)
            .await?;
        let (changes, _) = broadcast::channel(CHANGE_CHANNEL_CAPACITY);
        let writer = Writer::start(write_conn, changes.clone());
        Ok(Store {
            reader,
            writer,
            changes,
            cache: Arc::default(),
        })
    }

    /// A trivial read, for health checks: `Ok` when the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.reader)
            .await?;
        Ok(())
    }

    /// Subscribes to every change committed from now on, in commit order.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions> {
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url)?
    } else {
        SqliteConnectOptions::new().filename(Path::new(url))
    };
    Ok(options
        .create_if_missing(true)
        // Durability: a commit returns only after the WAL is fsynced.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .disable_statement_logging())
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
