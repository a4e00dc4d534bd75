//! DATA (RFC 5321 §4.1.1.4), BDAT (RFC 3030) and delivery of the message to storage.
//!
//! The gate has checked that an envelope with at least one recipient is open (or, for
//! BDAT, that chunking is under way). Content arrives through the driver: DATA through
//! [`crate::proto::DotDecoder`], BDAT chunks counted exactly into the transaction's
//! [`crate::proto::BodyBuffer`]. Either way the size limit is enforced while reading and
//! reading goes on to the end, so the stream keeps its framing when we refuse. The
//! driver reserves every kept byte in the server's byte budget ([`crate::budget`]); content
//! it had to give up for lack of budget is refused with `452 4.3.1` and the transaction
//! ends, as it does for a message that is too big.

use crate::ListenerRole;
use crate::mailauth::check::{Envelope, remove_own_results};
use crate::proto::address::xtext_encode;
use crate::proto::reply::{
    BAD_SEQUENCE, DMARC_REJECTED, INSUFFICIENT_STORAGE, LOCAL_ERROR, MAILBOX_FULL, MESSAGE_TOO_BIG,
    OK, SIEVE_REJECTED, START_MAIL_INPUT,
};
use crate::proto::{BodyError, Reply};
use crate::session::{Action, Session, State, Transaction};
use crate::trace::{ReceivedInfo, protocol, received, return_path, submission_fields};
use storage::{Delivery, Flags, Outbound, StoreError};
use time::OffsetDateTime;

impl Session {
    pub(crate) fn data(&mut self) -> Action {
        Action::ReadData {
            reply: Reply::new(START_MAIL_INPUT, "End data with <CR><LF>.<CR><LF>"),
            limit: self.config.max_message_size,
        }
    }

    /// DATA content has been read to `<CRLF>.<CRLF>`, or refused on the way.
    pub(crate) async fn data_received(&mut self, content: Result<Vec<u8>, BodyError>) -> Action {
        let reply = match std::mem::replace(&mut self.state, State::Ready) {
            State::Envelope(transaction) => self.deliver_or_refuse(transaction, content).await,
            other => self.no_transaction(other),
        };
        self.count_errors(reply.into())
    }

    /// BDAT: the first chunk turns the envelope into a chunked transfer.
    pub(crate) fn bdat(&mut self, size: usize, last: bool) -> Action {
        if let State::Envelope(_) = self.state
            && let State::Envelope(transaction) = std::mem::replace(&mut self.state, State::Ready)
        {
            self.state = State::Chunking(transaction);
        }
        Action::ReadChunk { size, last }
    }

    /// A BDAT chunk of `size` octets has been read into [`Session::chunk_buffer`].
    pub(crate) async fn chunk_received(&mut self, size: usize, last: bool) -> Action {
        let refused_body = matches!(&self.state, State::Chunking(t) if t.body.is_discarding());
        let reply = if refused_body {
            // RFC 3030 §2: after an error reply the client sends no more chunks; the
            // transaction is over.
            match std::mem::replace(&mut self.state, State::Ready) {
                State::Chunking(transaction) => match transaction.body.finish() {
                    Err(error) => refused(error),
                    Ok(_) => too_big(size),
                },
                _ => too_big(size),
            }
        } else if !last {
            Reply::new(OK, format!("{size} octets received"))
        } else {
            match std::mem::replace(&mut self.state, State::Ready) {
                State::Chunking(mut transaction) => {
                    let body =
                        std::mem::replace(&mut transaction.body, crate::proto::BodyBuffer::new(0));
                    self.deliver_or_refuse(transaction, body.finish()).await
                }
                other => self.no_transaction(other),
            }
        };
        self.count_errors(reply.into())
    }

    /// Delivers content read to its end, or answers why it was refused.
    async fn deliver_or_refuse(
        &mut self,
        transaction: Transaction,
        content: Result<Vec<u8>, BodyError>,
    ) -> Reply {
        match content {
            Ok(content) => self.deliver(transaction, content).await,
            Err(error) => refused(error),
        }
    }

    /// Content arrived with no mail transaction open: the state stays `state`.
    fn no_transaction(&mut self, state: State) -> Reply {
        self.state = state;
        Reply::new(BAD_SEQUENCE, "No mail transaction")
    }

    /// Stores the message once, for every local recipient's INBOX and for the outbound
    /// queue, and answers `250` only once the store says it is durable.
    async fn deliver(&mut self, transaction: Transaction, content: Vec<u8>) -> Reply {
        self.messages = self.messages.saturating_add(1);
        let id = format!("{}.{}", self.id, self.messages);
        let size = content.len();
        // Submission: From:/Sender: must be the account's, and they decide the DKIM key.
        let (content, dkim_domain) = match self.check_submission(content).await {
            Ok(checked) => checked,
            Err(reply) => return reply,
        };
        let (content, auth_results) = match self.authenticate(&transaction, content).await {
            Ok(checked) => checked,
            Err(reply) => return reply,
        };
        let raw = self.compose(&transaction, &id, content, auth_results.as_deref());

        let raw = std::sync::Arc::new(raw);
        let envelope = crate::sieve::Envelope {
            mail_from: &transaction.mail_from,
            hostname: &self.config.hostname,
        };
        // Sieve decides where each local account's copy goes (one copy per account:
        // RFC 5321 §3.7.2 leaves this to us; one per mailbox is what users expect).
        let plan = match crate::sieve::plan(&self.store, &envelope, &transaction.local, &raw).await
        {
            Ok(plan) => plan,
            Err(error) => return self.delivery_failed(error),
        };
        // RFC 5429 §2.1.1: reject at SMTP time when the reply speaks for every recipient.
        if let Some(reason) = plan.rejected.first()
            && plan.rejected.len() == plan.accounts
            && transaction.remote.is_empty()
        {
            return Reply::new(SIEVE_REJECTED, reason.clone());
        }
        let outbound = (!transaction.remote.is_empty()).then(|| Outbound {
            mail_from: transaction.mail_from.clone(),
            recipients: transaction.remote.clone(),
            ret: transaction.ret.map(|ret| ret.as_str().to_owned()),
            // Stored as given on the wire (xtext), like ORCPT.
            envid: transaction.envid.as_deref().map(xtext_encode),
            dkim_domain,
        });
        let mut deliveries = plan.copies;
        if let Some(outbound) = outbound {
            // The remote recipients' copy is the message as received: ride on the local
            // copy of it (stored once) when there is one with no flags.
            match deliveries
                .iter_mut()
                .find(|d| d.flags.is_empty() && d.raw == *raw)
            {
                Some(first) => first.outbound = Some(outbound),
                None => deliveries.push(Delivery {
                    raw: raw.as_ref().clone(),
                    mailboxes: Vec::new(),
                    flags: Flags::default(),
                    internal_date: None,
                    outbound: Some(outbound),
                }),
            }
        }
        deliveries.extend(plan.outgoing);
        match self.store.deliver_all(deliveries).await {
            Ok(delivered) => {
                for (account, records) in plan.answered {
                    // After the replies are queued; a lost record means at most one
                    // more reply, never a lost message.
                    if let Err(error) = self.store.record_vacation_replies(account, records).await {
                        tracing::warn!(%error, "vacation replies not recorded");
                    }
                }
                tracing::info!(
                    id = %id,
                    stored_messages = delivered.len(),
                    size,
                    sender = %transaction.mail_from,
                    recipients = transaction.recipients.len(),
                    queued = delivered.iter().filter(|d| d.queued.is_some()).count(),
                    rejected = plan.rejected.len(),
                    "message accepted"
                );
                Reply::new(OK, format!("Message accepted as {id}"))
            }
            Err(error) => self.delivery_failed(error),
        }
    }

    /// Inbound mail from an unauthenticated client: SPF, DKIM, ARC and DMARC, giving the
    /// `Authentication-Results:` field to store with it, or the refusal when the sender's
    /// domain asks to reject what fails DMARC and we are told to enforce that.
    /// Submission (and an authenticated client on port 25) is not checked.
    async fn authenticate(
        &self,
        transaction: &Transaction,
        content: Vec<u8>,
    ) -> Result<(Vec<u8>, Option<String>), Reply> {
        let Some(auth) = &self.mail_auth else {
            return Ok((content, None));
        };
        if self.role != ListenerRole::Inbound || self.auth.is_some() || !auth.config.auth_checks {
            return Ok((content, None));
        }
        let envelope = Envelope {
            peer: self.peer_ip(),
            helo: self.helo.as_ref().map_or("", |helo| helo.name.as_str()),
            mail_from: &transaction.mail_from,
        };
        let verdict = auth.check(&self.config.hostname, &envelope, &content).await;
        tracing::info!(
            results = %verdict.header.trim_end().replace("\r\n\t", " "),
            "mail authentication"
        );
        if verdict.dmarc_reject && auth.config.dmarc_enforce {
            tracing::info!(domain = %verdict.from_domain, "message refused: DMARC policy reject");
            return Err(Reply::new(
                DMARC_REJECTED,
                format!(
                    "Message fails DMARC and {} asks to reject it",
                    verdict.from_domain
                ),
            ));
        }
        // RFC 8601 §5: results in the message that claim to be ours are not trusted.
        let content = remove_own_results(content, &self.config.hostname);
        Ok((content, Some(verdict.header)))
    }

    fn delivery_failed(&self, error: StoreError) -> Reply {
        match error {
            StoreError::OverQuota => {
                tracing::info!("delivery refused: over quota");
                Reply::new(MAILBOX_FULL, "Mailbox full")
            }
            error => {
                tracing::warn!(%error, "delivery failed");
                Reply::new(LOCAL_ERROR, "Local error in processing, try again later")
            }
        }
    }

    /// The stored form: trace fields, submission fixes, then the content unchanged.
    fn compose(
        &self,
        transaction: &Transaction,
        id: &str,
        content: Vec<u8>,
        auth_results: Option<&str>,
    ) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let mut head = String::new();
        // RFC 5321 §4.4: Return-Path is added by final delivery only; a message that
        // only goes out does not carry one (the outbound sender must also strip it from
        // a copy that does, see the crate report).
        if !transaction.local.is_empty() {
            head.push_str(&return_path(&transaction.mail_from));
        }
        // RFC 8601 §4: above the fields it covers, so below Return-Path only.
        if let Some(results) = auth_results {
            head.push_str(results);
        }
        let (helo, extended) = self
            .helo
            .as_ref()
            .map(|helo| (helo.name.as_str(), helo.extended))
            .unwrap_or(("unknown", false));
        head.push_str(&received(&ReceivedInfo {
            helo,
            peer: self.peer_ip(),
            hostname: &self.config.hostname,
            protocol: protocol(
                extended,
                self.tls,
                self.auth.is_some(),
                transaction.smtputf8,
            ),
            id,
            for_recipient: match transaction.recipients.as_slice() {
                [only] => Some(only.as_str()),
                _ => None,
            },
            date: now,
        }));
        if self.role != ListenerRole::Inbound {
            head.push_str(&submission_fields(&content, &self.config.hostname, now));
        }
        let mut raw = Vec::with_capacity(head.len() + content.len());
        raw.extend_from_slice(head.as_bytes());
        raw.extend_from_slice(&content);
        raw
    }
}

/// The reply to content that was read to its end but not kept.
fn refused(error: BodyError) -> Reply {
    match error {
        BodyError::TooBig(received) => too_big(received),
        BodyError::Abandoned => {
            tracing::info!("message refused: no memory for its content");
            Reply::new(
                INSUFFICIENT_STORAGE,
                "Insufficient system storage, try again later",
            )
        }
    }
}

fn too_big(received: usize) -> Reply {
    tracing::info!(received, "message refused: too big");
    Reply::new(
        MESSAGE_TOO_BIG,
        "Message size exceeds fixed maximum message size",
    )
}
