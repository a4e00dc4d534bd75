//! Delivery: a message stored once and placed in mailboxes and/or the outbound queue
//! (SMTP delivery, APPEND, import), all or nothing. What IMAP needs of it is computed
//! before the writer runs (`prepared.rs`, house rule 11); the writer job stores it
//! (`in_tx.rs`), on PostgreSQL in one statement when it can (`postgres.rs`), which the
//! writer may share with the deliveries next to it in its batch (`writer.rs`), on SQLite
//! in one round trip to the connection's thread when it can (`sqlite.rs`).

mod in_tx;
mod postgres;
mod prepared;
mod sqlite;

pub(crate) use prepared::PreparedDelivery;
pub use prepared::{Delivered, Delivery, crlf_line_ends};

use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::{Backend, Store};
use in_tx::deliver_in_tx;
pub(crate) use postgres::{DELIVERIES_PER_STATEMENT, deliver_in_one_statement, deliver_many};
use std::sync::Arc;

impl Store {
    /// Stores a message once and places it in every given mailbox and/or the outbound
    /// queue, atomically. Returns after the commit is durable (fsynced).
    pub async fn deliver(&self, delivery: Delivery) -> Result<Delivered> {
        let started = std::time::Instant::now();
        let prepared = PreparedDelivery::new(delivery).await?;
        let delivered = self
            .deliver_prepared(vec![prepared])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a delivery placed nothing".into()))?;
        metrics::histogram!(crate::DELIVER_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(crate::MESSAGES_DELIVERED).increment(delivered.placed.len() as u64);
        Ok(delivered)
    }

    /// Several deliveries in one transaction: all are stored or none (RFC 3502
    /// MULTIAPPEND). Returns after the commit is durable.
    pub async fn deliver_all(&self, deliveries: Vec<Delivery>) -> Result<Vec<Delivered>> {
        let started = std::time::Instant::now();
        let mut prepared = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            prepared.push(PreparedDelivery::new(delivery).await?);
        }
        let delivered = self.deliver_prepared(prepared).await?;
        metrics::histogram!(crate::DELIVER_SECONDS).record(started.elapsed().as_secs_f64());
        let placed: usize = delivered.iter().map(|d| d.placed.len()).sum();
        metrics::counter!(crate::MESSAGES_DELIVERED).increment(placed as u64);
        Ok(delivered)
    }

    /// Stores prepared deliveries in one transaction (all or none), then caches them.
    pub(crate) async fn deliver_prepared(
        &self,
        prepared: Vec<PreparedDelivery>,
    ) -> Result<Vec<Delivered>> {
        let prepared = Arc::new(prepared);
        let in_writer = Arc::clone(&prepared);
        // A delivery to several accounts locks them all (in order) before writing.
        let scope = Scope::mailboxes(
            prepared
                .iter()
                .flat_map(|one| one.delivery.mailboxes.iter().copied()),
        );
        let delivered: Vec<Delivered> = if let [one] = prepared.as_slice()
            && self.backend == Backend::Postgres
            && one.fits_one_statement()
        {
            // The writer may store it in one statement with others (`deliver_many`).
            vec![self.writer.deliver(scope, in_writer).await?]
        } else {
            self.deliver_with_savepoint(scope, in_writer).await?
        };
        // Committed: the first FETCH of a new message needs no query.
        for (one, stored) in prepared.iter().zip(&delivered) {
            self.cache.insert(stored.message, one.cached.clone());
        }
        // Only what is placed in a mailbox is searched, and queued for the indexer.
        let placed = prepared
            .iter()
            .filter(|one| !one.delivery.mailboxes.is_empty());
        self.indexer.queued(placed.count() as u64);
        Ok(delivered)
    }

    /// The deliveries, one after the other in one writer job.
    async fn deliver_with_savepoint(
        &self,
        scope: Scope,
        in_writer: Arc<Vec<PreparedDelivery>>,
    ) -> Result<Vec<Delivered>> {
        self.writer
            .run(scope, move |conn| {
                Box::pin(async move {
                    let mut delivered = Vec::with_capacity(in_writer.len());
                    let mut changes = Vec::new();
                    for one in in_writer.iter() {
                        let (placed, more) = deliver_in_tx(conn, one).await?;
                        delivered.push(placed);
                        changes.extend(more);
                    }
                    Ok(JobOutput::new(delivered, changes))
                })
            })
            .await
    }
}
