//! The commands a stress client sends, one method each, and what it checks after each.

use super::*;

impl Client {
    /// SELECT or EXAMINE (of `mailbox`, or of one chosen at random), then
    /// `FETCH 1:* (UID FLAGS)` as a client does to learn the mailbox.
    pub(super) async fn select(&mut self, mailbox: Option<usize>, examine: bool) -> Res<()> {
        let mailbox = mailbox.unwrap_or_else(|| self.rng.gen_range(0..self.shared.mailboxes.len()));
        let name: &'static str = if examine { "EXAMINE" } else { "SELECT" };
        self.session.begin_select(mailbox, examine);
        let mut cx = self.cx();
        let line = format!("{name} {}", quote(&self.shared.mailboxes[mailbox]));
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        self.session.finish_select(done.ok(), &mut cx);
        self.after(name, &done, cx);
        if self.session.view.as_ref().is_some_and(|v| v.exists() > 0) {
            self.fetch_set("1:*".into()).await?;
        }
        Ok(())
    }

    pub(super) async fn fetch(&mut self) -> Res<()> {
        let exists = self.session.view.as_ref().map_or(0, View::exists);
        if exists == 0 {
            return self.simple("NOOP", "NOOP".into()).await.map(drop);
        }
        let set = if self.rng.gen_bool(0.5) {
            "1:*".to_owned()
        } else {
            let a = self.rng.gen_range(1..=exists);
            let b = self.rng.gen_range(a..=exists.min(a + 5));
            format!("{a}:{b}")
        };
        self.fetch_set(set).await
    }

    pub(super) async fn fetch_set(&mut self, set: String) -> Res<()> {
        let items = if self.session.condstore {
            "(UID FLAGS MODSEQ)"
        } else {
            "(UID FLAGS)"
        };
        let mut cx = self.cx();
        cx.forbid_expunge = Some("FETCH");
        cx.solicited_fetch = true;
        let done = self
            .run_command(format!("FETCH {set} {items}"), Exchange::default(), &mut cx)
            .await?;
        self.after("FETCH", &done, cx);
        Ok(())
    }

    /// Up to `max` distinct messages whose UIDs the model knows: (sequence number, UID).
    pub(super) fn targets(&mut self, max: usize) -> Vec<(u32, u32)> {
        let Some(view) = &self.session.view else {
            return Vec::new();
        };
        let known: Vec<(u32, u32)> = view
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.uid.map(|u| (i as u32 + 1, u)))
            .collect();
        if known.is_empty() {
            return Vec::new();
        }
        let n = self.rng.gen_range(1..=max.min(known.len()));
        let mut picked: Vec<(u32, u32)> = Vec::with_capacity(n);
        while picked.len() < n {
            let candidate = known[self.rng.gen_range(0..known.len())];
            if !picked.contains(&candidate) {
                picked.push(candidate);
            }
        }
        picked
    }

    pub(super) async fn uid_fetch(&mut self) -> Res<()> {
        let targets = self.targets(3);
        let set = match (targets.first(), self.rng.gen_range(0..4)) {
            (None, _) | (_, 0) => "1:*".to_owned(),
            (Some((_, uid)), 1) => format!("{uid}:*"),
            _ => set_of(&targets.iter().map(|t| t.1).collect::<Vec<_>>()),
        };
        let items = if self.session.condstore && self.rng.gen_bool(0.5) {
            "(FLAGS MODSEQ)"
        } else {
            "(FLAGS)"
        };
        let mut cx = self.cx();
        cx.solicited_fetch = true;
        let done = self
            .run_command(
                format!("UID FETCH {set} {items}"),
                Exchange::default(),
                &mut cx,
            )
            .await?;
        self.after("UID FETCH", &done, cx);
        Ok(())
    }

    /// 1 to `max` flags: system flags and keywords from the pool.
    pub(super) fn random_flags(&mut self, min: usize, max: usize) -> Vec<String> {
        let n = self.rng.gen_range(min..=max);
        let mut flags: Vec<String> = Vec::with_capacity(n);
        for _ in 0..n {
            let flag = if self.rng.gen_bool(0.4) {
                SYSTEM_FLAGS[self.rng.gen_range(0..SYSTEM_FLAGS.len())].to_owned()
            } else {
                format!("$kw{}", self.rng.gen_range(0..self.shared.keywords))
            };
            if !flags.contains(&flag) {
                flags.push(flag);
            }
        }
        flags
    }

    pub(super) async fn store(&mut self) -> Res<()> {
        let targets = self.targets(3);
        let Some(view) = &self.session.view else {
            return Ok(());
        };
        if targets.is_empty() {
            return self.fetch().await;
        }
        let (mailbox, read_only) = (view.mailbox, view.read_only);
        let op = match self.rng.gen_range(0..20) {
            0..9 => StoreOp::Add,
            9..16 => StoreOp::Remove,
            _ => StoreOp::Replace,
        };
        let flags = self.random_flags(1, 3);
        let by_uid = self.rng.gen_bool(0.5);
        let silent = self.rng.gen_bool(0.2);
        let (uids, set) = target_set(&targets, by_uid);
        let shared = self.shared.clone();
        let watch_add = shared.watch(mailbox, Change::AddFlags);
        let watch_remove = shared.watch(mailbox, Change::RemoveFlags);
        let adds = op != StoreOp::Remove;
        let removes = op != StoreOp::Add;
        let _adding = adds.then(|| shared.begin(mailbox, Change::AddFlags));
        let _removing = removes.then(|| shared.begin(mailbox, Change::RemoveFlags));
        let name: &'static str = if by_uid { "UID STORE" } else { "STORE" };
        let line = format!(
            "{name} {set} {}{} ({})",
            op.wire(),
            if silent { ".SILENT" } else { "" },
            flags.join(" ")
        );
        let mut cx = self.cx();
        if !by_uid {
            cx.forbid_expunge = Some("STORE");
        }
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        // A STORE in a mailbox opened with EXAMINE changes nothing (RFC 9051 §6.3.3), but
        // may be answered OK (Dovecot: "OK Store ignored with read-only mailbox").
        // A message another session expunged may be reported with its flags unchanged
        // (RFC 2180 §4: the server can no longer change it): only the others are checked.
        if !read_only && done.ok() && !silent {
            let others_added = shared.others(mailbox, Change::AddFlags, watch_add, u64::from(adds));
            let others_removed = shared.others(
                mailbox,
                Change::RemoveFlags,
                watch_remove,
                u64::from(removes),
            );
            let lower: Vec<String> = flags.iter().map(|f| f.to_ascii_lowercase()).collect();
            let alive = shared.not_doomed_by_others(mailbox, &uids, self.id);
            self.session
                .check_store(op, &lower, &alive, others_added, others_removed, &mut cx);
        }
        self.after(name, &done, cx);
        Ok(())
    }

    pub(super) fn message(&mut self) -> Vec<u8> {
        self.appended += 1;
        format!(
            "From: Stress Tester <stress@example.com>\r\n\
             To: You <you@localhost>\r\n\
             Subject: stress {}.{}\r\n\
             Date: Mon, 1 Jun 2026 12:00:00 +0000\r\n\
             Message-ID: <{}.{}.{}@stress.example>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\r\n\
             A message of the IMAP stress run.\r\n",
            self.id.min(9999),
            self.appended,
            self.shared.run_id,
            self.id.min(9999),
            self.appended
        )
        .into_bytes()
    }

    pub(super) async fn append(&mut self, mailbox: usize) -> Res<Done> {
        let flags = self.random_flags(0, 3);
        let message = self.message();
        let flag_list = if flags.is_empty() {
            String::new()
        } else {
            format!("({}) ", flags.join(" "))
        };
        let line = format!(
            "APPEND {} {flag_list}{{{}}}",
            quote(&self.shared.mailboxes[mailbox]),
            message.len()
        );
        let exchange = Exchange {
            literal: Some(message),
            ..Exchange::default()
        };
        let mut cx = self.cx();
        let done = self.run_command(line, exchange, &mut cx).await?;
        if done.ok() {
            match cx.code("APPENDUID").map(|c| c.args.clone()).as_deref() {
                Some([validity, uid]) => match (validity.number::<u32>(), uid.number::<u32>()) {
                    (Some(validity), Some(uid)) => {
                        self.session.check_new_uids(
                            "APPENDUID",
                            mailbox,
                            validity,
                            &[uid],
                            &mut cx,
                        );
                    }
                    _ => cx.findings.push(model::Finding {
                        kind: "unparsable_response",
                        detail: "[APPENDUID] without two numbers".into(),
                    }),
                },
                Some(_) => cx.findings.push(model::Finding {
                    kind: "unparsable_response",
                    detail: "[APPENDUID] without two numbers".into(),
                }),
                None if self.has("UIDPLUS") => cx.findings.push(model::Finding {
                    // RFC 4315 §3: APPENDUID in the tagged OK of APPEND.
                    kind: "append_without_appenduid",
                    detail: "APPEND's tagged OK has no [APPENDUID] though UIDPLUS is announced"
                        .into(),
                }),
                None => {}
            }
        }
        self.after("APPEND", &done, cx);
        Ok(done)
    }

    /// COPY or MOVE (by sequence number or UID) of a few messages to any mailbox.
    pub(super) async fn copy(&mut self, moving: bool) -> Res<()> {
        let targets = self.targets(3);
        let Some(view) = &self.session.view else {
            return Ok(());
        };
        let mailbox = view.mailbox;
        let dest = self.rng.gen_range(0..self.shared.mailboxes.len());
        if targets.is_empty() || !self.shared.can_grow(dest) {
            return self.search().await;
        }
        let by_uid = self.rng.gen_bool(0.5);
        let (uids, set) = target_set(&targets, by_uid);
        let name: &'static str = match (moving, by_uid) {
            (false, false) => "COPY",
            (false, true) => "UID COPY",
            (true, false) => "MOVE",
            (true, true) => "UID MOVE",
        };
        let shared = self.shared.clone();
        if moving {
            shared.doom(mailbox, &uids, self.id);
        }
        let mut cx = self.cx();
        let line = format!("{name} {set} {}", quote(&self.shared.mailboxes[dest]));
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        if done.ok() {
            if let Some(code) = cx.code("COPYUID").cloned() {
                self.check_copyuid(&code, mailbox, dest, &uids, &mut cx);
            }
            if moving {
                // RFC 6851 §3.3: MOVE expunges the moved messages and says so before its
                // tagged OK; a message another client expunged first may be left alone
                // (RFC 2180 §4.4) and its expunge reported later.
                let alive = shared.not_doomed_by_others(mailbox, &uids, self.id);
                self.session.check_gone(
                    &alive,
                    "move_left_message",
                    &format!("{name} completed"),
                    &mut cx,
                );
            }
        }
        self.after(name, &done, cx);
        Ok(())
    }

    /// `[COPYUID validity source-set dest-set]` (RFC 4315 §3): the source UIDs are among
    /// those copied, one new UID for each. Copies of doomed messages are doomed too (they
    /// may carry \Deleted).
    pub(super) fn check_copyuid(
        &mut self,
        code: &Code,
        source_mailbox: usize,
        dest: usize,
        requested: &[u32],
        cx: &mut Cx,
    ) {
        let parsed = match code.args.as_slice() {
            [validity, source, target] => validity.number::<u32>().zip(
                source
                    .atom()
                    .and_then(|s| wire::expand_set(s).ok())
                    .zip(target.atom().and_then(|t| wire::expand_set(t).ok())),
            ),
            _ => None,
        };
        let Some((validity, (source, target))) = parsed else {
            return cx.findings.push(model::Finding {
                kind: "unparsable_response",
                detail: "[COPYUID] that is not a UIDVALIDITY and two UID sets".into(),
            });
        };
        let strangers: Vec<u32> = source
            .iter()
            .copied()
            .filter(|u| !requested.contains(u))
            .collect();
        if !strangers.is_empty() {
            cx.findings.push(model::Finding {
                kind: "copyuid_source_not_requested",
                detail: format!(
                    "[COPYUID] names source UIDs {strangers:?}, not among {requested:?}"
                ),
            });
        }
        if source.len() != target.len() {
            cx.findings.push(model::Finding {
                kind: "copyuid_count_mismatch",
                detail: format!(
                    "[COPYUID] pairs {} source UIDs with {} new ones",
                    source.len(),
                    target.len()
                ),
            });
        }
        self.session
            .check_new_uids("COPYUID", dest, validity, &target, cx);
        if source
            .iter()
            .any(|&uid| self.shared.doomed(source_mailbox, uid))
        {
            self.shared.doom(dest, &target, COPIED);
        }
    }

    /// STORE +FLAGS.SILENT (\Deleted) on a few messages, then EXPUNGE or UID EXPUNGE.
    pub(super) async fn expunge(&mut self) -> Res<()> {
        let exists = self.session.view.as_ref().map_or(0, View::exists);
        let max = if exists > self.shared.messages * 2 {
            6
        } else {
            3
        };
        let targets = self.targets(max);
        let Some(view) = &self.session.view else {
            return Ok(());
        };
        if targets.is_empty() {
            return self.fetch().await;
        }
        let mailbox = view.mailbox;
        let by_uid = self.rng.gen_bool(0.5);
        let (uids, set) = target_set(&targets, by_uid);
        let shared = self.shared.clone();
        let watch_remove = shared.watch(mailbox, Change::RemoveFlags);
        let _adding = shared.begin(mailbox, Change::AddFlags);
        shared.doom(mailbox, &uids, self.id);
        let store: &'static str = if by_uid { "UID STORE" } else { "STORE" };
        let mut cx = self.cx();
        if !by_uid {
            cx.forbid_expunge = Some("STORE");
        }
        let line = format!("{store} {set} +FLAGS.SILENT (\\Deleted)");
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        self.after(store, &done, cx);
        if !done.ok() {
            return Ok(());
        }
        let (name, line): (&'static str, String) = if by_uid && self.has("UIDPLUS") {
            ("UID EXPUNGE", format!("UID EXPUNGE {set}"))
        } else {
            ("EXPUNGE", "EXPUNGE".into())
        };
        let mut cx = self.cx();
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        if done.ok() && !shared.others(mailbox, Change::RemoveFlags, watch_remove, 0) {
            // RFC 9051 §6.4.3 (and RFC 4315 §2.1): the messages marked \Deleted are removed
            // and each removal is reported before the tagged OK.
            let alive = shared.not_doomed_by_others(mailbox, &uids, self.id);
            self.session.check_gone(
                &alive,
                "expunge_left_deleted_message",
                &format!("{name} completed after STORE +FLAGS (\\Deleted)"),
                &mut cx,
            );
        }
        self.after(name, &done, cx);
        Ok(())
    }

    pub(super) async fn search(&mut self) -> Res<()> {
        let criteria = match self.rng.gen_range(0..4) {
            0 => "ALL".to_owned(),
            1 => "FLAGGED".to_owned(),
            2 => "UNSEEN".to_owned(),
            _ => format!("KEYWORD $kw{}", self.rng.gen_range(0..self.shared.keywords)),
        };
        let by_uid = self.rng.gen_bool(0.5);
        let name: &'static str = if by_uid { "UID SEARCH" } else { "SEARCH" };
        let mut cx = self.cx();
        cx.searching = Some(by_uid);
        if !by_uid {
            cx.forbid_expunge = Some("SEARCH");
        }
        let done = self
            .run_command(format!("{name} {criteria}"), Exchange::default(), &mut cx)
            .await?;
        if done.ok() {
            self.session.check_search(&mut cx);
        }
        self.after(name, &done, cx);
        Ok(())
    }

    /// STATUS of a mailbox other than the selected one.
    pub(super) async fn status(&mut self) -> Res<()> {
        let count = self.shared.mailboxes.len();
        let selected = self.session.view.as_ref().map(|v| v.mailbox);
        let mut mailbox = self.rng.gen_range(0..count);
        if Some(mailbox) == selected {
            mailbox = (mailbox + 1) % count;
        }
        let items = if self.session.condstore {
            "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)"
        } else {
            "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"
        };
        let mut cx = self.cx();
        let line = format!("STATUS {} {items}", quote(&self.shared.mailboxes[mailbox]));
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        if done.ok()
            && let Some(messages) = self.session.check_status(mailbox, &mut cx)
        {
            self.shared.sizes[mailbox].store(messages as usize, Ordering::Relaxed);
        }
        self.after("STATUS", &done, cx);
        Ok(())
    }

    pub(super) async fn idle(&mut self) -> Res<()> {
        if !self.has("IDLE") {
            return self.simple("NOOP", "NOOP".into()).await.map(drop);
        }
        let exchange = Exchange {
            idle: Some(Duration::from_millis(self.rng.gen_range(100..800))),
            ..Exchange::default()
        };
        let mut cx = self.cx();
        let done = self.run_command("IDLE".into(), exchange, &mut cx).await?;
        self.after("IDLE", &done, cx);
        Ok(())
    }

    /// CLOSE (which expunges what is \Deleted without reporting it, RFC 9051 §6.4.1) or
    /// UNSELECT (RFC 3691).
    pub(super) async fn close(&mut self) -> Res<()> {
        let unselect = self.has("UNSELECT") && self.rng.gen_bool(0.5);
        let name: &'static str = if unselect { "UNSELECT" } else { "CLOSE" };
        let done = self.simple(name, name.into()).await?;
        if done.ok() {
            self.session.deselect();
        }
        Ok(())
    }

    pub(super) async fn logout(&mut self) -> Res<()> {
        let mut cx = self.cx();
        let done = self
            .run_command("LOGOUT".into(), Exchange::default(), &mut cx)
            .await?;
        if !cx.bye {
            // RFC 9051 §6.1.3: BYE before the tagged OK of LOGOUT.
            cx.findings.push(model::Finding {
                kind: "logout_without_bye",
                detail: "LOGOUT completed without an untagged BYE".into(),
            });
        }
        self.after("LOGOUT", &done, cx);
        self.conn = None;
        self.session.deselect();
        Ok(())
    }
}

/// The UIDs of these (sequence number, UID) targets, and the set that names them in a
/// command by UID or by sequence number.
fn target_set(targets: &[(u32, u32)], by_uid: bool) -> (Vec<u32>, String) {
    let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
    let set = if by_uid {
        set_of(&uids)
    } else {
        set_of(&targets.iter().map(|t| t.0).collect::<Vec<_>>())
    };
    (uids, set)
}
