//! SMTP load generator: `--sessions` concurrent persistent SMTP sessions share `--messages`
//! messages of `--message-size` bytes, every reply must be the expected one (250 for MAIL,
//! RCPT and the end of DATA, 354 for DATA), and the accepted rate is printed as
//!
//! `messages=N seconds=S messages_per_second=R sessions=.. message_bytes=.. started_unix=.. finished_unix=..`
//!
//! The clock starts once every session is connected and greeted (EHLO done) and stops at the
//! last 250. Run it with `cargo bench --bench smtp_load -- --addr 127.0.0.1:2525`, or run the
//! built binary; `benches/smtp-vs-postfix.sh` runs it against letterbox and against Postfix.
//! Performance is measured here, never by timed assertions in tests.
//!
//! Several servers (nodes sharing one store): `--addr A --addr B` (or `LOAD_ADDR=A,B`)
//! connects session i to address i mod n, all under one clock; the sessions still share
//! one message counter, so a faster server takes more messages. With more than one address
//! a line per address follows the report: `addr=A sessions=.. messages=..`.
//! `benches/smtp-nodes.sh` runs it against one and two letterbox nodes on PostgreSQL.
//!
//! With `--connection-per-message` each session opens a new connection for every message
//! (connect, EHLO, MAIL, RCPT, DATA, QUIT), as Postfix's `smtp-source` does by default and as
//! most mail arrives from the Internet; the clock then starts before the first connection.
//!
//! Each session is a lettre `AsyncSmtpConnection`, the connection type that lettre's
//! `AsyncSmtpTransport` uses underneath: our lettre dev-dependency is built without lettre's
//! `pool` feature, so the transport would open and drop a connection per message.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::Parser;
use lettre::Address;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// RFC 5321 §4.2.2: 250 Requested mail action okay, completed.
const REPLY_OK: u16 = 250;
/// RFC 5321 §4.2.2: 354 Start mail input.
const REPLY_START_MAIL_INPUT: u16 = 354;
/// RFC 5321 §4.2.2: 221 Service closing transmission channel.
const REPLY_CLOSING: u16 = 221;

#[derive(Parser)]
#[command(about = "Drive concurrent SMTP sessions and print messages accepted per second")]
struct Args {
    /// The SMTP server to load; repeat it (or separate with commas) to spread the sessions
    /// over several servers, round-robin.
    #[arg(
        long = "addr",
        env = "LOAD_ADDR",
        value_delimiter = ',',
        required = true
    )]
    addrs: Vec<SocketAddr>,
    /// Envelope recipient; repeat it (or separate with commas) to spread the messages over
    /// several recipients: message n goes to recipient n mod count, one RCPT per message.
    #[arg(
        long = "to",
        env = "LOAD_TO",
        value_delimiter = ',',
        default_value = "you@localhost"
    )]
    to: Vec<Address>,
    /// Envelope sender of every message.
    #[arg(long, env = "LOAD_FROM", default_value = "bench@example.org")]
    from: Address,
    /// Concurrent persistent SMTP sessions.
    #[arg(long, env = "SESSIONS", default_value_t = 16)]
    sessions: usize,
    /// Messages in all, shared among the sessions.
    #[arg(long, env = "MESSAGES", default_value_t = 5000)]
    messages: usize,
    /// Bytes of each message as sent after DATA (headers and body, before dot-stuffing).
    #[arg(long, env = "MESSAGE_SIZE", default_value_t = 5 * 1024)]
    message_size: usize,
    /// Longest wait for connecting, or for one whole transaction, before giving up.
    #[arg(long, env = "LOAD_TIMEOUT_SECS", default_value_t = 60)]
    timeout_secs: u64,
    /// A new connection (connect, EHLO, transaction, QUIT) for every message instead of one
    /// persistent connection per session.
    #[arg(long, env = "CONNECTION_PER_MESSAGE")]
    connection_per_message: bool,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What every session shares: the envelope, the message template and the next message number.
struct Load {
    from: Address,
    /// Never empty (clap gives the default when `--to` is absent).
    to: Vec<Address>,
    messages: usize,
    message_size: usize,
    timeout: Duration,
    /// Message numbers are handed out from here until `messages`.
    next: AtomicUsize,
    /// Makes Message-IDs unique across runs against the same mailbox.
    run_id: u128,
    /// See `Args::connection_per_message`.
    connection_per_message: bool,
}

impl Load {
    /// The recipient of message `number`: round-robin over `--to`.
    fn recipient(&self, number: usize) -> &Address {
        &self.to[number % self.to.len()]
    }
}

// A single-threaded client: the server under test gets the other core of a 2-core machine.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.sessions == 0 || args.messages == 0 {
        bail!("--sessions and --messages must be at least 1");
    }
    if args.to.is_empty() {
        bail!("--to must name at least one recipient");
    }
    if args.message_size < 512 {
        bail!("--message-size must be at least 512 (room for the headers)");
    }
    let load = Arc::new(Load {
        from: args.from,
        to: args.to,
        messages: args.messages,
        message_size: args.message_size,
        timeout: Duration::from_secs(args.timeout_secs),
        next: AtomicUsize::new(0),
        run_id: unix_time().as_nanos(),
        connection_per_message: args.connection_per_message,
    });

    // Round-robin: with n addresses, session i goes to address i mod n.
    let mut connections = Vec::with_capacity(args.sessions);
    if load.connection_per_message {
        connections.extend((0..args.sessions).map(|session| (session % args.addrs.len(), None)));
    } else {
        let mut connecting = JoinSet::new();
        for session in 0..args.sessions {
            let load = load.clone();
            let index = session % args.addrs.len();
            let addr = args.addrs[index];
            connecting.spawn(async move {
                let connection = connect(addr, load.timeout).await?;
                Ok::<_, anyhow::Error>((index, Some(connection)))
            });
        }
        while let Some(joined) = connecting.join_next().await {
            connections.push(joined.context("connect task panicked")??);
        }
    }

    let started_unix = unix_time();
    let started = Instant::now();
    let mut sessions = JoinSet::new();
    for (index, connection) in connections {
        let load = load.clone();
        let addr = args.addrs[index];
        sessions.spawn(async move {
            let (connection, count) = match connection {
                Some(connection) => {
                    let (connection, count) = run_session(connection, &load).await?;
                    (Some(connection), count)
                }
                None => (None, run_session_per_message(addr, &load).await?),
            };
            Ok::<_, anyhow::Error>((index, connection, count))
        });
    }
    let mut finished = Vec::with_capacity(args.sessions);
    let mut sent = 0;
    // Per address, indexed as `args.addrs`: (sessions, messages).
    let mut per_addr = vec![(0usize, 0usize); args.addrs.len()];
    while let Some(joined) = sessions.join_next().await {
        match joined.context("session task panicked")? {
            Ok((index, connection, count)) => {
                sent += count;
                finished.extend(connection);
                per_addr[index].0 += 1;
                per_addr[index].1 += count;
            }
            Err(error) => {
                sessions.abort_all();
                return Err(error);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let finished_unix = unix_time();
    if sent != args.messages {
        bail!("sent {sent} messages, expected {}", args.messages);
    }

    // Outside the clock: a clean end of every session.
    for mut connection in finished {
        let reply = tokio::time::timeout(load.timeout, connection.quit())
            .await
            .context("QUIT timed out")?;
        expect(reply, REPLY_CLOSING, "QUIT")?;
    }

    println!(
        "messages={sent} seconds={seconds:.3} messages_per_second={:.1} sessions={} message_bytes={} started_unix={:.6} finished_unix={:.6}",
        sent as f64 / seconds,
        args.sessions,
        args.message_size,
        started_unix.as_secs_f64(),
        finished_unix.as_secs_f64(),
    );
    if args.addrs.len() > 1 {
        for (addr, (sessions, messages)) in args.addrs.iter().zip(per_addr) {
            println!("addr={addr} sessions={sessions} messages={messages}");
        }
    }
    Ok(())
}

/// Opens a session and says EHLO.
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<AsyncSmtpConnection> {
    let connecting = async {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        // lettre writes the message and its final CRLF "." CRLF in two writes. With Nagle's
        // algorithm on, the second waits for the ACK of the first, which the server delays
        // (about 40 ms on Linux) while it waits for the rest: every message would then take
        // 40 ms whatever the server does. An MTA's client writes them together.
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let hello = ClientId::Domain("smtp-load.localhost".into());
        AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
            .await
            .with_context(|| format!("cannot open an SMTP session to {addr}"))
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .with_context(|| format!("connecting to {addr} timed out"))?
}

/// Sends messages until none are left; returns the connection (for QUIT) and the count sent.
async fn run_session(
    mut connection: AsyncSmtpConnection,
    load: &Load,
) -> Result<(AsyncSmtpConnection, usize)> {
    let mut count = 0;
    loop {
        let number = load.next.fetch_add(1, Ordering::Relaxed);
        if number >= load.messages {
            return Ok((connection, count));
        }
        let message = message(load, number);
        let to = load.recipient(number);
        tokio::time::timeout(
            load.timeout,
            transaction(&mut connection, load, to, &message),
        )
        .await
        .with_context(|| format!("message {number}: no reply within {:?}", load.timeout))?
        .with_context(|| format!("message {number}"))?;
        count += 1;
    }
}

/// Sends messages until none are left, each on its own connection that ends with QUIT;
/// returns the count sent.
async fn run_session_per_message(addr: SocketAddr, load: &Load) -> Result<usize> {
    let mut count = 0;
    loop {
        let number = load.next.fetch_add(1, Ordering::Relaxed);
        if number >= load.messages {
            return Ok(count);
        }
        let message = message(load, number);
        let whole = async {
            let mut connection = connect(addr, load.timeout).await?;
            transaction(&mut connection, load, load.recipient(number), &message).await?;
            expect(connection.quit().await, REPLY_CLOSING, "QUIT")
        };
        tokio::time::timeout(load.timeout, whole)
            .await
            .with_context(|| format!("message {number}: not done within {:?}", load.timeout))?
            .with_context(|| format!("message {number}"))?;
        count += 1;
    }
}

/// One mail transaction on an open session: MAIL, RCPT, DATA, content.
async fn transaction(
    connection: &mut AsyncSmtpConnection,
    load: &Load,
    to: &Address,
    message: &[u8],
) -> Result<()> {
    let reply = connection
        .command(Mail::new(Some(load.from.clone()), Vec::new()))
        .await;
    expect(reply, REPLY_OK, "MAIL")?;
    let reply = connection.command(Rcpt::new(to.clone(), Vec::new())).await;
    expect(reply, REPLY_OK, "RCPT")?;
    expect(
        connection.command(Data).await,
        REPLY_START_MAIL_INPUT,
        "DATA",
    )?;
    // lettre dot-stuffs the content and ends it with CRLF "." CRLF.
    expect(connection.message(message).await, REPLY_OK, "end of DATA")?;
    Ok(())
}

fn expect(
    reply: Result<Response, lettre::transport::smtp::Error>,
    want: u16,
    command: &str,
) -> Result<()> {
    let reply = reply.with_context(|| format!("{command} failed"))?;
    let code = u16::from(reply.code());
    if code != want {
        let text: Vec<&str> = reply.message().collect();
        bail!("{command}: expected {want}, got {code} {}", text.join(" "));
    }
    Ok(())
}

/// Message `number` with a unique Message-ID: ASCII text that the server receives as exactly
/// `load.message_size` bytes (its last CRLF is the start of lettre's CRLF "." CRLF).
fn message(load: &Load, number: usize) -> Vec<u8> {
    const FILLER: &[u8] =
        b"The quick brown fox jumps over the lazy dog; smtp_load filler line of text.\r\n";
    let mut text = format!(
        "From: Load Generator <{from}>\r\n\
         To: <{to}>\r\n\
         Subject: smtp_load message {number}\r\n\
         Message-ID: <{run}.{number}@smtp-load.localhost>\r\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n",
        from = load.from,
        to = load.recipient(number),
        run = load.run_id,
    )
    .into_bytes();
    while text.len() + FILLER.len() <= load.message_size {
        text.extend_from_slice(FILLER);
    }
    let rest = load.message_size.saturating_sub(text.len());
    if rest >= 2 {
        text.resize(text.len() + rest - 2, b'x');
        text.extend_from_slice(b"\r\n");
    }
    // lettre appends CRLF "." CRLF, which supplies the last line's own CRLF.
    text.truncate(text.len() - 2);
    text
}

fn unix_time() -> Duration {
    // The clock is after 1970 on any machine this runs on; zero would only skew the
    // printed timestamps, not the measured rate.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
