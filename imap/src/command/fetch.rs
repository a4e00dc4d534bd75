//! FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 3516 BINARY): served from the meta
//! computed at delivery and the raw bytes, never by re-parsing. Sections of the top-level
//! header alone are served from the header bytes stored at delivery, without the body.

use super::resolve;
use crate::batches::{MAX_BATCH_BYTES, batches};
use crate::error::CommandError;
use crate::message;
use crate::proto::SetOrSaved;
use crate::proto::command::{FetchCommand, FetchItem, Rfc822Part, Section, SectionText};
use crate::proto::datetime::format_date_time;
use crate::proto::objectid;
use crate::proto::response::{Code, literal, literal8, string_text};
use crate::proto::tag::is_astring_char;
use crate::session::{CommandResult, Completion, Session, State};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use storage::{FlagOperation, Flags, MessageMeta, ModSeq};

/// Messages whose meta is loaded at once: one query per chunk, bounded memory. Raw
/// messages are further bounded by [`MAX_BATCH_BYTES`].
const FETCH_CHUNK: usize = 256;

impl Session {
    pub(crate) async fn fetch(&mut self, command: FetchCommand) -> CommandResult {
        let FetchCommand {
            uid,
            ref set,
            mut items,
            changed_since,
            vanished,
            partial,
        } = command;
        let changed_since = changed_since.map(ModSeq);
        // RFC 7162 §3.2.6: VANISHED needs ENABLE QRESYNC.
        if vanished && !self.enabled.qresync {
            return Err(CommandError::bad("ENABLE QRESYNC first"));
        }
        // RFC 7162 §3.1: MODSEQ and CHANGEDSINCE are CONDSTORE enabling.
        if changed_since.is_some() || items.contains(&FetchItem::ModSeq) {
            self.enable_condstore();
        }
        let utf8 = self.utf8();
        let store = self.server.store.clone();
        let Session { state, conn, .. } = self;
        let State::Selected { view, .. } = state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        let mut indexes = resolve(view, set, uid)?;
        // RFC 9051 §6.4.9: UID FETCH always returns the UID.
        if uid && !items.contains(&FetchItem::Uid) {
            items.insert(0, FetchItem::Uid);
        }
        if let Some(since) = changed_since {
            // RFC 7162 §3.1.4.1: only messages changed after `since`, with their MODSEQ.
            indexes.retain(|&i| view.entries.get(i).is_some_and(|e| e.modseq > since));
            if !items.contains(&FetchItem::ModSeq) {
                items.push(FetchItem::ModSeq);
            }
            if vanished && let SetOrSaved::Set(set) = set {
                // RFC 7162 §3.2.6: first the UIDs of the set expunged after `since`.
                view.write_vanished_earlier(&store, since, Some(set), &mut conn.out)
                    .await?;
            }
        }
        // RFC 9394 §3.3: "only return FETCH results for messages in the specified range"
        // of the messages the command would otherwise answer for, in UID order (after
        // CHANGEDSINCE, with which it "can be combined", §3.4).
        if let Some(range) = partial {
            let window = range.window(indexes.len());
            indexes = indexes
                .get(window)
                .map(<[usize]>::to_vec)
                .unwrap_or_default();
        }
        let needs_meta = items.iter().any(|item| {
            matches!(
                item,
                FetchItem::Envelope
                    | FetchItem::BodyStructure { .. }
                    | FetchItem::BodySection { .. }
                    | FetchItem::Binary { .. }
                    | FetchItem::BinarySize { .. }
                    | FetchItem::Rfc822(Rfc822Part::Header | Rfc822Part::Text)
                    | FetchItem::Preview { .. }
            )
        });
        // RFC 8970 §3.1: PREVIEW without LAZY must always give the preview.
        let asks_preview_now = items.contains(&FetchItem::Preview { lazy: false });
        let needs_header = items.iter().any(only_top_header);
        let needs_raw = items.iter().any(|item| {
            !only_top_header(item)
                && matches!(
                    item,
                    FetchItem::BodySection { .. }
                        | FetchItem::Binary { .. }
                        | FetchItem::BinarySize { .. }
                        | FetchItem::Rfc822(_)
                )
        });
        // RFC 9051 §6.4.5: BODY[...], BINARY[...], RFC822 and RFC822.TEXT set \Seen.
        let sets_seen = !view.read_only
            && items.iter().any(|item| {
                matches!(
                    item,
                    FetchItem::BodySection { peek: false, .. }
                        | FetchItem::Binary { peek: false, .. }
                        | FetchItem::Rfc822(Rfc822Part::Full | Rfc822Part::Text)
                )
            });
        let mut newly_seen = HashSet::new();
        if sets_seen {
            let unseen: Vec<storage::Uid> = indexes
                .iter()
                .filter_map(|&i| view.entries.get(i))
                .filter(|e| !e.flags.contains("\\Seen") && !view.is_expunged(e.uid))
                .map(|e| e.uid)
                .collect();
            if !unseen.is_empty() {
                let outcome = store
                    .store_flags(
                        view.mailbox,
                        unseen,
                        FlagOperation::Add,
                        Flags::new(["\\Seen"]),
                        None,
                    )
                    .await?;
                for (uid, modseq, flags) in outcome.changed {
                    view.set_flags(uid, modseq, flags);
                    newly_seen.insert(uid);
                }
            }
        }
        let asks_flags = items.contains(&FetchItem::Flags);
        let mut failure = None;
        // What an item that needs no meta is given (never looked at).
        let no_meta = Arc::new(storage::mime::analyse(b"").meta);
        // Raw messages by their size in the view; meta and headers are small.
        let max_bytes = if needs_raw { MAX_BATCH_BYTES } else { u64::MAX };
        let entries = &view.entries;
        let size = |i: usize| entries.get(i).map_or(0, |e| u64::from(e.size));
        for chunk in batches(&indexes, FETCH_CHUNK, max_bytes, size) {
            let ids: Vec<storage::MessageId> = if needs_meta || needs_raw || needs_header {
                chunk
                    .iter()
                    .filter_map(|&i| view.entries.get(i))
                    .map(|e| e.message)
                    .collect()
            } else {
                Vec::new()
            };
            let metas = if needs_meta {
                store.message_meta(&ids).await?
            } else {
                Default::default()
            };
            let raws = if needs_raw {
                store.raw_messages(&ids).await?
            } else {
                Default::default()
            };
            let headers = if needs_header && !needs_raw {
                store.message_headers(&ids).await?
            } else {
                Default::default()
            };
            let old_previews = if asks_preview_now {
                previews_not_stored(&store, &metas).await?
            } else {
                Default::default()
            };
            for &index in chunk {
                let Some(entry) = view.entries.get(index) else {
                    continue;
                };
                // The message, or only its header when nothing asked for more: every
                // offset into the header is the same in both. A message removed meanwhile
                // reads as empty; its entry goes at the next sync.
                let raw: &[u8] = match raws.get(&entry.message) {
                    Some(raw) => raw,
                    None => headers.get(&entry.message).map_or(&[], |h| &h[..]),
                };
                let meta = match metas.get(&entry.message) {
                    Some(meta) => Arc::clone(meta),
                    None if needs_meta => {
                        tracing::warn!(stored_message = %entry.message, "message has no stored meta; analysing it");
                        Arc::new(storage::mime::analyse(raw).meta)
                    }
                    None => Arc::clone(&no_meta),
                };
                let out = &mut conn.out;
                out.extend_from_slice(b"* ");
                push_number(out, index + 1);
                out.extend_from_slice(b" FETCH (");
                let mut first = true;
                let mut separator = |out: &mut Vec<u8>| {
                    if !std::mem::take(&mut first) {
                        out.push(b' ');
                    }
                };
                if newly_seen.contains(&entry.uid) && !asks_flags {
                    separator(out);
                    push_flags(out, &entry.flags, view.is_recent(entry.uid));
                }
                for item in &items {
                    let out = &mut conn.out;
                    separator(out);
                    match item {
                        FetchItem::Flags => {
                            push_flags(out, &entry.flags, view.is_recent(entry.uid))
                        }
                        FetchItem::Uid => {
                            out.extend_from_slice(b"UID ");
                            push_number(out, entry.uid.0 as usize);
                        }
                        // RFC 7162 §3.1.4.1: `"MODSEQ" SP "(" permsg-modsequence ")"`.
                        FetchItem::ModSeq => {
                            out.extend_from_slice(format!("MODSEQ ({})", entry.modseq).as_bytes())
                        }
                        // RFC 8474 §7: `"EMAILID" SP "(" objectid ")"`, and
                        // `"THREADID" SP ("(" objectid ")" / nil)`: ours is NIL (§5.2,
                        // threads are not kept with the message).
                        FetchItem::EmailId => out.extend_from_slice(
                            format!("EMAILID ({})", objectid::email_id(entry.message)).as_bytes(),
                        ),
                        FetchItem::ThreadId => out.extend_from_slice(b"THREADID NIL"),
                        FetchItem::InternalDate => out.extend_from_slice(
                            format!("INTERNALDATE \"{}\"", format_date_time(entry.internal_date))
                                .as_bytes(),
                        ),
                        FetchItem::Rfc822Size => {
                            out.extend_from_slice(format!("RFC822.SIZE {}", entry.size).as_bytes());
                        }
                        FetchItem::Envelope => {
                            out.extend_from_slice(b"ENVELOPE ");
                            message::envelope(out, &meta.envelope, utf8);
                        }
                        FetchItem::BodyStructure { extensible } => {
                            out.extend_from_slice(if *extensible {
                                b"BODYSTRUCTURE "
                            } else {
                                b"BODY "
                            });
                            message::body_structure(out, &meta.root, *extensible, utf8);
                        }
                        FetchItem::Rfc822(part) => {
                            let (name, data) = rfc822(raw, &meta, *part);
                            out.extend_from_slice(name.as_bytes());
                            literal(out, data);
                        }
                        FetchItem::BodySection {
                            section, partial, ..
                        } => {
                            let data =
                                message::section(raw, &meta, section).unwrap_or(Cow::Borrowed(b""));
                            out.extend_from_slice(
                                format!("BODY[{}]", section_spec(section)).as_bytes(),
                            );
                            let data = apply_partial(&data, *partial, out);
                            out.push(b' ');
                            literal(out, data);
                        }
                        FetchItem::Binary { part, partial, .. } => {
                            out.extend_from_slice(
                                format!("BINARY[{}]", part_spec(part)).as_bytes(),
                            );
                            match message::binary(raw, &meta, part) {
                                Ok(data) => {
                                    let data = data.unwrap_or(Cow::Borrowed(b""));
                                    let data = apply_partial(&data, *partial, out);
                                    out.push(b' ');
                                    if data.contains(&0) {
                                        literal8(out, data);
                                    } else {
                                        literal(out, data);
                                    }
                                }
                                Err(message::UnknownEncoding) => {
                                    out.extend_from_slice(b" NIL");
                                    failure = Some(CommandError::no(
                                        Some(Code::UnknownCte),
                                        "Cannot decode the content-transfer-encoding",
                                    ));
                                }
                            }
                        }
                        FetchItem::Preview { .. } => message::preview(
                            out,
                            meta.preview
                                .as_deref()
                                .or(old_previews.get(&entry.message).map(String::as_str)),
                            utf8,
                        ),
                        FetchItem::SaveDate => message::save_date(out, entry.save_date),
                        FetchItem::BinarySize { part } => {
                            out.extend_from_slice(
                                format!("BINARY.SIZE[{}] ", part_spec(part)).as_bytes(),
                            );
                            match message::binary(raw, &meta, part) {
                                Ok(data) => out.extend_from_slice(
                                    data.map_or(0, |d| d.len()).to_string().as_bytes(),
                                ),
                                Err(message::UnknownEncoding) => {
                                    out.extend_from_slice(b"0");
                                    failure = Some(CommandError::no(
                                        Some(Code::UnknownCte),
                                        "Cannot decode the content-transfer-encoding",
                                    ));
                                }
                            }
                        }
                    }
                    // Written as produced: 400 times BODY[] of a large message is
                    // flushed item by item, not built in memory first (issue 13).
                    conn.flush_if_full().await?;
                }
                conn.out.extend_from_slice(b")\r\n");
                conn.flush_if_full().await?;
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(Completion::ok(if uid {
                "UID FETCH completed"
            } else {
                "FETCH completed"
            })),
        }
    }
}

/// The previews of messages whose meta was stored before previews were computed at
/// delivery (it has none): computed here from their raw bytes, for PREVIEW without LAZY
/// (RFC 8970 §3.1 lets PREVIEW (LAZY) answer NIL for them instead). Every message
/// delivered since has its preview in its meta.
async fn previews_not_stored(
    store: &storage::Store,
    metas: &HashMap<storage::MessageId, Arc<MessageMeta>>,
) -> Result<HashMap<storage::MessageId, String>, CommandError> {
    let missing: Vec<storage::MessageId> = metas
        .iter()
        .filter(|(_, meta)| meta.preview.is_none())
        .map(|(&id, _)| id)
        .collect();
    if missing.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(store.previews_from_raw(&missing).await?)
}

/// True for an item that reads nothing but the top-level header section: BODY[HEADER],
/// BODY[HEADER.FIELDS (...)], BODY[HEADER.FIELDS.NOT (...)] (peeking or not, any partial)
/// and RFC822.HEADER.
fn only_top_header(item: &FetchItem) -> bool {
    match item {
        FetchItem::Rfc822(Rfc822Part::Header) => true,
        FetchItem::BodySection { section, .. } => {
            section.part.is_empty()
                && matches!(
                    section.text,
                    Some(SectionText::Header | SectionText::HeaderFields { .. })
                )
        }
        _ => false,
    }
}

/// `FLAGS (...)`, written in place, with `\Recent` last when the message is recent in
/// this session (RFC 3501 §2.3.2).
fn push_flags(out: &mut Vec<u8>, flags: &Flags, recent: bool) {
    out.extend_from_slice(b"FLAGS (");
    let recent = recent.then_some("\\Recent");
    for (n, flag) in flags.iter().chain(recent).enumerate() {
        if n > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(flag.as_bytes());
    }
    out.push(b')');
}

/// A number in decimal, written in place.
fn push_number(out: &mut Vec<u8>, number: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        // `rest % 10` is a single digit, so the cast cannot truncate.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// RFC 3501 §6.4.5: RFC822 is BODY[], RFC822.HEADER is BODY.PEEK[HEADER], RFC822.TEXT
/// is BODY[TEXT].
fn rfc822<'a>(raw: &'a [u8], meta: &MessageMeta, part: Rfc822Part) -> (&'static str, &'a [u8]) {
    let split = (meta.root.body_start as usize).min(raw.len());
    let (header, text) = raw.split_at(split);
    match part {
        Rfc822Part::Full => ("RFC822 ", raw),
        Rfc822Part::Header => ("RFC822.HEADER ", header),
        Rfc822Part::Text => ("RFC822.TEXT ", text),
    }
}

/// `partial`: the response names only the origin (`BODY[]<0>`); an origin past the end
/// gives an empty string (RFC 9051 §6.4.5).
fn apply_partial<'a>(data: &'a [u8], partial: Option<(u64, u64)>, out: &mut Vec<u8>) -> &'a [u8] {
    let Some((origin, count)) = partial else {
        return data;
    };
    out.extend_from_slice(format!("<{origin}>").as_bytes());
    let start = usize::try_from(origin)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = start
        .saturating_add(usize::try_from(count).unwrap_or(usize::MAX))
        .min(data.len());
    data.get(start..end).unwrap_or_default()
}

fn part_spec(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The section as the response names it: `section-spec` in canonical upper case.
fn section_spec(section: &Section) -> String {
    let mut spec = part_spec(&section.part);
    if let Some(text) = &section.text {
        if !spec.is_empty() {
            spec.push('.');
        }
        match text {
            SectionText::Header => spec.push_str("HEADER"),
            SectionText::Text => spec.push_str("TEXT"),
            SectionText::Mime => spec.push_str("MIME"),
            SectionText::HeaderFields { not, fields } => {
                spec.push_str(if *not {
                    "HEADER.FIELDS.NOT ("
                } else {
                    "HEADER.FIELDS ("
                });
                let names: Vec<String> = fields
                    .iter()
                    .map(|field| {
                        if !field.is_empty() && field.bytes().all(is_astring_char) {
                            field.to_ascii_uppercase()
                        } else {
                            string_text(field, false)
                        }
                    })
                    .collect();
                spec.push_str(&names.join(" "));
                spec.push(')');
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sections_canonically() {
        let section = Section {
            part: vec![1, 2],
            text: Some(SectionText::HeaderFields {
                not: true,
                fields: vec!["From".into(), "x y".into()],
            }),
        };
        assert_eq!(
            section_spec(&section),
            "1.2.HEADER.FIELDS.NOT (FROM \"x y\")"
        );
        assert_eq!(section_spec(&Section::default()), "");
        let mut out = Vec::new();
        assert_eq!(apply_partial(b"0123456789", Some((2, 3)), &mut out), b"234");
        assert_eq!(out, b"<2>");
        assert_eq!(apply_partial(b"0123", Some((10, 3)), &mut Vec::new()), b"");
    }

    #[test]
    fn writes_numbers_and_flags_in_place() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 4_294_967_295, usize::MAX] {
            out.clear();
            push_number(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        out.clear();
        push_flags(&mut out, &Flags::new(["\\Seen", "$Label"]), false);
        assert_eq!(out, b"FLAGS ($Label \\Seen)");
        out.clear();
        push_flags(&mut out, &Flags::default(), false);
        assert_eq!(out, b"FLAGS ()");
    }

    #[test]
    fn only_top_level_header_sections_are_served_from_the_header() {
        let section = |part: Vec<u32>, text: Option<SectionText>| FetchItem::BodySection {
            section: Section { part, text },
            partial: None,
            peek: true,
        };
        let fields = SectionText::HeaderFields {
            not: false,
            fields: vec!["From".into()],
        };
        assert!(only_top_header(&section(vec![], Some(fields.clone()))));
        assert!(only_top_header(&section(vec![], Some(SectionText::Header))));
        assert!(only_top_header(&FetchItem::Rfc822(Rfc822Part::Header)));
        assert!(!only_top_header(&section(vec![1], Some(fields))));
        assert!(!only_top_header(&section(vec![], None)));
        assert!(!only_top_header(&section(vec![], Some(SectionText::Text))));
        assert!(!only_top_header(&FetchItem::Rfc822(Rfc822Part::Full)));
    }
}
