//! Moving in and out (issue 19): `letterbox import maildir` of a Maildir that Debian's
//! Dovecot filled through IMAP keeps what IMAP clients see (UIDVALIDITY, UIDs, flags,
//! keywords, INTERNALDATEs, subscriptions), so mbsync, synced against Dovecot before,
//! downloads nothing from letterbox; `import mbox` reads mboxrd with its flags; `export
//! maildir` is read back by Dovecot with the same UIDs and flags, `export mbox` by
//! Python's mailbox module; and every import run twice imports nothing the second time.

mod common;

use common::dovecot::{DOVECOT_PASSWORD, DOVECOT_USER, Dovecot};
use common::{TestServer, mbsync, path_str, python};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// What an IMAP client sees of an account, as JSON: for every selectable mailbox (names
/// in UTF-8 with `/` between levels) its UIDVALIDITY, UIDNEXT and messages (UID, flags
/// without \Recent, INTERNALDATE as seconds, RFC822.SIZE, SHA-256 of BODY[]), and the
/// subscribed names. argv: port, tls (0/1), user, password.
const SNAPSHOT: &str = r#"
import imaplib, ssl, sys, re, json, hashlib, datetime, base64
port, tls, user, password = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
if tls:
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
else:
    m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)

def mutf7_decode(s):
    return re.sub(r"&([^-]*)-", lambda g: "&" if g.group(1) == "" else
                  ("+" + g.group(1).replace(",", "/") + "-").encode().decode("utf-7"), s)

def mutf7_encode(level):
    def b64(run):
        return "&" + base64.b64encode(run.encode("utf-16-be")).decode().rstrip("=").replace("/", ",") + "-"
    out, run = "", ""
    for ch in level:
        if " " <= ch <= "~":
            if run:
                out, run = out + b64(run), ""
            out += "&-" if ch == "&" else ch
        else:
            run += ch
    return out + (b64(run) if run else "")

LINE = re.compile(rb'\((?P<attrs>[^)]*)\) (?:"(?P<delim>[^"]*)"|NIL) (?P<name>.*)$')
def names(command):
    typ, data = m._simple_command(command, '""', '"*"')
    assert typ == "OK", data
    found = []
    for line in m._untagged_response(typ, data, command)[1]:
        if line is None:
            continue
        g = LINE.match(line)
        assert g, line
        name = g.group("name").decode()
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        delim = (g.group("delim") or b"/").decode()
        found.append((g.group("attrs").decode(), delim, mutf7_decode(name).replace(delim, "/")))
    return found

out = {"mailboxes": {}, "subscribed": sorted(n for _, _, n in names("LSUB"))}
for attrs, delim, name in names("LIST"):
    if "\\Noselect" in attrs or "\\NonExistent" in attrs:
        continue
    wire = '"' + delim.join(mutf7_encode(level) for level in name.split("/")) + '"'
    typ, data = m.select(wire, readonly=True)
    assert typ == "OK", (name, data)
    status = m.status(wire, "(UIDVALIDITY UIDNEXT)")[1][0].decode()
    box = {
        "uidvalidity": int(re.search(r"UIDVALIDITY (\d+)", status).group(1)),
        "uidnext": int(re.search(r"UIDNEXT (\d+)", status).group(1)),
        "messages": [],
    }
    if int(data[0]) > 0:
        typ, lines = m.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE)")
        assert typ == "OK", lines
        for line in lines:
            line = line.decode()
            uid = int(re.search(r"UID (\d+)", line).group(1))
            flags = sorted(f for f in re.search(r"FLAGS \(([^)]*)\)", line).group(1).split() if f != "\\Recent")
            date = re.search(r'INTERNALDATE "([^"]+)"', line).group(1)
            seconds = int(datetime.datetime.strptime(date.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp())
            size = int(re.search(r"RFC822.SIZE (\d+)", line).group(1))
            typ, body = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
            assert typ == "OK", body
            digest = hashlib.sha256(body[0][1]).hexdigest()
            box["messages"].append([uid, flags, seconds, size, digest])
        box["messages"].sort()
    out["mailboxes"][name] = box
m.logout()
print(json.dumps(out))
"#;

/// Fills Dovecot through IMAP: folders (one nested, one non-ASCII), flags, keywords,
/// dates, an expunged message (a gap in the UIDs), subscriptions (not every folder).
const FILL_DOVECOT: &str = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
for name in ("Sent", "Work.Projects", "&AMQ-pfel", "Lists"):
    typ, data = m.create(name); assert typ == "OK", data
for name in ("Sent", "Work.Projects", "&AMQ-pfel"):
    typ, data = m.subscribe(name); assert typ == "OK", data
def append(box, flags, when, raw):
    typ, data = m.append(box, flags, imaplib.Time2Internaldate(when), raw)
    assert typ == "OK", data
append("INBOX", r"(\Seen $Label1 work)", 1600000000, b"From: a@example.net\r\nSubject: one\r\nMessage-ID: <1@x>\r\n\r\nbody one\r\n")
append("INBOX", r"(\Flagged \Answered)", 1600000100, b"Subject: two\r\n\r\nFrom me\r\nbody two\r\n")
append("INBOX", r"(\Deleted)", 1600000200, b"Subject: three\r\n\r\ngone\r\n")
m.select("INBOX")
typ, data = m.expunge(); assert typ == "OK", data
append("INBOX", r"(other)", 1600000300, b"Subject: four\r\n\r\nbody four\r\n")
append("INBOX", None, 1600000350, b"Subject: five\r\n\r\nunseen\r\n")
append("Sent", r"(\Seen)", 1500000000, b"Subject: sent\r\n\r\nsent body\r\n")
append("Work.Projects", r"(\Draft work)", 1600000400, b"Subject: draft\r\n\r\nplan\r\n")
append("&AMQ-pfel", r"(\Seen)", 1600000500, b"Subject: =?utf-8?q?=C3=84pfel?=\r\n\r\napples\r\n")
m.logout()
"#;

fn snapshot(port: u16, tls: bool, user: &str, password: &str) -> Value {
    let text = python(
        SNAPSHOT,
        &[
            &port.to_string(),
            if tls { "1" } else { "0" },
            user,
            password,
        ],
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("snapshot {e}: {text}"))
}

/// The mailboxes of `snapshot` named in `names`, for comparing two servers that also
/// have others (letterbox's default mailboxes).
fn only(snapshot: &Value, names: &[&str]) -> BTreeMap<String, Value> {
    names
        .iter()
        .map(|name| {
            let mailbox = snapshot["mailboxes"]
                .get(*name)
                .unwrap_or_else(|| panic!("no mailbox {name} in {snapshot}"));
            ((*name).to_owned(), mailbox.clone())
        })
        .collect()
}

fn subscribed(snapshot: &Value) -> Vec<String> {
    snapshot["subscribed"]
        .as_array()
        .expect("subscribed")
        .iter()
        .map(|v| v.as_str().expect("name").to_owned())
        .collect()
}

/// Message files of a local Maildir tree (mbsync's): path relative to the root with
/// the flags in its name, and the contents.
fn maildir_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|p| p == "cur" || p == "new")
            {
                let relative = path.strip_prefix(root).expect("under root");
                files.insert(
                    relative.display().to_string(),
                    std::fs::read(&path).expect("read"),
                );
            }
        }
    }
    files
}

/// An mbsyncrc for one far store (`far`: its IMAPAccount lines) and the local Maildir
/// tree `local`, every folder, state kept beside the mail.
fn mbsync_config(path: &Path, far: &str, local: &Path) {
    std::fs::write(
        path,
        format!(
            "IMAPAccount far\n{far}\n\n\
             IMAPStore far\nAccount far\n\n\
             MaildirStore near\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :far:\nNear :near:\nPatterns *\nCreate Near\nSync All\nExpunge None\nSyncState *\n",
            local = path_str(local),
        ),
    )
    .expect("write mbsyncrc");
}

/// A second account on the test server, with no mail: what an import moves into.
fn new_account(server: &TestServer, local: &str) -> String {
    let domain = server.email.split('@').nth(1).expect("domain");
    let email = format!("{local}@{domain}");
    server.add_user(&email, "moving-in");
    email
}

const FROM_DOVECOT: &[&str] = &["INBOX", "Sent", "Work/Projects", "Äpfel", "Lists"];

#[test]
fn a_dovecot_maildir_moves_in_with_its_uids_and_mbsync_downloads_nothing() {
    let mut dovecot = Dovecot::start();
    python(
        FILL_DOVECOT,
        &[&dovecot.port.to_string(), DOVECOT_USER, DOVECOT_PASSWORD],
    );
    let before = snapshot(dovecot.port, false, DOVECOT_USER, DOVECOT_PASSWORD);
    // The fill did what the comparison relies on: a gap in INBOX's UIDs, keywords.
    let inbox = &before["mailboxes"]["INBOX"];
    let uids: Vec<u64> = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m[0].as_u64().expect("uid"))
        .collect();
    assert_eq!(uids, [1, 2, 4, 5], "{before}");

    // mbsync copies the account while it is on Dovecot.
    let server = TestServer::start();
    let local = server.dir.join("mbsync-local");
    std::fs::create_dir_all(&local).expect("local maildir");
    let rc = server.dir.join("mbsyncrc");
    mbsync_config(
        &rc,
        &format!(
            "Host 127.0.0.1\nPort {}\nUser {DOVECOT_USER}\nPass {DOVECOT_PASSWORD}\nSSLType None\nAuthMechs LOGIN PLAIN",
            dovecot.port
        ),
        &local,
    );
    mbsync(&rc);
    let synced = maildir_files(&local);
    assert_eq!(synced.len(), 7, "mbsync copied: {:?}", synced.keys());

    dovecot.stop();
    let email = new_account(&server, "mover");
    let maildir = dovecot.maildir();
    let report = server.admin_ok(&["import", "maildir", path_str(&maildir), "--user", &email]);
    assert!(
        report.contains("INBOX: 4 imported, 0 already there"),
        "{report}"
    );
    assert!(report.contains("UIDs kept"), "{report}");
    assert!(report.contains("3 subscriptions"), "{report}");

    let after = snapshot(server.port("imaps"), true, &email, "moving-in");
    assert_eq!(only(&after, FROM_DOVECOT), only(&before, FROM_DOVECOT));
    let here = subscribed(&after);
    for name in subscribed(&before) {
        assert!(here.contains(&name), "{name} not subscribed: {here:?}");
    }
    assert!(!here.contains(&"Lists".to_owned()), "{here:?}");

    // mbsync, pointed at letterbox with the same local store and state, finds nothing
    // to download or change.
    mbsync_config(
        &rc,
        &format!(
            "Host localhost\nPort {}\nUser {email}\nPass moving-in\nSSLType IMAPS\nCertificateFile {}",
            server.port("imaps"),
            path_str(&server.data_dir().join("tls-selfsigned-cert.pem")),
        ),
        &local,
    );
    let output = mbsync(&rc);
    assert_eq!(
        maildir_files(&local),
        synced,
        "mbsync changed the local store:\n{output}"
    );

    // Run again: nothing new, nothing twice.
    let again = server.admin_ok(&["import", "maildir", path_str(&maildir), "--user", &email]);
    assert!(
        again.contains("INBOX: 0 imported, 4 already there"),
        "{again}"
    );
    let after_again = snapshot(server.port("imaps"), true, &email, "moving-in");
    assert_eq!(
        only(&after_again, FROM_DOVECOT),
        only(&before, FROM_DOVECOT)
    );
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
