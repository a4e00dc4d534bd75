//! What IMAP needs of a message, computed once at delivery (house rule 11): the MIME part
//! tree with offsets into the raw bytes, the ENVELOPE fields, decoded headers and body
//! text for SEARCH, and the keys SORT and THREAD use. FETCH serves from this and the raw
//! bytes; nothing re-parses a message on read.

use crate::error::{Result, StoreError};
pub use crate::rfc5322::{EnvelopeAddress, unfolded_fields};
pub use crate::subject::{base_subject, base_subject_and_reply};
use crate::{preview, rfc5322};
use mail_parser::parsers::MessageStream;
use mail_parser::{
    Address, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Everything computed at delivery, stored as JSON beside the raw message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub envelope: Envelope,
    pub root: BodyPart,
    /// Top-level header fields in order: name as written, value decoded (RFC 2047).
    pub headers: Vec<(String, String)>,
    /// Top-level header fields in order as written, unfolded (see
    /// [`unfolded_fields`]): what SEARCH HEADER, FROM, SUBJECT, ... match besides
    /// the decoded values. Missing in meta stored before it existed; `Store::open` fills it in.
    #[serde(default)]
    pub unfolded_headers: Vec<(String, String)>,
    /// The Date: header as seconds since the epoch (RFC 5256 SORT DATE).
    pub sent_date: Option<i64>,
    /// The Date: header's calendar date as written, in its own zone (year, month, day):
    /// what SENTBEFORE, SENTON and SENTSINCE compare, "disregarding time and timezone"
    /// (RFC 9051 §6.4.4). Missing in meta stored before it existed (SEARCH then takes
    /// the UTC date of `sent_date`).
    #[serde(default)]
    pub sent_day: Option<(u16, u8, u8)>,
    /// RFC 5256 §2.1 base subject, for SORT SUBJECT and THREAD.
    pub base_subject: String,
    /// Message-ID and References/In-Reply-To ids, for THREAD=REFERENCES (RFC 5256 §3).
    pub message_id: Option<String>,
    pub references: Vec<String>,
    /// RFC 8970 PREVIEW text (see [`crate::preview`]). `None` in meta stored before it
    /// existed: FETCH PREVIEW then computes it from the raw message.
    #[serde(default)]
    pub preview: Option<String>,
    /// RFC 5957 §2 SORT=DISPLAY keys of From and To (see [`display_name`]). `None` in
    /// meta stored before they existed: SORT then computes them from the ENVELOPE.
    #[serde(default)]
    pub display_from: Option<String>,
    #[serde(default)]
    pub display_to: Option<String>,
}

/// RFC 9051 §7.5.2 ENVELOPE: header values as they appear in the message (unfolded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Vec<EnvelopeAddress>,
    pub sender: Vec<EnvelopeAddress>,
    pub reply_to: Vec<EnvelopeAddress>,
    pub to: Vec<EnvelopeAddress>,
    pub cc: Vec<EnvelopeAddress>,
    pub bcc: Vec<EnvelopeAddress>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

/// A MIME part (RFC 2045/2046) with its place in the raw message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BodyPart {
    /// Lower-case media type and subtype, e.g. `text` / `plain`.
    pub media_type: String,
    pub media_subtype: String,
    pub params: Vec<(String, String)>,
    pub content_id: Option<String>,
    pub description: Option<String>,
    /// Content-Transfer-Encoding as written, upper-cased; `7BIT` when absent.
    pub encoding: String,
    pub md5: Option<String>,
    pub disposition: Option<Disposition>,
    pub language: Vec<String>,
    pub location: Option<String>,
    /// Offsets into the raw message: header starts, body starts (header ends), body ends.
    pub header_start: u32,
    pub body_start: u32,
    pub body_end: u32,
    /// Lines of the body, as BODYSTRUCTURE reports for text and message/rfc822 parts.
    pub body_lines: u32,
    pub content: PartContent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disposition {
    pub kind: String,
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartContent {
    /// A leaf part: text, image, application, ...
    Single,
    /// multipart/*: the children in order.
    Multipart(Vec<BodyPart>),
    /// message/rfc822 (or message/global): the nested message.
    Message {
        envelope: Box<Envelope>,
        root: Box<BodyPart>,
    },
}

impl BodyPart {
    pub fn body_size(&self) -> u32 {
        self.body_end.saturating_sub(self.body_start)
    }
}

/// The result of analysing a message: its meta and its decoded text for SEARCH.
pub struct Analysis {
    pub meta: MessageMeta,
    pub body_text: String,
}

/// Analyses a raw message. Never fails: a message that does not parse as MIME is a
/// single text/plain part (RFC 2045 §5.2 default).
pub fn analyse(raw: &[u8]) -> Analysis {
    // mail-parser is code we do not control, fed by anyone on port 25: a panic inside it
    // (the fuzzer found a `debug_assert!` that fires on a 2 KB message in debug builds)
    // makes the message one that does not parse, instead of ending the session that
    // delivers it or the command that reads it.
    std::panic::catch_unwind(|| analyse_parsed(raw)).unwrap_or_else(|_| {
        tracing::warn!(
            size = raw.len(),
            "MIME parser panicked; message kept as one text part"
        );
        unparsed(raw)
    })
}

fn unparsed(raw: &[u8]) -> Analysis {
    let body_text = String::from_utf8_lossy(raw).into_owned();
    Analysis {
        meta: MessageMeta {
            envelope: Envelope::default(),
            root: plain_text_part(raw),
            headers: Vec::new(),
            unfolded_headers: Vec::new(),
            sent_date: None,
            sent_day: None,
            base_subject: String::new(),
            message_id: None,
            references: Vec::new(),
            preview: Some(preview::text_preview(&body_text)),
            display_from: Some(String::new()),
            display_to: Some(String::new()),
        },
        body_text,
    }
}

fn analyse_parsed(raw: &[u8]) -> Analysis {
    let mut parse_copy = unfold_content_headers(raw);
    label_ascii_text_as_utf8(&mut parse_copy);
    let parsed = MessageParser::default().parse(parse_copy.as_ref());
    match parsed {
        Some(message) if !message.parts.is_empty() => {
            let mut body_text = String::new();
            let root = body_part(&message, 0, raw, &mut body_text);
            let envelope = envelope(&message, raw);
            let meta = MessageMeta {
                display_from: Some(display_name(&envelope.from)),
                display_to: Some(display_name(&envelope.to)),
                envelope,
                unfolded_headers: rfc5322::unfolded_fields(top_header(raw, &root)),
                root,
                headers: decoded_headers(&message, raw),
                sent_date: message.date().map(|date| date.to_timestamp()),
                sent_day: message.date().map(|date| (date.year, date.month, date.day)),
                base_subject: base_subject(message.subject().unwrap_or("")),
                message_id: message.message_id().map(str::to_owned),
                references: thread_references(&message),
                preview: Some(preview::message_preview(&message)),
            };
            Analysis { meta, body_text }
        }
        _ => unparsed(raw),
    }
}

/// Analyses a message on the blocking pool, so that a large or hostile message never
/// holds an async worker (and with it other clients' sessions).
pub(crate) async fn analyse_off_workers(raw: Vec<u8>) -> Result<Analysis> {
    tokio::task::spawn_blocking(move || analyse(&raw))
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The top-level header section as stored: the raw bytes before the root's body, with
/// the blank line that ends the header when there is one.
pub fn top_header<'a>(raw: &'a [u8], root: &BodyPart) -> &'a [u8] {
    raw.get(..(root.body_start as usize).min(raw.len()))
        .unwrap_or_default()
}

/// mail-parser 0.11.9 loses a Content-Type or Content-Disposition parameter whose value
/// is folded onto its own line (`boundary=\r\n "XX"`), and keeps the line break of a fold
/// inside a quoted value (`boundary="foo\r\n bar"` is the boundary `foo bar`), losing the
/// whole multipart structure either way. We hand it a copy in which every folded
/// `Content-*` header field is unfolded (RFC 5322 §2.2.3: the CRLF before the WSP goes,
/// the WSP stays) and padded with spaces at its end to its length as written: every field
/// starts and ends where it did, so the offsets mail-parser reports still point into the
/// original bytes.
fn unfold_content_headers(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut copy: Option<Vec<u8>> = None;
    // The Content-* field being read: where it starts, and whether it was folded.
    let mut field: Option<(usize, bool)> = None;
    let mut line_start = 0;
    while line_start < raw.len() {
        let line_end = raw
            .get(line_start..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
            .map_or(raw.len(), |at| line_start + at + 1);
        let line = raw.get(line_start..line_end).unwrap_or_default();
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some((_, folded)) = &mut field {
                *folded = true;
            }
        } else {
            let content = line
                .get(..8)
                .is_some_and(|name| name.eq_ignore_ascii_case(b"content-"));
            field = content.then_some((line_start, false));
        }
        let continues = matches!(raw.get(line_end), Some(b' ' | b'\t'));
        if let Some((start, true)) = field
            && !continues
        {
            // The field ends with this line: its text, without the line break that ends it.
            let break_length = if line.ends_with(b"\r\n") {
                2
            } else {
                usize::from(line.ends_with(b"\n"))
            };
            let text_end = line_end - break_length;
            let unfolded: Vec<u8> = raw
                .get(start..text_end)
                .unwrap_or_default()
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            let bytes = copy.get_or_insert_with(|| raw.to_vec());
            if let Some(text) = bytes.get_mut(start..text_end) {
                let (value, padding) = text.split_at_mut(unfolded.len().min(text.len()));
                value.copy_from_slice(&unfolded[..value.len()]);
                padding.fill(b' ');
            }
            field = None;
        }
        line_start = line_end;
    }
    match copy {
        Some(bytes) => Cow::Owned(bytes),
        None => Cow::Borrowed(raw),
    }
}

/// The charset labels mail-parser 0.11.9 decodes through its Windows-1252 table, one
/// `char` pushed per byte (`decoder_cp1252`), as it normalises them: lower case, `-` as
/// `_`. Each maps ASCII to itself.
const CP1252_LABELS: &[&[u8]] = &[
    b"ansi_x3.4_1968",
    b"ascii",
    b"cp1252",
    b"cp819",
    b"csisolatin1",
    b"cswindows1252",
    b"ibm819",
    b"iso88591",
    b"iso8859_1",
    b"iso_8859_1",
    b"iso_8859_1:1987",
    b"iso_ir_100",
    b"l1",
    b"latin1",
    b"us_ascii",
    b"windows_1252",
    b"x_cp1252",
];

/// What a relabelled charset says: a label mail-parser has no table for, so it takes the
/// text as UTF-8 (`String::from_utf8_lossy`, which copies ASCII in one go). A label
/// written shorter (`l1`) gets its first letters, which name no charset either.
const UTF8_LABEL: &[u8] = b"utf-8";

/// Most mail is a single text part in US-ASCII (or labelled Windows-1252 or ISO-8859-1
/// while holding only ASCII), and mail-parser decodes those byte by byte through a table:
/// a tenth of the instructions of a whole SMTP delivery. ASCII decoded by any of
/// [`CP1252_LABELS`] is the same text as ASCII read as UTF-8, so when the message is
/// ASCII throughout and its top-level part is text with no transfer encoding but 7bit,
/// 8bit or binary (RFC 2045 §6: its body is then the octets as written), the copy handed
/// to mail-parser labels it `utf-8` instead, padded with spaces to the label's length as
/// written so that every offset holds. Only the top-level header is changed: a body line
/// that looks like a header field stays as written. The stored parameters come from the
/// original bytes ([`raw_header`]), never from this copy.
fn label_ascii_text_as_utf8(copy: &mut Cow<'_, [u8]>) {
    if !copy.is_ascii() {
        return;
    }
    let Some(label) = top_level_cp1252_label(copy) else {
        return;
    };
    if let Some(value) = copy.to_mut().get_mut(label) {
        let (utf8, padding) = value.split_at_mut(UTF8_LABEL.len().min(value.len()));
        utf8.copy_from_slice(UTF8_LABEL.get(..utf8.len()).unwrap_or_default());
        padding.fill(b' ');
    }
}

/// Where the charset label of the top-level `Content-Type: text/...` is in `header`, when
/// it is one of [`CP1252_LABELS`] and the top-level part has no transfer encoding that
/// changes its octets. Every `Content-*` field is on one line here
/// ([`unfold_content_headers`] unfolded them); anything unexpected (two Content-Type
/// fields, two charset parameters) finds nothing.
fn top_level_cp1252_label(message: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut found = None;
    let mut content_types = 0;
    let mut line_start = 0;
    while line_start < message.len() {
        let rest = message.get(line_start..)?;
        let line_end = memchr::memchr(b'\n', rest).map_or(message.len(), |at| line_start + at + 1);
        let line = message.get(line_start..line_end)?;
        let text = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        // RFC 5322 §2.1: the header ends at the first empty line.
        if text.is_empty() {
            break;
        }
        if let Some(value) = field_value(text, b"content-transfer-encoding") {
            let value = value.trim_ascii();
            let identity = [b"7bit".as_slice(), b"8bit", b"binary"]
                .iter()
                .any(|encoding| value.eq_ignore_ascii_case(encoding));
            if !identity {
                return None;
            }
        } else if let Some(value) = field_value(text, b"content-type") {
            content_types += 1;
            let offset = line_start + (text.len() - value.len());
            found = cp1252_charset(value).map(|label| offset + label.start..offset + label.end);
        }
        line_start = line_end;
    }
    if content_types == 1 { found } else { None }
}

/// The value of a header field line `name: value`, when the line is that field.
fn field_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = line.split_at_checked(name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = rest.trim_ascii_start();
    rest.strip_prefix(b":")
}

/// In a Content-Type value of a `text/` type, the range of its charset label when that is
/// one of [`CP1252_LABELS`] (quoted or not), and the only charset parameter.
fn cp1252_charset(value: &[u8]) -> Option<std::ops::Range<usize>> {
    let media_type = value.trim_ascii_start();
    if !media_type
        .get(..5)
        .is_some_and(|t| t.eq_ignore_ascii_case(b"text/"))
    {
        return None;
    }
    let lower = value.to_ascii_lowercase();
    let mut names = memchr::memmem::find_iter(&lower, b"charset");
    let at = names.next()?;
    if names.next().is_some() {
        return None;
    }
    // The parameter's name starts after `;` and optional white space.
    let before = lower.get(..at)?.trim_ascii_end();
    if !before.ends_with(b";") {
        return None;
    }
    let after = lower.get(at + b"charset".len()..)?;
    let after_equals = after
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    let quoted = after_equals.first() == Some(&b'"');
    let label_start = value.len() - after_equals.len() + usize::from(quoted);
    let label_len = lower
        .get(label_start..)?
        .iter()
        .position(|b| matches!(b, b'"' | b';' | b' ' | b'\t' | b'('))
        .unwrap_or(value.len() - label_start);
    let label: Vec<u8> = lower
        .get(label_start..label_start + label_len)?
        .iter()
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect();
    CP1252_LABELS
        .contains(&label.as_slice())
        .then_some(label_start..label_start + label_len)
}

fn plain_text_part(raw: &[u8]) -> BodyPart {
    BodyPart {
        media_type: "text".into(),
        media_subtype: "plain".into(),
        params: vec![("charset".into(), "us-ascii".into())],
        content_id: None,
        description: None,
        encoding: "7BIT".into(),
        md5: None,
        disposition: None,
        language: Vec::new(),
        location: None,
        header_start: 0,
        body_start: 0,
        body_end: raw.len() as u32,
        body_lines: count_lines(raw),
        content: PartContent::Single,
    }
}

/// MIME levels analysed below the top-level part; a part deeper than this is an opaque
/// leaf (its bytes are still served by BODY[n], its structure is not listed). Real mail
/// nests a handful of levels (a forward of a forward of a digest); the limit keeps what is
/// stored readable: every level adds three levels of JSON (`{"Multipart":[{...}]}`), and
/// serde_json refuses input nested deeper than 128, so 32 levels (at most 5 + 3 x 32 =
/// 101 levels of JSON) always read back, in serde and in SQLite's and PostgreSQL's JSON
/// functions alike.
pub const MAX_MIME_DEPTH: usize = 32;

/// What is left to visit below a part while its tree is built.
enum Children<'m> {
    /// A leaf, or a part at [`MAX_MIME_DEPTH`].
    None,
    /// multipart/*: the indexes of the children not yet visited, into `message.parts`.
    Parts {
        message: &'m Message<'m>,
        pending: &'m [u32],
    },
    /// message/rfc822: the nested message's root, until visited.
    Nested {
        message: &'m Message<'m>,
        envelope: Box<Envelope>,
        visited: bool,
    },
}

/// A part whose children are being built.
struct OpenPart<'m> {
    part: BodyPart,
    children: Children<'m>,
    built: Vec<BodyPart>,
}

impl<'m> OpenPart<'m> {
    /// The next child to visit: the message that holds it and its index there.
    fn next_child(&mut self) -> Option<(&'m Message<'m>, usize)> {
        match &mut self.children {
            Children::None => None,
            Children::Parts { message, pending } => {
                let (&first, rest) = pending.split_first()?;
                *pending = rest;
                Some((*message, first as usize))
            }
            Children::Nested {
                message, visited, ..
            } => (!std::mem::replace(visited, true)).then_some((*message, 0)),
        }
    }

    fn close(self) -> BodyPart {
        let OpenPart {
            mut part,
            children,
            mut built,
        } = self;
        part.content = match children {
            Children::None => PartContent::Single,
            Children::Parts { .. } => PartContent::Multipart(built),
            Children::Nested { envelope, .. } => match built.pop() {
                Some(root) => PartContent::Message {
                    envelope,
                    root: Box::new(root),
                },
                None => PartContent::Single,
            },
        };
        part
    }
}

/// The part tree below `message.parts[index]`, built without recursion (house rule 12:
/// the depth comes from [`MAX_MIME_DEPTH`], never from the input); the decoded text of
/// its text parts is appended to `text` in order.
fn body_part(message: &Message<'_>, index: usize, raw: &[u8], text: &mut String) -> BodyPart {
    let mut open = vec![open_part(message, index, raw, text, 0)];
    loop {
        let depth = open.len();
        let next = open.last_mut().and_then(OpenPart::next_child);
        if let Some((holder, child)) = next {
            open.push(open_part(holder, child, raw, text, depth));
            continue;
        }
        // Invariant: `open` is not empty here; it holds the root until the root closes.
        let Some(done) = open.pop().map(OpenPart::close) else {
            return plain_text_part(b"");
        };
        match open.last_mut() {
            Some(parent) => parent.built.push(done),
            None => return done,
        }
    }
}

/// A part's own fields, and what is left to visit below it. A part at `depth`
/// [`MAX_MIME_DEPTH`] gets no children: its structure is not looked into.
fn open_part<'m>(
    message: &'m Message<'m>,
    index: usize,
    raw: &[u8],
    text: &mut String,
    depth: usize,
) -> OpenPart<'m> {
    let Some(part) = message.parts.get(index) else {
        return OpenPart {
            part: plain_text_part(b""),
            children: Children::None,
            built: Vec::new(),
        };
    };
    let (media_type, media_subtype, params) = match part.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase(),
            raw_header(part, raw, "Content-Type")
                .map(|value| rfc5322::parameters(&value))
                .unwrap_or_default(),
        ),
        // RFC 2046 §5.1.5: in multipart/digest the default is message/rfc822.
        None if matches!(part.body, PartType::Message(_)) => {
            ("message".into(), "rfc822".into(), Vec::new())
        }
        // RFC 2045 §5.2: the default is text/plain; charset=us-ascii.
        None => (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    let parsed_body_start = part.offset_body.min(raw.len() as u32);
    let body_end = delimiter_line_break_excluded(
        raw,
        part.offset_end.clamp(parsed_body_start, raw.len() as u32),
        part.offset_header.min(parsed_body_start),
    );
    // A part whose "blank line" was the delimiter's line break has no body at all.
    let body_start = parsed_body_start.min(body_end);
    let body_bytes = &raw[body_start as usize..body_end as usize];
    let children = match &part.body {
        _ if depth >= MAX_MIME_DEPTH => {
            // Opaque for FETCH, still searchable: the text of the parts below.
            text_below(message, index, text);
            Children::None
        }
        PartType::Multipart(children) => Children::Parts {
            message,
            pending: children.as_slice(),
        },
        PartType::Message(nested) if !nested.parts.is_empty() => Children::Nested {
            message: nested,
            envelope: Box::new(envelope(nested, raw)),
            visited: false,
        },
        _ => Children::None,
    };
    if let PartType::Text(decoded) | PartType::Html(decoded) = &part.body {
        text.push_str(decoded);
        text.push('\n');
    }
    let part = BodyPart {
        media_type,
        media_subtype,
        params,
        content_id: raw_header(part, raw, "Content-ID"),
        description: raw_header(part, raw, "Content-Description"),
        encoding: raw_header(part, raw, "Content-Transfer-Encoding")
            .map(|e| e.to_ascii_uppercase())
            .unwrap_or_else(|| "7BIT".into()),
        md5: raw_header(part, raw, "Content-MD5"),
        disposition: part.content_disposition().map(|d| Disposition {
            kind: d.ctype().to_ascii_lowercase(),
            params: raw_header(part, raw, "Content-Disposition")
                .map(|value| rfc5322::parameters(&value))
                .unwrap_or_default(),
        }),
        language: match part.content_language() {
            HeaderValue::Text(lang) => vec![lang.to_string()],
            HeaderValue::TextList(langs) => langs.iter().map(|l| l.to_string()).collect(),
            _ => Vec::new(),
        },
        location: raw_header(part, raw, "Content-Location"),
        header_start: part.offset_header.min(body_start),
        body_start,
        body_end,
        body_lines: count_lines(body_bytes),
        // Filled in when the part closes (OpenPart::close).
        content: PartContent::Single,
    };
    OpenPart {
        part,
        children,
        built: Vec::new(),
    }
}

/// Appends the decoded text of every text part below `message.parts[index]` (not of the
/// part itself), walking with a stack.
fn text_below<'m>(message: &'m Message<'m>, index: usize, text: &mut String) {
    fn below<'m>(
        message: &'m Message<'m>,
        index: usize,
        pending: &mut Vec<(&'m Message<'m>, usize)>,
    ) {
        match message.parts.get(index).map(|part| &part.body) {
            Some(PartType::Multipart(children)) => {
                pending.extend(children.iter().rev().map(|&c| (message, c as usize)))
            }
            Some(PartType::Message(nested)) => pending.push((nested, 0)),
            _ => {}
        }
    }
    let mut pending = Vec::new();
    below(message, index, &mut pending);
    while let Some((message, index)) = pending.pop() {
        if let Some(PartType::Text(decoded) | PartType::Html(decoded)) =
            message.parts.get(index).map(|part| &part.body)
        {
            text.push_str(decoded);
            text.push('\n');
        }
        below(message, index, &mut pending);
    }
}

/// The header section of the message and of every part in it (MIME headers, and the
/// headers of attached messages), as written (SEARCH TEXT, and the full-text index).
pub fn header_sections<'a>(raw: &'a [u8], root: &BodyPart) -> Vec<&'a [u8]> {
    fn walk<'a>(raw: &'a [u8], part: &BodyPart, out: &mut Vec<&'a [u8]>) {
        let start = (part.header_start as usize).min(raw.len());
        let end = (part.body_start as usize).min(part_end(raw, part));
        out.push(
            raw.get(start..end.clamp(start, raw.len()))
                .unwrap_or_default(),
        );
        match &part.content {
            PartContent::Multipart(children) => {
                children.iter().for_each(|child| walk(raw, child, out));
            }
            PartContent::Message { root, .. } => walk(raw, root, out),
            PartContent::Single => {}
        }
    }
    let mut out = Vec::new();
    walk(raw, root, &mut out);
    out
}

/// Where the part's octets end. RFC 2046 §5.1.1: the line break before a boundary
/// delimiter belongs to the delimiter. Messages stored before storage corrected this
/// ([`delimiter_line_break_excluded`]) have, for a part with no blank line after its
/// header (or no header at all), offsets that count that line break into the part, so
/// its `body_end` sits on the `--` of the delimiter itself; this gives the line break
/// back. For offsets stored since, it changes nothing.
pub fn part_end(raw: &[u8], part: &BodyPart) -> usize {
    let end = (part.body_end as usize).min(raw.len());
    if part.body_start < part.body_end {
        return end;
    }
    let end = u32::try_from(end).unwrap_or(u32::MAX);
    delimiter_line_break_excluded(raw, end, part.header_start) as usize
}

/// Lines in a body: the number of line ends, as Dovecot counts; a last line without
/// one is not counted (RFC 9051 §7.5.2 leaves the partial line open).
fn count_lines(body: &[u8]) -> u32 {
    memchr::memchr_iter(b'\n', body).count() as u32
}

/// The value of a header field of a part as written in the raw bytes, unfolded and trimmed.
fn raw_header(part: &MessagePart<'_>, raw: &[u8], name: &str) -> Option<String> {
    part.headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| raw_value(raw, h.offset_start, h.offset_end))
}

fn raw_value(raw: &[u8], start: u32, end: u32) -> String {
    let start = (start as usize).min(raw.len());
    let end = (end as usize).clamp(start, raw.len());
    let unfolded: Vec<u8> = raw[start..end]
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&unfolded).trim().to_owned()
}

fn envelope(message: &Message<'_>, raw: &[u8]) -> Envelope {
    let root_headers = message
        .parts
        .first()
        .map(|p| p.headers.as_slice())
        .unwrap_or_default();
    // RFC 9051 §7.5.2: values as in the header; a field present but empty is "", an
    // absent one NIL.
    let raw_field = |name: &str| {
        root_headers
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| raw_value(raw, h.offset_start, h.offset_end))
    };
    let addresses = |name: &str| {
        raw_field(name)
            .map(|value| rfc5322::address_list(&value))
            .unwrap_or_default()
    };
    let from = addresses("From");
    // RFC 9051 §7.5.2: an absent or empty Sender or Reply-To takes the value of From.
    let or_from = |list: Vec<EnvelopeAddress>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: raw_field("Date"),
        subject: raw_field("Subject"),
        sender: or_from(addresses("Sender")),
        reply_to: or_from(addresses("Reply-To")),
        from,
        to: addresses("To"),
        cc: addresses("Cc"),
        bcc: addresses("Bcc"),
        in_reply_to: raw_field("In-Reply-To"),
        message_id: raw_field("Message-ID"),
    }
}

/// RFC 5957 §2: "the display-name of the first" address, decoded (RFC 2047), when it has
/// a non-empty one, else its addr-spec; "" when there is no address. A group's start
/// marker (no host, RFC 9051 §7.5.2) gives the group name, as Dovecot 2.3 sorts it.
/// Not case-folded: the comparison is the reader's.
pub fn display_name(addresses: &[EnvelopeAddress]) -> String {
    let Some(first) = addresses.first() else {
        return String::new();
    };
    let Some(host) = first.host.as_deref() else {
        return first.mailbox.clone().unwrap_or_default();
    };
    if let Some(name) = first.name.as_deref() {
        // The name as written, unquoted: mail-parser decodes its encoded words as it
        // does an unstructured field's, which ends at a line break.
        let line: String = name.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        let line = format!("{line}\r\n");
        if let HeaderValue::Text(text) = MessageStream::new(line.as_bytes()).parse_unstructured()
            && !text.trim().is_empty()
        {
            return text.trim().to_owned();
        }
    }
    format!("{}@{host}", first.mailbox.as_deref().unwrap_or(""))
}

fn decoded_headers(message: &Message<'_>, raw: &[u8]) -> Vec<(String, String)> {
    message
        .headers()
        .iter()
        .map(|header| {
            let value = match &header.value {
                HeaderValue::Text(text) => text.to_string(),
                HeaderValue::TextList(list) => list.join(", "),
                HeaderValue::Address(address) => addresses_text(address),
                _ => raw_value(raw, header.offset_start, header.offset_end),
            };
            (header.name.as_str().to_owned(), value)
        })
        .collect()
}

fn addresses_text(address: &Address<'_>) -> String {
    let mut parts = Vec::new();
    for addr in address.iter() {
        match (&addr.name, &addr.address) {
            (Some(name), Some(email)) => parts.push(format!("{name} <{email}>")),
            (None, Some(email)) => parts.push(email.to_string()),
            (Some(name), None) => parts.push(name.to_string()),
            (None, None) => {}
        }
    }
    parts.join(", ")
}

/// RFC 5256 §3 REFERENCES step 1A: the message ids of References; "If a message does
/// not contain a References header line, or the References header line does not contain
/// any valid message ids, then use the first (if any) valid message id of the
/// In-Reply-To header line as the only valid message id in the References header line."
fn thread_references(message: &mail_parser::Message<'_>) -> Vec<String> {
    let references = message_ids(message.references());
    if !references.is_empty() {
        return references;
    }
    message_ids(message.in_reply_to())
        .into_iter()
        .take(1)
        .collect()
}

fn message_ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// RFC 2046 §5.1.1: "the CRLF preceding the boundary delimiter line is conceptually
/// attached to the boundary". mail-parser 0.11 counts that line break into a part that
/// has no blank line after its header (or no header at all), so the part's end sits on
/// the `--` of the delimiter; this gives the line break back to the delimiter.
pub fn delimiter_line_break_excluded(raw: &[u8], end: u32, start: u32) -> u32 {
    let at = end as usize;
    if !raw.get(at..).is_some_and(|rest| rest.starts_with(b"--")) {
        return end;
    }
    let before = raw.get(start as usize..at).unwrap_or_default();
    if before.ends_with(b"\r\n") {
        end - 2
    } else if before.ends_with(b"\n") {
        end - 1
    } else {
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_reply_to_counts_only_without_references() {
        let ids = |raw: &str| analyse(raw.as_bytes()).meta.references;
        // RFC 5256 §3 REFERENCES step 1A: References wins; In-Reply-To only alone.
        assert_eq!(
            ids("References: <a@x> <b@x>\r\nIn-Reply-To: <c@x>\r\nSubject: s\r\n\r\nbody\r\n"),
            ["a@x", "b@x"]
        );
        assert_eq!(
            ids("In-Reply-To: <c@x> <d@x>\r\nSubject: s\r\n\r\nbody\r\n"),
            ["c@x"]
        );
    }

    #[test]
    fn folded_boundary_parameter_still_splits_the_multipart() {
        let raw = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=\r\n \"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--XX--\r\n";
        let analysis = analyse(raw);
        let root = &analysis.meta.root;
        assert_eq!(
            (root.media_type.as_str(), root.media_subtype.as_str()),
            ("multipart", "mixed")
        );
        assert!(root.params.contains(&("boundary".into(), "XX".into())));
        let PartContent::Multipart(children) = &root.content else {
            panic!("not split into parts: {root:?}");
        };
        assert_eq!(children.len(), 2);
        let first = &raw[children[0].body_start as usize..children[0].body_end as usize];
        assert_eq!(first, b"hello");
        assert_eq!(children[1].media_subtype, "html");
        assert!(analysis.body_text.contains("hello"));
    }

    #[test]
    fn a_fold_inside_a_quoted_boundary_is_unfolded() {
        // RFC 5322 §2.2.3: the boundary is `foo bar`, the fold's CRLF removed.
        let raw = b"Subject: folded\r\nContent-Type: multipart/mixed; boundary=\"foo\r\n bar\"; x=1\r\n\r\n--foo bar\r\nContent-Type: text/plain\r\n\r\none\r\n--foo bar\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--foo bar--\r\n";
        let analysis = analyse(raw);
        let root = &analysis.meta.root;
        let PartContent::Multipart(children) = &root.content else {
            panic!("not split into parts: {root:?}");
        };
        assert_eq!(children.len(), 2);
        let first = &raw[children[0].body_start as usize..children[0].body_end as usize];
        assert_eq!(first, b"one");
        assert_eq!(children[1].media_subtype, "html");
        // The header as stored and served is the original, fold and all.
        assert!(top_header(raw, root).ends_with(b"\"foo\r\n bar\"; x=1\r\n\r\n"));
    }

    /// What mail-parser makes of `raw` as given, without our relabelling: the reference.
    fn parser_text(raw: &[u8]) -> String {
        let message = MessageParser::default().parse(raw).expect("parses");
        message
            .parts
            .iter()
            .filter_map(|part| match &part.body {
                PartType::Text(text) | PartType::Html(text) => Some(format!("{text}\n")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn ascii_text_labelled_cp1252_is_read_as_utf8_with_the_same_text_and_params() {
        for label in [
            "us-ascii",
            "\"US-ASCII\"",
            "windows-1252",
            "ISO-8859-1",
            "l1",
        ] {
            let raw = format!(
                "Subject: plain\r\nContent-Type: text/plain; format=flowed; charset={label}\r\n\r\nHello\tworld ~ {{}}\r\nsecond line\r\n"
            );
            let bare = label.trim_matches('"');
            let label_at = raw.find(bare).expect("label");
            let mut copy = Cow::Borrowed(raw.as_bytes());
            label_ascii_text_as_utf8(&mut copy);
            let relabelled = copy.get(label_at..label_at + bare.len()).expect("in range");
            assert!(relabelled.starts_with(b"ut"), "{label}: {relabelled:?}");
            assert_eq!(copy.len(), raw.len(), "{label}: offsets hold");

            let analysis = analyse(raw.as_bytes());
            assert_eq!(analysis.body_text, parser_text(raw.as_bytes()), "{label}");
            assert!(
                analysis
                    .body_text
                    .contains("Hello\tworld ~ {}\r\nsecond line")
            );
            // What BODYSTRUCTURE reports comes from the bytes as written.
            let charset = analysis
                .meta
                .root
                .params
                .iter()
                .find(|(n, _)| n == "charset");
            assert_eq!(charset.map(|(_, v)| v.as_str()), Some(bare), "{label}");
        }
    }

    #[test]
    fn relabelling_keeps_off_8bit_transfer_encoded_multipart_and_body_lines() {
        let cases: [&[u8]; 5] = [
            // 8-bit Latin-1: é is one octet, which UTF-8 would not read.
            b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n",
            // Quoted-printable decodes to an 8-bit octet.
            b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n",
            // Base64 of "caf\xe9".
            b"Content-Transfer-Encoding: base64\r\nContent-Type: text/plain; charset=windows-1252\r\n\r\nY2Fm6Q==\r\n",
            b"Content-Type: multipart/mixed; boundary=b; charset=us-ascii\r\n\r\n--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\none\r\n--b--\r\n",
            b"Subject: x\r\n\r\nContent-Type: text/plain; charset=us-ascii\r\n",
        ];
        for raw in cases {
            let mut copy = Cow::Borrowed(raw);
            label_ascii_text_as_utf8(&mut copy);
            assert!(
                matches!(copy, Cow::Borrowed(_)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(analyse(raw).body_text, parser_text(raw));
        }
        assert!(analyse(cases[1]).body_text.contains("caf\u{e9}"));
        assert!(analyse(cases[2]).body_text.contains("caf\u{e9}"));
    }

    #[test]
    fn nested_message_offsets_point_into_the_outer_bytes() {
        let raw = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: Inner Person <inner@example.net>\r\n\r\ninner body\r\n--b--\r\n";
        let meta = analyse(raw).meta;
        let PartContent::Multipart(children) = &meta.root.content else {
            panic!("no parts")
        };
        let PartContent::Message { envelope, root } = &children[0].content else {
            panic!("no nested message")
        };
        assert_eq!(envelope.subject.as_deref(), Some("inner"));
        assert_eq!(envelope.from[0].host.as_deref(), Some("example.net"));
        assert_eq!(
            &raw[root.body_start as usize..root.body_end as usize],
            b"inner body"
        );
    }

    #[test]
    fn envelope_keeps_raw_values_and_fills_sender_from_from() {
        let raw = b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nSubject: =?utf-8?q?h=C3=A9llo?=\r\n  world\r\nFrom: Fred <fred@example.com>\r\nTo: undisclosed:;\r\n\r\nbody\r\n";
        let meta = analyse(raw).meta;
        assert_eq!(
            meta.envelope.subject.as_deref(),
            Some("=?utf-8?q?h=C3=A9llo?=  world")
        );
        assert_eq!(meta.envelope.sender, meta.envelope.from);
        assert_eq!(meta.envelope.from[0].mailbox.as_deref(), Some("fred"));
        assert_eq!(meta.sent_date, Some(760_686_745));
        assert_eq!(meta.root.body_lines, 1);
    }

    #[test]
    fn the_line_break_before_a_delimiter_belongs_to_the_delimiter() {
        // RFC 2046 §5.1.1, with parts that have no blank line after their header or no
        // header at all (tests/corpus/37-part-without-headers-and-empty-parts.eml).
        let raw = b"Content-Type: multipart/alternative; boundary=\"ep\"\r\n\r\n--ep\r\nContent-Type: text/plain\r\n\r\n--ep\r\n\r\n--ep--\r\n";
        let root = analyse(raw).meta.root;
        let PartContent::Multipart(children) = &root.content else {
            panic!("not a multipart: {root:?}")
        };
        let text = |start: u32, end: u32| {
            String::from_utf8_lossy(&raw[start as usize..end as usize]).into_owned()
        };
        let first = &children[0];
        assert_eq!(
            text(first.header_start, first.body_start),
            "Content-Type: text/plain\r\n"
        );
        assert_eq!(first.body_start, first.body_end);
        assert!(raw[first.body_end as usize..].starts_with(b"\r\n--ep\r\n"));
        let second = &children[1];
        assert_eq!(second.header_start, second.body_end, "{second:?}");
        assert!(raw[second.body_end as usize..].starts_with(b"\r\n--ep--"));
    }

    /// Levels of parts below `part` (0 for a leaf), walked with a stack.
    fn depth(part: &BodyPart) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(part, 0)];
        while let Some((part, level)) = stack.pop() {
            deepest = deepest.max(level);
            match &part.content {
                PartContent::Single => {}
                PartContent::Multipart(children) => {
                    stack.extend(children.iter().map(|child| (child, level + 1)))
                }
                PartContent::Message { root, .. } => stack.push((root, level + 1)),
            }
        }
        deepest
    }

    fn nested_multiparts(levels: usize) -> Vec<u8> {
        let mut raw = Vec::new();
        for level in 0..levels {
            raw.extend_from_slice(
                format!(
                    "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
                )
                .as_bytes(),
            );
        }
        raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\ndeepest words\r\n");
        for level in (0..levels).rev() {
            raw.extend_from_slice(format!("--b{level}--\r\n").as_bytes());
        }
        raw
    }

    #[test]
    fn thousands_of_nested_multiparts_stop_at_the_depth_limit_and_read_back() {
        let raw = nested_multiparts(3000);
        let analysis = analyse(&raw);
        assert_eq!(depth(&analysis.meta.root), MAX_MIME_DEPTH);
        // The text below the limit is still there for SEARCH.
        assert!(analysis.body_text.contains("deepest words"));
        // What is stored reads back with serde_json's default recursion limit.
        let json = serde_json::to_string(&analysis.meta).expect("serialises");
        let back: MessageMeta = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, analysis.meta);
        // A level within the limit is analysed as before.
        let shallow = analyse(&nested_multiparts(3)).meta.root;
        assert_eq!(depth(&shallow), 3);
    }

    #[test]
    fn thousands_of_nested_messages_stop_at_the_depth_limit_and_read_back() {
        let mut raw = Vec::new();
        for level in 0..3000 {
            raw.extend_from_slice(
                format!("Subject: level {level}\r\nContent-Type: message/rfc822\r\n\r\n")
                    .as_bytes(),
            );
        }
        raw.extend_from_slice(b"Subject: innermost\r\n\r\nhello\r\n");
        let analysis = analyse(&raw);
        assert_eq!(depth(&analysis.meta.root), MAX_MIME_DEPTH);
        assert_eq!(analysis.meta.envelope.subject.as_deref(), Some("level 0"));
        let json = serde_json::to_string(&analysis.meta).expect("serialises");
        let back: MessageMeta = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, analysis.meta);
    }

    #[test]
    fn a_message_that_makes_the_mime_parser_panic_is_one_text_part() {
        // Found by storage/fuzz's `mime` target: mail-parser 0.11.9 hits a debug_assert.
        let raw = include_bytes!("../testdata/mail-parser-invalid-part-id.eml");
        let analysis = analyse(raw);
        let root = &analysis.meta.root;
        assert!(root.body_end as usize <= raw.len());
        assert!(!analysis.body_text.is_empty());
    }
}
