//! Session-level tests: a real server on 127.0.0.1:0 over a real store, driven with raw
//! IMAP, asserting the exact lines the server sends.

use crate::{ImapConfig, ImapServer, ListenerRole};
use netutil::{AuthThrottle, ConnectionLimiter, ListenerShared, Shutdown};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use storage::{Delivery, Flags, MailboxId, Store};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Domains and accounts made the same way in every test crate.
#[path = "../../tests/common/accounts.rs"]
mod accounts;

const EMAIL: &str = "alice@example.org";
const PASSWORD: &str = "correct horse";
/// A fixed INTERNALDATE: 2024-03-01 12:00:00 UTC.
const INTERNAL_DATE: i64 = 1_709_294_400;
/// No test waits longer than this for a line: it catches a server that never answers,
/// and is no measure of speed. 10 s was too short for a debug build's argon2id LOGIN on
/// a machine running four builds at once (load average 11: four tests failed there).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

struct Harness {
    _dir: TempDir,
    store: Store,
    addr: SocketAddr,
    shutdown: Shutdown,
    inbox: MailboxId,
}

impl Harness {
    async fn start() -> Harness {
        Self::start_with(ImapConfig::default()).await
    }

    async fn start_with(config: ImapConfig) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let store = Store::open(path.to_str().expect("utf-8 path"))
            .await
            .expect("open store");
        accounts::add_domain(&store, "example.org").await;
        let account = accounts::add_account(&store, EMAIL, PASSWORD).await;
        let inbox = store.inbox(account).await.expect("inbox").id;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let server = server_without_tls(
            config,
            store.clone(),
            ConnectionLimiter::new(100, 50),
            shutdown.clone(),
        );
        tokio::spawn(async move { server.serve(listener, ListenerRole::Imap).await });
        Harness {
            _dir: dir,
            store,
            addr,
            shutdown,
            inbox,
        }
    }

    async fn deliver(&self, subject: &str) {
        self.deliver_from("Bob <bob@example.net>", subject).await;
    }

    async fn deliver_from(&self, from: &str, subject: &str) {
        let raw = format!(
            "From: {from}\r\nTo: alice@example.org\r\nSubject: {subject}\r\nDate: Fri, 1 Mar 2024 10:00:00 +0000\r\nMessage-ID: <{subject}@example.net>\r\n\r\nHello {subject}\r\n"
        );
        self.store
            .deliver(Delivery {
                raw: raw.into_bytes(),
                mailboxes: vec![self.inbox],
                flags: Flags::default(),
                internal_date: Some(INTERNAL_DATE),
                outbound: None,
            })
            .await
            .expect("deliver");
    }

    async fn uid_validity(&self) -> u32 {
        self.store
            .mailbox(self.inbox)
            .await
            .expect("mailbox")
            .uid_validity
            .0
    }

    async fn connect(&self) -> Client {
        let (client, greeting) = Client::connect(self.addr).await;
        assert!(
            greeting.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=PLAIN "),
            "{greeting}"
        );
        client
    }

    async fn logged_in(&self) -> Client {
        let mut client = self.connect().await;
        let lines = client
            .run("l", &format!("LOGIN {EMAIL} \"{PASSWORD}\""))
            .await;
        assert!(
            lines
                .last()
                .is_some_and(|l| l.starts_with("l OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR")),
            "{lines:?}"
        );
        client
    }
}

/// A server over `store` without a certificate, ten failed logins a minute allowed.
fn server_without_tls(
    config: ImapConfig,
    store: Store,
    connections: ConnectionLimiter,
    shutdown: Shutdown,
) -> ImapServer {
    ImapServer {
        config: Arc::new(config),
        store,
        net: ListenerShared {
            tls: None,
            connections,
            auth_throttle: AuthThrottle::new(10, Duration::from_secs(60), Duration::ZERO),
            shutdown,
        },
    }
}

struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// A client connected to `addr`, and the greeting the server sent it.
    async fn connect(addr: SocketAddr) -> (Client, String) {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (read, write) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(read),
            writer: write,
        };
        let greeting = client.line().await;
        (client, greeting)
    }

    async fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).await.expect("write");
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> String {
        let mut line = String::new();
        let read = tokio::time::timeout(READ_TIMEOUT, self.reader.read_line(&mut line))
            .await
            .expect("server answered in time")
            .expect("read");
        assert!(read > 0, "connection closed");
        line.trim_end_matches("\r\n").to_owned()
    }

    /// Lines up to and including the tagged completion.
    async fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    async fn run(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}\r\n")).await;
        self.until_tagged(tag).await
    }

    /// Runs each `(tag, command)` in turn and checks it is answered with exactly the
    /// lines given.
    async fn dialogue(&mut self, steps: &[(&str, &str, &[&str])]) {
        for (tag, command, expected) in steps {
            assert_eq!(self.run(tag, command).await, lines(expected), "{command}");
        }
    }

    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(READ_TIMEOUT, self.reader.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|l| (*l).to_owned()).collect()
}

#[tokio::test]
async fn capability_login_and_logout() {
    let h = Harness::start().await;
    let mut c = h.connect().await;
    let caps = c.run("a", "CAPABILITY").await;
    assert_eq!(caps.len(), 2);
    assert!(
        caps[0].starts_with("* CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=PLAIN SASL-IR LITERAL+ "),
        "{caps:?}"
    );
    assert!(
        caps[0].contains(" IDLE ")
            && caps[0].contains(" UIDPLUS ")
            && caps[0].ends_with("APPENDLIMIT=52428800")
    );
    assert!(!caps[0].contains("STARTTLS"), "no TLS configured");
    assert_eq!(caps[1], "a OK CAPABILITY completed");
    c.dialogue(&[
        ("b", "SELECT INBOX", &["b BAD Log in first"]),
        (
            "c",
            "LOGIN alice@example.org wrong",
            &["c NO [AUTHENTICATIONFAILED] Invalid credentials"],
        ),
    ])
    .await;
    // A synchronising literal gets a continuation.
    c.send("d LOGIN {17}\r\n").await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send(&format!("{EMAIL} \"{PASSWORD}\"\r\n")).await;
    let login = c.until_tagged("d").await;
    assert!(
        login[0].starts_with("d OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ENABLE IDLE"),
        "{login:?}"
    );
    assert!(!login[0].contains("AUTH=PLAIN"));
    c.dialogue(&[
        ("e", "LOGIN a b", &["e BAD Already authenticated"]),
        (
            "f",
            "LOGOUT",
            &["* BYE Logging out", "f OK LOGOUT completed"],
        ),
    ])
    .await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn authenticate_plain_with_and_without_initial_response() {
    let h = Harness::start().await;
    let plain = crate::proto::base64::encode(format!("\0{EMAIL}\0{PASSWORD}").as_bytes());
    let mut c = h.connect().await;
    let ok = c.run("a", &format!("AUTHENTICATE PLAIN {plain}")).await;
    assert!(ok[0].starts_with("a OK [CAPABILITY "), "{ok:?}");
    let mut c = h.connect().await;
    c.send("b AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(&format!("{plain}\r\n")).await;
    assert!(c.until_tagged("b").await[0].starts_with("b OK [CAPABILITY "));
    let mut c = h.connect().await;
    c.send("c AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send("*\r\n").await;
    assert_eq!(
        c.until_tagged("c").await,
        lines(&["c BAD Authentication cancelled"])
    );
    let wrong = crate::proto::base64::encode(format!("\0{EMAIL}\0nope").as_bytes());
    assert_eq!(
        c.run("d", &format!("AUTHENTICATE PLAIN {wrong}")).await,
        lines(&["d NO [AUTHENTICATIONFAILED] Invalid credentials"])
    );
}

#[tokio::test]
async fn three_failed_logins_close_the_connection() {
    let h = Harness::start().await;
    let mut c = h.connect().await;
    for tag in ["a", "b"] {
        c.run(tag, "LOGIN alice@example.org wrong").await;
    }
    assert_eq!(
        c.run("c", "LOGIN alice@example.org wrong").await,
        lines(&["c NO [AUTHENTICATIONFAILED] Invalid credentials"])
    );
    assert_eq!(c.line().await, "* BYE Too many authentication failures");
    assert!(c.closed().await);
}

/// Once the address has failed 10 times (the harness's limit), LOGIN and AUTHENTICATE are
/// refused at once with UNAVAILABLE (RFC 5530 §3); AUTHENTICATE without an initial
/// response is refused before its continuation asks for credentials.
#[tokio::test]
async fn a_throttled_address_is_refused_before_any_exchange() {
    let h = Harness::start().await;
    for round in 0..4 {
        let mut c = h.connect().await;
        let tries = if round < 3 { 3 } else { 1 };
        for n in 0..tries {
            let tag = format!("a{n}");
            assert_eq!(
                c.run(&tag, "LOGIN alice@example.org wrong").await,
                lines(&[&format!(
                    "{tag} NO [AUTHENTICATIONFAILED] Invalid credentials"
                )])
            );
        }
    }
    let mut c = h.connect().await;
    c.send("a AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(
        c.line().await,
        "a NO [UNAVAILABLE] Too many failed logins; try again later"
    );
    assert_eq!(
        c.run("b", &format!("LOGIN {EMAIL} \"{PASSWORD}\"")).await,
        lines(&["b NO [UNAVAILABLE] Too many failed logins; try again later"])
    );
}

#[tokio::test]
async fn no_login_in_time_closes_with_bye_and_logged_in_sessions_stay() {
    let h = Harness::start().await;
    let mut logged_in = h.logged_in().await;
    // Paused time jumps to the next timer when every task is idle; the store is not used
    // from here on (its pool has timers of its own).
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let mut anonymous = h.connect().await;
    // Commands before login do not move the deadline.
    assert_eq!(anonymous.run("a", "NOOP").await, lines(&["a OK Done"]));
    let mut rest = String::new();
    anonymous
        .reader
        .read_to_string(&mut rest)
        .await
        .expect("read to the end");
    assert_eq!(rest, "* BYE Autologout; no login in time\r\n");
    // Closed at the deadline, not at the 30-minute idle timeout (virtual time).
    let waited = start.elapsed();
    assert!(
        (crate::session::LOGIN_TIMEOUT..crate::session::LOGIN_TIMEOUT * 2).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(logged_in.run("b", "NOOP").await, lines(&["b OK Done"]));
}

#[tokio::test]
async fn sets_of_thousands_of_ranges_are_merged() {
    let h = Harness::start().await;
    for subject in ["one", "two", "three"] {
        h.deliver(subject).await;
    }
    let mut c = h.logged_in().await;
    c.run("a", "SELECT INBOX").await;
    // Issue 13: 16,000 times the whole mailbox, in a line under the 64 KiB limit.
    let all = vec!["1:*"; 16_000].join(",");
    assert_eq!(
        c.run("b", &format!("FETCH {all} (UID)")).await,
        lines(&[
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
            "* 3 FETCH (UID 3)",
            "b OK FETCH completed"
        ])
    );
    let half = vec!["1:*"; 7_000].join(",");
    let threes = vec!["3:3"; 7_000].join(",");
    assert_eq!(
        c.run("c", &format!("SEARCH {half} UID {threes}")).await,
        lines(&["* SEARCH 3", "c OK SEARCH completed"])
    );
    let twos = vec!["2"; 30_000].join(",");
    assert_eq!(
        c.run("d", &format!("UID SEARCH NOT UID {twos}")).await,
        lines(&["* SEARCH 1 3", "d OK UID SEARCH completed"])
    );
}

#[tokio::test]
async fn names_that_are_not_modified_utf7_get_no() {
    let h = Harness::start().await;
    let mut c = h.logged_in().await;
    let refused = |tag: &str| format!("{tag} NO [CANNOT] Mailbox name is not valid modified UTF-7");
    assert_eq!(c.run("a", "CREATE \"&Jjo\"").await, vec![refused("a")]);
    assert_eq!(c.run("b", "SELECT \"&ZZZ\"").await, vec![refused("b")]);
    // A pattern of such characters matches no name: an empty answer, as Dovecot gives.
    assert_eq!(
        c.run("c", "LIST \"\" \"&&&-\"").await,
        vec!["c OK LIST completed".to_owned()]
    );
    assert_eq!(
        c.run("c2", "LSUB \"&Jjo\" \"*\"").await,
        vec!["c2 OK LSUB completed".to_owned()]
    );
    assert_eq!(
        c.run("d", "STATUS \"&\" (MESSAGES)").await,
        vec![refused("d")]
    );
    // The session goes on.
    assert_eq!(
        c.run("e", "NOOP").await.last().map(String::as_str),
        Some("e OK Done")
    );
}

/// A name that cannot be a mailbox's (an empty level, a wildcard): what CREATE, RENAME
/// and UNSUBSCRIBE answer is storage's refusal, with the name as the client gave it; a
/// command that looks a mailbox up finds none.
#[tokio::test]
async fn names_that_cannot_be_mailboxes_get_no() {
    let h = Harness::start().await;
    let mut c = h.logged_in().await;
    for (tag, command, answer) in [
        (
            "a",
            "CREATE \"a//b\"",
            "a NO [CANNOT] Invalid mailbox name: \"a//b\"",
        ),
        (
            "b",
            "CREATE \"a*b\"",
            "b NO [CANNOT] Invalid mailbox name: \"a*b\"",
        ),
        (
            "c",
            "RENAME Drafts \"x//y\"",
            "c NO [CANNOT] Invalid mailbox name: \"x//y\"",
        ),
        (
            "d",
            "UNSUBSCRIBE \"a//b\"",
            "d NO [CANNOT] Invalid mailbox name: \"a//b\"",
        ),
        ("e", "SELECT \"a//b\"", "e NO [NONEXISTENT] No such mailbox"),
        (
            "f",
            "STATUS \"a//b\" (MESSAGES)",
            "f NO [NONEXISTENT] No such mailbox",
        ),
        (
            "g",
            "SUBSCRIBE \"a//b\"",
            "g NO [NONEXISTENT] No such mailbox",
        ),
        ("h", "DELETE \"a//b\"", "h NO [NONEXISTENT] No such mailbox"),
    ] {
        assert_eq!(
            c.run(tag, command).await,
            vec![answer.to_owned()],
            "{command}"
        );
    }
}

#[tokio::test]
async fn move_into_the_selected_mailbox_itself_renumbers_the_messages() {
    let h = Harness::start().await;
    for subject in ["one", "two"] {
        h.deliver(subject).await;
    }
    let validity = h.uid_validity().await;
    let mut c = h.logged_in().await;
    c.run("a", "SELECT INBOX").await;
    assert_eq!(
        c.run("b", "MOVE 1 INBOX").await,
        lines(&[
            &format!("* OK [COPYUID {validity} 1 3] Moved UIDs"),
            "* 1 EXPUNGE",
            "* 2 EXISTS",
            "b OK MOVE completed",
        ])
    );
    assert_eq!(
        c.run("c", "FETCH 1:* (UID)").await,
        lines(&[
            "* 1 FETCH (UID 2)",
            "* 2 FETCH (UID 3)",
            "c OK FETCH completed"
        ])
    );
}

#[tokio::test]
async fn esearch_min_max_report_the_modseq_of_the_messages_they_return() {
    let h = Harness::start().await;
    for subject in ["one", "two", "three"] {
        h.deliver(subject).await;
    }
    let mut c = h.logged_in().await;
    c.run("a", "SELECT INBOX").await;
    // Message 2 gets the highest mod-sequence; 1 and 3 keep theirs.
    c.run("b", "STORE 2 +FLAGS.SILENT (\\Flagged)").await;
    // The first CONDSTORE enabling command also says `* OK [HIGHESTMODSEQ n]`.
    let fetched: Vec<String> = c
        .run("c", "FETCH 1:3 (MODSEQ)")
        .await
        .into_iter()
        .filter(|line| line.contains(" FETCH "))
        .collect();
    let modseq = |n: usize| -> u64 {
        let line = &fetched[n - 1];
        let digits: String = line
            .rsplit("MODSEQ (")
            .next()
            .unwrap_or_default()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no MODSEQ in {line}"))
    };
    let (first, second, third) = (modseq(1), modseq(2), modseq(3));
    assert!(second > first.max(third), "{fetched:?}");
    // RFC 7162 §3.1.5: the highest mod-sequence of the messages returned.
    assert_eq!(
        c.run("d", "SEARCH RETURN (MIN) MODSEQ 1").await,
        lines(&[
            &format!("* ESEARCH (TAG \"d\") MIN 1 MODSEQ {first}"),
            "d OK SEARCH completed",
        ])
    );
    assert_eq!(
        c.run("e", "SEARCH RETURN (MIN MAX) MODSEQ 1").await,
        lines(&[
            &format!(
                "* ESEARCH (TAG \"e\") MIN 1 MAX 3 MODSEQ {}",
                first.max(third)
            ),
            "e OK SEARCH completed",
        ])
    );
    assert_eq!(
        c.run("f", "SEARCH RETURN (MAX COUNT) MODSEQ 1").await,
        lines(&[
            &format!("* ESEARCH (TAG \"f\") MAX 3 COUNT 3 MODSEQ {second}"),
            "f OK SEARCH completed",
        ])
    );
}

#[tokio::test]
async fn esort_answers_in_sort_order_and_saves_for_searchres() {
    let h = Harness::start().await;
    // Sorted by subject: 2 (a), 3 (b), 1 (c), 4 (d).
    for subject in ["c", "a", "b", "d"] {
        h.deliver(subject).await;
    }
    let mut c = h.logged_in().await;
    c.run("a", "SELECT INBOX").await;
    // RFC 5267 §3.1: MIN and MAX are the first and last in sort order; ALL in sort order.
    assert_eq!(
        c.run("b", "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL")
            .await,
        lines(&[
            "* ESEARCH (TAG \"b\") MIN 2 MAX 4 ALL 2:3,1,4 COUNT 4",
            "b OK SORT completed",
        ])
    );
    assert_eq!(
        c.run("c", "UID SORT RETURN () (REVERSE SUBJECT) UTF-8 ALL")
            .await,
        lines(&[
            "* ESEARCH (TAG \"c\") UID ALL 4,1,3,2",
            "c OK UID SORT completed",
        ])
    );
    assert_eq!(
        c.run(
            "d",
            "SORT RETURN (COUNT MIN) (SUBJECT) UTF-8 SUBJECT nothing"
        )
        .await,
        lines(&["* ESEARCH (TAG \"d\") COUNT 0", "d OK SORT completed"])
    );
    // RFC 5182 §2.1: SAVE alone answers nothing; with MIN only the first is saved (§2.4).
    assert_eq!(
        c.run("e", "SORT RETURN (SAVE MIN) (SUBJECT) UTF-8 ALL")
            .await,
        lines(&["* ESEARCH (TAG \"e\") MIN 2", "e OK SORT completed"])
    );
    assert_eq!(
        c.run("f", "SEARCH $").await,
        lines(&["* SEARCH 2", "f OK SEARCH completed"])
    );
    assert_eq!(
        c.run("g", "SORT RETURN (SAVE) (REVERSE SUBJECT) UTF-8 2:4")
            .await,
        lines(&["g OK SORT completed"])
    );
    c.dialogue(&[
        (
            "h",
            "SEARCH $",
            &["* SEARCH 2 3 4", "h OK SEARCH completed"],
        ),
        // Without RETURN, SORT answers as ever.
        (
            "i",
            "SORT (SUBJECT) UTF-8 ALL",
            &["* SORT 2 3 1 4", "i OK SORT completed"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn sort_display_uses_the_display_name_or_the_address() {
    let h = Harness::start().await;
    h.deliver_from("Zed <aaa@example.net>", "one").await;
    h.deliver_from("bob@example.net", "two").await;
    h.deliver_from("\"\" <carol@example.net>", "three").await;
    h.deliver_from("=?utf-8?q?=C3=89mile?= <zz@example.net>", "four")
        .await;
    let mut c = h.logged_in().await;
    c.run("a", "SELECT INBOX").await;
    let caps = c.run("b", "CAPABILITY").await;
    assert!(
        caps[0].contains(" SORT SORT=DISPLAY ESORT CONTEXT=SEARCH CONTEXT=SORT PARTIAL "),
        "{caps:?}"
    );
    // RFC 5957 §2: BOB@EXAMPLE.NET, CAROL@EXAMPLE.NET, ÉMILE, ZED.
    c.dialogue(&[
        (
            "c",
            "SORT (DISPLAYFROM) UTF-8 ALL",
            &["* SORT 2 3 4 1", "c OK SORT completed"],
        ),
        // FROM sorts by the mailbox: aaa, bob, carol, zz.
        (
            "d",
            "SORT (FROM) UTF-8 ALL",
            &["* SORT 1 2 3 4", "d OK SORT completed"],
        ),
    ])
    .await;
    // Every To is alice@example.org: mailbox order.
    assert_eq!(
        c.run(
            "e",
            "SORT RETURN (ALL) (DISPLAYTO REVERSE DISPLAYFROM) UTF-8 ALL"
        )
        .await,
        lines(&["* ESEARCH (TAG \"e\") ALL 1,4,3,2", "e OK SORT completed"])
    );
}

#[tokio::test]
async fn the_first_condstore_enabling_command_in_a_selected_mailbox_tells_its_highestmodseq() {
    let h = Harness::start().await;
    h.deliver("one").await;
    let highest = h
        .store
        .mailbox(h.inbox)
        .await
        .expect("mailbox")
        .highest_modseq;
    let mut c = h.logged_in().await;
    c.run("a", "SELECT INBOX").await;
    // RFC 7162 §3.1: FETCH MODSEQ is CONDSTORE enabling; the SELECT told no
    // HIGHESTMODSEQ, so the client hears it now, before the FETCH (as from Dovecot 2.3).
    assert_eq!(
        c.run("b", "FETCH 1 (MODSEQ)").await,
        lines(&[
            &format!("* OK [HIGHESTMODSEQ {highest}] Highest"),
            &format!("* 1 FETCH (MODSEQ ({highest}))"),
            "b OK FETCH completed",
        ])
    );
    // Once only: CONDSTORE stays on for the mailbox.
    assert_eq!(
        c.run("c", "SEARCH MODSEQ 1").await,
        lines(&[
            &format!("* SEARCH 1 (MODSEQ {highest})"),
            "c OK SEARCH completed",
        ])
    );
    // Another session enables it with STATUS (HIGHESTMODSEQ) of another mailbox.
    let mut d = h.logged_in().await;
    d.run("a", "SELECT INBOX").await;
    let status = d.run("b", "STATUS Sent (HIGHESTMODSEQ)").await;
    assert_eq!(status[0], format!("* OK [HIGHESTMODSEQ {highest}] Highest"));
    assert!(status[1].starts_with("* STATUS "), "{status:?}");
}

#[tokio::test]
async fn an_examine_session_sees_as_recent_only_what_no_read_write_session_was_told_of() {
    let h = Harness::start().await;
    h.deliver("one").await;
    let mut examine = h.logged_in().await;
    let mut select = h.logged_in().await;
    let examined = examine.run("a", "EXAMINE INBOX").await;
    assert!(examined.contains(&"* 1 RECENT".to_owned()), "{examined:?}");
    let selected = select.run("a", "SELECT INBOX").await;
    assert!(selected.contains(&"* 1 RECENT".to_owned()), "{selected:?}");
    // The read-write session is told of message 2 first and takes its \Recent.
    h.deliver("two").await;
    assert_eq!(
        select.run("b", "NOOP").await,
        lines(&["* 2 EXISTS", "* 2 RECENT", "b OK Done"])
    );
    // RFC 3501 §2.3.2: "subsequent sessions will not see \Recent set for this message".
    examine
        .dialogue(&[
            ("b", "NOOP", &["* 2 EXISTS", "b OK Done"]),
            (
                "c",
                "FETCH 1:2 (FLAGS)",
                &[
                    "* 1 FETCH (FLAGS (\\Recent))",
                    "* 2 FETCH (FLAGS ())",
                    "c OK FETCH completed",
                ],
            ),
        ])
        .await;
    // Message 3 reaches the read-only session first: recent there, still unclaimed.
    h.deliver("three").await;
    assert_eq!(
        examine.run("d", "NOOP").await,
        lines(&["* 3 EXISTS", "* 2 RECENT", "d OK Done"])
    );
    assert_eq!(
        select.run("c", "NOOP").await,
        lines(&["* 3 EXISTS", "* 3 RECENT", "c OK Done"])
    );
}

#[tokio::test]
async fn status_recent_of_the_selected_mailbox_counts_the_sessions_recent_messages() {
    let h = Harness::start().await;
    h.deliver("one").await;
    h.deliver("two").await;
    let mut c = h.logged_in().await;
    c.run("a", "SELECT INBOX").await;
    // RFC 3501 §6.3.10 RECENT: the two messages FETCH FLAGS shows as \Recent here, not
    // the none left unclaimed for other sessions.
    assert_eq!(
        c.run("b", "STATUS INBOX (MESSAGES RECENT)").await,
        lines(&[
            "* STATUS \"INBOX\" (MESSAGES 2 RECENT 2)",
            "b OK STATUS completed",
        ])
    );
    let mut other = h.logged_in().await;
    assert_eq!(
        other.run("a", "STATUS INBOX (RECENT)").await,
        lines(&["* STATUS \"INBOX\" (RECENT 0)", "a OK STATUS completed"])
    );
}

#[tokio::test]
async fn new_keywords_are_announced_to_every_session_before_a_fetch_shows_them() {
    let h = Harness::start().await;
    h.deliver("one").await;
    let mut a = h.logged_in().await;
    let mut b = h.logged_in().await;
    a.run("a1", "SELECT INBOX").await;
    b.run("b1", "SELECT INBOX").await;
    a.run("a2", "STORE 1 +FLAGS.SILENT ($Important)").await;
    let system = "\\Answered \\Deleted \\Draft \\Flagged \\Seen";
    // RFC 9051 §7.3.5: FLAGS and PERMANENTFLAGS first, then the FETCH with the keyword.
    assert_eq!(
        b.run("b2", "NOOP").await,
        lines(&[
            &format!("* FLAGS ({system} $Important)"),
            &format!("* OK [PERMANENTFLAGS ({system} $Important \\*)] Flags permitted"),
            "* 1 FETCH (UID 1 FLAGS ($Important))",
            "b2 OK Done",
        ])
    );
    // A keyword already announced is not announced again.
    a.run("a3", "STORE 1 -FLAGS.SILENT ($Important)").await;
    a.run("a4", "STORE 1 +FLAGS.SILENT ($important)").await;
    let again = b.run("b3", "NOOP").await;
    assert!(!again.iter().any(|l| l.starts_with("* FLAGS")), "{again:?}");
    // A new SELECT lists the keywords in the mailbox.
    let selected = b.run("b4", "EXAMINE INBOX").await;
    assert!(
        selected.contains(&format!("* FLAGS ({system} $important)")),
        "{selected:?}"
    );
}

#[tokio::test]
async fn list_and_mailbox_management() {
    let h = Harness::start().await;
    let mut c = h.logged_in().await;
    c.dialogue(&[
        (
            "a",
            "LIST \"\" \"*\"",
            &[
                "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
                "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"",
                "* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"",
                "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"",
                "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"",
                "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
                "a OK LIST completed",
            ],
        ),
        (
            "b",
            "LIST \"\" \"\"",
            &["* LIST (\\Noselect) \"/\" \"\"", "b OK LIST completed"],
        ),
        (
            "c",
            "CREATE Projekte/Entw&APw-rfe",
            &["c OK [MAILBOXID (F8)] CREATE completed"],
        ),
    ])
    .await;
    assert_eq!(
        c.run("d", "CREATE projekte/x").await,
        lines(&["d OK [MAILBOXID (F10)] CREATE completed"]),
        "names other than INBOX are case-sensitive"
    );
    assert_eq!(
        c.run("e", "LIST \"\" Projekte/%").await,
        lines(&[
            "* LIST (\\HasNoChildren) \"/\" \"Projekte/Entw&APw-rfe\"",
            "e OK LIST completed"
        ])
    );
    assert_eq!(
        c.run("f", "LIST \"\" %").await.first().map(String::as_str),
        Some("* LIST (\\HasNoChildren) \"/\" \"INBOX\"")
    );
    c.dialogue(&[
        (
            "g",
            "CREATE INBOX",
            &["g NO [ALREADYEXISTS] INBOX always exists"],
        ),
        (
            "h",
            "CREATE Sent",
            &["h NO [ALREADYEXISTS] mailbox Sent already exists"],
        ),
        ("i", "DELETE Nope", &["i NO [NONEXISTENT] No such mailbox"]),
        ("j", "RENAME Projekte Work", &["j OK RENAME completed"]),
    ])
    .await;
    assert_eq!(
        c.run(
            "k",
            "LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))"
        )
        .await
        .len(),
        13,
        "the six subscribed default mailboxes, each with its STATUS"
    );
    c.dialogue(&[
        (
            "l",
            "SUBSCRIBE Work/Entw&APw-rfe",
            &["l OK SUBSCRIBE completed"],
        ),
        (
            "m",
            "LSUB \"\" Work/*",
            &[
                "* LSUB () \"/\" \"Work/Entw&APw-rfe\"",
                "m OK LSUB completed",
            ],
        ),
    ])
    .await;
    // RFC 3501 §6.3.9: the unsubscribed superior of a subscribed name, with \Noselect.
    let top_level = c.run("m2", "LSUB \"\" %").await;
    assert!(
        top_level.contains(&"* LSUB (\\Noselect) \"/\" \"Work\"".to_owned()),
        "{top_level:?}"
    );
    assert!(
        !top_level.iter().any(|l| l.contains("Entw")),
        "{top_level:?}"
    );
    c.dialogue(&[
        ("n", "DELETE Work", &["n OK DELETE completed"]),
        (
            "o",
            "LIST \"\" Work*",
            &[
                "* LIST (\\Noselect \\HasChildren) \"/\" \"Work\"",
                "* LIST (\\HasNoChildren) \"/\" \"Work/Entw&APw-rfe\"",
                "o OK LIST completed",
            ],
        ),
        (
            "p",
            "ENABLE UTF8=ACCEPT",
            &["* ENABLED UTF8=ACCEPT", "p OK ENABLE completed"],
        ),
        (
            "q",
            "LIST \"\" Work/%",
            &[
                "* LIST (\\HasNoChildren) \"/\" \"Work/Entwürfe\"",
                "q OK LIST completed",
            ],
        ),
        // RFC 6154 §3: one mailbox per special use; the default Archive has \\Archive.
        (
            "r",
            "CREATE Archiv2 (USE (\\Archive))",
            &["r NO [USEATTR] \\Archive is already the special use of Archive"],
        ),
        ("r2", "DELETE Archive", &["r2 OK DELETE completed"]),
    ])
    .await;
    let created = c.run("r3", "CREATE Archiv2 (USE (\\Archive))").await;
    assert!(
        created.len() == 1 && created[0].starts_with("r3 OK [MAILBOXID (F"),
        "{created:?}"
    );
    assert_eq!(
        c.run("s", "LIST (SPECIAL-USE) \"\" Archiv*").await,
        lines(&[
            "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archiv2\"",
            "s OK LIST completed"
        ])
    );
    assert_eq!(
        c.run("t", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN DELETED SIZE)")
            .await,
        lines(&[
            "* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1 UNSEEN 0 DELETED 0 SIZE 0)",
            "t OK STATUS completed"
        ])
    );
    assert_eq!(
        c.run("u", "NAMESPACE").await,
        lines(&[
            "* NAMESPACE ((\"\" \"/\")) NIL NIL",
            "u OK NAMESPACE completed"
        ])
    );
}

#[tokio::test]
async fn select_fetch_store_and_expunge() {
    let h = Harness::start().await;
    for n in 1..=4 {
        h.deliver(&format!("m{n}")).await;
    }
    let validity = h.uid_validity().await;
    let mut c = h.logged_in().await;
    assert_eq!(
        c.run("a", "SELECT INBOX").await,
        vec![
            "* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen)".to_owned(),
            "* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen \\*)] Flags permitted".to_owned(),
            "* 4 EXISTS".to_owned(),
            "* 4 RECENT".to_owned(),
            "* OK [UNSEEN 1] First unseen".to_owned(),
            format!("* OK [UIDVALIDITY {validity}] UIDs valid"),
            "* OK [UIDNEXT 5] Predicted next UID".to_owned(),
            "* OK [MAILBOXID (F1)] Mailbox id".to_owned(),
            "a OK [READ-WRITE] SELECT completed".to_owned(),
        ]
    );
    let size = 145;
    assert_eq!(
        c.run("b", "FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID)")
            .await,
        vec![
            format!(
                "* 1 FETCH (FLAGS (\\Recent) INTERNALDATE \" 1-Mar-2024 12:00:00 +0000\" RFC822.SIZE {size} ENVELOPE (\"Fri, 1 Mar 2024 10:00:00 +0000\" \"m1\" ((\"Bob\" NIL \"bob\" \"example.net\")) ((\"Bob\" NIL \"bob\" \"example.net\")) ((\"Bob\" NIL \"bob\" \"example.net\")) ((NIL NIL \"alice\" \"example.org\")) NIL NIL NIL \"<m1@example.net>\") UID 1)"
            ),
            "b OK FETCH completed".to_owned(),
        ]
    );
    assert_eq!(
        c.run(
            "c",
            "FETCH 2 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT]<0.5> BODYSTRUCTURE)"
        )
        .await,
        lines(&[
            "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {15}",
            "Subject: m2",
            "",
            " BODY[TEXT]<0> {5}",
            "Hello BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL))",
            "c OK FETCH completed",
        ])
    );
    // Non-PEEK sets \Seen and reports it.
    c.dialogue(&[
        ("d", "UID FETCH 3 BODY[TEXT]", &["* 3 FETCH (FLAGS (\\Seen \\Recent) UID 3 BODY[TEXT] {10}", "Hello m3", ")", "d OK UID FETCH completed"]),
        // RFC 9051 §7.3.5: a new keyword is announced in FLAGS and PERMANENTFLAGS before
        // the first FETCH that shows it.
        ("e", "STORE 1:2 +FLAGS (\\Deleted $Label)", &["* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Label)", "* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Label \\*)] Flags permitted", "* 1 FETCH (FLAGS ($Label \\Deleted \\Recent))", "* 2 FETCH (FLAGS ($Label \\Deleted \\Recent))", "e OK STORE completed"]),
        ("f", "UID STORE 2 -FLAGS.SILENT ($Label)", &["f OK UID STORE completed"]),
    ])
    .await;
    assert_eq!(c.run("g", "STORE 4 +FLAGS (\\Deleted)").await.len(), 2);
    assert_eq!(
        c.run("h", "FETCH 9 FLAGS").await,
        lines(&["h BAD Invalid message sequence number"])
    );
    // Expunge 1, 2 and 4 out of 1..4: highest first, each number valid when written.
    assert_eq!(
        c.run("i", "EXPUNGE").await,
        lines(&[
            "* 4 EXPUNGE",
            "* 2 EXPUNGE",
            "* 1 EXPUNGE",
            // RFC 3501 §7.3.2: the number of \Recent messages changed.
            "* 1 RECENT",
            "i OK EXPUNGE completed"
        ])
    );
    c.dialogue(&[
        (
            "j",
            "FETCH 1:* (UID FLAGS)",
            &[
                "* 1 FETCH (UID 3 FLAGS (\\Seen \\Recent))",
                "j OK FETCH completed",
            ],
        ),
        ("k", "SEARCH ALL", &["* SEARCH 1", "k OK SEARCH completed"]),
        ("l", "UNSELECT", &["l OK UNSELECT completed"]),
        ("m", "FETCH 1 FLAGS", &["m BAD No mailbox selected"]),
    ])
    .await;
}

#[tokio::test]
async fn append_copy_move_and_search() {
    let h = Harness::start().await;
    let mut c = h.logged_in().await;
    let validity = h.uid_validity().await;
    c.send("a APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {27+}\r\nSubject: appended\r\n\r\nbody\r\n\r\n").await;
    assert_eq!(
        c.until_tagged("a").await,
        vec![format!("a OK [APPENDUID {validity} 1] APPEND completed")]
    );
    assert_eq!(
        c.run("b", "APPEND Nowhere {1+}\r\nx").await,
        lines(&["b NO [TRYCREATE] No such mailbox"])
    );
    h.deliver("second").await;
    c.run("c", "SELECT INBOX").await;
    c.dialogue(&[
        (
            "d",
            "FETCH 1 INTERNALDATE",
            &[
                "* 1 FETCH (INTERNALDATE \" 8-Feb-1994 05:52:25 +0000\")",
                "d OK FETCH completed",
            ],
        ),
        (
            "e",
            "SEARCH UNSEEN",
            &["* SEARCH 2", "e OK SEARCH completed"],
        ),
        (
            "f",
            "UID SEARCH SUBJECT SECOND",
            &["* SEARCH 2", "f OK UID SEARCH completed"],
        ),
        (
            "g",
            "SEARCH BODY \"hello second\"",
            &["* SEARCH 2", "g OK SEARCH completed"],
        ),
    ])
    .await;
    assert_eq!(
        c.run("h", "SEARCH OR FROM bob (SEEN) NOT LARGER 10000")
            .await,
        lines(&["* SEARCH 1 2", "h OK SEARCH completed"])
    );
    assert_eq!(
        c.run(
            "i",
            "SEARCH RETURN (MIN MAX COUNT ALL) SENTSINCE 1-Mar-2024"
        )
        .await,
        lines(&[
            "* ESEARCH (TAG \"i\") MIN 2 MAX 2 ALL 2 COUNT 1",
            "i OK SEARCH completed"
        ])
    );
    assert_eq!(
        c.run("j", "SEARCH CHARSET KOI8-R ALL").await,
        lines(&["j NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset"])
    );
    let sent = h
        .store
        .mailbox_by_name(
            storage::AccountId(1),
            &storage::MailboxName::new("Sent").expect("valid"),
        )
        .await
        .ok()
        .flatten();
    let sent_validity = sent.map(|m| m.uid_validity.0).unwrap_or_default();
    assert_eq!(
        c.run("k", "COPY 1:2 Sent").await,
        vec![format!(
            "k OK [COPYUID {sent_validity} 1:2 1:2] COPY completed"
        )]
    );
    assert_eq!(
        c.run("l", "COPY 1 Nowhere").await,
        lines(&["l NO [TRYCREATE] No such mailbox"])
    );
    assert_eq!(
        c.run("m", "UID MOVE 1 Trash").await[1..],
        lines(&["* 1 EXPUNGE", "* 1 RECENT", "m OK UID MOVE completed"])[..]
    );
    c.dialogue(&[
        ("n", "SEARCH RETURN (SAVE) ALL", &["n OK SEARCH completed"]),
        (
            "o",
            "FETCH $ UID",
            &["* 1 FETCH (UID 2)", "o OK FETCH completed"],
        ),
        (
            "p",
            "STATUS Sent (MESSAGES UNSEEN)",
            &[
                "* STATUS \"Sent\" (MESSAGES 2 UNSEEN 1)",
                "p OK STATUS completed",
            ],
        ),
    ])
    .await;
}

#[tokio::test]
async fn imap4rev2_uses_esearch_and_no_recent() {
    let h = Harness::start().await;
    h.deliver("one").await;
    let mut c = h.logged_in().await;
    assert_eq!(
        c.run("a", "ENABLE IMAP4rev2").await,
        lines(&["* ENABLED IMAP4rev2", "a OK ENABLE completed"])
    );
    let select = c.run("b", "SELECT INBOX").await;
    assert!(
        !select
            .iter()
            .any(|l| l.contains("RECENT") || l.contains("UNSEEN")),
        "{select:?}"
    );
    assert!(
        select.contains(&"* LIST () \"/\" \"INBOX\"".to_owned()),
        "{select:?}"
    );
    c.dialogue(&[
        (
            "c",
            "UID SEARCH ALL",
            &[
                "* ESEARCH (TAG \"c\") UID ALL 1",
                "c OK UID SEARCH completed",
            ],
        ),
        (
            "d",
            "SEARCH DELETED",
            &["* ESEARCH (TAG \"d\")", "d OK SEARCH completed"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_second_session_sees_changes_at_noop_and_during_idle() {
    let h = Harness::start().await;
    h.deliver("first").await;
    let mut watcher = h.logged_in().await;
    watcher.run("a", "SELECT INBOX").await;
    let mut actor = h.logged_in().await;
    actor.run("a", "SELECT INBOX").await;

    h.deliver("second").await;
    // FETCH by sequence number may report EXISTS, but not EXPUNGE.
    assert_eq!(
        watcher.run("b", "NOOP").await,
        // RFC 3501 §2.3.2: the watcher is the first session to hear of the message.
        lines(&["* 2 EXISTS", "* 2 RECENT", "b OK Done"])
    );
    assert_eq!(
        actor
            .run("b", "STORE 1 +FLAGS.SILENT (\\Deleted)")
            .await
            .last()
            .map(String::as_str),
        Some("b OK STORE completed")
    );
    let expunge = actor.run("c", "EXPUNGE").await;
    assert_eq!(expunge, lines(&["* 1 EXPUNGE", "c OK EXPUNGE completed"]));
    // Not during FETCH by sequence number: the message keeps its number...
    assert_eq!(
        watcher.run("c", "FETCH 1:* UID").await,
        lines(&[
            "* 1 FETCH (FLAGS (\\Deleted) UID 1)",
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
            "c OK FETCH completed"
        ])
        .into_iter()
        .skip(1)
        .collect::<Vec<_>>()
    );
    // ...but NOOP reports it.
    assert_eq!(
        watcher.run("d", "NOOP").await,
        lines(&["* 1 EXPUNGE", "* 1 RECENT", "d OK Done"])
    );

    // IDLE: a delivery arrives as EXISTS at once.
    watcher.send("e IDLE\r\n").await;
    assert_eq!(watcher.line().await, "+ idling");
    h.deliver("third").await;
    assert_eq!(watcher.line().await, "* 2 EXISTS");
    assert_eq!(watcher.line().await, "* 2 RECENT");
    assert_eq!(
        actor.run("d", "NOOP").await,
        lines(&["* 2 EXISTS", "d OK Done"])
    );
    actor.run("e", "STORE 2 +FLAGS.SILENT (\\Flagged)").await;
    assert_eq!(
        watcher.line().await,
        "* 2 FETCH (UID 3 FLAGS (\\Flagged \\Recent))"
    );
    watcher.send("DONE\r\n").await;
    assert_eq!(
        watcher.until_tagged("e").await,
        lines(&["e OK IDLE terminated"])
    );
}

#[tokio::test]
async fn idle_keepalive_and_shutdown_bye() {
    let config = ImapConfig {
        idle_keepalive: Duration::from_millis(100),
        ..ImapConfig::default()
    };
    let h = Harness::start_with(config).await;
    let mut c = h.logged_in().await;
    c.send("a IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    assert_eq!(c.line().await, "* OK Still here");
    h.shutdown.token.cancel();
    assert_eq!(c.line().await, "* BYE Server shutting down");
    assert!(c.closed().await);
    let mut other = tokio::net::TcpStream::connect(h.addr).await;
    // The listener has stopped: either refused, or accepted by the OS and closed.
    if let Ok(stream) = other.as_mut() {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        assert!(!matches!(read, Ok(Ok(n)) if n > 0));
    }
}

#[tokio::test]
async fn oversized_literals_and_garbage_keep_the_session_going() {
    let h = Harness::start().await;
    let mut c = h.connect().await;
    assert_eq!(
        c.run("a", "LOGIN {999999999}").await,
        lines(&["a BAD [TOOBIG] Literal too large"])
    );
    c.send("b LOGIN {70000+}\r\n").await;
    c.send(&"x".repeat(70_000)).await;
    c.send(" y\r\n").await;
    assert_eq!(
        c.until_tagged("b").await,
        lines(&["b BAD [TOOBIG] Literal too large"])
    );
    assert_eq!(
        c.run("c", "FROBNICATE").await,
        lines(&["c BAD Unknown command"])
    );
    c.send("\u{1}\u{2} \r\n").await;
    assert_eq!(c.line().await, "* BAD Missing or invalid tag");
    assert_eq!(c.run("d", "NOOP").await, lines(&["d OK Done"]));
    let mut c = h.logged_in().await;
    c.send("e APPEND INBOX {99999999999}\r\n").await;
    assert_eq!(
        c.until_tagged("e").await,
        lines(&["e NO [TOOBIG] Message too large"])
    );
    assert_eq!(c.run("f", "NOOP").await, lines(&["f OK Done"]));
}

#[tokio::test]
async fn plaintext_login_from_afar_is_disabled() {
    let h = Harness::start().await;
    // A session as if the peer were remote, on a plain link without TLS.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = server_without_tls(
        ImapConfig::default(),
        h.store.clone(),
        ConnectionLimiter::new(10, 10),
        Shutdown::new(),
    );
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let remote: SocketAddr = "192.0.2.7:40000".parse().expect("addr");
        crate::session::Session::new(
            server,
            netutil::MaybeTlsStream::Plain(tcp),
            remote,
            ListenerRole::Imap,
            crate::session::SessionId::next(),
        )
        .run()
        .await;
    });
    let (mut c, greeting) = Client::connect(addr).await;
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LOGINDISABLED SASL-IR "),
        "{greeting}"
    );
    assert!(!greeting.contains("AUTH=PLAIN"));
    assert_eq!(
        c.run("a", &format!("LOGIN {EMAIL} \"{PASSWORD}\"")).await,
        lines(&["a NO [PRIVACYREQUIRED] Use STARTTLS before logging in"])
    );
    c.dialogue(&[
        (
            "b",
            "AUTHENTICATE PLAIN =",
            &["b NO [PRIVACYREQUIRED] Use STARTTLS before logging in"],
        ),
        ("c", "STARTTLS", &["c BAD STARTTLS is not available"]),
    ])
    .await;
}

/// The multipart message CATENATE tests take parts from.
const MULTIPART: &str = "From: Bob <bob@example.net>\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n\
--XX\r\nContent-Type: text/plain; name=b.txt\r\n\r\nsecond part\r\nline two\r\n--XX--\r\n";

/// RFC 4469 §5: a message made of a TEXT literal and a part of a stored message, stored
/// as one message with APPENDUID; the URL part is what FETCH BODY[2] gives.
#[tokio::test]
async fn catenate_joins_text_and_url_parts() {
    let h = Harness::start().await;
    let mut c = h.logged_in().await;
    let validity = h.uid_validity().await;
    c.send(&format!(
        "a APPEND INBOX {{{}+}}\r\n{MULTIPART}\r\n",
        MULTIPART.len()
    ))
    .await;
    c.until_tagged("a").await;
    let header = "Subject: joined\r\n\r\n";
    c.send(&format!(
        "b APPEND INBOX (\\Seen) CATENATE (TEXT {{{}+}}\r\n{header} URL \"/INBOX;UIDVALIDITY={validity}/;UID=1/;SECTION=2\" URL /INBOX/;uid=1/;section=1/;partial=0.5)\r\n",
        header.len()
    ))
    .await;
    assert_eq!(
        c.until_tagged("b").await,
        vec![format!("b OK [APPENDUID {validity} 2] APPEND completed")]
    );
    c.run("c", "SELECT INBOX").await;
    let expected = "Subject: joined\r\n\r\nsecond part\r\nline twofirst";
    assert_eq!(
        c.run("d", "UID FETCH 2 BODY.PEEK[]").await,
        vec![
            format!("* 2 FETCH (UID 2 BODY[] {{{}}}", expected.len()),
            "Subject: joined".to_owned(),
            String::new(),
            "second part".to_owned(),
            "line twofirst)".to_owned(),
            "d OK UID FETCH completed".to_owned(),
        ]
    );
    // RFC 4469 §6: BADURL for a URL that names nothing, as sent; nothing is stored.
    let wrong = validity.wrapping_add(1).max(1);
    for (tag, url) in [
        ("e", format!("/INBOX;UIDVALIDITY={wrong}/;UID=1")),
        ("f", "/INBOX/;UID=1/;SECTION=9".to_owned()),
        ("g", "/INBOX/;UID=7".to_owned()),
        ("h", "/Nowhere/;UID=1".to_owned()),
        ("i", "imap://alice@example.org/INBOX/;UID=1".to_owned()),
    ] {
        assert_eq!(
            c.run(tag, &format!("APPEND INBOX CATENATE (URL \"{url}\")"))
                .await,
            vec![format!("{tag} NO [BADURL {url}] CATENATE URL is invalid")]
        );
    }
    // MULTIAPPEND with CATENATE and a plain message: both stored.
    c.send("j APPEND INBOX CATENATE (URL /INBOX/;UID=1/;SECTION=1) {6+}\r\nplain\n\r\n")
        .await;
    assert_eq!(
        c.until_tagged("j").await.last().map(String::as_str),
        Some(format!("j OK [APPENDUID {validity} 3:4] APPEND completed").as_str())
    );
}

/// RFC 4469 §5 with RFC 7889: a CATENATE result over APPENDLIMIT is NO [TOOBIG], even
/// when every part alone fits.
#[tokio::test]
async fn catenate_over_appendlimit_is_toobig() {
    let h = Harness::start_with(ImapConfig {
        max_message_size: 400,
        ..ImapConfig::default()
    })
    .await;
    let mut c = h.logged_in().await;
    c.send(&format!(
        "a APPEND INBOX {{{}+}}\r\n{MULTIPART}\r\n",
        MULTIPART.len()
    ))
    .await;
    assert!(c.until_tagged("a").await[0].starts_with("a OK"));
    assert_eq!(
        c.run(
            "b",
            "APPEND INBOX CATENATE (URL /INBOX/;UID=1 URL /INBOX/;UID=1)"
        )
        .await,
        lines(&["b NO [TOOBIG] Message too large"])
    );
    c.run("c", "SELECT INBOX").await;
    assert_eq!(
        c.run("d", "SEARCH ALL").await,
        lines(&["* SEARCH 1", "d OK SEARCH completed"])
    );
}

/// RFC 5464: GETMETADATA and SETMETADATA only once logged in (§4.2, §4.3); a
/// synchronising SETMETADATA literal over the limit is refused as too large a value
/// without a continuation (§4.3 `[METADATA MAXSIZE]`); a UTF-8 session gets the mailbox
/// name as UTF-8.
#[tokio::test]
async fn metadata_commands_need_a_login_and_refuse_large_values_unsent() {
    let h = Harness::start().await;
    let mut c = h.connect().await;
    c.dialogue(&[
        (
            "a",
            "GETMETADATA \"\" /shared/comment",
            &["a BAD Log in first"],
        ),
        (
            "b",
            "SETMETADATA INBOX (/shared/comment NIL)",
            &["b BAD Log in first"],
        ),
    ])
    .await;
    let mut c = h.logged_in().await;
    c.send("c SETMETADATA INBOX (/shared/comment {65537}\r\n")
        .await;
    assert_eq!(
        c.line().await,
        "c NO [METADATA MAXSIZE 65536] Annotation value too large"
    );
    // The octets never come; the next command is read as one.
    assert_eq!(
        c.run("d", "SETMETADATA INBOX (/shared/comment {3+}\r\nabc)")
            .await,
        lines(&["d OK SETMETADATA completed"])
    );
    assert_eq!(
        c.run("e", "ENABLE UTF8=ACCEPT").await,
        lines(&["* ENABLED UTF8=ACCEPT", "e OK ENABLE completed"])
    );
    let created = c.run("f", "CREATE \"Café\"").await;
    assert!(
        created.last().is_some_and(|l| l.starts_with("f OK ")),
        "{created:?}"
    );
    c.send("g SETMETADATA \"Café\" (/private/comment \"crème\")\r\n")
        .await;
    assert_eq!(c.line().await, "g OK SETMETADATA completed");
    c.send("h GETMETADATA \"Café\" /private/comment\r\n").await;
    assert_eq!(c.line().await, "* METADATA \"Café\" (/private/comment {6}");
    assert_eq!(c.line().await, "crème)");
    assert_eq!(c.line().await, "h OK GETMETADATA completed");
}
