//! MULTIAPPEND (RFC 3502): several messages in one APPEND, with synchronising literals
//! (each answered by a continuation) and with LITERAL+; all are stored with one
//! APPENDUID set, or, when one cannot be (over quota), none is. The client is Python's
//! imaplib for reading back and a raw socket for the APPENDs (imaplib sends one
//! literal per command).

mod common;

use common::{TestServer, Transcript, labelled_line};

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
import socket

sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imaps)))
reader = sock.makefile("rb")
reader.readline()

def tagged(tag):
    while True:
        line = reader.readline().decode().rstrip("\r\n")
        if line.startswith(tag + " "):
            return line

def send_sync(tag, head, messages):
    """APPEND with synchronising literals: waits for `+` before each message."""
    parts = [head]
    for opts, body in messages:
        parts[-1] += " " + opts + ("{%d}" % len(body))
        sock.sendall(parts[-1].encode() + b"\r\n")
        cont = reader.readline()
        if not cont.startswith(b"+"):
            return "no continuation: " + cont.decode().strip()
        parts.append("")
        sock.sendall(body)
    sock.sendall(b"\r\n")
    return tagged(tag)

def send_plus(tag, head, messages):
    data = head.encode()
    for opts, body in messages:
        data += b" " + opts.encode() + b"{%d+}\r\n" % len(body) + body
    sock.sendall(data + b"\r\n")
    return tagged(tag)

sock.sendall(('a LOGIN "%s" "%s"\r\n' % (user, password)).encode())
print("login", tagged("a"))
print("sync", send_sync("b", "b APPEND Drafts", [
    ("(\\Draft) ", b"Subject: one\r\n\r\nfirst\r\n"),
    ("", b"Subject: two\r\n\r\nsecond\r\n"),
    ('(\\Seen $Work) "01-Jan-2026 10:00:00 +0000" ', b"Subject: three\r\n\r\nthird\r\n"),
]))
print("plus", send_plus("c", "c APPEND Archive", [
    ("", b"Subject: four\r\n\r\nfourth\r\n"),
    ("(\\Flagged) ", b"Subject: five\r\n\r\nfifth\r\n"),
]))
print("missing", send_plus("d", "d APPEND Nowhere", [("", b"Subject: x\r\n\r\nx\r\n"), ("", b"Subject: y\r\n\r\ny\r\n")]))
sys.stdout.flush()
if len(sys.argv) > 5:
    # The administrator set a 1 KB quota meanwhile: the second message does not fit.
    input()
    print("over", send_plus("e", "e APPEND Trash", [
        ("", b"Subject: small\r\n\r\nsmall\r\n"),
        ("", b"Subject: big\r\n\r\n" + b"z" * 2000 + b"\r\n"),
    ]))
sock.close()

m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)
m.select("Drafts", readonly=True)
print("drafts", m.fetch("1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[TEXT])"))
print("trash", m.status("Trash", "(MESSAGES)"))
m.logout()
"#;

#[test]
fn multiappend_stores_all_or_nothing() {
    let out = Transcript::of_script(SESSION);
    assert!(out.line("login").starts_with("login a OK"), "{out}");
    let sync = out.line("sync");
    assert!(
        sync.contains("b OK [APPENDUID ") && sync.ends_with("APPEND completed"),
        "{sync}"
    );
    assert!(sync.contains(" 1:3]"), "{sync}");
    assert!(out.line("plus").contains(" 1:2]"), "{out}");
    assert!(out.line("missing").contains("d NO [TRYCREATE]"), "{out}");
    let drafts = out.line("drafts");
    // RFC 3501 §2.3.2: the session that selects Drafts first is told they are \Recent.
    for expected in [
        "UID 1 FLAGS (\\\\Draft \\\\Recent)",
        "UID 2 FLAGS (\\\\Recent)",
        "UID 3 FLAGS ($Work \\\\Seen \\\\Recent) INTERNALDATE \" 1-Jan-2026 10:00:00 +0000\"",
        "first",
        "second",
        "third",
    ] {
        assert!(drafts.contains(expected), "{expected} not in {drafts}");
    }
    assert!(out.line("trash").contains("MESSAGES 0"), "{out}");
}

#[test]
fn multiappend_over_quota_stores_nothing() {
    use std::io::{BufRead, BufReader, Write};
    let server = TestServer::start();
    let imaps = server.port("imaps").to_string();
    let smtp = server.port("smtp").to_string();
    let script = format!("{}{SESSION}", common::PY_PRELUDE);
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            &script,
            &imaps,
            &smtp,
            &server.email,
            &server.password,
            "quota",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut out = String::new();
    while !out.contains("missing ") {
        let mut next = String::new();
        assert!(stdout.read_line(&mut next).expect("read") > 0, "{out}");
        out.push_str(&next);
    }
    // Usage is now about 250 bytes; 1 KB leaves room for the small message only.
    server.admin_ok(&["user", "quota", &server.email, "1024"]);
    writeln!(child.stdin.take().expect("stdin")).expect("write");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
    out.push_str(&rest);
    assert!(child.wait().expect("wait").success(), "{out}");
    assert!(
        labelled_line(&out, "over").contains("e NO [OVERQUOTA]"),
        "{out}"
    );
    // Neither the small nor the big message went in.
    assert!(labelled_line(&out, "trash").contains("MESSAGES 0"), "{out}");
}
