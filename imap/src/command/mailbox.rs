//! Mailbox commands (RFC 9051 §6.3): CREATE (with RFC 6154 USE), DELETE, RENAME,
//! SUBSCRIBE, UNSUBSCRIBE, LIST (with RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS,
//! RFC 6154 SPECIAL-USE, RFC 3348 CHILDREN), LSUB (RFC 3501), STATUS.

use crate::error::CommandError;
use crate::proto::command::{ListCommand, StatusItem};
use crate::proto::objectid;
use crate::proto::response::{self, Code};
use crate::session::{CommandResult, Completion, Session, State};
use std::collections::{BTreeMap, HashSet};
use storage::{
    AccountId, MAILBOX_DELIMITER, Mailbox, MailboxId, MailboxName, MailboxStatus, SpecialUse,
    Store, StoreError,
};

/// One row of a LIST answer: a mailbox, a name on the subscription list whose mailbox
/// does not exist, or a superior level of either that does not exist.
struct Listed<'a> {
    name: String,
    mailbox: Option<&'a Mailbox>,
    subscribed: bool,
}

impl Session {
    /// RFC 9051 §6.3.4 CREATE; RFC 6154 §3 `USE (...)`.
    pub(crate) async fn create(&mut self, mailbox: &str, special_use: &[String]) -> CommandResult {
        let account = self.account()?;
        let name = self.decode_mailbox(mailbox)?;
        // RFC 9051 §6.3.4: a trailing delimiter declares the intent to create inferiors.
        let name = name.strip_suffix(MAILBOX_DELIMITER).unwrap_or(&name);
        if name.eq_ignore_ascii_case("INBOX") {
            return Err(CommandError::no(
                Some(Code::AlreadyExists),
                "INBOX always exists",
            ));
        }
        let mut role = None;
        for attribute in special_use {
            match SpecialUse::from_attribute(attribute) {
                // RFC 6154 §2: \All and \Flagged are virtual mailboxes that "present" the
                // messages of others; a mailbox made by CREATE would hold its own, so it
                // "cannot be assigned" these (§3). Dovecot 2.3 configures them as virtual
                // folders too.
                Some(SpecialUse::All | SpecialUse::Flagged) => {
                    return Err(CommandError::no(
                        Some(Code::UseAttr),
                        "Virtual special uses cannot be created",
                    ));
                }
                Some(found) if role.is_none() => role = Some(found),
                Some(_) => {
                    return Err(CommandError::no(
                        Some(Code::UseAttr),
                        "One special use per mailbox",
                    ));
                }
                None => {
                    return Err(CommandError::no(
                        Some(Code::UseAttr),
                        "Unsupported special-use attribute",
                    ));
                }
            }
        }
        // An invalid name is refused with [CANNOT], a special use another mailbox has
        // with [USEATTR], by storage.
        let name = MailboxName::new(name)?;
        let id = self
            .server
            .store
            .create_mailbox(account, &name, role)
            .await?;
        // RFC 8474 §4.1: a successful CREATE reports the new mailbox's MAILBOXID in its
        // tagged OK.
        Ok(Completion::ok_with(
            Code::MailboxId(objectid::mailbox_id(id)),
            "CREATE completed",
        ))
    }

    pub(crate) async fn existing(&self, mailbox: &str) -> Result<Mailbox, CommandError> {
        let account = self.account()?;
        self.mailbox_named(account, mailbox)
            .await?
            .ok_or_else(|| CommandError::no(Some(Code::NonExistent), "No such mailbox"))
    }

    /// The mailbox of `account` that `mailbox`, a name from the wire, names: decoded from
    /// modified UTF-7 ([`Session::decode_mailbox`]), then made a [`MailboxName`]. `None`
    /// when it names none; a name that cannot be a mailbox's names none.
    pub(crate) async fn mailbox_named(
        &self,
        account: AccountId,
        mailbox: &str,
    ) -> Result<Option<Mailbox>, CommandError> {
        let name = self.decode_mailbox(mailbox)?;
        Ok(find_mailbox(&self.server.store, account, &name).await?)
    }

    /// RFC 9051 §6.3.5 DELETE: inferiors stay; INBOX cannot go.
    pub(crate) async fn delete(&mut self, mailbox: &str) -> CommandResult {
        let target = self.existing(mailbox).await?;
        if target.name.is_inbox() {
            return Err(CommandError::no(
                Some(Code::Cannot),
                "INBOX cannot be deleted",
            ));
        }
        self.server.store.delete_mailbox(target.id).await?;
        Ok(Completion::ok("DELETE completed"))
    }

    /// RFC 9051 §6.3.6 RENAME.
    pub(crate) async fn rename(&mut self, from: &str, to: &str) -> CommandResult {
        let source = self.existing(from).await?;
        let to = self.decode_mailbox(to)?;
        let to = MailboxName::new(to.strip_suffix(MAILBOX_DELIMITER).unwrap_or(&to))?;
        self.server.store.rename_mailbox(source.id, &to).await?;
        Ok(Completion::ok("RENAME completed"))
    }

    /// RFC 9051 §6.3.7 / §6.3.8. SUBSCRIBE takes only a mailbox that exists ("A server
    /// MAY validate the mailbox argument to SUBSCRIBE", as Dovecot does); UNSUBSCRIBE
    /// takes any name, so a name whose mailbox was deleted can be taken off the list.
    pub(crate) async fn subscribe(&mut self, mailbox: &str, subscribe: bool) -> CommandResult {
        let account = self.account()?;
        let name = if subscribe {
            self.existing(mailbox).await?.name
        } else {
            MailboxName::new(&self.decode_mailbox(mailbox)?)?
        };
        self.server
            .store
            .set_subscribed(account, &name, subscribe)
            .await?;
        Ok(Completion::ok(if subscribe {
            "SUBSCRIBE completed"
        } else {
            "UNSUBSCRIBE completed"
        }))
    }

    /// RFC 9051 §6.3.9 LIST with RFC 5258 selection and return options.
    pub(crate) async fn list(&mut self, list: ListCommand) -> CommandResult {
        let account = self.account()?;
        let delimiter = MAILBOX_DELIMITER;
        // RFC 9051 §6.3.9: an empty pattern asks for the delimiter and root.
        if !list.extended && list.patterns.iter().all(String::is_empty) {
            response::untagged(
                &mut self.conn.out,
                &format!("LIST (\\Noselect) \"{delimiter}\" \"\""),
            );
            return Ok(Completion::ok("LIST completed"));
        }
        let mut patterns = Vec::new();
        if let Some(reference) = self.decode_pattern(&list.reference) {
            for pattern in list.patterns.iter().filter(|p| !p.is_empty()) {
                let Some(pattern) = self.decode_pattern(pattern) else {
                    continue;
                };
                patterns.push(MailboxPattern::new(&join_reference(&reference, &pattern))?);
            }
        }
        let mailboxes = self.server.store.list_mailboxes(account).await?;
        let subscriptions = if list.select_subscribed || list.return_subscribed {
            self.server.store.subscriptions(account).await?
        } else {
            Vec::new()
        };
        // RFC 5258 §3.1: SUBSCRIBED selects the subscription list, names whose mailbox
        // no longer exists included (shown `\NonExistent`); RETURN (SUBSCRIBED) alone
        // only marks the mailboxes that exist.
        let rows = rows_with_superiors(&mailboxes, &subscriptions, list.select_subscribed);
        let selecting = list.select_subscribed || list.select_special_use;
        let passes = |row: &Listed<'_>| -> bool {
            (!list.select_subscribed || row.subscribed)
                && (!list.select_special_use
                    || row.mailbox.is_some_and(|m| m.special_use.is_some()))
                && (row.mailbox.is_some() || row.subscribed)
        };
        let matched = |name: &str| patterns.iter().any(|p| p.matches(name));
        let mut lines = Vec::new();
        let mut status_for = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            if !matched(&row.name) {
                continue;
            }
            let prefix = format!("{}{delimiter}", row.name);
            let descendants = rows
                .iter()
                .skip(index + 1)
                .take_while(|r| r.name.starts_with(&prefix));
            let selected = passes(row);
            let mut has_children = false;
            let mut child_info = false;
            for child in descendants {
                has_children |= child.mailbox.is_some();
                // RFC 5258 §3 RECURSIVEMATCH: a mailbox that does not meet the
                // selection is returned for a descendant that does and that the
                // pattern does not return itself; one that meets it says so of any
                // such descendant (as Dovecot answers).
                child_info |=
                    list.recursive_match && passes(child) && (selected || !matched(&child.name));
            }
            if selecting && !selected && !child_info {
                continue;
            }
            // In Dovecot's order: \Subscribed, existence, children, special use.
            let mut attributes: Vec<&str> = Vec::new();
            if row.subscribed && (list.select_subscribed || list.return_subscribed) {
                attributes.push("\\Subscribed");
            }
            if row.mailbox.is_none() {
                // RFC 5258 §3.4 and RFC 9051 §7.3.1: `\NonExistent` (which implies
                // `\Noselect`) in extended answers and to IMAP4rev2; RFC 3501 §7.2.2
                // `\Noselect` in a basic IMAP4rev1 LIST.
                attributes.push(if list.extended || self.enabled.rev2 {
                    "\\NonExistent"
                } else {
                    "\\Noselect"
                });
            }
            // RFC 5258 §4: the CHILDREN return option says the client wants child
            // information, which a server may give without it (as RFC 3348 servers
            // always did). Always given; Dovecot gives it to an extended LIST only when
            // asked.
            attributes.push(if has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if let Some(role) = row.mailbox.and_then(|m| m.special_use) {
                attributes.push(role.attribute());
            }
            let mut line = format!(
                "LIST ({}) \"{delimiter}\" {}",
                attributes.join(" "),
                self.encode_mailbox(&row.name)
            );
            if child_info {
                line.push_str(" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            lines.push(line);
            status_for.push(
                row.mailbox
                    .filter(|_| list.return_status.is_some())
                    .map(|m| (m.id, m.name.as_str().to_owned())),
            );
        }
        for (line, status) in lines.iter().zip(status_for) {
            response::untagged(&mut self.conn.out, line);
            // RFC 5819 §2: a STATUS response for each selectable mailbox listed.
            if let (Some((id, name)), Some(items)) = (status, &list.return_status) {
                match self.server.store.mailbox_status(id).await {
                    Ok(status) => {
                        let line = self.status_line(id, &name, &status, items);
                        response::untagged(&mut self.conn.out, &line);
                    }
                    Err(error) => tracing::debug!(%error, "LIST-STATUS skipped a mailbox"),
                }
            }
        }
        Ok(Completion::ok("LIST completed"))
    }

    /// RFC 3501 §6.3.9 LSUB (deprecated by RFC 9051, still used by IMAP4rev1 clients).
    pub(crate) async fn lsub(&mut self, reference: &str, pattern: &str) -> CommandResult {
        let account = self.account()?;
        let (Some(reference), Some(pattern)) =
            (self.decode_pattern(reference), self.decode_pattern(pattern))
        else {
            return Ok(Completion::ok("LSUB completed"));
        };
        let pattern = MailboxPattern::new(&join_reference(&reference, &pattern))?;
        // RFC 3501 §6.3.9: the subscription list as it is, names whose mailbox is gone
        // included (Dovecot lists those without attributes too).
        let names = self.server.store.subscriptions(account).await?;
        let subscribed: HashSet<&str> = names.iter().map(MailboxName::as_str).collect();
        let mut listed: HashSet<&str> = HashSet::new();
        let mut lines = Vec::new();
        for name in names.iter().map(MailboxName::as_str) {
            if pattern.matches(name) {
                lines.push(("", name));
                continue;
            }
            // RFC 3501 §6.3.9: "if "foo/bar" is subscribed and LSUB "" "%" is issued,
            // "foo" should be returned with \Noselect" - a superior that matches where
            // the subscribed name does not, and is not subscribed itself.
            let superiors = name
                .match_indices(MAILBOX_DELIMITER)
                .filter_map(|(at, _)| name.get(..at));
            for superior in superiors {
                if !subscribed.contains(superior)
                    && pattern.matches(superior)
                    && listed.insert(superior)
                {
                    lines.push(("\\Noselect", superior));
                }
            }
        }
        for (attributes, name) in lines {
            let line = format!(
                "LSUB ({attributes}) \"{MAILBOX_DELIMITER}\" {}",
                self.encode_mailbox(name)
            );
            response::untagged(&mut self.conn.out, &line);
        }
        Ok(Completion::ok("LSUB completed"))
    }

    /// RFC 9051 §6.3.11 STATUS (with RFC 8438 SIZE, RFC 7889 APPENDLIMIT).
    pub(crate) async fn status(&mut self, mailbox: &str, items: &[StatusItem]) -> CommandResult {
        // RFC 7162 §3.1: STATUS (HIGHESTMODSEQ) is CONDSTORE enabling.
        if items.contains(&StatusItem::HighestModSeq) {
            self.enable_condstore();
        }
        let target = self.existing(mailbox).await?;
        let status = self.server.store.mailbox_status(target.id).await?;
        let line = self.status_line(target.id, target.name.as_str(), &status, items);
        response::untagged(&mut self.conn.out, &line);
        Ok(Completion::ok("STATUS completed"))
    }

    /// `mailbox-data =/ "STATUS" SP mailbox SP "(" [status-att-list] ")"`
    pub(crate) fn status_line(
        &self,
        id: MailboxId,
        name: &str,
        status: &MailboxStatus,
        items: &[StatusItem],
    ) -> String {
        let values: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", status.messages),
                StatusItem::UidNext => format!("UIDNEXT {}", status.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", status.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", status.unseen),
                StatusItem::Deleted => format!("DELETED {}", status.deleted),
                StatusItem::Size => format!("SIZE {}", status.size),
                // RFC 3501 §6.3.10: "The number of messages with the \Recent flag set":
                // in the selected mailbox those `\Recent` in this session, as its FETCH
                // FLAGS show them (§2.3.2: the flag is the session's); elsewhere those no
                // session has claimed. Dovecot 2.3 counts the same.
                StatusItem::Recent => {
                    let in_session = match &self.state {
                        State::Selected { view, .. } if view.name == name => {
                            view.recent_in_session()
                        }
                        _ => None,
                    };
                    format!("RECENT {}", in_session.unwrap_or(status.recent as usize))
                }
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", status.highest_modseq),
                StatusItem::AppendLimit => {
                    format!("APPENDLIMIT {}", self.server.config.max_message_size)
                }
                StatusItem::DeletedStorage => {
                    format!("DELETED-STORAGE {}", status.deleted_size.div_ceil(1024))
                }
                // RFC 8474 §4.2: `"MAILBOXID" SP "(" objectid ")"`.
                StatusItem::MailboxId => format!("MAILBOXID ({})", objectid::mailbox_id(id)),
            })
            .collect();
        format!(
            "STATUS {} ({})",
            self.encode_mailbox(name),
            values.join(" ")
        )
    }
}

/// The mailbox of `account` named `name` (a client's name, decoded from the wire), or
/// `None`: a name that cannot be a mailbox's ([`MailboxName::new`] refuses it) names none.
pub(crate) async fn find_mailbox(
    store: &Store,
    account: AccountId,
    name: &str,
) -> Result<Option<Mailbox>, StoreError> {
    match MailboxName::new(name) {
        Ok(name) => store.mailbox_by_name(account, &name).await,
        Err(_) => Ok(None),
    }
}

/// RFC 9051 §6.3.9: the reference and the pattern are joined left to right; a pattern
/// that starts with the delimiter is taken as absolute.
fn join_reference(reference: &str, pattern: &str) -> String {
    if pattern.starts_with(MAILBOX_DELIMITER) {
        return pattern.trim_start_matches(MAILBOX_DELIMITER).to_owned();
    }
    format!("{reference}{pattern}")
}

/// Every mailbox, every subscribed name without a mailbox when `with_subscriptions`,
/// and the superior levels of both that do not exist (after a DELETE of a parent), in
/// name order, so that descendants follow their superior.
fn rows_with_superiors<'a>(
    mailboxes: &'a [Mailbox],
    subscriptions: &[MailboxName],
    with_subscriptions: bool,
) -> Vec<Listed<'a>> {
    let subscribed: HashSet<&str> = subscriptions.iter().map(MailboxName::as_str).collect();
    let mut rows: BTreeMap<String, Option<&Mailbox>> = BTreeMap::new();
    for mailbox in mailboxes {
        rows.insert(mailbox.name.as_str().to_owned(), Some(mailbox));
    }
    if with_subscriptions {
        for name in subscriptions {
            rows.entry(name.as_str().to_owned()).or_insert(None);
        }
    }
    let names: Vec<String> = rows.keys().cloned().collect();
    for name in &names {
        let mut superior = name.as_str();
        while let Some((parent, _)) = superior.rsplit_once(MAILBOX_DELIMITER) {
            rows.entry(parent.to_owned()).or_insert(None);
            superior = parent;
        }
    }
    // Name order with the delimiter sorting first, so "a/b" comes right after "a"
    // and before "a b".
    let mut rows: Vec<Listed<'_>> = rows
        .into_iter()
        .map(|(name, mailbox)| Listed {
            subscribed: subscribed.contains(name.as_str()),
            name,
            mailbox,
        })
        .collect();
    rows.sort_by(|a, b| {
        let key = |name: &str| name.replace(MAILBOX_DELIMITER, "\u{0}");
        key(&a.name).cmp(&key(&b.name))
    });
    // INBOX first, as clients expect.
    if let Some(at) = rows.iter().position(|r| r.name == "INBOX") {
        let inbox_and_children: Vec<Listed<'_>> = {
            let end = rows
                .iter()
                .skip(at + 1)
                .position(|r| !r.name.starts_with("INBOX/"))
                .map_or(rows.len(), |p| at + 1 + p);
            rows.drain(at..end).collect()
        };
        rows.splice(0..0, inbox_and_children);
    }
    rows
}

/// A LIST or LSUB pattern after wildcards are collapsed: longer ones can match no name
/// (a name holds at most [`storage::MAX_MAILBOX_NAME_BYTES`] bytes, and after collapsing
/// at least every other character of a pattern is a literal), and each character costs
/// a pass over every mailbox name.
pub(crate) const MAX_PATTERN_CHARS: usize = 2 * storage::MAX_MAILBOX_NAME_BYTES + 1;

/// One character of a mailbox pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternChar {
    /// `*`: any characters, the hierarchy delimiter included.
    Any,
    /// `%`: any characters but the hierarchy delimiter.
    AnyInLevel,
    Literal(char),
}

/// RFC 9051 §6.3.9: a LIST pattern, where `*` matches anything and `%` anything but the
/// delimiter. Checked and simplified once per command: a run of wildcards is one
/// wildcard (`*` if the run has one, else `%`), so `LIST "" ****...` costs what `*` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MailboxPattern(Vec<PatternChar>);

impl MailboxPattern {
    pub(crate) fn new(pattern: &str) -> Result<Self, CommandError> {
        let mut chars: Vec<PatternChar> = Vec::new();
        for c in pattern.chars() {
            let next = match c {
                '*' => PatternChar::Any,
                '%' => PatternChar::AnyInLevel,
                c => PatternChar::Literal(c),
            };
            let wildcard =
                |c: &PatternChar| matches!(c, PatternChar::Any | PatternChar::AnyInLevel);
            match (chars.last_mut(), next) {
                // `%*`, `*%`, `**`, `%%`: `*` when the run has one, else `%`.
                (Some(last), PatternChar::Any) if wildcard(last) => *last = PatternChar::Any,
                (Some(last), PatternChar::AnyInLevel) if wildcard(last) => {}
                _ => chars.push(next),
            }
            if chars.len() > MAX_PATTERN_CHARS {
                return Err(CommandError::bad("Mailbox pattern too long"));
            }
        }
        Ok(MailboxPattern(chars))
    }

    /// True when `name` matches. The name INBOX is case-insensitive (RFC 9051 §5.1), so
    /// its first five characters are matched without regard to case. Runs the pattern as
    /// an automaton over the name, one pass per name character: no recursion, time
    /// pattern × name, memory pattern.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let pattern = &self.0;
        let inbox_rooted = name.get(..5) == Some("INBOX")
            && name
                .get(5..)
                .and_then(|rest| rest.chars().next())
                .is_none_or(|c| c == MAILBOX_DELIMITER);
        // states[i]: the first i pattern characters match what has been read.
        let mut states = vec![false; pattern.len() + 1];
        let mut next = vec![false; pattern.len() + 1];
        states[0] = true;
        let take_empty_wildcards = |states: &mut [bool]| {
            for (i, c) in pattern.iter().enumerate() {
                if states[i] && matches!(c, PatternChar::Any | PatternChar::AnyInLevel) {
                    states[i + 1] = true;
                }
            }
        };
        take_empty_wildcards(&mut states);
        for (position, c) in name.chars().enumerate() {
            next.fill(false);
            for (i, pc) in pattern.iter().enumerate() {
                if !states[i] {
                    continue;
                }
                match *pc {
                    PatternChar::Any => next[i] = true,
                    PatternChar::AnyInLevel => next[i] |= c != MAILBOX_DELIMITER,
                    PatternChar::Literal(pc) => {
                        next[i + 1] |= pc == c
                            || (inbox_rooted && position < 5 && pc.eq_ignore_ascii_case(&c));
                    }
                }
            }
            take_empty_wildcards(&mut next);
            std::mem::swap(&mut states, &mut next);
            if !states.contains(&true) {
                return false;
            }
        }
        states[pattern.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches_pattern(pattern: &str, name: &str) -> bool {
        MailboxPattern::new(pattern)
            .expect("a pattern within the limit")
            .matches(name)
    }

    #[test]
    fn patterns_match_like_rfc_9051() {
        for (pattern, name, matches) in [
            ("*", "a/b/c", true),
            ("%", "Sent", true),
            ("%", "a/b", false),
            ("a/%", "a/b", true),
            ("a/%", "a/b/c", false),
            ("a/*", "a/b/c", true),
            ("inbox", "INBOX", true),
            ("Inbox/%", "INBOX/x", true),
            ("inboxes", "INBOXes", false),
            ("sent", "Sent", false),
            ("S%t", "Sent", true),
            ("*%*%*", "a", true),
            ("a%*b", "a/x/b", true),
            ("a%%b", "a/b", false),
            ("%%%", "Sent", true),
        ] {
            assert_eq!(matches_pattern(pattern, name), matches, "{pattern} {name}");
        }
        assert!(!matches_pattern(&"*a".repeat(200), &"a".repeat(100)));
    }

    #[test]
    fn runs_of_wildcards_collapse_and_long_patterns_are_refused() {
        // LIST "" followed by 24,000 `*`: one wildcard, matched without recursion.
        let stars = "*".repeat(24_000);
        assert_eq!(
            MailboxPattern::new(&stars).expect("collapses"),
            MailboxPattern::new("*").expect("valid")
        );
        assert!(matches_pattern(&stars, "a/b/c"));
        assert_eq!(
            MailboxPattern::new("%%*%").expect("collapses"),
            MailboxPattern::new("*").expect("valid")
        );
        assert!(MailboxPattern::new(&"a%".repeat(MAX_PATTERN_CHARS)).is_err());
        // The longest pattern allowed against the longest name, and no stack to overflow.
        let pattern = "%a".repeat(MAX_PATTERN_CHARS / 2);
        assert!(!matches_pattern(&pattern, &"a".repeat(1000)));
    }

    #[test]
    fn references_join_with_the_delimiter() {
        assert_eq!(join_reference("", "%"), "%");
        assert_eq!(join_reference("a", "%"), "a%");
        assert_eq!(join_reference("a/", "%"), "a/%");
    }
}
