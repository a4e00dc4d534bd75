//! APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), literal8 (RFC 3516) and
//! RFC 6855's UTF8 data item.

use super::{PResult, Parser, err};
use crate::proto::command::{AppendCommand, AppendMessage};

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
    /// `append-data = literal / literal8 / append-data-ext` (RFC 4466 §2.3)
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
        let message = if self.keyword("UTF8") {
            self.sp()?;
            self.require(b'(', "Expected ( after UTF8")?;
            let message = self.literal(true)?;
            self.require(b')', "Expected ) after UTF8 literal")?;
            message
        } else {
            self.literal(true)?
        };
        Ok(AppendMessage {
            flags,
            date,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::CommandBody;
    use crate::proto::parse::tests::{fails, parse};

    #[test]
    fn parses_append() {
        let CommandBody::Append(append) =
            parse("a APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5+}\r\nhello\r\n")
        else {
            panic!()
        };
        assert_eq!(append.messages[0].message, b"hello");
        assert_eq!(append.messages[0].flags, vec!["\\Seen"]);
        assert!(append.messages[0].date.is_some());
        let CommandBody::Append(append) = parse("a APPEND INBOX UTF8 (~{3}\r\na\0b)\r\n") else {
            panic!()
        };
        assert_eq!(append.messages[0].message, b"a\0b");
        // RFC 3502 §6 example shape: two messages, the second with flags only.
        let CommandBody::Append(append) =
            parse("a APPEND Drafts {3+}\r\none (\\Draft) {3+}\r\ntwo\r\n")
        else {
            panic!()
        };
        assert_eq!(append.messages.len(), 2);
        assert_eq!(append.messages[1].message, b"two");
        assert_eq!(append.messages[1].flags, vec!["\\Draft"]);
        fails("a APPEND INBOX\r\n");
    }
}
