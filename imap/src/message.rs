//! What FETCH sends about a message, from the meta computed at delivery and the raw
//! bytes (house rule 11: nothing is re-parsed as MIME here): ENVELOPE and BODYSTRUCTURE
//! (RFC 9051 §7.5.2), body sections by part number, and BINARY decoding (RFC 3516).

use crate::proto::base64;
use crate::proto::command::{Section, SectionText};
use crate::proto::datetime::format_date_time;
use crate::proto::response::{nstring, string};
use std::borrow::Cow;
use storage::MessageMeta;
use storage::mime::{BodyPart, Envelope, EnvelopeAddress, PartContent, part_end};

/// Writes `envelope = "(" env-date SP env-subject SP env-from SP env-sender SP
/// env-reply-to SP env-to SP env-cc SP env-bcc SP env-in-reply-to SP env-message-id ")"`.
pub fn envelope(out: &mut Vec<u8>, envelope: &Envelope, utf8: bool) {
    out.push(b'(');
    nstring(out, envelope.date.as_deref().map(str::as_bytes), utf8);
    out.push(b' ');
    nstring(out, envelope.subject.as_deref().map(str::as_bytes), utf8);
    for list in [
        &envelope.from,
        &envelope.sender,
        &envelope.reply_to,
        &envelope.to,
        &envelope.cc,
        &envelope.bcc,
    ] {
        out.push(b' ');
        addresses(out, list, utf8);
    }
    out.push(b' ');
    nstring(
        out,
        envelope.in_reply_to.as_deref().map(str::as_bytes),
        utf8,
    );
    out.push(b' ');
    nstring(out, envelope.message_id.as_deref().map(str::as_bytes), utf8);
    out.push(b')');
}

/// RFC 8970 §7: `msg-att-dynamic =/ "PREVIEW" SP nstring`. The text is UTF-8; a client
/// that did not ENABLE UTF8=ACCEPT gets non-ASCII text as a literal (an IMAP4rev1
/// literal may hold any octet but NUL, RFC 3501 §4.3), as Dovecot sends it. NIL only
/// for PREVIEW (LAZY) of a message stored before previews were computed (§3.1).
pub fn preview(out: &mut Vec<u8>, text: Option<&str>, utf8: bool) {
    out.extend_from_slice(b"PREVIEW ");
    nstring(out, text.map(str::as_bytes), utf8);
}

/// RFC 8514 §5: `msg-att-static =/ "SAVEDATE" SP (date-time / nil)`. NIL for a message
/// whose save date is unknown (placed in its mailbox before save dates were kept): §4.2
/// answers NIL where the storage has no save date.
pub fn save_date(out: &mut Vec<u8>, save_date: Option<i64>) {
    out.extend_from_slice(b"SAVEDATE ");
    match save_date {
        Some(at) => {
            out.push(b'"');
            out.extend_from_slice(format_date_time(at).as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `env-from = "(" 1*address ")" / nil`;
/// `address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"`
fn addresses(out: &mut Vec<u8>, list: &[EnvelopeAddress], utf8: bool) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for address in list {
        out.push(b'(');
        // The display name was decoded at delivery; an IMAP4rev1 client expects the
        // RFC 2047 form for anything that is not ASCII.
        let name = address.name.as_deref().map(|name| encoded_word(name, utf8));
        nstring(out, name.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, address.adl.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, address.mailbox.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        nstring(out, address.host.as_deref().map(str::as_bytes), utf8);
        out.push(b')');
    }
    out.push(b')');
}

/// RFC 2047 §4.1 `=?utf-8?b?...?=` for non-ASCII text when the client did not enable UTF-8.
fn encoded_word(text: &str, utf8: bool) -> Cow<'_, str> {
    if utf8 || text.is_ascii() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("=?utf-8?b?{}?=", base64::encode(text.as_bytes())))
    }
}

/// `body-fld-param = "(" string SP string *(SP string SP string) ")" / nil`
fn params(out: &mut Vec<u8>, params: &[(String, String)], utf8: bool) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, name.as_bytes(), utf8);
        out.push(b' ');
        string(out, value.as_bytes(), utf8);
    }
    out.push(b')');
}

/// `body-fld-dsp SP body-fld-lang SP body-fld-loc`, shared by both extension forms.
fn disposition_language_location(out: &mut Vec<u8>, part: &BodyPart, utf8: bool) {
    match &part.disposition {
        Some(disposition) => {
            out.push(b'(');
            string(out, disposition.kind.as_bytes(), utf8);
            out.push(b' ');
            params(out, &disposition.params, utf8);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match part.language.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one.as_bytes(), utf8),
        many => {
            out.push(b'(');
            for (i, language) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, language.as_bytes(), utf8);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(out, part.location.as_deref().map(str::as_bytes), utf8);
}

/// The body of an empty part, for a multipart without children or a message/rfc822
/// that did not parse: the grammar needs something there.
fn empty_text_part(out: &mut Vec<u8>) {
    out.extend_from_slice(b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
}

/// Writes `body` (`extensible` false: BODY) or BODYSTRUCTURE (with extension data):
/// `body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]`;
/// `body-type-1part = (body-type-basic / body-type-msg / body-type-text) [SP body-ext-1part]`
pub fn body_structure(out: &mut Vec<u8>, part: &BodyPart, extensible: bool, utf8: bool) {
    out.push(b'(');
    if let PartContent::Multipart(children) = &part.content {
        if children.is_empty() {
            empty_text_part(out);
        }
        for child in children {
            body_structure(out, child, extensible, utf8);
        }
        out.push(b' ');
        string(out, part.media_subtype.as_bytes(), utf8);
        if extensible {
            // `body-ext-mpart = body-fld-param [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]`
            out.push(b' ');
            params(out, &part.params, utf8);
            out.push(b' ');
            disposition_language_location(out, part, utf8);
        }
        out.push(b')');
        return;
    }
    // RFC 3501 §9 `media-message` is message/rfc822 only; RFC 9051 §9 adds message/global.
    // An IMAP4rev1 client that has not enabled UTF-8 (RFC 9755) gets message/global as
    // `body-type-basic`: its envelope would carry raw UTF-8 it did not ask for.
    let is_message = part.media_type == "message"
        && (part.media_subtype == "rfc822" || (utf8 && part.media_subtype == "global"));
    // `body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP body-fld-enc SP body-fld-octets`
    string(out, part.media_type.as_bytes(), utf8);
    out.push(b' ');
    string(out, part.media_subtype.as_bytes(), utf8);
    out.push(b' ');
    // RFC 2046 §4.1.2: "The default character set, which must be assumed in the absence
    // of a charset parameter, is US-ASCII"; written out last, as Dovecot and Cyrus do.
    let has_charset = part
        .params
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("charset"));
    if part.media_type == "text" && !has_charset {
        let mut with_charset = part.params.clone();
        with_charset.push(("charset".to_owned(), "us-ascii".to_owned()));
        params(out, &with_charset, utf8);
    } else {
        params(out, &part.params, utf8);
    }
    out.push(b' ');
    nstring(out, part.content_id.as_deref().map(str::as_bytes), utf8);
    out.push(b' ');
    nstring(out, part.description.as_deref().map(str::as_bytes), utf8);
    out.push(b' ');
    string(out, part.encoding.as_bytes(), utf8);
    out.extend_from_slice(format!(" {}", part.body_size()).as_bytes());
    match &part.content {
        // `body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines`
        PartContent::Message {
            envelope: env,
            root,
        } if is_message => {
            out.push(b' ');
            envelope(out, env, utf8);
            out.push(b' ');
            body_structure(out, root, extensible, utf8);
            out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
        }
        _ if is_message => {
            out.push(b' ');
            envelope(out, &Envelope::default(), utf8);
            out.push(b' ');
            empty_text_part(out);
            out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
        }
        // `body-type-text = media-text SP body-fields SP body-fld-lines`
        _ if part.media_type == "text" => {
            out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
        }
        _ => {}
    }
    if extensible {
        // `body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]`
        out.push(b' ');
        nstring(out, part.md5.as_deref().map(str::as_bytes), utf8);
        out.push(b' ');
        disposition_language_location(out, part, utf8);
    }
    out.push(b')');
}

/// The part a `section-part` names (RFC 9051 §6.4.5): numbers index the children of a
/// multipart; a message/rfc822 part is entered to number its message's parts; a
/// message that is not multipart has a single part 1, its body.
pub fn find_part<'a>(root: &'a BodyPart, path: &[u32]) -> Option<&'a BodyPart> {
    let mut current = root;
    let mut at_message_root = true;
    for (depth, &number) in path.iter().enumerate() {
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        current = match &current.content {
            PartContent::Multipart(children) => children.get(index)?,
            _ if at_message_root && index == 0 => current,
            _ => return None,
        };
        at_message_root = false;
        if depth + 1 < path.len()
            && let PartContent::Message { root, .. } = &current.content
        {
            current = root;
            at_message_root = true;
        }
    }
    Some(current)
}

fn slice(raw: &[u8], start: u32, end: usize) -> &[u8] {
    let start = (start as usize).min(raw.len());
    raw.get(start..end.clamp(start, raw.len()))
        .unwrap_or_default()
}

/// The octets of `BODY[section]`, before any partial. `None` when the section does not
/// exist in this message (answered as an empty string).
pub fn section<'a>(raw: &'a [u8], meta: &MessageMeta, section: &Section) -> Option<Cow<'a, [u8]>> {
    let root = &meta.root;
    if section.part.is_empty() {
        let header = slice(raw, 0, root.body_start as usize);
        return Some(match &section.text {
            None => Cow::Borrowed(raw),
            Some(SectionText::Header) => Cow::Borrowed(header),
            Some(SectionText::Text) => Cow::Borrowed(slice(raw, root.body_start, raw.len())),
            Some(SectionText::HeaderFields { not, fields }) => {
                Cow::Owned(header_fields(header, fields, *not))
            }
            Some(SectionText::Mime) => return None,
        });
    }
    let part = find_part(root, &section.part)?;
    let end = part_end(raw, part);
    let body = slice(raw, part.body_start, end);
    match &section.text {
        None => Some(Cow::Borrowed(body)),
        // RFC 9051 §6.4.5: the part's MIME header exactly as it is, with its blank line
        // only if it has one.
        Some(SectionText::Mime) => Some(Cow::Borrowed(slice(
            raw,
            part.header_start,
            (part.body_start as usize).min(end),
        ))),
        Some(text) => {
            // HEADER, HEADER.FIELDS and TEXT of a part apply to a message/rfc822 part.
            let PartContent::Message { root: inner, .. } = &part.content else {
                return None;
            };
            let header = slice(
                raw,
                part.body_start,
                (inner.body_start as usize).min(part_end(raw, inner)),
            );
            Some(match text {
                SectionText::Header => Cow::Borrowed(header),
                SectionText::Text => Cow::Borrowed(slice(raw, inner.body_start, end)),
                SectionText::HeaderFields { not, fields } => {
                    Cow::Owned(header_fields(header, fields, *not))
                }
                SectionText::Mime => return None,
            })
        }
    }
}

/// RFC 9051 §6.4.5 HEADER.FIELDS / HEADER.FIELDS.NOT: the matching header fields, each
/// with its continuation lines, followed by the blank line that ends the header. RFC 9051
/// §7.5.2: the blank line is there "except in the case of a message that has no body and
/// no blank line", as BODY[HEADER] has it.
pub fn header_fields(header: &[u8], fields: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    let mut blank_line = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            blank_line = true;
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line
                .iter()
                .position(|&b| b == b':')
                .and_then(|colon| line.get(..colon))
                .unwrap_or_default();
            let name = String::from_utf8_lossy(name);
            let name = name.trim_end();
            let listed = fields.iter().any(|f| f.eq_ignore_ascii_case(name));
            keep = listed != not;
        }
        if keep {
            out.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if blank_line {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A Content-Transfer-Encoding BINARY cannot undo (RFC 3516 §4.3: `[UNKNOWN-CTE]`).
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownEncoding;

/// RFC 3516 §4.2: the part's content with its transfer encoding removed. `BINARY[]`
/// (an empty part path) is the whole message as stored.
pub fn binary<'a>(
    raw: &'a [u8],
    meta: &MessageMeta,
    path: &[u32],
) -> Result<Option<Cow<'a, [u8]>>, UnknownEncoding> {
    if path.is_empty() {
        return Ok(Some(Cow::Borrowed(raw)));
    }
    let Some(part) = find_part(&meta.root, path) else {
        return Ok(None);
    };
    let body = slice(raw, part.body_start, part_end(raw, part));
    if !matches!(part.content, PartContent::Single) {
        return Ok(Some(Cow::Borrowed(body)));
    }
    match part.encoding.to_ascii_uppercase().as_str() {
        "7BIT" | "8BIT" | "BINARY" | "" => Ok(Some(Cow::Borrowed(body))),
        "BASE64" => Ok(Some(Cow::Owned(base64::decode_lenient(body)))),
        "QUOTED-PRINTABLE" => Ok(Some(Cow::Owned(decode_quoted_printable(body)))),
        _ => Err(UnknownEncoding),
    }
}

/// RFC 2045 §6.7: `=XX` octets, soft line breaks `=` CRLF; trailing whitespace on a
/// line is not part of the data.
pub fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for line in input.split_inclusive(|&b| b == b'\n') {
        let (content, newline) = match line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
        {
            Some(content) => (content, true),
            None => (line, false),
        };
        let content = content
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .and_then(|last| content.get(..=last))
            .unwrap_or_default();
        let (content, soft) = match content.strip_suffix(b"=") {
            Some(content) => (content, true),
            None => (content, false),
        };
        let mut i = 0;
        while let Some(&byte) = content.get(i) {
            if byte == b'='
                && let (Some(&h), Some(&l)) = (content.get(i + 1), content.get(i + 2))
                && let (Some(h), Some(l)) = (hex(h), hex(l))
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            out.push(byte);
            i += 1;
        }
        if newline && !soft {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::mime::analyse;

    const MULTIPART: &[u8] = b"From: Fred <fred@example.com>\r\nTo: a@example.org, \"B\" <b@example.org>\r\nSubject: hi\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@example.net\r\n\r\ninner body\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\nAAEC\r\n--XX--\r\n";

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn formats_bodystructure_with_extension_data() {
        let meta = analyse(MULTIPART).meta;
        let mut out = Vec::new();
        body_structure(&mut out, &meta.root, true, false);
        assert_eq!(
            text(&out),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 10 0 NIL NIL NIL NIL)\
(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 49 (NIL \"inner\" ((NIL NIL \"x\" \"example.net\")) ((NIL NIL \"x\" \"example.net\")) ((NIL NIL \"x\" \"example.net\")) NIL NIL NIL NIL NIL) \
(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)\
(\"application\" \"octet-stream\" NIL NIL NIL \"BASE64\" 4 NIL (\"attachment\" (\"filename\" \"a.bin\")) NIL NIL) \
\"mixed\" (\"boundary\" \"XX\") NIL NIL NIL)"
        );
        let mut out = Vec::new();
        body_structure(&mut out, &meta.root, false, false);
        assert!(
            text(&out).ends_with("\"BASE64\" 4) \"mixed\")"),
            "{}",
            text(&out)
        );
    }

    #[test]
    fn formats_preview_and_save_date() {
        let mut out = Vec::new();
        preview(&mut out, Some("Hi \"Bob\""), false);
        out.push(b' ');
        preview(&mut out, Some("Grüße"), false);
        out.push(b' ');
        preview(&mut out, Some("Grüße"), true);
        out.push(b' ');
        preview(&mut out, None, true);
        out.push(b' ');
        save_date(&mut out, Some(1_420_138_253));
        out.push(b' ');
        save_date(&mut out, None);
        assert_eq!(
            text(&out),
            "PREVIEW \"Hi \\\"Bob\\\"\" PREVIEW {7}\r\nGrüße PREVIEW \"Grüße\" PREVIEW NIL \
             SAVEDATE \" 1-Jan-2015 18:50:53 +0000\" SAVEDATE NIL"
        );
    }

    #[test]
    fn formats_envelope() {
        let meta = analyse(MULTIPART).meta;
        let mut out = Vec::new();
        envelope(&mut out, &meta.envelope, false);
        assert_eq!(
            text(&out),
            "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"hi\" ((\"Fred\" NIL \"fred\" \"example.com\")) ((\"Fred\" NIL \"fred\" \"example.com\")) ((\"Fred\" NIL \"fred\" \"example.com\")) ((NIL NIL \"a\" \"example.org\")(\"B\" NIL \"b\" \"example.org\")) NIL NIL NIL \"<1@example.com>\")"
        );
    }

    #[test]
    fn extracts_sections_by_part_number() {
        let meta = analyse(MULTIPART).meta;
        let get = |part: Vec<u32>, text: Option<SectionText>| {
            section(MULTIPART, &meta, &Section { part, text }).map(|b| self::text(&b))
        };
        assert_eq!(get(vec![1], None).as_deref(), Some("h=C3=A9llo"));
        assert_eq!(
            get(vec![1], Some(SectionText::Mime)).as_deref(),
            Some(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            )
        );
        assert_eq!(get(vec![2, 1], None).as_deref(), Some("inner body"));
        assert_eq!(
            get(vec![2], Some(SectionText::Header)).as_deref(),
            Some("Subject: inner\r\nFrom: x@example.net\r\n\r\n")
        );
        assert_eq!(
            get(vec![2], Some(SectionText::Text)).as_deref(),
            Some("inner body")
        );
        assert_eq!(get(vec![1], Some(SectionText::Header)), None);
        assert_eq!(get(vec![9], None), None);
        assert_eq!(
            get(
                vec![],
                Some(SectionText::HeaderFields {
                    not: false,
                    fields: vec!["subject".into(), "TO".into()]
                })
            )
            .as_deref(),
            Some("To: a@example.org, \"B\" <b@example.org>\r\nSubject: hi\r\n\r\n")
        );
        let header = get(vec![], Some(SectionText::Header)).unwrap_or_default();
        assert!(header.starts_with("From:") && header.ends_with("boundary=XX\r\n\r\n"));
        let body = get(vec![], Some(SectionText::Text)).unwrap_or_default();
        assert!(body.starts_with("preamble\r\n--XX"));
    }

    #[test]
    fn single_part_message_has_part_one() {
        let raw = b"Subject: x\r\n\r\nbody\r\n";
        let meta = analyse(raw).meta;
        let get =
            |part: Vec<u32>| section(raw, &meta, &Section { part, text: None }).map(|b| text(&b));
        assert_eq!(get(vec![1]).as_deref(), Some("body\r\n"));
        assert_eq!(get(vec![2]), None);
        assert_eq!(get(vec![1, 1]), None);
    }

    #[test]
    fn decodes_binary_parts() {
        let meta = analyse(MULTIPART).meta;
        assert_eq!(
            binary(MULTIPART, &meta, &[1]).ok().flatten().as_deref(),
            Some("héllo".as_bytes())
        );
        assert_eq!(
            binary(MULTIPART, &meta, &[3]).ok().flatten().as_deref(),
            Some(&[0u8, 1, 2][..])
        );
        assert_eq!(decode_quoted_printable(b"a=\r\nb =3D \r\nc"), b"ab =\r\nc");
    }

    #[test]
    fn header_fields_add_no_blank_line_the_header_does_not_have() {
        let raw = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n";
        let meta = analyse(raw).meta;
        let get = |not: bool, fields: &[&str]| {
            let fields = fields.iter().map(|f| f.to_string()).collect();
            let text = Some(SectionText::HeaderFields { not, fields });
            section(raw, &meta, &Section { part: vec![], text }).map(|b| self::text(&b))
        };
        assert_eq!(
            get(true, &["From", "Subject"]).as_deref(),
            Some("To: b@example.org\r\n")
        );
        assert_eq!(
            get(false, &["To"]).as_deref(),
            Some("To: b@example.org\r\n")
        );
        let header = section(
            raw,
            &meta,
            &Section {
                part: vec![],
                text: Some(SectionText::Header),
            },
        );
        assert_eq!(header.as_deref(), Some(&raw[..]));
        // With the blank line, it stays whatever the subset.
        assert_eq!(
            header_fields(b"To: b@example.org\r\nX: y\r\n\r\n", &["x".into()], true),
            b"To: b@example.org\r\n\r\n"
        );
    }

    #[test]
    fn mime_header_is_the_part_header_as_written() {
        let raw = b"Content-Type: multipart/alternative; boundary=ep\r\n\r\n--ep\r\nContent-Type: text/plain\r\n\r\n--ep\r\n\r\n--ep\r\nContent-Type: text/html\r\n\r\n\r\n--ep\r\nContent-Type: text/plain\r\n\r\nbody\r\n--ep--\r\n";
        let meta = analyse(raw).meta;
        let get = |part: u32, text: Option<SectionText>| {
            section(
                raw,
                &meta,
                &Section {
                    part: vec![part],
                    text,
                },
            )
            .map(|b| self::text(&b))
        };
        // No blank line after the header: the line break before `--ep` is the delimiter's.
        assert_eq!(
            get(1, Some(SectionText::Mime)).as_deref(),
            Some("Content-Type: text/plain\r\n")
        );
        assert_eq!(get(1, None).as_deref(), Some(""));
        // No header at all.
        assert_eq!(get(2, Some(SectionText::Mime)).as_deref(), Some(""));
        assert_eq!(get(2, None).as_deref(), Some(""));
        // A blank line and an empty body.
        assert_eq!(
            get(3, Some(SectionText::Mime)).as_deref(),
            Some("Content-Type: text/html\r\n\r\n")
        );
        assert_eq!(get(3, None).as_deref(), Some(""));
        assert_eq!(
            get(4, Some(SectionText::Mime)).as_deref(),
            Some("Content-Type: text/plain\r\n\r\n")
        );
        assert_eq!(get(4, None).as_deref(), Some("body"));
    }

    #[test]
    fn attached_message_without_blank_line_has_header_only() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@example.net\r\n\r\n--b--\r\n";
        let meta = analyse(raw).meta;
        let get = |text: SectionText| {
            section(
                raw,
                &meta,
                &Section {
                    part: vec![1],
                    text: Some(text),
                },
            )
            .map(|b| self::text(&b))
        };
        assert_eq!(
            get(SectionText::Header).as_deref(),
            Some("Subject: inner\r\nFrom: x@example.net\r\n")
        );
        let fields = SectionText::HeaderFields {
            not: false,
            fields: vec!["subject".into()],
        };
        assert_eq!(get(fields).as_deref(), Some("Subject: inner\r\n"));
        assert_eq!(get(SectionText::Text).as_deref(), Some(""));
    }

    #[test]
    fn message_global_is_basic_for_imap4rev1() {
        let raw = "Content-Type: multipart/mixed; boundary=g\r\n\r\n--g\r\nContent-Type: message/global\r\nContent-Transfer-Encoding: 8bit\r\n\r\nFrom: J\u{f6}rg <j@example.com>\r\nSubject: Gr\u{fc}\u{df}e\r\n\r\nInhalt\r\n--g--\r\n";
        let meta = analyse(raw.as_bytes()).meta;
        let mut rev1 = Vec::new();
        body_structure(&mut rev1, &meta.root, true, false);
        assert_eq!(
            text(&rev1),
            "((\"message\" \"global\" NIL NIL NIL \"8BIT\" 55 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"g\") NIL NIL NIL)"
        );
        let mut rev1 = Vec::new();
        body_structure(&mut rev1, &meta.root, false, false);
        assert_eq!(
            text(&rev1),
            "((\"message\" \"global\" NIL NIL NIL \"8BIT\" 55) \"mixed\")"
        );
        let mut rev2 = Vec::new();
        body_structure(&mut rev2, &meta.root, false, true);
        assert!(
            text(&rev2).starts_with(
                "((\"message\" \"global\" NIL NIL NIL \"8BIT\" 55 (NIL \"Gr\u{fc}\u{df}e\""
            ),
            "{}",
            text(&rev2)
        );
    }
}
