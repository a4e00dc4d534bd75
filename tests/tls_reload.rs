//! A renewed TLS certificate is served without a restart (issue 15): after SIGHUP, and
//! when the files change on disk. Checked with Python's ssl on all four TLS entry points
//! (IMAPS, IMAP STARTTLS, SMTP 465, SMTP STARTTLS): the peer certificate before and
//! after. A connection opened before the swap goes on with the certificate it was made
//! with; a bad new file is logged and the certificate in use stays.

mod common;

use common::{TestServer, path_str, python};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a reload may take to show: a SIGHUP is handled at once, a file change within
/// the server's check interval (5 s); this is far more, for a busy 2-core machine.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two looks while waiting for a reload.
const POLL: Duration = Duration::from_millis(200);
/// What the server logs when a new certificate cannot be used.
const NOT_RELOADED: &str = "TLS certificate not reloaded";

/// The peer certificate (DER, hex) of a new connection to each TLS entry point.
const PROBE: &str = r#"
import imaplib, smtplib, ssl, sys
imaps, imap, submissions, submission = (int(a) for a in sys.argv[1:5])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def show(name, client, end):
    print(name, client.sock.getpeercert(True).hex())
    end(client)

show("imaps", imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx), imaplib.IMAP4.logout)
i = imaplib.IMAP4("127.0.0.1", imap)
i.starttls(ssl_context=ctx)
show("imap", i, imaplib.IMAP4.logout)
show("submissions", smtplib.SMTP_SSL("127.0.0.1", submissions, context=ctx), smtplib.SMTP.quit)
s = smtplib.SMTP("127.0.0.1", submission)
s.starttls(context=ctx)
show("submission", s, smtplib.SMTP.quit)
"#;

/// Opens an IMAPS and an SMTP 465 connection, prints their certificate, waits for a line
/// on stdin, then uses both connections and prints how that went.
const HELD_OPEN: &str = r#"
import imaplib, smtplib, ssl, sys
imaps, submissions, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
imap = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
smtp = smtplib.SMTP_SSL("127.0.0.1", submissions, context=ctx)
print("before", imap.sock.getpeercert(True).hex(), smtp.sock.getpeercert(True).hex(), flush=True)
sys.stdin.readline()
typ, _ = imap.login(user, password)
code, _ = smtp.login(user, password)
print("after", typ, code, imap.sock.getpeercert(True).hex(), smtp.sock.getpeercert(True).hex(), flush=True)
imap.logout()
smtp.quit()
"#;

/// A new self-signed certificate for localhost: (certificate PEM, key PEM, DER as hex).
fn certificate() -> (String, String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let hex = made
        .cert
        .der()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    (made.cert.pem(), made.signing_key.serialize_pem(), hex)
}

/// Puts `text` at `path` in one step (written aside, then renamed), as a renewal does.
fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).expect("write");
    std::fs::rename(&aside, path).expect("rename");
}

/// Each entry point's certificate as `name hex` lines.
fn probe(server: &TestServer) -> Vec<(String, String)> {
    let ports = ["imaps", "imap", "submissions", "submission"].map(|n| server.port(n).to_string());
    let args: Vec<&str> = ports.iter().map(String::as_str).collect();
    python(PROBE, &args)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, hex)| (name.to_owned(), hex.to_owned()))
        .collect()
}

/// Waits until every entry point serves the certificate `hex`.
fn wait_for_certificate(server: &TestServer, hex: &str, what: &str) {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let served = probe(server);
        assert_eq!(served.len(), 4, "{served:?}");
        if served.iter().all(|(_, served)| served == hex) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still not served by {:?}; log:\n{}",
            served
                .iter()
                .filter(|(_, served)| served != hex)
                .map(|(name, _)| name)
                .collect::<Vec<_>>(),
            server.log()
        );
        std::thread::sleep(POLL);
    }
}

fn sighup(server: &TestServer) {
    let pid = server.pid().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn a_renewed_certificate_is_served_after_sighup_and_after_a_file_change() {
    let certs = tempfile::tempdir().expect("tempdir");
    let cert_path = certs.path().join("fullchain.pem");
    let key_path = certs.path().join("privkey.pem");
    let (cert1, key1, der1) = certificate();
    replace(&cert_path, &cert1);
    replace(&key_path, &key1);
    let mut server = TestServer::start_with(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        path_str(&cert_path),
        path_str(&key_path)
    ));
    wait_for_certificate(&server, &der1, "the configured certificate");

    // A client connected before the renewal.
    let mut held = Command::new("python3")
        .arg("-c")
        .arg(HELD_OPEN)
        .args([
            &server.port("imaps").to_string(),
            &server.port("submissions").to_string(),
            &server.email,
            &server.password,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut held_out = BufReader::new(held.stdout.take().expect("stdout"));
    let mut line = String::new();
    held_out.read_line(&mut line).expect("before line");
    assert_eq!(line.trim_end(), format!("before {der1} {der1}"));

    // Renewal plus SIGHUP: the next clients get the new certificate.
    let (cert2, key2, der2) = certificate();
    replace(&cert_path, &cert2);
    replace(&key_path, &key2);
    sighup(&server);
    wait_for_certificate(&server, &der2, "after SIGHUP");
    assert!(
        server
            .log()
            .contains("SIGHUP: reading the TLS certificate again"),
        "{}",
        server.log()
    );

    // The connections made before still work, with the certificate they were made with.
    let mut stdin = held.stdin.take().expect("stdin");
    writeln!(stdin, "go").expect("go");
    line.clear();
    held_out.read_line(&mut line).expect("after line");
    assert_eq!(line.trim_end(), format!("after OK 235 {der1} {der1}"));
    assert!(held.wait().expect("wait").success());

    // Renewal without a signal: found by looking at the files.
    let (cert3, key3, der3) = certificate();
    replace(&cert_path, &cert3);
    replace(&key_path, &key3);
    wait_for_certificate(&server, &der3, "after the files changed");

    // A broken renewal is logged and the certificate in use stays.
    let errors_before = server.log().matches(NOT_RELOADED).count();
    replace(&cert_path, "-----BEGIN CERTIFICATE-----\nbroken\n");
    sighup(&server);
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    while server.log().matches(NOT_RELOADED).count() == errors_before {
        assert!(
            Instant::now() < deadline,
            "the broken file was not reported; log:\n{}",
            server.log()
        );
        std::thread::sleep(POLL);
    }
    assert!(
        probe(&server).iter().all(|(_, served)| *served == der3),
        "the certificate in use changed"
    );
    assert!(server.terminate(), "clean stop");
}
