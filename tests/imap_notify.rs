//! NOTIFY (RFC 5465) through Python's imaplib, with two connections: the first asks to
//! be told of changes (NOTIFY SET) and then only listens, sending nothing; the second,
//! and SMTP, make the changes. Every line the first hears is what a user's client would
//! show: new mail in another mailbox as STATUS, new mail in the selected one as EXISTS
//! and the FETCH it asked for, flag changes, expunges, and mailboxes renamed, subscribed
//! and deleted as LIST. What Dovecot 2.3 also has is compared with it in
//! tests/imap_session_diff.rs (`notify_tells_the_same_events`).

mod common;

use common::{PY_RUN, TestServer, labelled_line, python_client};

/// What both scripts share, after `common::PY_PRELUDE`: imaplib keeping every line it
/// reads (for `common::PY_RUN`, a command and what it brought) and `hear` (lines sent
/// unasked, with no command in progress).
const PRELUDE: &str = r#"
import re, select
imaplib.Commands["NOTIFY"] = ("AUTH", "SELECTED")

def clean(line):
    line = line.decode() if isinstance(line, bytes) else line
    return re.sub(r"(UIDVALIDITY|HIGHESTMODSEQ) \d+", r"\1 n", line)

class Recording(imaplib.IMAP4_SSL):
    def _get_line(self):
        line = super()._get_line()
        self.__dict__.setdefault("lines", []).append(clean(line))
        return line

def connect():
    m = Recording("127.0.0.1", imaps, ssl_context=ctx)
    m.login(user, password)
    return m

def hear(m, label, count, ordered=True):
    """Reads `count` lines the server sends unasked, with no command in progress."""
    m.sock.settimeout(20)
    got = []
    try:
        for _ in range(count):
            got.append(clean(m._get_line()))
    except Exception as e:
        got.append("nothing more: %s" % type(e).__name__)
    m.sock.settimeout(None)
    print(label, " | ".join(got if ordered else sorted(got)))

def quiet(m, label, wait):
    """Whether the server stays silent for `wait` seconds (a read that times out would
    leave imaplib's socket file unusable)."""
    readable, _, _ = select.select([m.sock], [], [], wait)
    print(label, "spoke" if readable or m.sock.pending() else "quiet")
"#;

const SCRIPT: &str = r#"
m, other = connect(), connect()
run(other, "create", "CREATE", "Lists")
run(m, "badevent", "NOTIFY", "SET (personal (MessageNew MessageExpunge AnnotationChange))")
run(m, "unpaired", "NOTIFY", "SET (personal (MessageNew))")
run(m, "select", "SELECT", "INBOX")
run(m, "set", "NOTIFY", "SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))")

other.append("Lists", None, None, b"From: a@example.org\r\nSubject: list mail\r\n\r\nHi.\r\n")
hear(m, "append-elsewhere", 1)
with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as s:
    s.sendmail("friend@example.org", [user], b"From: friend@example.org\r\nTo: %s\r\nSubject: hello\r\n\r\nHello.\r\n" % user.encode())
hear(m, "delivered-here", 3)
other.select("INBOX")
other.store("1", "+FLAGS", "(\\Seen)")
hear(m, "flagged-here", 1)
other.rename("Lists", "Lists2")
hear(m, "renamed", 1)
other.subscribe("Lists2")
hear(m, "subscribed", 1)
other.delete("Lists2")
hear(m, "deleted", 1)
other._simple_command("MOVE", "1", "Trash")
hear(m, "moved-away", 3, ordered=False)
run(m, "none", "NOTIFY", "NONE")
other.append("Trash", None, None, b"Subject: quiet\r\n\r\nHi.\r\n")
run(m, "after-none", "NOOP")
other.logout()
m.logout()
"#;

#[test]
fn imaplib_hears_what_it_asked_notify_for_without_asking_again() {
    let server = TestServer::start();
    let out = python_client(&server, &format!("{PRELUDE}{PY_RUN}{SCRIPT}"), &[]);
    let line = |label: &str| labelled_line(&out, label);
    assert!(line("create").starts_with("create OK "), "{out}");
    // RFC 5465 §3.1: an unsupported event is a NO with BADEVENT listing what is
    // supported; §5: MessageNew without MessageExpunge is a BAD.
    assert_eq!(
        line("badevent"),
        "badevent NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported NOTIFY events"
    );
    assert!(line("unpaired").starts_with("unpaired BAD "), "{out}");
    // §3.1 STATUS: every watched mailbox but the selected one, before the tagged OK.
    let set = line("set");
    for mailbox in ["Archive", "Drafts", "Junk", "Lists", "Sent", "Trash"] {
        let status = format!(
            "* STATUS \"{mailbox}\" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY n UNSEEN 0 HIGHESTMODSEQ n)"
        );
        assert!(set.contains(&status), "{set}");
    }
    assert!(!set.contains("STATUS INBOX"), "{set}");
    assert!(set.ends_with("| OK NOTIFY completed"), "{set}");
    // §5.2: new mail elsewhere as STATUS; in the selected mailbox as EXISTS and the
    // FETCH asked for.
    assert_eq!(
        line("append-elsewhere"),
        r#"append-elsewhere * STATUS "Lists" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"#
    );
    assert_eq!(
        line("delivered-here"),
        "delivered-here * 1 EXISTS | * 1 RECENT | * 1 FETCH (UID 1 FLAGS (\\Recent))"
    );
    // §5.1: a flag change in the selected mailbox, with its UID.
    assert_eq!(
        line("flagged-here"),
        "flagged-here * 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))"
    );
    // §5.4 and §5.5: LIST responses, with OLDNAME for a rename and \NonExistent after a
    // delete.
    assert_eq!(
        line("renamed"),
        r#"renamed * LIST (\HasNoChildren) "/" "Lists2" ("OLDNAME" ("Lists"))"#
    );
    assert_eq!(
        line("subscribed"),
        r#"subscribed * LIST (\Subscribed \HasNoChildren) "/" "Lists2""#
    );
    assert_eq!(
        line("deleted"),
        r#"deleted * LIST (\NonExistent) "/" "Lists2""#
    );
    // §5.3: MOVE expunges here (RFC 3501 §7.3.2: the RECENT count falls with it) and
    // adds there.
    assert_eq!(
        line("moved-away"),
        r#"moved-away * 0 RECENT | * 1 EXPUNGE | * STATUS "Trash" (MESSAGES 1 UIDNEXT 2 UNSEEN 0)"#
    );
    // NOTIFY NONE: nothing more about other mailboxes.
    assert_eq!(line("none"), "none OK NOTIFY completed");
    assert_eq!(line("after-none"), "after-none OK Done");
}

const DELAYED_AND_LIMITS: &str = r#"
m, other = connect(), connect()
m.select("INBOX")
other.select("INBOX")
other.append("INBOX", None, None, b"Subject: one\r\n\r\nHi.\r\n")
other.append("INBOX", None, None, b"Subject: two\r\n\r\nHi.\r\n")
run(m, "catch-up", "NOOP")
run(m, "delayed", "NOTIFY", "SET (selected-delayed (MessageNew (UID) MessageExpunge FlagChange))")
other.store("1", "+FLAGS", "(\\Deleted)")
hear(m, "flag-delayed", 1)
other.expunge()
quiet(m, "expunge-delayed", 3)
run(m, "expunge-told", "UID", "FETCH", "1:*", "(UID)")
run(m, "idle-set", "NOTIFY", "SET (personal (MailboxName))")
m.lines = []
m.send(b"i1 IDLE\r\n")
hear(m, "idle", 1)
other.create("Idled")
hear(m, "idle-created", 1)
m.send(b"DONE\r\n")
hear(m, "idle-done", 1)
run(m, "quiet-again", "NOTIFY", "NONE")
for n in range(500):
    other._simple_command("CREATE", "Many/%d" % n)
run(m, "overflow", "NOTIFY", "SET (personal (MessageNew MessageExpunge))")
run(m, "still-fine", "NOTIFY", "SET (subtree Many/1 (MessageNew MessageExpunge))")
other.logout()
m.logout()
"#;

/// SELECTED-DELAYED (RFC 5465 §6.1.2) holds an expunge back until a command allows it,
/// IDLE tells what NOTIFY asked for (§4), and a NOTIFY naming more mailboxes than a
/// session watches is refused with NOTIFICATIONOVERFLOW (§3.1) while a smaller one is not.
#[test]
fn imaplib_sees_delayed_expunges_idle_notifications_and_the_watch_limit() {
    let server = TestServer::start();
    let out = python_client(
        &server,
        &format!("{PRELUDE}{PY_RUN}{DELAYED_AND_LIMITS}"),
        &[],
    );
    let line = |label: &str| labelled_line(&out, label);
    assert_eq!(line("delayed"), "delayed OK NOTIFY completed");
    assert_eq!(
        line("flag-delayed"),
        "flag-delayed * 1 FETCH (UID 1 FLAGS (\\Deleted))"
    );
    // §6.1.2: no EXPUNGE while no command is in progress; it comes at the end of the
    // next command that allows it (a UID command, RFC 9051 §7.5.1), which still sees
    // the message.
    assert_eq!(line("expunge-delayed"), "expunge-delayed quiet");
    assert_eq!(
        line("expunge-told"),
        "expunge-told * 1 FETCH (UID 1) | * 2 FETCH (UID 2) | * 1 EXPUNGE | OK UID FETCH completed"
    );
    assert_eq!(line("idle"), "idle + idling");
    assert_eq!(
        line("idle-created"),
        r#"idle-created * LIST (\HasNoChildren) "/" "Idled""#
    );
    assert_eq!(line("idle-done"), "idle-done i1 OK IDLE terminated");
    assert_eq!(
        line("overflow"),
        "overflow NO [NOTIFICATIONOVERFLOW] Too many mailboxes to watch"
    );
    assert_eq!(line("still-fine"), "still-fine OK NOTIFY completed");
}
