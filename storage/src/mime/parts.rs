//! The MIME part tree (RFC 2045/2046) with offsets into the raw bytes, built without
//! recursion, and the walks over it that FETCH and SEARCH need.

use super::envelope::{envelope, raw_header};
use super::types::{BodyPart, Disposition, Envelope, PartContent};
use crate::rfc5322;
use mail_parser::{HeaderValue, Message, MimeHeaders, PartType};

pub(super) fn plain_text_part(raw: &[u8]) -> BodyPart {
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
pub(super) fn body_part(
    message: &Message<'_>,
    index: usize,
    raw: &[u8],
    text: &mut String,
) -> BodyPart {
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
