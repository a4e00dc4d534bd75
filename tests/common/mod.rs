//! Test harness: runs the real `letterbox` binary on 127.0.0.1 with ports it picks
//! itself (port 0), reads the addresses it prints, and talks to it with real clients.
#![allow(dead_code)]

pub mod dovecot;
pub mod mail_snapshot;
pub mod postgres;
pub mod raw_imap;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to print `ready` (a debug build on a busy 2-core machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestServer {
    child: Option<Child>,
    pub dir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    pub config: PathBuf,
    pub addresses: HashMap<String, SocketAddr>,
    /// The first account, made and printed on first start.
    pub email: String,
    pub password: String,
    /// Every line the last launch printed before `ready` (the welcome text).
    pub output: Vec<String>,
    /// The `storage` URL when not the default SQLite file in the data directory.
    pub storage: Option<String>,
    /// The PostgreSQL database made for this server (`LETTERBOX_TEST_BACKEND=postgres`).
    _database: Option<postgres::PostgresDatabase>,
}

/// `LETTERBOX_TEST_BACKEND=postgres` runs every new installation of the integration tests
/// on a PostgreSQL database of its own instead of SQLite (`.ci/run` does so for a part of
/// the suite).
fn postgres_requested() -> bool {
    std::env::var("LETTERBOX_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

pub fn letterbox_bin() -> &'static str {
    env!("CARGO_BIN_EXE_letterbox")
}

impl TestServer {
    /// A new installation in a fresh temporary directory.
    pub fn start() -> TestServer {
        Self::start_with("")
    }

    /// A new installation with extra config lines (e.g. a `[limits]` table).
    pub fn start_with(extra_config: &str) -> TestServer {
        let server = Self::start_on(None, extra_config);
        assert!(
            !server.password.is_empty(),
            "first start printed no account"
        );
        server
    }

    /// A node on the shared storage at `storage` (a `postgres://` URL), with a data
    /// directory of its own (certificates, logs). The first node on a new database prints
    /// the first account; later ones print none (copy it with [`TestServer::same_account`]).
    pub fn start_node(storage: &str, extra_config: &str) -> TestServer {
        Self::start_on(Some(storage), extra_config)
    }

    /// Takes the first account's address and password from the node that printed them.
    pub fn same_account(mut self, first: &TestServer) -> TestServer {
        self.email = first.email.clone();
        self.password = first.password.clone();
        self
    }

    /// A new installation with a whole config file of the test's own (ports it chose,
    /// say): `config` gets the data directory to put in it.
    pub fn start_with_config(config: impl FnOnce(&Path) -> String) -> TestServer {
        Self::start_in(None, None, config)
    }

    /// Writes the config `config` makes (given the data directory) into a new temporary
    /// directory and starts the server on it.
    fn start_in(
        storage: Option<&str>,
        database: Option<postgres::PostgresDatabase>,
        config: impl FnOnce(&Path) -> String,
    ) -> TestServer {
        let tempdir = tempfile::tempdir().expect("tempdir");
        let dir = tempdir.path().to_owned();
        let config_path = dir.join("letterbox.toml");
        std::fs::write(&config_path, config(&dir.join("data"))).expect("write config");
        let mut server = TestServer {
            child: None,
            dir,
            _tempdir: Some(tempdir),
            config: config_path,
            addresses: HashMap::new(),
            email: String::new(),
            password: String::new(),
            output: Vec::new(),
            storage: storage.map(str::to_owned),
            _database: database,
        };
        server.launch();
        server
    }

    fn start_on(storage: Option<&str>, extra_config: &str) -> TestServer {
        let database = (storage.is_none() && postgres_requested()).then(|| {
            // A thread of its own: this may run inside a test's tokio runtime.
            std::thread::spawn(|| block_on(postgres::PostgresDatabase::create()))
                .join()
                .expect("create test database")
        });
        let storage = storage
            .map(str::to_owned)
            .or(database.as_ref().map(|d| d.url.clone()));
        let storage_line = storage
            .as_ref()
            .map(|url| format!("storage = \"{url}\"\n"))
            .unwrap_or_default();
        Self::start_in(storage.as_deref(), database, |data_dir| {
            format!(
                "hostname = \"localhost\"\ndata_dir = \"{}\"\n{storage_line}\n[listen]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = [\"127.0.0.1:0\"]\nsubmissions = [\"127.0.0.1:0\"]\nimap = [\"127.0.0.1:0\"]\nimaps = [\"127.0.0.1:0\"]\nhttp = [\"127.0.0.1:0\"]\nmanagesieve = [\"127.0.0.1:0\"]\n{extra_config}\n",
                data_dir.display()
            )
        })
    }

    /// The storage URL this server runs on.
    pub fn storage_url(&self) -> String {
        self.storage.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.data_dir().join("letterbox.sqlite").display()
            )
        })
    }

    /// The server process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server process (again) on the same data; ports are new.
    pub fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("log file");
        let mut child = Command::new(letterbox_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("LETTERBOX_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start letterbox");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        self.addresses.clear();
        self.output.clear();
        loop {
            let line = match received.recv_timeout(STARTUP_TIMEOUT) {
                Ok(line) => line,
                Err(_) => panic!("server did not get ready; log: {}", self.log()),
            };
            if line == "ready" {
                break;
            }
            self.output.push(line.clone());
            if let Some(rest) = line.strip_prefix("listening ") {
                let (name, address) = rest.split_once(' ').expect("listening line");
                self.addresses
                    .insert(name.to_owned(), address.parse().expect("address"));
            }
            if let Some(email) = line.trim().strip_prefix("Email address:") {
                self.email = email.trim().to_owned();
            }
            if let Some(password) = line.trim().strip_prefix("Password:") {
                self.password = password.trim().to_owned();
            }
        }
        self.child = Some(child);
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self
            .addresses
            .get(listener)
            .unwrap_or_else(|| panic!("no {listener} listener"))
    }

    pub fn port(&self, listener: &str) -> u16 {
        self.addr(listener).port()
    }

    /// Runs an admin command against the same config.
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(letterbox_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run admin command")
    }

    /// Runs an admin command that must succeed; returns its stdout.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let output = self.admin(args);
        assert!(
            output.status.success(),
            "letterbox {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs an admin command with `input` and a line end on its stdin (a password for
    /// `--password-stdin`) and the environment variables `env`.
    pub fn admin_with_input(&self, args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
        let mut child = Command::new(letterbox_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run admin command");
        use std::io::Write;
        writeln!(child.stdin.take().expect("stdin"), "{input}").expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    /// Adds an account with a known password.
    pub fn add_user(&self, email: &str, password: &str) {
        let output =
            self.admin_with_input(&["user", "add", email, "--password-stdin"], password, &[]);
        assert!(
            output.status.success(),
            "user add: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Moving a server to other storage (`letterbox migrate`, tests/migrate.rs).
impl TestServer {
    /// Points the configuration at the storage `url` (the top-level `storage` key) from
    /// the next [`TestServer::launch`] on; the data directory (certificate, DKIM keys,
    /// log) stays the same.
    pub fn set_storage(&mut self, url: &str) {
        let config = std::fs::read_to_string(&self.config).expect("read config");
        let others: String = config
            .lines()
            .filter(|line| !line.starts_with("storage = "))
            .map(|line| format!("{line}\n"))
            .collect();
        // A top-level key goes before the first table.
        std::fs::write(&self.config, format!("storage = \"{url}\"\n{others}"))
            .expect("write config");
        self.storage = Some(url.to_owned());
    }
}

/// Runs a Python 3 script (stdlib clients such as smtplib and imaplib) and returns its
/// stdout; fails the test with its stderr when it exits non-zero.
pub fn python(script: &str, args: &[&str]) -> String {
    succeeded(
        "python",
        Command::new("python3").arg("-c").arg(script).args(args),
    )
}

/// Runs mbsync (isync, from Debian) on every channel of `config`; fails the test when it
/// fails, and returns what it printed.
pub fn mbsync(config: &Path) -> String {
    succeeded(
        "mbsync (isync)",
        Command::new("mbsync").arg("-c").arg(config).arg("-a"),
    )
}

/// Runs `command` with `input` on its standard input and waits for it; what it printed
/// is in the output.
pub fn run_with_input(command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to stdin");
    child.wait_with_output().expect("wait")
}

/// Runs `command` and returns its stdout; fails the test, with what it printed, when it
/// cannot run or exits non-zero.
pub fn succeeded(what: &str, command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The code block of README.md that follows `opening` (text ending in the block's opening
/// fence), up to its closing fence.
pub fn readme_block(opening: &str) -> &'static str {
    include_str!("../../README.md")
        .split_once(opening)
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .unwrap_or_else(|| panic!("no block after {opening:?} in README.md"))
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Every message in `email`'s INBOX, in UID order, read straight from storage.
pub async fn inbox_messages(server: &TestServer, email: &str) -> Vec<Vec<u8>> {
    inbox_with_flags(server, email)
        .await
        .into_iter()
        .map(|(_, raw)| raw)
        .collect()
}

/// Waits up to `timeout` for a message in `email`'s INBOX that satisfies `matches`;
/// polls storage, which the server commits to, since a second process gets no change
/// notifications.
pub async fn wait_for_inbox(
    server: &TestServer,
    email: &str,
    timeout: Duration,
    matches: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = inbox_messages(server, email)
            .await
            .into_iter()
            .find(|m| matches(m))
        {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing for {email} arrived in time; log: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The part of a stored message after the headers letterbox prepends on delivery
/// (`Return-Path:`, `Authentication-Results:` on port 25, and `Received:`), checked to be
/// there.
pub fn strip_trace_headers(stored: &[u8]) -> &[u8] {
    assert!(
        stored.starts_with(b"Return-Path: <"),
        "no Return-Path first: {}",
        String::from_utf8_lossy(stored)
    );
    let mut rest = stored;
    let mut saw_received = false;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("header line")
            + 2;
        let is_trace = rest.starts_with(b"Return-Path:")
            || rest.starts_with(b"Authentication-Results:")
            || rest.starts_with(b"Received:");
        // Return-Path comes first, so a continuation line here continues a field we added.
        let is_continuation = rest.starts_with(b" ") || rest.starts_with(b"\t");
        if rest.starts_with(b"Received:") {
            saw_received = true;
        }
        if !(is_trace || is_continuation) {
            break;
        }
        rest = &rest[line_end..];
    }
    assert!(saw_received, "no Received header");
    rest
}

/// INBOX entries of `email` as (flags, raw bytes), in UID order, read from storage.
pub async fn inbox_with_flags(server: &TestServer, email: &str) -> Vec<(Vec<String>, Vec<u8>)> {
    let store = storage::Store::open(&server.storage_url())
        .await
        .expect("open store");
    let account = store
        .list_accounts()
        .await
        .expect("accounts")
        .into_iter()
        .find(|a| a.email == email)
        .unwrap_or_else(|| panic!("no account {email}"));
    let inbox = store.inbox(account.id).await.expect("inbox");
    let mut messages = Vec::new();
    for entry in store.mailbox_entries(inbox.id).await.expect("entries") {
        let flags = entry.flags.iter().map(str::to_owned).collect();
        messages.push((flags, store.raw_message(entry.message).await.expect("raw")));
    }
    messages
}

/// Runs a future to completion from a synchronous test.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// What every [`python_client`] script starts with: its arguments as `imaps`,
/// `smtp_port`, `user` and `password`, `ctx`, an SSL context that takes the test
/// server's certificate, `ok(result)`, which asserts that an imaplib command answered OK
/// and returns its data, `connect(cls)`, an imaplib client of class `cls` logged in
/// over IMAPS as the account, and `deliver(subject)`, which sends the account a message
/// over SMTP.
pub const PY_PRELUDE: &str = r#"
import imaplib, smtplib, ssl, sys
imaps, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data

def connect(cls=imaplib.IMAP4_SSL):
    m = cls("127.0.0.1", imaps, ssl_context=ctx)
    ok(m.login(user, password))
    return m

def deliver(subject):
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    s.sendmail("sender@example.net", [user], ("From: sender@example.net\r\nTo: " + user +
        "\r\nSubject: " + subject + "\r\n\r\nbody\r\n").encode())
    s.quit()
"#;

/// A Python `run(m, label, *args)` for an imaplib client that keeps every line it reads
/// in `m.lines`: sends the command (`args` as `_simple_command` takes them) and prints
/// `label`, the untagged lines it brought and its tagged answer without the tag, `|`
/// apart, through the script's `normal(text)` when it defines one; returns those lines.
/// A `NO` or `BAD` is printed, not raised.
pub const PY_RUN: &str = r#"
def run(m, label, *args):
    tag = (m.tagpre + str(m.tagnum).encode()).decode()
    m.lines = []
    try:
        m._simple_command(*args)
    except m.error:
        pass
    lines = [l[len(tag) + 1:] if l.startswith(tag + " ") else l for l in m.lines]
    print(label, globals().get("normal", lambda text: text)(" | ".join(lines)))
    return lines
"#;

/// A Python imaplib client class `Recording` (IMAPS) that keeps every line it reads in
/// `m.lines` for [`PY_RUN`], literals inline (`{n}\r\n` and their octets escaped with
/// `escape`). After [`PY_PRELUDE`].
pub const PY_RECORDING: &str = r#"
def escape(data):
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")

class Recording(imaplib.IMAP4_SSL):
    def _get_line(self):
        line = super()._get_line()
        if self.__dict__.get("in_literal"):
            self.lines[-1] += escape(line)
            self.in_literal = False
        else:
            self.__dict__.setdefault("lines", []).append(escape(line))
        return line
    def read(self, size):
        data = super().read(size)
        self.lines[-1] += "\\r\\n" + escape(data)
        self.in_literal = True
        return data
"#;

/// Runs a Python client script, after [`PY_PRELUDE`], against `server` with argv: IMAPS
/// port, SMTP port, the first account's address and password, then `extra`; returns its
/// stdout.
pub fn python_client(server: &TestServer, script: &str, extra: &[&str]) -> String {
    let imaps = server.port("imaps").to_string();
    let smtp = server.port("smtp").to_string();
    let mut args = vec![
        imaps.as_str(),
        smtp.as_str(),
        &server.email,
        &server.password,
    ];
    args.extend_from_slice(extra);
    python(&format!("{PY_PRELUDE}{script}"), &args)
}

/// A message from `friend@example.org` to the first account with `subject`, sent by
/// smtplib to the inbound SMTP listener, as mail from another server arrives.
pub fn mail_from_a_friend(server: &TestServer, subject: &str) {
    python(
        "import smtplib, sys
message = ('From: friend@example.org\\r\\nTo: %s\\r\\nSubject: %s\\r\\n\\r\\nHello.\\r\\n' % (sys.argv[2], sys.argv[3])).encode()
with smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=60) as s:
    s.sendmail('friend@example.org', [sys.argv[2]], message)",
        &[&server.port("smtp").to_string(), &server.email, subject],
    );
}

/// One line per mailbox: its name and the sorted `fields` headers of every message (each
/// message's on one line), read over IMAPS by imaplib as the first account.
pub fn headers_by_mailbox(server: &TestServer, mailboxes: &[&str], fields: &str) -> String {
    let mut args = vec![fields];
    args.extend_from_slice(mailboxes);
    python_client(
        server,
        "import imaplib, ssl, sys
c = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ssl._create_unverified_context())
c.login(sys.argv[3], sys.argv[4])
for box in sys.argv[6:]:
    c.select(box, readonly=True)
    typ, data = c.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (%s)])' % sys.argv[5])
    print(box, sorted(' '.join(part[1].decode().split()) for part in data if isinstance(part, tuple)))",
        &args,
    )
}

/// The first line of a client's output that starts with `label` and a space.
pub fn labelled_line(out: &str, label: &str) -> String {
    prefixed_line(out, &format!("{label} "))
}

/// What follows `label` and a space on the first line labelled `label` ([`labelled_line`]
/// without its label); fails the test when there is none.
pub fn labelled_answer<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|line| line.strip_prefix(label)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {label} in {out}"))
}

/// The first line of a client's output that starts with `prefix`; fails the test when
/// there is none.
pub fn prefixed_line(out: &str, prefix: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {out}"))
        .to_owned()
}

/// Asserts that `text` contains each of `needles`.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
}

/// What a client script printed, one answer a line, each line starting with its label.
/// Shows as the whole output, for assertion messages.
pub struct Transcript(pub String);

impl Transcript {
    /// Starts a server with one account and runs the Python `script` against it
    /// ([`python_client`], no extra arguments).
    pub fn of_script(script: &str) -> Transcript {
        let server = TestServer::start();
        Transcript(python_client(&server, script, &[]))
    }

    /// The line labelled `label` ([`labelled_line`]); fails the test when there is none.
    pub fn line(&self, label: &str) -> String {
        labelled_line(&self.0, label)
    }

    /// The line labelled `label` without its label ([`labelled_answer`]).
    pub fn answer(&self, label: &str) -> &str {
        labelled_answer(&self.0, label)
    }

    /// Asserts that each of `expected` is the whole line labelled with its first word.
    pub fn assert_lines(&self, expected: &[&str]) {
        for expected in expected {
            let label = expected.split(' ').next().unwrap_or(expected);
            assert_eq!(&self.line(label), expected, "{self}");
        }
    }
}

impl std::fmt::Display for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every item of the stream an async-imap command answers with; `what` names the
/// command in the failure.
pub async fn all<T, S, E, F>(command: F, what: &str) -> Vec<T>
where
    F: std::future::Future<Output = Result<S, E>>,
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Debug,
{
    use futures::TryStreamExt;
    command
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{what} responses: {e:?}"))
}

/// An async-imap session logged in as the first account, over plain IMAP on loopback
/// (LOGIN without TLS is allowed only from the same machine).
pub async fn async_imap_login(server: &TestServer) -> async_imap::Session<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(server.addr("imap"))
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(stream);
    client
        .read_response()
        .await
        .expect("greeting")
        .expect("greeting io");
    client
        .login(&server.email, &server.password)
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}
