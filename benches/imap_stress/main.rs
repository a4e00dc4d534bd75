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
//! What is checked is in `model.rs` (one function per response, each with its RFC);
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

mod model;
mod wire;

use clap::Parser;
use model::{Cx, Facts, Session, StoreOp, View};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinSet;
use wire::{Code, Resp, Status, Tok};

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

/// What a client does next.
#[derive(Clone, Copy, Debug)]
enum Action {
    Select,
    Examine,
    Noop,
    Check,
    Fetch,
    UidFetch,
    Store,
    Append,
    Copy,
    Move,
    Expunge,
    Search,
    Status,
    Idle,
    Close,
    Logout,
}

/// The mix in the selected state (weights).
const SELECTED_MIX: [(Action, u32); 16] = [
    (Action::Select, 25),
    (Action::Examine, 8),
    (Action::Noop, 20),
    (Action::Check, 5),
    (Action::Fetch, 30),
    (Action::UidFetch, 25),
    (Action::Store, 60),
    (Action::Append, 20),
    (Action::Copy, 15),
    (Action::Move, 20),
    (Action::Expunge, 20),
    (Action::Search, 30),
    (Action::Status, 15),
    (Action::Idle, 15),
    (Action::Close, 10),
    (Action::Logout, 2),
];
/// The mix with no mailbox selected.
const AUTHENTICATED_MIX: [(Action, u32); 6] = [
    (Action::Select, 50),
    (Action::Examine, 10),
    (Action::Status, 10),
    (Action::Append, 10),
    (Action::Noop, 5),
    (Action::Logout, 2),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Extension {
    None,
    Condstore,
    Qresync,
}

struct Client {
    id: usize,
    shared: Arc<Shared>,
    rng: StdRng,
    conn: Option<Conn>,
    session: Session,
    capabilities: Vec<String>,
    extension: Extension,
    session_id: u64,
    next_tag: u64,
    appended: u64,
    transcript: VecDeque<String>,
    before: Option<View>,
    report: Report,
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

impl Client {
    fn new(id: usize, shared: Arc<Shared>, seed: u64, extension: Extension) -> Client {
        let session = Session::new(shared.mailboxes.clone(), shared.check_recent);
        Client {
            id,
            shared,
            rng: StdRng::seed_from_u64(seed),
            conn: None,
            session,
            capabilities: Vec::new(),
            extension,
            session_id: 0,
            next_tag: 0,
            appended: 0,
            transcript: VecDeque::new(),
            before: None,
            report: Report::default(),
        }
    }

    async fn run(mut self) -> Report {
        while Instant::now() < self.shared.deadline() {
            if let Err(failure) = self.step().await {
                self.fail(failure);
            }
        }
        if self.conn.is_some()
            && let Err(failure) = self.logout().await
        {
            self.fail(failure);
        }
        self.report
    }

    fn fail(&mut self, failure: Failure) {
        *self.report.failures.entry(failure.kind).or_default() += 1;
        self.example(failure.kind, true, failure.detail);
        self.conn = None;
        self.session.deselect();
    }

    fn example(&mut self, kind: &'static str, failure: bool, detail: String) {
        if self.report.examples_of(kind, failure) >= self.shared.transcripts {
            return;
        }
        let model = self.before.as_ref().map_or_else(
            || "no mailbox selected".to_owned(),
            |v| v.describe(&self.shared.mailboxes),
        );
        self.report.examples.push(Example {
            kind,
            failure,
            client: self.id,
            session: self.session_id,
            detail,
            model,
            transcript: self.transcript.iter().cloned().collect(),
        });
    }

    fn note(&mut self, line: String) {
        if self.transcript.len() == TRANSCRIPT_LINES {
            self.transcript.pop_front();
        }
        self.transcript.push_back(line);
    }

    fn cx(&self) -> Cx {
        Cx::new(self.shared.snapshot())
    }

    fn pick<T: Copy>(&mut self, mix: &[(T, u32)]) -> T {
        let total: u32 = mix.iter().map(|(_, w)| w).sum();
        let mut n = self.rng.gen_range(0..total);
        for &(item, weight) in mix {
            if n < weight {
                return item;
            }
            n -= weight;
        }
        mix[0].0
    }

    /// Sends one command and reads its responses up to the tagged one, feeding every
    /// untagged response to the model.
    async fn run_command(
        &mut self,
        line: String,
        mut exchange: Exchange,
        cx: &mut Cx,
    ) -> Res<Done> {
        self.next_tag += 1;
        let tag = format!("c{}.{}", self.id.min(9999), self.next_tag);
        self.before = self.session.view.clone();
        let shown = exchange.shown.take().unwrap_or_else(|| line.clone());
        self.note(format!("C: {tag} {shown}"));
        let timeout = self.shared.timeout;
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::new("client_error", "no connection"));
        };
        conn.send(format!("{tag} {line}\r\n").as_bytes()).await?;
        let mut done_at: Option<tokio::time::Instant> = None;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(Failure::new("client_error", "no connection"));
            };
            let frame = match done_at {
                Some(at) => {
                    tokio::select! {
                        frame = conn.next() => frame?,
                        () = tokio::time::sleep_until(at) => {
                            done_at = None;
                            conn.send(b"DONE\r\n").await?;
                            self.note("C: DONE".into());
                            continue;
                        }
                    }
                }
                None => tokio::time::timeout(timeout, conn.next())
                    .await
                    .map_err(|_| {
                        Failure::new("no_reply", format!("no response within {timeout:?}"))
                    })??,
            };
            self.note(format!("S: {}", wire::printable(&frame)));
            let findings_before = cx.findings.len();
            let resp = match wire::parse(&frame) {
                Ok(resp) => resp,
                Err(e) => {
                    cx.findings.push(model::Finding {
                        kind: "unparsable_response",
                        detail: format!("{e}: {}", wire::printable(&frame)),
                    });
                    continue;
                }
            };
            match &resp {
                Resp::Continue => {
                    if let Some(literal) = exchange.literal.take() {
                        let conn = self
                            .conn
                            .as_mut()
                            .ok_or_else(|| Failure::new("client_error", "no connection"))?;
                        let mut bytes = literal;
                        bytes.extend_from_slice(b"\r\n");
                        conn.send(&bytes).await?;
                        self.note(format!("C: <literal of {} bytes>", bytes.len() - 2));
                    } else if let Some(idle) = exchange.idle.take() {
                        done_at = Some(tokio::time::Instant::now() + idle);
                    } else {
                        cx.findings.push(model::Finding {
                            kind: "unexpected_continuation",
                            detail: "a continuation request the command did not ask for".into(),
                        });
                    }
                }
                Resp::Status {
                    tag: Some(t),
                    status,
                    code,
                    ..
                } if *t == tag => {
                    self.session.tagged_code(code.as_ref(), cx);
                    return Ok(Done { status: *status });
                }
                Resp::Status { tag: Some(t), .. } => cx.findings.push(model::Finding {
                    kind: "unexpected_tag",
                    detail: format!("a tagged response for {t:?} while {tag:?} runs"),
                }),
                _ => self.session.untagged(&resp, cx),
            }
            for i in findings_before..cx.findings.len() {
                let kind = cx.findings[i].kind;
                self.note(format!("   ^^^ model error {kind}"));
            }
        }
    }

    /// After a command: counts it, publishes what it learned, records its findings.
    fn after(&mut self, name: &'static str, done: &Done, mut cx: Cx) {
        let counts = self.report.commands.entry(name).or_default();
        match done.status {
            Status::Ok => counts[0] += 1,
            Status::No => counts[1] += 1,
            _ => counts[2] += 1,
        }
        {
            let mut facts = self
                .shared
                .facts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (fact, learned) in facts.iter_mut().zip(&cx.learned) {
                fact.merge(learned);
            }
        }
        if !cx.recent.is_empty() {
            let mut recent = self
                .shared
                .recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &(mailbox, validity, uid) in &cx.recent {
                let first = *recent
                    .entry((mailbox, validity, uid))
                    .or_insert(self.session_id);
                if first != self.session_id {
                    // RFC 3501 §2.3.2: \Recent is shown to one session only.
                    cx.findings.push(model::Finding {
                        kind: "recent_in_two_sessions",
                        detail: format!(
                            "UID {uid} in {} shown \\Recent here and to session {first}",
                            self.shared.mailboxes[mailbox]
                        ),
                    });
                }
            }
        }
        if let Some(view) = &self.session.view {
            self.shared.sizes[view.mailbox].store(view.exists(), Ordering::Relaxed);
        }
        self.session.end_command(&cx);
        if done.status == Status::Bad {
            self.example("command_bad", true, format!("{name} answered BAD"));
        }
        for finding in std::mem::take(&mut cx.findings) {
            *self.report.findings.entry(finding.kind).or_default() += 1;
            self.example(finding.kind, false, finding.detail);
        }
    }

    /// Runs a command without special checks.
    async fn simple(&mut self, name: &'static str, line: String) -> Res<Done> {
        let mut cx = self.cx();
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        self.after(name, &done, cx);
        Ok(done)
    }

    async fn connect(&mut self) -> Res<()> {
        self.note(format!("-- client {} connects", self.id));
        self.session = Session::new(self.shared.mailboxes.clone(), self.shared.check_recent);
        self.before = None;
        let mut conn = Conn::connect(self.shared.addr).await?;
        let greeting = tokio::time::timeout(self.shared.timeout, conn.next())
            .await
            .map_err(|_| Failure::new("no_reply", "no greeting"))??;
        self.note(format!("S: {}", wire::printable(&greeting)));
        self.conn = Some(conn);
        match wire::parse(&greeting)? {
            Resp::Status {
                tag: None,
                status: Status::Ok,
                ..
            } => {}
            other => return Err(Failure::new("bad_greeting", format!("{other:?}"))),
        }
        let mut cx = self.cx();
        let line = format!(
            "LOGIN {} {}",
            quote(&self.shared.user),
            quote(&self.shared.password)
        );
        let exchange = Exchange {
            shown: Some(format!("LOGIN {} \"***\"", quote(&self.shared.user))),
            ..Exchange::default()
        };
        let done = self.run_command(line, exchange, &mut cx).await?;
        let capabilities = match cx.code("CAPABILITY") {
            Some(code) => Some(atoms(&code.args)),
            None => cx.capabilities.take(),
        };
        self.after("LOGIN", &done, cx);
        if !done.ok() {
            return Err(Failure::new("login_failed", "LOGIN was refused"));
        }
        self.session_id = self.shared.sessions.fetch_add(1, Ordering::SeqCst);
        self.report.sessions += 1;
        self.capabilities = match capabilities {
            Some(c) => c,
            None => {
                let mut cx = self.cx();
                let done = self
                    .run_command("CAPABILITY".into(), Exchange::default(), &mut cx)
                    .await?;
                let c = cx.capabilities.take().unwrap_or_default();
                self.after("CAPABILITY", &done, cx);
                c
            }
        };
        let wanted = match self.extension {
            Extension::Qresync => Some("QRESYNC"),
            Extension::Condstore => Some("CONDSTORE"),
            Extension::None => None,
        };
        if let Some(wanted) = wanted
            && self.has("ENABLE")
            && self.has(wanted)
        {
            let mut cx = self.cx();
            let done = self
                .run_command(format!("ENABLE {wanted}"), Exchange::default(), &mut cx)
                .await?;
            // RFC 7162 §3.2.3: enabling QRESYNC enables CONDSTORE too.
            if cx.enabled.iter().any(|e| e == "QRESYNC") {
                self.session.qresync = true;
                self.session.condstore = true;
            }
            if cx.enabled.iter().any(|e| e == "CONDSTORE") {
                self.session.condstore = true;
            }
            self.after("ENABLE", &done, cx);
        }
        Ok(())
    }

    fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Creates the mailboxes afresh and seeds them.
    async fn setup(&mut self) -> Res<()> {
        self.connect().await?;
        for mailbox in 0..self.shared.mailboxes.len() {
            let name = quote(&self.shared.mailboxes[mailbox]);
            self.simple("DELETE", format!("DELETE {name}")).await?;
            let done = self.simple("CREATE", format!("CREATE {name}")).await?;
            if !done.ok() {
                return Err(Failure::new("setup", format!("CREATE {name} failed")));
            }
            for _ in 0..self.shared.messages {
                let done = self.append(mailbox).await?;
                if !done.ok() {
                    return Err(Failure::new("setup", format!("APPEND to {name} failed")));
                }
            }
        }
        self.logout().await
    }

    async fn step(&mut self) -> Res<()> {
        if self.conn.is_none() {
            return self.connect().await;
        }
        let Some(view) = &self.session.view else {
            return match self.pick(&AUTHENTICATED_MIX) {
                Action::Select => self.select(None, false).await,
                Action::Examine => self.select(None, true).await,
                Action::Status => self.status().await,
                Action::Append => {
                    let mailbox = self.rng.gen_range(0..self.shared.mailboxes.len());
                    if self.shared.can_grow(mailbox) {
                        self.append(mailbox).await.map(drop)
                    } else {
                        self.simple("NOOP", "NOOP".into()).await.map(drop)
                    }
                }
                Action::Logout => self.logout().await,
                _ => self.simple("NOOP", "NOOP".into()).await.map(drop),
            };
        };
        let (mailbox, read_only, exists) = (view.mailbox, view.read_only, view.exists());
        if view.tainted {
            // The model may be wrong after a finding: start again from a fresh SELECT.
            self.note("-- the model is reset after a model error: SELECT again".into());
            return self.select(Some(mailbox), read_only).await;
        }
        if !read_only && exists > self.shared.messages * 2 && self.rng.gen_bool(0.3) {
            return self.expunge().await;
        }
        match self.pick(&SELECTED_MIX) {
            Action::Select => self.select(None, false).await,
            Action::Examine => self.select(None, true).await,
            Action::Noop => self.simple("NOOP", "NOOP".into()).await.map(drop),
            Action::Check => self.simple("CHECK", "CHECK".into()).await.map(drop),
            Action::Fetch => self.fetch().await,
            Action::UidFetch => self.uid_fetch().await,
            Action::Store if read_only && self.rng.gen_bool(0.9) => self.fetch().await,
            Action::Store => self.store().await,
            Action::Append => {
                let dest = self.rng.gen_range(0..self.shared.mailboxes.len());
                if self.shared.can_grow(dest) {
                    self.append(dest).await.map(drop)
                } else {
                    self.search().await
                }
            }
            Action::Copy => self.copy(false).await,
            Action::Move if read_only || !self.has("MOVE") => self.copy(false).await,
            Action::Move => self.copy(true).await,
            Action::Expunge if read_only => self.search().await,
            Action::Expunge => self.expunge().await,
            Action::Search => self.search().await,
            Action::Status => self.status().await,
            Action::Idle => self.idle().await,
            Action::Close => self.close().await,
            Action::Logout => self.logout().await,
        }
    }

    /// SELECT or EXAMINE (of `mailbox`, or of one chosen at random), then
    /// `FETCH 1:* (UID FLAGS)` as a client does to learn the mailbox.
    async fn select(&mut self, mailbox: Option<usize>, examine: bool) -> Res<()> {
        let mailbox = mailbox.unwrap_or_else(|| self.rng.gen_range(0..self.shared.mailboxes.len()));
        let name: &'static str = if examine { "EXAMINE" } else { "SELECT" };
        self.session.begin_select(mailbox, examine);
        let mut cx = self.cx();
        let line = format!("{name} {}", quote(&self.shared.mailboxes[mailbox]));
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        self.session.finish_select(done.ok(), &mut cx);
        self.after(name, &done, cx);
        if self.session.view.as_ref().is_some_and(|v| v.exists() > 0) {
            self.fetch_set("1:*".into()).await?;
        }
        Ok(())
    }

    async fn fetch(&mut self) -> Res<()> {
        let exists = self.session.view.as_ref().map_or(0, View::exists);
        if exists == 0 {
            return self.simple("NOOP", "NOOP".into()).await.map(drop);
        }
        let set = if self.rng.gen_bool(0.5) {
            "1:*".to_owned()
        } else {
            let a = self.rng.gen_range(1..=exists);
            let b = self.rng.gen_range(a..=exists.min(a + 5));
            format!("{a}:{b}")
        };
        self.fetch_set(set).await
    }

    async fn fetch_set(&mut self, set: String) -> Res<()> {
        let items = if self.session.condstore {
            "(UID FLAGS MODSEQ)"
        } else {
            "(UID FLAGS)"
        };
        let mut cx = self.cx();
        cx.forbid_expunge = Some("FETCH");
        cx.solicited_fetch = true;
        let done = self
            .run_command(format!("FETCH {set} {items}"), Exchange::default(), &mut cx)
            .await?;
        self.after("FETCH", &done, cx);
        Ok(())
    }

    /// Up to `max` distinct messages whose UIDs the model knows: (sequence number, UID).
    fn targets(&mut self, max: usize) -> Vec<(u32, u32)> {
        let Some(view) = &self.session.view else {
            return Vec::new();
        };
        let known: Vec<(u32, u32)> = view
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.uid.map(|u| (i as u32 + 1, u)))
            .collect();
        if known.is_empty() {
            return Vec::new();
        }
        let n = self.rng.gen_range(1..=max.min(known.len()));
        let mut picked: Vec<(u32, u32)> = Vec::with_capacity(n);
        while picked.len() < n {
            let candidate = known[self.rng.gen_range(0..known.len())];
            if !picked.contains(&candidate) {
                picked.push(candidate);
            }
        }
        picked
    }

    async fn uid_fetch(&mut self) -> Res<()> {
        let targets = self.targets(3);
        let set = match (targets.first(), self.rng.gen_range(0..4)) {
            (None, _) | (_, 0) => "1:*".to_owned(),
            (Some((_, uid)), 1) => format!("{uid}:*"),
            _ => set_of(&targets.iter().map(|t| t.1).collect::<Vec<_>>()),
        };
        let items = if self.session.condstore && self.rng.gen_bool(0.5) {
            "(FLAGS MODSEQ)"
        } else {
            "(FLAGS)"
        };
        let mut cx = self.cx();
        cx.solicited_fetch = true;
        let done = self
            .run_command(
                format!("UID FETCH {set} {items}"),
                Exchange::default(),
                &mut cx,
            )
            .await?;
        self.after("UID FETCH", &done, cx);
        Ok(())
    }

    /// 1 to `max` flags: system flags and keywords from the pool.
    fn random_flags(&mut self, min: usize, max: usize) -> Vec<String> {
        let n = self.rng.gen_range(min..=max);
        let mut flags: Vec<String> = Vec::with_capacity(n);
        for _ in 0..n {
            let flag = if self.rng.gen_bool(0.4) {
                SYSTEM_FLAGS[self.rng.gen_range(0..SYSTEM_FLAGS.len())].to_owned()
            } else {
                format!("$kw{}", self.rng.gen_range(0..self.shared.keywords))
            };
            if !flags.contains(&flag) {
                flags.push(flag);
            }
        }
        flags
    }

    async fn store(&mut self) -> Res<()> {
        let targets = self.targets(3);
        let Some(view) = &self.session.view else {
            return Ok(());
        };
        if targets.is_empty() {
            return self.fetch().await;
        }
        let (mailbox, read_only) = (view.mailbox, view.read_only);
        let op = match self.rng.gen_range(0..20) {
            0..9 => StoreOp::Add,
            9..16 => StoreOp::Remove,
            _ => StoreOp::Replace,
        };
        let flags = self.random_flags(1, 3);
        let by_uid = self.rng.gen_bool(0.5);
        let silent = self.rng.gen_bool(0.2);
        let (uids, set) = target_set(&targets, by_uid);
        let shared = self.shared.clone();
        let watch_add = shared.watch(mailbox, Change::AddFlags);
        let watch_remove = shared.watch(mailbox, Change::RemoveFlags);
        let adds = op != StoreOp::Remove;
        let removes = op != StoreOp::Add;
        let _adding = adds.then(|| shared.begin(mailbox, Change::AddFlags));
        let _removing = removes.then(|| shared.begin(mailbox, Change::RemoveFlags));
        let name: &'static str = if by_uid { "UID STORE" } else { "STORE" };
        let line = format!(
            "{name} {set} {}{} ({})",
            op.wire(),
            if silent { ".SILENT" } else { "" },
            flags.join(" ")
        );
        let mut cx = self.cx();
        if !by_uid {
            cx.forbid_expunge = Some("STORE");
        }
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        // A STORE in a mailbox opened with EXAMINE changes nothing (RFC 9051 §6.3.3), but
        // may be answered OK (Dovecot: "OK Store ignored with read-only mailbox").
        // A message another session expunged may be reported with its flags unchanged
        // (RFC 2180 §4: the server can no longer change it): only the others are checked.
        if !read_only && done.ok() && !silent {
            let others_added = shared.others(mailbox, Change::AddFlags, watch_add, u64::from(adds));
            let others_removed = shared.others(
                mailbox,
                Change::RemoveFlags,
                watch_remove,
                u64::from(removes),
            );
            let lower: Vec<String> = flags.iter().map(|f| f.to_ascii_lowercase()).collect();
            let alive = shared.not_doomed_by_others(mailbox, &uids, self.id);
            self.session
                .check_store(op, &lower, &alive, others_added, others_removed, &mut cx);
        }
        self.after(name, &done, cx);
        Ok(())
    }

    fn message(&mut self) -> Vec<u8> {
        self.appended += 1;
        format!(
            "From: Stress Tester <stress@example.com>\r\n\
             To: You <you@localhost>\r\n\
             Subject: stress {}.{}\r\n\
             Date: Mon, 1 Jun 2026 12:00:00 +0000\r\n\
             Message-ID: <{}.{}.{}@stress.example>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\r\n\
             A message of the IMAP stress run.\r\n",
            self.id.min(9999),
            self.appended,
            self.shared.run_id,
            self.id.min(9999),
            self.appended
        )
        .into_bytes()
    }

    async fn append(&mut self, mailbox: usize) -> Res<Done> {
        let flags = self.random_flags(0, 3);
        let message = self.message();
        let flag_list = if flags.is_empty() {
            String::new()
        } else {
            format!("({}) ", flags.join(" "))
        };
        let line = format!(
            "APPEND {} {flag_list}{{{}}}",
            quote(&self.shared.mailboxes[mailbox]),
            message.len()
        );
        let exchange = Exchange {
            literal: Some(message),
            ..Exchange::default()
        };
        let mut cx = self.cx();
        let done = self.run_command(line, exchange, &mut cx).await?;
        if done.ok() {
            match cx.code("APPENDUID").map(|c| c.args.clone()).as_deref() {
                Some([validity, uid]) => match (validity.number::<u32>(), uid.number::<u32>()) {
                    (Some(validity), Some(uid)) => {
                        self.session.check_new_uids(
                            "APPENDUID",
                            mailbox,
                            validity,
                            &[uid],
                            &mut cx,
                        );
                    }
                    _ => cx.findings.push(model::Finding {
                        kind: "unparsable_response",
                        detail: "[APPENDUID] without two numbers".into(),
                    }),
                },
                Some(_) => cx.findings.push(model::Finding {
                    kind: "unparsable_response",
                    detail: "[APPENDUID] without two numbers".into(),
                }),
                None if self.has("UIDPLUS") => cx.findings.push(model::Finding {
                    // RFC 4315 §3: APPENDUID in the tagged OK of APPEND.
                    kind: "append_without_appenduid",
                    detail: "APPEND's tagged OK has no [APPENDUID] though UIDPLUS is announced"
                        .into(),
                }),
                None => {}
            }
        }
        self.after("APPEND", &done, cx);
        Ok(done)
    }

    /// COPY or MOVE (by sequence number or UID) of a few messages to any mailbox.
    async fn copy(&mut self, moving: bool) -> Res<()> {
        let targets = self.targets(3);
        let Some(view) = &self.session.view else {
            return Ok(());
        };
        let mailbox = view.mailbox;
        let dest = self.rng.gen_range(0..self.shared.mailboxes.len());
        if targets.is_empty() || !self.shared.can_grow(dest) {
            return self.search().await;
        }
        let by_uid = self.rng.gen_bool(0.5);
        let (uids, set) = target_set(&targets, by_uid);
        let name: &'static str = match (moving, by_uid) {
            (false, false) => "COPY",
            (false, true) => "UID COPY",
            (true, false) => "MOVE",
            (true, true) => "UID MOVE",
        };
        let shared = self.shared.clone();
        if moving {
            shared.doom(mailbox, &uids, self.id);
        }
        let mut cx = self.cx();
        let line = format!("{name} {set} {}", quote(&self.shared.mailboxes[dest]));
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        if done.ok() {
            if let Some(code) = cx.code("COPYUID").cloned() {
                self.check_copyuid(&code, mailbox, dest, &uids, &mut cx);
            }
            if moving {
                // RFC 6851 §3.3: MOVE expunges the moved messages and says so before its
                // tagged OK; a message another client expunged first may be left alone
                // (RFC 2180 §4.4) and its expunge reported later.
                let alive = shared.not_doomed_by_others(mailbox, &uids, self.id);
                self.session.check_gone(
                    &alive,
                    "move_left_message",
                    &format!("{name} completed"),
                    &mut cx,
                );
            }
        }
        self.after(name, &done, cx);
        Ok(())
    }

    /// `[COPYUID validity source-set dest-set]` (RFC 4315 §3): the source UIDs are among
    /// those copied, one new UID for each. Copies of doomed messages are doomed too (they
    /// may carry \Deleted).
    fn check_copyuid(
        &mut self,
        code: &Code,
        source_mailbox: usize,
        dest: usize,
        requested: &[u32],
        cx: &mut Cx,
    ) {
        let parsed = match code.args.as_slice() {
            [validity, source, target] => validity.number::<u32>().zip(
                source
                    .atom()
                    .and_then(|s| wire::expand_set(s).ok())
                    .zip(target.atom().and_then(|t| wire::expand_set(t).ok())),
            ),
            _ => None,
        };
        let Some((validity, (source, target))) = parsed else {
            return cx.findings.push(model::Finding {
                kind: "unparsable_response",
                detail: "[COPYUID] that is not a UIDVALIDITY and two UID sets".into(),
            });
        };
        let strangers: Vec<u32> = source
            .iter()
            .copied()
            .filter(|u| !requested.contains(u))
            .collect();
        if !strangers.is_empty() {
            cx.findings.push(model::Finding {
                kind: "copyuid_source_not_requested",
                detail: format!(
                    "[COPYUID] names source UIDs {strangers:?}, not among {requested:?}"
                ),
            });
        }
        if source.len() != target.len() {
            cx.findings.push(model::Finding {
                kind: "copyuid_count_mismatch",
                detail: format!(
                    "[COPYUID] pairs {} source UIDs with {} new ones",
                    source.len(),
                    target.len()
                ),
            });
        }
        self.session
            .check_new_uids("COPYUID", dest, validity, &target, cx);
        if source
            .iter()
            .any(|&uid| self.shared.doomed(source_mailbox, uid))
        {
            self.shared.doom(dest, &target, COPIED);
        }
    }

    /// STORE +FLAGS.SILENT (\Deleted) on a few messages, then EXPUNGE or UID EXPUNGE.
    async fn expunge(&mut self) -> Res<()> {
        let exists = self.session.view.as_ref().map_or(0, View::exists);
        let max = if exists > self.shared.messages * 2 {
            6
        } else {
            3
        };
        let targets = self.targets(max);
        let Some(view) = &self.session.view else {
            return Ok(());
        };
        if targets.is_empty() {
            return self.fetch().await;
        }
        let mailbox = view.mailbox;
        let by_uid = self.rng.gen_bool(0.5);
        let (uids, set) = target_set(&targets, by_uid);
        let shared = self.shared.clone();
        let watch_remove = shared.watch(mailbox, Change::RemoveFlags);
        let _adding = shared.begin(mailbox, Change::AddFlags);
        shared.doom(mailbox, &uids, self.id);
        let store: &'static str = if by_uid { "UID STORE" } else { "STORE" };
        let mut cx = self.cx();
        if !by_uid {
            cx.forbid_expunge = Some("STORE");
        }
        let line = format!("{store} {set} +FLAGS.SILENT (\\Deleted)");
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        self.after(store, &done, cx);
        if !done.ok() {
            return Ok(());
        }
        let (name, line): (&'static str, String) = if by_uid && self.has("UIDPLUS") {
            ("UID EXPUNGE", format!("UID EXPUNGE {set}"))
        } else {
            ("EXPUNGE", "EXPUNGE".into())
        };
        let mut cx = self.cx();
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        if done.ok() && !shared.others(mailbox, Change::RemoveFlags, watch_remove, 0) {
            // RFC 9051 §6.4.3 (and RFC 4315 §2.1): the messages marked \Deleted are removed
            // and each removal is reported before the tagged OK.
            let alive = shared.not_doomed_by_others(mailbox, &uids, self.id);
            self.session.check_gone(
                &alive,
                "expunge_left_deleted_message",
                &format!("{name} completed after STORE +FLAGS (\\Deleted)"),
                &mut cx,
            );
        }
        self.after(name, &done, cx);
        Ok(())
    }

    async fn search(&mut self) -> Res<()> {
        let criteria = match self.rng.gen_range(0..4) {
            0 => "ALL".to_owned(),
            1 => "FLAGGED".to_owned(),
            2 => "UNSEEN".to_owned(),
            _ => format!("KEYWORD $kw{}", self.rng.gen_range(0..self.shared.keywords)),
        };
        let by_uid = self.rng.gen_bool(0.5);
        let name: &'static str = if by_uid { "UID SEARCH" } else { "SEARCH" };
        let mut cx = self.cx();
        cx.searching = Some(by_uid);
        if !by_uid {
            cx.forbid_expunge = Some("SEARCH");
        }
        let done = self
            .run_command(format!("{name} {criteria}"), Exchange::default(), &mut cx)
            .await?;
        if done.ok() {
            self.session.check_search(&mut cx);
        }
        self.after(name, &done, cx);
        Ok(())
    }

    /// STATUS of a mailbox other than the selected one.
    async fn status(&mut self) -> Res<()> {
        let count = self.shared.mailboxes.len();
        let selected = self.session.view.as_ref().map(|v| v.mailbox);
        let mut mailbox = self.rng.gen_range(0..count);
        if Some(mailbox) == selected {
            mailbox = (mailbox + 1) % count;
        }
        let items = if self.session.condstore {
            "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)"
        } else {
            "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"
        };
        let mut cx = self.cx();
        let line = format!("STATUS {} {items}", quote(&self.shared.mailboxes[mailbox]));
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        if done.ok()
            && let Some(messages) = self.session.check_status(mailbox, &mut cx)
        {
            self.shared.sizes[mailbox].store(messages as usize, Ordering::Relaxed);
        }
        self.after("STATUS", &done, cx);
        Ok(())
    }

    async fn idle(&mut self) -> Res<()> {
        if !self.has("IDLE") {
            return self.simple("NOOP", "NOOP".into()).await.map(drop);
        }
        let exchange = Exchange {
            idle: Some(Duration::from_millis(self.rng.gen_range(100..800))),
            ..Exchange::default()
        };
        let mut cx = self.cx();
        let done = self.run_command("IDLE".into(), exchange, &mut cx).await?;
        self.after("IDLE", &done, cx);
        Ok(())
    }

    /// CLOSE (which expunges what is \Deleted without reporting it, RFC 9051 §6.4.1) or
    /// UNSELECT (RFC 3691).
    async fn close(&mut self) -> Res<()> {
        let unselect = self.has("UNSELECT") && self.rng.gen_bool(0.5);
        let name: &'static str = if unselect { "UNSELECT" } else { "CLOSE" };
        let done = self.simple(name, name.into()).await?;
        if done.ok() {
            self.session.deselect();
        }
        Ok(())
    }

    async fn logout(&mut self) -> Res<()> {
        let mut cx = self.cx();
        let done = self
            .run_command("LOGOUT".into(), Exchange::default(), &mut cx)
            .await?;
        if !cx.bye {
            // RFC 9051 §6.1.3: BYE before the tagged OK of LOGOUT.
            cx.findings.push(model::Finding {
                kind: "logout_without_bye",
                detail: "LOGOUT completed without an untagged BYE".into(),
            });
        }
        self.after("LOGOUT", &done, cx);
        self.conn = None;
        self.session.deselect();
        Ok(())
    }
}

/// The UIDs of these (sequence number, UID) targets, and the set that names them in a
/// command by UID or by sequence number.
fn target_set(targets: &[(u32, u32)], by_uid: bool) -> (Vec<u32>, String) {
    let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
    let set = if by_uid {
        set_of(&uids)
    } else {
        set_of(&targets.iter().map(|t| t.0).collect::<Vec<_>>())
    };
    (uids, set)
}

fn atoms(tokens: &[Tok]) -> Vec<String> {
    tokens
        .iter()
        .filter_map(Tok::atom)
        .map(str::to_ascii_uppercase)
        .collect()
}
