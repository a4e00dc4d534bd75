//! The IMAP commands a client uses, through async-imap (a Rust client nobody here wrote):
//! mailbox management, APPEND, SELECT with CONDSTORE, FETCH with MODSEQ, STORE, SEARCH,
//! COPY, MOVE, EXPUNGE and UID EXPUNGE, STATUS, ID, QUOTA, and COMPRESS=DEFLATE (the
//! session goes on over async-imap's own deflate stream). IDLE and two sessions are in
//! tests/imap_two_sessions.rs.

mod common;

use async_imap::types::{Fetch, Flag, NameAttribute};
use common::{TestServer, async_imap_login};

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: sender@example.net\r\nTo: you@localhost\r\nSubject: {subject}\r\n\r\n{body}\r\n")
        .into_bytes()
}

fn has_flag(fetch: &Fetch, wanted: &Flag<'_>) -> bool {
    fetch.flags().any(|flag| &flag == wanted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_imap_drives_every_everyday_command() {
    let server = tokio::task::block_in_place(TestServer::start);
    tokio::task::block_in_place(|| {
        server.admin_ok(&["user", "quota", &server.email, "1048576"]);
    });
    let mut session = async_imap_login(&server).await;

    let capabilities = session.capabilities().await.expect("CAPABILITY");
    for name in [
        "IMAP4rev2",
        "CONDSTORE",
        "QRESYNC",
        "QUOTA",
        "SORT",
        "MULTIAPPEND",
        "COMPRESS=DEFLATE",
    ] {
        assert!(capabilities.has_str(name), "{name} not advertised");
    }
    let id = session
        .id([("name", Some("async-imap-test"))])
        .await
        .expect("ID")
        .expect("server ID");
    assert_eq!(id.get("name").map(String::as_str), Some("letterbox"));

    // Mailboxes: create with a child, list with attributes, rename, subscribe, delete.
    session.create("Projects/2026").await.expect("CREATE");
    let names: Vec<_> = common::all(session.list(Some(""), Some("*")), "LIST").await;
    let projects = names
        .iter()
        .find(|n| n.name() == "Projects")
        .expect("Projects listed");
    assert!(
        projects
            .attributes()
            .contains(&NameAttribute::Extension("\\HasChildren".into())),
        "{:?}",
        projects.attributes()
    );
    assert!(
        names
            .iter()
            .any(|n| n.name() == "Sent" && n.attributes().contains(&NameAttribute::Sent))
    );
    session.rename("Projects", "Work").await.expect("RENAME");
    session.subscribe("Work/2026").await.expect("SUBSCRIBE");
    let subscribed: Vec<_> = common::all(session.lsub(Some(""), Some("Work/*")), "LSUB").await;
    assert_eq!(
        subscribed.iter().map(|n| n.name()).collect::<Vec<_>>(),
        ["Work/2026"]
    );
    session.unsubscribe("Work/2026").await.expect("UNSUBSCRIBE");
    session.delete("Work/2026").await.expect("DELETE");
    assert!(session.select("Work/2026").await.is_err(), "deleted");

    // APPEND three messages, then SELECT with CONDSTORE.
    for (subject, flags) in [
        ("alpha", Some("(\\Seen)")),
        ("beta", None),
        ("gamma", Some("(\\Flagged)")),
    ] {
        session
            .append(
                "INBOX",
                flags,
                None,
                message(subject, &format!("{subject} body")),
            )
            .await
            .expect("APPEND");
    }
    let status = session
        .status("INBOX", "(MESSAGES UNSEEN UIDNEXT)")
        .await
        .expect("STATUS");
    assert_eq!(status.exists, 3);
    assert_eq!(status.unseen, Some(2));
    let mailbox = session.select_condstore("INBOX").await.expect("SELECT");
    assert_eq!(mailbox.exists, 3);
    let highest = mailbox.highest_modseq.expect("HIGHESTMODSEQ");

    let fetches: Vec<Fetch> = common::all(
        session.fetch("1:*", "(UID FLAGS MODSEQ RFC822.SIZE BODY.PEEK[TEXT])"),
        "FETCH",
    )
    .await;
    assert_eq!(fetches.len(), 3);
    assert!(has_flag(&fetches[0], &Flag::Seen));
    assert!(has_flag(&fetches[2], &Flag::Flagged));
    assert_eq!(fetches[1].text(), Some(&b"beta body\r\n"[..]));
    assert!(
        fetches
            .iter()
            .all(|f| f.modseq.is_some_and(|m| m <= highest))
    );

    // STORE and UID STORE; the MODSEQ grows.
    let stored: Vec<Fetch> = common::all(session.store("2", "+FLAGS (\\Answered)"), "STORE").await;
    assert!(has_flag(&stored[0], &Flag::Answered));
    assert!(stored[0].modseq.is_some_and(|m| m > highest));
    let uid_stored: Vec<Fetch> =
        common::all(session.uid_store("3", "-FLAGS (\\Flagged)"), "UID STORE").await;
    assert!(!has_flag(&uid_stored[0], &Flag::Flagged));

    // SEARCH and UID SEARCH.
    let unseen = session.search("UNSEEN").await.expect("SEARCH");
    assert_eq!(unseen, [2, 3].into_iter().collect());
    let found = session
        .uid_search("BODY \"gamma\"")
        .await
        .expect("UID SEARCH");
    assert_eq!(found, [3].into_iter().collect());

    // COPY, UID COPY, MOVE, UID MOVE.
    session.copy("1", "Archive").await.expect("COPY");
    session.uid_copy("2", "Archive").await.expect("UID COPY");
    session.mv("1", "Trash").await.expect("MOVE");
    session.uid_mv("3", "Trash").await.expect("UID MOVE");
    let archive = session
        .status("Archive", "(MESSAGES)")
        .await
        .expect("STATUS Archive");
    assert_eq!(archive.exists, 2);
    let left: Vec<Fetch> = common::all(session.fetch("1:*", "UID"), "FETCH after MOVE").await;
    assert_eq!(left.iter().map(|f| f.uid).collect::<Vec<_>>(), [Some(2)]);

    // EXPUNGE and UID EXPUNGE in Trash.
    session.select("Trash").await.expect("SELECT Trash");
    let _: Vec<_> = common::all(session.store("1:*", "+FLAGS.SILENT (\\Deleted)"), "STORE").await;
    let expunged: Vec<u32> = common::all(session.uid_expunge("1"), "UID EXPUNGE").await;
    assert_eq!(expunged, [1]);
    let expunged: Vec<u32> = common::all(session.expunge(), "EXPUNGE").await;
    assert_eq!(expunged, [1]);
    session.check().await.expect("CHECK");
    session.close().await.expect("CLOSE");

    // QUOTA: the root and its usage.
    let (roots, quotas) = session.get_quota_root("INBOX").await.expect("GETQUOTAROOT");
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].quota_root_names, [""]);
    assert_eq!(quotas.len(), 1);
    let quota = session.get_quota("").await.expect("GETQUOTA");
    let storage = quota.resources.first().expect("STORAGE resource");
    assert_eq!(storage.limit, 1024);
    assert!(storage.usage >= 1, "{quota:?}");

    // COMPRESS=DEFLATE: the rest of the session over async-imap's deflate stream.
    let mut session = session
        .compress(|stream| stream)
        .await
        .expect("COMPRESS DEFLATE");
    session
        .select("Archive")
        .await
        .expect("SELECT over deflate");
    let archived: Vec<Fetch> = common::all(
        session.fetch("1:*", "BODY.PEEK[TEXT]"),
        "FETCH over deflate",
    )
    .await;
    let bodies: Vec<&[u8]> = archived.iter().filter_map(|f| f.text()).collect();
    assert_eq!(bodies, [&b"alpha body\r\n"[..], &b"beta body\r\n"[..]]);
    session.logout().await.expect("LOGOUT");
}
