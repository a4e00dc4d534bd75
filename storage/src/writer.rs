//! The writers with group commit.
//!
//! Every change to mail goes through a writer: a task that owns one write connection.
//! It takes all the jobs waiting in its channel, runs each inside its own SAVEPOINT of
//! one transaction, commits once (one fsync for the whole batch), and only then answers
//! the callers and publishes the changes. A job that fails is rolled back to its
//! savepoint alone, so each job stays all or nothing while the batch shares the fsync.
//!
//! SQLite: one writer per process. `BEGIN IMMEDIATE` takes the database's write lock,
//! so write transactions run one after another (and the admin CLI, another process,
//! waits on `busy_timeout`). Group commit is what makes that fast.
//!
//! PostgreSQL: [`POSTGRES_WRITE_CONNECTIONS`] writers per node, each with its own
//! connection and channel ("lane"). A job goes to the lane of the smallest account it
//! locks, so one account's jobs of one node meet in one lane and share its commits. A
//! batch's transaction takes, in its first round trip, the advisory locks of every job
//! in it, in the one order of `locks.rs` (directory, then accounts ascending), after
//! taking the same keys in-process ([`LocalLocks`]). Writes to different accounts run
//! in parallel, on one node or several; writes to one account run one after another on
//! every node. Jobs queued on the lane while its transaction waits for its locks (held
//! by another node) or runs join it when the locks it holds cover theirs ([`Joiners`]):
//! they share its commit instead of waiting for one of their own. Neighbouring
//! deliveries of a batch that `letterbox_deliver` stores go in one statement
//! (`delivery/postgres.rs`): one round trip for all of them (SQLite does the same with
//! its own statements, `delivery/sqlite.rs`). Other nodes
//! hear of a commit by a `NOTIFY` sent after it (`notify.rs`),
//! never inside it: PostgreSQL serializes the commits of every transaction that
//! notified, fsync included, which would make all writers of all nodes one again.
//!
//! Invariants:
//! - A caller is answered only after its job is durable (COMMIT returned).
//! - Changes are published after their commit: a session woken by a change finds it
//!   with `changes_since`. The changes of one account are published in commit order on
//!   its node (one lane at a time holds the account's local lock, from before BEGIN
//!   until published); other nodes are woken by `NOTIFY` and reread.
//! - UIDs and MODSEQs of a mailbox are handed out and committed in one order across all
//!   writers and nodes (the account's lock, held from the transaction's first statement
//!   to its end; see `locks.rs` for the rest of what the locks keep).
//! - A transaction takes all its advisory locks in its first round trip, in one order,
//!   and none later: writers never deadlock on them.
//! - Nothing here touches a network socket, and no lock is held across one.

use crate::Backend;
use crate::delivery::{
    Delivered, PreparedDelivery, deliver_alone, deliver_together, deliveries_together,
};
use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::{LocalLocks, LockKey, MailboxOwners, Scope, postgres_begin};
use crate::notify::{Change, ChangeHub, Notifier};
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Connection, Executor};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The most jobs committed in one transaction; bounds the time a caller waits behind others.
const MAX_JOBS_PER_COMMIT: usize = 512;

/// Writers (connections) per node on PostgreSQL: enough that deliveries to a few
/// accounts at once do not queue behind each other; each is a server process, and
/// several nodes together stay well under PostgreSQL's default `max_connections` of 100.
pub(crate) const POSTGRES_WRITE_CONNECTIONS: usize = 4;

/// PostgreSQL ends a writer transaction that waits this long on its node (the node froze
/// or lost the network mid-batch), so that the account locks it holds do not stop other
/// nodes' writes to those accounts until TCP gives up on it (hours).
const POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT: &str = "60s";

/// Session settings of a writer connection; run on every (re)connect.
pub(crate) async fn configure_writer_connection(
    conn: &mut AnyConnection,
    backend: Backend,
) -> sqlx::Result<()> {
    if backend == Backend::Sqlite {
        // The staging table, and the statement journals of the jobs' savepoints, in
        // memory: in a file (SQLite's default) each batch opened, wrote and unlinked a
        // temporary file. Neither needs to outlive the connection.
        conn.execute("PRAGMA temp_store = MEMORY").await?;
        conn.execute(crate::fulltext::SQLITE_STAGING_TABLE).await?;
    }
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

/// How a job that fails leaves the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// It may have written before failing: it runs after a savepoint, rolled back to.
    Savepoint,
    /// It leaves nothing behind when it refuses (one statement that undoes itself, like
    /// migration postgres 0010's `letterbox_deliver`): no savepoint, no round trip. Only
    /// a database error may have broken the transaction, and then the batch fails.
    ByItself,
}

/// What running a job did.
enum Ran {
    Done(Vec<Change>),
    /// `database_error`: the job failed on a statement, which may have aborted the
    /// transaction (PostgreSQL); otherwise it refused (over quota, not found...).
    Failed {
        database_error: bool,
    },
}

trait ErasedJob: Send {
    /// Runs the job; the result is kept inside.
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Ran>;
    fn undo(&self) -> Undo;
    /// The delivery this job stores in one round trip, when it is one: the lane stores
    /// neighbouring ones in one round trip ([`deliver_together`]).
    fn delivery(&self) -> Option<&PreparedDelivery> {
        None
    }
    /// Keeps what that statement gave this job's delivery.
    fn delivered(&mut self, _outcome: Result<(Delivered, Vec<Change>)>) -> Ran {
        Ran::Failed {
            database_error: false,
        }
    }
    /// Answers the caller: `Ok` when the batch committed.
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

/// A job's answer: its own error, or its value once the batch committed.
fn answer<T>(committed: Result<(), String>, outcome: Option<Result<T>>) -> Result<T> {
    match (committed, outcome) {
        (_, Some(Err(error))) => Err(error),
        (Ok(()), Some(Ok(value))) => Ok(value),
        (Err(reason), _) => Err(StoreError::CommitFailed(reason)),
        (Ok(()), None) => Err(StoreError::WriterStopped),
    }
}

/// What running a job gave: kept for its answer, the changes handed on.
fn kept<T>(outcome: Result<(T, Vec<Change>)>, kept: &mut Option<Result<T>>) -> Ran {
    match outcome {
        Ok((value, changes)) => {
            *kept = Some(Ok(value));
            Ran::Done(changes)
        }
        Err(error) => {
            let database_error = matches!(error, StoreError::Database(_));
            *kept = Some(Err(error));
            Ran::Failed { database_error }
        }
    }
}

/// A job's work: it writes on the writer's connection, inside the batch's transaction,
/// and gives back its output with the changes to publish after the commit.
pub(crate) trait Work<T>:
    for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<JobOutput<T>>> + Send + 'static
{
}

impl<T, F> Work<T> for F where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<JobOutput<T>>>
        + Send
        + 'static
{
}

type JobFn<T> =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<JobOutput<T>>> + Send>;

struct TypedJob<T> {
    work: Option<JobFn<T>>,
    undo: Undo,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> ErasedJob for TypedJob<T> {
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Ran> {
        Box::pin(async move {
            let Some(work) = self.work.take() else {
                return Ran::Failed {
                    database_error: false,
                };
            };
            let outcome = work(conn)
                .await
                .map(|output| (output.value, output.changes));
            kept(outcome, &mut self.outcome)
        })
    }

    fn undo(&self) -> Undo {
        self.undo
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        // The caller may have gone away (connection dropped); the work is done either way.
        let _ = self.reply.send(answer(committed, self.outcome));
    }
}

/// A delivery that fits one round trip ([`PreparedDelivery::fits_together`]), alone in
/// `prepared`.
struct DeliveryJob {
    prepared: Arc<Vec<PreparedDelivery>>,
    /// PostgreSQL's `letterbox_deliver` undoes itself when it refuses; SQLite's
    /// statements do not.
    undo: Undo,
    outcome: Option<Result<Delivered>>,
    reply: oneshot::Sender<Result<Delivered>>,
}

impl ErasedJob for DeliveryJob {
    fn run<'c>(&'c mut self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Ran> {
        Box::pin(async move {
            let prepared = Arc::clone(&self.prepared);
            let Some(one) = prepared.first() else {
                return Ran::Failed {
                    database_error: false,
                };
            };
            let outcome = deliver_alone(conn, one).await;
            kept(outcome, &mut self.outcome)
        })
    }

    fn undo(&self) -> Undo {
        self.undo
    }

    fn delivery(&self) -> Option<&PreparedDelivery> {
        self.prepared.first()
    }

    fn delivered(&mut self, outcome: Result<(Delivered, Vec<Change>)>) -> Ran {
        kept(outcome, &mut self.outcome)
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        // The caller may have gone away (connection dropped); the work is done either way.
        let _ = self.reply.send(answer(committed, self.outcome));
    }
}

/// A job in a lane's channel, with the locks its transaction must hold.
struct Queued {
    job: Box<dyn ErasedJob>,
    keys: BTreeSet<LockKey>,
}

/// What a PostgreSQL writer needs to know which locks a job takes.
struct LockLookup {
    owners: MailboxOwners,
    reader: AnyPool,
}

/// Handle to the writers.
#[derive(Clone)]
pub(crate) struct Writer {
    lanes: Arc<[mpsc::UnboundedSender<Queued>]>,
    /// PostgreSQL only; SQLite's one writer looks at no scope.
    locks: Option<Arc<LockLookup>>,
}

/// A handle that does not keep the writers running: they end when the last [`Writer`]
/// goes (the store's last handle), whoever holds one of these.
pub(crate) struct WeakWriter {
    lanes: Weak<[mpsc::UnboundedSender<Queued>]>,
    locks: Option<Weak<LockLookup>>,
}

impl WeakWriter {
    pub fn upgrade(&self) -> Option<Writer> {
        let locks = match &self.locks {
            Some(locks) => Some(locks.upgrade()?),
            None => None,
        };
        Some(Writer {
            lanes: self.lanes.upgrade()?,
            locks,
        })
    }
}

impl Writer {
    pub fn downgrade(&self) -> WeakWriter {
        WeakWriter {
            lanes: Arc::downgrade(&self.lanes),
            locks: self.locks.as_ref().map(Arc::downgrade),
        }
    }

    /// SQLite: the one writer of this process.
    pub fn start_sqlite(
        conn: AnyConnection,
        connect: AnyConnectOptions,
        changes: Arc<ChangeHub>,
    ) -> Writer {
        let (lane, receiver) = mpsc::unbounded_channel();
        let database = Database {
            conn,
            connect,
            backend: Backend::Sqlite,
        };
        tokio::spawn(run_lane(
            Lane {
                database,
                changes,
                local_locks: None,
                notifier: None,
            },
            receiver,
        ));
        Writer {
            lanes: Arc::from([lane]),
            locks: None,
        }
    }

    /// PostgreSQL: one lane per connection of `conns` (configured already), sharing this
    /// node's local locks, telling other nodes through `notifier`.
    pub fn start_postgres(
        conns: Vec<AnyConnection>,
        connect: AnyConnectOptions,
        changes: Arc<ChangeHub>,
        notifier: Notifier,
        reader: AnyPool,
    ) -> Writer {
        let local_locks = Arc::new(LocalLocks::default());
        let mut lanes = Vec::with_capacity(conns.len());
        for conn in conns {
            let (lane, receiver) = mpsc::unbounded_channel();
            let database = Database {
                conn,
                connect: connect.clone(),
                backend: Backend::Postgres,
            };
            tokio::spawn(run_lane(
                Lane {
                    database,
                    changes: Arc::clone(&changes),
                    local_locks: Some(Arc::clone(&local_locks)),
                    notifier: Some(notifier.clone()),
                },
                receiver,
            ));
            lanes.push(lane);
        }
        Writer {
            lanes: lanes.into(),
            locks: Some(Arc::new(LockLookup {
                owners: MailboxOwners::default(),
                reader,
            })),
        }
    }

    /// Runs `work` in a writer's transaction holding the locks of `scope` (PostgreSQL)
    /// and waits until it is durable. If it fails, what it wrote is rolled back.
    pub async fn run<T: Send + 'static>(&self, scope: Scope, work: impl Work<T>) -> Result<T> {
        self.queue(scope, Undo::Savepoint, work).await
    }

    /// Stores the one delivery of `prepared`, which fits one round trip
    /// ([`PreparedDelivery::fits_together`]); the lane may store it in one round trip with
    /// others.
    pub async fn deliver(
        &self,
        scope: Scope,
        prepared: Arc<Vec<PreparedDelivery>>,
    ) -> Result<Delivered> {
        let (reply, answer) = oneshot::channel();
        let undo = match self.backend() {
            Backend::Postgres => Undo::ByItself,
            Backend::Sqlite => Undo::Savepoint,
        };
        let job = DeliveryJob {
            prepared,
            undo,
            outcome: None,
            reply,
        };
        self.send(scope, Box::new(job)).await?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Only PostgreSQL's writers look up the locks of a job.
    fn backend(&self) -> Backend {
        match self.locks {
            Some(_) => Backend::Postgres,
            None => Backend::Sqlite,
        }
    }

    async fn queue<T: Send + 'static>(
        &self,
        scope: Scope,
        undo: Undo,
        work: impl Work<T>,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work: Some(Box::new(work)),
            undo,
            outcome: None,
            reply,
        };
        self.send(scope, Box::new(job)).await?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Queues `job` on the lane of its locks.
    async fn send(&self, scope: Scope, job: Box<dyn ErasedJob>) -> Result<()> {
        let keys = match &self.locks {
            Some(lookup) => lookup.owners.keys(&lookup.reader, scope).await?,
            None => BTreeSet::new(),
        };
        let lane = &self.lanes[lane_of(&keys, self.lanes.len())];
        lane.send(Queued { job, keys })
            .map_err(|_| StoreError::WriterStopped)
    }
}

/// The lane of a job: that of the smallest account it locks, so that one account's jobs
/// share a lane (and its commits); the first lane for the rest.
fn lane_of(keys: &BTreeSet<LockKey>, lanes: usize) -> usize {
    keys.iter()
        .find_map(|key| match *key {
            LockKey::Account(account) => Some(account as usize % lanes.max(1)),
            LockKey::Directory => None,
        })
        .unwrap_or(0)
}

/// A writer's connection and what it needs to make a new one.
struct Database {
    conn: AnyConnection,
    connect: AnyConnectOptions,
    backend: Backend,
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

/// One writer: its connection and where its commits go.
struct Lane {
    database: Database,
    changes: Arc<ChangeHub>,
    /// PostgreSQL: this node's in-process locks, shared by its lanes.
    local_locks: Option<Arc<LocalLocks>>,
    /// PostgreSQL: tells other nodes, after each commit.
    notifier: Option<Notifier>,
}

async fn run_lane(mut lane: Lane, mut receiver: mpsc::UnboundedReceiver<Queued>) {
    let mut batch: Vec<Queued> = Vec::new();
    // A job that could not join the last batch late (see `Joiners`): the next one's first.
    let mut carried: Option<Queued> = None;
    loop {
        let first = match carried.take() {
            Some(queued) => queued,
            // recv() returns None once every Store handle is dropped: the writer ends
            // after finishing what it was given, so shutdown never loses an accepted job.
            None => match receiver.recv().await {
                Some(queued) => queued,
                None => break,
            },
        };
        batch.push(first);
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let keys: BTreeSet<LockKey> = batch.iter().flat_map(|q| q.keys.iter().copied()).collect();
        let local = match &lane.local_locks {
            Some(locks) => Some(locks.acquire(&keys).await),
            None => None,
        };
        // PostgreSQL: jobs queued while the transaction waited for its locks or ran join
        // it when those locks cover theirs. (SQLite's one writer waits on no lock.)
        let joiners = lane.local_locks.is_some().then_some(Joiners {
            receiver: &mut receiver,
            carried: &mut carried,
        });
        let started = std::time::Instant::now();
        let (committed, published) =
            commit_batch(&mut lane.database, &mut batch, &keys, joiners).await;
        metrics::histogram!(crate::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        match &committed {
            Ok(()) => {
                if let Some(notifier) = &lane.notifier {
                    notifier.tell(&published);
                }
                lane.changes.publish(published);
            }
            Err(reason) => {
                tracing::error!(%reason, jobs = batch.len(), "storage commit failed");
                // A COMMIT whose answer was lost may have committed after all: sessions
                // here reread their mailboxes to be sure, and so do other nodes'.
                if let Some(notifier) = &lane.notifier {
                    notifier.tell_resync();
                }
                lane.changes.publish([Change::resync()]);
                lane.database.reconnect_when_broken().await;
            }
        }
        drop(local);
        for queued in batch.drain(..) {
            queued.job.finish(committed.clone());
        }
    }
    let _ = lane.database.conn.close().await;
}

/// Jobs that may join a batch once its transaction holds its locks (PostgreSQL): those
/// queued on the lane meanwhile whose locks the batch holds already. The transaction
/// still takes every lock in its first round trip, and a joiner shares its commit
/// instead of waiting for a whole transaction of its own (on several nodes, that of
/// another node holding one of the locks too).
struct Joiners<'a> {
    receiver: &'a mut mpsc::UnboundedReceiver<Queued>,
    /// The first job that needed another lock; the lane's next batch starts with it, so
    /// jobs start in the order they were queued, except that joiners go first.
    carried: &'a mut Option<Queued>,
}

impl Joiners<'_> {
    /// Moves the queued jobs that `held` covers into `batch`, in their order, up to
    /// [`MAX_JOBS_PER_COMMIT`]; true when any joined.
    fn join(&mut self, batch: &mut Vec<Queued>, held: &BTreeSet<LockKey>) -> bool {
        let before = batch.len();
        while self.carried.is_none() && batch.len() < MAX_JOBS_PER_COMMIT {
            match self.receiver.try_recv() {
                Ok(queued) if queued.keys.is_subset(held) => batch.push(queued),
                Ok(queued) => *self.carried = Some(queued),
                Err(_) => break,
            }
        }
        batch.len() > before
    }
}

/// Runs a batch in one transaction holding `keys` (PostgreSQL) and commits it, with the
/// `joiners` that come meanwhile; returns the changes of the jobs that succeeded.
async fn commit_batch(
    database: &mut Database,
    batch: &mut Vec<Queued>,
    keys: &BTreeSet<LockKey>,
    mut joiners: Option<Joiners<'_>>,
) -> (Result<(), String>, Vec<Change>) {
    let mut published = Vec::new();
    let mut begin_sql = match database.backend {
        // BEGIN IMMEDIATE takes the write lock now, so another process (the admin CLI)
        // waits on busy_timeout instead of failing halfway.
        Backend::Sqlite => "BEGIN IMMEDIATE".to_owned(),
        // The locks in the first round trip (see `locks.rs`).
        Backend::Postgres => postgres_begin(keys),
    };
    // Where the savepoint `job` is: the state after the last job that succeeded (Fresh),
    // or before it (Stale). A job that needs one runs after a fresh one.
    let mut savepoint = None;
    if batch.len() > 1
        && batch
            .first()
            .is_some_and(|q| q.job.undo() == Undo::Savepoint)
    {
        begin_sql.push_str("; SAVEPOINT job");
        savepoint = Some(Savepoint::Fresh);
    }
    if database.conn.execute(begin_sql.as_str()).await.is_err() {
        // No job has run yet, so the batch can start over: on a connection that broke
        // while the writer was idle (the database restarted), a new one.
        let _ = database.conn.execute("ROLLBACK").await;
        database.reconnect_when_broken().await;
        if let Err(error) = database.conn.execute(begin_sql.as_str()).await {
            let _ = database.conn.execute("ROLLBACK").await;
            return (Err(error.to_string()), published);
        }
    }
    if let Some(joiners) = &mut joiners {
        joiners.join(batch, keys);
    }
    let conn = &mut database.conn;
    // A job alone needs no savepoint: if it fails, the whole transaction is its own and
    // is rolled back (on PostgreSQL two round trips fewer).
    if batch.len() == 1
        && let Some(queued) = batch.first_mut()
    {
        return match queued.job.run(conn).await {
            Ran::Done(changes) => {
                published.extend(changes);
                commit(conn, published).await
            }
            Ran::Failed { .. } => {
                let _ = conn.execute("ROLLBACK").await;
                // Nothing to commit; the job's own error is its answer (TypedJob::finish).
                (Ok(()), Vec::new())
            }
        };
    }
    let backend = database.backend;
    let mut at = 0;
    // Jobs before this one run one by one: a group of deliveries that was undone.
    let mut alone_until = 0;
    loop {
        while at < batch.len() {
            // Neighbouring deliveries: one round trip.
            let waiting = batch
                .get(at..)
                .unwrap_or_default()
                .iter()
                .take_while(|q| q.job.delivery().is_some())
                .count();
            let group = deliveries_together(backend, waiting);
            if group > 1 && at >= alone_until {
                let jobs = batch.get_mut(at..at + group).unwrap_or_default();
                // SQLite: a refused delivery leaves its statements behind; the group runs
                // after a savepoint, to undo it all then.
                let undoable = jobs.iter().any(|q| q.job.undo() == Undo::Savepoint);
                if undoable && let Err(error) = fresh_savepoint(conn, &mut savepoint).await {
                    let _ = conn.execute("ROLLBACK").await;
                    return (Err(error.to_string()), Vec::new());
                }
                let deliveries: Vec<&PreparedDelivery> =
                    jobs.iter().filter_map(|q| q.job.delivery()).collect();
                let outcomes = deliver_together(conn, &deliveries).await;
                if undoable
                    && !outcomes
                        .as_ref()
                        .is_ok_and(|all| all.iter().all(Result::is_ok))
                {
                    // Undone; its jobs run again one by one, each after a savepoint, so
                    // that each is answered on its own (refusals are rare: over quota,
                    // a mailbox deleted meanwhile).
                    if let Err(error) = conn.execute("ROLLBACK TO job").await {
                        let _ = conn.execute("ROLLBACK").await;
                        return (Err(error.to_string()), Vec::new());
                    }
                    savepoint = Some(Savepoint::Fresh);
                    alone_until = at + group;
                    continue;
                }
                at += group;
                let mut failed = outcomes.is_err();
                for (queued, outcome) in jobs.iter_mut().zip(outcomes.into_iter().flatten()) {
                    match queued.job.delivered(outcome) {
                        Ran::Done(changes) => {
                            published.extend(changes);
                            if savepoint.is_some() {
                                savepoint = Some(Savepoint::Stale);
                            }
                        }
                        Ran::Failed { database_error } => failed |= database_error,
                    }
                }
                if failed {
                    let _ = conn.execute("ROLLBACK").await;
                    return (
                        Err("a job's statement failed the batch's transaction".to_owned()),
                        Vec::new(),
                    );
                }
                continue;
            }
            let Some(queued) = batch.get_mut(at) else {
                break;
            };
            at += 1;
            let undo = queued.job.undo();
            if undo == Undo::Savepoint
                && let Err(error) = fresh_savepoint(conn, &mut savepoint).await
            {
                let _ = conn.execute("ROLLBACK").await;
                return (Err(error.to_string()), Vec::new());
            }
            let undone = match (queued.job.run(conn).await, undo) {
                (Ran::Done(changes), _) => {
                    published.extend(changes);
                    if savepoint.is_some() {
                        savepoint = Some(Savepoint::Stale);
                    }
                    Ok(())
                }
                // ROLLBACK TO keeps the savepoint, fresh again.
                (Ran::Failed { .. }, Undo::Savepoint) => {
                    conn.execute("ROLLBACK TO job").await.map(drop)
                }
                (
                    Ran::Failed {
                        database_error: false,
                    },
                    Undo::ByItself,
                ) => Ok(()),
                (
                    Ran::Failed {
                        database_error: true,
                    },
                    Undo::ByItself,
                ) => {
                    let _ = conn.execute("ROLLBACK").await;
                    return (
                        Err("a job's statement failed the batch's transaction".to_owned()),
                        Vec::new(),
                    );
                }
            };
            if let Err(error) = undone {
                let _ = conn.execute("ROLLBACK").await;
                return (Err(error.to_string()), Vec::new());
            }
        }
        // Jobs queued while these ran share their commit.
        let joined = joiners
            .as_mut()
            .is_some_and(|joiners| joiners.join(batch, keys));
        if !joined {
            break;
        }
    }
    commit(conn, published).await
}

/// See `commit_batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Savepoint {
    Fresh,
    Stale,
}

/// Sets the savepoint `job` where the transaction is now, unless it is there already.
async fn fresh_savepoint(
    conn: &mut AnyConnection,
    savepoint: &mut Option<Savepoint>,
) -> sqlx::Result<()> {
    let set = match savepoint {
        Some(Savepoint::Fresh) => return Ok(()),
        Some(Savepoint::Stale) => "RELEASE job; SAVEPOINT job",
        None => "SAVEPOINT job",
    };
    conn.execute(set).await?;
    *savepoint = Some(Savepoint::Fresh);
    Ok(())
}

async fn commit(
    conn: &mut AnyConnection,
    published: Vec<Change>,
) -> (Result<(), String>, Vec<Change>) {
    let commit = match Backend::of_connection(conn) {
        // The index rows the batch staged (see `fulltext::SQLITE_STAGING_TABLE`).
        Backend::Sqlite => crate::fulltext::SQLITE_INDEX_STAGED_ROWS_AND_COMMIT,
        Backend::Postgres => "COMMIT",
    };
    match conn.execute(commit).await {
        Ok(_) => (Ok(()), published),
        Err(error) => {
            let _ = conn.execute("ROLLBACK").await;
            (Err(error.to_string()), Vec::new())
        }
    }
}

#[cfg(test)]
mod tests;
