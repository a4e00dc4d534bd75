//! One IMAP session: its state, the one gate every command passes, and the dispatch to
//! the command handlers (one file per family under `command/`).
//!
//! Invariants:
//! - Only this session (through its [`Connection`]) writes to its socket.
//! - No storage call is in flight while we wait on the network, and none holds a lock
//!   across a write: handlers call the store, then queue their responses.
//! - Untagged responses about changes made elsewhere are written only at the sync point
//!   after a command (or during IDLE), as RFC 9051 §7.5.1 allows.

use crate::connection::{Connection, Stop};
use crate::error::{CommandError, SessionError, store_error_response};
use crate::notify_state::Notify;
use crate::proto::response::{self, Code, Status};
use crate::proto::{CommandBody, Frame, FramerLimits, RejectReason, mutf7, parse_command};
use crate::view::{SyncPoint, View};
use crate::{ImapServer, ListenerRole};
use netutil::MaybeTlsStream;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use storage::AccountId;
use tokio::time::Instant;

/// RFC 9051 §6.2.3 lets a server close after failed logins; three per connection is what
/// a person mistyping needs, more is guessing.
pub(crate) const MAX_AUTH_FAILURES_PER_SESSION: u32 = 3;

/// A peer that has not logged in this long after its greeting is closed (`* BYE`
/// first). RFC 9051 §5.4 asks for at least 30 minutes of inactivity only "for sessions
/// after authentication"; a client needs a few round trips (CAPABILITY, STARTTLS,
/// LOGIN), and a person at a terminal well under a minute. Anything longer lets anonymous
/// peers hold connection slots, of which each address has only a few.
pub(crate) const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest annotation value (RFC 5464), for `[METADATA MAXSIZE n]`. A literal over
/// the framer's limit is refused as too large a value before it is sent, so the limit of
/// a value must not be more than that of a literal.
const METADATA_VALUE_LIMIT: u64 = storage::MAX_METADATA_VALUE_BYTES as u64;
const _: () = assert!(storage::MAX_METADATA_VALUE_BYTES <= crate::proto::framer::MAX_LITERAL_SIZE);

/// Id of a session in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionId(u64);

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

impl SessionId {
    pub(crate) fn next() -> SessionId {
        SessionId(NEXT_SESSION.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Where the session is in the protocol (RFC 9051 §3).
pub(crate) enum State {
    NotAuthenticated { auth_failures: u32 },
    Authenticated { account: AccountId },
    Selected { account: AccountId, view: Box<View> },
    Logout,
}

/// Extensions the client turned on with ENABLE (RFC 5161).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Enabled {
    /// RFC 9051: ESEARCH-style SEARCH results, no RECENT, UTF-8 names.
    pub(crate) rev2: bool,
    /// RFC 6855: UTF-8 in quoted strings and mailbox names.
    pub(crate) utf8: bool,
    /// RFC 7162 §3.1: MODSEQ in FETCH responses, HIGHESTMODSEQ on SELECT.
    pub(crate) condstore: bool,
    /// RFC 7162 §3.2.3: VANISHED instead of EXPUNGE, SELECT (QRESYNC ...).
    pub(crate) qresync: bool,
}

/// How a command ended when it did not fail.
pub(crate) enum Completion {
    Tagged {
        status: Status,
        code: Option<Code>,
        text: Cow<'static, str>,
    },
    /// The handler already wrote its tagged response (STARTTLS, before the handshake).
    Sent,
}

impl Completion {
    pub(crate) fn ok(text: impl Into<Cow<'static, str>>) -> Completion {
        Completion::Tagged {
            status: Status::Ok,
            code: None,
            text: text.into(),
        }
    }

    pub(crate) fn ok_with(code: Code, text: impl Into<Cow<'static, str>>) -> Completion {
        Completion::Tagged {
            status: Status::Ok,
            code: Some(code),
            text: text.into(),
        }
    }
}

impl Completion {
    /// The tagged status; a handler that sent its own response sent OK.
    fn status(&self) -> Status {
        match self {
            Completion::Tagged { status, .. } => *status,
            Completion::Sent => Status::Ok,
        }
    }
}

/// Counter: commands answered, labels `command` and `outcome` (`ok`, `no`, `bad`).
pub const IMAP_COMMANDS: &str = "letterbox_imap_commands_total";
/// The `command` label of a line that did not parse as a command.
const UNPARSED_COMMAND: &str = "invalid";

fn count_command(command: &'static str, status: Status) {
    let outcome = match status {
        Status::Ok => "ok",
        Status::No => "no",
        Status::Bad => "bad",
    };
    metrics::counter!(IMAP_COMMANDS, "command" => command, "outcome" => outcome).increment(1);
}

pub(crate) type CommandResult = Result<Completion, CommandError>;

pub(crate) struct Session {
    pub(crate) peer: SocketAddr,
    pub(crate) role: ListenerRole,
    pub(crate) server: ImapServer,
    pub(crate) conn: Connection,
    pub(crate) state: State,
    pub(crate) enabled: Enabled,
    /// The tag of the command being executed (IDLE and STARTTLS answer it themselves).
    pub(crate) tag: String,
    /// When the session is closed if it has not logged in by then ([`LOGIN_TIMEOUT`]).
    login_deadline: Instant,
    /// RFC 5465: what the last NOTIFY SET asked to hear of (`command/notify.rs`).
    pub(crate) notify: Option<Box<Notify>>,
}

impl Session {
    pub(crate) fn new(
        server: ImapServer,
        stream: MaybeTlsStream,
        peer: SocketAddr,
        role: ListenerRole,
        id: SessionId,
    ) -> Session {
        tracing::trace!(session = %id, "new session");
        Session {
            peer,
            role,
            server,
            // Until a login succeeds: small literals, no APPEND (see `auth.rs`).
            conn: Connection::new(stream, FramerLimits::pre_auth()),
            state: State::NotAuthenticated { auth_failures: 0 },
            enabled: Enabled::default(),
            tag: String::new(),
            login_deadline: Instant::now() + LOGIN_TIMEOUT,
            notify: None,
        }
    }

    /// How long to wait for the client's next octets: the idle timeout, and before login
    /// no later than the login deadline. `None` when the deadline has passed.
    fn read_timeout(&self) -> Option<Duration> {
        let idle_timeout = self.server.config.idle_timeout;
        if !matches!(self.state, State::NotAuthenticated { .. }) {
            return Some(idle_timeout);
        }
        let left = self
            .login_deadline
            .saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| left.min(idle_timeout))
    }

    /// Runs the session to its end: greeting, commands, and BYE.
    pub(crate) async fn run(mut self) {
        tracing::debug!("session started");
        let capabilities = Code::Capability(self.capabilities());
        response::untagged_status(
            &mut self.conn.out,
            Status::Ok,
            Some(&capabilities),
            "letterbox ready",
        );
        let end = self.serve_commands().await;
        match end {
            Ok(()) | Err(Stop::Eof) => {}
            Err(Stop::TimedOut) if matches!(self.state, State::NotAuthenticated { .. }) => {
                response::bye(&mut self.conn.out, "Autologout; no login in time");
            }
            Err(Stop::TimedOut) => {
                response::bye(&mut self.conn.out, "Autologout; idle for too long");
            }
            Err(Stop::ShuttingDown) => response::bye(&mut self.conn.out, "Server shutting down"),
            Err(Stop::Failed(error)) => tracing::debug!(%error, "session failed"),
        }
        self.conn.shutdown().await;
        tracing::debug!("session ended");
    }

    async fn serve_commands(&mut self) -> Result<(), Stop> {
        loop {
            if matches!(self.state, State::Logout) {
                self.conn.flush().await.map_err(Stop::Failed)?;
                return Ok(());
            }
            // Checked before every command, so that pipelined commands cannot keep an
            // anonymous session past its deadline either.
            let Some(timeout) = self.read_timeout() else {
                return Err(Stop::TimedOut);
            };
            match self.conn.next_frame() {
                Some(Frame::Command(bytes)) => self.execute(&bytes).await.map_err(Stop::Failed)?,
                Some(Frame::Continue) => {
                    response::continuation(&mut self.conn.out, "Ready for literal data");
                }
                Some(Frame::Rejected(rejection)) => {
                    let (status, code, text) = match rejection.reason {
                        RejectReason::LineTooLong => (Status::Bad, None, "Line too long"),
                        RejectReason::CommandTooLong => {
                            (Status::Bad, Some(Code::TooBig), "Command too long")
                        }
                        // RFC 7889 §4: NO [TOOBIG] for an APPEND over APPENDLIMIT.
                        RejectReason::LiteralTooBig { append: true } => {
                            (Status::No, Some(Code::TooBig), "Message too large")
                        }
                        RejectReason::LiteralTooBig { append: false } => {
                            (Status::Bad, Some(Code::TooBig), "Literal too large")
                        }
                        // RFC 9051 §6.3.12: APPEND is for the authenticated state; the
                        // same answer as the gate gives, before any octet is sent.
                        RejectReason::AppendNotAllowed => (Status::Bad, None, "Log in first"),
                        // RFC 5464 §4.3: "the server MUST return a tagged NO response
                        // with a "[METADATA MAXSIZE NNN]" response code".
                        RejectReason::MetadataValueTooBig => (
                            Status::No,
                            Some(Code::MetadataMaxSize(METADATA_VALUE_LIMIT)),
                            "Annotation value too large",
                        ),
                    };
                    match rejection.tag {
                        Some(tag) => response::tagged(
                            &mut self.conn.out,
                            tag.as_str(),
                            status,
                            code.as_ref(),
                            text,
                        ),
                        None => response::untagged_status(
                            &mut self.conn.out,
                            Status::Bad,
                            code.as_ref(),
                            text,
                        ),
                    }
                }
                None => {
                    if self.server.net.shutdown.is_shutting_down() {
                        return Err(Stop::ShuttingDown);
                    }
                    if self.notify.is_some() {
                        // RFC 5465 §1: notifications while no command is in progress.
                        self.wait_notifying(timeout).await?;
                    } else {
                        self.conn
                            .fill(timeout, &self.server.net.shutdown.token)
                            .await?;
                    }
                }
            }
        }
    }

    /// Parses and runs one command, then writes what changed elsewhere (when allowed)
    /// and the tagged completion.
    async fn execute(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        let command = match parse_command(bytes) {
            Ok(command) => command,
            Err(error) => {
                match error.tag {
                    Some(tag) => response::tagged(
                        &mut self.conn.out,
                        tag.as_str(),
                        Status::Bad,
                        None,
                        &error.message,
                    ),
                    None => response::untagged_status(
                        &mut self.conn.out,
                        Status::Bad,
                        None,
                        &error.message,
                    ),
                }
                count_command(UNPARSED_COMMAND, Status::Bad);
                return Ok(());
            }
        };
        self.tag = command.tag.to_string();
        let name = command.body.name();
        tracing::trace!(command = name, "command");
        let point = sync_point(&command.body);
        let result = match self.gate(&command.body) {
            Ok(()) => self.dispatch(command.body).await,
            Err(error) => Err(error),
        };
        let completion = match result {
            Ok(completion) => completion,
            Err(CommandError::Fatal(error)) => return Err(error),
            Err(CommandError::Bad(text)) => Completion::Tagged {
                status: Status::Bad,
                code: None,
                text,
            },
            Err(CommandError::No { code, text }) => Completion::Tagged {
                status: Status::No,
                code,
                text,
            },
            Err(CommandError::Store(error)) => {
                if error.is_temporary() {
                    tracing::warn!(%error, command = name, "storage failure");
                } else {
                    tracing::debug!(%error, command = name, "command refused by storage");
                }
                let (code, text) = store_error_response(&error);
                Completion::Tagged {
                    status: Status::No,
                    code,
                    text,
                }
            }
        };
        count_command(name, completion.status());
        if let (Some(point), State::Selected { view, .. }) = (point, &mut self.state)
            && let Err(error) = view
                .sync(&self.server.store, point, &mut self.conn.out)
                .await
        {
            tracing::warn!(%error, "could not bring the mailbox view up to date");
        }
        if let Completion::Tagged { status, code, text } = completion {
            let tag = std::mem::take(&mut self.tag);
            response::tagged(&mut self.conn.out, &tag, status, code.as_ref(), &text);
        }
        if let State::NotAuthenticated { auth_failures } = self.state
            && auth_failures >= MAX_AUTH_FAILURES_PER_SESSION
        {
            response::bye(&mut self.conn.out, "Too many authentication failures");
            self.state = State::Logout;
        }
        self.conn.flush_if_full().await
    }

    /// The one gate: is this command legal in this state, on this link?
    fn gate(&self, body: &CommandBody) -> Result<(), CommandError> {
        use CommandBody as C;
        let not_authenticated = matches!(self.state, State::NotAuthenticated { .. });
        let authenticated = matches!(self.state, State::Authenticated { .. });
        let selected = matches!(self.state, State::Selected { .. });
        let allowed = match body {
            // RFC 9051 §6.1: any state.
            C::Capability | C::Noop | C::Logout | C::Id(_) => true,
            // RFC 9051 §6.2: not authenticated state.
            C::StartTls | C::Login { .. } | C::Authenticate { .. } => not_authenticated,
            // RFC 5161 §3.1: ENABLE only in the authenticated state.
            C::Enable(_) => authenticated,
            // RFC 9051 §6.3: authenticated (and selected) state.
            C::Namespace
            | C::Select { .. }
            | C::Create { .. }
            | C::Delete { .. }
            | C::Rename { .. }
            | C::Subscribe { .. }
            | C::Unsubscribe { .. }
            | C::List(_)
            | C::Lsub { .. }
            | C::Status { .. }
            | C::Append(_)
            | C::Compress { .. }
            | C::GetQuota { .. }
            | C::GetQuotaRoot { .. }
            | C::SetQuota { .. }
            // RFC 5464 §4.2, §4.3: "This command is only available in authenticated or
            // selected state".
            | C::GetMetadata(_)
            | C::SetMetadata { .. }
            // RFC 5465 §3.1: NOTIFY is valid in the authenticated and selected states.
            | C::Notify(_)
            // RFC 4467 §6: "valid in authenticated and selected states" (the three).
            | C::GenUrlAuth(_)
            | C::UrlFetch(_)
            | C::ResetKey { .. }
            | C::Idle => authenticated || selected,
            // RFC 9051 §6.4: selected state.
            C::Check
            | C::Close
            | C::Unselect
            | C::Expunge { .. }
            | C::Search(_)
            | C::CancelUpdate(_)
            | C::Sort(_)
            | C::Thread(_)
            | C::Fetch(_)
            | C::Store(_)
            | C::Copy { .. } => selected,
        };
        if !allowed {
            return Err(CommandError::bad(match self.state {
                State::NotAuthenticated { .. } => "Log in first",
                _ if matches!(body, C::StartTls | C::Login { .. } | C::Authenticate { .. }) => {
                    "Already authenticated"
                }
                State::Authenticated { .. } if matches!(body, C::Enable(_)) => {
                    "Not valid in this state"
                }
                State::Authenticated { .. } => "No mailbox selected",
                _ => "Not valid in this state",
            }));
        }
        match body {
            // RFC 9051 §6.2.3 / §7.2.1 LOGINDISABLED: no cleartext passwords on an open link.
            C::Login { .. } | C::Authenticate { .. } if !self.login_allowed() => {
                Err(CommandError::no(
                    Some(Code::PrivacyRequired),
                    "Use STARTTLS before logging in",
                ))
            }
            C::StartTls if !self.starttls_available() => {
                Err(CommandError::bad("STARTTLS is not available"))
            }
            _ => Ok(()),
        }
    }

    async fn dispatch(&mut self, body: CommandBody) -> CommandResult {
        use CommandBody as C;
        match body {
            C::Capability => self.capability(),
            C::Noop | C::Check => Ok(Completion::ok("Done")),
            C::Logout => self.logout(),
            C::Id(params) => self.id(params),
            C::Enable(capabilities) => self.enable(capabilities),
            C::Namespace => self.namespace(),
            C::StartTls => self.starttls().await,
            C::Login { user, password } => self.login(&user, &password).await,
            C::Authenticate { mechanism, initial } => self.authenticate(&mechanism, initial).await,
            C::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => self.select(&mailbox, read_only, condstore, qresync).await,
            C::Create {
                mailbox,
                special_use,
            } => self.create(&mailbox, &special_use).await,
            C::Delete { mailbox } => self.delete(&mailbox).await,
            C::Rename { from, to } => self.rename(&from, &to).await,
            C::Subscribe { mailbox } => self.subscribe(&mailbox, true).await,
            C::Unsubscribe { mailbox } => self.subscribe(&mailbox, false).await,
            C::List(list) => self.list(list).await,
            C::Lsub { reference, pattern } => self.lsub(&reference, &pattern).await,
            C::Status { mailbox, items } => self.status(&mailbox, &items).await,
            C::Append(append) => self.append(append).await,
            C::Compress { algorithm } => self.compress(&algorithm).await,
            C::GetQuota { root } => self.get_quota(&root).await,
            C::GetQuotaRoot { mailbox } => self.get_quota_root(&mailbox).await,
            C::SetQuota { root, limits } => self.set_quota(&root, &limits),
            C::GetMetadata(command) => self.get_metadata(command).await,
            C::SetMetadata { target, entries } => self.set_metadata(&target, entries).await,
            C::Notify(set) => self.notify(set).await,
            C::GenUrlAuth(pairs) => self.genurlauth(pairs).await,
            C::UrlFetch(urls) => self.urlfetch(urls).await,
            C::ResetKey {
                mailbox,
                mechanisms,
            } => self.resetkey(mailbox.as_deref(), &mechanisms).await,
            C::Idle => self.idle().await,
            C::Close => self.close(true).await,
            C::Unselect => self.close(false).await,
            C::Expunge { uids } => self.expunge(uids.as_ref()).await,
            C::Search(search) => self.search(search).await,
            C::CancelUpdate(tags) => self.cancel_update(&tags),
            C::Sort(sort) => self.sort(sort).await,
            C::Thread(thread) => self.thread(thread).await,
            C::Fetch(fetch) => self.fetch(fetch).await,
            C::Store(store) => self.store(store).await,
            C::Copy {
                uid,
                set,
                mailbox,
                remove,
            } => self.copy(uid, &set, &mailbox, remove).await,
        }
    }

    // ---- helpers the handlers share ----

    pub(crate) fn is_loopback(&self) -> bool {
        self.peer.ip().to_canonical().is_loopback()
    }

    /// RFC 9051 §11.1: passwords only over TLS; loopback is the same machine.
    pub(crate) fn login_allowed(&self) -> bool {
        self.conn.is_tls() || self.is_loopback()
    }

    pub(crate) fn starttls_available(&self) -> bool {
        self.role == ListenerRole::Imap && self.server.net.tls.is_some() && !self.conn.is_tls()
    }

    /// UTF-8 mailbox names and quoted strings (RFC 9051 §5.1, RFC 6855 §3).
    pub(crate) fn utf8(&self) -> bool {
        self.enabled.rev2 || self.enabled.utf8
    }

    /// RFC 7162 §3.1: a "CONDSTORE enabling command" turns CONDSTORE on for the rest
    /// of the session, also for the mailbox selected now. The first one while a mailbox
    /// is selected tells the client that mailbox's HIGHESTMODSEQ, which the SELECT did
    /// not (RFC 7162 §3.1, §3.1.2.1), before the command's own answer, as Dovecot does.
    pub(crate) fn enable_condstore(&mut self) {
        self.enabled.condstore = true;
        if let State::Selected { view, .. } = &mut self.state
            && !view.condstore
        {
            view.condstore = true;
            response::untagged_status(
                &mut self.conn.out,
                Status::Ok,
                Some(&Code::HighestModSeq(view.highest_modseq().0)),
                "Highest",
            );
        }
    }

    pub(crate) fn account(&self) -> Result<AccountId, CommandError> {
        match &self.state {
            State::Authenticated { account } | State::Selected { account, .. } => Ok(*account),
            _ => Err(CommandError::bad("Log in first")),
        }
    }

    /// A mailbox name from the wire, as storage knows it (UTF-8).
    pub(crate) fn decode_mailbox(&self, name: &str) -> Result<String, CommandError> {
        if self.utf8() {
            return Ok(name.to_owned());
        }
        // A name that is not valid modified UTF-7 (RFC 3501 §5.1.3) names no mailbox we
        // could have: NO [CANNOT] (RFC 5530), as for any other name we cannot serve; the
        // command itself is well formed, so not BAD.
        mutf7::decode(name).ok_or_else(|| {
            CommandError::no(
                Some(Code::Cannot),
                "Mailbox name is not valid modified UTF-7",
            )
        })
    }

    /// A LIST or LSUB reference or pattern decoded as [`Session::decode_mailbox`] does;
    /// `None` when it is not valid modified UTF-7. Such a pattern matches no name we
    /// could have (RFC 3501 §6.3.8: LIST returns "a subset of names"), so it lists
    /// nothing and the command completes OK, as Dovecot 2.3 answers.
    pub(crate) fn decode_pattern(&self, pattern: &str) -> Option<String> {
        if self.utf8() {
            return Some(pattern.to_owned());
        }
        mutf7::decode(pattern)
    }

    /// A mailbox name for the wire, as a quoted string or literal.
    pub(crate) fn encode_mailbox(&self, name: &str) -> String {
        if self.utf8() {
            response::string_text(name, true)
        } else {
            response::string_text(&mutf7::encode(name), false)
        }
    }

    /// Reads one line between commands (SASL response), waiting as long as for a command.
    pub(crate) async fn read_line(&mut self, limit: usize) -> Result<Vec<u8>, CommandError> {
        loop {
            match self.conn.take_line(limit) {
                Some(Ok(line)) => return Ok(line),
                Some(Err(())) => return Err(CommandError::bad("Line too long")),
                None => {
                    // A SASL exchange before login ends at the login deadline too.
                    let Some(timeout) = self.read_timeout() else {
                        return Err(CommandError::Fatal(SessionError::Closed));
                    };
                    if let Err(stop) = self
                        .conn
                        .fill(timeout, &self.server.net.shutdown.token)
                        .await
                    {
                        return Err(CommandError::Fatal(match stop {
                            Stop::Failed(error) => error,
                            _ => SessionError::Closed,
                        }));
                    }
                }
            }
        }
    }
}

/// Which changes the client may hear after this command (RFC 9051 §7.5.1), or `None`
/// for commands that leave the selected state or report on their own.
fn sync_point(body: &CommandBody) -> Option<SyncPoint> {
    use CommandBody as C;
    match body {
        C::Select { .. } | C::Close | C::Unselect | C::Logout | C::Idle => None,
        C::Fetch(crate::proto::command::FetchCommand { uid: false, .. })
        | C::Store(crate::proto::command::StoreCommand { uid: false, .. })
        | C::Search(crate::proto::command::SearchCommand { uid: false, .. })
        | C::Sort(crate::proto::command::SortCommand { uid: false, .. })
        | C::Thread(crate::proto::command::ThreadCommand { uid: false, .. })
        | C::Copy { uid: false, .. } => Some(SyncPoint::NoExpunge),
        _ => Some(SyncPoint::Full),
    }
}
