//! Newtypes for the identifiers and counters that must never be mixed up.

use crate::error::StoreError;
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
id_type!(
    /// A point in time: seconds since the Unix epoch (UTC), as the database keeps times.
    UnixTime, i64
);

impl UnixTime {
    /// Now by the system clock (the epoch itself when the clock is set before it).
    pub fn now() -> UnixTime {
        UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        )
    }

    /// `seconds` later (earlier when negative), saturating.
    pub fn plus_seconds(self, seconds: i64) -> UnixTime {
        UnixTime(self.0.saturating_add(seconds))
    }

    /// The seconds from `earlier` to this time; negative when `earlier` is later.
    pub fn seconds_since(self, earlier: UnixTime) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

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

/// Longest mailbox name we accept, in bytes; deep hierarchies beyond this are abuse.
pub const MAX_MAILBOX_NAME_BYTES: usize = 1024;

/// What a string newtype checked when built ([`MailboxName`], [`Domain`]) offers besides
/// its constructor: read access to the checked string, and comparison with plain ones.
macro_rules! checked_string_type {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// A mailbox name as storage keeps it: valid and normalised, so holding one means it may
/// name a mailbox. Built from a client's name (after modified UTF-7 is decoded) by
/// [`MailboxName::new`], once, at the protocol boundary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxName(String);

impl MailboxName {
    /// The name of the one mailbox every account has.
    pub const INBOX: &'static str = "INBOX";

    /// RFC 9051 §5.1: INBOX is case-insensitive (also as the first level of a hierarchy);
    /// other names are kept as given. Refuses the empty name, names over
    /// [`MAX_MAILBOX_NAME_BYTES`], empty levels (the delimiter at either end or twice in a
    /// row), control characters and the LIST wildcards `*` and `%` (RFC 9051 §5.1:
    /// names with them cannot be listed unambiguously).
    pub fn new(name: &str) -> Result<MailboxName, StoreError> {
        let name = if name.eq_ignore_ascii_case(Self::INBOX) {
            Self::INBOX.to_owned()
        } else if let Some(rest) = name
            .get(..6)
            .filter(|prefix| prefix.eq_ignore_ascii_case("INBOX/"))
            .and_then(|_| name.get(5..))
        {
            format!("{}{rest}", Self::INBOX)
        } else {
            name.to_owned()
        };
        let bad = name.is_empty()
            || name.len() > MAX_MAILBOX_NAME_BYTES
            || name.split(MAILBOX_DELIMITER).any(str::is_empty)
            || name.chars().any(|c| c.is_control() || c == '*' || c == '%');
        if bad {
            return Err(StoreError::invalid("mailbox name", format!("{name:?}")));
        }
        Ok(MailboxName(name))
    }

    /// INBOX.
    pub fn inbox() -> MailboxName {
        MailboxName(Self::INBOX.to_owned())
    }

    /// A name read back from the database, where only [`MailboxName::new`]'s names are
    /// written (and the superior levels of those, which are valid too).
    pub(crate) fn from_stored(name: String) -> MailboxName {
        MailboxName(name)
    }

    pub fn is_inbox(&self) -> bool {
        self.0 == Self::INBOX
    }
}

checked_string_type!(MailboxName);

/// `name` lower-cased (RFC 5321 §2.4: domains are case-insensitive) and without the
/// trailing dot of a fully qualified name, when it is at most 253 octets of labels of 1 to
/// 63 octets each (RFC 1035 §2.3.4) whose bytes all pass `label_byte`; otherwise `Err`
/// with the lower-cased name, for the message. [`Domain::new`] takes letters, digits and
/// hyphens (RFC 1035 §2.3.1); DNS names such as DKIM's also take `_` (RFC 2181 §11).
pub fn dns_name(name: &str, label_byte: impl Fn(u8) -> bool) -> Result<String, String> {
    let domain = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63 && label.bytes().all(&label_byte));
    if valid { Ok(domain) } else { Err(domain) }
}

/// A domain name as storage keeps it: lower case (RFC 5321 §2.4: domains are
/// case-insensitive), without the trailing dot of a fully qualified name, at most 253
/// octets of labels of letters, digits and hyphens, each 1 to 63 octets (RFC 1035 §2.3.1,
/// §2.3.4). Holding one means it is such a name; built once where a name comes in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

impl Domain {
    /// Lower-cases `name` and drops trailing dots, then checks it. Whitespace is not
    /// trimmed: a name with spaces is no domain.
    pub fn new(name: &str) -> Result<Domain, StoreError> {
        dns_name(name, |b| b.is_ascii_alphanumeric() || b == b'-')
            .map(Domain)
            .map_err(|domain| {
                StoreError::invalid("domain", format!("{domain:?} is not a domain name"))
            })
    }

    /// A name read back from the database, where only [`Domain::new`]'s names are
    /// written.
    pub(crate) fn from_stored(name: String) -> Domain {
        Domain(name)
    }
}

checked_string_type!(Domain);

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
    fn mailbox_names_are_normalised_and_checked() {
        let name = |s: &str| MailboxName::new(s).map(MailboxName::into_string);
        assert_eq!(name("inbox").expect("valid"), "INBOX");
        assert_eq!(name("Inbox/Lists").expect("valid"), "INBOX/Lists");
        assert_eq!(name("Inboxes").expect("valid"), "Inboxes");
        assert_eq!(name("a/b").expect("valid"), "a/b");
        for bad in ["", "/a", "a/", "a//b", "a*", "a%", "a\u{7}b"] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
        assert!(name(&"a".repeat(MAX_MAILBOX_NAME_BYTES)).is_ok());
        assert!(name(&"a".repeat(MAX_MAILBOX_NAME_BYTES + 1)).is_err());
        // The client hears what it heard before the type existed.
        let error = MailboxName::new("a//b").expect_err("empty level");
        assert_eq!(error.to_string(), "invalid mailbox name: \"a//b\"");
        assert!(MailboxName::inbox().is_inbox());
    }

    #[test]
    fn domains_are_lower_case_and_checked() {
        let domain = |s: &str| Domain::new(s).map(Domain::into_string);
        assert_eq!(domain("Example.ORG.").expect("valid"), "example.org");
        assert_eq!(domain("mail-1.example").expect("valid"), "mail-1.example");
        assert_eq!(domain("localhost").expect("valid"), "localhost");
        for bad in [
            "",
            ".",
            "a..b",
            " example.org",
            "ex ample.org",
            "_dmarc.example.org",
        ] {
            assert!(domain(bad).is_err(), "{bad:?}");
        }
        assert!(domain(&format!("{}.org", "a".repeat(63))).is_ok());
        assert!(domain(&format!("{}.org", "a".repeat(64))).is_err());
        assert!(domain(&["a"; 127].join(".")).is_ok());
        assert!(domain(&["a"; 128].join(".")).is_err());
        // The client hears what it heard before the type existed.
        let error = Domain::new("Bad_Domain").expect_err("underscore");
        assert_eq!(
            error.to_string(),
            "invalid domain: \"bad_domain\" is not a domain name"
        );
    }

    #[test]
    fn unix_times_count_seconds() {
        let queued = UnixTime(1_000);
        assert_eq!(queued.plus_seconds(60), UnixTime(1_060));
        assert_eq!(UnixTime(1_060).seconds_since(queued), 60);
        assert_eq!(queued.seconds_since(UnixTime(1_060)), -60);
        assert_eq!(UnixTime(i64::MAX).plus_seconds(1), UnixTime(i64::MAX));
        assert!(UnixTime::now() > queued);
    }

    #[test]
    fn secret_hides_itself() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
