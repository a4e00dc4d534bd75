//! `\Recent` for IMAP4rev1 sessions (RFC 3501 §2.3.2, §7.3.2), driven by Python's
//! imaplib: exactly one read-write session is told a message is recent; EXAMINE sees
//! recent messages without taking them; `* n RECENT` comes with SELECT and with new mail;
//! STATUS (RECENT), SEARCH NEW/OLD/RECENT agree; an IMAP4rev2 session sees none of it and
//! takes nothing from the others.

mod common;

use common::{TestServer, labelled_line, python_client};

const SESSIONS: &str = r#"
import imaplib, smtplib, ssl, sys
imaps, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data

def session():
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
    ok(m.login(user, password))
    return m

def deliver(subject):
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    s.sendmail("sender@example.net", [user], ("From: sender@example.net\r\nTo: " + user +
        "\r\nSubject: " + subject + "\r\n\r\nbody\r\n").encode())
    s.quit()

def recent(m):
    # The last `* n RECENT` the session heard since it was last asked, or None.
    typ, data = m.response("RECENT")
    return data[-1].decode() if data and data[-1] is not None else None

def flags(m):
    return " ".join(sorted(line.decode() for line in ok(m.fetch("1:*", "(FLAGS)"))))

def search(m, key):
    return ok(m.search(None, key))[0].decode()

deliver("one")
deliver("two")
watcher = session()
print("status-before", ok(watcher.status("INBOX", "(MESSAGES RECENT)"))[0].decode())

first = session()
ok(first.select("INBOX"))
print("first-select", recent(first))
print("first-flags", flags(first))

second = session()
ok(second.select("INBOX"))
print("second-select", recent(second))
print("second-flags", flags(second))

examiner = session()
ok(examiner.select("INBOX", readonly=True))
print("examine-select", recent(examiner))
print("status-after", ok(watcher.status("INBOX", "(RECENT)"))[0].decode())

deliver("three")
ok(examiner.noop())
print("examine-noop", recent(examiner))
ok(first.noop())
print("first-noop", recent(first))
ok(second.noop())
print("second-noop", recent(second))
print("status-three", ok(watcher.status("INBOX", "(RECENT)"))[0].decode())

ok(first.store("1", "+FLAGS", "(\\Seen)"))
print("first-search-new", search(first, "NEW"))
print("first-search-recent", search(first, "RECENT"))
print("first-search-old", search(first, "OLD"))
print("second-search-recent", search(second, "RECENT"))
print("second-search-old", search(second, "OLD"))

# An IMAP4rev2 session neither sees nor takes \Recent.
modern = session()
ok(modern.enable("IMAP4rev2"))
deliver("four")
ok(modern.select("INBOX"))
print("modern-select", recent(modern))
print("modern-flags", flags(modern))
ok(first.noop())
print("first-after-modern", recent(first))

# EXPUNGE of a recent message lowers the count.
ok(first.store("1", "+FLAGS", "(\\Deleted)"))
ok(first.expunge())
print("first-expunge", recent(first))
for m in (first, second, examiner, modern, watcher):
    m.logout()
"#;

#[test]
fn recent_goes_to_exactly_one_imap4rev1_session() {
    let server = TestServer::start();
    let out = python_client(&server, SESSIONS, &[]);
    let line = |label: &str| labelled_line(&out, label);
    assert_eq!(
        line("status-before"),
        "status-before \"INBOX\" (MESSAGES 2 RECENT 2)"
    );
    assert_eq!(line("first-select"), "first-select 2");
    assert_eq!(
        line("first-flags"),
        "first-flags 1 (FLAGS (\\Recent)) 2 (FLAGS (\\Recent))"
    );
    assert_eq!(line("second-select"), "second-select 0");
    assert_eq!(
        line("second-flags"),
        "second-flags 1 (FLAGS ()) 2 (FLAGS ())"
    );
    assert_eq!(line("examine-select"), "examine-select 0");
    assert_eq!(line("status-after"), "status-after \"INBOX\" (RECENT 0)");
    // The examiner cannot know whether another session heard of the new message first,
    // so it counts it as recent (RFC 3501 §2.3.2), without taking it from `first`.
    assert_eq!(line("examine-noop"), "examine-noop 1");
    assert_eq!(line("first-noop"), "first-noop 3");
    assert_eq!(line("second-noop"), "second-noop None");
    assert_eq!(line("status-three"), "status-three \"INBOX\" (RECENT 0)");
    assert_eq!(line("first-search-new"), "first-search-new 2 3");
    assert_eq!(line("first-search-recent"), "first-search-recent 1 2 3");
    assert_eq!(line("first-search-old"), "first-search-old ");
    assert_eq!(line("second-search-recent"), "second-search-recent ");
    assert_eq!(line("second-search-old"), "second-search-old 1 2 3");
    assert_eq!(line("modern-select"), "modern-select None");
    assert_eq!(
        line("modern-flags"),
        "modern-flags 1 (FLAGS (\\Seen)) 2 (FLAGS ()) 3 (FLAGS ()) 4 (FLAGS ())"
    );
    assert_eq!(line("first-after-modern"), "first-after-modern 4");
    assert_eq!(line("first-expunge"), "first-expunge 3");
}
