//! Several letterbox nodes on one PostgreSQL (issue 6), driven by real clients: Python's
//! smtplib and imaplib against two `letterbox serve` processes sharing a database made
//! for the test (tests/common/postgres.rs).
//!
//! - a delivery through node A reaches an IDLE session on node B, and a flag set through
//!   node B reaches an IDLE session on node A (NOTIFY between nodes);
//! - 2 × 500 concurrent deliveries through both nodes into one mailbox get 1000 distinct
//!   UIDs, and MODSEQs that grow with them;
//! - `kill -9` of node A in the middle of deliveries loses no message it acknowledged;
//! - node B finishes outbound work node A had claimed, once A's lease runs out.

mod common;

use common::postgres::PostgresDatabase;
use common::{TestServer, Transcript, python};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How long a test waits for something the servers do (debug builds, busy machine).
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Inbound checks answer from no DNS (nothing here has any).
const OFFLINE_DNS: &str = "[dns]\noffline = true\n";

/// Two nodes, without DNS, on a new database (kept as long as they run) with the
/// first node's account.
fn two_nodes() -> (PostgresDatabase, TestServer, TestServer) {
    let database = common::block_on(PostgresDatabase::create());
    let (first, second) = nodes(&database, OFFLINE_DNS);
    (database, first, second)
}

fn nodes(database: &PostgresDatabase, extra: &str) -> (TestServer, TestServer) {
    let first = TestServer::start_node(&database.url, extra);
    assert!(
        !first.password.is_empty(),
        "the first node printed no account"
    );
    let second = TestServer::start_node(&database.url, extra).same_account(&first);
    (first, second)
}

/// Runs `script` after [`PYTHON_IMAP`] with `args`; returns what it printed.
fn python_imap(script: &str, args: &[&str]) -> String {
    python(&format!("{PYTHON_IMAP}{script}"), args)
}

/// Python preamble: an IMAPS login helper with the test's self-signed certificate.
const PYTHON_IMAP: &str = r#"
import imaplib, smtplib, ssl, sys, time, threading, os, signal, email

context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE

def login(port, user, password):
    imap = imaplib.IMAP4_SSL('127.0.0.1', int(port), ssl_context=context)
    imap.login(user, password)
    return imap

def subjects(imap):
    typ, data = imap.uid('FETCH', '1:*', '(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    assert typ == 'OK', (typ, data)
    found = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(item[0].split(b'UID ')[1].split()[0])
            subject = email.message_from_bytes(item[1])['Subject']
            found[uid] = subject
    return found

def start_idle(imap):
    """Sends IDLE and waits for the continuation; returns the command's tag."""
    tag = imap._new_tag()
    imap.send(tag + b' IDLE\r\n')
    line = imap.readline()
    assert line.startswith(b'+'), line
    return tag

def wait_for(imap, tag, word, timeout):
    """The first untagged line containing `word`; then ends IDLE."""
    imap.sock.settimeout(timeout)
    while True:
        line = imap.readline()
        if not line:
            raise SystemExit('connection closed while idling')
        if word in line:
            break
    imap.send(b'DONE\r\n')
    while True:
        done = imap.readline()
        if done.startswith(tag):
            assert b' OK' in done, done
            return line.decode().strip()
"#;

#[test]
fn delivery_and_flags_reach_idle_sessions_on_the_other_node() {
    let (_database, a, b) = two_nodes();
    let script = r#"
a_imaps, b_imaps, a_smtp, user, password = sys.argv[1:6]
on_b = login(b_imaps, user, password)
on_b.select('INBOX')
on_a = login(a_imaps, user, password)
on_a.select('INBOX')

tag = start_idle(on_b)
with smtplib.SMTP('127.0.0.1', int(a_smtp)) as client:
    client.sendmail('sender@example.net', [user],
        'From: sender@example.net\r\nTo: %s\r\nSubject: across nodes\r\n\r\nhello\r\n' % user)
acknowledged = time.monotonic()
line = wait_for(on_b, tag, b'EXISTS', 30)
print('b_idle', line)
print('b_idle_ms_after_250 %.1f' % ((time.monotonic() - acknowledged) * 1000))
print('b_subjects', sorted(subjects(on_b).values()))

tag = start_idle(on_a)
typ, _ = on_b.store('1', '+FLAGS', '(\\Flagged)')
stored = time.monotonic()
print('b_store', typ)
line = wait_for(on_a, tag, b'FETCH', 30)
print('a_idle', line)
print('a_idle_ms_after_store %.1f' % ((time.monotonic() - stored) * 1000))
typ, data = on_a.fetch('1', '(FLAGS)')
print('a_flags', data[0].decode())
"#;
    let a_imaps = a.port("imaps").to_string();
    let b_imaps = b.port("imaps").to_string();
    let a_smtp = a.port("smtp").to_string();
    let out = python_imap(
        script,
        &[&a_imaps, &b_imaps, &a_smtp, &a.email, &a.password],
    );
    println!("{out}");
    let line = |label: &str| common::labelled_answer(&out, label);
    assert_eq!(line("b_idle"), "* 1 EXISTS");
    assert_eq!(line("b_subjects"), "['across nodes']");
    assert_eq!(line("b_store"), "OK");
    assert!(
        line("a_idle").starts_with("* 1 FETCH (") && line("a_idle").contains("\\Flagged"),
        "{out}"
    );
    assert!(line("a_flags").contains("\\Flagged"), "{out}");
}

#[test]
fn concurrent_deliveries_through_both_nodes_get_distinct_uids() {
    let (_database, a, b) = two_nodes();
    let script = r#"
a_smtp, b_smtp, a_imaps, b_imaps, user, password = sys.argv[1:7]
PER_NODE, SESSIONS_PER_NODE = 500, 4
failures = []

def send(port, node, session):
    try:
        with smtplib.SMTP('127.0.0.1', int(port)) as client:
            for n in range(session, PER_NODE, SESSIONS_PER_NODE):
                client.sendmail('sender@example.net', [user],
                    'Subject: %s-%d\r\n\r\nbody\r\n' % (node, n))
    except Exception as error:
        failures.append(repr(error))

threads = [threading.Thread(target=send, args=(port, node, s))
           for (port, node) in ((a_smtp, 'a'), (b_smtp, 'b')) for s in range(SESSIONS_PER_NODE)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print('failures', failures)

on_a = login(a_imaps, user, password)
on_a.select('INBOX')
found = subjects(on_a)
uids = sorted(found)
print('uids', len(uids), 'distinct', len(set(uids)), 'first', uids[0], 'last', uids[-1])
print('subjects', len(set(found.values())))
typ, data = on_a.uid('FETCH', '1:*', '(MODSEQ)')
assert typ == 'OK', (typ, data)
modseqs = [(int(line.split(b'UID ')[1].split()[0]), int(line.split(b'MODSEQ (')[1].split(b')')[0]))
           for line in data]
modseqs.sort()
ascending = all(a[1] < b[1] for a, b in zip(modseqs, modseqs[1:]))
print('modseqs', len(modseqs), 'ascending_with_uid', ascending)
on_b = login(b_imaps, user, password)
typ, data = on_b.status('INBOX', '(MESSAGES UIDNEXT HIGHESTMODSEQ)')
print('b_status', data[0].decode())
"#;
    let ports = [
        a.port("smtp").to_string(),
        b.port("smtp").to_string(),
        a.port("imaps").to_string(),
        b.port("imaps").to_string(),
    ];
    let out = python_imap(
        script,
        &[
            &ports[0],
            &ports[1],
            &ports[2],
            &ports[3],
            &a.email,
            &a.password,
        ],
    );
    println!("{out}");
    Transcript(out).assert_lines(&[
        "failures []",
        "uids 1000 distinct 1000 first 1 last 1000",
        "subjects 1000",
        // RFC 7162 §3.1: every delivery took the next MODSEQ of the mailbox, in UID order
        // whichever node made it (the mailbox starts at 1).
        "modseqs 1000 ascending_with_uid True",
        "b_status \"INBOX\" (MESSAGES 1000 UIDNEXT 1001 HIGHESTMODSEQ 1001)",
    ]);
}

#[test]
fn kill_9_of_a_node_loses_no_acknowledged_message() {
    let (_database, mut a, b) = two_nodes();
    let script = r#"
a_smtp, a_pid, b_imaps, user, password = sys.argv[1:6]
KILL_AFTER = 40
acknowledged, acked = [], threading.Condition()

def send(session):
    n = 0
    try:
        with smtplib.SMTP('127.0.0.1', int(a_smtp), timeout=30) as client:
            while True:
                subject = 'k%d-%d' % (session, n)
                client.sendmail('sender@example.net', [user], 'Subject: %s\r\n\r\nbody\r\n' % subject)
                with acked:
                    acknowledged.append(subject)
                    acked.notify_all()
                n += 1
    except Exception:
        pass  # the node died under us

threads = [threading.Thread(target=send, args=(s,)) for s in range(4)]
for thread in threads: thread.start()
with acked:
    assert acked.wait_for(lambda: len(acknowledged) >= KILL_AFTER, timeout=60), len(acknowledged)
os.kill(int(a_pid), signal.SIGKILL)
for thread in threads: thread.join()

on_b = login(b_imaps, user, password)
on_b.select('INBOX')
stored = set(subjects(on_b).values())
missing = sorted(set(acknowledged) - stored)
print('acknowledged_at_least', len(acknowledged) >= KILL_AFTER, len(acknowledged))
print('stored', len(stored))
print('missing', missing)
"#;
    let a_smtp = a.port("smtp").to_string();
    let a_pid = a.pid().expect("node A runs").to_string();
    let b_imaps = b.port("imaps").to_string();
    let out = python_imap(script, &[&a_smtp, &a_pid, &b_imaps, &a.email, &a.password]);
    println!("{out}");
    a.kill9();
    let line = |label: &str| common::labelled_answer(&out, label);
    assert!(line("acknowledged_at_least").starts_with("True"), "{out}");
    assert_eq!(line("missing"), "[]");
}

/// A receiving SMTP server for the remote domain: it accepts the first connection and
/// never greets it (so the attempt that made it hangs until its node dies), and serves
/// every later one properly, reporting each message it takes.
async fn stalling_receiver() -> (
    u16,
    mpsc::UnboundedReceiver<()>,
    mpsc::UnboundedReceiver<String>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (first_tx, first) = mpsc::unbounded_channel();
    let (messages_tx, messages) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            if held.is_empty() {
                held.push(stream);
                let _ = first_tx.send(());
                continue;
            }
            let messages = messages_tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 remote.test ESMTP\r\n").await;
                let mut data = None::<String>;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            let _ = messages.send(data.take().unwrap_or_default());
                            let _ = write.write_all(b"250 2.0.0 taken\r\n").await;
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 remote.test\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 2.0.0 OK\r\n",
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    (port, first, messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_node_finishes_queued_work_once_the_dead_nodes_lease_runs_out() {
    let database = PostgresDatabase::create().await;
    let (port, mut first_connection, mut received) = stalling_receiver().await;
    let config = format!(
        "{OFFLINE_DNS}\n[outbound]\nlease_secs = 3\npoll_interval_secs = 1\n\n[outbound.static_routes]\n\"remote.test\" = \"127.0.0.1:{port}\"\n"
    );
    let mut a = tokio::task::block_in_place(|| TestServer::start_node(&database.url, &config));
    let submit = r#"
port, user, password = sys.argv[1:4]
with smtplib.SMTP('127.0.0.1', int(port)) as client:
    client.starttls(context=context)
    client.login(user, password)
    client.sendmail(user, ['someone@remote.test'],
        'From: %s\r\nTo: someone@remote.test\r\nSubject: leased work\r\n\r\nhello\r\n' % user)
print('submitted')
"#;
    let submission = a.port("submission").to_string();
    let out =
        tokio::task::block_in_place(|| python_imap(submit, &[&submission, &a.email, &a.password]));
    assert!(out.contains("submitted"), "{out}");

    // Node A claimed the item and is stuck in its attempt: kill it there.
    tokio::time::timeout(EVENT_TIMEOUT, first_connection.recv())
        .await
        .expect("node A never connected to the receiver")
        .expect("receiver");
    a.kill9();
    assert!(
        received.try_recv().is_err(),
        "delivered before node B even started"
    );

    let b = tokio::task::block_in_place(|| TestServer::start_node(&database.url, &config));
    let message = tokio::time::timeout(EVENT_TIMEOUT, received.recv())
        .await
        .expect("node B never delivered node A's item")
        .expect("receiver");
    assert!(message.contains("Subject: leased work"), "{message}");

    // Recorded as done: the queue empties, and nothing is delivered twice.
    let store = storage::Store::open(&database.url).await.expect("open");
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while store.queue_stats().await.expect("stats").items > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the item stayed queued; log: {}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(received.try_recv().is_err(), "delivered twice");
}
