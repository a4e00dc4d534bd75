//! `letterbox import imap` (issue 19) from a running Dovecot (Debian's): an imaplib
//! client then sees on letterbox the same UIDVALIDITY, UIDNEXT, UIDs, flags, keywords,
//! INTERNALDATEs, sizes and SHA-256 of every message, and the same subscriptions; mbsync,
//! synced against Dovecot before, downloads nothing from letterbox; a second run copies
//! nothing, and a later one only the new messages and the flags changed on Dovecot,
//! leaving a flag changed on letterbox alone. TLS (STARTTLS and from the first byte)
//! checks Dovecot's certificate, and the password shows nowhere, not even at trace level.

mod common;

use common::dovecot::{DOVECOT_PASSWORD, DOVECOT_USER, Dovecot};
use common::mail_snapshot::{FILL_DOVECOT, MoveFromDovecot, new_account, snapshot};
use common::{TestServer, path_str, python};
use serde_json::Value;
use std::process::Output;

/// Runs `letterbox import imap ARGS` with `password` on stdin and LETTERBOX_LOG at
/// `log`; checks that the password shows in neither stdout nor stderr.
fn import_imap(server: &TestServer, args: &[&str], password: &str, log: &str) -> Output {
    let args: Vec<&str> = ["import", "imap"].iter().chain(args).copied().collect();
    let output = server.admin_with_input(&args, password, &[("LETTERBOX_LOG", log)]);
    for (name, text) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(
            !String::from_utf8_lossy(text).contains(password),
            "the password is in {name}"
        );
    }
    output
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// [`import_imap`] that must succeed; its stdout.
fn import_imap_ok(server: &TestServer, args: &[&str]) -> String {
    let output = import_imap(server, args, DOVECOT_PASSWORD, "info");
    assert!(
        output.status.success(),
        "import imap {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a Python IMAP script against Dovecot's plain port (argv: port, user, password).
fn on_dovecot(dovecot: &Dovecot, script: &str) {
    python(
        script,
        &[&dovecot.port.to_string(), DOVECOT_USER, DOVECOT_PASSWORD],
    );
}

/// Runs a Python IMAP script against letterbox's IMAPS port (argv: port, user,
/// password); `m` is logged in.
fn on_letterbox(server: &TestServer, email: &str, body: &str) {
    let script = format!(
        "import imaplib, ssl, sys\n\
         ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx)\n\
         m.login(sys.argv[2], sys.argv[3])\n\
         {body}\n\
         m.logout()\n"
    );
    python(
        &script,
        &[&server.port("imaps").to_string(), email, "moving-in"],
    );
}

/// After the first copy, on Dovecot: a new message in INBOX and in Lists, flags changed
/// on two INBOX messages and a keyword added in Work.Projects.
const CHANGE_DOVECOT: &str = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
def append(box, flags, when, raw):
    typ, data = m.append(box, flags, imaplib.Time2Internaldate(when), raw)
    assert typ == "OK", data
append("INBOX", r"(\Flagged)", 1601553600, b"Subject: six\r\n\r\nlater\r\n")
append("Lists", None, 1600000700, b"Subject: list\r\n\r\nlist mail\r\n")
m.select("INBOX")
for uid, change, flags in (("5", "+FLAGS", r"(\Seen)"), ("1", "-FLAGS", "($Label1)")):
    typ, data = m.uid("STORE", uid, change, flags); assert typ == "OK", data
m.select("Work.Projects")
typ, data = m.uid("STORE", "1", "+FLAGS", "(later)"); assert typ == "OK", data
m.logout()
"#;

fn messages(snapshot: &Value, mailbox: &str) -> Vec<Value> {
    snapshot["mailboxes"][mailbox]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no {mailbox} in {snapshot}"))
        .clone()
}

#[test]
fn a_live_dovecot_account_moves_in_with_its_uids_and_later_runs_copy_only_what_is_new() {
    let moving = MoveFromDovecot::start();
    let (server, email, dovecot) = (&moving.server, &moving.email, &moving.dovecot);
    let port = dovecot.port.to_string();
    let args = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--login",
        DOVECOT_USER,
        "--password-stdin",
        "--user",
        email,
    ];
    let report = import_imap_ok(server, &args);
    common::assert_contains_all(
        &report,
        &[
            "INBOX: 4 imported, 0 already there (UIDVALIDITY",
            "7 messages copied, 0 flag changes, 3 subscriptions",
        ],
    );
    moving.assert_same_as_before();
    moving.assert_mbsync_downloads_nothing();

    // Run again: nothing to copy.
    let again = import_imap_ok(server, &args);
    common::assert_contains_all(
        &again,
        &[
            "0 messages copied, 0 flag changes",
            "INBOX: 0 imported, 0 already there",
        ],
    );

    // Here: a flag set on Sent (that must stay), and mail in Lists that takes the UID
    // Dovecot gives its next message there.
    on_letterbox(
        server,
        email,
        "m.select('Sent'); typ, data = m.uid('STORE', '1', '+FLAGS', '(\\\\Flagged)'); assert typ == 'OK', data\n\
         typ, data = m.append('Lists', None, None, b'Subject: here\\r\\n\\r\\nlocal\\r\\n'); assert typ == 'OK', data",
    );
    on_dovecot(dovecot, CHANGE_DOVECOT);
    let changed = snapshot(dovecot.port, false, DOVECOT_USER, DOVECOT_PASSWORD);
    // What the state said before this run: put back below, as if the run had been
    // stopped after it wrote the messages and before it wrote its state.
    let state_before = state_files(server);
    let report = import_imap_ok(server, &args);
    common::assert_contains_all(
        &report,
        &[
            "2 messages copied, 3 flag changes",
            "INBOX: 1 imported, 0 already there, 2 with new flags",
            "Lists: 1 imported, 0 already there (UIDVALIDITY",
            "1 at new UIDs",
        ],
    );
    let after = moving.here();
    for name in ["INBOX", "Work/Projects", "Äpfel"] {
        assert_eq!(
            after["mailboxes"][name], changed["mailboxes"][name],
            "{name}"
        );
    }
    let mut sent = messages(&changed, "Sent");
    sent[0][1] = serde_json::json!(["\\Flagged", "\\Seen"]);
    assert_eq!(messages(&after, "Sent"), sent);
    // Lists: the mail here at UID 1, Dovecot's at UID 2 with all else the same.
    let lists = messages(&after, "Lists");
    let theirs = messages(&changed, "Lists");
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert_eq!(lists[1][0], 2);
    let tail = |message: &Value| message.as_array().expect("message")[1..].to_vec();
    assert_eq!(tail(&lists[1]), tail(&theirs[0]));

    let last = import_imap_ok(server, &args);
    assert!(last.contains("0 messages copied, 0 flag changes"), "{last}");

    // Interrupted before the state was written: the messages are found here (INBOX at
    // their UIDs, Lists by content), and none is copied twice.
    for (path, bytes) in &state_before {
        std::fs::write(path, bytes).expect("put the state back");
    }
    let rerun = import_imap_ok(server, &args);
    common::assert_contains_all(
        &rerun,
        &[
            "0 messages copied, 0 flag changes",
            "INBOX: 0 imported, 1 already there",
            "Lists: 0 imported, 1 already there (UIDVALIDITY",
        ],
    );
    assert!(!rerun.contains("at new UIDs"), "{rerun}");
    assert_eq!(moving.here()["mailboxes"], after["mailboxes"]);
}

/// The files of the import state in the data directory, with their contents.
fn state_files(server: &TestServer) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let dir = server.data_dir().join("import-state");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("import-state")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read state");
            (path, bytes)
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files
}

#[test]
fn import_imap_checks_the_certificate_and_never_shows_the_password() {
    let server = TestServer::start();
    let cert = server.data_dir().join("tls-selfsigned-cert.pem");
    let key = server.data_dir().join("tls-selfsigned-key.pem");
    let dovecot = Dovecot::start_with_tls(&cert, &key);
    on_dovecot(&dovecot, FILL_DOVECOT);
    let email = new_account(&server, "secure");
    // INBOX here holds mail already: Dovecot's UIDs cannot be kept there.
    on_letterbox(
        &server,
        &email,
        "typ, data = m.append('INBOX', None, None, b'Subject: first here\\r\\n\\r\\nx\\r\\n'); assert typ == 'OK', data",
    );
    let (plain_port, tls_port) = (dovecot.port.to_string(), dovecot.tls_port.to_string());
    let common = |port: &'static str| -> Vec<String> {
        let port = if port == "tls" {
            &tls_port
        } else {
            &plain_port
        };
        [
            "--host",
            "localhost",
            "--port",
            port,
            "--login",
            DOVECOT_USER,
            "--password-stdin",
            "--user",
            &email,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let with = |port: &'static str, extra: &[&str]| -> Vec<String> {
        let mut args = common(port);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let ca = path_str(&cert);

    // STARTTLS, the certificate checked against --ca-file; every log line on.
    let args = with("plain", &["--starttls", "--ca-file", ca]);
    let output = import_imap(&server, &strs(&args), DOVECOT_PASSWORD, "trace");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report
            .contains("INBOX: 4 imported, 0 already there (new UIDs: the mailbox held other mail"),
        "{report}"
    );
    assert!(report.contains("7 messages copied"), "{report}");

    // TLS from the first byte: the same messages are found here by content.
    let args = with("tls", &["--tls", "--ca-file", ca]);
    let report = import_imap_ok(&server, &strs(&args));
    common::assert_contains_all(
        &report,
        &["0 messages copied", "INBOX: 0 imported, 4 already there"],
    );

    // Without --ca-file the self-signed certificate is not trusted.
    let args = with("tls", &["--tls"]);
    let output = import_imap(&server, &strs(&args), DOVECOT_PASSWORD, "info");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "accepted an unknown certificate");
    assert!(error.contains("certificate"), "{error}");

    // --insecure takes it, and says what that means.
    let args = with("tls", &["--tls", "--insecure"]);
    let output = import_imap(&server, &strs(&args), DOVECOT_PASSWORD, "info");
    assert!(output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("warning: --insecure"), "{error}");

    // A wrong password: refused, and not shown either.
    let args = with("plain", &["--starttls", "--ca-file", ca]);
    let output = import_imap(&server, &strs(&args), "not-the-secret-9", "trace");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("logging in as differ"), "{error}");
}
