//! The I/O driver: owns the socket, feeds what it reads to the [`Framer`], and writes
//! what the session queued. All protocol decisions are the session's.
//!
//! Output is buffered and flushed whenever we are about to wait for the client, and
//! whenever the buffer passes [`OUTPUT_HIGH_WATER`] during a long response (FETCH of
//! many messages), so memory stays bounded.

use crate::error::SessionError;
use crate::proto::{Frame, Framer, FramerLimits};
use netutil::{CancellationToken, MaybeTlsStream, TlsAcceptor};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Output buffered before a long response is flushed part-way.
pub(crate) const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// A client that does not read what we send holds a session and its memory; after this
/// long with a write pending we give up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// A handshake takes a few round trips; a client that stalls longer holds a slot for nothing.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why waiting for input stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    Eof,
    TimedOut,
    ShuttingDown,
    Failed(SessionError),
}

pub(crate) struct Connection {
    stream: Option<MaybeTlsStream>,
    framer: Framer,
    pub(crate) out: Vec<u8>,
    scratch: Vec<u8>,
}

impl Connection {
    pub(crate) fn new(stream: MaybeTlsStream, limits: FramerLimits) -> Self {
        Connection {
            stream: Some(stream),
            framer: Framer::new(limits),
            out: Vec::new(),
            scratch: vec![0; READ_CHUNK],
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(MaybeTlsStream::is_tls)
    }

    fn stream(&mut self) -> Result<&mut MaybeTlsStream, SessionError> {
        self.stream.as_mut().ok_or(SessionError::Closed)
    }

    pub(crate) async fn flush(&mut self) -> Result<(), SessionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let Connection { stream, out, .. } = self;
        let stream = stream.as_mut().ok_or(SessionError::Closed)?;
        let write = async {
            stream.write_all(out).await?;
            stream.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                out.clear();
                Ok(())
            }
            Ok(Err(error)) => Err(SessionError::Io(error)),
            Err(_) => Err(SessionError::WriteTimeout),
        }
    }

    /// Flushes when a long response has buffered enough.
    pub(crate) async fn flush_if_full(&mut self) -> Result<(), SessionError> {
        if self.out.len() >= OUTPUT_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    pub(crate) fn next_frame(&mut self) -> Option<Frame> {
        self.framer.next_frame()
    }

    pub(crate) fn take_line(&mut self, limit: usize) -> Option<Result<Vec<u8>, ()>> {
        self.framer.take_line(limit)
    }

    /// Reads once into the framer. Cancel-safe: used inside `select!` during IDLE.
    pub(crate) async fn read_some(&mut self) -> Result<usize, SessionError> {
        let Connection {
            stream,
            framer,
            scratch,
            ..
        } = self;
        let stream = stream.as_mut().ok_or(SessionError::Closed)?;
        let count = stream.read(scratch).await?;
        framer.feed(scratch.get(..count).unwrap_or_default());
        Ok(count)
    }

    /// Flushes, then waits for input for at most `timeout`, or until shutdown.
    pub(crate) async fn fill(
        &mut self,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<(), Stop> {
        self.flush().await.map_err(Stop::Failed)?;
        let read = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Err(Stop::ShuttingDown),
            read = tokio::time::timeout(timeout, self.read_some()) => read,
        };
        match read {
            Err(_) => Err(Stop::TimedOut),
            Ok(Err(error)) => Err(Stop::Failed(error)),
            Ok(Ok(0)) => Err(Stop::Eof),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// RFC 9051 §6.2.1: after the OK to STARTTLS, plaintext the client pipelined is
    /// discarded (CVE-2011-0411), then the handshake.
    pub(crate) async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> Result<(), SessionError> {
        self.flush().await?;
        self.framer.discard_input();
        let plain = self.stream.take().ok_or(SessionError::Closed)?;
        let upgraded =
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, plain.upgrade(acceptor)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(SessionError::TlsHandshake(error)),
                Err(_) => return Err(SessionError::TlsHandshakeTimeout),
            };
        self.stream = Some(upgraded);
        Ok(())
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = self.flush().await;
        if let Ok(stream) = self.stream() {
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.shutdown()).await;
        }
    }
}
