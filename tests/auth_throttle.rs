//! Failed-login throttling under attack (issue 15): an attacker with an account of their
//! own guesses another user's password from one address. Logging into their own account
//! between guesses must not reset the count, parallel guesses must not get past the limit
//! while the password hash runs, and the victim logging in from another address is served
//! all along. Driven with Python's imaplib and smtplib; the victim's client binds its
//! source to 127.0.0.2 (Linux routes all of 127/8 on loopback).

mod common;

/// A test of `check` for each protocol: `$imap` on IMAP, `$smtp` on SMTP.
macro_rules! on_imap_and_smtp {
    ($check:ident: $imap:ident, $smtp:ident) => {
        #[test]
        fn $imap() {
            $check("imap", &IMAP);
        }

        #[test]
        fn $smtp() {
            $check("smtp", &SMTP);
        }
    };
}
use common::{TestServer, python};

/// The attacker's own account.
const ATTACKER: &str = "mallory@localhost";
const ATTACKER_PASSWORD: &str = "mallory-own-password";

/// Python put before each script: `login(source, user, password)` on IMAP or SMTP
/// submission from `source`, answering `OK`, the IMAP response code of a NO
/// (`AUTHENTICATIONFAILED`, `UNAVAILABLE`) or the SMTP reply code (`235`, `535`, `421`).
/// `prepare(source)` connects and greets; `attempt(conn, user, password)` sends the
/// login on it; `login` does both. argv: protocol (`imap` or `smtp`), port, then the
/// script's own.
const CLIENT: &str = r#"
import imaplib, smtplib, socket, sys
protocol, port = sys.argv[1], int(sys.argv[2])

class Imap(imaplib.IMAP4):
    """imaplib from a chosen loopback source address."""
    def __init__(self, source):
        self.source = source
        super().__init__("127.0.0.1", port, timeout=120)
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))

def prepare(source):
    if protocol == "imap":
        return Imap(source)
    s = smtplib.SMTP("127.0.0.1", port, timeout=120, source_address=(source, 0))
    s.ehlo("client.example")
    return s

def attempt(conn, user, password):
    if protocol == "imap":
        try:
            conn.login(user, password)
            answer = "OK"
        except imaplib.IMAP4.error as e:
            text = str(e)
            answer = text.split("]")[0].split("[")[-1] if "[" in text else text
        try:
            conn.logout()
        except Exception:
            pass
        return answer
    conn.user, conn.password = user, password
    try:
        # One mechanism: smtplib.login would try the next one after a 535.
        code, _ = conn.auth("PLAIN", conn.auth_plain)
        answer = str(code)
    except smtplib.SMTPAuthenticationError as e:
        answer = str(e.smtp_code)
    try:
        conn.quit()
    except Exception:
        pass
    return answer

def login(source, user, password):
    return attempt(prepare(source), user, password)
"#;

/// From 127.0.0.1: `guesses` wrong passwords for the victim, one connection each, with a
/// correct login into the attacker's own account before every `every`th guess; then the
/// victim's own login from 127.0.0.2 and the attacker's from 127.0.0.1 again. argv after
/// the protocol and port: victim, victim's password, attacker, attacker's password,
/// guesses, every.
const RESET_ATTACK: &str = r#"
victim, victim_pw, own, own_pw = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
guesses, every = int(sys.argv[7]), int(sys.argv[8])
for i in range(guesses):
    if i > 0 and i % every == 0:
        print("own", login("127.0.0.1", own, own_pw))
    print("guess", login("127.0.0.1", victim, "wrong-%d" % i))
print("victim-elsewhere", login("127.0.0.2", victim, victim_pw))
print("own-after", login("127.0.0.1", own, own_pw))
"#;

/// `count` connections from 127.0.0.1, greeted, then each sends a wrong password for the
/// victim at the same moment; prints each answer, then the victim's own login from
/// 127.0.0.2. argv after the protocol and port: victim, victim's password, count.
const PARALLEL_GUESSES: &str = r#"
import threading
victim, victim_pw, count = sys.argv[3], sys.argv[4], int(sys.argv[5])
conns = [prepare("127.0.0.1") for _ in range(count)]
start = threading.Barrier(count)
answers = [None] * count
def guess(i):
    start.wait()
    answers[i] = attempt(conns[i], victim, "wrong-%d" % i)
threads = [threading.Thread(target=guess, args=(i,)) for i in range(count)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for answer in answers:
    print("guess", answer)
print("victim-elsewhere", login("127.0.0.2", victim, victim_pw))
"#;

/// The answers of one protocol: a login accepted, a wrong password, a throttled login.
struct Answers {
    ok: &'static str,
    wrong: &'static str,
    throttled: &'static str,
}

const IMAP: Answers = Answers {
    ok: "OK",
    wrong: "AUTHENTICATIONFAILED",
    throttled: "UNAVAILABLE",
};

/// RFC 4954 §4: 235 accepted, 535 5.7.8 invalid; 421 4.7.0 refused and closed.
const SMTP: Answers = Answers {
    ok: "235",
    wrong: "535",
    throttled: "421",
};

/// Runs `script` after [`CLIENT`] against `protocol` on `server` (plain IMAP, or
/// submission: AUTH is offered without TLS on loopback); its argv after the protocol
/// and port: the first account (the victim) and its password, then `extra`.
fn attack(server: &TestServer, protocol: &str, script: &str, extra: &[&str]) -> String {
    let listener = if protocol == "imap" {
        "imap"
    } else {
        "submission"
    };
    let port = server.port(listener).to_string();
    let mut args = vec![protocol, &port, &server.email, &server.password];
    args.extend_from_slice(extra);
    python(&format!("{CLIENT}{script}"), &args)
}

/// With a limit of `MAX` failures, guessing with a login into the attacker's own account
/// before every (`MAX` - 1)th guess (which used to clear the address's whole count): the
/// first `MAX` guesses are answered as wrong passwords, all later ones are throttled, and
/// so is the attacker's own account from that address; the victim, from another address,
/// logs in.
fn own_logins_do_not_reset_the_count(protocol: &str, answers: &Answers) {
    const MAX: usize = 4;
    const GUESSES: usize = 12;
    let server = TestServer::start_with(&format!("[limits]\nmax_auth_failures = {MAX}\n"));
    server.add_user(ATTACKER, ATTACKER_PASSWORD);
    let out = attack(
        &server,
        protocol,
        RESET_ATTACK,
        &[
            ATTACKER,
            ATTACKER_PASSWORD,
            &GUESSES.to_string(),
            &(MAX - 1).to_string(),
        ],
    );
    let mut expected = Vec::new();
    for i in 0..GUESSES {
        if i > 0 && i % (MAX - 1) == 0 {
            // The attacker's own login succeeds until the address is blocked.
            let own = if i < MAX {
                answers.ok
            } else {
                answers.throttled
            };
            expected.push(format!("own {own}"));
        }
        let guess = if i < MAX {
            answers.wrong
        } else {
            answers.throttled
        };
        expected.push(format!("guess {guess}"));
    }
    expected.push(format!("victim-elsewhere {}", answers.ok));
    expected.push(format!("own-after {}", answers.throttled));
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
}

on_imap_and_smtp!(
    own_logins_do_not_reset_the_count:
    imap_own_logins_do_not_reset_the_count,
    smtp_own_logins_do_not_reset_the_count
);

/// 50 wrong passwords sent at once from one address, with the default limit of 10
/// failures: at most 10 are answered as wrong passwords (each reserved its slot before
/// the password was checked), the rest are throttled at once; the victim logs in from
/// another address meanwhile.
fn parallel_guesses_stay_within_the_limit(protocol: &str, answers: &Answers) {
    const PARALLEL: usize = 50;
    const MAX: usize = 10;
    // Room for 50 connections from one address at once.
    let server = TestServer::start_with(&format!(
        "[limits]\nmax_auth_failures = {MAX}\nmax_connections_per_ip = {}\n",
        PARALLEL * 2
    ));
    let out = attack(
        &server,
        protocol,
        PARALLEL_GUESSES,
        &[&PARALLEL.to_string()],
    );
    let guesses: Vec<&str> = out
        .lines()
        .filter_map(|line| line.strip_prefix("guess "))
        .collect();
    assert_eq!(guesses.len(), PARALLEL, "{out}");
    let wrong = guesses.iter().filter(|a| **a == answers.wrong).count();
    let throttled = guesses.iter().filter(|a| **a == answers.throttled).count();
    assert!((1..=MAX).contains(&wrong), "{wrong} answered wrong: {out}");
    assert_eq!(wrong + throttled, PARALLEL, "{out}");
    assert_eq!(
        common::labelled_line(&out, "victim-elsewhere"),
        format!("victim-elsewhere {}", answers.ok)
    );
}

on_imap_and_smtp!(
    parallel_guesses_stay_within_the_limit:
    imap_parallel_guesses_stay_within_the_limit,
    smtp_parallel_guesses_stay_within_the_limit
);
