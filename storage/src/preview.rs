//! RFC 8970 PREVIEW: a short text of what a message says, computed once at delivery
//! (house rule 11) and stored in the meta for FETCH PREVIEW.
//!
//! RFC 8970 §2 leaves the algorithm to the server. Ours is Dovecot 2.3's, so that a
//! client sees the same preview from both (tests/imap_dovecot_diff.rs compares them):
//! - the text is that of the message's first leaf part, found by descending into the
//!   first child of each multipart: text/plain as decoded (charset and transfer
//!   encoding), text/html with its markup removed (§2: "formatting markup" removed); a
//!   first leaf that is not text (an image, an attached message) gives an empty preview,
//!   the preview of a message with nothing to show;
//! - runs of whitespace and control characters become one space, none at either end;
//! - lines quoting another message (starting with `>`) are left out, unless there is
//!   nothing else, when the preview is `>` and their text;
//! - a signature (after `-- `) is kept, as Dovecot keeps it;
//! - at most [`PREVIEW_MAX_CHARS`] characters.

use crate::mime::parts::MAX_MIME_DEPTH;
use mail_parser::decoders::html::html_to_text;
use mail_parser::{Message, PartType};

/// Characters of a preview at most: RFC 8970 §2 allows up to 256; Dovecot stops at 200,
/// and so do we, so that both servers give the same text.
pub const PREVIEW_MAX_CHARS: usize = 200;

/// The preview of a parsed message: that of its first leaf part (see the module).
pub fn message_preview(message: &Message<'_>) -> String {
    let mut part = message.parts.first();
    // A multipart's first child, MIME level after level, at most MAX_MIME_DEPTH deep
    // (house rule 12).
    for _ in 0..=MAX_MIME_DEPTH {
        match part.map(|p| &p.body) {
            Some(PartType::Multipart(children)) => {
                part = children
                    .first()
                    .and_then(|&index| message.parts.get(index as usize));
            }
            Some(PartType::Text(text)) => return text_preview(text),
            Some(PartType::Html(html)) => return text_preview(&html_to_text(html)),
            _ => break,
        }
    }
    String::new()
}

/// One of the two previews built side by side: of the text, and of the quoted lines.
struct Snippet {
    text: String,
    /// Characters that may still be added.
    left: usize,
    /// Whitespace seen after some text: one space before the next character.
    space: bool,
}

impl Snippet {
    fn new(max: usize) -> Snippet {
        Snippet {
            text: String::new(),
            left: max,
            space: false,
        }
    }

    /// Adds one visible character; false when the snippet is full.
    fn push(&mut self, c: char) -> bool {
        let needed = 1 + usize::from(self.space);
        if self.left < needed {
            return false;
        }
        if std::mem::take(&mut self.space) {
            self.text.push(' ');
        }
        self.text.push(c);
        self.left -= needed;
        true
    }
}

/// The preview of decoded plain text (see the module): whitespace collapsed, quoted
/// lines kept apart, at most [`PREVIEW_MAX_CHARS`] characters.
pub fn text_preview(text: &str) -> String {
    let mut own = Snippet::new(PREVIEW_MAX_CHARS);
    // One character less: the `>` that marks a preview of quoted text.
    let mut quoted = Snippet::new(PREVIEW_MAX_CHARS - 1);
    let mut line_start = true;
    let mut in_quote = false;
    for c in text.chars() {
        if std::mem::take(&mut line_start) {
            in_quote = c == '>';
            if in_quote {
                continue;
            }
        }
        let target = if in_quote { &mut quoted } else { &mut own };
        // A byte order mark is no text.
        if c == '\u{feff}' {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            target.space = !target.text.is_empty();
            line_start = c == '\n';
            continue;
        }
        if !target.push(c) {
            break;
        }
    }
    if own.text.is_empty() && !quoted.text.is_empty() {
        format!(">{}", quoted.text)
    } else {
        own.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_whitespace_and_keeps_signatures() {
        for (input, expected) in [
            (
                "  Hi Bob,\r\n\r\n\tthe  numbers.\r\n-- \r\nAlice\r\n",
                "Hi Bob, the numbers. -- Alice",
            ),
            ("", ""),
            ("\r\n \r\n", ""),
            ("\u{feff}a\u{0}b\u{a0}c", "a b c"),
        ] {
            assert_eq!(text_preview(input), expected, "{input:?}");
        }
    }

    #[test]
    fn leaves_out_quoted_lines_unless_nothing_else() {
        for (input, expected) in [
            (
                "Yes.\r\n> Shall we?\r\n>> Lunch?\r\nSee you.\r\n",
                "Yes. See you.",
            ),
            ("> Shall we?\r\n> Lunch?\r\n", ">Shall we? Lunch?"),
            // Not at the start of a line: ordinary text.
            ("a > b", "a > b"),
        ] {
            assert_eq!(text_preview(input), expected, "{input:?}");
        }
    }

    #[test]
    fn stops_at_the_character_limit_without_a_trailing_space() {
        let long = "é".repeat(150) + " " + &"x".repeat(100);
        let preview = text_preview(&long);
        assert_eq!(preview.chars().count(), PREVIEW_MAX_CHARS);
        assert!(preview.starts_with(&"é".repeat(150)));
        let word = "a".repeat(PREVIEW_MAX_CHARS - 1) + " b";
        assert_eq!(text_preview(&word), "a".repeat(PREVIEW_MAX_CHARS - 1));
        let quoted = ">".to_owned() + &"q".repeat(300);
        assert_eq!(text_preview(&quoted).chars().count(), PREVIEW_MAX_CHARS);
    }

    #[test]
    fn takes_the_first_leaf_part() {
        let preview = |raw: &str| {
            let message = mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .unwrap_or_default();
            message_preview(&message)
        };
        let alternative = "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/plain\r\n\r\nPlain  words\r\n--b\r\nContent-Type: text/html\r\n\r\n\
            <p>Html words</p>\r\n--b--\r\n";
        assert_eq!(preview(alternative), "Plain words");
        let html = "Content-Type: text/html; charset=utf-8\r\n\r\n<html><head><title>T</title>\
            <style>p {}</style></head><body><p>Gr&uuml;&szlig;e,</p><p>from <b>Bob</b></p></body></html>\r\n";
        assert_eq!(preview(html), "Grüße, from Bob");
        let image_first = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: image/png\r\n\r\nPNG\r\n--b\r\nContent-Type: text/plain\r\n\r\nLater\r\n--b--\r\n";
        assert_eq!(preview(image_first), "");
        let qp = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
            Caf=C3=A9 =\r\nau lait\r\n";
        assert_eq!(preview(qp), "Café au lait");
    }
}
