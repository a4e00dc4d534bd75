//! Plumbing both front ends need, written once: streams that upgrade to TLS, connection
//! limits, failed-login throttling (with their metrics), and the shutdown signal.
#![forbid(unsafe_code)]

mod limits;
mod stream;

pub use limits::{
    AUTH_FAILURES, AUTH_REFUSED, AuthAttempt, AuthThrottle, CONNECTIONS_OPEN, CONNECTIONS_REFUSED,
    CONNECTIONS_TOTAL, ClientKey, ConnectionLimiter, ConnectionPermit, DEFAULT_MAX_AUTH_IN_FLIGHT,
    Throttled,
};
pub use stream::{MaybeTlsStream, tls_acceptor};
pub use tokio_rustls::TlsAcceptor;
pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// After a failed `accept` (out of file descriptors, say), wait this long before the next
/// one instead of spinning on the error.
const ACCEPT_ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// The next connection on `listener`, or `None` once shutdown has begun. A failed
/// accept is logged and retried after a pause.
pub async fn accept(
    listener: &tokio::net::TcpListener,
    shutdown: &Shutdown,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.token.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(pair) => return Some(pair),
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::select! {
                    _ = shutdown.token.cancelled() => return None,
                    _ = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                }
            }
        }
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
