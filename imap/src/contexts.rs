//! The state of updating searches: CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4.3),
//! `RETURN (UPDATE)` on SEARCH and SORT, and their `ADDTO` and `REMOVEFROM`
//! notifications. It lives in the view (`view.rs`); CANCELUPDATE is in
//! `command/context.rs`.
//!
//! Invariants:
//! - A context lives in the view of the selected mailbox and ends with it (§4.3:
//!   "Updates will cease when the mailbox is no longer selected") or at CANCELUPDATE.
//! - Its result is what the client was last told: the search's answer, then every
//!   ADDTO and REMOVEFROM written since, in UIDs (sequence numbers are worked out when a
//!   notification is written, as the view numbers the messages then).
//! - Notifications go out with the view's other untagged data: REMOVEFROM for expunged
//!   messages just before their EXPUNGE (§4.3.4: "MUST be sent prior to the expunge
//!   notification itself"), the others after EXISTS (§4.3.3: "MUST be sent after the
//!   EXISTS notification itself").
//! - The work a change costs is one evaluation of each context's key on each message
//!   that arrived or changed (what the keys need of it loaded once, in bounded
//!   batches), and for a SORT context a binary search and an insertion; never a new
//!   search of the mailbox. At most [`MAX_UPDATE_CONTEXTS`] contexts a session.

use crate::error::CommandError;
use crate::proto::command::{MAX_UPDATE_CONTEXTS, SortCriterion};
use crate::proto::response::{self, Code, Status};
use crate::proto::sequence::{SequenceSet, compress};
use crate::search_eval::{UpdateKey, match_updates};
use crate::sort_keys::{Item, compare, items_of};
use std::collections::BTreeSet;
use storage::{MessageEntry, Store, Uid};

/// The updating searches of one selected mailbox.
#[derive(Default)]
pub(crate) struct Contexts {
    list: Vec<Context>,
    /// Messages this session changed itself (its STOREs), to be looked at again.
    pending: BTreeSet<Uid>,
}

struct Context {
    tag: String,
    /// UID SEARCH / UID SORT: the notifications carry UIDs (§4.3.2).
    uid: bool,
    key: UpdateKey,
    result: Answer,
}

enum Answer {
    /// SEARCH: the UIDs found, in mailbox order; positions are always 0 (§4.3.3).
    Search(BTreeSet<u32>),
    /// SORT: the messages found in sort order, with their sort keys.
    Sort {
        criteria: Vec<SortCriterion>,
        items: Vec<Item>,
    },
}

impl Contexts {
    /// RFC 5267 §4.3: "An attempt to use UPDATE where a tag is already in use with a
    /// previous searching command that itself used UPDATE SHALL result in the server
    /// rejecting the searching command with a BAD response."
    pub(crate) fn check_tag(&self, tag: &str) -> Result<(), CommandError> {
        if self.list.iter().any(|c| c.tag == tag) {
            return Err(CommandError::bad("Tag reuse"));
        }
        Ok(())
    }

    /// RFC 5267 §4.3.1: past the limit, or for a key whose answer changes with time
    /// alone, "an untagged NO is generated during processing of the command with a
    /// response-code of NOUPDATE" (before the answer, as Dovecot sends it); "Other
    /// return options specified SHALL still be honoured". True when the context may be
    /// added.
    pub(crate) fn admit(&self, tag: &str, key: &UpdateKey, out: &mut Vec<u8>) -> bool {
        let refusal = if self.list.len() >= MAX_UPDATE_CONTEXTS {
            "Too many updating searches"
        } else if key.time_relative {
            "OLDER and YOUNGER searches are not updated"
        } else {
            return true;
        };
        let code = Code::NoUpdate(tag.to_owned());
        response::untagged_status(out, Status::No, Some(&code), refusal);
        false
    }

    /// A SEARCH context, once [`Contexts::admit`] let it in.
    pub(crate) fn add_search(
        &mut self,
        tag: &str,
        uid: bool,
        key: UpdateKey,
        result: BTreeSet<u32>,
    ) {
        self.list.push(Context {
            tag: tag.to_owned(),
            uid,
            key,
            result: Answer::Search(result),
        });
    }

    /// A SORT context, once [`Contexts::admit`] let it in: `items` in sort order, as
    /// [`Item::for_context`] keeps them.
    pub(crate) fn add_sort(
        &mut self,
        tag: &str,
        uid: bool,
        key: UpdateKey,
        criteria: Vec<SortCriterion>,
        items: Vec<Item>,
    ) {
        self.list.push(Context {
            tag: tag.to_owned(),
            uid,
            key,
            result: Answer::Sort { criteria, items },
        });
    }

    /// Ends the contexts of `tags`; false (and nothing ended) when one is not a context.
    pub(crate) fn cancel(&mut self, tags: &[String]) -> bool {
        if !tags
            .iter()
            .all(|tag| self.list.iter().any(|c| &c.tag == tag))
        {
            return false;
        }
        self.list.retain(|c| !tags.contains(&c.tag));
        true
    }

    /// This session changed the flags of `uid`: look at it again at the next sync.
    pub(crate) fn touch(&mut self, uid: Uid) {
        if !self.list.is_empty() {
            self.pending.insert(uid);
        }
    }

    /// Messages this session changed itself since the last sync.
    pub(crate) fn take_pending(&mut self) -> BTreeSet<Uid> {
        std::mem::take(&mut self.pending)
    }

    /// RFC 5267 §4.3.4: `gone` (ascending UIDs) are about to be reported expunged; `uids`
    /// are the view's UIDs before that, which number the messages until then.
    pub(crate) fn expunged(&mut self, gone: &[u32], uids: &[u32], out: &mut Vec<u8>) {
        for context in &mut self.list {
            let number = |uid: u32| number_of(context.uid, uid, uids);
            let removed = match &mut context.result {
                Answer::Search(result) => {
                    let removed: Vec<u32> =
                        gone.iter().filter(|u| result.remove(u)).copied().collect();
                    search_pairs(&removed, number)
                }
                Answer::Sort { items, .. } => {
                    let gone = |item: &Item| gone.binary_search(&item.uid).is_ok();
                    remove_sorted(items, gone, number)
                }
            };
            if !removed.is_empty() {
                write_update(out, &context.tag, context.uid, &removed, &[]);
            }
        }
    }

    /// RFC 5267 §4.3.3 and §4.3.4: `candidates` (sequence number and entry, as the view
    /// holds them after EXISTS) arrived or changed; the ones that now match a context and
    /// were not in its result are added to it, the ones in it that no longer match
    /// removed, and the client is told. `uids` are the view's UIDs. When reading what the
    /// keys need fails, the candidates stay pending for the next sync.
    pub(crate) async fn changed(
        &mut self,
        store: &Store,
        candidates: Vec<(u32, MessageEntry)>,
        uids: &[u32],
        out: &mut Vec<u8>,
    ) -> Result<(), CommandError> {
        if self.list.is_empty() || candidates.is_empty() {
            return Ok(());
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let keys: Vec<&UpdateKey> = self.list.iter().map(|c| &c.key).collect();
        let matched = match match_updates(store, &keys, &candidates, now).await {
            Ok(matched) => matched,
            Err(error) => {
                self.pending.extend(candidates.iter().map(|(_, e)| e.uid));
                return Err(error);
            }
        };
        for (context, matched) in self.list.iter_mut().zip(matched) {
            let matched: BTreeSet<u32> = matched.iter().map(|u| u.0).collect();
            let number = |uid: u32| number_of(context.uid, uid, uids);
            let (removed, added) = match &mut context.result {
                Answer::Search(result) => {
                    let mut removed = Vec::new();
                    let mut added = Vec::new();
                    for (_, entry) in &candidates {
                        let uid = entry.uid.0;
                        match (matched.contains(&uid), result.contains(&uid)) {
                            (true, false) => added.push(uid),
                            (false, true) => removed.push(uid),
                            _ => {}
                        }
                    }
                    removed.sort_unstable();
                    added.sort_unstable();
                    removed.iter().for_each(|u| {
                        result.remove(u);
                    });
                    result.extend(added.iter().copied());
                    (search_pairs(&removed, number), search_pairs(&added, number))
                }
                Answer::Sort { criteria, items } => {
                    let in_result: BTreeSet<u32> = items.iter().map(|i| i.uid).collect();
                    let leaving = |item: &Item| {
                        candidates.iter().any(|(_, e)| e.uid.0 == item.uid)
                            && !matched.contains(&item.uid)
                    };
                    let removed = remove_sorted(items, leaving, number);
                    let arriving: Vec<(u32, MessageEntry)> = candidates
                        .iter()
                        .filter(|(_, e)| {
                            matched.contains(&e.uid.0) && !in_result.contains(&e.uid.0)
                        })
                        .cloned()
                        .collect();
                    let new_items = match items_of(store, &arriving, true).await {
                        Ok(new_items) => new_items,
                        Err(error) => {
                            // What was removed is written; the rest is looked at again.
                            if !removed.is_empty() {
                                write_update(out, &context.tag, context.uid, &removed, &[]);
                            }
                            self.pending.extend(arriving.iter().map(|(_, e)| e.uid));
                            return Err(error);
                        }
                    };
                    let new_items: Vec<Item> = new_items
                        .into_iter()
                        .map(|i| i.for_context(criteria))
                        .collect();
                    (removed, insert_sorted(items, criteria, new_items, number))
                }
            };
            if !removed.is_empty() || !added.is_empty() {
                write_update(out, &context.tag, context.uid, &removed, &added);
            }
        }
        Ok(())
    }
}

/// RFC 5267 §4.3.2: "If the UPDATE was present in a SEARCH or SORT command, the results
/// will be message numbers; in a UID SEARCH or UID SORT command, they will be UIDs."
fn number_of(uid_context: bool, uid: u32, uids: &[u32]) -> u32 {
    if uid_context {
        return uid;
    }
    uids.binary_search(&uid)
        .ok()
        .and_then(|i| u32::try_from(i + 1).ok())
        .unwrap_or(0)
}

/// A context position and the result updates at it.
type Pair = (usize, SequenceSet);

/// For SEARCH: one pair at position 0, the numbers in mailbox order (§4.3.3: "servers
/// are RECOMMENDED to order the result update into mailbox order").
fn search_pairs(uids: &[u32], number: impl Fn(u32) -> u32) -> Vec<Pair> {
    let numbers: Vec<u32> = uids.iter().map(|&u| number(u)).collect();
    SequenceSet::from_numbers(&numbers)
        .map(|set| vec![(0, set)])
        .unwrap_or_default()
}

/// Pairs for runs of `numbers` in sort order: ascending runs merged (RFC 5267 §3.2).
fn run_pair(position: usize, numbers: &[u32]) -> Option<Pair> {
    compress(numbers).map(|set| (position, set))
}

/// Removes the items `gone` names from a sorted result; one pair per run of adjacent
/// removed items, at the position its first item holds when the pairs before it have
/// been applied (§4.3.4: "the first result in the set will occupy the given context
/// position before removal").
fn remove_sorted(
    items: &mut Vec<Item>,
    gone: impl Fn(&Item) -> bool,
    number: impl Fn(u32) -> u32,
) -> Vec<Pair> {
    let mut pairs = Vec::new();
    let mut kept = Vec::with_capacity(items.len());
    let mut run: Vec<u32> = Vec::new();
    for item in items.drain(..) {
        if gone(&item) {
            run.push(number(item.uid));
            continue;
        }
        pairs.extend(run_pair(kept.len() + 1, &run));
        run.clear();
        kept.push(item);
    }
    pairs.extend(run_pair(kept.len() + 1, &run));
    *items = kept;
    pairs
}

/// Inserts `new` into a sorted result; one pair per run of adjacent new items, at the
/// position its first item holds in the final result: applied in order, each run goes
/// where the ones before it have already been inserted (§4.3.3: "the first result in
/// the set will occupy the new context position after insertion").
fn insert_sorted(
    items: &mut Vec<Item>,
    criteria: &[SortCriterion],
    new: Vec<Item>,
    number: impl Fn(u32) -> u32,
) -> Vec<Pair> {
    let mut inserted = BTreeSet::new();
    for item in new {
        let at = items.partition_point(|i| compare(criteria, i, &item).is_lt());
        inserted.insert(item.uid);
        items.insert(at, item);
    }
    let mut pairs = Vec::new();
    let mut run: Vec<u32> = Vec::new();
    let mut start = 0;
    for (index, item) in items.iter().enumerate() {
        if inserted.contains(&item.uid) {
            if run.is_empty() {
                start = index + 1;
            }
            run.push(number(item.uid));
        } else {
            pairs.extend(run_pair(start, &run));
            run.clear();
        }
    }
    pairs.extend(run_pair(start, &run));
    pairs
}

/// RFC 5267 §5: `ret-data-addto = "ADDTO" SP "(" context-position SP sequence-set
/// *(SP context-position SP sequence-set) ")"`, `ret-data-removefrom` alike, after the
/// search correlator; REMOVEFROM first, as Dovecot sends them (§4.3.2: the client
/// processes them "in the order they appear").
fn write_update(out: &mut Vec<u8>, tag: &str, uid: bool, removed: &[Pair], added: &[Pair]) {
    let mut line = format!("ESEARCH (TAG {})", response::string_text(tag, false));
    if uid {
        line.push_str(" UID");
    }
    for (name, pairs) in [("REMOVEFROM", removed), ("ADDTO", added)] {
        if pairs.is_empty() {
            continue;
        }
        let pairs: Vec<String> = pairs.iter().map(|(p, set)| format!("{p} {set}")).collect();
        line.push_str(&format!(" {name} ({})", pairs.join(" ")));
    }
    response::untagged(out, &line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::SortKey;

    fn item(uid: u32, size: u32) -> Item {
        Item::test_sized(uid, size)
    }

    fn render(pairs: &[Pair]) -> String {
        let pairs: Vec<String> = pairs.iter().map(|(p, s)| format!("{p} {s}")).collect();
        pairs.join(" ")
    }

    #[test]
    fn sorted_results_get_positions_valid_in_order() {
        let criteria = [SortCriterion {
            key: SortKey::Size,
            reverse: false,
        }];
        // Sizes 10, 20, 30, 40 for UIDs 4, 1, 3, 2.
        let mut items = vec![item(4, 10), item(1, 20), item(3, 30), item(2, 40)];
        let removed = remove_sorted(&mut items, |i| i.uid == 1 || i.uid == 3, |u| u);
        // Adjacent: one run at position 2.
        assert_eq!(render(&removed), "2 1,3");
        let added = insert_sorted(
            &mut items,
            &criteria,
            vec![item(7, 5), item(5, 25), item(6, 26), item(8, 50)],
            |u| u,
        );
        // Final order 7, 4, 5, 6, 2, 8: runs at 1, 3 and 6.
        assert_eq!(render(&added), "1 7 3 5:6 6 8");
        let order: Vec<u32> = items.iter().map(|i| i.uid).collect();
        assert_eq!(order, vec![7, 4, 5, 6, 2, 8]);
        // RFC 5267 §4.3.3's example: (1 2733) then (1 2731:2732) gives 2731:2735.
        let mut items = vec![item(2734, 4), item(2735, 5)];
        let added = insert_sorted(
            &mut items,
            &criteria,
            vec![item(2733, 3), item(2731, 1), item(2732, 2)],
            |u| u,
        );
        assert_eq!(render(&added), "1 2731:2733");
    }

    #[test]
    fn search_updates_are_in_mailbox_order_at_position_zero() {
        let uids = [3, 5, 9, 12];
        assert_eq!(render(&search_pairs(&[5, 9, 12], |u| u)), "0 5,9,12");
        let seq = |u| number_of(false, u, &uids);
        assert_eq!(render(&search_pairs(&[5, 9, 12], seq)), "0 2:4");
        assert!(search_pairs(&[], seq).is_empty());
    }
}
