//! Certificates from an ACME CA (RFC 8555), for `hostname`, `acme.extra_names` and the
//! autoconfig names of the hosted domains.
//!
//! One background task ([`Acme::run`]) owns the whole life of the certificate:
//! - at start, and then at least every [`NAMES_CHECK_INTERVAL`], it compares the
//!   certificate kept in `data_dir/acme/` with the names wanted now (a domain added
//!   means a new certificate) and with its renewal time ([`Issued::renew_at`]);
//! - it orders one when needed (RFC 8555 §7.4), answers the challenges (HTTP-01 on the
//!   HTTP listener, TLS-ALPN-01 on the HTTPS listener: [`challenge`]), finalizes with a
//!   CSR for a key made here, and writes key and chain in one file;
//! - it hands the new file to the [`ReloadingCert`] every TLS listener serves from, so
//!   the next handshake gets it: the same path as a SIGHUP reload, no second mechanism.
//!
//! Failures are logged and retried with a doubling delay ([`RETRY_FIRST`] to
//! [`RETRY_MAX`]); meanwhile the server serves what it has (the certificate kept, or
//! the self-signed one). The task ends at shutdown, abandoning an order in flight.

mod challenge;
mod files;

pub use challenge::{ACME_TLS_ALPN, Challenges, HTTP01_PATH, HttpsResolver, http01};
pub use files::Files;

use crate::config::{self, ChallengeKind};
use crate::tls::ReloadingCert;
use anyhow::{Context, Result, bail};
use files::Issued;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use netutil::CancellationToken;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use storage::Store;

/// How often the names wanted are compared with the certificate's when no renewal is
/// due: a domain added gets its autoconfig names within this time.
const NAMES_CHECK_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// The first retry after a failure, doubled at each failure after it up to
/// [`RETRY_MAX`]. Let's Encrypt allows 5 failed validations per name and hour: this
/// stays under it.
const RETRY_FIRST: Duration = Duration::from_secs(5 * 60);
const RETRY_MAX: Duration = Duration::from_secs(6 * 60 * 60);
/// The longest one order may take, from new-order to the certificate: validation is
/// seconds at a healthy CA; a hung connection must not stall renewal for good.
const ORDER_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long to poll an order for the CA's decision (RFC 8555 §7.5.1: the client polls
/// the order until it is no longer pending or processing).
const POLL_TIMEOUT: Duration = Duration::from_secs(3 * 60);

/// The ACME task and what it needs.
pub struct Acme {
    pub config: config::Acme,
    pub hostname: String,
    pub files: Files,
    pub store: Store,
    pub challenges: Arc<Challenges>,
    /// What every TLS listener serves.
    pub certificate: Arc<ReloadingCert>,
    /// The challenge types this server can answer (a listener for each is bound).
    pub answerable: Vec<ChallengeKind>,
}

impl Acme {
    /// The certificate kept from an earlier run, if it can be served: the server starts
    /// with it instead of the self-signed one.
    pub fn kept_certificate(files: &Files) -> Option<std::path::PathBuf> {
        match files.read_certificate() {
            Ok(Some(issued)) if issued.not_after > SystemTime::now() => Some(files.certificate()),
            Ok(Some(_)) => {
                tracing::warn!("the ACME certificate kept has expired; starting without it");
                None
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "ACME certificate not used");
                None
            }
        }
    }

    /// Keeps the certificate current until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut account: Option<Account> = None;
        let mut failures: u32 = 0;
        loop {
            let wait = match self.step(&mut account, &shutdown).await {
                Ok(wait) => {
                    failures = 0;
                    wait
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let wait = retry_delay(failures);
                    tracing::error!(
                        error = format!("{error:#}"),
                        failures,
                        retry_in_secs = wait.as_secs(),
                        "ACME: no certificate this time; the one in use stays"
                    );
                    wait
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Renews when due; returns how long to wait before looking again.
    async fn step(
        &self,
        account: &mut Option<Account>,
        shutdown: &CancellationToken,
    ) -> Result<Duration> {
        let names = self.names().await?;
        let kept = match self.files.read_certificate() {
            Ok(kept) => kept,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "ACME: ordering a new certificate"
                );
                None
            }
        };
        let renew_before = self
            .config
            .renew_before_days
            .map(|days| Duration::from_secs(u64::from(days) * 24 * 60 * 60));
        if let Some(kept) = &kept {
            let renew_at = kept.renew_at(renew_before);
            let covers = kept.covers(&names);
            if covers && renew_at > SystemTime::now() {
                let until = renew_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tracing::info!(
                    serial = kept.serial,
                    "ACME: the certificate in use is current; nothing to order"
                );
                return Ok(until.min(NAMES_CHECK_INTERVAL));
            }
            tracing::info!(
                serial = kept.serial,
                reason = if covers {
                    "renewal due"
                } else {
                    "names changed"
                },
                "ACME: ordering a new certificate"
            );
        } else {
            tracing::info!(names = names.join(" "), "ACME: ordering a certificate");
        }
        let account = match account {
            Some(account) => account.clone(),
            None => account.insert(self.account().await?).clone(),
        };
        let ordered = tokio::select! {
            // The caller sees the shutdown too, and stops.
            _ = shutdown.cancelled() => return Ok(Duration::ZERO),
            ordered = tokio::time::timeout(ORDER_TIMEOUT, self.order(&account, &names)) => ordered,
        };
        // Whatever happened, the answers are of no more use.
        self.challenges.clear();
        let key_and_chain = ordered.context("the order took too long")??;
        let issued = Issued::from_pem(key_and_chain.as_bytes())
            .context("the CA's certificate cannot be read")?;
        self.files.write_certificate(&key_and_chain)?;
        let path = self.files.certificate();
        self.certificate
            .install(path.clone(), path)
            .context("the new certificate cannot be served")?;
        tracing::info!(
            serial = issued.serial,
            names = issued.names.join(" "),
            renew_at = %time::OffsetDateTime::from(issued.renew_at(renew_before)),
            "ACME: new certificate in use; new connections get it"
        );
        // Look again at once: the schedule is computed from the file now kept.
        Ok(Duration::ZERO)
    }

    /// `hostname`, `extra_names`, and `autoconfig.D` and `autodiscover.D` for each
    /// hosted domain D; lower case, each once.
    async fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        let mut add = |name: String| {
            let name = name.to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        };
        add(self.hostname.clone());
        self.config.extra_names.iter().cloned().for_each(&mut add);
        if self.config.autoconfig_names {
            for domain in self.store.list_domains().await? {
                add(format!("autoconfig.{domain}"));
                add(format!("autodiscover.{domain}"));
            }
        }
        Ok(names)
    }

    /// The account kept for this directory, or a new one (RFC 8555 §7.3) kept for
    /// the next start.
    async fn account(&self) -> Result<Account> {
        let directory = &self.config.directory;
        let builder = || client::builder(self.config.ca_bundle.as_deref());
        if let Some(credentials) = self.files.read_account(directory)? {
            return builder()?
                .from_credentials(credentials)
                .await
                .with_context(|| format!("ACME directory {directory}"));
        }
        let contact: Vec<&str> = self.config.contact.iter().map(String::as_str).collect();
        // RFC 8555 §7.3: `[acme]` set is the operator's agreement to the CA's terms.
        let new_account = NewAccount {
            contact: &contact,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let (account, credentials) = builder()?
            .create(&new_account, directory.clone(), None)
            .await
            .with_context(|| format!("making an ACME account at {directory}"))?;
        self.files.write_account(directory, credentials)?;
        tracing::info!(account = account.id(), "ACME: account made");
        Ok(account)
    }

    /// One order, from new-order to the issued chain (RFC 8555 §7.4); returns the new
    /// key and the chain as PEM.
    async fn order(&self, account: &Account, names: &[String]) -> Result<String> {
        let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("new order")?;
        // RFC 8555 §7.5: one authorization per name; answer one challenge of each.
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.context("fetching an authorization")?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                // Validated for this account before (RFC 8555 §7.1.4): nothing to do.
                AuthorizationStatus::Valid => continue,
                status => bail!(
                    "authorization for {} is {status:?}",
                    authorization.identifier()
                ),
            }
            let offered: Vec<ChallengeType> = authorization
                .challenges
                .iter()
                .map(|c| c.r#type.clone())
                .collect();
            let name = authorization.identifier().to_string();
            let Some(kind) = self.pick(&offered) else {
                bail!("the CA offers {name} no challenge this server can answer: {offered:?}");
            };
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                bail!("challenge {kind:?} for {name} vanished");
            };
            let key_authorization = challenge.key_authorization();
            match kind {
                ChallengeType::TlsAlpn01 => self
                    .challenges
                    .put_tls_alpn01(&name, key_authorization.digest().as_ref())?,
                _ => self
                    .challenges
                    .put_http01(&challenge.token, key_authorization.as_str()),
            }
            tracing::info!(name, challenge = ?kind, "ACME: answering a challenge");
            // RFC 8555 §7.5.1: the answer is in place; the CA may validate now.
            challenge
                .set_ready()
                .await
                .with_context(|| format!("challenge for {name}"))?;
        }
        let policy = RetryPolicy::new().timeout(POLL_TIMEOUT);
        let status = order.poll_ready(&policy).await.context("order")?;
        if status != OrderStatus::Ready {
            bail!("order {status:?}: {}", failed_validations(&mut order).await);
        }
        // RFC 8555 §7.4: finalize with a CSR for a key made here, every name a SAN.
        let key = rcgen::KeyPair::generate().context("making a key")?;
        let mut params = rcgen::CertificateParams::new(names.to_vec()).context("CSR")?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).context("CSR")?;
        order.finalize_csr(csr.der()).await.context("finalize")?;
        let chain = order
            .poll_certificate(&policy)
            .await
            .context("fetching the certificate")?;
        Ok(format!("{}{chain}", key.serialize_pem()))
    }

    /// TLS-ALPN-01 first when the HTTPS listener is there (the answer never leaves
    /// TLS), else HTTP-01; `acme.challenge` narrows it to one.
    fn pick(&self, offered: &[ChallengeType]) -> Option<ChallengeType> {
        [
            (ChallengeKind::TlsAlpn01, ChallengeType::TlsAlpn01),
            (ChallengeKind::Http01, ChallengeType::Http01),
        ]
        .into_iter()
        .find(|(kind, wire)| self.answerable.contains(kind) && offered.contains(wire))
        .map(|(_, wire)| wire)
    }
}

/// Why the CA found an order invalid: the error of each failed challenge (RFC 8555
/// §7.1.5), as far as it can be had.
async fn failed_validations(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if authorization.refresh().await.is_err() {
            continue;
        }
        let name = authorization.identifier().to_string();
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!("{name}: {problem}"));
            }
        }
    }
    if reasons.is_empty() {
        "no reason given".to_owned()
    } else {
        reasons.join("; ")
    }
}

/// The delay after `failures` failures in a row.
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

mod client {
    //! The ACME client's HTTPS: rustls with aws-lc-rs (the process's one provider),
    //! trusting `acme.ca_bundle` when set, else the system's roots.

    use anyhow::{Context, Result};
    use bytes::Bytes;
    use instant_acme::{Account, AccountBuilder, BodyWrapper};
    use std::path::Path;

    pub fn builder(ca_bundle: Option<&Path>) -> Result<AccountBuilder> {
        let tls = match ca_bundle {
            Some(path) => crate::tls::client_config(crate::tls::ClientTrust::CaFile(path))
                .with_context(|| format!("key `acme.ca_bundle`: {}", path.display()))?,
            None => crate::tls::client_config(crate::tls::ClientTrust::System)?,
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, BodyWrapper<Bytes>>(connector);
        Ok(Account::builder_with_http(Box::new(client)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        assert_eq!(retry_delay(1), RETRY_FIRST);
        assert_eq!(retry_delay(2), RETRY_FIRST * 2);
        assert_eq!(retry_delay(4), RETRY_FIRST * 8);
        assert_eq!(retry_delay(40), RETRY_MAX);
    }
}
