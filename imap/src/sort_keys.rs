//! What SORT and THREAD know of each message ([`Item`], RFC 5256 §3), read from the meta
//! stored at delivery (house rule 11), and the order SORT criteria give them
//! ([`compare`]). Below the session: updating SORT contexts (`contexts.rs`) keep items
//! too. The commands are in `command/sort.rs`.

use crate::error::CommandError;
use crate::proto::command::{SortCriterion, SortKey};
use crate::search_eval::Found;
use std::cmp::Ordering;
use storage::MessageMeta;
use storage::mime::EnvelopeAddress;
use unicode_normalization::UnicodeNormalization;

/// What SORT and THREAD know of one message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Item {
    /// Sequence number or UID: what the response lists.
    pub(crate) number: u32,
    /// Position in the mailbox, the last tie-breaker (RFC 5256 §3).
    pub(crate) seq: u32,
    /// The UID, what `RETURN (SAVE)` keeps (RFC 5182 §2.1); a plain number so that
    /// `Item` has a default for the tests and the fuzz target.
    pub(crate) uid: u32,
    /// RFC 7162 §3.1.5: what MODSEQ in the answer is taken from.
    pub(crate) modseq: u64,
    pub(crate) internal_date: i64,
    pub(crate) size: u32,
    /// RFC 5256 §2.2: the Date: field, or INTERNALDATE when it is missing or unparsable.
    pub(crate) sent_date: i64,
    /// RFC 5256 §2.1, compared with i;ascii-casemap.
    pub(crate) base_subject: String,
    /// The subject had `Re:`, `Fwd:` or the like (RFC 5256 §2.1 and REFERENCES step 5).
    pub(crate) is_reply: bool,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) cc: String,
    /// RFC 5957 §2 DISPLAYFROM and DISPLAYTO.
    pub(crate) display_from: String,
    pub(crate) display_to: String,
    pub(crate) message_id: Option<String>,
    pub(crate) references: Vec<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
