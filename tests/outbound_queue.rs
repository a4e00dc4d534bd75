//! The outbound queue end to end: mail submitted for a remote domain is relayed by the
//! real server to a scripted receiving SMTP server in this test (routed there with
//! `[outbound.static_routes]`, so no DNS), retried after 4xx, bounced after 5xx, sent to
//! several recipients in one transaction, and kept across `kill -9`.

mod common;

use common::{TestServer, inbox_messages};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use mail_parser::MimeHeaders;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How long a test waits for the server to do something (a debug build on a busy
/// 2-core machine; the retry delays in these tests are 1 second).
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// One transaction the fake receiver saw to the end of DATA.
#[derive(Debug, Clone)]
struct Received {
    mail_from: String,
    recipients: Vec<String>,
    data: Vec<u8>,
    /// What the receiver answered to the end of DATA.
    reply: String,
}

/// Replies the fake receiver gives; each list is used in order, then its default.
#[derive(Default)]
struct Script {
    /// Replies to RCPT for a given address (else `250 2.1.5 OK`).
    rcpt: Vec<(String, String)>,
    /// Replies to the end of DATA, one per transaction (then `250 2.0.0 OK`).
    data: VecDeque<String>,
    /// The EHLO reply, when not the default (8BITMIME, SMTPUTF8, SIZE).
    ehlo: Option<String>,
}

/// A small scripted SMTP receiver: the peer of the client under test.
struct Receiver {
    port: u16,
    events: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    /// A receiver that answers the end of the first DATA with `reply`, then accepts.
    async fn refusing_data_once(reply: &str) -> Receiver {
        Receiver::start(Script {
            data: VecDeque::from([reply.to_owned()]),
            ..Script::default()
        })
        .await
    }

    async fn start(script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, script)
    }

    fn serve(listener: TcpListener, script: Script) -> Receiver {
        let port = listener.local_addr().expect("addr").port();
        let (sender, events) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(script));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (sender, script) = (sender.clone(), script.clone());
                tokio::spawn(async move {
                    let _ = session(tcp, script, sender).await;
                });
            }
        });
        Receiver { port, events }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(EVENT_TIMEOUT, self.events.recv())
            .await
            .expect("no transaction reached the receiver in time")
            .expect("receiver stopped")
    }

    /// Nothing more arrives within `wait` (used after the last expected transaction).
    async fn expect_quiet(&mut self, wait: Duration) {
        if let Ok(Some(extra)) = tokio::time::timeout(wait, self.events.recv()).await {
            panic!("unexpected extra transaction: {extra:?}");
        }
    }
}

async fn session(
    tcp: tokio::net::TcpStream,
    script: Arc<Mutex<Script>>,
    events: mpsc::UnboundedSender<Received>,
) -> std::io::Result<()> {
    let (read, mut write) = tcp.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 receiver.test ESMTP fake\r\n").await?;
    let mut mail_from = String::new();
    let mut recipients = Vec::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let custom_ehlo = script.lock().expect("script").ehlo.clone();
        let reply = if upper.starts_with("EHLO") && custom_ehlo.is_some() {
            custom_ehlo.unwrap_or_default()
        } else if upper.starts_with("EHLO") {
            "250-receiver.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 10000000".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = between_angles(&line);
            recipients.clear();
            "250 2.1.0 OK".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            let address = between_angles(&line);
            let scripted = script
                .lock()
                .expect("script")
                .rcpt
                .iter()
                .find(|(a, _)| *a == address)
                .map(|(_, reply)| reply.clone());
            match scripted {
                Some(reply) => reply,
                None => {
                    recipients.push(address);
                    "250 2.1.5 OK".to_owned()
                }
            }
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let data = read_data(&mut read).await?;
            let reply = script
                .lock()
                .expect("script")
                .data
                .pop_front()
                .unwrap_or_else(|| "250 2.0.0 OK".to_owned());
            let _ = events.send(Received {
                mail_from: mail_from.clone(),
                recipients: recipients.clone(),
                data,
                reply: reply.clone(),
            });
            reply
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            "250 2.0.0 OK".to_owned()
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "500 5.5.2 what".to_owned()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// Reads DATA content up to `.` CRLF and undoes dot-stuffing (RFC 5321 §4.5.2).
async fn read_data(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            return Ok(data);
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
    }
}

fn between_angles(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_owned()
}

/// The `message/delivery-status` part of a DSN (RFC 3464 §2), as text.
fn delivery_status(report: &mail_parser::Message<'_>) -> String {
    let part = report
        .parts
        .iter()
        .find(|part| {
            part.content_type().is_some_and(|ct| {
                ct.ctype() == "message" && ct.subtype() == Some("delivery-status")
            })
        })
        .expect("a message/delivery-status part");
    String::from_utf8_lossy(part.contents()).into_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn outbound_config(port: u16, retry_delays: &str) -> String {
    format!(
        "[outbound]\nretry_delays_secs = {retry_delays}\npoll_interval_secs = 1\n\n[outbound.static_routes]\n\"example.net\" = \"127.0.0.1:{port}\"\n"
    )
}

fn start_server(extra: &str) -> TestServer {
    tokio::task::block_in_place(|| TestServer::start_with(extra))
}

/// Submits `raw` as the first account (port 587, STARTTLS, AUTH) to `recipients`.
async fn submit(server: &TestServer, recipients: &[&str], raw: &str) {
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build()
        .expect("tls parameters");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port("submission"))
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(
            server.email.clone(),
            server.password.clone(),
        ))
        .build();
    let envelope = Envelope::new(
        Some(server.email.parse().expect("from")),
        recipients.iter().map(|r| r.parse().expect("to")).collect(),
    )
    .expect("envelope");
    transport
        .send_raw(&envelope, raw.as_bytes())
        .await
        .expect("submission accepted");
}

/// The id of the item for `recipient` in the output of `letterbox queue list`.
fn queue_id(list: &str, recipient: &str) -> String {
    list.lines()
        .find(|l| l.contains(recipient))
        .and_then(|l| l.split('\t').next())
        .unwrap_or_else(|| panic!("{recipient} not in the queue: {list}"))
        .to_owned()
}

/// Submits [`message`] to `to` alone.
async fn submit_one(server: &TestServer, to: &str, subject: &str) {
    submit(server, &[to], &message(server, to, subject)).await;
}

fn message(server: &TestServer, to: &str, subject: &str) -> String {
    format!(
        "From: <{}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{subject}@localhost>\r\n\r\nHello over there.\r\n.leading dot stays\r\nBye.\r\n",
        server.email
    )
}

/// [`common::wait_for_inbox`] with [`EVENT_TIMEOUT`].
async fn wait_for_inbox(
    server: &TestServer,
    email: &str,
    matches: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    common::wait_for_inbox(server, email, EVENT_TIMEOUT, matches).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_recipient_gets_the_exact_message_without_return_path() {
    let mut receiver = Receiver::start(Script::default()).await;
    let server = start_server(&outbound_config(receiver.port, "[1]"));
    let raw = message(&server, "bob@example.net", "exact");
    // A local recipient too: the stored copy then carries a Return-Path (local final
    // delivery), which must not travel on (RFC 5321 §4.4).
    submit(&server, &["bob@example.net", &server.email], &raw).await;

    let received = receiver.next().await;
    assert_eq!(received.mail_from, server.email);
    assert_eq!(received.recipients, ["bob@example.net"]);
    assert!(received.reply.starts_with("250"));
    let stored = inbox_messages(&server, &server.email).await;
    let stored = stored.first().expect("local copy");
    assert!(stored.starts_with(b"Return-Path: <"));
    let without_return_path = &stored[stored
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("first line")
        + 2..];
    assert_eq!(
        String::from_utf8_lossy(&received.data),
        String::from_utf8_lossy(without_return_path),
        "the relayed message is the stored one minus Return-Path"
    );
    // lettre ends DATA with CRLF . CRLF even after a final CRLF, so the stored copy has
    // one more empty line than `raw`; the relay itself changes nothing (checked above).
    assert!(
        contains(&received.data, raw.as_bytes()),
        "{}",
        String::from_utf8_lossy(&received.data)
    );
    assert!(received.data.starts_with(b"Received: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failure_is_retried_and_delivered_once() {
    let mut receiver = Receiver::refusing_data_once("451 4.3.0 try again later").await;
    let server = start_server(&outbound_config(receiver.port, "[1, 1]"));
    submit_one(&server, "carol@example.net", "retry").await;

    let first = receiver.next().await;
    assert!(first.reply.starts_with("451"), "{first:?}");
    let second = receiver.next().await;
    assert!(second.reply.starts_with("250"), "{second:?}");
    assert_eq!(second.recipients, ["carol@example.net"]);
    assert_eq!(first.data, second.data);
    // Delivered: the queue forgets it, so no third attempt comes (retry delay is 1s).
    receiver.expect_quiet(Duration::from_secs(4)).await;
    let list = server.admin_ok(&["queue", "list"]);
    assert!(list.contains("queue is empty"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_bounces_to_the_sender_as_a_report() {
    let mut receiver = Receiver::start(Script {
        rcpt: vec![(
            "nobody@example.net".to_owned(),
            "550 5.1.1 no such user here".to_owned(),
        )],
        ..Script::default()
    })
    .await;
    let server = start_server(&outbound_config(receiver.port, "[1]"));
    submit(
        &server,
        &["nobody@example.net", "dave@example.net"],
        &message(&server, "nobody@example.net", "bounce"),
    )
    .await;

    // The other recipient of the same domain is still delivered.
    let received = receiver.next().await;
    assert_eq!(received.recipients, ["dave@example.net"]);

    let bounce = wait_for_inbox(&server, &server.email, |m| {
        String::from_utf8_lossy(m).contains("multipart/report")
    })
    .await;
    assert!(bounce.starts_with(b"Return-Path: <>\r\n"));
    let parsed = mail_parser::MessageParser::default()
        .parse(&bounce)
        .expect("bounce parses");
    let content_type = parsed.content_type().expect("content type");
    assert_eq!(content_type.ctype(), "multipart");
    assert_eq!(content_type.subtype(), Some("report"));
    assert_eq!(
        content_type.attribute("report-type"),
        Some("delivery-status")
    );
    let status = delivery_status(&parsed);
    common::assert_contains_all(
        &status,
        &[
            "Final-Recipient: rfc822;nobody@example.net",
            "Action: failed",
            "Status: 5.1.1",
            "Diagnostic-Code: smtp; 550 5.1.1 no such user here",
        ],
    );
    assert!(!status.contains("dave@example.net"), "{status}");
    assert!(
        String::from_utf8_lossy(&bounce).contains("Subject: bounce"),
        "the original comes back"
    );
    let list = server.admin_ok(&["queue", "list"]);
    assert!(list.contains("queue is empty"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_delay_warns_the_sender_once_then_delivers() {
    let mut receiver = Receiver::start(Script {
        data: VecDeque::from(vec!["451 4.3.0 try again later".to_owned(); 3]),
        ..Script::default()
    })
    .await;
    // Warn after 1 second instead of 4 hours.
    let config = outbound_config(receiver.port, "[1]").replacen(
        "[outbound]\n",
        "[outbound]\ndelay_warning_secs = 1\n",
        1,
    );
    let server = start_server(&config);
    submit_one(&server, "erin@example.net", "slow").await;
    for _ in 0..3 {
        assert!(receiver.next().await.reply.starts_with("451"));
    }
    let delivered = receiver.next().await;
    assert!(delivered.reply.starts_with("250"), "{delivered:?}");
    receiver.expect_quiet(Duration::from_secs(3)).await;

    let notices: Vec<Vec<u8>> = inbox_messages(&server, &server.email)
        .await
        .into_iter()
        .filter(|m| String::from_utf8_lossy(m).contains("multipart/report"))
        .collect();
    assert_eq!(notices.len(), 1, "one delay notice, not one per attempt");
    let notice = String::from_utf8_lossy(&notices[0]).into_owned();
    assert!(notice.starts_with("Return-Path: <>\r\n"), "{notice}");
    assert!(
        notice.contains("Subject: Delayed Mail (still being retried)"),
        "{notice}"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(notices[0].as_slice())
        .expect("notice parses");
    let status = delivery_status(&parsed);
    common::assert_contains_all(
        &status,
        &[
            "Final-Recipient: rfc822;erin@example.net",
            "Action: delayed",
            "Status: 4.3.0",
            "Will-Retry-Until: ",
        ],
    );
    // Only the header comes back with a delay notice: the message is still on its way.
    assert!(
        parsed.parts.iter().any(|part| part
            .content_type()
            .is_some_and(|ct| ct.ctype() == "text" && ct.subtype() == Some("rfc822-headers"))),
        "{notice}"
    );
    let list = server.admin_ok(&["queue", "list"]);
    assert!(list.contains("queue is empty"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_of_one_domain_share_one_transaction() {
    let mut receiver = Receiver::start(Script::default()).await;
    let server = start_server(&outbound_config(receiver.port, "[1]"));
    let recipients = ["a@example.net", "b@example.net", "c@EXAMPLE.net"];
    submit(
        &server,
        &recipients,
        &message(&server, "a@example.net", "many"),
    )
    .await;

    let received = receiver.next().await;
    assert_eq!(received.recipients, recipients);
    receiver.expect_quiet(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_survives_kill_9_and_delivers_after_restart() {
    // The first attempt is deferred with a retry an hour away, so the item is sitting in
    // the queue when the server is killed.
    let mut receiver = Receiver::refusing_data_once("451 4.3.0 not now").await;
    let mut server = start_server(&outbound_config(receiver.port, "[3600]"));
    let raw = message(&server, "erin@example.net", "durable");
    submit(&server, &["erin@example.net"], &raw).await;
    let first = receiver.next().await;
    assert!(first.reply.starts_with("451"));

    tokio::task::block_in_place(|| server.kill9());
    let list = server.admin_ok(&["queue", "list"]);
    let id = queue_id(&list, "erin@example.net");
    let shown = server.admin_ok(&["queue", "show", &id]);
    assert!(shown.contains("<erin@example.net>"), "{shown}");

    tokio::task::block_in_place(|| server.launch());
    // If the kill came before the deferral was recorded, the item is due at once after
    // the restart (its lease is released) and may already be gone; otherwise it waits
    // an hour and this makes it due now.
    let _ = server.admin(&["queue", "retry", &id]);
    let second = receiver.next().await;
    assert!(second.reply.starts_with("250"), "{second:?}");
    assert!(contains(&second.data, raw.as_bytes()));
    assert_eq!(first.data, second.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_item_is_not_delivered() {
    let mut receiver = Receiver::refusing_data_once("451 4.3.0 not now").await;
    let server = start_server(&outbound_config(receiver.port, "[3600]"));
    submit_one(&server, "frank@example.net", "dropped").await;
    receiver.next().await;
    let list = server.admin_ok(&["queue", "list"]);
    let id = queue_id(&list, "frank@example.net");
    server.admin_ok(&["queue", "drop", &id]);
    assert!(
        server
            .admin_ok(&["queue", "list"])
            .contains("queue is empty")
    );
    assert!(!server.admin(&["queue", "show", &id]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_message_to_a_receiver_without_smtputf8_bounces_cleanly() {
    let mut receiver = Receiver::start(Script {
        ehlo: Some("250-receiver.test\r\n250 8BITMIME".to_owned()),
        ..Script::default()
    })
    .await;
    let server = start_server(&outbound_config(receiver.port, "[1]"));
    let raw = format!(
        "From: <{}>\r\nTo: <gina@example.net>\r\nSubject: Grüße\r\n\r\nhi\r\n",
        server.email
    );
    submit(&server, &["gina@example.net"], &raw).await;

    let bounce = wait_for_inbox(&server, &server.email, |m| {
        String::from_utf8_lossy(m).contains("multipart/report")
    })
    .await;
    let text = String::from_utf8_lossy(&bounce);
    common::assert_contains_all(&text, &["Status: 5.6.7", "SMTPUTF8"]);
    // RFC 6531 §3.2: refused before any transaction, so nothing reached the receiver.
    receiver.expect_quiet(Duration::from_millis(500)).await;
}

/// A second letterbox as the receiver: its inbound port offers STARTTLS with a
/// self-signed certificate, which opportunistic TLS accepts (RFC 3207, RFC 7435).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_to_another_letterbox_over_starttls() {
    let receiver = start_server("");
    receiver.admin_ok(&["domain", "add", "example.net"]);
    receiver.add_user("hank@example.net", "hank-password-1");
    let sender = start_server(&outbound_config(receiver.port("smtp"), "[1]"));
    let raw = message(&sender, "hank@example.net", "letterbox-to-letterbox");
    submit(&sender, &["hank@example.net"], &raw).await;

    let arrived = wait_for_inbox(&receiver, "hank@example.net", |m| {
        contains(m, b"Subject: letterbox-to-letterbox")
    })
    .await;
    assert!(contains(&arrived, raw.as_bytes()));
    let text = String::from_utf8_lossy(&arrived);
    // Exactly one Return-Path: the receiver's, with our envelope sender.
    assert_eq!(text.matches("Return-Path:").count(), 1, "{text}");
    assert!(
        text.starts_with(&format!("Return-Path: <{}>", sender.email)),
        "{text}"
    );
    assert!(
        text.contains("with ESMTPS"),
        "not received over TLS: {text}"
    );
}
