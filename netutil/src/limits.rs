//! Connection limits and failed-login throttling per client IP.
//!
//! Both also keep the metrics that belong to them: open and accepted connections per
//! listener (`letterbox_connections_*`), failed logins per protocol
//! (`letterbox_auth_failures_total`). Each listener or protocol gets a labelled handle on
//! the one shared state ([`ConnectionLimiter::for_listener`], [`AuthThrottle::for_protocol`]),
//! so the limits stay server-wide while the counts are told apart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Gauge: connections open now, label `listener`.
pub const CONNECTIONS_OPEN: &str = "letterbox_connections_open";
/// Counter: connections accepted, label `listener`.
pub const CONNECTIONS_TOTAL: &str = "letterbox_connections_total";
/// Counter: connections refused at the limit, label `listener`.
pub const CONNECTIONS_REFUSED: &str = "letterbox_connections_refused_total";
/// Counter: failed logins, label `protocol`.
pub const AUTH_FAILURES: &str = "letterbox_auth_failures_total";

/// The label of a handle that was not given one.
const UNLABELLED: &str = "other";

/// Limits open connections in total and per client address.
#[derive(Clone)]
pub struct ConnectionLimiter {
    inner: Arc<LimiterInner>,
    /// The `listener` label of this handle's metrics.
    listener: &'static str,
}

struct LimiterInner {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Held for the life of a connection; frees its slot when dropped.
pub struct ConnectionPermit {
    inner: Arc<LimiterInner>,
    ip: IpAddr,
    listener: &'static str,
}

impl ConnectionLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimiter {
            inner: Arc::new(LimiterInner {
                max_total,
                max_per_ip,
                open: Mutex::new((0, HashMap::new())),
            }),
            listener: UNLABELLED,
        }
    }

    /// The same limits (shared with `self`), counting this handle's connections in the
    /// metrics under `listener`.
    pub fn for_listener(&self, listener: &'static str) -> Self {
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => listener).increment(0.0);
        metrics::counter!(CONNECTIONS_TOTAL, "listener" => listener).increment(0);
        ConnectionLimiter {
            inner: self.inner.clone(),
            listener,
        }
    }

    /// A permit, or `None` when the server or this address is at its limit.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<ConnectionPermit> {
        // Invariant: no code panics while holding this lock, so it is never poisoned;
        // recover the data anyway rather than propagate a panic.
        let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        let per_ip = open.1.get(&ip).copied().unwrap_or(0);
        if open.0 >= self.inner.max_total || per_ip >= self.inner.max_per_ip {
            metrics::counter!(CONNECTIONS_REFUSED, "listener" => self.listener).increment(1);
            return None;
        }
        open.0 += 1;
        open.1.insert(ip, per_ip + 1);
        metrics::counter!(CONNECTIONS_TOTAL, "listener" => self.listener).increment(1);
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => self.listener).increment(1.0);
        Some(ConnectionPermit {
            inner: self.inner.clone(),
            ip,
            listener: self.listener,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => self.listener).decrement(1.0);
        let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(count) = open.1.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// Slows and then refuses logins from an address after failed attempts: each failure
/// within the window adds `step` of delay before the next answer; at `max_failures`
/// the address is refused until the window has passed.
#[derive(Clone)]
pub struct AuthThrottle {
    inner: Arc<ThrottleInner>,
    /// The `protocol` label of this handle's failure count.
    protocol: &'static str,
}

struct ThrottleInner {
    max_failures: u32,
    window: Duration,
    step: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthThrottle {
    pub fn new(max_failures: u32, window: Duration, step: Duration) -> Self {
        AuthThrottle {
            inner: Arc::new(ThrottleInner {
                max_failures,
                window,
                step,
                failures: Mutex::new(HashMap::new()),
            }),
            protocol: UNLABELLED,
        }
    }

    /// The same throttle (failures from an address count across protocols), counting
    /// this handle's failures in the metrics under `protocol`.
    pub fn for_protocol(&self, protocol: &'static str) -> Self {
        metrics::counter!(AUTH_FAILURES, "protocol" => protocol).increment(0);
        AuthThrottle {
            inner: self.inner.clone(),
            protocol,
        }
    }

    fn current(&self, ip: IpAddr) -> u32 {
        let mut failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match failures.get(&ip) {
            Some(&(count, since)) if since.elapsed() < self.inner.window => count,
            Some(_) => {
                failures.remove(&ip);
                0
            }
            None => 0,
        }
    }

    /// True when this address has failed too often and must be refused outright.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.current(ip) >= self.inner.max_failures
    }

    /// How long to wait before answering a failed attempt from this address.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        self.inner.step * self.current(ip)
    }

    pub fn record_failure(&self, ip: IpAddr) {
        metrics::counter!(AUTH_FAILURES, "protocol" => self.protocol).increment(1);
        let mut failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Keep the map bounded under a spray of addresses: forget expired entries.
        if failures.len() > 100_000 {
            let window = self.inner.window;
            failures.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.inner.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    pub fn record_success(&self, ip: IpAddr) {
        let mut failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        failures.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_limit_frees_on_drop() {
        let limiter = ConnectionLimiter::new(10, 2);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let a = limiter.try_acquire(ip);
        let b = limiter.try_acquire(ip);
        assert!(a.is_some() && b.is_some());
        assert!(limiter.try_acquire(ip).is_none());
        drop(a);
        assert!(limiter.try_acquire(ip).is_some());
    }

    #[test]
    fn throttle_blocks_after_max_failures() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60), Duration::from_millis(10));
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(!throttle.is_blocked(ip));
            throttle.record_failure(ip);
        }
        assert!(throttle.is_blocked(ip));
        assert_eq!(throttle.delay(ip), Duration::from_millis(30));
        throttle.record_success(ip);
        assert!(!throttle.is_blocked(ip));
    }
}
