//! A raw IMAP client for the differential tests: it sends command lines as they are
//! written and hands back every response line exactly as the server sent it, with a
//! literal's octets inline after its `{n}` (CR, LF, backslash and non-ASCII octets of the
//! literal escaped as `\r`, `\n`, `\\`, `\xNN`, so that one response is one line).
//! Plain TCP on loopback; blocking reads with a deadline, so a server that does not
//! answer gives a `(timeout)` line instead of a hung test.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long one command may take to be answered (a debug build on a busy machine).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// What a response line is called when the server said nothing in time.
pub const TIMEOUT: &str = "(timeout)";
/// What a response line is called when the server closed the connection.
pub const CLOSED: &str = "(connection closed)";

/// A piece of a command: text sent as is, or a literal sent after the server's `+`.
pub enum Piece<'a> {
    Text(&'a str),
    /// `{n}` then the octets (RFC 9051 §4.3).
    Literal(&'a [u8]),
    /// `~{n}` then the octets: RFC 3516 §4.4 literal8, for APPEND of binary content.
    Literal8(&'a [u8]),
}

pub struct RawImap {
    stream: TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

impl RawImap {
    /// Connects to 127.0.0.1:`port`; returns the client and the greeting.
    pub fn connect(port: u16) -> (RawImap, String) {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut client = RawImap {
            stream,
            buf: Vec::new(),
            closed: false,
        };
        let greeting = client.response(Instant::now() + ANSWER_TIMEOUT);
        (client, greeting)
    }

    /// Sends `tag` and `pieces` as one command and returns every line up to and
    /// including the tagged one (continuation requests for literals included). A
    /// command refused before its literal was sent ends with that tagged answer.
    pub fn command(&mut self, tag: &str, pieces: &[Piece]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut out = format!("{tag} ").into_bytes();
        for piece in pieces {
            let (prefix, octets) = match piece {
                Piece::Text(text) => {
                    out.extend_from_slice(text.as_bytes());
                    continue;
                }
                Piece::Literal(octets) => ("", octets),
                Piece::Literal8(octets) => ("~", octets),
            };
            out.extend_from_slice(format!("{prefix}{{{}}}\r\n", octets.len()).as_bytes());
            self.send(&out);
            loop {
                let line = self.response(Instant::now() + ANSWER_TIMEOUT);
                let go_on = line.starts_with('+');
                let refused = is_end(&line, tag);
                lines.push(line);
                if go_on {
                    break;
                }
                if refused {
                    return lines;
                }
            }
            out = octets.to_vec();
        }
        out.extend_from_slice(b"\r\n");
        self.send(&out);
        lines.extend(self.until_tagged(tag));
        lines
    }

    /// Sends `tag command` and returns every line up to the continuation request that
    /// starts the command's second phase (IDLE's `+ idling`), or up to the tagged answer
    /// when the server refused it.
    pub fn start(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes());
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let mut lines = Vec::new();
        loop {
            let line = self.response(deadline);
            let end = line.starts_with('+') || is_end(&line, tag);
            lines.push(line);
            if end {
                return lines;
            }
        }
    }

    /// Every line up to and including the one tagged `tag`.
    pub fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let mut lines = Vec::new();
        loop {
            let line = self.response(deadline);
            let end = is_end(&line, tag);
            lines.push(line);
            if end {
                return lines;
            }
        }
    }

    /// Sends a bare line (IDLE's `DONE`).
    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes());
    }

    /// What the server sends unasked (during IDLE): waits up to `first` for a line,
    /// then takes lines until none came for `quiet`. No line at all is an empty list.
    pub fn unsolicited(&mut self, first: Duration, quiet: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        let mut deadline = Instant::now() + first;
        loop {
            let line = self.response(deadline);
            if line == TIMEOUT {
                return lines;
            }
            let closed = line == CLOSED;
            lines.push(line);
            if closed {
                return lines;
            }
            deadline = Instant::now() + quiet;
        }
    }

    fn send(&mut self, octets: &[u8]) {
        if self.stream.write_all(octets).is_err() {
            self.closed = true;
        }
    }

    /// One response: a line, with each literal it announces read and put inline.
    fn response(&mut self, deadline: Instant) -> String {
        let mut text = String::new();
        loop {
            let Some(line) = self.line(deadline) else {
                return if self.closed { CLOSED } else { TIMEOUT }.to_owned();
            };
            let line = String::from_utf8_lossy(&line).into_owned();
            let Some(size) = literal_size(&line) else {
                text.push_str(&line);
                return text;
            };
            text.push_str(&line);
            let Some(octets) = self.octets(size, deadline) else {
                return if self.closed { CLOSED } else { TIMEOUT }.to_owned();
            };
            text.push_str(&escape(&octets));
        }
    }

    /// The next line without its CRLF.
    fn line(&mut self, deadline: Instant) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Some(line);
            }
            self.fill(deadline)?;
        }
    }

    fn octets(&mut self, size: usize, deadline: Instant) -> Option<Vec<u8>> {
        while self.buf.len() < size {
            self.fill(deadline)?;
        }
        Some(self.buf.drain(..size).collect())
    }

    /// Reads more into `buf`; None at the deadline or when the server closed.
    fn fill(&mut self, deadline: Instant) -> Option<()> {
        if self.closed {
            return None;
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        self.stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("set timeout");
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                None
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(_) => {
                self.closed = true;
                None
            }
        }
    }
}

/// The tagged answer to `tag`, or no answer coming.
fn is_end(line: &str, tag: &str) -> bool {
    line.strip_prefix(tag)
        .is_some_and(|rest| rest.starts_with(' '))
        || line == TIMEOUT
        || line == CLOSED
}

/// `n` when the line ends with a literal announcement `{n}` (or `~{n}`).
fn literal_size(line: &str) -> Option<usize> {
    let open = line.strip_suffix('}')?.rfind('{')?;
    line[open + 1..line.len() - 1].parse().ok()
}

/// A literal's octets as one line of text.
pub fn escape(octets: &[u8]) -> String {
    let mut out = String::new();
    for &byte in octets {
        match byte {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out
}
