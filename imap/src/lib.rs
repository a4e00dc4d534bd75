//! IMAP front end: IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) on 143 (STARTTLS) and
//! 993 (implicit TLS).
#![forbid(unsafe_code)]

mod command;
mod connection;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod message;
pub mod proto;
mod session;
#[cfg(test)]
mod tests;
mod view;

pub use session::IMAP_COMMANDS;

use netutil::{AuthThrottle, ConnectionLimiter, MaybeTlsStream, Shutdown, TlsAcceptor};
use session::{Session, SessionId};
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tracing::Instrument;

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
            max_message_size: 50 * 1024 * 1024,
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
    pub tls: Option<TlsAcceptor>,
    pub connections: ConnectionLimiter,
    pub auth_throttle: AuthThrottle,
    pub shutdown: Shutdown,
}

impl ImapServer {
    /// Accepts connections on `listener` until shutdown; each session runs as a task
    /// tracked by `shutdown.tracker`.
    pub async fn serve(&self, listener: TcpListener, role: ListenerRole) {
        if role == ListenerRole::Imaps && self.tls.is_none() {
            tracing::error!("IMAPS listener without a TLS configuration; not serving");
            return;
        }
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.token.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, then go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let Some(permit) = self.connections.try_acquire(peer.ip()) else {
                tracing::info!(%peer, "connection refused: too many connections");
                self.shutdown.tracker.spawn(async move {
                    let mut tcp = tcp;
                    let bye = tcp.write_all(b"* BYE Too many connections\r\n");
                    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, bye).await;
                });
                continue;
            };
            let server = self.clone();
            let id = SessionId::next();
            let span = tracing::info_span!("imap", session = %id, %peer);
            self.shutdown.tracker.spawn(
                async move {
                    let _permit = permit;
                    let _ = tcp.set_nodelay(true);
                    let stream = match role {
                        ListenerRole::Imap => MaybeTlsStream::Plain(tcp),
                        ListenerRole::Imaps => {
                            let Some(acceptor) = server.tls.clone() else {
                                return;
                            };
                            let handshake = MaybeTlsStream::Plain(tcp).upgrade(&acceptor);
                            match tokio::time::timeout(connection::TLS_HANDSHAKE_TIMEOUT, handshake)
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    tracing::debug!(%error, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!("TLS handshake timed out");
                                    return;
                                }
                            }
                        }
                    };
                    Session::new(server, stream, peer, role, id).run().await;
                }
                .instrument(span),
            );
        }
    }
}

/// After a failed accept (EMFILE), pause so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// The refusal of a connection over the limit is best effort and must not hold a task.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
