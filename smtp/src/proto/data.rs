//! Message content: DATA with its dot-stuffing (RFC 5321 §4.1.1.4, §4.5.2) and the size
//! limit shared with BDAT chunks (RFC 3030, RFC 1870).
//!
//! Policy for line endings inside DATA (SMTP smuggling, CVE-2023-51766): the content ends
//! only at `<CRLF>.<CRLF>`. A bare LF or a bare CR never starts or ends a line here, so
//! `\n.\n`, `\n.\r\n` and `\r.\r` are ordinary content. This decoder passes bare LFs and
//! CRs through; storage then writes each bare LF and each bare CR as CRLF (RFC 5322 §2.3,
//! see `storage::Store::deliver`), for DATA and BDAT alike, so the smuggled lines end up
//! as plain text inside the one message, and a later relay dot-stuffs them. 8-bit octets are kept byte for
//! byte. The 1000-octet text line limit of RFC 5321 §4.5.3.1.6 is not enforced (it is a
//! minimum we must accept, and real mail exceeds it); only the message size is.
//!
//! We do not use `smtp_proto::request::receiver::DataReceiver`: it starts as if it were
//! in the middle of a line, so a message whose first line begins with `.` is not
//! unstuffed and an empty message (`.` right after `354`) never ends.

/// Why received content is not handed over: the stream was read to its end all the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over the size limit; the octets received in all.
    TooBig(usize),
    /// The content was given up for lack of memory (the driver's byte budget).
    Abandoned,
}

/// The largest piece received content is kept in. Content is kept in pieces, each at
/// most as large as all before it (from [`FIRST_PIECE`]) and never above this, so the
/// memory held follows the octets received: one `Vec` that doubles as it grows holds up
/// to twice its octets and copies them all at each step (a 45 MB message briefly held
/// 32 + 64 MiB), which the byte budget (`crate::budget`) does not see.
const MAX_PIECE: usize = 1024 * 1024;
/// The first piece: most messages fit in one.
const FIRST_PIECE: usize = 16 * 1024;

/// The received content, up to a limit: beyond it octets are counted and dropped, so
/// that reading can go on to the end of the data without holding it in memory.
#[derive(Debug)]
pub struct BodyBuffer {
    limit: usize,
    /// The content kept so far, in pieces of at most [`MAX_PIECE`] octets.
    pieces: Vec<Vec<u8>>,
    /// Octets kept in `pieces`.
    kept: usize,
    /// Octets received in total, kept or not.
    received: usize,
    /// Given up: nothing more is kept (see [`BodyBuffer::abandon`]).
    abandoned: bool,
}

impl BodyBuffer {
    pub fn new(limit: usize) -> BodyBuffer {
        BodyBuffer {
            limit,
            pieces: Vec::new(),
            kept: 0,
            received: 0,
            abandoned: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.received = self.received.saturating_add(bytes.len());
        if self.is_discarding() {
            // Free what we held: the message will be refused anyway.
            self.drop_kept();
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = self
                .pieces
                .last()
                .map_or(0, |piece| piece.capacity() - piece.len());
            if room == 0 {
                let size = self.kept.clamp(FIRST_PIECE, MAX_PIECE);
                self.pieces.push(Vec::with_capacity(size));
                continue;
            }
            let (now, later) = rest.split_at(room.min(rest.len()));
            if let Some(piece) = self.pieces.last_mut() {
                piece.extend_from_slice(now);
            }
            self.kept += now.len();
            rest = later;
        }
    }

    fn drop_kept(&mut self) {
        if !self.pieces.is_empty() {
            self.pieces = Vec::new();
            self.kept = 0;
        }
    }

    /// Drops what was kept and keeps nothing more; octets are still counted.
    pub fn abandon(&mut self) {
        self.abandoned = true;
        self.drop_kept();
    }

    pub fn is_over_limit(&self) -> bool {
        self.received > self.limit
    }

    /// True when what arrives from now on is counted but not kept.
    pub fn is_discarding(&self) -> bool {
        self.abandoned || self.is_over_limit()
    }

    pub fn received(&self) -> usize {
        self.received
    }

    /// The content, or why there is none.
    pub fn finish(mut self) -> Result<Vec<u8>, BodyError> {
        if self.is_over_limit() {
            Err(BodyError::TooBig(self.received))
        } else if self.abandoned {
            Err(BodyError::Abandoned)
        } else if self.pieces.len() == 1 {
            Ok(self.pieces.pop().unwrap_or_default())
        } else {
            // Each piece is freed once copied: at most one piece more than the content.
            let mut body = Vec::with_capacity(self.kept);
            for piece in self.pieces {
                body.extend_from_slice(&piece);
            }
            Ok(body)
        }
    }
}

/// Where we are relative to the `<CRLF>.<CRLF>` terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotState {
    /// Just after a CRLF (or at the very start, right after the DATA command's CRLF).
    LineStart,
    /// Inside a line.
    Text,
    /// After a CR inside a line.
    Cr,
    /// A line began with `.`; the dot is held back.
    Dot,
    /// A line began with `.` then CR; both held back.
    DotCr,
}

/// Undoes dot-stuffing and finds the end of DATA content; sans-I/O.
#[derive(Debug)]
pub struct DotDecoder {
    state: DotState,
    body: BodyBuffer,
    done: bool,
}

impl DotDecoder {
    pub fn new(limit: usize) -> DotDecoder {
        DotDecoder {
            state: DotState::LineStart,
            body: BodyBuffer::new(limit),
            done: false,
        }
    }

    /// Takes bytes from `input`; returns how many it used and whether the terminator was
    /// seen. Bytes after the terminator are not used (they are the next commands).
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        if self.done {
            return (0, true);
        }
        let mut at = 0;
        // Runs of plain text are copied in one go.
        let mut run_start = 0;
        while let Some(&byte) = input.get(at) {
            match self.state {
                DotState::Text => {
                    // Only a CR can end the run: skip to the next one in one search.
                    match memchr::memchr(b'\r', input.get(at..).unwrap_or_default()) {
                        Some(offset) => {
                            self.state = DotState::Cr;
                            at += offset + 1;
                        }
                        None => at = input.len(),
                    }
                    continue;
                }
                DotState::Cr => {
                    self.state = match byte {
                        b'\n' => DotState::LineStart,
                        b'\r' => DotState::Cr,
                        _ => DotState::Text,
                    };
                    at += 1;
                    continue;
                }
                DotState::LineStart => {
                    if byte == b'.' {
                        self.flush_run(input, run_start, at);
                        self.state = DotState::Dot;
                        at += 1;
                        run_start = at;
                    } else {
                        self.state = if byte == b'\r' {
                            DotState::Cr
                        } else {
                            DotState::Text
                        };
                        at += 1;
                    }
                }
                DotState::Dot => {
                    if byte == b'\r' {
                        self.state = DotState::DotCr;
                        at += 1;
                        run_start = at;
                    } else {
                        // RFC 5321 §4.5.2: a line starting with a period and holding
                        // more characters loses the first period. The byte itself is
                        // content (a bare LF here is content too, not a line end).
                        self.state = DotState::Text;
                        run_start = at;
                        at += 1;
                    }
                }
                DotState::DotCr => {
                    if byte == b'\n' {
                        // `<CRLF>.<CRLF>`: the CRLF before the dot belongs to the content.
                        self.done = true;
                        return (at + 1, true);
                    }
                    // `.` CR and more on the line: drop the dot, keep the CR, and read
                    // this byte as one following a CR.
                    self.body.push(b"\r");
                    self.state = match byte {
                        b'\r' => DotState::Cr,
                        _ => DotState::Text,
                    };
                    run_start = at;
                    at += 1;
                }
            }
        }
        self.flush_run(input, run_start, at);
        (at, false)
    }

    fn flush_run(&mut self, input: &[u8], start: usize, end: usize) {
        if let Some(run) = input.get(start..end) {
            self.body.push(run);
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// See [`BodyBuffer::is_discarding`].
    pub fn is_discarding(&self) -> bool {
        self.body.is_discarding()
    }

    /// See [`BodyBuffer::abandon`].
    pub fn abandon(&mut self) {
        self.body.abandon();
    }

    pub fn finish(self) -> Result<Vec<u8>, BodyError> {
        self.body.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The content (or its size when too big) and the bytes left after the terminator.
    type Decoded = (Result<Vec<u8>, BodyError>, Vec<u8>);

    /// Feeds `chunks` one by one; returns the content and what was left unused.
    fn decode(chunks: &[&[u8]], limit: usize) -> Option<Decoded> {
        let mut decoder = DotDecoder::new(limit);
        for (index, chunk) in chunks.iter().enumerate() {
            let (used, done) = decoder.feed(chunk);
            if done {
                let mut rest = chunk.get(used..).unwrap_or_default().to_vec();
                for later in chunks.iter().skip(index + 1) {
                    rest.extend_from_slice(later);
                }
                return Some((decoder.finish(), rest));
            }
            assert_eq!(used, chunk.len(), "all bytes used until the end");
        }
        None
    }

    fn body(chunks: &[&[u8]]) -> Vec<u8> {
        let (body, _) = decode(chunks, usize::MAX).expect("data ends");
        body.expect("within limit")
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_keeps_the_last_crlf() {
        assert_eq!(
            body(&[b"Subject: x\r\n\r\nhi\r\n.\r\n"]),
            b"Subject: x\r\n\r\nhi\r\n"
        );
    }

    #[test]
    fn empty_message_ends_immediately() {
        assert_eq!(body(&[b".\r\n"]), b"");
    }

    #[test]
    fn unstuffs_first_and_later_lines() {
        assert_eq!(
            body(&[b"..a\r\n..\r\nb\r\n...\r\n.\r\n"]),
            b".a\r\n.\r\nb\r\n..\r\n"
        );
    }

    #[test]
    fn terminator_split_across_reads() {
        let chunks: [&[u8]; 5] = [b"a\r", b"\n", b".", b"\r", b"\nrest"];
        let (content, rest) = decode(&chunks, usize::MAX).expect("ends");
        assert_eq!(content, Ok(b"a\r\n".to_vec()));
        assert_eq!(rest, b"rest");
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        let input: &[u8] = b"..x\r\nline\n.\nbare\r\n.\rz\r\n\xff\xfe\r\n.\r\nNEXT";
        let whole = decode(&[input], usize::MAX).expect("ends");
        for split in 0..input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(
                decode(&[a, b], usize::MAX).expect("ends"),
                whole,
                "split {split}"
            );
        }
        assert_eq!(
            whole.0,
            Ok(b".x\r\nline\n.\nbare\r\n\rz\r\n\xff\xfe\r\n".to_vec())
        );
        assert_eq!(whole.1, b"NEXT");
    }

    #[test]
    fn smuggling_attempts_do_not_end_data() {
        // CVE-2023-51766 class: bare LF or CR around the dot.
        for attack in [
            "a\n.\nMAIL FROM:<x@y>\r\n",
            "a\n.\r\nMAIL FROM:<x@y>\r\n",
            "a\r.\r\nMAIL FROM:<x@y>\r\n",
            "a\r\n.\nMAIL FROM:<x@y>\r\n",
            "a\r\n.\r.\r\n",
        ] {
            let attack = attack.as_bytes();
            assert!(decode(&[attack], usize::MAX).is_none(), "{attack:?}");
            let mut whole = attack.to_vec();
            whole.extend_from_slice(b"\r\n.\r\n");
            assert!(decode(&[&whole], usize::MAX).is_some());
        }
        // The smuggled text stays in the message, unchanged.
        assert_eq!(
            body(&[b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n"]),
            b"a\n.\nMAIL FROM:<x@y>\r\n"
        );
    }

    #[test]
    fn over_limit_reads_on_to_the_end() {
        let (content, rest) = decode(&[b"0123456789\r\n", b"more\r\n.\r\nQUIT\r\n"], 8)
            .expect("ends even when too big");
        assert_eq!(content, Err(BodyError::TooBig(18)));
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn limit_counts_unstuffed_octets() {
        let (content, _) = decode(&[b"..\r\n.\r\n"], 3).expect("ends");
        assert_eq!(content, Ok(b".\r\n".to_vec()));
    }

    #[test]
    fn abandoned_content_is_read_to_the_end_and_not_kept() {
        let mut decoder = DotDecoder::new(usize::MAX);
        assert_eq!(decoder.feed(b"kept until\r\n"), (12, false));
        decoder.abandon();
        assert!(decoder.is_discarding());
        let (used, done) = decoder.feed(b"dropped\r\n.\r\nNOOP\r\n");
        assert_eq!((used, done), (12, true));
        assert_eq!(decoder.finish(), Err(BodyError::Abandoned));
    }

    #[test]
    fn body_buffer_keeps_content_in_bounded_pieces() {
        let mut body = BodyBuffer::new(usize::MAX);
        let mut expected = Vec::new();
        for round in 0..400u32 {
            let bytes: Vec<u8> = (0..(round * 97) % 20_000)
                .map(|i| (i + round) as u8)
                .collect();
            body.push(&bytes);
            expected.extend_from_slice(&bytes);
        }
        assert!(
            body.pieces
                .iter()
                .all(|piece| piece.capacity() <= MAX_PIECE)
        );
        let held: usize = body.pieces.iter().map(Vec::capacity).sum();
        // What is held follows what was kept: the last piece is not full yet.
        assert!(
            held <= expected.len() + MAX_PIECE,
            "{held} for {}",
            expected.len()
        );
        assert_eq!(body.finish(), Ok(expected));
        assert_eq!(BodyBuffer::new(10).finish(), Ok(Vec::new()));
    }

    #[test]
    fn body_buffer_limit() {
        let mut body = BodyBuffer::new(4);
        body.push(b"abcd");
        assert!(!body.is_over_limit());
        body.push(b"e");
        assert!(body.is_over_limit());
        assert_eq!(body.received(), 5);
        assert_eq!(body.finish(), Err(BodyError::TooBig(5)));
    }
}
