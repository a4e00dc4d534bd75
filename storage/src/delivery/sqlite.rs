//! SQLite: deliveries to one mailbox each, several in one round trip to the connection's
//! thread.
//!
//! sqlx runs each SQLite connection on a thread of its own; every statement is a message
//! to that thread and an answer back, so each costs two thread wake-ups (futex, context
//! switch) on top of SQLite's own work. `deliver_in_tx` takes seven such round trips for
//! the common delivery (id, message, index row, UID, quota, entry); the SMTP profile
//! showed the writer thread busy as much with those hand-offs as with SQLite. Here the
//! same statements go as one multi-statement query: sqlx binds `$N` across all of them
//! from one argument list and runs them one after the other on the connection's thread.
//! The statements are those of `deliver_in_tx`, with the values that one statement
//! returned to the next read back from the row it wrote. The writer puts the neighbouring
//! deliveries of a batch in one such query ([`deliver_many_in_one_round_trip`]): with 16
//! SMTP sessions, the writer thread was woken about twice per message (a savepoint and
//! the delivery), 3.7 context switches per message in all (December 2026).
//!
//! A refusal (no mailbox, over quota, UID space used up) is found in what came back; it
//! leaves its statements behind, so the writer rolls back to the savepoint it set before
//! the query and runs those deliveries again one by one, each after a savepoint of its
//! own (`writer.rs`).

use super::prepared::{Delivered, PreparedDelivery};
use crate::error::{Result, StoreError};
use crate::fulltext::QUEUE_FOR_INDEXER;
use crate::id_sequence::{IdSequence, sqlite_take_id};
use crate::notify::{Change, ChangeKind};
use crate::types::{AccountId, MailboxId, MessageId, ModSeq, Uid, UidValidity};
use crate::unix_now;
use sqlx::AnyConnection;
use sqlx::Row;
use std::sync::LazyLock;

impl PreparedDelivery {
    /// True when [`deliver_many_in_one_round_trip`] can store it: the next UID of one
    /// mailbox, nothing to queue.
    pub(super) fn fits_one_round_trip(&self) -> bool {
        self.uid.is_none() && self.delivery.outbound.is_none() && self.delivery.mailboxes.len() == 1
    }
}

/// The id the query's first statement took (`id_sequence::sqlite_take_id`).
const MESSAGE_ID: &str = "(SELECT last_id FROM id_sequences WHERE name = 'messages')";

/// The arguments of one delivery in the query: see [`delivery_statements`].
const ARGUMENTS_PER_DELIVERY: usize = 10;

/// The queries of 1, 2, 4 ... [`MAX_DELIVERIES_PER_ROUND_TRIP`] deliveries, built once:
/// only powers of two, so that the connection's statement cache (sqlx keeps 100 query
/// texts) holds six of them, not one per count.
static QUERIES: LazyLock<Vec<String>> = LazyLock::new(|| {
    std::iter::successors(Some(1), |n| Some(n * 2))
        .take_while(|&n| n <= MAX_DELIVERIES_PER_ROUND_TRIP)
        .map(|n| {
            (0..n)
                .map(delivery_statements)
                .collect::<Vec<_>>()
                .join(";\n")
        })
        .collect()
});

/// The most deliveries [`deliver_many_in_one_round_trip`] stores in one query: six
/// statements each, each held compiled in the statement cache.
pub(crate) const MAX_DELIVERIES_PER_ROUND_TRIP: usize = 32;

/// How many of `waiting` deliveries (at least one) go in the next query: the largest
/// count a query of [`QUERIES`] holds.
pub(crate) fn deliveries_per_round_trip(waiting: usize) -> usize {
    let most = waiting.clamp(1, MAX_DELIVERIES_PER_ROUND_TRIP);
    1 << most.ilog2()
}

/// The statements of the `n`th delivery (from 0) of a query; each row it returns names
/// what it is, four values, and `n`. Its arguments, after the `n * 10` of the deliveries
/// before it: raw, header, size, meta, body_text, sent_date, now, mailbox, flags,
/// internal_date.
fn delivery_statements(n: usize) -> String {
    let arg = |i: usize| format!("${}", n * ARGUMENTS_PER_DELIVERY + i);
    let (raw, header, size, meta, body_text) = (arg(1), arg(2), arg(3), arg(4), arg(5));
    let (sent_date, now, mailbox, flags, internal_date) = (arg(6), arg(7), arg(8), arg(9), arg(10));
    // The index row is the background indexer's (`fulltext/indexer.rs`).
    let index_row = format!("{QUEUE_FOR_INDEXER} VALUES ({MESSAGE_ID}, 1)");
    // The message's id, as `id_sequence::next_id` takes it; the row is held by the
    // writer's transaction.
    let take_message_id = sqlite_take_id(IdSequence::Messages, "'messages'");
    format!(
        "{take_message_id} RETURNING 'id', last_id, 0, 0, 0, {n};
         INSERT INTO messages (id, raw, header, size, meta, body_text, sent_date, created_at)
             VALUES ({MESSAGE_ID}, {raw}, {header}, {size}, {meta}, {body_text}, {sent_date}, {now});
         {index_row};
         UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
             WHERE id = {mailbox}
             RETURNING 'placed', account_id, uidvalidity, uidnext - 1, highestmodseq, {n};
         UPDATE accounts SET used_bytes = used_bytes + {size}
             WHERE id = (SELECT account_id FROM mailboxes WHERE id = {mailbox})
               AND (quota_bytes IS NULL OR used_bytes + {size} <= quota_bytes)
             RETURNING 'charged', id, 0, 0, 0, {n};
         INSERT INTO mailbox_messages
             (mailbox_id, uid, message_id, modseq, flags, internal_date, save_date)
             SELECT id, uidnext - 1, {MESSAGE_ID}, highestmodseq, {flags}, {internal_date}, {now}
             FROM mailboxes WHERE id = {mailbox}"
    )
}

/// SQLite: [`deliveries_per_round_trip`]`(deliveries.len())` deliveries (each
/// [`PreparedDelivery::fits_one_round_trip`]) in one round trip, in their order: the
/// first gets the lower UID of a mailbox they share. One outcome per delivery; an `Err`
/// among them (a refusal) left that delivery's statements behind, which the caller
/// undoes (see the module's documentation). An `Err` of the whole is a database error.
pub(crate) async fn deliver_many_in_one_round_trip(
    conn: &mut AnyConnection,
    deliveries: &[&PreparedDelivery],
) -> Result<Vec<Result<(Delivered, Vec<Change>)>>> {
    let count = deliveries.len();
    if count == 0 || count != deliveries_per_round_trip(count) {
        return Err(StoreError::Corrupt(format!(
            "{count} deliveries in one round trip"
        )));
    }
    let mut mailboxes = Vec::with_capacity(count);
    for prepared in deliveries {
        let [mailbox] = prepared.delivery.mailboxes[..] else {
            return Err(StoreError::Corrupt(
                "a one-round-trip delivery goes to one mailbox".into(),
            ));
        };
        mailboxes.push(mailbox);
    }
    let sql: &str = QUERIES
        .get(count.ilog2() as usize)
        .ok_or_else(|| StoreError::Corrupt(format!("no query of {count} deliveries")))?;
    let now = unix_now();
    let mut query = sqlx::query(sql);
    for (prepared, mailbox) in deliveries.iter().zip(&mailboxes) {
        let delivery = &prepared.delivery;
        query = prepared
            .bind_message_row(query, now)
            .bind(mailbox.0)
            .bind(delivery.flags.to_stored())
            .bind(delivery.internal_date.unwrap_or(now));
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut returned: Vec<Returned> = vec![Returned::default(); count];
    for row in &rows {
        let n: i64 = row.try_get(5)?;
        let one = usize::try_from(n)
            .ok()
            .and_then(|n| returned.get_mut(n))
            .ok_or_else(|| StoreError::Corrupt(format!("delivery {n} of {count} returned")))?;
        let what: String = row.try_get(0)?;
        match what.as_str() {
            "id" => one.message = Some(MessageId(row.try_get(1)?)),
            "placed" => {
                one.placed = Some((
                    AccountId(row.try_get(1)?),
                    UidValidity(row.try_get::<i64, _>(2)? as u32),
                    row.try_get::<i64, _>(3)?,
                    ModSeq(row.try_get::<i64, _>(4)? as u64),
                ))
            }
            "charged" => one.charged = true,
            other => return Err(StoreError::Corrupt(format!("delivery returned {other}"))),
        }
    }
    Ok(returned
        .into_iter()
        .zip(mailboxes)
        .map(|(one, mailbox)| one.outcome(mailbox))
        .collect())
}

/// What the statements of one delivery returned.
#[derive(Debug, Clone, Default)]
struct Returned {
    message: Option<MessageId>,
    /// Account, UIDVALIDITY, UID and MODSEQ in the mailbox.
    placed: Option<(AccountId, UidValidity, i64, ModSeq)>,
    charged: bool,
}

impl Returned {
    fn outcome(self, mailbox: MailboxId) -> Result<(Delivered, Vec<Change>)> {
        let message = self
            .message
            .ok_or_else(|| StoreError::Corrupt("no id sequence for messages".into()))?;
        let (account, uid_validity, uid, modseq) = self
            .placed
            .ok_or_else(|| StoreError::not_found("mailbox", mailbox))?;
        // RFC 9051 §2.3.1.1: UIDs are 32-bit; a mailbox that runs out must get a new
        // UIDVALIDITY (as `entries::allocate` checks).
        if uid + 1 > u32::MAX as i64 {
            return Err(StoreError::invalid("mailbox", "UID space exhausted"));
        }
        if !self.charged {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_holds_a_power_of_two_deliveries_up_to_the_most() {
        let counts: Vec<usize> = (1..=70).map(deliveries_per_round_trip).collect();
        assert_eq!(counts[..8], [1, 2, 2, 4, 4, 4, 4, 8]);
        assert_eq!(counts[30], 16);
        assert_eq!(counts[31], 32);
        assert_eq!(counts[69], 32);
        assert_eq!(deliveries_per_round_trip(0), 1);
        assert_eq!(QUERIES.len(), 6);
        // Each query's last delivery takes the last ten arguments.
        assert!(QUERIES[5].contains("$320") && !QUERIES[5].contains("$321"));
    }
}
