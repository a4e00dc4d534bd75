//! FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.9): the data items with sections and
//! partials, BINARY (RFC 3516), and CONDSTORE/QRESYNC's CHANGEDSINCE and VANISHED
//! modifiers (RFC 7162).

use super::{PResult, Parser, err};
use crate::proto::command::{
    CommandBody, FetchCommand, FetchItem, PartialRange, Rfc822Part, Section, SectionText,
};

/// The FETCH modifiers of RFC 7162 and RFC 9394.
#[derive(Default)]
struct FetchModifiers {
    changed_since: Option<u64>,
    vanished: bool,
    partial: Option<PartialRange>,
}

impl Parser<'_> {
    /// `fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
    ///  "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]` (RFC 7162 §3.1.4 adds the
    /// modifiers); `uid = "UID" SP fetch` likewise.
    pub(super) fn fetch(&mut self, uid: bool) -> PResult<CommandBody> {
        self.sp()?;
        let set = self.sequence()?;
        self.sp()?;
        let items = self.fetch_items()?;
        let FetchModifiers {
            changed_since,
            vanished,
            partial,
        } = self.fetch_modifiers()?;
        // RFC 7162 §3.2.6: VANISHED only with UID FETCH; RFC 9394 §3.3: "The PARTIAL
        // extension also extends the UID FETCH command with a PARTIAL FETCH modifier".
        if vanished && !uid {
            return err("VANISHED only with UID FETCH");
        }
        if partial.is_some() && !uid {
            return err("PARTIAL only with UID FETCH");
        }
        Ok(CommandBody::Fetch(FetchCommand {
            uid,
            set,
            items,
            changed_since,
            vanished,
            partial,
        }))
    }

    /// RFC 7162 §3.1.4 / §3.2.6: `fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"`;
    /// `fetch-modifier =/ chgsince-fetch-mod / "VANISHED"`;
    /// `chgsince-fetch-mod = "CHANGEDSINCE" SP mod-sequence-value`; RFC 9394 §4
    /// `fetch-modifier =/ modifier-partial`, at most once.
    fn fetch_modifiers(&mut self) -> PResult<FetchModifiers> {
        let mut modifiers = FetchModifiers::default();
        if !self.eat(b' ') {
            return Ok(modifiers);
        }
        self.require(b'(', "Expected FETCH modifiers")?;
        let FetchModifiers {
            changed_since,
            vanished,
            partial,
        } = &mut modifiers;
        loop {
            if self.keyword("CHANGEDSINCE") {
                self.sp()?;
                *changed_since = Some(self.mod_sequence(false)?);
            } else if self.keyword("VANISHED") {
                *vanished = true;
            } else if self.keyword("PARTIAL") && partial.is_none() {
                self.sp()?;
                *partial = Some(self.partial_range()?);
            } else {
                return err("Unknown FETCH modifier");
            }
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        // RFC 7162 §3.2.6: VANISHED without CHANGEDSINCE is a BAD.
        if *vanished && changed_since.is_none() {
            return err("VANISHED needs CHANGEDSINCE");
        }
        Ok(modifiers)
    }

    /// `section-part = nz-number *("." nz-number)`
    pub(super) fn section_part(&mut self) -> PResult<Vec<u32>> {
        let mut part = Vec::new();
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            part.push(self.nz_number()?);
            // A dot followed by a letter starts the section text.
            let next_is_digit = self.input.get(self.pos + 1).is_some_and(u8::is_ascii_digit);
            if self.peek() == Some(b'.') && next_is_digit {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(part)
    }

    /// `section = "[" [section-spec] "]"`;
    /// `section-spec = section-msgtext / (section-part ["." section-text])`;
    /// `section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"`;
    /// `section-text = section-msgtext / "MIME"`
    pub(super) fn section(&mut self) -> PResult<Section> {
        self.require(b'[', "Expected a section")?;
        let part = self.section_part()?;
        let text = if self.peek() == Some(b']') {
            None
        } else {
            if !part.is_empty() {
                self.require(b'.', "Invalid section")?;
            }
            let name = self
                .take_while(|b| b.is_ascii_alphabetic() || b == b'.')
                .to_ascii_uppercase();
            Some(match name.as_slice() {
                b"HEADER" => SectionText::Header,
                b"TEXT" => SectionText::Text,
                b"MIME" if !part.is_empty() => SectionText::Mime,
                b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT" => {
                    self.sp()?;
                    SectionText::HeaderFields {
                        not: name.ends_with(b".NOT"),
                        fields: self.header_list()?,
                    }
                }
                _ => return err("Invalid section"),
            })
        };
        self.require(b']', "Expected ] after section")?;
        Ok(Section { part, text })
    }

    /// `header-list = "(" header-fld-name *(SP header-fld-name) ")"`; `header-fld-name = astring`
    pub(super) fn header_list(&mut self) -> PResult<Vec<String>> {
        self.paren_list("Expected a header list", Self::astring_utf8)
    }

    /// `partial = "<" number64 "." nz-number64 ">"`
    pub(super) fn partial(&mut self) -> PResult<Option<(u64, u64)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let origin = self.number64()?;
        self.require(b'.', "Invalid partial")?;
        let count = self.number64()?;
        if count == 0 {
            return err("Invalid partial");
        }
        self.require(b'>', "Invalid partial")?;
        Ok(Some((origin, count)))
    }

    /// `fetch-att = "ENVELOPE" / "FLAGS" / "INTERNALDATE" / "RFC822" [".HEADER" / ".TEXT"] /
    ///  "RFC822.SIZE" / "BODY" ["STRUCTURE"] / "UID" / "BODY" section [partial] /
    ///  "BODY.PEEK" section [partial] / "BINARY" [".PEEK"] section-binary [partial] /
    ///  "BINARY.SIZE" section-binary`; RFC 8474 §7: `fetch-att =/ "EMAILID" / "THREADID"`
    pub(super) fn fetch_item(&mut self) -> PResult<FetchItem> {
        let name = self
            .take_while(|b| b.is_ascii_alphanumeric() || b == b'.')
            .to_ascii_uppercase();
        Ok(match name.as_slice() {
            b"FLAGS" => FetchItem::Flags,
            b"INTERNALDATE" => FetchItem::InternalDate,
            b"RFC822.SIZE" => FetchItem::Rfc822Size,
            b"ENVELOPE" => FetchItem::Envelope,
            b"BODYSTRUCTURE" => FetchItem::BodyStructure { extensible: true },
            b"UID" => FetchItem::Uid,
            b"MODSEQ" => FetchItem::ModSeq,
            b"EMAILID" => FetchItem::EmailId,
            b"THREADID" => FetchItem::ThreadId,
            b"RFC822" => FetchItem::Rfc822(Rfc822Part::Full),
            b"RFC822.HEADER" => FetchItem::Rfc822(Rfc822Part::Header),
            b"RFC822.TEXT" => FetchItem::Rfc822(Rfc822Part::Text),
            b"BODY" if self.peek() != Some(b'[') => FetchItem::BodyStructure { extensible: false },
            b"BODY" | b"BODY.PEEK" => FetchItem::BodySection {
                peek: name.len() > 4,
                section: self.section()?,
                partial: self.partial()?,
            },
            b"BINARY" | b"BINARY.PEEK" => {
                self.require(b'[', "Expected a section")?;
                let part = self.section_part()?;
                self.require(b']', "Expected ] after section")?;
                FetchItem::Binary {
                    peek: name.len() > 6,
                    part,
                    partial: self.partial()?,
                }
            }
            b"PREVIEW" => FetchItem::Preview {
                lazy: self.preview_modifiers()?,
            },
            b"SAVEDATE" => FetchItem::SaveDate,
            b"BINARY.SIZE" => {
                self.require(b'[', "Expected a section")?;
                let part = self.section_part()?;
                self.require(b']', "Expected ] after section")?;
                FetchItem::BinarySize { part }
            }
            _ => return err("Unknown fetch item"),
        })
    }

    /// RFC 8970 §7: `fetch-att =/ "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]`;
    /// `preview-mod = "LAZY"`. True when LAZY was given. A `(` that does not start with
    /// a preview-mod is left for what follows (the FETCH modifiers of RFC 7162 §3.1.4).
    fn preview_modifiers(&mut self) -> PResult<bool> {
        let start = self.pos;
        if !(self.eat(b' ') && self.eat(b'(') && self.at_keyword("LAZY")) {
            self.pos = start;
            return Ok(false);
        }
        loop {
            if !self.keyword("LAZY") {
                return err("Unknown PREVIEW modifier");
            }
            if self.eat(b')') {
                return Ok(true);
            }
            self.sp()?;
        }
    }

    /// `fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
    ///  "(" fetch-att *(SP fetch-att) ")")`
    pub(super) fn fetch_items(&mut self) -> PResult<Vec<FetchItem>> {
        let fast = [
            FetchItem::Flags,
            FetchItem::InternalDate,
            FetchItem::Rfc822Size,
        ];
        if self.keyword("ALL") {
            return Ok([&fast[..], &[FetchItem::Envelope]].concat());
        }
        if self.keyword("FAST") {
            return Ok(fast.to_vec());
        }
        if self.keyword("FULL") {
            return Ok([
                &fast[..],
                &[
                    FetchItem::Envelope,
                    FetchItem::BodyStructure { extensible: false },
                ],
            ]
            .concat());
        }
        if self.peek() != Some(b'(') {
            return Ok(vec![self.fetch_item()?]);
        }
        self.fetch_att_list()
    }

    /// `"(" fetch-att *(SP fetch-att) ")"` (FETCH, and RFC 5465's MessageNew).
    pub(super) fn fetch_att_list(&mut self) -> PResult<Vec<FetchItem>> {
        self.paren_list("Expected ( to open fetch attributes", Self::fetch_item)
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::{FetchCommand, FetchItem, Section, SectionText};
    use crate::proto::parse::parse_sequence_set;
    use crate::proto::parse::tests::{fails, parse_as};
    use crate::proto::sequence::SetOrSaved;

    #[test]
    fn parses_fetch_items() {
        let FetchCommand {
            uid, set, items, ..
        } = parse_as!(
            Fetch,
            "a UID FETCH 1:*,5 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From \"To\")]<0.100> BODY[] BINARY.PEEK[1] BODY RFC822.SIZE)\r\n"
        );
        assert!(uid);
        assert_eq!(
            set,
            SetOrSaved::Set(parse_sequence_set(b"1:*,5").unwrap_or_else(|| panic!()))
        );
        assert_eq!(
            items,
            vec![
                FetchItem::Flags,
                FetchItem::BodySection {
                    peek: true,
                    section: Section {
                        part: vec![1, 2],
                        text: Some(SectionText::HeaderFields {
                            not: false,
                            fields: vec!["From".into(), "To".into()]
                        })
                    },
                    partial: Some((0, 100))
                },
                FetchItem::BodySection {
                    peek: false,
                    section: Section::default(),
                    partial: None
                },
                FetchItem::Binary {
                    peek: true,
                    part: vec![1],
                    partial: None
                },
                FetchItem::BodyStructure { extensible: false },
                FetchItem::Rfc822Size,
            ]
        );
        let items = parse_as!(Fetch, "a FETCH 2 full\r\n").items;
        assert_eq!(items.len(), 5);
        let items = parse_as!(Fetch, "a FETCH 2 BODY[2.MIME]\r\n").items;
        assert!(
            matches!(&items[0], FetchItem::BodySection { section, .. } if section.text == Some(SectionText::Mime))
        );
    }

    #[test]
    fn parses_preview_and_savedate() {
        // RFC 8970 §4 and RFC 8514 §4.2 examples.
        let items = |line: &str| parse_as!(Fetch, line).items;
        assert_eq!(
            items("a FETCH 1 (UID PREVIEW)\r\n"),
            vec![FetchItem::Uid, FetchItem::Preview { lazy: false }]
        );
        assert_eq!(
            items("a FETCH 1:3 (UID PREVIEW (LAZY) SAVEDATE)\r\n"),
            vec![
                FetchItem::Uid,
                FetchItem::Preview { lazy: true },
                FetchItem::SaveDate
            ]
        );
        assert_eq!(
            items("a FETCH 1 preview (lazy lazy)\r\n"),
            vec![FetchItem::Preview { lazy: true }]
        );
        assert_eq!(items("a FETCH 998 SAVEDATE\r\n"), vec![FetchItem::SaveDate]);
        // The `(` after a lone PREVIEW may be the FETCH modifiers.
        let FetchCommand {
            items,
            changed_since,
            ..
        } = parse_as!(Fetch, "a FETCH 1 PREVIEW (CHANGEDSINCE 7)\r\n");
        assert_eq!(items, vec![FetchItem::Preview { lazy: false }]);
        assert_eq!(changed_since, Some(7));
        fails("a FETCH 1 (PREVIEW (LAZY FUZZY))\r\n");
        fails("a FETCH 1 (PREVIEW ())\r\n");
        fails("a FETCH 1 (PREVIEW (LAZY)\r\n");
    }

    #[test]
    fn parses_changedsince_and_vanished() {
        // RFC 7162 §3.1.4.2 example.
        let FetchCommand {
            items,
            changed_since,
            vanished,
            ..
        } = parse_as!(
            Fetch,
            "s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n"
        );
        assert_eq!(items, vec![FetchItem::Flags]);
        assert_eq!(changed_since, Some(12345));
        assert!(vanished);
        assert_eq!(
            parse_as!(Fetch, "a FETCH 1 (MODSEQ FLAGS)\r\n").items,
            vec![FetchItem::ModSeq, FetchItem::Flags]
        );
        fails("a FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)\r\n");
        fails("a UID FETCH 1:* FLAGS (VANISHED)\r\n");
        fails("a UID FETCH 1:* FLAGS (CHANGEDSINCE 0)\r\n");
    }

    #[test]
    fn parses_the_partial_modifier() {
        // RFC 9394 §3.3 example.
        let FetchCommand {
            partial,
            changed_since,
            ..
        } = parse_as!(
            Fetch,
            "10 UID FETCH 25900:26600 (UID FLAGS) (PARTIAL -1:-3 CHANGEDSINCE 7)\r\n"
        );
        assert_eq!(partial.map(|p| p.to_string()).as_deref(), Some("-1:-3"));
        assert_eq!(changed_since, Some(7));
        fails("a FETCH 1:* FLAGS (PARTIAL 1:5)\r\n");
        fails("a UID FETCH 1:* FLAGS (PARTIAL 1:5 PARTIAL 1:2)\r\n");
        fails("a UID FETCH 1:* FLAGS (PARTIAL)\r\n");
        fails("a UID FETCH 1:* FLAGS (PARTIAL 1:*)\r\n");
    }

    #[test]
    fn parses_objectid_items() {
        assert_eq!(
            parse_as!(Fetch, "a UID FETCH 1:* (EMAILID THREADID)\r\n").items,
            vec![FetchItem::EmailId, FetchItem::ThreadId]
        );
    }
}
