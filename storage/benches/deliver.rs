//! Durable deliveries per second into one store, with 1, 8 and 64 concurrent writers, on
//! SQLite and on PostgreSQL, in the same run. Each delivery returns only after its commit
//! is durable; group commit lets concurrent writers share one fsync.
//!
//! Run: `cargo bench -p storage --bench deliver` (set `DELIVERIES=N` to change the count,
//! `BACKENDS=sqlite` to leave PostgreSQL out; PostgreSQL is CI's at 127.0.0.1:5432, or
//! `LETTERBOX_TEST_POSTGRES`, in a database made for the run).

use std::time::Instant;
use storage::{Delivery, Store};

#[path = "../../tests/common/postgres.rs"]
mod postgres;

/// Domains and accounts made the same way in every test crate.
#[path = "../../tests/common/accounts.rs"]
mod accounts;

fn message(n: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: sender@example.net\r\nTo: rcpt@example.org\r\nSubject: bench {n}\r\nMessage-ID: <{n}@bench>\r\n\r\n"
    )
    .into_bytes();
    while raw.len() < 5 * 1024 {
        raw.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    raw
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for backend in backends.split(',') {
        match backend {
            "sqlite" => {
                println!(
                    "SQLite (WAL, synchronous=FULL): durable deliveries of 5 KB messages into one mailbox"
                );
                for writers in [1usize, 8, 64] {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let path = dir.path().join("bench.sqlite");
                    run(path.to_str().expect("utf-8"), writers, total).await;
                }
            }
            "postgres" => {
                println!(
                    "PostgreSQL (one node): durable deliveries of 5 KB messages into one mailbox"
                );
                for writers in [1usize, 8, 64] {
                    let database = postgres::PostgresDatabase::create().await;
                    run(&database.url, writers, total).await;
                }
            }
            other => panic!("unknown backend {other:?} in BACKENDS"),
        }
    }
}

async fn run(url: &str, writers: usize, total: usize) {
    let store = Store::open(url).await.expect("open");
    accounts::add_domain(&store, "example.org").await;
    let account = accounts::add_account(&store, "rcpt@example.org", "x").await;
    let inbox = store.inbox(account).await.expect("inbox").id;
    let count = if writers == 1 { total / 4 } else { total };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while n < count {
                store
                    .deliver(Delivery {
                        raw: message(n),
                        mailboxes: vec![inbox],
                        ..Delivery::default()
                    })
                    .await
                    .expect("deliver");
                n += writers;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let elapsed = started.elapsed();
    let stored = store.mailbox_entries(inbox).await.expect("entries").len();
    assert_eq!(stored, count);
    println!(
        "writers={writers:<3} deliveries={count:<6} seconds={:.2} deliveries/s={:.0}",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
}
