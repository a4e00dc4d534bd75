//! Moving in and out (issue 19): `letterbox import maildir` of a Maildir that Debian's
//! Dovecot filled through IMAP keeps what IMAP clients see (UIDVALIDITY, UIDs, flags,
//! keywords, INTERNALDATEs, subscriptions), so mbsync, synced against Dovecot before,
//! downloads nothing from letterbox; `import mbox` reads mboxrd with its flags; `export
//! maildir` is read back by Dovecot with the same UIDs and flags, `export mbox` by
//! Python's mailbox module; and every import run twice imports nothing the second time.

mod common;

use common::dovecot::{DOVECOT_PASSWORD, DOVECOT_USER, Dovecot};
use common::mail_snapshot::{
    FILL_DOVECOT, MoveFromDovecot, new_account, only, snapshot, subscribed,
};
use common::{TestServer, path_str, python};
use serde_json::Value;

#[test]
fn a_dovecot_maildir_moves_in_with_its_uids_and_mbsync_downloads_nothing() {
    let mut moving = MoveFromDovecot::start();
    moving.dovecot.stop();
    let (server, email) = (&moving.server, &moving.email);
    let maildir = moving.dovecot.maildir();
    let report = server.admin_ok(&["import", "maildir", path_str(&maildir), "--user", email]);
    common::assert_contains_all(
        &report,
        &[
            "INBOX: 4 imported, 0 already there",
            "UIDs kept",
            "3 subscriptions",
        ],
    );
    moving.assert_same_as_before();
    moving.assert_mbsync_downloads_nothing();

    // Run again: nothing new, nothing twice.
    let again = server.admin_ok(&["import", "maildir", path_str(&maildir), "--user", email]);
    assert!(
        again.contains("INBOX: 0 imported, 4 already there"),
        "{again}"
    );
    moving.assert_same_as_before();
}

#[test]
fn a_dovecot_maildir_into_an_account_with_mail_gets_new_uids_and_says_so() {
    let mut dovecot = Dovecot::start();
    python(
        FILL_DOVECOT,
        &[&dovecot.port.to_string(), DOVECOT_USER, DOVECOT_PASSWORD],
    );
    dovecot.stop();
    let server = TestServer::start();
    let email = new_account(&server, "busy");
    // Mail there already: UIDs cannot be kept in INBOX.
    let mbox = server.dir.join("one.mbox");
    std::fs::write(
        &mbox,
        "From x Mon Jan  2 03:04:05 2023\nSubject: here first\n\nbody\n",
    )
    .expect("mbox");
    server.admin_ok(&["import", "mbox", path_str(&mbox), "--user", &email]);
    let maildir = dovecot.maildir();
    let report = server.admin_ok(&["import", "maildir", path_str(&maildir), "--user", &email]);
    assert!(
        report
            .contains("INBOX: 4 imported, 0 already there (new UIDs: the mailbox held other mail"),
        "{report}"
    );
    let after = snapshot(server.port("imaps"), true, &email, "moving-in");
    let inbox = after["mailboxes"]["INBOX"]["messages"]
        .as_array()
        .expect("messages");
    let uids: Vec<u64> = inbox.iter().map(|m| m[0].as_u64().expect("uid")).collect();
    assert_eq!(uids, [1, 2, 3, 4, 5]);
    // Found again by content on a second run, though the UIDs are not Dovecot's.
    let again = server.admin_ok(&["import", "maildir", path_str(&maildir), "--user", &email]);
    assert!(
        again.contains("INBOX: 0 imported, 4 already there"),
        "{again}"
    );
}

/// mboxrd by hand: `>From ` and `>>From ` lines, Status/X-Status/X-Keywords flags,
/// dates on the `From ` lines (one with a zone), LF line ends.
const MBOX: &str = "From alice@example.net Mon Jan  2 03:04:05 2023\n\
Subject: first\n\
Status: RO\n\
X-Status: AF\n\
X-Keywords: $Label1 project\n\
\n\
>From the start of a line\n\
>>From quoted once already\n\
\n\
From bob@example.net Tue Jan  3 10:00:00 2023 +0100\n\
Subject: second\n\
Status: O\n\
\n\
unread\n\
\n\
From carol@example.net Wed Jan  4 12:00:00 2023\n\
Subject: third\n\
X-Status: T\n\
\n\
a draft\n\
\n";

const READ_MAILBOX: &str = r#"
import imaplib, ssl, sys, json, datetime
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx)
m.login(sys.argv[2], sys.argv[3])
typ, data = m.select(sys.argv[4], readonly=True)
assert typ == "OK", data
out = []
if int(data[0]) > 0:
    typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta = item[0].decode()
        flags = sorted(f for f in imaplib.ParseFlags(item[0]) if f != b"\\Recent")
        date = meta.split('INTERNALDATE "')[1].split('"')[0]
        seconds = int(datetime.datetime.strptime(date, "%d-%b-%Y %H:%M:%S %z").timestamp())
        out.append([[f.decode() for f in flags], seconds, item[1].decode()])
print(json.dumps(out))
"#;

fn read_mailbox(server: &TestServer, email: &str, password: &str, mailbox: &str) -> Value {
    let text = python(
        READ_MAILBOX,
        &[&server.port("imaps").to_string(), email, password, mailbox],
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn an_mbox_moves_in_with_flags_dates_and_unescaped_from_lines_once() {
    let server = TestServer::start();
    let email = new_account(&server, "mboxer");
    // An import interrupted after two messages, then run whole: the third only is new.
    let partial = server.dir.join("partial.mbox");
    let cut = MBOX.find("From carol").expect("third message");
    std::fs::write(&partial, &MBOX[..cut]).expect("partial mbox");
    let report = server.admin_ok(&[
        "import",
        "mbox",
        path_str(&partial),
        "--user",
        &email,
        "--mailbox",
        "Old mail",
    ]);
    assert!(
        report.contains("Old mail: 2 imported, 0 already there"),
        "{report}"
    );
    let whole = server.dir.join("whole.mbox");
    std::fs::write(&whole, MBOX).expect("mbox");
    let args = [
        "import",
        "mbox",
        path_str(&whole),
        "--user",
        &email,
        "--mailbox",
        "Old mail",
    ];
    let report = server.admin_ok(&args);
    assert!(
        report.contains("Old mail: 1 imported, 2 already there"),
        "{report}"
    );
    let report = server.admin_ok(&args);
    assert!(
        report.contains("Old mail: 0 imported, 3 already there"),
        "{report}"
    );

    let seen = read_mailbox(&server, &email, "moving-in", "\"Old mail\"");
    let expected = serde_json::json!([
        [
            ["$Label1", "\\Answered", "\\Flagged", "\\Seen", "project"],
            1_672_628_645,
            "Subject: first\r\n\r\nFrom the start of a line\r\n>From quoted once already\r\n"
        ],
        [[], 1_672_736_400, "Subject: second\r\n\r\nunread\r\n"],
        [
            ["\\Draft"],
            1_672_833_600,
            "Subject: third\r\n\r\na draft\r\n"
        ],
    ]);
    assert_eq!(seen, expected);
}

/// Appends to letterbox what the export must carry: folders (nested, non-ASCII),
/// flags, keywords, dates, a gap in the UIDs, subscriptions.
const FILL_LETTERBOX: &str = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx)
m.login(sys.argv[2], sys.argv[3])
for name in ("Work/Projects", "&AMQ-pfel"):
    typ, data = m.create(name); assert typ == "OK", data
typ, data = m.subscribe("Work/Projects"); assert typ == "OK", data
def append(box, flags, when, raw):
    typ, data = m.append(box, flags, imaplib.Time2Internaldate(when), raw)
    assert typ == "OK", data
append("INBOX", r"(\Seen $Label1 work)", 1600000000, b"Subject: one\r\n\r\nFrom the start\r\n")
append("INBOX", r"(\Deleted)", 1600000100, b"Subject: gone\r\n\r\nx\r\n")
m.select("INBOX")
typ, data = m.expunge(); assert typ == "OK", data
append("INBOX", r"(\Flagged \Answered)", 1600000200, b"Subject: two\r\n\r\nbody\r\n")
append("Work/Projects", r"(\Draft)", 1600000300, b"Subject: plan\r\n\r\nplan\r\n")
append("&AMQ-pfel", None, 1600000400, b"Subject: apples\r\n\r\napples\r\n")
m.logout()
"#;

#[test]
fn an_export_is_read_back_by_dovecot_and_python_with_the_same_messages() {
    let server = TestServer::start();
    let email = new_account(&server, "leaver");
    python(
        FILL_LETTERBOX,
        &[&server.port("imaps").to_string(), &email, "moving-in"],
    );
    let here = snapshot(server.port("imaps"), true, &email, "moving-in");
    let names = ["INBOX", "Work/Projects", "Äpfel", "Sent", "Drafts"];
    let out = server.dir.join("export");
    let report = server.admin_ok(&["export", "maildir", "--user", &email, path_str(&out)]);
    assert!(
        report.contains("INBOX: 2 written, 0 there already"),
        "{report}"
    );
    // Run again: nothing written twice.
    let again = server.admin_ok(&["export", "maildir", "--user", &email, path_str(&out)]);
    assert!(
        again.contains("INBOX: 0 written, 2 there already"),
        "{again}"
    );

    let dovecot = Dovecot::start_on_maildir(&out);
    let there = snapshot(dovecot.port, false, DOVECOT_USER, DOVECOT_PASSWORD);
    assert_eq!(
        only(&there, &names),
        only(&here, &names),
        "{}",
        dovecot.log()
    );
    let subscriptions = subscribed(&there);
    assert!(
        subscriptions.contains(&"Work/Projects".to_owned()),
        "{subscriptions:?}"
    );
    assert!(
        !subscriptions.contains(&"Äpfel".to_owned()),
        "{subscriptions:?}"
    );
    drop(dovecot);

    // mbox: Python's mailbox module (a reader we did not write) sees the messages and
    // the flags mutt would.
    let mboxes = server.dir.join("mboxes");
    server.admin_ok(&["export", "mbox", "--user", &email, path_str(&mboxes)]);
    let read = python(
        r#"
import mailbox, sys, json
out = {}
for name in ("INBOX", "Work.sbd/Projects"):
    box = mailbox.mbox(sys.argv[1] + "/" + name, create=False)
    out[name] = [[m["Subject"], m.get_flags(), m.get_payload()] for m in box]
print(json.dumps(out))
"#,
        &[path_str(&mboxes)],
    );
    let read: Value = serde_json::from_str(&read).expect("json");
    assert_eq!(
        read,
        serde_json::json!({
            // Python reads mbox without taking the `>` off (mboxo): the escape is there.
            "INBOX": [["one", "RO", ">From the start\n"], ["two", "OAF", "body\n"]],
            "Work.sbd/Projects": [["plan", "OT", "plan\n"]],
        })
    );
}
