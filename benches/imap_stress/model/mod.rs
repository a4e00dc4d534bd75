//! The stress client's model of one IMAP session's view, without I/O: every untagged
//! response updates it by the rules of RFC 9051 (and RFC 3501 for an IMAP4rev1 session,
//! RFC 7162 for CONDSTORE and QRESYNC), and every response that contradicts it is a
//! [`Finding`] with a kind.
//!
//! Invariants of the model, and what it deliberately does not claim:
//! - `View::slots` is the session's sequence-number → message map, as the server has told
//!   it: EXISTS appends slots whose UID and flags are unknown until a FETCH names them;
//!   EXPUNGE n and VANISHED remove one slot each and shift the rest.
//! - A UID, once known for a slot, never changes, and known UIDs ascend with sequence
//!   numbers (RFC 9051 §2.3.1.1).
//! - Nothing is concluded from what another session may have done concurrently. Facts
//!   shared between sessions ([`Facts`]) are compared only against a snapshot taken
//!   before the command was sent: what any session had received by then is certainly
//!   older than the answer to the command. Checks whose outcome another session's change
//!   could alter (the flags a STORE reports, messages still present after EXPUNGE or
//!   MOVE) are run by the caller only when no other session changed that mailbox in the
//!   meantime.
//! - After a finding about the view, the view is `tainted`: further findings about it are
//!   not counted (one server mistake would otherwise be reported many times over), and the
//!   client selects the mailbox again.

use crate::wire::{Code, FetchData, Resp, Tok, expand_set, fetch_data, flag_list};
use std::collections::BTreeSet;
use std::fmt::Write as _;

mod session;
pub use session::Session;

/// What all sessions have learned about one mailbox up to some moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The first UIDVALIDITY seen; the stress run never deletes a mailbox, so it must
    /// never change (RFC 9051 §2.3.1.1).
    pub uidvalidity: Option<u32>,
    /// The highest UID seen in any response: a UID assigned before.
    pub max_uid: u32,
    /// The highest UIDNEXT seen.
    pub uidnext: u32,
    /// The highest mod-sequence seen (FETCH MODSEQ, HIGHESTMODSEQ).
    pub max_modseq: u64,
}

impl Facts {
    pub fn merge(&mut self, other: &Facts) {
        if self.uidvalidity.is_none() {
            self.uidvalidity = other.uidvalidity;
        }
        self.max_uid = self.max_uid.max(other.max_uid);
        self.uidnext = self.uidnext.max(other.uidnext);
        self.max_modseq = self.max_modseq.max(other.max_modseq);
    }
}

/// A response that contradicts the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug, Default)]
pub struct Slot {
    pub uid: Option<u32>,
    /// Lower-cased, sorted; `None` until a FETCH FLAGS names them.
    pub flags: Option<Vec<String>>,
    /// The last FETCH that carried both flags and a mod-sequence: (modseq, flags).
    pub stamped: Option<(u64, Vec<String>)>,
    /// The slot was in the mailbox when it was selected: its UID is below that UIDNEXT.
    pub initial: bool,
}

#[derive(Clone, Debug)]
pub struct View {
    pub mailbox: usize,
    pub read_only: bool,
    pub slots: Vec<Slot>,
    /// The last FLAGS response, lower-cased.
    pub flags: BTreeSet<String>,
    /// The last PERMANENTFLAGS; `None` when never sent (then all flags are permanent,
    /// RFC 3501 §7.1).
    pub permanent: Option<Vec<String>>,
    pub recent: u32,
    pub uidvalidity: Option<u32>,
    /// UIDNEXT as the SELECT gave it (the bound for the initial slots' UIDs).
    pub uidnext_at_select: Option<u32>,
    pub uidnext: Option<u32>,
    pub highestmodseq: Option<u64>,
    pub nomodseq: bool,
    pub tainted: bool,
}

impl View {
    fn new(mailbox: usize) -> View {
        View {
            mailbox,
            read_only: false,
            slots: Vec::new(),
            flags: BTreeSet::new(),
            permanent: None,
            recent: 0,
            uidvalidity: None,
            uidnext_at_select: None,
            uidnext: None,
            highestmodseq: None,
            nomodseq: false,
            tainted: false,
        }
    }

    pub fn exists(&self) -> usize {
        self.slots.len()
    }

    /// The 0-based index of the slot with this UID.
    pub fn index_of(&self, uid: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.uid == Some(uid))
    }

    /// The known UIDs next to slot `index` on either side.
    fn neighbours(&self, index: usize) -> (Option<u32>, Option<u32>) {
        let before = self.slots[..index].iter().rev().find_map(|s| s.uid);
        let after = self.slots[index + 1..].iter().find_map(|s| s.uid);
        (before, after)
    }

    /// The index of an unknown slot this UID can belong to (between the known UIDs below
    /// and above it). All candidates are adjacent unknown slots, which the model cannot
    /// tell apart, so the first does.
    fn unknown_slot_for(&self, uid: u32) -> Option<usize> {
        let mut candidate = None;
        for (i, slot) in self.slots.iter().enumerate() {
            match slot.uid {
                Some(known) if known < uid => candidate = None,
                Some(_) => return candidate,
                None => {
                    candidate.get_or_insert(i);
                }
            }
        }
        candidate
    }

    /// The UID is in the view: known, or possibly that of an unknown slot.
    pub fn holds_uid(&self, uid: u32) -> bool {
        self.index_of(uid).is_some() || self.unknown_slot_for(uid).is_some()
    }

    /// May this flag be changed permanently (RFC 9051 §7.1 PERMANENTFLAGS)?
    pub fn permanent_flag(&self, flag: &str) -> bool {
        match &self.permanent {
            None => true,
            Some(list) => {
                list.iter().any(|f| f == flag)
                    || (!flag.starts_with('\\') && list.iter().any(|f| f == "\\*"))
            }
        }
    }

    /// The model as text, for a transcript.
    pub fn describe(&self, mailboxes: &[String]) -> String {
        let mut s = format!(
            "{} {} EXISTS={} RECENT={} UIDVALIDITY={} UIDNEXT={} HIGHESTMODSEQ={}\n  FLAGS=({}) PERMANENTFLAGS={}",
            mailboxes.get(self.mailbox).map_or("?", String::as_str),
            if self.read_only {
                "read-only"
            } else {
                "read-write"
            },
            self.exists(),
            self.recent,
            opt(self.uidvalidity),
            opt(self.uidnext),
            opt(self.highestmodseq),
            self.flags.iter().cloned().collect::<Vec<_>>().join(" "),
            self.permanent
                .as_ref()
                .map_or("(not sent)".to_owned(), |p| format!("({})", p.join(" "))),
        );
        for (i, slot) in self.slots.iter().enumerate() {
            let _ = write!(
                s,
                "\n  {}: uid={} flags={}",
                i + 1,
                opt(slot.uid),
                slot.flags
                    .as_ref()
                    .map_or("?".to_owned(), |f| format!("({})", f.join(" "))),
            );
            if let Some((modseq, _)) = &slot.stamped {
                let _ = write!(s, " modseq={modseq}");
            }
        }
        s
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or("?".to_owned(), |v| v.to_string())
}

fn without_recent(flags: &[String]) -> Vec<&String> {
    flags.iter().filter(|f| *f != "\\recent").collect()
}

/// A SELECT or EXAMINE in progress: its responses build the new view.
#[derive(Debug)]
pub struct Opening {
    pub view: View,
    examine: bool,
    /// Another mailbox was selected when the command was sent.
    replacing: bool,
    /// `[CLOSED]` seen (RFC 7162 §3.2.11): what follows is the new mailbox's.
    closed: bool,
    seen_flags: bool,
    seen_exists: bool,
    seen_recent: bool,
}

/// One command's context and what its responses said.
#[derive(Debug, Default)]
pub struct Cx {
    /// Facts of every mailbox as of just before the command was sent.
    pub snapshot: Vec<Facts>,
    /// What this command's responses taught, to be merged into the shared facts.
    pub learned: Vec<Facts>,
    /// A FETCH, STORE or SEARCH by sequence number: no EXPUNGE may be sent while
    /// responding to it (RFC 9051 §7.5.1).
    pub forbid_expunge: Option<&'static str>,
    /// Our own FETCH or UID FETCH: its FETCH responses carry what we asked for.
    pub solicited_fetch: bool,
    pub findings: Vec<Finding>,
    /// (UID, flags) of every FETCH FLAGS for a message whose UID is known.
    pub fetched: Vec<(u32, Vec<String>)>,
    /// A SEARCH (`Some(false)`) or UID SEARCH (`Some(true)`) is running.
    pub searching: Option<bool>,
    pub search: Option<Vec<u32>>,
    /// Response codes of untagged status responses, then of the tagged one.
    pub codes: Vec<Code>,
    pub expunged: Vec<u32>,
    pub enabled: Vec<String>,
    pub capabilities: Option<Vec<String>>,
    pub status: Option<(String, Vec<Tok>)>,
    /// (mailbox, UIDVALIDITY, UID) of messages this session saw with \Recent.
    pub recent: Vec<(usize, u32, u32)>,
    pub bye: bool,
}

impl Cx {
    pub fn new(snapshot: Vec<Facts>) -> Cx {
        let learned = vec![Facts::default(); snapshot.len()];
        Cx {
            snapshot,
            learned,
            ..Cx::default()
        }
    }

    fn found(&mut self, kind: &'static str, detail: String) {
        self.findings.push(Finding { kind, detail });
    }

    fn learn_uid(&mut self, mailbox: usize, uid: u32) {
        if let Some(l) = self.learned.get_mut(mailbox) {
            l.max_uid = l.max_uid.max(uid);
        }
    }

    fn learn_modseq(&mut self, mailbox: usize, modseq: u64) {
        if let Some(l) = self.learned.get_mut(mailbox) {
            l.max_modseq = l.max_modseq.max(modseq);
        }
    }

    fn learn_uidnext(&mut self, mailbox: usize, uidnext: u32) {
        if let Some(l) = self.learned.get_mut(mailbox) {
            l.uidnext = l.uidnext.max(uidnext);
        }
    }

    fn learn_uidvalidity(&mut self, mailbox: usize, uidvalidity: u32) {
        if let Some(l) = self.learned.get_mut(mailbox) {
            l.uidvalidity.get_or_insert(uidvalidity);
        }
    }

    fn snapshot_of(&self, mailbox: usize) -> Facts {
        self.snapshot.get(mailbox).copied().unwrap_or_default()
    }

    pub fn code(&self, name: &str) -> Option<&Code> {
        self.codes.iter().rev().find(|c| c.name == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    Add,
    Remove,
    Replace,
}

impl StoreOp {
    pub fn wire(self) -> &'static str {
        match self {
            StoreOp::Add => "+FLAGS",
            StoreOp::Remove => "-FLAGS",
            StoreOp::Replace => "FLAGS",
        }
    }
}
