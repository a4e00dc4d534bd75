//! SORT and THREAD (RFC 5256) over the messages SEARCH finds, with the keys computed at
//! delivery (base subject, sent date, ENVELOPE addresses, Message-ID, References): no
//! message is parsed here (house rule 11).

use super::search::{Esearch, Hit, Order, find, known_charset};
use crate::error::CommandError;
use crate::proto::command::{SearchKey, SearchReturn, SortCommand, ThreadAlgorithm, ThreadCommand};
use crate::proto::response::{self, Code};
use crate::search_eval::UpdateKey;
use crate::search_eval::matching::uses_modseq;
use crate::session::{CommandResult, Completion, Session, State};
use storage::Uid;

mod thread;

use crate::sort_keys::{Item, compare, items_of};
pub(crate) use thread::thread_lines;
use thread::*;

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
            .then(|| UpdateKey::compile(&command.key, view.set_bounds(), view.uids()))
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
    use crate::proto::command::{SortCriterion, SortKey};

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
