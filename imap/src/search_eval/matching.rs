//! Evaluating SEARCH keys against one message (RFC 9051 §6.4.4): what a key needs loaded,
//! the case-folded substring finder, sets resolved against the view, and the per-key
//! rules. Batches and updating keys are in `search_eval/mod.rs`; the command and ESEARCH
//! results in `command/search.rs`; the view's bounds ([`SetBounds`]) in `view.rs`.

use crate::proto::command::SearchKey;
use crate::proto::datetime::date_of;
use crate::proto::{RangeSet, SetOrSaved};
use memchr::memmem;
use storage::mime::{header_sections, unfolded_fields};
use storage::{MessageEntry, MessageMeta, Uid};

/// What a key needs besides the entry itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Needs {
    /// The meta of every message (header keys, sent dates).
    pub(crate) meta: bool,
    /// The body text (BODY, TEXT): from the full-text index where a message has a row.
    pub(crate) text: bool,
    /// The header lines (TEXT): from the index, else from the meta and the raw message.
    pub(crate) headers: bool,
    /// A TEXT string the index's header lines cannot answer for
    /// (`storage::fulltext::UNIT_SEPARATOR`): texts from the messages themselves.
    pub(crate) unindexed: bool,
}

impl Needs {
    pub(crate) fn of(key: &SearchKey) -> Self {
        let mut needs = Self::default();
        needs.add(key);
        needs
    }

    pub(crate) fn add(&mut self, key: &SearchKey) {
        match key {
            SearchKey::And(keys) => keys.iter().for_each(|k| self.add(k)),
            SearchKey::Or(a, b) => {
                self.add(a);
                self.add(b);
            }
            SearchKey::Not(k) => self.add(k),
            SearchKey::SentBefore(_) | SearchKey::SentOn(_) | SearchKey::SentSince(_) => {
                self.meta = true;
            }
            SearchKey::Header(..) => self.meta = true,
            SearchKey::Body(_) => self.text = true,
            SearchKey::Text(value) => {
                self.text = true;
                self.headers = true;
                self.unindexed |= value.contains(['\0', '\r', '\n']);
            }
            _ => {}
        }
    }

    /// The union of both.
    pub(crate) fn with(self, other: Needs) -> Needs {
        Needs {
            meta: self.meta || other.meta,
            text: self.text || other.text,
            headers: self.headers || other.headers,
            unindexed: self.unindexed || other.unindexed,
        }
    }

    /// True when message contents are compared (CPU work that grows with the mail).
    pub(crate) fn contents(self) -> bool {
        self.text || self.headers
    }
}

/// A SEARCH string ready for many haystacks: case-folded once, with a linear-time
/// substring finder (`memchr::memmem`, Two-Way: O(haystack + needle) whatever both hold,
/// where comparing at every offset was O(haystack × needle): 73 s for a 64 KiB needle
/// over a 10 MB body, issue 13).
///
/// RFC 9051 §6.4.4: "case-insensitive substring matches". Both sides are lower-cased by
/// Unicode rules, since non-ASCII characters can lower-case to ASCII ones (U+212A KELVIN
/// SIGN to `k`); an ASCII haystack, nearly every header, is folded a block at a time
/// instead of copied whole.
pub(crate) struct Needle {
    /// Finds the needle, case-folded.
    pub(crate) finder: memmem::Finder<'static>,
}

/// ASCII haystack octets folded into one buffer at a time.
pub(crate) const FOLD_BLOCK: usize = 64 * 1024;

impl Needle {
    pub(crate) fn new(text: &str) -> Needle {
        let folded = text.to_lowercase();
        let finder = memmem::Finder::new(folded.as_bytes()).into_owned();
        Needle { finder }
    }

    /// [`Needle::found_in`] for a haystack already case-folded (the full-text index's
    /// texts, `storage::fulltext::fold`): folding it again would change nothing.
    pub(crate) fn found_in_folded(&self, haystack: &str) -> bool {
        self.finder.find(haystack.as_bytes()).is_some()
    }

    pub(crate) fn found_in(&self, haystack: &str) -> bool {
        let needle_len = self.finder.needle().len();
        if needle_len == 0 {
            return true;
        }
        if !haystack.is_ascii() {
            return self
                .finder
                .find(haystack.to_lowercase().as_bytes())
                .is_some();
        }
        // Blocks overlap by the needle's length less one, so a match across a block's
        // end is found in the block where it starts.
        let bytes = haystack.as_bytes();
        let mut folded = Vec::with_capacity(bytes.len().min(FOLD_BLOCK + needle_len));
        let mut start = 0;
        while start < bytes.len() {
            let end = start
                .saturating_add(FOLD_BLOCK + needle_len - 1)
                .min(bytes.len());
            folded.clear();
            folded.extend(
                bytes
                    .get(start..end)
                    .unwrap_or_default()
                    .iter()
                    .map(u8::to_ascii_lowercase),
            );
            if self.finder.find(&folded).is_some() {
                return true;
            }
            if end == bytes.len() {
                break;
            }
            start += FOLD_BLOCK;
        }
        false
    }
}

pub(crate) struct Candidate<'a> {
    pub(crate) seq: u32,
    pub(crate) entry: &'a MessageEntry,
    pub(crate) meta: Option<&'a MessageMeta>,
    pub(crate) text: Option<&'a str>,
    pub(crate) raw: Option<&'a [u8]>,
    /// The message's texts in the full-text index (folded), when it has a row: then
    /// `text` is its body.
    pub(crate) indexed_headers: Option<&'a str>,
    /// The full-text index found every BODY and TEXT string of the search in this
    /// message (`IndexAnswer::answered`): those keys are true without a text.
    pub(crate) index_answered: bool,
}

impl Candidate<'_> {
    /// RFC 9051 §6.4.4 HEADER (and FROM, TO, ...): "Messages that have a header with the
    /// specified field-name [...] and that contains the specified string in the text of
    /// the header (what comes after the colon)". The text as written (so `<id@host>` and
    /// group names are found) or as decoded (so RFC 2047 words are found); an empty string
    /// matches every message that has the field.
    pub(crate) fn header(&self, name: &str, value: &Needle) -> bool {
        let Some(meta) = self.meta else {
            return false;
        };
        let found = |fields: &[(String, String)]| {
            fields
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(name) && value.found_in(v))
        };
        found(&meta.unfolded_headers) || found(&meta.headers)
    }

    /// RFC 9051 §6.4.4 TEXT: "Messages that contain the specified string in the header
    /// (including MIME header fields) or body". Header sections are searched as written
    /// and unfolded (field names included), the top-level header also decoded, the body
    /// as decoded at delivery.
    pub(crate) fn text(&self, value: &Needle) -> bool {
        if let Some(headers) = self.indexed_headers {
            // Both folded at delivery; the header lines are one haystack, which finds
            // what one of them would (no TEXT string here holds their separator).
            return self.text.is_some_and(|t| value.found_in_folded(t))
                || value.found_in_folded(headers);
        }
        if self.text.is_some_and(|t| value.found_in(t))
            || self
                .meta
                .is_some_and(|m| m.headers.iter().any(|(_, v)| value.found_in(v)))
        {
            return true;
        }
        let (Some(raw), Some(meta)) = (self.raw, self.meta) else {
            return false;
        };
        header_sections(raw, &meta.root).into_iter().any(|header| {
            unfolded_fields(header)
                .iter()
                .any(|(n, v)| value.found_in(&format!("{n}: {v}")))
        })
    }
}

/// True when the key uses MODSEQ anywhere (RFC 7162 §3.1.5: then results carry MODSEQ).
pub(crate) fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(keys) => keys.iter().any(uses_modseq),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::Not(k) => uses_modseq(k),
        _ => false,
    }
}

/// A search key ready to be asked about many messages: sequence sets and `$` resolved
/// against the view once into merged ranges (a binary search per message, not a walk
/// over every range as written), strings case-folded once, everything else as parsed.
/// Owns what it holds, so it can be evaluated on the blocking pool.
pub(crate) enum Key {
    And(Vec<Key>),
    Or(Box<Key>, Box<Key>),
    Not(Box<Key>),
    /// UIDs (`UID set`, and `$` in either form: RFC 5182 saves UIDs).
    Uids(RangeSet),
    /// Message sequence numbers.
    Seqs(RangeSet),
    /// HEADER (and BCC, CC, FROM, SUBJECT, TO): the field name and the string.
    Header(String, Needle),
    Body(Needle),
    Text(Needle),
    Leaf(SearchKey),
}

/// What sets in a search key are resolved against: the mailbox as the session sees it.
pub(crate) struct SetBounds<'a> {
    /// The largest UID (`*` in a UID set).
    pub(crate) largest_uid: u32,
    /// The number of messages (`*` in a sequence set).
    pub(crate) exists: u32,
    /// RFC 5182 `$`.
    pub(crate) saved: &'a [Uid],
    /// RFC 3501 §2.3.2: the UIDs that are `\Recent` in this session.
    pub(crate) recent: RangeSet,
    /// For an updating search (RFC 5267 §4.3): the view's UIDs, to turn sequence sets
    /// into the UIDs they name now, since numbers shift as messages come and go.
    pub(crate) freeze_seqs: Option<&'a [u32]>,
}

impl Key {
    /// Nesting is that of the parsed key, bounded by the parser (`MAX_SEARCH_DEPTH`).
    pub(crate) fn compile(key: &SearchKey, bounds: &SetBounds<'_>) -> Key {
        match key {
            SearchKey::And(keys) => {
                Key::And(keys.iter().map(|k| Key::compile(k, bounds)).collect())
            }
            SearchKey::Or(a, b) => Key::Or(
                Box::new(Key::compile(a, bounds)),
                Box::new(Key::compile(b, bounds)),
            ),
            SearchKey::Not(k) => Key::Not(Box::new(Key::compile(k, bounds))),
            SearchKey::Uid(SetOrSaved::Set(set)) => Key::Uids(set.resolve(bounds.largest_uid)),
            SearchKey::Seq(SetOrSaved::Set(set)) => match bounds.freeze_seqs {
                Some(uids) => Key::Uids(RangeSet::from_numbers(
                    set.seq_indexes(uids.len())
                        .into_iter()
                        .filter_map(|i| uids.get(i).copied()),
                )),
                None => Key::Seqs(set.resolve(bounds.exists)),
            },
            SearchKey::Uid(SetOrSaved::Saved) | SearchKey::Seq(SetOrSaved::Saved) => {
                Key::Uids(RangeSet::from_numbers(bounds.saved.iter().map(|uid| uid.0)))
            }
            SearchKey::Header(name, value) => Key::Header(name.clone(), Needle::new(value)),
            SearchKey::Body(value) => Key::Body(Needle::new(value)),
            SearchKey::Text(value) => Key::Text(Needle::new(value)),
            // RFC 3501 §6.4.4: RECENT, "messages that have the \Recent flag set"; NEW,
            // "equivalent to (RECENT UNSEEN)"; OLD, "equivalent to NOT RECENT".
            SearchKey::Recent => Key::Uids(bounds.recent.clone()),
            SearchKey::New => Key::And(vec![
                Key::Uids(bounds.recent.clone()),
                Key::Leaf(SearchKey::Flag("\\Seen", false)),
            ]),
            SearchKey::Old => Key::Not(Box::new(Key::Uids(bounds.recent.clone()))),
            other => Key::Leaf(other.clone()),
        }
    }
}

pub(crate) fn matches(key: &Key, c: &Candidate<'_>, now: i64) -> bool {
    match key {
        Key::And(keys) => keys.iter().all(|k| matches(k, c, now)),
        Key::Or(a, b) => matches(a, c, now) || matches(b, c, now),
        Key::Not(k) => !matches(k, c, now),
        Key::Uids(set) => set.contains(c.entry.uid.0),
        Key::Seqs(set) => set.contains(c.seq),
        Key::Header(name, value) => c.header(name, value),
        Key::Body(_) | Key::Text(_) if c.index_answered => true,
        Key::Body(value) => c.text.is_some_and(|t| match c.indexed_headers {
            Some(_) => value.found_in_folded(t),
            None => value.found_in(t),
        }),
        Key::Text(value) => c.text(value),
        Key::Leaf(key) => matches_leaf(key, c, now),
    }
}

/// A key that looks at one message alone.
pub(crate) fn matches_leaf(key: &SearchKey, c: &Candidate<'_>, now: i64) -> bool {
    let sent = || c.meta.and_then(sent_date_of);
    let internal = || date_of(c.entry.internal_date);
    let saved = || date_of(c.entry.save_date.unwrap_or(c.entry.internal_date));
    match key {
        SearchKey::All => true,
        // `Key::compile` turns these into `Key`'s own variants; they are never leaves.
        SearchKey::And(_)
        | SearchKey::Or(..)
        | SearchKey::Not(_)
        | SearchKey::Uid(_)
        | SearchKey::Seq(_)
        | SearchKey::Header(..)
        | SearchKey::Body(_)
        | SearchKey::Text(_) => false,
        // RFC 7162 §3.1.5: "messages that have modification values that are equal to or
        // greater than <mod-sequence-valzer>".
        SearchKey::ModSeq(modseq) => c.entry.modseq.0 >= *modseq,
        // RFC 5032 §3: OLDER, "internal date [...] is older than the specified
        // interval"; YOUNGER, "within the specified interval" (seconds before now).
        SearchKey::Older(seconds) => now - c.entry.internal_date > i64::from(*seconds),
        SearchKey::Younger(seconds) => now - c.entry.internal_date <= i64::from(*seconds),
        // RFC 8474 §6: the messages whose EMAILID is the one given (an objectid not of
        // our making names none).
        SearchKey::EmailId(id) => id.message() == Some(c.entry.message),
        // RFC 8474 §5.2: our THREADID is NIL, so no message has the one given.
        SearchKey::ThreadId(_) => false,
        SearchKey::Flag(flag, set) => c.entry.flags.contains(flag) == *set,
        SearchKey::Keyword(keyword, set) => c.entry.flags.contains(keyword) == *set,
        // `Key::compile` turns these into sets of this session's recent UIDs.
        SearchKey::New | SearchKey::Recent | SearchKey::Old => false,
        SearchKey::Larger(n) => u64::from(c.entry.size) > *n,
        SearchKey::Smaller(n) => u64::from(c.entry.size) < *n,
        SearchKey::Before(date) => internal() < *date,
        SearchKey::On(date) => internal() == *date,
        SearchKey::Since(date) => internal() >= *date,
        SearchKey::SentBefore(date) => sent().is_some_and(|d| d < *date),
        SearchKey::SentOn(date) => sent().is_some_and(|d| d == *date),
        SearchKey::SentSince(date) => sent().is_some_and(|d| d >= *date),
        // RFC 8514 §4.3: the save date "disregarding time and timezone". An entry placed
        // before save dates were kept has none: for it the internal date, as §4.3 has
        // it where the storage lacks the attribute.
        SearchKey::SavedBefore(date) => saved() < *date,
        SearchKey::SavedOn(date) => saved() == *date,
        SearchKey::SavedSince(date) => saved() >= *date,
        // Every mailbox keeps save dates.
        SearchKey::SaveDateSupported => true,
    }
}

/// RFC 9051 §6.4.4 SENTBEFORE/SENTON/SENTSINCE: the Date: header's date "disregarding
/// time and timezone", that is the day as written in the sender's own zone (as Dovecot
/// compares); for meta stored before that was kept, the UTC date of the moment.
pub(crate) fn sent_date_of(meta: &MessageMeta) -> Option<time::Date> {
    match meta.sent_day {
        Some((year, month, day)) => time::Month::try_from(month)
            .ok()
            .and_then(|month| time::Date::from_calendar_date(i32::from(year), month, day).ok()),
        None => meta.sent_date.map(date_of),
    }
}
