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
use storage::mime::EnvelopeAddress;
use storage::{MessageMeta, Uid};
use unicode_normalization::UnicodeNormalization;

mod thread;

pub(crate) use thread::thread_lines;
use thread::*;

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
        for (input, expected) in [
            (
                "=?utf-8?q?Zo=C3=AB?= Example <z@x.org>",
                "ZOE\u{308} EXAMPLE",
            ),
            ("bob@Example.NET", "BOB@EXAMPLE.NET"),
            ("\"\" <carol@example.org>", "CAROL@EXAMPLE.ORG"),
            // A group's start marker: its name, as Dovecot sorts it.
            ("Team: a@x.org;", "TEAM"),
            ("", ""),
            // Only the first address counts; what delivery stored wins.
            ("b <x@y>, a <x@y>", "B"),
        ] {
            assert_eq!(key(input), expected, "{input:?}");
        }
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
