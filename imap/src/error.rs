//! Errors of the IMAP front end. A command ends in exactly one of: a tagged OK/NO/BAD and
//! the session goes on ([`CommandError`] other than `Fatal`), or the connection closes
//! ([`SessionError`]).

use crate::proto::Code;
use std::borrow::Cow;
use std::io;
use storage::StoreError;
use thiserror::Error;

/// Why a session ended abnormally (logged; the client may not hear about it).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Tls(#[from] netutil::HandshakeError),
    #[error("the client did not read our output in time")]
    WriteTimeout,
    #[error("the connection is gone")]
    Closed,
    /// RFC 4978: the client's deflate stream is corrupt.
    #[error("bad compressed input: {0}")]
    Compression(String),
}

/// How a command failed, before it is turned into a tagged response.
#[derive(Debug, Error)]
pub enum CommandError {
    /// RFC 9051 §7.1.5: BAD, a protocol-level error in the command.
    #[error("BAD {0}")]
    Bad(Cow<'static, str>),
    /// RFC 9051 §7.1.2: NO, an operational error.
    #[error("NO {text}")]
    No {
        code: Option<Code>,
        text: Cow<'static, str>,
    },
    /// A storage failure, mapped to NO with a response code.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The connection cannot go on.
    #[error(transparent)]
    Fatal(#[from] SessionError),
}

impl CommandError {
    pub fn bad(text: impl Into<Cow<'static, str>>) -> Self {
        CommandError::Bad(text.into())
    }

    pub fn no(code: Option<Code>, text: impl Into<Cow<'static, str>>) -> Self {
        CommandError::No {
            code,
            text: text.into(),
        }
    }
}

/// RFC 5530 response codes for storage failures. The text is fixed or made of what the
/// client named (a mailbox name, an entry name); what storage knows of itself (a key, a
/// database message, corrupt data) is only logged.
pub fn store_error_response(error: &StoreError) -> (Option<Code>, Cow<'static, str>) {
    match error {
        StoreError::NotFound { what, .. } => {
            (Some(Code::NonExistent), format!("No such {what}").into())
        }
        StoreError::AlreadyExists(what) => (
            Some(Code::AlreadyExists),
            format!("{what} already exists").into(),
        ),
        // RFC 6154 §3: "the server SHOULD include the new \"USEATTR\" response code".
        StoreError::SpecialUseTaken { .. } => (Some(Code::UseAttr), error.to_string().into()),
        StoreError::OverQuota => (Some(Code::OverQuota), "Quota exceeded".into()),
        // RFC 5464 §4.3.
        StoreError::MetadataTooLarge { max } => (
            Some(Code::MetadataMaxSize(
                u64::try_from(*max).unwrap_or(u64::MAX),
            )),
            "Annotation value too large".into(),
        ),
        StoreError::MetadataTooMany { .. } => {
            (Some(Code::MetadataTooMany), "Too many annotations".into())
        }
        StoreError::Invalid { what, reason } => (
            Some(Code::Cannot),
            format!("Invalid {what}: {reason}").into(),
        ),
        StoreError::Modified => (Some(Code::Cannot), "The mailbox changed".into()),
        error if error.is_temporary() => (
            Some(Code::Unavailable),
            "Temporary server failure, try again later".into(),
        ),
        error => {
            // The session logs refusals at debug level; this is no refusal.
            tracing::error!(%error, "storage failure answered as a server bug");
            (Some(Code::ServerBug), "Internal server error".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_text_never_reaches_the_client() {
        let internal = "row 17 of /var/lib/letterbox/mail.db";
        for error in [
            StoreError::NotFound {
                what: "mailbox",
                key: internal.into(),
            },
            StoreError::Corrupt(internal.into()),
            StoreError::CommitFailed(internal.into()),
            StoreError::PasswordHash(internal.into()),
        ] {
            let (code, text) = store_error_response(&error);
            assert!(!text.contains(internal), "{error:?} answered {text:?}");
            assert!(code.is_some(), "{error:?}");
        }
        let (_, text) = store_error_response(&StoreError::NotFound {
            what: "mailbox",
            key: internal.into(),
        });
        assert_eq!(text, "No such mailbox");
    }
}
