//! IMAP load generator: `--clients` concurrent IMAP clients loop over one fixed mix of
//! commands on one mailbox, every command must end in a tagged OK (and its result must be the
//! expected one), and the rate is printed as
//!
//! `clients=N ops=X seconds=S ops_per_second=R iterations=.. logins=.. messages=.. client_cpu_seconds=..`
//!
//! followed by one `command=NAME count=.. mean_ms=..` line per command. Each IMAP command is
//! one operation; the TCP connect and the greeting are not, but their time is on the clock.
//!
//! Setup (not timed): APPEND `--messages` messages of about `--message-size` bytes into the
//! INBOX over one connection: realistic headers, a third of them multipart/alternative and a
//! third multipart/mixed with a base64 attachment. A mailbox that already holds exactly that
//! many messages is taken as a previous setup and reused; any other non-empty INBOX is an error.
//!
//! Timed: each client runs iterations of
//!
//! ```text
//! [connect, LOGIN]                        first iteration and every --reconnect-every
//! SELECT INBOX
//! FETCH 1:* (FLAGS UID ENVELOPE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])
//! UID FETCH u1,u2,u3 (BODY.PEEK[])        --bodies setup messages, chosen at random
//! SEARCH SUBJECT "word"                   the count must be the number of setup messages
//! SEARCH FROM "name"                        with that word / that sender
//! SEARCH UNSEEN
//! UID STORE u +FLAGS (\Seen)              a setup message, chosen at random
//! UID STORE u -FLAGS (\Seen)
//! APPEND INBOX {n}                        one message; its UID from APPENDUID (RFC 4315)
//! UID STORE new +FLAGS (\Deleted)
//! UID EXPUNGE new                         so the mailbox keeps its size
//! [LOGOUT]                                before each reconnection and at the end
//! ```
//!
//! that is 11 operations per iteration plus LOGIN and LOGOUT once per connection. The clock
//! starts before the clients connect and stops when the last client has logged out. The run
//! ends after `--duration` seconds (iterations in progress finish), or once `--ops` operations
//! are done. After the clock: the INBOX must again hold exactly `--messages` messages.
//!
//! The client is async-imap, a real client nobody here wrote; its commands go out through a
//! `BufWriter` so each is one TCP segment, as with a mail client's buffered writes (async-imap
//! writes tag, command and CRLF separately). APPEND is sent with `run_command` rather than
//! `Session::append` because the latter drops the APPENDUID response code.
//!
//! Run it with `cargo bench --bench imap_load -- --addr 127.0.0.1:2143 --user you@localhost`
//! and the password in `IMAP_PASSWORD`, or run the built binary; `benches/imap-vs-dovecot.sh`
//! runs it against letterbox and against Dovecot. Performance is measured here, never by timed
//! assertions in tests.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail, ensure};
use async_imap::imap_proto::{Response, ResponseCode, Status, UidSetMember};
use async_imap::types::Fetch;
use clap::Parser;
use futures::TryStreamExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::BufWriter;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

type Session = async_imap::Session<BufWriter<TcpStream>>;

/// What the timed FETCH of every message asks for.
const HEADER_FETCH: &str = "(FLAGS UID ENVELOPE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])";
/// One word of each setup message's subject, by `number % TOPICS.len()`; no word is part of
/// another subject or of the scratch messages' subject, so SEARCH SUBJECT counts are exact.
const TOPICS: [(&str, &str); 10] = [
    ("quarterly", "Quarterly report for the board"),
    ("invoice", "Invoice 2026-0412 is overdue"),
    ("meeting", "Meeting notes from Tuesday"),
    ("travel", "Travel plans for the conference"),
    ("build", "Build failure on main"),
    ("lunch", "Lunch on Friday?"),
    ("checklist", "Release checklist, second draft"),
    ("holiday", "Holiday schedule"),
    ("advisory", "Security advisory for the VPN"),
    ("welcome", "Welcome aboard, Jo"),
];
/// The sender of each setup message, by `number % SENDERS.len()`: (SEARCH FROM key, From).
const SENDERS: [(&str, &str); 7] = [
    ("alice", "Alice Martin <alice.martin@example.com>"),
    ("bernard", "Bernard Okafor <bernard@example.org>"),
    ("carol", "\"Carol Nguyen\" <carol.nguyen@example.net>"),
    ("dmitri", "Dmitri Volkov <dmitri@example.com>"),
    ("esperanza", "Esperanza Ruiz <e.ruiz+lists@example.org>"),
    ("fumiko", "Fumiko Tanaka <fumiko@example.jp>"),
    ("gunnar", "Gunnar Lind <gunnar.lind@example.se>"),
];
const FILLER: &str =
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.";
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[derive(Parser)]
#[command(
    about = "Drive concurrent IMAP clients over a fixed command mix and print operations per second"
)]
struct Args {
    /// The IMAP server to load (plain IMAP; LOGIN without TLS).
    #[arg(long, env = "LOAD_ADDR")]
    addr: SocketAddr,
    /// The account every client logs in to.
    #[arg(long, env = "IMAP_USER", default_value = "you@localhost")]
    user: String,
    /// Its password (better given in the environment than on the command line).
    #[arg(long, env = "IMAP_PASSWORD", hide_env_values = true)]
    password: String,
    /// Concurrent clients.
    #[arg(long, env = "CLIENTS", default_value_t = 8)]
    clients: usize,
    /// Seconds of load; ignored when --ops is given.
    #[arg(long, env = "DURATION", default_value_t = 30)]
    duration: u64,
    /// Stop once this many operations are done (instead of after --duration).
    #[arg(long, env = "OPS")]
    ops: Option<u64>,
    /// Messages in the INBOX, appended in the setup.
    #[arg(long, env = "MESSAGES", default_value_t = 200)]
    messages: usize,
    /// Approximate bytes of each message.
    #[arg(long, env = "MESSAGE_SIZE", default_value_t = 5 * 1024)]
    message_size: usize,
    /// Each client logs out and opens a new connection after this many iterations.
    #[arg(long, env = "RECONNECT_EVERY", default_value_t = 10)]
    reconnect_every: u64,
    /// Full bodies fetched by the UID FETCH of each iteration.
    #[arg(long, env = "BODIES", default_value_t = 3)]
    bodies: usize,
    /// Longest wait for any one command before giving up.
    #[arg(long, env = "LOAD_TIMEOUT_SECS", default_value_t = 60)]
    timeout_secs: u64,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The commands of the mix, in the order they are reported.
#[derive(Clone, Copy)]
enum Command {
    Login,
    Select,
    Fetch,
    UidFetch,
    Search,
    UidStore,
    Append,
    UidExpunge,
    Logout,
}

impl Command {
    const ALL: [Command; 9] = [
        Command::Login,
        Command::Select,
        Command::Fetch,
        Command::UidFetch,
        Command::Search,
        Command::UidStore,
        Command::Append,
        Command::UidExpunge,
        Command::Logout,
    ];

    fn name(self) -> &'static str {
        match self {
            Command::Login => "LOGIN",
            Command::Select => "SELECT",
            Command::Fetch => "FETCH",
            Command::UidFetch => "UID_FETCH",
            Command::Search => "SEARCH",
            Command::UidStore => "UID_STORE",
            Command::Append => "APPEND",
            Command::UidExpunge => "UID_EXPUNGE",
            Command::Logout => "LOGOUT",
        }
    }
}

/// Per-command counts and time spent waiting for the tagged reply.
#[derive(Default)]
struct Stats {
    counts: [u64; Command::ALL.len()],
    waited: [Duration; Command::ALL.len()],
    iterations: u64,
}

impl Stats {
    fn record(&mut self, command: Command, started: Instant) {
        self.counts[command as usize] += 1;
        self.waited[command as usize] += started.elapsed();
    }

    fn ops(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn add(&mut self, other: &Stats) {
        for i in 0..self.counts.len() {
            self.counts[i] += other.counts[i];
            self.waited[i] += other.waited[i];
        }
        self.iterations += other.iterations;
    }
}

/// What every client shares.
struct Load {
    addr: SocketAddr,
    user: String,
    password: String,
    timeout: Duration,
    reconnect_every: u64,
    bodies: usize,
    message_size: usize,
    messages: usize,
    /// UIDs of the setup messages: never expunged, picked for UID FETCH and UID STORE.
    base_uids: Vec<u32>,
    /// When the run ends: a deadline, or a number of operations done by all clients.
    deadline: Option<Instant>,
    ops_target: Option<u64>,
    ops_done: AtomicU64,
    /// Makes Message-IDs unique across runs and clients.
    run_id: u128,
}

impl Load {
    fn finished(&self) -> bool {
        match (self.ops_target, self.deadline) {
            (Some(target), _) => self.ops_done.load(Ordering::Relaxed) >= target,
            (None, Some(deadline)) => Instant::now() >= deadline,
            (None, None) => true,
        }
    }
}

// A single-threaded client: the server under test gets the other core of a 2-core machine.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.clients > 0, "--clients must be at least 1");
    ensure!(args.messages > 0, "--messages must be at least 1");
    ensure!(
        args.reconnect_every > 0,
        "--reconnect-every must be at least 1"
    );
    ensure!(args.bodies > 0, "--bodies must be at least 1");
    ensure!(
        args.message_size >= 1024,
        "--message-size must be at least 1024"
    );
    let timeout = Duration::from_secs(args.timeout_secs);
    let run_id = unix_time().as_nanos();

    let setup_started = Instant::now();
    let (base_uids, appended) = setup(&args, timeout, run_id).await.context("setup")?;
    eprintln!(
        "setup: INBOX holds {} messages ({appended} appended in {:.1}s)",
        base_uids.len(),
        setup_started.elapsed().as_secs_f64()
    );

    let mut load = Load {
        addr: args.addr,
        user: args.user.clone(),
        password: args.password.clone(),
        timeout,
        reconnect_every: args.reconnect_every,
        bodies: args.bodies.min(base_uids.len()),
        message_size: args.message_size,
        messages: args.messages,
        base_uids,
        deadline: None,
        ops_target: args.ops,
        ops_done: AtomicU64::new(0),
        run_id,
    };
    let cpu_before = cpu_seconds();
    let started_unix = unix_time();
    let started = Instant::now();
    if args.ops.is_none() {
        load.deadline = Some(started + Duration::from_secs(args.duration));
    }
    let load = Arc::new(load);
    let mut clients = JoinSet::new();
    for client in 0..args.clients {
        let load = load.clone();
        clients.spawn(async move {
            let result = run_client(client, &load).await;
            result.with_context(|| format!("client {client}"))
        });
    }
    let mut stats = Stats::default();
    while let Some(joined) = clients.join_next().await {
        match joined.context("client task panicked")? {
            Ok(client_stats) => stats.add(&client_stats),
            Err(error) => {
                clients.abort_all();
                return Err(error);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let finished_unix = unix_time();
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);

    // Outside the clock: the scratch messages are all gone again.
    let mut session = connect_and_login(&load).await.context("final check")?;
    let mailbox = within(timeout, session.examine("INBOX"))
        .await
        .context("final check: EXAMINE INBOX")?;
    ensure!(
        mailbox.exists as usize == load.messages,
        "after the run the INBOX holds {} messages, expected {}",
        mailbox.exists,
        load.messages
    );
    within(timeout, session.logout())
        .await
        .context("final check: LOGOUT")?;

    let ops = stats.ops();
    println!(
        "clients={} ops={ops} seconds={seconds:.3} ops_per_second={:.1} iterations={} logins={} messages={} message_bytes={} client_cpu_seconds={} started_unix={:.6} finished_unix={:.6}",
        args.clients,
        ops as f64 / seconds,
        stats.iterations,
        stats.counts[Command::Login as usize],
        load.messages,
        load.message_size,
        cpu.map_or("unknown".to_owned(), |c| format!("{c:.2}")),
        started_unix.as_secs_f64(),
        finished_unix.as_secs_f64(),
    );
    for command in Command::ALL {
        let count = stats.counts[command as usize];
        let waited = stats.waited[command as usize];
        let mean_ms = if count == 0 {
            0.0
        } else {
            waited.as_secs_f64() * 1000.0 / count as f64
        };
        println!(
            "command={} count={count} mean_ms={mean_ms:.2}",
            command.name()
        );
    }
    Ok(())
}

/// Fills the INBOX with the setup messages (or finds a previous setup's) and returns the
/// UIDs of its messages and how many were appended.
async fn setup(args: &Args, timeout: Duration, run_id: u128) -> Result<(Vec<u32>, usize)> {
    let mut session = login(args.addr, &args.user, &args.password, timeout).await?;
    let mailbox = within(timeout, session.select("INBOX"))
        .await
        .context("SELECT INBOX")?;
    let appended = match mailbox.exists as usize {
        0 => {
            for number in 0..args.messages {
                let message = setup_message(number, args.message_size, run_id);
                append(&mut session, &message, timeout)
                    .await
                    .with_context(|| format!("APPEND of setup message {number}"))?;
            }
            args.messages
        }
        n if n == args.messages => 0,
        n => bail!(
            "the INBOX holds {n} messages: it must be empty, or hold the {} of a previous setup",
            args.messages
        ),
    };
    let mut uids: Vec<u32> = within(timeout, session.uid_search("ALL"))
        .await
        .context("UID SEARCH ALL")?
        .into_iter()
        .collect();
    uids.sort_unstable();
    ensure!(
        uids.len() == args.messages,
        "UID SEARCH ALL found {} messages after the setup, expected {}",
        uids.len(),
        args.messages
    );
    within(timeout, session.logout()).await.context("LOGOUT")?;
    Ok((uids, appended))
}

/// One client: iterations until the load is finished, reconnecting every
/// `reconnect_every` iterations, and a LOGOUT at the end.
async fn run_client(client: usize, load: &Load) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut random = XorShift::new(client as u64);
    let mut session: Option<Session> = None;
    let mut iteration: u64 = 0;
    while !load.finished() {
        let ops_before = stats.ops();
        if iteration.is_multiple_of(load.reconnect_every) {
            if let Some(mut old) = session.take() {
                let t = Instant::now();
                within(load.timeout, old.logout()).await.context("LOGOUT")?;
                stats.record(Command::Logout, t);
            }
            let t = Instant::now();
            session = Some(connect_and_login(load).await?);
            stats.record(Command::Login, t);
        }
        let Some(current) = session.as_mut() else {
            unreachable!("a session was opened above on the first iteration");
        };
        iterate(current, load, client, iteration, &mut random, &mut stats)
            .await
            .with_context(|| format!("iteration {iteration}"))?;
        // Scratch messages expunged by other clients are reported to this one as it goes;
        // async-imap queues them for the application, which has no use for them here.
        while current.unsolicited_responses.try_recv().is_ok() {}
        stats.iterations += 1;
        iteration += 1;
        load.ops_done
            .fetch_add(stats.ops() - ops_before, Ordering::Relaxed);
    }
    if let Some(mut session) = session {
        let t = Instant::now();
        within(load.timeout, session.logout())
            .await
            .context("LOGOUT")?;
        stats.record(Command::Logout, t);
    }
    Ok(stats)
}

/// One iteration of the mix on a logged-in session.
async fn iterate(
    session: &mut Session,
    load: &Load,
    client: usize,
    iteration: u64,
    random: &mut XorShift,
    stats: &mut Stats,
) -> Result<()> {
    let timeout = load.timeout;
    let base = &load.base_uids;

    let t = Instant::now();
    let mailbox = within(timeout, session.select("INBOX"))
        .await
        .context("SELECT INBOX")?;
    stats.record(Command::Select, t);
    ensure!(
        mailbox.exists as usize >= load.messages,
        "SELECT INBOX: EXISTS {} but the setup left {} messages there",
        mailbox.exists,
        load.messages
    );

    let t = Instant::now();
    let fetches: Vec<Fetch> = all_within(timeout, session.fetch("1:*", HEADER_FETCH))
        .await
        .with_context(|| format!("FETCH 1:* {HEADER_FETCH}"))?;
    stats.record(Command::Fetch, t);
    // Unsolicited FETCH responses (flags changed by other clients) may come along: count only
    // the answers to this command.
    let answered = fetches
        .iter()
        .filter(|f| f.header().is_some() && f.envelope().is_some() && f.uid.is_some())
        .count();
    ensure!(
        answered >= load.messages,
        "FETCH 1:* returned headers and envelopes of {answered} messages, expected at least {}",
        load.messages
    );

    let mut wanted: Vec<u32> = (0..load.bodies)
        .map(|_| base[random.below(base.len())])
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let set = join(&wanted);
    let t = Instant::now();
    let fetches: Vec<Fetch> = all_within(timeout, session.uid_fetch(&set, "(BODY.PEEK[])"))
        .await
        .with_context(|| format!("UID FETCH {set} (BODY.PEEK[])"))?;
    stats.record(Command::UidFetch, t);
    for uid in &wanted {
        let body = fetches
            .iter()
            .filter(|f| f.uid == Some(*uid))
            .find_map(|f| f.body())
            .with_context(|| format!("UID FETCH {set} (BODY.PEEK[]): no body for UID {uid}"))?;
        ensure!(
            body.len() >= load.message_size / 2 && contains(body, b"\r\nMessage-ID: <"),
            "UID FETCH {set} (BODY.PEEK[]): UID {uid}: a body of {} bytes that is not a setup message",
            body.len()
        );
    }

    // A subject word and a sender, each the next of its table for this client; setup
    // message `n` took entry `n % len` of each, so SEARCH must find exactly that many.
    let tables: [(&str, &[(&str, &str)]); 2] = [("SUBJECT", &TOPICS), ("FROM", &SENDERS)];
    for (key, table) in tables {
        let index = (iteration as usize + client) % table.len();
        let (word, _) = table[index];
        let expected = count_of(load.messages, table.len(), index);
        let criteria = format!("{key} \"{word}\"");
        search(session, load, stats, &criteria, Some(expected)).await?;
    }
    search(session, load, stats, "UNSEEN", None).await?;

    let uid = base[random.below(base.len())];
    for change in ["+FLAGS (\\Seen)", "-FLAGS (\\Seen)"] {
        store(session, load, stats, uid, change).await?;
    }

    let message = scratch_message(load, client, iteration);
    let t = Instant::now();
    let new_uid = append(session, &message, timeout).await?;
    stats.record(Command::Append, t);
    store(session, load, stats, new_uid, "+FLAGS (\\Deleted)").await?;
    let t = Instant::now();
    let expunged: Vec<u32> = all_within(timeout, session.uid_expunge(new_uid.to_string()))
        .await
        .with_context(|| format!("UID EXPUNGE {new_uid}"))?;
    stats.record(Command::UidExpunge, t);
    // Other clients' expunges may be reported here too; ours must be among them.
    ensure!(
        !expunged.is_empty(),
        "UID EXPUNGE {new_uid}: no EXPUNGE response"
    );
    Ok(())
}

async fn search(
    session: &mut Session,
    load: &Load,
    stats: &mut Stats,
    criteria: &str,
    expected: Option<usize>,
) -> Result<()> {
    let t = Instant::now();
    let found = within(load.timeout, session.search(criteria))
        .await
        .with_context(|| format!("SEARCH {criteria}"))?;
    stats.record(Command::Search, t);
    if let Some(expected) = expected {
        ensure!(
            found.len() == expected,
            "SEARCH {criteria}: {} messages, expected {expected}",
            found.len()
        );
    }
    Ok(())
}

async fn store(
    session: &mut Session,
    load: &Load,
    stats: &mut Stats,
    uid: u32,
    change: &str,
) -> Result<()> {
    let t = Instant::now();
    let _: Vec<Fetch> = all_within(load.timeout, session.uid_store(uid.to_string(), change))
        .await
        .with_context(|| format!("UID STORE {uid} {change}"))?;
    stats.record(Command::UidStore, t);
    Ok(())
}

/// `APPEND INBOX {n}` with a synchronizing literal; returns the new message's UID from the
/// APPENDUID response code (RFC 4315 §3).
async fn append(session: &mut Session, message: &str, timeout: Duration) -> Result<u32> {
    let command = format!("APPEND INBOX {{{}}}", message.len());
    let appending = async {
        let tag = session.run_command(&command).await?;
        // RFC 9051 §7.5: the server asks for the literal with a continuation request.
        loop {
            let response = session
                .read_response()
                .await
                .context("connection closed")??;
            match response.parsed() {
                Response::Continue { .. } => break,
                Response::Done {
                    tag: done,
                    status,
                    information,
                    ..
                } if *done == tag => {
                    bail!("refused before the literal: {status:?} {information:?}")
                }
                _ => {}
            }
        }
        // Sends the literal and the CRLF that ends the command.
        session.run_command_untagged(message).await?;
        loop {
            let response = session
                .read_response()
                .await
                .context("connection closed")??;
            if let Response::Done {
                tag: done,
                status,
                code,
                information,
            } = response.parsed()
                && *done == tag
            {
                ensure!(*status == Status::Ok, "{status:?} {code:?} {information:?}");
                return match code {
                    Some(ResponseCode::AppendUid(_, uids)) => match uids.as_slice() {
                        [UidSetMember::Uid(uid)] => Ok(*uid),
                        _ => bail!("APPENDUID names {uids:?}, not one UID"),
                    },
                    _ => bail!("OK without APPENDUID (RFC 4315): {code:?} {information:?}"),
                };
            }
        }
    };
    tokio::time::timeout(timeout, appending)
        .await
        .with_context(|| format!("{command}: no reply within {timeout:?}"))?
        .with_context(|| command.clone())
}

async fn connect_and_login(load: &Load) -> Result<Session> {
    login(load.addr, &load.user, &load.password, load.timeout).await
}

/// Connects, reads the greeting and logs in (plain LOGIN, no TLS).
async fn login(addr: SocketAddr, user: &str, password: &str, timeout: Duration) -> Result<Session> {
    let connecting = async {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let mut client = async_imap::Client::new(BufWriter::new(stream));
        let greeting = client
            .read_response()
            .await
            .context("connection closed before the greeting")??;
        ensure!(
            matches!(
                greeting.parsed(),
                Response::Data {
                    status: Status::Ok,
                    ..
                }
            ),
            "greeting is not OK: {:?}",
            greeting.parsed()
        );
        client
            .login(user, password)
            .await
            .map_err(|(error, _)| error)
            .with_context(|| format!("LOGIN {user}"))
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .with_context(|| format!("connecting to {addr} and logging in timed out"))?
}

/// Awaits one async-imap call with the per-command timeout.
async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T> {
    Ok(tokio::time::timeout(timeout, call)
        .await
        .with_context(|| format!("no reply within {timeout:?}"))??)
}

/// Like [`within`], for a command answered by a stream of responses: all of them.
async fn all_within<T, S>(
    timeout: Duration,
    call: impl Future<Output = async_imap::error::Result<S>>,
) -> Result<Vec<T>>
where
    S: futures::Stream<Item = async_imap::error::Result<T>>,
{
    within(timeout, async { call.await?.try_collect().await }).await
}

/// How many of `0..messages` are `index` modulo `modulus`.
fn count_of(messages: usize, modulus: usize, index: usize) -> usize {
    messages / modulus + usize::from(index < messages % modulus)
}

fn join(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Setup message `number`: headers of a message that came in through two relays, and one of
/// three shapes (plain text; multipart/alternative text and HTML; multipart/mixed with a
/// base64 attachment), padded to about `size` bytes.
fn setup_message(number: usize, size: usize, run_id: u128) -> String {
    let (_, subject) = TOPICS[number % TOPICS.len()];
    let (_, from) = SENDERS[number % SENDERS.len()];
    let reply = number % 4 == 3;
    let day = 1 + number % 28;
    let month = MONTHS[(number / 28) % 12];
    let hour = number % 24;
    let minute = (number * 7) % 60;
    let mut m = String::with_capacity(size + 1024);
    m.push_str(&format!(
        "Return-Path: <bounces+{number}@mail.example.com>\r\n\
         Received: from mx1.example.com (mx1.example.com [192.0.2.25])\r\n\
         \tby mail.localhost with ESMTPS id {number:08x}\r\n\
         \tfor <you@localhost>; {day} {month} 2026 {hour:02}:{minute:02}:11 +0000\r\n\
         Received: from laptop.example.com (laptop.example.com [198.51.100.7])\r\n\
         \tby mx1.example.com with ESMTPSA id q{number}x\r\n\
         \t; {day} {month} 2026 {hour:02}:{minute:02}:09 +0000\r\n\
         From: {from}\r\n\
         To: You <you@localhost>\r\n"
    ));
    if number.is_multiple_of(5) {
        m.push_str("Cc: Team <team@example.com>, \"Ops, on call\" <oncall@example.com>\r\n");
    }
    m.push_str(&format!(
        "Subject: {}{subject} #{number}\r\n\
         Date: {day} {month} 2026 {hour:02}:{minute:02}:08 +0100\r\n\
         Message-ID: <{run_id}.{number}@setup.imap-load.example>\r\n",
        if reply { "Re: " } else { "" }
    ));
    if reply {
        m.push_str(&format!(
            "In-Reply-To: <{run_id}.{}@setup.imap-load.example>\r\n",
            number - 1
        ));
    }
    m.push_str("X-Mailer: imap_load 1.0\r\nMIME-Version: 1.0\r\n");
    let boundary = format!("=_imap_load_{number}_boundary");
    match number % 3 {
        0 => {
            m.push_str(
                "Content-Type: text/plain; charset=utf-8; format=flowed\r\n\
                        Content-Transfer-Encoding: 8bit\r\n\r\n",
            );
            m.push_str("Hello,\r\n\r\nCafé au lait for everyone. See below.\r\n\r\n");
            pad(&mut m, size, "");
        }
        1 => {
            m.push_str(&format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
                 This is a multi-part message in MIME format.\r\n\
                 --{boundary}\r\n\
                 Content-Type: text/plain; charset=us-ascii\r\n\r\n\
                 Hello,\r\n\r\n"
            ));
            pad(&mut m, size / 2, "");
            m.push_str(&format!(
                "\r\n--{boundary}\r\n\
                 Content-Type: text/html; charset=us-ascii\r\n\r\n\
                 <html><body><p>Hello,</p>\r\n"
            ));
            pad(&mut m, size.saturating_sub(60), "<p>");
            m.push_str(&format!("</body></html>\r\n--{boundary}--\r\n"));
        }
        _ => {
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
                 --{boundary}\r\n\
                 Content-Type: text/plain; charset=us-ascii\r\n\r\n\
                 The figures are attached.\r\n\r\n"
            ));
            pad(&mut m, size / 2, "");
            m.push_str(&format!(
                "\r\n--{boundary}\r\n\
                 Content-Type: application/pdf; name=\"figures-{number}.pdf\"\r\n\
                 Content-Disposition: attachment; filename=\"figures-{number}.pdf\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n"
            ));
            let line =
                "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURl\r\n";
            while m.len() + line.len() + boundary.len() + 8 <= size {
                m.push_str(line);
            }
            m.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    m
}

/// Appends filler lines (each starting with `prefix`) until `m` is about `size` bytes.
fn pad(m: &mut String, size: usize, prefix: &str) {
    let mut line = 0;
    while m.len() + prefix.len() + FILLER.len() + 8 <= size {
        m.push_str(&format!("{prefix}{FILLER} {line}\r\n"));
        line += 1;
    }
}

/// The message each iteration appends and expunges again; its subject and sender match
/// none of the SEARCH keys of the mix.
fn scratch_message(load: &Load, client: usize, iteration: u64) -> String {
    let mut m = format!(
        "From: Scratch Sender <scratch@imap-load.example>\r\n\
         To: You <you@localhost>\r\n\
         Subject: Scratch note {client}.{iteration}\r\n\
         Date: 1 Jun 2026 12:00:00 +0000\r\n\
         Message-ID: <{}.{client}.{iteration}@scratch.imap-load.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        load.run_id
    );
    pad(&mut m, load.message_size, "");
    m
}

/// Picks setup messages at random, the same sequence on every run for a given client.
struct XorShift(u64);

impl XorShift {
    fn new(client: u64) -> XorShift {
        XorShift(0x9E37_79B9_7F4A_7C15 ^ (client + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
    }

    /// A number in `0..n`; `n` is at least 1.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// CPU seconds (user and system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc(5), 12 and 13 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture this runs on.
    Some((utime + stime) / 100.0)
}

fn unix_time() -> Duration {
    // The clock is after 1970 on any machine this runs on; zero would only skew the
    // printed timestamps, not the measured rate.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
