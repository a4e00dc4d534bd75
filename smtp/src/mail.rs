//! MAIL FROM (RFC 5321 §4.1.1.2) with SIZE (RFC 1870), SMTPUTF8 (RFC 6531), BODY
//! (RFC 6152) and the DSN parameters RET and ENVID (RFC 3461).
//!
//! The gate has checked the order (greeted, no transaction) and, on the submission
//! ports, that the client is authenticated.

use crate::proto::reply::{
    LOCAL_ERROR, MESSAGE_TOO_BIG, NON_ASCII_ADDRESS, SENDER_NOT_OWNED, SENDER_OK,
};
use crate::proto::{BodyBuffer, MailFrom, Reply};
use crate::session::{Session, State, Transaction};

impl Session {
    pub(crate) async fn mail(&mut self, from: MailFrom) -> Reply {
        // RFC 1870 §6.1: a declared size over our fixed maximum is refused at once.
        if from
            .size
            .is_some_and(|size| size > self.config.max_message_size)
        {
            return Reply::new(
                MESSAGE_TOO_BIG,
                "Message size exceeds fixed maximum message size",
            );
        }
        // RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter.
        if !from.address.is_ascii() && !from.smtputf8 {
            return Reply::new(
                NON_ASCII_ADDRESS,
                "Non-ASCII addresses not permitted without SMTPUTF8",
            );
        }
        // An authenticated client may send only as itself (one of its addresses or
        // aliases); otherwise anyone with an account could forge anyone. The null
        // reverse-path is accepted (RFC 6409 §3.2: "permitted and MUST be accepted", for
        // read receipts and other notices); the From: check after DATA still applies
        // (`submission.rs`).
        if let Some(auth) = &self.auth
            && !from.address.is_empty()
        {
            match self
                .store
                .account_owns_address(auth.account, &from.address)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(user = %auth.email, sender = %from.address, "sender not owned");
                    return Reply::new(
                        SENDER_NOT_OWNED,
                        "Sender address not owned by the authenticated user",
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, "sender check failed");
                    return Reply::new(LOCAL_ERROR, "Local error, try again later");
                }
            }
        }
        tracing::debug!(sender = %from.address, "MAIL accepted");
        self.state = State::Envelope(Transaction {
            mail_from: from.address,
            smtputf8: from.smtputf8,
            ret: from.ret,
            envid: from.envid,
            recipients: Vec::new(),
            local: Vec::new(),
            remote: Vec::new(),
            body: BodyBuffer::new(self.config.max_message_size),
        });
        Reply::new(SENDER_OK, "Sender OK")
    }
}
