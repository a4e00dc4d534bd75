//! Sieve at delivery end to end: a script stored with `letterbox sieve put --activate`
//! files, flags, rejects and answers mail sent by Python's smtplib, as imaplib sees it;
//! the vacation reply leaves through the outbound queue to a local SMTP sink (routed
//! with `[outbound.static_routes]`), once per sender within `:days`, never to a list.

mod common;

use common::{TestServer, python};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A debug build on a busy 2-core machine; the queue polls every second here.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the sink saw of one transaction.
#[derive(Debug)]
struct Caught {
    mail_from: String,
    recipients: Vec<String>,
    data: String,
}

/// An SMTP server that accepts everything and reports each message.
async fn sink() -> (u16, mpsc::UnboundedReceiver<Caught>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let (read, mut write) = tcp.into_split();
                let mut read = BufReader::new(read);
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let (mut from, mut rcpts) = (String::new(), Vec::new());
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let path = || {
                        line.split_once('<')
                            .and_then(|(_, r)| r.split_once('>'))
                            .map(|(p, _)| p.to_owned())
                            .unwrap_or_default()
                    };
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL") {
                        from = path();
                        rcpts.clear();
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT") {
                        rcpts.push(path());
                        b"250 OK\r\n"
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go\r\n").await;
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            if read.read_line(&mut l).await.unwrap_or(0) == 0 || l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        let _ = sender.send(Caught {
                            mail_from: from.clone(),
                            recipients: rcpts.clone(),
                            data,
                        });
                        b"250 OK\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, receiver)
}

async fn next(caught: &mut mpsc::UnboundedReceiver<Caught>) -> Caught {
    tokio::time::timeout(EVENT_TIMEOUT, caught.recv())
        .await
        .expect("nothing reached the sink in time")
        .expect("sink stopped")
}

const SCRIPT: &str = r#"require ["fileinto", "imap4flags", "reject", "vacation", "mailbox", "variables"];
if header :contains "subject" "reject-me" {
    reject "No thanks, not from you";
    stop;
}
if header :matches "subject" "work *" {
    fileinto :create :flags "\\Flagged" "Work";
    stop;
}
if header :contains "subject" "urgent" {
    addflag "$urgent";
    addflag "\\Flagged";
}
vacation :days 2 :subject "Away" "I am away until Monday.";
"#;

/// Sends messages through port 25 with smtplib: argv SMTP port, then groups of
/// (from, to, subject, extra header); prints `ok SUBJECT` or `refused SUBJECT CODE TEXT`.
const SEND: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
args = sys.argv[2:]
for i in range(0, len(args), 4):
    sender, to, subject, extra = args[i:i + 4]
    msg = "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d.test@example.net>\r\n%s\r\nHello.\r\n" % (
        sender, to, subject, i, (extra + "\r\n") if extra else "")
    s = smtplib.SMTP("127.0.0.1", port)
    try:
        s.sendmail(sender, [to], msg)
        print("ok", subject)
    except smtplib.SMTPDataError as e:
        print("refused", subject, e.smtp_code, e.smtp_error.decode())
    s.quit()
"#;

/// Lists each mailbox's messages as `MAILBOX SUBJECT FLAGS` with imaplib over IMAPS.
const LOOK: &str = r#"
import imaplib, ssl, sys, re
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
m.login(user, password)
for box in ("INBOX", "Work"):
    typ, count = m.select(box, readonly=True)
    if typ != "OK":
        print(box, "missing")
        continue
    if count[0] == b"0":
        continue
    typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    for item in data:
        if isinstance(item, tuple):
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode()
            subject = item[1].decode().strip().removeprefix("Subject: ")
            print(box, "|", subject, "|", flags)
m.logout()
"#;

/// Writes a script into the server's directory; returns its path.
/// Writes `text` to `file` and makes it the account's active script `main` with
/// `letterbox sieve put --activate`; returns what that printed.
fn put_active(server: &TestServer, file: &str, text: &str) -> String {
    let script = script_file(server, file, text);
    server.admin_ok(&[
        "sieve",
        "put",
        &server.email,
        "main",
        common::path_str(&script),
        "--activate",
    ])
}

fn script_file(server: &TestServer, file: &str, text: &str) -> std::path::PathBuf {
    let path = server.dir.join(file);
    std::fs::write(&path, text).expect("write script");
    path
}

fn send(server: &TestServer, messages: &[[&str; 4]]) -> String {
    let port = server.port("smtp").to_string();
    let mut args = vec![port.as_str()];
    for message in messages {
        args.extend_from_slice(message);
    }
    python(SEND, &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn sieve_files_flags_rejects_and_answers_once() {
    let (sink_port, mut caught) = sink().await;
    let server = tokio::task::block_in_place(|| {
        TestServer::start_with(&format!(
            "[outbound]\npoll_interval_secs = 1\n\n[outbound.static_routes]\n\"example.net\" = \"127.0.0.1:{sink_port}\"\n"
        ))
    });
    let user = server.email.clone();
    let out = put_active(&server, "filter.sieve", SCRIPT);
    assert!(out.contains("script main is active"), "{out}");
    assert_eq!(
        server.admin_ok(&["sieve", "list", &user]).trim(),
        "main\tactive"
    );

    // A broken script is refused with its line, and the active one stays.
    let broken = script_file(
        &server,
        "broken.sieve",
        "require \"fileinto\";\nkeep;\nfileinto \"x\"\nstop;\n",
    );
    let refused = server.admin(&["sieve", "put", &user, "broken", common::path_str(&broken)]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("line 4"), "{stderr}");

    let out = tokio::task::block_in_place(|| {
        send(
            &server,
            &[
                ["bob@example.net", &user, "work report", ""],
                ["bob@example.net", &user, "reject-me please", ""],
                ["bob@example.net", &user, "urgent hello", ""],
            ],
        )
    });
    common::assert_contains_all(
        &out,
        &[
            "ok work report",
            "refused reject-me please 550 5.7.1 No thanks, not from you",
            "ok urgent hello",
        ],
    );

    // The vacation reply to bob: from the null sender, auto-replied, in reply to his.
    let reply = next(&mut caught).await;
    assert_eq!(reply.mail_from, "");
    assert_eq!(reply.recipients, ["bob@example.net"]);
    assert!(
        reply.data.contains("Auto-Submitted: auto-replied"),
        "{}",
        reply.data
    );
    assert!(reply.data.contains("Subject: Away"), "{}", reply.data);
    assert!(reply.data.contains("In-Reply-To: <"), "{}", reply.data);
    assert!(
        reply.data.contains("I am away until Monday."),
        "{}",
        reply.data
    );

    // Within :days bob gets no second reply, a list gets none, carol gets hers: the next
    // message at the sink is carol's (the queue sends in order, so one to bob or the
    // list, queued before hers, would come first).
    let out = tokio::task::block_in_place(|| {
        send(
            &server,
            &[
                ["bob@example.net", &user, "hello again", ""],
                [
                    "list@example.net",
                    &user,
                    "digest",
                    "List-Id: <team.example.net>",
                ],
                [
                    "robot@example.net",
                    &user,
                    "robot",
                    "Auto-Submitted: auto-generated",
                ],
                ["carol@example.net", &user, "hi", ""],
            ],
        )
    });
    assert_eq!(out.matches("ok ").count(), 4, "{out}");
    let reply = next(&mut caught).await;
    assert_eq!(reply.recipients, ["carol@example.net"], "{}", reply.data);
    assert!(
        tokio::time::timeout(Duration::from_secs(3), caught.recv())
            .await
            .is_err(),
        "a second reply left"
    );

    let imaps = server.port("imaps").to_string();
    let seen = tokio::task::block_in_place(|| python(LOOK, &[&imaps, &user, &server.password]));
    let lines: Vec<&str> = seen.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Work | work report |") && l.contains("\\Flagged")),
        "{seen}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("INBOX | urgent hello |")
            && l.contains("$urgent")
            && l.contains("\\Flagged")),
        "{seen}"
    );
    assert!(!seen.contains("reject-me"), "{seen}");
    assert!(
        !lines.iter().any(|l| l.starts_with("INBOX | work report")),
        "{seen}"
    );
    for subject in ["hello again", "digest", "robot", "hi"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("INBOX | {subject} |"))),
            "{subject} not in INBOX: {seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_that_fails_at_run_time_keeps_the_message() {
    let server = tokio::task::block_in_place(TestServer::start);
    let user = server.email.clone();
    // Compiles, but includes a script the account does not have: a run-time error.
    put_active(
        &server,
        "include.sieve",
        "require [\"include\", \"fileinto\"];\ninclude :personal \"missing\";\nfileinto \"Work\";\n",
    );
    let out = tokio::task::block_in_place(|| {
        send(&server, &[["bob@example.net", &user, "still here", ""]])
    });
    assert!(out.contains("ok still here"), "{out}");
    let imaps = server.port("imaps").to_string();
    let seen = tokio::task::block_in_place(|| python(LOOK, &[&imaps, &user, &server.password]));
    assert!(seen.contains("INBOX | still here |"), "{seen}");
    assert!(
        server.log().contains("sieve script failed"),
        "{}",
        server.log()
    );
}

/// Runs sieve-connect (Debian's ManageSieve client) against the server's ManageSieve
/// listener with STARTTLS (the test certificate is self-signed: no verification), the
/// password on standard input; returns (success, stdout and stderr).
fn sieve_connect(server: &TestServer, args: &[&str]) -> (bool, String) {
    let port = server.port("managesieve").to_string();
    // Debian package sieve-connect.
    let output = common::run_with_input(
        std::process::Command::new("sieve-connect")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &port,
                "--nosrv",
                "--notlsverify",
            ])
            .args(["--user", &server.email, "--passwordfd", "0"])
            .args(args),
        format!("{}\n", server.password).as_bytes(),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `sieve-connect --upload` as `name` of `text`, written to `file` first.
fn upload(server: &TestServer, file: &str, text: &str, name: &str) -> (bool, String) {
    let script = script_file(server, file, text);
    let path = common::path_str(&script);
    tokio::task::block_in_place(|| {
        sieve_connect(
            server,
            &["--localsieve", path, "--remotesieve", name, "--upload"],
        )
    })
}

/// The ManageSieve commands sieve-connect does not offer, over a raw socket with
/// STARTTLS: argv port, user, password; prints each command's last response line.
const RAW_MANAGESIEVE: &str = r#"
import socket, ssl, sys, base64
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sock = socket.create_connection(("127.0.0.1", port), timeout=30)
f = sock.makefile("rb")
def until_done(f):
    lines = []
    while True:
        line = f.readline().decode().rstrip("\r\n")
        lines.append(line)
        if line.startswith(("OK", "NO", "BYE")):
            return lines
greeting = until_done(f)
print("greeting", " | ".join(greeting))
sock.sendall(b"AUTHENTICATE \"PLAIN\" \"x\"\r\n")
print("plain-before-tls", until_done(f)[-1])
sock.sendall(b"STARTTLS\r\n")
print("starttls", until_done(f)[-1])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
tls = ctx.wrap_socket(sock)
f = tls.makefile("rb")
print("after-tls", " | ".join(until_done(f)))
def cmd(label, data):
    tls.sendall(data)
    lines = until_done(f)
    print(label, " | ".join(lines))
token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
tls.sendall(b"AUTHENTICATE \"PLAIN\"\r\n")
print("auth", f.readline().decode().rstrip("\r\n"))
cmd("auth-response", ("\"%s\"\r\n" % token).encode())
script = b"require \"fileinto\";\r\nif true {\r\n  fileinto \"A\"\r\n}\r\n"
cmd("checkscript", b"CHECKSCRIPT {%d+}\r\n%s\r\n" % (len(script), script))
cmd("havespace", b"HAVESPACE \"big\" 999999999\r\n")
cmd("putscript", b"PUTSCRIPT \"second\" {5+}\r\nkeep;\r\n")
cmd("rename", b"RENAMESCRIPT \"second\" \"third\"\r\n")
cmd("rename-taken", b"RENAMESCRIPT \"third\" \"main\"\r\n")
cmd("delete-active", b"DELETESCRIPT \"main\"\r\n")
cmd("delete", b"DELETESCRIPT \"third\"\r\n")
cmd("getscript-missing", b"GETSCRIPT \"third\"\r\n")
cmd("listscripts", b"LISTSCRIPTS\r\n")
cmd("noop", b"NOOP \"t1\"\r\n")
cmd("logout", b"LOGOUT\r\n")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn sieve_connect_uploads_and_activates_through_managesieve() {
    let server = tokio::task::block_in_place(TestServer::start);
    let user = server.email.clone();
    let (ok, out) = upload(
        &server,
        "main.sieve",
        "require [\"fileinto\", \"mailbox\", \"imap4flags\"];\nif header :contains \"subject\" \"work\" {\n  fileinto :create :flags \"\\\\Flagged\" \"Work\";\n}\n",
        "main",
    );
    assert!(ok, "upload: {out}");
    let (ok, out) = tokio::task::block_in_place(|| {
        sieve_connect(&server, &["--remotesieve", "main", "--activate"])
    });
    assert!(ok, "activate: {out}");
    let (ok, out) = tokio::task::block_in_place(|| sieve_connect(&server, &["--list"]));
    assert!(ok, "list: {out}");
    assert!(
        out.contains("main") && out.contains("ACTIVE"),
        "list: {out}"
    );

    // A script with an error is refused, and the answer names its line.
    let (ok, out) = upload(
        &server,
        "broken.sieve",
        "require \"fileinto\";\nkeep;\n\nfileinto \"x\"\nstop;\n",
        "broken",
    );
    assert!(!ok, "a broken script was stored: {out}");
    assert!(out.contains("line 5"), "{out}");

    // The uploaded script runs at delivery.
    let out = tokio::task::block_in_place(|| {
        send(&server, &[["bob@example.net", &user, "work plan", ""]])
    });
    assert!(out.contains("ok work plan"), "{out}");
    let imaps = server.port("imaps").to_string();
    let seen = tokio::task::block_in_place(|| python(LOOK, &[&imaps, &user, &server.password]));
    assert!(
        seen.lines()
            .any(|l| l.starts_with("Work | work plan |") && l.contains("\\Flagged")),
        "{seen}"
    );

    // The rest of RFC 5804 over a raw socket.
    let port = server.port("managesieve").to_string();
    let out =
        tokio::task::block_in_place(|| python(RAW_MANAGESIEVE, &[&port, &user, &server.password]));
    let line = |label: &str| common::labelled_line(&out, label);
    for (label, needle) in [
        ("greeting", "\"STARTTLS\""),
        ("greeting", "\"SASL\" \"\""),
        ("plain-before-tls", "NO (ENCRYPT-NEEDED)"),
    ] {
        assert!(line(label).contains(needle), "{out}");
    }
    assert!(line("starttls").starts_with("starttls OK"), "{out}");
    assert!(line("after-tls").contains("\"SASL\" \"PLAIN\""), "{out}");
    assert!(!line("after-tls").contains("STARTTLS"), "{out}");
    assert_eq!(line("auth"), "auth \"\"");
    assert!(
        line("auth-response").starts_with("auth-response OK"),
        "{out}"
    );
    assert!(
        line("checkscript").starts_with("checkscript NO \"line 4"),
        "{out}"
    );
    assert!(line("havespace").contains("NO (QUOTA/MAXSIZE)"), "{out}");
    assert!(line("putscript").starts_with("putscript OK"), "{out}");
    assert!(line("rename").starts_with("rename OK"), "{out}");
    assert!(line("rename-taken").contains("NO (ALREADYEXISTS)"), "{out}");
    assert!(line("delete-active").contains("NO (ACTIVE)"), "{out}");
    assert!(line("delete").starts_with("delete OK"), "{out}");
    assert!(
        line("getscript-missing").contains("NO (NONEXISTENT)"),
        "{out}"
    );
    assert_eq!(
        line("listscripts"),
        "listscripts \"main\" ACTIVE | OK \"Listscripts completed\""
    );
    assert!(line("noop").contains("OK (TAG \"t1\")"), "{out}");
    assert!(line("logout").starts_with("logout OK"), "{out}");
}

/// A ManageSieve client in Python (STARTTLS, then AUTHENTICATE "PLAIN" without an
/// initial response) that answers the SASL challenge with a quoted string holding a NUL
/// and 9,000 octets without CRLF; prints the challenge, then everything the server sends
/// until it closes (or 20 s pass).
const ENDLESS_SASL_RESPONSE: &str = r#"
import socket, ssl, sys
plain = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
def until_ok(conn):
    line = b""
    while not line.startswith(b"OK"):
        line = b""
        while not line.endswith(b"\r\n"):
            byte = conn.recv(1)
            if not byte:
                raise SystemExit("closed")
            line += byte
until_ok(plain)
plain.sendall(b"STARTTLS\r\n")
until_ok(plain)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
conn = ctx.wrap_socket(plain, server_hostname="localhost")
until_ok(conn)  # RFC 5804 §2.2: the capabilities again
conn.sendall(b'AUTHENTICATE "PLAIN"\r\n')
challenge = b""
while not challenge.endswith(b"\r\n"):
    challenge += conn.recv(1)
print("challenge", repr(challenge))
conn.sendall(b'"\x1d\x00' + b"\x00" * 8997)
rest = b""
try:
    while True:
        data = conn.recv(4096)
        if not data:
            break
        rest += data
    end = "closed"
except (ssl.SSLError, OSError) as error:
    end = "closed" if rest else type(error).__name__
print("then", repr(rest), end)
"#;

/// Hostile input before login (RFC 5804 §2.1 AUTHENTICATE): a SASL response that is bad
/// (a NUL in a quoted string) and never ends with CRLF is answered BYE once it runs past
/// a line (8 KiB before login) and the connection closes; before the fix the server kept
/// buffering whatever came (found by the `parse` fuzz target).
#[test]
fn an_endless_bad_sasl_response_gets_bye() {
    let server = TestServer::start();
    let port = server.port("managesieve").to_string();
    let out = python(ENDLESS_SASL_RESPONSE, &[&port]);
    assert_eq!(
        out.trim(),
        "challenge b'\"\"\\r\\n'\nthen b'BYE \"Command too long\"\\r\\n' closed"
    );
}
