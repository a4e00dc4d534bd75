//! APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), literal8 (RFC 3516) and
//! RFC 6855's UTF8 data item and CATENATE (RFC 4469) with its IMAP URLs (RFC 5092).

use super::{PResult, Parser, err};
use crate::proto::command::{AppendCommand, AppendData, AppendMessage, CatPart, ImapUrl, Section};

/// Parts of one CATENATE: each URL costs a lookup and a read of a stored message, so a
/// command of small parts must not turn into thousands of reads. RFC 4469 sets no number;
/// 256 is far more than a client forwarding a message with a few attachments needs.
pub const MAX_CAT_PARTS: usize = 256;

impl Parser<'_> {
    /// RFC 3502 §6: `append = "APPEND" SP mailbox 1*append-message`;
    /// `append-message = append-opts SP append-data`;
    /// `append-opts = [SP flag-list] [SP date-time]`; RFC 6855 §4:
    /// `append-data =/ "UTF8" SP "(" literal8 ")"`.
    pub(super) fn append(&mut self) -> PResult<AppendCommand> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut messages = Vec::new();
        while self.eat(b' ') {
            messages.push(self.append_message()?);
        }
        if messages.is_empty() {
            return err("Expected a message");
        }
        Ok(AppendCommand { mailbox, messages })
    }

    /// `append-message = append-opts SP append-data` (RFC 3502 §6);
    /// `append-data = literal / literal8 / append-data-ext` (RFC 4466 §2.3);
    /// RFC 4469 §5: `append-data =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")"`.
    pub(super) fn append_message(&mut self) -> PResult<AppendMessage> {
        let mut flags = Vec::new();
        if self.peek() == Some(b'(') {
            flags = self.flag_list()?;
            self.sp()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            date = Some(self.date_time()?);
            self.sp()?;
        }
        let data = if self.keyword("UTF8") {
            self.sp()?;
            self.require(b'(', "Expected ( after UTF8")?;
            let message = self.literal(true)?;
            self.require(b')', "Expected ) after UTF8 literal")?;
            AppendData::Literal(message)
        } else if self.keyword("CATENATE") {
            self.sp()?;
            AppendData::Catenate(self.cat_parts()?)
        } else {
            AppendData::Literal(self.literal(true)?)
        };
        Ok(AppendMessage { flags, date, data })
    }

    /// RFC 4469 §5: `"(" cat-part *(SP cat-part) ")"`; `cat-part = text-literal / url`;
    /// `text-literal = "TEXT" SP literal` (literal8 too, RFC 4469 §5 with BINARY);
    /// `url = "URL" SP astring`.
    fn cat_parts(&mut self) -> PResult<Vec<CatPart>> {
        self.require(b'(', "Expected ( after CATENATE")?;
        let mut parts = Vec::new();
        loop {
            if parts.len() == MAX_CAT_PARTS {
                return err("Too many CATENATE parts");
            }
            if self.keyword("TEXT") {
                self.sp()?;
                parts.push(CatPart::Text(self.literal(true)?));
            } else if self.keyword("URL") {
                self.sp()?;
                parts.push(CatPart::Url(self.astring_utf8()?));
            } else {
                return err("Expected TEXT or URL");
            }
            if self.eat(b')') {
                return Ok(parts);
            }
            self.sp()?;
        }
    }
}

/// An IMAP URL as CATENATE takes it (RFC 5092 §11, the `imessagepart` of an
/// `iabsolute-path`): `"/" enc-mailbox [";UIDVALIDITY=" nz-number] "/;UID=" nz-number
/// ["/;SECTION=" enc-section] ["/;PARTIAL=" number ["." nz-number]]`. `None` for any
/// other form: the full `imap://user@host/` form (a URLAUTH one is
/// `proto::urlauth`'s), a message list, or a URL that does not parse; the caller answers
/// `NO [BADURL]` (RFC 4469 §6).
pub fn parse_imap_url(url: &str) -> Option<ImapUrl> {
    let path = url.strip_prefix('/')?;
    // RFC 5092 §11: `bchar` has no raw ";", so the first one ends the mailbox name.
    let (head, rest) = path.split_at(path.find(';')?);
    let mut p = Parser {
        input: rest.as_bytes(),
        pos: 0,
    };
    let (mailbox, uid_validity) = if p.url_keyword(";UIDVALIDITY=") {
        let validity = p.nz_number().ok()?;
        p.eat(b'/').then_some(())?;
        (head, Some(validity))
    } else {
        (head.strip_suffix('/')?, None)
    };
    p.url_keyword(";UID=").then_some(())?;
    let uid = p.nz_number().ok()?;
    let mut section = Section::default();
    if p.url_keyword("/;SECTION=") {
        // The section runs to the next "/;" (of PARTIAL) or the end.
        let after = rest.get(p.pos..)?;
        let length = after.find(';').map_or(after.len(), |n| n.saturating_sub(1));
        // `enc-section = 1*bchar`.
        if length == 0 {
            return None;
        }
        section = parse_section(&percent_decode(after.get(..length)?)?)?;
        p.pos += length;
    }
    let mut partial = None;
    if p.url_keyword("/;PARTIAL=") {
        let offset = p.number64().ok()?;
        let length = if p.eat(b'.') {
            Some(u64::from(p.nz_number().ok()?))
        } else {
            None
        };
        partial = Some((offset, length));
    }
    if p.pos != rest.len() {
        return None;
    }
    let mailbox = percent_decode(mailbox)?;
    if mailbox.is_empty() {
        return None;
    }
    Some(ImapUrl {
        mailbox,
        uid_validity,
        uid,
        section,
        partial,
    })
}

impl Parser<'_> {
    /// Consumes `word` when it is next, case-insensitive (RFC 5092 §11 keywords are);
    /// unlike [`Self::keyword`] the word carries its own delimiters.
    fn url_keyword(&mut self, word: &str) -> bool {
        let end = self.pos + word.len();
        let matches = self
            .input
            .get(self.pos..end)
            .is_some_and(|s| s.eq_ignore_ascii_case(word.as_bytes()));
        if matches {
            self.pos = end;
        }
        matches
    }
}

/// RFC 3986 §2.1 percent-decoding to UTF-8 (RFC 5092 §3.3: names are UTF-8).
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(byte);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `enc-section` once decoded is a FETCH `section-spec` (RFC 5092 §11 `isection-only`);
/// the FETCH grammar reads it between the brackets it would have there.
fn parse_section(text: &str) -> Option<Section> {
    let input = format!("[{text}]");
    let mut parser = Parser {
        input: input.as_bytes(),
        pos: 0,
    };
    let section = parser.section().ok()?;
    (parser.pos == input.len()).then_some(section)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::SectionText;
    use crate::proto::parse::tests::{fails, parse_as};

    fn literal(message: &AppendMessage) -> &[u8] {
        match &message.data {
            AppendData::Literal(bytes) => bytes,
            AppendData::Catenate(_) => panic!("CATENATE"),
        }
    }

    #[test]
    fn parses_append() {
        let append = parse_as!(
            Append,
            "a APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5+}\r\nhello\r\n"
        );
        assert_eq!(literal(&append.messages[0]), b"hello");
        assert_eq!(append.messages[0].flags, vec!["\\Seen"]);
        assert!(append.messages[0].date.is_some());
        let append = parse_as!(Append, "a APPEND INBOX UTF8 (~{3}\r\na\0b)\r\n");
        assert_eq!(literal(&append.messages[0]), b"a\0b");
        // RFC 3502 §6 example shape: two messages, the second with flags only.
        let append = parse_as!(
            Append,
            "a APPEND Drafts {3+}\r\none (\\Draft) {3+}\r\ntwo\r\n"
        );
        assert_eq!(append.messages.len(), 2);
        assert_eq!(literal(&append.messages[1]), b"two");
        assert_eq!(append.messages[1].flags, vec!["\\Draft"]);
        fails("a APPEND INBOX\r\n");
    }

    /// RFC 4469 §5's example shape: a TEXT literal, URLs, and CATENATE inside a
    /// MULTIAPPEND next to a plain message.
    #[test]
    fn parses_catenate() {
        let append = parse_as!(
            Append,
            "A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER\" TEXT {42+}\r\n\r\n--------------030308070208000400050907\r\n URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME\" TEXT ~{3}\r\na\0b) {2+}\r\nhi\r\n"
        );
        assert_eq!(append.messages.len(), 2);
        let AppendData::Catenate(parts) = &append.messages[0].data else {
            panic!("not CATENATE");
        };
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[0],
            CatPart::Url("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER".into())
        );
        assert_eq!(
            parts[1],
            CatPart::Text(b"\r\n--------------030308070208000400050907\r\n".to_vec())
        );
        assert_eq!(parts[3], CatPart::Text(b"a\0b".to_vec()));
        assert_eq!(literal(&append.messages[1]), b"hi");
        fails("a APPEND INBOX CATENATE ()\r\n");
        fails("a APPEND INBOX CATENATE (TEXT \"quoted\")\r\n");
        fails("a APPEND INBOX CATENATE (URL)\r\n");
        fails("a APPEND INBOX CATENATE (TEXT {1+}\r\nx\r\n");
        let many = format!(
            "a APPEND INBOX CATENATE ({})\r\n",
            vec!["URL /INBOX/;UID=1"; MAX_CAT_PARTS + 1].join(" ")
        );
        fails(&many);
    }

    #[test]
    fn parses_imap_urls() {
        let url = parse_imap_url("/INBOX;UIDVALIDITY=785799047/;UID=113330/;SECTION=1.5.9")
            .expect("parses");
        assert_eq!(url.mailbox, "INBOX");
        assert_eq!(url.uid_validity, Some(785799047));
        assert_eq!(url.uid, 113330);
        assert_eq!(url.section.part, vec![1, 5, 9]);
        assert_eq!(url.section.text, None);
        let url = parse_imap_url(
            "/my%20box/sub/;uid=7/;section=HEADER.FIELDS%20(FROM%20TO)/;partial=10.5",
        )
        .expect("parses");
        assert_eq!(url.mailbox, "my box/sub");
        assert_eq!(url.uid_validity, None);
        assert_eq!(
            url.section.text,
            Some(SectionText::HeaderFields {
                not: false,
                fields: vec!["FROM".into(), "TO".into()]
            })
        );
        assert_eq!(url.partial, Some((10, Some(5))));
        let url = parse_imap_url("/INBOX/;UID=3/;SECTION=2.MIME").expect("parses");
        assert_eq!(
            (url.section.part, url.section.text),
            (vec![2], Some(SectionText::Mime))
        );
        for bad in [
            "imap://joe@example.com/INBOX/;UID=1",
            "INBOX/;UID=1",
            "/INBOX;UIDVALIDITY=0/;UID=1",
            "/INBOX/;UID=0",
            "/INBOX/;UID=1x",
            "/INBOX;UIDVALIDITY=1/;UID=1/;SECTION=1.BOGUS",
            "/INBOX;UIDVALIDITY=1/;UID=1/;URLAUTH=anonymous:internal:91354a47",
            "/INBOX;UIDVALIDITY=1",
            "/INBOX/;UID=1/;PARTIAL=x",
            "/%ZZ/;UID=1",
            "//;UID=1",
            "/INBOX/;UID=99999999999",
            "/INBOX/;UID=1/;SECTION=",
            "/INBOX/;UID=1/;SECTION=/;PARTIAL=1",
        ] {
            assert_eq!(parse_imap_url(bad), None, "{bad}");
        }
    }
}
