//! Test databases on the PostgreSQL server that CI runs (127.0.0.1:5432, trust auth,
//! database `test`; `LETTERBOX_TEST_POSTGRES` names another). Every test gets a database
//! of its own, made fresh and dropped when it ends, so tests running in parallel and runs
//! one after another never see each other's rows. Shared by the storage suite
//! (storage/tests) and the integration tests (tests/).

use sqlx::{Connection, Executor, PgConnection};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where CI's PostgreSQL is (.ci/run starts it when it is down).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prefix of every test database, so that `.ci/run` can drop those a killed run left.
pub const TEST_DATABASE_PREFIX: &str = "lbtest_";

static NEXT_DATABASE: AtomicU64 = AtomicU64::new(0);

fn server_url() -> String {
    std::env::var("LETTERBOX_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let host_part = base.rsplit_once('/').map_or(base, |(host, _)| host);
    format!("{host_part}/{database}{query}")
}

/// A database of its own for one test; dropped (connections and all) with this value.
pub struct PostgresDatabase {
    /// The storage URL of the new database (`postgres://...`).
    pub url: String,
    name: String,
}

impl PostgresDatabase {
    pub async fn create() -> PostgresDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{TEST_DATABASE_PREFIX}{}_{}_{nanos}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        let server = server_url();
        let mut admin = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|error| {
                panic!("PostgreSQL at {server} (set LETTERBOX_TEST_POSTGRES): {error}")
            });
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let _ = admin.close().await;
        PostgresDatabase {
            url: with_database(&server, &name),
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // Drop cannot await; a thread with its own runtime can, whatever runtime (if any)
        // this value is dropped on.
        let server = server_url();
        let name = std::mem::take(&mut self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&server).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {} was not dropped", self.url);
        }
    }
}
