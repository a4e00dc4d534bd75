//! A TCP stream that is plain or TLS, and can turn into TLS mid-session (STARTTLS:
//! RFC 3207 for SMTP, RFC 9051 §6.2.1 for IMAP); the TLS handshake with its time limit,
//! for that and for the accept loop's implicit TLS (`listener.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake takes a few round trips; a client that stalls longer holds a connection
/// slot for nothing.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a TLS handshake (implicit TLS or STARTTLS) did not give a stream.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] io::Error),
    #[error("TLS handshake timed out")]
    TimedOut,
}

/// Runs a TLS handshake for at most [`TLS_HANDSHAKE_TIMEOUT`].
pub async fn bounded_handshake<S>(
    handshake: impl Future<Output = io::Result<S>>,
) -> Result<S, HandshakeError> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(HandshakeError::Failed(error)),
        Err(_) => Err(HandshakeError::TimedOut),
    }
}

pub enum MaybeTlsStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTlsStream::Tls(_))
    }

    /// Performs the TLS handshake on a plain stream, within [`TLS_HANDSHAKE_TIMEOUT`].
    /// A stream that is already TLS is an error: a second STARTTLS is refused before
    /// this is called.
    pub async fn upgrade(self, acceptor: &TlsAcceptor) -> Result<MaybeTlsStream, HandshakeError> {
        match self {
            MaybeTlsStream::Plain(tcp) => bounded_handshake(acceptor.accept(tcp))
                .await
                .map(|tls| MaybeTlsStream::Tls(Box::new(tls))),
            MaybeTlsStream::Tls(_) => Err(HandshakeError::Failed(io::Error::other("already TLS"))),
        }
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A TLS acceptor from a rustls server config (aws-lc-rs provider, TLS 1.2 and 1.3).
pub fn tls_acceptor(config: rustls::ServerConfig) -> TlsAcceptor {
    TlsAcceptor::from(Arc::new(config))
}
