//! The outbound queue as stored: messages with remote recipients wait here, durably,
//! until the outbound sender delivers them.

use crate::Store;
use crate::error::{Result, StoreError};
use crate::messages::Outbound;
use crate::types::{MessageId, QueueId};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

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
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub size: i64,
}

pub(crate) async fn insert_queue_item(
    conn: &mut SqliteConnection,
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
        "INSERT INTO queue (message_id, mail_from, recipients, dsn, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(message.0)
    .bind(&outbound.mail_from)
    .bind(recipients)
    .bind(dsn)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(QueueId(id))
}

impl Store {
    pub async fn queue_items(&self) -> Result<Vec<QueueItem>> {
        let rows = sqlx::query(
            "SELECT q.id, q.message_id, q.mail_from, q.recipients, q.dsn, q.attempts, q.next_attempt_at,
                    q.last_error, q.created_at, m.size
             FROM queue q JOIN messages m ON m.id = q.message_id ORDER BY q.id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
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
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    last_error: row.try_get("last_error")?,
                    created_at: row.try_get("created_at")?,
                    size: row.try_get("size")?,
                })
            })
            .collect()
    }
}
