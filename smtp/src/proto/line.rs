//! The input buffer of a session and command-line framing (RFC 5321 §2.3.8, §4.5.3.1.4).
//!
//! Bytes read from the network are appended here; the session takes whole lines out
//! (commands, SASL responses) or raw bytes (DATA, BDAT). A line longer than the limit is
//! never buffered whole: its bytes are dropped as they arrive and the caller hears
//! [`Line::TooLong`] once the line's end is seen, so the stream keeps its framing and
//! the reply lands in the right place in a pipelined exchange.

/// One framed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A whole line including its terminator (`\n`, normally preceded by `\r`).
    Complete(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded up to and including its
    /// terminator.
    TooLong,
}

#[derive(Debug, Default)]
pub struct InputBuffer {
    buf: Vec<u8>,
    /// Inside an overlong line: drop bytes until its `\n`.
    discarding: bool,
}

impl InputBuffer {
    pub fn new() -> InputBuffer {
        InputBuffer::default()
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        // Inside an overlong line only the bytes after its terminator matter.
        if self.discarding && !bytes.contains(&b'\n') {
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next line of at most `limit` octets including CRLF, if a whole one is here.
    ///
    /// Lines end at LF; a command line ended by a bare LF is accepted as well (robustness:
    /// many clients do it, and outside DATA a bare LF cannot smuggle anything).
    pub fn next_line(&mut self, limit: usize) -> Option<Line> {
        if self.discarding {
            let end = self.buf.iter().position(|&b| b == b'\n');
            match end {
                Some(end) => {
                    self.buf.drain(..=end);
                    self.discarding = false;
                    return Some(Line::TooLong);
                }
                None => {
                    self.buf.clear();
                    return None;
                }
            }
        }
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(end) if end < limit => Some(Line::Complete(self.buf.drain(..=end).collect())),
            Some(end) => {
                self.buf.drain(..=end);
                Some(Line::TooLong)
            }
            None if self.buf.len() >= limit => {
                // Already past the limit without a terminator: drop what we have and
                // keep dropping until the line ends.
                self.buf.clear();
                self.discarding = true;
                None
            }
            None => None,
        }
    }

    /// The buffered bytes, for DATA and BDAT; take them with [`InputBuffer::consume`].
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn consume(&mut self, count: usize) {
        let count = count.min(self.buf.len());
        self.buf.drain(..count);
    }

    /// RFC 3207 §4.2 (CVE-2011-0411): whatever the client sent after STARTTLS and before
    /// the handshake is thrown away, never read as commands under TLS.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && !self.discarding
    }
}

/// A command line without its CRLF (or bare LF).
pub fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(s: &str) -> Option<Line> {
        Some(Line::Complete(s.as_bytes().to_vec()))
    }

    #[test]
    fn lines_come_out_whole_and_in_order() {
        let mut input = InputBuffer::new();
        input.extend(b"EHLO a\r\nMAIL FR");
        assert_eq!(input.next_line(512), complete("EHLO a\r\n"));
        assert_eq!(input.next_line(512), None);
        input.extend(b"OM:<>\r\nQUIT\n");
        assert_eq!(input.next_line(512), complete("MAIL FROM:<>\r\n"));
        assert_eq!(input.next_line(512), complete("QUIT\n"));
        assert_eq!(input.next_line(512), None);
        assert!(input.is_empty());
    }

    #[test]
    fn limit_counts_the_crlf() {
        let mut input = InputBuffer::new();
        let line = format!("{}\r\n", "a".repeat(510));
        input.extend(line.as_bytes());
        assert_eq!(input.next_line(512), complete(&line));
        let line = format!("{}\r\n", "a".repeat(511));
        input.extend(line.as_bytes());
        assert_eq!(input.next_line(512), Some(Line::TooLong));
    }

    #[test]
    fn overlong_line_is_discarded_to_its_end_across_reads() {
        let mut input = InputBuffer::new();
        input.extend(&[b'x'; 600]);
        assert_eq!(input.next_line(512), None);
        input.extend(&[b'y'; 10_000]);
        assert_eq!(input.next_line(512), None);
        assert!(input.bytes().is_empty(), "nothing of the long line is kept");
        input.extend(b"yyy\r\nNOOP\r\n");
        assert_eq!(input.next_line(512), Some(Line::TooLong));
        assert_eq!(input.next_line(512), complete("NOOP\r\n"));
    }

    #[test]
    fn clear_drops_pipelined_input() {
        let mut input = InputBuffer::new();
        input.extend(b"MAIL FROM:<evil@example>\r\n");
        input.clear();
        assert_eq!(input.next_line(512), None);
        assert!(input.is_empty());
    }

    #[test]
    fn consume_takes_raw_bytes() {
        let mut input = InputBuffer::new();
        input.extend(b"abcdef");
        input.consume(4);
        assert_eq!(input.bytes(), b"ef");
        input.consume(100);
        assert!(input.is_empty());
    }

    #[test]
    fn trims_crlf_and_bare_lf() {
        assert_eq!(trim_line_end(b"abc\r\n"), b"abc");
        assert_eq!(trim_line_end(b"abc\n"), b"abc");
        assert_eq!(trim_line_end(b"abc"), b"abc");
    }
}
