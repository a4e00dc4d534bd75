//! COMPRESS=DEFLATE (RFC 4978): a client speaking IMAP over raw deflate streams made
//! and read by Python's zlib (wbits -15, RFC 1951), the way Thunderbird and neomutt do:
//! commands after the OK go compressed, a large message comes back intact and smaller
//! on the wire, a second COMPRESS is refused, and a corrupt stream ends only that
//! session.

mod common;

use common::Transcript;

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
import smtplib, socket, ssl, sys, zlib

body = "".join("line %05d of a long and repetitive message body\r\n" % i for i in range(2000))
s = smtplib.SMTP("127.0.0.1", smtp_port)
s.sendmail("sender@example.net", [user], ("Subject: big\r\n\r\n" + body).encode())
s.quit()

class Client:
    def __init__(self):
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imaps)))
        self.buf = b""
        self.wire_in = 0
        self.deflate = None
        self.inflate = None
        self.readline()  # greeting

    def send(self, line):
        data = line.encode() + b"\r\n"
        if self.deflate:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.wire_in += len(chunk)
        self.buf += self.inflate.decompress(chunk) if self.inflate else chunk

    def readline(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def command(self, tag, text):
        """Sends one command; returns (tagged line, untagged lines, literal bytes)."""
        self.send(tag + " " + text)
        untagged, literals = [], []
        while True:
            line = self.readline()
            if line.endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1:-1])
                while len(self.buf) < size:
                    self.fill()
                literals.append(self.buf[:size])
                self.buf = self.buf[size:]
            if line.startswith(tag.encode() + b" "):
                return line.decode(), untagged, b"".join(literals)
            untagged.append(line)

c = Client()
assert c.command("a", "CAPABILITY")[1][0].find(b"COMPRESS=DEFLATE") > 0
print("login", c.command("b", 'LOGIN "%s" "%s"' % (user, password))[0])
print("compress", c.command("c", "COMPRESS DEFLATE")[0])
c.deflate = zlib.compressobj(wbits=-15)
c.inflate = zlib.decompressobj(wbits=-15)
print("select", c.command("d", "SELECT INBOX")[0])
before = c.wire_in
tagged, untagged, text = c.command("e", "FETCH 1 BODY.PEEK[TEXT]")
print("fetch", tagged, len(text), c.wire_in - before)
print("same-body", text.decode() == body)
print("again", c.command("f", "COMPRESS DEFLATE")[0])
print("noop", c.command("g", "NOOP")[0])
print("logout", c.command("h", "LOGOUT")[0])

# A corrupt deflate stream: that session ends, the server goes on.
bad = Client()
bad.command("a", 'LOGIN "%s" "%s"' % (user, password))
bad.command("b", "COMPRESS DEFLATE")
bad.sock.sendall(b"\xff\xff\xff\xff garbage that is not deflate")
try:
    bad.readline()
    print("corrupt", "answered")
except (EOFError, ConnectionError, ssl.SSLError):
    print("corrupt", "closed")
fresh = Client()
print("fresh", fresh.command("a", 'LOGIN "%s" "%s"' % (user, password))[0])
"#;

#[test]
fn deflate_compressed_session_reads_mail() {
    let out = Transcript::of_script(SESSION);
    assert!(out.line("login").starts_with("login b OK"), "{out}");
    assert_eq!(out.line("compress"), "compress c OK DEFLATE active");
    assert!(out.line("select").starts_with("select d OK"), "{out}");
    let fetch = out.line("fetch");
    let fields: Vec<&str> = fetch.split_whitespace().collect();
    let (text_len, wire_len): (usize, usize) = (
        fields[fields.len() - 2].parse().expect("text length"),
        fields[fields.len() - 1].parse().expect("wire length"),
    );
    assert!(fetch.starts_with("fetch e OK"), "{fetch}");
    assert_eq!(text_len, 2000 * 50, "{fetch}");
    // Repetitive text deflates well: the wire carries far less than the message.
    assert!(wire_len * 4 < text_len, "not compressed: {fetch}");
    assert_eq!(out.line("same-body"), "same-body True");
    assert!(
        out.line("again").contains("NO [COMPRESSIONACTIVE]"),
        "{out}"
    );
    assert!(out.line("noop").starts_with("noop g OK"), "{out}");
    assert!(out.line("logout").starts_with("logout h OK"), "{out}");
    assert_eq!(out.line("corrupt"), "corrupt closed");
    assert!(out.line("fresh").starts_with("fresh a OK"), "{out}");
}
