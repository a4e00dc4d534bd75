//! One SMTP session: its state, the gate every command passes, and the dispatch to the
//! command handlers (one file per family).
//!
//! The session never touches the socket. Each entry point takes what the driver read
//! (a line, DATA content, a BDAT chunk, a SASL response) and returns an [`Action`]: the
//! reply to send and what to read next. The driver (`connection.rs`) does the I/O.

use crate::budget::Reservation;
use crate::proto::command::is_auth_line;
use crate::proto::command::parse_command;
use crate::proto::reply::{
    AUTH_REQUIRED, BAD_SEQUENCE, CLOSING, POLICY_CLOSE, SERVICE_READY, TLS_NOT_AVAILABLE,
    UNRECOGNIZED,
};
use crate::proto::{BodyBuffer, Command, Line, Reply, Ret};
use crate::{ListenerRole, SmtpConfig, SmtpServer};
use netutil::AuthThrottle;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use storage::{AccountId, LocalRecipient, QueuedRecipient, Store};

/// The `command` label of a line that did not parse as a command (too long, unknown
/// verb, bad syntax).
const UNPARSED_VERB: &str = "invalid";

/// Random id of a session, in logs and in the `Received:` ids of its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionId(u64);

impl SessionId {
    pub(crate) fn new() -> SessionId {
        SessionId(rand::random())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where the session is in the protocol (RFC 5321 §3.3, RFC 3030 §2).
#[derive(Debug)]
pub(crate) enum State {
    /// Before HELO/EHLO, and again after STARTTLS (RFC 3207 §4.2).
    Connected,
    /// Greeted; no mail transaction.
    Ready,
    /// MAIL accepted; RCPTs being collected.
    Envelope(Transaction),
    /// BDAT chunks arriving (RFC 3030): only BDAT, RSET, NOOP, HELP and QUIT are legal
    /// until BDAT LAST.
    Chunking(Transaction),
}

/// The envelope of one mail transaction.
#[derive(Debug)]
pub(crate) struct Transaction {
    /// Empty for the null reverse-path.
    pub(crate) mail_from: String,
    pub(crate) smtputf8: bool,
    pub(crate) ret: Option<Ret>,
    /// RFC 3461 ENVID, decoded.
    pub(crate) envid: Option<String>,
    /// Every accepted forward-path, in order (the recipient limit counts these).
    pub(crate) recipients: Vec<String>,
    /// The local recipients, each with the address it was reached by and what RCPT
    /// found of its account; an account may appear more than once.
    pub(crate) local: Vec<LocalRcpt>,
    /// Remote recipients (only for an authenticated sender), without duplicates.
    pub(crate) remote: Vec<QueuedRecipient>,
    /// BDAT content so far.
    pub(crate) body: BodyBuffer,
}

/// A local recipient: the address it was reached by, and its account, quota, INBOX and
/// active Sieve script as found at RCPT (`storage::Store::local_recipient`), so that
/// delivery asks the store nothing more about it.
#[derive(Debug)]
pub(crate) struct LocalRcpt {
    pub(crate) address: String,
    pub(crate) found: LocalRecipient,
}

/// The client's HELO/EHLO.
#[derive(Debug, Clone)]
pub(crate) struct Helo {
    pub(crate) name: String,
    /// EHLO rather than HELO.
    pub(crate) extended: bool,
}

/// The account an AUTH succeeded for.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) account: AccountId,
    pub(crate) email: String,
}

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send the reply; read the next command.
    Reply(Reply),
    /// Send the reply and close the connection.
    Close(Reply),
    /// Send the `354` reply, then read DATA content (up to `limit` octets kept) and hand
    /// it to [`Session::data_received`].
    ReadData { reply: Reply, limit: usize },
    /// Read exactly `size` octets into [`Session::chunk_buffer`], then call
    /// [`Session::chunk_received`].
    ReadChunk { size: usize, last: bool },
    /// Read and drop `size` octets of a refused BDAT (RFC 3030 §2: the chunk follows the
    /// command regardless), then send the reply.
    DiscardChunk { size: usize, reply: Reply },
    /// Send a `334` challenge and hand the next line to [`Session::sasl`].
    Challenge { reply: Reply, step: SaslStep },
    /// Send the `220`, drop buffered input and start TLS, then call
    /// [`Session::tls_started`].
    StartTls(Reply),
}

/// Where a SASL exchange is when the server waits for the client's next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SaslStep {
    /// PLAIN without an initial response: waiting for `authzid NUL authcid NUL passwd`.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password of `user`.
    LoginPassword { user: String },
}

impl From<Reply> for Action {
    fn from(reply: Reply) -> Action {
        if reply.closes_connection() {
            Action::Close(reply)
        } else {
            Action::Reply(reply)
        }
    }
}

pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) config: Arc<SmtpConfig>,
    pub(crate) store: Store,
    pub(crate) auth_throttle: AuthThrottle,
    pub(crate) role: ListenerRole,
    pub(crate) peer: SocketAddr,
    /// A TLS acceptor exists, so STARTTLS can be offered.
    pub(crate) tls_available: bool,
    /// The connection is encrypted now.
    pub(crate) tls: bool,
    pub(crate) state: State,
    pub(crate) helo: Option<Helo>,
    pub(crate) auth: Option<Authenticated>,
    /// Failed commands in a row.
    pub(crate) bad_commands: u32,
    /// Messages accepted in this session, for their ids.
    pub(crate) messages: u32,
    pub(crate) mail_auth: Option<Arc<crate::mailauth::InboundAuth>>,
    /// The verb of the command being answered, for the command metrics.
    pub(crate) verb: &'static str,
    /// This session's share of the server's byte budget: the content being received or
    /// delivered (see [`crate::budget`]).
    pub(crate) reservation: Reservation,
}

impl Session {
    pub(crate) fn new(
        server: &SmtpServer,
        role: ListenerRole,
        peer: SocketAddr,
        id: SessionId,
        tls: bool,
    ) -> Session {
        Session {
            id,
            config: server.config.clone(),
            store: server.store.clone(),
            auth_throttle: server.net.auth_throttle.clone(),
            role,
            peer,
            tls_available: server.net.tls.is_some(),
            tls,
            state: State::Connected,
            helo: None,
            auth: None,
            bad_commands: 0,
            messages: 0,
            mail_auth: server.mail_auth.clone(),
            verb: UNPARSED_VERB,
            reservation: server.data_budget.reservation(),
        }
    }

    /// The peer's address, with an IPv4-mapped IPv6 address shown as IPv4.
    pub(crate) fn peer_ip(&self) -> IpAddr {
        self.peer.ip().to_canonical()
    }

    /// RFC 5321 §4.3.1: the greeting (no enhanced code, RFC 2034 §3).
    pub(crate) fn greeting(&self) -> Reply {
        Reply::new(
            SERVICE_READY,
            format!("{} ESMTP letterbox", self.config.hostname),
        )
    }

    /// Handles one command line.
    pub(crate) async fn command(&mut self, line: Line) -> Action {
        let action = self.dispatch(line).await;
        self.count_errors(action)
    }

    async fn dispatch(&mut self, line: Line) -> Action {
        self.verb = UNPARSED_VERB;
        let Line::Complete(line) = line else {
            // RFC 5321 §4.5.3.1.4; the line was discarded to its end.
            return Reply::new(UNRECOGNIZED, "Line too long").into();
        };
        // The driver frames with the larger AUTH limit; every other command gets the
        // RFC 5321 §4.5.3.1.4 limit of 512 octets.
        if line.len() > self.config.max_line_length && !is_auth_line(&line) {
            return Reply::new(UNRECOGNIZED, "Line too long").into();
        }
        let command = match parse_command(&line) {
            Ok(command) => command,
            Err(error) => {
                tracing::debug!(%error, "bad command");
                return error.reply().into();
            }
        };
        tracing::trace!(command = command.name());
        self.verb = command.name();
        if let Err(reply) = self.gate(&command) {
            tracing::debug!(
                command = command.name(),
                reply = reply.basic(),
                "refused by gate"
            );
            return match command {
                Command::Bdat { size, .. } if !reply.closes_connection() => {
                    Action::DiscardChunk { size, reply }
                }
                _ => reply.into(),
            };
        }
        match command {
            Command::Ehlo { host } => self.ehlo(host).into(),
            Command::Helo { host } => self.helo(host).into(),
            Command::Mail(from) => self.mail(from).await.into(),
            Command::Rcpt(to) => self.rcpt(to).await.into(),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response).await,
            Command::StartTls => self.starttls(),
            Command::Rset => self.rset().into(),
            Command::Noop => self.noop().into(),
            Command::Help => self.help().into(),
            Command::Vrfy => self.vrfy().into(),
            Command::Expn => self.expn().into(),
            Command::Quit => Action::Close(Reply::new(CLOSING, "Bye")),
            Command::NotImplemented(name) => crate::proto::CommandError::NotImplemented(name)
                .reply()
                .into(),
        }
    }

    /// The one gate: decides from the state, the role, TLS and the rate limits whether
    /// a command may run at all. Handlers then only check their own arguments.
    ///
    /// | state      | legal                                                     |
    /// |------------|-----------------------------------------------------------|
    /// | any        | NOOP, HELP, RSET, QUIT, VRFY, EXPN                        |
    /// | Connected  | EHLO, HELO                                                |
    /// | Ready      | EHLO, HELO, STARTTLS, AUTH, MAIL                          |
    /// | Envelope   | EHLO, HELO, RCPT, DATA and BDAT (once a RCPT was accepted) |
    /// | Chunking   | BDAT only (RFC 3030 §2), besides RSET, NOOP, HELP, QUIT   |
    pub(crate) fn gate(&self, command: &Command) -> Result<(), Reply> {
        let in_transaction = matches!(self.state, State::Envelope(_) | State::Chunking(_));
        match (&self.state, command) {
            (_, Command::Noop | Command::Help | Command::Rset | Command::Quit) => Ok(()),
            (State::Chunking(_), Command::Bdat { .. }) => Ok(()),
            // RFC 3030 §2: a BDAT sequence ends with BDAT LAST or is aborted by RSET.
            (State::Chunking(_), _) => Err(Reply::new(
                BAD_SEQUENCE,
                "BDAT transfer in progress; send BDAT LAST or RSET",
            )),
            (_, Command::Vrfy | Command::Expn | Command::NotImplemented(_)) => Ok(()),
            // RFC 5321 §4.1.4: EHLO/HELO may come at any time and reset the transaction.
            (_, Command::Ehlo { .. } | Command::Helo { .. }) => Ok(()),
            (State::Connected, _) => Err(Reply::new(BAD_SEQUENCE, "Send EHLO or HELO first")),
            (_, Command::StartTls) => {
                if in_transaction {
                    Err(Reply::new(BAD_SEQUENCE, "Mail transaction in progress"))
                } else if self.tls {
                    Err(Reply::new(BAD_SEQUENCE, "TLS already active"))
                } else if !self.tls_available {
                    // RFC 3207 §4: 454 when TLS is not available.
                    Err(Reply::new(TLS_NOT_AVAILABLE, "TLS not available"))
                } else {
                    Ok(())
                }
            }
            (_, Command::Auth { .. }) => {
                if self.auth.is_some() {
                    // RFC 4954 §4: AUTH after a successful AUTH is refused with 503.
                    Err(Reply::new(BAD_SEQUENCE, "Already authenticated"))
                } else if in_transaction {
                    // RFC 4954 §4: AUTH is not permitted during a mail transaction.
                    Err(Reply::new(
                        BAD_SEQUENCE,
                        "AUTH not allowed during a mail transaction",
                    ))
                } else if self.role == ListenerRole::Inbound {
                    Err(Reply::new(BAD_SEQUENCE, "AUTH not available on this port"))
                } else if !self.auth_offered() {
                    // RFC 3207 §4 / RFC 8314 §3: no passwords over plaintext.
                    Err(Reply::new(
                        AUTH_REQUIRED,
                        "Must issue a STARTTLS command first",
                    ))
                } else {
                    // The throttle (refusing blocked addresses) is checked in `auth`,
                    // where the refusal also closes the connection.
                    Ok(())
                }
            }
            (State::Ready, Command::Mail(_)) => {
                if self.role != ListenerRole::Inbound && self.auth.is_none() {
                    // RFC 4954 §6 / RFC 6409 §4.3: submission needs authentication.
                    Err(Reply::new(AUTH_REQUIRED, "Authentication required"))
                } else {
                    Ok(())
                }
            }
            (State::Envelope(_), Command::Mail(_)) => {
                Err(Reply::new(BAD_SEQUENCE, "Sender already specified"))
            }
            (State::Envelope(_), Command::Rcpt(_)) => Ok(()),
            (State::Envelope(transaction), Command::Data | Command::Bdat { .. }) => {
                if transaction.recipients.is_empty() {
                    // RFC 5321 §3.3: DATA without an accepted RCPT.
                    Err(Reply::new(BAD_SEQUENCE, "Need RCPT command"))
                } else {
                    Ok(())
                }
            }
            (State::Ready, Command::Rcpt(_) | Command::Data | Command::Bdat { .. }) => {
                Err(Reply::new(BAD_SEQUENCE, "Need MAIL command"))
            }
        }
    }

    /// AUTH is offered (in EHLO) and accepted only on submission ports, and only over
    /// TLS or from the same machine: a password never crosses the network in clear.
    pub(crate) fn auth_offered(&self) -> bool {
        self.role != ListenerRole::Inbound && (self.tls || self.peer_ip().is_loopback())
    }

    /// STARTTLS is offered when we have a certificate and the stream is still plain.
    pub(crate) fn starttls_offered(&self) -> bool {
        self.tls_available && !self.tls
    }

    /// Ends any transaction, keeping HELO, TLS and AUTH (RFC 5321 §4.1.1.5).
    pub(crate) fn reset_transaction(&mut self) {
        if !matches!(self.state, State::Connected) {
            self.state = State::Ready;
        }
    }

    /// Counts failed commands in a row; past the limit, the session closes.
    pub(crate) fn count_errors(&mut self, action: Action) -> Action {
        let code = match &action {
            Action::Reply(reply) | Action::DiscardChunk { reply, .. } => reply.basic(),
            Action::Close(_) => return action,
            // Intermediate replies: the command is going well so far.
            Action::ReadData { .. }
            | Action::ReadChunk { .. }
            | Action::Challenge { .. }
            | Action::StartTls(_) => return action,
        };
        if code >= 500 {
            self.bad_commands = self.bad_commands.saturating_add(1);
            if self.bad_commands >= self.config.max_bad_commands {
                tracing::info!(errors = self.bad_commands, "too many errors; closing");
                return Action::Close(Reply::new(POLICY_CLOSE, "Too many errors, closing"));
            }
        } else if code < 400 {
            self.bad_commands = 0;
        }
        action
    }

    /// Counts the final reply to the current command in the metrics, by verb and reply
    /// class (RFC 5321 §4.2.1: the first digit says success, transient or permanent).
    pub(crate) fn count_reply(&self, reply: &Reply) {
        let outcome = match reply.basic() / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        metrics::counter!(crate::SMTP_COMMANDS, "command" => self.verb, "outcome" => outcome)
            .increment(1);
    }

    /// The buffer a BDAT chunk goes into while chunking, with the reservation its bytes
    /// are counted in.
    pub(crate) fn chunk_buffer(&mut self) -> Option<(&mut BodyBuffer, &mut Reservation)> {
        match &mut self.state {
            State::Chunking(transaction) => Some((&mut transaction.body, &mut self.reservation)),
            _ => None,
        }
    }

    /// Between commands only a chunked transfer holds content; whatever else was
    /// reserved (a delivered or refused message) goes back to the budget.
    pub(crate) fn settle_reservation(&mut self) {
        if !matches!(self.state, State::Chunking(_)) {
            self.reservation.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::{ForwardPath, MailFrom, Mechanism, RcptTo};
    use netutil::{ConnectionLimiter, ListenerShared, Shutdown};
    use std::time::Duration;

    async fn session(role: ListenerRole, peer: &str, tls: bool) -> (Session, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.sqlite").to_string_lossy())
            .await
            .expect("store");
        let server = SmtpServer {
            config: Arc::new(SmtpConfig::new("mx.test")),
            store,
            net: ListenerShared {
                tls: None,
                connections: ConnectionLimiter::new(10, 10),
                auth_throttle: AuthThrottle::new(5, Duration::from_secs(60), Duration::ZERO),
                shutdown: Shutdown::new(),
            },
            mail_auth: None,
            data_budget: crate::budget::DataBudget::default(),
        };
        let peer = peer.parse().expect("peer");
        (
            Session::new(&server, role, peer, SessionId::new(), tls),
            dir,
        )
    }

    fn mail() -> Command {
        Command::Mail(MailFrom {
            address: "a@b.example".into(),
            size: None,
            smtputf8: false,
            ret: None,
            envid: None,
        })
    }

    fn rcpt() -> Command {
        Command::Rcpt(RcptTo {
            path: ForwardPath::Mailbox("c@d.example".into()),
            notify: Vec::new(),
            orcpt: None,
        })
    }

    fn auth() -> Command {
        Command::Auth {
            mechanism: Mechanism::Plain,
            initial_response: None,
        }
    }

    fn code(result: Result<(), Reply>) -> u16 {
        match result {
            Ok(()) => 0,
            Err(reply) => reply.basic(),
        }
    }

    fn transaction(recipients: usize) -> Transaction {
        Transaction {
            mail_from: String::new(),
            smtputf8: false,
            ret: None,
            envid: None,
            recipients: vec!["x@y".into(); recipients],
            local: Vec::new(),
            remote: Vec::new(),
            body: BodyBuffer::new(10),
        }
    }

    #[tokio::test]
    async fn before_helo_only_helo_and_harmless_commands() {
        let (s, _dir) = session(ListenerRole::Inbound, "192.0.2.1:1000", false).await;
        for command in [
            mail(),
            rcpt(),
            Command::Data,
            Command::Bdat {
                size: 1,
                last: true,
            },
        ] {
            assert_eq!(code(s.gate(&command)), 503, "{command:?}");
        }
        for command in [
            Command::Ehlo { host: "x".into() },
            Command::Noop,
            Command::Rset,
            Command::Quit,
            Command::Help,
            Command::Vrfy,
        ] {
            assert_eq!(code(s.gate(&command)), 0, "{command:?}");
        }
    }

    #[tokio::test]
    async fn transaction_order() {
        let (mut s, _dir) = session(ListenerRole::Inbound, "192.0.2.1:1000", false).await;
        s.state = State::Ready;
        assert_eq!(code(s.gate(&mail())), 0);
        assert_eq!(code(s.gate(&rcpt())), 503);
        assert_eq!(code(s.gate(&Command::Data)), 503);
        s.state = State::Envelope(transaction(0));
        assert_eq!(code(s.gate(&mail())), 503);
        assert_eq!(code(s.gate(&rcpt())), 0);
        assert_eq!(code(s.gate(&Command::Data)), 503, "no recipient yet");
        s.state = State::Envelope(transaction(1));
        assert_eq!(code(s.gate(&Command::Data)), 0);
        assert_eq!(
            code(s.gate(&Command::Bdat {
                size: 3,
                last: false
            })),
            0
        );
        s.state = State::Chunking(transaction(1));
        assert_eq!(
            code(s.gate(&Command::Bdat {
                size: 3,
                last: true
            })),
            0
        );
        assert_eq!(code(s.gate(&Command::Data)), 503);
        assert_eq!(code(s.gate(&rcpt())), 503);
        assert_eq!(code(s.gate(&Command::Rset)), 0);
    }

    #[tokio::test]
    async fn submission_needs_auth_and_auth_needs_tls_or_loopback() {
        let (mut s, _dir) = session(ListenerRole::Submission, "192.0.2.1:1000", false).await;
        s.state = State::Ready;
        assert_eq!(code(s.gate(&mail())), 530);
        assert_eq!(
            code(s.gate(&auth())),
            530,
            "no AUTH over plaintext from afar"
        );
        assert!(!s.auth_offered());
        s.tls = true;
        assert!(s.auth_offered());
        assert_eq!(code(s.gate(&auth())), 0);
        s.auth = Some(Authenticated {
            account: AccountId(1),
            email: "a@b".into(),
        });
        assert_eq!(code(s.gate(&auth())), 503);
        assert_eq!(code(s.gate(&mail())), 0);

        let (mut local, _dir) = session(ListenerRole::Submission, "[::1]:1000", false).await;
        local.state = State::Ready;
        assert!(local.auth_offered());
        assert_eq!(code(local.gate(&auth())), 0);

        let (mut mapped, _dir) =
            session(ListenerRole::Submission, "[::ffff:127.0.0.1]:1000", false).await;
        mapped.state = State::Ready;
        assert!(mapped.auth_offered());
    }

    #[tokio::test]
    async fn inbound_never_offers_auth() {
        let (mut s, _dir) = session(ListenerRole::Inbound, "127.0.0.1:1000", true).await;
        s.state = State::Ready;
        assert!(!s.auth_offered());
        assert_eq!(code(s.gate(&auth())), 503);
        assert_eq!(code(s.gate(&mail())), 0, "no AUTH needed on port 25");
    }

    #[tokio::test]
    async fn starttls_gate() {
        let (mut s, _dir) = session(ListenerRole::Submission, "192.0.2.1:1000", false).await;
        s.state = State::Ready;
        assert_eq!(code(s.gate(&Command::StartTls)), 454, "no certificate");
        s.tls_available = true;
        assert_eq!(code(s.gate(&Command::StartTls)), 0);
        s.tls = true;
        assert_eq!(code(s.gate(&Command::StartTls)), 503);
    }

    #[tokio::test]
    async fn errors_in_a_row_close_the_session() {
        let (mut s, _dir) = session(ListenerRole::Inbound, "192.0.2.1:1000", false).await;
        for _ in 1..s.config.max_bad_commands {
            let action = s.command(Line::Complete(b"BOGUS\r\n".to_vec())).await;
            assert!(
                matches!(action, Action::Reply(ref r) if r.basic() == 500),
                "{action:?}"
            );
        }
        let action = s.command(Line::Complete(b"BOGUS\r\n".to_vec())).await;
        assert!(
            matches!(action, Action::Close(ref r) if r.basic() == 421),
            "{action:?}"
        );
    }

    #[tokio::test]
    async fn a_good_command_resets_the_error_count() {
        let (mut s, _dir) = session(ListenerRole::Inbound, "192.0.2.1:1000", false).await;
        for _ in 0..(s.config.max_bad_commands * 2) {
            let _ = s.command(Line::Complete(b"BOGUS\r\n".to_vec())).await;
            let action = s.command(Line::Complete(b"NOOP\r\n".to_vec())).await;
            assert!(matches!(action, Action::Reply(ref r) if r.basic() == 250));
        }
    }

    #[tokio::test]
    async fn refused_bdat_still_discards_its_chunk() {
        let (mut s, _dir) = session(ListenerRole::Inbound, "192.0.2.1:1000", false).await;
        s.state = State::Ready;
        let action = s
            .command(Line::Complete(b"BDAT 42 LAST\r\n".to_vec()))
            .await;
        assert!(
            matches!(action, Action::DiscardChunk { size: 42, ref reply } if reply.basic() == 503),
            "{action:?}"
        );
    }
}
