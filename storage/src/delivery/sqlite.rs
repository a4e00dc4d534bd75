//! SQLite: a delivery to one mailbox in one round trip to the connection's thread.
//!
//! sqlx runs each SQLite connection on a thread of its own; every statement is a message
//! to that thread and an answer back, so each costs two thread wake-ups (futex, context
//! switch) on top of SQLite's own work. `deliver_in_tx` takes seven such round trips for
//! the common delivery (id, message, index row, UID, quota, entry); the SMTP profile
//! showed the writer thread busy as much with those hand-offs as with SQLite. Here the
//! same statements go as one multi-statement query: sqlx binds `$N` across all of them
//! from one argument list and runs them one after the other on the connection's thread.
//! The statements are those of `deliver_in_tx`, with the values that one statement
//! returned to the next read back from the row it wrote. A refusal (no mailbox, over
//! quota, UID space used up) is found in what came back; the writer job then fails and
//! its savepoint undoes every statement of it.

use super::prepared::{Delivered, PreparedDelivery};
use crate::error::{Result, StoreError};
use crate::fulltext::QUEUE_FOR_INDEXER;
use crate::id_sequence::{IdSequence, sqlite_take_id};
use crate::notify::{Change, ChangeKind};
use crate::types::{AccountId, MessageId, ModSeq, Uid, UidValidity};
use crate::unix_now;
use sqlx::AnyConnection;
use sqlx::Row;
use std::sync::LazyLock;

impl PreparedDelivery {
    /// True when [`deliver_in_one_round_trip`] can store it: the next UID of one
    /// mailbox, nothing to queue.
    pub(super) fn fits_one_round_trip(&self) -> bool {
        self.uid.is_none() && self.delivery.outbound.is_none() && self.delivery.mailboxes.len() == 1
    }
}

/// The id the query's first statement took (`id_sequence::sqlite_take_id`).
const MESSAGE_ID: &str = "(SELECT last_id FROM id_sequences WHERE name = 'messages')";

/// The one query, built once.
static STATEMENTS: LazyLock<String> = LazyLock::new(statements);

/// Arguments: $1 raw, $2 header, $3 size, $4 meta, $5 body_text, $6 sent_date, $7 now,
/// $8 mailbox, $9 flags, $10 internal_date.
fn statements() -> String {
    // The index row is the background indexer's (`fulltext/indexer.rs`).
    let index_row = format!("{QUEUE_FOR_INDEXER} VALUES ({MESSAGE_ID}, 1)");
    // The message's id, as `id_sequence::next_id` takes it; the row is held by the
    // writer's transaction.
    let take_message_id = sqlite_take_id(IdSequence::Messages, "'messages'");
    format!(
        "{take_message_id} RETURNING 'id', last_id, 0, 0, 0;
         INSERT INTO messages (id, raw, header, size, meta, body_text, sent_date, created_at)
             VALUES ({MESSAGE_ID}, $1, $2, $3, $4, $5, $6, $7);
         {index_row};
         UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 WHERE id = $8
             RETURNING 'placed', account_id, uidvalidity, uidnext - 1, highestmodseq;
         UPDATE accounts SET used_bytes = used_bytes + $3
             WHERE id = (SELECT account_id FROM mailboxes WHERE id = $8)
               AND (quota_bytes IS NULL OR used_bytes + $3 <= quota_bytes)
             RETURNING 'charged', id, 0, 0, 0;
         INSERT INTO mailbox_messages
             (mailbox_id, uid, message_id, modseq, flags, internal_date, save_date)
             SELECT id, uidnext - 1, {MESSAGE_ID}, highestmodseq, $9, $10, $7
             FROM mailboxes WHERE id = $8"
    )
}

/// SQLite: what `deliver_in_tx` does for a message to the next UID of one mailbox and no
/// queue ([`PreparedDelivery::fits_one_round_trip`]), in one round trip.
pub(super) async fn deliver_in_one_round_trip(
    conn: &mut AnyConnection,
    prepared: &PreparedDelivery,
) -> Result<(Delivered, Vec<Change>)> {
    let delivery = &prepared.delivery;
    let [mailbox] = delivery.mailboxes[..] else {
        return Err(StoreError::Corrupt(
            "a one-round-trip delivery goes to one mailbox".into(),
        ));
    };
    let now = unix_now();
    let sql: &str = &STATEMENTS;
    let rows = prepared
        .bind_message_row(sqlx::query(sql), now)
        .bind(mailbox.0)
        .bind(delivery.flags.to_stored())
        .bind(delivery.internal_date.unwrap_or(now))
        .fetch_all(&mut *conn)
        .await?;
    let mut message = None;
    let mut placed = None;
    let mut charged = false;
    for row in &rows {
        let what: String = row.try_get(0)?;
        match what.as_str() {
            "id" => message = Some(MessageId(row.try_get(1)?)),
            "placed" => {
                placed = Some((
                    AccountId(row.try_get(1)?),
                    UidValidity(row.try_get::<i64, _>(2)? as u32),
                    row.try_get::<i64, _>(3)?,
                    ModSeq(row.try_get::<i64, _>(4)? as u64),
                ))
            }
            "charged" => charged = true,
            other => return Err(StoreError::Corrupt(format!("delivery returned {other}"))),
        }
    }
    let message =
        message.ok_or_else(|| StoreError::Corrupt("no id sequence for messages".into()))?;
    let (account, uid_validity, uid, modseq) =
        placed.ok_or_else(|| StoreError::not_found("mailbox", mailbox))?;
    // RFC 9051 §2.3.1.1: UIDs are 32-bit; a mailbox that runs out must get a new
    // UIDVALIDITY (as `entries::allocate` checks).
    if uid + 1 > u32::MAX as i64 {
        return Err(StoreError::invalid("mailbox", "UID space exhausted"));
    }
    if !charged {
        return Err(StoreError::OverQuota);
    }
    let uid = Uid(uid as u32);
    let delivered = Delivered {
        message,
        placed: vec![(mailbox, uid_validity, uid)],
        queued: None,
    };
    let change = Change {
        account,
        mailbox,
        kind: ChangeKind::Appended { uid, modseq },
    };
    Ok((delivered, vec![change]))
}
