//! PostgreSQL: a delivery in one statement, the function `letterbox_deliver` (migration
//! postgres 0010, its index texts since 0012). The texts are always NULL: the message is
//! listed for the background indexer (migration postgres 0015, `fulltext/indexer.rs`).

use super::prepared::{Delivered, PreparedDelivery};
use crate::error::{Result, StoreError};
use crate::notify::{Change, ChangeKind};
use crate::types::{AccountId, MailboxId, MessageId, ModSeq, Uid, UidValidity};
use crate::unix_now;
use sqlx::Row;
use sqlx::{AnyConnection, any::AnyRow};

impl PreparedDelivery {
    /// True when [`deliver_many`] can store it: the next UIDs of its
    /// mailboxes, nothing to queue.
    pub(crate) fn fits_one_statement(&self) -> bool {
        self.uid.is_none()
            && self.delivery.outbound.is_none()
            && !self.delivery.mailboxes.is_empty()
    }
}

/// The most deliveries [`deliver_many`] stores in one statement: each adds 9 parameters
/// and a statement of its own to each connection's cache of prepared statements (one per
/// count up to this), which stays well under sqlx's 100.
pub(crate) const DELIVERIES_PER_STATEMENT: usize = 32;

/// The bound arguments of `letterbox_deliver` in its order, for one delivery (its last
/// two, the index texts, are NULL in the statement).
const DELIVER_ARGUMENTS: [&str; 9] = [
    "BYTEA", "BYTEA", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "BIGINT",
];

/// PostgreSQL: several deliveries (at most [`DELIVERIES_PER_STATEMENT`]) in one round
/// trip, one call of `letterbox_deliver` each, in their order: the first gets the lower
/// UIDs of a mailbox they share. Each call undoes itself when refused, so each delivery
/// stays all or nothing and is answered on its own; an `Err` is a database error, which
/// may have aborted the transaction.
pub(crate) async fn deliver_many(
    conn: &mut AnyConnection,
    deliveries: &[&PreparedDelivery],
) -> Result<Vec<Result<(Delivered, Vec<Change>)>>> {
    let now = unix_now();
    // A nested loop over VALUES in their order calls the function once per row, in that
    // order (the join's outer side is the VALUES scan: the function reads its columns).
    // ORDER BY keeps each call's rows in its own order too.
    let mut rows_sql = Vec::with_capacity(deliveries.len());
    for n in 0..deliveries.len() {
        let first = n * DELIVER_ARGUMENTS.len();
        let arguments: Vec<String> = DELIVER_ARGUMENTS
            .iter()
            .enumerate()
            .map(|(i, kind)| format!("CAST(${} AS {kind})", first + i + 1))
            .collect();
        rows_sql.push(format!("({n}, {})", arguments.join(", ")));
    }
    let sql = format!(
        "SELECT v.n, d.* FROM (VALUES {}) AS v (n, raw, header, meta, body_text, sent_date, \
         now, mailboxes, flags, internal_date) \
         CROSS JOIN LATERAL letterbox_deliver(v.raw, v.header, v.meta, v.body_text, \
         v.sent_date, v.now, v.mailboxes, v.flags, v.internal_date, NULL, NULL) \
         WITH ORDINALITY AS d \
         ORDER BY v.n, d.ordinality",
        rows_sql.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for prepared in deliveries {
        let delivery = &prepared.delivery;
        // Ids of ours, for the function's comma-separated list (the Any driver binds no
        // arrays).
        let mailboxes = delivery
            .mailboxes
            .iter()
            .map(|m| m.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        query = query
            .bind(&delivery.raw[..])
            .bind(&prepared.header[..])
            .bind(prepared.meta.as_str())
            .bind(prepared.body_text.as_str())
            .bind(prepared.sent_date)
            .bind(now)
            .bind(mailboxes)
            .bind(delivery.flags.to_stored())
            .bind(delivery.internal_date.unwrap_or(now));
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut by_delivery: Vec<Vec<&AnyRow>> = vec![Vec::new(); deliveries.len()];
    for row in &rows {
        let n: i32 = row.try_get(0)?;
        by_delivery
            .get_mut(n as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("letterbox_deliver: row of call {n}")))?
            .push(row);
    }
    Ok(by_delivery.into_iter().map(|rows| outcome(&rows)).collect())
}

/// What one call of `letterbox_deliver` gave (its rows, after the call's number).
fn outcome(rows: &[&AnyRow]) -> Result<(Delivered, Vec<Change>)> {
    let mut message = None;
    let mut placed = Vec::with_capacity(rows.len());
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let outcome: String = row.try_get(1)?;
        let mailbox = MailboxId(row.try_get(3)?);
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
        message = Some(MessageId(row.try_get(2)?));
        let account = AccountId(row.try_get(4)?);
        let uid = Uid(row.try_get::<i64, _>(6)? as u32);
        let modseq = ModSeq(row.try_get::<i64, _>(7)? as u64);
        placed.push((mailbox, UidValidity(row.try_get::<i64, _>(5)? as u32), uid));
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
