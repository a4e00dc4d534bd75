//! SORT and THREAD (RFC 5256) over the messages SEARCH finds, with the keys computed at
//! delivery (base subject, sent date, ENVELOPE addresses, Message-ID, References): no
//! message is parsed here (house rule 11).

use super::search::{Found, find, known_charset};
use crate::error::CommandError;
use crate::proto::command::{SortCommand, SortCriterion, SortKey, ThreadAlgorithm, ThreadCommand};
use crate::proto::response;
use crate::session::{CommandResult, Completion, Session, State};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use storage::MessageMeta;
use storage::mime::EnvelopeAddress;

/// What SORT and THREAD know of one message.
#[derive(Debug, Clone, Default)]
struct Item {
    /// Sequence number or UID: what the response lists.
    number: u32,
    /// Position in the mailbox, the last tie-breaker (RFC 5256 §3).
    seq: u32,
    internal_date: i64,
    size: u32,
    /// RFC 5256 §2.2: the Date: field, or INTERNALDATE when it is missing or unparsable.
    sent_date: i64,
    /// RFC 5256 §2.1, compared with i;ascii-casemap.
    base_subject: String,
    /// The subject had `Re:`, `Fwd:` or the like (RFC 5256 §2.1 and REFERENCES step 5).
    is_reply: bool,
    from: String,
    to: String,
    cc: String,
    message_id: Option<String>,
    references: Vec<String>,
}

impl Item {
    fn new(found: &Found, number: u32, internal_date: i64, size: u32, meta: &MessageMeta) -> Self {
        // The decoded Subject (the base subject was taken from it).
        let subject = meta
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("Subject"))
            .map(|(_, value)| value.as_str())
            .unwrap_or("");
        // base_subject is lower-cased: compare like with like.
        let normalised = subject
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        Item {
            number,
            seq: found.seq,
            internal_date,
            size,
            sent_date: meta.sent_date.unwrap_or(internal_date),
            base_subject: meta.base_subject.to_ascii_uppercase(),
            is_reply: !meta.base_subject.is_empty() && meta.base_subject != normalised,
            from: first_mailbox(&meta.envelope.from),
            to: first_mailbox(&meta.envelope.to),
            cc: first_mailbox(&meta.envelope.cc),
            message_id: meta.message_id.clone(),
            references: meta.references.clone(),
        }
    }
}

/// RFC 5256 §3 FROM/TO/CC: "the [IMAP] addr-mailbox of the first" address, compared
/// with i;ascii-casemap. Taken literally, as Dovecot does: a group's start marker is an
/// address whose addr-mailbox is the group name (RFC 9051 §7.5.2).
fn first_mailbox(addresses: &[EnvelopeAddress]) -> String {
    addresses
        .first()
        .and_then(|a| a.mailbox.as_deref())
        .unwrap_or("")
        .to_ascii_uppercase()
}

fn compare(criteria: &[SortCriterion], a: &Item, b: &Item) -> Ordering {
    for criterion in criteria {
        let order = match criterion.key {
            SortKey::Arrival => a.internal_date.cmp(&b.internal_date),
            SortKey::Cc => a.cc.cmp(&b.cc),
            SortKey::Date => a.sent_date.cmp(&b.sent_date),
            SortKey::From => a.from.cmp(&b.from),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Subject => a.base_subject.cmp(&b.base_subject),
            SortKey::To => a.to.cmp(&b.to),
        };
        let order = if criterion.reverse {
            order.reverse()
        } else {
            order
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    // RFC 5256 §3: "If two or more messages exactly match according to the sorting
    // criteria, these messages are sorted according to the order in which they appear
    // in the mailbox."
    a.seq.cmp(&b.seq)
}

impl Session {
    /// The SORT/THREAD inputs: the messages matching `key`, with their stored meta.
    async fn sort_items(
        &mut self,
        uid: bool,
        charset: &str,
        key: &crate::proto::command::SearchKey,
    ) -> Result<Vec<Item>, CommandError> {
        known_charset(charset)?;
        let store = self.server.store.clone();
        let State::Selected { view, .. } = &self.state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let found = find(view, &store, key, now).await?;
        let ids: Vec<storage::MessageId> = found.iter().map(|f| f.message).collect();
        let metas = store.message_meta(&ids).await?;
        let empty = storage::mime::analyse(b"").meta;
        Ok(found
            .iter()
            .filter_map(|f| {
                let entry = view
                    .entries
                    .get(usize::try_from(f.seq).ok()?.checked_sub(1)?)?;
                let meta = metas.get(&f.message).map(AsRef::as_ref).unwrap_or(&empty);
                let number = if uid { f.uid.0 } else { f.seq };
                Some(Item::new(f, number, entry.internal_date, entry.size, meta))
            })
            .collect())
    }

    /// RFC 5256 §4: `sort-data = "SORT" *(SP nz-number)`.
    pub(crate) async fn sort(&mut self, command: SortCommand) -> CommandResult {
        let mut items = self
            .sort_items(command.uid, &command.charset, &command.key)
            .await?;
        items.sort_by(|a, b| compare(&command.criteria, a, b));
        let mut line = String::from("SORT");
        for item in &items {
            line.push(' ');
            line.push_str(&item.number.to_string());
        }
        response::untagged(&mut self.conn.out, &line);
        Ok(Completion::ok(if command.uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        }))
    }

    /// RFC 5256 §4: `thread-data = "THREAD" [SP 1*thread-list]`.
    pub(crate) async fn thread(&mut self, command: ThreadCommand) -> CommandResult {
        let items = self
            .sort_items(command.uid, &command.charset, &command.key)
            .await?;
        let roots = match command.algorithm {
            ThreadAlgorithm::OrderedSubject => ordered_subject(items),
            ThreadAlgorithm::References => references(items),
        };
        let mut line = String::from("THREAD");
        if !roots.is_empty() {
            line.push(' ');
        }
        for root in &roots {
            line.push('(');
            write_members(root, &mut line, true);
            line.push(')');
        }
        response::untagged(&mut self.conn.out, &line);
        Ok(Completion::ok(if command.uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        }))
    }
}

/// A thread node: a message, or a dummy (no message) holding its children together.
#[derive(Debug, Clone, Default)]
struct Node {
    item: Option<Item>,
    children: Vec<Node>,
}

impl Node {
    /// RFC 5256 §3 REFERENCES step 4: a dummy sorts by its first child's date.
    fn sort_date(&self) -> (i64, u32) {
        match &self.item {
            Some(item) => (item.sent_date, item.seq),
            None => self
                .children
                .first()
                .map(Node::sort_date)
                .unwrap_or((i64::MAX, u32::MAX)),
        }
    }

    fn subject_item(&self) -> Option<&Item> {
        self.item
            .as_ref()
            .or_else(|| self.children.first().and_then(Node::subject_item))
    }
}

/// `thread-members = nz-number *(SP nz-number) [SP thread-nested]`;
/// `thread-nested = 2*thread-list`: a chain of single children is written flat, two or
/// more children each in parentheses.
fn write_members(node: &Node, out: &mut String, first: bool) {
    let mut wrote = false;
    if let Some(item) = &node.item {
        if !first {
            out.push(' ');
        }
        out.push_str(&item.number.to_string());
        wrote = true;
    }
    match node.children.as_slice() {
        [] => {}
        [only] => write_members(only, out, first && !wrote),
        children => {
            if wrote || !first {
                out.push(' ');
            }
            for child in children {
                out.push('(');
                write_members(child, out, true);
                out.push(')');
            }
        }
    }
}

/// RFC 5256 §3 ORDEREDSUBJECT: messages grouped by base subject; in each group the
/// earliest is the parent and the others its children by sent date; the threads ordered
/// by the sent date of their first message.
fn ordered_subject(mut items: Vec<Item>) -> Vec<Node> {
    items.sort_by(|a, b| {
        a.base_subject
            .cmp(&b.base_subject)
            .then(a.sent_date.cmp(&b.sent_date))
            .then(a.seq.cmp(&b.seq))
    });
    let mut roots: Vec<Node> = Vec::new();
    let mut current_subject: Option<String> = None;
    for item in items {
        if current_subject.as_deref() == Some(item.base_subject.as_str())
            && let Some(root) = roots.last_mut()
        {
            root.children.push(Node {
                item: Some(item),
                children: Vec::new(),
            });
            continue;
        }
        current_subject = Some(item.base_subject.clone());
        roots.push(Node {
            item: Some(item),
            children: Vec::new(),
        });
    }
    roots.sort_by_key(Node::sort_date);
    roots
}

/// RFC 5256 §3 REFERENCES (after Jamie Zawinski's algorithm): messages linked into
/// trees by Message-ID and References/In-Reply-To, dummies pruned, roots with the same
/// base subject gathered, siblings sorted by sent date.
fn references(items: Vec<Item>) -> Vec<Node> {
    // Step 1: one container per message ID, in an arena.
    #[derive(Default)]
    struct Container {
        item: Option<Item>,
        parent: Option<usize>,
        children: Vec<usize>,
    }
    let mut containers: Vec<Container> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let is_ancestor = |containers: &[Container], ancestor: usize, mut node: usize| {
        // Bounded by the arena size: parents never form a cycle (checked on linking).
        for _ in 0..=containers.len() {
            if node == ancestor {
                return true;
            }
            match containers.get(node).and_then(|c| c.parent) {
                Some(parent) => node = parent,
                None => return false,
            }
        }
        true
    };
    let link = |containers: &mut Vec<Container>, parent: usize, child: usize| {
        if parent == child || is_ancestor(containers, child, parent) {
            return;
        }
        if let Some(old) = containers[child].parent.take() {
            containers[old].children.retain(|&c| c != child);
        }
        containers[child].parent = Some(parent);
        containers[parent].children.push(child);
    };
    for item in items {
        // 1A: a message whose ID is missing or already taken gets a container of its own.
        let own = match item.message_id.as_deref().and_then(|id| by_id.get(id)) {
            Some(&index) if containers[index].item.is_none() => index,
            _ => {
                containers.push(Container::default());
                let index = containers.len() - 1;
                if let Some(id) = &item.message_id {
                    by_id.entry(id.clone()).or_insert(index);
                }
                index
            }
        };
        // 1B: link the references in order, each the parent of the next, where neither
        // link exists yet; duplicates (In-Reply-To repeating References) count once.
        let mut seen = HashSet::new();
        let chain: Vec<usize> = item
            .references
            .iter()
            .filter(|id| seen.insert(id.as_str()) && item.message_id.as_deref() != Some(id))
            .map(|id| {
                *by_id.entry(id.clone()).or_insert_with(|| {
                    containers.push(Container::default());
                    containers.len() - 1
                })
            })
            .collect();
        for pair in chain.windows(2) {
            if let [parent, child] = *pair
                && containers[child].parent.is_none()
            {
                link(&mut containers, parent, child);
            }
        }
        // 1C: the last reference is this message's parent.
        match chain.last() {
            Some(&parent) => link(&mut containers, parent, own),
            None => {
                if let Some(old) = containers[own].parent.take() {
                    containers[old].children.retain(|&c| c != own);
                }
            }
        }
        containers[own].item = Some(item);
    }
    // Steps 2-3: the roots, as trees of nodes.
    fn build(containers: &mut [Container], index: usize) -> Node {
        let children = std::mem::take(&mut containers[index].children);
        Node {
            item: containers[index].item.take(),
            children: children.into_iter().map(|c| build(containers, c)).collect(),
        }
    }
    let root_indexes: Vec<usize> = (0..containers.len())
        .filter(|&i| containers[i].parent.is_none())
        .collect();
    let roots: Vec<Node> = root_indexes
        .into_iter()
        .map(|i| build(&mut containers, i))
        .collect();
    // Step 4: prune dummies; sort.
    let mut roots = prune(roots, true);
    sort_siblings(&mut roots);
    // Step 5: gather roots with the same base subject.
    let mut table: HashMap<String, usize> = HashMap::new();
    for (index, root) in roots.iter().enumerate() {
        let Some(item) = root.subject_item() else {
            continue;
        };
        if item.base_subject.is_empty() {
            continue;
        }
        match table.get(&item.base_subject) {
            None => {
                table.insert(item.base_subject.clone(), index);
            }
            Some(&other) => {
                let other_root = &roots[other];
                let other_reply = other_root.item.as_ref().is_some_and(|i| i.is_reply);
                let replace = (root.item.is_none() && other_root.item.is_some())
                    || (other_reply && root.item.as_ref().is_some_and(|i| !i.is_reply));
                if replace {
                    table.insert(item.base_subject.clone(), index);
                }
            }
        }
    }
    let mut merged: Vec<Option<Node>> = roots.into_iter().map(Some).collect();
    for index in 0..merged.len() {
        let Some(subject) = merged[index]
            .as_ref()
            .and_then(Node::subject_item)
            .map(|i| i.base_subject.clone())
        else {
            continue;
        };
        let Some(&target) = table.get(&subject) else {
            continue;
        };
        if target == index || merged[target].is_none() {
            continue;
        }
        let Some(this) = merged[index].take() else {
            continue;
        };
        let Some(mut kept) = merged[target].take() else {
            continue;
        };
        match (kept.item.is_none(), this.item.is_none()) {
            // Both dummies: one dummy holds all the children.
            (true, true) => kept.children.extend(this.children),
            // A dummy in the table: this thread becomes one of its children.
            (true, false) => kept.children.push(this),
            (false, _) => {
                let kept_reply = kept.item.as_ref().is_some_and(|i| i.is_reply);
                let this_reply = this.item.as_ref().is_some_and(|i| i.is_reply);
                if this.item.is_some() && this_reply && !kept_reply {
                    // A reply to the thread in the table goes under it.
                    kept.children.push(this);
                } else {
                    // Otherwise both go under a new dummy.
                    kept = Node {
                        item: None,
                        children: vec![kept, this],
                    };
                }
            }
        }
        merged[target] = Some(kept);
    }
    let mut roots: Vec<Node> = merged.into_iter().flatten().collect();
    // Step 6: every level in sent-date order.
    sort_siblings(&mut roots);
    roots
}

/// RFC 5256 §3 REFERENCES step 4: a dummy without children goes; a dummy's children
/// take its place, except for a root dummy with several children, which stays.
fn prune(nodes: Vec<Node>, at_root: bool) -> Vec<Node> {
    let mut kept = Vec::new();
    for mut node in nodes {
        node.children = prune(std::mem::take(&mut node.children), false);
        if node.item.is_some() {
            kept.push(node);
        } else if node.children.is_empty() {
            continue;
        } else if at_root && node.children.len() > 1 {
            kept.push(node);
        } else {
            kept.extend(node.children);
        }
    }
    kept
}

fn sort_siblings(nodes: &mut [Node]) {
    for node in nodes.iter_mut() {
        sort_siblings(&mut node.children);
    }
    nodes.sort_by_key(Node::sort_date);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(number: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> Item {
        let base = storage::mime::base_subject(subject);
        Item {
            number,
            seq: number,
            sent_date: date,
            is_reply: base != subject.to_lowercase(),
            base_subject: base.to_ascii_uppercase(),
            message_id: (!id.is_empty()).then(|| id.to_owned()),
            references: refs.iter().map(|r| r.to_string()).collect(),
            ..Item::default()
        }
    }

    fn render(roots: &[Node]) -> String {
        let mut line = String::new();
        for root in roots {
            line.push('(');
            write_members(root, &mut line, true);
            line.push(')');
        }
        line
    }

    #[test]
    fn sort_orders_by_criteria_then_mailbox_order() {
        let mut a = item(1, 300, "b", "", &[]);
        a.size = 10;
        let mut b = item(2, 100, "a", "", &[]);
        b.size = 30;
        let mut c = item(3, 200, "Re: a", "", &[]);
        c.size = 10;
        let mut items = [a, b, c];
        let by = |key, reverse| SortCriterion { key, reverse };
        items.sort_by(|x, y| compare(&[by(SortKey::Subject, false)], x, y));
        assert_eq!(
            items.iter().map(|i| i.number).collect::<Vec<_>>(),
            [2, 3, 1]
        );
        items.sort_by(|x, y| compare(&[by(SortKey::Date, true)], x, y));
        assert_eq!(
            items.iter().map(|i| i.number).collect::<Vec<_>>(),
            [1, 3, 2]
        );
        items.sort_by(|x, y| compare(&[by(SortKey::Size, false)], x, y));
        assert_eq!(
            items.iter().map(|i| i.number).collect::<Vec<_>>(),
            [1, 3, 2]
        );
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        let items = vec![
            item(1, 10, "Hello", "", &[]),
            item(2, 20, "Other", "", &[]),
            item(3, 30, "Re: hello", "", &[]),
            item(4, 40, "RE: Hello", "", &[]),
            item(5, 50, "Re: other", "", &[]),
            item(6, 60, "Lonely", "", &[]),
        ];
        assert_eq!(render(&ordered_subject(items)), "(1 (3)(4))(2 5)(6)");
    }

    #[test]
    fn references_builds_trees_and_gathers_subjects() {
        let items = vec![
            item(1, 10, "Plan", "a@x", &[]),
            item(2, 20, "Re: Plan", "b@x", &["a@x"]),
            item(3, 30, "Re: Plan", "c@x", &["a@x"]),
            item(4, 40, "Re: Plan", "d@x", &["a@x", "b@x"]),
            // Its parent is missing: the dummy for m@x goes, it stands alone.
            item(5, 50, "Re: Lunch", "e@x", &["m@x"]),
            // Two messages answering one missing message: a dummy root with two children.
            item(6, 60, "Re: Gone", "f@x", &["g@x"]),
            item(7, 70, "Re: Gone", "h@x", &["g@x"]),
            // Same subject as 1, no references: gathered into 1's thread (step 5).
            item(8, 80, "Re: plan", "", &[]),
        ];
        assert_eq!(render(&references(items)), "(1 (2 4)(3)(8))(5)((6)(7))");
    }

    #[test]
    fn references_survives_loops_and_duplicate_ids() {
        let items = vec![
            item(1, 10, "x", "a@x", &["b@x"]),
            item(2, 20, "y", "b@x", &["a@x"]),
            item(3, 30, "z", "a@x", &[]),
        ];
        let rendered = render(&references(items));
        for n in ["1", "2", "3"] {
            assert!(rendered.contains(n), "{rendered}");
        }
    }
}
