//! The copy of a message handed to mail-parser: folded `Content-*` fields unfolded and
//! ASCII text labelled as Windows-1252 relabelled as UTF-8, every offset kept, so that
//! mail-parser's offsets still point into the original bytes.

use crate::rfc5322::header_lines;
use std::borrow::Cow;

/// mail-parser 0.11.9 loses a Content-Type or Content-Disposition parameter whose value
/// is folded onto its own line (`boundary=\r\n "XX"`), and keeps the line break of a fold
/// inside a quoted value (`boundary="foo\r\n bar"` is the boundary `foo bar`), losing the
/// whole multipart structure either way. We hand it a copy in which every folded
/// `Content-*` header field is unfolded (RFC 5322 §2.2.3: the CRLF before the WSP goes,
/// the WSP stays) and padded with spaces at its end to its length as written: every field
/// starts and ends where it did, so the offsets mail-parser reports still point into the
/// original bytes.
pub(super) fn unfold_content_headers(raw: &[u8]) -> Cow<'_, [u8]> {
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
pub(super) fn label_ascii_text_as_utf8(copy: &mut Cow<'_, [u8]>) {
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
    for (line_start, text) in header_lines(message) {
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
