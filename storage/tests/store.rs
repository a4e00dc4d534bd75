//! The storage suite: the guarantees IMAP and SMTP build on, each checked against both
//! backends: a SQLite store in a temporary directory and a PostgreSQL database of its own
//! (see tests/common/postgres.rs; `on_both_backends!` at the end makes the two tests).

use sqlx::Connection;
use std::collections::HashSet;
use std::time::Duration;
use storage::mime::PartContent;
use storage::{
    AccountId, ChangeKind, Delivery, EntryName, FlagOperation, Flags, ImportedMessage,
    LocalRecipient, Mailbox, MailboxName, MetadataEntry, MetadataOwner, ModSeq, RecipientLookup,
    Secret, SpecialUse, Store, StoreError, Uid, UidValidity, UnixTime, unix_now,
};
use tempfile::TempDir;

#[path = "../../tests/common/postgres.rs"]
mod postgres;

/// Domains and accounts made the same way in every test crate.
#[path = "../../tests/common/accounts.rs"]
mod accounts;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where one test's store lives; removed when the test ends.
struct Place {
    url: String,
    _dir: Option<TempDir>,
    _database: Option<postgres::PostgresDatabase>,
}

impl Place {
    async fn new(backend: Backend) -> Place {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("mail.sqlite");
                Place {
                    url: path.to_str().expect("utf-8 path").to_owned(),
                    _dir: Some(dir),
                    _database: None,
                }
            }
            Backend::Postgres => {
                let database = postgres::PostgresDatabase::create().await;
                Place {
                    url: database.url.clone(),
                    _dir: None,
                    _database: Some(database),
                }
            }
        }
    }

    async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    /// A connection of its own to the store's database, past the `Store` (and its cache),
    /// as another process would have.
    async fn second_connection(&self, backend: Backend) -> sqlx::AnyConnection {
        let url = match backend {
            Backend::Sqlite => format!("sqlite:{}", self.url),
            Backend::Postgres => self.url.clone(),
        };
        sqlx::AnyConnection::connect(&url)
            .await
            .expect("second connection")
    }
}

struct Fixture {
    store: Store,
    account: AccountId,
    place: Place,
}

async fn fixture(backend: Backend) -> Fixture {
    let place = Place::new(backend).await;
    let store = place.open().await;
    accounts::add_domain(&store, "example.org").await;
    let account = accounts::add_account(&store, "alice@example.org", "pw-alice").await;
    Fixture {
        store,
        account,
        place,
    }
}

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: bob@example.net\r\nTo: alice@example.org\r\nSubject: message {n}\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

/// A valid mailbox name, as a caller builds it at its boundary.
fn mailbox_name(name: &str) -> MailboxName {
    MailboxName::new(name).unwrap_or_else(|error| panic!("{name}: {error}"))
}

async fn mailbox(store: &Store, account: AccountId, name: &str) -> Mailbox {
    store
        .mailbox_by_name(account, &mailbox_name(name))
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("no mailbox {name}"))
}

/// The INBOX of a first account, a@example.org, made in an empty store.
async fn first_inbox(store: &Store) -> storage::MailboxId {
    accounts::add_domain(store, "example.org").await;
    let account = accounts::add_account(store, "a@example.org", "x").await;
    store.inbox(account).await.expect("inbox").id
}

async fn deliver(
    store: &Store,
    mailboxes: Vec<storage::MailboxId>,
    raw: Vec<u8>,
) -> storage::Delivered {
    store
        .deliver(Delivery {
            raw,
            mailboxes,
            ..Delivery::default()
        })
        .await
        .expect("deliver")
}

async fn new_account_has_the_default_mailboxes_with_roles(backend: Backend) {
    let f = fixture(backend).await;
    let mailboxes = f.store.list_mailboxes(f.account).await.expect("list");
    let names: Vec<&str> = mailboxes.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );
    let sent = mailbox(&f.store, f.account, "Sent").await;
    assert_eq!(sent.special_use, Some(SpecialUse::Sent));
    let subscribed = f
        .store
        .subscriptions(f.account)
        .await
        .expect("subscriptions");
    assert!(
        subscribed.iter().any(|name| name == "Sent"),
        "{subscribed:?}"
    );
    // INBOX is case-insensitive (RFC 9051 §5.1).
    assert!(
        f.store
            .mailbox_by_name(f.account, &mailbox_name("inbox"))
            .await
            .expect("query")
            .is_some()
    );
}

async fn concurrent_deliveries_get_distinct_ascending_uids(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let mut tasks = Vec::new();
    for n in 0..64 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            deliver(&store, vec![inbox.id], message(n)).await
        }));
    }
    let mut uids = HashSet::new();
    for task in tasks {
        let delivered = task.await.expect("task");
        assert!(uids.insert(delivered.placed[0].2), "UID given twice");
    }
    let entries = f.store.mailbox_entries(inbox.id).await.expect("entries");
    assert_eq!(entries.len(), 64);
    assert!(entries.windows(2).all(|w| w[0].uid < w[1].uid));
    let listed: HashSet<Uid> = entries.iter().map(|e| e.uid).collect();
    assert_eq!(listed, uids);
    let mut bodies = HashSet::new();
    for entry in &entries {
        bodies.insert(f.store.raw_message(entry.message).await.expect("raw"));
    }
    for n in 0..64 {
        assert!(bodies.contains(&message(n)), "message {n} missing");
    }
    let after = mailbox(&f.store, f.account, "INBOX").await;
    assert_eq!(after.uid_next, Uid(65));
}

async fn a_message_delivered_to_three_mailboxes_is_stored_once(backend: Backend) {
    let f = fixture(backend).await;
    let targets = ["INBOX", "Archive", "Junk"];
    let mut ids = Vec::new();
    for name in targets {
        ids.push(mailbox(&f.store, f.account, name).await.id);
    }
    let delivered = deliver(&f.store, ids.clone(), message(1)).await;
    assert_eq!(delivered.placed.len(), 3);
    assert_eq!(f.store.stored_message_count().await.expect("count"), 1);
    for id in ids {
        let entries = f.store.mailbox_entries(id).await.expect("entries");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].message, delivered.message);
    }
    // The bytes go when the last mailbox entry goes.
    for name in targets {
        let mailbox = mailbox(&f.store, f.account, name).await;
        f.store
            .expunge(mailbox.id, vec![Uid(1)])
            .await
            .expect("expunge");
    }
    assert_eq!(f.store.stored_message_count().await.expect("count"), 0);
}

async fn delivery_failing_halfway_leaves_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let missing = storage::MailboxId(9_999);
    let result = f
        .store
        .deliver(Delivery {
            raw: message(1),
            mailboxes: vec![inbox.id, missing],
            ..Delivery::default()
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
    assert!(
        f.store
            .mailbox_entries(inbox.id)
            .await
            .expect("entries")
            .is_empty()
    );
    assert_eq!(f.store.stored_message_count().await.expect("count"), 0);
    let after = mailbox(&f.store, f.account, "INBOX").await;
    assert_eq!(
        after.uid_next, inbox.uid_next,
        "UIDNEXT moved for a failed delivery"
    );
    assert_eq!(after.highest_modseq, inbox.highest_modseq);
}

async fn copy_over_quota_copies_nothing_and_move_is_atomic(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let archive = mailbox(&f.store, f.account, "Archive").await;
    for n in 0..3 {
        deliver(&f.store, vec![inbox.id], message(n)).await;
    }
    let used = f
        .store
        .account(f.account)
        .await
        .expect("account")
        .used_bytes;
    // Room for one more message, not three.
    f.store
        .set_quota("alice@example.org", Some(used + 70))
        .await
        .expect("quota");
    let result = f
        .store
        .copy_messages(inbox.id, vec![Uid(1), Uid(2), Uid(3)], archive.id)
        .await;
    assert!(matches!(result, Err(StoreError::OverQuota)), "{result:?}");
    assert!(
        f.store
            .mailbox_entries(archive.id)
            .await
            .expect("entries")
            .is_empty()
    );
    let result = f
        .store
        .move_messages(inbox.id, vec![Uid(1), Uid(2), Uid(3)], archive.id)
        .await;
    assert!(matches!(result, Err(StoreError::OverQuota)), "{result:?}");
    assert_eq!(
        f.store
            .mailbox_entries(inbox.id)
            .await
            .expect("entries")
            .len(),
        3,
        "move removed messages it did not place"
    );

    f.store
        .set_quota("alice@example.org", None)
        .await
        .expect("quota");
    let moved = f
        .store
        .move_messages(inbox.id, vec![Uid(1), Uid(3)], archive.id)
        .await
        .expect("move");
    assert_eq!(moved, vec![(Uid(1), Uid(1)), (Uid(3), Uid(2))]);
    let left: Vec<Uid> = f
        .store
        .mailbox_entries(inbox.id)
        .await
        .expect("entries")
        .iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(left, vec![Uid(2)]);
}

async fn flag_store_with_unchangedsince_and_modseq_growth(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    deliver(&f.store, vec![inbox.id], message(1)).await;
    deliver(&f.store, vec![inbox.id], message(2)).await;
    let before = mailbox(&f.store, f.account, "INBOX").await.highest_modseq;

    let outcome = f
        .store
        .store_flags(
            inbox.id,
            vec![Uid(1)],
            FlagOperation::Add,
            Flags::new(["\\Seen", "$Work"]),
            None,
        )
        .await
        .expect("store");
    let (uid, modseq, flags) = &outcome.changed[0];
    assert_eq!(*uid, Uid(1));
    assert!(*modseq > before);
    assert!(flags.contains("\\seen") && flags.contains("$Work"));

    // RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE is left alone and reported.
    let outcome = f
        .store
        .store_flags(
            inbox.id,
            vec![Uid(1), Uid(2)],
            FlagOperation::Add,
            Flags::new(["\\Flagged"]),
            Some(before),
        )
        .await
        .expect("store");
    assert_eq!(outcome.modified, vec![Uid(1)]);
    assert_eq!(outcome.changed.len(), 1);

    // Storing what is already there changes nothing and does not bump the modseq.
    let same = mailbox(&f.store, f.account, "INBOX").await.highest_modseq;
    let outcome = f
        .store
        .store_flags(
            inbox.id,
            vec![Uid(2)],
            FlagOperation::Add,
            Flags::new(["\\Flagged"]),
            None,
        )
        .await
        .expect("store");
    assert!(outcome.changed.is_empty());
    assert_eq!(
        mailbox(&f.store, f.account, "INBOX").await.highest_modseq,
        same
    );

    let mut last = same;
    f.store
        .expunge(inbox.id, vec![Uid(2)])
        .await
        .expect("expunge");
    let now = mailbox(&f.store, f.account, "INBOX").await.highest_modseq;
    assert!(now > last);
    last = now;
    let changes = f
        .store
        .changes_since(inbox.id, ModSeq(before.0))
        .await
        .expect("changes");
    assert_eq!(changes.expunged, vec![Uid(2)]);
    assert_eq!(
        changes.changed.iter().map(|e| e.uid).collect::<Vec<_>>(),
        vec![Uid(1)]
    );
    assert!(last > before);
}

async fn subscribers_hear_every_kind_of_change(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let trash = mailbox(&f.store, f.account, "Trash").await;
    let mut changes = f.store.subscribe();
    deliver(&f.store, vec![inbox.id], message(1)).await;
    f.store
        .store_flags(
            inbox.id,
            vec![Uid(1)],
            FlagOperation::Add,
            Flags::new(["\\Seen"]),
            None,
        )
        .await
        .expect("store");
    f.store
        .copy_messages(inbox.id, vec![Uid(1)], trash.id)
        .await
        .expect("copy");
    f.store
        .expunge(inbox.id, vec![Uid(1)])
        .await
        .expect("expunge");
    f.store
        .create_mailbox(f.account, &mailbox_name("Projects"), None)
        .await
        .expect("create");

    let mut seen = Vec::new();
    for _ in 0..5 {
        let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .expect("notified in time")
            .expect("channel open");
        assert_eq!(change.account, f.account);
        seen.push((change.mailbox, change.kind));
    }
    assert!(matches!(seen[0], (m, ChangeKind::Appended { uid: Uid(1), .. }) if m == inbox.id));
    assert!(
        matches!(&seen[1], (m, ChangeKind::FlagsChanged { uid: Uid(1), flags, .. }) if *m == inbox.id && flags.contains("\\Seen"))
    );
    assert!(matches!(seen[2], (m, ChangeKind::Appended { uid: Uid(1), .. }) if m == trash.id));
    assert!(matches!(seen[3], (m, ChangeKind::Expunged { uid: Uid(1), .. }) if m == inbox.id));
    assert!(matches!(seen[4], (_, ChangeKind::MailboxChanged)));
}

/// IMAP NOTIFY (RFC 5465 §5.4, §5.5): an account's watch wakes for its list of
/// mailboxes and subscriptions, not for the messages in them.
async fn the_account_watch_wakes_for_mailboxes_and_subscriptions_only(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let mut watch = f.store.watch_account(f.account);
    deliver(&f.store, vec![inbox.id], message(1)).await;
    assert!(!watch.take_change(), "woken by a delivery");
    let projects = f
        .store
        .create_mailbox(f.account, &mailbox_name("Projects"), None)
        .await
        .expect("create");
    assert!(watch.take_change(), "not woken by CREATE");
    f.store
        .set_subscribed(f.account, &mailbox_name("Projects"), true)
        .await
        .expect("subscribe");
    assert!(watch.take_change(), "not woken by SUBSCRIBE");
    f.store
        .rename_mailbox(projects, &mailbox_name("Work"))
        .await
        .expect("rename");
    assert!(watch.take_change(), "not woken by RENAME");
    f.store.delete_mailbox(projects).await.expect("delete");
    assert!(watch.take_change(), "not woken by DELETE");
    assert!(!watch.take_change());
}

async fn rename_moves_children_and_inbox_rename_moves_messages(backend: Backend) {
    let f = fixture(backend).await;
    let work = f
        .store
        .create_mailbox(f.account, &mailbox_name("Work/2026/Q1"), None)
        .await
        .expect("create");
    assert!(
        f.store
            .mailbox_by_name(f.account, &mailbox_name("Work"))
            .await
            .expect("q")
            .is_some(),
        "superior not created"
    );
    let parent = mailbox(&f.store, f.account, "Work").await;
    f.store
        .rename_mailbox(parent.id, &mailbox_name("Jobs"))
        .await
        .expect("rename");
    let renamed = f.store.mailbox(work).await.expect("mailbox");
    assert_eq!(renamed.name, "Jobs/2026/Q1");
    assert!(
        f.store
            .mailbox_by_name(f.account, &mailbox_name("Work/2026"))
            .await
            .expect("q")
            .is_none()
    );

    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    deliver(&f.store, vec![inbox.id], message(1)).await;
    f.store
        .rename_mailbox(inbox.id, &mailbox_name("Old"))
        .await
        .expect("rename INBOX");
    let old = mailbox(&f.store, f.account, "Old").await;
    assert_eq!(
        f.store
            .mailbox_entries(old.id)
            .await
            .expect("entries")
            .len(),
        1
    );
    assert!(
        f.store
            .mailbox_entries(inbox.id)
            .await
            .expect("entries")
            .is_empty()
    );

    let taken = f.store.rename_mailbox(old.id, &mailbox_name("Sent")).await;
    assert!(
        matches!(taken, Err(StoreError::AlreadyExists(_))),
        "{taken:?}"
    );
    let inbox_delete = f.store.delete_mailbox(inbox.id).await;
    assert!(inbox_delete.is_err());
}

async fn recipients_resolve_through_aliases_plus_and_catch_all(backend: Backend) {
    let f = fixture(backend).await;
    // A NUL (from a quoted SMTP local part) names nobody, on both backends alike.
    assert_eq!(
        f.store
            .resolve_recipient("al\0ice@example.org")
            .await
            .expect("resolve"),
        None
    );
    assert!(
        f.store
            .authenticate("al\0ice@example.org", &Secret::new("pw-alice"))
            .await
            .expect("login")
            .is_none()
    );
    accounts::add_account(&f.store, "bob@example.org", "pw-bob").await;
    f.store
        .add_alias("sales@example.org", "alice@example.org")
        .await
        .expect("alias");
    let alice = Some(f.account);
    assert_eq!(
        f.store
            .resolve_recipient("alice@example.org")
            .await
            .expect("r"),
        alice
    );
    assert_eq!(
        f.store
            .resolve_recipient("ALICE@Example.ORG")
            .await
            .expect("r"),
        alice
    );
    assert_eq!(
        f.store
            .resolve_recipient("alice+news@example.org")
            .await
            .expect("r"),
        alice
    );
    assert_eq!(
        f.store
            .resolve_recipient("sales@example.org")
            .await
            .expect("r"),
        alice
    );
    assert_eq!(
        f.store
            .resolve_recipient("sales+x@example.org")
            .await
            .expect("r"),
        alice
    );
    assert_eq!(
        f.store
            .resolve_recipient("nobody@example.org")
            .await
            .expect("r"),
        None
    );
    assert_eq!(
        f.store
            .resolve_recipient("alice@example.net")
            .await
            .expect("r"),
        None
    );
    // RFC 5321 §4.5.1: the postmaster of every local domain receives, without an account
    // or alias of that name: the domain's first account. Not a sender identity, and not
    // for a domain we do not host.
    for postmaster in ["postmaster@example.org", "PostMaster@Example.org"] {
        assert_eq!(
            f.store.resolve_recipient(postmaster).await.expect("r"),
            alice,
            "{postmaster}"
        );
    }
    assert!(
        !f.store
            .account_owns_address(f.account, "postmaster@example.org")
            .await
            .expect("owns")
    );
    assert_eq!(
        f.store
            .resolve_recipient("postmaster@example.net")
            .await
            .expect("r"),
        None
    );
    f.store
        .add_alias("postmaster@example.org", "bob@example.org")
        .await
        .expect("postmaster alias");
    let to_bob = f
        .store
        .resolve_recipient("postmaster@example.org")
        .await
        .expect("r");
    assert!(to_bob.is_some() && to_bob != alice);

    f.store
        .add_alias("@example.org", "bob@example.org")
        .await
        .expect("catch-all");
    let bob = f
        .store
        .resolve_recipient("nobody@example.org")
        .await
        .expect("r");
    assert!(bob.is_some() && bob != alice);
    // A catch-all receives, but does not make every address the owner's to send from.
    assert!(
        !f.store
            .account_owns_address(bob.expect("bob"), "nobody@example.org")
            .await
            .expect("owns")
    );
    assert!(
        f.store
            .account_owns_address(f.account, "sales@example.org")
            .await
            .expect("owns")
    );

    // The domains an account has an address in (what a wider From: check and DKIM
    // signing allow): its own, its aliases' and its catch-all's, each once.
    accounts::add_domain(&f.store, "example.com").await;
    f.store
        .add_alias("Sales@Example.COM", "alice@example.org")
        .await
        .expect("alias in another domain");
    assert_eq!(
        f.store.account_domains(f.account).await.expect("domains"),
        ["example.com", "example.org"]
    );
    assert_eq!(
        f.store
            .account_domains(bob.expect("bob"))
            .await
            .expect("domains"),
        ["example.org"]
    );
}

async fn login_checks_the_argon2id_hash(backend: Backend) {
    let f = fixture(backend).await;
    let ok = f
        .store
        .authenticate("alice@example.org", &Secret::new("pw-alice"))
        .await
        .expect("auth");
    assert_eq!(ok.map(|a| a.id), Some(f.account));
    assert!(
        f.store
            .authenticate("alice@example.org", &Secret::new("wrong"))
            .await
            .expect("auth")
            .is_none()
    );
    assert!(
        f.store
            .authenticate("eve@example.org", &Secret::new("pw-alice"))
            .await
            .expect("auth")
            .is_none()
    );
    f.store
        .set_password("alice@example.org", &Secret::new("new"))
        .await
        .expect("passwd");
    assert!(
        f.store
            .authenticate("alice@example.org", &Secret::new("new"))
            .await
            .expect("auth")
            .is_some()
    );
}

async fn folded_boundary_multipart_is_stored_with_its_parts(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let raw = b"From: a@example.net\r\nSubject: folded\r\nContent-Type: multipart/alternative; boundary=\r\n \"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--XX\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--XX--\r\n".to_vec();
    let delivered = deliver(&f.store, vec![inbox.id], raw.clone()).await;
    let metas = f
        .store
        .message_meta(&[delivered.message])
        .await
        .expect("meta");
    let meta = &metas[&delivered.message];
    let PartContent::Multipart(parts) = &meta.root.content else {
        panic!("stored as a single part: {:?}", meta.root);
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].encoding, "QUOTED-PRINTABLE");
    assert_eq!(
        &raw[parts[0].body_start as usize..parts[0].body_end as usize],
        b"caf=C3=A9"
    );
    // SEARCH reads decoded text, stored at delivery.
    assert!(
        f.store
            .message_text(delivered.message)
            .await
            .expect("text")
            .contains("café")
    );
    assert_eq!(
        f.store.raw_message(delivered.message).await.expect("raw"),
        raw,
        "raw bytes changed"
    );
}

/// The common delivery (one mailbox, the next UID, no queue) is stored in one round trip
/// on SQLite (`storage/src/delivery/sqlite.rs`); each way it can be refused must leave no
/// trace, as a delivery statement by statement leaves none.
async fn a_refused_delivery_to_one_mailbox_leaves_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let used_before = f
        .store
        .account(f.account)
        .await
        .expect("account")
        .used_bytes;
    let result = f
        .store
        .deliver(Delivery {
            raw: message(1),
            mailboxes: vec![storage::MailboxId(9_999)],
            ..Delivery::default()
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
    f.store
        .set_quota("alice@example.org", Some(used_before + 10))
        .await
        .expect("quota");
    let result = f
        .store
        .deliver(Delivery {
            raw: message(2),
            mailboxes: vec![inbox.id],
            ..Delivery::default()
        })
        .await;
    assert!(matches!(result, Err(StoreError::OverQuota)), "{result:?}");
    assert_eq!(f.store.stored_message_count().await.expect("count"), 0);
    let after = mailbox(&f.store, f.account, "INBOX").await;
    assert_eq!(
        after.uid_next, inbox.uid_next,
        "UIDNEXT moved for a refusal"
    );
    assert_eq!(after.highest_modseq, inbox.highest_modseq);
    let account = f.store.account(f.account).await.expect("account");
    assert_eq!(account.used_bytes, used_before, "a refusal was charged");

    f.store
        .set_quota("alice@example.org", None)
        .await
        .expect("quota");
    let delivered = deliver(&f.store, vec![inbox.id], message(3)).await;
    assert_eq!(
        delivered.placed,
        vec![(inbox.id, inbox.uid_validity, inbox.uid_next)]
    );
    let entries = f.store.mailbox_entries(inbox.id).await.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].message, delivered.message);
    assert_eq!(
        f.store.raw_message(delivered.message).await.expect("raw"),
        message(3)
    );
    let account = f.store.account(f.account).await.expect("account");
    assert_eq!(account.used_bytes, used_before + message(3).len() as i64);
    let after = mailbox(&f.store, f.account, "INBOX").await;
    assert_eq!(after.uid_next, Uid(inbox.uid_next.0 + 1));
    assert!(after.highest_modseq > inbox.highest_modseq);
}

async fn delivered_mail_survives_reopening_the_store(backend: Backend) {
    let place = Place::new(backend).await;
    {
        let store = place.open().await;
        let inbox = first_inbox(&store).await;
        deliver(&store, vec![inbox], message(7)).await;
    }
    let store = place.open().await;
    let account = store.list_accounts().await.expect("accounts")[0].id;
    let inbox = store.inbox(account).await.expect("inbox");
    let entries = store.mailbox_entries(inbox.id).await.expect("entries");
    assert_eq!(
        store.raw_message(entries[0].message).await.expect("raw"),
        message(7)
    );
}

async fn expunge_removes_only_what_is_deleted_at_commit_and_batch_reads_match(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(deliver(&f.store, vec![inbox.id], message(n)).await.message);
    }
    f.store
        .store_flags(
            inbox.id,
            vec![Uid(1), Uid(2), Uid(3)],
            FlagOperation::Add,
            Flags::new(["\\Deleted"]),
            None,
        )
        .await
        .expect("store");
    // Another session takes \Deleted off message 2 before the expunge commits.
    f.store
        .store_flags(
            inbox.id,
            vec![Uid(2)],
            FlagOperation::Remove,
            Flags::new(["\\Deleted"]),
            None,
        )
        .await
        .expect("store");
    let removed = f
        .store
        .expunge_deleted(inbox.id, Some(vec![Uid(1), Uid(2)]))
        .await
        .expect("expunge");
    assert_eq!(
        removed,
        vec![Uid(1)],
        "UID EXPUNGE went outside its set or ignored the flag"
    );
    let removed = f
        .store
        .expunge_deleted(inbox.id, None)
        .await
        .expect("expunge");
    assert_eq!(removed, vec![Uid(3)]);

    let changes = f
        .store
        .changes_since(inbox.id, ModSeq(0))
        .await
        .expect("changes");
    assert_eq!(changes.expunged, vec![Uid(1), Uid(3)]);
    assert!(matches!(
        f.store
            .changes_since(storage::MailboxId(i64::MAX), ModSeq(0))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        changes.highest_modseq,
        mailbox(&f.store, f.account, "INBOX").await.highest_modseq
    );

    let raws = f.store.raw_messages(&ids).await.expect("raws");
    assert_eq!(raws.len(), 2, "expunged messages still readable");
    assert_eq!(raws[&ids[1]], message(1));
    let texts = f.store.message_texts(&ids[1..2]).await.expect("texts");
    assert!(texts[&ids[1]].contains("body 1"));
}

async fn bare_lf_and_cr_are_stored_as_crlf_and_nothing_else_changes(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let raw = b"Subject: lf\n\nline one\nline two\r\n8-bit \xff\rcr\r.\r\r\nend\r".to_vec();
    let delivered = deliver(&f.store, vec![inbox.id], raw).await;
    assert_eq!(
        f.store.raw_message(delivered.message).await.expect("raw"),
        b"Subject: lf\r\n\r\nline one\r\nline two\r\n8-bit \xff\r\ncr\r\n.\r\n\r\nend\r\n"
    );
}

const FOLDED: &[u8] =
    b"From: Bob <bob@example.net>\r\nSubject: folded\r\n subject\r\nX-Empty:\r\n\r\nbody\r\n";

async fn header_bytes_are_the_raw_prefix_and_unfolded_fields_are_stored(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let headerless = b"no header at all".to_vec();
    let ids = [
        deliver(&f.store, vec![inbox.id], FOLDED.to_vec())
            .await
            .message,
        deliver(&f.store, vec![inbox.id], headerless.clone())
            .await
            .message,
    ];
    // A fresh handle: nothing cached, everything read back from the database.
    let store = f.place.open().await;
    for store in [&f.store, &store] {
        let headers = store.message_headers(&ids).await.expect("headers");
        let metas = store.message_meta(&ids).await.expect("metas");
        let raw = store.raw_message(ids[0]).await.expect("raw");
        let split = metas[&ids[0]].root.body_start as usize;
        assert_eq!(&headers[&ids[0]][..], &raw[..split]);
        assert!(headers[&ids[0]].ends_with(b"X-Empty:\r\n\r\n"));
        assert_eq!(
            metas[&ids[0]].unfolded_headers,
            [
                ("From".to_owned(), "Bob <bob@example.net>".to_owned()),
                ("Subject".to_owned(), "folded subject".to_owned()),
                ("X-Empty".to_owned(), String::new()),
            ]
        );
        // Whatever the analysis took as header, the stored header is that prefix.
        let split = metas[&ids[1]].root.body_start as usize;
        assert_eq!(&headers[&ids[1]][..], &headerless[..split]);
    }
}

async fn message_ids_are_never_reused_after_the_newest_is_deleted(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let first = deliver(&f.store, vec![inbox.id], message(1)).await.message;
    let newest = deliver(&f.store, vec![inbox.id], message(2)).await.message;
    // Read (and so cache) the newest, then remove it: its row goes with its last entry.
    let metas = f.store.message_meta(&[newest]).await.expect("meta");
    assert_eq!(
        metas[&newest].envelope.subject.as_deref(),
        Some("message 2")
    );
    f.store
        .expunge(inbox.id, vec![Uid(2)])
        .await
        .expect("expunge");
    assert_eq!(f.store.stored_message_count().await.expect("count"), 1);
    let next = deliver(&f.store, vec![inbox.id], message(3)).await.message;
    assert!(next > newest, "id {next} after deleting {newest}");

    // The admin CLI is another process: its deletes bypass this store (and its cache).
    let mut other = f.place.second_connection(backend).await;
    sqlx::query("DELETE FROM mailbox_messages WHERE message_id = $1")
        .bind(next.0)
        .execute(&mut other)
        .await
        .expect("delete elsewhere");
    let last = deliver(&f.store, vec![inbox.id], message(4)).await.message;
    assert!(last > next, "id {last} after deleting {next}");
    let metas = f.store.message_meta(&[first, last]).await.expect("meta");
    assert_eq!(metas[&first].envelope.subject.as_deref(), Some("message 1"));
    assert_eq!(metas[&last].envelope.subject.as_deref(), Some("message 4"));
}

/// RFC 8474 §4.1: a mailbox id (our MAILBOXID) stays through RENAME and is never given
/// to another mailbox, not even after the newest is deleted; RFC 6154 §3: one mailbox per
/// special use and account, refused in the transaction that would take it twice.
async fn mailbox_ids_are_never_reused_and_special_uses_are_one_per_account(backend: Backend) {
    let f = fixture(backend).await;
    let projects = f
        .store
        .create_mailbox(f.account, &mailbox_name("Projects"), None)
        .await
        .expect("create");
    f.store
        .rename_mailbox(projects, &mailbox_name("Work"))
        .await
        .expect("rename");
    assert_eq!(mailbox(&f.store, f.account, "Work").await.id, projects);
    f.store.delete_mailbox(projects).await.expect("delete");
    let again = f
        .store
        .create_mailbox(f.account, &mailbox_name("Work"), None)
        .await
        .expect("create again");
    assert!(again > projects, "id {again} after deleting {projects}");

    // The default Sent has \Sent: a second one is refused and nothing is created.
    let taken = f
        .store
        .create_mailbox(
            f.account,
            &mailbox_name("Sent Items"),
            Some(SpecialUse::Sent),
        )
        .await;
    assert!(
        matches!(
            &taken,
            Err(StoreError::SpecialUseTaken { role: SpecialUse::Sent, holder }) if holder == "Sent"
        ),
        "{taken:?}"
    );
    assert!(
        f.store
            .mailbox_by_name(f.account, &mailbox_name("Sent Items"))
            .await
            .expect("lookup")
            .is_none()
    );
    // Once Sent is gone, the use is free.
    let sent = mailbox(&f.store, f.account, "Sent").await;
    f.store.delete_mailbox(sent.id).await.expect("delete sent");
    let items = f
        .store
        .create_mailbox(
            f.account,
            &mailbox_name("Sent Items"),
            Some(SpecialUse::Sent),
        )
        .await
        .expect("use is free");
    assert_eq!(
        f.store.mailbox(items).await.expect("mailbox").special_use,
        Some(SpecialUse::Sent)
    );
}

#[tokio::test]
async fn migration_0003_backfills_messages_stored_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mail.sqlite");
    // The schema as it was before migration 0003, from the migrations themselves.
    let before = dir.path().join("migrations");
    std::fs::create_dir(&before).expect("mkdir");
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&all).expect("migrations") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name.to_string_lossy().as_ref() < "0003" {
            std::fs::copy(entry.path(), before.join(&name)).expect("copy");
        }
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("connect");
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .expect("migrator")
        .run(&mut conn)
        .await
        .expect("old migrations");
    // Two rows as the code before 0003 wrote them: meta without `unfolded_headers`.
    let raws = [FOLDED.to_vec(), message(9)];
    let mut old_ids = Vec::new();
    for raw in &raws {
        let mut meta = serde_json::to_value(storage::mime::analyse(raw).meta).expect("json");
        meta.as_object_mut()
            .expect("object")
            .remove("unfolded_headers");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (raw, size, meta, body_text, sent_date, created_at)
             VALUES (?, ?, ?, '', NULL, 0) RETURNING id",
        )
        .bind(raw)
        .bind(raw.len() as i64)
        .bind(meta.to_string())
        .fetch_one(&mut conn)
        .await
        .expect("old insert");
        old_ids.push(storage::MessageId(id));
    }
    conn.close().await.expect("close");

    let store = Store::open(path.to_str().expect("utf-8"))
        .await
        .expect("open");
    let headers = store.message_headers(&old_ids).await.expect("headers");
    let metas = store.message_meta(&old_ids).await.expect("metas");
    for (id, raw) in old_ids.iter().zip(&raws) {
        let split = metas[id].root.body_start as usize;
        assert!(split > 0);
        assert_eq!(&headers[id][..], &raw[..split]);
        assert_eq!(
            metas[id].unfolded_headers,
            storage::mime::unfolded_fields(&raw[..split])
        );
    }
    assert_eq!(metas[&old_ids[0]].unfolded_headers[1].1, "folded subject");
    // New ids continue after the old ones.
    let inbox = first_inbox(&store).await;
    let new = deliver(&store, vec![inbox], message(10)).await.message;
    assert!(new > old_ids[1]);
}

/// Everything the public API shows of a store, to compare two stores with.
#[derive(Debug, PartialEq)]
struct Contents {
    domains: Vec<storage::Domain>,
    accounts: Vec<storage::Account>,
    aliases: Vec<storage::Alias>,
    mailboxes: Vec<Mailbox>,
    /// Per account: its subscription list.
    subscriptions: Vec<Vec<MailboxName>>,
    /// Per account its server annotations, then per mailbox its annotations (RFC 5464).
    metadata: Vec<Vec<storage::MetadataEntry>>,
    /// Per mailbox: status, entries, and everything changed since MODSEQ 0 (with the
    /// expunged UIDs that QRESYNC reports as VANISHED).
    statuses: Vec<storage::MailboxStatus>,
    entries: Vec<Vec<storage::MessageEntry>>,
    changes: Vec<storage::MailboxChanges>,
    /// Per message id: raw bytes, stored header, and the text SEARCH reads.
    raw: std::collections::BTreeMap<storage::MessageId, Vec<u8>>,
    headers: std::collections::BTreeMap<storage::MessageId, Vec<u8>>,
    texts: std::collections::BTreeMap<storage::MessageId, String>,
    queue: Vec<storage::QueueItem>,
    stored_messages: i64,
}

async fn contents(store: &Store) -> Contents {
    let accounts = store.list_accounts().await.expect("accounts");
    let mut mailboxes = Vec::new();
    let mut subscriptions = Vec::new();
    let mut metadata = Vec::new();
    for account in &accounts {
        metadata.push(
            store
                .metadata(MetadataOwner::Server(account.id))
                .await
                .expect("server metadata"),
        );
        mailboxes.extend(store.list_mailboxes(account.id).await.expect("mailboxes"));
        subscriptions.push(
            store
                .subscriptions(account.id)
                .await
                .expect("subscriptions"),
        );
    }
    let mut contents = Contents {
        domains: store.list_domains().await.expect("domains"),
        aliases: store.list_aliases().await.expect("aliases"),
        accounts,
        statuses: Vec::new(),
        entries: Vec::new(),
        changes: Vec::new(),
        raw: Default::default(),
        headers: Default::default(),
        texts: Default::default(),
        queue: store.queue_items().await.expect("queue"),
        stored_messages: store.stored_message_count().await.expect("count"),
        mailboxes,
        subscriptions,
        metadata,
    };
    let mut ids: Vec<storage::MessageId> = contents.queue.iter().map(|q| q.message).collect();
    for mailbox in &contents.mailboxes {
        contents.metadata.push(
            store
                .metadata(MetadataOwner::Mailbox(mailbox.id))
                .await
                .expect("mailbox metadata"),
        );
        contents
            .statuses
            .push(store.mailbox_status(mailbox.id).await.expect("status"));
        let entries = store.mailbox_entries(mailbox.id).await.expect("entries");
        ids.extend(entries.iter().map(|e| e.message));
        contents.entries.push(entries);
        contents.changes.push(
            store
                .changes_since(mailbox.id, ModSeq(0))
                .await
                .expect("changes"),
        );
    }
    let headers = store.message_headers(&ids).await.expect("headers");
    for id in ids {
        contents
            .raw
            .insert(id, store.raw_message(id).await.expect("raw"));
        contents.headers.insert(id, headers[&id].to_vec());
        contents
            .texts
            .insert(id, store.message_text(id).await.expect("text"));
    }
    contents
}

/// `letterbox migrate`: an installation on SQLite copied into a new PostgreSQL database
/// (and from there into a new SQLite file) reads the same through the public API, keeps
/// UIDVALIDITY and UIDs, logins and aliases, and new rows continue after the copied ids.
#[tokio::test]
async fn an_installation_copied_from_sqlite_to_postgres_and_back_reads_the_same() {
    let sqlite = Place::new(Backend::Sqlite).await;
    let source = sqlite.open().await;
    accounts::add_domain(&source, "example.org").await;
    accounts::add_domain(&source, "example.net").await;
    let alice = accounts::add_account(&source, "alice@example.org", "pw-alice").await;
    let bob = accounts::add_account(&source, "bob@example.net", "pw-bob").await;
    source
        .set_quota("alice@example.org", Some(1_000_000))
        .await
        .expect("quota");
    source
        .add_alias("postmaster@example.org", "alice@example.org")
        .await
        .expect("alias");
    source
        .add_alias("@example.net", "bob@example.net")
        .await
        .expect("catch-all");
    let projects = source
        .create_mailbox(alice, &mailbox_name("Projects/2026"), None)
        .await
        .expect("create");
    source
        .set_subscribed(alice, &mailbox_name("Projects/2026"), true)
        .await
        .expect("subscribe");
    // The newest mailbox, deleted: its id is not in the copy, yet the target must not
    // give it out again (RFC 8474 §4.1 MAILBOXID).
    let scratch = source
        .create_mailbox(alice, &mailbox_name("Scratch"), None)
        .await
        .expect("create");
    source.delete_mailbox(scratch).await.expect("delete");
    // Annotations of the server and of a mailbox (RFC 5464), a value with a NUL.
    source
        .set_metadata(
            MetadataOwner::Server(alice),
            vec![(entry("/private/vendor/test/theme"), Some(b"dark".to_vec()))],
        )
        .await
        .expect("server metadata");
    source
        .set_metadata(
            MetadataOwner::Mailbox(projects),
            vec![
                (entry("/shared/comment"), Some(b"plans".to_vec())),
                (entry("/private/vendor/test/bin"), Some(b"a\0b".to_vec())),
            ],
        )
        .await
        .expect("mailbox metadata");
    // A subscription outlives its mailbox (RFC 9051 §6.3.9) and is copied as it is.
    source
        .set_subscribed(alice, &mailbox_name("Gone"), true)
        .await
        .expect("subscribe");
    let inbox = source.inbox(alice).await.expect("inbox").id;
    let mut delivered = Vec::new();
    for n in 1..=4 {
        delivered.push(deliver(&source, vec![inbox], message(n)).await);
    }
    // One message in two mailboxes, stored once.
    deliver(&source, vec![inbox, projects], message(5)).await;
    // Enough for several chunks of messages and of mailbox entries, whose last chunk
    // ends in another mailbox than it starts in.
    let bulk = (100..400)
        .map(|n| Delivery {
            raw: message(n),
            mailboxes: vec![inbox, projects],
            ..Delivery::default()
        })
        .collect();
    source.deliver_all(bulk).await.expect("bulk");
    deliver(
        &source,
        vec![source.inbox(bob).await.expect("inbox").id],
        message(6),
    )
    .await;
    source
        .store_flags(
            inbox,
            vec![Uid(1), Uid(2)],
            FlagOperation::Add,
            Flags::new(["\\Seen", "$Work"]),
            None,
        )
        .await
        .expect("flags");
    source
        .store_flags(
            inbox,
            vec![Uid(2)],
            FlagOperation::Add,
            Flags::new(["\\Flagged"]),
            None,
        )
        .await
        .expect("flags");
    source.expunge(inbox, vec![Uid(3)]).await.expect("expunge");
    let queued = source
        .deliver(Delivery {
            raw: message(7),
            outbound: Some(storage::Outbound {
                mail_from: "alice@example.org".into(),
                recipients: vec![storage::QueuedRecipient {
                    address: "carol@example.com".into(),
                    notify: vec!["FAILURE".into()],
                    orcpt: None,
                }],
                ret: Some("HDRS".into()),
                envid: Some("env-1".into()),
                dkim_domain: Some("example.org".into()),
            }),
            ..Delivery::default()
        })
        .await
        .expect("queue");
    // A message stored before delivery dropped NULs from the text SEARCH reads:
    // PostgreSQL's TEXT cannot hold one.
    let with_nul = delivered[3].message;
    let mut other = sqlx::AnyConnection::connect(&format!("sqlite:{}", sqlite.url))
        .await
        .expect("second connection");
    sqlx::query("UPDATE messages SET body_text = body_text || char(0) || 'tail' WHERE id = $1")
        .bind(with_nul.0)
        .execute(&mut other)
        .await
        .expect("old-style text");
    other.close().await.expect("close");

    let before = contents(&source).await;
    assert_eq!(
        before.changes[2].expunged,
        [Uid(3)],
        "{:?}",
        before.mailboxes
    );
    assert!(before.texts[&with_nul].contains('\0'));
    assert_eq!(before.queue.len(), 1);
    assert!(before.accounts[0].used_bytes > 0);

    let postgres = Place::new(Backend::Postgres).await;
    let target = postgres.open().await;
    let report = target.copy_installation_from(&source).await.expect("copy");
    assert_eq!(report.rows("domains"), Some(2));
    assert_eq!(report.rows("accounts"), Some(2));
    assert_eq!(report.rows("aliases"), Some(2));
    assert_eq!(report.rows("mailboxes"), Some(14));
    // Six default mailboxes of each account, Projects/2026 and Gone.
    assert_eq!(report.rows("subscriptions"), Some(14));
    assert_eq!(report.rows("messages"), Some(306));
    assert_eq!(report.rows("mailbox_messages"), Some(606));
    assert_eq!(report.rows("expunged"), Some(1));
    assert_eq!(report.rows("queue"), Some(1));
    assert_eq!(report.rows("id_sequences"), Some(2));
    assert_eq!(report.rows("server_metadata"), Some(1));
    assert_eq!(report.rows("mailbox_metadata"), Some(2));

    let mut expected = before;
    let text = expected.texts.get_mut(&with_nul).expect("text");
    *text = text.replace('\0', "");
    assert!(text.ends_with("tail"));
    let copied = contents(&target).await;
    assert_eq!(copied, expected);

    // Logins and address resolution.
    for (email, password) in [
        ("alice@example.org", "pw-alice"),
        ("bob@example.net", "pw-bob"),
    ] {
        let account = target
            .authenticate(email, &Secret::new(password))
            .await
            .expect("auth");
        assert_eq!(account.map(|a| a.email).as_deref(), Some(email));
        assert!(
            target
                .authenticate(email, &Secret::new("wrong"))
                .await
                .expect("auth")
                .is_none()
        );
    }
    let resolve = |address: &'static str| {
        let target = target.clone();
        async move { target.resolve_recipient(address).await.expect("resolve") }
    };
    assert_eq!(resolve("postmaster@example.org").await, Some(alice));
    assert_eq!(resolve("anyone@example.net").await, Some(bob));
    assert_eq!(resolve("alice+tag@example.org").await, Some(alice));

    // Every id goes on after the copied ones (PostgreSQL's identity sequences moved).
    let status = target.mailbox_status(inbox).await.expect("status");
    let next = deliver(&target, vec![inbox], message(8)).await;
    assert_eq!(next.placed, [(inbox, status.uid_validity, status.uid_next)]);
    assert_eq!(status.uid_next, Uid(306));
    let largest = expected.raw.keys().max().copied().expect("messages");
    assert!(next.message > largest, "{} after {largest}", next.message);
    let changes = target
        .changes_since(inbox, status.highest_modseq)
        .await
        .expect("changes");
    assert_eq!(changes.changed.len(), 1);
    assert!(changes.highest_modseq > status.highest_modseq);
    let largest_mailbox = expected
        .mailboxes
        .iter()
        .map(|m| m.id)
        .max()
        .expect("mailboxes");
    let new_mailbox = target
        .create_mailbox(alice, &mailbox_name("Later"), None)
        .await
        .expect("create after copy");
    assert!(new_mailbox > largest_mailbox);
    assert!(
        new_mailbox > scratch,
        "{new_mailbox} after deleted {scratch}"
    );
    assert!(
        target
            .mailbox(new_mailbox)
            .await
            .expect("mailbox")
            .uid_validity
            > expected
                .mailboxes
                .iter()
                .map(|m| m.uid_validity)
                .max()
                .expect("max")
    );
    accounts::add_domain(&target, "example.com").await;
    let carol = accounts::add_account(&target, "carol@example.com", "pw-carol").await;
    assert!(carol > bob);
    target
        .add_alias("info@example.com", "carol@example.com")
        .await
        .expect("alias after copy");
    let queued_again = target
        .deliver(Delivery {
            raw: message(9),
            outbound: Some(storage::Outbound {
                mail_from: "carol@example.com".into(),
                recipients: vec![storage::QueuedRecipient {
                    address: "dave@example.com".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Delivery::default()
        })
        .await
        .expect("queue after copy");
    assert!(queued_again.queued > queued.queued);

    // Not into a store that holds anything.
    let refused = target.copy_installation_from(&source).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::TargetNotEmpty { table: "domains" })
        ),
        "{refused:?}"
    );

    // And back, PostgreSQL to SQLite: the same again.
    let back = Place::new(Backend::Sqlite).await;
    let back_store = back.open().await;
    let grown = contents(&target).await;
    back_store
        .copy_installation_from(&target)
        .await
        .expect("copy back");
    assert_eq!(contents(&back_store).await, grown);
    let again = deliver(&back_store, vec![inbox], message(10)).await;
    assert_eq!(again.placed[0].2, Uid(307));
    assert!(again.message > next.message);
}

/// Queue leases: a claimed item is not handed out again while leased, only its holder
/// renews it, a holder's restart releases only its own leases, and an expired lease lets
/// another node take the item.
async fn queue_leases_belong_to_their_holder(backend: Backend) {
    let f = fixture(backend).await;
    let queued = f
        .store
        .deliver(Delivery {
            raw: message(1),
            outbound: Some(storage::Outbound {
                mail_from: "alice@example.org".into(),
                recipients: vec![storage::QueuedRecipient {
                    address: "bob@example.net".into(),
                    notify: Vec::new(),
                    orcpt: None,
                }],
                ret: None,
                envid: None,
                dkim_domain: Some("example.org".into()),
            }),
            ..Delivery::default()
        })
        .await
        .expect("queue")
        .queued
        .expect("queued");
    let now = UnixTime(1_000_000_000_000);
    let claimed = f
        .store
        .claim_queue_items(now, now.plus_seconds(60), 10, "a")
        .await
        .expect("claim");
    assert_eq!(claimed.iter().map(|i| i.id).collect::<Vec<_>>(), [queued]);
    assert_eq!(
        claimed[0].dkim_domain.as_deref(),
        Some("example.org"),
        "the signing domain is kept with the item"
    );
    assert!(
        f.store
            .claim_queue_items(now, now.plus_seconds(60), 10, "b")
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        !f.store
            .renew_queue_lease(queued, now.plus_seconds(120), "b")
            .await
            .expect("renew")
    );
    assert!(
        f.store
            .renew_queue_lease(queued, now.plus_seconds(120), "a")
            .await
            .expect("renew")
    );
    // Still leased at now.plus_seconds(90) thanks to the renewal.
    assert!(
        f.store
            .claim_queue_items(now.plus_seconds(90), now.plus_seconds(150), 10, "b")
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        f.store
            .release_queue_leases(Some("b"))
            .await
            .expect("release"),
        0
    );
    assert_eq!(
        f.store
            .release_queue_leases(Some("a"))
            .await
            .expect("release"),
        1
    );
    let claimed = f
        .store
        .claim_queue_items(now, now.plus_seconds(60), 10, "b")
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    // b's lease runs out unrenewed: a takes the item over, and b can no longer renew it.
    let claimed = f
        .store
        .claim_queue_items(now.plus_seconds(61), now.plus_seconds(121), 10, "a")
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(
        !f.store
            .renew_queue_lease(queued, now.plus_seconds(200), "b")
            .await
            .expect("renew")
    );
    // b's attempt outlived its lease: its record must not undo a's claim.
    let late = storage::QueueAttempt {
        finished: vec!["bob@example.net".into()],
        retry_at: None,
        error: None,
        delay_warned: false,
    };
    assert_eq!(
        f.store
            .record_queue_attempt(queued, late, "b")
            .await
            .expect("record"),
        storage::QueueItemState::Missing
    );
    assert_eq!(f.store.queue_items().await.expect("items").len(), 1);
    assert_eq!(
        f.store.release_queue_leases(None).await.expect("release"),
        1
    );
}

/// PostgreSQL: when the server drops every connection of a store (a restart, a failover),
/// the next write succeeds on a new connection, readers reconnect, and subscribers are told
/// to reread, since other nodes' notifications may have been missed meanwhile.
#[tokio::test]
async fn postgres_connections_dropped_by_the_server_come_back() {
    let f = fixture(Backend::Postgres).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    deliver(&f.store, vec![inbox.id], message(1)).await;
    let mut changes = f.store.subscribe();
    let mut admin = sqlx::AnyConnection::connect(&f.place.url)
        .await
        .expect("admin connection");
    let dropped: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(pg_terminate_backend(pid)) AS BIGINT) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    assert!(dropped >= 3, "writer, reader and listener: {dropped}");
    let second = deliver(&f.store, vec![inbox.id], message(2)).await;
    assert_eq!(second.placed[0].2, Uid(2));
    let entries = f
        .store
        .mailbox_entries(inbox.id)
        .await
        .expect("read after reconnect");
    assert_eq!(entries.len(), 2);
    let resync = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match changes.recv().await {
                Ok(change) if change.kind == ChangeKind::Resync => return change,
                Ok(_) => {}
                Err(error) => panic!("{error}"),
            }
        }
    })
    .await
    .expect("no Resync after the listener's connection dropped");
    assert!(resync.concerns(inbox.id));
}

/// PostgreSQL migrations 0014 and 0016: a message's large values (its MessageMeta
/// included) are stored compressed with lz4 where the server has it (Debian's has), pglz
/// where it has not; they read back alike.
#[tokio::test]
async fn large_values_of_a_message_are_compressed_with_lz4_where_the_server_has_it() {
    let database = postgres::PostgresDatabase::create().await;
    let store = Store::open(&database.url).await.expect("open");
    let inbox = first_inbox(&store).await;
    // Text well over the ~2 KB TOAST threshold, and compressible.
    let body = "the quarterly report is attached to this message\r\n".repeat(200);
    // Enough header fields that the MessageMeta JSON is over the threshold too.
    let trace: String = (1..=40)
        .map(|hop| format!("Received: from relay{hop}.example.net by mx.example.org\r\n"))
        .collect();
    let raw = format!("{trace}From: bob@example.net\r\nSubject: report\r\n\r\n{body}").into_bytes();
    let delivered = deliver(&store, vec![inbox], raw.clone()).await;
    // The index row, as the server's background indexer writes it (migration 0015).
    assert_eq!(store.index_queued().await.expect("index"), 1);
    let mut conn = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    let server_has_lz4: bool = sqlx::query_scalar(
        "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("settings");
    // NULL for a value stored uncompressed.
    let methods: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT pg_column_compression(m.raw), pg_column_compression(m.body_text),
                pg_column_compression(m.meta), pg_column_compression(f.body)
         FROM messages m JOIN message_fulltext f ON f.message_id = m.id WHERE m.id = $1",
    )
    .bind(delivered.message.0)
    .fetch_one(&mut conn)
    .await
    .expect("compression");
    let expected = Some(if server_has_lz4 { "lz4" } else { "pglz" });
    let (raw_method, text_method, meta_method, index_method) = methods;
    assert_eq!(
        [
            raw_method.as_deref(),
            text_method.as_deref(),
            meta_method.as_deref(),
            index_method.as_deref()
        ],
        [expected; 4]
    );
    let stored = store
        .raw_messages(&[delivered.message])
        .await
        .expect("read");
    assert_eq!(stored[&delivered.message], raw);
}

/// PostgreSQL migration 0017: a common 5 KB text message (as benches/smtp_load.rs sends,
/// with the trace fields SMTP adds) is stored whole in its `messages` row, nothing of it
/// in the TOAST table (its values compressed fit in the row's 4096 bytes; with the
/// default 2032, its MessageMeta went there), and reads back.
#[tokio::test]
async fn a_common_message_is_stored_without_its_toast_table() {
    let database = postgres::PostgresDatabase::create().await;
    let store = Store::open(&database.url).await.expect("open");
    let inbox = first_inbox(&store).await;
    let mut raw = b"Return-Path: <bench@example.org>\r\n\
        Authentication-Results: localhost;\r\n\
        \tspf=none (localhost: no SPF records found for postmaster@smtp-load.localhost) \
        smtp.helo=smtp-load.localhost;\r\n\
        \tspf=none (localhost: no SPF records found for bench@example.org) \
        smtp.mailfrom=bench@example.org;\r\n\
        \tarc=none smtp.remote-ip=127.0.0.1;\r\n\
        \tdmarc=none header.from=example.org policy.dmarc=none;\r\n\
        \tdkim=none\r\n\
        Received: from smtp-load.localhost ([127.0.0.1])\r\n\
        \tby localhost with ESMTP id e66365684c172989.1\r\n\
        \tfor <you@localhost>;\r\n\
        \tTue, 08 Dec 2026 01:42:32 +0000\r\n\
        From: Load Generator <bench@example.org>\r\nTo: <you@localhost>\r\n\
        Subject: smtp_load message 1\r\nMessage-ID: <1.1@smtp-load.localhost>\r\n\
        Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        .to_vec();
    while raw.len() < 5600 {
        raw.extend_from_slice(
            b"The quick brown fox jumps over the lazy dog; smtp_load filler line of text.\r\n",
        );
    }
    let delivered = deliver(&store, vec![inbox], raw.clone()).await;
    let mut conn = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    let toast: String = sqlx::query_scalar(
        "SELECT CAST(CAST(reltoastrelid AS regclass) AS TEXT) FROM pg_class \
         WHERE oid = CAST('messages' AS regclass)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("toast table");
    let toasted: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {toast}"))
        .fetch_one(&mut conn)
        .await
        .expect("toast rows");
    assert_eq!(toasted, 0, "values of the message in {toast}");
    let stored = store
        .raw_messages(&[delivered.message])
        .await
        .expect("read");
    assert_eq!(stored[&delivered.message], raw);
}

/// PostgreSQL migration 0010: message and mailbox ids come from sequences from then on,
/// each going on past both the largest id in its table and the last id `id_sequences`
/// handed out (a deleted row may have had it), and `id_sequences` still reads.
#[tokio::test]
async fn migration_0010_continues_ids_past_those_handed_out_before() {
    let database = postgres::PostgresDatabase::create().await;
    // The schema as it was before migration 0010, from the migrations themselves.
    let dir = tempfile::tempdir().expect("tempdir");
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    for entry in std::fs::read_dir(&all).expect("migrations") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name.to_string_lossy().as_ref() < "0010" {
            std::fs::copy(entry.path(), dir.path().join(&name)).expect("copy");
        }
    }
    let mut conn = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .expect("migrator")
        .run(&mut conn)
        .await
        .expect("old migrations");
    // Messages: the row with the largest id is there; mailboxes: it was deleted.
    for statement in [
        "UPDATE id_sequences SET last_id = 40 WHERE name = 'messages'",
        "INSERT INTO messages (id, raw, size, meta, body_text, created_at)
         VALUES (45, '', 0, '{}', '', 0)",
        "UPDATE id_sequences SET last_id = 30 WHERE name = 'mailboxes'",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect(statement);
    }
    conn.close().await.expect("close");

    let store = Store::open(&database.url).await.expect("open");
    let inbox = first_inbox(&store).await;
    assert_eq!(inbox, storage::MailboxId(31));
    let delivered = deliver(&store, vec![inbox], message(1)).await;
    assert_eq!(delivered.message, storage::MessageId(46));
    let mut conn = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    let last: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, last_id FROM id_sequences ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .expect("id_sequences");
    // Six default mailboxes, 31 to 36.
    assert_eq!(
        last,
        [("mailboxes".to_owned(), 36), ("messages".to_owned(), 46)]
    );
    conn.close().await.expect("close");
}

/// How long a test waits for something the stores do (debug build, busy machine); only
/// a bound on a failure, never a timing that must be met.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `count` sessions of the test's database wait on a lock of kind `event`
/// (`pg_stat_activity.wait_event`: "transactionid" for a row, "advisory" for an
/// account's lock). A poll for an event the server shows, not a sleep for timing.
async fn sessions_waiting(observer: &mut sqlx::AnyConnection, event: &str, count: i64) {
    activity_until(
        observer,
        "wait_event_type = 'Lock' AND wait_event = $1",
        event,
        |waiting| waiting >= count,
        &format!("{count} sessions waiting on {event}"),
    )
    .await;
}

/// Polls the number of this database's connections that `filter` (with `$1` bound to
/// `value`) picks in `pg_stat_activity` until `done` says it is reached.
async fn activity_until(
    observer: &mut sqlx::AnyConnection,
    filter: &str,
    value: &str,
    done: impl Fn(i64) -> bool,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    let sql = format!(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND {filter}"
    );
    loop {
        let seen: i64 = sqlx::query_scalar(&sql)
            .bind(value)
            .fetch_one(&mut *observer)
            .await
            .expect("pg_stat_activity");
        if done(seen) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached: {what} (saw {seen})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two nodes (two stores on one PostgreSQL database): while a write transaction for
/// account A is held open on purpose, the other node's delivery to account B completes,
/// and its delivery to A waits until A's transaction ends, then comes after it.
#[tokio::test]
async fn two_nodes_deliver_to_two_accounts_while_one_accounts_transaction_is_held() {
    let place = Place::new(Backend::Postgres).await;
    let node1 = place.open().await;
    let node2 = place.open().await;
    accounts::add_domain(&node1, "example.org").await;
    let a = accounts::add_account(&node1, "a@example.org", "pw-a").await;
    let b = accounts::add_account(&node1, "b@example.org", "pw-b").await;
    let inbox_a = node1.inbox(a).await.expect("inbox a").id;
    let inbox_b = node2.inbox(b).await.expect("inbox b").id;
    let mut heard_on_node1 = node1.subscribe();

    // Node 1's delivery to A takes A's lock, then stops at A's INBOX row, which a
    // transaction of the test holds: node 1's transaction for A stays open.
    let mut holder = place.second_connection(Backend::Postgres).await;
    let mut observer = place.second_connection(Backend::Postgres).await;
    sqlx::query("BEGIN")
        .execute(&mut holder)
        .await
        .expect("begin");
    sqlx::query("SELECT id FROM mailboxes WHERE id = $1 FOR UPDATE")
        .bind(inbox_a.0)
        .execute(&mut holder)
        .await
        .expect("hold A's INBOX");
    let held = tokio::spawn({
        let node1 = node1.clone();
        async move { deliver(&node1, vec![inbox_a], message(1)).await }
    });
    sessions_waiting(&mut observer, "transactionid", 1).await;

    // Node 2 delivers to B meanwhile (with one lock for all writers, it would wait).
    let to_b = tokio::time::timeout(EVENT_TIMEOUT, deliver(&node2, vec![inbox_b], message(2)))
        .await
        .expect("the delivery to B waited for A's transaction");
    assert_eq!(to_b.placed[0].2, Uid(1));
    // Node 1 hears of it from node 2, after its commit.
    tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            let change = heard_on_node1.recv().await.expect("changes");
            if change.mailbox == inbox_b && change.kind == ChangeKind::OtherNode {
                return;
            }
        }
    })
    .await
    .expect("node 1 never heard of node 2's delivery to B");

    // Node 2's delivery to A waits for A's lock, held by node 1's open transaction.
    let waiting = tokio::spawn({
        let node2 = node2.clone();
        async move { deliver(&node2, vec![inbox_a], message(3)).await }
    });
    sessions_waiting(&mut observer, "advisory", 1).await;
    assert!(!held.is_finished() && !waiting.is_finished());

    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    let first = tokio::time::timeout(EVENT_TIMEOUT, held)
        .await
        .expect("node 1's delivery to A never ended")
        .expect("task");
    let second = tokio::time::timeout(EVENT_TIMEOUT, waiting)
        .await
        .expect("node 2's delivery to A never ended")
        .expect("task");
    // In the order they took A's lock: UIDs and MODSEQs of one mailbox in commit order.
    assert_eq!(first.placed[0].2, Uid(1));
    assert_eq!(second.placed[0].2, Uid(2));
    let entries = node2.mailbox_entries(inbox_a).await.expect("entries");
    assert_eq!(
        entries.iter().map(|e| e.uid).collect::<Vec<_>>(),
        [Uid(1), Uid(2)]
    );
    assert!(entries[0].modseq < entries[1].modseq);
    assert_eq!(
        node1.raw_message(entries[1].message).await.expect("raw"),
        message(3)
    );
}

/// Waits until `count` connections of the database listen for other nodes' changes
/// (the last statement of a listener is its LISTEN; one that stopped ran `UNLISTEN *`).
async fn listeners_become(observer: &mut sqlx::AnyConnection, count: i64, what: &str) {
    activity_until(
        observer,
        "query LIKE $1",
        "LISTEN %",
        |listening| listening == count,
        &format!("{what}: {count} listening"),
    )
    .await;
}

/// Two nodes: a node listens to the other only while something of it watches (issue
/// 18: a node taking only SMTP is not woken by every commit of the other). A watch made
/// while it does not listen still wakes for a delivery of the other node, also one
/// committed before it listens again, and a session reading after the wake-up finds it.
#[tokio::test]
async fn a_node_listens_to_the_other_only_while_it_watches_and_misses_nothing() {
    let place = Place::new(Backend::Postgres).await;
    let node1 = place.open().await;
    let node2 = place.open().await;
    let inbox = first_inbox(&node1).await;
    let mut observer = place.second_connection(Backend::Postgres).await;

    for round in 0..2_usize {
        // Nobody watches: each node stops listening once it hears the other (node 1
        // hears node 2's start; node 2 hears node 1's delivery).
        deliver(&node1, vec![inbox], message(round * 2)).await;
        listeners_become(&mut observer, 0, "the nodes stop listening").await;
        // A session on node 2 selects INBOX: it watches, then reads.
        let mut watch = node2.watch_mailbox(inbox);
        let seen = node2
            .changes_since(inbox, ModSeq(0))
            .await
            .expect("read")
            .highest_modseq;
        // Node 1 delivers at once, perhaps before node 2 listens again.
        let delivered = deliver(&node1, vec![inbox], message(round * 2 + 1)).await;
        tokio::time::timeout(EVENT_TIMEOUT, watch.changed())
            .await
            .expect("node 2's watch never woke for node 1's delivery");
        let changes = node2.changes_since(inbox, seen).await.expect("changes");
        assert!(
            changes
                .changed
                .iter()
                .any(|entry| entry.uid == delivered.placed[0].2),
            "round {round}: the delivery is not among the changes read after the wake-up"
        );
        listeners_become(&mut observer, 1, "node 2 listens while it watches").await;
        drop(watch);
    }
}

/// PostgreSQL: deliveries queued behind a held transaction of their account commit
/// together; those the quota refuses leave nothing (no message row, no UID, no usage)
/// and the others are stored, at UIDs that follow each other.
#[tokio::test]
async fn refused_deliveries_in_one_commit_leave_nothing_behind() {
    let (f, inbox, size) = room_for_three(Backend::Postgres).await;
    let mut holder = f.place.second_connection(Backend::Postgres).await;
    let mut observer = f.place.second_connection(Backend::Postgres).await;
    sqlx::query("BEGIN")
        .execute(&mut holder)
        .await
        .expect("begin");
    sqlx::query("SELECT id FROM mailboxes WHERE id = $1 FOR UPDATE")
        .bind(inbox.0)
        .execute(&mut holder)
        .await
        .expect("hold the INBOX");
    let mut tasks = Vec::new();
    for n in 10..16 {
        tasks.push(spawn_delivery(&f.store, inbox, n));
        if n == 10 {
            // The first holds the account; the others queue behind it.
            sessions_waiting(&mut observer, "transactionid", 1).await;
        }
    }
    sessions_waiting(&mut observer, "transactionid", 1).await;
    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    let mut stored = 0;
    for task in tasks {
        match tokio::time::timeout(EVENT_TIMEOUT, task)
            .await
            .expect("a delivery never ended")
            .expect("task")
        {
            Ok(_) => stored += 1,
            Err(StoreError::OverQuota) => {}
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(stored, 3);
    three_stored_and_nothing_else(&f, inbox, size).await;
}

/// A fixture whose INBOX has room for three messages like `message(10)` and a half: the
/// fixture, its INBOX and the size of one message.
async fn room_for_three(backend: Backend) -> (Fixture, storage::MailboxId, i64) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await.id;
    let size = message(10).len() as i64;
    f.store
        .set_quota("alice@example.org", Some(3 * size + size / 2))
        .await
        .expect("quota");
    (f, inbox, size)
}

/// Delivers `message(n)` to `mailbox` in a task of its own.
fn spawn_delivery(
    store: &Store,
    mailbox: storage::MailboxId,
    n: usize,
) -> tokio::task::JoinHandle<storage::Result<storage::Delivered>> {
    let store = store.clone();
    let delivery = Delivery {
        raw: message(n),
        mailboxes: vec![mailbox],
        ..Delivery::default()
    };
    tokio::spawn(async move { store.deliver(delivery).await })
}

/// After six deliveries of `size` bytes to `inbox` under a quota of three and a half:
/// three messages at UIDs 1 to 3, and the usage of three.
async fn three_stored_and_nothing_else(f: &Fixture, inbox: storage::MailboxId, size: i64) {
    assert_eq!(f.store.stored_message_count().await.expect("count"), 3);
    let entries = f.store.mailbox_entries(inbox).await.expect("entries");
    assert_eq!(
        entries.iter().map(|e| e.uid).collect::<Vec<_>>(),
        [Uid(1), Uid(2), Uid(3)]
    );
    let account = f.store.account(f.account).await.expect("account");
    assert_eq!(account.used_bytes, 3 * size);
}

/// SQLite: deliveries queued together are stored by the writer in one round trip (four,
/// then two: `delivery/sqlite.rs`); those the quota refuses leave nothing (no message
/// row, no UID, no usage) and the others are stored, at UIDs that follow each other,
/// each answered on its own.
#[tokio::test]
async fn refused_deliveries_stored_together_leave_nothing_behind() {
    let (f, inbox, size) = room_for_three(Backend::Sqlite).await;
    // The test's runtime has one thread: every task queues its job before the writer
    // runs, so all six go in one batch.
    let mut tasks = Vec::new();
    for n in 10..16 {
        tasks.push(spawn_delivery(&f.store, inbox, n));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        let outcome = tokio::time::timeout(EVENT_TIMEOUT, task)
            .await
            .expect("a delivery never ended")
            .expect("task");
        outcomes.push(match outcome {
            Ok(delivered) => Some(delivered.placed[0].2),
            Err(StoreError::OverQuota) => None,
            Err(error) => panic!("{error}"),
        });
    }
    // In the order they were queued: the first three fit.
    assert_eq!(
        outcomes,
        [Some(Uid(1)), Some(Uid(2)), Some(Uid(3)), None, None, None]
    );
    three_stored_and_nothing_else(&f, inbox, size).await;
    // The next delivery, with room again, gets the next UID.
    f.store
        .set_quota("alice@example.org", None)
        .await
        .expect("quota");
    let next = f
        .store
        .deliver(Delivery {
            raw: message(16),
            mailboxes: vec![inbox],
            ..Delivery::default()
        })
        .await
        .expect("deliver");
    assert_eq!(next.placed[0].2, Uid(4));
}

/// Two nodes write to three accounts at once: deliveries to two accounts at a time (in
/// both orders, locked in one), then every account emptied at once while the messages
/// are shared between them. Nothing deadlocks, each mailbox's UIDs are distinct and
/// ascending, and no message row outlives its last entry.
#[tokio::test]
async fn two_nodes_deliver_to_shared_recipients_and_expunge_at_once() {
    let place = Place::new(Backend::Postgres).await;
    let nodes = [place.open().await, place.open().await];
    accounts::add_domain(&nodes[0], "example.org").await;
    let mut inboxes = Vec::new();
    for name in ["a", "b", "c"] {
        let account = accounts::add_account(&nodes[0], &format!("{name}@example.org"), "pw").await;
        inboxes.push(nodes[0].inbox(account).await.expect("inbox").id);
    }
    const EACH: usize = 30;
    let mut tasks = Vec::new();
    for n in 0..EACH * 3 {
        let store = nodes[n % 2].clone();
        // a+b, b+c, c+a, named in both orders.
        let (first, second) = (inboxes[n % 3], inboxes[(n + 1) % 3]);
        let pair = if n % 2 == 0 {
            vec![first, second]
        } else {
            vec![second, first]
        };
        tasks.push(tokio::spawn(async move {
            deliver(&store, pair, message(n)).await
        }));
    }
    for task in tasks {
        tokio::time::timeout(EVENT_TIMEOUT, task)
            .await
            .expect("a delivery never ended")
            .expect("task");
    }
    assert_eq!(
        nodes[0].stored_message_count().await.expect("count"),
        EACH as i64 * 3
    );
    for &inbox in &inboxes {
        let entries = nodes[1].mailbox_entries(inbox).await.expect("entries");
        assert_eq!(entries.len(), EACH * 2);
        assert!(entries.windows(2).all(|w| w[0].uid < w[1].uid));
        assert_eq!(entries.last().map(|e| e.uid), Some(Uid(EACH as u32 * 2)));
    }
    // Every message is in two accounts; both let go of it at the same time.
    let mut expunges = Vec::new();
    for (n, &inbox) in inboxes.iter().enumerate() {
        let store = nodes[n % 2].clone();
        let uids = (1..=EACH as u32 * 2).map(Uid).collect();
        expunges.push(tokio::spawn(
            async move { store.expunge(inbox, uids).await },
        ));
    }
    for task in expunges {
        let removed = tokio::time::timeout(EVENT_TIMEOUT, task)
            .await
            .expect("an expunge never ended")
            .expect("task")
            .expect("expunge");
        assert_eq!(removed.len(), EACH * 2);
    }
    assert_eq!(nodes[1].stored_message_count().await.expect("count"), 0);
}

async fn recent_is_claimed_by_exactly_one_session(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    assert_eq!(inbox.first_recent_uid, Uid(1));
    for n in 0..3 {
        deliver(&f.store, vec![inbox.id], message(n)).await;
    }
    let status = f.store.mailbox_status(inbox.id).await.expect("status");
    assert_eq!(status.recent, 3, "no session has seen them");
    // RFC 3501 §2.3.2: sessions claiming at once get disjoint claims that together are
    // every message once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_recent(inbox.id, inbox.uid_validity, Uid(3))
                .await
                .expect("claim")
        }));
    }
    let mut claims = Vec::new();
    for task in tasks {
        claims.extend(task.await.expect("task"));
    }
    assert_eq!(
        claims,
        vec![Uid(1)],
        "one session claims 1..=3, the others nothing"
    );
    let status = f.store.mailbox_status(inbox.id).await.expect("status");
    assert_eq!(status.recent, 0);
    deliver(&f.store, vec![inbox.id], message(3)).await;
    assert_eq!(
        f.store
            .mailbox_status(inbox.id)
            .await
            .expect("status")
            .recent,
        1
    );
    assert_eq!(
        f.store
            .claim_recent(inbox.id, inbox.uid_validity, Uid(4))
            .await
            .expect("claim"),
        Some(Uid(4))
    );
    assert_eq!(
        mailbox(&f.store, f.account, "INBOX").await.first_recent_uid,
        Uid(5)
    );
    // Another process (a second node, the admin CLI) sees none of this process's
    // remembered claims, and the database still gives each message to one session.
    let other = f.place.open().await;
    assert_eq!(
        other
            .claim_recent(inbox.id, inbox.uid_validity, Uid(4))
            .await
            .expect("claim"),
        None
    );
    deliver(&f.store, vec![inbox.id], message(4)).await;
    assert_eq!(
        other
            .claim_recent(inbox.id, inbox.uid_validity, Uid(5))
            .await
            .expect("claim"),
        Some(Uid(5))
    );
    assert_eq!(
        f.store
            .claim_recent(inbox.id, inbox.uid_validity, Uid(5))
            .await
            .expect("claim"),
        None,
        "claimed by the other process"
    );
}

/// RFC 3501 §2.3.2 under a new UIDVALIDITY: an import into an empty mailbox starts its
/// UIDs and `\Recent` over, and a claim this process remembers from before does not hide
/// the new messages.
async fn recent_starts_over_with_a_new_uidvalidity(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    assert_eq!(
        f.store
            .claim_recent(inbox.id, inbox.uid_validity, Uid(5))
            .await
            .expect("claim"),
        Some(Uid(1))
    );
    let new_validity = UidValidity(inbox.uid_validity.0.wrapping_add(1).max(1));
    f.store
        .adopt_uid_validity(inbox.id, new_validity)
        .await
        .expect("adopt");
    deliver(&f.store, vec![inbox.id], message(0)).await;
    deliver(&f.store, vec![inbox.id], message(1)).await;
    assert_eq!(
        f.store
            .claim_recent(inbox.id, new_validity, Uid(2))
            .await
            .expect("claim"),
        Some(Uid(1))
    );
}

/// Sessions woken by one commit share one read of what changed (issue 17), and a shared
/// answer is never older than the commits a session was woken for: not after a later
/// commit, not after every watch of the mailbox ended and a new one began.
async fn shared_change_reads_are_never_stale(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let uids = |changes: &storage::MailboxChanges| -> Vec<u32> {
        changes.changed.iter().map(|e| e.uid.0).collect()
    };
    let since = f
        .store
        .changes_since(inbox.id, ModSeq(0))
        .await
        .expect("changes")
        .highest_modseq;
    let mut first = f.store.watch_mailbox(inbox.id);
    let mut second = f.store.watch_mailbox(inbox.id);
    deliver(&f.store, vec![inbox.id], message(1)).await;
    assert!(first.take_change() && second.take_change());
    let a = f
        .store
        .shared_changes_since(inbox.id, since)
        .await
        .expect("a");
    let b = f
        .store
        .shared_changes_since(inbox.id, since)
        .await
        .expect("b");
    assert_eq!(uids(&a), vec![1]);
    assert_eq!(a, b);

    // A later commit: the next read from the same MODSEQ sees it.
    deliver(&f.store, vec![inbox.id], message(2)).await;
    assert!(first.take_change());
    let c = f
        .store
        .shared_changes_since(inbox.id, since)
        .await
        .expect("c");
    assert_eq!(uids(&c), vec![1, 2]);

    // Every watch ends, a commit nobody watches, a new watch: not the answer from before.
    drop((first, second));
    deliver(&f.store, vec![inbox.id], message(3)).await;
    let _third = f.store.watch_mailbox(inbox.id);
    let d = f
        .store
        .shared_changes_since(inbox.id, since)
        .await
        .expect("d");
    assert_eq!(uids(&d), vec![1, 2, 3]);
    assert_eq!(
        d,
        f.store
            .changes_since(inbox.id, since)
            .await
            .expect("read alone")
    );
}

/// Each test above, once per backend: `sqlite::NAME` and `postgres_backend::NAME`.
/// RFC 8514 §3: every insertion into a mailbox (delivery, APPEND, the target of COPY and
/// MOVE) sets the save date to the moment of it, whatever the internal date; an entry
/// stored before migration 0012 reads as unknown (`None`), and a copy of it gets its own.
async fn save_date_is_set_at_every_insertion(backend: Backend) {
    let f = fixture(backend).await;
    let inbox = mailbox(&f.store, f.account, "INBOX").await;
    let archive = mailbox(&f.store, f.account, "Archive").await;
    let before = unix_now();
    f.store
        .deliver(Delivery {
            raw: message(1),
            mailboxes: vec![inbox.id],
            internal_date: Some(1_000_000_000),
            ..Delivery::default()
        })
        .await
        .expect("deliver");
    deliver(&f.store, vec![inbox.id], message(2)).await;
    let entries = f.store.mailbox_entries(inbox.id).await.expect("entries");
    assert_eq!(entries[0].internal_date, 1_000_000_000);
    for entry in &entries {
        let saved = entry.save_date.expect("save date");
        assert!((before..=unix_now()).contains(&saved), "{entry:?}");
    }

    // As if stored before migration 0012 (NULL), and as if saved long ago.
    let mut other = f.place.second_connection(backend).await;
    for (uid, save_date) in [(1i64, None), (2, Some(1_000i64))] {
        sqlx::query(
            "UPDATE mailbox_messages SET save_date = $1 WHERE mailbox_id = $2 AND uid = $3",
        )
        .bind(save_date)
        .bind(inbox.id.0)
        .bind(uid)
        .execute(&mut other)
        .await
        .expect("age the save date");
    }
    let entries = f.store.mailbox_entries(inbox.id).await.expect("entries");
    assert_eq!(entries[0].save_date, None);
    assert_eq!(entries[1].save_date, Some(1_000));

    let copy_time = unix_now();
    f.store
        .copy_messages(inbox.id, vec![Uid(1), Uid(2)], archive.id)
        .await
        .expect("copy");
    f.store
        .move_messages(inbox.id, vec![Uid(2)], archive.id)
        .await
        .expect("move");
    let copies = f.store.mailbox_entries(archive.id).await.expect("entries");
    assert_eq!(copies.len(), 3);
    for entry in &copies {
        let saved = entry.save_date.expect("save date of the copy");
        assert!((copy_time..=unix_now()).contains(&saved), "{entry:?}");
    }
    // The originals keep theirs; changes_since reads the same column.
    let changes = f
        .store
        .changes_since(inbox.id, ModSeq(0))
        .await
        .expect("changes");
    assert_eq!(changes.changed.len(), 1);
    assert_eq!(changes.changed[0].save_date, None);
    let changes = f
        .store
        .changes_since(archive.id, ModSeq(0))
        .await
        .expect("changes");
    assert!(changes.changed.iter().all(|e| e.save_date.is_some()));
}

/// RFC 8970 PREVIEW: computed at delivery and stored in the meta; meta stored before it
/// existed (no `preview` in its JSON) still loads, with none, and the preview is then
/// computed from the raw message.
async fn preview_is_stored_and_computed_for_meta_stored_before(backend: Backend) {
    let place = Place::new(backend).await;
    let raw = b"Subject: hi\r\n\r\nHello  there,\r\n> quoted\r\nBob\r\n".to_vec();
    let message = {
        let store = place.open().await;
        let inbox = first_inbox(&store).await;
        let message = deliver(&store, vec![inbox], raw).await.message;
        let metas = store.message_meta(&[message]).await.expect("meta");
        assert_eq!(metas[&message].preview.as_deref(), Some("Hello there, Bob"));
        message
    };
    let mut other = place.second_connection(backend).await;
    let without_preview = match backend {
        Backend::Sqlite => "UPDATE messages SET meta = json_remove(meta, '$.preview')",
        Backend::Postgres => "UPDATE messages SET meta = (meta::jsonb - 'preview')::text",
    };
    sqlx::query(without_preview)
        .execute(&mut other)
        .await
        .expect("meta as stored before");
    let store = place.open().await;
    let metas = store.message_meta(&[message]).await.expect("meta");
    assert_eq!(metas[&message].preview, None);
    let previews = store.previews_from_raw(&[message]).await.expect("previews");
    assert_eq!(previews[&message], "Hello there, Bob");
}

async fn imports_keep_uids_and_uid_validity_within_the_uid_rules(backend: Backend) {
    let f = fixture(backend).await;
    let store = &f.store;
    let inbox = mailbox(store, f.account, "INBOX").await;
    // A delivered and expunged message: its UID was given out under the old UIDVALIDITY.
    let old = deliver(store, vec![inbox.id], message(0)).await;
    let old_uid = old.placed[0].2;
    store
        .expunge(inbox.id, vec![old_uid])
        .await
        .expect("expunge");
    let mut changes = store.subscribe();

    store
        .adopt_uid_validity(inbox.id, UidValidity(1_234_567))
        .await
        .expect("adopt");
    let adopted = mailbox(store, f.account, "INBOX").await;
    assert_eq!(adopted.uid_validity, UidValidity(1_234_567));
    assert_eq!(adopted.uid_next, Uid(1), "the UID space starts over");
    assert!(adopted.highest_modseq >= inbox.highest_modseq);
    let after_adopt = store
        .changes_since(inbox.id, ModSeq(0))
        .await
        .expect("changes");
    assert!(
        after_adopt.expunged.is_empty(),
        "expunged UIDs of the old UIDVALIDITY are gone: {:?}",
        after_adopt.expunged
    );

    let imported = |uid: Option<u32>, n: usize, flags: &[&str]| ImportedMessage {
        raw: message(n),
        flags: Flags::new(flags),
        internal_date: 1_600_000_000 + n as i64,
        uid: uid.map(Uid),
    };
    let uids = store
        .import_messages(
            inbox.id,
            vec![
                imported(Some(3), 1, &["\\Seen", "$Label1"]),
                imported(Some(7), 2, &[]),
            ],
        )
        .await
        .expect("import");
    assert_eq!(uids, [Uid(3), Uid(7)]);
    let entries = store.mailbox_entries(inbox.id).await.expect("entries");
    let got: Vec<(u32, String, i64)> = entries
        .iter()
        .map(|e| (e.uid.0, e.flags.to_stored(), e.internal_date))
        .collect();
    assert_eq!(
        got,
        [
            (3, "$Label1 \\Seen".to_owned(), 1_600_000_001),
            (7, String::new(), 1_600_000_002)
        ]
    );
    assert!(entries[1].modseq > entries[0].modseq);
    assert!(entries[0].modseq > adopted.highest_modseq);
    assert_eq!(mailbox(store, f.account, "INBOX").await.uid_next, Uid(8));

    // Published as deliveries are, after the UIDVALIDITY change.
    let mut heard = Vec::new();
    while let Ok(change) = changes.try_recv() {
        heard.push(change.kind);
    }
    assert!(
        matches!(heard.first(), Some(ChangeKind::MailboxChanged)),
        "{heard:?}"
    );
    let appended: Vec<Uid> = heard
        .iter()
        .filter_map(|kind| match kind {
            ChangeKind::Appended { uid, .. } => Some(*uid),
            _ => None,
        })
        .collect();
    assert_eq!(appended, [Uid(3), Uid(7)]);

    // A UID below UIDNEXT is refused, and the whole batch with it.
    let refused = store
        .import_messages(
            inbox.id,
            vec![imported(Some(9), 3, &[]), imported(Some(5), 4, &[])],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store
            .mailbox_entries(inbox.id)
            .await
            .expect("entries")
            .len(),
        2
    );
    assert_eq!(mailbox(store, f.account, "INBOX").await.uid_next, Uid(8));
    // Without a UID: the next free one.
    let next = store
        .import_messages(inbox.id, vec![imported(None, 5, &[])])
        .await
        .expect("import");
    assert_eq!(next, [Uid(8)]);

    // UIDNEXT only goes up.
    store
        .raise_uid_next(inbox.id, Uid(20))
        .await
        .expect("raise");
    store
        .raise_uid_next(inbox.id, Uid(10))
        .await
        .expect("raise");
    assert_eq!(mailbox(store, f.account, "INBOX").await.uid_next, Uid(20));
    let after_raise = store
        .import_messages(inbox.id, vec![imported(None, 6, &[])])
        .await
        .expect("import");
    assert_eq!(after_raise, [Uid(20)]);

    // A mailbox that holds messages keeps its UIDVALIDITY; the same value is no change.
    let refused = store.adopt_uid_validity(inbox.id, UidValidity(99)).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    store
        .adopt_uid_validity(inbox.id, UidValidity(1_234_567))
        .await
        .expect("same value");
    assert_eq!(
        mailbox(store, f.account, "INBOX").await.uid_validity,
        UidValidity(1_234_567)
    );
}

/// Sieve scripts: at most one active, the active one cannot be deleted, rename keeps the
/// active flag, replacing keeps it too, limits refuse; vacation records expire.
async fn sieve_scripts_keep_one_active_and_vacation_records_expire(backend: Backend) {
    let fixture = fixture(backend).await;
    let (store, account) = (&fixture.store, fixture.account);
    assert!(store.sieve_scripts(account).await.expect("list").is_empty());
    assert_eq!(
        store.active_sieve_script(account).await.expect("active"),
        None
    );
    store
        .put_sieve_script(account, "main", "keep;")
        .await
        .expect("put main");
    store
        .put_sieve_script(account, "vacation", "discard;")
        .await
        .expect("put vacation");
    store
        .activate_sieve_script(account, Some("main"))
        .await
        .expect("activate main");
    store
        .activate_sieve_script(account, Some("vacation"))
        .await
        .expect("activate vacation");
    let listed = store.sieve_scripts(account).await.expect("list");
    let active: Vec<_> = listed
        .iter()
        .filter(|s| s.active)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(active, ["vacation"]);
    assert!(matches!(
        store.activate_sieve_script(account, Some("nope")).await,
        Err(StoreError::NotFound { .. })
    ));
    // The failed SETACTIVE changed nothing.
    let active = store
        .active_sieve_script(account)
        .await
        .expect("active")
        .expect("one");
    assert_eq!(
        (active.name.as_str(), active.content.as_str()),
        ("vacation", "discard;")
    );

    // Replacing the active script keeps it active.
    store
        .put_sieve_script(account, "vacation", "keep; stop;")
        .await
        .expect("replace");
    let active = store
        .active_sieve_script(account)
        .await
        .expect("active")
        .expect("one");
    assert_eq!(active.content, "keep; stop;");

    assert!(matches!(
        store.delete_sieve_script(account, "vacation").await,
        Err(StoreError::SieveScriptActive)
    ));
    assert!(matches!(
        store.rename_sieve_script(account, "vacation", "main").await,
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .rename_sieve_script(account, "vacation", "away")
        .await
        .expect("rename");
    let active = store
        .active_sieve_script(account)
        .await
        .expect("active")
        .expect("one");
    assert_eq!(active.name, "away");
    store
        .delete_sieve_script(account, "main")
        .await
        .expect("delete");
    assert!(matches!(
        store.delete_sieve_script(account, "main").await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .activate_sieve_script(account, None)
        .await
        .expect("deactivate");
    assert_eq!(
        store.active_sieve_script(account).await.expect("active"),
        None
    );
    let script = store
        .sieve_script(account, "away")
        .await
        .expect("get")
        .expect("kept");
    assert!(!script.active);

    // Limits: the size of one script, names, the number of scripts.
    let big = "#".repeat(storage::MAX_SIEVE_SCRIPT_BYTES + 1);
    assert!(matches!(
        store.put_sieve_script(account, "big", &big).await,
        Err(StoreError::OverQuota)
    ));
    assert!(matches!(
        store.put_sieve_script(account, "bad\nname", "keep;").await,
        Err(StoreError::Invalid { .. })
    ));
    for n in 1..storage::MAX_SIEVE_SCRIPTS {
        store
            .put_sieve_script(account, &format!("s{n}"), "keep;")
            .await
            .expect("within the limit");
    }
    assert!(matches!(
        store
            .put_sieve_script(account, "one-too-many", "keep;")
            .await,
        Err(StoreError::OverQuota)
    ));

    // Vacation: a record holds until it expires; a later one replaces it.
    let now = unix_now();
    store
        .record_vacation_replies(
            account,
            vec![
                storage::VacationRecord {
                    sender: "bob@example.net".into(),
                    handle: "h1".into(),
                    expires_at: now + 3600,
                },
                storage::VacationRecord {
                    sender: "bob@example.net".into(),
                    handle: "old".into(),
                    expires_at: now - 1,
                },
            ],
        )
        .await
        .expect("record");
    assert_eq!(
        store
            .vacation_handles(account, "bob@example.net", now)
            .await
            .expect("read"),
        ["h1"]
    );
    assert!(
        store
            .vacation_handles(account, "carol@example.net", now)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        store
            .vacation_handles(account, "bob@example.net", now + 7200)
            .await
            .expect("read")
            .is_empty()
    );
    store
        .record_vacation_replies(
            account,
            vec![storage::VacationRecord {
                sender: "bob@example.net".into(),
                handle: "h1".into(),
                expires_at: now + 10_000,
            }],
        )
        .await
        .expect("record again");
    assert_eq!(
        store
            .vacation_handles(account, "bob@example.net", now + 7200)
            .await
            .expect("read"),
        ["h1"]
    );
    // Removing the account removes its scripts and records.
    store
        .remove_account("alice@example.org")
        .await
        .expect("remove");
    assert!(store.sieve_scripts(account).await.expect("list").is_empty());
}

fn entry(name: &str) -> EntryName {
    EntryName::new(name).unwrap_or_else(|e| panic!("{name:?}: {e}"))
}

/// The names and values of `owner`'s annotations, in name order.
async fn annotations(store: &Store, owner: MetadataOwner) -> Vec<(String, Vec<u8>)> {
    store
        .metadata(owner)
        .await
        .expect("metadata")
        .into_iter()
        .map(|MetadataEntry { name, value }| (name.to_string(), value))
        .collect()
}

/// RFC 5464 annotations: per owner (server of an account, each mailbox), names
/// case-insensitive, NIL removes, a change is all or nothing, limits with their codes, a
/// RENAME keeps them and a DELETE (or removing the account) takes them.
async fn metadata_is_kept_per_owner_within_limits(backend: Backend) {
    let fixture = fixture(backend).await;
    let (store, account) = (&fixture.store, fixture.account);
    let server = MetadataOwner::Server(account);
    let inbox = MetadataOwner::Mailbox(store.inbox(account).await.expect("inbox").id);
    let work = store
        .create_mailbox(account, &mailbox_name("Work"), None)
        .await
        .expect("create");
    let child = store
        .create_mailbox(account, &mailbox_name("Work/Child"), None)
        .await
        .expect("create");
    assert!(annotations(store, inbox).await.is_empty());

    store
        .set_metadata(
            inbox,
            vec![
                (entry("/private/comment"), Some(b"first".to_vec())),
                (entry("/Shared/Comment"), Some(b"shared".to_vec())),
                (entry("/PRIVATE/comment"), Some(b"second".to_vec())),
                (entry("/shared/vendor/x/bin"), Some(vec![0, 255, 1])),
                (entry("/shared/vendor/x/empty"), Some(Vec::new())),
            ],
        )
        .await
        .expect("set");
    store
        .set_metadata(
            server,
            vec![(entry("/private/vendor/x/theme"), Some(b"dark".to_vec()))],
        )
        .await
        .expect("set server");
    assert_eq!(
        annotations(store, inbox).await,
        [
            ("/private/comment".to_owned(), b"second".to_vec()),
            ("/shared/comment".to_owned(), b"shared".to_vec()),
            ("/shared/vendor/x/bin".to_owned(), vec![0, 255, 1]),
            ("/shared/vendor/x/empty".to_owned(), Vec::new()),
        ]
    );
    assert_eq!(
        annotations(store, server).await,
        [("/private/vendor/x/theme".to_owned(), b"dark".to_vec())]
    );
    // NIL removes; removing what is not there is no error.
    store
        .set_metadata(
            inbox,
            vec![
                (entry("/shared/vendor/x/empty"), None),
                (entry("/shared/nothing"), None),
            ],
        )
        .await
        .expect("remove");
    assert_eq!(annotations(store, inbox).await.len(), 3);

    // The administrator's server entries, and a scope alone, cannot be set.
    for (owner, name) in [
        (server, "/shared/comment"),
        (server, "/shared/admin"),
        (inbox, "/shared"),
        (server, "/private"),
    ] {
        let refused = store
            .set_metadata(owner, vec![(entry(name), Some(b"x".to_vec()))])
            .await;
        assert!(
            matches!(refused, Err(StoreError::Invalid { .. })),
            "{name}: {refused:?}"
        );
    }
    // A mailbox's own /shared/comment is the user's.
    store
        .set_metadata(
            MetadataOwner::Mailbox(work),
            vec![
                (entry("/shared/comment"), Some(b"work".to_vec())),
                (entry("/private/comment"), Some(b"mine".to_vec())),
            ],
        )
        .await
        .expect("set work");
    store
        .set_metadata(
            MetadataOwner::Mailbox(child),
            vec![(entry("/private/comment"), Some(b"child".to_vec()))],
        )
        .await
        .expect("set child");

    // A value over the limit; too many entries on one mailbox: nothing of the change
    // is kept.
    let too_large = store
        .set_metadata(
            inbox,
            vec![
                (entry("/shared/ok"), Some(b"ok".to_vec())),
                (
                    entry("/shared/big"),
                    Some(vec![b'x'; storage::MAX_METADATA_VALUE_BYTES + 1]),
                ),
            ],
        )
        .await;
    assert!(
        matches!(too_large, Err(StoreError::MetadataTooLarge { max }) if max == storage::MAX_METADATA_VALUE_BYTES),
        "{too_large:?}"
    );
    let many: Vec<_> = (0..storage::MAX_METADATA_ENTRIES_PER_MAILBOX)
        .map(|n| (entry(&format!("/private/n{n}")), Some(b"v".to_vec())))
        .collect();
    let too_many = store.set_metadata(inbox, many).await;
    assert!(
        matches!(too_many, Err(StoreError::MetadataTooMany { max }) if max == storage::MAX_METADATA_ENTRIES_PER_MAILBOX),
        "{too_many:?}"
    );
    assert_eq!(annotations(store, inbox).await.len(), 3);
    // Up to the limit is fine, and replacing a value there too.
    let up_to: Vec<_> = (3..storage::MAX_METADATA_ENTRIES_PER_MAILBOX)
        .map(|n| (entry(&format!("/private/n{n}")), Some(b"v".to_vec())))
        .collect();
    store
        .set_metadata(inbox, up_to)
        .await
        .expect("up to the limit");
    store
        .set_metadata(inbox, vec![(entry("/private/n3"), Some(b"w".to_vec()))])
        .await
        .expect("replace at the limit");
    // The account's octets: sixteen values at their largest fill it.
    let large = vec![b'y'; storage::MAX_METADATA_VALUE_BYTES];
    let mut over_quota = None;
    for n in 0..20 {
        let set = store
            .set_metadata(
                MetadataOwner::Mailbox(work),
                vec![(entry(&format!("/private/large{n}")), Some(large.clone()))],
            )
            .await;
        if let Err(error) = set {
            over_quota = Some((n, error));
            break;
        }
    }
    assert!(
        matches!(over_quota, Some((15, StoreError::OverQuota))),
        "{over_quota:?}"
    );
    // Removing and shrinking are allowed even at the limit.
    store
        .set_metadata(
            MetadataOwner::Mailbox(work),
            vec![(entry("/private/large0"), Some(b"small".to_vec()))],
        )
        .await
        .expect("shrink");

    // RENAME keeps a mailbox's annotations (and its children's); DELETE takes them.
    store
        .rename_mailbox(work, &mailbox_name("Projects"))
        .await
        .expect("rename");
    let renamed = mailbox(store, account, "Projects").await;
    assert_eq!(renamed.id, work);
    let kept = annotations(store, MetadataOwner::Mailbox(work)).await;
    assert!(kept.contains(&("/shared/comment".to_owned(), b"work".to_vec())));
    assert_eq!(
        annotations(store, MetadataOwner::Mailbox(child)).await,
        [("/private/comment".to_owned(), b"child".to_vec())]
    );
    store.delete_mailbox(child).await.expect("delete");
    let again = store
        .create_mailbox(account, &mailbox_name("Projects/Child"), None)
        .await
        .expect("create again");
    assert!(
        annotations(store, MetadataOwner::Mailbox(again))
            .await
            .is_empty()
    );
    let gone = store
        .set_metadata(
            MetadataOwner::Mailbox(child),
            vec![(entry("/private/comment"), Some(b"x".to_vec()))],
        )
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");

    store
        .remove_account("alice@example.org")
        .await
        .expect("remove");
    assert!(annotations(store, server).await.is_empty());
    assert!(annotations(store, inbox).await.is_empty());
}

/// `local_recipient` finds in one statement what `is_local_domain`, `resolve_recipient`,
/// `account`, `inbox` and `active_sieve_script` find one by one: SMTP's RCPT relies on it.
async fn local_recipient_is_what_the_separate_lookups_find(backend: Backend) {
    let f = fixture(backend).await;
    let bob = accounts::add_account(&f.store, "bob@example.org", "pw-bob").await;
    f.store
        .add_alias("sales@example.org", "alice@example.org")
        .await
        .expect("alias");
    f.store
        .set_quota("alice@example.org", Some(1000))
        .await
        .expect("quota");
    f.store
        .put_sieve_script(f.account, "main", "keep;")
        .await
        .expect("script");
    f.store
        .activate_sieve_script(f.account, Some("main"))
        .await
        .expect("activate");
    deliver(
        &f.store,
        vec![mailbox(&f.store, f.account, "INBOX").await.id],
        message(1),
    )
    .await;

    let addresses = [
        "alice@example.org",
        "ALICE@Example.ORG",
        "alice+news@example.org",
        "sales@example.org",
        "sales+x@example.org",
        "bob@example.org",
        "nobody@example.org",
        "postmaster@example.org",
        "PostMaster@Example.org",
        "alice@example.net",
        "postmaster@example.net",
        "al\0ice@example.org",
        "alice@example.org.",
        "no-at-sign",
    ];
    let check = |phase: &'static str| {
        let store = &f.store;
        async move {
            for address in addresses {
                let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
                // A name that is no domain name is no local domain.
                let local = match storage::Domain::new(domain) {
                    Ok(domain) => store.is_local_domain(&domain).await.expect("domain"),
                    Err(_) => false,
                };
                let expected = if !local {
                    RecipientLookup::NotLocal
                } else {
                    match store.resolve_recipient(address).await.expect("resolve") {
                        None => RecipientLookup::Unknown,
                        Some(account) => {
                            let owner = store.account(account).await.expect("account");
                            RecipientLookup::Local(LocalRecipient {
                                account,
                                quota_bytes: owner.quota_bytes,
                                used_bytes: owner.used_bytes,
                                inbox: store.inbox(account).await.expect("inbox").id,
                                active_script: store
                                    .active_sieve_script(account)
                                    .await
                                    .expect("script"),
                            })
                        }
                    }
                };
                let found = store.local_recipient(address).await.expect("lookup");
                assert_eq!(found, expected, "{phase}: {address}");
            }
        }
    };
    check("aliases, plus, postmaster").await;
    let RecipientLookup::Local(alice) = f
        .store
        .local_recipient("sales+x@example.org")
        .await
        .expect("lookup")
    else {
        panic!("sales+x@example.org is alice's");
    };
    assert_eq!(alice.account, f.account);
    assert_eq!(alice.quota_bytes, Some(1000));
    assert!(alice.used_bytes > 0 && !alice.is_over_quota());
    assert_eq!(
        alice.active_script.map(|script| script.content),
        Some("keep;".to_owned())
    );

    // A catch-all, and a postmaster alias, come before the postmaster fallback.
    f.store
        .add_alias("@example.org", "bob@example.org")
        .await
        .expect("catch-all");
    check("catch-all").await;
    let nobody = f.store.local_recipient("nobody@example.org").await;
    assert!(
        matches!(nobody, Ok(RecipientLookup::Local(ref r)) if r.account == bob),
        "{nobody:?}"
    );

    // INBOX renamed: its messages move to a new mailbox and a new INBOX takes mail.
    let old_inbox = mailbox(&f.store, f.account, "INBOX").await;
    f.store
        .rename_mailbox(old_inbox.id, &mailbox_name("Old"))
        .await
        .expect("rename INBOX");
    f.store
        .activate_sieve_script(f.account, None)
        .await
        .expect("deactivate");
    check("INBOX renamed, no active script").await;
}

/// RFC 4467 mailbox access keys: made once per mailbox and kept, replaced by a reset,
/// removed for the whole account by a reset without a mailbox, and gone with the mailbox
/// or the account; the owner is found by address.
async fn urlauth_keys_are_per_mailbox_and_go_with_it(backend: Backend) {
    let fixture = fixture(backend).await;
    let (store, account) = (&fixture.store, fixture.account);
    let found = store
        .account_by_email("ALICE@example.org")
        .await
        .expect("lookup")
        .map(|a| a.id);
    assert_eq!(found, Some(account));
    assert!(
        store
            .account_by_email("nobody@example.org")
            .await
            .expect("lookup")
            .is_none()
    );
    let inbox = store.inbox(account).await.expect("inbox").id;
    let work = store
        .create_mailbox(account, &mailbox_name("Work"), None)
        .await
        .expect("create");
    assert!(store.urlauth_key(inbox).await.expect("read").is_none());
    let first = store.urlauth_key_or_new(inbox).await.expect("make");
    assert_eq!(first.as_bytes().len(), storage::URLAUTH_KEY_BYTES);
    assert_eq!(store.urlauth_key_or_new(inbox).await.expect("again"), first);
    assert_eq!(
        store.urlauth_key(inbox).await.expect("read"),
        Some(first.clone())
    );
    let other = store.urlauth_key_or_new(work).await.expect("make");
    assert_ne!(other, first);
    store.reset_urlauth_key(inbox).await.expect("reset");
    let second = store
        .urlauth_key(inbox)
        .await
        .expect("read")
        .expect("a key");
    assert_ne!(second, first);
    assert_eq!(store.urlauth_key(work).await.expect("read"), Some(other));
    store.delete_mailbox(work).await.expect("delete");
    assert!(store.urlauth_key(work).await.expect("read").is_none());
    assert!(matches!(
        store.urlauth_key_or_new(work).await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .remove_urlauth_keys(account)
        .await
        .expect("remove all");
    assert!(store.urlauth_key(inbox).await.expect("read").is_none());
    store.urlauth_key_or_new(inbox).await.expect("make");
    store
        .remove_account("alice@example.org")
        .await
        .expect("remove");
    assert!(store.urlauth_key(inbox).await.expect("read").is_none());
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_backends!(
    queue_leases_belong_to_their_holder,
    new_account_has_the_default_mailboxes_with_roles,
    concurrent_deliveries_get_distinct_ascending_uids,
    a_message_delivered_to_three_mailboxes_is_stored_once,
    delivery_failing_halfway_leaves_nothing,
    a_refused_delivery_to_one_mailbox_leaves_nothing,
    copy_over_quota_copies_nothing_and_move_is_atomic,
    flag_store_with_unchangedsince_and_modseq_growth,
    subscribers_hear_every_kind_of_change,
    the_account_watch_wakes_for_mailboxes_and_subscriptions_only,
    rename_moves_children_and_inbox_rename_moves_messages,
    recipients_resolve_through_aliases_plus_and_catch_all,
    login_checks_the_argon2id_hash,
    folded_boundary_multipart_is_stored_with_its_parts,
    delivered_mail_survives_reopening_the_store,
    expunge_removes_only_what_is_deleted_at_commit_and_batch_reads_match,
    bare_lf_and_cr_are_stored_as_crlf_and_nothing_else_changes,
    header_bytes_are_the_raw_prefix_and_unfolded_fields_are_stored,
    message_ids_are_never_reused_after_the_newest_is_deleted,
    mailbox_ids_are_never_reused_and_special_uses_are_one_per_account,
    recent_is_claimed_by_exactly_one_session,
    recent_starts_over_with_a_new_uidvalidity,
    shared_change_reads_are_never_stale,
    save_date_is_set_at_every_insertion,
    preview_is_stored_and_computed_for_meta_stored_before,
    imports_keep_uids_and_uid_validity_within_the_uid_rules,
    sieve_scripts_keep_one_active_and_vacation_records_expire,
    metadata_is_kept_per_owner_within_limits,
    urlauth_keys_are_per_mailbox_and_go_with_it,
    local_recipient_is_what_the_separate_lookups_find,
);
