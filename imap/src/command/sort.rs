//! SORT and THREAD (RFC 5256) over the messages SEARCH finds, with the keys computed at
//! delivery (base subject, sent date, ENVELOPE addresses, Message-ID, References): no
//! message is parsed here (house rule 11).

use super::search::{Esearch, Found, Hit, Order, UpdateKey, find, known_charset, uses_modseq};
use crate::error::CommandError;
use crate::proto::command::{
    SearchKey, SearchReturn, SortCommand, SortCriterion, SortKey, ThreadAlgorithm, ThreadCommand,
};
use crate::proto::response::{self, Code};
use crate::session::{CommandResult, Completion, Session, State};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use storage::mime::EnvelopeAddress;
use storage::{MessageMeta, Uid};
use unicode_normalization::UnicodeNormalization;

/// What SORT and THREAD know of one message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Item {
    /// Sequence number or UID: what the response lists.
    number: u32,
    /// Position in the mailbox, the last tie-breaker (RFC 5256 §3).
    seq: u32,
    /// The UID, what `RETURN (SAVE)` keeps (RFC 5182 §2.1); a plain number so that
    /// `Item` has a default for the tests and the fuzz target.
    pub(crate) uid: u32,
    /// RFC 7162 §3.1.5: what MODSEQ in the answer is taken from.
    modseq: u64,
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
    /// RFC 5957 §2 DISPLAYFROM and DISPLAYTO.
    display_from: String,
    display_to: String,
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
        Item {
            number,
            seq: found.seq,
            uid: found.uid.0,
            modseq: found.modseq.0,
            internal_date,
            size,
            sent_date: meta.sent_date.unwrap_or(internal_date),
            base_subject: meta.base_subject.to_ascii_uppercase(),
            is_reply: !meta.base_subject.is_empty()
                && storage::mime::base_subject_and_reply(subject).1,
            from: first_mailbox(&meta.envelope.from),
            to: first_mailbox(&meta.envelope.to),
            cc: first_mailbox(&meta.envelope.cc),
            display_from: display_key(meta.display_from.as_deref(), &meta.envelope.from),
            display_to: display_key(meta.display_to.as_deref(), &meta.envelope.to),
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

/// RFC 5957 §2 DISPLAYFROM/DISPLAYTO: the key stored at delivery, or for meta stored
/// before it was, computed from the ENVELOPE now; compared by [`casemap`].
fn display_key(stored: Option<&str>, addresses: &[EnvelopeAddress]) -> String {
    match stored {
        Some(name) => casemap(name),
        None => casemap(&storage::mime::display_name(addresses)),
    }
}

/// i;unicode-casemap-like (RFC 5051 §2, which RFC 5957 §2 names): case-mapped, then
/// decomposed (NFKD), compared by octets. Upper-casing stands in for titlecasing: the
/// same for letters that have one form, and it orders ASCII punctuation against letters
/// as FROM and TO (i;ascii-casemap) do, and as Dovecot does.
fn casemap(text: &str) -> String {
    text.to_uppercase().nfkd().collect()
}

impl Item {
    /// The item an updating SORT (RFC 5267 §4.3) keeps: only what `criteria` compare,
    /// and its place in the mailbox as its UID (the mailbox is in UID order, and a UID,
    /// unlike a sequence number, does not shift).
    pub(crate) fn for_context(mut self, criteria: &[SortCriterion]) -> Item {
        let uses = |key: SortKey| criteria.iter().any(|c| c.key == key);
        let keep = |key: SortKey, field: &mut String| {
            if !uses(key) {
                *field = String::new();
            }
        };
        keep(SortKey::Subject, &mut self.base_subject);
        keep(SortKey::From, &mut self.from);
        keep(SortKey::To, &mut self.to);
        keep(SortKey::Cc, &mut self.cc);
        keep(SortKey::DisplayFrom, &mut self.display_from);
        keep(SortKey::DisplayTo, &mut self.display_to);
        self.message_id = None;
        self.references = Vec::new();
        self.seq = self.uid;
        self
    }
}

/// The SORT keys of `entries` (sequence number and entry), from their stored meta;
/// `uid` numbers them by UID, else by sequence number.
pub(crate) async fn items_of(
    store: &storage::Store,
    entries: &[(u32, storage::MessageEntry)],
    uid: bool,
) -> Result<Vec<Item>, CommandError> {
    let ids: Vec<storage::MessageId> = entries.iter().map(|(_, e)| e.message).collect();
    let metas = store.message_meta(&ids).await?;
    let empty = storage::mime::analyse(b"").meta;
    Ok(entries
        .iter()
        .map(|(seq, entry)| {
            let found = Found {
                seq: *seq,
                uid: entry.uid,
                modseq: entry.modseq,
            };
            let meta = metas
                .get(&entry.message)
                .map(AsRef::as_ref)
                .unwrap_or(&empty);
            let number = if uid { entry.uid.0 } else { *seq };
            Item::new(&found, number, entry.internal_date, entry.size, meta)
        })
        .collect())
}

#[cfg(test)]
impl Item {
    /// An item with only a UID and a size, for the tests of SORT contexts.
    pub(crate) fn test_sized(uid: u32, size: u32) -> Item {
        Item {
            number: uid,
            seq: uid,
            uid,
            size,
            ..Item::default()
        }
    }
}

pub(crate) fn compare(criteria: &[SortCriterion], a: &Item, b: &Item) -> Ordering {
    for criterion in criteria {
        let order = match criterion.key {
            SortKey::Arrival => a.internal_date.cmp(&b.internal_date),
            SortKey::Cc => a.cc.cmp(&b.cc),
            SortKey::Date => a.sent_date.cmp(&b.sent_date),
            SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
            SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
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
        key: &SearchKey,
    ) -> Result<Vec<Item>, CommandError> {
        known_charset(charset)?;
        let store = self.server.store.clone();
        let State::Selected { view, .. } = &self.state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let found = find(view, &store, key, now).await?;
        let entries: Vec<(u32, storage::MessageEntry)> = found
            .iter()
            .filter_map(|f| Some((f.seq, view.entries.get(view.index_of(f.uid)?)?.clone())))
            .collect();
        items_of(&store, &entries, uid).await
    }

    /// RFC 5256 §4: `sort-data = "SORT" *(SP nz-number)`; with `RETURN (...)` an ESEARCH
    /// response instead (RFC 5267 §3.1).
    pub(crate) async fn sort(&mut self, command: SortCommand) -> CommandResult {
        let with_modseq = uses_modseq(&command.key);
        // RFC 7162 §3.1: SORT with MODSEQ is CONDSTORE enabling, as SEARCH is.
        if with_modseq {
            self.enable_condstore();
        }
        let updating = command
            .returns
            .as_ref()
            .is_some_and(|r| r.contains(&SearchReturn::Update));
        if updating && let State::Selected { view, .. } = &self.state {
            view.contexts.check_tag(&self.tag)?;
        }
        let mut items = self
            .sort_items(command.uid, &command.charset, &command.key)
            .await?;
        // Sorting is CPU work proportional to the mailbox: on the blocking pool, like
        // THREAD and the search before it.
        let criteria = command.criteria.clone();
        let items = tokio::task::spawn_blocking(move || {
            items.sort_by(|a, b| compare(&criteria, a, b));
            items
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "sorting failed");
            CommandError::no(Some(Code::ServerBug), "Sorting failed")
        })?;
        let done = if command.uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        };
        let Some(returns) = command.returns else {
            let mut line = String::from("SORT");
            for item in &items {
                line.push_str(&format!(" {}", item.number));
            }
            // RFC 7162 §3.1.5: "sort-data = "SORT" *(SP nz-number) [SP
            // search-sort-mod-seq]", the highest mod-sequence of the messages found.
            if with_modseq && let Some(highest) = items.iter().map(|i| i.modseq).max() {
                line.push_str(&format!(" (MODSEQ {highest})"));
            }
            response::untagged(&mut self.conn.out, &line);
            return Ok(Completion::ok(done));
        };
        // RFC 5267 §3.1: MIN and MAX are the first and last message in sort order, and
        // ALL lists them in that order; PARTIAL counts in that order (§4.4). MODSEQ as
        // for SEARCH (RFC 7162 §3.1.5, which RFC 5267 §3 extends to SORT).
        let hits: Vec<Hit> = items
            .iter()
            .map(|i| Hit {
                seq: i.seq,
                uid: Uid(i.uid),
                modseq: i.modseq,
            })
            .collect();
        let State::Selected { view, .. } = &mut self.state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        let context = updating
            .then(|| UpdateKey::compile(&command.key, view))
            .filter(|key| view.contexts.admit(&self.tag, key, &mut self.conn.out));
        Esearch {
            tag: &self.tag,
            uid: command.uid,
            returns: &returns,
            order: Order::Given,
            with_modseq,
        }
        .write(&hits, &mut view.saved, &mut self.conn.out);
        if let Some(key) = context {
            let items = items
                .into_iter()
                .map(|item| item.for_context(&command.criteria))
                .collect();
            view.contexts
                .add_sort(&self.tag, command.uid, key, command.criteria, items);
        }
        Ok(Completion::ok(done))
    }

    /// RFC 5256 §4: `thread-data = "THREAD" [SP 1*thread-list]`.
    pub(crate) async fn thread(&mut self, command: ThreadCommand) -> CommandResult {
        let items = self
            .sort_items(command.uid, &command.charset, &command.key)
            .await?;
        // Threading is CPU work proportional to the mailbox: on the blocking pool, so
        // that the async workers keep serving other clients meanwhile.
        let algorithm = command.algorithm;
        let forest = tokio::task::spawn_blocking(move || match algorithm {
            ThreadAlgorithm::OrderedSubject => ordered_subject(items),
            ThreadAlgorithm::References => references(items),
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "threading failed");
            CommandError::no(Some(Code::ServerBug), "Threading failed")
        })?;
        let mut line = String::from("THREAD");
        if !forest.roots.is_empty() {
            line.push(' ');
        }
        forest.write(&mut line);
        response::untagged(&mut self.conn.out, &line);
        Ok(Completion::ok(if command.uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        }))
    }
}

/// The threads THREAD answers with, as an arena: nodes refer to their children by
/// index, so building, pruning, sorting, writing and dropping never recurse, however
/// deep a thread is (house rule 12: a chain of replies can be as long as the mailbox).
#[derive(Debug, Default)]
struct Forest {
    nodes: Vec<ThreadNode>,
    roots: Vec<usize>,
}

/// A message, or a dummy (no message) holding its children together.
#[derive(Debug, Default)]
struct ThreadNode {
    item: Option<Item>,
    children: Vec<usize>,
}

impl Forest {
    fn add(&mut self, item: Option<Item>, children: Vec<usize>) -> usize {
        self.nodes.push(ThreadNode { item, children });
        self.nodes.len() - 1
    }

    fn item(&self, node: usize) -> Option<&Item> {
        self.nodes.get(node).and_then(|n| n.item.as_ref())
    }

    fn children(&self, node: usize) -> &[usize] {
        self.nodes.get(node).map_or(&[], |n| n.children.as_slice())
    }

    /// Every node below `roots` (and the roots), children before their parent.
    fn post_order(&self, roots: &[usize]) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(usize, bool)> = roots.iter().map(|&r| (r, false)).collect();
        while let Some((node, children_done)) = stack.pop() {
            if children_done {
                order.push(node);
            } else {
                stack.push((node, true));
                stack.extend(self.children(node).iter().map(|&c| (c, false)));
            }
        }
        order
    }

    /// The message a node stands for when subjects are compared: its own, or for a dummy
    /// its first child's (RFC 5256 §3 REFERENCES step 5B).
    fn subject_item(&self, mut node: usize) -> Option<&Item> {
        // Bounded by the arena: each step goes one level down a tree.
        for _ in 0..=self.nodes.len() {
            if let Some(item) = self.item(node) {
                return Some(item);
            }
            node = *self.children(node).first()?;
        }
        None
    }

    /// RFC 5256 §3 REFERENCES step 4 (and ORDEREDSUBJECT's ordering): every set of
    /// siblings, and the roots, in sent-date order; a dummy sorts by its first child
    /// (after its children are sorted).
    fn sort_by_sent_date(&mut self) {
        let mut key = vec![(i64::MAX, u32::MAX); self.nodes.len()];
        let roots = std::mem::take(&mut self.roots);
        for node in self.post_order(&roots) {
            let mut children = std::mem::take(&mut self.nodes[node].children);
            children.sort_by_key(|&c| key[c]);
            key[node] = match &self.nodes[node].item {
                Some(item) => (item.sent_date, item.seq),
                None => children.first().map_or((i64::MAX, u32::MAX), |&c| key[c]),
            };
            self.nodes[node].children = children;
        }
        let mut roots = roots;
        roots.sort_by_key(|&r| key[r]);
        self.roots = roots;
    }

    /// RFC 5256 §3 REFERENCES step 4: a dummy without children goes; a dummy's children
    /// take its place, except for a root dummy with several children, which stays.
    fn prune(&mut self) {
        #[derive(Clone, Copy)]
        enum Fate {
            Keep,
            Drop,
            /// Replaced by its (already pruned) children.
            Promote,
        }
        let roots = std::mem::take(&mut self.roots);
        let mut fate = vec![Fate::Keep; self.nodes.len()];
        let replace = |nodes: &[ThreadNode], fate: &[Fate], list: &[usize]| {
            let mut out = Vec::with_capacity(list.len());
            for &child in list {
                match fate[child] {
                    Fate::Keep => out.push(child),
                    Fate::Drop => {}
                    Fate::Promote => out.extend_from_slice(&nodes[child].children),
                }
            }
            out
        };
        for node in self.post_order(&roots) {
            let children = replace(&self.nodes, &fate, &self.nodes[node].children);
            fate[node] = if self.nodes[node].item.is_some() {
                Fate::Keep
            } else if children.is_empty() {
                Fate::Drop
            } else {
                Fate::Promote
            };
            self.nodes[node].children = children;
        }
        // At the root a dummy with several children stays (step 4B).
        for &root in &roots {
            if matches!(fate[root], Fate::Promote) && self.nodes[root].children.len() > 1 {
                fate[root] = Fate::Keep;
            }
        }
        self.roots = replace(&self.nodes, &fate, &roots);
    }

    /// `thread-data = "THREAD" [SP 1*thread-list]` (RFC 5256 §4), the roots only.
    fn write(&self, out: &mut String) {
        for &root in &self.roots {
            out.push('(');
            self.write_members(root, out);
            out.push(')');
        }
    }

    /// `thread-members = nz-number *(SP nz-number) [SP thread-nested]`;
    /// `thread-nested = 2*thread-list`: a chain of single children is written flat, two or
    /// more children each in parentheses. Written with a stack of what is left to write.
    fn write_members(&self, node: usize, out: &mut String) {
        enum Next {
            Members { node: usize, first: bool },
            Text(char),
        }
        let mut stack = vec![Next::Members { node, first: true }];
        while let Some(next) = stack.pop() {
            let (node, first) = match next {
                Next::Text(c) => {
                    out.push(c);
                    continue;
                }
                Next::Members { node, first } => (node, first),
            };
            let mut wrote = false;
            if let Some(item) = self.item(node) {
                if !first {
                    out.push(' ');
                }
                out.push_str(&item.number.to_string());
                wrote = true;
            }
            match self.children(node) {
                [] => {}
                [only] => stack.push(Next::Members {
                    node: *only,
                    first: first && !wrote,
                }),
                children => {
                    if wrote || !first {
                        out.push(' ');
                    }
                    for &child in children.iter().rev() {
                        stack.push(Next::Text(')'));
                        stack.push(Next::Members {
                            node: child,
                            first: true,
                        });
                        stack.push(Next::Text('('));
                    }
                }
            }
        }
    }
}

/// RFC 5256 §3 ORDEREDSUBJECT: messages grouped by base subject; in each group the
/// earliest is the parent and the others its children by sent date; the threads ordered
/// by the sent date of their first message.
fn ordered_subject(mut items: Vec<Item>) -> Forest {
    items.sort_by(|a, b| {
        a.base_subject
            .cmp(&b.base_subject)
            .then(a.sent_date.cmp(&b.sent_date))
            .then(a.seq.cmp(&b.seq))
    });
    let mut forest = Forest::default();
    let mut current: Option<(String, usize)> = None;
    for item in items {
        if let Some((subject, root)) = &current
            && *subject == item.base_subject
        {
            let root = *root;
            let child = forest.add(Some(item), Vec::new());
            forest.nodes[root].children.push(child);
            continue;
        }
        let subject = item.base_subject.clone();
        let root = forest.add(Some(item), Vec::new());
        forest.roots.push(root);
        current = Some((subject, root));
    }
    forest.sort_by_sent_date();
    forest
}

/// References of one message that THREAD follows: the last ones, nearest the message.
/// RFC 5322 §3.6.4 lets a writer trim References to its last ids; a mailbox's threads
/// come out the same, and a hostile message with thousands of ids costs no more than a
/// normal one.
const MAX_THREAD_REFERENCES: usize = 100;

/// RFC 5256 §3 REFERENCES (after Jamie Zawinski's algorithm): messages linked into
/// trees by Message-ID and References/In-Reply-To, dummies pruned, roots with the same
/// base subject gathered, siblings sorted by sent date.
fn references(items: Vec<Item>) -> Forest {
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
        // A container without children is nobody's ancestor: the usual case (a message
        // seen for the first time) costs no walk up the tree.
        if parent == child
            || (!containers[child].children.is_empty() && is_ancestor(containers, child, parent))
        {
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
        let followed = item.references.len().saturating_sub(MAX_THREAD_REFERENCES);
        let chain: Vec<usize> = item.references[followed..]
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
    // Steps 2-3: the roots; the containers become the forest's nodes, index for index.
    let roots: Vec<usize> = (0..containers.len())
        .filter(|&i| containers[i].parent.is_none())
        .collect();
    let mut forest = Forest {
        nodes: containers
            .into_iter()
            .map(|c| ThreadNode {
                item: c.item,
                children: c.children,
            })
            .collect(),
        roots,
    };
    // Step 4: prune dummies; sort.
    forest.prune();
    forest.sort_by_sent_date();
    // Step 5: gather roots with the same base subject.
    let roots = std::mem::take(&mut forest.roots);
    let subject_of = |forest: &Forest, node: usize| {
        forest
            .subject_item(node)
            .map(|i| i.base_subject.clone())
            .filter(|s| !s.is_empty())
    };
    let is_reply = |forest: &Forest, node: usize| forest.item(node).is_some_and(|i| i.is_reply);
    let is_dummy = |forest: &Forest, node: usize| forest.item(node).is_none();
    let mut table: HashMap<String, usize> = HashMap::new();
    for (index, &root) in roots.iter().enumerate() {
        let Some(subject) = subject_of(&forest, root) else {
            continue;
        };
        match table.get(&subject) {
            None => {
                table.insert(subject, index);
            }
            Some(&other) => {
                let other_root = roots[other];
                let replace = (is_dummy(&forest, root) && !is_dummy(&forest, other_root))
                    || (is_reply(&forest, other_root)
                        && !is_dummy(&forest, root)
                        && !is_reply(&forest, root));
                if replace {
                    table.insert(subject, index);
                }
            }
        }
    }
    let mut merged: Vec<Option<usize>> = roots.into_iter().map(Some).collect();
    for index in 0..merged.len() {
        let Some(this) = merged[index] else {
            continue;
        };
        let Some(subject) = subject_of(&forest, this) else {
            continue;
        };
        let Some(&target) = table.get(&subject) else {
            continue;
        };
        if target == index {
            continue;
        }
        let Some(kept) = merged[target] else {
            continue;
        };
        merged[index] = None;
        let kept = match (is_dummy(&forest, kept), is_dummy(&forest, this)) {
            // Both dummies: one dummy holds all the children.
            (true, true) => {
                let children = std::mem::take(&mut forest.nodes[this].children);
                forest.nodes[kept].children.extend(children);
                kept
            }
            // A dummy in the table: this thread becomes one of its children.
            (true, false) => {
                forest.nodes[kept].children.push(this);
                kept
            }
            (false, this_dummy) => {
                if !this_dummy && is_reply(&forest, this) && !is_reply(&forest, kept) {
                    // A reply to the thread in the table goes under it.
                    forest.nodes[kept].children.push(this);
                    kept
                } else {
                    // Otherwise both go under a new dummy.
                    forest.add(None, vec![kept, this])
                }
            }
        };
        merged[target] = Some(kept);
    }
    forest.roots = merged.into_iter().flatten().collect();
    // Step 6: every level in sent-date order.
    forest.sort_by_sent_date();
    forest
}

/// THREAD over messages described by the fuzzer: each line of `input` is
/// `message-id SP subject SP sent-date *(SP reference)`. Returns the THREAD response's
/// data for both algorithms.
pub(crate) fn thread_lines(input: &str) -> (String, String) {
    let items: Vec<Item> = input
        .lines()
        .enumerate()
        .map(|(n, line)| {
            let mut fields = line.split(' ');
            let number = u32::try_from(n + 1).unwrap_or(u32::MAX);
            let message_id = fields.next().filter(|id| !id.is_empty()).map(str::to_owned);
            let subject = fields.next().unwrap_or("");
            let base = storage::mime::base_subject(subject);
            Item {
                number,
                seq: number,
                sent_date: fields.next().and_then(|d| d.parse().ok()).unwrap_or(0),
                is_reply: base != subject.to_lowercase(),
                base_subject: base.to_ascii_uppercase(),
                message_id,
                references: fields.map(str::to_owned).collect(),
                ..Item::default()
            }
        })
        .collect();
    let mut by_references = String::new();
    references(items.clone()).write(&mut by_references);
    let mut by_subject = String::new();
    ordered_subject(items).write(&mut by_subject);
    (by_references, by_subject)
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

    #[test]
    fn display_keys_fall_back_to_the_address_and_fold_case() {
        // The ENVELOPE addresses of a header field, as delivery parses them.
        let key = |field: &str| display_key(None, &storage::rfc5322::address_list(field));
        // RFC 5957 §2: the display name when there is one, else the addr-spec.
        assert_eq!(
            key("=?utf-8?q?Zo=C3=AB?= Example <z@x.org>"),
            "ZOE\u{308} EXAMPLE"
        );
        assert_eq!(key("bob@Example.NET"), "BOB@EXAMPLE.NET");
        assert_eq!(key("\"\" <carol@example.org>"), "CAROL@EXAMPLE.ORG");
        // A group's start marker: its name, as Dovecot sorts it.
        assert_eq!(key("Team: a@x.org;"), "TEAM");
        assert_eq!(key(""), "");
        // Only the first address counts; what delivery stored wins.
        assert_eq!(key("b <x@y>, a <x@y>"), "B");
        assert_eq!(
            display_key(Some("Stored"), &storage::rfc5322::address_list("b <x@y>")),
            "STORED"
        );
    }

    #[test]
    fn displayfrom_sorts_by_display_name_then_mailbox_order() {
        let with = |number: u32, from: &str| Item {
            number,
            seq: number,
            display_from: casemap(from),
            ..Item::default()
        };
        // Émile decomposes to E + U+0301 and sorts with the Es, before "zed".
        let mut items = [
            with(1, "zed"),
            with(2, "Émile"),
            with(3, "alice@example.org"),
            with(4, "Zed"),
        ];
        let by = |reverse| SortCriterion {
            key: SortKey::DisplayFrom,
            reverse,
        };
        items.sort_by(|x, y| compare(&[by(false)], x, y));
        assert_eq!(
            items.iter().map(|i| i.number).collect::<Vec<_>>(),
            [3, 2, 1, 4]
        );
        // REVERSE reverses the key, not the mailbox-order tie-break (RFC 5256 §3).
        items.sort_by(|x, y| compare(&[by(true)], x, y));
        assert_eq!(
            items.iter().map(|i| i.number).collect::<Vec<_>>(),
            [1, 4, 2, 3]
        );
    }

    fn render(forest: &Forest) -> String {
        let mut line = String::new();
        forest.write(&mut line);
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

    #[test]
    fn a_chain_of_thousands_of_replies_threads_without_recursion() {
        // Each message answers the one before: one thread 20,000 levels deep, more than
        // a recursive walk survives on a worker thread's stack.
        let count = 20_000u32;
        let items: Vec<Item> = (1..=count)
            .map(|n| {
                let parent = format!("m{}@x", n - 1);
                let refs: Vec<&str> = if n > 1 { vec![parent.as_str()] } else { vec![] };
                item(n, i64::from(n), "chain", &format!("m{n}@x"), &refs)
            })
            .collect();
        let rendered = render(&references(items));
        let expected: Vec<String> = (1..=count).map(|n| n.to_string()).collect();
        assert_eq!(rendered, format!("({})", expected.join(" ")));
    }

    #[test]
    fn references_follows_only_the_last_ids_of_a_huge_references_field() {
        let ids: Vec<String> = (0..5000).map(|n| format!("r{n}@x")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let items = vec![
            item(1, 10, "first", "r4999@x", &[]),
            item(2, 20, "Re: first", "b@x", &refs),
        ];
        assert_eq!(render(&references(items)), "(1 2)");
    }
}
