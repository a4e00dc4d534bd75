//! The ManageSieve protocol core (RFC 5804), without I/O: bytes in, a [`Command`] out;
//! responses as bytes.
//!
//! ```text
//! command       = command-name *(SP argument) CRLF          ; RFC 5804 §4 (simplified)
//! argument      = string / number
//! string        = quoted / literal-c2s
//! quoted        = DQUOTE *(QUOTED-CHAR / "\" QUOTED-SPECIALS) DQUOTE
//! literal-c2s   = "{" number [ "+" ] "}" CRLF *OCTET
//! number        = 1*DIGIT                                   ; < 4294967296
//! ```
//!
//! Both literal forms are taken without a continuation: ManageSieve has none (RFC 5804
//! §4: "literal-c2s" is non-synchronizing for clients; a `{N}` is read the same way).

use std::fmt::Write as _;

/// Sizes a client controls, each with its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one command outside its literals: names and a few arguments; 8 KiB is
    /// far above what any command needs (a SASL PLAIN response is under 1 KiB).
    pub max_line: usize,
    /// Bytes of one literal: a script after login (storage's limit plus room for the
    /// framing), a SASL response before.
    pub max_literal: usize,
    /// Arguments of one command: RENAMESCRIPT has the most, two.
    pub max_arguments: usize,
}

impl Limits {
    /// Before login: no script is sent, only SASL (RFC 4422 responses are small).
    pub const BEFORE_LOGIN: Limits = Limits {
        max_line: 8 * 1024,
        max_literal: 8 * 1024,
        max_arguments: 4,
    };
    /// After login: a literal holds a script, at most storage's 64 KiB.
    pub const AFTER_LOGIN: Limits = Limits {
        max_line: 8 * 1024,
        max_literal: storage::MAX_SIEVE_SCRIPT_BYTES,
        max_arguments: 4,
    };
}

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    /// A quoted string or a literal: bytes, UTF-8 checked where the command needs text.
    String(Vec<u8>),
    Number(u32),
}

/// A command as read: its name in upper case and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub arguments: Vec<Argument>,
}

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command, and how many bytes it took.
    Command(Command, usize),
    /// More bytes are needed.
    Incomplete,
    /// The command is malformed; `consumed` bytes (through its CRLF) are to be dropped
    /// and the client told `NO`.
    Bad {
        reason: &'static str,
        consumed: usize,
    },
    /// The command is larger than the limits allow: the connection cannot keep its
    /// framing cheaply and is closed with `BYE`.
    TooBig,
}

/// Parses the first command in `input`.
pub fn parse(input: &[u8], limits: &Limits) -> Parsed {
    let mut reader = Reader {
        input,
        pos: 0,
        literal_bytes: 0,
    };
    match reader.command(limits) {
        Ok(command) => Parsed::Command(command, reader.pos),
        Err(Fail::Incomplete) => {
            // Outside literals, a line longer than the limit is refused before its end.
            if input.len().saturating_sub(reader.literal_bytes) > limits.max_line {
                Parsed::TooBig
            } else {
                Parsed::Incomplete
            }
        }
        Err(Fail::TooBig) => Parsed::TooBig,
        Err(Fail::Bad(reason)) => match line_end(input, reader.pos) {
            Some(end) => Parsed::Bad {
                reason,
                consumed: end,
            },
            None if input.len() > limits.max_line => Parsed::TooBig,
            None => Parsed::Incomplete,
        },
    }
}

/// Parses a SASL continuation (RFC 5804 §2.1): one string and CRLF, given as a
/// [`Command`] with an empty name and that string as its argument.
pub fn parse_continuation(input: &[u8], limits: &Limits) -> Parsed {
    let mut reader = Reader {
        input,
        pos: 0,
        literal_bytes: 0,
    };
    let result = reader.argument(limits).and_then(|argument| {
        for expected in [b'\r', b'\n'] {
            if reader.peek()? != expected {
                return Err(Fail::Bad("expected CRLF after the SASL response"));
            }
            reader.pos += 1;
        }
        Ok(argument)
    });
    match result {
        Ok(argument) => Parsed::Command(
            Command {
                name: String::new(),
                arguments: vec![argument],
            },
            reader.pos,
        ),
        Err(Fail::Incomplete) if input.len() > limits.max_line => Parsed::TooBig,
        Err(Fail::Incomplete) => Parsed::Incomplete,
        Err(Fail::TooBig) => Parsed::TooBig,
        Err(Fail::Bad(reason)) => match line_end(input, 0) {
            Some(consumed) => Parsed::Bad { reason, consumed },
            // A bad response is skipped at its CRLF, but no further than a line may run:
            // without this, a client that never sends CRLF grew the buffer without end
            // (found by the `parse` fuzz target).
            None if input.len() > limits.max_line => Parsed::TooBig,
            None => Parsed::Incomplete,
        },
    }
}

/// The position after the first CRLF at or after `from`.
fn line_end(input: &[u8], from: usize) -> Option<usize> {
    input
        .get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|at| from + at + 2)
}

enum Fail {
    Incomplete,
    TooBig,
    Bad(&'static str),
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    /// Bytes of literals read so far (they do not count against the line limit).
    literal_bytes: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Result<u8, Fail> {
        self.input.get(self.pos).copied().ok_or(Fail::Incomplete)
    }

    fn command(&mut self, limits: &Limits) -> Result<Command, Fail> {
        let name = self.atom()?;
        if name.is_empty() {
            return Err(Fail::Bad("expected a command name"));
        }
        let mut arguments = Vec::new();
        loop {
            match self.peek()? {
                b'\r' => {
                    self.pos += 1;
                    return if self.peek()? == b'\n' {
                        self.pos += 1;
                        Ok(Command { name, arguments })
                    } else {
                        Err(Fail::Bad("CR without LF"))
                    };
                }
                b' ' => {
                    self.pos += 1;
                    if arguments.len() >= limits.max_arguments {
                        return Err(Fail::Bad("too many arguments"));
                    }
                    arguments.push(self.argument(limits)?);
                }
                _ => return Err(Fail::Bad("expected SP or CRLF")),
            }
        }
    }

    /// RFC 5804 §4 command names: letters only; returned in upper case.
    fn atom(&mut self) -> Result<String, Fail> {
        let start = self.pos;
        while self.peek()?.is_ascii_alphabetic() {
            self.pos += 1;
        }
        let bytes = self.input.get(start..self.pos).unwrap_or_default();
        Ok(String::from_utf8_lossy(bytes).to_ascii_uppercase())
    }

    fn argument(&mut self, limits: &Limits) -> Result<Argument, Fail> {
        match self.peek()? {
            b'"' => self.quoted().map(Argument::String),
            b'{' => self.literal(limits).map(Argument::String),
            b'0'..=b'9' => self.number().map(Argument::Number),
            _ => Err(Fail::Bad("expected a string or a number")),
        }
    }

    fn number(&mut self) -> Result<u32, Fail> {
        let mut value: u32 = 0;
        let start = self.pos;
        while let b @ b'0'..=b'9' = self.peek()? {
            // RFC 5804 §4: number < 4294967296.
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u32::from(b - b'0')))
                .ok_or(Fail::Bad("number too large"))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(Fail::Bad("expected a number"));
        }
        Ok(value)
    }

    /// RFC 5804 §4 quoted: no CR, LF or NUL; `\` escapes only `"` and `\`.
    fn quoted(&mut self) -> Result<Vec<u8>, Fail> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    match self.peek()? {
                        c @ (b'"' | b'\\') => out.push(c),
                        _ => return Err(Fail::Bad("bad escape in quoted string")),
                    }
                }
                b'\r' | b'\n' | 0 => return Err(Fail::Bad("bad character in quoted string")),
                c => out.push(c),
            }
            self.pos += 1;
        }
    }

    fn literal(&mut self, limits: &Limits) -> Result<Vec<u8>, Fail> {
        self.pos += 1;
        let length = self.number()?;
        if self.peek()? == b'+' {
            self.pos += 1;
        }
        for expected in [b'}', b'\r', b'\n'] {
            if self.peek()? != expected {
                return Err(Fail::Bad("malformed literal"));
            }
            self.pos += 1;
        }
        let length = usize::try_from(length).map_err(|_| Fail::TooBig)?;
        if length > limits.max_literal {
            return Err(Fail::TooBig);
        }
        let end = self.pos.checked_add(length).ok_or(Fail::TooBig)?;
        let bytes = self.input.get(self.pos..end).ok_or(Fail::Incomplete)?;
        self.pos = end;
        self.literal_bytes += length;
        Ok(bytes.to_vec())
    }
}

/// A response code (RFC 5804 §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `(QUOTA/MAXSCRIPTS)`: no room for another script.
    QuotaMaxScripts,
    /// `(QUOTA/MAXSIZE)`: the script is too large.
    QuotaMaxSize,
    Nonexistent,
    Active,
    AlreadyExists,
    /// `(TRYLATER)`: a temporary failure.
    TryLater,
    /// `(AUTH-TOO-WEAK)`... not used; `(ENCRYPT-NEEDED)`: log in after STARTTLS.
    EncryptNeeded,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::QuotaMaxScripts => "QUOTA/MAXSCRIPTS",
            Code::QuotaMaxSize => "QUOTA/MAXSIZE",
            Code::Nonexistent => "NONEXISTENT",
            Code::Active => "ACTIVE",
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::TryLater => "TRYLATER",
            Code::EncryptNeeded => "ENCRYPT-NEEDED",
        }
    }
}

/// RFC 5804 §4 response-oknobye: `OK`, `NO` or `BYE`, an optional code, optional text.
pub fn response(kind: &str, code: Option<Code>, text: &str) -> Vec<u8> {
    let mut out = String::from(kind);
    if let Some(code) = code {
        let _ = write!(out, " ({})", code.as_str());
    }
    if !text.is_empty() {
        out.push(' ');
        out.push_str(&string(text));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A string for the client: quoted when it can be (RFC 5804 §4: quoted strings hold no
/// CR, LF or NUL and are at most 1024 octets), else a literal.
pub fn string(text: &str) -> String {
    if text.len() <= 1024 && !text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        let mut out = String::with_capacity(text.len() + 2);
        out.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    } else {
        format!("{{{}}}\r\n{text}", text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(input: &[u8]) -> (Command, usize) {
        match parse(input, &Limits::AFTER_LOGIN) {
            Parsed::Command(command, used) => (command, used),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_with_quoted_literals_and_numbers() {
        let (c, used) = command(b"putscript \"my \\\"s\\\\\" {5+}\r\nkeep;\r\nNOOP\r\n");
        assert_eq!(c.name, "PUTSCRIPT");
        assert_eq!(
            c.arguments,
            [
                Argument::String(b"my \"s\\".to_vec()),
                Argument::String(b"keep;".to_vec())
            ]
        );
        assert_eq!(used, 34);
        let (c, _) = command(b"HAVESPACE \"x\" 1234\r\n");
        assert_eq!(c.arguments[1], Argument::Number(1234));
        let (c, _) = command(b"CHECKSCRIPT {3}\r\na\r\n\r\n");
        assert_eq!(c.arguments, [Argument::String(b"a\r\n".to_vec())]);
        let (c, _) = command(b"LOGOUT\r\n");
        assert!(c.arguments.is_empty());
    }

    #[test]
    fn incomplete_bad_and_too_big() {
        let limits = Limits::BEFORE_LOGIN;
        let bad = |reason, consumed| Parsed::Bad { reason, consumed };
        let long = vec![b'A'; 9000];
        let cases: [(&[u8], Parsed); 7] = [
            (b"PUTSCRIPT \"a\" {10+}\r\nkeep", Parsed::Incomplete),
            (b"NOOP", Parsed::Incomplete),
            (
                b"NOOP x\r\nNOOP\r\n",
                bad("expected a string or a number", 8),
            ),
            (b"A {99999999+}\r\n", Parsed::TooBig),
            (b"A 99999999999\r\n", bad("number too large", 15)),
            (&long, Parsed::TooBig),
            (
                b"A \"x\" \"y\" \"z\" \"w\" \"v\"\r\n",
                bad("too many arguments", 23),
            ),
        ];
        for (input, expected) in cases {
            let shown = String::from_utf8_lossy(input);
            assert_eq!(parse(input, &limits), expected, "{shown:?}");
        }
        // A SASL response that is bad and never ends (a NUL in a quoted string, then no
        // CRLF) is too big once past a line, not incomplete for ever (fuzz: `parse`).
        let mut endless = b"\"\x1d\0".to_vec();
        endless.resize(9000, 0);
        assert_eq!(parse_continuation(&endless, &limits), Parsed::TooBig);
        assert_eq!(
            parse_continuation(&endless[..100], &limits),
            Parsed::Incomplete
        );
    }

    #[test]
    fn strings_and_responses() {
        assert_eq!(string("a\"b"), "\"a\\\"b\"");
        assert_eq!(string("a\r\nb"), "{4}\r\na\r\nb");
        assert_eq!(
            response("NO", Some(Code::Nonexistent), "no such script"),
            b"NO (NONEXISTENT) \"no such script\"\r\n"
        );
        assert_eq!(response("OK", None, ""), b"OK\r\n");
    }
}
