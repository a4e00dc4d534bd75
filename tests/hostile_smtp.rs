//! SMTP under hostile input (issue 13): what a sender on port 25 can send without a login
//! must get a protocol answer or a closed connection, never a crash, unbounded memory or a
//! server that stops serving others. Driven with Python's socket, smtplib and imaplib.

mod common;

use common::{TestServer, python_client};

/// `\r.\r` inside DATA and a bare CR inside a BDAT chunk: neither ends the content, and
/// both are stored (and would be relayed) with CRLF. Prints the replies, then the stored
/// messages read back with imaplib, hex-encoded.
const BARE_CR: &str = r#"
import imaplib, socket, ssl, sys
imaps, smtp_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", smtp_port), timeout=30)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return line.decode("latin-1").rstrip("\r\n")
reply()
s.sendall(b"EHLO raw.example\r\n"); reply()
s.sendall(b"MAIL FROM:<a@example.net>\r\n"); reply()
s.sendall(b"RCPT TO:<" + user.encode() + b">\r\n"); reply()
s.sendall(b"DATA\r\n"); print("data", reply())
# A receiver that ends lines at a bare CR would read `\r.\r` as the end of this message
# and the rest as commands; for us it is content.
s.sendall(b"Subject: bare cr\r\n\r\nreal\r.\rRSET\r\nMAIL FROM:<ceo@example.net>\r\n")
s.sendall(b".\r\nNOOP\r\n")
print("after-data", reply())
print("noop", reply())
chunk = b"Subject: chunk\r\n\r\nx\r.\ry\r"
s.sendall(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<" + user.encode() + b">\r\n")
reply(); reply()
s.sendall(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
print("bdat", reply())
s.sendall(b"QUIT\r\n"); reply()
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
    let out = python_client(&server, BARE_CR, &[]);
    let line = |label: &str| common::labelled_line(&out, label);
    assert!(line("data").starts_with("data 354"), "{out}");
    assert!(
        line("after-data").starts_with("after-data 250 2.0.0"),
        "{out}"
    );
    // The NOOP after the real end is answered as a NOOP: nothing inside DATA was a command.
    assert_eq!(line("noop"), "noop 250 2.0.0 OK", "{out}");
    assert!(line("bdat").starts_with("bdat 250 2.0.0"), "{out}");
    assert_eq!(line("count"), "count 2", "{out}");
    let texts: Vec<Vec<u8>> = out
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
