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

use crate::error::{Result, StoreError};
use crate::notify::Change;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Executor};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{broadcast, mpsc, oneshot};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The most jobs committed in one transaction; bounds the time a caller waits behind others.
const MAX_JOBS_PER_COMMIT: usize = 512;

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
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Option<Vec<Change>>>;
    /// Answers the caller: `Ok` when the batch committed.
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

type JobFn<T> =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<JobOutput<T>>> + Send>;

struct TypedJob<T> {
    work: Option<JobFn<T>>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> ErasedJob for TypedJob<T> {
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Option<Vec<Change>>> {
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
    pub fn start(conn: SqliteConnection, changes: broadcast::Sender<Change>) -> Writer {
        let (jobs, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_writer(conn, receiver, changes));
        Writer { jobs }
    }

    /// Runs `work` in the writer's transaction and waits until it is durable.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<JobOutput<T>>>
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

async fn run_writer(
    mut conn: SqliteConnection,
    mut receiver: mpsc::UnboundedReceiver<Box<dyn ErasedJob>>,
    changes: broadcast::Sender<Change>,
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
        let (committed, published) = commit_batch(&mut conn, &mut batch).await;
        metrics::histogram!(crate::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        if committed.is_ok() {
            for change in published {
                // No subscriber is fine: nobody is watching.
                let _ = changes.send(change);
            }
        } else if let Err(reason) = &committed {
            tracing::error!(%reason, jobs = batch.len(), "storage commit failed");
        }
        for job in batch.drain(..) {
            job.finish(committed.clone());
        }
    }
    let _ = conn.close().await;
}

async fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &mut [Box<dyn ErasedJob>],
) -> (Result<(), String>, Vec<Change>) {
    let mut published = Vec::new();
    // BEGIN IMMEDIATE takes the write lock now, so another process (the admin CLI)
    // waits on busy_timeout instead of failing halfway.
    if let Err(error) = conn.execute("BEGIN IMMEDIATE").await {
        return (Err(error.to_string()), published);
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
    match conn.execute("COMMIT").await {
        Ok(_) => (Ok(()), published),
        Err(error) => {
            let _ = conn.execute("ROLLBACK").await;
            (Err(error.to_string()), Vec::new())
        }
    }
}
