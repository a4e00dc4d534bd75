//! Newtypes for the identifiers and counters that must never be mixed up.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $inner:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Row id of an account.
    AccountId, i64
);
id_type!(
    /// Row id of a mailbox.
    MailboxId, i64
);
id_type!(
    /// Row id of a stored message (the raw bytes, shared by every mailbox entry).
    MessageId, i64
);
id_type!(
    /// Row id of an outbound queue item.
    QueueId, i64
);
id_type!(
    /// RFC 9051 §2.3.1.1: unique identifier of a message within a mailbox, never reused
    /// within one UIDVALIDITY.
    Uid, u32
);
id_type!(
    /// RFC 9051 §2.3.1.1: the UIDVALIDITY of a mailbox.
    UidValidity, u32
);
id_type!(
    /// RFC 7162 §3.1: a modification sequence; grows with every change in a mailbox.
    ModSeq, u64
);

/// A password or other secret: never printed by Debug or Display.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used (hashing, verifying).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The special-use roles of RFC 6154 §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    /// The attribute as written on the wire, e.g. `\Sent`.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }

    /// Parses an attribute such as `\Sent` (case-insensitive, RFC 6154 §2).
    pub fn from_attribute(attribute: &str) -> Option<SpecialUse> {
        let all = [
            SpecialUse::All,
            SpecialUse::Archive,
            SpecialUse::Drafts,
            SpecialUse::Flagged,
            SpecialUse::Junk,
            SpecialUse::Sent,
            SpecialUse::Trash,
        ];
        all.into_iter()
            .find(|role| role.attribute().eq_ignore_ascii_case(attribute))
    }
}

/// The mailboxes every new account gets, with their roles (RFC 6154).
pub const DEFAULT_MAILBOXES: &[(&str, Option<SpecialUse>)] = &[
    ("INBOX", None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// Hierarchy delimiter of mailbox names (RFC 9051 §5.1.1).
pub const MAILBOX_DELIMITER: char = '/';

/// A set of message flags and keywords (RFC 9051 §2.3.2), kept sorted and without
/// duplicates; system flags are compared case-insensitively and stored in their
/// canonical spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags(Vec<String>);

pub const SYSTEM_FLAGS: &[&str] = &["\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen"];

impl Flags {
    pub fn new<I, S>(flags: I) -> Flags
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Flags::default();
        for flag in flags {
            set.insert(flag.as_ref());
        }
        set
    }

    /// Parses the space-separated form stored in the database.
    pub fn from_stored(stored: &str) -> Flags {
        Flags(
            stored
                .split(' ')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn to_stored(&self) -> String {
        self.0.join(" ")
    }

    fn canonical(flag: &str) -> String {
        SYSTEM_FLAGS
            .iter()
            .find(|system| system.eq_ignore_ascii_case(flag))
            .map(|system| (*system).to_owned())
            .unwrap_or_else(|| flag.to_owned())
    }

    pub fn insert(&mut self, flag: &str) {
        let flag = Self::canonical(flag);
        if flag.is_empty() || flag.contains(' ') {
            return;
        }
        if let Err(at) = self.position(&flag) {
            self.0.insert(at, flag);
        }
    }

    pub fn remove(&mut self, flag: &str) {
        let flag = Self::canonical(flag);
        if let Ok(at) = self.position(&flag) {
            self.0.remove(at);
        }
    }

    // RFC 9051 §2.3.2: flag names are case-insensitive.
    fn position(&self, flag: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|probe| probe.to_ascii_lowercase().cmp(&flag.to_ascii_lowercase()))
    }

    pub fn contains(&self, flag: &str) -> bool {
        self.position(&Self::canonical(flag)).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How a STORE changes flags (RFC 9051 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOperation {
    Replace,
    Add,
    Remove,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_case_insensitive_and_canonical() {
        let mut flags = Flags::new(["\\seen", "$Label", "\\SEEN"]);
        assert_eq!(flags.iter().collect::<Vec<_>>(), ["$Label", "\\Seen"]);
        assert!(flags.contains("\\Seen"));
        flags.remove("\\sEEn");
        assert_eq!(flags.to_stored(), "$Label");
        assert_eq!(Flags::from_stored("$Label"), flags);
    }

    #[test]
    fn secret_hides_itself() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
