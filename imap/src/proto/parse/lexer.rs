//! The lexical pieces every grammar family shares (RFC 9051 §9 unless noted): the
//! cursor, atoms, numbers, strings and literals, flags, sequence sets, mod-sequences and
//! dates.

use super::{PResult, Parser, err};
use crate::proto::datetime::{parse_date, parse_date_time};
use crate::proto::sequence::{SeqNumber, SeqRange, SequenceSet, SetOrSaved};
use crate::proto::tag::{is_astring_char, is_atom_char};
use std::borrow::Cow;
use time::Date;

impl<'a> Parser<'a> {
    /// The next octet, without consuming it.
    pub(super) fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// Consumes `byte` when it is next.
    pub(super) fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `byte`, or fails with `message`.
    pub(super) fn require(&mut self, byte: u8, message: &'static str) -> PResult<()> {
        if self.eat(byte) { Ok(()) } else { err(message) }
    }

    /// `SP = %x20` (RFC 5234 Appendix B.1)
    pub(super) fn sp(&mut self) -> PResult<()> {
        self.require(b' ', "Expected a space")
    }

    /// `"(" item *(SP item) ")"`: a parenthesised list of one or more `item`, or fails
    /// with `message` when it does not open.
    pub(super) fn paren_list<T>(
        &mut self,
        message: &'static str,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.require(b'(', message)?;
        let mut items = Vec::new();
        loop {
            items.push(item(self)?);
            if self.eat(b')') {
                return Ok(items);
            }
            self.sp()?;
        }
    }

    /// `"(" [item *(SP item)] ")"`: [`Self::paren_list`] that may be empty.
    pub(super) fn paren_list_or_empty<T>(
        &mut self,
        message: &'static str,
        item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        if self.peek() == Some(b'(') && self.input.get(self.pos + 1) == Some(&b')') {
            self.pos += 2;
            return Ok(Vec::new());
        }
        self.paren_list(message, item)
    }

    /// True when the next bytes are `word` (case-insensitive) followed by a delimiter.
    pub(super) fn at_keyword(&self, word: &str) -> bool {
        let end = self.pos + word.len();
        let matches = self
            .input
            .get(self.pos..end)
            .is_some_and(|s| s.eq_ignore_ascii_case(word.as_bytes()));
        matches && !self.input.get(end).copied().is_some_and(is_atom_char)
    }

    /// Consumes `word` when [`Self::at_keyword`] says it is next.
    pub(super) fn keyword(&mut self, word: &str) -> bool {
        if self.at_keyword(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// End of the command: CRLF and nothing after it.
    pub(super) fn end(&self) -> PResult<()> {
        if self.input.get(self.pos..) == Some(b"\r\n") {
            Ok(())
        } else {
            err("Unexpected characters at end of command")
        }
    }

    /// The longest run of octets that `pred` accepts (possibly empty).
    pub(super) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        self.input.get(start..self.pos).unwrap_or_default()
    }

    /// `atom = 1*ATOM-CHAR`
    pub(super) fn atom(&mut self) -> PResult<&'a str> {
        let bytes = self.take_while(is_atom_char);
        if bytes.is_empty() {
            return err("Expected an atom");
        }
        // ATOM-CHARs are ASCII.
        std::str::from_utf8(bytes).map_err(|_| Cow::Borrowed("Invalid atom"))
    }

    /// `number64 = 1*DIGIT`, RFC 9051 §9: "Unsigned 63-bit integer (0 <= n <=
    /// 9,223,372,036,854,775,807)"; RFC 7162's mod-sequence-value has the same bound.
    pub(super) fn number64(&mut self) -> PResult<u64> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() || digits.len() > 20 {
            return err("Expected a number");
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .filter(|&n| i64::try_from(n).is_ok())
            .ok_or(Cow::Borrowed("Number out of range"))
    }

    /// `number = 1*DIGIT` (unsigned 32-bit).
    pub(super) fn number(&mut self) -> PResult<u32> {
        u32::try_from(self.number64()?).map_err(|_| Cow::Borrowed("Number out of range"))
    }

    /// `nz-number = digit-nz *DIGIT`
    pub(super) fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => err("Zero is not allowed here"),
            n => Ok(n),
        }
    }

    /// `quoted = DQUOTE *QUOTED-CHAR DQUOTE`;
    /// `QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials / UTF8-2..4`
    pub(super) fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.require(b'"', "Expected a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r' | b'\n' | 0) => return err("Unterminated quoted string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return err("Invalid escape in quoted string"),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `literal = "{" number64 ["+"] "}" CRLF *CHAR8` (RFC 7888 adds the "+"); with
    /// `binary`, also `literal8 = "~{" number64 "}" CRLF *OCTET` (RFC 3516).
    pub(super) fn literal(&mut self, binary: bool) -> PResult<Vec<u8>> {
        let is_literal8 = binary && self.eat(b'~');
        self.require(b'{', "Expected a literal")?;
        let size = self.number64()?;
        self.eat(b'+');
        self.require(b'}', "Invalid literal")?;
        self.require(b'\r', "Expected CRLF after literal")?;
        self.require(b'\n', "Expected CRLF after literal")?;
        let size = usize::try_from(size).map_err(|_| Cow::Borrowed("Literal too large"))?;
        let end = self
            .pos
            .checked_add(size)
            .ok_or(Cow::Borrowed("Literal too large"))?;
        let bytes = self
            .input
            .get(self.pos..end)
            .ok_or(Cow::Borrowed("Truncated literal"))?;
        if !is_literal8 && bytes.contains(&0) {
            return err("NUL in literal");
        }
        self.pos = end;
        Ok(bytes.to_vec())
    }

    /// `string = quoted / literal`
    pub(super) fn string(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(false),
            _ => err("Expected a string"),
        }
    }

    /// `astring = 1*ASTRING-CHAR / string`
    pub(super) fn astring(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let bytes = self.take_while(is_astring_char);
                if bytes.is_empty() {
                    err("Expected a string")
                } else {
                    Ok(bytes.to_vec())
                }
            }
        }
    }

    /// `astring`, taken only when it is UTF-8.
    pub(super) fn astring_utf8(&mut self) -> PResult<String> {
        String::from_utf8(self.astring()?).map_err(|_| Cow::Borrowed("Invalid UTF-8"))
    }

    /// `nstring = string / nil`
    pub(super) fn nstring(&mut self) -> PResult<Option<Vec<u8>>> {
        if self.keyword("NIL") {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// `mailbox = "INBOX" / astring` (INBOX case-insensitivity is storage's business).
    pub(super) fn mailbox(&mut self) -> PResult<String> {
        self.astring_utf8()
    }

    /// `flag = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" / "\Draft" / flag-keyword / flag-extension`
    pub(super) fn flag(&mut self) -> PResult<String> {
        let backslash = self.eat(b'\\');
        let name = self.atom()?;
        Ok(if backslash {
            format!("\\{name}")
        } else {
            name.to_owned()
        })
    }

    /// `flag-list = "(" [flag *(SP flag)] ")"`
    pub(super) fn flag_list(&mut self) -> PResult<Vec<String>> {
        self.paren_list_or_empty("Expected a flag list", Self::flag)
    }

    /// `seq-number = nz-number / "*"`
    pub(super) fn seq_number(&mut self) -> PResult<SeqNumber> {
        if self.eat(b'*') {
            Ok(SeqNumber::Star)
        } else {
            self.nz_number().map(SeqNumber::Value)
        }
    }

    /// `sequence-set = (seq-number / seq-range) ["," sequence-set]`;
    /// `seq-range = seq-number ":" seq-number`
    pub(super) fn sequence_set(&mut self) -> PResult<SequenceSet> {
        let mut ranges = Vec::new();
        loop {
            let start = self.seq_number()?;
            let end = if self.eat(b':') {
                self.seq_number()?
            } else {
                start
            };
            ranges.push(SeqRange { start, end });
            if !self.eat(b',') {
                return Ok(SequenceSet(ranges));
            }
        }
    }

    /// `sequence-set / "$"` (RFC 5182 §2.1)
    pub(super) fn sequence(&mut self) -> PResult<SetOrSaved> {
        if self.eat(b'$') {
            Ok(SetOrSaved::Saved)
        } else {
            self.sequence_set().map(SetOrSaved::Set)
        }
    }

    /// RFC 7162 §7: `mod-sequence-value = 1*DIGIT` (1 to 2^63-1);
    /// `mod-sequence-valzer = "0" / mod-sequence-value`.
    pub(super) fn mod_sequence(&mut self, zero_allowed: bool) -> PResult<u64> {
        match self.number64()? {
            0 if !zero_allowed => err("A modseq of 0 is not allowed here"),
            n if n > i64::MAX as u64 => err("Modseq out of range"),
            n => Ok(n),
        }
    }

    /// `date = date-text / DQUOTE date-text DQUOTE`
    pub(super) fn date(&mut self) -> PResult<Date> {
        let text = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-')
                .to_vec()
        };
        std::str::from_utf8(&text)
            .ok()
            .and_then(parse_date)
            .ok_or(Cow::Borrowed("Invalid date"))
    }

    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE`
    pub(super) fn date_time(&mut self) -> PResult<i64> {
        let text = self.quoted()?;
        std::str::from_utf8(&text)
            .ok()
            .and_then(parse_date_time)
            .ok_or(Cow::Borrowed("Invalid date-time"))
    }
}
