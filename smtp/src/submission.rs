//! Who an authenticated client may send as, and whose DKIM key signs what it sends
//! (issue 15).
//!
//! MAIL FROM is checked against the account in `mail.rs`; that alone let a user put any
//! address in `From:`, the field readers see and DMARC aligns with (RFC 7489 §3.1.1), and
//! the queue signed with that field's domain. Here, after DATA or BDAT LAST and before
//! anything is stored:
//!
//! - the header must have exactly one `From:` (RFC 5322 §3.6) and at most one `Sender:`,
//!   read strictly ([`storage::rfc5322::mailbox_list`]); otherwise `550 5.6.0`;
//! - every address in them must be one of the account's own addresses or aliases (as mox
//!   does; `+tag` forms included), or, with `submission.from_own_domains`, any address
//!   in one of the account's domains; otherwise `550 5.7.1`;
//! - the message is signed with the `From:` domain's DKIM keys only when that domain is
//!   one of the account's domains, whatever the setting ([`dkim_domain`]).
//!
//! The null reverse-path (`MAIL FROM:<>`) is accepted from an authenticated client
//! (RFC 6409 §3.2: it "is permitted and MUST be accepted"; clients send read receipts,
//! RFC 8098 §2.1, and their own notices that way): the header check above still applies.

use crate::proto::Reply;
use crate::proto::address::domain_of;
use crate::proto::reply::{FROM_NOT_OWNED, LOCAL_ERROR, MALFORMED_ORIGINATOR};
use crate::session::{Authenticated, Session};
use serde::Deserialize;
use storage::Domain;
use storage::rfc5322::{mailbox_list, unfolded_fields};

/// The `[submission]` table of the configuration file.
///
/// ```toml
/// [submission]
/// from_own_domains = false   # true: From:/Sender: may be any address in the account's
///                            # domains, not only its own addresses and aliases
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionConfig {
    /// Lets an account send with any address of the domains it has an address in (its
    /// own and its aliases') in `From:` and `Sender:`, for shared role addresses without
    /// an alias each. Off by default: only the account's own addresses and aliases.
    pub from_own_domains: bool,
}

/// The originator fields of a message (RFC 5322 §3.6.2), each address as `local@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Originators {
    /// The authors; never empty.
    pub(crate) from: Vec<String>,
    /// The `Sender:` mailbox, when there is one.
    pub(crate) sender: Option<String>,
}

/// Why a header has no usable originator fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OriginatorError {
    #[error("no From: field")]
    NoFrom,
    #[error("more than one From: field")]
    SeveralFrom,
    #[error("more than one Sender: field")]
    SeveralSender,
    #[error("From: is not a list of addresses")]
    BadFrom,
    #[error("Sender: is not one address")]
    BadSender,
}

/// RFC 5322 §3.6: `From:` exactly once, `Sender:` at most once; `from` is a
/// `mailbox-list` and `sender` a single `mailbox` (§3.6.2). `content` is the message as
/// it will be stored (line ends already CRLF), so that what is checked is what leaves.
pub(crate) fn originators(content: &[u8]) -> Result<Originators, OriginatorError> {
    let fields = unfolded_fields(content);
    let named = |name: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    };
    let from = match named("From").as_slice() {
        [] => return Err(OriginatorError::NoFrom),
        [value] => mailbox_list(value).ok_or(OriginatorError::BadFrom)?,
        _ => return Err(OriginatorError::SeveralFrom),
    };
    let sender = match named("Sender").as_slice() {
        [] => None,
        [value] => match mailbox_list(value).as_deref() {
            Some([one]) => Some(one.clone()),
            _ => return Err(OriginatorError::BadSender),
        },
        _ => return Err(OriginatorError::SeveralSender),
    };
    Ok(Originators { from, sender })
}

/// The domain whose DKIM keys sign a submitted message: the first author's domain
/// (what DMARC aligns with, RFC 7489 §3.1.1), and only when it is one of
/// `account_domains`: the From: check makes sure it is, and this rule keeps a wider
/// check (or a bug in it) from ever signing for a domain the account has no address in.
pub(crate) fn dkim_domain(originators: &Originators, account_domains: &[Domain]) -> Option<String> {
    let from = originators.from.first()?;
    let domain = Domain::new(domain_of(from)?).ok()?;
    account_domains
        .contains(&domain)
        .then(|| domain.into_string())
}

impl Session {
    /// A message from an authenticated client: its originator fields checked against the
    /// account. Gives the content as it will be stored and the DKIM signing domain, or
    /// the refusal. Messages from unauthenticated clients pass unchanged and unsigned.
    pub(crate) async fn check_submission(
        &self,
        content: Vec<u8>,
    ) -> Result<(Vec<u8>, Option<String>), Reply> {
        let Some(auth) = &self.auth else {
            return Ok((content, None));
        };
        // Storage turns bare CR and LF into CRLF; a bare CR must not hide a field here
        // that becomes one there.
        let content = storage::crlf_line_ends(content);
        let originators = originators(&content).map_err(|error| {
            tracing::info!(user = %auth.email, %error, "message refused: originator fields");
            // RFC 5322 §3.6: a message has exactly one From: field.
            Reply::new(
                MALFORMED_ORIGINATOR,
                format!("Message refused: {error} (RFC 5322 section 3.6)"),
            )
        })?;
        let domains = self
            .store
            .account_domains(auth.account)
            .await
            .map_err(|error| local_error(&error))?;
        for (field, address) in originators
            .from
            .iter()
            .map(|address| ("From", address))
            .chain(originators.sender.iter().map(|address| ("Sender", address)))
        {
            if !self.may_send_as(auth, &domains, address).await? {
                tracing::info!(user = %auth.email, field, %address, "message refused: originator not owned");
                return Err(Reply::new(
                    FROM_NOT_OWNED,
                    format!("{field}: {address} is not an address of {}", auth.email),
                ));
            }
        }
        Ok((content, dkim_domain(&originators, &domains)))
    }

    /// One of the account's addresses or aliases; with `from_own_domains`, any address
    /// of its domains.
    async fn may_send_as(
        &self,
        auth: &Authenticated,
        domains: &[Domain],
        address: &str,
    ) -> Result<bool, Reply> {
        let owned = self
            .store
            .account_owns_address(auth.account, address)
            .await
            .map_err(|error| local_error(&error))?;
        let in_own_domain = || {
            domain_of(address)
                .and_then(|domain| Domain::new(domain).ok())
                .is_some_and(|domain| domains.contains(&domain))
        };
        Ok(owned || self.config.submission.from_own_domains && in_own_domain())
    }
}

fn local_error(error: &storage::StoreError) -> Reply {
    tracing::warn!(%error, "originator check failed");
    Reply::new(LOCAL_ERROR, "Local error in processing, try again later")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(addresses: &[&str]) -> Originators {
        Originators {
            from: addresses.iter().map(|a| (*a).to_owned()).collect(),
            sender: None,
        }
    }

    #[test]
    fn originators_are_read_from_the_header_only() {
        let message = b"Subject: x\r\nfrom: Mallory <m@a.test>,\r\n b@a.test\r\nSender: m@a.test\r\n\r\nFrom: ceo@b.test\r\n";
        assert_eq!(
            originators(message),
            Ok(Originators {
                from: vec!["m@a.test".into(), "b@a.test".into()],
                sender: Some("m@a.test".into()),
            })
        );
    }

    #[test]
    fn missing_doubled_or_unreadable_originators_are_errors() {
        for (message, error) in [
            (
                &b"Subject: x\r\n\r\nFrom: m@a.test\r\n"[..],
                OriginatorError::NoFrom,
            ),
            (b"", OriginatorError::NoFrom),
            (
                b"From: m@a.test\r\nFrom: ceo@b.test\r\n\r\n",
                OriginatorError::SeveralFrom,
            ),
            (b"From: Team: m@a.test;\r\n\r\n", OriginatorError::BadFrom),
            (
                b"From: <m@a.test> <ceo@b.test>\r\n\r\n",
                OriginatorError::BadFrom,
            ),
            (
                b"From: m@a.test\r\nSender: m@a.test, n@a.test\r\n\r\n",
                OriginatorError::BadSender,
            ),
            (
                b"From: m@a.test\r\nSender: m@a.test\r\nSender: n@a.test\r\n\r\n",
                OriginatorError::SeveralSender,
            ),
        ] {
            assert_eq!(
                originators(message),
                Err(error),
                "{}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn a_bare_cr_cannot_hide_a_second_from_field() {
        let message = b"From: m@a.test\rFrom: ceo@b.test\r\n\r\nhi\r\n".to_vec();
        assert_eq!(
            originators(&storage::crlf_line_ends(message)),
            Err(OriginatorError::SeveralFrom)
        );
    }

    #[test]
    fn dkim_signs_only_for_the_accounts_domains() {
        let domains = vec![Domain::new("a.test").expect("valid")];
        assert_eq!(
            dkim_domain(&from(&["m@A.Test", "ceo@b.test"]), &domains).as_deref(),
            Some("a.test")
        );
        assert_eq!(dkim_domain(&from(&["ceo@b.test"]), &domains), None);
        assert_eq!(dkim_domain(&from(&[]), &domains), None);
    }
}
