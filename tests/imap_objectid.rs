//! OBJECTID (RFC 8474) and CREATE-SPECIAL-USE (RFC 6154 §3) as Python's imaplib sees
//! them: a MAILBOXID that stays with its mailbox through RENAME and is not given to the
//! mailbox created under the same name after a DELETE (the newest mailbox, whose SQLite
//! row id would come back), the same EMAILID for a message and its COPY and MOVE, SEARCH
//! EMAILID finding the copy, THREADID NIL (threads are not kept), and CREATE with USE:
//! the attribute in LIST, and NO [USEATTR] for a use another mailbox has, a virtual or
//! unknown one, or two at once. Dovecot 2.3.19 offers neither extension (its CAPABILITY
//! after LOGIN lists no OBJECTID and no CREATE-SPECIAL-USE, and it ignores USE), so
//! there is nothing of it to compare with.

mod common;

use common::Transcript;

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
import re
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)

def text(data):
    return b" ".join(d if isinstance(d, bytes) else repr(d).encode() for d in data if d).decode()

def command(label, *args):
    """Prints `label status text | untagged lines`, returns them as one string."""
    m.untagged_responses = {}
    typ, data = m._simple_command(*args)
    untagged = []
    for key in ("LIST", "STATUS", "FETCH", "SEARCH", "MAILBOXID"):
        for value in m.untagged_responses.get(key, []):
            untagged.append(key + " " + (value.decode() if isinstance(value, bytes) else repr(value)))
    line = "%s %s | %s" % (typ, text(data), " ; ".join(untagged))
    print(label, line)
    return line

def untagged(line):
    return line.split(" | ", 1)[1]

def first(pattern, line):
    found = re.search(pattern, line)
    return found.group(1) if found else "none"

print("capabilities", " ".join(sorted(m.capabilities)))

created = command("create", "CREATE", "Projects")
print("create-id", first(r"\[MAILBOXID \(([^)]*)\)\]", created))
print("status-id", first(r"MAILBOXID \(([^)]*)\)", command("status", "STATUS", "Projects", "(MAILBOXID)")))
m.select("Projects")
print("select-id", first(r"\(([^)]*)\)", text(m.untagged_responses.get("MAILBOXID", []))))
m.unselect()
command("rename", "RENAME", "Projects", "Work")
print("renamed-id", first(r"MAILBOXID \(([^)]*)\)", command("status-renamed", "STATUS", "Work", "(MAILBOXID)")))
listed = command("list-status", "LIST", '""', "Work", "RETURN", "(STATUS (MAILBOXID))")
print("list-status-id", first(r"MAILBOXID \(([^)]*)\)", listed))
command("delete", "DELETE", "Work")
print("recreated-id", first(r"\[MAILBOXID \(([^)]*)\)\]", command("recreate", "CREATE", "Work")))

message = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: objectid\r\nMessage-ID: <oid@example.org>\r\n\r\nbody\r\n"
m.append("INBOX", None, None, message)
m.select("INBOX")
fetched = command("fetch-inbox", "FETCH", "1", "(EMAILID THREADID)")
print("inbox-emailid", first(r"EMAILID \(([^)]*)\)", fetched))
print("inbox-threadid", first(r"THREADID (NIL|\([^)]*\))", fetched))
m.copy("1", "Archive")
m.select("Archive")
print("copy-emailid", first(r"EMAILID \(([^)]*)\)", command("fetch-copy", "FETCH", "1", "(EMAILID)")))
emailid = first(r"EMAILID \(([^)]*)\)", fetched)
print("search-emailid", first(r"^SEARCH ?(.*)", untagged(command("search", "UID", "SEARCH", "EMAILID", emailid))))
print("search-other", first(r"^SEARCH ?(.*)", untagged(command("search-unknown", "UID", "SEARCH", "EMAILID", "M999999999"))))
print("search-threadid", first(r"^SEARCH ?(.*)", untagged(command("search-thread", "UID", "SEARCH", "THREADID", "T1"))))
m._simple_command("MOVE", "1", "Work")
m.select("Work")
print("move-emailid", first(r"EMAILID \(([^)]*)\)", command("fetch-moved", "FETCH", "1", "(EMAILID)")))
m.select("INBOX")

command("use-taken", "CREATE", '"Sent Items"', "(USE (\\Sent))")
command("use-virtual", "CREATE", "Everything", "(USE (\\All))")
command("use-unknown", "CREATE", "Odd", "(USE (\\Bogus))")
command("use-two", "CREATE", "Both", "(USE (\\Sent \\Drafts))")
command("delete-sent", "DELETE", "Sent")
command("use-free", "CREATE", '"Sent Items"', "(USE (\\Sent))")
command("list-use", "LIST", '""', '"Sent Items"')
command("list-special", "LIST", "(SPECIAL-USE)", '""', "*")
command("list-refused", "LIST", '""', "(Everything Odd Both)")
m.logout()
"#;

#[test]
fn objectids_and_create_special_use_as_imaplib_sees_them() {
    let out = Transcript::of_script(SESSION);
    let capabilities: Vec<&str> = out.answer("capabilities").split(' ').collect();
    for capability in ["OBJECTID", "CREATE-SPECIAL-USE", "SPECIAL-USE"] {
        assert!(capabilities.contains(&capability), "{capability}\n{out}");
    }

    // RFC 8474 §4.1: CREATE, STATUS, SELECT and LIST-STATUS name the same MAILBOXID,
    // RENAME keeps it, and the mailbox created after DELETE gets another one.
    let id = out.answer("create-id");
    assert!(
        id.len() <= 255
            && !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "objectid syntax: {id}\n{out}"
    );
    for label in ["status-id", "select-id", "renamed-id", "list-status-id"] {
        assert_eq!(out.answer(label), id, "{label}\n{out}");
    }
    let recreated = out.answer("recreated-id");
    assert_ne!(recreated, "none", "{out}");
    assert_ne!(recreated, id, "a MAILBOXID given to another mailbox\n{out}");

    // RFC 8474 §5.1: a COPY and a MOVE keep the EMAILID; SEARCH EMAILID finds the copy.
    let emailid = out.answer("inbox-emailid");
    assert_ne!(emailid, "none", "{out}");
    assert_eq!(out.answer("copy-emailid"), emailid, "{out}");
    assert_eq!(out.answer("move-emailid"), emailid, "{out}");
    assert_eq!(out.answer("search-emailid"), "1", "{out}");
    assert_eq!(out.answer("search-other"), "", "{out}");
    // RFC 8474 §5.2: THREADID NIL, and SEARCH THREADID finds nothing.
    assert_eq!(out.answer("inbox-threadid"), "NIL", "{out}");
    assert_eq!(out.answer("search-threadid"), "", "{out}");

    // RFC 6154 §3: refused uses get NO [USEATTR] and create nothing.
    for label in ["use-taken", "use-virtual", "use-unknown", "use-two"] {
        assert!(
            out.answer(label).starts_with("NO [USEATTR]"),
            "{label}\n{out}"
        );
    }
    assert!(
        out.answer("use-taken")
            .contains(r"\Sent is already the special use of Sent"),
        "{out}"
    );
    assert_eq!(out.answer("list-refused"), "OK LIST completed | ", "{out}");
    // Once Sent is gone, the use is free: the new mailbox has it.
    assert!(
        out.answer("use-free").starts_with("OK [MAILBOXID ("),
        "{out}"
    );
    assert!(
        out.answer("list-use")
            .contains(r#"LIST (\HasNoChildren \Sent) "/" "Sent Items""#),
        "{out}"
    );
    assert!(
        out.answer("list-special")
            .contains(r#"LIST (\HasNoChildren \Sent) "/" "Sent Items""#),
        "{out}"
    );
}
