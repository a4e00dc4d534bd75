//! RCPT TO (RFC 5321 §4.1.1.3) with the DSN parameters NOTIFY and ORCPT (RFC 3461).
//!
//! Local domains take mail from anyone for their existing addresses. Other domains are
//! relayed only for an authenticated client (submission); everyone else is refused, so
//! the server is never an open relay.

use crate::proto::address::{domain_of, xtext_encode};
use crate::proto::reply::{
    LOCAL_ERROR, MAILBOX_FULL_TEMPORARY, NON_ASCII_ADDRESS, RECIPIENT_OK, RELAY_DENIED,
    TOO_MANY_RECIPIENTS, USER_UNKNOWN,
};
use crate::proto::{ForwardPath, RcptTo, Reply};
use crate::session::{LocalRcpt, Session, State};
use storage::{LocalRecipient, QueuedRecipient, RecipientLookup, StoreError};

/// Where an accepted recipient's copy goes.
enum Destination {
    Local(LocalRecipient),
    Remote,
}

impl Session {
    pub(crate) async fn rcpt(&mut self, to: RcptTo) -> Reply {
        let (count, smtputf8) = match &self.state {
            State::Envelope(transaction) => (transaction.recipients.len(), transaction.smtputf8),
            // The gate lets RCPT through only with an envelope open.
            _ => return Reply::new(crate::proto::reply::BAD_SEQUENCE, "Need MAIL command"),
        };
        // RFC 5321 §4.5.3.1.10: over the limit, 452 and the client sends the rest later.
        if count >= self.config.max_recipients {
            return Reply::new(TOO_MANY_RECIPIENTS, "Too many recipients");
        }
        let (address, destination) = match self.route(&to.path, smtputf8).await {
            Ok(routed) => routed,
            Err(reply) => return reply,
        };
        tracing::debug!(recipient = %address, "RCPT accepted");
        let State::Envelope(transaction) = &mut self.state else {
            return Reply::new(crate::proto::reply::BAD_SEQUENCE, "Need MAIL command");
        };
        match destination {
            Destination::Local(found) => transaction.local.push(LocalRcpt {
                address: address.clone(),
                found,
            }),
            Destination::Remote => {
                if !transaction.remote.iter().any(|r| r.address == address) {
                    transaction.remote.push(QueuedRecipient {
                        address: address.clone(),
                        notify: to.notify.iter().map(|n| (*n).to_owned()).collect(),
                        // Stored as on the wire: `rfc822;` and the xtext form.
                        orcpt: to
                            .orcpt
                            .as_deref()
                            .map(|o| format!("rfc822;{}", xtext_encode(o))),
                    });
                }
            }
        }
        transaction.recipients.push(address);
        Reply::new(RECIPIENT_OK, "Recipient OK")
    }

    /// Decides where mail for `path` goes, or the reply refusing it.
    async fn route(
        &self,
        path: &ForwardPath,
        smtputf8: bool,
    ) -> Result<(String, Destination), Reply> {
        let address = match path {
            ForwardPath::Postmaster => return self.postmaster().await,
            ForwardPath::Mailbox(address) => address,
        };
        // RFC 6531 §3.4: non-ASCII needs SMTPUTF8 on MAIL.
        if !address.is_ascii() && !smtputf8 {
            return Err(Reply::new(
                NON_ASCII_ADDRESS,
                "Non-ASCII addresses not permitted without SMTPUTF8",
            ));
        }
        if domain_of(address).is_none() {
            return Err(Reply::new(
                crate::proto::reply::BAD_RECIPIENT_SYNTAX,
                "Bad recipient address syntax",
            ));
        }
        // One statement: the domain, the account, its quota, INBOX and Sieve script.
        match self.store.local_recipient(address).await {
            // Refuse per recipient while the envelope is open: after DATA one reply
            // covers every recipient, and a full mailbox would fail them all.
            Ok(RecipientLookup::Local(found)) if found.is_over_quota() => {
                return Err(Reply::new(MAILBOX_FULL_TEMPORARY, "Mailbox full"));
            }
            Ok(RecipientLookup::Local(found)) => {
                return Ok((address.clone(), Destination::Local(found)));
            }
            Ok(RecipientLookup::Unknown) => {
                return Err(Reply::new(USER_UNKNOWN, "No such user here"));
            }
            Ok(RecipientLookup::NotLocal) => {}
            Err(error) => return Err(storage_error(error)),
        }
        if self.auth.is_none() {
            tracing::info!(recipient = %address, "relay denied");
            return Err(Reply::new(RELAY_DENIED, "Relay access denied"));
        }
        Ok((address.clone(), Destination::Remote))
    }

    /// RFC 5321 §4.5.1: `<Postmaster>` without a domain must be accepted; it goes to the
    /// postmaster of the first local domain that has one.
    async fn postmaster(&self) -> Result<(String, Destination), Reply> {
        let domains = self.store.list_domains().await.map_err(storage_error)?;
        for domain in domains {
            let address = format!("postmaster@{domain}");
            if let Some(account) = self
                .store
                .resolve_recipient(&address)
                .await
                .map_err(storage_error)?
                && let RecipientLookup::Local(found) = self
                    .store
                    .local_account(account)
                    .await
                    .map_err(storage_error)?
            {
                return Ok((address, Destination::Local(found)));
            }
        }
        Err(Reply::new(USER_UNKNOWN, "No postmaster here"))
    }
}

fn storage_error(error: StoreError) -> Reply {
    tracing::warn!(%error, "recipient lookup failed");
    Reply::new(LOCAL_ERROR, "Local error, try again later")
}
