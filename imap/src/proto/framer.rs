//! Streaming, literal-aware framing of commands (RFC 9051 §2.2, §4.3, RFC 7888): bytes
//! in, complete commands (with their literals inline, exactly as sent) out. Sans-I/O:
//! the session feeds what it read and asks for the next [`Frame`].
//!
//! Framing survives every rejection: an over-long line is dropped up to its end, an
//! over-large literal is answered at once and, when non-synchronising, its octets are
//! counted off and dropped, so the next command starts where the client thinks it does.

use super::tag::Tag;

/// RFC 9051 §4 asks servers to accept lines of at least 8192 octets; sequence sets from
/// clients that keep large mailboxes in sync (mbsync, OfflineIMAP) get longer, so 64 KiB.
pub const MAX_LINE_LENGTH: usize = 64 * 1024;
/// A literal in any command but APPEND holds a name, a password or a search string.
pub const MAX_LITERAL_SIZE: usize = 64 * 1024;
/// All lines and literals of one command other than APPEND's message: bounds the memory
/// one command can take.
pub const MAX_COMMAND_SIZE: usize = 1024 * 1024;
/// Before login a literal holds a user name or a password (LOGIN, RFC 9051 §6.2.3); 8 KiB
/// is far beyond both, like the SASL response limit, and keeps what an anonymous peer can
/// make us hold small.
pub const PRE_AUTH_MAX_LITERAL_SIZE: usize = 8 * 1024;
/// Before login the largest legitimate command is ID at its RFC 2971 §3.3 limits: 30
/// pairs of 30-octet fields and 1024-octet values, quoted, about 32 KiB. LOGIN and
/// AUTHENTICATE with SASL-IR need far less. Also the longest line before login.
pub const PRE_AUTH_MAX_COMMAND_SIZE: usize = 32 * 1024;
/// Literal marker octets kept while an over-long line is dropped: `{4294967295+}` fits.
const LITERAL_MARKER_TAIL: usize = 32;

#[derive(Debug, Clone, Copy)]
pub struct FramerLimits {
    pub max_line: usize,
    pub max_literal: usize,
    /// APPEND's message literal (APPENDLIMIT, RFC 7889); `None` when APPEND is not
    /// allowed at all (before login): its literal is refused without a continuation.
    pub max_append_literal: Option<usize>,
    pub max_command: usize,
}

impl FramerLimits {
    /// After login: APPEND takes messages up to `max_append_literal` octets.
    pub fn new(max_append_literal: usize) -> Self {
        FramerLimits {
            max_line: MAX_LINE_LENGTH,
            max_literal: MAX_LITERAL_SIZE,
            max_append_literal: Some(max_append_literal),
            max_command: MAX_COMMAND_SIZE,
        }
    }

    /// Before login (RFC 9051 §3.1, not authenticated state): a peer nobody knows yet
    /// gets a few KiB per command, and no APPEND literal at all, since APPEND is only
    /// valid once authenticated (RFC 9051 §6.3.12).
    pub fn pre_auth() -> Self {
        FramerLimits {
            max_line: PRE_AUTH_MAX_COMMAND_SIZE,
            max_literal: PRE_AUTH_MAX_LITERAL_SIZE,
            max_append_literal: None,
            max_command: PRE_AUTH_MAX_COMMAND_SIZE,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole command, lines ending in CRLF, literals inline after their `{n}` CRLF.
    Command(Vec<u8>),
    /// A synchronising literal was accepted: the session must send a `+` continuation
    /// before the client sends its octets (RFC 9051 §7.5).
    Continue,
    /// The command was refused while framing; the session answers BAD (or NO [TOOBIG]).
    Rejected(Rejection),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    pub tag: Option<Tag>,
    pub reason: RejectReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    LineTooLong,
    /// RFC 7888 §4 / RFC 7889 §4: answered with `[TOOBIG]`.
    LiteralTooBig {
        append: bool,
    },
    CommandTooLong,
    /// An APPEND literal where APPEND is not allowed (before login): refused before the
    /// client sends a single octet of the message.
    AppendNotAllowed,
    /// A SETMETADATA literal over the literal limit: RFC 5464 §4.3 answers a value too
    /// large with `NO [METADATA MAXSIZE n]`, and the limit of a value is not more than
    /// that of a literal. (A mailbox or entry name that long would be refused anyway.)
    MetadataValueTooBig,
}

#[derive(Debug)]
enum State {
    Line,
    Literal {
        remaining: usize,
    },
    /// Dropping the rest of a line of a rejected command; keeps its last octets to see
    /// whether it announced a literal.
    SkipLine {
        tail: Vec<u8>,
    },
    /// Dropping the octets of a non-synchronising literal of a rejected command.
    SkipLiteral {
        remaining: u64,
    },
}

pub struct Framer {
    input: Vec<u8>,
    pos: usize,
    command: Vec<u8>,
    state: State,
    /// The current command was rejected: drop it to its end.
    discarding: bool,
    limits: FramerLimits,
}

/// `literal = "{" number64 ["+"] "}" CRLF *CHAR8` (RFC 9051 §9 with RFC 7888); also
/// `literal8 = "~{" number64 "}" CRLF *OCTET` (RFC 3516), whose marker ends the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LiteralMarker {
    size: u64,
    synchronising: bool,
}

fn literal_marker(line: &[u8]) -> Option<LiteralMarker> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let spec = inner.get(open + 1..)?;
    let (digits, synchronising) = match spec.strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (spec, true),
    };
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(LiteralMarker {
        size,
        synchronising,
    })
}

/// True when the command's first line is a `name` command (`tag SP name SP ...`).
fn is_command(command: &[u8], name: &str) -> bool {
    let mut words = command.split(|&b| b == b' ' || b == b'\r' || b == b'\n');
    let _tag = words.next();
    words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(name.as_bytes()))
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn keep_tail(tail: &mut Vec<u8>, more: &[u8]) {
    tail.extend_from_slice(more);
    if tail.len() > LITERAL_MARKER_TAIL {
        let cut = tail.len() - LITERAL_MARKER_TAIL;
        tail.drain(..cut);
    }
}

impl Framer {
    pub fn new(limits: FramerLimits) -> Self {
        Framer {
            input: Vec::new(),
            pos: 0,
            command: Vec::new(),
            state: State::Line,
            discarding: false,
            limits,
        }
    }

    /// Gives back the buffers' memory when nothing is in them (between commands): a
    /// session that once read a long command or literal does not keep its capacity
    /// while it waits.
    pub fn release_memory(&mut self) {
        if self.pos >= self.input.len() {
            self.input = Vec::new();
            self.pos = 0;
        }
        if self.command.is_empty() {
            self.command = Vec::new();
        }
    }

    /// Adds octets read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// RFC 4978 §3: what the client sent after the command that turned compression on
    /// is compressed; the session takes it back to inflate it and feed it again.
    pub fn take_unframed(&mut self) -> Vec<u8> {
        let rest = self.rest().to_vec();
        self.input.clear();
        self.pos = 0;
        rest
    }

    /// Octets received but not yet framed.
    pub fn buffered(&self) -> usize {
        self.input.len() - self.pos
    }

    /// New limits from the next command on (the session logged in). The command being
    /// framed, if any, was framed under the old ones.
    pub fn set_limits(&mut self, limits: FramerLimits) {
        self.limits = limits;
    }

    /// RFC 9051 §6.2.1: after STARTTLS, whatever the client sent in plaintext is dropped.
    pub fn discard_input(&mut self) {
        self.input.clear();
        self.pos = 0;
        self.command.clear();
        self.state = State::Line;
        self.discarding = false;
    }

    fn rest(&self) -> &[u8] {
        self.input.get(self.pos..).unwrap_or_default()
    }

    /// Between commands: the next line as-is (a SASL response, IDLE's DONE), without its
    /// line end. `Some(Err(()))` when it is longer than `limit`; the rest of it is dropped.
    pub fn take_line(&mut self, limit: usize) -> Option<Result<Vec<u8>, ()>> {
        let rest = self.rest();
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) if end <= limit + 1 => {
                let line = strip_cr(rest.get(..end)?).to_vec();
                self.pos += end + 1;
                Some(Ok(line))
            }
            None if rest.len() <= limit + 1 => None,
            _ => {
                self.pos = self.input.len();
                self.state = State::SkipLine { tail: Vec::new() };
                self.discarding = true;
                Some(Err(()))
            }
        }
    }

    fn reject(&mut self, reason: RejectReason) -> Frame {
        let tag = Tag::of_line(&self.command).or_else(|| Tag::of_line(self.rest()));
        self.command.clear();
        Frame::Rejected(Rejection { tag, reason })
    }

    /// The next frame, or `None` when more input is needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match &mut self.state {
                State::Line => {
                    let rest = self.rest();
                    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > self.limits.max_line && !self.discarding {
                            let frame = self.reject(RejectReason::LineTooLong);
                            let mut tail = Vec::new();
                            keep_tail(&mut tail, self.rest());
                            self.pos = self.input.len();
                            self.state = State::SkipLine { tail };
                            self.discarding = true;
                            return Some(frame);
                        }
                        return None;
                    };
                    if end > self.limits.max_line + 1 && !self.discarding {
                        let frame = self.reject(RejectReason::LineTooLong);
                        // Leave the LF: SkipLine finds it and ends the line there.
                        let mut tail = Vec::new();
                        keep_tail(&mut tail, self.rest().get(..end).unwrap_or_default());
                        self.pos += end;
                        self.state = State::SkipLine { tail };
                        self.discarding = true;
                        return Some(frame);
                    }
                    let line = strip_cr(rest.get(..end).unwrap_or_default()).to_vec();
                    self.pos += end + 1;
                    if let Some(frame) = self.end_of_line(&line) {
                        return Some(frame);
                    }
                }
                State::Literal { remaining } => {
                    let available = self.input.len() - self.pos;
                    let take = (*remaining).min(available);
                    let remaining_after = *remaining - take;
                    let chunk = self
                        .input
                        .get(self.pos..self.pos + take)
                        .unwrap_or_default();
                    self.command.extend_from_slice(chunk);
                    self.pos += take;
                    if remaining_after == 0 {
                        self.state = State::Line;
                    } else {
                        self.state = State::Literal {
                            remaining: remaining_after,
                        };
                        return None;
                    }
                }
                State::SkipLiteral { remaining } => {
                    let available = (self.input.len() - self.pos) as u64;
                    let take = (*remaining).min(available);
                    *remaining -= take;
                    // `take` is at most the buffered length, a usize.
                    self.pos += take as usize;
                    if *remaining == 0 {
                        self.state = State::Line;
                    } else {
                        return None;
                    }
                }
                State::SkipLine { tail } => {
                    let rest = self.input.get(self.pos..).unwrap_or_default();
                    match rest.iter().position(|&b| b == b'\n') {
                        None => {
                            keep_tail(tail, rest);
                            self.pos = self.input.len();
                            return None;
                        }
                        Some(end) => {
                            keep_tail(tail, rest.get(..end).unwrap_or_default());
                            let line = strip_cr(tail).to_vec();
                            self.pos += end + 1;
                            self.state = State::Line;
                            if let Some(frame) = self.end_of_line(&line) {
                                return Some(frame);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A line (without its line end) of the current command is complete.
    fn end_of_line(&mut self, line: &[u8]) -> Option<Frame> {
        let marker = literal_marker(line);
        if self.discarding {
            match marker {
                Some(LiteralMarker {
                    size,
                    synchronising: false,
                }) => self.state = State::SkipLiteral { remaining: size },
                // A synchronising literal of a rejected command never comes: the client
                // waits for a continuation it will not get, and has our BAD already.
                _ => {
                    self.discarding = false;
                    self.command.clear();
                }
            }
            return None;
        }
        if line.is_empty() && self.command.is_empty() {
            // An empty line is not a command; ignore it (telnet users press Enter).
            return None;
        }
        self.command.extend_from_slice(line);
        self.command.extend_from_slice(b"\r\n");
        let append = is_command(&self.command, "APPEND");
        let command_limit = match self.limits.max_append_literal {
            Some(max_append_literal) if append => {
                self.limits.max_command.saturating_add(max_append_literal)
            }
            _ => self.limits.max_command,
        };
        let Some(marker) = marker else {
            if self.command.len() > command_limit {
                let frame = self.reject(RejectReason::CommandTooLong);
                return Some(frame);
            }
            return Some(Frame::Command(std::mem::take(&mut self.command)));
        };
        let literal_limit = if append {
            self.limits.max_append_literal
        } else {
            Some(self.limits.max_literal)
        };
        let reason = match literal_limit {
            None => Some(RejectReason::AppendNotAllowed),
            Some(limit) if marker.size > limit as u64 => {
                if is_command(&self.command, "SETMETADATA") {
                    Some(RejectReason::MetadataValueTooBig)
                } else {
                    Some(RejectReason::LiteralTooBig { append })
                }
            }
            Some(_) if self.command.len() as u64 + marker.size > command_limit as u64 => {
                Some(RejectReason::CommandTooLong)
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            let frame = self.reject(reason);
            if !marker.synchronising {
                self.discarding = true;
                self.state = State::SkipLiteral {
                    remaining: marker.size,
                };
            }
            return Some(frame);
        }
        // Checked against a usize limit just above.
        self.state = State::Literal {
            remaining: marker.size as usize,
        };
        marker.synchronising.then_some(Frame::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer() -> Framer {
        Framer::new(FramerLimits {
            max_line: 100,
            max_literal: 20,
            max_append_literal: Some(1000),
            max_command: 500,
        })
    }

    fn frames(framer: &mut Framer, input: &[u8]) -> Vec<Frame> {
        framer.feed(input);
        let mut out = Vec::new();
        while let Some(frame) = framer.next_frame() {
            out.push(frame);
        }
        out
    }

    /// What a new framer makes of `input`.
    fn frames_of_new(input: &[u8]) -> Vec<Frame> {
        frames(&mut framer(), input)
    }

    fn command(text: &str) -> Frame {
        Frame::Command(text.as_bytes().to_vec())
    }

    fn rejected(tag: &str, reason: RejectReason) -> Frame {
        Frame::Rejected(Rejection {
            tag: Tag::parse(tag.as_bytes()),
            reason,
        })
    }

    #[test]
    fn frames_simple_commands_and_lf_only_lines() {
        let mut f = framer();
        assert_eq!(
            frames(&mut f, b"a NOOP\r\nb CAPABILITY\nc LOG"),
            vec![command("a NOOP\r\n"), command("b CAPABILITY\r\n")]
        );
        assert_eq!(frames(&mut f, b"OUT\r\n"), vec![command("c LOGOUT\r\n")]);
    }

    #[test]
    fn synchronising_literal_asks_for_continuation() {
        let mut f = framer();
        assert_eq!(frames(&mut f, b"a LOGIN {4}\r\n"), vec![Frame::Continue]);
        assert_eq!(frames(&mut f, b"us"), vec![]);
        assert_eq!(
            frames(&mut f, b"er pass\r\n"),
            vec![command("a LOGIN {4}\r\nuser pass\r\n")]
        );
    }

    #[test]
    fn non_synchronising_literal_needs_no_continuation() {
        assert_eq!(
            frames_of_new(b"a LOGIN {4+}\r\nuser {2+}\r\n\r\n\r\n"),
            vec![command("a LOGIN {4+}\r\nuser {2+}\r\n\r\n\r\n")]
        );
    }

    #[test]
    fn oversized_literal_is_rejected_and_framing_kept() {
        let mut f = framer();
        // Synchronising: rejected at once, the client never sends the octets.
        let out = frames(&mut f, b"a LOGIN {21}\r\nb NOOP\r\n");
        assert_eq!(
            out,
            vec![
                rejected("a", RejectReason::LiteralTooBig { append: false }),
                command("b NOOP\r\n")
            ]
        );
        // Non-synchronising: the octets (which contain a line end) are skipped, and the
        // rest of the command with another literal too.
        let out = frames(
            &mut f,
            b"c LOGIN {21+}\r\n0123456789\r\n012345678 {3+}\r\nx\r\n\r\nd NOOP\r\n",
        );
        assert_eq!(
            out,
            vec![
                rejected("c", RejectReason::LiteralTooBig { append: false }),
                command("d NOOP\r\n")
            ]
        );
        // APPEND has its own limit.
        let out = frames(&mut f, b"e APPEND INBOX {900}\r\n");
        assert_eq!(out, vec![Frame::Continue]);
    }

    /// RFC 4469 §5: CATENATE's TEXT literals are APPEND literals: each is bounded by
    /// APPENDLIMIT, and all of them with the command by APPENDLIMIT plus the command limit.
    #[test]
    fn catenate_text_literals_have_the_append_limits() {
        assert_eq!(
            frames_of_new(b"a APPEND INBOX CATENATE (TEXT {900}\r\n"),
            vec![Frame::Continue]
        );
        let mut f = framer();
        assert_eq!(
            frames(
                &mut f,
                b"b APPEND INBOX CATENATE (TEXT {1001}\r\nc NOOP\r\n"
            ),
            vec![
                rejected("b", RejectReason::LiteralTooBig { append: true }),
                command("c NOOP\r\n")
            ]
        );
        let mut text = b"d APPEND INBOX CATENATE (TEXT {900+}\r\n".to_vec();
        text.extend_from_slice(&[b'x'; 900]);
        text.extend_from_slice(b" TEXT {900+}\r\n");
        let out = frames(&mut f, &text);
        assert_eq!(out, vec![rejected("d", RejectReason::CommandTooLong)]);
    }

    /// RFC 5464 §4.3: a SETMETADATA value over the literal limit is refused as too large
    /// a value, before the client sends it (or, non-synchronising, with its octets
    /// dropped).
    #[test]
    fn setmetadata_literals_over_the_limit_are_values_too_large() {
        assert_eq!(
            frames_of_new(b"a SETMETADATA INBOX (/shared/x {20}\r\n"),
            vec![Frame::Continue]
        );
        assert_eq!(
            frames_of_new(
                b"b setmetadata INBOX (/shared/x {21}\r\nc SETMETADATA INBOX (/shared/x ~{21+}\r\n012345678901234567890)\r\nd NOOP\r\n"
            ),
            vec![
                rejected("b", RejectReason::MetadataValueTooBig),
                rejected("c", RejectReason::MetadataValueTooBig),
                command("d NOOP\r\n")
            ]
        );
    }

    #[test]
    fn before_login_append_is_refused_without_continuation() {
        let mut f = Framer::new(FramerLimits::pre_auth());
        // Synchronising: no `+`, at once; the client never sends the octets.
        assert_eq!(
            frames(&mut f, b"a APPEND INBOX {52428800}\r\nb NOOP\r\n"),
            vec![
                rejected("a", RejectReason::AppendNotAllowed),
                command("b NOOP\r\n")
            ]
        );
        // Even an empty message, and a literal8 (RFC 3516).
        assert_eq!(
            frames(&mut f, b"c APPEND INBOX (\\Seen) {0}\r\n"),
            vec![rejected("c", RejectReason::AppendNotAllowed)]
        );
        assert_eq!(
            frames(&mut f, b"d APPEND INBOX ~{5}\r\n"),
            vec![rejected("d", RejectReason::AppendNotAllowed)]
        );
        // Non-synchronising (RFC 7888): the octets are counted off, framing kept.
        assert_eq!(
            frames(
                &mut f,
                b"e APPEND INBOX {12+}\r\nf NOOP\r\nxxxx\r\ng NOOP\r\n"
            ),
            vec![
                rejected("e", RejectReason::AppendNotAllowed),
                command("g NOOP\r\n")
            ]
        );
    }

    #[test]
    fn before_login_literals_and_commands_are_small() {
        let mut f = Framer::new(FramerLimits::pre_auth());
        // A password as a literal of the largest size allowed still logs in.
        let login =
            format!("a LOGIN {{4}}\r\nuser {{{PRE_AUTH_MAX_LITERAL_SIZE}}}\r\n").into_bytes();
        assert_eq!(
            frames(&mut f, &login),
            vec![Frame::Continue, Frame::Continue]
        );
        let password = vec![b'p'; PRE_AUTH_MAX_LITERAL_SIZE];
        let mut out = frames(&mut f, &password);
        out.extend(frames(&mut f, b"\r\n"));
        let mut whole = login;
        whole.extend_from_slice(&password);
        whole.extend_from_slice(b"\r\n");
        assert_eq!(out, vec![Frame::Command(whole)]);
        // One octet more is refused, before the client sends it.
        let over = format!("b LOGIN user {{{}}}\r\n", PRE_AUTH_MAX_LITERAL_SIZE + 1);
        assert_eq!(
            frames(&mut f, over.as_bytes()),
            vec![rejected("b", RejectReason::LiteralTooBig { append: false })]
        );
        // Literals that are each small enough but together too much.
        let mut many = b"c ID (".to_vec();
        let chunk = 4 * 1024;
        let pairs = PRE_AUTH_MAX_COMMAND_SIZE / chunk + 1;
        let mut out = Vec::new();
        for n in 0..pairs {
            many.extend_from_slice(format!("\"f{n}\" {{{chunk}+}}\r\n").as_bytes());
            out.extend(frames(&mut f, &many));
            many.clear();
            many.resize(chunk, b'v');
        }
        many.extend_from_slice(b")\r\nd NOOP\r\n");
        out.extend(frames(&mut f, &many));
        assert_eq!(
            out,
            vec![
                rejected("c", RejectReason::CommandTooLong),
                command("d NOOP\r\n")
            ]
        );
        // A line longer than the pre-login command limit is refused too.
        let mut long = b"e ID (\"name\" \"".to_vec();
        long.resize(PRE_AUTH_MAX_COMMAND_SIZE + 10, b'x');
        assert_eq!(
            frames(&mut f, &long),
            vec![rejected("e", RejectReason::LineTooLong)]
        );
        assert_eq!(
            frames(&mut f, b"\")\r\nf NOOP\r\n"),
            vec![command("f NOOP\r\n")]
        );
    }

    #[test]
    fn limits_switch_for_the_next_command() {
        let mut f = Framer::new(FramerLimits::pre_auth());
        // A client that pipelines APPEND right after LOGIN: the session switches the
        // limits while it runs LOGIN, before APPEND is framed.
        f.feed(b"a LOGIN user pass\r\nb APPEND INBOX {100000+}\r\n");
        assert_eq!(f.next_frame(), Some(command("a LOGIN user pass\r\n")));
        f.set_limits(FramerLimits::new(1_000_000));
        assert_eq!(f.next_frame(), None);
        let message = vec![b'm'; 100_000];
        let mut out = frames(&mut f, &message);
        out.extend(frames(&mut f, b"\r\n"));
        assert!(
            matches!(&out[..], [Frame::Command(c)] if c.len() > 100_000 && c.starts_with(b"b APPEND"))
        );
    }

    #[test]
    fn overlong_line_is_dropped_to_its_end() {
        let mut f = framer();
        let mut input = b"a NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 300));
        let out = frames(&mut f, &input);
        assert_eq!(out, vec![rejected("a", RejectReason::LineTooLong)]);
        assert_eq!(
            frames(&mut f, b"xxx {5+}\r\nab\r\nc\r\nb NOOP\r\n"),
            vec![command("b NOOP\r\n")]
        );
    }

    #[test]
    fn take_line_reads_sasl_and_done() {
        let mut f = framer();
        f.feed(b"dXNlcg==\r\nDONE\r\n");
        assert_eq!(f.take_line(100), Some(Ok(b"dXNlcg==".to_vec())));
        assert_eq!(f.take_line(100), Some(Ok(b"DONE".to_vec())));
        assert_eq!(f.take_line(100), None);
        f.feed(&[b'y'; 200]);
        assert_eq!(f.take_line(100), Some(Err(())));
        assert_eq!(
            frames(&mut f, b"yy\r\nz NOOP\r\n"),
            vec![command("z NOOP\r\n")]
        );
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        // A deterministic pseudo-random generator: no external fuzzing crate needed.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"{}+0123456789\r\n ~a\"\\()*%";
        for _ in 0..2000 {
            let mut f = framer();
            let len = (next() % 400) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            for chunk in bytes.chunks(1 + (next() % 17) as usize) {
                f.feed(chunk);
                while let Some(frame) = f.next_frame() {
                    if let Frame::Command(command) = frame {
                        assert!(command.len() <= 500 + 100);
                        let _ = crate::proto::parse_command(&command);
                    }
                }
                assert!(f.command.len() <= 500 + 100);
            }
        }
    }
}
