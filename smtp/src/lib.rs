//! SMTP front end: inbound MX (port 25) and authenticated submission (587 STARTTLS,
//! 465 implicit TLS).
//!
//! Layout: [`proto`] is the sans-I/O core (framing, parsing, dot-stuffing, replies);
//! [`session`] holds the session state and the one gate that decides which command is
//! legal when; one file per command family (`ehlo`, `auth`, `mail`, `rcpt`, `data`,
//! `starttls`, `basic`); [`submission`] checks who an authenticated client sends as;
//! [`connection`] is the thin I/O driver that owns the socket.
//!
//! Invariants:
//! - Nothing is held across a network write that could block storage: handlers take
//!   what they need, call the (async) store, and only then is the reply written.
//! - A `250` for a message is sent only after `Store::deliver` returned, which is after
//!   the commit is durable.
//! - Nothing the client sends can panic a session: no `unwrap`, `expect` or unchecked
//!   indexing on network data.
#![forbid(unsafe_code)]

mod auth;
mod basic;
pub mod budget;
mod connection;
mod data;
mod ehlo;
mod error;
mod mail;
pub mod mailauth;
pub mod outbound;
pub mod proto;
pub mod queue;
mod rcpt;
mod session;
mod sieve;
mod starttls;
pub mod submission;
mod trace;

#[cfg(test)]
mod tests;

pub use error::SessionError;

use netutil::{ListenerShared, MaybeTlsStream};
use session::{Session, SessionId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::net::TcpListener;

/// Counter: commands answered, labels `command` (the verb) and `outcome` (the final
/// reply's class, `2xx`..`5xx`).
pub const SMTP_COMMANDS: &str = "letterbox_smtp_commands_total";

/// Which port a listener serves, and so which rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    /// Port 25: mail from the internet for local domains; no AUTH needed, no relay.
    Inbound,
    /// Port 587: submission, STARTTLS then AUTH (RFC 6409).
    Submission,
    /// Port 465: submission over implicit TLS (RFC 8314).
    Submissions,
}

/// Limits and identity of the SMTP server; every limit has its reason beside it.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Our name in the greeting, EHLO and Received headers.
    pub hostname: String,
    /// Largest message accepted (SIZE, RFC 1870).
    pub max_message_size: usize,
    /// Recipients per transaction (RFC 5321 §4.5.3.1.8 requires at least 100).
    pub max_recipients: usize,
    /// RFC 5321 §4.5.3.2.7: 5 minutes waiting for a command.
    pub command_timeout: Duration,
    /// RFC 5321 §4.5.3.2.5: 3 minutes waiting for each DATA block.
    pub data_timeout: Duration,
    /// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
    pub max_line_length: usize,
    /// RFC 4954 §4: AUTH command and SASL response lines may be up to 12288 octets.
    pub max_auth_line_length: usize,
    /// Failed commands in a row before we hang up: a client that gets 20 errors running
    /// is broken or probing (address harvesting, fuzzing), not sending mail.
    pub max_bad_commands: u32,
    /// How long a session waits for the byte budget before `452 4.3.1`
    /// ([`budget::BUDGET_WAIT`] has the reason).
    pub data_budget_wait: Duration,
    /// Whom an authenticated client may name in `From:` and `Sender:` ([`submission`]).
    pub submission: submission::SubmissionConfig,
}

impl SmtpConfig {
    pub fn new(hostname: impl Into<String>) -> Self {
        SmtpConfig {
            hostname: hostname.into(),
            max_message_size: storage::DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: 100,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            max_line_length: 512,
            max_auth_line_length: 12288,
            max_bad_commands: 20,
            data_budget_wait: budget::BUDGET_WAIT,
            submission: submission::SubmissionConfig::default(),
        }
    }
}

/// Shared state of every SMTP listener of one server.
#[derive(Clone)]
pub struct SmtpServer {
    pub config: Arc<SmtpConfig>,
    pub store: Store,
    /// TLS, connection limits, login throttle and shutdown, as every front end has them.
    pub net: ListenerShared,
    /// SPF/DKIM/DMARC/ARC checks on the inbound listener; `None` turns them off.
    pub mail_auth: Option<Arc<mailauth::InboundAuth>>,
    /// The bytes of message content all sessions may hold at once (see [`budget`]).
    pub data_budget: budget::DataBudget,
}

impl SmtpServer {
    /// Accepts connections on `listener` until shutdown; each session runs as a task
    /// tracked by `shutdown.tracker`.
    pub async fn serve(&self, listener: TcpListener, role: ListenerRole) {
        let address = listener.local_addr().ok();
        // RFC 8314 §3: on port 465 the TLS handshake comes before the greeting.
        let implicit_tls = match (role, &self.net.tls) {
            (ListenerRole::Submissions, Some(acceptor)) => Some(acceptor.clone()),
            (ListenerRole::Submissions, None) => {
                tracing::error!(?address, "port 465 needs a TLS certificate; not serving");
                return;
            }
            _ => None,
        };
        tracing::info!(?role, ?address, "SMTP listener started");
        // RFC 5321 §3.1: a server that cannot take the connection may answer 421 at once.
        let refusal = proto::Reply::new(proto::reply::POLICY_CLOSE, "Too many connections");
        netutil::serve_connections(
            &listener,
            &self.net.connections,
            &self.net.shutdown,
            implicit_tls,
            &refusal.to_bytes(),
            |peer| {
                let id = SessionId::new();
                let span = tracing::info_span!("smtp", session = %id, peer = %peer, ?role);
                let server = self.clone();
                (span, move |stream| async move {
                    server.handle(stream, peer, role, id).await
                })
            },
        )
        .await;
        tracing::info!(?role, ?address, "SMTP listener stopped");
    }

    async fn handle(
        &self,
        stream: MaybeTlsStream,
        peer: SocketAddr,
        role: ListenerRole,
        id: SessionId,
    ) {
        tracing::info!("connection opened");
        let session = Session::new(self, role, peer, id, stream.is_tls());
        match connection::run(
            stream,
            session,
            self.net.tls.clone(),
            self.net.shutdown.token.clone(),
        )
        .await
        {
            Ok(()) => tracing::debug!("closed"),
            Err(error) => tracing::debug!(%error, "closed on error"),
        }
    }
}
