//! RFC 8474 object identifiers: `objectid = 1*255(ALPHA / DIGIT / "_" / "-")`.
//!
//! Ours are a letter and the storage id in decimal: `F` and the mailbox id for
//! MAILBOXID, `M` and the message id for EMAILID. Storage hands out neither id twice
//! (`storage/src/id_sequence.rs`), so an objectid names one object for ever (§4.1, §5.1);
//! a COPY or MOVE shares the message row, so every copy has the same EMAILID (§5.1).
//! THREADID is always NIL: threads are computed per THREAD command, not kept with the
//! message (§5.2: "If the server doesn't support THREADID, it MUST return NIL").

use std::fmt;
use storage::{MailboxId, MessageId};

/// RFC 8474 §7: at most 255 characters.
pub const MAX_OBJECTID: usize = 255;

const MAILBOX_PREFIX: char = 'F';
const EMAIL_PREFIX: char = 'M';

/// A syntactically valid objectid as a client sent it; it may name nothing of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectId(String);

impl ObjectId {
    /// `None` unless `text` is `1*255(ALPHA / DIGIT / "_" / "-")`.
    pub fn new(text: &str) -> Option<ObjectId> {
        let valid = !text.is_empty()
            && text.len() <= MAX_OBJECTID
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid.then(|| ObjectId(text.to_owned()))
    }

    /// The message this EMAILID names, if it is one of ours.
    pub fn message(&self) -> Option<MessageId> {
        let digits = self.0.strip_prefix(EMAIL_PREFIX)?;
        // Only the canonical spelling: "M012" and "M-12" are not ours.
        if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(MessageId)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 8474 §4: the MAILBOXID of a mailbox.
pub fn mailbox_id(id: MailboxId) -> String {
    format!("{MAILBOX_PREFIX}{}", id.0)
}

/// RFC 8474 §5.1: the EMAILID of a message, the same in every mailbox holding it.
pub fn email_id(id: MessageId) -> String {
    format!("{EMAIL_PREFIX}{}", id.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectids_are_checked_and_round_trip() {
        assert!(ObjectId::new("").is_none());
        assert!(ObjectId::new("a b").is_none());
        assert!(ObjectId::new("F1.2").is_none());
        assert!(ObjectId::new(&"a".repeat(256)).is_none());
        assert!(ObjectId::new(&"a".repeat(255)).is_some());
        assert!(ObjectId::new("Tx_9-z").is_some());
        let email = email_id(MessageId(42));
        assert_eq!(email, "M42");
        assert_eq!(
            ObjectId::new(&email).and_then(|id| id.message()),
            Some(MessageId(42))
        );
        assert_eq!(ObjectId::new("M042").and_then(|id| id.message()), None);
        assert_eq!(ObjectId::new("M-42").and_then(|id| id.message()), None);
        assert_eq!(ObjectId::new("F42").and_then(|id| id.message()), None);
        assert_eq!(
            ObjectId::new("M99999999999999999999").and_then(|id| id.message()),
            None
        );
        assert_eq!(mailbox_id(MailboxId(7)), "F7");
    }
}
