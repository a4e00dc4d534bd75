//! Checks run when a command completes (SEARCH, STORE, EXPUNGE and MOVE, COPYUID, STATUS):
//! what the tagged answer and the untagged responses before it must agree on.

use super::*;

impl Session {
    /// SEARCH or UID SEARCH completed with OK.
    pub fn check_search(&mut self, cx: &mut Cx) {
        if cx.search.is_none() {
            // RFC 3501 §6.4.4: the SEARCH response is sent even when nothing matches.
            cx.found(
                "search_without_response",
                "SEARCH completed without a SEARCH response".into(),
            );
        }
    }

    /// A STORE without .SILENT completed with OK: the FETCH responses it brought for the
    /// messages with these UIDs must show the change, unless another session may have
    /// changed the same flags meanwhile (`others_added`, `others_removed`) or the flag is
    /// not permanent (the server may ignore it, RFC 9051 §7.1).
    pub fn check_store(
        &mut self,
        op: StoreOp,
        flags: &[String],
        uids: &[u32],
        others_added: bool,
        others_removed: bool,
        cx: &mut Cx,
    ) {
        let Some(view) = &self.view else { return };
        let checked: Vec<&String> = flags.iter().filter(|f| view.permanent_flag(f)).collect();
        let mut problems = Vec::new();
        for &uid in uids {
            let results: Vec<&Vec<String>> = cx
                .fetched
                .iter()
                .filter(|(u, _)| *u == uid)
                .map(|(_, f)| f)
                .collect();
            if results.is_empty() {
                continue;
            }
            let wanted: Vec<&String> = checked
                .iter()
                .copied()
                .filter(|f| *f != "\\recent")
                .collect();
            // The flags of a FETCH result show the change: (kind, prefix) when none does.
            let shows = |r: &Vec<String>| match op {
                StoreOp::Add => checked.iter().all(|f| r.contains(f)),
                StoreOp::Remove => checked.iter().all(|f| !r.contains(f)),
                StoreOp::Replace => {
                    let shown = without_recent(r);
                    wanted.iter().all(|f| shown.contains(f))
                        && shown
                            .iter()
                            .all(|f| flags.contains(f) || !view.permanent_flag(f))
                }
            };
            let (kind, racy) = match op {
                StoreOp::Add => ("store_result_lacks_flag", others_removed),
                StoreOp::Remove => ("store_result_keeps_flag", others_added),
                StoreOp::Replace => ("store_result_differs", others_added || others_removed),
            };
            if !racy && !results.iter().any(|r| shows(r)) {
                problems.push((
                    kind,
                    format!(
                        "{} ({}) on UID {uid}, but its FETCH shows ({})",
                        op.wire(),
                        flags.join(" "),
                        results.last().map_or(String::new(), |r| r.join(" "))
                    ),
                ));
            }
        }
        for (kind, detail) in problems {
            self.view_finding(cx, kind, detail);
        }
    }

    /// These UIDs must have left the view by now (`kind` says why).
    pub fn check_gone(&mut self, uids: &[u32], kind: &'static str, why: &str, cx: &mut Cx) {
        let Some(view) = &self.view else { return };
        let left: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|&u| view.index_of(u).is_some())
            .collect();
        if !left.is_empty() {
            self.view_finding(
                cx,
                kind,
                format!("{why}, but UIDs {left:?} are still in the view"),
            );
        }
    }

    /// APPENDUID or COPYUID named these new UIDs in `mailbox`: they were assigned by this
    /// command, so they are above every UID and at least every UIDNEXT seen before it was
    /// sent, under the UIDVALIDITY known (RFC 4315 §3, RFC 9051 §2.3.1.1).
    pub fn check_new_uids(
        &mut self,
        code: &str,
        mailbox: usize,
        uidvalidity: u32,
        uids: &[u32],
        cx: &mut Cx,
    ) {
        let snapshot = cx.snapshot_of(mailbox);
        if let Some(known) = snapshot.uidvalidity
            && known != uidvalidity
        {
            cx.found(
                "uidvalidity_changed",
                format!("[{code} {uidvalidity} ..] for a mailbox whose UIDVALIDITY is {known}"),
            );
        }
        let old: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|&u| u <= snapshot.max_uid || u < snapshot.uidnext)
            .collect();
        if !old.is_empty() {
            cx.found(
                if code == "APPENDUID" {
                    "appenduid_not_new"
                } else {
                    "copyuid_not_new"
                },
                format!(
                    "[{code}] names UIDs {old:?}, but UID {} and UIDNEXT {} had been seen before the command",
                    snapshot.max_uid, snapshot.uidnext
                ),
            );
        }
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != uids.len() {
            cx.found(
                "copyuid_duplicate",
                format!("[{code}] names a UID twice: {uids:?}"),
            );
        }
        cx.learn_uidvalidity(mailbox, uidvalidity);
        for &uid in uids {
            cx.learn_uid(mailbox, uid);
        }
    }

    /// STATUS of `mailbox` answered: UIDVALIDITY as known, UIDNEXT and HIGHESTMODSEQ not
    /// behind what was seen before the command (RFC 9051 §6.3.11, RFC 7162 §3.1.3).
    /// Returns MESSAGES.
    pub fn check_status(&mut self, mailbox: usize, cx: &mut Cx) -> Option<u32> {
        let Some((name, items)) = cx.status.take() else {
            cx.found(
                "status_without_response",
                "STATUS completed without a STATUS response".into(),
            );
            return None;
        };
        if self.mailbox_index(&name) != Some(mailbox) {
            cx.found(
                "status_wrong_mailbox",
                format!("STATUS answered for {name:?}"),
            );
            return None;
        }
        let snapshot = cx.snapshot_of(mailbox);
        let mut messages = None;
        let mut pairs = items.iter();
        while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
            let (Some(key), Some(value)) = (key.atom(), value.number::<u64>()) else {
                cx.found(
                    "unparsable_response",
                    "STATUS item that is not NAME number".into(),
                );
                return None;
            };
            match key.to_ascii_uppercase().as_str() {
                "MESSAGES" => messages = u32::try_from(value).ok(),
                "UIDVALIDITY" => {
                    let value = u32::try_from(value).unwrap_or(0);
                    if let Some(known) = snapshot.uidvalidity
                        && known != value
                    {
                        cx.found(
                            "uidvalidity_changed",
                            format!("STATUS UIDVALIDITY {value} for a mailbox whose UIDVALIDITY is {known}"),
                        );
                    }
                    cx.learn_uidvalidity(mailbox, value);
                }
                "UIDNEXT" => {
                    let value = u32::try_from(value).unwrap_or(0);
                    if value < snapshot.uidnext || value <= snapshot.max_uid {
                        cx.found(
                            "uidnext_stale",
                            format!(
                                "STATUS UIDNEXT {value} but before the command UIDNEXT {} and UID {} had been seen",
                                snapshot.uidnext, snapshot.max_uid
                            ),
                        );
                    }
                    cx.learn_uidnext(mailbox, value);
                }
                "HIGHESTMODSEQ" => {
                    if value < snapshot.max_modseq {
                        cx.found(
                            "highestmodseq_stale",
                            format!(
                                "STATUS HIGHESTMODSEQ {value} but mod-sequence {} had been seen before the command",
                                snapshot.max_modseq
                            ),
                        );
                    }
                    cx.learn_modseq(mailbox, value);
                }
                _ => {}
            }
        }
        messages
    }
}
