//! ManageSieve (RFC 5804): users upload, check, activate and remove their Sieve scripts.
//!
//! Layout as in `smtp/` and `imap/`: [`proto`] is the sans-I/O core (command parser,
//! responses); [`session`] holds the state and the one gate that says which command is
//! legal when, and runs the commands against storage; `connection` here owns the socket.
//! Never imports `smtp` or `imap`; logins use `netutil`'s SASL decoding and throttle.
//!
//! Invariants:
//! - Before login the parser's limits are small (no script can be sent), so an
//!   unauthenticated client holds at most a few KiB.
//! - Nothing a client sends can panic the session: no `unwrap`, `expect` or slicing on
//!   network data.
#![forbid(unsafe_code)]

pub mod proto;
mod session;

use netutil::{ListenerShared, MaybeTlsStream};
use proto::{Limits, Parsed};
use session::{Reply, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use storage::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Limits and identity of the ManageSieve server.
#[derive(Debug, Clone)]
pub struct ManageSieveConfig {
    /// Our name in the greeting's IMPLEMENTATION.
    pub hostname: String,
    /// A client silent this long is disconnected: RFC 5804 gives none; IMAP's 30 minutes
    /// (RFC 9051 §5.4) is long for a script editor, 10 minutes is what Dovecot uses.
    pub idle_timeout: Duration,
    /// Failed commands in a row before we hang up: a client that gets 20 `NO`s running
    /// is broken or probing.
    pub max_bad_commands: u32,
    /// Whether PLAIN may be used without TLS (tests and loopback setups); RFC 5804 §2.1
    /// says PLAIN needs TLS, so this is off by default.
    pub allow_plaintext_auth: bool,
}

impl Default for ManageSieveConfig {
    fn default() -> Self {
        ManageSieveConfig {
            hostname: "localhost".to_owned(),
            idle_timeout: Duration::from_secs(600),
            max_bad_commands: 20,
            allow_plaintext_auth: false,
        }
    }
}

/// Shared state of the ManageSieve listeners of one server.
#[derive(Clone)]
pub struct ManageSieveServer {
    pub config: Arc<ManageSieveConfig>,
    pub store: Store,
    /// TLS, connection limits, login throttle and shutdown, as every front end has them.
    pub net: ListenerShared,
}

impl ManageSieveServer {
    /// Accepts connections on `listener` until shutdown.
    pub async fn serve(&self, listener: TcpListener) {
        let address = listener.local_addr().ok();
        tracing::info!(?address, "ManageSieve listener started");
        let refusal = proto::response("BYE", Some(proto::Code::TryLater), "Too many connections");
        netutil::serve_connections(
            &listener,
            &self.net.connections,
            &self.net.shutdown,
            None,
            &refusal,
            |peer| {
                let id: u64 = rand::random();
                let span = tracing::info_span!("managesieve", session = %format!("{id:016x}"), peer = %peer);
                let server = self.clone();
                (span, move |stream| async move {
                    tracing::info!("connection opened");
                    match run(&server, stream, peer).await {
                        Ok(()) => tracing::debug!("closed"),
                        Err(error) => tracing::debug!(%error, "closed on error"),
                    }
                })
            },
        )
        .await;
        tracing::info!(?address, "ManageSieve listener stopped");
    }
}

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// The I/O driver: reads commands, hands them to the session, writes its replies.
async fn run(
    server: &ManageSieveServer,
    mut stream: MaybeTlsStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let mut session = Session::new(server, peer, stream.is_tls());
    stream.write_all(&session.capabilities()).await?;
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let limits = if session.is_authenticated() {
            Limits::AFTER_LOGIN
        } else {
            Limits::BEFORE_LOGIN
        };
        let parsed = if session.awaiting_sasl() {
            proto::parse_continuation(&buffer, &limits)
        } else {
            proto::parse(&buffer, &limits)
        };
        let reply = match parsed {
            Parsed::Command(command, used) => {
                buffer.drain(..used);
                session.command(command).await
            }
            Parsed::Bad { reason, consumed } => {
                buffer.drain(..consumed);
                session.bad(reason)
            }
            Parsed::TooBig => {
                let bye = proto::response("BYE", None, "Command too long");
                stream.write_all(&bye).await?;
                return Ok(());
            }
            Parsed::Incomplete => {
                let read = tokio::select! {
                    read = tokio::time::timeout(server.config.idle_timeout, stream.read(&mut chunk)) => read,
                    () = server.net.shutdown.token.cancelled() => {
                        let bye = proto::response("BYE", Some(proto::Code::TryLater), "Server shutting down");
                        stream.write_all(&bye).await?;
                        return Ok(());
                    }
                };
                match read {
                    Ok(Ok(0)) => return Ok(()),
                    Ok(Ok(n)) => buffer.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                    Ok(Err(error)) => return Err(error),
                    Err(_) => {
                        let bye = proto::response("BYE", None, "Idle too long");
                        stream.write_all(&bye).await?;
                        return Ok(());
                    }
                }
                continue;
            }
        };
        match reply {
            Reply::Send(bytes) => stream.write_all(&bytes).await?,
            Reply::Close(bytes) => {
                stream.write_all(&bytes).await?;
                stream.shutdown().await?;
                return Ok(());
            }
            Reply::StartTls(bytes) => {
                stream.write_all(&bytes).await?;
                stream.flush().await?;
                let Some(acceptor) = server.net.tls.clone() else {
                    return Ok(());
                };
                // RFC 5804 §2.2: what the client sent before the handshake is not kept.
                buffer.clear();
                stream = match stream.upgrade(&acceptor).await {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return Ok(());
                    }
                };
                session.tls_started();
                // RFC 5804 §2.2: "the server MUST ... issue a capability response".
                stream.write_all(&session.capabilities()).await?;
            }
        }
        stream.flush().await?;
    }
}
