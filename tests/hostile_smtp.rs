//! SMTP under hostile input (issue 13): what a sender on port 25 can send without a login
//! must get a protocol answer or a closed connection, never a crash, unbounded memory or a
//! server that stops serving others. Driven with Python's socket, smtplib and imaplib.

mod common;

use common::{TestServer, Transcript, python, python_client};

/// Python put before each script: `RawSmtp(port)` is a port-25 session over a plain
/// socket, greeting read; `command(line)` and `reply()` give the last line of a reply.
const RAW_SMTP: &str = r#"
import socket
class RawSmtp:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.f = self.s.makefile("rb")
        self.reply()
    def send(self, data):
        self.s.sendall(data)
    def reply(self):
        while True:
            line = self.f.readline()
            if line[3:4] != b"-":
                return line.decode("latin-1").rstrip("\r\n")
    def command(self, line):
        self.send(line + b"\r\n")
        return self.reply()
"#;

/// Runs `script` after [`RAW_SMTP`].
fn with_raw_smtp(script: &str) -> String {
    format!("{RAW_SMTP}{script}")
}

/// `\r.\r` inside DATA and a bare CR inside a BDAT chunk: neither ends the content, and
/// both are stored (and would be relayed) with CRLF. Prints the replies, then the stored
/// messages read back with imaplib, hex-encoded.
const BARE_CR: &str = r#"
import imaplib, ssl, sys
imaps, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = RawSmtp(smtp_port)
s.command(b"EHLO raw.example")
s.command(b"MAIL FROM:<a@example.net>")
s.command(b"RCPT TO:<" + user.encode() + b">")
print("data", s.command(b"DATA"))
# A receiver that ends lines at a bare CR would read `\r.\r` as the end of this message
# and the rest as commands; for us it is content.
s.send(b"Subject: bare cr\r\n\r\nreal\r.\rRSET\r\nMAIL FROM:<ceo@example.net>\r\n")
s.send(b".\r\nNOOP\r\n")
print("after-data", s.reply())
print("noop", s.reply())
chunk = b"Subject: chunk\r\n\r\nx\r.\ry\r"
s.command(b"MAIL FROM:<a@example.net>")
s.command(b"RCPT TO:<" + user.encode() + b">")
s.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
print("bdat", s.reply())
s.command(b"QUIT")
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)
m.select("INBOX", readonly=True)
typ, data = m.search(None, "ALL")
print("count", len(data[0].split()))
for n in data[0].split():
    typ, parts = m.fetch(n, "(BODY.PEEK[TEXT])")
    print("text", parts[0][1].hex())
"#;

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|at| hex.get(at..at + 2))
        .map(|pair| u8::from_str_radix(pair, 16).expect("hex"))
        .collect()
}

#[test]
fn bare_cr_does_not_end_data_and_is_stored_as_crlf() {
    let server = TestServer::start();
    let out = Transcript(python_client(&server, &with_raw_smtp(BARE_CR), &[]));
    assert!(out.line("data").starts_with("data 354"), "{out}");
    assert!(
        out.line("after-data").starts_with("after-data 250 2.0.0"),
        "{out}"
    );
    // The NOOP after the real end is answered as a NOOP: nothing inside DATA was a command.
    assert_eq!(out.line("noop"), "noop 250 2.0.0 OK", "{out}");
    assert!(out.line("bdat").starts_with("bdat 250 2.0.0"), "{out}");
    assert_eq!(out.line("count"), "count 2", "{out}");
    let texts: Vec<Vec<u8>> = out
        .0
        .lines()
        .filter_map(|l| l.strip_prefix("text "))
        .map(hex_decode)
        .collect();
    assert_eq!(
        texts,
        vec![
            b"real\r\n.\r\nRSET\r\nMAIL FROM:<ceo@example.net>\r\n".to_vec(),
            b"x\r\n.\r\ny\r\n".to_vec(),
        ],
        "{out}"
    );
}

/// Four DATA transfers on port 25 that stop before their end, 768 KiB each, against a
/// budget of 1 MiB for all content in flight; once the budget is full (seen on
/// `/metrics`), smtplib sends a message, then the four finish and print their replies.
const UNFINISHED_DATA: &str = r#"
import smtplib, sys, threading, time, urllib.request
smtp_port, http_port, user = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
BUDGET = 1024 * 1024
finish = threading.Event()
replies = {}

def in_flight():
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port, timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith("letterbox_smtp_data_in_flight_bytes "):
            return float(line.split()[1])
    return 0.0

def attacker(n):
    s = RawSmtp(smtp_port)
    for command in [b"EHLO attacker.example", b"MAIL FROM:<a@example.net>", b"RCPT TO:<" + user.encode() + b">", b"DATA"]:
        last = s.command(command)
    assert last.startswith("354"), last
    s.send(b"Subject: unfinished %d\r\n\r\n" % n + (b"x" * 78 + b"\r\n") * (768 * 1024 // 80))
    finish.wait()
    s.send(b".\r\n")
    replies[n] = s.reply()

threads = [threading.Thread(target=attacker, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
# A condition, not a measurement: the budget is (nearly) all taken.
deadline = time.monotonic() + 120
while in_flight() < BUDGET - 64 * 1024:
    assert time.monotonic() < deadline, "the budget never filled: %s" % in_flight()
    time.sleep(0.1)
print("budget-full")
s = smtplib.SMTP("127.0.0.1", smtp_port, timeout=120)
refused = s.sendmail("friend@example.net", [user], b"Subject: meanwhile\r\n\r\nstill served\r\n")
print("legit", refused)
s.quit()
finish.set()
for t in threads:
    t.join()
for n in sorted(replies):
    print("attacker", replies[n])
"#;

#[test]
fn unfinished_data_transfers_share_one_budget_and_others_are_still_served() {
    let server = TestServer::start_with(
        "[limits]\nmax_message_size = 1048576\nsmtp_data_in_flight = 1048576\n",
    );
    let out = python(
        &with_raw_smtp(UNFINISHED_DATA),
        &[
            &server.port("smtp").to_string(),
            &server.port("http").to_string(),
            &server.email,
        ],
    );
    assert!(out.contains("budget-full"), "{out}");
    // smtplib raises on any refusal; an empty dict is every recipient accepted.
    assert_eq!(common::labelled_line(&out, "legit"), "legit {}", "{out}");
    let attackers: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("attacker "))
        .collect();
    assert_eq!(attackers.len(), 4, "{out}");
    // 4 × 768 KiB cannot all be held in 1 MiB: whoever could not get budget in time was
    // read to the end and refused with RFC 3463's "mail system full".
    let refused = attackers
        .iter()
        .filter(|r| r.starts_with("452 4.3.1"))
        .count();
    let accepted = attackers
        .iter()
        .filter(|r| r.starts_with("250 2.0.0"))
        .count();
    assert_eq!(refused + accepted, 4, "{out}");
    assert!(refused >= 1, "{out}");
    let stored = common::block_on(common::inbox_messages(&server, &server.email));
    assert_eq!(stored.len(), 1 + accepted, "{out}");
    assert!(
        stored
            .iter()
            .any(|m| m.windows(18).any(|w| w == b"Subject: meanwhile")),
        "the other client's message is stored"
    );
}

/// Holds `slots` IMAP connections (each greeted by imaplib), then tries one more IMAP
/// connection, the submission port and port 25 from the same address; with `send` a
/// message over port 25 too.
const HOLD_IMAP_SLOTS: &str = r#"
import imaplib, smtplib, socket, sys
imap_port, submission_port, smtp_port, slots = (int(a) for a in sys.argv[1:5])
send = sys.argv[5] == "send"
held = [imaplib.IMAP4("127.0.0.1", imap_port, timeout=60) for _ in range(slots)]
print("held", len(held), held[0].welcome.decode())
extra = socket.create_connection(("127.0.0.1", imap_port), timeout=60)
print("imap-extra", extra.makefile("rb").readline().decode().strip())
def greeting(port):
    s = smtplib.SMTP(timeout=60)
    try:
        code, text = s.connect("127.0.0.1", port)
    except smtplib.SMTPConnectError as e:
        code, text = e.smtp_code, e.smtp_error
    return "%d %s" % (code, text.decode())
print("submission", greeting(submission_port))
print("mx", greeting(smtp_port))
if send:
    s = smtplib.SMTP("127.0.0.1", smtp_port, timeout=60)
    print("mx-send", s.sendmail("friend@example.net", ["you@localhost"], b"Subject: via 25\r\n\r\nhi\r\n"))
    s.quit()
"#;

/// Runs [`HOLD_IMAP_SLOTS`] holding `slots` IMAP connections.
fn hold_imap_slots(server: &TestServer, slots: usize, send: bool) -> String {
    python(
        HOLD_IMAP_SLOTS,
        &[
            &server.port("imap").to_string(),
            &server.port("submission").to_string(),
            &server.port("smtp").to_string(),
            &slots.to_string(),
            if send { "send" } else { "greet" },
        ],
    )
}

#[test]
fn imap_connections_cannot_take_port_25s_slots() {
    const SLOTS: usize = 3;
    let server = TestServer::start_with(&format!("[limits]\nmax_connections_per_ip = {SLOTS}\n"));
    let out = hold_imap_slots(&server, SLOTS, true);
    let line = |label: &str| common::labelled_line(&out, label);
    assert!(line("held").starts_with("held 3 * OK"), "{out}");
    // The address is at its limit for IMAP and the listeners that share its count...
    assert_eq!(line("imap-extra"), "imap-extra * BYE Too many connections");
    assert!(line("submission").starts_with("submission 421 "), "{out}");
    // ...but port 25 keeps slots of its own.
    assert!(line("mx").starts_with("mx 220 "), "{out}");
    assert_eq!(line("mx-send"), "mx-send {}", "{out}");
    let stored = common::block_on(common::inbox_messages(&server, &server.email));
    assert_eq!(stored.len(), 1);
}

#[test]
fn port_25_keeps_a_share_of_all_connections() {
    // 10 in all, of which 1 is port 25's alone; 9 IMAP connections take the rest.
    let server = TestServer::start_with("[limits]\nmax_connections = 10\n");
    let out = hold_imap_slots(&server, 9, false);
    let line = |label: &str| common::labelled_line(&out, label);
    assert!(line("held").starts_with("held 9 * OK"), "{out}");
    assert_eq!(line("imap-extra"), "imap-extra * BYE Too many connections");
    assert!(line("submission").starts_with("submission 421 "), "{out}");
    assert!(line("mx").starts_with("mx 220 "), "{out}");
}
