//! IMAP front end: IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) on 143 (STARTTLS) and
//! 993 (implicit TLS).
#![forbid(unsafe_code)]

mod batches;
mod command;
mod connection;
mod contexts;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod message;
mod notify_state;
pub mod proto;
mod search_eval;
mod session;
mod sort_keys;
#[cfg(test)]
mod tests;
mod view;

pub use session::IMAP_COMMANDS;

use netutil::ListenerShared;
use session::{Session, SessionId};
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::net::TcpListener;

/// Which port a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    /// Port 143: plaintext until STARTTLS.
    Imap,
    /// Port 993: implicit TLS (RFC 8314).
    Imaps,
}

/// Limits of the IMAP server; every limit has its reason beside it.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Largest APPEND accepted (APPENDLIMIT, RFC 7889).
    pub max_message_size: usize,
    /// RFC 9051 §5.4: at least 30 minutes of inactivity before an autologout.
    pub idle_timeout: Duration,
    /// Keepalive during IDLE so NATs keep the connection (`* OK Still here`).
    pub idle_keepalive: Duration,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            max_message_size: storage::DEFAULT_MAX_MESSAGE_SIZE,
            idle_timeout: Duration::from_secs(30 * 60),
            idle_keepalive: Duration::from_secs(4 * 60),
        }
    }
}

/// Shared state of every IMAP listener of one server.
#[derive(Clone)]
pub struct ImapServer {
    pub config: Arc<ImapConfig>,
    pub store: Store,
    /// TLS, connection limits, login throttle and shutdown, as every front end has them.
    pub net: ListenerShared,
}

impl ImapServer {
    /// Accepts connections on `listener` until shutdown; each session runs as a task
    /// tracked by `shutdown.tracker`.
    pub async fn serve(&self, listener: TcpListener, role: ListenerRole) {
        if role == ListenerRole::Imaps && self.net.tls.is_none() {
            tracing::error!("IMAPS listener without a TLS configuration; not serving");
            return;
        }
        let implicit_tls = match role {
            ListenerRole::Imap => None,
            ListenerRole::Imaps => self.net.tls.clone(),
        };
        tracing::info!(?role, address = ?listener.local_addr().ok(), "IMAP listener started");
        netutil::serve_connections(
            &listener,
            &self.net.connections,
            &self.net.shutdown,
            implicit_tls,
            b"* BYE Too many connections\r\n",
            |peer| {
                let id = SessionId::next();
                let span = tracing::info_span!("imap", session = %id, %peer);
                let server = self.clone();
                (span, move |stream| {
                    Session::new(server, stream, peer, role, id).run()
                })
            },
        )
        .await;
        tracing::info!(?role, "IMAP listener stopped");
    }
}
