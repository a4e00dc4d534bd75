//! Hostile messages and commands from the issue "Hostile input" (port 25, no login, then
//! the user's own IMAP client): deeply nested MIME, a References field of thousands of
//! ids, a LIST pattern of thousands of wildcards. Each is answered by protocol, the server
//! keeps serving, and after a restart every message (the hostile ones included) answers
//! FETCH ENVELOPE/BODYSTRUCTURE, SEARCH, SORT and THREAD. Driven by smtplib and imaplib.

mod common;

use common::{TestServer, labelled_line, python_client};

const DELIVER: &str = r#"
import smtplib, sys
imaps, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def nested_multipart(levels):
    head, tail = [], []
    for level in range(levels):
        head.append('Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level))
        tail.insert(0, "--b%d--\r\n" % level)
    return "".join(head) + "Content-Type: text/plain\r\n\r\ndeepest needle\r\n" + "".join(tail)

def nested_rfc822(levels):
    return "".join("Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % n for n in range(levels)) \
        + "Subject: innermost\r\n\r\ninner needle\r\n"

references = " ".join("<r%d@attacker.example>" % n for n in range(5000))
messages = [
    ("multipart-2000", nested_multipart(2000)),
    ("rfc822-3000", nested_rfc822(3000)),
    ("multipart-340", nested_multipart(340)),
    ("multipart-60", nested_multipart(60)),
    ("references-5000", "Message-ID: <many@attacker.example>\r\nReferences: %s\r\n"
        "In-Reply-To: <r4999@attacker.example>\r\n\r\nneedle\r\n" % references),
    ("plain", "Message-ID: <plain@example.net>\r\n\r\nan ordinary needle\r\n"),
]
for name, body in messages:
    message = "From: attacker@example.net\r\nTo: %s\r\nSubject: %s\r\n%s" % (user, name, body)
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    try:
        s.sendmail("attacker@example.net", [user], message.encode())
        print("sent", name, "ok", len(message))
    except smtplib.SMTPResponseException as e:
        print("sent", name, "refused", e.smtp_code)
    s.quit()
"#;

/// After `common::PY_PRELUDE`.
const CHECK: &str = r#"
import re
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)
typ, data = m.select("INBOX")
count = int(data[0])
print("exists", count)
typ, data = m.fetch("1:*", "(ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])")
print("fetch", typ, sum(1 for d in data if isinstance(d, tuple)))
typ, data = m.fetch("1:*", "(BODY.PEEK[1] BODY.PEEK[TEXT])")
print("fetch-parts", typ)
typ, data = m.search(None, "BODY", "needle")
print("search", typ, len(data[0].split()))
typ, data = m.search(None, "SUBJECT", "multipart")
print("search-subject", typ, data[0].decode())
typ, data = m.sort("(SUBJECT)", "UTF-8", "ALL")
print("sort", typ, len(data[0].split()))
typ, data = m.thread("REFERENCES", "UTF-8", "ALL")
print("thread", typ, data[0].decode())
typ, data = m.thread("ORDEREDSUBJECT", "UTF-8", "ALL")
print("thread-subject", typ)
typ, data = m.list("\"\"", "*" * 24000)
print("list-stars", typ, any(d.endswith(b"INBOX") or d.endswith(b"\"INBOX\"") for d in data if d), data[0])
try:
    typ, data = m.list("\"\"", "%a" * 3000)
    print("list-long", typ)
except imaplib.IMAP4.error as e:
    print("list-long", "BAD", e)
typ, data = m.fetch(",".join(["1:*"] * 12000), "(UID)")
print("fetch-ranges", typ, sum(1 for d in data if d))
typ, data = m.noop()
print("alive", typ)
m.logout()
"#;

/// The labelled line without its label.
fn value(out: &str, label: &str) -> String {
    labelled_line(out, label)[label.len() + 1..].to_owned()
}

fn check_mailbox(server: &TestServer) {
    let out = python_client(server, CHECK, &[]);
    assert_eq!(value(&out, "exists"), "6", "{out}");
    assert_eq!(value(&out, "fetch"), "OK 6", "{out}");
    assert_eq!(value(&out, "fetch-parts"), "OK", "{out}");
    // Parts beyond the depth limit are opaque to FETCH, but their text is searched.
    assert_eq!(value(&out, "search"), "OK 6", "{out}");
    assert_eq!(value(&out, "search-subject"), "OK 1 3 4", "{out}");
    assert_eq!(value(&out, "sort"), "OK 6", "{out}");
    let thread = value(&out, "thread");
    assert!(thread.starts_with("OK "), "{out}");
    for n in 1..=6 {
        assert!(
            thread.split(['(', ')', ' ']).any(|t| t == n.to_string()),
            "message {n} missing from {thread}"
        );
    }
    assert_eq!(value(&out, "thread-subject"), "OK", "{out}");
    assert!(value(&out, "list-stars").starts_with("OK True"), "{out}");
    assert!(value(&out, "list-long").starts_with("BAD"), "{out}");
    // 12,000 ranges naming every message: each answered once.
    assert_eq!(value(&out, "fetch-ranges"), "OK 6", "{out}");
    assert_eq!(value(&out, "alive"), "OK", "{out}");
}

#[test]
fn nested_mime_huge_references_and_wildcards_are_answered_and_survive_a_restart() {
    let mut server = TestServer::start();
    let sent = python_client(&server, DELIVER, &[]);
    for name in [
        "multipart-2000",
        "rfc822-3000",
        "multipart-340",
        "multipart-60",
        "references-5000",
        "plain",
    ] {
        assert!(sent.contains(&format!("sent {name} ok ")), "{sent}");
    }
    check_mailbox(&server);
    // What was stored reads back: the next start, an admin command and every FETCH.
    assert!(server.terminate(), "server did not stop cleanly");
    server.launch();
    server.admin_ok(&["user", "list"]);
    check_mailbox(&server);
}

/// A row stored by an older version with meta nested deeper than SQLite's JSON functions
/// and serde read (and without the unfolded header, so the start-up backfill picks it):
/// the server still starts, and the message is analysed again from its raw bytes.
#[test]
fn an_unreadable_stored_row_affects_only_its_own_message() {
    let mut server = TestServer::start();
    if server.storage.is_some() {
        // The row is damaged through SQLite; the PostgreSQL run has nothing to add.
        return;
    }
    let sent = python_client(&server, DELIVER, &[]);
    assert!(sent.contains("sent plain ok "), "{sent}");
    assert!(server.terminate(), "server did not stop cleanly");
    let database = server.data_dir().join("letterbox.sqlite");
    let damage = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
deep = '{"root":' * 1100 + '1' + '}' * 1100
rows = db.execute("UPDATE messages SET meta = ? WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT 2)", (deep,)).rowcount
db.commit()
print("damaged", rows)
"#;
    let out = common::python(damage, &[common::path_str(&database)]);
    assert_eq!(value(&out, "damaged"), "2", "{out}");
    server.launch();
    server.admin_ok(&["user", "list"]);
    check_mailbox(&server);
    assert!(
        server.log().contains("stored meta unreadable"),
        "no warning logged"
    );
}
