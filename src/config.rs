//! The configuration file (TOML) and its embedded defaults.
//!
//! Every table rejects unknown keys, and every error names the file and the key.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Our host name: SMTP greeting, Received headers, the self-signed certificate,
    /// and the first domain on a new installation.
    pub hostname: String,
    pub data_dir: PathBuf,
    /// Storage URL; default `sqlite://<data_dir>/letterbox.sqlite`. A `postgres://` URL
    /// puts everything in PostgreSQL, which several letterbox nodes may share.
    pub storage: Option<String>,
    pub listen: Listen,
    pub tls: Tls,
    /// Certificates from an ACME CA (RFC 8555); `[tls]` files, when also given, are
    /// served only until the first ACME certificate arrives.
    pub acme: Option<Acme>,
    pub limits: Limits,
    /// The public addresses this server sends mail from: `letterbox dns` puts them in
    /// the SPF record it prints.
    pub public_addresses: Vec<IpAddr>,
    #[serde(default)]
    pub outbound: smtp::outbound::OutboundConfig,
    /// Checks on mail arriving on port 25.
    pub inbound: smtp::mailauth::InboundConfig,
    /// Whom a user may name in From: and Sender: on the submission ports.
    pub submission: smtp::submission::SubmissionConfig,
    /// DNS for those checks: offline mode and TXT overrides.
    pub dns: smtp::mailauth::DnsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub smtp: Vec<SocketAddr>,
    pub submission: Vec<SocketAddr>,
    pub submissions: Vec<SocketAddr>,
    pub imap: Vec<SocketAddr>,
    pub imaps: Vec<SocketAddr>,
    /// Plain HTTP: client autoconfiguration, `/healthz`, `/metrics`. Put a TLS proxy in
    /// front of it for the internet (clients look up `https://autoconfig.DOMAIN/...`).
    /// With `[acme]` on port 80, it answers HTTP-01 challenges (RFC 8555 §8.3).
    pub http: Vec<SocketAddr>,
    /// HTTPS, port 443 on the internet: the same documents as `http` over TLS with the
    /// server's certificate, and ACME's TLS-ALPN-01 challenges (RFC 8737). Off by default.
    pub https: Vec<SocketAddr>,
    /// ManageSieve (RFC 5804; 4190 is its IANA port), with STARTTLS.
    pub managesieve: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain; without cert and key a self-signed certificate for
    /// `hostname` is made once into `data_dir`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The `[acme]` table: where certificates come from and for which names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// The CA's directory URL (RFC 8555 §7.1.1), `https://` only (RFC 8555 §6.1).
    pub directory: String,
    /// Where the CA may write about the account (RFC 8555 §7.3): a `mailto:` URL.
    pub contact: Option<String>,
    /// PEM certificates trusted for the CA's own HTTPS instead of the system's roots:
    /// a private CA (or Pebble, in tests).
    pub ca_bundle: Option<PathBuf>,
    /// Names the certificate is for besides `hostname` (and the autoconfig names).
    #[serde(default)]
    pub extra_names: Vec<String>,
    /// Also `autoconfig.DOMAIN` and `autodiscover.DOMAIN` for every hosted domain, so
    /// that clients can fetch their settings over HTTPS (`listen.https`). Their DNS must
    /// point here, or no certificate can be had: turn this off when it does not.
    #[serde(default = "yes")]
    pub autoconfig_names: bool,
    /// Only this challenge type (`"tls-alpn-01"` or `"http-01"`); by default
    /// TLS-ALPN-01 when `listen.https` is set and the CA offers it, else HTTP-01.
    pub challenge: Option<ChallengeKind>,
    /// Renew this many days before the certificate ends; by default when two thirds of
    /// its lifetime have passed. Never before half of it has.
    pub renew_before_days: Option<u32>,
}

/// The challenge types letterbox answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ChallengeKind {
    /// RFC 8555 §8.3, on `listen.http` (port 80).
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8737, on `listen.https` (port 443).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted by SMTP and APPEND, in bytes.
    pub max_message_size: usize,
    /// Recipients per SMTP transaction (RFC 5321 §4.5.3.1.8: at least 100).
    pub max_recipients: usize,
    /// Bytes of message content (DATA, BDAT) all SMTP sessions together hold in memory;
    /// a session that finds none free for a while gets `452 4.3.1` (see smtp::budget).
    /// At least `max_message_size`, or the largest message could never be accepted;
    /// by default 64 MiB or `max_message_size` when that is larger.
    pub smtp_data_in_flight: Option<usize>,
    /// Open connections across all listeners; a tenth of them only port 25 may use.
    pub max_connections: usize,
    /// Open connections from one client (an IPv4 address, or an IPv6 /64), counted apart
    /// for port 25 and for all the other listeners together.
    pub max_connections_per_ip: usize,
    /// Failed logins from one client (an IPv4 address, or an IPv6 /64), against any
    /// accounts, before all its logins are refused; a correct login clears only the
    /// failures against its own account (see netutil's `AuthThrottle`).
    pub max_auth_failures: u32,
    /// How long the failures of a client are kept, from its first: the lock lasts until
    /// then.
    pub auth_failure_window_secs: u64,
    /// Logins from one client being checked at once; more are refused like throttled
    /// ones. Every login in flight also counts as a failure until it succeeds, so
    /// `max_auth_failures` bounds this too.
    pub max_auth_in_flight_per_ip: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: "localhost".into(),
            data_dir: PathBuf::from("letterbox-data"),
            storage: None,
            listen: Listen::default(),
            tls: Tls::default(),
            acme: None,
            limits: Limits::default(),
            public_addresses: Vec::new(),
            outbound: smtp::outbound::OutboundConfig::default(),
            inbound: smtp::mailauth::InboundConfig::default(),
            submission: smtp::submission::SubmissionConfig::default(),
            dns: smtp::mailauth::DnsConfig::default(),
        }
    }
}

/// The quickstart ports: unprivileged, loopback only.
impl Default for Listen {
    fn default() -> Self {
        let local = |port: u16| vec![SocketAddr::from(([127, 0, 0, 1], port))];
        Listen {
            smtp: local(2525),
            submission: local(2587),
            submissions: local(2465),
            imap: local(2143),
            imaps: local(2993),
            http: local(2080),
            https: Vec::new(),
            managesieve: local(24190),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: storage::DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: 100,
            smtp_data_in_flight: None,
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_auth_failures: 10,
            auth_failure_window_secs: 15 * 60,
            max_auth_in_flight_per_ip: netutil::DEFAULT_MAX_AUTH_IN_FLIGHT,
        }
    }
}

impl Limits {
    /// The byte budget of SMTP content, the default filled in.
    pub fn smtp_data_in_flight(&self) -> usize {
        self.smtp_data_in_flight
            .unwrap_or_else(|| smtp::budget::DEFAULT_DATA_BUDGET.max(self.max_message_size))
    }
}

impl Config {
    /// Reads the file when given, else the embedded defaults.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            bail!("key `hostname`: {:?} is not a host name", self.hostname);
        }
        if self.limits.max_message_size < 1024 {
            bail!("key `limits.max_message_size`: must be at least 1024");
        }
        if self.limits.smtp_data_in_flight() < self.limits.max_message_size {
            bail!(
                "key `limits.smtp_data_in_flight`: must be at least `limits.max_message_size` ({}), \
                 or a message of that size could never be accepted",
                self.limits.max_message_size
            );
        }
        if self.limits.max_recipients < 1 {
            bail!("key `limits.max_recipients`: must be at least 1");
        }
        if self.limits.max_connections < 1 || self.limits.max_connections_per_ip < 1 {
            bail!(
                "key `limits.max_connections`/`limits.max_connections_per_ip`: must be at least 1"
            );
        }
        if self.limits.max_auth_failures < 1 || self.limits.max_auth_in_flight_per_ip < 1 {
            bail!(
                "key `limits.max_auth_failures`/`limits.max_auth_in_flight_per_ip`: must be at \
                 least 1, or no one could log in"
            );
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("keys `tls.cert` and `tls.key`: give both or neither");
        }
        if let Some(acme) = &self.acme {
            self.validate_acme(acme)?;
        }
        self.outbound.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.inbound.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.dns.validate().map_err(|e| anyhow::anyhow!(e))?;
        if let Some(url) = &self.storage
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            bail!(
                "key `storage`: {url:?} is neither a sqlite: nor a postgres:// URL \
                 (sqlite:///var/lib/letterbox/letterbox.sqlite, postgres://user@host/database)"
            );
        }
        Ok(())
    }

    fn validate_acme(&self, acme: &Acme) -> Result<()> {
        if !acme.directory.starts_with("https://") {
            bail!(
                "key `acme.directory`: {:?} is not an https:// URL (RFC 8555 §6.1)",
                acme.directory
            );
        }
        if let Some(contact) = &acme.contact
            && (!contact.starts_with("mailto:") || contact.contains(char::is_whitespace))
        {
            bail!("key `acme.contact`: {contact:?} is not a mailto: URL");
        }
        for name in &acme.extra_names {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
                bail!("key `acme.extra_names`: {name:?} is not a host name");
            }
        }
        if acme.renew_before_days == Some(0) {
            bail!("key `acme.renew_before_days`: must be at least 1");
        }
        let answerable = match acme.challenge {
            Some(ChallengeKind::Http01) => !self.listen.http.is_empty(),
            Some(ChallengeKind::TlsAlpn01) => !self.listen.https.is_empty(),
            None => !self.listen.http.is_empty() || !self.listen.https.is_empty(),
        };
        if !answerable {
            bail!(
                "table `acme`: no listener to answer the CA's challenges on: set `listen.https` \
                 (port 443, TLS-ALPN-01) or `listen.http` (port 80, HTTP-01)"
            );
        }
        Ok(())
    }

    pub fn storage_url(&self) -> String {
        match &self.storage {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("letterbox.sqlite").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `text` is refused with an error that names `what`; `why` says what
    /// must not be accepted.
    fn assert_refused(text: &str, what: &str, why: &str) {
        let error = Config::parse(text).expect_err(why).to_string();
        assert!(error.contains(what), "{error}");
    }

    #[test]
    fn unknown_key_is_named() {
        assert_refused(
            "hostname = \"mx.example.org\"\n[limits]\nmax_mesage_size = 10\n",
            "max_mesage_size",
            "unknown key accepted",
        );
    }

    #[test]
    fn bad_value_is_named() {
        assert_refused(
            "[listen]\nsmtp = [\"not an address\"]\n",
            "smtp",
            "bad address accepted",
        );
    }

    #[test]
    fn dns_overrides_are_checked() {
        let config = Config::parse(
            "public_addresses = [\"192.0.2.1\"]\n[inbound]\ndmarc_enforce = true\n[dns]\noffline = true\n[dns.txt]\n\"example.org\" = [\"v=spf1 ip4:192.0.2.1 -all\"]\n",
        )
        .expect("valid");
        assert!(config.inbound.dmarc_enforce && config.dns.offline);
        assert_refused(
            "[dns.txt]\n\"_dmarc.example.org\" = [\"v=DMARC2\"]\n",
            "dns.txt.\"_dmarc.example.org\"",
            "bad DMARC record accepted",
        );
        assert_refused("[dns]\nofline = true\n", "ofline", "unknown key accepted");
        assert_refused(
            "[inbound]\nauth_checks = false\ndmarc_enforce = true\n",
            "inbound.dmarc_enforce",
            "enforcing without checks",
        );
    }

    #[test]
    fn submission_from_check_is_strict_unless_widened() {
        let config = Config::parse("").expect("defaults");
        assert!(!config.submission.from_own_domains);
        let config = Config::parse("[submission]\nfrom_own_domains = true\n").expect("valid");
        assert!(config.submission.from_own_domains);
        assert_refused(
            "[submission]\nfrom_any = true\n",
            "from_any",
            "unknown key accepted",
        );
    }

    #[test]
    fn smtp_data_budget_holds_the_largest_message() {
        let config = Config::parse("[limits]\nmax_message_size = 104857600\n").expect("valid");
        assert_eq!(config.limits.smtp_data_in_flight(), 104857600);
        let config = Config::parse("").expect("defaults");
        assert_eq!(
            config.limits.smtp_data_in_flight(),
            smtp::budget::DEFAULT_DATA_BUDGET
        );
        assert_refused(
            "[limits]\nsmtp_data_in_flight = 1048576\n",
            "limits.smtp_data_in_flight",
            "a budget below the message size accepted",
        );
    }

    #[test]
    fn login_limits_must_let_someone_in() {
        let config = Config::parse("[limits]\nmax_auth_in_flight_per_ip = 20\n").expect("valid");
        assert_eq!(config.limits.max_auth_in_flight_per_ip, 20);
        assert_eq!(
            Config::parse("")
                .expect("defaults")
                .limits
                .max_auth_in_flight_per_ip,
            netutil::DEFAULT_MAX_AUTH_IN_FLIGHT
        );
        for key in ["max_auth_failures", "max_auth_in_flight_per_ip"] {
            assert_refused(
                &format!("[limits]\n{key} = 0\n"),
                key,
                "a limit that refuses every login accepted",
            );
        }
    }

    #[test]
    fn acme_is_checked() {
        let config = Config::parse(
            "[listen]\nhttps = [\"0.0.0.0:443\"]\n[acme]\ndirectory = \"https://ca.example/dir\"\ncontact = \"mailto:admin@example.org\"\n",
        )
        .expect("valid");
        let acme = config.acme.expect("acme");
        assert!(acme.autoconfig_names && acme.challenge.is_none());
        let config = Config::parse(
            "[acme]\ndirectory = \"https://ca.example/dir\"\nchallenge = \"http-01\"\nautoconfig_names = false\n",
        )
        .expect("valid");
        let acme = config.acme.expect("acme");
        assert_eq!(acme.challenge, Some(ChallengeKind::Http01));
        assert!(!acme.autoconfig_names);
        for (text, key) in [
            (
                "[acme]\ndirectory = \"http://ca.example/dir\"\n",
                "acme.directory",
            ),
            (
                "[acme]\ndirectory = \"https://ca.example/dir\"\ncontact = \"admin@example.org\"\n",
                "acme.contact",
            ),
            (
                "[acme]\ndirectory = \"https://ca.example/dir\"\nchallenge = \"tls-alpn-01\"\n",
                "listen.https",
            ),
            (
                "[acme]\ndirectory = \"https://ca/\"\nrenew_before_days = 0\n",
                "renew_before_days",
            ),
            (
                "[acme]\ndirectory = \"https://ca/\"\nchalenge = \"http-01\"\n",
                "chalenge",
            ),
        ] {
            let error = Config::parse(text).expect_err(text).to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn defaults_are_the_quickstart() {
        let config = Config::parse("").expect("empty config");
        assert_eq!(
            config.listen.smtp,
            vec![SocketAddr::from(([127, 0, 0, 1], 2525))]
        );
        assert_eq!(
            config.listen.imaps,
            vec![SocketAddr::from(([127, 0, 0, 1], 2993))]
        );
        assert_eq!(
            config.listen.http,
            vec![SocketAddr::from(([127, 0, 0, 1], 2080))]
        );
        assert_eq!(
            config.storage_url(),
            "sqlite://letterbox-data/letterbox.sqlite"
        );
    }
}
