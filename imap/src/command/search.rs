//! SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH results (RFC 4731; always for
//! IMAP4rev2 clients, RFC 9051 §7.3.4) and SEARCHRES (RFC 5182 `RETURN (SAVE)` and `$`).
//! Header keys match the header as written (unfolded) and the decoded headers, both stored
//! at delivery in the meta; BODY and TEXT the decoded text stored at delivery (house rule
//! 11). The raw message is loaded only for TEXT, which looks at every MIME header as well.

use crate::batches::{MAX_BATCH_BYTES, batches};
use crate::error::CommandError;
use crate::proto::command::{PartialRange, SearchCommand, SearchKey, SearchReturn};
use crate::proto::response::{self, Code};
use crate::proto::sequence::{SequenceSet, compress};
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::View;
use std::collections::HashSet;
use std::sync::Arc;
use storage::fulltext::TextScope;
use storage::{MailboxId, MessageEntry, MessageId, Store, Uid};

use crate::search_eval::matching::*;
use crate::search_eval::{Batch, Found, SEARCH_CHUNK, UpdateKey};

/// RFC 9051 §6.4.4: US-ASCII and UTF-8 are the charsets we must (and do) know; anything
/// else is `NO [BADCHARSET]` (also for SORT and THREAD, RFC 5256 §3).
pub(crate) fn known_charset(charset: &str) -> Result<(), CommandError> {
    if charset.eq_ignore_ascii_case("UTF-8") || charset.eq_ignore_ascii_case("US-ASCII") {
        Ok(())
    } else {
        Err(CommandError::no(
            Some(Code::BadCharset),
            "Unsupported charset",
        ))
    }
}

/// Written here, beside [`Hit`] and the ESEARCH writer; `Found` itself is in
/// `search_eval`.
impl Found {
    pub(crate) fn hit(&self) -> Hit {
        Hit {
            seq: self.seq,
            uid: self.uid,
            modseq: self.modseq.0,
        }
    }
}

/// The messages of the view that match `key`, in mailbox order (SEARCH, SORT, THREAD).
/// Messages expunged elsewhere and not yet reported never match.
pub(crate) async fn find(
    view: &View,
    store: &Store,
    key: &SearchKey,
    now: i64,
) -> Result<Vec<Found>, CommandError> {
    let needs = Needs::of(key);
    let index = IndexAnswer::of(view.mailbox, store, key).await?;
    let key = Arc::new(Key::compile(key, &view.set_bounds()));
    let live: Vec<usize> = (0..view.exists())
        .filter(|&i| {
            view.entries.get(i).is_some_and(|e| {
                !view.is_expunged(e.uid)
                    && index
                        .candidates
                        .as_ref()
                        .is_none_or(|c| c.contains(&e.message))
            })
        })
        .collect();
    // Texts and raw messages are loaded by the sizes in the view (a decoded text is about
    // the size of its message or smaller); meta is small.
    let max_bytes = if needs.contents() {
        MAX_BATCH_BYTES
    } else {
        u64::MAX
    };
    let size = |i: usize| view.entries.get(i).map_or(0, |e| u64::from(e.size));
    let mut found = Vec::new();
    for chunk in batches(&live, SEARCH_CHUNK, max_bytes, size) {
        let entries: Vec<(u32, MessageEntry)> = chunk
            .iter()
            .filter_map(|&i| {
                let seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
                view.entries.get(i).map(|e| (seq, e.clone()))
            })
            .collect();
        let batch = Batch::load(store, needs, entries, &index.answered).await?;
        if needs == Needs::default() || (batch.contents_answered() && !needs.meta) {
            // Flags, dates, sizes and numbers: a few comparisons per message.
            found.extend(batch.matching(&key, now));
            continue;
        }
        // Strings against message contents is CPU work that grows with the mail: on the
        // blocking pool, so the async workers go on serving every other session (and
        // the SMTP listeners) meanwhile (issue 13).
        let key = Arc::clone(&key);
        let matched = tokio::task::spawn_blocking(move || batch.matching(&key, now))
            .await
            .map_err(|error| {
                tracing::warn!(%error, "search task failed");
                CommandError::no(Some(Code::ServerBug), "Search failed")
            })?;
        found.extend(matched);
    }
    Ok(found)
}

/// What the full-text index tells about the BODY and TEXT keys of a search.
struct IndexAnswer {
    /// The messages that can match: those that may hold every BODY and TEXT string that
    /// the key requires (the ones ANDed at its top,
    /// `storage::fulltext::needle_fits_index`), or `None` when it requires none.
    candidates: Option<HashSet<MessageId>>,
    /// Indexed messages for which the index answered every BODY and TEXT key of the
    /// search (each is required at the top and found): those keys are true for them
    /// without loading a text, since the index's answer is the matcher's
    /// (`storage::fulltext`). Empty when some such key is nested under OR or NOT, or the
    /// index cannot answer for it.
    answered: HashSet<MessageId>,
}

impl IndexAnswer {
    async fn of(
        mailbox: MailboxId,
        store: &Store,
        key: &SearchKey,
    ) -> Result<IndexAnswer, CommandError> {
        fn required<'k>(key: &'k SearchKey, out: &mut Vec<(&'k str, TextScope)>) {
            match key {
                SearchKey::And(keys) => keys.iter().for_each(|k| required(k, out)),
                SearchKey::Body(value) => out.push((value, TextScope::Body)),
                SearchKey::Text(value) => out.push((value, TextScope::Text)),
                _ => {}
            }
        }
        let mut terms = Vec::new();
        required(key, &mut terms);
        let mut covers_every_text_key = terms.len() == count_text_keys(key);
        let mut candidates: Option<HashSet<MessageId>> = None;
        let mut answered: Option<HashSet<MessageId>> = None;
        for (needle, scope) in terms {
            let Some(matches) = store.fulltext_matches(mailbox, needle, scope).await? else {
                covers_every_text_key = false;
                continue;
            };
            let found = matches.candidates();
            candidates = Some(match candidates {
                Some(before) => before.intersection(&found).copied().collect(),
                None => found,
            });
            answered = Some(match answered {
                Some(before) => before.intersection(&matches.found).copied().collect(),
                None => matches.found,
            });
        }
        Ok(IndexAnswer {
            candidates,
            answered: answered
                .filter(|_| covers_every_text_key)
                .unwrap_or_default(),
        })
    }
}

/// How many BODY and TEXT keys `key` holds anywhere. Nesting is that of the parsed key,
/// bounded by the parser (`MAX_SEARCH_DEPTH`).
fn count_text_keys(key: &SearchKey) -> usize {
    match key {
        SearchKey::And(keys) => keys.iter().map(count_text_keys).sum(),
        SearchKey::Or(a, b) => count_text_keys(a) + count_text_keys(b),
        SearchKey::Not(k) => count_text_keys(k),
        SearchKey::Body(_) | SearchKey::Text(_) => 1,
        _ => 0,
    }
}

/// In which order ESEARCH's `ALL` lists the messages found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// SEARCH: ascending, merged into ranges (RFC 4731 §3.1).
    Mailbox,
    /// SORT RETURN: "in the requested sort order, using a sequence-set" (RFC 5267 §3.1):
    /// only ascending runs are merged (`4:6,1`), as Dovecot does.
    Given,
}

/// One message a SEARCH or SORT found, in the order the command answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) seq: u32,
    pub(crate) uid: Uid,
    pub(crate) modseq: u64,
}

/// An ESEARCH answer (RFC 4731 §3, RFC 5267 §3.1 and §4, RFC 9394 §3) to write.
pub(crate) struct Esearch<'a> {
    pub(crate) tag: &'a str,
    pub(crate) uid: bool,
    /// As given; `RETURN ()` (and `RETURN (CONTEXT)`) is ALL.
    pub(crate) returns: &'a [SearchReturn],
    pub(crate) order: Order,
    /// RFC 7162 §3.1.5: the search used MODSEQ, so the answer carries one.
    pub(crate) with_modseq: bool,
}

impl Esearch<'_> {
    fn has(&self, option: SearchReturn) -> bool {
        self.returns.contains(&option)
    }

    fn partial(&self) -> Option<PartialRange> {
        self.returns.iter().find_map(|r| match r {
            SearchReturn::Partial(range) => Some(*range),
            _ => None,
        })
    }

    /// RFC 4731 §3.1: an empty list of result options asks for ALL; CONTEXT is only a
    /// hint (RFC 5267 §4.2). UPDATE alone asks for no data now (RFC 5267 §4.3: "no
    /// interaction between UPDATE and any other return options"), as Dovecot has it.
    fn all(&self) -> bool {
        self.has(SearchReturn::All) || self.returns.iter().all(|r| *r == SearchReturn::Context)
    }

    /// The messages the answer names when it names only some (MIN, MAX, PARTIAL without
    /// ALL or COUNT), or `None` when it stands for all of them.
    fn returned<'h>(&self, hits: &'h [Hit]) -> Option<Vec<&'h Hit>> {
        if self.all() || self.has(SearchReturn::Count) {
            return None;
        }
        let partial = self.partial();
        let min = self.has(SearchReturn::Min);
        let max = self.has(SearchReturn::Max);
        if partial.is_none() && !min && !max {
            return None;
        }
        let mut returned: Vec<&Hit> = partial
            .and_then(|range| hits.get(range.window(hits.len())))
            .unwrap_or_default()
            .iter()
            .collect();
        for (wanted, end) in [(min, hits.first()), (max, hits.last())] {
            if let Some(hit) = end.filter(|_| wanted)
                && !returned.iter().any(|h| h.uid == hit.uid)
            {
                returned.push(hit);
            }
        }
        Some(returned)
    }

    /// Writes the answer for `hits` and keeps what SAVE asks for in `saved`.
    ///
    /// RFC 5182 §2.1 and §2.4, RFC 9394 §3.2: SAVE keeps every message found, except that
    /// with MIN, MAX or PARTIAL (and neither ALL nor COUNT) it keeps only those returned;
    /// SAVE alone (with at most CONTEXT) sends no ESEARCH response.
    pub(crate) fn write(&self, hits: &[Hit], saved: &mut Vec<Uid>, out: &mut Vec<u8>) {
        let returned = self.returned(hits);
        if self.has(SearchReturn::Save) {
            *saved = match &returned {
                Some(returned) => returned.iter().map(|h| h.uid).collect(),
                None => hits.iter().map(|h| h.uid).collect(),
            };
            if self
                .returns
                .iter()
                .all(|r| matches!(r, SearchReturn::Save | SearchReturn::Context))
            {
                return;
            }
        }
        let mut line = format!("ESEARCH (TAG {})", response::string_text(self.tag, false));
        if self.uid {
            line.push_str(" UID");
        }
        let number = |h: &Hit| if self.uid { h.uid.0 } else { h.seq };
        let set = |hits: &[Hit]| {
            let numbers: Vec<u32> = hits.iter().map(number).collect();
            match self.order {
                Order::Mailbox => SequenceSet::from_numbers(&numbers),
                Order::Given => compress(&numbers),
            }
        };
        if self.has(SearchReturn::Min)
            && let Some(min) = hits.first()
        {
            line.push_str(&format!(" MIN {}", number(min)));
        }
        if self.has(SearchReturn::Max)
            && let Some(max) = hits.last()
        {
            line.push_str(&format!(" MAX {}", number(max)));
        }
        // RFC 4731 §3.1 sets no order for the return data; Dovecot's: ALL, PARTIAL, COUNT.
        if self.all()
            && let Some(set) = set(hits)
        {
            line.push_str(&format!(" ALL {set}"));
        }
        // RFC 9394 §4: `ret-data-partial = "PARTIAL" SP "(" partial-range SP
        // partial-results ")"`; `partial-results = sequence-set / "NIL"`, NIL when "no
        // results correspond to the requested range"; for SORT in sort order (RFC 5267
        // §4.4), for SEARCH in mailbox order.
        if let Some(range) = self.partial() {
            let window = hits.get(range.window(hits.len())).unwrap_or_default();
            match set(window) {
                Some(set) => line.push_str(&format!(" PARTIAL ({range} {set})")),
                None => line.push_str(&format!(" PARTIAL ({range} NIL)")),
            }
        }
        if self.has(SearchReturn::Count) {
            line.push_str(&format!(" COUNT {}", hits.len()));
        }
        // RFC 7162 §3.1.5 / RFC 4731: `MODSEQ n` after the other return data, the highest
        // mod-sequence of the messages returned: with MIN, MAX or PARTIAL alone (no ALL,
        // no COUNT) only those.
        if self.with_modseq {
            let highest = match &returned {
                Some(returned) => returned.iter().map(|h| h.modseq).max(),
                None => hits.iter().map(|h| h.modseq).max(),
            };
            if let Some(highest) = highest {
                line.push_str(&format!(" MODSEQ {highest}"));
            }
        }
        response::untagged(out, &line);
    }
}

impl Session {
    pub(crate) async fn search(&mut self, command: SearchCommand) -> CommandResult {
        if let Some(charset) = &command.charset {
            known_charset(charset)?;
        }
        let with_modseq = uses_modseq(&command.key);
        // RFC 7162 §3.1: SEARCH MODSEQ is CONDSTORE enabling.
        if with_modseq {
            self.enable_condstore();
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let rev2 = self.enabled.rev2;
        let tag = self.tag.clone();
        let store = self.server.store.clone();
        let Session { state, conn, .. } = self;
        let State::Selected { view, .. } = state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        let updating = command
            .returns
            .as_ref()
            .is_some_and(|r| r.contains(&SearchReturn::Update));
        if updating {
            view.contexts.check_tag(&tag)?;
        }
        let found = find(view, &store, &command.key, now).await?;
        let hits: Vec<Hit> = found.iter().map(Found::hit).collect();
        let context = updating
            .then(|| UpdateKey::compile(&command.key, view.set_bounds(), view.uids()))
            .filter(|key| view.contexts.admit(&tag, key, &mut conn.out));
        let done = if command.uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        };
        // RFC 9051 §6.4.4: an IMAP4rev2 client always gets ESEARCH; `RETURN ()` is ALL.
        let Some(returns) = command.returns.or(rev2.then(Vec::new)) else {
            let mut line = String::from("SEARCH");
            for hit in &hits {
                let number = if command.uid { hit.uid.0 } else { hit.seq };
                line.push_str(&format!(" {number}"));
            }
            // RFC 7162 §3.1.5: `(MODSEQ n)`, the highest of the messages found.
            if with_modseq && let Some(highest) = hits.iter().map(|h| h.modseq).max() {
                line.push_str(&format!(" (MODSEQ {highest})"));
            }
            response::untagged(&mut conn.out, &line);
            return Ok(Completion::ok(done));
        };
        Esearch {
            tag: &tag,
            uid: command.uid,
            returns: &returns,
            order: Order::Mailbox,
            with_modseq,
        }
        .write(&hits, &mut view.saved, &mut conn.out);
        if let Some(key) = context {
            let result = hits.iter().map(|h| h.uid.0).collect();
            view.contexts.add_search(&tag, command.uid, key, result);
        }
        Ok(Completion::ok(done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::fulltext::IndexedText;
    use storage::{Flags, ModSeq};

    const GROUPS: &[u8] = b"From: Coordinator <coord@example.com>\r\nTo: Project Team: alice@example.com, \"Bob B.\" <bob@example.org>;, carol@example.org\r\nCc: Empty Group:;, Friends: \"Dave\" <dave@example.org>;\r\nBcc: undisclosed-recipients:;\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <qp@example.com>\r\nX-Long-Unfolded: first\r\n second\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Description: the inner words\r\n\r\nhello body\r\n--b--\r\n";

    fn entry() -> MessageEntry {
        MessageEntry {
            uid: Uid(1),
            modseq: ModSeq(1),
            flags: Flags::default(),
            internal_date: 0,
            size: 0,
            message: MessageId(1),
            save_date: None,
        }
    }

    /// Case-insensitive substring search as SEARCH does it.
    fn contains_ci(haystack: &str, needle: &str) -> bool {
        Needle::new(needle).found_in(haystack)
    }

    /// Evaluates a key on one message the way SEARCH loads it (only TEXT sees the raw
    /// bytes; flags, dates and sizes as in `entry()`), and checks that the texts of the
    /// full-text index give the same answer.
    fn finds(raw: &[u8], key: &SearchKey) -> bool {
        let analysis = storage::mime::analyse(raw);
        let entry = entry();
        let candidate = Candidate {
            seq: 1,
            entry: &entry,
            meta: Some(&analysis.meta),
            text: Some(&analysis.body_text),
            raw: Needs::of(key).headers.then_some(raw),
            indexed_headers: None,
            index_answered: false,
        };
        let evaluate = |candidate: &Candidate<'_>| match key {
            SearchKey::Header(name, value) => candidate.header(name, &Needle::new(value)),
            SearchKey::Text(value) => candidate.text(&Needle::new(value)),
            SearchKey::Body(value) => matches(&Key::Body(Needle::new(value)), candidate, 0),
            other => matches_leaf(other, candidate, 0),
        };
        let found = evaluate(&candidate);
        if let Some(indexed) = IndexedText::of(raw, &analysis.meta, &analysis.body_text) {
            let from_index = Candidate {
                text: Some(&indexed.body),
                raw: None,
                indexed_headers: Some(&indexed.headers),
                ..candidate
            };
            assert_eq!(evaluate(&from_index), found, "from the index: {key:?}");
        }
        found
    }

    fn header(name: &str, value: &str) -> SearchKey {
        SearchKey::Header(name.into(), value.into())
    }

    #[test]
    fn sent_dates_are_the_days_written_in_the_senders_zone() {
        let on = |raw: &[u8], key: SearchKey| finds(raw, &key);
        let day =
            |d: u8| time::Date::from_calendar_date(2025, time::Month::January, d).expect("a date");
        // 23:30 on the 22nd in New York is the 23rd in UTC: the 22nd is what was written.
        let evening = b"Date: Wed, 22 Jan 2025 23:30:00 -0500\r\n\r\nx\r\n";
        assert!(on(evening, SearchKey::SentOn(day(22))));
        assert!(!on(evening, SearchKey::SentOn(day(23))));
        assert!(on(evening, SearchKey::SentBefore(day(23))));
        // 01:00 on the 24th in Tokyo is the 23rd in UTC.
        let morning = b"Date: Fri, 24 Jan 2025 01:00:00 +0900\r\n\r\nx\r\n";
        assert!(on(morning, SearchKey::SentOn(day(24))));
        assert!(on(morning, SearchKey::SentSince(day(24))));
        assert!(!on(morning, SearchKey::SentBefore(day(24))));
    }

    #[test]
    fn header_matches_the_value_as_written() {
        assert!(finds(GROUPS, &header("Message-ID", "<qp@example.com>")));
        assert!(finds(GROUPS, &header("message-id", "qp@EXAMPLE.com")));
        assert!(!finds(GROUPS, &header("Message-ID", "<other@example.com>")));
        // Folded values are unfolded.
        assert!(finds(GROUPS, &header("X-Long-Unfolded", "first second")));
        // The decoded form still counts.
        assert!(finds(GROUPS, &header("Subject", "grüße")));
        // An empty string matches every message with the field, and only those.
        assert!(finds(GROUPS, &header("X-Long-Unfolded", "")));
        assert!(!finds(GROUPS, &header("X-Absent", "")));
        // Only the top-level header: a part's field is not the message's.
        assert!(!finds(GROUPS, &header("Content-Description", "inner")));
    }

    #[test]
    fn contains_ci_folds_ascii_in_place_and_unicode_by_its_rules() {
        assert!(contains_ci("Re: Quarterly REPORT", "report"));
        assert!(contains_ci("abc", ""));
        assert!(!contains_ci("ab", "abc"));
        assert!(!contains_ci("Report", "reporx"));
        assert!(contains_ci("GRÜSSE aus Köln", "köln"));
        assert!(contains_ci("Grüße", "GRÜßE"));
        // U+212A KELVIN SIGN lower-cases to an ASCII `k`.
        assert!(contains_ci("300 \u{212A}", "300 k"));
    }

    #[test]
    fn needles_agree_with_unicode_lower_casing() {
        // The definition: both sides lower-cased by Unicode rules, then a substring.
        // Deterministic pseudo-random strings over letters that fold in odd ways.
        let alphabet: Vec<char> = "aAbBkK\u{212A}sSßẞσΣςİi \u{130}ö".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        for _ in 0..5000 {
            let mut text = |max: usize| -> String {
                (0..next(max))
                    .filter_map(|_| alphabet.get(next(alphabet.len())))
                    .collect()
            };
            let haystack = text(24);
            let needle = text(4);
            let expected = haystack.to_lowercase().contains(&needle.to_lowercase());
            assert_eq!(
                contains_ci(&haystack, &needle),
                expected,
                "{haystack:?} {needle:?}"
            );
        }
    }

    #[test]
    fn needles_are_found_across_fold_blocks_and_in_long_lines() {
        // An ASCII haystack is folded a block at a time: a match across a block's end.
        let mut haystack = "x".repeat(3 * FOLD_BLOCK);
        haystack.replace_range(FOLD_BLOCK - 3..FOLD_BLOCK + 3, "NeEdLe");
        assert!(contains_ci(&haystack, "needle"));
        assert!(contains_ci(&haystack, "xNEEDLEx"));
        assert!(!contains_ci(&haystack, "needlex!"));
        assert!(contains_ci(&haystack, &"X".repeat(FOLD_BLOCK + 10)));
        // Issue 13: a one-line 10 MB body and a needle of the largest size that almost
        // matches everywhere (quadratic for a search that compares at every offset).
        let body = "a".repeat(10 * 1024 * 1024);
        let mut needle = "A".repeat(crate::proto::command::MAX_SEARCH_STRING - 1);
        needle.push('b');
        assert!(!contains_ci(&body, &needle));
        assert!(contains_ci(&format!("{body}B"), &needle));
    }

    #[test]
    fn address_keys_find_group_names() {
        assert!(finds(GROUPS, &header("To", "Project Team")));
        assert!(finds(GROUPS, &header("To", "bob@example.org")));
        assert!(finds(GROUPS, &header("Cc", "Friends")));
        assert!(finds(GROUPS, &header("Bcc", "undisclosed")));
        assert!(!finds(GROUPS, &header("To", "Friends")));
    }

    #[test]
    fn text_looks_in_every_header() {
        let text = |value: &str| SearchKey::Text(value.into());
        assert!(finds(GROUPS, &text("X-Long-Unfolded")));
        assert!(finds(GROUPS, &text("undisclosed")));
        assert!(finds(GROUPS, &text("inner words")));
        assert!(finds(GROUPS, &text("hello body")));
        assert!(finds(GROUPS, &text("grüße")));
        assert!(!finds(GROUPS, &text("nowhere")));
    }

    #[test]
    fn loads_the_raw_message_only_for_text_keys() {
        let body = SearchKey::Body("x".into());
        assert_eq!(
            Needs::of(&body),
            Needs {
                text: true,
                ..Needs::default()
            }
        );
        assert!(!Needs::of(&SearchKey::Larger(10)).headers);
        assert_eq!(
            Needs::of(&SearchKey::Not(Box::new(header("To", "x")))),
            Needs {
                meta: true,
                ..Needs::default()
            }
        );
        let either = Needs::of(&SearchKey::Or(
            Box::new(body),
            Box::new(SearchKey::Text("x".into())),
        ));
        assert!(either.headers && !either.unindexed);
        // A line break may match across header lines joined in the index.
        assert!(Needs::of(&SearchKey::Text("a\r\nb".into())).unindexed);
    }

    #[test]
    fn the_index_answers_as_the_messages_do() {
        let message = b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: Caf\xc3\xa9 notes\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGR\xc3\x9cSSE \xe2\x84\xaa\r\n--b\r\nContent-Type: text/csv; name=a.csv\r\nContent-Disposition: attachment\r\n\r\nrare,column\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nYmluYXJ5d29yZA==\r\n--b--\r\n";
        let text = |value: &str| SearchKey::Text(value.into());
        let body = |value: &str| SearchKey::Body(value.into());
        for (key, expected) in [
            (text("jürgen"), true),
            (text("from: =?utf-8?q?j"), true),
            (text("café"), true),
            (text("CONTENT-DISPOSITION: ATTACH"), true),
            (text("notes\r\ncontent"), false),
            (body("grüsse k"), true),
            (body("rare,col"), true),
            (body("binaryword"), false),
            (body("café"), false),
            (text(""), true),
            (body("ss"), true),
        ] {
            assert_eq!(finds(message, &key), expected, "{key:?}");
        }
    }
}
