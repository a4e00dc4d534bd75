//! The full-text index of SEARCH BODY and TEXT (storage/src/fulltext.rs), on both
//! backends: every way a message arrives indexes it (by the background indexer, also
//! with two nodes on one PostgreSQL database), expunge drops its row, a message too large
//! to index is always a candidate, `reindex` rebuilds, and `migrate` builds the index of
//! the copy.

use std::collections::HashSet;
use storage::fulltext::{MAX_INDEXED_TEXT_BYTES, TextScope};
use storage::{AccountId, Delivery, ImportedMessage, MailboxId, MessageId, Store, Uid};

#[path = "../../tests/common/postgres.rs"]
mod postgres;

/// Domains and accounts made the same way in every test crate.
#[path = "../../tests/common/accounts.rs"]
mod accounts;

/// What a test works on; the guard removes the store when dropped.
struct Fixture {
    store: Store,
    account: AccountId,
    inbox: MailboxId,
    _guard: Box<dyn std::any::Any>,
}

/// A new, empty database on `backend` ("sqlite" or "postgres"): its URL, and a guard
/// that removes it when dropped.
async fn database(backend: &str) -> (String, Box<dyn std::any::Any>) {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = dir.path().join("mail.sqlite").display().to_string();
        (url, Box::new(dir))
    } else {
        let database = postgres::PostgresDatabase::create().await;
        (database.url.clone(), Box::new(database))
    }
}

/// A new store on `backend` ("sqlite" or "postgres") with the account a@example.org.
async fn fixture(backend: &str) -> Fixture {
    let (url, guard) = database(backend).await;
    let store = Store::open(&url).await.expect("open");
    let (account, inbox) = account_with_inbox(&store).await;
    Fixture {
        store,
        account,
        inbox,
        _guard: guard,
    }
}

/// The account a@example.org (and its domain) in `store`, with the id of its INBOX.
async fn account_with_inbox(store: &Store) -> (AccountId, MailboxId) {
    accounts::add_domain(store, "example.org").await;
    let account = accounts::add_account(store, "a@example.org", "x").await;
    (account, store.inbox(account).await.expect("inbox").id)
}

fn mail(subject: &str, body: &str) -> Vec<u8> {
    format!("From: b@example.net\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")
        .into_bytes()
}

async fn deliver(store: &Store, mailbox: MailboxId, raw: Vec<u8>) -> MessageId {
    store
        .deliver(Delivery {
            raw,
            mailboxes: vec![mailbox],
            ..Delivery::default()
        })
        .await
        .expect("deliver")
        .message
}

async fn candidates(store: &Store, mailbox: MailboxId, needle: &str, scope: TextScope) -> Vec<i64> {
    let found: HashSet<MessageId> = store
        .fulltext_candidates(mailbox, needle, scope)
        .await
        .expect("candidates")
        .expect("the index answers");
    let mut ids: Vec<i64> = found.into_iter().map(|m| m.0).collect();
    ids.sort_unstable();
    ids
}

/// Whether `message` has its row in the index.
async fn indexed(store: &Store, message: MessageId) -> bool {
    !store
        .indexed_texts(&[message])
        .await
        .expect("read")
        .is_empty()
}

async fn every_arrival_is_indexed_and_expunge_drops_it(backend: &str) {
    let Fixture {
        store,
        account,
        inbox,
        _guard,
    } = fixture(backend).await;
    let archive = store
        .create_mailbox(
            account,
            &storage::MailboxName::new("Projects").expect("valid"),
            None,
        )
        .await
        .expect("projects");
    let plain = deliver(&store, inbox, mail("Grüße aus Köln", "the Quick brown fox")).await;
    let appended = store
        .deliver_all(vec![Delivery {
            raw: mail("minutes", "Meeting NOTES, 100%_done"),
            mailboxes: vec![inbox],
            ..Delivery::default()
        }])
        .await
        .expect("multiappend")[0]
        .message;
    let imported = store
        .import_messages(
            inbox,
            vec![ImportedMessage {
                raw: mail("old", "imported fox tale"),
                flags: Default::default(),
                internal_date: 1_000_000_000,
                uid: Some(Uid(100)),
            }],
        )
        .await
        .expect("import");
    assert_eq!(imported, vec![Uid(100)]);
    // SQLite: what the server's background indexer does after a burst.
    store.index_queued().await.expect("index");
    let fox = candidates(&store, inbox, "FOX", TextScope::Body).await;
    assert_eq!(fox.len(), 2, "{fox:?}");
    assert!(fox.contains(&plain.0));
    assert_eq!(
        candidates(&store, inbox, "100%_d", TextScope::Body).await,
        vec![appended.0]
    );
    // Header text only for TEXT; folded on both sides.
    assert_eq!(
        candidates(&store, inbox, "KÖLN", TextScope::Text).await,
        vec![plain.0]
    );
    assert!(
        candidates(&store, inbox, "köln", TextScope::Body)
            .await
            .is_empty()
    );
    // Shorter than a trigram: the index cannot answer.
    assert!(
        store
            .fulltext_candidates(inbox, "ox", TextScope::Body)
            .await
            .expect("query")
            .is_none()
    );

    // A copy is the same message: found in the other mailbox too.
    store
        .copy_messages(inbox, vec![Uid(1)], archive)
        .await
        .expect("copy");
    store.index_queued().await.expect("index");
    assert_eq!(
        candidates(&store, archive, "quick", TextScope::Body).await,
        vec![plain.0]
    );
    // Expunged from both: its index row goes with the message.
    for mailbox in [inbox, archive] {
        store.expunge(mailbox, vec![Uid(1)]).await.expect("expunge");
    }
    assert!(
        candidates(&store, inbox, "quick", TextScope::Body)
            .await
            .is_empty()
    );
    assert!(!indexed(&store, plain).await);
    let texts = store.indexed_texts(&[appended]).await.expect("read");
    assert!(texts[&appended].body.contains("meeting notes"));
    assert!(texts[&appended].headers.contains("subject: minutes"));
}

async fn large_text_is_always_a_candidate_and_reindex_rebuilds(backend: &str) {
    let Fixture {
        store,
        account,
        inbox,
        _guard,
    } = fixture(backend).await;
    let small = deliver(&store, inbox, mail("small", "harbour office")).await;
    let body = "filler ".repeat(MAX_INDEXED_TEXT_BYTES / 7 + 1);
    let large = deliver(&store, inbox, mail("large", &body)).await;
    store.index_queued().await.expect("index");
    // Looked at once: the large one is no longer queued.
    assert_eq!(store.index_queued().await.expect("index"), 0);
    // Not indexed: a candidate for every needle, to be matched on its text.
    assert_eq!(
        candidates(&store, inbox, "harbour", TextScope::Body).await,
        vec![small.0, large.0]
    );
    assert_eq!(
        candidates(&store, inbox, "nowhere", TextScope::Text).await,
        vec![large.0]
    );
    assert!(!indexed(&store, large).await);

    assert_eq!(store.reindex(None).await.expect("reindex"), 2);
    assert_eq!(
        candidates(&store, inbox, "harbour", TextScope::Body).await,
        vec![small.0, large.0]
    );
    assert_eq!(store.reindex(Some(account)).await.expect("reindex"), 2);
    assert_eq!(
        candidates(&store, inbox, "nowhere", TextScope::Text).await,
        vec![large.0]
    );
}

/// A delivery leaves its index row to the background indexer. Until it has run the
/// message is searched in full (a candidate for every needle); what was queued survives
/// a restart and is indexed by the next server's indexer.
async fn the_indexer_indexes_after_delivery_and_after_a_restart(backend: &str) {
    let (url, _guard) = database(backend).await;
    let (first, inbox) = {
        let store = Store::open(&url).await.expect("open");
        let (_, inbox) = account_with_inbox(&store).await;
        // No indexer runs in this process (as in the admin CLI).
        let first = deliver(&store, inbox, mail("first", "the quick brown fox")).await;
        let matches = store
            .fulltext_matches(inbox, "nowhere", TextScope::Body)
            .await
            .expect("query")
            .expect("the index answers");
        assert!(matches.found.is_empty());
        assert_eq!(matches.unindexed, HashSet::from([first]));
        assert!(!indexed(&store, first).await);
        (first, inbox)
    };

    let store = Store::open(&url).await.expect("reopen");
    store.start_fulltext_indexer();
    store.fulltext_caught_up().await;
    assert_eq!(
        candidates(&store, inbox, "nowhere", TextScope::Body).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        candidates(&store, inbox, "quick", TextScope::Body).await,
        vec![first.0]
    );
    // While it runs: indexed once deliveries pause.
    let second = deliver(&store, inbox, mail("second", "a lazy dog")).await;
    store.fulltext_caught_up().await;
    let texts = store.indexed_texts(&[first, second]).await.expect("read");
    assert!(texts[&second].body.contains("lazy dog"), "{texts:?}");
    assert_eq!(
        candidates(&store, inbox, "lazy", TextScope::Text).await,
        vec![second.0]
    );
}

/// Expunges racing the indexer's chunks: neither fails, and no search finds an expunged
/// message (on PostgreSQL the chunk runs beside the expunge's transaction).
async fn expunges_racing_the_indexer_leave_nothing_to_find(backend: &str) {
    let Fixture {
        store,
        inbox,
        _guard,
        ..
    } = fixture(backend).await;
    let mut delivered = Vec::new();
    for n in 0..200 {
        delivered.push(deliver(&store, inbox, mail("race", &format!("vanishing {n}"))).await);
    }
    let expunges = async {
        for uids in (1..=200).map(Uid).collect::<Vec<_>>().chunks(10) {
            store.expunge(inbox, uids.to_vec()).await.expect("expunge");
        }
    };
    let (indexing, ()) = tokio::join!(store.index_queued(), expunges);
    indexing.expect("index");
    let found = candidates(&store, inbox, "vanishing", TextScope::Text).await;
    assert_eq!(found, Vec::<i64>::new());
    let texts = store.indexed_texts(&delivered).await.expect("read");
    assert!(
        texts.is_empty(),
        "index rows of expunged messages: {texts:?}"
    );
}

/// The messages of `mailbox` that the index cannot answer for (pending).
async fn unindexed(store: &Store, mailbox: MailboxId) -> HashSet<MessageId> {
    store
        .fulltext_matches(mailbox, "nowhere", TextScope::Body)
        .await
        .expect("query")
        .expect("the index answers")
        .unindexed
}

/// PostgreSQL: two nodes (stores) on one database index what both delivered, each
/// message once: the chunks of one skip the rows the other's chunk holds.
#[tokio::test]
async fn two_nodes_index_each_message_once() {
    let database = postgres::PostgresDatabase::create().await;
    let one = Store::open(&database.url).await.expect("open");
    let two = Store::open(&database.url).await.expect("open another node");
    let (_, inbox) = account_with_inbox(&one).await;
    // More than a few chunks' worth, from both nodes.
    let mut delivered = HashSet::new();
    for n in 0..300 {
        let node = if n % 2 == 0 { &one } else { &two };
        delivered.insert(deliver(node, inbox, mail("batch", &format!("common word{n}"))).await);
    }
    assert_eq!(unindexed(&one, inbox).await, delivered);
    // Both index at once (their chunks interleave on the database); each message is
    // looked at by one of them.
    let (by_one, by_two) = tokio::join!(one.index_queued(), two.index_queued());
    assert_eq!(by_one.expect("index") + by_two.expect("index"), 300);
    assert!(unindexed(&two, inbox).await.is_empty());
    let found = two
        .fulltext_matches(inbox, "COMMON", TextScope::Body)
        .await
        .expect("query")
        .expect("the index answers")
        .found;
    assert_eq!(found, delivered);

    // Running indexers, each woken by its own node's deliveries.
    one.start_fulltext_indexer();
    two.start_fulltext_indexer();
    let first = deliver(&one, inbox, mail("later", "zanzibarite")).await;
    let second = deliver(&two, inbox, mail("later", "zanzibarite")).await;
    one.fulltext_caught_up().await;
    two.fulltext_caught_up().await;
    assert_eq!(
        candidates(&one, inbox, "zanzibarite", TextScope::Body).await,
        vec![first.0, second.0]
    );
    assert!(unindexed(&one, inbox).await.is_empty());
}

/// PostgreSQL: rows another node's indexer claimed are left to it; when that node dies
/// mid-chunk (its connection gone, the transaction undone), this node's indexer indexes
/// them.
#[tokio::test]
async fn a_chunk_left_by_a_node_that_died_is_indexed_by_another() {
    use sqlx::{Connection, Executor};
    let database = postgres::PostgresDatabase::create().await;
    let store = Store::open(&database.url).await.expect("open");
    let (_, inbox) = account_with_inbox(&store).await;
    let message = deliver(&store, inbox, mail("claimed", "harbour office")).await;
    let mut other_node = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    other_node
        .execute("BEGIN; SELECT message_id FROM fulltext_pending WHERE queued = 1 FOR UPDATE")
        .await
        .expect("claim");
    assert_eq!(store.index_queued().await.expect("index"), 0);
    assert_eq!(unindexed(&store, inbox).await, HashSet::from([message]));

    store.start_fulltext_indexer();
    drop(other_node);
    store.fulltext_caught_up().await;
    assert_eq!(
        candidates(&store, inbox, "harbour", TextScope::Body).await,
        vec![message.0]
    );
    assert!(unindexed(&store, inbox).await.is_empty());
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $test() { super::$test("sqlite").await })*
        }
        mod postgres_backend {
            $(#[tokio::test] async fn $test() { super::$test("postgres").await })*
        }
    };
}

on_both_backends!(
    every_arrival_is_indexed_and_expunge_drops_it,
    large_text_is_always_a_candidate_and_reindex_rebuilds,
    the_indexer_indexes_after_delivery_and_after_a_restart,
    expunges_racing_the_indexer_leave_nothing_to_find,
);

#[tokio::test]
async fn migrate_builds_the_index_of_the_copy() {
    let source = fixture("sqlite").await;
    deliver(
        &source.store,
        source.inbox,
        mail("one", "zanzibarite sample"),
    )
    .await;
    deliver(&source.store, source.inbox, mail("two", "nothing rare")).await;
    let database = postgres::PostgresDatabase::create().await;
    let target = Store::open(&database.url).await.expect("open target");
    let report = target
        .copy_installation_from(&source.store)
        .await
        .expect("copy");
    assert_eq!(report.rows("message_fulltext"), Some(2));
    // Ids are kept by the copy.
    let target_inbox = target.inbox(source.account).await.expect("inbox").id;
    assert_eq!(
        candidates(&target, target_inbox, "zanzibarite", TextScope::Body)
            .await
            .len(),
        1
    );
}
