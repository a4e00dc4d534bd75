//! The accept loop both front ends run, written once: connection limits with their
//! refusal, tasks tracked for shutdown, and the TLS handshake with its time limit.

use crate::stream::MaybeTlsStream;
use crate::{ConnectionLimiter, Shutdown, TlsAcceptor};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

/// After a failed `accept` (out of file descriptors, say), wait this long before the next
/// one instead of spinning on the error.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// The refusal of a connection over the limit is best effort and must not hold a task
/// for longer than this.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The next connection on `listener`, or `None` once shutdown has begun. A failed
/// accept is logged and retried after a pause that shutdown cuts short.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &Shutdown,
) -> Option<(TcpStream, SocketAddr)> {
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

/// Accepts connections on `listener` until shutdown. A client over the connection
/// limits is sent `refusal` (the protocol's "too many connections" line, best effort)
/// and closed; every other connection runs `session(stream, peer)` as a task tracked by
/// `shutdown.tracker`, holding its connection permit until it ends. With `implicit_tls`
/// the handshake comes first (RFC 8314 §3), bounded by [`TLS_HANDSHAKE_TIMEOUT`]; a
/// failed one closes the connection.
///
/// [`TLS_HANDSHAKE_TIMEOUT`]: crate::TLS_HANDSHAKE_TIMEOUT
pub async fn serve_connections<F, S, Fut>(
    listener: &TcpListener,
    connections: &ConnectionLimiter,
    shutdown: &Shutdown,
    implicit_tls: Option<TlsAcceptor>,
    refusal: &[u8],
    mut start: F,
) where
    F: FnMut(SocketAddr) -> (tracing::Span, S),
    S: FnOnce(MaybeTlsStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    while let Some((tcp, peer)) = accept(listener, shutdown).await {
        let Some(permit) = connections.try_acquire(peer.ip()) else {
            tracing::info!(%peer, "connection refused: too many connections");
            shutdown.tracker.spawn(refuse(tcp, refusal.to_vec()));
            continue;
        };
        // The caller's span for this connection, and its session to run in it.
        let (span, session) = start(peer);
        let implicit_tls = implicit_tls.clone();
        let task = async move {
            // Both protocols write whole responses and flush on purpose: no coalescing.
            let _ = tcp.set_nodelay(true);
            let mut stream = MaybeTlsStream::Plain(tcp);
            if let Some(acceptor) = implicit_tls {
                stream = match stream.upgrade(&acceptor).await {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::debug!(%error, "closed");
                        return;
                    }
                };
            }
            session(stream).await;
            drop(permit);
        };
        shutdown.tracker.spawn(task.instrument(span));
    }
}

async fn refuse(mut tcp: TcpStream, refusal: Vec<u8>) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        tcp.write_all(&refusal).await?;
        tcp.shutdown().await
    })
    .await;
}
