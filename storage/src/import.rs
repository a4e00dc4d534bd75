//! Moving mail in from another server (`letterbox import`) with the UIDs it had, so
//! that IMAP clients carry on without downloading everything again: RFC 9051 §2.3.1.1
//! lets a client keep what it cached for as long as a mailbox's UIDVALIDITY and UIDs
//! stay the same.
//!
//! Invariants (the same as for every other write, see `writer.rs` and migration 0001):
//! - UIDs in a mailbox only grow and are never reused within one UIDVALIDITY: a message
//!   is placed at a given UID only when that UID is at or above UIDNEXT, and UIDNEXT
//!   then moves past it; UIDNEXT is only ever raised.
//! - A UIDVALIDITY is adopted only by a mailbox that holds no message, and with it the
//!   UID space starts over (UIDNEXT 1, no expunged UIDs of the old UIDVALIDITY kept for
//!   VANISHED): no UID a client saw under the old value can be confused with a new one.
//! - Every placed message takes a new MODSEQ and is published as
//!   [`ChangeKind::Appended`], as a delivery is; a UIDVALIDITY change is published as
//!   [`ChangeKind::MailboxChanged`].

use crate::delivery::PreparedDelivery;
use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::mailboxes::mailbox_in_tx;
use crate::notify::{Change, ChangeKind};
use crate::types::{Flags, MailboxId, Uid, UidValidity};
use crate::{Delivery, Store};

/// One message from another server, with the state it had there.
#[derive(Debug, Clone, Default)]
pub struct ImportedMessage {
    pub raw: Vec<u8>,
    pub flags: Flags,
    /// INTERNALDATE, seconds since the epoch.
    pub internal_date: i64,
    /// The UID it had; the next free UID when `None`. A given UID must be at or above
    /// the mailbox's UIDNEXT (and the UIDs of one batch ascending).
    pub uid: Option<Uid>,
}

impl Store {
    /// Gives a mailbox that holds no message the UIDVALIDITY `uid_validity` (the one
    /// another server gave it), so that its messages can be imported at the UIDs they
    /// had there. The UID space starts over: UIDNEXT 1, and the expunged UIDs kept for
    /// QRESYNC (RFC 7162 §3.2.10) belong to the old UIDVALIDITY and go. HIGHESTMODSEQ
    /// stays (it never goes down). Nothing changes when the mailbox has that UIDVALIDITY
    /// already.
    pub async fn adopt_uid_validity(
        &self,
        mailbox: MailboxId,
        uid_validity: UidValidity,
    ) -> Result<()> {
        // RFC 9051 §9 nz-number: UIDVALIDITY 0 is not a value.
        if uid_validity.0 == 0 {
            return Err(StoreError::invalid("uidvalidity", "0 is not a UIDVALIDITY"));
        }
        self.writer
            .run(Scope::mailboxes([mailbox]), move |conn| {
                Box::pin(async move {
                    let current = mailbox_in_tx(conn, mailbox).await?;
                    if current.uid_validity == uid_validity {
                        return Ok(JobOutput::new((), Vec::new()));
                    }
                    let messages: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM mailbox_messages WHERE mailbox_id = $1",
                    )
                    .bind(mailbox.0)
                    .fetch_one(&mut *conn)
                    .await?;
                    if messages > 0 {
                        return Err(StoreError::invalid(
                            "mailbox",
                            format!(
                                "{} holds messages: its UIDVALIDITY cannot change",
                                current.name
                            ),
                        ));
                    }
                    sqlx::query(
                        "UPDATE mailboxes SET uidvalidity = $1, uidnext = 1, first_recent_uid = 1
                         WHERE id = $2",
                    )
                    .bind(i64::from(uid_validity.0))
                    .bind(mailbox.0)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query("DELETE FROM expunged WHERE mailbox_id = $1")
                        .bind(mailbox.0)
                        .execute(&mut *conn)
                        .await?;
                    let change = Change {
                        account: current.account,
                        mailbox,
                        kind: ChangeKind::MailboxChanged,
                    };
                    Ok(JobOutput::new((), vec![change]))
                })
            })
            .await
    }

    /// Places `messages` in `mailbox` in one transaction (all or none), each at its
    /// own UID when it has one. Returns the UIDs they got, in order. Keep a batch to a
    /// bounded size: its messages are held in memory together.
    pub async fn import_messages(
        &self,
        mailbox: MailboxId,
        messages: Vec<ImportedMessage>,
    ) -> Result<Vec<Uid>> {
        let mut prepared = Vec::with_capacity(messages.len());
        for message in messages {
            let mut one = PreparedDelivery::new(Delivery {
                raw: message.raw,
                mailboxes: vec![mailbox],
                flags: message.flags,
                internal_date: Some(message.internal_date),
                outbound: None,
            })
            .await?;
            one.uid = message.uid;
            prepared.push(one);
        }
        let delivered = self.deliver_prepared(prepared).await?;
        Ok(delivered
            .iter()
            .filter_map(|d| d.placed.first().map(|&(_, _, uid)| uid))
            .collect())
    }

    /// Raises `mailbox`'s UIDNEXT to `uid_next` (the next UID another server would have
    /// given), so that no UID it gave out is used again here; a lower value changes
    /// nothing. RFC 9051 §2.3.1.1 allows UIDs to skip values. Nothing is published: no
    /// message changed, and STATUS reads UIDNEXT afresh.
    pub async fn raise_uid_next(&self, mailbox: MailboxId, uid_next: Uid) -> Result<()> {
        self.writer
            .run(Scope::mailboxes([mailbox]), move |conn| {
                Box::pin(async move {
                    // Checks that the mailbox exists.
                    mailbox_in_tx(conn, mailbox).await?;
                    sqlx::query("UPDATE mailboxes SET uidnext = $1 WHERE id = $2 AND uidnext < $1")
                        .bind(i64::from(uid_next.0))
                        .bind(mailbox.0)
                        .execute(&mut *conn)
                        .await?;
                    Ok(JobOutput::new((), Vec::new()))
                })
            })
            .await
    }
}
