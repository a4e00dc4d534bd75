//! Mail authentication with mail-auth: DKIM keys and signing for outgoing mail
//! ([`keys`]), SPF/DKIM/DMARC/ARC checks on incoming mail ([`check`]), the DNS they use
//! with its offline overrides ([`resolver`], records read by [`txt`]), and the
//! `[inbound]`/`[dns]` configuration ([`config`]).

pub mod check;
pub mod config;
pub mod keys;
pub mod resolver;
pub mod txt;

pub use check::{InboundAuth, Verdict};
pub use config::{DnsConfig, InboundConfig};
pub use keys::KeyRing;
pub use resolver::AuthResolver;
