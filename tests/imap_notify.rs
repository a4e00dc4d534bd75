//! NOTIFY (RFC 5465) through Python's imaplib, with two connections: the first asks to
//! be told of changes (NOTIFY SET) and then only listens, sending nothing; the second,
//! and SMTP, make the changes. Every line the first hears is what a user's client would
//! show: new mail in another mailbox as STATUS, new mail in the selected one as EXISTS
//! and the FETCH it asked for, flag changes, expunges, and mailboxes renamed, subscribed
//! and deleted as LIST. What Dovecot 2.3 also has is compared with it in
//! tests/imap_session_diff.rs (`notify_tells_the_same_events`).

mod common;

use common::{TestServer, labelled_line, python_client};

const SCRIPT: &str = r#"
import imaplib, re, smtplib, ssl, sys
imaps, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
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

def run(m, label, *args):
    tag = (m.tagpre + str(m.tagnum).encode()).decode()
    m.lines = []
    try:
        m._simple_command(*args)
    except m.error:
        pass
    lines = [l[len(tag) + 1:] if l.startswith(tag + " ") else l for l in m.lines]
    print(label, " | ".join(lines))

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
    let out = python_client(&server, SCRIPT, &[]);
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
