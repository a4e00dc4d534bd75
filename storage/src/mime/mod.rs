//! What IMAP needs of a message, computed once at delivery (house rule 11): the MIME part
//! tree with offsets into the raw bytes, the ENVELOPE fields, decoded headers and body
//! text for SEARCH, and the keys SORT and THREAD use. FETCH serves from this and the raw
//! bytes; nothing re-parses a message on read.

mod envelope;
mod parse_copy;
pub(crate) mod parts;
mod types;

pub use crate::rfc5322::{EnvelopeAddress, unfolded_fields};
pub use crate::subject::{base_subject, base_subject_and_reply};
pub use envelope::display_name;
pub use parts::{MAX_MIME_DEPTH, delimiter_line_break_excluded, header_sections, part_end};
pub use types::{Analysis, BodyPart, Disposition, Envelope, MessageMeta, PartContent};

use crate::error::{Result, StoreError};
use crate::{preview, rfc5322};
use envelope::{decoded_headers, envelope, thread_references};
use mail_parser::MessageParser;
use parse_copy::{label_ascii_text_as_utf8, unfold_content_headers};
use parts::{body_part, plain_text_part};

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

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::PartType;
    use std::borrow::Cow;

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

    /// The body of the first of the two parts of a multipart `root` whose second part is
    /// text/html.
    fn text_then_html<'a>(raw: &'a [u8], root: &BodyPart) -> &'a [u8] {
        let PartContent::Multipart(children) = &root.content else {
            panic!("not split into parts: {root:?}");
        };
        assert_eq!(children.len(), 2);
        assert_eq!(children[1].media_subtype, "html");
        &raw[children[0].body_start as usize..children[0].body_end as usize]
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
        assert_eq!(text_then_html(raw, root), b"hello");
        assert!(analysis.body_text.contains("hello"));
    }

    #[test]
    fn a_fold_inside_a_quoted_boundary_is_unfolded() {
        // RFC 5322 §2.2.3: the boundary is `foo bar`, the fold's CRLF removed.
        let raw = b"Subject: folded\r\nContent-Type: multipart/mixed; boundary=\"foo\r\n bar\"; x=1\r\n\r\n--foo bar\r\nContent-Type: text/plain\r\n\r\none\r\n--foo bar\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--foo bar--\r\n";
        let analysis = analyse(raw);
        let root = &analysis.meta.root;
        assert_eq!(text_then_html(raw, root), b"one");
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
        let raw = include_bytes!("../../testdata/mail-parser-invalid-part-id.eml");
        let analysis = analyse(raw);
        let root = &analysis.meta.root;
        assert!(root.body_end as usize <= raw.len());
        assert!(!analysis.body_text.is_empty());
    }
}
