//! Errors that end a session. Everything a client can do wrong is answered with a reply
//! and the session goes on (or closes with a 421); these are the failures of the
//! connection itself.

use std::io;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("timed out writing to the client")]
    WriteTimeout,
    #[error(transparent)]
    Tls(#[from] netutil::HandshakeError),
}
