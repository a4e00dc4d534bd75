//! SMTP against real clients: lettre (Rust), Python's smtplib and raw sockets, swaks.
//! Each test reads the result back from storage byte for byte.

mod common;

use common::{TestServer, block_on, inbox_messages, python, strip_trace_headers};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::process::Command;

fn tls_parameters() -> TlsParameters {
    // The test server's certificate is self-signed for "localhost".
    TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build()
        .expect("tls parameters")
}

fn lettre_transport(
    server: &TestServer,
    listener: &str,
    tls: Tls,
) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port(listener))
        .tls(tls)
        .credentials(Credentials::new(
            server.email.clone(),
            server.password.clone(),
        ))
        .build()
}

fn note(from: &str, to: &str, subject: &str, body: &str) -> Message {
    Message::builder()
        .from(from.parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_owned())
        .expect("message")
}

#[tokio::test]
async fn lettre_submits_over_implicit_tls_and_starttls() {
    let server = TestServer::start();
    server.add_user("friend@localhost", "pw-friend");
    let implicit = lettre_transport(&server, "submissions", Tls::Wrapper(tls_parameters()));
    let response = implicit
        .send(note(
            &server.email,
            "friend@localhost",
            "over 465",
            "sent over implicit TLS\r\n",
        ))
        .await
        .expect("send over 465");
    assert!(response.is_positive());
    let starttls = lettre_transport(&server, "submission", Tls::Required(tls_parameters()));
    starttls
        .send(note(
            &server.email,
            "friend@localhost",
            "over 587",
            "sent after STARTTLS\r\n",
        ))
        .await
        .expect("send over 587");

    let stored = inbox_messages(&server, "friend@localhost").await;
    assert_eq!(stored.len(), 2);
    let first = String::from_utf8_lossy(&stored[0]);
    assert!(
        first.starts_with("Return-Path: <you@localhost>\r\n"),
        "{first}"
    );
    assert!(
        first.contains("Subject: over 465") && first.contains("sent over implicit TLS"),
        "{first}"
    );
    assert!(String::from_utf8_lossy(&stored[1]).contains("Subject: over 587"));
}

#[tokio::test]
async fn lettre_with_a_wrong_password_is_refused() {
    let server = TestServer::start();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port("submissions"))
        .tls(Tls::Wrapper(tls_parameters()))
        .credentials(Credentials::new(
            server.email.clone(),
            "not-the-password".into(),
        ))
        .build();
    let error = transport
        .send(note(&server.email, "you@localhost", "x", "x"))
        .await
        .expect_err("sent with a wrong password");
    assert!(error.to_string().contains("535"), "{error}");
    assert!(inbox_messages(&server, "you@localhost").await.is_empty());
}

const SMTPLIB_INBOUND: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port)
code, _ = s.ehlo("client.example.net")
assert code == 250
assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("smtputf8")
assert s.has_extn("enhancedstatuscodes") and s.has_extn("chunking") and s.has_extn("dsn")
assert s.has_extn("size")
refused = s.sendmail("sender@example.net", ["you@localhost", "nobody@localhost", "you+tag@localhost"],
    b"Subject: two of three\r\n\r\nhello\r\n")
print(refused)
try:
    s.sendmail("sender@example.net", ["victim@example.com"], b"Subject: relay\r\n\r\nx\r\n")
    print("relayed")
except smtplib.SMTPRecipientsRefused as e:
    print(e.recipients)
s.quit()
"#;

/// Starts a server and runs the Python `script` with its SMTP port as argument.
fn smtp_script(script: &str) -> (TestServer, String) {
    let server = TestServer::start();
    let out = python(script, &[&server.port("smtp").to_string()]);
    (server, out)
}

#[test]
fn smtplib_inbound_refuses_unknown_users_and_relaying() {
    let (server, out) = smtp_script(SMTPLIB_INBOUND);
    let mut lines = out.lines();
    let refused = lines.next().expect("refused line");
    assert!(
        refused.contains("'nobody@localhost': (550, b'5.1.1"),
        "{out}"
    );
    assert!(!refused.contains("you@localhost"), "{out}");
    let relay = lines.next().expect("relay line");
    assert!(
        relay.contains("'victim@example.com': (554, b'5.7.1"),
        "{out}"
    );
    let stored = block_on(inbox_messages(&server, "you@localhost"));
    // you@ and you+tag@ are one account: one stored copy.
    assert_eq!(stored.len(), 1);
    assert_eq!(
        strip_trace_headers(&stored[0]),
        b"Subject: two of three\r\n\r\nhello\r\n"
    );
}

const SMTPLIB_POSTMASTER: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("mx.example.net")
s.mail("reporter@example.net")
print("bare", *s.rcpt("<Postmaster>"))
print("domain", *s.rcpt("<POSTMASTER@localhost>"))
print("data", *s.data(b"Subject: for the postmaster\r\n\r\nabuse report\r\n"))
s.quit()
"#;

/// RFC 5321 §4.5.1: `<Postmaster>` and the postmaster of every local domain are
/// accepted, without an account or alias of that name (issue 15): they reach the
/// domain's first account, here the quickstart's.
#[test]
fn smtplib_reaches_the_postmaster_without_an_account_named_so() {
    let (server, out) = smtp_script(SMTPLIB_POSTMASTER);
    for label in ["bare", "domain", "data"] {
        let line = common::labelled_line(&out, label);
        assert!(line.starts_with(&format!("{label} 250 ")), "{out}");
    }
    let stored = block_on(inbox_messages(&server, "you@localhost"));
    // Two recipients, one account: one stored copy.
    assert_eq!(stored.len(), 1, "{out}");
    assert_eq!(
        strip_trace_headers(&stored[0]),
        b"Subject: for the postmaster\r\n\r\nabuse report\r\n"
    );
}

const SMTPLIB_SUBMISSION: &str = r#"
import smtplib, ssl, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", port)
s.ehlo("laptop")
# RFC 6409: no mail before authentication.
code, msg = s.mail(user)
print("mail-before-auth", code, msg.decode())
s.rset()
s.starttls(context=ctx)
s.ehlo("laptop")
try:
    s.login(user, "wrong")
    print("wrong-password accepted")
except smtplib.SMTPAuthenticationError as e:
    print("wrong-password", e.smtp_code, e.smtp_error.decode())
s.login(user, password)
code, msg = s.mail("ceo@localhost")
print("spoofed", code, msg.decode())
s.rset()
refused = s.sendmail(user, ["you@localhost", "someone@remote.example"],
    b"From: " + user.encode() + b"\r\nSubject: mixed\r\n\r\nlocal and remote\r\n")
print("sent", refused)
s.quit()
"#;

#[test]
fn smtplib_submission_needs_auth_and_an_owned_sender_and_queues_remote_mail() {
    // remote.example routes to a closed port: delivery fails temporarily and the
    // message stays in the queue where `queue list` shows it.
    let server =
        TestServer::start_with("[outbound.static_routes]\n\"remote.example\" = \"127.0.0.1:9\"\n");
    let out = python(
        SMTPLIB_SUBMISSION,
        &[
            &server.port("submission").to_string(),
            &server.email,
            &server.password,
        ],
    );
    common::assert_contains_all(
        &out,
        &[
            "mail-before-auth 530 5.7.0",
            "wrong-password 535 5.7.8",
            "spoofed 553 5.7.1",
            "sent {}",
        ],
    );
    let stored = block_on(inbox_messages(&server, "you@localhost"));
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8_lossy(&stored[0]);
    // RFC 6409 §8: submission adds Message-ID and Date when missing.
    assert!(
        text.contains("\r\nMessage-ID: <") || text.contains("\r\nMessage-Id: <"),
        "{text}"
    );
    assert!(text.contains("\r\nDate: "), "{text}");
    let queue = server.admin_ok(&["queue", "list"]);
    assert!(
        queue.contains("someone@remote.example") && queue.contains("from <you@localhost>"),
        "{queue}"
    );
}

const RAW_SOCKET_DATA: &str = r#"
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline()
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if line[3:4] != b"-":
            return lines
def cmd(line):
    s.sendall(line)
    return reply()
reply()
cmd(b"EHLO raw.example\r\n")
# Pipelined transaction (RFC 2920): everything up to DATA in one write.
s.sendall(b"MAIL FROM:<a@example.net> BODY=8BITMIME\r\nRCPT TO:<you@localhost>\r\nDATA\r\n")
print("pipelined", reply()[-1], reply()[-1], reply()[-1])
# 8-bit body, a dot-stuffed line, and a smuggling attempt with bare LFs around a dot.
body = b"Subject: raw\r\n\r\ncaf\xc3\xa9 \xff\r\n..starts with a dot\r\nbefore\n.\nMAIL FROM:<evil@example.net>\r\nafter\r\n.\r\n"
s.sendall(body)
print("data", reply()[-1])
# BDAT (RFC 3030) in two chunks.
chunk1 = b"Subject: chunked\r\n\r\nfirst "
chunk2 = b"second\r\n"
s.sendall(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<you@localhost>\r\n")
reply(); reply()
s.sendall(b"BDAT %d\r\n" % len(chunk1) + chunk1)
print("bdat1", reply()[-1])
s.sendall(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
print("bdat2", reply()[-1])
print("order", cmd(b"RCPT TO:<you@localhost>\r\n")[-1])
print("syntax", cmd(b"MAIL FROM:<not an address\r\n")[-1])
print("unknown", cmd(b"FROB\r\n")[-1])
print("long", cmd(b"NOOP " + b"x" * 2000 + b"\r\n")[-1])
print("still", cmd(b"NOOP\r\n")[-1])
print("quit", cmd(b"QUIT\r\n")[-1])
"#;

#[test]
fn raw_protocol_pipelining_8bit_dots_smuggling_bdat_and_errors() {
    let (server, out) = smtp_script(RAW_SOCKET_DATA);
    let line = |prefix: &str| common::prefixed_line(&out, prefix);
    assert!(
        line("pipelined").starts_with("pipelined 250 2.1.0"),
        "{out}"
    );
    assert!(
        line("pipelined").contains("250 2.1.5") && line("pipelined").contains(" 354 "),
        "{out}"
    );
    assert!(
        line("syntax").starts_with("syntax 501 5.5.4")
            || line("syntax").starts_with("syntax 501 5.1.7"),
        "{out}"
    );
    for (label, prefix) in [
        ("data ", "data 250 2.0.0"),
        ("bdat1", "bdat1 250 2.0.0"),
        ("bdat2", "bdat2 250 2.0.0"),
        ("order", "order 503 5.5.1"),
        ("unknown", "unknown 500 5.5.2"),
        ("long", "long 500 5.5.2"),
        ("still", "still 250"),
        ("quit", "quit 221 2.0.0"),
    ] {
        assert!(line(label).starts_with(prefix), "{out}");
    }

    let stored = block_on(inbox_messages(&server, "you@localhost"));
    assert_eq!(
        stored.len(),
        2,
        "the smuggled MAIL FROM must stay inside the first message"
    );
    assert_eq!(
        strip_trace_headers(&stored[0]),
        // Bare LFs are stored as CRLF (RFC 5322 §2.3): the smuggled lines stay text of
        // this message, and a relay of it dot-stuffs the lone dot.
        b"Subject: raw\r\n\r\ncaf\xc3\xa9 \xff\r\n.starts with a dot\r\nbefore\r\n.\r\nMAIL FROM:<evil@example.net>\r\nafter\r\n"
    );
    assert_eq!(
        strip_trace_headers(&stored[1]),
        b"Subject: chunked\r\n\r\nfirst second\r\n"
    );
}

const LIMITS: &str = r#"
import smtplib, socket, sys
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port)
s.ehlo("limits.example")
print("size-ext", s.esmtp_features.get("size"))
code, msg = s.mail("a@example.net", ["SIZE=999999999"])
print("declared", code, msg.decode())
s.rset()
s.mail("a@example.net")
for i in range(4):
    code, msg = s.rcpt("you@localhost" if i < 3 else "you+4@localhost")
    print("rcpt", i, code, msg.decode())
s.rset()
big = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 10
s.mail("a@example.net")
s.rcpt("you@localhost")
code, msg = s.data(big)
print("big", code, msg.decode())
s.rset()
s.mail("a@example.net", ["SIZE=100"])
s.rcpt("you@localhost")
code, msg = s.data(big)
print("lied", code, msg.decode())
code, msg = s.noop()
print("after", code)
s.quit()
"#;

#[test]
fn limits_are_answered_with_their_codes() {
    let server = TestServer::start_with("[limits]\nmax_message_size = 4096\nmax_recipients = 3\n");
    let out = python(LIMITS, &[&server.port("smtp").to_string()]);
    common::assert_contains_all(
        &out,
        &[
            "size-ext 4096",
            "declared 552 5.3.4",
            "rcpt 2 250 2.1.5",
            "rcpt 3 452 4.5.3",
            "big 552 5.3.4",
            "lied 552 5.3.4",
            "after 250",
        ],
    );
    assert!(block_on(inbox_messages(&server, "you@localhost")).is_empty());
}

/// swaks (from Debian) pointed at `server`'s `listener`.
fn swaks(server: &TestServer, listener: &str) -> Command {
    let mut swaks = Command::new("swaks");
    swaks.args([
        "--server",
        "127.0.0.1",
        "--port",
        &server.port(listener).to_string(),
    ]);
    swaks
}

#[test]
fn swaks_delivers_inbound_and_submits_with_starttls_and_auth() {
    let server = TestServer::start();
    common::succeeded(
        "swaks",
        swaks(&server, "smtp")
            .args([
                "--from",
                "sender@example.net",
                "--to",
                "you@localhost",
                "--helo",
                "swaks.example",
            ])
            .args([
                "--header",
                "Subject: from swaks",
                "--body",
                "swaks body",
                "--pipeline",
            ]),
    );
    let transcript = common::succeeded(
        "swaks",
        swaks(&server, "submission")
            .args(["--from", &server.email, "--to", "you@localhost", "--tls"])
            .args([
                "--auth",
                "PLAIN",
                "--auth-user",
                &server.email,
                "--auth-password",
                &server.password,
            ])
            .args(["--header", "Subject: swaks submission"]),
    );
    assert!(transcript.contains("235 2.7.0"), "{transcript}");
    let stored = block_on(inbox_messages(&server, "you@localhost"));
    assert_eq!(stored.len(), 2);
    assert!(String::from_utf8_lossy(&stored[0]).contains("Subject: from swaks"));
    assert!(String::from_utf8_lossy(&stored[1]).contains("Subject: swaks submission"));
}
