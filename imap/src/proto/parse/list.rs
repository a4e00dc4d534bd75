//! LIST with LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154 §5) and LIST-STATUS
//! (RFC 5819) options, and RFC 3501's LSUB.

use super::{PResult, Parser, err};
use crate::proto::command::{CommandBody, ListCommand};
use crate::proto::tag::is_astring_char;
use std::borrow::Cow;

impl Parser<'_> {
    /// `list-mailbox = 1*list-char / string`; `list-char = ATOM-CHAR / list-wildcards / resp-specials`
    pub(super) fn list_mailbox(&mut self) -> PResult<String> {
        let bytes = match self.peek() {
            Some(b'"' | b'{') => self.string()?,
            _ => {
                let bytes = self.take_while(|b| is_astring_char(b) || b == b'%' || b == b'*');
                if bytes.is_empty() {
                    return err("Expected a mailbox pattern");
                }
                bytes.to_vec()
            }
        };
        String::from_utf8(bytes).map_err(|_| Cow::Borrowed("Invalid UTF-8"))
    }

    /// `list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`
    /// (RFC 5258 §6); `mbox-or-pat = list-mailbox / patterns`;
    /// `patterns = "(" list-mailbox *(SP list-mailbox) ")"`
    pub(super) fn list(&mut self) -> PResult<ListCommand> {
        let mut list = ListCommand::default();
        self.sp()?;
        if self.eat(b'(') {
            list.extended = true;
            self.option_list(|_, option| {
                match option {
                    "SUBSCRIBED" => list.select_subscribed = true,
                    "SPECIAL-USE" => list.select_special_use = true,
                    "RECURSIVEMATCH" => list.recursive_match = true,
                    // RFC 5258 §3.1: no remote mailboxes here, so REMOTE changes nothing.
                    "REMOTE" => {}
                    _ => return err("Unknown LIST selection option"),
                }
                Ok(())
            })?;
            // RFC 5258 §3.1: RECURSIVEMATCH alone is a syntax error.
            if list.recursive_match && !list.select_subscribed && !list.select_special_use {
                return err("RECURSIVEMATCH needs another selection option");
            }
            self.sp()?;
        }
        list.reference = self.mailbox()?;
        self.sp()?;
        if self.eat(b'(') {
            list.extended = true;
            loop {
                list.patterns.push(self.list_mailbox()?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        } else {
            list.patterns.push(self.list_mailbox()?);
        }
        if self.eat(b' ') {
            if !self.keyword("RETURN") {
                return err("Expected RETURN");
            }
            list.extended = true;
            self.sp()?;
            self.require(b'(', "Expected return options")?;
            self.option_list(|parser, option| {
                match option {
                    "SUBSCRIBED" => list.return_subscribed = true,
                    "CHILDREN" => list.return_children = true,
                    "SPECIAL-USE" => list.return_special_use = true,
                    "STATUS" => {
                        parser.sp()?;
                        list.return_status = Some(parser.status_items()?);
                    }
                    _ => return err("Unknown LIST return option"),
                }
                Ok(())
            })?;
        }
        Ok(list)
    }

    /// The rest of `"(" [option *(SP option)] ")"` once its "(" is read, as
    /// `list-select-opts` and `list-return-opts` are written (RFC 5258 §6): `option` gets
    /// each option's name upper-cased, and reads what follows the name itself.
    fn option_list(
        &mut self,
        mut option: impl FnMut(&mut Self, &str) -> PResult<()>,
    ) -> PResult<()> {
        let mut first = true;
        while !self.eat(b')') {
            if !first {
                self.sp()?;
            }
            first = false;
            let name = self.atom()?.to_ascii_uppercase();
            option(self, &name)?;
        }
        Ok(())
    }

    /// `lsub = "LSUB" SP mailbox SP list-mailbox` (RFC 3501)
    pub(super) fn lsub(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let reference = self.mailbox()?;
        self.sp()?;
        let pattern = self.list_mailbox()?;
        Ok(CommandBody::Lsub { reference, pattern })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::StatusItem;
    use crate::proto::parse::tests::parse_as;

    #[test]
    fn parses_list() {
        let list = parse_as!(
            List,
            "a LIST (SUBSCRIBED) \"\" (\"*\" %) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n"
        );
        assert!(list.select_subscribed && list.return_children && list.extended);
        assert_eq!(list.patterns, vec!["*", "%"]);
        assert_eq!(
            list.return_status,
            Some(vec![StatusItem::Messages, StatusItem::Unseen])
        );
        let list = parse_as!(List, "a LIST \"\" INBOX/%\r\n");
        assert!(!list.extended);
    }
}
