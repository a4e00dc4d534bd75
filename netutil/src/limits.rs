//! Connection limits and failed-login throttling per client address.
//!
//! Both count a client by its [`ClientKey`]: an IPv4 address (an IPv4-mapped IPv6
//! address counts as its IPv4 address), or the /64 an IPv6 address is in, since one
//! subscriber or host is commonly given a whole /64 (RFC 6177 §2, RFC 7934 §6) and could
//! otherwise take a fresh address for every connection or login attempt.
//!
//! Both also keep the metrics that belong to them: open and accepted connections per
//! listener (`letterbox_connections_*`), failed logins per protocol
//! (`letterbox_auth_failures_total`). Each listener or protocol gets a labelled handle on
//! the one shared state ([`ConnectionLimiter::for_listener`], [`AuthThrottle::for_protocol`]),
//! so the limits stay server-wide while the counts are told apart.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
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

/// Bits of an IPv6 address that name one client: the /64 a subscriber or host is given.
const IPV6_CLIENT_PREFIX: u32 = 64;

/// Who a connection or a failed login is counted against: the one canonical form of a
/// peer address for every per-address limit, IMAP's and SMTP's alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6Net(u64),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => {
                let net = u128::from(v6) >> (128 - IPV6_CLIENT_PREFIX);
                // Invariant: 128 - 64 bits were shifted out, so the rest fits in 64.
                ClientKey::V6Net(u64::try_from(net).unwrap_or(u64::MAX))
            }
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(v4) => write!(f, "{v4}"),
            ClientKey::V6Net(net) => {
                let network = Ipv6Addr::from(u128::from(*net) << (128 - IPV6_CLIENT_PREFIX));
                write!(f, "{network}/{IPV6_CLIENT_PREFIX}")
            }
        }
    }
}

/// Limits open connections in total and per client address.
///
/// Per-address counts are kept per pool: handles made with
/// [`ConnectionLimiter::with_own_pool`] count an address's connections apart from the
/// others, so that (say) an address holding all its IMAP slots can still reach port 25.
/// The total is shared by every pool, less the slots a pool reserves for itself.
#[derive(Clone)]
pub struct ConnectionLimiter {
    inner: Arc<LimiterInner>,
    /// Which per-address counts this handle uses.
    pool: u32,
    /// The `listener` label of this handle's metrics.
    listener: &'static str,
}

struct LimiterInner {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<OpenConnections>,
    /// The last pool number given out.
    pools: AtomicU32,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_address: HashMap<(u32, ClientKey), usize>,
    /// Pools with reserved slots: (open, reserved) of each.
    reserving: HashMap<u32, (usize, usize)>,
}

impl OpenConnections {
    /// Slots of the total that `pool` may not take: what other pools reserved and do
    /// not use.
    fn held_back_from(&self, pool: u32) -> usize {
        self.reserving
            .iter()
            .filter(|(other, _)| **other != pool)
            .map(|(_, (open, reserved))| reserved.saturating_sub(*open))
            .sum()
    }
}

/// Held for the life of a connection; frees its slot when dropped.
pub struct ConnectionPermit {
    inner: Arc<LimiterInner>,
    slot: (u32, ClientKey),
    listener: &'static str,
}

impl ConnectionLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimiter {
            inner: Arc::new(LimiterInner {
                max_total,
                max_per_ip,
                open: Mutex::new(OpenConnections::default()),
                pools: AtomicU32::new(0),
            }),
            pool: 0,
            listener: UNLABELLED,
        }
    }

    /// The same limits (shared with `self`), counting this handle's connections in the
    /// metrics under `listener`.
    pub fn for_listener(&self, listener: &'static str) -> Self {
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => listener).increment(0.0);
        metrics::counter!(CONNECTIONS_TOTAL, "listener" => listener).increment(0);
        ConnectionLimiter {
            listener,
            ..self.clone()
        }
    }

    /// The same total and per-address maximum, but a pool of its own: its per-address
    /// counts are apart from every other pool's (the connections of this handle and its
    /// [`ConnectionLimiter::for_listener`] handles and those of other pools do not take
    /// each other's slots), and `reserved` slots of the total are its alone.
    pub fn with_own_pool(&self, reserved: usize) -> Self {
        let pool = self
            .inner
            .pools
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        if reserved > 0 {
            let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
            open.reserving.insert(pool, (0, reserved));
        }
        ConnectionLimiter {
            pool,
            ..self.clone()
        }
    }

    /// A permit, or `None` when the server or this address (by its [`ClientKey`]) is at
    /// its limit.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<ConnectionPermit> {
        let slot = (self.pool, ClientKey::of(ip));
        // Invariant: no code panics while holding this lock, so it is never poisoned;
        // recover the data anyway rather than propagate a panic.
        let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        let per_address = open.per_address.get(&slot).copied().unwrap_or(0);
        let usable = self
            .inner
            .max_total
            .saturating_sub(open.held_back_from(self.pool));
        if open.total >= usable || per_address >= self.inner.max_per_ip {
            metrics::counter!(CONNECTIONS_REFUSED, "listener" => self.listener).increment(1);
            return None;
        }
        open.total += 1;
        open.per_address.insert(slot, per_address + 1);
        if let Some((pool_open, _)) = open.reserving.get_mut(&self.pool) {
            *pool_open += 1;
        }
        metrics::counter!(CONNECTIONS_TOTAL, "listener" => self.listener).increment(1);
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => self.listener).increment(1.0);
        Some(ConnectionPermit {
            inner: self.inner.clone(),
            slot,
            listener: self.listener,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN, "listener" => self.listener).decrement(1.0);
        let mut open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some((pool_open, _)) = open.reserving.get_mut(&self.slot.0) {
            *pool_open = pool_open.saturating_sub(1);
        }
        if let Some(count) = open.per_address.get_mut(&self.slot) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_address.remove(&self.slot);
            }
        }
    }
}

/// Slows and then refuses logins from an address (by its [`ClientKey`]) after failed
/// attempts: each failure within the window adds `step` of delay before the next
/// answer; at `max_failures` the address is refused until the window has passed.
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
    failures: Mutex<HashMap<ClientKey, (u32, Instant)>>,
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
        let key = ClientKey::of(ip);
        let mut failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match failures.get(&key) {
            Some(&(count, since)) if since.elapsed() < self.inner.window => count,
            Some(_) => {
                failures.remove(&key);
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
        let entry = failures
            .entry(ClientKey::of(ip))
            .or_insert((0, Instant::now()));
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
        failures.remove(&ClientKey::of(ip));
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

    fn key(ip: &str) -> ClientKey {
        ClientKey::of(ip.parse().expect("address"))
    }

    #[test]
    fn client_key_groups_ipv6_by_64_and_unmaps_ipv4() {
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        // Not mapped: an IPv6 address whose low bits look like an IPv4 address.
        assert_ne!(key("64:ff9b::192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8:1:2:3:4:5:6").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("::ffff:10.0.0.1").to_string(), "10.0.0.1");
        assert_eq!(key("::1").to_string(), "::/64");
    }

    #[test]
    fn one_ipv6_64_shares_one_limit() {
        let limiter = ConnectionLimiter::new(10, 2);
        let a = limiter.try_acquire("2001:db8::1".parse().expect("ip"));
        let b = limiter.try_acquire("2001:db8::2".parse().expect("ip"));
        assert!(a.is_some() && b.is_some());
        assert!(
            limiter
                .try_acquire("2001:db8::3".parse().expect("ip"))
                .is_none()
        );
        assert!(
            limiter
                .try_acquire("2001:db8:0:1::1".parse().expect("ip"))
                .is_some()
        );
        // The same for IPv4 reached over an IPv6 socket.
        let mapped = limiter.try_acquire("::ffff:192.0.2.9".parse().expect("ip"));
        let plain = limiter.try_acquire("192.0.2.9".parse().expect("ip"));
        assert!(mapped.is_some() && plain.is_some());
        assert!(
            limiter
                .try_acquire("192.0.2.9".parse().expect("ip"))
                .is_none()
        );
    }

    #[test]
    fn own_address_counts_do_not_take_each_others_slots() {
        let shared = ConnectionLimiter::new(5, 2);
        let imap = shared.for_listener("imap");
        let smtp = shared.with_own_pool(0).for_listener("smtp");
        let ip: IpAddr = [192, 0, 2, 1].into();
        let held = [imap.try_acquire(ip), imap.try_acquire(ip)];
        assert!(held.iter().all(Option::is_some));
        assert!(shared.try_acquire(ip).is_none(), "the shared pool is full");
        let mx = [smtp.try_acquire(ip), smtp.try_acquire(ip)];
        assert!(
            mx.iter().all(Option::is_some),
            "port 25 has slots of its own"
        );
        assert!(smtp.try_acquire(ip).is_none());
        // The total is still one: 4 open of 5, then 5.
        let fifth = imap.try_acquire([192, 0, 2, 2].into());
        assert!(fifth.is_some());
        assert!(smtp.try_acquire([192, 0, 2, 3].into()).is_none());
    }

    #[test]
    fn reserved_slots_are_left_to_their_pool() {
        let shared = ConnectionLimiter::new(10, 100);
        let mx = shared.with_own_pool(3);
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        let clients: Vec<_> = (0..7).map(|n| shared.try_acquire(ip(n))).collect();
        assert!(clients.iter().all(Option::is_some));
        assert!(shared.try_acquire(ip(7)).is_none(), "3 of 10 are port 25's");
        let mail: Vec<_> = (0..3).map(|n| mx.try_acquire(ip(n))).collect();
        assert!(mail.iter().all(Option::is_some));
        assert!(mx.try_acquire(ip(9)).is_none(), "the total is 10");
        // Port 25 may also take free slots of the rest; once its own are free again,
        // they are held back from the others once more.
        drop(clients);
        let more: Vec<_> = (0..2).map(|n| mx.try_acquire(ip(n))).collect();
        assert!(more.iter().all(Option::is_some));
        drop(mail);
        drop(more);
        let again: Vec<_> = (0..8).map(|n| shared.try_acquire(ip(n))).collect();
        assert_eq!(again.iter().filter(|p| p.is_some()).count(), 7);
    }

    #[test]
    fn throttle_counts_an_ipv6_64_as_one_client() {
        let throttle = AuthThrottle::new(2, Duration::from_secs(60), Duration::ZERO);
        throttle.record_failure("2001:db8::1".parse().expect("ip"));
        throttle.record_failure("2001:db8::2".parse().expect("ip"));
        assert!(throttle.is_blocked("2001:db8::ffff".parse().expect("ip")));
        assert!(!throttle.is_blocked("2001:db8:0:1::1".parse().expect("ip")));
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
