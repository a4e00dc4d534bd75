//! The stress client's wire layer, without I/O: where one server response ends in a byte
//! buffer (a line plus the literals it announces), and a tokenizer that turns that response
//! into a tag, a status and response code, or a data name with its arguments (atoms,
//! strings and parenthesized lists, RFC 9051 §4 and §9).
//!
//! It is deliberately lenient about what it does not need (the text of a status response,
//! the arguments of data responses it does not interpret are kept as a parse error rather
//! than rejected), and strict about what the model reads: EXISTS, EXPUNGE, FETCH, FLAGS,
//! SEARCH, VANISHED, STATUS and response codes.

use std::fmt;

/// The largest response the client accepts: far above anything the stress commands ask
/// for (flags, UIDs, small mailbox names), small enough that a runaway literal cannot eat
/// the machine.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// The largest sequence or UID set the client expands into numbers (COPYUID, VANISHED):
/// the mailboxes of a stress run hold at most a few hundred messages.
pub const MAX_SET_MEMBERS: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn error<T>(message: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(message.into()))
}

/// The length of the first complete response in `buf`: a line ending in CRLF (or LF), and
/// when the line ends with a literal announcement `{n}` (RFC 9051 §4.3), those n bytes and
/// the rest of the response after them. `None` when more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    let mut pos = 0;
    loop {
        let Some(newline) = buf[pos..].iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_RESPONSE {
                return error(format!("a response line longer than {MAX_RESPONSE} bytes"));
            }
            return Ok(None);
        };
        let line_end = pos + newline + 1;
        match literal_announcement(&buf[pos..line_end])? {
            Some(n) => {
                let after = line_end.saturating_add(n);
                if after > MAX_RESPONSE {
                    return error(format!("a literal of {n} bytes"));
                }
                if buf.len() < after {
                    return Ok(None);
                }
                pos = after;
            }
            None => return Ok(Some(line_end)),
        }
    }
}

/// `{n}` (or `{n+}`, `~{n}`) at the end of a line, before its CRLF.
fn literal_announcement(line: &[u8]) -> Result<Option<usize>, WireError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(inner) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = inner.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| WireError("a literal length that is not a number".into()))
}

/// One token of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// An atom or a number (and NIL), as sent.
    Atom(String),
    /// A quoted string or a literal, unescaped.
    Str(String),
    List(Vec<Tok>),
}

impl Tok {
    pub fn atom(&self) -> Option<&str> {
        match self {
            Tok::Atom(a) => Some(a),
            _ => None,
        }
    }

    pub fn number<T: std::str::FromStr>(&self) -> Option<T> {
        self.atom().and_then(|a| a.parse().ok())
    }

    /// An atom or a string: a mailbox name, an astring.
    pub fn text(&self) -> Option<&str> {
        match self {
            Tok::Atom(a) | Tok::Str(a) => Some(a),
            Tok::List(_) => None,
        }
    }

    pub fn list(&self) -> Option<&[Tok]> {
        match self {
            Tok::List(items) => Some(items),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    Bye,
    Preauth,
}

impl Status {
    fn parse(word: &str) -> Option<Status> {
        Some(match word.to_ascii_uppercase().as_str() {
            "OK" => Status::Ok,
            "NO" => Status::No,
            "BAD" => Status::Bad,
            "BYE" => Status::Bye,
            "PREAUTH" => Status::Preauth,
            _ => return None,
        })
    }
}

/// A response code, `[NAME args]` (RFC 9051 §7.1); the name upper-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code {
    pub name: String,
    pub args: Vec<Tok>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    /// `+ ...`: a continuation request.
    Continue,
    /// `tag OK ...` (tag `Some`) or `* OK ...` (tag `None`), likewise NO, BAD, BYE, PREAUTH.
    Status {
        tag: Option<String>,
        status: Status,
        code: Option<Code>,
        text: String,
    },
    /// `* [number] NAME args`: the name upper-cased; the arguments, or why they did not
    /// tokenize.
    Data {
        number: Option<u32>,
        name: String,
        args: Result<Vec<Tok>, WireError>,
    },
}

/// Parses one complete response (as `frame_len` delimited it).
pub fn parse(bytes: &[u8]) -> Result<Resp, WireError> {
    let mut c = Cursor { b: bytes, pos: 0 };
    if c.eat(b'+') {
        return Ok(Resp::Continue);
    }
    let tag = if c.eat(b'*') {
        None
    } else {
        Some(c.atom(false)?)
    };
    c.sp()?;
    let first = c.atom(false)?;
    if let Some(status) = Status::parse(&first) {
        let (code, text) = c.status_rest()?;
        return Ok(Resp::Status {
            tag,
            status,
            code,
            text,
        });
    }
    if tag.is_some() {
        return error(format!("a tagged response with status {first:?}"));
    }
    let (number, name) = match first.parse::<u32>() {
        Ok(number) => {
            c.sp()?;
            (Some(number), c.atom(false)?.to_ascii_uppercase())
        }
        Err(_) => (None, first.to_ascii_uppercase()),
    };
    let args = c.tokens(false);
    Ok(Resp::Data { number, name, args })
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn sp(&mut self) -> Result<(), WireError> {
        if self.eat(b' ') {
            Ok(())
        } else {
            error(format!("expected a space at byte {}", self.pos))
        }
    }

    fn at_eol(&self) -> bool {
        matches!(self.peek(), None | Some(b'\r' | b'\n'))
    }

    /// An atom: everything up to a space, parenthesis, quote, CR or LF, and (in a response
    /// code) the closing bracket. Flags (`\Seen`, `\*`) and numbers are atoms here.
    fn atom(&mut self, in_code: bool) -> Result<String, WireError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            let stop =
                matches!(b, b' ' | b'(' | b')' | b'"' | b'\r' | b'\n') || (in_code && b == b']');
            if stop {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return error(format!("expected an atom at byte {start}"));
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.pos]).into_owned())
    }

    fn quoted(&mut self) -> Result<String, WireError> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r' | b'\n') => return error("an unterminated quoted string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(escaped @ (b'\\' | b'"')) => {
                            out.push(escaped);
                            self.pos += 1;
                        }
                        _ => return error("a bad escape in a quoted string"),
                    }
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// `{n}CRLF` and n bytes; the opening brace is already eaten.
    fn literal(&mut self) -> Result<String, WireError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let n: usize = std::str::from_utf8(&self.b[start..self.pos])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| WireError("a literal without a length".into()))?;
        self.eat(b'+');
        if !self.eat(b'}') {
            return error("a literal announcement without its closing brace");
        }
        self.eat(b'\r');
        if !self.eat(b'\n') {
            return error("a literal announcement not followed by CRLF");
        }
        let end = self.pos.saturating_add(n);
        let Some(bytes) = self.b.get(self.pos..end) else {
            return error("a literal longer than the response");
        };
        self.pos = end;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn token(&mut self, in_code: bool) -> Result<Tok, WireError> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.quoted().map(Tok::Str)
            }
            Some(b'{') => {
                self.pos += 1;
                self.literal().map(Tok::Str)
            }
            Some(b'~') if self.b.get(self.pos + 1) == Some(&b'{') => {
                self.pos += 2;
                self.literal().map(Tok::Str)
            }
            Some(b'(') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    while self.eat(b' ') {}
                    if self.eat(b')') {
                        return Ok(Tok::List(items));
                    }
                    if self.at_eol() {
                        return error("an unterminated list");
                    }
                    items.push(self.token(in_code)?);
                }
            }
            _ => self.atom(in_code).map(Tok::Atom),
        }
    }

    /// Tokens separated by spaces up to the end of the line (or, in a code, the `]`).
    fn tokens(&mut self, in_code: bool) -> Result<Vec<Tok>, WireError> {
        let mut out = Vec::new();
        loop {
            while self.eat(b' ') {}
            if self.at_eol() || (in_code && self.peek() == Some(b']')) {
                return Ok(out);
            }
            out.push(self.token(in_code)?);
        }
    }

    /// After a status word: ` [CODE args] text`, all optional (RFC 9051 §7.1).
    fn status_rest(&mut self) -> Result<(Option<Code>, String), WireError> {
        self.eat(b' ');
        let mut code = None;
        if self.eat(b'[') {
            let name = self.atom(true)?.to_ascii_uppercase();
            let args = self.tokens(true)?;
            if !self.eat(b']') {
                return error("an unterminated response code");
            }
            code = Some(Code { name, args });
            self.eat(b' ');
        }
        let start = self.pos;
        while !self.at_eol() {
            self.pos += 1;
        }
        let text = String::from_utf8_lossy(&self.b[start..self.pos]).into_owned();
        Ok((code, text))
    }
}

/// Expands a sequence set of numbers (`1:3,7,9:8`, RFC 9051 §9 `sequence-set`) without `*`
/// (COPYUID and VANISHED never hold one).
pub fn expand_set(set: &str) -> Result<Vec<u32>, WireError> {
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
            return error(format!("a set member {part:?}"));
        };
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        if out.len() + (high - low) as usize >= MAX_SET_MEMBERS {
            return error(format!("a set larger than {MAX_SET_MEMBERS} members"));
        }
        out.extend(low..=high);
    }
    Ok(out)
}

/// What a FETCH response says about one message: the items the model reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchData {
    /// The flags, lower-cased (flag names compare without case, RFC 9051 §2.3.2).
    pub flags: Option<Vec<String>>,
    pub uid: Option<u32>,
    pub modseq: Option<u64>,
}

/// `msg-att` of a FETCH response (RFC 9051 §7.5.2): a list of item names and values.
pub fn fetch_data(args: &[Tok]) -> Result<FetchData, WireError> {
    let [Tok::List(items)] = args else {
        return error("FETCH without one parenthesized list");
    };
    let mut data = FetchData::default();
    let mut pairs = items.iter();
    while let Some(name) = pairs.next() {
        let Some(name) = name.atom() else {
            return error("a FETCH item name that is not an atom");
        };
        let Some(value) = pairs.next() else {
            return error(format!("FETCH item {name} without a value"));
        };
        match name.to_ascii_uppercase().as_str() {
            "FLAGS" => {
                let Some(list) = value.list() else {
                    return error("FLAGS that is not a list");
                };
                data.flags = Some(flag_list(list)?);
            }
            "UID" => {
                data.uid = Some(
                    value
                        .number()
                        .ok_or_else(|| WireError("a UID that is not a number".into()))?,
                );
            }
            // RFC 7162 §3.1.4.1: MODSEQ (n).
            "MODSEQ" => {
                let n = value
                    .list()
                    .and_then(|l| l.first())
                    .and_then(Tok::number)
                    .ok_or_else(|| WireError("a MODSEQ that is not (number)".into()))?;
                data.modseq = Some(n);
            }
            _ => {}
        }
    }
    Ok(data)
}

/// A list of flags, lower-cased and sorted.
pub fn flag_list(list: &[Tok]) -> Result<Vec<String>, WireError> {
    let mut flags = list
        .iter()
        .map(|f| {
            f.atom()
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| WireError("a flag that is not an atom".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    flags.sort();
    flags.dedup();
    Ok(flags)
}

/// The text for a transcript: the response as sent, CRLF removed, literals inline.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.trim_end_matches(['\r', '\n'])
        .replace("\r\n", "\\r\\n")
}
