//! IMAP state-tracking stress client (issue 14): `--clients` sessions of one account work
//! for `--duration` seconds on three shared mailboxes with random commands, and each keeps
//! a model of its session's view (the sequence number → UID map, every message's flags,
//! FLAGS and PERMANENTFLAGS, EXISTS and RECENT, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) that
//! every untagged response updates by the RFCs' rules. A response that contradicts the
//! model is a model error, reported by kind; clients that cache state (Apple Mail,
//! Outlook, mbsync, offline Thunderbird) go wrong on exactly these.
//!
//! The commands: SELECT and EXAMINE (each followed by `FETCH 1:* (UID FLAGS)`, as a
//! client does), NOOP, CHECK, FETCH and UID FETCH of flags, STORE and UID STORE
//! (+FLAGS, -FLAGS, FLAGS, sometimes .SILENT) of system flags and keywords from a pool of
//! `--keywords` (`$kw0` ..), APPEND with flags, COPY, MOVE, UID COPY, UID MOVE to any of
//! the three mailboxes (the selected one too), STORE \Deleted then EXPUNGE or UID EXPUNGE,
//! SEARCH and UID SEARCH (ALL, FLAGGED, UNSEEN, KEYWORD), STATUS of another mailbox, IDLE
//! for a moment then DONE, CLOSE or UNSELECT, and now and then LOGOUT and a new login.
//! Clients 0, 5, 10, .. ENABLE QRESYNC and clients 1, 6, 11, .. ENABLE CONDSTORE when the
//! server announces them; the others enable nothing.
//!
//! What is checked is in `model/` (one function per response, each with its RFC);
//! checks that a concurrent change by another session could defeat (the flags a STORE
//! reports, messages left after MOVE or EXPUNGE) run only when no other client changed
//! the same kind of state in that mailbox while the command was in flight, which this
//! process knows because it runs all the clients. \Recent shown to two sessions is
//! checked with `--check-recent` only.
//!
//! The client speaks raw IMAP over TCP (async-imap hides untagged responses it does not
//! expect), one command at a time per connection. Printed on stdout:
//!
//! ```text
//! server=NAME clients=10 seconds=60.0 sessions=.. commands=.. model_errors=.. failures=..
//! command=APPEND count=.. no=.. bad=..          one line per command name
//! model_error=KIND count=..                      one line per kind
//! failure=KIND count=..                          I/O errors, timeouts, failed logins
//! ```
//!
//! and on stderr the first `--transcripts` examples of each kind: the model before the
//! command and the last lines of the session's transcript, so a developer can replay it.
//! `benches/imap-stress.sh` runs it against letterbox and against Dovecot.
#![forbid(unsafe_code)]

mod client;
mod model;
mod wire;

use clap::Parser;
use client::{Client, Extension};
use model::Facts;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinSet;
use wire::Status;

/// Lines of transcript kept per session for the examples: the failing command and a few
/// before it (an IDLE or a FETCH 1:* alone can take a hundred).
const TRANSCRIPT_LINES: usize = 400;
/// The registrant of a message copied from a doomed one: doomed for every client.
const COPIED: usize = usize::MAX;
/// A mailbox takes no more APPENDs, COPYs or MOVEs once it holds this many times
/// `--messages`: EXPUNGE and MOVE keep the mailboxes from growing without end.
const GROWTH_FACTOR: usize = 3;
/// System flags a STORE or APPEND picks from (\Deleted only goes with EXPUNGE; \Recent
/// cannot be stored, RFC 9051 §2.3.2).
const SYSTEM_FLAGS: [&str; 4] = ["\\Seen", "\\Answered", "\\Flagged", "\\Draft"];

#[derive(Parser)]
#[command(
    about = "Drive IMAP sessions with random commands and check every response against a model of each session's view"
)]
struct Args {
    /// The IMAP server (plain IMAP; LOGIN without TLS).
    #[arg(long, env = "STRESS_ADDR")]
    addr: SocketAddr,
    /// The account every client logs in to.
    #[arg(long, env = "IMAP_USER", default_value = "you@localhost")]
    user: String,
    /// Its password (better given in the environment than on the command line).
    #[arg(long, env = "IMAP_PASSWORD", hide_env_values = true)]
    password: String,
    /// The server's name in the report.
    #[arg(long, default_value = "server")]
    name: String,
    /// Concurrent clients.
    #[arg(long, env = "CLIENTS", default_value_t = 10)]
    clients: usize,
    /// Seconds of commands.
    #[arg(long, env = "DURATION", default_value_t = 60)]
    duration: u64,
    /// Messages APPENDed to each mailbox at setup.
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// Keywords `$kw0` .. in the pool STORE and APPEND pick from. Dovecot's Maildir keeps
    /// at most 26 keywords per mailbox.
    #[arg(long, default_value_t = 20)]
    keywords: usize,
    /// The three mailboxes are PREFIX-a, PREFIX-b, PREFIX-c, deleted and created afresh.
    #[arg(long, default_value = "stress")]
    mailbox_prefix: String,
    /// Also report \Recent shown to two sessions, and a SELECT without RECENT.
    #[arg(long)]
    check_recent: bool,
    /// Seeds each client's random choices (client i gets seed + i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Examples printed per kind of model error or failure.
    #[arg(long, default_value_t = 2)]
    transcripts: usize,
    /// Longest wait for any one response before the session is dropped.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Kinds of change another session may make to a mailbox's flags while a command is in
/// flight (expunges are told apart by `Shared::doomed`).
#[derive(Clone, Copy)]
enum Change {
    AddFlags,
    RemoveFlags,
}

#[derive(Default)]
struct Activity {
    started: AtomicU64,
    running: AtomicU64,
}

/// What was going on when a command was sent.
#[derive(Clone, Copy)]
struct Watch {
    started: u64,
    busy: bool,
}

/// Counts one change as running until dropped.
struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What all clients share.
struct Shared {
    addr: SocketAddr,
    user: String,
    password: String,
    mailboxes: Vec<String>,
    messages: usize,
    keywords: usize,
    check_recent: bool,
    transcripts: usize,
    timeout: Duration,
    deadline: Mutex<Instant>,
    facts: Mutex<Vec<Facts>>,
    activity: Vec<[Activity; 2]>,
    /// Messages in each mailbox as last seen by any client.
    sizes: Vec<AtomicUsize>,
    /// (mailbox, UID) → the clients that may have it expunged: it was marked \Deleted or
    /// moved by them (registered before the command is sent), or copied from such a
    /// message (`COPIED`). A message can only leave a mailbox this way, so a message not
    /// doomed by another client is certainly not expunged behind this client's back.
    doomed: Mutex<HashMap<(usize, u32), Vec<usize>>>,
    /// (mailbox, UIDVALIDITY, UID) → the session that saw it \Recent first.
    recent: Mutex<HashMap<(usize, u32, u32), u64>>,
    sessions: AtomicU64,
    run_id: u128,
}

impl Shared {
    fn snapshot(&self) -> Vec<Facts> {
        self.facts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn activity(&self, mailbox: usize, change: Change) -> &Activity {
        &self.activity[mailbox][change as usize]
    }

    fn watch(&self, mailbox: usize, change: Change) -> Watch {
        let a = self.activity(mailbox, change);
        Watch {
            started: a.started.load(Ordering::SeqCst),
            busy: a.running.load(Ordering::SeqCst) > 0,
        }
    }

    fn begin(&self, mailbox: usize, change: Change) -> Busy<'_> {
        let a = self.activity(mailbox, change);
        a.running.fetch_add(1, Ordering::SeqCst);
        a.started.fetch_add(1, Ordering::SeqCst);
        Busy(a)
    }

    /// Did another client make this kind of change since `watch` (`own` of them ours)?
    fn others(&self, mailbox: usize, change: Change, watch: Watch, own: u64) -> bool {
        let started = self
            .activity(mailbox, change)
            .started
            .load(Ordering::SeqCst);
        watch.busy || started - watch.started > own
    }

    fn doom(&self, mailbox: usize, uids: &[u32], client: usize) {
        let mut doomed = self.doomed.lock().unwrap_or_else(PoisonError::into_inner);
        for &uid in uids {
            let who = doomed.entry((mailbox, uid)).or_default();
            if !who.contains(&client) {
                who.push(client);
            }
        }
    }

    fn doomed(&self, mailbox: usize, uid: u32) -> bool {
        let doomed = self.doomed.lock().unwrap_or_else(PoisonError::into_inner);
        doomed.contains_key(&(mailbox, uid))
    }

    /// These UIDs less those another client may have expunged meanwhile.
    fn not_doomed_by_others(&self, mailbox: usize, uids: &[u32], client: usize) -> Vec<u32> {
        let doomed = self.doomed.lock().unwrap_or_else(PoisonError::into_inner);
        uids.iter()
            .copied()
            .filter(|&uid| {
                doomed
                    .get(&(mailbox, uid))
                    .is_none_or(|who| who.iter().all(|&c| c == client))
            })
            .collect()
    }

    fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn can_grow(&self, mailbox: usize) -> bool {
        self.sizes[mailbox].load(Ordering::Relaxed) < self.messages * GROWTH_FACTOR
    }
}

/// Why a session was given up: it is dropped and the client connects again.
#[derive(Debug)]
struct Failure {
    kind: &'static str,
    detail: String,
}

impl Failure {
    fn new(kind: &'static str, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new("io_error", e.to_string())
    }
}

impl From<wire::WireError> for Failure {
    fn from(e: wire::WireError) -> Failure {
        Failure::new("unframable_response", e.0)
    }
}

type Res<T> = Result<T, Failure>;

/// One connection: responses are cut out of `buf` whole, so `next` can be cancelled
/// (IDLE waits on it and on a timer) without losing bytes.
struct Conn {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Res<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Conn {
            reader,
            writer,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    async fn next(&mut self) -> Res<Vec<u8>> {
        loop {
            if let Some(len) = wire::frame_len(&self.buf)? {
                return Ok(self.buf.drain(..len).collect());
            }
            self.buf.reserve(16 * 1024);
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return Err(Failure::new(
                    "connection_closed",
                    "the server closed the connection",
                ));
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Res<()> {
        self.writer.write_all(bytes).await?;
        Ok(())
    }
}

/// The tagged response.
struct Done {
    status: Status,
}

impl Done {
    fn ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// What a command sends beyond its line.
#[derive(Default)]
struct Exchange {
    /// Sent (with the CRLF that ends the command) after the continuation request.
    literal: Option<Vec<u8>>,
    /// IDLE: DONE this long after the continuation request.
    idle: Option<Duration>,
    /// The line as the transcript shows it (LOGIN hides the password).
    shown: Option<String>,
}

struct Example {
    kind: &'static str,
    failure: bool,
    client: usize,
    session: u64,
    detail: String,
    model: String,
    transcript: Vec<String>,
}

#[derive(Default)]
struct Report {
    /// Per command name: OK, NO, BAD.
    commands: BTreeMap<&'static str, [u64; 3]>,
    findings: BTreeMap<&'static str, u64>,
    failures: BTreeMap<&'static str, u64>,
    examples: Vec<Example>,
    sessions: u64,
}

impl Report {
    fn merge(&mut self, other: Report) {
        for (name, counts) in other.commands {
            let mine = self.commands.entry(name).or_default();
            for i in 0..3 {
                mine[i] += counts[i];
            }
        }
        for (kind, n) in other.findings {
            *self.findings.entry(kind).or_default() += n;
        }
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        self.examples.extend(other.examples);
        self.sessions += other.sessions;
    }

    fn examples_of(&self, kind: &str, failure: bool) -> usize {
        self.examples
            .iter()
            .filter(|e| e.kind == kind && e.failure == failure)
            .count()
    }
}

// A single-threaded client: the server under test gets the other core of a 2-core machine.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    if args.clients == 0 || args.messages == 0 || args.keywords == 0 {
        eprintln!("--clients, --messages and --keywords must be at least 1");
        std::process::exit(2);
    }
    let mailboxes: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|s| format!("{}-{s}", args.mailbox_prefix))
        .collect();
    let count = mailboxes.len();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let shared = Arc::new(Shared {
        addr: args.addr,
        user: args.user.clone(),
        password: args.password.clone(),
        mailboxes,
        messages: args.messages,
        keywords: args.keywords,
        check_recent: args.check_recent,
        transcripts: args.transcripts,
        timeout: Duration::from_secs(args.timeout_secs),
        deadline: Mutex::new(Instant::now()),
        facts: Mutex::new(vec![Facts::default(); count]),
        activity: (0..count).map(|_| Default::default()).collect(),
        sizes: (0..count)
            .map(|_| AtomicUsize::new(args.messages))
            .collect(),
        doomed: Mutex::new(HashMap::new()),
        recent: Mutex::new(HashMap::new()),
        sessions: AtomicU64::new(0),
        run_id,
    });

    let mut report = Report::default();
    let mut setup = Client::new(usize::MAX, shared.clone(), args.seed, Extension::None);
    if let Err(failure) = setup.setup().await {
        eprintln!("setup failed: {}: {}", failure.kind, failure.detail);
        for line in &setup.transcript {
            eprintln!("  {line}");
        }
        std::process::exit(1);
    }
    report.merge(setup.report);

    let started = Instant::now();
    *shared
        .deadline
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = started + Duration::from_secs(args.duration);
    let mut clients = JoinSet::new();
    for id in 0..args.clients {
        let extension = match id % 5 {
            0 => Extension::Qresync,
            1 => Extension::Condstore,
            _ => Extension::None,
        };
        let client = Client::new(
            id,
            shared.clone(),
            args.seed.wrapping_add(id as u64),
            extension,
        );
        clients.spawn(client.run());
    }
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok(client_report) => report.merge(client_report),
            Err(e) => {
                eprintln!("a client task failed: {e}");
                std::process::exit(1);
            }
        }
    }
    print_report(&args, &report, started.elapsed());
}

fn print_report(args: &Args, report: &Report, elapsed: Duration) {
    let commands: u64 = report.commands.values().flatten().sum();
    let findings: u64 = report.findings.values().sum();
    let failures: u64 = report.failures.values().sum();
    println!(
        "server={} clients={} seconds={:.1} sessions={} commands={commands} model_errors={findings} failures={failures}",
        args.name,
        args.clients,
        elapsed.as_secs_f64(),
        report.sessions,
    );
    for (name, [ok, no, bad]) in &report.commands {
        println!(
            "command={} count={} no={no} bad={bad}",
            name.replace(' ', "_"),
            ok + no + bad
        );
    }
    for (kind, n) in &report.findings {
        println!("model_error={kind} count={n}");
    }
    for (kind, n) in &report.failures {
        println!("failure={kind} count={n}");
    }
    let mut shown: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for e in &report.examples {
        let n = shown.entry((e.kind, e.failure)).or_default();
        if *n >= args.transcripts {
            continue;
        }
        *n += 1;
        eprintln!(
            "\n=== {} {} on {} (client {}, session {}): {}",
            if e.failure { "failure" } else { "model error" },
            e.kind,
            args.name,
            e.client,
            e.session,
            e.detail
        );
        eprintln!("model before the command:\n  {}", e.model);
        eprintln!("transcript (last lines):");
        for line in &e.transcript {
            eprintln!("  {line}");
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `1,3,5`, sorted.
fn set_of(numbers: &[u32]) -> String {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
