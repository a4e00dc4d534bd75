//! `letterbox migrate`: a server on SQLite, filled with mail over SMTP and changed with
//! Python's imaplib (flags, a new mailbox, an APPEND, an expunge), is stopped, copied
//! into a new PostgreSQL database with the real binary, and started on that database.
//! imaplib then sees the same UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, UIDs, flags, internal
//! dates and bodies, QRESYNC still reports the expunged UID as VANISHED, the same
//! password logs in, a URLAUTH URL made before still fetches (RFC 4467: its key was
//! copied), and new mail gets the next UID.

mod common;

use common::postgres::PostgresDatabase;
use common::{TestServer, block_on, labelled_line, letterbox_bin, python_client};
use std::process::Command;

/// After `common::PY_PRELUDE`.
const CLIENT: &str = r#"
import hashlib, json, re, urllib.parse
mode = sys.argv[5]
for name in ("GENURLAUTH", "URLFETCH"):
    imaplib.Commands[name] = ("AUTH", "SELECTED")

def deliver(subject, body):
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    s.sendmail("sender@example.net", [user], ("From: Sender <sender@example.net>\r\nTo: " + user +
        "\r\nSubject: " + subject + "\r\n\r\n" + body).encode())
    s.quit()

def describe(m):
    """What a client caches of each mailbox: STATUS and every message's UID, flags,
    internal date and bytes."""
    state = {}
    for name in ["INBOX", "Projects"]:
        status = ok(m.status(name, "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"))[0].decode()
        ok(m.select(name, readonly=True))
        messages = []
        for item in ok(m.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")):
            if not isinstance(item, tuple):
                continue
            head, body = item[0].decode(), item[1]
            messages.append({
                "uid": int(re.search(r"UID (\d+)", head).group(1)),
                "flags": sorted(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()),
                "internaldate": re.search(r'INTERNALDATE "([^"]+)"', head).group(1),
                "sha256": hashlib.sha256(body).hexdigest(),
                "subject": re.search(rb"Subject: ([^\r]*)", body).group(1).decode(),
            })
        state[name] = {"status": status, "messages": messages}
    return state

def vanished(validity):
    """RFC 7162 §3.2.5.1: what a QRESYNC client that saw MODSEQ 1 is told has gone."""
    m = connect()
    ok(m._simple_command("ENABLE", "QRESYNC"))
    m.untagged_responses = {}
    ok(m._simple_command("SELECT", "INBOX", "(QRESYNC (%d 1))" % validity))
    gone = [v.decode() for v in m.untagged_responses.get("VANISHED", [])]
    m.logout()
    return gone

if mode == "fill":
    for n in range(1, 5):
        deliver("note %d" % n, "hello %d\r\n" % n)
    m = connect()
    ok(m.create("Projects"))
    ok(m.subscribe("Projects"))
    ok(m.append("Projects", "(\\Flagged $Work)", imaplib.Time2Internaldate(1700000000),
        b"From: me@example.org\r\nSubject: plan\r\n\r\nthe plan\r\n"))
    ok(m.select("INBOX"))
    ok(m.uid("STORE", "1", "+FLAGS", "(\\Seen)"))
    ok(m.uid("STORE", "2", "+FLAGS", "(\\Flagged $Work)"))
    ok(m.uid("STORE", "3", "+FLAGS", "(\\Deleted)"))
    ok(m.expunge())
    # RFC 4467: a URL authorised now must still fetch after the migration (its key copied).
    rump = "imap://%s@mail.example.org/INBOX/;UID=1;URLAUTH=anonymous" % urllib.parse.quote(user, safe="")
    ok(m._simple_command("GENURLAUTH", '"%s"' % rump, "INTERNAL"))
    print("urlauth", m.untagged_responses.pop("GENURLAUTH")[0].decode().strip('"'))
else:
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
    try:
        m.login(user, "wrong-password")
        print("wrong password accepted")
    except imaplib.IMAP4.error as e:
        print("login-refused", e)
    m = connect()

state = describe(m)
print("state", json.dumps(state, sort_keys=True))
validity = int(re.search(r"UIDVALIDITY (\d+)", state["INBOX"]["status"]).group(1))
print("vanished", vanished(validity))
print("subscribed", sorted(line.decode() for line in ok(m.lsub())))

if mode == "check":
    ok(m._simple_command("URLFETCH", '"%s"' % sys.argv[6]))
    fetched = m.untagged_responses.pop("URLFETCH")[0]
    print("urlfetch", re.search(rb"Subject: ([^\r]*)", fetched[1]).group(1).decode())
    deliver("after migration", "hello again\r\n")
    ok(m.select("INBOX"))
    print("uids", ok(m.uid("SEARCH", None, "ALL"))[0].decode())
m.logout()
"#;

#[test]
fn a_sqlite_installation_moves_to_postgres_and_imap_clients_see_the_same_mailboxes() {
    // Declared first, dropped last: after the server using it has stopped.
    let database = block_on(PostgresDatabase::create());
    let mut server = TestServer::start();
    server.admin_ok(&["user", "quota", &server.email, "10000000"]);
    server.admin_ok(&["alias", "add", "postmaster@localhost", &server.email]);
    let before = python_client(&server, CLIENT, &["fill"]);
    let state = labelled_line(&before, "state");
    assert!(state.contains(r#""uid": 4"#), "{before}");
    assert!(!state.contains(r#""uid": 3"#), "{before}");
    assert!(
        labelled_line(&before, "vanished").contains("(EARLIER) 3"),
        "{before}"
    );
    let users = server.admin_ok(&["user", "list"]);
    let aliases = server.admin_ok(&["alias", "list"]);
    assert!(users.contains("quota 10000000 bytes"), "{users}");
    assert!(server.terminate(), "server did not stop cleanly");

    // SQLite, or PostgreSQL too under LETTERBOX_TEST_BACKEND=postgres.
    let source = server.storage_url();
    let migrate = |from: &str, to: &str| {
        Command::new(letterbox_bin())
            .args(["migrate", "--from", from, "--to", to])
            // Not read by migrate: the URLs are all it needs.
            .env("LETTERBOX_CONFIG", server.dir.join("missing.toml"))
            .output()
            .expect("run letterbox migrate")
    };
    let copied = migrate(&source, &database.url);
    let stdout = String::from_utf8_lossy(&copied.stdout);
    assert!(
        copied.status.success(),
        "migrate failed: {}\n{stdout}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let rows = |table: &str| -> u64 {
        let line = labelled_line(&stdout, table);
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {line:?}"))
    };
    assert_eq!(rows("accounts"), 1, "{stdout}");
    assert_eq!(rows("aliases"), 1, "{stdout}");
    // Three of the four deliveries (one was expunged) and the APPEND.
    assert_eq!(rows("messages"), 4, "{stdout}");
    assert_eq!(rows("mailbox_messages"), 4, "{stdout}");
    assert_eq!(rows("expunged"), 1, "{stdout}");
    assert_eq!(rows("urlauth_keys"), 1, "{stdout}");

    // Into a store that is no longer empty: refused, and nothing printed as copied.
    let again = migrate(&source, &database.url);
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("not empty"), "{error}");
    // A --from that names no store is not created and copied as an empty one.
    let typo = server.data_dir().join("letterbox.sqlit");
    let missing = migrate(&format!("sqlite://{}", typo.display()), &database.url);
    assert!(!missing.status.success());
    assert!(!typo.exists());

    server.set_storage(&database.url);
    server.launch();
    let url = labelled_line(&before, "urlauth");
    let url = url.trim_start_matches("urlauth ");
    let after = python_client(&server, CLIENT, &["check", url]);
    assert_eq!(
        labelled_line(&after, "urlfetch"),
        "urlfetch note 1",
        "{after}"
    );
    assert!(
        labelled_line(&after, "login-refused").contains("AUTHENTICATIONFAILED"),
        "{after}"
    );
    for label in ["state", "vanished", "subscribed"] {
        assert_eq!(
            labelled_line(&after, label),
            labelled_line(&before, label),
            "{label} differs after the migration"
        );
    }
    // The next UID is the UIDNEXT the SQLite server had announced.
    let uid_next: u32 = state
        .split("UIDNEXT ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no UIDNEXT in {state}"));
    let uids = labelled_line(&after, "uids");
    assert!(
        uids.ends_with(&format!(" {uid_next}")),
        "{uids} after {state}"
    );
    assert_eq!(server.admin_ok(&["alias", "list"]), aliases);
    let users_after = server.admin_ok(&["user", "list"]);
    assert!(
        users_after.contains("quota 10000000 bytes"),
        "{users_after}"
    );
}
