//! The I/O driver: owns the socket, feeds what it reads to the [`Framer`], and writes
//! what the session queued. All protocol decisions are the session's.
//!
//! Output is buffered and flushed whenever we are about to wait for the client, and
//! whenever the buffer passes [`OUTPUT_HIGH_WATER`] during a long response (FETCH of
//! many messages), so memory stays bounded.

use crate::error::SessionError;
use crate::proto::{Frame, Framer, FramerLimits};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use netutil::{CancellationToken, MaybeTlsStream, TlsAcceptor};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes asked of the socket per read at most, once a client sends much (APPEND).
const READ_CHUNK: usize = 16 * 1024;
/// Bytes asked of the socket per read while a client sends little: a command line, or
/// DONE in IDLE. Every session waiting for its client holds its read buffer, so with
/// thousands of IDLE sessions this is most of what a session costs.
const READ_CHUNK_SMALL: usize = 1024;
/// Output buffer capacity kept while waiting for the client; a larger one (after a long
/// FETCH) is given back.
const OUTPUT_KEPT: usize = 4 * 1024;
/// Output buffered before a long response is flushed part-way.
pub(crate) const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// A client that does not read what we send holds a session and its memory; after this
/// long with a write pending we give up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// RFC 4978: inflated octets fed to the framer per read at most, so that a small
/// compressed input cannot make one read hold a huge buffer (a decompression bomb is
/// then cut into lines and refused by the framer's own limits).
const INFLATE_PER_READ: usize = 256 * 1024;

/// Why waiting for input stopped.
pub(crate) type Stop = netutil::Stop<SessionError>;

pub(crate) struct Connection {
    stream: Option<MaybeTlsStream>,
    framer: Framer,
    pub(crate) out: Vec<u8>,
    scratch: Vec<u8>,
    /// RFC 4978 COMPRESS=DEFLATE, once the client turned it on.
    deflate: Option<Box<Deflate>>,
}

/// Both directions of an RFC 4978 session: raw deflate (RFC 1951, no zlib header).
struct Deflate {
    compress: Compress,
    decompress: Decompress,
    /// Compressed input not inflated yet.
    pending: Vec<u8>,
    /// Compressed output being written.
    wire: Vec<u8>,
    inflated: Vec<u8>,
}

impl Deflate {
    fn new(pending: Vec<u8>) -> Self {
        Deflate {
            compress: Compress::new(Compression::default(), false),
            decompress: Decompress::new(false),
            pending,
            wire: Vec::new(),
            inflated: vec![0; READ_CHUNK],
        }
    }

    /// Compresses `input` into `wire`, ending with a sync flush (RFC 4978 §4: the
    /// client must be able to read each response as soon as it is sent).
    fn deflate(&mut self, mut input: &[u8]) -> Result<(), SessionError> {
        self.wire.clear();
        loop {
            self.wire.reserve(input.len() / 2 + 64);
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut self.wire, FlushCompress::Sync)
                .map_err(|e| SessionError::Compression(e.to_string()))?;
            let consumed = usize::try_from(self.compress.total_in() - before).unwrap_or(0);
            input = input.get(consumed..).unwrap_or_default();
            // The flush is complete once the output had room to spare.
            if input.is_empty() && self.wire.len() < self.wire.capacity() {
                return Ok(());
            }
        }
    }

    /// Inflates pending input into the framer, at most [`INFLATE_PER_READ`] octets;
    /// returns how many it fed.
    fn inflate(&mut self, framer: &mut Framer) -> Result<usize, SessionError> {
        let mut fed = 0;
        while !self.pending.is_empty() && fed < INFLATE_PER_READ {
            let (before_in, before_out) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self
                .decompress
                .decompress(&self.pending, &mut self.inflated, FlushDecompress::None)
                .map_err(|e| SessionError::Compression(e.to_string()))?;
            let consumed = usize::try_from(self.decompress.total_in() - before_in).unwrap_or(0);
            let produced = usize::try_from(self.decompress.total_out() - before_out).unwrap_or(0);
            self.pending.drain(..consumed.min(self.pending.len()));
            framer.feed(self.inflated.get(..produced).unwrap_or_default());
            fed += produced;
            if (consumed == 0 && produced == 0) || status == flate2::Status::StreamEnd {
                break;
            }
        }
        Ok(fed)
    }
}

impl Connection {
    pub(crate) fn new(stream: MaybeTlsStream, limits: FramerLimits) -> Self {
        Connection {
            stream: Some(stream),
            framer: Framer::new(limits),
            out: Vec::new(),
            scratch: vec![0; READ_CHUNK_SMALL],
            deflate: None,
        }
    }

    pub(crate) fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// RFC 4978 §3: after the tagged OK (already flushed), every octet in both
    /// directions is compressed, including what the client pipelined after COMPRESS.
    pub(crate) async fn start_compression(&mut self) -> Result<(), SessionError> {
        self.flush().await?;
        let pending = self.framer.take_unframed();
        self.deflate = Some(Box::new(Deflate::new(pending)));
        Ok(())
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
        let Connection {
            stream,
            out,
            deflate,
            ..
        } = self;
        let stream = stream.as_mut().ok_or(SessionError::Closed)?;
        let wire: &[u8] = match deflate {
            Some(deflate) => {
                deflate.deflate(out)?;
                &deflate.wire
            }
            None => out,
        };
        let write = async {
            stream.write_all(wire).await?;
            stream.flush().await
        };
        let mut write = std::pin::pin!(write);
        // Most writes are done at the first try (the socket's buffer has room): those
        // need no timer. Only one that has to wait gets the timeout, from then on (one
        // delivery to thousands of IDLE sessions flushes each once; issue 17).
        let first_try = std::future::poll_fn(|cx| match write.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        let result = match first_try {
            Some(result) => Ok(result),
            None => tokio::time::timeout(WRITE_TIMEOUT, write).await,
        };
        match result {
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

    /// Limits for the commands framed from now on (after a successful login).
    pub(crate) fn set_limits(&mut self, limits: FramerLimits) {
        self.framer.set_limits(limits);
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
            deflate,
            ..
        } = self;
        let stream = stream.as_mut().ok_or(SessionError::Closed)?;
        let Some(deflate) = deflate else {
            let count = stream.read(scratch).await?;
            framer.feed(scratch.get(..count).unwrap_or_default());
            fit_read_buffer(scratch, count);
            return Ok(count);
        };
        // Compressed input already here first; the socket only when it gave nothing.
        loop {
            let fed = deflate.inflate(framer)?;
            if fed > 0 {
                return Ok(fed);
            }
            let count = stream.read(scratch).await?;
            if count == 0 {
                return Ok(0);
            }
            deflate
                .pending
                .extend_from_slice(scratch.get(..count).unwrap_or_default());
            fit_read_buffer(scratch, count);
        }
    }

    /// Gives back buffer memory a waiting session does not need (called with nothing
    /// left to write).
    pub(crate) fn release_memory(&mut self) {
        self.out.shrink_to(OUTPUT_KEPT);
        self.framer.release_memory();
    }

    /// Flushes, then waits for input for at most `timeout`, or until shutdown.
    pub(crate) async fn fill(
        &mut self,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<(), Stop> {
        self.flush().await.map_err(Stop::Failed)?;
        self.release_memory();
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
        self.stream = Some(plain.upgrade(acceptor).await?);
        Ok(())
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = self.flush().await;
        if let Ok(stream) = self.stream() {
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.shutdown()).await;
        }
    }
}

/// Sizes the read buffer for the next read by this one: a read that filled it means a
/// client sending much (the next read asks for [`READ_CHUNK`]); a small one means a
/// client sending commands, and the buffer goes back to [`READ_CHUNK_SMALL`].
fn fit_read_buffer(buffer: &mut Vec<u8>, last_read: usize) {
    if last_read == buffer.len() && buffer.len() < READ_CHUNK {
        buffer.resize(READ_CHUNK, 0);
    } else if last_read < READ_CHUNK_SMALL && buffer.len() > READ_CHUNK_SMALL {
        buffer.truncate(READ_CHUNK_SMALL);
        buffer.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_buffer_grows_for_a_stream_and_shrinks_for_commands() {
        let mut buffer = vec![0; READ_CHUNK_SMALL];
        fit_read_buffer(&mut buffer, 20);
        assert_eq!(buffer.len(), READ_CHUNK_SMALL);
        // A full read: the client sends much, ask for more next time.
        fit_read_buffer(&mut buffer, READ_CHUNK_SMALL);
        assert_eq!(buffer.len(), READ_CHUNK);
        fit_read_buffer(&mut buffer, READ_CHUNK);
        assert_eq!(buffer.len(), READ_CHUNK);
        // A medium read keeps it (a literal arriving in pieces).
        fit_read_buffer(&mut buffer, 3000);
        assert_eq!(buffer.len(), READ_CHUNK);
        // A command line (or DONE): back to small, memory given back.
        fit_read_buffer(&mut buffer, 6);
        assert_eq!(buffer.len(), READ_CHUNK_SMALL);
        assert!(buffer.capacity() < READ_CHUNK);
    }

    #[test]
    fn deflate_round_trip_and_inflation_is_bounded_per_read() {
        // What the server sends, inflated by an independent raw inflater.
        let mut server = Deflate::new(Vec::new());
        let response = b"* 1 FETCH (FLAGS (\\Seen))\r\n".repeat(100);
        server.deflate(&response).expect("deflate");
        let mut client = Decompress::new(false);
        let mut plain = vec![0; response.len() + 64];
        client
            .decompress(&server.wire, &mut plain, FlushDecompress::Sync)
            .expect("inflate");
        assert_eq!(
            plain.get(..client.total_out() as usize),
            Some(&response[..])
        );

        // A bomb: 8 MiB of one byte compress to a few KiB; each read feeds at most
        // INFLATE_PER_READ (plus one inflate chunk) to the framer.
        let mut bomb = Vec::new();
        let mut compressor = Compress::new(Compression::best(), false);
        let mut input = vec![b'a'; 8 << 20];
        bomb.reserve(64 * 1024);
        loop {
            let before = compressor.total_in();
            compressor
                .compress_vec(&input, &mut bomb, FlushCompress::Finish)
                .expect("compress");
            let consumed = (compressor.total_in() - before) as usize;
            input.drain(..consumed);
            if input.is_empty() && bomb.len() < bomb.capacity() {
                break;
            }
            bomb.reserve(64 * 1024);
        }
        let mut framer = Framer::new(FramerLimits::new(1024));
        let mut reader = Deflate::new(bomb);
        let fed = reader.inflate(&mut framer).expect("inflate");
        assert!(
            (INFLATE_PER_READ..=INFLATE_PER_READ + READ_CHUNK).contains(&fed),
            "{fed}"
        );
        assert!(!reader.pending.is_empty());
    }
}
