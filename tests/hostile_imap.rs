//! IMAP under hostile input (issue 13): what an anonymous peer or a logged-in client can
//! make the server hold or spend. Each test sends the attack over a real socket, checks
//! the protocol answer, and then checks that another client is still served.

mod common;

use common::{TestServer, python_client};

/// Runs a Python `script` against a new server (its argv: IMAPS port, SMTP port, user,
/// password, plain IMAP port, which it has as `port`) and checks the lines it prints.
fn script_prints(script: &str, expected: &[&str]) {
    let server = TestServer::start();
    let imap = server.port("imap").to_string();
    let out = python_client(
        &server,
        &format!("port = int(sys.argv[5])\n{script}"),
        &[&imap],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, expected, "{out}");
}

/// Before login: an APPEND announcing a 50 MB literal gets no continuation but a tagged
/// BAD at once; a non-synchronising one is answered and its octets skipped, so the next
/// command is read where the client put it; a password sent as a literal still logs in,
/// and after that APPEND works. Another client (imaplib) logs in meanwhile.
const APPEND_BEFORE_LOGIN: &str = r#"
import socket

s = socket.create_connection(("127.0.0.1", port), timeout=60)
f = s.makefile("rb")
assert f.readline().startswith(b"* OK"), "greeting"

def line():
    return f.readline().decode().rstrip("\r\n")

s.sendall(b"a APPEND INBOX {52428800}\r\n")
print("append-sync", line())
s.sendall(b"b APPEND INBOX {20+}\r\n" + b"x" * 20 + b"\r\nc NOOP\r\n")
print("append-nonsync", line())
print("after-nonsync", line())

# Another client is served while this one holds its connection.
m = imaplib.IMAP4("127.0.0.1", port)
typ, _ = m.login(user, password)
print("other-login", typ)
typ, data = m.select("INBOX")
print("other-select", typ, data)

# LOGIN with the password as a synchronising literal (RFC 9051 §6.2.3).
pw = password.encode()
s.sendall(b'd LOGIN "' + user.encode() + b'" {' + str(len(pw)).encode() + b"}\r\n")
print("login-continuation", line()[:1])
s.sendall(pw + b"\r\n")
print("login", line().split(" ")[1])
message = b"Subject: after login\r\n\r\nhello\r\n"
s.sendall(b"e APPEND INBOX {" + str(len(message)).encode() + b"}\r\n")
print("append-continuation", line()[:1])
s.sendall(message + b"\r\n")
print("append", line().split(" ")[1])
s.sendall(b"f LOGOUT\r\n")
typ, data = m.select("INBOX")
print("other-exists", data[0].decode())
m.logout()
"#;

#[test]
fn append_before_login_gets_no_continuation() {
    script_prints(
        APPEND_BEFORE_LOGIN,
        &[
            "append-sync a BAD Log in first",
            "append-nonsync b BAD Log in first",
            "after-nonsync c OK Done",
            "other-login OK",
            "other-select OK [b'0']",
            "login-continuation +",
            "login OK",
            "append-continuation +",
            "append OK",
            "other-exists 1",
        ],
    );
}

/// Reads one IMAP response from a raw socket up to the tagged line, counting literals
/// and their sizes without keeping their octets (the answer can be hundreds of MB).
const READ_LITERALS: &str = r#"
import re, socket

def read_response(f, tag):
    sizes = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        while True:
            marker = re.search(rb"\{(\d+)\}\r\n$", line)
            if not marker:
                break
            left = int(marker.group(1))
            sizes.append(left)
            while left:
                chunk = f.read(min(left, 1 << 20))
                assert chunk, "connection closed in a literal"
                left -= len(chunk)
            line = f.readline()
        if line.startswith(tag + b" "):
            return line.decode().rstrip("\r\n"), sizes
"#;

/// FETCH of one 1 MB message with BODY.PEEK[] 400 times: every literal arrives whole
/// (the response is written item by item, with backpressure, not built first), and
/// another client is served afterwards.
const FETCH_400_BODIES: &str = r#"
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
line = b"x" * 76 + b"\r\n"
message = b"Subject: big\r\n\r\n" + line * (1_000_000 // len(line))
typ, _ = m.append("INBOX", None, None, message)
print("append", typ)

s = socket.create_connection(("127.0.0.1", port), timeout=300)
f = s.makefile("rb")
f.readline()
s.sendall(b'a LOGIN "' + user.encode() + b'" "' + password.encode() + b'"\r\n')
print("login", read_response(f, b"a")[0].split(" ")[1])
s.sendall(b"b SELECT INBOX\r\n")
read_response(f, b"b")
s.sendall(b"c FETCH 1 (" + b" ".join([b"BODY.PEEK[]"] * 400) + b")\r\n")
done, sizes = read_response(f, b"c")
print("fetch", done)
print("literals", len(sizes), "all-whole", all(size == len(message) for size in sizes))
s.close()

typ, data = m.select("INBOX")
print("other-select", typ, data[0].decode())
typ, data = m.fetch("1", "(RFC822.SIZE)")
print("other-size", typ, data[0].decode())
m.logout()
"#;

#[test]
fn fetch_of_400_bodies_is_answered_whole_and_others_are_served() {
    script_prints(
        &format!("{READ_LITERALS}{FETCH_400_BODIES}"),
        &[
            "append OK",
            "login OK",
            "fetch c OK FETCH completed",
            "literals 400 all-whole True",
            "other-select OK 1",
            "other-size OK 1 (RFC822.SIZE 999976)",
        ],
    );
}

/// SEARCH BODY with a needle of the largest size over a 10 MB body on one line is
/// answered (a linear-time search, off the async workers); one octet more is a BAD; the
/// SEARCH suites of imaplib still pass (tests/imap_imaplib.rs).
const SEARCH_LONG_NEEDLE: &str = r#"
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
body = b"a" * (10 * 1024 * 1024)
typ, _ = m.append("INBOX", None, None, b"Subject: one line\r\n\r\n" + body + b"B\r\n")
print("append", typ)
m.select("INBOX")
needle = "A" * 1023 + "b"
typ, data = m.search(None, "BODY", '"' + needle + '"')
print("found", typ, data)
typ, data = m.search(None, "BODY", '"' + needle[1:] + 'x"')
print("not-found", typ, data)
try:
    m.search(None, "BODY", '"' + needle + 'b"')
    print("too-long accepted")
except imaplib.IMAP4.error as e:
    print("too-long", e)
other = imaplib.IMAP4("127.0.0.1", port)
print("other-login", other.login(user, password)[0])
other.logout()
m.logout()
"#;

#[test]
fn search_with_the_longest_needle_over_a_long_line() {
    script_prints(
        SEARCH_LONG_NEEDLE,
        &[
            "append OK",
            "found OK [b'1']",
            "not-found OK [b'']",
            "too-long SEARCH command error: BAD [b'Search string too long']",
            "other-login OK",
        ],
    );
}
