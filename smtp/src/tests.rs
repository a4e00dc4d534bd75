//! Session-level tests: a real [`Store`] in a temporary directory, sessions driven over
//! an in-memory pipe (any peer address we like) or over TCP through [`SmtpServer::serve`],
//! asserting exact reply codes.

use crate::budget::DataBudget;
use crate::connection::{self, Transport};
use crate::session::{Session, SessionId};
use crate::{ListenerRole, SmtpConfig, SmtpServer};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use netutil::{
    AuthThrottle, ConnectionLimiter, ListenerShared, Shutdown, TlsAcceptor, tls_acceptor,
};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

/// Domains and accounts made the same way in every test crate.
#[path = "../../tests/common/accounts.rs"]
mod accounts;

const ALICE: &str = "alice@example.com";
const ALICE_PASSWORD: &str = "alice-password";
const BOB: &str = "bob@example.com";
const BOB_PASSWORD: &str = "bob-password";
/// Far from anything a test needs; a reply that takes this long means a hang.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_MESSAGE_SIZE: usize = 10_000;
const MAX_RECIPIENTS: usize = 3;
const REMOTE_PEER: &str = "192.0.2.10:40000";
const LOOPBACK_PEER: &str = "127.0.0.1:40000";

impl Transport for DuplexStream {
    async fn start_tls(self, _: &TlsAcceptor) -> Result<Self, netutil::HandshakeError> {
        Err(netutil::HandshakeError::Failed(io::Error::other(
            "no TLS over an in-memory pipe",
        )))
    }
}

struct Harness {
    server: SmtpServer,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        Harness::with(|_| {}, false).await
    }

    async fn with(configure: impl FnOnce(&mut SmtpConfig), bob: bool) -> Harness {
        Harness::with_budget(configure, bob, crate::budget::DEFAULT_DATA_BUDGET).await
    }

    /// A store with the domain `example.com`, the account alice (and bob when asked;
    /// argon2 is slow in debug builds), and the alias `postmaster@example.com` → alice;
    /// sessions share a byte budget of `budget` for message content.
    async fn with_budget(
        configure: impl FnOnce(&mut SmtpConfig),
        bob: bool,
        budget: usize,
    ) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.sqlite").to_string_lossy())
            .await
            .expect("open store");
        accounts::add_domain(&store, "example.com").await;
        accounts::add_account(&store, ALICE, ALICE_PASSWORD).await;
        if bob {
            accounts::add_account(&store, BOB, BOB_PASSWORD).await;
        }
        store
            .add_alias("postmaster@example.com", ALICE)
            .await
            .expect("alias");
        let mut config = SmtpConfig::new("mx.test");
        config.max_message_size = MAX_MESSAGE_SIZE;
        config.max_recipients = MAX_RECIPIENTS;
        configure(&mut config);
        let server = SmtpServer {
            config: Arc::new(config),
            store,
            net: ListenerShared {
                tls: None,
                connections: ConnectionLimiter::new(100, 100),
                auth_throttle: AuthThrottle::new(3, Duration::from_secs(600), Duration::ZERO),
                shutdown: Shutdown::new(),
            },
            mail_auth: None,
            data_budget: DataBudget::new(budget),
        };
        Harness { server, _dir: dir }
    }

    fn store(&self) -> &Store {
        &self.server.store
    }

    /// A session from loopback on a submission listener, after EHLO, logged in as Alice.
    async fn logged_in(&self, role: ListenerRole) -> Client<DuplexStream> {
        let mut client = self.connect(role, LOOPBACK_PEER).await;
        client.command("EHLO client.example", "250").await;
        client.login(ALICE, ALICE_PASSWORD).await;
        client
    }

    /// A new harness and a session to it from `peer`.
    async fn connected(role: ListenerRole, peer: &str) -> (Harness, Client<DuplexStream>) {
        let harness = Harness::new().await;
        let client = harness.connect(role, peer).await;
        (harness, client)
    }

    /// A session over an in-memory pipe from `peer`; the greeting is already read.
    async fn connect(&self, role: ListenerRole, peer: &str) -> Client<DuplexStream> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let session = Session::new(
            &self.server,
            role,
            peer.parse().expect("peer"),
            SessionId::new(),
            false,
        );
        let token = self.server.net.shutdown.token.clone();
        self.server.net.shutdown.tracker.spawn(async move {
            let _ = connection::run(server, session, None, token).await;
        });
        let mut client = Client::new(client);
        client.expect("220 mx.test ESMTP").await;
        client
    }

    async fn inbox_messages(&self, email: &str) -> Vec<Vec<u8>> {
        let account = self
            .store()
            .resolve_recipient(email)
            .await
            .expect("resolve")
            .expect("account");
        let inbox = self.store().inbox(account).await.expect("inbox");
        let mut messages = Vec::new();
        for entry in self
            .store()
            .mailbox_entries(inbox.id)
            .await
            .expect("entries")
        {
            messages.push(self.store().raw_message(entry.message).await.expect("raw"));
        }
        messages
    }

    /// The one message in the INBOX of `email`; fails the test when there is not exactly one.
    async fn only_inbox_message(&self, email: &str) -> Vec<u8> {
        let mut messages = self.inbox_messages(email).await;
        assert_eq!(messages.len(), 1);
        messages.pop().expect("one message")
    }

    /// The first message in the INBOX of `email`, as text; fails the test when there is none.
    async fn first_inbox_text(&self, email: &str) -> String {
        let messages = self.inbox_messages(email).await;
        String::from_utf8_lossy(messages.first().expect("delivered")).into_owned()
    }
}

struct Client<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Client {
            stream: BufReader::new(stream),
        }
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let stream = self.stream.get_mut();
        stream.write_all(bytes.as_ref()).await.expect("send");
        stream.flush().await.expect("flush");
    }

    /// One whole reply (all lines of a multi-line reply), as text.
    async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_line(&mut line))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(read > 0, "connection closed; reply so far: {reply:?}");
            assert!(line.ends_with("\r\n"), "reply line ends in CRLF: {line:?}");
            reply.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return reply;
            }
        }
    }

    /// Reads a reply and checks that it starts with `prefix` (e.g. `"250 2.1.5"`).
    async fn expect(&mut self, prefix: &str) -> String {
        let reply = self.reply().await;
        let last = reply.lines().last().unwrap_or_default();
        assert!(
            reply.starts_with(prefix) || last.starts_with(prefix),
            "expected {prefix:?}, got {reply:?}"
        );
        reply
    }

    async fn command(&mut self, line: &str, prefix: &str) -> String {
        self.send(format!("{line}\r\n")).await;
        self.expect(prefix).await
    }

    /// MAIL FROM `from`, RCPT TO `to` and DATA, each accepted.
    async fn start_data(&mut self, from: &str, to: &str) {
        self.command(&format!("MAIL FROM:<{from}>"), "250 2.1.0")
            .await;
        self.command(&format!("RCPT TO:<{to}>"), "250 2.1.5").await;
        self.command("DATA", "354").await;
    }

    /// A transaction of `message` from `from` to `to`, accepted with `250 2.0.0`.
    async fn send_message(&mut self, from: &str, to: &str, message: &[u8]) {
        self.start_data(from, to).await;
        self.send(dot_stuff(message)).await;
        self.expect("250 2.0.0").await;
    }

    /// Sends each command in turn and checks its reply's prefix.
    async fn commands(&mut self, dialogue: &[(&str, &str)]) {
        for (line, prefix) in dialogue {
            self.command(line, prefix).await;
        }
    }

    /// After the server closed: reading gives end of stream.
    async fn expect_closed(&mut self) {
        let mut rest = String::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_line(&mut rest))
            .await
            .expect("close in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "expected close, got {rest:?}"
        );
    }

    async fn login(&mut self, user: &str, password: &str) {
        let token = STANDARD.encode(format!("\0{user}\0{password}"));
        self.command(&format!("AUTH PLAIN {token}"), "235 2.7.0")
            .await;
    }
}

/// The content a client sends for `body`, dot-stuffed and terminated.
/// What storage keeps of a body: every bare LF and bare CR as CRLF, nothing else changed.
fn crlf_line_ends(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut bytes = body.iter().peekable();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\n' if out.last() != Some(&b'\r') => out.extend_from_slice(b"\r\n"),
            b'\r' if bytes.peek() != Some(&&b'\n') => out.extend_from_slice(b"\r\n"),
            _ => out.push(byte),
        }
    }
    out
}

fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line_start = true;
    let mut previous = 0u8;
    for &byte in body {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = previous == b'\r' && byte == b'\n';
        previous = byte;
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The stored message minus our trace prefix: everything after the first `Received:`
/// field and any fields we added before the client's content.
fn after_prefix<'a>(stored: &'a [u8], body: &[u8]) -> &'a [u8] {
    assert!(
        stored.ends_with(body),
        "stored message ends with the body as sent:\n{}",
        String::from_utf8_lossy(stored)
    );
    stored.get(stored.len() - body.len()..).unwrap_or_default()
}

// ---- EHLO and simple commands ----

#[tokio::test]
async fn ehlo_lists_the_extensions() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    let reply = c.command("EHLO client.example", "250").await;
    assert_eq!(
        reply,
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 DSN\r\n",
        "no STARTTLS without a certificate, no AUTH on port 25"
    );

    let mut s = h.connect(ListenerRole::Submission, LOOPBACK_PEER).await;
    let reply = s.command("EHLO client.example", "250").await;
    assert!(reply.ends_with("250 AUTH PLAIN LOGIN\r\n"), "{reply}");

    let mut far = h.connect(ListenerRole::Submission, REMOTE_PEER).await;
    let reply = far.command("EHLO client.example", "250").await;
    assert!(
        !reply.contains("AUTH"),
        "no AUTH over plaintext from afar: {reply}"
    );
}

#[tokio::test]
async fn simple_commands_and_order() {
    let (_h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.commands(&[
        ("MAIL FROM:<a@remote.example>", "503 5.5.1"),
        ("NOOP", "250 2.0.0"),
        ("HELO client.example", "250 mx.test"),
        ("RCPT TO:<alice@example.com>", "503 5.5.1"),
        ("DATA", "503 5.5.1"),
        ("VRFY alice", "252 2.5.0"),
        ("EXPN list", "502 5.5.1"),
        ("HELP", "214"),
        ("RSET", "250 2.0.0"),
        ("BOGUS", "500 5.5.2"),
        ("MAIL FROM:bad", "501 5.5.4"),
        ("MAIL FROM:<a@remote.example> FOO=1", "555 5.5.4"),
        ("MAIL FROM:<a@remote.example>", "250 2.1.0"),
        ("MAIL FROM:<a@remote.example>", "503 5.5.1"),
        ("DATA", "503 5.5.1"),
        ("AUTH PLAIN", "503 5.5.1"),
        ("QUIT", "221 2.0.0"),
    ])
    .await;
    c.expect_closed().await;
}

// ---- inbound ----

#[tokio::test]
async fn pipelined_transaction_is_stored_byte_for_byte() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    let body: &[u8] = b"From: <s@remote.example>\r\nSubject: hi\r\n\r\n.leading dot\r\n..two dots\r\n\
                        bare\nline feed and bare\rcarriage return\r\n8-bit: \xc3\xa9\xff\r\n.\r\nlast\r\n";
    // RFC 2920: the whole envelope in one write, replies in order.
    c.send(
        "EHLO client.example\r\nMAIL FROM:<s@remote.example> BODY=8BITMIME\r\n\
         RCPT TO:<alice@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n",
    )
    .await;
    c.expect("250-mx.test").await;
    c.expect("250 2.1.0").await;
    c.expect("250 2.1.5").await;
    c.expect("550 5.1.1").await;
    c.expect("354").await;
    let mut content = dot_stuff(body);
    content.extend_from_slice(b"QUIT\r\n");
    c.send(&content).await;
    c.expect("250 2.0.0").await;
    c.expect("221 2.0.0").await;

    let stored = &h.only_inbox_message(ALICE).await;
    // Byte for byte, but for the bare LF that storage writes as CRLF (RFC 5322 §2.3).
    let body = crlf_line_ends(body);
    let body = body.as_slice();
    assert_eq!(after_prefix(stored, body), body);
    let text = String::from_utf8_lossy(stored);
    assert!(text.starts_with("Return-Path: <s@remote.example>\r\nReceived: from client.example ([192.0.2.10])\r\n\tby mx.test with ESMTP id "), "{text}");
    assert!(text.contains("\tfor <alice@example.com>;\r\n"), "{text}");
    assert_eq!(
        stored.len(),
        text.find("From: <s@").expect("body start") + body.len(),
        "nothing but Return-Path and Received before the body"
    );
}

#[tokio::test]
async fn recipients_are_checked() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.commands(&[
        ("EHLO client.example", "250"),
        ("MAIL FROM:<>", "250 2.1.0"),
        ("RCPT TO:<nobody@example.com>", "550 5.1.1"),
        (
            "RCPT TO:<someone@elsewhere.example>",
            "554 5.7.1 Relay access denied",
        ),
        ("RCPT TO:<>", "501 5.1.3"),
        ("RCPT TO:<ALICE@EXAMPLE.COM>", "250 2.1.5"),
        ("RCPT TO:<alice+tag@example.com>", "250 2.1.5"),
        ("RCPT TO:<Postmaster>", "250 2.1.5"),
        ("RCPT TO:<bob@example.com>", "452 4.5.3 Too many recipients"),
        ("DATA", "354"),
    ])
    .await;
    c.send(dot_stuff(b"Subject: three ways to alice\r\n\r\nx\r\n"))
        .await;
    c.expect("250 2.0.0").await;
    // Three recipients, one account: one copy, stored once.
    assert_eq!(h.inbox_messages(ALICE).await.len(), 1);
    assert_eq!(h.store().stored_message_count().await.expect("count"), 1);
}

#[tokio::test]
async fn non_ascii_address_needs_smtputf8() {
    let (_h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.commands(&[
        ("EHLO client.example", "250"),
        ("MAIL FROM:<usér@remote.example>", "553 5.6.7"),
        ("MAIL FROM:<usér@remote.example> SMTPUTF8", "250 2.1.0"),
        ("RCPT TO:<alice@example.com>", "250 2.1.5"),
    ])
    .await;
}

#[tokio::test]
async fn smuggling_does_not_end_data() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.command("EHLO client.example", "250").await;
    c.start_data("s@remote.example", "alice@example.com").await;
    // CVE-2023-51766: `\n.\n` and `\n.\r\n` are not the end of data.
    let attack: &[u8] = b"Subject: real\r\n\r\nreal\n.\nMAIL FROM:<ceo@example.com>\r\n\
        RCPT TO:<alice@example.com>\r\nDATA\r\nSubject: forged\r\n\r\nforged\n.\r\nmore\r\n";
    c.send(attack).await;
    c.send(b".\r\nNOOP\r\n").await;
    // One message, then the NOOP: nothing inside was read as a command.
    c.expect("250 2.0.0").await;
    c.expect("250 2.0.0 OK").await;
    let stored = &h.only_inbox_message(ALICE).await;
    // Stored with bare LFs made CRLF (RFC 5322 §2.3), the forged lines as plain text.
    let canonical = crlf_line_ends(attack);
    assert_eq!(after_prefix(stored, &canonical), canonical.as_slice());
}

#[tokio::test]
async fn bare_cr_does_not_end_data_and_is_stored_as_crlf() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.command("EHLO client.example", "250").await;
    c.start_data("s@remote.example", "alice@example.com").await;
    // `\r.\r` ends DATA for a receiver that takes a bare CR for a line end.
    c.send(b"Subject: real\r\n\r\nreal\r.\rMAIL FROM:<ceo@example.com>\r\n")
        .await;
    c.send(b".\r\nNOOP\r\n").await;
    c.expect("250 2.0.0").await;
    c.expect("250 2.0.0 OK").await;
    let stored = &h.only_inbox_message(ALICE).await;
    let canonical: &[u8] = b"Subject: real\r\n\r\nreal\r\n.\r\nMAIL FROM:<ceo@example.com>\r\n";
    assert_eq!(after_prefix(stored, canonical), canonical);
    assert!(
        !stored.windows(3).any(|w| w == b"\r.\r"),
        "a bare CR was stored"
    );
}

/// Lets the sessions run until the byte budget holds at least `bytes`.
async fn budget_reaches(h: &Harness, bytes: usize) {
    tokio::time::timeout(REPLY_TIMEOUT, async {
        while h.server.data_budget.in_use() < bytes {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("content reserved in time");
}

/// A harness whose sessions share a budget of one largest message, with a short wait for
/// it (the tests wait on replies, never on the clock).
async fn small_budget() -> Harness {
    Harness::with_budget(
        |config| config.data_budget_wait = Duration::from_millis(50),
        false,
        MAX_MESSAGE_SIZE,
    )
    .await
}

/// `size` octets of text ending in CRLF.
fn line_of(size: usize) -> Vec<u8> {
    let mut line = vec![b'b'; size.saturating_sub(2)];
    line.extend_from_slice(b"\r\n");
    line
}

async fn open_envelope(c: &mut Client<DuplexStream>) {
    c.commands(&[
        ("EHLO client.example", "250"),
        ("MAIL FROM:<s@remote.example>", "250 2.1.0"),
        ("RCPT TO:<alice@example.com>", "250 2.1.5"),
    ])
    .await;
}

#[tokio::test]
async fn data_past_the_byte_budget_gets_452_and_the_session_goes_on() {
    let h = small_budget().await;
    let mut holder = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    open_envelope(&mut holder).await;
    holder.command("DATA", "354").await;
    // An unfinished transfer holds 8000 of the 10000 octets.
    holder.send(vec![b'a'; 8000]).await;
    budget_reaches(&h, 8000).await;

    let mut other = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    open_envelope(&mut other).await;
    other.command("DATA", "354").await;
    other.send(dot_stuff(&line_of(4000))).await;
    // RFC 3463 §3.4: mail system full; read to the end, then the transaction is over.
    other.expect("452 4.3.1").await;
    other
        .command("RCPT TO:<alice@example.com>", "503 5.5.1")
        .await;
    assert_eq!(
        h.server.data_budget.in_use(),
        8000,
        "the refused bytes came back"
    );

    // The holder finishes; once it is delivered its bytes come back too.
    holder.send(b"\r\n.\r\n").await;
    holder.expect("250 2.0.0").await;
    assert_eq!(h.server.data_budget.in_use(), 0);
    other
        .command("MAIL FROM:<s@remote.example>", "250 2.1.0")
        .await;
    other
        .command("RCPT TO:<alice@example.com>", "250 2.1.5")
        .await;
    other.command("DATA", "354").await;
    other.send(dot_stuff(&line_of(4000))).await;
    other.expect("250 2.0.0").await;
    assert_eq!(h.inbox_messages(ALICE).await.len(), 2);
}

#[tokio::test]
async fn bdat_past_the_byte_budget_gets_452_and_rset_frees_a_held_chunk() {
    let h = small_budget().await;
    let mut holder = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    open_envelope(&mut holder).await;
    let chunk = "a".repeat(8000);
    holder.send(format!("BDAT 8000\r\n{chunk}")).await;
    holder.expect("250 2.0.0 8000 octets").await;
    assert_eq!(h.server.data_budget.in_use(), 8000);

    let mut other = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    open_envelope(&mut other).await;
    let chunk = "b".repeat(4000);
    other
        .send(format!("BDAT 4000 LAST\r\n{chunk}NOOP\r\n"))
        .await;
    other.expect("452 4.3.1").await;
    // The chunk was read whole: the NOOP after it is a command.
    other.expect("250 2.0.0 OK").await;
    other.command("BDAT 1 LAST\r\nx", "503 5.5.1").await;

    // A chunked transfer given up with RSET gives its bytes back.
    holder.command("RSET", "250").await;
    assert_eq!(h.server.data_budget.in_use(), 0);
}

#[tokio::test]
async fn oversized_messages_are_refused_and_framing_survives() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.commands(&[
        ("EHLO client.example", "250"),
        // RFC 1870: declared too big at MAIL time.
        ("MAIL FROM:<s@remote.example> SIZE=10001", "552 5.3.4"),
        (
            "MAIL FROM:<s@remote.example> SIZE=99999999999999999999999",
            "501 5.5.4",
        ),
        // Not declared: found out while reading; read to the end, then refuse.
        ("MAIL FROM:<s@remote.example>", "250 2.1.0"),
        ("RCPT TO:<alice@example.com>", "250 2.1.5"),
        ("DATA", "354"),
    ])
    .await;
    let line = format!("{}\r\n", "x".repeat(98));
    let mut big = String::from("Subject: big\r\n\r\n");
    while big.len() <= MAX_MESSAGE_SIZE {
        big.push_str(&line);
    }
    c.send(dot_stuff(big.as_bytes())).await;
    c.expect("552 5.3.4").await;
    // The transaction is over; the stream is still in step.
    c.command("NOOP", "250 2.0.0").await;
    c.command("RCPT TO:<alice@example.com>", "503 5.5.1").await;
    assert!(h.inbox_messages(ALICE).await.is_empty());

    // The same over BDAT.
    c.command("MAIL FROM:<s@remote.example>", "250 2.1.0").await;
    c.command("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    c.send(format!("BDAT {}\r\n{big}", big.len())).await;
    c.expect("552 5.3.4").await;
    c.command("NOOP", "250 2.0.0").await;
    assert!(h.inbox_messages(ALICE).await.is_empty());
}

#[tokio::test]
async fn line_too_long() {
    let (_h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.command("EHLO client.example", "250").await;
    // RFC 5321 §4.5.3.1.4: 512 octets including CRLF.
    c.command(&format!("NOOP {}", "x".repeat(505)), "250 2.0.0")
        .await;
    c.command(
        &format!("NOOP {}", "x".repeat(506)),
        "500 5.5.2 Line too long",
    )
    .await;
    c.command(
        &format!("NOOP {}", "x".repeat(100_000)),
        "500 5.5.2 Line too long",
    )
    .await;
    c.command("NOOP", "250 2.0.0").await;
}

#[tokio::test]
async fn bdat_chunks_are_read_by_count() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.command("EHLO client.example", "250").await;
    // Refused BDAT: its chunk is still read and dropped.
    c.send("BDAT 12\r\nNOOP\r\nNOOP\r\n").await;
    c.expect("503 5.5.1").await;
    c.command("NOOP", "250 2.0.0 OK").await;

    let first: &[u8] = b"Subject: chunks\r\n\r\n.no stuffing\r\n";
    let second: &[u8] = b"\r\n.\r\nBDAT carries CRLF.CRLF as data\r\n\xff\r\n";
    c.send("MAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.com>\r\n")
        .await;
    c.expect("250 2.1.0").await;
    c.expect("250 2.1.5").await;
    let mut pipelined = format!("BDAT {}\r\n", first.len()).into_bytes();
    pipelined.extend_from_slice(first);
    pipelined.extend_from_slice(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    pipelined.extend_from_slice(second);
    c.send(&pipelined).await;
    c.expect(&format!("250 2.0.0 {} octets received", first.len()))
        .await;
    c.expect("250 2.0.0 Message accepted").await;
    // DATA during chunking is out of order; BDAT 0 LAST is a valid empty end.
    c.command("MAIL FROM:<s@remote.example>", "250 2.1.0").await;
    c.command("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    c.send("BDAT 3\r\nabc").await;
    c.expect("250 2.0.0").await;
    c.command("DATA", "503 5.5.1").await;
    c.command("BDAT 0 LAST", "250 2.0.0 Message accepted").await;

    let messages = h.inbox_messages(ALICE).await;
    assert_eq!(messages.len(), 2);
    let body = [first, second].concat();
    assert_eq!(after_prefix(messages.first().expect("first"), &body), body);
    assert!(messages.get(1).expect("second").ends_with(b"abc"));
}

#[tokio::test]
async fn over_quota_is_552() {
    let h = Harness::new().await;
    h.store().set_quota(ALICE, Some(10)).await.expect("quota");
    let mut c = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    c.command("EHLO client.example", "250").await;
    c.start_data("s@remote.example", "alice@example.com").await;
    c.send(dot_stuff(
        b"Subject: too much for the quota\r\n\r\nbody\r\n",
    ))
    .await;
    c.expect("552 5.2.2").await;
}

#[tokio::test]
async fn a_full_mailbox_is_refused_at_rcpt_and_others_still_get_the_message() {
    let h = Harness::with(|_| {}, true).await;
    h.store().set_quota(ALICE, Some(0)).await.expect("quota");
    let mut c = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    c.commands(&[
        ("EHLO client.example", "250"),
        ("MAIL FROM:<s@remote.example>", "250 2.1.0"),
        ("RCPT TO:<alice@example.com>", "452 4.2.2"),
        ("RCPT TO:<bob@example.com>", "250 2.1.5"),
        ("DATA", "354"),
    ])
    .await;
    c.send(dot_stuff(b"Subject: for bob\r\n\r\nbody\r\n")).await;
    c.expect("250 2.0.0").await;
    assert_eq!(h.inbox_messages(BOB).await.len(), 1);
    assert!(h.inbox_messages(ALICE).await.is_empty());
}

#[tokio::test]
async fn too_many_errors_close_the_connection() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    for _ in 1..h.server.config.max_bad_commands {
        c.command("BOGUS", "500 5.5.2").await;
    }
    c.command("BOGUS", "421 4.7.0").await;
    c.expect_closed().await;
}

// ---- submission ----

#[tokio::test]
async fn submission_requires_auth() {
    let (h, mut c) = Harness::connected(ListenerRole::Submission, LOOPBACK_PEER).await;
    c.command("EHLO client.example", "250").await;
    c.command(
        "MAIL FROM:<alice@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;

    let mut far = h.connect(ListenerRole::Submission, REMOTE_PEER).await;
    far.command("EHLO client.example", "250").await;
    far.command("AUTH PLAIN", "530 5.7.0").await;
}

#[tokio::test]
async fn auth_plain_and_login() {
    let (_h, mut c) = Harness::connected(ListenerRole::Submission, LOOPBACK_PEER).await;
    c.command("EHLO client.example", "250").await;
    let wrong = STANDARD.encode(format!("\0{ALICE}\0wrong"));
    c.command(&format!("AUTH PLAIN {wrong}"), "535 5.7.8").await;
    // RFC 4616 §2: asking to act as another user fails like a wrong password, even
    // with the right one.
    let as_bob = STANDARD.encode(format!("bob@example.com\0{ALICE}\0{ALICE_PASSWORD}"));
    c.command(&format!("AUTH PLAIN {as_bob}"), "535 5.7.8")
        .await;
    c.commands(&[
        ("AUTH CRAM-MD5", "504 5.5.4"),
        // No initial response: empty challenge, then the response; `*` cancels.
        ("AUTH PLAIN", "334 \r\n"),
        ("*", "501 5.7.0"),
        ("AUTH PLAIN", "334 "),
        ("not base64!", "501 5.5.2"),
        // LOGIN: user then password.
        ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
    ])
    .await;
    c.command(&STANDARD.encode(ALICE), "334 UGFzc3dvcmQ6").await;
    c.command(&STANDARD.encode(ALICE_PASSWORD), "235 2.7.0")
        .await;
    c.command("AUTH PLAIN", "503 5.5.1").await;
    c.command("MAIL FROM:<alice@example.com>", "250 2.1.0")
        .await;
}

#[tokio::test]
async fn auth_is_throttled_then_refused() {
    let (_h, mut c) = Harness::connected(ListenerRole::Submission, LOOPBACK_PEER).await;
    c.command("EHLO client.example", "250").await;
    let wrong = STANDARD.encode(format!("\0{ALICE}\0wrong"));
    for _ in 0..3 {
        c.command(&format!("AUTH PLAIN {wrong}"), "535 5.7.8").await;
    }
    c.command(&format!("AUTH PLAIN {wrong}"), "421 4.7.0").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn spoofed_sender_is_refused() {
    let h = Harness::with(|_| {}, true).await;
    let mut c = h.logged_in(ListenerRole::Submission).await;
    c.commands(&[
        ("MAIL FROM:<bob@example.com>", "553 5.7.1"),
        // RFC 6409 §3.2: the null reverse-path is accepted (read receipts); the From:
        // field is what is checked then.
        ("MAIL FROM:<>", "250 2.1.0"),
        ("RSET", "250"),
        ("MAIL FROM:<alice+lists@example.com>", "250 2.1.0"),
    ])
    .await;
}

/// Sends `body` with DATA in a transaction from `mail_from` to bob and a remote
/// recipient; returns the reply to the end of the data.
async fn submit_as_alice<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Client<S>,
    mail_from: &str,
    body: &[u8],
) -> String {
    let mail = format!("MAIL FROM:<{mail_from}>");
    c.commands(&[
        (&mail, "250 2.1.0"),
        ("RCPT TO:<bob@example.com>", "250 2.1.5"),
        ("RCPT TO:<friend@remote.example>", "250 2.1.5"),
        ("DATA", "354"),
    ])
    .await;
    c.send(dot_stuff(body)).await;
    c.reply().await
}

/// Issue 15: From: and Sender: of a submitted message must be the account's own
/// addresses or aliases; a refused message is neither delivered nor queued.
#[tokio::test]
async fn submitted_from_and_sender_must_be_the_accounts_own() {
    let h = Harness::with(|c| c.max_recipients = 10, true).await;
    accounts::add_domain(h.store(), "example.net").await;
    accounts::add_account(h.store(), "carol@example.net", "pw").await;
    let mut c = h.logged_in(ListenerRole::Submission).await;
    for (body, expected) in [
        // Another account of the same domain, another hosted domain, a co-author.
        (
            &b"From: Bob <bob@example.com>\r\nSubject: 1\r\n\r\nx\r\n"[..],
            "550 5.7.1 From: bob@example.com is not an address of alice@example.com",
        ),
        (
            b"From: CEO <carol@example.net>\r\nSubject: 2\r\n\r\nx\r\n",
            "550 5.7.1",
        ),
        (
            b"From: alice@example.com, bob@example.com\r\nSubject: 3\r\n\r\nx\r\n",
            "550 5.7.1",
        ),
        (
            b"From: alice@example.com\r\nSender: bob@example.com\r\nSubject: 4\r\n\r\nx\r\n",
            "550 5.7.1 Sender: bob@example.com",
        ),
        // RFC 5322 §3.6: exactly one From: field, readable.
        (
            b"Subject: 5\r\n\r\nFrom: alice@example.com\r\n",
            "550 5.6.0",
        ),
        (
            b"From: alice@example.com\r\nFrom: bob@example.com\r\n\r\nx\r\n",
            "550 5.6.0",
        ),
        (
            b"From: <bob@example.com> <alice@example.com>\r\n\r\nx\r\n",
            "550 5.6.0",
        ),
        (
            b"From: alice@example.com\rFrom: bob@example.com\r\n\r\nx\r\n",
            "550 5.6.0",
        ),
    ] {
        let reply = submit_as_alice(&mut c, ALICE, body).await;
        assert!(reply.starts_with(expected), "{expected:?}: {reply:?}");
    }
    // BDAT is checked the same way.
    c.command("MAIL FROM:<alice@example.com>", "250 2.1.0")
        .await;
    c.command("RCPT TO:<bob@example.com>", "250 2.1.5").await;
    let chunk = b"From: bob@example.com\r\n\r\nx\r\n";
    c.send(format!("BDAT {} LAST\r\n", chunk.len())).await;
    c.send(chunk).await;
    c.expect("550 5.7.1").await;
    assert!(h.inbox_messages(BOB).await.is_empty(), "nothing delivered");
    assert!(
        h.store().queue_items().await.expect("queue").is_empty(),
        "nothing queued"
    );
    assert_eq!(h.store().stored_message_count().await.expect("count"), 0);

    // Her own address (with a +tag), her alias, and the null reverse-path.
    for (mail_from, from) in [
        (ALICE, "Alice <alice+news@example.com>"),
        (ALICE, "postmaster@example.com"),
        ("", "alice@example.com"),
    ] {
        let body = format!("From: {from}\r\nSender: alice@example.com\r\n\r\nx\r\n");
        let reply = submit_as_alice(&mut c, mail_from, body.as_bytes()).await;
        assert!(reply.starts_with("250 2.0.0"), "{from}: {reply:?}");
    }
    assert_eq!(h.inbox_messages(BOB).await.len(), 3);
    let queue = h.store().queue_items().await.expect("queue");
    assert_eq!(queue.len(), 3);
    for item in queue {
        assert_eq!(item.dkim_domain.as_deref(), Some("example.com"));
    }
}

/// `submission.from_own_domains`: any address of the account's domains, still none
/// of another domain; the DKIM domain stays the account's.
#[tokio::test]
async fn widened_from_check_takes_the_accounts_domains_only() {
    let h = Harness::with(|c| c.submission.from_own_domains = true, true).await;
    accounts::add_domain(h.store(), "example.net").await;
    let mut c = h.logged_in(ListenerRole::Submission).await;
    let reply = submit_as_alice(
        &mut c,
        ALICE,
        b"From: Sales <sales@example.com>\r\n\r\nx\r\n",
    )
    .await;
    assert!(reply.starts_with("250 2.0.0"), "{reply:?}");
    let reply = submit_as_alice(&mut c, ALICE, b"From: boss@example.net\r\n\r\nx\r\n").await;
    assert!(reply.starts_with("550 5.7.1"), "{reply:?}");
    let queue = h.store().queue_items().await.expect("queue");
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].dkim_domain.as_deref(), Some("example.com"));
}

#[tokio::test]
async fn submission_delivers_locally_and_queues_remote() {
    let h = Harness::with(|c| c.max_recipients = 10, true).await;
    let mut c = h.logged_in(ListenerRole::Submissions).await;
    c.commands(&[
        ("MAIL FROM:<alice@example.com> RET=HDRS ENVID=QQ+2B1", "250 2.1.0"),
        ("RCPT TO:<bob@example.com>", "250 2.1.5"),
        ("RCPT TO:<friend@remote.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;friend@remote.example", "250 2.1.5"),
        ("RCPT TO:<friend@remote.example>", "250 2.1.5"),
        ("RCPT TO:<nobody@example.com>", "550 5.1.1"),
        ("DATA", "354"),
    ])
    .await;
    let body: &[u8] = b"From: alice@example.com\r\nSubject: hello\r\n\r\nHi!\r\n";
    c.send(dot_stuff(body)).await;
    c.expect("250 2.0.0").await;

    let messages = h.inbox_messages(BOB).await;
    let stored = messages.first().expect("bob got it");
    let text = String::from_utf8_lossy(stored);
    assert!(stored.ends_with(body));
    assert!(text.contains("with ESMTPA id"), "{text}");
    assert!(
        text.contains("\r\nDate: "),
        "RFC 6409 §8.3 Date added: {text}"
    );
    assert!(
        text.contains("\r\nMessage-ID: <"),
        "RFC 6409 §8.3 Message-ID added: {text}"
    );

    let queue = h.store().queue_items().await.expect("queue");
    assert_eq!(queue.len(), 1);
    let item = queue.first().expect("one item");
    assert_eq!(item.mail_from, ALICE);
    assert_eq!(item.ret.as_deref(), Some("HDRS"));
    assert_eq!(item.envid.as_deref(), Some("QQ+2B1"));
    assert_eq!(item.recipients.len(), 1, "duplicates queued once");
    let recipient = item.recipients.first().expect("recipient");
    assert_eq!(recipient.address, "friend@remote.example");
    assert_eq!(recipient.notify, ["FAILURE", "DELAY"]);
    assert_eq!(
        recipient.orcpt.as_deref(),
        Some("rfc822;friend@remote.example")
    );
    assert_eq!(
        h.store().stored_message_count().await.expect("count"),
        1,
        "one stored copy"
    );
}

// ---- timeouts and shutdown ----

#[tokio::test]
async fn command_timeout_closes_with_421() {
    let h = Harness::with(|c| c.command_timeout = Duration::from_secs(5), false).await;
    let mut c = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    c.command("EHLO client.example", "250").await;
    // Nothing more. Paused time jumps to the next timer when every task is idle; the
    // store is not used from here on (its pool has timers of its own).
    tokio::time::pause();
    c.expect("421 4.4.2").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn data_timeout_closes_with_421() {
    let h = Harness::with(|c| c.data_timeout = Duration::from_secs(5), false).await;
    let mut c = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    c.commands(&[
        ("EHLO client.example", "250"),
        ("MAIL FROM:<s@remote.example>", "250 2.1.0"),
        ("RCPT TO:<alice@example.com>", "250 2.1.5"),
    ])
    .await;
    tokio::time::pause();
    c.command("DATA", "354").await;
    c.send("Subject: unfinished\r\n").await;
    c.expect("421 4.4.2").await;
    tokio::time::resume();
    assert!(h.inbox_messages(ALICE).await.is_empty());
}

#[tokio::test]
async fn shutdown_says_421_to_idle_sessions() {
    let (h, mut c) = Harness::connected(ListenerRole::Inbound, REMOTE_PEER).await;
    c.command("EHLO client.example", "250").await;
    let shutdown = h.server.net.shutdown.clone();
    let waiter = tokio::spawn(async move { shutdown.shutdown_and_wait().await });
    c.expect("421 4.3.2 Shutting down").await;
    c.expect_closed().await;
    tokio::time::timeout(REPLY_TIMEOUT, waiter)
        .await
        .expect("shutdown finishes")
        .expect("join");
}

// ---- over TCP, through `serve` ----

async fn serve(h: &Harness, role: ListenerRole) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = h.server.clone();
    h.server
        .net
        .shutdown
        .tracker
        .spawn(async move { server.serve(listener, role).await });
    address
}

#[tokio::test]
async fn serve_accepts_and_limits_connections() {
    let mut h = Harness::new().await;
    h.server.net.connections = ConnectionLimiter::new(10, 1);
    let address = serve(&h, ListenerRole::Inbound).await;
    let mut first = Client::new(TcpStream::connect(address).await.expect("connect"));
    first.expect("220 mx.test").await;
    first.command("EHLO client.example", "250-mx.test").await;
    let mut second = Client::new(TcpStream::connect(address).await.expect("connect"));
    second.expect("421 4.7.0 Too many connections").await;
    second.expect_closed().await;
    first.command("QUIT", "221").await;
    first.expect_closed().await;
    // The slot is free again once the first session is gone.
    let mut third = loop {
        let mut client = Client::new(TcpStream::connect(address).await.expect("connect"));
        if client.reply().await.starts_with("220") {
            break client;
        }
        tokio::task::yield_now().await;
    };
    third.command("NOOP", "250").await;
    h.server.net.shutdown.shutdown_and_wait().await;
}

fn test_tls() -> (TlsAcceptor, rustls::ClientConfig) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (tls_acceptor(server), client)
}

#[tokio::test]
async fn starttls_drops_pipelined_plaintext_and_resets() {
    let mut h = Harness::new().await;
    let (acceptor, client_config) = test_tls();
    h.server.net.tls = Some(acceptor);
    let address = serve(&h, ListenerRole::Submission).await;
    let mut c = Client::new(TcpStream::connect(address).await.expect("connect"));
    c.expect("220 mx.test").await;
    let reply = c.command("EHLO client.example", "250").await;
    assert!(reply.contains("250-STARTTLS\r\n"), "{reply}");
    // CVE-2011-0411: a command injected after STARTTLS in the same packet.
    c.send("STARTTLS\r\nRSET\r\n").await;
    c.expect("220 2.0.0").await;
    let tcp = c.stream.into_inner();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    let mut c = Client::new(tls);
    // Had RSET been kept, its 250 would come first. State is back to before EHLO.
    c.command("MAIL FROM:<alice@example.com>", "503 5.5.1")
        .await;
    let reply = c.command("EHLO client.example", "250").await;
    assert!(!reply.contains("STARTTLS"), "{reply}");
    assert!(reply.contains("AUTH PLAIN LOGIN"), "{reply}");
    c.command("STARTTLS", "503 5.5.1").await;
    c.login(ALICE, ALICE_PASSWORD).await;
    let message = b"From: alice@example.com\r\nSubject: over TLS\r\n\r\nhi\r\n";
    c.send_message(ALICE, ALICE, message).await;
    let text = h.first_inbox_text(ALICE).await;
    assert!(text.contains("with ESMTPSA id"), "{text}");
    h.server.net.shutdown.token.cancel();
}

// ---- Mail authentication on the inbound listener ----

/// `example.org` publishes SPF for the test peer (192.0.2.10), its DKIM key and DMARC
/// `p=reject`; the resolver is offline, so nothing else exists.
struct Signed {
    auth: Arc<crate::mailauth::InboundAuth>,
    keys: crate::mailauth::KeyRing,
    _dir: tempfile::TempDir,
}

fn signed_example_org(spf: &str, enforce: bool) -> Signed {
    use crate::mailauth::keys::{Algorithm, generate};
    use crate::mailauth::{AuthResolver, DnsConfig, InboundAuth, InboundConfig, KeyRing};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = generate(dir.path(), "example.org", "lb1", Algorithm::Rsa).expect("key");
    let mut dns = DnsConfig {
        offline: true,
        ..DnsConfig::default()
    };
    for (name, record) in [
        ("example.org".to_owned(), spf.to_owned()),
        (key.record_name(), key.record()),
        (
            "_dmarc.example.org".to_owned(),
            "v=DMARC1; p=reject".to_owned(),
        ),
    ] {
        dns.txt.insert(name, vec![record]);
    }
    dns.validate().expect("valid overrides");
    let auth = InboundAuth {
        config: InboundConfig {
            auth_checks: true,
            dmarc_enforce: enforce,
        },
        resolver: AuthResolver::new(&dns).expect("resolver"),
    };
    Signed {
        auth: Arc::new(auth),
        keys: KeyRing::from_dir(dir.path().to_owned()),
        _dir: dir,
    }
}

const EXAMPLE_ORG_MESSAGE: &str = "From: Boss <boss@example.org>\r\nTo: alice@example.com\r\nSubject: quarterly numbers\r\nMessage-ID: <1@example.org>\r\n\r\nThe numbers are in.\r\n";

/// Sends `body` over port 25 from the test peer; returns the reply to the end of DATA.
async fn send_inbound(h: &Harness, mail_from: &str, body: &[u8]) -> String {
    let mut c = h.connect(ListenerRole::Inbound, REMOTE_PEER).await;
    c.command("EHLO mail.example.org", "250").await;
    c.command(&format!("MAIL FROM:<{mail_from}>"), "250 2.1.0")
        .await;
    c.command("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    c.command("DATA", "354").await;
    c.send(dot_stuff(body)).await;
    c.reply().await
}

#[tokio::test]
async fn signed_mail_from_an_spf_host_passes_everything() {
    let signed = signed_example_org("v=spf1 ip4:192.0.2.10 -all", true);
    let mut h = Harness::new().await;
    h.server.mail_auth = Some(signed.auth.clone());
    let mut body = signed
        .keys
        .sign("example.org", EXAMPLE_ORG_MESSAGE.as_bytes())
        .into_bytes();
    // A forged verdict in our name must not survive (RFC 8601 §5); another host's stays.
    body.splice(
        0..0,
        b"Authentication-Results: mx.test; dkim=pass; spf=pass\r\nAuthentication-Results: relay.example; spf=none\r\n"
            .iter()
            .copied(),
    );
    body.extend_from_slice(EXAMPLE_ORG_MESSAGE.as_bytes());
    let reply = send_inbound(&h, "boss@example.org", &body).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    let stored = h.first_inbox_text(ALICE).await;
    assert!(
        stored.starts_with("Return-Path: <boss@example.org>\r\nAuthentication-Results: mx.test;"),
        "{stored}"
    );
    let results = stored
        .split("\r\nReceived:")
        .next()
        .expect("header")
        .to_owned();
    for expected in [
        "dkim=pass header.d=example.org header.s=lb1",
        "spf=pass",
        "smtp.mailfrom=boss@example.org",
        "dmarc=pass header.from=example.org policy.dmarc=reject",
        "arc=none",
    ] {
        assert!(results.contains(expected), "{expected:?} in {results}");
    }
    assert_eq!(
        stored.matches("Authentication-Results: mx.test").count(),
        1,
        "{stored}"
    );
    assert!(
        stored.contains("Authentication-Results: relay.example; spf=none"),
        "{stored}"
    );
}

#[tokio::test]
async fn a_broken_signature_is_dkim_fail() {
    let signed = signed_example_org("v=spf1 ip4:192.0.2.10 -all", false);
    let mut h = Harness::new().await;
    h.server.mail_auth = Some(signed.auth.clone());
    let signature = signed
        .keys
        .sign("example.org", EXAMPLE_ORG_MESSAGE.as_bytes());
    // Changed in transit after signing: the body (body hash), then a signed header
    // field (the signature itself).
    for (changed, reason) in [
        ("are in.", "body hash did not verify"),
        ("quarterly", "verification failed"),
    ] {
        let mut body = signature.clone().into_bytes();
        body.extend_from_slice(EXAMPLE_ORG_MESSAGE.replace(changed, "forged").as_bytes());
        let reply = send_inbound(&h, "boss@example.org", &body).await;
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
        let messages = h.inbox_messages(ALICE).await;
        let stored = String::from_utf8_lossy(messages.last().expect("delivered"));
        assert!(
            stored.contains(&format!("dkim=fail ({reason}) header.d=example.org")),
            "{stored}"
        );
        assert!(!stored.contains("dkim=pass"), "{stored}");
        // SPF still passes and aligns, so DMARC passes.
        assert!(stored.contains("dmarc=pass"), "{stored}");
    }
}

#[tokio::test]
async fn dmarc_reject_is_enforced_only_when_configured() {
    // The peer is not in example.org's SPF record and the message is not signed.
    let forged = "From: ceo@example.org\r\nSubject: wire transfer\r\n\r\nPay now.\r\n";
    let signed = signed_example_org("v=spf1 ip4:203.0.113.1 -all", true);
    let mut h = Harness::new().await;
    h.server.mail_auth = Some(signed.auth.clone());
    let reply = send_inbound(&h, "ceo@example.org", forged.as_bytes()).await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    assert!(h.inbox_messages(ALICE).await.is_empty());

    let annotating = signed_example_org("v=spf1 ip4:203.0.113.1 -all", false);
    h.server.mail_auth = Some(annotating.auth.clone());
    let reply = send_inbound(&h, "ceo@example.org", forged.as_bytes()).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let stored = h.first_inbox_text(ALICE).await;
    assert!(stored.contains("spf=fail"), "{stored}");
    assert!(stored.contains("dkim=none"), "{stored}");
    assert!(stored.contains("dmarc=fail"), "{stored}");
}

#[tokio::test]
async fn submission_is_not_checked() {
    let signed = signed_example_org("v=spf1 -all", true);
    let mut h = Harness::new().await;
    h.server.mail_auth = Some(signed.auth.clone());
    let mut c = h.logged_in(ListenerRole::Submission).await;
    let message = b"From: alice@example.com\r\nSubject: note\r\n\r\nhi\r\n";
    c.send_message(ALICE, ALICE, message).await;
    let stored = h.first_inbox_text(ALICE).await;
    assert!(!stored.contains("Authentication-Results"), "{stored}");
}
