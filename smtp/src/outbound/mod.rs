//! Outbound SMTP: where a domain's mail goes ([`dns`]), the `[outbound]` configuration
//! ([`config`]) and the client side of one delivery ([`client`]). The queue worker in
//! [`crate::queue`] drives these.

pub mod client;
pub mod config;
pub mod dns;

pub use config::{HostPort, OutboundConfig, RelayTls};
pub use dns::{Lookup, Mx, Resolver, Router, SystemResolver};
