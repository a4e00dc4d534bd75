//! One stress client: its session, the command mix it draws from, and the driver that
//! sends a command and feeds every response to the model. The commands themselves are
//! in `client/actions.rs`.

use super::{
    COPIED, Change, Conn, Done, Example, Exchange, Failure, Report, Res, SYSTEM_FLAGS, Shared,
    TRANSCRIPT_LINES, quote, set_of,
};
use crate::model::{self, Cx, Session, StoreOp, View};
use crate::wire::{self, Code, Resp, Status, Tok};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

mod actions;

/// What a client does next.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Action {
    Select,
    Examine,
    Noop,
    Check,
    Fetch,
    UidFetch,
    Store,
    Append,
    Copy,
    Move,
    Expunge,
    Search,
    Status,
    Idle,
    Close,
    Logout,
}

/// The mix in the selected state (weights).
const SELECTED_MIX: [(Action, u32); 16] = [
    (Action::Select, 25),
    (Action::Examine, 8),
    (Action::Noop, 20),
    (Action::Check, 5),
    (Action::Fetch, 30),
    (Action::UidFetch, 25),
    (Action::Store, 60),
    (Action::Append, 20),
    (Action::Copy, 15),
    (Action::Move, 20),
    (Action::Expunge, 20),
    (Action::Search, 30),
    (Action::Status, 15),
    (Action::Idle, 15),
    (Action::Close, 10),
    (Action::Logout, 2),
];
/// The mix with no mailbox selected.
const AUTHENTICATED_MIX: [(Action, u32); 6] = [
    (Action::Select, 50),
    (Action::Examine, 10),
    (Action::Status, 10),
    (Action::Append, 10),
    (Action::Noop, 5),
    (Action::Logout, 2),
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extension {
    None,
    Condstore,
    Qresync,
}

pub(crate) struct Client {
    id: usize,
    shared: Arc<Shared>,
    rng: StdRng,
    conn: Option<Conn>,
    session: Session,
    capabilities: Vec<String>,
    extension: Extension,
    session_id: u64,
    next_tag: u64,
    appended: u64,
    pub(crate) transcript: VecDeque<String>,
    before: Option<View>,
    pub(crate) report: Report,
}

impl Client {
    pub(crate) fn new(id: usize, shared: Arc<Shared>, seed: u64, extension: Extension) -> Client {
        let session = Session::new(shared.mailboxes.clone(), shared.check_recent);
        Client {
            id,
            shared,
            rng: StdRng::seed_from_u64(seed),
            conn: None,
            session,
            capabilities: Vec::new(),
            extension,
            session_id: 0,
            next_tag: 0,
            appended: 0,
            transcript: VecDeque::new(),
            before: None,
            report: Report::default(),
        }
    }

    pub(crate) async fn run(mut self) -> Report {
        while Instant::now() < self.shared.deadline() {
            if let Err(failure) = self.step().await {
                self.fail(failure);
            }
        }
        if self.conn.is_some()
            && let Err(failure) = self.logout().await
        {
            self.fail(failure);
        }
        self.report
    }

    fn fail(&mut self, failure: Failure) {
        *self.report.failures.entry(failure.kind).or_default() += 1;
        self.example(failure.kind, true, failure.detail);
        self.conn = None;
        self.session.deselect();
    }

    fn example(&mut self, kind: &'static str, failure: bool, detail: String) {
        if self.report.examples_of(kind, failure) >= self.shared.transcripts {
            return;
        }
        let model = self.before.as_ref().map_or_else(
            || "no mailbox selected".to_owned(),
            |v| v.describe(&self.shared.mailboxes),
        );
        self.report.examples.push(Example {
            kind,
            failure,
            client: self.id,
            session: self.session_id,
            detail,
            model,
            transcript: self.transcript.iter().cloned().collect(),
        });
    }

    fn note(&mut self, line: String) {
        if self.transcript.len() == TRANSCRIPT_LINES {
            self.transcript.pop_front();
        }
        self.transcript.push_back(line);
    }

    fn cx(&self) -> Cx {
        Cx::new(self.shared.snapshot())
    }

    fn pick<T: Copy>(&mut self, mix: &[(T, u32)]) -> T {
        let total: u32 = mix.iter().map(|(_, w)| w).sum();
        let mut n = self.rng.gen_range(0..total);
        for &(item, weight) in mix {
            if n < weight {
                return item;
            }
            n -= weight;
        }
        mix[0].0
    }

    /// Sends one command and reads its responses up to the tagged one, feeding every
    /// untagged response to the model.
    async fn run_command(
        &mut self,
        line: String,
        mut exchange: Exchange,
        cx: &mut Cx,
    ) -> Res<Done> {
        self.next_tag += 1;
        let tag = format!("c{}.{}", self.id.min(9999), self.next_tag);
        self.before = self.session.view.clone();
        let shown = exchange.shown.take().unwrap_or_else(|| line.clone());
        self.note(format!("C: {tag} {shown}"));
        let timeout = self.shared.timeout;
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::new("client_error", "no connection"));
        };
        conn.send(format!("{tag} {line}\r\n").as_bytes()).await?;
        let mut done_at: Option<tokio::time::Instant> = None;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(Failure::new("client_error", "no connection"));
            };
            let frame = match done_at {
                Some(at) => {
                    tokio::select! {
                        frame = conn.next() => frame?,
                        () = tokio::time::sleep_until(at) => {
                            done_at = None;
                            conn.send(b"DONE\r\n").await?;
                            self.note("C: DONE".into());
                            continue;
                        }
                    }
                }
                None => tokio::time::timeout(timeout, conn.next())
                    .await
                    .map_err(|_| {
                        Failure::new("no_reply", format!("no response within {timeout:?}"))
                    })??,
            };
            self.note(format!("S: {}", wire::printable(&frame)));
            let findings_before = cx.findings.len();
            let resp = match wire::parse(&frame) {
                Ok(resp) => resp,
                Err(e) => {
                    cx.findings.push(model::Finding {
                        kind: "unparsable_response",
                        detail: format!("{e}: {}", wire::printable(&frame)),
                    });
                    continue;
                }
            };
            match &resp {
                Resp::Continue => {
                    if let Some(literal) = exchange.literal.take() {
                        let conn = self
                            .conn
                            .as_mut()
                            .ok_or_else(|| Failure::new("client_error", "no connection"))?;
                        let mut bytes = literal;
                        bytes.extend_from_slice(b"\r\n");
                        conn.send(&bytes).await?;
                        self.note(format!("C: <literal of {} bytes>", bytes.len() - 2));
                    } else if let Some(idle) = exchange.idle.take() {
                        done_at = Some(tokio::time::Instant::now() + idle);
                    } else {
                        cx.findings.push(model::Finding {
                            kind: "unexpected_continuation",
                            detail: "a continuation request the command did not ask for".into(),
                        });
                    }
                }
                Resp::Status {
                    tag: Some(t),
                    status,
                    code,
                    ..
                } if *t == tag => {
                    self.session.tagged_code(code.as_ref(), cx);
                    return Ok(Done { status: *status });
                }
                Resp::Status { tag: Some(t), .. } => cx.findings.push(model::Finding {
                    kind: "unexpected_tag",
                    detail: format!("a tagged response for {t:?} while {tag:?} runs"),
                }),
                _ => self.session.untagged(&resp, cx),
            }
            for i in findings_before..cx.findings.len() {
                let kind = cx.findings[i].kind;
                self.note(format!("   ^^^ model error {kind}"));
            }
        }
    }

    /// After a command: counts it, publishes what it learned, records its findings.
    fn after(&mut self, name: &'static str, done: &Done, mut cx: Cx) {
        let counts = self.report.commands.entry(name).or_default();
        match done.status {
            Status::Ok => counts[0] += 1,
            Status::No => counts[1] += 1,
            _ => counts[2] += 1,
        }
        {
            let mut facts = self
                .shared
                .facts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (fact, learned) in facts.iter_mut().zip(&cx.learned) {
                fact.merge(learned);
            }
        }
        if !cx.recent.is_empty() {
            let mut recent = self
                .shared
                .recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &(mailbox, validity, uid) in &cx.recent {
                let first = *recent
                    .entry((mailbox, validity, uid))
                    .or_insert(self.session_id);
                if first != self.session_id {
                    // RFC 3501 §2.3.2: \Recent is shown to one session only.
                    cx.findings.push(model::Finding {
                        kind: "recent_in_two_sessions",
                        detail: format!(
                            "UID {uid} in {} shown \\Recent here and to session {first}",
                            self.shared.mailboxes[mailbox]
                        ),
                    });
                }
            }
        }
        if let Some(view) = &self.session.view {
            self.shared.sizes[view.mailbox].store(view.exists(), Ordering::Relaxed);
        }
        self.session.end_command(&cx);
        if done.status == Status::Bad {
            self.example("command_bad", true, format!("{name} answered BAD"));
        }
        for finding in std::mem::take(&mut cx.findings) {
            *self.report.findings.entry(finding.kind).or_default() += 1;
            self.example(finding.kind, false, finding.detail);
        }
    }

    /// Runs a command without special checks.
    async fn simple(&mut self, name: &'static str, line: String) -> Res<Done> {
        let mut cx = self.cx();
        let done = self.run_command(line, Exchange::default(), &mut cx).await?;
        self.after(name, &done, cx);
        Ok(done)
    }

    async fn connect(&mut self) -> Res<()> {
        self.note(format!("-- client {} connects", self.id));
        self.session = Session::new(self.shared.mailboxes.clone(), self.shared.check_recent);
        self.before = None;
        let mut conn = Conn::connect(self.shared.addr).await?;
        let greeting = tokio::time::timeout(self.shared.timeout, conn.next())
            .await
            .map_err(|_| Failure::new("no_reply", "no greeting"))??;
        self.note(format!("S: {}", wire::printable(&greeting)));
        self.conn = Some(conn);
        match wire::parse(&greeting)? {
            Resp::Status {
                tag: None,
                status: Status::Ok,
                ..
            } => {}
            other => return Err(Failure::new("bad_greeting", format!("{other:?}"))),
        }
        let mut cx = self.cx();
        let line = format!(
            "LOGIN {} {}",
            quote(&self.shared.user),
            quote(&self.shared.password)
        );
        let exchange = Exchange {
            shown: Some(format!("LOGIN {} \"***\"", quote(&self.shared.user))),
            ..Exchange::default()
        };
        let done = self.run_command(line, exchange, &mut cx).await?;
        let capabilities = match cx.code("CAPABILITY") {
            Some(code) => Some(atoms(&code.args)),
            None => cx.capabilities.take(),
        };
        self.after("LOGIN", &done, cx);
        if !done.ok() {
            return Err(Failure::new("login_failed", "LOGIN was refused"));
        }
        self.session_id = self.shared.sessions.fetch_add(1, Ordering::SeqCst);
        self.report.sessions += 1;
        self.capabilities = match capabilities {
            Some(c) => c,
            None => {
                let mut cx = self.cx();
                let done = self
                    .run_command("CAPABILITY".into(), Exchange::default(), &mut cx)
                    .await?;
                let c = cx.capabilities.take().unwrap_or_default();
                self.after("CAPABILITY", &done, cx);
                c
            }
        };
        let wanted = match self.extension {
            Extension::Qresync => Some("QRESYNC"),
            Extension::Condstore => Some("CONDSTORE"),
            Extension::None => None,
        };
        if let Some(wanted) = wanted
            && self.has("ENABLE")
            && self.has(wanted)
        {
            let mut cx = self.cx();
            let done = self
                .run_command(format!("ENABLE {wanted}"), Exchange::default(), &mut cx)
                .await?;
            // RFC 7162 §3.2.3: enabling QRESYNC enables CONDSTORE too.
            if cx.enabled.iter().any(|e| e == "QRESYNC") {
                self.session.qresync = true;
                self.session.condstore = true;
            }
            if cx.enabled.iter().any(|e| e == "CONDSTORE") {
                self.session.condstore = true;
            }
            self.after("ENABLE", &done, cx);
        }
        Ok(())
    }

    fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Creates the mailboxes afresh and seeds them.
    pub(crate) async fn setup(&mut self) -> Res<()> {
        self.connect().await?;
        for mailbox in 0..self.shared.mailboxes.len() {
            let name = quote(&self.shared.mailboxes[mailbox]);
            self.simple("DELETE", format!("DELETE {name}")).await?;
            let done = self.simple("CREATE", format!("CREATE {name}")).await?;
            if !done.ok() {
                return Err(Failure::new("setup", format!("CREATE {name} failed")));
            }
            for _ in 0..self.shared.messages {
                let done = self.append(mailbox).await?;
                if !done.ok() {
                    return Err(Failure::new("setup", format!("APPEND to {name} failed")));
                }
            }
        }
        self.logout().await
    }

    async fn step(&mut self) -> Res<()> {
        if self.conn.is_none() {
            return self.connect().await;
        }
        let Some(view) = &self.session.view else {
            return match self.pick(&AUTHENTICATED_MIX) {
                Action::Select => self.select(None, false).await,
                Action::Examine => self.select(None, true).await,
                Action::Status => self.status().await,
                Action::Append => {
                    let mailbox = self.rng.gen_range(0..self.shared.mailboxes.len());
                    if self.shared.can_grow(mailbox) {
                        self.append(mailbox).await.map(drop)
                    } else {
                        self.simple("NOOP", "NOOP".into()).await.map(drop)
                    }
                }
                Action::Logout => self.logout().await,
                _ => self.simple("NOOP", "NOOP".into()).await.map(drop),
            };
        };
        let (mailbox, read_only, exists) = (view.mailbox, view.read_only, view.exists());
        if view.tainted {
            // The model may be wrong after a finding: start again from a fresh SELECT.
            self.note("-- the model is reset after a model error: SELECT again".into());
            return self.select(Some(mailbox), read_only).await;
        }
        if !read_only && exists > self.shared.messages * 2 && self.rng.gen_bool(0.3) {
            return self.expunge().await;
        }
        match self.pick(&SELECTED_MIX) {
            Action::Select => self.select(None, false).await,
            Action::Examine => self.select(None, true).await,
            Action::Noop => self.simple("NOOP", "NOOP".into()).await.map(drop),
            Action::Check => self.simple("CHECK", "CHECK".into()).await.map(drop),
            Action::Fetch => self.fetch().await,
            Action::UidFetch => self.uid_fetch().await,
            Action::Store if read_only && self.rng.gen_bool(0.9) => self.fetch().await,
            Action::Store => self.store().await,
            Action::Append => {
                let dest = self.rng.gen_range(0..self.shared.mailboxes.len());
                if self.shared.can_grow(dest) {
                    self.append(dest).await.map(drop)
                } else {
                    self.search().await
                }
            }
            Action::Copy => self.copy(false).await,
            Action::Move if read_only || !self.has("MOVE") => self.copy(false).await,
            Action::Move => self.copy(true).await,
            Action::Expunge if read_only => self.search().await,
            Action::Expunge => self.expunge().await,
            Action::Search => self.search().await,
            Action::Status => self.status().await,
            Action::Idle => self.idle().await,
            Action::Close => self.close().await,
            Action::Logout => self.logout().await,
        }
    }
}

fn atoms(tokens: &[Tok]) -> Vec<String> {
    tokens
        .iter()
        .filter_map(Tok::atom)
        .map(str::to_ascii_uppercase)
        .collect()
}
