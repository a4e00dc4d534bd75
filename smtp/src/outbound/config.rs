//! The `[outbound]` table of the configuration file: how queued mail leaves.
//!
//! ```toml
//! [outbound]
//! relay = "smtp.provider.example:587"   # optional smarthost; without it, MX delivery
//! relay_tls = "starttls"                # none | starttls | implicit
//! relay_username = "me@provider.example"
//! relay_password = "secret"
//! retry_delays_secs = [60, 300, 900, 1800, 3600, 7200, 14400]  # the last one repeats
//! max_age_secs = 432000                 # give up (and bounce) after 5 days
//! lease_secs = 300                      # several nodes: a dead node's items move on after this
//!
//! [outbound.static_routes]              # bypass DNS for these domains
//! "example.net" = "127.0.0.1:2526"
//! ```
//!
//! Values are checked when the file is read, so the worker only sees valid ones.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// RFC 5321 §4.5.4.1: retry at least 30 minutes apart after the first tries, give up
/// after 4-5 days. We start sooner (greylisting usually lets the second try through).
const DEFAULT_RETRY_DELAYS_SECS: [u64; 7] = [60, 300, 900, 1800, 3600, 7200, 4 * 3600];
/// RFC 5321 §4.5.4.1: "at least 4-5 days".
const DEFAULT_MAX_AGE_SECS: u64 = 5 * 24 * 3600;
/// RFC 3461 §4.1 DELAY: how long a message waits before its sender hears it is delayed
/// (the common practice of Postfix and Exim: 4 hours).
const DEFAULT_DELAY_WARNING_SECS: u64 = 4 * 3600;
/// How long a claimed item stays leased to the worker that claimed it; the worker renews
/// the lease every third of this while its attempt runs. When a node dies, another
/// node takes its items over once their leases run out.
const DEFAULT_LEASE_SECS: u64 = 300;
/// The shortest lease: renewing it takes a storage commit, every third of it.
const MIN_LEASE_SECS: u64 = 3;
/// How often the worker looks for due items when nothing told it sooner.
const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;
/// Queue items delivered at the same time; each holds at most one connection.
const DEFAULT_CONCURRENCY: usize = 8;
/// Time to open a TCP connection to one address before trying the next.
const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 30;
/// RFC 5321 §4.5.3.2: 5 minutes for the greeting, MAIL, RCPT; we use it for every
/// command, and twice as much for the reply to the end of DATA (§4.5.3.2.6 says 10).
const DEFAULT_COMMAND_TIMEOUT_SECS: u64 = 300;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Send everything through this smarthost instead of looking up MX records.
    pub relay: Option<HostPort>,
    pub relay_tls: RelayTls,
    pub relay_username: Option<String>,
    pub relay_password: Option<Password>,
    /// Domain (lower case) to `host:port`, bypassing DNS and the relay.
    pub static_routes: BTreeMap<String, HostPort>,
    /// Delay before each retry; the last one repeats.
    pub retry_delays_secs: Vec<u64>,
    pub max_age_secs: u64,
    /// After this long in the queue the sender gets one delay notice; 0 sends none.
    pub delay_warning_secs: u64,
    pub poll_interval_secs: u64,
    /// See [`DEFAULT_LEASE_SECS`].
    pub lease_secs: u64,
    pub concurrency: usize,
    pub connect_timeout_secs: u64,
    pub command_timeout_secs: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            relay: None,
            relay_tls: RelayTls::default(),
            relay_username: None,
            relay_password: None,
            static_routes: BTreeMap::new(),
            retry_delays_secs: DEFAULT_RETRY_DELAYS_SECS.to_vec(),
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            delay_warning_secs: DEFAULT_DELAY_WARNING_SECS,
            poll_interval_secs: DEFAULT_POLL_INTERVAL_SECS,
            lease_secs: DEFAULT_LEASE_SECS,
            concurrency: DEFAULT_CONCURRENCY,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            command_timeout_secs: DEFAULT_COMMAND_TIMEOUT_SECS,
        }
    }
}

impl OutboundConfig {
    /// Checks what serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_delays_secs.is_empty() {
            return Err("key `outbound.retry_delays_secs`: give at least one delay".into());
        }
        if self.concurrency == 0 {
            return Err("key `outbound.concurrency`: must be at least 1".into());
        }
        if self.poll_interval_secs == 0 {
            return Err("key `outbound.poll_interval_secs`: must be at least 1".into());
        }
        if self.lease_secs < MIN_LEASE_SECS {
            return Err(format!(
                "key `outbound.lease_secs`: must be at least {MIN_LEASE_SECS}"
            ));
        }
        if self.relay_username.is_some() != self.relay_password.is_some() {
            return Err(
                "keys `outbound.relay_username` and `outbound.relay_password`: give both or neither"
                    .into(),
            );
        }
        if self.relay_username.is_some() && self.relay.is_none() {
            return Err("key `outbound.relay_username`: needs `outbound.relay`".into());
        }
        Ok(())
    }

    /// The delay before the retry that follows `attempts` failed attempts.
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        let index = (attempts as usize).min(self.retry_delays_secs.len().saturating_sub(1));
        Duration::from_secs(
            self.retry_delays_secs
                .get(index)
                .copied()
                .unwrap_or(4 * 3600),
        )
    }

    /// The static route for `domain`, if any (domains compare without case).
    pub fn static_route(&self, domain: &str) -> Option<&HostPort> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.static_routes
            .iter()
            .find(|(name, _)| name.trim_end_matches('.').eq_ignore_ascii_case(&domain))
            .map(|(_, route)| route)
    }
}

/// How to talk to the smarthost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// Plain text (a relay on the same host or network only).
    None,
    /// RFC 3207 STARTTLS, required, certificate verified.
    #[default]
    Starttls,
    /// RFC 8314 implicit TLS (port 465), certificate verified.
    Implicit,
}

/// `host:port`, checked when the file is read.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl TryFrom<String> for HostPort {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        // `[2001:db8::1]:25` or `host:25`.
        let (host, port) = value
            .rsplit_once(':')
            .ok_or_else(|| format!("{value:?} is not host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{value:?}: bad port {port:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(char::is_whitespace) || port == 0 {
            return Err(format!("{value:?} is not host:port"));
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The relay password: never printed by Debug.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// The password itself; call only where it is sent (AUTH).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parses_names_and_literals() {
        let route = HostPort::try_from("127.0.0.1:2526".to_owned()).expect("v4");
        assert_eq!((route.host.as_str(), route.port), ("127.0.0.1", 2526));
        let route = HostPort::try_from("[::1]:25".to_owned()).expect("v6");
        assert_eq!((route.host.as_str(), route.port), ("::1", 25));
        assert!(HostPort::try_from("nohost".to_owned()).is_err());
        assert!(HostPort::try_from("host:0".to_owned()).is_err());
    }

    #[test]
    fn retry_delay_repeats_the_last() {
        let config = OutboundConfig::default();
        assert_eq!(config.retry_delay(0), Duration::from_secs(60));
        assert_eq!(config.retry_delay(1), Duration::from_secs(300));
        assert_eq!(config.retry_delay(50), Duration::from_secs(4 * 3600));
    }

    #[test]
    fn static_routes_ignore_case() {
        let mut config = OutboundConfig::default();
        config.static_routes.insert(
            "Example.NET".into(),
            HostPort::try_from("127.0.0.1:2526".to_owned()).expect("route"),
        );
        assert!(config.static_route("example.net").is_some());
        assert!(config.static_route("example.org").is_none());
    }
}
