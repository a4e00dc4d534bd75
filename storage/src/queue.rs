//! The outbound queue as stored: messages with remote recipients wait here, durably,
//! until the outbound sender delivers them.
//!
//! Invariants (several nodes on PostgreSQL): queue items belong to no account, and their
//! writes take no advisory lock (`locks.rs`). A claim leases items with `FOR UPDATE SKIP
//! LOCKED`, so two nodes claiming at once get different items and neither waits for the
//! other; after that, only the lease's holder changes an item (each write checks
//! `lease_holder`), except the admin's `queue delete` and `queue retry`.

use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::types::{MessageId, QueueId, UnixTime};
use crate::{Backend, Store};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::Row;

/// The envelope of a message that leaves: its sender and remote recipients.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    pub mail_from: String,
    pub recipients: Vec<QueuedRecipient>,
    /// RFC 3461 RET and ENVID, as given on MAIL FROM.
    pub ret: Option<String>,
    pub envid: Option<String>,
    /// The domain whose DKIM keys sign the message when it leaves; `None`: unsigned.
    /// Decided by whoever queues the message, which knows who may sign for what.
    pub dkim_domain: Option<String>,
}

/// One remote recipient with its RFC 3461 parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRecipient {
    pub address: String,
    /// RFC 3461 §4.1 NOTIFY, e.g. `["FAILURE", "DELAY"]`.
    #[serde(default)]
    pub notify: Vec<String>,
    /// RFC 3461 §4.2 ORCPT, as `type;address`.
    #[serde(default)]
    pub orcpt: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DsnEnvelope {
    ret: Option<String>,
    envid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub id: QueueId,
    pub message: MessageId,
    pub mail_from: String,
    pub recipients: Vec<QueuedRecipient>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: UnixTime,
    pub last_error: Option<String>,
    pub created_at: UnixTime,
    pub size: i64,
    /// The sender was sent a delay notice already (RFC 3464 `Action: delayed`).
    pub delay_warned: bool,
    /// See [`Outbound::dkim_domain`].
    pub dkim_domain: Option<String>,
}

pub(crate) async fn insert_queue_item(
    conn: &mut AnyConnection,
    message: MessageId,
    outbound: &Outbound,
    now: i64,
) -> Result<QueueId> {
    let recipients = serde_json::to_string(&outbound.recipients)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let dsn = serde_json::to_string(&DsnEnvelope {
        ret: outbound.ret.clone(),
        envid: outbound.envid.clone(),
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO queue (message_id, mail_from, recipients, dsn, next_attempt_at, created_at, dkim_domain) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(message.0)
    .bind(&outbound.mail_from)
    .bind(recipients)
    .bind(dsn)
    .bind(now)
    .bind(now)
    .bind(outbound.dkim_domain.as_deref())
    .fetch_one(&mut *conn)
    .await?;
    Ok(QueueId(id))
}

/// What one delivery attempt of a queue item settled, recorded in one writer job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueAttempt {
    /// Recipients that are done with: delivered, or failed for good (and bounced).
    pub finished: Vec<String>,
    /// When recipients remain: the next attempt and why this one failed.
    pub retry_at: Option<UnixTime>,
    pub error: Option<String>,
    /// A delay notice went to the sender during this attempt.
    pub delay_warned: bool,
}

/// What became of a queue item after [`Store::record_queue_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueItemState {
    /// Every recipient is done: the item (and, when nothing else holds it, the message) is gone.
    Finished,
    /// Recipients remain; the item waits until `next_attempt_at`.
    Waiting { next_attempt_at: UnixTime },
    /// The item was not there (dropped by the admin meanwhile), or its lease is no longer
    /// the recorder's (it ran out and another node took the item): nothing was changed.
    Missing,
}

const QUEUE_COLUMNS: &str =
    "q.id, q.message_id, q.mail_from, q.recipients, q.dsn, q.attempts, q.next_attempt_at,
                    q.last_error, q.created_at, m.size, q.delay_warned, q.dkim_domain";

fn item_from_row(row: &sqlx::any::AnyRow) -> Result<QueueItem> {
    let recipients: String = row.try_get("recipients")?;
    let dsn: String = row.try_get("dsn")?;
    let dsn: DsnEnvelope = serde_json::from_str(&dsn).unwrap_or_default();
    Ok(QueueItem {
        id: QueueId(row.try_get("id")?),
        message: MessageId(row.try_get("message_id")?),
        mail_from: row.try_get("mail_from")?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ret: dsn.ret,
        envid: dsn.envid,
        attempts: row.try_get("attempts")?,
        next_attempt_at: UnixTime(row.try_get("next_attempt_at")?),
        last_error: row.try_get("last_error")?,
        created_at: UnixTime(row.try_get("created_at")?),
        size: row.try_get("size")?,
        delay_warned: row.try_get::<i64, _>("delay_warned")? != 0,
        dkim_domain: row.try_get("dkim_domain")?,
    })
}

/// The size of the outbound queue ([`Store::queue_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub items: u64,
    /// `created_at` of the oldest item; `None` when the queue is empty.
    pub oldest_created_at: Option<UnixTime>,
}

impl Store {
    pub async fn queue_items(&self) -> Result<Vec<QueueItem>> {
        let sql = format!(
            "SELECT {QUEUE_COLUMNS} FROM queue q JOIN messages m ON m.id = q.message_id ORDER BY q.id"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        rows.iter().map(item_from_row).collect()
    }

    /// How many items wait in the queue, and when the oldest was queued (unix seconds),
    /// in one query: what the queue gauges show.
    pub async fn queue_stats(&self) -> Result<QueueStats> {
        let (items, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM queue")
                .fetch_one(&self.reader)
                .await?;
        Ok(QueueStats {
            items: items.max(0) as u64,
            oldest_created_at: oldest.map(UnixTime),
        })
    }

    /// One queue item, or `None` when there is no such item.
    pub async fn queue_item(&self, id: QueueId) -> Result<Option<QueueItem>> {
        let sql = format!(
            "SELECT {QUEUE_COLUMNS} FROM queue q JOIN messages m ON m.id = q.message_id WHERE q.id = $1"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// The earliest `next_attempt_at` of an item nobody holds, for the worker's sleep.
    pub async fn next_queue_due(&self) -> Result<Option<UnixTime>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until ELSE next_attempt_at END)
             FROM queue",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(due.map(UnixTime))
    }

    /// Takes up to `limit` items due at `now` and leases them to `holder` (a node's name)
    /// until `lease_until`, in one writer job: an item leased here is not handed out again
    /// before the lease runs out, so a second worker (another node) claiming at the same
    /// time gets others.
    pub async fn claim_queue_items(
        &self,
        now: UnixTime,
        lease_until: UnixTime,
        limit: usize,
        holder: &str,
    ) -> Result<Vec<QueueItem>> {
        let holder = holder.to_owned();
        self.writer
            .run(Scope::nothing(), move |conn| {
                Box::pin(async move {
                    // PostgreSQL: rows another node's claim has locked are passed over, not
                    // waited for; a row it claimed and committed meanwhile is checked again
                    // once locked (READ COMMITTED), and its lease keeps it out.
                    let lock = match Backend::of_connection(conn) {
                        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                        Backend::Sqlite => "",
                    };
                    let sql = format!(
                        "UPDATE queue SET lease_until = $1, lease_holder = $4
                         WHERE id IN (SELECT id FROM queue
                                      WHERE next_attempt_at <= $2
                                        AND (lease_until IS NULL OR lease_until <= $2)
                                      ORDER BY next_attempt_at, id LIMIT $3{lock})
                         RETURNING id"
                    );
                    let ids: Vec<i64> = sqlx::query_scalar(&sql)
                    .bind(lease_until.0)
                    .bind(now.0)
                    .bind(limit as i64)
                    .bind(&holder)
                    .fetch_all(&mut *conn)
                    .await?;
                    let mut items = Vec::with_capacity(ids.len());
                    let sql = format!(
                        "SELECT {QUEUE_COLUMNS} FROM queue q JOIN messages m ON m.id = q.message_id WHERE q.id = $1"
                    );
                    for id in ids {
                        let row = sqlx::query(&sql).bind(id).fetch_one(&mut *conn).await?;
                        items.push(item_from_row(&row)?);
                    }
                    items.sort_by_key(|item| (item.next_attempt_at, item.id));
                    Ok(JobOutput::new(items, Vec::new()))
                })
            })
            .await
    }

    /// Extends `holder`'s lease of an item being worked on to `until`; false when the
    /// item is gone or `holder` no longer holds it (its attempt was recorded meanwhile, or
    /// the lease ran out and another node took it: not ours to extend).
    pub async fn renew_queue_lease(
        &self,
        id: QueueId,
        until: UnixTime,
        holder: &str,
    ) -> Result<bool> {
        let holder = holder.to_owned();
        self.writer
            .run(Scope::nothing(), move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE queue SET lease_until = $1
                         WHERE id = $2 AND lease_until IS NOT NULL AND lease_holder = $3",
                    )
                    .bind(until.0)
                    .bind(id.0)
                    .bind(&holder)
                    .execute(&mut *conn)
                    .await?;
                    Ok(JobOutput::new(done.rows_affected() > 0, Vec::new()))
                })
            })
            .await
    }

    /// Clears the leases `holder` holds, or every lease when `holder` is `None`. At a
    /// node's start-up none of its attempts is in flight, so a lease it left when it was
    /// killed must not hold its items back until it runs out. One node alone (SQLite)
    /// clears them all.
    pub async fn release_queue_leases(&self, holder: Option<&str>) -> Result<u64> {
        let holder = holder.map(str::to_owned);
        self.writer
            .run(Scope::nothing(), move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE queue SET lease_until = NULL, lease_holder = NULL
                         WHERE lease_until IS NOT NULL AND ($1 IS NULL OR lease_holder = $1)",
                    )
                    .bind(holder)
                    .execute(&mut *conn)
                    .await?;
                    Ok(JobOutput::new(done.rows_affected(), Vec::new()))
                })
            })
            .await
    }

    /// Records one attempt, in one writer job: removes the finished recipients, and then
    /// either deletes the item (none left) or reschedules it with attempts + 1, the error
    /// and the lease released.
    pub async fn record_queue_attempt(
        &self,
        id: QueueId,
        attempt: QueueAttempt,
        holder: &str,
    ) -> Result<QueueItemState> {
        let holder = holder.to_owned();
        self.writer
            .run(Scope::nothing(), move |conn| {
                Box::pin(async move {
                    let state = record_attempt_in_tx(conn, id, &attempt, &holder).await?;
                    Ok(JobOutput::new(state, Vec::new()))
                })
            })
            .await
    }

    /// Removes an item whatever its state; false when there was none.
    pub async fn delete_queue_item(&self, id: QueueId) -> Result<bool> {
        self.writer
            .run(Scope::nothing(), move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM queue WHERE id = $1")
                        .bind(id.0)
                        .execute(&mut *conn)
                        .await?;
                    Ok(JobOutput::new(done.rows_affected() > 0, Vec::new()))
                })
            })
            .await
    }

    /// Makes an item due at `now` (the admin's `queue retry`); false when there was none.
    /// A lease in force is left alone: that attempt is running and will reschedule.
    pub async fn retry_queue_item(&self, id: QueueId, now: UnixTime) -> Result<bool> {
        self.writer
            .run(Scope::nothing(), move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE queue SET next_attempt_at = $1 WHERE id = $2")
                        .bind(now.0)
                        .bind(id.0)
                        .execute(&mut *conn)
                        .await?;
                    Ok(JobOutput::new(done.rows_affected() > 0, Vec::new()))
                })
            })
            .await
    }
}

async fn record_attempt_in_tx(
    conn: &mut AnyConnection,
    id: QueueId,
    attempt: &QueueAttempt,
    holder: &str,
) -> Result<QueueItemState> {
    // Only the lease's holder records: an attempt that outlived its lease (its node lost
    // the database for longer than the lease) must not undo the claim of the node that
    // took the item over.
    let Some(recipients) = sqlx::query_scalar::<_, String>(
        "SELECT recipients FROM queue WHERE id = $1 AND lease_holder = $2",
    )
    .bind(id.0)
    .bind(holder)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(QueueItemState::Missing);
    };
    let mut recipients: Vec<QueuedRecipient> =
        serde_json::from_str(&recipients).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    recipients.retain(|r| !attempt.finished.contains(&r.address));
    // The writes check the holder again: on PostgreSQL another node may have taken the
    // item over between the read above and now (no lock orders queue writes).
    if recipients.is_empty() {
        let deleted = sqlx::query("DELETE FROM queue WHERE id = $1 AND lease_holder = $2")
            .bind(id.0)
            .bind(holder)
            .execute(&mut *conn)
            .await?;
        return Ok(if deleted.rows_affected() == 0 {
            QueueItemState::Missing
        } else {
            QueueItemState::Finished
        });
    }
    let Some(next_attempt_at) = attempt.retry_at else {
        return Err(StoreError::invalid(
            "queue attempt",
            "recipients remain but no retry time was given",
        ));
    };
    let recipients =
        serde_json::to_string(&recipients).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let updated = sqlx::query(
        "UPDATE queue SET recipients = $1, attempts = attempts + 1, next_attempt_at = $2,
                          last_error = $3, lease_until = NULL, lease_holder = NULL,
                          delay_warned = CASE WHEN delay_warned > $4 THEN delay_warned ELSE $4 END
         WHERE id = $5 AND lease_holder = $6",
    )
    .bind(recipients)
    .bind(next_attempt_at.0)
    .bind(&attempt.error)
    .bind(i64::from(attempt.delay_warned))
    .bind(id.0)
    .bind(holder)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(QueueItemState::Missing);
    }
    Ok(QueueItemState::Waiting { next_attempt_at })
}
