//! Plumbing both front ends need, written once: streams that upgrade to TLS, connection
//! limits, failed-login throttling (with their metrics), the accept loop with its TLS
//! handshake, SASL decoding, and the shutdown signal.
#![forbid(unsafe_code)]

mod limits;
mod listener;
pub mod sasl;
mod stream;

pub use limits::{
    AUTH_FAILURES, AUTH_REFUSED, AuthAttempt, AuthThrottle, CONNECTIONS_OPEN, CONNECTIONS_REFUSED,
    CONNECTIONS_TOTAL, ClientKey, ConnectionLimiter, ConnectionPermit, DEFAULT_MAX_AUTH_IN_FLIGHT,
    Throttled,
};
pub use listener::{accept, serve_connections};
pub use stream::{
    HandshakeError, MaybeTlsStream, TLS_HANDSHAKE_TIMEOUT, bounded_handshake, tls_acceptor,
};
pub use tokio_rustls::TlsAcceptor;
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// What every listener of one front end (SMTP, IMAP, ManageSieve) holds besides its own
/// configuration and the store: the TLS configuration, the connection limits, the
/// failed-login throttle and the shutdown signal. One struct so that the three servers
/// are built, and a listener's copy is made, the same way.
#[derive(Clone)]
pub struct ListenerShared {
    /// `None`: no certificate, so no STARTTLS and no implicit-TLS port.
    pub tls: Option<TlsAcceptor>,
    pub connections: ConnectionLimiter,
    pub auth_throttle: AuthThrottle,
    pub shutdown: Shutdown,
}

impl ListenerShared {
    /// A copy for one listener that counts its connections in `connections`.
    pub fn with_connections(&self, connections: ConnectionLimiter) -> Self {
        ListenerShared {
            connections,
            ..self.clone()
        }
    }
}

/// Why a session stopped waiting for its client's input. `E` is the protocol's own
/// error for a broken connection.
#[derive(Debug)]
pub enum Stop<E> {
    /// The client closed the connection.
    Eof,
    /// The command (or SMTP data) timeout ran out: the protocol says goodbye and closes.
    TimedOut,
    /// Shutdown began: the protocol says goodbye (IMAP `* BYE`, SMTP `421 4.3.2`).
    ShuttingDown,
    Failed(E),
}

impl<E> From<E> for Stop<E> {
    fn from(error: E) -> Stop<E> {
        Stop::Failed(error)
    }
}

/// The shutdown signal and the set of tasks to wait for. Every accept loop and every
/// session selects on `token.cancelled()`; the binary cancels it and then waits on
/// `tracker` so in-flight work (a delivery being committed) finishes.
#[derive(Clone, Default)]
pub struct Shutdown {
    pub token: CancellationToken,
    pub tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every listener and session, then waits for all tracked tasks.
    pub async fn shutdown_and_wait(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    pub fn is_shutting_down(&self) -> bool {
        self.token.is_cancelled()
    }
}
