//! What the import tests (`tests/import_export.rs`, `tests/import_imap.rs`) compare: an
//! IMAP client's view of an account (UIDVALIDITY, UIDNEXT, UIDs, flags, INTERNALDATEs,
//! sizes, SHA-256 of each message, subscriptions), a Dovecot account filled through
//! IMAP, and mbsync's local store before and after it syncs against letterbox.

use super::dovecot::{DOVECOT_PASSWORD, DOVECOT_USER, Dovecot};
use super::{TestServer, mbsync, path_str, python};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an IMAP client sees of an account, as JSON: for every selectable mailbox (names
/// in UTF-8 with `/` between levels) its UIDVALIDITY, UIDNEXT and messages (UID, flags
/// without \Recent, INTERNALDATE as seconds, RFC822.SIZE, SHA-256 of BODY[]), and the
/// subscribed names. argv: port, tls (0/1), user, password.
pub const SNAPSHOT: &str = r#"
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

/// Fills Dovecot through IMAP (argv: port, user, password): folders (one nested, one non-ASCII), flags, keywords,
/// dates, an expunged message (a gap in the UIDs), subscriptions (not every folder).
pub const FILL_DOVECOT: &str = r#"
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

pub fn snapshot(port: u16, tls: bool, user: &str, password: &str) -> Value {
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
pub fn only(snapshot: &Value, names: &[&str]) -> BTreeMap<String, Value> {
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

pub fn subscribed(snapshot: &Value) -> Vec<String> {
    snapshot["subscribed"]
        .as_array()
        .expect("subscribed")
        .iter()
        .map(|v| v.as_str().expect("name").to_owned())
        .collect()
}

/// Message files of a local Maildir tree (mbsync's): path relative to the root with
/// the flags in its name, and the contents.
pub fn maildir_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
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
pub fn mbsync_config(path: &Path, far: &str, local: &Path) {
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
pub fn new_account(server: &TestServer, local: &str) -> String {
    let domain = server.email.split('@').nth(1).expect("domain");
    let email = format!("{local}@{domain}");
    server.add_user(&email, "moving-in");
    email
}

/// The mailboxes [`FILL_DOVECOT`] makes or fills, as letterbox names them.
pub const FROM_DOVECOT: &[&str] = &["INBOX", "Sent", "Work/Projects", "Äpfel", "Lists"];

/// The start of a move from Dovecot: Dovecot filled by [`FILL_DOVECOT`] (its gap in
/// INBOX's UIDs checked), what an IMAP client sees there, a letterbox with a new empty
/// account (password `moving-in`), and mbsync's copy of the Dovecot account in a local
/// Maildir with its sync state.
pub struct MoveFromDovecot {
    pub dovecot: Dovecot,
    pub before: Value,
    pub server: TestServer,
    pub email: String,
    rc: PathBuf,
    local: PathBuf,
    synced: BTreeMap<String, Vec<u8>>,
}

impl MoveFromDovecot {
    pub fn start() -> MoveFromDovecot {
        let dovecot = Dovecot::start();
        python(
            FILL_DOVECOT,
            &[&dovecot.port.to_string(), DOVECOT_USER, DOVECOT_PASSWORD],
        );
        let before = snapshot(dovecot.port, false, DOVECOT_USER, DOVECOT_PASSWORD);
        // The fill did what the comparisons rely on: a gap in INBOX's UIDs.
        let uids: Vec<u64> = before["mailboxes"]["INBOX"]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m[0].as_u64().expect("uid"))
            .collect();
        assert_eq!(uids, [1, 2, 4, 5], "{before}");

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
        let email = new_account(&server, "mover");
        MoveFromDovecot {
            dovecot,
            before,
            server,
            email,
            rc,
            local,
            synced,
        }
    }

    /// What an IMAP client sees of the account here now.
    pub fn here(&self) -> Value {
        snapshot(self.server.port("imaps"), true, &self.email, "moving-in")
    }

    /// The account here shows what Dovecot showed before: the same mailboxes
    /// ([`FROM_DOVECOT`]) and subscriptions (Lists is not subscribed).
    pub fn assert_same_as_before(&self) {
        let after = self.here();
        assert_eq!(only(&after, FROM_DOVECOT), only(&self.before, FROM_DOVECOT));
        let here = subscribed(&after);
        for name in subscribed(&self.before) {
            assert!(here.contains(&name), "{name} not subscribed: {here:?}");
        }
        assert!(!here.contains(&"Lists".to_owned()), "{here:?}");
    }

    /// mbsync, pointed at the account here with the same local store and state, finds
    /// nothing to download or change.
    pub fn assert_mbsync_downloads_nothing(&self) {
        mbsync_config(
            &self.rc,
            &format!(
                "Host localhost\nPort {}\nUser {}\nPass moving-in\nSSLType IMAPS\nCertificateFile {}",
                self.server.port("imaps"),
                self.email,
                path_str(&self.server.data_dir().join("tls-selfsigned-cert.pem")),
            ),
            &self.local,
        );
        let output = mbsync(&self.rc);
        assert_eq!(
            maildir_files(&self.local),
            self.synced,
            "mbsync changed the local store:\n{output}"
        );
    }
}
