//! Reads of what stored messages hold, for FETCH and SEARCH: the meta computed at
//! delivery (through the message cache), header bytes, body text, raw bytes.

use crate::Store;
use crate::cache::CachedMessage;
use crate::error::{Result, StoreError};
use crate::mime::analyse_off_workers;
use crate::mime::{MessageMeta, analyse};
use crate::types::MessageId;
use crate::{IN_LIST_CHUNK, placeholders};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;
use std::sync::Arc;

impl Store {
    /// The meta computed at delivery for each message: from the cache, else in one query
    /// per chunk. A message that is gone is left out unless it is still cached.
    pub async fn message_meta(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, Arc<MessageMeta>>> {
        self.cached_parts(messages, |cached| cached.meta).await
    }

    /// The top-level header section of each message exactly as stored (the raw bytes
    /// before the body, with the blank line that ends the header when there is one), for
    /// FETCH of header sections without the whole message. A message that is gone is left
    /// out unless it is still cached.
    pub async fn message_headers(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, Arc<[u8]>>> {
        self.cached_parts(messages, |cached| cached.header).await
    }

    /// The rows of `messages` with the ids in `chunk` (at most [`IN_LIST_CHUNK`]): `id`,
    /// then `columns`.
    async fn message_rows(&self, columns: &str, chunk: &[MessageId]) -> Result<Vec<AnyRow>> {
        let select = format!("SELECT id, {columns} FROM messages WHERE id");
        self.rows_of_messages(&select, chunk).await
    }

    /// The rows of `select`, a query ending in `WHERE <a message id column>`, for the ids
    /// in `chunk` (at most [`IN_LIST_CHUNK`]): it is run with ` IN (...)` of them.
    pub(crate) async fn rows_of_messages(
        &self,
        select: &str,
        chunk: &[MessageId],
    ) -> Result<Vec<AnyRow>> {
        let sql = format!("{select} IN ({})", placeholders(1, chunk.len()));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.0);
        }
        Ok(query.fetch_all(&self.reader).await?)
    }

    /// `part` of each message's cached entry (see [`Self::cached_messages`]).
    async fn cached_parts<T>(
        &self,
        messages: &[MessageId],
        part: impl Fn(CachedMessage) -> T,
    ) -> Result<HashMap<MessageId, T>> {
        Ok(self
            .cached_messages(messages)
            .await?
            .into_iter()
            .map(|(id, cached)| (id, part(cached)))
            .collect())
    }

    async fn cached_messages(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, CachedMessage>> {
        let mut missing = Vec::new();
        let mut found = self.cache.lookup(messages, &mut missing);
        for chunk in missing.chunks(IN_LIST_CHUNK) {
            for row in self.message_rows("meta, header", chunk).await? {
                let id = MessageId(row.try_get(0)?);
                let json: &str = row.try_get(1)?;
                let header: &[u8] = row.try_get(2)?;
                let meta = match serde_json::from_str::<MessageMeta>(json) {
                    Ok(meta) => meta,
                    // One stored row that does not decode (written by an older version,
                    // or damaged) affects only its own message: analysed again from its
                    // raw bytes, never failing the batch it was read in.
                    Err(error) => {
                        tracing::warn!(message_id = %id, %error, "stored meta unreadable; analysing the message again");
                        self.reanalysed_meta(id).await?
                    }
                };
                let cached = CachedMessage {
                    meta: Arc::new(meta),
                    header: Arc::from(header),
                };
                self.cache.insert(id, cached.clone());
                found.insert(id, cached);
            }
        }
        Ok(found)
    }

    /// The meta of a stored message computed anew from its raw bytes.
    async fn reanalysed_meta(&self, message: MessageId) -> Result<MessageMeta> {
        let raw = self.raw_message(message).await?;
        Ok(analyse_off_workers(raw).await?.meta)
    }

    /// RFC 8970 PREVIEW of messages whose meta was stored before previews were computed
    /// at delivery: from their raw bytes, analysed again on the blocking pool (one query
    /// per chunk). Not stored back: such messages only get fewer.
    pub async fn previews_from_raw(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, String>> {
        let raws = self.raw_messages(messages).await?;
        tokio::task::spawn_blocking(move || {
            raws.into_iter()
                .map(|(id, raw)| (id, analyse(&raw).meta.preview.unwrap_or_default()))
                .collect()
        })
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The decoded text of a message's text parts, for SEARCH BODY/TEXT.
    pub async fn message_text(&self, message: MessageId) -> Result<String> {
        self.column_of(message, "body_text").await
    }

    /// The decoded texts of many messages, in one query per chunk.
    pub async fn message_texts(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, String>> {
        self.column_by_id(messages, "body_text").await
    }

    /// The message exactly as received.
    pub async fn raw_message(&self, message: MessageId) -> Result<Vec<u8>> {
        self.column_of(message, "raw").await
    }

    /// Many messages exactly as received, in one query per chunk.
    pub async fn raw_messages(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, Vec<u8>>> {
        self.column_by_id(messages, "raw").await
    }

    async fn column_of<T>(&self, message: MessageId, column: &'static str) -> Result<T>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
    {
        let sql = format!("SELECT {column} FROM messages WHERE id = $1");
        sqlx::query_scalar(&sql)
            .bind(message.0)
            .fetch_optional(&self.reader)
            .await?
            .ok_or_else(|| StoreError::not_found("message", message))
    }

    async fn column_by_id<T>(
        &self,
        messages: &[MessageId],
        column: &'static str,
    ) -> Result<HashMap<MessageId, T>>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
    {
        let mut found = HashMap::with_capacity(messages.len());
        for chunk in messages.chunks(IN_LIST_CHUNK) {
            for row in self.message_rows(column, chunk).await? {
                found.insert(MessageId(row.try_get(0)?), row.try_get(1)?);
            }
        }
        Ok(found)
    }

    /// How many message rows hold raw bytes (a message in several mailboxes counts once).
    pub async fn stored_message_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&self.reader)
            .await?)
    }
}
