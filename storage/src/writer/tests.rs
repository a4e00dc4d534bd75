use super::*;
use crate::types::AccountId;

#[test]
fn one_accounts_jobs_share_a_lane() {
    let keys = |accounts: &[i64], directory: bool| {
        let mut keys: BTreeSet<LockKey> = accounts
            .iter()
            .map(|&a| LockKey::account(AccountId(a)))
            .collect();
        if directory {
            keys.insert(LockKey::Directory);
        }
        keys
    };
    assert_eq!(lane_of(&keys(&[6], false), 4), 2);
    assert_eq!(lane_of(&keys(&[6, 3], false), 4), 3);
    assert_eq!(lane_of(&keys(&[6], true), 4), 2);
    assert_eq!(lane_of(&keys(&[], true), 4), 0);
    assert_eq!(lane_of(&keys(&[], false), 4), 0);
    assert_eq!(lane_of(&keys(&[7], false), 1), 0);
}

type Answer = oneshot::Receiver<Result<i64>>;

/// A job that inserts `n` into `t` (unless `n` is 0), then fails as `fail` says.
fn job(undo: Undo, n: i64, fail: Option<&'static str>) -> (Queued, Answer) {
    let (reply, answer) = oneshot::channel();
    let work: JobFn<i64> = Box::new(move |conn: &mut AnyConnection| {
        Box::pin(async move {
            if n != 0 {
                sqlx::query("INSERT INTO t (n) VALUES ($1)")
                    .bind(n)
                    .execute(&mut *conn)
                    .await?;
            }
            match fail {
                None => Ok(JobOutput::new(n, Vec::new())),
                Some("refuse") => Err(StoreError::OverQuota),
                Some(statement) => {
                    sqlx::query(statement).execute(&mut *conn).await?;
                    Ok(JobOutput::new(n, Vec::new()))
                }
            }
        }) as BoxFuture<'_, Result<JobOutput<i64>>>
    });
    let queued = Queued {
        job: Box::new(TypedJob {
            work: Some(work),
            undo,
            outcome: None,
            reply,
        }),
        keys: BTreeSet::new(),
    };
    (queued, answer)
}

/// Runs `jobs` as one batch; returns the answers and what `t` holds after.
async fn batch(
    database: &mut Database,
    jobs: Vec<(Queued, Answer)>,
) -> (Vec<Result<i64>>, Vec<i64>) {
    let (mut batch, answers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
    let (committed, _) = commit_batch(database, &mut batch, &BTreeSet::new(), None).await;
    for queued in batch {
        queued.job.finish(committed.clone());
    }
    let mut results = Vec::new();
    for answer in answers {
        results.push(answer.await.expect("answered"));
    }
    let held = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
        .fetch_all(&mut database.conn)
        .await
        .expect("read");
    (results, held)
}

/// Jobs that fail leave nothing behind and the others commit, whether a job undoes
/// itself or is rolled back to its savepoint; a database error in a job that undoes
/// itself fails its whole batch.
async fn a_batch_keeps_each_job_all_or_nothing(url: &str, backend: Backend) {
    let connect: AnyConnectOptions = url.parse().expect("url");
    let mut conn = AnyConnection::connect_with(&connect)
        .await
        .expect("connect");
    conn.execute("CREATE TABLE t (n BIGINT NOT NULL)")
        .await
        .expect("table");
    if backend == Backend::Sqlite {
        // A SQLite COMMIT first indexes the rows the batch staged
        // (`fulltext::SQLITE_INDEX_STAGED_ROWS_AND_COMMIT`): the tables it reads, as a writer
        // connection of a migrated store has them.
        conn.execute(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY);
             CREATE VIRTUAL TABLE message_fulltext USING fts5(body, headers)",
        )
        .await
        .expect("index tables");
    }
    configure_writer_connection(&mut conn, backend)
        .await
        .expect("configure");
    let mut database = Database {
        conn,
        connect,
        backend,
    };
    let bad = "INSERT INTO no_such_table VALUES (1)";
    let (results, held) = batch(
        &mut database,
        vec![
            job(Undo::ByItself, 0, Some("refuse")),
            job(Undo::Savepoint, 1, None),
            job(Undo::ByItself, 0, Some("refuse")),
            job(Undo::Savepoint, 3, Some("refuse")),
            job(Undo::ByItself, 4, None),
            job(Undo::Savepoint, 5, None),
            job(Undo::Savepoint, 6, Some(bad)),
            job(Undo::ByItself, 7, None),
            job(Undo::Savepoint, 8, None),
        ],
    )
    .await;
    let outcomes: Vec<Option<i64>> = results.iter().map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(
        outcomes,
        [
            None,
            Some(1),
            None,
            None,
            Some(4),
            Some(5),
            None,
            Some(7),
            Some(8)
        ]
    );
    assert!(matches!(results[3], Err(StoreError::OverQuota)));
    assert!(matches!(results[6], Err(StoreError::Database(_))));
    assert_eq!(held, [1, 4, 5, 7, 8]);

    let (results, held) = batch(
        &mut database,
        vec![
            job(Undo::Savepoint, 10, None),
            job(Undo::ByItself, 11, Some(bad)),
            job(Undo::ByItself, 12, None),
        ],
    )
    .await;
    assert!(matches!(results[0], Err(StoreError::CommitFailed(_))));
    assert!(matches!(results[1], Err(StoreError::Database(_))));
    // Never ran: the batch had failed.
    assert!(matches!(results[2], Err(StoreError::CommitFailed(_))));
    assert_eq!(held, [1, 4, 5, 7, 8]);
}

#[tokio::test]
async fn a_batch_keeps_each_job_all_or_nothing_on_sqlite() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("w.sqlite").display()
    );
    a_batch_keeps_each_job_all_or_nothing(&url, Backend::Sqlite).await;
}

#[tokio::test]
async fn a_batch_keeps_each_job_all_or_nothing_on_postgres() {
    sqlx::any::install_default_drivers();
    let database = crate::test_postgres::PostgresDatabase::create().await;
    a_batch_keeps_each_job_all_or_nothing(&database.url, Backend::Postgres).await;
}

/// Queued jobs join a batch while the locks it holds cover theirs, in their order; the
/// first that needs another lock waits for the next batch, and so do those after it.
#[test]
fn jobs_join_while_the_held_locks_cover_theirs() {
    let account = |n: i64| LockKey::account(AccountId(n));
    let (sender, mut receiver) = mpsc::unbounded_channel();
    for (n, keys) in [
        (1, vec![account(1)]),
        (2, vec![]),
        (3, vec![account(1), account(2)]),
        (4, vec![account(1)]),
    ] {
        let (mut queued, _answer) = job(Undo::Savepoint, n, None);
        queued.keys = keys.into_iter().collect();
        sender.send(queued).expect("queued");
    }
    let held: BTreeSet<LockKey> = [account(1)].into();
    let mut carried = None;
    let mut batch = Vec::new();
    let mut joiners = Joiners {
        receiver: &mut receiver,
        carried: &mut carried,
    };
    assert!(joiners.join(&mut batch, &held));
    assert_eq!(batch.len(), 2);
    // Nothing more joins while a job waits for the next batch.
    assert!(!joiners.join(&mut batch, &held));
    assert_eq!(batch.len(), 2);
    let carried = carried.expect("the job needing account 2 waits");
    assert_eq!(carried.keys, [account(1), account(2)].into());
    assert_eq!(receiver.try_recv().expect("still queued").keys, held);
}
