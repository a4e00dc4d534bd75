//! `\Recent` for IMAP4rev1 sessions (RFC 3501 §2.3.2, §7.3.2), driven by Python's
//! imaplib: exactly one read-write session is told a message is recent; EXAMINE sees
//! recent messages without taking them; `* n RECENT` comes with SELECT and with new mail;
//! STATUS (RECENT), SEARCH NEW/OLD/RECENT agree; an IMAP4rev2 session sees none of it and
//! takes nothing from the others.

mod common;

use common::Transcript;

/// After `common::PY_PRELUDE`.
const SESSIONS: &str = r#"
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
watcher = connect()
print("status-before", ok(watcher.status("INBOX", "(MESSAGES RECENT)"))[0].decode())

first = connect()
ok(first.select("INBOX"))
print("first-select", recent(first))
print("first-flags", flags(first))

second = connect()
ok(second.select("INBOX"))
print("second-select", recent(second))
print("second-flags", flags(second))

examiner = connect()
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
modern = connect()
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
fn recent_goes_to_exactly_one_imap4rev1_connect() {
    let out = Transcript::of_script(SESSIONS);
    out.assert_lines(&[
        "status-before \"INBOX\" (MESSAGES 2 RECENT 2)",
        "first-select 2",
        "first-flags 1 (FLAGS (\\Recent)) 2 (FLAGS (\\Recent))",
        "second-select 0",
        "second-flags 1 (FLAGS ()) 2 (FLAGS ())",
        "examine-select 0",
        "status-after \"INBOX\" (RECENT 0)",
        // The examiner cannot know whether another session heard of the new message first,
        // so it counts it as recent (RFC 3501 §2.3.2), without taking it from `first`.
        "examine-noop 1",
        "first-noop 3",
        "second-noop None",
        "status-three \"INBOX\" (RECENT 0)",
        "first-search-new 2 3",
        "first-search-recent 1 2 3",
        "first-search-old ",
        "second-search-recent ",
        "second-search-old 1 2 3",
        "modern-select None",
        "modern-flags 1 (FLAGS (\\Seen)) 2 (FLAGS ()) 3 (FLAGS ()) 4 (FLAGS ())",
        "first-after-modern 4",
        "first-expunge 3",
    ]);
}
