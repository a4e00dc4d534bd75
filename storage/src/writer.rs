//! The single writer with group commit.
//!
//! Every change to mail goes through one task that owns the write connection. It takes
//! all the jobs waiting in its channel, runs each inside its own SAVEPOINT of one
//! transaction, commits once (one fsync for the whole batch), and only then answers the
//! callers and publishes the changes. A job that fails is rolled back to its savepoint
//! alone, so each job stays all or nothing while the batch shares the fsync.
//!
//! Invariants: a caller is answered only after its job is durable; changes are published
//! in commit order; nothing here touches a network socket.
//!
//! PostgreSQL (several nodes): each batch's transaction first takes one advisory lock
//! that every node's writer takes ([`POSTGRES_WRITE_LOCK`]), so write transactions of all
//! nodes run one after another. That keeps what SQLite gives for free: UIDs and MODSEQs
//! are handed out in commit order (a session that has read up to MODSEQ n never later
//! finds a commit below n), read-then-write inside a job sees the latest commit, and two
//! batches can never deadlock on rows they lock in different orders. Group commit keeps
//! the cost of that order to one lock per batch, not per message.

use crate::Backend;
use crate::error::{Result, StoreError};
use crate::notify::{CHANGES_CHANNEL, notify_payloads};
use crate::notify::{Change, ChangeHub};
use sqlx::AnyConnection;
use sqlx::any::AnyConnectOptions;
use sqlx::{Connection, Executor};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The most jobs committed in one transaction; bounds the time a caller waits behind others.
const MAX_JOBS_PER_COMMIT: usize = 512;

/// The advisory lock key every node's writer takes for its transaction (PostgreSQL):
/// "letterbx" in ASCII, so that it does not collide with another application's lock.
const POSTGRES_WRITE_LOCK: i64 = 0x6c65_7474_6572_6278;

/// PostgreSQL ends a writer transaction that waits this long on its node (the node froze
/// or lost the network mid-batch), so that the write lock it holds does not stop every
/// other node's writes until TCP gives up on it (hours).
const POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT: &str = "60s";

/// Session settings of a writer connection; run on every (re)connect.
pub(crate) async fn configure_writer_connection(
    conn: &mut AnyConnection,
    backend: Backend,
) -> sqlx::Result<()> {
    if backend == Backend::Postgres {
        conn.execute(
            format!(
                "SET idle_in_transaction_session_timeout = '{POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT}'"
            )
            .as_str(),
        )
        .await?;
    }
    Ok(())
}

/// What a job gives back: its result and the changes to publish once committed.
pub(crate) struct JobOutput<T> {
    pub value: T,
    pub changes: Vec<Change>,
}

impl<T> JobOutput<T> {
    pub fn new(value: T, changes: Vec<Change>) -> Self {
        JobOutput { value, changes }
    }
}

trait ErasedJob: Send {
    /// Runs the job; returns the changes on success (the result is kept inside).
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Option<Vec<Change>>>;
    /// Answers the caller: `Ok` when the batch committed.
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

type JobFn<T> =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<JobOutput<T>>> + Send>;

struct TypedJob<T> {
    work: Option<JobFn<T>>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> ErasedJob for TypedJob<T> {
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Option<Vec<Change>>> {
        Box::pin(async move {
            let work = self.work.take()?;
            match work(conn).await {
                Ok(output) => {
                    self.outcome = Some(Ok(output.value));
                    Some(output.changes)
                }
                Err(error) => {
                    self.outcome = Some(Err(error));
                    None
                }
            }
        })
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let answer = match (committed, self.outcome) {
            (_, Some(Err(error))) => Err(error),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(reason), _) => Err(StoreError::CommitFailed(reason)),
            (Ok(()), None) => Err(StoreError::WriterStopped),
        };
        // The caller may have gone away (connection dropped); the work is done either way.
        let _ = self.reply.send(answer);
    }
}

/// Handle to the writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Box<dyn ErasedJob>>,
}

impl Writer {
    pub fn start(
        conn: AnyConnection,
        connect: AnyConnectOptions,
        backend: Backend,
        node: u64,
        changes: Arc<ChangeHub>,
    ) -> Writer {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let database = Database {
            conn,
            connect,
            backend,
            node,
        };
        tokio::spawn(run_writer(database, receiver, changes));
        Writer { jobs }
    }

    /// Runs `work` in the writer's transaction and waits until it is durable.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<JobOutput<T>>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work: Some(Box::new(work)),
            outcome: None,
            reply,
        };
        self.jobs
            .send(Box::new(job))
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The writer's connection and what it needs to make a new one.
struct Database {
    conn: AnyConnection,
    connect: AnyConnectOptions,
    backend: Backend,
    /// This node's id in NOTIFY payloads (PostgreSQL).
    node: u64,
}

impl Database {
    /// After a failed batch: a connection that no longer answers (the server restarted,
    /// the network broke) is replaced, so the next batch can succeed.
    async fn reconnect_when_broken(&mut self) {
        if self.conn.ping().await.is_ok() {
            return;
        }
        let connected = match AnyConnection::connect_with(&self.connect).await {
            Ok(mut conn) => configure_writer_connection(&mut conn, self.backend)
                .await
                .map(|()| conn),
            Err(error) => Err(error),
        };
        match connected {
            Ok(conn) => {
                tracing::info!("storage writer reconnected");
                let broken = std::mem::replace(&mut self.conn, conn);
                let _ = broken.close_hard().await;
            }
            Err(error) => tracing::error!(%error, "storage writer cannot reconnect"),
        }
    }
}

async fn run_writer(
    mut database: Database,
    mut receiver: mpsc::UnboundedReceiver<Box<dyn ErasedJob>>,
    changes: Arc<ChangeHub>,
) {
    let mut batch: Vec<Box<dyn ErasedJob>> = Vec::new();
    // recv() returns None once every Store handle is dropped: the writer ends after
    // finishing what it was given, so shutdown never loses an accepted job.
    while let Some(first) = receiver.recv().await {
        batch.push(first);
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let (committed, published) = commit_batch(&mut database, &mut batch).await;
        metrics::histogram!(crate::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        if committed.is_ok() {
            changes.publish(published);
        } else if let Err(reason) = &committed {
            tracing::error!(%reason, jobs = batch.len(), "storage commit failed");
            // A COMMIT whose answer was lost may have committed after all (other nodes
            // then hear of it): sessions here reread their mailboxes to be sure.
            changes.publish([Change::resync()]);
            database.reconnect_when_broken().await;
        }
        for job in batch.drain(..) {
            job.finish(committed.clone());
        }
    }
    let _ = database.conn.close().await;
}

async fn commit_batch(
    database: &mut Database,
    batch: &mut [Box<dyn ErasedJob>],
) -> (Result<(), String>, Vec<Change>) {
    let mut published = Vec::new();
    if begin(&mut database.conn, database.backend).await.is_err() {
        // No job has run yet, so the batch can start over: on a connection that broke
        // while the writer was idle (the database restarted), a new one.
        let _ = database.conn.execute("ROLLBACK").await;
        database.reconnect_when_broken().await;
        if let Err(error) = begin(&mut database.conn, database.backend).await {
            let _ = database.conn.execute("ROLLBACK").await;
            return (Err(error.to_string()), published);
        }
    }
    let conn = &mut database.conn;
    // A job alone needs no savepoint: if it fails, the whole transaction is its own and
    // is rolled back (two statements fewer for a lone job, on PostgreSQL two round trips).
    if let [job] = batch {
        return match job.run(conn).await {
            Some(changes) => {
                published.extend(changes);
                notify_and_commit(database, published).await
            }
            None => {
                let _ = database.conn.execute("ROLLBACK").await;
                // Nothing to commit; the job's own error is its answer (TypedJob::finish).
                (Ok(()), Vec::new())
            }
        };
    }
    for job in batch.iter_mut() {
        if let Err(error) = conn.execute("SAVEPOINT job").await {
            let _ = conn.execute("ROLLBACK").await;
            return (Err(error.to_string()), Vec::new());
        }
        let result = job.run(conn).await;
        let end = match result {
            Some(changes) => {
                published.extend(changes);
                conn.execute("RELEASE job").await
            }
            None => match conn.execute("ROLLBACK TO job").await {
                Ok(_) => conn.execute("RELEASE job").await,
                Err(error) => Err(error),
            },
        };
        if let Err(error) = end {
            let _ = conn.execute("ROLLBACK").await;
            return (Err(error.to_string()), Vec::new());
        }
    }
    notify_and_commit(database, published).await
}

/// Notifies other nodes (PostgreSQL) and commits the batch's transaction.
async fn notify_and_commit(
    database: &mut Database,
    published: Vec<Change>,
) -> (Result<(), String>, Vec<Change>) {
    let conn = &mut database.conn;
    if database.backend == Backend::Postgres {
        for payload in notify_payloads(database.node, &published) {
            // Delivered to the other nodes at COMMIT, and only if it commits.
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(payload)
                .execute(&mut *conn)
                .await;
            if let Err(error) = sent {
                let _ = conn.execute("ROLLBACK").await;
                return (Err(error.to_string()), Vec::new());
            }
        }
    }
    match conn.execute("COMMIT").await {
        Ok(_) => (Ok(()), published),
        Err(error) => {
            let _ = conn.execute("ROLLBACK").await;
            (Err(error.to_string()), Vec::new())
        }
    }
}

/// Opens the batch's transaction, holding the write lock from its first statement.
async fn begin(conn: &mut AnyConnection, backend: Backend) -> sqlx::Result<()> {
    match backend {
        // BEGIN IMMEDIATE takes the write lock now, so another process (the admin CLI)
        // waits on busy_timeout instead of failing halfway.
        Backend::Sqlite => conn.execute("BEGIN IMMEDIATE").await.map(drop),
        // Held until COMMIT or ROLLBACK (see the module's comment).
        Backend::Postgres => {
            conn.execute("BEGIN").await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(POSTGRES_WRITE_LOCK)
                .execute(&mut *conn)
                .await
                .map(drop)
        }
    }
}
