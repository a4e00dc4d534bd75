//! A prepared delivery stored inside the writer's transaction, statement by statement
//! (on SQLite, the common case in one round trip: `sqlite.rs`, [`deliver_alone`]).

use super::deliver_alone;
use super::prepared::{Delivered, PreparedDelivery};
use crate::entries::{NewEntry, place, place_at};
use crate::error::Result;
use crate::fulltext;
use crate::id_sequence::{IdSequence, next_id};
use crate::notify::{Change, ChangeKind};
use crate::queue::insert_queue_item;
use crate::types::MessageId;
use crate::{Backend, unix_now};
use sqlx::AnyConnection;
use sqlx::Row;

/// Stores one prepared message and places it, inside the writer's transaction.
pub(super) async fn deliver_in_tx(
    conn: &mut AnyConnection,
    prepared: &PreparedDelivery,
) -> Result<(Delivered, Vec<Change>)> {
    if Backend::of_connection(conn) == Backend::Sqlite && prepared.fits_one_round_trip() {
        return deliver_alone(conn, prepared).await;
    }
    let delivery = &prepared.delivery;
    let size = delivery.raw.len() as i64;
    let now = unix_now();
    let message = insert_message(conn, prepared, now).await?;
    // Only what is placed in a mailbox is searched; its index row is the background
    // indexer's (`fulltext/indexer.rs`).
    if !delivery.mailboxes.is_empty() {
        fulltext::queue_in_tx(conn, message).await?;
    }
    let internal_date = delivery.internal_date.unwrap_or(now);
    let flags = delivery.flags.to_stored();
    let mut placed = Vec::with_capacity(delivery.mailboxes.len());
    let mut changes = Vec::with_capacity(delivery.mailboxes.len());
    for &mailbox in &delivery.mailboxes {
        let entry = NewEntry {
            mailbox,
            message,
            size,
            flags: &flags,
            internal_date,
            // RFC 8514 §3: "the current date and time at which the message is delivered
            // to a mailbox MUST be used to set the save date attribute" (APPEND too).
            save_date: now,
        };
        let (account, uid_validity, uid, modseq) = match prepared.uid {
            Some(uid) => place_at(conn, &entry, uid).await?,
            None => place(conn, &entry).await?,
        };
        placed.push((mailbox, uid_validity, uid));
        changes.push(Change {
            account,
            mailbox,
            kind: ChangeKind::Appended { uid, modseq },
        });
    }
    let queued = match &delivery.outbound {
        Some(outbound) => Some(insert_queue_item(conn, message, outbound, now).await?),
        None => None,
    };
    let delivered = Delivered {
        message,
        placed,
        queued,
    };
    Ok((delivered, changes))
}

/// Stores the message's bytes and what was computed of them; returns its new id, one
/// never used before (see `id_sequence.rs` and `cache.rs`).
async fn insert_message(
    conn: &mut AnyConnection,
    prepared: &PreparedDelivery,
    now: i64,
) -> Result<MessageId> {
    let columns = "raw, header, size, meta, body_text, sent_date, created_at";
    let values = "$1, $2, $3, $4, $5, $6, $7";
    let (sql, id) = match Backend::of_connection(conn) {
        // One round trip: the id from the column's sequence (migration postgres 0010).
        Backend::Postgres => (
            format!("INSERT INTO messages ({columns}) VALUES ({values}) RETURNING id"),
            None,
        ),
        // The id is bound, not written into the statement: one statement that the
        // connection keeps prepared, instead of a new one to prepare at every delivery.
        Backend::Sqlite => (
            format!("INSERT INTO messages (id, {columns}) VALUES ($8, {values}) RETURNING id"),
            Some(next_id(conn, IdSequence::Messages).await?),
        ),
    };
    let query = prepared.bind_message_row(sqlx::query(&sql), now);
    // PostgreSQL's statement has no `$8`.
    let query = match id {
        Some(id) => query.bind(id),
        None => query,
    };
    let id: i64 = query.fetch_one(&mut *conn).await?.try_get(0)?;
    Ok(MessageId(id))
}
