//! The checks on mail arriving on port 25, after DATA/BDAT and before it is stored:
//! SPF for the HELO and MAIL FROM identities (RFC 7208), DKIM (RFC 6376), ARC (RFC
//! 8617) and DMARC (RFC 7489), summed up in one `Authentication-Results:` field
//! (RFC 8601) put on the stored message.

use super::config::InboundConfig;
use super::resolver::AuthResolver;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult, Error,
    SpfOutput,
};
use std::net::IpAddr;
use std::time::Duration;

/// All checks of one message together. Each is a handful of DNS lookups, each bounded
/// by the resolver's own timeout; this caps the sum so that the client, waiting for our
/// reply to the end of DATA (RFC 5321 §4.5.3.2.6: 10 minutes), is answered well before.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Mail authentication on the inbound listener.
pub struct InboundAuth {
    pub config: InboundConfig,
    pub resolver: AuthResolver,
}

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The `Authentication-Results:` field with its CRLF.
    pub header: String,
    /// RFC 7489 §6.3 / §10.3: the message fails DMARC and the domain asks for `p=reject`.
    pub dmarc_reject: bool,
    /// The RFC 5322 From domain DMARC was evaluated for (for the log and the reply).
    pub from_domain: String,
}

/// The transfer the message came with.
pub struct Envelope<'a> {
    pub peer: IpAddr,
    pub helo: &'a str,
    /// Empty for the null reverse-path.
    pub mail_from: &'a str,
}

impl InboundAuth {
    /// Runs every check on `message`; `hostname` is our authserv-id.
    pub async fn check(&self, hostname: &str, envelope: &Envelope<'_>, message: &[u8]) -> Verdict {
        match tokio::time::timeout(CHECK_TIMEOUT, self.run(hostname, envelope, message)).await {
            Ok(verdict) => verdict,
            Err(_) => {
                tracing::warn!("mail authentication checks timed out");
                Verdict {
                    // RFC 8601 §2.2: `none` — no result could be had.
                    header: format!(
                        "Authentication-Results: {hostname}; none (checks timed out)\r\n"
                    ),
                    dmarc_reject: false,
                    from_domain: String::new(),
                }
            }
        }
    }

    async fn run(&self, hostname: &str, envelope: &Envelope<'_>, message: &[u8]) -> Verdict {
        let authenticator = &self.resolver.authenticator;
        let ip = envelope.peer;
        let helo = helo_domain(envelope.helo);

        // RFC 7208 §2.3: check the HELO identity when it is a domain name.
        let helo_spf = match helo {
            Some(helo) => Some(
                authenticator
                    .verify_spf(
                        self.resolver
                            .params(SpfParameters::verify_ehlo(ip, helo, hostname)),
                    )
                    .await,
            ),
            None => None,
        };
        // RFC 7208 §2.4: MAIL FROM; for the null reverse-path the HELO result stands
        // (postmaster@<helo>).
        let mail_from_spf: Option<SpfOutput> = if envelope.mail_from.is_empty() {
            None
        } else {
            Some(
                authenticator
                    .verify_spf(self.resolver.params(SpfParameters::verify_mail_from(
                        ip,
                        helo.unwrap_or(envelope.helo),
                        hostname,
                        envelope.mail_from,
                    )))
                    .await,
            )
        };

        let mut header = String::from("Authentication-Results: ");
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            // No header section to check: only SPF can be said anything about.
            let mut results = AuthenticationResults::new(hostname);
            results = add_spf(results, &helo_spf, &mail_from_spf, envelope, ip);
            header.push_str(&format!(
                "{results};\r\n\tdkim=none (no header section);\r\n\tdmarc=none\r\n"
            ));
            return Verdict {
                header,
                dmarc_reject: false,
                from_domain: String::new(),
            };
        };

        let dkim = body_hash_mismatch_fails(
            authenticator
                .verify_dkim(self.resolver.params(&parsed))
                .await,
            &parsed,
        );
        let arc = authenticator
            .verify_arc(self.resolver.params(&parsed))
            .await;
        // RFC 7489 §3.1.2: SPF-authenticated identifier is MAIL FROM, or the HELO
        // domain for the null reverse-path.
        let (spf_domain, dmarc_spf) = match (&mail_from_spf, &helo_spf) {
            (Some(spf), _) => (
                envelope.mail_from.rsplit_once('@').map_or("", |(_, d)| d),
                spf.clone(),
            ),
            (None, Some(spf)) => (helo.unwrap_or_default(), spf.clone()),
            (None, None) => ("", SpfOutput::new(String::new())),
        };
        let dmarc = authenticator
            .verify_dmarc(
                self.resolver
                    .params(DmarcParameters::new(&parsed, &dkim, spf_domain, &dmarc_spf)),
            )
            .await;

        let mut results =
            AuthenticationResults::new(hostname).with_dkim_results(&dkim, parsed.from());
        results = add_spf(results, &helo_spf, &mail_from_spf, envelope, ip);
        results = results.with_arc_result(&arc, ip);
        if !dmarc.domain().is_empty() {
            results = results.with_dmarc_result(&dmarc);
        }
        header.push_str(&results.to_string());
        if dkim.is_empty() {
            // RFC 8601 §2.7.1: no signature at all is `dkim=none`.
            header.push_str(";\r\n\tdkim=none");
        }
        if dmarc.domain().is_empty() {
            // No single RFC 5322 From domain: DMARC does not apply (RFC 7489 §6.6.1).
            header.push_str(";\r\n\tdmarc=none");
        }
        header.push_str("\r\n");

        let dmarc_failed = matches!(dmarc.result(), DmarcResult::Fail(_));
        Verdict {
            header,
            dmarc_reject: dmarc_failed && dmarc.policy() == Policy::Reject,
            from_domain: dmarc.domain().to_owned(),
        }
    }
}

/// RFC 6376 §6.1.3: a body hash that does not match is PERMFAIL ("body hash did not
/// verify"), which RFC 8601 §2.7.1 reports as `fail`; mail-auth calls it `neutral`.
fn body_hash_mismatch_fails<'x>(
    outputs: Vec<DkimOutput<'x>>,
    parsed: &'x AuthenticatedMessage<'x>,
) -> Vec<DkimOutput<'x>> {
    outputs
        .into_iter()
        .map(|output| {
            let mismatch = matches!(
                output.result(),
                DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch))
            );
            // The signature as borrowed from the message (the output only lends it
            // for its own lifetime).
            let signature = output.signature().and_then(|signature| {
                parsed
                    .dkim_headers
                    .iter()
                    .map(|header| &header.header)
                    .find(|candidate| std::ptr::eq(*candidate, signature))
            });
            match (mismatch, signature) {
                (true, Some(signature)) => {
                    DkimOutput::fail(Error::Dkim(DkimError::FailedBodyHashMatch))
                        .with_signature(signature)
                }
                _ => output,
            }
        })
        .collect()
}

fn add_spf<'x>(
    mut results: AuthenticationResults<'x>,
    helo_spf: &Option<SpfOutput>,
    mail_from_spf: &Option<SpfOutput>,
    envelope: &Envelope<'_>,
    ip: IpAddr,
) -> AuthenticationResults<'x> {
    if let Some(spf) = helo_spf {
        results = results.with_spf_ehlo_result(spf, ip, envelope.helo);
    }
    if let Some(spf) = mail_from_spf {
        results = results.with_spf_mailfrom_result(spf, ip, envelope.mail_from, envelope.helo);
    }
    results
}

/// The HELO argument when it is a domain name (not an address literal, RFC 7208 §2.3).
fn helo_domain(helo: &str) -> Option<&str> {
    let helo = helo.trim_end_matches('.');
    (helo.contains('.')
        && !helo.starts_with('[')
        && helo.parse::<IpAddr>().is_err()
        && helo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'))
    .then_some(helo)
}

/// RFC 8601 §5: an MTA "MUST delete or otherwise obscure" Authentication-Results fields
/// that claim to be from its own ADMD, so that no forged verdict is trusted. Removes
/// every such field (authserv-id equal to `hostname`, compared without case) from the
/// header section of `message`; the body and all other fields stay byte for byte.
pub fn remove_own_results(message: Vec<u8>, hostname: &str) -> Vec<u8> {
    let mut kept: Vec<u8> = Vec::with_capacity(message.len());
    let mut removed = 0usize;
    let mut rest: &[u8] = &message;
    // One field at a time: a line and its continuation lines.
    while let Some(end) = field_end(rest) {
        let field = rest.get(..end).unwrap_or_default();
        if field == b"\r\n" || field == b"\n" || field.is_empty() {
            break; // The empty line: the body follows.
        }
        if claims(field, hostname) {
            removed += 1;
        } else {
            kept.extend_from_slice(field);
        }
        rest = rest.get(end..).unwrap_or_default();
    }
    if removed == 0 {
        return message;
    }
    tracing::info!(
        removed,
        "removed Authentication-Results claiming to be ours"
    );
    kept.extend_from_slice(rest);
    kept
}

/// The length of the header field at the start of `text`, with its continuation lines
/// and line end; `None` when `text` is empty.
fn field_end(text: &[u8]) -> Option<usize> {
    if text.is_empty() {
        return None;
    }
    let mut end = 0;
    loop {
        match text
            .get(end..)
            .and_then(|t| t.iter().position(|&b| b == b'\n'))
        {
            Some(newline) => end += newline + 1,
            None => return Some(text.len()),
        }
        // A line that is only the line end closes the header section: never folded in.
        if end == 1 || (end == 2 && text.first() == Some(&b'\r')) {
            return Some(end);
        }
        if !matches!(text.get(end), Some(b' ' | b'\t')) {
            return Some(end);
        }
    }
}

/// An `Authentication-Results:` field whose authserv-id is `hostname`.
fn claims(field: &[u8], hostname: &str) -> bool {
    const NAME: &[u8] = b"authentication-results";
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = field.get(..colon).unwrap_or_default().trim_ascii_end();
    if !name.eq_ignore_ascii_case(NAME) {
        return false;
    }
    // RFC 8601 §2.2: authserv-id, after optional CFWS, up to `;` or white space.
    let value = strip_cfws(field.get(colon + 1..).unwrap_or_default());
    let id_end = value
        .iter()
        .position(|&b| b == b';' || b == b'(' || b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let id = value.get(..id_end).unwrap_or_default();
    let id = id.strip_suffix(b".").unwrap_or(id);
    let ours = hostname.trim_end_matches('.');
    !id.is_empty() && id.eq_ignore_ascii_case(ours.as_bytes())
}

/// Leading white space and comments (RFC 5322 §3.2.2 CFWS; nested comments too).
fn strip_cfws(mut value: &[u8]) -> &[u8] {
    loop {
        value = value.trim_ascii_start();
        if value.first() != Some(&b'(') {
            return value;
        }
        let mut depth = 0usize;
        let mut end = value.len();
        let mut escaped = false;
        for (i, &b) in value.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        value = value.get(end..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_results_are_removed() {
        let message = b"Received: x\r\nAuthentication-Results: MX.test;\r\n\tspf=pass\r\nauthentication-results : (c) mx.test; dkim=pass\r\nAuthentication-Results: other.test; dkim=fail\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.test; in body\r\n".to_vec();
        let cleaned = remove_own_results(message, "mx.test");
        assert_eq!(
            String::from_utf8_lossy(&cleaned),
            "Received: x\r\nAuthentication-Results: other.test; dkim=fail\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.test; in body\r\n"
        );
    }

    #[test]
    fn other_ids_and_prefixes_stay() {
        let message =
            b"Authentication-Results: mx.test.evil; spf=pass\nSubject: x\n\nbody".to_vec();
        assert_eq!(remove_own_results(message.clone(), "mx.test"), message);
        let message = b"Authentication-Results: mx.test\n\nbody".to_vec();
        assert_eq!(remove_own_results(message, "mx.test"), b"\nbody");
        assert_eq!(remove_own_results(Vec::new(), "mx.test"), b"");
    }

    #[test]
    fn helo_identity() {
        assert_eq!(helo_domain("mx.example.org"), Some("mx.example.org"));
        assert_eq!(helo_domain("[127.0.0.1]"), None);
        assert_eq!(helo_domain("127.0.0.1"), None);
        assert_eq!(helo_domain("localhost"), None);
    }
}
