//! A selected session's view of its mailbox: the sequence number ↔ UID map as this
//! client knows it, kept in step with storage.
//!
//! Invariants:
//! - `entries` is sorted by UID; the sequence number of `entries[i]` is `i + 1`.
//! - The session watches only its own mailbox (`Store::watch_mailbox`); a wake-up only
//!   marks the view dirty, and the changes themselves are read with `changes_since` at a
//!   point where the client may hear about them, so nothing is lost however many
//!   changes come between two looks.
//! - A message expunged elsewhere stays in `entries` (and keeps its number) until an
//!   EXPUNGE response may be sent (RFC 9051 §7.5.1: never during FETCH, STORE or SEARCH).

use crate::contexts::Contexts;
use crate::proto::response;
use crate::proto::sequence::{RangeSet, SequenceSet};
use crate::search_eval::matching::SetBounds;
use std::collections::BTreeSet;
use storage::{
    Flags, MailboxId, MailboxName, MailboxWatch, MessageEntry, ModSeq, SYSTEM_FLAGS, Store, Uid,
    UidValidity,
};

pub(crate) struct View {
    pub(crate) mailbox: MailboxId,
    pub(crate) name: MailboxName,
    pub(crate) uid_validity: UidValidity,
    pub(crate) read_only: bool,
    pub(crate) entries: Vec<MessageEntry>,
    /// UIDs of `entries`, for binary search and UID set resolution.
    uids: Vec<u32>,
    /// Everything up to this modseq is reflected in `entries` (or in `deferred`).
    synced: ModSeq,
    dirty: bool,
    /// Expunged in storage, not yet reported to the client.
    deferred: BTreeSet<Uid>,
    /// The EXISTS count the client last heard.
    reported_exists: usize,
    /// RFC 5182: the result saved by `SEARCH RETURN (SAVE)`, as UIDs.
    pub(crate) saved: Vec<Uid>,
    /// RFC 7162 §3.1.4.1: flag changes are reported with their MODSEQ.
    pub(crate) condstore: bool,
    /// RFC 7162 §3.2.10: expunges are reported as VANISHED.
    pub(crate) qresync: bool,
    /// RFC 3501 §2.3.2: the UIDs that are `\Recent` in this session; `None` in an
    /// IMAP4rev2 session, which has no `\Recent` (RFC 9051 Appendix E).
    recent: Option<RangeSet>,
    /// The RECENT count the client last heard (RFC 3501 §7.3.2).
    reported_recent: usize,
    /// Messages arrived that `\Recent` is still to be settled for (claimed, or looked
    /// at in a read-only session): set by [`View::sync_arrivals`], done by
    /// [`View::sync_recent`].
    recent_due: Option<RecentDue>,
    /// The keywords the client was told of in FLAGS, in the order they were announced:
    /// those in the mailbox at SELECT, then each new one as it first appears.
    keywords: Vec<String>,
    /// RFC 5267 §4.3: the updating searches of this mailbox, told of what changes.
    pub(crate) contexts: Contexts,
    changes: MailboxWatch,
}

/// Arrivals whose `\Recent` is still to be settled: the view's largest UID before them
/// and after them.
#[derive(Debug, Clone, Copy)]
struct RecentDue {
    last_before: u32,
    through: u32,
}

/// What a sync point may report (RFC 9051 §7.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncPoint {
    /// NOOP, CHECK, IDLE, UID commands and every command without sequence numbers.
    Full,
    /// FETCH, STORE, SEARCH, COPY, MOVE by sequence number: no EXPUNGE.
    NoExpunge,
}

/// Appends to `known` the keywords of `flags` it lacks (keywords compare without regard
/// to case, RFC 9051 §2.3.2); true when there were any.
fn add_new_keywords<'a>(
    known: &mut Vec<String>,
    flags: impl IntoIterator<Item = &'a Flags>,
) -> bool {
    let before = known.len();
    for flag in flags.into_iter().flat_map(Flags::iter) {
        if !flag.starts_with('\\') && !known.iter().any(|k| k.eq_ignore_ascii_case(flag)) {
            known.push(flag.to_owned());
        }
    }
    known.len() > before
}

/// The flags of a message as a FETCH response lists them, with `\Recent` last when the
/// message is recent in this session (RFC 3501 §2.3.2).
pub(crate) fn flags_text(flags: &Flags, recent: bool) -> String {
    let mut text = flags.iter().collect::<Vec<_>>().join(" ");
    if recent {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str("\\Recent");
    }
    text
}

/// A flag update for the client: `seq FETCH ([UID uid ]FLAGS (...)[ MODSEQ (n)])`, with
/// the MODSEQ once CONDSTORE is on (RFC 7162 §3.1.4.1) and `\Recent` when `recent`.
pub(crate) fn flags_fetch_line(
    index: usize,
    entry: &MessageEntry,
    uid: bool,
    modseq: bool,
    recent: bool,
) -> String {
    let uid = if uid {
        format!("UID {} ", entry.uid)
    } else {
        String::new()
    };
    let modseq = if modseq {
        format!(" MODSEQ ({})", entry.modseq)
    } else {
        String::new()
    };
    format!(
        "{} FETCH ({uid}FLAGS ({}){modseq})",
        index + 1,
        flags_text(&entry.flags, recent)
    )
}

/// RFC 3501 §2.3.2: claims `\Recent` for the messages of `uids` (ascending) past what
/// `recent` already holds, and adds what this session got to `recent`. Writes only when
/// there is something to claim.
async fn claim_recent(
    store: &Store,
    mailbox: MailboxId,
    uid_validity: UidValidity,
    uids: &[u32],
    recent: &mut RangeSet,
) -> storage::Result<()> {
    let Some(&last) = uids.last() else {
        return Ok(());
    };
    claim_recent_through(store, mailbox, uid_validity, last, recent).await
}

/// [`claim_recent`] of the messages up to `last`.
async fn claim_recent_through(
    store: &Store,
    mailbox: MailboxId,
    uid_validity: UidValidity,
    last: u32,
    recent: &mut RangeSet,
) -> storage::Result<()> {
    let claimed_through = recent.ranges().last().map_or(0, |&(_, high)| high);
    if last <= claimed_through {
        return Ok(());
    }
    if let Some(first) = store.claim_recent(mailbox, uid_validity, Uid(last)).await? {
        recent.push_above(first.0.max(claimed_through + 1), last);
    }
    Ok(())
}

/// RFC 3501 §2.3.2 for a read-only session: of `uids` (ascending) past `seen_through`,
/// the ones from `first_recent` on are recent, since no read-write session has been told
/// of them; one that was is not ("subsequent sessions will not see \Recent set for this
/// message"). Nothing is claimed (§6.3.2: EXAMINE leaves `\Recent` as it is).
fn see_recent(recent: &mut RangeSet, first_recent: Uid, seen_through: u32, uids: &[u32]) {
    if let Some(&last) = uids.last() {
        see_recent_through(recent, first_recent, seen_through, last);
    }
}

/// [`see_recent`] of the messages up to `last`.
fn see_recent_through(recent: &mut RangeSet, first_recent: Uid, seen_through: u32, last: u32) {
    let low = first_recent.0.max(seen_through.saturating_add(1));
    if last >= low {
        recent.push_above(low, last);
    }
}

impl View {
    /// Builds the view: subscribe first, then read, so no change falls between. An
    /// IMAP4rev1 session (`imap4rev1`) keeps `\Recent`: a read-write one claims the
    /// messages no session has claimed yet, a read-only one sees them as recent without
    /// claiming them (RFC 3501 §6.3.2: EXAMINE leaves `\Recent` as it is).
    pub(crate) async fn open(
        store: &Store,
        mailbox: MailboxId,
        read_only: bool,
        imap4rev1: bool,
    ) -> storage::Result<View> {
        let changes = store.watch_mailbox(mailbox);
        let info = store.mailbox(mailbox).await?;
        let entries = store.mailbox_entries(mailbox).await?;
        let uids: Vec<u32> = entries.iter().map(|e| e.uid.0).collect();
        let mut keywords = Vec::new();
        add_new_keywords(&mut keywords, entries.iter().map(|e| &e.flags));
        let recent = if !imap4rev1 {
            None
        } else if read_only {
            // RFC 3501 §2.3.2: the messages no read-write session has been told of are
            // recent here too, without being claimed (§6.3.2); later arrivals are
            // looked at as they come (`see_recent`).
            let mut recent = RangeSet::default();
            see_recent(&mut recent, info.first_recent_uid, 0, &uids);
            Some(recent)
        } else {
            let mut recent = RangeSet::default();
            claim_recent(store, mailbox, info.uid_validity, &uids, &mut recent).await?;
            Some(recent)
        };
        let reported_recent = recent.as_ref().map_or(0, |r| r.count_in(&uids));
        Ok(View {
            mailbox,
            name: info.name,
            uid_validity: info.uid_validity,
            read_only,
            reported_exists: entries.len(),
            entries,
            uids,
            synced: info.highest_modseq,
            dirty: false,
            deferred: BTreeSet::new(),
            saved: Vec::new(),
            condstore: false,
            qresync: false,
            recent,
            reported_recent,
            recent_due: None,
            keywords,
            contexts: Contexts::default(),
            changes,
        })
    }

    /// RFC 3501 §2.3.2: true when the message is `\Recent` in this session.
    pub(crate) fn is_recent(&self, uid: Uid) -> bool {
        self.recent.as_ref().is_some_and(|r| r.contains(uid.0))
    }

    /// What the sequence sets, `$` and RECENT of a search key are resolved against
    /// (`search_eval/matching.rs`).
    pub(crate) fn set_bounds(&self) -> SetBounds<'_> {
        SetBounds {
            largest_uid: self.uids().last().copied().unwrap_or(0),
            exists: u32::try_from(self.exists()).unwrap_or(u32::MAX),
            saved: &self.saved,
            recent: self.recent_uids(),
            freeze_seqs: None,
        }
    }

    /// The UIDs that are `\Recent` in this session (empty in IMAP4rev2).
    pub(crate) fn recent_uids(&self) -> RangeSet {
        self.recent.clone().unwrap_or_default()
    }

    /// The number of messages `\Recent` in this session; None in IMAP4rev2.
    pub(crate) fn recent_in_session(&self) -> Option<usize> {
        self.recent
            .as_ref()
            .map(|recent| recent.count_in(&self.uids))
    }

    /// The number of `\Recent` messages, as `* n RECENT` says (RFC 3501 §7.3.2).
    pub(crate) fn recent_count(&self) -> usize {
        self.reported_recent
    }

    /// `FLAGS (...)` and `OK [PERMANENTFLAGS (...)]`: the system flags and the keywords
    /// of the mailbox; a read-only mailbox permits none (RFC 9051 §7.3.5, §7.1).
    pub(crate) fn write_flags(&self, out: &mut Vec<u8>) {
        let mut flags: Vec<&str> = SYSTEM_FLAGS.to_vec();
        flags.extend(self.keywords.iter().map(String::as_str));
        let listed = flags.join(" ");
        response::untagged(out, &format!("FLAGS ({listed})"));
        let permanent = if self.read_only {
            String::new()
        } else {
            format!("{listed} \\*")
        };
        response::untagged_status(
            out,
            response::Status::Ok,
            Some(&response::Code::PermanentFlags(permanent)),
            "Flags permitted",
        );
    }

    /// RFC 9051 §7.3.5 (RFC 3501 §7.2.6): a keyword the client has not been told of is
    /// announced with FLAGS and PERMANENTFLAGS before any FETCH that shows it. Call before
    /// writing FETCH responses with `flags`.
    pub(crate) fn announce_keywords<'a>(
        &mut self,
        flags: impl IntoIterator<Item = &'a Flags>,
        out: &mut Vec<u8>,
    ) {
        if add_new_keywords(&mut self.keywords, flags) {
            self.write_flags(out);
        }
    }

    /// The HIGHESTMODSEQ this view reflects (RFC 7162 §3.1.2.1).
    pub(crate) fn highest_modseq(&self) -> ModSeq {
        self.synced
    }

    pub(crate) fn uids(&self) -> &[u32] {
        &self.uids
    }

    pub(crate) fn index_of(&self, uid: Uid) -> Option<usize> {
        self.uids.binary_search(&uid.0).ok()
    }

    pub(crate) fn exists(&self) -> usize {
        self.entries.len()
    }

    /// Marks the view dirty when this mailbox changed. Never waits.
    fn poll(&mut self) {
        if self.changes.take_change() {
            self.dirty = true;
        }
    }

    /// Waits until something may have changed in this mailbox (IDLE). Cancel-safe.
    pub(crate) async fn changed(&mut self) {
        self.changes.changed().await;
        self.dirty = true;
    }

    /// Brings the view up to date and writes what the client may hear at this point:
    /// EXPUNGE (at full sync points), EXISTS, RECENT, and FETCH for flags changed
    /// elsewhere. [`View::sync_arrivals`] then [`View::sync_recent`].
    pub(crate) async fn sync(
        &mut self,
        store: &Store,
        point: SyncPoint,
        out: &mut Vec<u8>,
    ) -> storage::Result<()> {
        self.sync_arrivals(store, point, out).await?;
        self.sync_recent(store, out).await
    }

    /// The first part of [`View::sync`]: reads what changed and writes the FETCH of
    /// flags changed elsewhere, EXPUNGE (at full sync points) and EXISTS. What it leaves
    /// to [`View::sync_recent`] (which must follow before the client hears anything
    /// else) comes after those lines in the same order: IDLE sends these first, as a
    /// `\Recent` claim can wait for a write transaction (RFC 3501 §2.3.2) that the
    /// sessions not claiming need not wait for to hear of an arrival (issue 17).
    pub(crate) async fn sync_arrivals(
        &mut self,
        store: &Store,
        point: SyncPoint,
        out: &mut Vec<u8>,
    ) -> storage::Result<()> {
        self.poll();
        if self.dirty {
            self.dirty = false;
            // Every session this commit woke asks the same: one read for all of them.
            let changes = store
                .shared_changes_since(self.mailbox, self.synced)
                .await?;
            self.synced = changes.highest_modseq.max(self.synced);
            for uid in changes.expunged {
                if self.index_of(uid).is_some() {
                    self.deferred.insert(uid);
                }
            }
            self.announce_keywords(changes.changed.iter().map(|e| &e.flags), out);
            let mut appended = Vec::new();
            let last = self.uids.last().copied().unwrap_or(0);
            // RFC 5267 §4.3: messages that arrived or changed, for the updating searches
            // (`sync_recent`).
            for entry in &changes.changed {
                self.contexts.touch(entry.uid);
            }
            for entry in changes.changed {
                match self.index_of(entry.uid) {
                    Some(index) => {
                        let recent = self
                            .recent
                            .as_ref()
                            .is_some_and(|r| r.contains(entry.uid.0));
                        let Some(known) = self.entries.get_mut(index) else {
                            continue;
                        };
                        known.modseq = known.modseq.max(entry.modseq);
                        if known.flags != entry.flags {
                            known.flags = entry.flags;
                            let line = flags_fetch_line(index, known, true, self.condstore, recent);
                            response::untagged(out, &line);
                        }
                    }
                    // UIDs only grow (RFC 9051 §2.3.1.1): a new one is past the last.
                    None if entry.uid.0 > last => appended.push(entry),
                    None => {}
                }
            }
            appended.sort_by_key(|e| e.uid);
            let any_appended = !appended.is_empty();
            for entry in appended {
                self.uids.push(entry.uid.0);
                self.entries.push(entry);
            }
            if any_appended
                && self.recent.is_some()
                && let Some(&through) = self.uids.last()
            {
                // Settled before any later arrival is read: the claim covers these.
                let last_before = self.recent_due.map_or(last, |due| due.last_before);
                self.recent_due = Some(RecentDue {
                    last_before,
                    through,
                });
            }
        }
        if point == SyncPoint::Full && !self.deferred.is_empty() {
            let gone: Vec<Uid> = std::mem::take(&mut self.deferred).into_iter().collect();
            self.remove(&gone, out);
        }
        if self.entries.len() != self.reported_exists {
            self.reported_exists = self.entries.len();
            response::untagged(out, &format!("{} EXISTS", self.entries.len()));
        }
        Ok(())
    }

    /// The rest of [`View::sync`] after [`View::sync_arrivals`]: settles `\Recent` for
    /// the messages that arrived (RFC 3501 §2.3.2) and writes RECENT, then what the
    /// updating searches were told (RFC 5267 §4.3).
    pub(crate) async fn sync_recent(
        &mut self,
        store: &Store,
        out: &mut Vec<u8>,
    ) -> storage::Result<()> {
        if let Some(due) = self.recent_due
            && let Some(recent) = self.recent.as_mut()
        {
            if self.read_only {
                let first_recent = store.mailbox(self.mailbox).await?.first_recent_uid;
                see_recent_through(recent, first_recent, due.last_before, due.through);
            } else {
                claim_recent_through(store, self.mailbox, self.uid_validity, due.through, recent)
                    .await?;
            }
        }
        self.recent_due = None;
        self.report_recent(out);
        let touched = self.contexts.take_pending();
        let candidates: Vec<(u32, MessageEntry)> = touched
            .into_iter()
            .filter(|uid| !self.deferred.contains(uid))
            .filter_map(|uid| {
                let index = self.index_of(uid)?;
                let seq = u32::try_from(index + 1).ok()?;
                Some((seq, self.entries.get(index)?.clone()))
            })
            .collect();
        if let Err(error) = self
            .contexts
            .changed(store, candidates, &self.uids, out)
            .await
        {
            tracing::warn!(?error, "could not bring updating searches up to date");
        }
        Ok(())
    }

    /// RFC 3501 §7.3.2: `* n RECENT` whenever the number of `\Recent` messages changed
    /// (after EXISTS, as Dovecot sends it).
    fn report_recent(&mut self, out: &mut Vec<u8>) {
        if let Some(recent) = &self.recent {
            let count = recent.count_in(&self.uids);
            if count != self.reported_recent {
                self.reported_recent = count;
                response::untagged(out, &format!("{count} RECENT"));
            }
        }
    }

    /// Removes messages and writes their EXPUNGE responses. Highest first, so each
    /// number written is the message's number before any of these removals and the
    /// numbers of the ones still to come are unchanged (RFC 9051 §7.5.1). Under QRESYNC
    /// one `VANISHED uid-set` instead (RFC 7162 §3.2.10).
    pub(crate) fn remove(&mut self, uids: &[Uid], out: &mut Vec<u8>) {
        let mut indexes: Vec<usize> = uids.iter().filter_map(|&uid| self.index_of(uid)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        // RFC 5267 §4.3.4: REMOVEFROM before the EXPUNGE, numbered as before it.
        let gone: Vec<u32> = indexes
            .iter()
            .filter_map(|&i| self.uids.get(i).copied())
            .collect();
        self.contexts.expunged(&gone, &self.uids, out);
        let mut vanished = Vec::with_capacity(indexes.len());
        for &index in indexes.iter().rev() {
            self.entries.remove(index);
            let uid = self.uids.remove(index);
            if self.qresync {
                vanished.push(uid);
            } else {
                response::untagged(out, &format!("{} EXPUNGE", index + 1));
            }
        }
        if let Some(set) = SequenceSet::from_numbers(&vanished) {
            response::untagged(out, &format!("VANISHED {set}"));
        }
        for uid in uids {
            self.deferred.remove(uid);
        }
        // RFC 9051 §7.5.1: each EXPUNGE (or VANISHED UID) takes one off the count the
        // client holds. Messages that arrived in the same sync are not counted yet, so
        // the EXISTS that follows still tells of them.
        self.reported_exists = self.reported_exists.saturating_sub(indexes.len());
        self.dirty = true;
    }

    /// Records flags this session set itself, so its own change is not reported back.
    pub(crate) fn set_flags(&mut self, uid: Uid, modseq: ModSeq, flags: Flags) {
        if let Some(index) = self.index_of(uid)
            && let Some(entry) = self.entries.get_mut(index)
        {
            entry.flags = flags;
            entry.modseq = entry.modseq.max(modseq);
            self.contexts.touch(uid);
        }
    }

    /// RFC 7162 §3.2.5 / §3.2.6: `VANISHED (EARLIER)` with the UIDs expunged after
    /// `since` (within `known`, when given) that this view no longer holds; a UID it
    /// still holds was expunged after the view was read and goes out at the next sync.
    pub(crate) async fn write_vanished_earlier(
        &self,
        store: &Store,
        since: ModSeq,
        known: Option<&SequenceSet>,
        out: &mut Vec<u8>,
    ) -> storage::Result<()> {
        let expunged = store.changes_since(self.mailbox, since).await?.expunged;
        let largest = self.uids.last().copied().unwrap_or(0);
        let vanished: Vec<u32> = expunged
            .into_iter()
            .filter(|&uid| self.index_of(uid).is_none())
            .map(|uid| uid.0)
            .filter(|&uid| known.is_none_or(|set| set.contains(uid, largest.max(uid))))
            .collect();
        if let Some(set) = SequenceSet::from_numbers(&vanished) {
            response::untagged(out, &format!("VANISHED (EARLIER) {set}"));
        }
        Ok(())
    }

    /// True when the message was expunged elsewhere and the client has not heard yet.
    pub(crate) fn is_expunged(&self, uid: Uid) -> bool {
        self.deferred.contains(&uid)
    }

    /// The UIDs at `indexes` that were not expunged elsewhere: the messages a command
    /// may still change.
    pub(crate) fn live_uids(&self, indexes: &[usize]) -> Vec<Uid> {
        indexes
            .iter()
            .filter_map(|&i| self.entries.get(i))
            .filter(|e| !self.is_expunged(e.uid))
            .map(|e| e.uid)
            .collect()
    }
}
