//! PostgreSQL: a delivery in one statement, the function `letterbox_deliver` (migration
//! postgres 0010).

use super::prepared::{Delivered, PreparedDelivery};
use crate::error::{Result, StoreError};
use crate::notify::{Change, ChangeKind};
use crate::types::{AccountId, MailboxId, MessageId, ModSeq, Uid, UidValidity};
use crate::unix_now;
use sqlx::AnyConnection;
use sqlx::Row;

impl PreparedDelivery {
    /// True when [`deliver_in_one_statement`] can store it: the next UIDs of its
    /// mailboxes, nothing to queue.
    pub(super) fn fits_one_statement(&self) -> bool {
        self.uid.is_none()
            && self.delivery.outbound.is_none()
            && !self.delivery.mailboxes.is_empty()
    }
}

/// PostgreSQL: one delivery in one round trip, which leaves nothing behind when it is
/// refused (`letterbox_deliver`, migration postgres 0010): what `deliver_in_tx` does
/// for a message to the next UIDs of its mailboxes and no queue.
pub(super) async fn deliver_in_one_statement(
    conn: &mut AnyConnection,
    prepared: &PreparedDelivery,
) -> Result<(Delivered, Vec<Change>)> {
    let delivery = &prepared.delivery;
    let now = unix_now();
    // Ids of ours, for the function's comma-separated list (the Any driver binds no arrays).
    let mailboxes = delivery
        .mailboxes
        .iter()
        .map(|m| m.0.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let rows = sqlx::query(
        "SELECT * FROM letterbox_deliver($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&delivery.raw)
    .bind(&prepared.header[..])
    .bind(&prepared.meta)
    .bind(&prepared.body_text)
    .bind(prepared.sent_date)
    .bind(now)
    .bind(mailboxes)
    .bind(delivery.flags.to_stored())
    .bind(delivery.internal_date.unwrap_or(now))
    // The full-text index row (migration postgres 0012), or pending when NULL.
    .bind(prepared.fulltext.as_ref().map(|t| t.body.as_str()))
    .bind(prepared.fulltext.as_ref().map(|t| t.headers.as_str()))
    .fetch_all(&mut *conn)
    .await?;
    let mut message = None;
    let mut placed = Vec::with_capacity(rows.len());
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let outcome: String = row.try_get(0)?;
        let mailbox = MailboxId(row.try_get(2)?);
        match outcome.as_str() {
            "ok" => {}
            "no mailbox" => {
                return Err(StoreError::not_found("mailbox", mailbox));
            }
            "over quota" => return Err(StoreError::OverQuota),
            // RFC 9051 §2.3.1.1: a mailbox that runs out must get a new UIDVALIDITY.
            "uid space exhausted" => {
                return Err(StoreError::invalid("mailbox", "UID space exhausted"));
            }
            other => return Err(StoreError::Corrupt(format!("letterbox_deliver: {other}"))),
        }
        message = Some(MessageId(row.try_get(1)?));
        let account = AccountId(row.try_get(3)?);
        let uid = Uid(row.try_get::<i64, _>(5)? as u32);
        let modseq = ModSeq(row.try_get::<i64, _>(6)? as u64);
        placed.push((mailbox, UidValidity(row.try_get::<i64, _>(4)? as u32), uid));
        changes.push(Change {
            account,
            mailbox,
            kind: ChangeKind::Appended { uid, modseq },
        });
    }
    let message =
        message.ok_or_else(|| StoreError::Corrupt("letterbox_deliver placed nothing".into()))?;
    let delivered = Delivered {
        message,
        placed,
        queued: None,
    };
    Ok((delivered, changes))
}
