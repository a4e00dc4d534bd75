//! NOTIFY (RFC 5465 §3.1, §8): which events the client wants to hear of, for which
//! mailboxes.

use super::{PResult, Parser, err};
use crate::proto::command::{
    CommandBody, MAX_NOTIFY_EVENT_GROUPS, MAX_NOTIFY_MAILBOX_NAMES, NotifyEvent, NotifyEvents,
    NotifyFilter, NotifyGroup, NotifySet,
};

impl Parser<'_> {
    /// RFC 5465 §8:
    /// `notify = "NOTIFY" SP (notify-set / notify-none)`;
    /// `notify-set = "SET" [status-indicator] SP event-groups`;
    /// `status-indicator = SP "STATUS"`; `notify-none = "NONE"`;
    /// `event-groups = event-group *(SP event-group)`.
    ///
    /// The rules the grammar's comments add are enforced here, as each is a BAD: §5 "If
    /// one of MessageNew or MessageExpunge is specified, then both events MUST be
    /// specified. Otherwise, the server MUST respond with the tagged BAD response." and
    /// "If the FlagChange and/or AnnotationChange events are specified, MessageNew and
    /// MessageExpunge MUST also be specified by the client. Otherwise, the server MUST
    /// respond with the tagged BAD response."; §6.1 "Only one of the mailbox specifiers
    /// affecting the currently selected mailbox can be specified in any NOTIFY command"
    /// and "It is an error to specify other types of events with either the SELECTED or
    /// the SELECTED-DELAYED selector." Events we do not know are kept, to be refused
    /// with NO [BADEVENT] (§3.1: "not a BAD").
    pub(super) fn notify(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        if self.keyword("NONE") {
            return Ok(CommandBody::Notify(None));
        }
        if !self.keyword("SET") {
            return err("Expected NOTIFY SET or NOTIFY NONE");
        }
        self.sp()?;
        let status = self.keyword("STATUS");
        if status {
            self.sp()?;
        }
        let mut groups: Vec<NotifyGroup> = Vec::new();
        let mut names = 0;
        loop {
            if groups.len() >= MAX_NOTIFY_EVENT_GROUPS {
                return err("Too many NOTIFY event groups");
            }
            let group = self.event_group()?;
            if let NotifyFilter::Subtree(list) | NotifyFilter::Mailboxes(list) = &group.filter {
                names += list.len();
                if names > MAX_NOTIFY_MAILBOX_NAMES {
                    return err("Too many mailbox names in NOTIFY");
                }
            }
            if group.filter.is_selected()
                && groups.iter().any(|g: &NotifyGroup| g.filter.is_selected())
            {
                return err("Only one of SELECTED and SELECTED-DELAYED may be given");
            }
            groups.push(group);
            if !self.eat(b' ') {
                break;
            }
        }
        Ok(CommandBody::Notify(Some(NotifySet { status, groups })))
    }

    /// `event-group = "(" filter-mailboxes SP events ")"`;
    /// `filter-mailboxes = filter-mailboxes-selected / filter-mailboxes-other`;
    /// `filter-mailboxes-selected = "selected" / "selected-delayed"`;
    /// `filter-mailboxes-other = "inboxes" / "personal" / "subscribed" /
    ///  ("subtree" SP one-or-more-mailbox) / ("mailboxes" SP one-or-more-mailbox)`.
    fn event_group(&mut self) -> PResult<NotifyGroup> {
        self.require(b'(', "Expected ( to open a NOTIFY event group")?;
        let word = self.atom()?.to_ascii_lowercase();
        let filter = match word.as_str() {
            "selected" => NotifyFilter::Selected,
            "selected-delayed" => NotifyFilter::SelectedDelayed,
            "inboxes" => NotifyFilter::Inboxes,
            "personal" => NotifyFilter::Personal,
            "subscribed" => NotifyFilter::Subscribed,
            "subtree" => {
                self.sp()?;
                NotifyFilter::Subtree(self.one_or_more_mailbox()?)
            }
            "mailboxes" => {
                self.sp()?;
                NotifyFilter::Mailboxes(self.one_or_more_mailbox()?)
            }
            _ => return err("Unknown NOTIFY mailbox filter"),
        };
        self.sp()?;
        let events = self.events(filter.is_selected())?;
        self.require(b')', "Expected ) to close a NOTIFY event group")?;
        Ok(NotifyGroup { filter, events })
    }

    /// `one-or-more-mailbox = mailbox / many-mailboxes`;
    /// `many-mailboxes = "(" mailbox *(SP mailbox) ")"`.
    fn one_or_more_mailbox(&mut self) -> PResult<Vec<String>> {
        if !self.eat(b'(') {
            return Ok(vec![self.mailbox()?]);
        }
        let mut names = Vec::new();
        loop {
            if names.len() >= MAX_NOTIFY_MAILBOX_NAMES {
                return err("Too many mailbox names in NOTIFY");
            }
            names.push(self.mailbox()?);
            if self.eat(b')') {
                return Ok(names);
            }
            self.sp()?;
        }
    }

    /// `events = ("(" event *(SP event) ")") / "NONE"`;
    /// `event = message-event / mailbox-event / user-event / event-ext`;
    /// `message-event = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) /
    ///  "MessageExpunge" / "FlagChange" / "AnnotationChange"`;
    /// `mailbox-event = "MailboxName" / "SubscriptionChange" / "MailboxMetadataChange"`;
    /// `user-event = "ServerMetadataChange"`; `event-ext = atom`.
    fn events(&mut self, selected: bool) -> PResult<NotifyEvents> {
        if self.keyword("NONE") {
            return Ok(NotifyEvents::default());
        }
        self.require(b'(', "Expected NOTIFY events")?;
        let mut events = NotifyEvents::default();
        loop {
            let name = self.atom()?;
            let event = NotifyEvent::of_name(name);
            if event == NotifyEvent::MessageNew && self.peek() == Some(b' ') {
                // A `(` after the space starts the fetch-atts; anything else is the next
                // event.
                if self.input.get(self.pos + 1) == Some(&b'(') {
                    self.sp()?;
                    events.fetch = self.fetch_att_list()?;
                }
            }
            if event == NotifyEvent::Other {
                events.unknown.push(name.to_owned());
            } else if !events.list.contains(&event) {
                events.list.push(event);
            }
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        let has = |event| events.list.contains(&event);
        if has(NotifyEvent::MessageNew) != has(NotifyEvent::MessageExpunge) {
            return err("MessageNew and MessageExpunge must be given together");
        }
        if (has(NotifyEvent::FlagChange) || has(NotifyEvent::AnnotationChange))
            && !has(NotifyEvent::MessageNew)
        {
            return err("FlagChange and AnnotationChange need MessageNew and MessageExpunge");
        }
        if selected && events.list.iter().any(|e| !e.is_message_event()) {
            return err("Only message events may be given for the selected mailbox");
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::{
        CommandBody, FetchItem, NotifyEvent, NotifyFilter, NotifyGroup, NotifySet,
    };
    use crate::proto::parse::tests::{fails, parse};

    fn set(text: &str) -> NotifySet {
        match parse(text) {
            CommandBody::Notify(Some(set)) => set,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn parses_the_examples_of_rfc_5465() {
        assert!(matches!(
            parse("a NOTIFY NONE\r\n"),
            CommandBody::Notify(None)
        ));
        // §3.1's first example, with its event lists in parentheses as §8's `events`
        // has them (the example leaves them out; Dovecot, as we, follows the ABNF).
        let first = set(
            "a notify set status (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge)) (mailboxes misc (MessageNew MessageExpunge))\r\n",
        );
        assert!(first.status);
        let [selected, ..] = &first.groups[..] else {
            panic!("{first:?}");
        };
        assert_eq!(selected.filter, NotifyFilter::Selected);
        assert_eq!(
            selected.events.list,
            [NotifyEvent::MessageNew, NotifyEvent::MessageExpunge]
        );
        assert_eq!(selected.events.fetch.len(), 2);
        assert_eq!(selected.events.fetch[0], FetchItem::Uid);
    }

    #[test]
    fn parses_every_filter_and_none() {
        let parsed = set(
            "a NOTIFY SET (selected-delayed NONE) (inboxes (MessageNew MessageExpunge FlagChange)) (personal (MailboxName)) (subscribed (SubscriptionChange MailboxName)) (subtree (\"A b\" C) (MessageNew MessageExpunge)) (mailboxes INBOX (MessageExpunge MessageNew))\r\n",
        );
        assert!(!parsed.status);
        let filters: Vec<&NotifyFilter> = parsed.groups.iter().map(|g| &g.filter).collect();
        assert_eq!(
            filters,
            [
                &NotifyFilter::SelectedDelayed,
                &NotifyFilter::Inboxes,
                &NotifyFilter::Personal,
                &NotifyFilter::Subscribed,
                &NotifyFilter::Subtree(vec!["A b".into(), "C".into()]),
                &NotifyFilter::Mailboxes(vec!["INBOX".into()]),
            ]
        );
        let NotifyGroup { events, .. } = &parsed.groups[0];
        assert!(events.list.is_empty());
        // Unknown events parse, to be refused with NO [BADEVENT].
        let unknown = set("a NOTIFY SET (personal (MailboxName Frobbed))\r\n");
        assert_eq!(unknown.groups[0].events.unknown, ["Frobbed"]);
    }

    #[test]
    fn refuses_what_rfc_5465_makes_a_bad() {
        // §5: MessageNew and MessageExpunge together; FlagChange needs both.
        fails("a NOTIFY SET (personal (MessageNew))\r\n");
        fails("a NOTIFY SET (personal (MessageExpunge))\r\n");
        fails("a NOTIFY SET (personal (FlagChange))\r\n");
        fails("a NOTIFY SET (selected (FlagChange MessageNew))\r\n");
        // §6.1: one selected filter, message events only.
        fails("a NOTIFY SET (selected NONE) (selected-delayed NONE)\r\n");
        fails("a NOTIFY SET (selected (MailboxName))\r\n");
        // Syntax.
        fails("a NOTIFY\r\n");
        fails("a NOTIFY SET\r\n");
        fails("a NOTIFY SET STATUS\r\n");
        fails("a NOTIFY SET (personal)\r\n");
        fails("a NOTIFY SET (personal ())\r\n");
        fails("a NOTIFY SET (subtree (MailboxName))\r\n");
        fails("a NOTIFY SET (mailboxes () (MailboxName))\r\n");
        fails("a NOTIFY SET (everything (MailboxName))\r\n");
        fails("a NOTIFY SET (personal (MessageNew (FROB) MessageExpunge))\r\n");
        fails("a NOTIFY NONE extra\r\n");
    }
}
