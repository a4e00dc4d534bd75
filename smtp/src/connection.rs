//! The I/O driver: owns the socket, reads lines and content for the session, writes its
//! replies, and applies timeouts and shutdown. All protocol decisions are the session's.
//!
//! Writes are buffered and flushed whenever we are about to wait for the client, which
//! is exactly what RFC 2920 §3.1 asks for PIPELINING: replies to a pipelined group go out
//! together, and never later than the moment the server would block.

use crate::budget::Reservation;
use crate::error::SessionError;
use crate::proto::reply::{SHUTTING_DOWN, TIMEOUT};
use crate::proto::{BodyBuffer, DotDecoder, InputBuffer, Line, Reply};
use crate::session::{Action, Session};
use netutil::{CancellationToken, HandshakeError, MaybeTlsStream, TlsAcceptor};
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Replies buffered before we flush even though more pipelined commands wait: a client
/// that pipelines without reading must not grow our memory.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// A stream the session can run over: TCP that may turn into TLS, or (in tests) an
/// in-memory pipe.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    /// The TLS handshake, bounded in time ([`netutil::TLS_HANDSHAKE_TIMEOUT`]).
    fn start_tls(
        self,
        acceptor: &TlsAcceptor,
    ) -> impl Future<Output = Result<Self, HandshakeError>> + Send;
}

impl Transport for MaybeTlsStream {
    async fn start_tls(self, acceptor: &TlsAcceptor) -> Result<Self, HandshakeError> {
        self.upgrade(acceptor).await
    }
}

/// Why reading stopped before we got what we wanted: timed out (answer 421 4.4.2),
/// shutting down (421 4.3.2), closed, or failed.
pub(crate) type Stop = netutil::Stop<SessionError>;

pub(crate) struct Connection<S> {
    stream: S,
    input: InputBuffer,
    output: Vec<u8>,
    scratch: Vec<u8>,
    shutdown: CancellationToken,
    write_timeout: Duration,
}

impl<S: Transport> Connection<S> {
    pub(crate) fn new(stream: S, shutdown: CancellationToken, write_timeout: Duration) -> Self {
        Connection {
            stream,
            input: InputBuffer::new(),
            output: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            shutdown,
            write_timeout,
        }
    }

    pub(crate) fn queue(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    pub(crate) async fn flush(&mut self) -> Result<(), Stop> {
        if self.output.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.output).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(Ok(())) => {
                self.output.clear();
                Ok(())
            }
            Ok(Err(error)) => Err(SessionError::Io(error).into()),
            Err(_) => Err(SessionError::WriteTimeout.into()),
        }
    }

    /// Flushes, then reads once from the socket (until `deadline`).
    async fn fill(&mut self, deadline: Instant) -> Result<(), Stop> {
        self.flush().await?;
        let read = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => return Err(Stop::ShuttingDown),
            read = tokio::time::timeout_at(deadline, self.stream.read(&mut self.scratch)) => read,
        };
        match read {
            Err(_) => Err(Stop::TimedOut),
            Ok(Err(error)) => Err(SessionError::Io(error).into()),
            Ok(Ok(0)) => Err(Stop::Eof),
            Ok(Ok(count)) => {
                self.input
                    .extend(self.scratch.get(..count).unwrap_or_default());
                Ok(())
            }
        }
    }

    /// The next line of at most `limit` octets; the whole line must arrive within
    /// `timeout` (a client trickling one byte at a time does not reset the clock).
    pub(crate) async fn read_line(
        &mut self,
        limit: usize,
        timeout: Duration,
    ) -> Result<Line, Stop> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.input.next_line(limit) {
                return Ok(line);
            }
            self.fill(deadline).await?;
        }
    }

    /// Reserves `bytes` of the byte budget before they are kept, waiting at most
    /// `wait`; `false` when none came (the caller then gives the content up).
    async fn reserve(
        &mut self,
        reservation: &mut Reservation,
        bytes: usize,
        wait: Duration,
    ) -> Result<bool, Stop> {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Err(Stop::ShuttingDown),
            reserved = reservation.grow(bytes, wait) => match reserved {
                Ok(()) => Ok(true),
                Err(_) => {
                    tracing::info!(
                        held = reservation.held(),
                        "no memory for message content; refusing it"
                    );
                    reservation.release();
                    Ok(false)
                }
            },
        }
    }

    /// DATA content up to `<CRLF>.<CRLF>`; each read must come within `timeout`
    /// (RFC 5321 §4.5.3.2.5). Bytes are reserved in `reservation` before the decoder
    /// keeps them; without budget the decoder gives the content up and reads on.
    pub(crate) async fn read_data(
        &mut self,
        decoder: &mut DotDecoder,
        reservation: &mut Reservation,
        timeout: Duration,
        budget_wait: Duration,
    ) -> Result<(), Stop> {
        loop {
            let available = self.input.bytes().len();
            if available > 0 {
                // Unstuffing only removes octets, so `available` covers what is kept.
                if !decoder.is_discarding()
                    && !self.reserve(reservation, available, budget_wait).await?
                {
                    decoder.abandon();
                }
                if decoder.is_discarding() {
                    reservation.release();
                }
                let (used, done) = decoder.feed(self.input.bytes());
                self.input.consume(used);
                if done {
                    return Ok(());
                }
            }
            self.fill(Instant::now() + timeout).await?;
        }
    }

    /// Exactly `size` octets of a BDAT chunk into `sink`, or dropped when `sink` is None.
    /// Bytes are reserved in the sink's reservation before they are kept; without budget
    /// the body is given up and the chunk read on.
    pub(crate) async fn read_chunk(
        &mut self,
        size: usize,
        mut sink: Option<(&mut BodyBuffer, &mut Reservation)>,
        timeout: Duration,
        budget_wait: Duration,
    ) -> Result<(), Stop> {
        let mut remaining = size;
        loop {
            let take = remaining.min(self.input.bytes().len());
            if let Some((body, reservation)) = sink.as_mut()
                && take > 0
            {
                if !body.is_discarding() && !self.reserve(reservation, take, budget_wait).await? {
                    body.abandon();
                }
                if body.is_discarding() {
                    reservation.release();
                }
                body.push(self.input.bytes().get(..take).unwrap_or_default());
            }
            self.input.consume(take);
            remaining -= take;
            if remaining == 0 {
                return Ok(());
            }
            self.fill(Instant::now() + timeout).await?;
        }
    }

    /// RFC 3207 §4.2: the plaintext the client sent after STARTTLS is thrown away
    /// (CVE-2011-0411), then the handshake.
    pub(crate) async fn start_tls(self, acceptor: &TlsAcceptor) -> Result<Self, Stop> {
        let Connection {
            stream,
            mut input,
            output,
            scratch,
            shutdown,
            write_timeout,
        } = self;
        if !input.is_empty() {
            tracing::info!("dropping input pipelined after STARTTLS");
        }
        input.clear();
        let stream = stream
            .start_tls(acceptor)
            .await
            .map_err(|error| Stop::Failed(error.into()))?;
        Ok(Connection {
            stream,
            input,
            output,
            scratch,
            shutdown,
            write_timeout,
        })
    }

    /// Sends a last reply and closes.
    pub(crate) async fn close_with(&mut self, reply: Reply) -> Result<(), SessionError> {
        self.queue(&reply);
        let _ = self.flush().await;
        let _ = tokio::time::timeout(self.write_timeout, self.stream.shutdown()).await;
        Ok(())
    }

    /// Ends the session the way `stop` calls for.
    pub(crate) async fn stop(&mut self, stop: Stop) -> Result<(), SessionError> {
        match stop {
            Stop::Eof => Ok(()),
            Stop::TimedOut => {
                tracing::info!("timeout; closing");
                self.close_with(Reply::new(TIMEOUT, "Timeout, closing connection"))
                    .await
            }
            Stop::ShuttingDown => self.close_with(shutting_down()).await,
            Stop::Failed(error) => Err(error),
        }
    }
}

fn shutting_down() -> Reply {
    Reply::new(SHUTTING_DOWN, "Shutting down")
}

/// Runs a session to its end.
pub(crate) async fn run<S: Transport>(
    stream: S,
    mut session: Session,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> Result<(), SessionError> {
    let config = session.config.clone();
    let mut conn = Connection::new(stream, shutdown.clone(), config.command_timeout);
    conn.queue(&session.greeting());
    loop {
        // A session between commands answers shutdown at once (RFC 5321 §3.8); one in
        // the middle of a delivery gets here only after the store has committed.
        if shutdown.is_cancelled() {
            return conn.close_with(shutting_down()).await;
        }
        session.settle_reservation();
        // AUTH lines may be longer than other commands (RFC 4954 §4); the session
        // applies the 512-octet limit to everything else.
        let line = match conn
            .read_line(config.max_auth_line_length, config.command_timeout)
            .await
        {
            Ok(line) => line,
            Err(stop) => return conn.stop(stop).await,
        };
        let mut action = session.command(line).await;
        loop {
            match action {
                Action::Reply(reply) => {
                    session.count_reply(&reply);
                    conn.queue(&reply);
                    break;
                }
                Action::Close(reply) => {
                    session.count_reply(&reply);
                    return conn.close_with(reply).await;
                }
                Action::ReadData { reply, limit } => {
                    conn.queue(&reply);
                    let mut decoder = DotDecoder::new(limit);
                    if let Err(stop) = conn
                        .read_data(
                            &mut decoder,
                            &mut session.reservation,
                            config.data_timeout,
                            config.data_budget_wait,
                        )
                        .await
                    {
                        return conn.stop(stop).await;
                    }
                    action = session.data_received(decoder.finish()).await;
                }
                Action::ReadChunk { size, last } => {
                    let sink = session.chunk_buffer();
                    if let Err(stop) = conn
                        .read_chunk(size, sink, config.data_timeout, config.data_budget_wait)
                        .await
                    {
                        return conn.stop(stop).await;
                    }
                    action = session.chunk_received(size, last).await;
                }
                Action::DiscardChunk { size, reply } => {
                    if let Err(stop) = conn
                        .read_chunk(size, None, config.data_timeout, config.data_budget_wait)
                        .await
                    {
                        return conn.stop(stop).await;
                    }
                    session.count_reply(&reply);
                    conn.queue(&reply);
                    break;
                }
                Action::Challenge { reply, step } => {
                    conn.queue(&reply);
                    let line = match conn
                        .read_line(config.max_auth_line_length, config.command_timeout)
                        .await
                    {
                        Ok(line) => line,
                        Err(stop) => return conn.stop(stop).await,
                    };
                    action = session.sasl(step, line).await;
                }
                Action::StartTls(reply) => {
                    let Some(acceptor) = &tls else {
                        // The gate offers STARTTLS only with an acceptor.
                        return Ok(());
                    };
                    session.count_reply(&reply);
                    conn.queue(&reply);
                    if let Err(stop) = conn.flush().await {
                        return conn.stop(stop).await;
                    }
                    conn = match conn.start_tls(acceptor).await {
                        Ok(conn) => conn,
                        Err(Stop::Failed(error)) => return Err(error),
                        Err(_) => return Ok(()),
                    };
                    session.tls_started();
                    break;
                }
            }
        }
        if conn.output.len() > OUTPUT_HIGH_WATER
            && let Err(stop) = conn.flush().await
        {
            return conn.stop(stop).await;
        }
    }
}
