//! Errors of the storage layer.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// `what` says which kind of thing (`mailbox`, `account`, ...) and may be told to a
    /// client; `key` names the one looked for (an internal id, an address) and is only
    /// for logs.
    #[error("{what} {key} not found")]
    NotFound { what: &'static str, key: String },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// RFC 6154 §3: another mailbox of the account has this special use.
    #[error("{} is already the special use of {holder}", role.attribute())]
    SpecialUseTaken {
        role: crate::types::SpecialUse,
        holder: String,
    },
    /// RFC 5804 §2.10: the active Sieve script cannot be deleted.
    #[error("the script is active")]
    SieveScriptActive,
    #[error("quota exceeded")]
    OverQuota,
    /// RFC 5464 §4.3: an annotation value over the limit (`[METADATA MAXSIZE max]`).
    #[error("annotation value larger than {max} octets")]
    MetadataTooLarge { max: usize },
    /// RFC 5464 §4.3: a mailbox or account would have more annotations than it may
    /// (`[METADATA TOOMANY]`).
    #[error("more than {max} annotations")]
    MetadataTooMany { max: u64 },
    #[error("the mailbox changed since the given modseq")]
    Modified,
    #[error("the storage writer has stopped")]
    WriterStopped,
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// Too much of one kind of work waiting (e.g. password checks in a login burst):
    /// try again shortly.
    #[error("busy with {0}; try again shortly")]
    Busy(&'static str),
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// [`crate::Store::copy_installation_from`] copies into an empty store only.
    #[error("the target store is not empty (it has {table}): copy into a new, empty database")]
    TargetNotEmpty { table: &'static str },
}

impl StoreError {
    /// [`StoreError::NotFound`]: no `what` of `key`.
    pub(crate) fn not_found(what: &'static str, key: impl ToString) -> StoreError {
        StoreError::NotFound {
            what,
            key: key.to_string(),
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// True when the caller may retry later (IMAP NO [UNAVAILABLE], SMTP 451).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            StoreError::Database(_)
                | StoreError::WriterStopped
                | StoreError::CommitFailed(_)
                | StoreError::Busy(_)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
