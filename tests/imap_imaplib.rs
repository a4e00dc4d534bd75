//! IMAP against Python's imaplib: the commands a desktop client uses, over implicit TLS
//! and over STARTTLS, with mail delivered by SMTP in between.

mod common;

use common::{TestServer, python_client};

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
def deliver(subject, body):
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    s.sendmail("sender@example.net", [user], ("From: Sender <sender@example.net>\r\nTo: " + user +
        "\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject.replace(" ", ".") + "@example.net>\r\n\r\n" + body).encode())
    s.quit()

m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
caps = m.capabilities
for cap in ["IMAP4REV1", "IMAP4REV2", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "NAMESPACE", "UNSELECT"]:
    assert cap in caps, (cap, caps)
try:
    m.login(user, "wrong-password")
    print("wrong password accepted")
except imaplib.IMAP4.error as e:
    print("login-refused", e)
ok(m.login(user, password))
listing = ok(m.list())
names = sorted(line.decode() for line in listing)
print("list", names)
assert any("\\Sent" in n and '"Sent"' in n for n in names), names
deliver("first note", "hello one\r\n")
deliver("second note", "hello two\r\n")
print("select", ok(m.select("INBOX")))
print("fetch-envelope", ok(m.fetch("1", "(UID FLAGS ENVELOPE RFC822.SIZE)")))
body = ok(m.fetch("2", "(BODY.PEEK[])"))
print("body-2", body[0][1].decode().split("\r\n\r\n", 1)[1].strip())
print("flags-before", ok(m.fetch("2", "(FLAGS)")))
print("body-text", ok(m.fetch("1", "(BODY[TEXT])"))[0][1])
print("flags-after-seen", ok(m.fetch("1", "(FLAGS)")))
print("store", ok(m.store("2", "+FLAGS", "(\\Flagged $Work)")))
print("search-flagged", ok(m.search(None, "FLAGGED")))
print("search-subject", ok(m.search(None, "SUBJECT", "second")))
print("search-body", ok(m.search(None, "BODY", '"HELLO ONE"')))
print("uid-search", ok(m.uid("SEARCH", None, "ALL")))
print("copy", m.copy("1", "Archive"))
print("move", m._simple_command("MOVE", "1", "Trash"))
print("after-move-exists", ok(m.select("INBOX")))
print("append", m.append("Drafts", "(\\Draft)", None, b"Subject: draft\r\n\r\nunfinished\r\n"))
print("status", ok(m.status("Drafts", "(MESSAGES UIDNEXT UNSEEN)")))
print("create", m.create("Projects/2026"))
print("rename", m.rename("Projects", "Work"))
print("list-work", ok(m.list('""', "Work*")))
print("delete", m.delete("Work/2026"))
print("select-missing", m.select("Nope"))
imaplib.Commands["FROBNICATE"] = ("AUTH", "SELECTED")
try:
    print("bad", m._simple_command("FROBNICATE"))
except imaplib.IMAP4.error as e:
    print("bad", "BAD", e)
ok(m.select("INBOX"))
ok(m.store("1", "+FLAGS", "(\\Deleted)"))
print("expunge", ok(m.expunge()))
print("final-search", ok(m.search(None, "ALL")))
m.logout()

# STARTTLS on the plain port, then LOGIN.
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[5]))
m.starttls(ssl_context=ctx)
ok(m.login(user, password))
print("starttls-select", ok(m.select("Trash", readonly=True)))
m.logout()
"#;

#[test]
fn imaplib_reads_sorts_flags_and_files_mail() {
    let server = TestServer::start();
    let out = python_client(&server, SESSION, &[&server.port("imap").to_string()]);
    let line = |prefix: &str| common::prefixed_line(&out, prefix);
    assert!(
        line("login-refused").contains("AUTHENTICATIONFAILED"),
        "{out}"
    );
    assert!(line("select ").contains("[b'2']"), "{out}");
    let envelope = line("fetch-envelope");
    common::assert_contains_all(
        &envelope,
        &[
            "UID 1",
            "\"first note\"",
            "((\"Sender\" NIL \"sender\" \"example.net\"))",
            "\"<first.note@example.net>\"",
        ],
    );
    assert_eq!(line("body-2"), "body-2 hello two");
    assert!(
        !line("flags-before").contains("\\\\Seen"),
        "PEEK set \\Seen: {out}"
    );
    assert!(line("body-text").contains("hello one"), "{out}");
    assert!(
        line("flags-after-seen").contains("\\\\Seen"),
        "BODY[] did not set \\Seen: {out}"
    );
    assert!(
        line("store").contains("\\\\Flagged") && line("store").contains("$Work"),
        "{out}"
    );
    assert_eq!(line("search-flagged"), "search-flagged [b'2']");
    assert_eq!(line("search-subject"), "search-subject [b'2']");
    assert_eq!(line("search-body"), "search-body [b'1']");
    assert_eq!(line("uid-search"), "uid-search [b'1 2']");
    for (label, needle) in [
        ("copy", "OK"),
        ("move", "OK"),
        ("after-move-exists", "[b'1']"),
    ] {
        assert!(line(label).contains(needle), "{out}");
    }
    assert!(
        line("append").contains("OK") && line("append").contains("APPENDUID"),
        "{out}"
    );
    assert!(line("status").contains("MESSAGES 1"), "{out}");
    assert!(
        line("create").contains("OK") && line("rename").contains("OK"),
        "{out}"
    );
    for (label, needle) in [
        ("list-work", "Work/2026"),
        ("delete", "OK"),
        ("select-missing", "NO"),
        ("bad", "BAD"),
        ("expunge", "[b'1']"),
    ] {
        assert!(line(label).contains(needle), "{out}");
    }
    assert_eq!(line("final-search"), "final-search [b'']");
    assert!(line("starttls-select").contains("[b'1']"), "{out}");
}
