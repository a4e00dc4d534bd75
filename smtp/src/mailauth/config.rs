//! The `[inbound]` and `[dns]` tables of the configuration file.
//!
//! ```toml
//! [inbound]
//! auth_checks = true     # SPF, DKIM, DMARC and ARC on port 25 → Authentication-Results
//! dmarc_enforce = false  # refuse (550 5.7.1) mail that fails DMARC under p=reject
//!
//! [dns]
//! offline = false        # true: ask no DNS server; names not listed below do not exist
//!
//! [dns.txt]              # TXT answers that take the place of DNS (tests, offline use)
//! "example.org" = ["v=spf1 ip4:192.0.2.1 -all"]
//! "lb1._domainkey.example.org" = ["v=DKIM1; k=rsa; p=MIIB..."]
//! "_dmarc.example.org" = ["v=DMARC1; p=reject"]
//! ```
//!
//! Values are checked when the file is read: every TXT override is parsed as the record
//! its name says it is (`_dmarc.` → DMARC, `._domainkey.` → DKIM key, `v=spf1` → SPF),
//! and an error names the key.

use super::txt::parse_txt;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// Check SPF, DKIM, DMARC and ARC on the inbound listener and add an
    /// Authentication-Results field (RFC 8601).
    pub auth_checks: bool,
    /// RFC 7489 §6.3 `p=reject`: refuse a message that fails DMARC. Off by default: the
    /// result is only recorded (forwarded mail and mailing lists often fail DMARC).
    pub dmarc_enforce: bool,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            auth_checks: true,
            dmarc_enforce: false,
        }
    }
}

impl InboundConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.dmarc_enforce && !self.auth_checks {
            return Err("key `inbound.dmarc_enforce`: needs `inbound.auth_checks = true`".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Never ask a DNS server for mail authentication; names without an override do
    /// not exist. For tests and machines without DNS.
    pub offline: bool,
    /// Name → TXT strings, answered instead of asking DNS.
    pub txt: BTreeMap<String, Vec<String>>,
}

impl DnsConfig {
    /// Checks every override; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (name, records) in &self.txt {
            let key = format!("key `dns.txt.\"{name}\"`");
            if name.is_empty()
                || !name.is_ascii()
                || name.contains(|c: char| c.is_whitespace() || c == '@')
            {
                return Err(format!("{key}: not a domain name"));
            }
            if records.is_empty() {
                return Err(format!("{key}: give at least one record"));
            }
            parse_txt(name, records).map_err(|e| format!("{key}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str, record: &str) -> DnsConfig {
        let mut config = DnsConfig::default();
        config.txt.insert(name.into(), vec![record.into()]);
        config
    }

    #[test]
    fn overrides_are_checked_by_kind() {
        // Well-formed SPF and DMARC records pass; other TXT records (site verification and
        // the like) are kept as they are.
        for (name, record) in [
            ("example.org", "v=spf1 ip4:127.0.0.1 -all"),
            ("_dmarc.example.org", "v=DMARC1; p=reject"),
            ("example.org", "google-site-verification=x"),
        ] {
            assert!(dns(name, record).validate().is_ok(), "{name}: {record}");
        }
        for (name, record) in [
            ("example.org", "v=spf1 ip4:nonsense -all"),
            ("bad name", "v=spf1 -all"),
        ] {
            assert!(dns(name, record).validate().is_err(), "{name}: {record}");
        }
        let error = dns("_dmarc.example.org", "v=spf1 -all")
            .validate()
            .expect_err("not DMARC");
        assert!(error.contains("dns.txt.\"_dmarc.example.org\""), "{error}");
        let error = dns("lb1._domainkey.example.org", "v=DKIM1; p=@@@")
            .validate()
            .expect_err("bad key");
        assert!(error.contains("lb1._domainkey"), "{error}");
    }

    #[test]
    fn enforcing_needs_checks() {
        let config = InboundConfig {
            auth_checks: false,
            dmarc_enforce: true,
        };
        assert!(config.validate().is_err());
        assert!(InboundConfig::default().validate().is_ok());
    }
}
