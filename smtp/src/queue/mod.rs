//! The outbound queue worker: takes due items from storage, delivers each to its
//! recipients' domains, records the results, retries temporary failures with growing
//! delays, and bounces permanent ones (RFC 3464, see [`dsn`]).
//!
//! Invariants:
//! - Storage is only written between network conversations, never during one: an attempt
//!   talks to the remote hosts first, then records everything it learnt in one job.
//! - An item is leased while its attempt runs, so it is not handed out twice; the lease
//!   is renewed while the attempt runs, so it runs out soon after its node dies and
//!   another node (PostgreSQL) takes the item over.
//! - A bounce is stored before the failed recipients are removed from the item: a crash
//!   in between sends the bounce twice rather than never.
//! - Shutdown stops new attempts; attempts in flight finish and are recorded.

pub mod dsn;

use crate::mailauth::KeyRing;
use crate::outbound::OutboundConfig;
use crate::outbound::client::{self, ClientSettings, Envelope, Failure, RecipientResult};
use crate::outbound::dns::{NoResolver, Resolver, Router, SystemResolver};
use crate::proto::address::domain_of;
use netutil::Shutdown;
use std::sync::Arc;
use std::time::Duration;
use storage::{
    Backend, Delivery, Domain, Outbound, QueueAttempt, QueueId, QueueItem, QueuedRecipient, Store,
    StoreError, UnixTime, unix_now,
};
use tokio::task::JoinSet;
use tracing::Instrument;

/// An attempt that takes longer is abandoned and retried later (a host that trickles
/// replies just under every per-command timeout would otherwise hold the item forever).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(50 * 60);

/// The queue worker; [`QueueWorker::run`] until shutdown.
#[derive(Clone)]
pub struct QueueWorker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// This node's name, the holder of the leases it takes (stable across restarts).
    node: String,
    hostname: String,
    config: Arc<OutboundConfig>,
    router: Router,
    client: ClientSettings,
    /// DKIM keys; each message is signed for its sender's domain before it leaves.
    dkim: KeyRing,
    shutdown: Shutdown,
}

impl QueueWorker {
    /// A worker using the system's DNS resolver. Without a DNS configuration it still
    /// runs: static routes and the relay work, MX lookups fail temporarily.
    pub fn new(
        store: Store,
        node: String,
        hostname: String,
        config: OutboundConfig,
        dkim: KeyRing,
        shutdown: Shutdown,
    ) -> QueueWorker {
        let resolver: Arc<dyn Resolver> = match SystemResolver::new() {
            Ok(resolver) => Arc::new(resolver),
            Err(error) => {
                tracing::warn!(%error, "no DNS resolver: only static routes and the relay work");
                Arc::new(NoResolver(error))
            }
        };
        Self::with_resolver(store, node, hostname, config, resolver, dkim, shutdown)
    }

    /// A worker with the given resolver (tests, or a caching resolver shared elsewhere).
    pub fn with_resolver(
        store: Store,
        node: String,
        hostname: String,
        config: OutboundConfig,
        resolver: Arc<dyn Resolver>,
        dkim: KeyRing,
        shutdown: Shutdown,
    ) -> QueueWorker {
        // rustls picks the process's provider; aws-lc-rs is the only one built in, but
        // say so once so that building a client config can never be ambiguous.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let config = Arc::new(config);
        let client = ClientSettings::new(hostname.clone(), &config);
        QueueWorker {
            inner: Arc::new(Inner {
                store,
                node,
                hostname,
                router: Router {
                    config: config.clone(),
                    resolver,
                },
                config,
                client,
                dkim,
                shutdown,
            }),
        }
    }

    /// Delivers due items until shutdown, at most `concurrency` at a time, then waits for
    /// the attempts in flight.
    pub async fn run(self) {
        let this = &self.inner;
        // Nothing of ours is in flight before we start, so leases this node left when it
        // was killed are stale. Single node (SQLite): every lease is ours. Several nodes
        // (PostgreSQL): another node's lease may be live; a dead node's runs out.
        let holder = match this.store.backend() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(this.node.as_str()),
        };
        match this.store.release_queue_leases(holder).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "released stale queue leases"),
            Err(error) => tracing::warn!(%error, "releasing queue leases failed"),
        }
        let lease = Duration::from_secs(this.config.lease_secs);
        tracing::info!("outbound queue started");
        let poll = Duration::from_secs(this.config.poll_interval_secs);
        let mut in_flight = JoinSet::new();
        loop {
            let cancelled = this.shutdown.is_shutting_down();
            if cancelled && in_flight.is_empty() {
                break;
            }
            let free = this.config.concurrency.saturating_sub(in_flight.len());
            let mut claimed = 0;
            if !cancelled && free > 0 {
                let now = UnixTime::now();
                match this
                    .store
                    .claim_queue_items(
                        now,
                        now.plus_seconds(lease.as_secs() as i64),
                        free,
                        &this.node,
                    )
                    .await
                {
                    Ok(items) => {
                        claimed = items.len();
                        for item in items {
                            let worker = self.clone();
                            let span = tracing::info_span!("queue", id = %item.id);
                            in_flight
                                .spawn(async move { worker.attempt(item).await }.instrument(span));
                        }
                    }
                    Err(error) => tracing::warn!(%error, "claiming queue items failed"),
                }
            }
            if !cancelled && claimed > 0 && claimed == free {
                // A full claim: more may be due; take them as slots free up.
                if let Some(Err(error)) = in_flight.join_next().await {
                    tracing::error!(%error, "queue attempt panicked");
                }
                continue;
            }
            let wait = if cancelled {
                poll
            } else {
                match this.store.next_queue_due().await {
                    Ok(Some(due)) => {
                        let seconds = due
                            .seconds_since(UnixTime::now())
                            .clamp(0, poll.as_secs() as i64);
                        // Never spin: a due item that could not be claimed waits a little.
                        Duration::from_secs(seconds as u64).max(Duration::from_millis(200))
                    }
                    _ => poll,
                }
            };
            tokio::select! {
                _ = this.shutdown.token.cancelled(), if !cancelled => {}
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "queue attempt panicked");
                    }
                }
                _ = tokio::time::sleep(wait), if !cancelled => {}
            }
        }
        tracing::info!("outbound queue stopped");
    }

    /// One attempt at one item, its lease renewed until the attempt is recorded.
    async fn attempt(&self, item: QueueItem) {
        let id = item.id;
        tokio::select! {
            _ = self.attempt_leased(item) => {}
            _ = self.renew_lease(id) => {}
        }
    }

    /// Extends the item's lease every third of its length. Returns when the lease is no
    /// longer this node's (it ran out while the database could not be reached, and
    /// another node may have taken the item): the attempt is then abandoned, so that the
    /// message does not go out from two nodes.
    async fn renew_lease(&self, id: QueueId) {
        let this = &self.inner;
        let lease = Duration::from_secs(this.config.lease_secs);
        loop {
            tokio::time::sleep(lease / 3).await;
            let until = UnixTime::now().plus_seconds(lease.as_secs() as i64);
            match this.store.renew_queue_lease(id, until, &this.node).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("lost the queue lease; abandoning the attempt");
                    return;
                }
                Err(error) => tracing::warn!(%error, "renewing the queue lease failed"),
            }
        }
    }

    /// Every domain, then one record of the results.
    async fn attempt_leased(&self, item: QueueItem) {
        let this = &self.inner;
        let raw = match this.store.raw_message(item.message).await {
            Ok(raw) => raw,
            Err(error) => {
                tracing::warn!(%error, "reading the queued message failed");
                self.record(&item, Vec::new(), Some(error.to_string()), false)
                    .await;
                return;
            }
        };
        let message = client::strip_return_path(&raw);
        let signed = self.sign(&item, message);
        let outgoing = signed.as_deref().unwrap_or(message);
        let results =
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.deliver_all(&item, outgoing)).await {
                Ok(results) => results,
                Err(_) => {
                    tracing::warn!("attempt timed out");
                    self.record(
                        &item,
                        Vec::new(),
                        Some("delivery attempt timed out".into()),
                        false,
                    )
                    .await;
                    return;
                }
            };
        self.settle(&item, message, results).await;
    }

    /// The message with `DKIM-Signature:` fields in front, when the item names a signing
    /// domain that has keys. That domain was decided when the message was queued: for a
    /// submission the From: domain, only when it is one of the sending account's domains
    /// (`crate::submission`); for a notice of ours, our host name. Signed anew on every
    /// attempt, just before it leaves.
    fn sign(&self, item: &QueueItem, message: &[u8]) -> Option<Vec<u8>> {
        let domain = item.dkim_domain.as_deref().filter(|d| !d.is_empty())?;
        let fields = self.inner.dkim.sign(domain, message);
        if fields.is_empty() {
            return None;
        }
        let mut signed = Vec::with_capacity(fields.len() + message.len());
        signed.extend_from_slice(fields.as_bytes());
        signed.extend_from_slice(message);
        Some(signed)
    }

    /// Delivers to each domain in turn; one result per recipient.
    async fn deliver_all(
        &self,
        item: &QueueItem,
        message: &[u8],
    ) -> Vec<(QueuedRecipient, RecipientResult)> {
        let mut domains: Vec<(String, Vec<QueuedRecipient>)> = Vec::new();
        for recipient in &item.recipients {
            let domain = domain_of(&recipient.address)
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            match domains.iter_mut().find(|(d, _)| *d == domain) {
                Some((_, group)) => group.push(recipient.clone()),
                None => domains.push((domain, vec![recipient.clone()])),
            }
        }
        let mut results = Vec::with_capacity(item.recipients.len());
        for (domain, recipients) in domains {
            let envelope = Envelope {
                mail_from: &item.mail_from,
                recipients: &recipients,
                ret: item.ret.as_deref(),
                envid: item.envid.as_deref(),
                message,
            };
            let outcome = self.deliver_domain(&domain, envelope).await;
            results.extend(recipients.iter().cloned().zip(outcome));
        }
        results
    }

    /// Tries the domain's hosts in order, each of their addresses in turn, until one
    /// answers the transaction.
    async fn deliver_domain(&self, domain: &str, envelope: Envelope<'_>) -> Vec<RecipientResult> {
        let this = &self.inner;
        let all = |failure: Failure| {
            envelope
                .recipients
                .iter()
                .map(|_| RecipientResult::Failed(failure.clone()))
                .collect()
        };
        if domain.is_empty() {
            return all(Failure::local(
                true,
                "5.1.3",
                "recipient address has no domain",
            ));
        }
        let hosts = match this.router.hosts(domain).await {
            Ok(hosts) => hosts,
            Err(error) => {
                tracing::info!(domain, reason = %error.reason, "cannot route");
                return all(Failure::local(error.permanent, error.status, error.reason));
            }
        };
        let mut last = Failure::local(false, "4.4.1", format!("no host to try for {domain}"));
        for host in &hosts {
            let addresses = match this.router.addresses(host).await {
                Ok(addresses) => addresses,
                Err(error) => {
                    tracing::info!(host = %host.name, reason = %error.reason, "no address");
                    last = Failure::local(error.permanent, error.status, error.reason);
                    continue;
                }
            };
            for address in addresses {
                match client::deliver(&this.client, host, address, envelope).await {
                    Ok(results) => {
                        tracing::info!(domain, host = %host.name, %address, "transaction done");
                        return results;
                    }
                    Err(failure) => {
                        tracing::info!(domain, reason = %failure.reason, "host failed");
                        last = failure;
                    }
                }
            }
        }
        all(last)
    }

    /// Records what the attempt settled: delivered and bounced recipients leave the
    /// item, the rest wait for the next retry, or are bounced when the item is too old.
    async fn settle(
        &self,
        item: &QueueItem,
        message: &[u8],
        results: Vec<(QueuedRecipient, RecipientResult)>,
    ) {
        let this = &self.inner;
        let now = UnixTime::now();
        // RFC 5321 §4.5.4.1: give up after the configured time (4-5 days).
        let expired = now.seconds_since(item.created_at) >= this.config.max_age_secs as i64;
        let mut finished = Vec::new();
        let mut failed = Vec::new();
        let mut waiting = Vec::new();
        let mut errors = Vec::new();
        for (recipient, result) in results {
            match result {
                RecipientResult::Delivered => {
                    tracing::info!(recipient = %recipient.address, "delivered");
                    finished.push(recipient.address);
                }
                RecipientResult::Failed(failure) if failure.permanent => {
                    tracing::info!(recipient = %recipient.address, reason = %failure.reason, "failed permanently");
                    failed.push((recipient, failure));
                }
                RecipientResult::Failed(mut failure) if expired => {
                    tracing::info!(recipient = %recipient.address, reason = %failure.reason, "giving up");
                    failure.reason = format!(
                        "gave up after {} attempts; last error: {}",
                        item.attempts + 1,
                        failure.reason
                    );
                    failure.permanent = true;
                    failed.push((recipient, failure));
                }
                RecipientResult::Failed(failure) => {
                    tracing::info!(recipient = %recipient.address, reason = %failure.reason, "will retry");
                    errors.push(failure.reason.clone());
                    waiting.push((recipient, failure));
                }
            }
        }
        if !failed.is_empty() {
            match self
                .notify(item, message, &failed, dsn::Action::Failed)
                .await
            {
                Ok(()) => finished.extend(failed.iter().map(|(r, _)| r.address.clone())),
                Err(error) => {
                    // Keep them queued: the next attempt fails them again and bounces then.
                    tracing::warn!(%error, "storing the bounce failed");
                    errors.push(format!("bounce not stored: {error}"));
                }
            }
        }
        // RFC 3464 §2.3.3 `Action: delayed`: once per message, after it has waited
        // `delay_warning_secs`, to the senders who asked for (or did not refuse) it.
        let warn_after = this.config.delay_warning_secs as i64;
        let mut delay_warned = false;
        if !waiting.is_empty()
            && !item.delay_warned
            && warn_after > 0
            && now.seconds_since(item.created_at) >= warn_after
        {
            let action = dsn::Action::Delayed {
                retry_until: item
                    .created_at
                    .plus_seconds(this.config.max_age_secs as i64)
                    .0,
            };
            match self.notify(item, message, &waiting, action).await {
                Ok(()) => delay_warned = true,
                // Not recorded as sent: the next attempt tries again.
                Err(error) => tracing::warn!(%error, "storing the delay notice failed"),
            }
        }
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        self.record(item, finished, error, delay_warned).await;
    }

    /// Records the attempt: who is done, the error, and whether a delay notice went out.
    async fn record(
        &self,
        item: &QueueItem,
        finished: Vec<String>,
        error: Option<String>,
        delay_warned: bool,
    ) {
        let this = &self.inner;
        let attempts = u32::try_from(item.attempts).unwrap_or(u32::MAX);
        let delay = this.config.retry_delay(attempts);
        let attempt = QueueAttempt {
            finished,
            retry_at: Some(UnixTime::now().plus_seconds(delay.as_secs() as i64)),
            error,
            delay_warned,
        };
        match this
            .store
            .record_queue_attempt(item.id, attempt, &this.node)
            .await
        {
            Ok(state) => tracing::debug!(?state, "attempt recorded"),
            Err(error) => tracing::error!(%error, "recording the attempt failed"),
        }
    }

    /// Sends a DSN about `recipients` to the envelope sender: into its INBOX when the
    /// sender is local, else through the queue with a null sender.
    async fn notify(
        &self,
        item: &QueueItem,
        message: &[u8],
        recipients: &[(QueuedRecipient, Failure)],
        action: dsn::Action,
    ) -> Result<(), StoreError> {
        let this = &self.inner;
        // RFC 5321 §4.5.5, RFC 3461 §6.2: never a notice to the null sender (that is
        // how bounce loops are avoided).
        if item.mail_from.is_empty() {
            return Ok(());
        }
        let wanted = match action {
            dsn::Action::Failed => dsn::wants_failure_notice,
            dsn::Action::Delayed { .. } => dsn::wants_delay_notice,
        };
        let notified: Vec<(QueuedRecipient, Failure)> = recipients
            .iter()
            .filter(|(recipient, _)| wanted(recipient))
            .cloned()
            .collect();
        if notified.is_empty() {
            return Ok(());
        }
        let report = dsn::build(&dsn::Report {
            action,
            reporting_mta: &this.hostname,
            to: &item.mail_from,
            envid: item.envid.as_deref(),
            ret: item.ret.as_deref(),
            arrival: item.created_at.0,
            failures: &notified,
            original: message,
            now: unix_now(),
        })
        .map_err(|e| StoreError::Corrupt(format!("building the DSN: {e}")))?;
        if let Some(account) = this.store.resolve_recipient(&item.mail_from).await? {
            let inbox = this.store.inbox(account).await?;
            // RFC 5321 §4.4: final delivery adds Return-Path; a DSN's sender is null.
            let mut raw = b"Return-Path: <>\r\n".to_vec();
            raw.extend_from_slice(&report);
            this.store
                .deliver(Delivery {
                    raw,
                    mailboxes: vec![inbox.id],
                    ..Delivery::default()
                })
                .await?;
            tracing::info!(to = %item.mail_from, "delivery status notice delivered locally");
            return Ok(());
        }
        // A sender domain that is no domain name is none of ours.
        let sender_domain = domain_of(&item.mail_from).and_then(|domain| Domain::new(domain).ok());
        let local_sender = match &sender_domain {
            Some(domain) => this.store.is_local_domain(domain).await?,
            None => false,
        };
        if local_sender {
            tracing::warn!(to = %item.mail_from, "delivery status notice dropped: local sender without an account");
            return Ok(());
        }
        this.store
            .deliver(Delivery {
                raw: report,
                outbound: Some(Outbound {
                    mail_from: String::new(),
                    recipients: vec![QueuedRecipient {
                        address: item.mail_from.clone(),
                        ..QueuedRecipient::default()
                    }],
                    ret: None,
                    envid: None,
                    // Our own notice, From: MAILER-DAEMON@ our host name (`dsn::build`).
                    dkim_domain: Some(this.hostname.clone()),
                }),
                ..Delivery::default()
            })
            .await?;
        tracing::info!(to = %item.mail_from, "delivery status notice queued");
        Ok(())
    }
}
