//! SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH results (RFC 4731; always for
//! IMAP4rev2 clients, RFC 9051 §7.3.4) and SEARCHRES (RFC 5182 `RETURN (SAVE)` and `$`).
//! Header keys use the decoded headers stored at delivery; BODY and TEXT the decoded
//! text stored at delivery (house rule 11).

use crate::error::CommandError;
use crate::proto::Sequence;
use crate::proto::command::{SearchCommand, SearchKey, SearchReturn};
use crate::proto::datetime::date_of;
use crate::proto::response::{self, Code};
use crate::proto::sequence::SequenceSet;
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::View;
use std::collections::HashMap;
use std::sync::Arc;
use storage::{MessageEntry, MessageId, MessageMeta, Uid};

/// Messages whose meta is loaded at once.
const SEARCH_CHUNK: usize = 512;

/// What a key needs besides the entry itself.
fn needs(key: &SearchKey, meta: &mut bool, text: &mut bool) {
    match key {
        SearchKey::And(keys) => keys.iter().for_each(|k| needs(k, meta, text)),
        SearchKey::Or(a, b) => {
            needs(a, meta, text);
            needs(b, meta, text);
        }
        SearchKey::Not(k) => needs(k, meta, text),
        SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => {
            *meta = true;
        }
        SearchKey::Body(_) => *text = true,
        SearchKey::Text(_) => {
            *meta = true;
            *text = true;
        }
        _ => {}
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    needle.is_empty() || haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn in_set(set: &SequenceSet, number: u32, largest: u32) -> bool {
    set.ranges(largest)
        .any(|(low, high)| (low..=high).contains(&number))
}

struct Candidate<'a> {
    seq: u32,
    entry: &'a MessageEntry,
    meta: Option<&'a MessageMeta>,
    text: Option<&'a str>,
}

fn matches(key: &SearchKey, c: &Candidate<'_>, view: &View) -> bool {
    let header = |name: &str, value: &str| {
        c.meta.is_some_and(|m| {
            m.headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && contains_ci(v, value))
        })
    };
    let sent = || c.meta.and_then(|m| m.sent_date).map(date_of);
    let internal = || date_of(c.entry.internal_date);
    match key {
        SearchKey::All => true,
        SearchKey::And(keys) => keys.iter().all(|k| matches(k, c, view)),
        SearchKey::Or(a, b) => matches(a, c, view) || matches(b, c, view),
        SearchKey::Not(k) => !matches(k, c, view),
        SearchKey::Flag(flag, set) => c.entry.flags.contains(flag) == *set,
        SearchKey::Keyword(keyword, set) => c.entry.flags.contains(keyword) == *set,
        // We keep no \Recent (RFC 9051 removed it): nothing is new or recent.
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::Old => true,
        SearchKey::Header(name, value) => header(name, value),
        SearchKey::Body(value) => c.text.is_some_and(|t| contains_ci(t, value)),
        SearchKey::Text(value) => {
            c.text.is_some_and(|t| contains_ci(t, value))
                || c.meta
                    .is_some_and(|m| m.headers.iter().any(|(_, v)| contains_ci(v, value)))
        }
        SearchKey::Larger(n) => u64::from(c.entry.size) > *n,
        SearchKey::Smaller(n) => u64::from(c.entry.size) < *n,
        SearchKey::Before(date) => internal() < *date,
        SearchKey::On(date) => internal() == *date,
        SearchKey::Since(date) => internal() >= *date,
        SearchKey::SentBefore(date) => sent().is_some_and(|d| d < *date),
        SearchKey::SentOn(date) => sent().is_some_and(|d| d == *date),
        SearchKey::SentSince(date) => sent().is_some_and(|d| d >= *date),
        SearchKey::Uid(Sequence::Set(set)) => {
            in_set(set, c.entry.uid.0, view.uids().last().copied().unwrap_or(0))
        }
        SearchKey::Seq(Sequence::Set(set)) => {
            in_set(set, c.seq, u32::try_from(view.exists()).unwrap_or(u32::MAX))
        }
        SearchKey::Uid(Sequence::Saved) | SearchKey::Seq(Sequence::Saved) => {
            view.saved.contains(&c.entry.uid)
        }
    }
}

impl Session {
    pub(crate) async fn search(&mut self, command: SearchCommand) -> CommandResult {
        // RFC 9051 §6.4.4: US-ASCII and UTF-8 are the charsets we must (and do) know.
        if let Some(charset) = &command.charset
            && !charset.eq_ignore_ascii_case("UTF-8")
            && !charset.eq_ignore_ascii_case("US-ASCII")
        {
            return Err(CommandError::no(
                Some(Code::BadCharset),
                "Unsupported charset",
            ));
        }
        let rev2 = self.enabled.rev2;
        let tag = self.tag.clone();
        let store = self.server.store.clone();
        let Session { state, conn, .. } = self;
        let State::Selected { view, .. } = state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        let (mut need_meta, mut need_text) = (false, false);
        needs(&command.key, &mut need_meta, &mut need_text);
        let mut found: Vec<(u32, Uid)> = Vec::new();
        let live: Vec<usize> = (0..view.exists())
            .filter(|&i| {
                view.entries
                    .get(i)
                    .is_some_and(|e| !view.is_expunged(e.uid))
            })
            .collect();
        for chunk in live.chunks(SEARCH_CHUNK) {
            let ids: Vec<MessageId> = chunk
                .iter()
                .filter_map(|&i| view.entries.get(i))
                .map(|e| e.message)
                .collect();
            let metas: HashMap<MessageId, Arc<MessageMeta>> = if need_meta {
                store.message_meta(&ids).await?
            } else {
                HashMap::new()
            };
            let texts: HashMap<MessageId, String> = if need_text {
                store.message_texts(&ids).await?
            } else {
                HashMap::new()
            };
            for &index in chunk {
                let Some(entry) = view.entries.get(index) else {
                    continue;
                };
                let text = need_text.then(|| {
                    texts
                        .get(&entry.message)
                        .map(String::as_str)
                        .unwrap_or_default()
                });
                let candidate = Candidate {
                    seq: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    entry,
                    meta: metas.get(&entry.message).map(Arc::as_ref),
                    text,
                };
                if matches(&command.key, &candidate, view) {
                    found.push((candidate.seq, entry.uid));
                }
            }
        }
        let numbers: Vec<u32> = found
            .iter()
            .map(|&(seq, uid)| if command.uid { uid.0 } else { seq })
            .collect();
        let done = if command.uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        };
        // RFC 9051 §6.4.4: an IMAP4rev2 client always gets ESEARCH; `RETURN ()` is ALL.
        let Some(mut returns) = command.returns.or(rev2.then(Vec::new)) else {
            let mut line = String::from("SEARCH");
            for n in &numbers {
                line.push(' ');
                line.push_str(&n.to_string());
            }
            response::untagged(&mut conn.out, &line);
            return Ok(Completion::ok(done));
        };
        if returns.is_empty() {
            returns.push(SearchReturn::All);
        }
        let min = found.first();
        let max = found.last();
        if returns.contains(&SearchReturn::Save) {
            // RFC 5182 §2.4: with MIN or MAX (and neither ALL nor COUNT) only those are saved.
            let only_ends = !returns.contains(&SearchReturn::All)
                && !returns.contains(&SearchReturn::Count)
                && (returns.contains(&SearchReturn::Min) || returns.contains(&SearchReturn::Max));
            view.saved = if only_ends {
                let mut ends = Vec::new();
                if returns.contains(&SearchReturn::Min) {
                    ends.extend(min.map(|&(_, uid)| uid));
                }
                if returns.contains(&SearchReturn::Max) {
                    ends.extend(max.map(|&(_, uid)| uid));
                }
                ends.dedup();
                ends
            } else {
                found.iter().map(|&(_, uid)| uid).collect()
            };
            // RFC 5182 §2.1: SAVE alone produces no ESEARCH response.
            if returns.iter().all(|r| *r == SearchReturn::Save) {
                return Ok(Completion::ok(done));
            }
        }
        // `esearch-response = "ESEARCH" [search-correlator] [SP "UID"] *(SP search-return-data)`
        let mut line = format!("ESEARCH (TAG {})", response::string_text(&tag, false));
        if command.uid {
            line.push_str(" UID");
        }
        let pick = |&(seq, uid): &(u32, Uid)| if command.uid { uid.0 } else { seq };
        if returns.contains(&SearchReturn::Min)
            && let Some(min) = min
        {
            line.push_str(&format!(" MIN {}", pick(min)));
        }
        if returns.contains(&SearchReturn::Max)
            && let Some(max) = max
        {
            line.push_str(&format!(" MAX {}", pick(max)));
        }
        if returns.contains(&SearchReturn::Count) {
            line.push_str(&format!(" COUNT {}", found.len()));
        }
        if returns.contains(&SearchReturn::All)
            && let Some(set) = SequenceSet::from_numbers(&numbers)
        {
            line.push_str(&format!(" ALL {set}"));
        }
        response::untagged(&mut conn.out, &line);
        Ok(Completion::ok(done))
    }
}
