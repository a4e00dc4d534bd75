//! THREAD (RFC 5256 §2.1 ORDEREDSUBJECT, §2.2 REFERENCES): building the threads of the
//! messages SEARCH found, as an arena that never recurses. The command is in `sort.rs`.

use crate::sort_keys::Item;
use std::collections::{HashMap, HashSet};

/// The threads THREAD answers with, as an arena: nodes refer to their children by
/// index, so building, pruning, sorting, writing and dropping never recurse, however
/// deep a thread is (house rule 12: a chain of replies can be as long as the mailbox).
#[derive(Debug, Default)]
pub(super) struct Forest {
    nodes: Vec<ThreadNode>,
    pub(super) roots: Vec<usize>,
}

/// A message, or a dummy (no message) holding its children together.
#[derive(Debug, Default)]
pub(super) struct ThreadNode {
    item: Option<Item>,
    children: Vec<usize>,
}

impl Forest {
    pub(super) fn add(&mut self, item: Option<Item>, children: Vec<usize>) -> usize {
        self.nodes.push(ThreadNode { item, children });
        self.nodes.len() - 1
    }

    pub(super) fn item(&self, node: usize) -> Option<&Item> {
        self.nodes.get(node).and_then(|n| n.item.as_ref())
    }

    pub(super) fn children(&self, node: usize) -> &[usize] {
        self.nodes.get(node).map_or(&[], |n| n.children.as_slice())
    }

    /// Every node below `roots` (and the roots), children before their parent.
    pub(super) fn post_order(&self, roots: &[usize]) -> Vec<usize> {
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
    pub(super) fn subject_item(&self, mut node: usize) -> Option<&Item> {
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
    pub(super) fn sort_by_sent_date(&mut self) {
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
    pub(super) fn prune(&mut self) {
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
    pub(super) fn write(&self, out: &mut String) {
        for &root in &self.roots {
            out.push('(');
            self.write_members(root, out);
            out.push(')');
        }
    }

    /// `thread-members = nz-number *(SP nz-number) [SP thread-nested]`;
    /// `thread-nested = 2*thread-list`: a chain of single children is written flat, two or
    /// more children each in parentheses. Written with a stack of what is left to write.
    pub(super) fn write_members(&self, node: usize, out: &mut String) {
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
pub(super) fn ordered_subject(mut items: Vec<Item>) -> Forest {
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
pub(super) fn references(items: Vec<Item>) -> Forest {
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
