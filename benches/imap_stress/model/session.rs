//! How one session's model takes each untagged response and response code, with the RFC
//! rule each one follows. The checks run after a command completes are in
//! `session/checks.rs`.

use super::*;

mod checks;

/// One session's model.
#[derive(Debug)]
pub struct Session {
    pub mailboxes: Vec<String>,
    pub condstore: bool,
    pub qresync: bool,
    pub check_recent: bool,
    pub view: Option<View>,
    pub opening: Option<Opening>,
}

impl Session {
    pub fn new(mailboxes: Vec<String>, check_recent: bool) -> Session {
        Session {
            mailboxes,
            condstore: false,
            qresync: false,
            check_recent,
            view: None,
            opening: None,
        }
    }

    pub fn mailbox_index(&self, name: &str) -> Option<usize> {
        self.mailboxes.iter().position(|m| m == name)
    }

    /// A SELECT or EXAMINE of `mailbox` is about to be sent.
    pub fn begin_select(&mut self, mailbox: usize, examine: bool) {
        let replacing = self.view.is_some();
        self.opening = Some(Opening {
            view: View::new(mailbox),
            examine,
            replacing,
            closed: !replacing,
            seen_flags: false,
            seen_exists: false,
            seen_recent: false,
        });
    }

    /// The SELECT or EXAMINE has its tagged response.
    pub fn finish_select(&mut self, ok: bool, cx: &mut Cx) {
        let Some(opening) = self.opening.take() else {
            return;
        };
        // RFC 9051 §6.3.2: a failed SELECT leaves no mailbox selected.
        self.view = None;
        if !ok {
            return;
        }
        let mut view = opening.view;
        let what = if opening.examine { "EXAMINE" } else { "SELECT" };
        // RFC 9051 §6.3.2 (and RFC 3501 §6.3.1): the REQUIRED untagged responses.
        if !opening.seen_flags {
            cx.found("select_missing_flags", format!("{what} sent no FLAGS"));
        }
        if !opening.seen_exists {
            cx.found("select_missing_exists", format!("{what} sent no EXISTS"));
        }
        if view.uidvalidity.is_none() {
            cx.found(
                "select_missing_uidvalidity",
                format!("{what} sent no [UIDVALIDITY]"),
            );
        }
        // RFC 3501 §6.3.1: RECENT is REQUIRED of an IMAP4rev1 session.
        if self.check_recent && !opening.seen_recent {
            cx.found("select_missing_recent", format!("{what} sent no RECENT"));
        }
        // RFC 7162 §3.1.2.1: HIGHESTMODSEQ or NOMODSEQ once CONDSTORE is enabled.
        if self.condstore && view.highestmodseq.is_none() && !view.nomodseq {
            cx.found(
                "select_missing_highestmodseq",
                format!("{what} after ENABLE CONDSTORE sent neither HIGHESTMODSEQ nor NOMODSEQ"),
            );
        }
        // RFC 7162 §3.2.11: with QRESYNC, CLOSED separates the old mailbox's responses.
        if self.qresync && opening.replacing && !opening.closed {
            cx.found(
                "select_without_closed",
                format!(
                    "{what} replacing a selected mailbox with QRESYNC enabled sent no [CLOSED]"
                ),
            );
        }
        if view.recent as usize > view.exists() {
            cx.found(
                "recent_exceeds_exists",
                format!("RECENT {} but EXISTS {}", view.recent, view.exists()),
            );
        }
        let read_only = cx.code("READ-ONLY").is_some();
        // RFC 9051 §6.3.3: EXAMINE's tagged OK MUST begin with [READ-ONLY].
        if opening.examine && !read_only {
            cx.found(
                "examine_not_read_only",
                "EXAMINE's tagged OK has no [READ-ONLY]".into(),
            );
        }
        view.read_only = read_only;
        view.uidnext_at_select = view.uidnext;
        for slot in &mut view.slots {
            slot.initial = true;
        }
        self.view = Some(view);
    }

    /// CLOSE, UNSELECT or LOGOUT completed.
    pub fn deselect(&mut self) {
        self.view = None;
        self.opening = None;
    }

    /// Where mailbox data goes now: the view being opened (everything before `[CLOSED]`
    /// but EXISTS, RECENT, FLAGS and codes may still be the old mailbox's and is dropped),
    /// or the selected one. `Err` when no mailbox is selected.
    fn target(&mut self, before_closed_too: bool) -> Result<Option<&mut View>, ()> {
        if let Some(opening) = &mut self.opening {
            if opening.closed || before_closed_too {
                return Ok(Some(&mut opening.view));
            }
            return Ok(None);
        }
        match &mut self.view {
            Some(view) => Ok(Some(view)),
            None => Err(()),
        }
    }

    fn view_finding(&mut self, cx: &mut Cx, kind: &'static str, detail: String) {
        let tainted = self
            .opening
            .as_ref()
            .map(|o| o.view.tainted)
            .or(self.view.as_ref().map(|v| v.tainted))
            .unwrap_or(false);
        if !tainted {
            cx.found(kind, detail);
        }
    }

    /// After the command: a finding about the view taints it.
    pub fn end_command(&mut self, cx: &Cx) {
        if let Some(view) = &mut self.view
            && !cx.findings.is_empty()
        {
            view.tainted = true;
        }
    }

    pub fn untagged(&mut self, resp: &Resp, cx: &mut Cx) {
        match resp {
            Resp::Status {
                tag: None,
                status,
                code,
                ..
            } => {
                if *status == crate::wire::Status::Bye {
                    cx.bye = true;
                }
                if let Some(code) = code {
                    self.code(code, cx);
                    cx.codes.push(code.clone());
                }
            }
            Resp::Data {
                number: Some(n),
                name,
                args,
            } => match name.as_str() {
                "EXISTS" => self.exists(*n, cx),
                "RECENT" => self.recent(*n, cx),
                "EXPUNGE" => self.expunge(*n, cx),
                "FETCH" => match args
                    .as_ref()
                    .map_err(|e| e.0.clone())
                    .and_then(|a| fetch_data(a).map_err(|e| e.0))
                {
                    Ok(data) => self.fetch(*n, &data, cx),
                    Err(e) => cx.found("unparsable_response", format!("FETCH {n}: {e}")),
                },
                _ => {}
            },
            Resp::Data {
                number: None,
                name,
                args,
            } => {
                let args = match args {
                    Ok(args) => args,
                    Err(e) => {
                        if matches!(
                            name.as_str(),
                            "FLAGS" | "SEARCH" | "VANISHED" | "STATUS" | "ENABLED"
                        ) {
                            cx.found("unparsable_response", format!("{name}: {e}"));
                        }
                        return;
                    }
                };
                match name.as_str() {
                    "FLAGS" => self.flags(args, cx),
                    "SEARCH" => {
                        let numbers = args.iter().filter_map(Tok::number).collect::<Vec<u32>>();
                        self.search_result(&numbers, cx);
                        cx.search.get_or_insert_with(Vec::new).extend(numbers);
                    }
                    "VANISHED" => self.vanished(args, cx),
                    "ENABLED" => cx.enabled.extend(
                        args.iter()
                            .filter_map(Tok::atom)
                            .map(str::to_ascii_uppercase),
                    ),
                    "CAPABILITY" => {
                        cx.capabilities = Some(
                            args.iter()
                                .filter_map(Tok::atom)
                                .map(str::to_ascii_uppercase)
                                .collect(),
                        );
                    }
                    "STATUS" => {
                        if let [name, Tok::List(items)] = args.as_slice()
                            && let Some(name) = name.text()
                        {
                            cx.status = Some((name.to_owned(), items.clone()));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// A tagged response's code (READ-ONLY, APPENDUID, COPYUID, ...): kept for the caller.
    pub fn tagged_code(&mut self, code: Option<&Code>, cx: &mut Cx) {
        if let Some(code) = code {
            cx.codes.push(code.clone());
        }
    }

    fn code(&mut self, code: &Code, cx: &mut Cx) {
        let number = |i: usize| code.args.get(i).and_then(Tok::number::<u64>);
        match code.name.as_str() {
            "CLOSED" => {
                if let Some(opening) = &mut self.opening {
                    opening.closed = true;
                }
            }
            "UIDVALIDITY" => {
                let Some(value) = number(0).and_then(|v| u32::try_from(v).ok()) else {
                    return cx.found(
                        "unparsable_response",
                        "[UIDVALIDITY] without a number".into(),
                    );
                };
                let Ok(Some(view)) = self.target(true) else {
                    return;
                };
                let mailbox = view.mailbox;
                let previous = view.uidvalidity.replace(value);
                let known = cx.snapshot_of(mailbox).uidvalidity;
                if let Some(old) = previous
                    .filter(|&o| o != value)
                    .or(known.filter(|&k| k != value))
                {
                    cx.found(
                        "uidvalidity_changed",
                        format!("[UIDVALIDITY {value}] for a mailbox whose UIDVALIDITY was {old}"),
                    );
                }
                cx.learn_uidvalidity(mailbox, value);
            }
            "UIDNEXT" => {
                let Some(value) = number(0).and_then(|v| u32::try_from(v).ok()) else {
                    return cx.found("unparsable_response", "[UIDNEXT] without a number".into());
                };
                let opening = self.opening.is_some();
                let Ok(Some(view)) = self.target(true) else {
                    return;
                };
                let mailbox = view.mailbox;
                let previous = view.uidnext.replace(value);
                let decreased = !opening && previous.is_some_and(|p| value < p);
                let snapshot = cx.snapshot_of(mailbox);
                if decreased {
                    cx.found(
                        "uidnext_decreased",
                        format!("[UIDNEXT {value}] after [UIDNEXT {}]", opt(previous)),
                    );
                } else if value < snapshot.uidnext || value <= snapshot.max_uid {
                    // RFC 9051 §2.3.1.1: UIDs are assigned in ascending order; UIDNEXT is
                    // above every UID assigned, and never goes down.
                    cx.found(
                        "uidnext_stale",
                        format!(
                            "[UIDNEXT {value}] but before the command UIDNEXT {} and UID {} had been seen",
                            snapshot.uidnext, snapshot.max_uid
                        ),
                    );
                }
                cx.learn_uidnext(mailbox, value);
            }
            "HIGHESTMODSEQ" => {
                let Some(value) = number(0) else {
                    return cx.found(
                        "unparsable_response",
                        "[HIGHESTMODSEQ] without a number".into(),
                    );
                };
                let opening = self.opening.is_some();
                let Ok(Some(view)) = self.target(true) else {
                    return;
                };
                let mailbox = view.mailbox;
                view.highestmodseq = Some(value);
                let snapshot = cx.snapshot_of(mailbox);
                // Only SELECT's value is compared: RFC 7162 §3.2 lets an untagged one be
                // lower while expunges are pending.
                if opening && value < snapshot.max_modseq {
                    cx.found(
                        "highestmodseq_stale",
                        format!(
                            "[HIGHESTMODSEQ {value}] but mod-sequence {} had been seen before the command",
                            snapshot.max_modseq
                        ),
                    );
                }
                cx.learn_modseq(mailbox, value);
            }
            "NOMODSEQ" => {
                if let Ok(Some(view)) = self.target(true) {
                    view.nomodseq = true;
                }
            }
            "PERMANENTFLAGS" => {
                let Some(list) = code.args.first().and_then(Tok::list) else {
                    return cx.found(
                        "unparsable_response",
                        "[PERMANENTFLAGS] without a list".into(),
                    );
                };
                match flag_list(list) {
                    Ok(flags) => {
                        if let Ok(Some(view)) = self.target(true) {
                            view.permanent = Some(flags);
                        }
                    }
                    Err(e) => cx.found("unparsable_response", format!("[PERMANENTFLAGS]: {e}")),
                }
            }
            _ => {}
        }
    }

    fn no_selection(&mut self, cx: &mut Cx, what: String) {
        // RFC 9051 §7.3 and §7.4: mailbox size and message status responses are about the
        // selected mailbox; with none selected there is nothing they can be about.
        cx.found(
            "mailbox_data_without_selection",
            format!("{what} while no mailbox is selected"),
        );
    }

    fn flags(&mut self, args: &[Tok], cx: &mut Cx) {
        let flags = match args.first().and_then(Tok::list).map(flag_list) {
            Some(Ok(flags)) => flags,
            _ => return cx.found("unparsable_response", "FLAGS without a flag list".into()),
        };
        if let Some(opening) = &mut self.opening {
            opening.seen_flags = true;
        }
        match self.target(true) {
            Ok(Some(view)) => view.flags = flags.into_iter().collect(),
            Ok(None) => {}
            Err(()) => self.no_selection(cx, "FLAGS".into()),
        }
    }

    fn exists(&mut self, n: u32, cx: &mut Cx) {
        let n = n as usize;
        if let Some(opening) = &mut self.opening {
            // The last EXISTS before the tagged OK is the new mailbox's: an earlier one may
            // still be about the mailbox being closed.
            opening.seen_exists = true;
            opening.view.slots = vec![Slot::default(); n];
            return;
        }
        let Some(view) = &mut self.view else {
            return self.no_selection(cx, format!("* {n} EXISTS"));
        };
        let known = view.exists();
        if n < known {
            // RFC 9051 §7.4.1: only EXPUNGE (or VANISHED) makes a mailbox smaller.
            view.slots.truncate(n);
            self.view_finding(
                cx,
                "exists_decreased",
                format!("* {n} EXISTS after {known} without expunges in between"),
            );
        } else {
            view.slots.resize(n, Slot::default());
        }
    }

    fn recent(&mut self, n: u32, cx: &mut Cx) {
        if let Some(opening) = &mut self.opening {
            opening.seen_recent = true;
            opening.view.recent = n;
            return;
        }
        let Some(view) = &mut self.view else {
            return self.no_selection(cx, format!("* {n} RECENT"));
        };
        view.recent = n;
        let exists = view.exists();
        if n as usize > exists {
            self.view_finding(
                cx,
                "recent_exceeds_exists",
                format!("* {n} RECENT but EXISTS is {exists}"),
            );
        }
    }

    fn expunge(&mut self, n: u32, cx: &mut Cx) {
        if self.qresync {
            // RFC 7162 §3.2.10: once QRESYNC is enabled, VANISHED replaces EXPUNGE.
            self.view_finding(
                cx,
                "expunge_with_qresync",
                format!("* {n} EXPUNGE to a session that enabled QRESYNC"),
            );
        }
        let Some(view) = self.removal_target(&format!("* {n} EXPUNGE"), cx) else {
            return;
        };
        let exists = view.exists();
        if n == 0 || n as usize > exists {
            return self.view_finding(
                cx,
                "expunge_out_of_range",
                format!("* {n} EXPUNGE but EXISTS is {exists}"),
            );
        }
        let slot = view.slots.remove(n as usize - 1);
        view.recent = view.recent.min(view.exists() as u32);
        if let Some(uid) = slot.uid {
            cx.expunged.push(uid);
        }
    }

    /// The view an EXPUNGE or VANISHED (`what`) removes a message from, if any.
    fn removal_target(&mut self, what: &str, cx: &mut Cx) -> Option<&mut View> {
        if let Some(command) = cx.forbid_expunge {
            // RFC 9051 §7.5.1: no EXPUNGE while responding to FETCH, STORE or SEARCH.
            self.view_finding(
                cx,
                "expunge_during_fetch_store_search",
                format!("{what} while responding to {command}"),
            );
        }
        if self.opening.is_none() && self.view.is_none() {
            self.no_selection(cx, what.to_owned());
            return None;
        }
        self.target(false).ok().flatten()
    }

    fn vanished(&mut self, args: &[Tok], cx: &mut Cx) {
        let (earlier, set) = match args {
            [Tok::List(tag), set]
                if tag
                    .first()
                    .and_then(Tok::atom)
                    .is_some_and(|t| t.eq_ignore_ascii_case("EARLIER")) =>
            {
                (true, set)
            }
            [set] => (false, set),
            _ => return cx.found("unparsable_response", "VANISHED without a UID set".into()),
        };
        let uids = match set.atom().map(expand_set) {
            Some(Ok(uids)) => uids,
            _ => return cx.found("unparsable_response", "VANISHED with a bad UID set".into()),
        };
        if !self.qresync {
            // RFC 7162 §3.2.10: only to a client that enabled QRESYNC.
            self.view_finding(
                cx,
                "vanished_without_qresync",
                "VANISHED to a session that did not enable QRESYNC".into(),
            );
        }
        if earlier {
            // RFC 7162 §3.2.10: VANISHED (EARLIER) does not change the view.
            return;
        }
        let Some(view) = self.removal_target("VANISHED", cx) else {
            return;
        };
        let mut strays = Vec::new();
        for uid in uids {
            if let Some(i) = view.index_of(uid) {
                view.slots.remove(i);
                cx.expunged.push(uid);
            } else if let Some(i) = view.unknown_slot_for(uid) {
                view.slots.remove(i);
            } else {
                strays.push(uid);
            }
        }
        view.recent = view.recent.min(view.exists() as u32);
        if !strays.is_empty() {
            // RFC 7162 §3.2.10: VANISHED without EARLIER stands for EXPUNGEs of messages in
            // the view; each decrements the message count, so it cannot name others.
            self.view_finding(
                cx,
                "vanished_uid_not_in_view",
                format!("VANISHED names UIDs {strays:?}, not in the view"),
            );
        }
    }

    fn fetch(&mut self, n: u32, data: &FetchData, cx: &mut Cx) {
        let (condstore, qresync) = (self.condstore, self.qresync);
        let check_recent = self.check_recent;
        let view = match self.target(false) {
            Ok(Some(view)) => view,
            Ok(None) => return,
            Err(()) => return self.no_selection(cx, format!("* {n} FETCH")),
        };
        let exists = view.exists();
        if n == 0 || n as usize > exists {
            // RFC 9051 §7.5.2: a FETCH is about a message in the view.
            return self.view_finding(
                cx,
                "fetch_out_of_range",
                format!("* {n} FETCH but EXISTS is {exists}"),
            );
        }
        let index = n as usize - 1;
        let mailbox = view.mailbox;
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        if let Some(uid) = data.uid {
            cx.learn_uid(mailbox, uid);
            match view.slots[index].uid {
                Some(known) if known != uid => problems.push((
                    "uid_changed",
                    format!("* {n} FETCH (UID {uid}) but message {n} has UID {known}"),
                )),
                Some(_) => {}
                None => {
                    // RFC 9051 §2.3.1.1: UIDs ascend with sequence numbers.
                    let (before, after) = view.neighbours(index);
                    if before.is_some_and(|b| b >= uid) || after.is_some_and(|a| a <= uid) {
                        problems.push((
                            "uid_not_ascending",
                            format!(
                                "* {n} FETCH (UID {uid}) between UIDs {} and {}",
                                opt(before),
                                opt(after)
                            ),
                        ));
                    } else if view.slots[index].initial
                        && view.uidnext_at_select.is_some_and(|next| uid >= next)
                    {
                        problems.push((
                            "uid_not_below_uidnext",
                            format!(
                                "* {n} FETCH (UID {uid}) for a message present at SELECT, whose UIDNEXT was {}",
                                opt(view.uidnext_at_select)
                            ),
                        ));
                    } else {
                        view.slots[index].uid = Some(uid);
                    }
                }
            }
        }
        if let Some(flags) = &data.flags {
            // RFC 9051 §7.3.5: the FLAGS response lists the flags of the mailbox; a client
            // keeps its flag list from it, so a keyword must be announced before use.
            let unannounced: Vec<&String> = flags
                .iter()
                .filter(|f| !f.starts_with('\\') && !view.flags.contains(*f))
                .collect();
            if !unannounced.is_empty() {
                problems.push((
                    "keyword_not_in_flags",
                    format!(
                        "* {n} FETCH (FLAGS ({})) names {unannounced:?}, not in the last FLAGS response",
                        flags.join(" ")
                    ),
                ));
            }
            // RFC 7162 §3.1 (CONDSTORE) and §3.2.4 (QRESYNC): once enabled, a FETCH the
            // client did not ask for (a flag change) carries MODSEQ, and with QRESYNC the
            // UID as well, so that the client can tell which message changed.
            if condstore && !cx.solicited_fetch && data.modseq.is_none() {
                problems.push((
                    "condstore_fetch_without_modseq",
                    format!("* {n} FETCH with FLAGS but no MODSEQ after ENABLE CONDSTORE"),
                ));
            }
            if qresync && !cx.solicited_fetch && data.uid.is_none() {
                problems.push((
                    "qresync_fetch_without_uid",
                    format!("* {n} FETCH with FLAGS but no UID after ENABLE QRESYNC"),
                ));
            }
        }
        let slot = &mut view.slots[index];
        if let Some(modseq) = data.modseq {
            cx.learn_modseq(mailbox, modseq);
            if let Some((old, old_flags)) = &slot.stamped {
                if modseq < *old {
                    problems.push((
                        "modseq_decreased",
                        format!("* {n} FETCH (MODSEQ ({modseq})) after MODSEQ {old}"),
                    ));
                } else if let Some(flags) = &data.flags
                    && modseq == *old
                    && without_recent(flags) != without_recent(old_flags)
                {
                    // RFC 7162 §3.1: every change of a message's metadata gives it a new,
                    // higher mod-sequence.
                    problems.push((
                        "flags_changed_same_modseq",
                        format!(
                            "* {n} FETCH (FLAGS ({}) MODSEQ ({modseq})): flags were ({}) at the same MODSEQ",
                            flags.join(" "),
                            old_flags.join(" ")
                        ),
                    ));
                }
            }
            if let Some(flags) = &data.flags {
                slot.stamped = Some((modseq, flags.clone()));
            }
        }
        if let Some(flags) = &data.flags {
            slot.flags = Some(flags.clone());
            if let Some(uid) = slot.uid {
                cx.fetched.push((uid, flags.clone()));
                // RFC 3501 §2.3.2: \Recent goes to one session; a session opened with
                // EXAMINE sees it without taking it (RFC 3501 §6.3.2).
                if check_recent
                    && !view.read_only
                    && flags.iter().any(|f| f == "\\recent")
                    && let Some(validity) = view.uidvalidity
                {
                    cx.recent.push((mailbox, validity, uid));
                }
            }
        }
        for (kind, detail) in problems {
            self.view_finding(cx, kind, detail);
        }
    }

    /// A SEARCH response to SEARCH or UID SEARCH: every number in it is in the view as it
    /// is when the response comes (RFC 9051 §7.3.4; a UID SEARCH may be followed by EXPUNGEs
    /// of messages it named).
    fn search_result(&mut self, results: &[u32], cx: &mut Cx) {
        let Some(by_uid) = cx.searching else { return };
        let Some(view) = &self.view else {
            return self.no_selection(cx, "SEARCH".into());
        };
        let exists = view.exists();
        let bad: Vec<u32> = results
            .iter()
            .copied()
            .filter(|&n| {
                if by_uid {
                    !view.holds_uid(n)
                } else {
                    n == 0 || n as usize > exists
                }
            })
            .collect();
        if !bad.is_empty() {
            let (kind, what) = if by_uid {
                ("search_uid_not_in_view", "UIDs")
            } else {
                ("search_seq_out_of_range", "sequence numbers")
            };
            self.view_finding(
                cx,
                kind,
                format!("SEARCH returned {what} {bad:?}, not in the view of {exists} messages"),
            );
        }
    }
}
