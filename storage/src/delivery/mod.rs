//! Delivery: a message stored once and placed in mailboxes and/or the outbound queue
//! (SMTP delivery, APPEND, import), all or nothing. What IMAP needs of it is computed
//! before the writer runs (`prepared.rs`, house rule 11); the writer job stores it
//! (`in_tx.rs`), on PostgreSQL in one statement when it can (`postgres.rs`), on SQLite in
//! one round trip to the connection's thread when it can (`sqlite.rs`); either is shared
//! with the deliveries next to it in the writer's batch (`writer.rs`).

mod in_tx;
mod postgres;
mod prepared;
mod sqlite;

pub(crate) use prepared::PreparedDelivery;
pub use prepared::{Delivered, Delivery, crlf_line_ends};

use crate::error::{Result, StoreError};
use crate::job::JobOutput;
use crate::locks::Scope;
use crate::notify::Change;
use crate::{Backend, Store};
use in_tx::deliver_in_tx;
use postgres::{DELIVERIES_PER_STATEMENT, deliver_many};
use sqlite::{deliver_many_in_one_round_trip, deliveries_per_round_trip};
use sqlx::AnyConnection;
use std::sync::Arc;

impl PreparedDelivery {
    /// True when the writer may store it with its neighbours in one round trip
    /// ([`deliver_together`]).
    pub(crate) fn fits_together(&self, backend: Backend) -> bool {
        match backend {
            Backend::Postgres => self.fits_one_statement(),
            Backend::Sqlite => self.fits_one_round_trip(),
        }
    }
}

/// One delivery that [`PreparedDelivery::fits_together`], in one round trip.
pub(crate) async fn deliver_alone(
    conn: &mut AnyConnection,
    prepared: &PreparedDelivery,
) -> Result<(Delivered, Vec<Change>)> {
    deliver_together(conn, &[prepared])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("a delivery placed nothing".into()))?
}

/// How many of `waiting` neighbouring deliveries that fit together go in the next round
/// trip ([`deliver_together`]).
pub(crate) fn deliveries_together(backend: Backend, waiting: usize) -> usize {
    match backend {
        Backend::Postgres => waiting.min(DELIVERIES_PER_STATEMENT),
        Backend::Sqlite => deliveries_per_round_trip(waiting),
    }
}

/// Deliveries that fit together ([`deliveries_together`] of them), in one round trip, in
/// their order: one outcome each. PostgreSQL: a refused delivery undoes itself
/// (`letterbox_deliver`). SQLite: a refused one leaves its statements behind, for the
/// caller to roll back. An `Err` of the whole is a database error.
pub(crate) async fn deliver_together(
    conn: &mut AnyConnection,
    deliveries: &[&PreparedDelivery],
) -> Result<Vec<Result<(Delivered, Vec<Change>)>>> {
    match Backend::of_connection(conn) {
        Backend::Postgres => deliver_many(conn, deliveries).await,
        Backend::Sqlite => deliver_many_in_one_round_trip(conn, deliveries).await,
    }
}

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
            && one.fits_together(self.backend)
        {
            // The writer may store it in one round trip with others (`deliver_together`).
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
