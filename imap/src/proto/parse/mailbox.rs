//! Mailbox management (RFC 9051 §6.3.4 to §6.3.8, §6.3.11): CREATE (with RFC 6154's
//! USE), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE and STATUS, whose items LIST-STATUS
//! shares.

use super::{PResult, Parser, err};
use crate::proto::command::{CommandBody, StatusItem};

impl Parser<'_> {
    /// `status-att = "MESSAGES" / "UIDNEXT" / "UIDVALIDITY" / "UNSEEN" / "DELETED" / "SIZE"`
    /// plus `RECENT` (RFC 3501), `HIGHESTMODSEQ` (RFC 7162), `APPENDLIMIT` (RFC 7889),
    /// `DELETED-STORAGE` (RFC 9208) and RFC 8474 §7 `status-att =/ "MAILBOXID"`.
    pub(super) fn status_items(&mut self) -> PResult<Vec<StatusItem>> {
        self.paren_list("Expected status items", |p| {
            let name = p.atom()?.to_ascii_uppercase();
            Ok(match name.as_str() {
                "MESSAGES" => StatusItem::Messages,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "DELETED" => StatusItem::Deleted,
                "SIZE" => StatusItem::Size,
                "RECENT" => StatusItem::Recent,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "APPENDLIMIT" => StatusItem::AppendLimit,
                "DELETED-STORAGE" => StatusItem::DeletedStorage,
                "MAILBOXID" => StatusItem::MailboxId,
                _ => return err("Unknown status item"),
            })
        })
    }

    /// `create = "CREATE" SP mailbox [create-params]` with RFC 6154 §3:
    /// `create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"`
    pub(super) fn create(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let mut special_use = Vec::new();
        if self.eat(b' ') {
            self.require(b'(', "Expected CREATE parameters")?;
            if !self.keyword("USE") {
                return err("Unknown CREATE parameter");
            }
            self.sp()?;
            special_use = self.flag_list()?;
            self.require(b')', "Expected ) after CREATE parameters")?;
        }
        Ok(CommandBody::Create {
            mailbox,
            special_use,
        })
    }

    /// `delete = "DELETE" SP mailbox`; `subscribe = "SUBSCRIBE" SP mailbox`;
    /// `unsubscribe = "UNSUBSCRIBE" SP mailbox`
    pub(super) fn delete_or_subscribe(&mut self, name: &str) -> PResult<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        Ok(match name {
            "DELETE" => CommandBody::Delete { mailbox },
            "SUBSCRIBE" => CommandBody::Subscribe { mailbox },
            _ => CommandBody::Unsubscribe { mailbox },
        })
    }

    /// `rename = "RENAME" SP mailbox SP mailbox`
    pub(super) fn rename(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let from = self.mailbox()?;
        self.sp()?;
        let to = self.mailbox()?;
        Ok(CommandBody::Rename { from, to })
    }

    /// `status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"`
    pub(super) fn status(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        self.sp()?;
        let items = self.status_items()?;
        Ok(CommandBody::Status { mailbox, items })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::{CommandBody, StatusItem};
    use crate::proto::parse::tests::parse;

    #[test]
    fn parses_status_and_create() {
        assert!(matches!(
            parse("a STATUS blurdybloop (UIDNEXT MESSAGES)\r\n"),
            CommandBody::Status { items, .. } if items == vec![StatusItem::UidNext, StatusItem::Messages]
        ));
        // RFC 8474 §4.2.
        assert!(matches!(
            parse("a STATUS foo (MAILBOXID)\r\n"),
            CommandBody::Status { items, .. } if items == vec![StatusItem::MailboxId]
        ));
        assert!(matches!(
            parse("a CREATE Sent (USE (\\Sent))\r\n"),
            CommandBody::Create { special_use, .. } if special_use == vec!["\\Sent"]
        ));
    }
}
