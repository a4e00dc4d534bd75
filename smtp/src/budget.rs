//! One byte budget for all message content the SMTP sessions of a process hold in memory
//! (DATA and BDAT alike), so that unfinished transfers cannot grow memory without bound:
//! without it, 4 unfinished 45 MB DATA transfers on port 25 added 171 MB of RSS, and the
//! per-address connection limit still allows 50 of them per client.
//!
//! Why a budget rather than spooling content past a threshold to a file: storage takes a
//! message whole (`storage::Delivery::raw` is a `Vec<u8>` that MIME analysis walks), so
//! a spooled message would be read back into memory at delivery anyway, and N
//! concurrent deliveries would still add up without a bound. A budget bounds the
//! content held from the first byte received to the end of its delivery, with one
//! counter and no files to clean up after a crash.
//!
//! Bytes are reserved as they arrive, before they are kept. A session that cannot get
//! them waits up to [`BUDGET_WAIT`] (the bytes of deliveries in flight come back within
//! that), then gives up its whole reservation, reads the rest of the content to keep the
//! stream's framing without keeping it, and answers `452 4.3.1` (RFC 3463 §3.4: mail
//! system full). The budget counts octets kept; `crate::proto::BodyBuffer` keeps them in
//! pieces so that the memory they take follows them (one more piece at the most, and a
//! copy of the whole content while it is delivered).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Gauge: bytes of message content held by SMTP sessions now.
pub const SMTP_DATA_IN_FLIGHT: &str = "letterbox_smtp_data_in_flight_bytes";

/// Default for [`DataBudget`]: above the default message size limit (50 MiB), so one
/// message of the largest size is always accepted, and small enough that a burst of
/// unfinished transfers costs a small server tens of megabytes, not hundreds.
pub const DEFAULT_DATA_BUDGET: usize = 64 * 1024 * 1024;

/// How long a session waits for budget before it answers `452 4.3.1`: long enough for
/// deliveries in flight to commit and give their bytes back (well under a second for a
/// large message), short enough that the sender hears from us long before its own
/// 10-minute wait for the reply to DATA (RFC 5321 §4.5.3.2.6) runs out.
pub const BUDGET_WAIT: Duration = Duration::from_secs(10);

/// The shared budget; clones share it.
#[derive(Clone, Debug)]
pub struct DataBudget {
    semaphore: Arc<Semaphore>,
    total: usize,
}

/// No budget came within [`BUDGET_WAIT`], or more was asked than the budget holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfBudget;

impl DataBudget {
    /// A budget of `bytes` (at most what a tokio semaphore can count).
    pub fn new(bytes: usize) -> DataBudget {
        metrics::gauge!(SMTP_DATA_IN_FLIGHT).increment(0.0);
        let total = bytes.min(Semaphore::MAX_PERMITS);
        DataBudget {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes reserved by all sessions now.
    pub fn in_use(&self) -> usize {
        self.total
            .saturating_sub(self.semaphore.available_permits())
    }

    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            held: 0,
        }
    }
}

impl Default for DataBudget {
    fn default() -> DataBudget {
        DataBudget::new(DEFAULT_DATA_BUDGET)
    }
}

/// What one session holds of the budget: the bytes of the content it is receiving or
/// delivering. Given back on [`Reservation::release`] or when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: DataBudget,
    permit: Option<OwnedSemaphorePermit>,
    held: usize,
}

impl Reservation {
    /// Reserves `bytes` more, waiting up to `wait`.
    pub(crate) async fn grow(&mut self, bytes: usize, wait: Duration) -> Result<(), OutOfBudget> {
        if bytes == 0 {
            return Ok(());
        }
        // More than the whole budget would wait forever; tokio counts a request in u32.
        let wanted = self.held.saturating_add(bytes);
        let count = u32::try_from(bytes).map_err(|_| OutOfBudget)?;
        if wanted > self.budget.total {
            return Err(OutOfBudget);
        }
        let acquire = self.budget.semaphore.clone().acquire_many_owned(count);
        let permit = match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => permit,
            // Timed out, or the semaphore was closed (we never close it).
            Ok(Err(_)) | Err(_) => return Err(OutOfBudget),
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.held = wanted;
        metrics::gauge!(SMTP_DATA_IN_FLIGHT).increment(bytes as f64);
        Ok(())
    }

    /// Gives back everything held.
    pub(crate) fn release(&mut self) {
        if self.held > 0 {
            metrics::gauge!(SMTP_DATA_IN_FLIGHT).decrement(self.held as f64);
        }
        self.permit = None;
        self.held = 0;
    }

    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn reservations_share_the_budget_and_give_it_back() {
        let budget = DataBudget::new(100);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        assert_eq!(a.grow(60, WAIT).await, Ok(()));
        assert_eq!(a.grow(20, WAIT).await, Ok(()));
        assert_eq!((a.held(), budget.in_use()), (80, 80));
        assert_eq!(b.grow(20, WAIT).await, Ok(()));
        assert_eq!(budget.in_use(), 100);
        a.release();
        assert_eq!((a.held(), budget.in_use()), (0, 20));
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_budget_refuses_after_the_wait() {
        let budget = DataBudget::new(100);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        assert_eq!(a.grow(90, WAIT).await, Ok(()));
        // The clock is paused: the timeout fires as soon as nothing else can run.
        assert_eq!(b.grow(20, WAIT).await, Err(OutOfBudget));
        assert_eq!((b.held(), budget.in_use()), (0, 90));
        // More than the whole budget is refused at once.
        assert_eq!(b.grow(101, WAIT).await, Err(OutOfBudget));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_session_gets_what_another_gives_back() {
        let budget = DataBudget::new(100);
        let mut a = budget.reservation();
        assert_eq!(a.grow(100, WAIT).await, Ok(()));
        let mut b = budget.reservation();
        let waiting = tokio::spawn(async move {
            let result = b.grow(50, WAIT).await;
            (result, b)
        });
        tokio::time::sleep(WAIT / 2).await;
        a.release();
        let (result, b) = waiting.await.expect("task");
        assert_eq!(result, Ok(()));
        assert_eq!((b.held(), budget.in_use()), (50, 50));
    }
}
