//! Connection limits and failed-login throttling per client address.
//!
//! Both count a client by its [`ClientKey`]: an IPv4 address (an IPv4-mapped IPv6
//! address counts as its IPv4 address), or the /64 an IPv6 address is in, since one
//! subscriber or host is commonly given a whole /64 (RFC 6177 §2, RFC 7934 §6) and could
//! otherwise take a fresh address for every connection or login attempt.
//!
//! Both also keep the metrics that belong to them: open and accepted connections per
//! listener (`letterbox_connections_*`), failed and refused logins per protocol
//! (`letterbox_auth_failures_total`, `letterbox_auth_refused_total`). Each listener or protocol gets a labelled handle on
//! the one shared state ([`ConnectionLimiter::for_listener`], [`AuthThrottle::for_protocol`]),
//! so the limits stay server-wide while the counts are told apart.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
// The throttle's clock: the system's, except under `tokio::time::pause()` in tests.
use tokio::time::Instant;

/// Gauge: connections open now, label `listener`.
pub const CONNECTIONS_OPEN: &str = "letterbox_connections_open";
/// Counter: connections accepted, label `listener`.
pub const CONNECTIONS_TOTAL: &str = "letterbox_connections_total";
/// Counter: connections refused at the limit, label `listener`.
pub const CONNECTIONS_REFUSED: &str = "letterbox_connections_refused_total";
/// Counter: failed logins, label `protocol`.
pub const AUTH_FAILURES: &str = "letterbox_auth_failures_total";
/// Counter: logins refused by the throttle without a password check, label `protocol`.
pub const AUTH_REFUSED: &str = "letterbox_auth_refused_total";

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

/// Logins one client may have being checked at once, by default. A person's mail
/// clients log in a few at a time; more in parallel only serves guessing, and each one
/// holds a password hash on the shared pool. An address many users share (a company
/// behind NAT) may need more.
pub const DEFAULT_MAX_AUTH_IN_FLIGHT: u32 = 4;

/// Clients whose failures are remembered before expired ones are forgotten, so a spray
/// of addresses cannot grow the table without bound.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Slows and then refuses logins from a client (by its [`ClientKey`]) after failed
/// attempts, for every protocol that takes passwords (IMAP, SMTP submission, later
/// ManageSieve).
///
/// Failures are counted per client and, within that, per account name tried. The
/// client's count is the sum: at `max_failures` within the window (which starts at the
/// first failure and clears everything when it has passed) every login from the
/// client is refused, whatever account it names. A successful login clears only the
/// failures against its own account from that client, so an attacker cannot wipe the
/// count of guesses against someone else by logging into an account of their own.
///
/// A login reserves its place with [`AuthThrottle::begin`] before the password is
/// checked: until it is known to have succeeded it counts as a failure, so parallel
/// attempts cannot all pass the check while the slow hash runs. At most `max_in_flight`
/// (by default [`DEFAULT_MAX_AUTH_IN_FLIGHT`]) may be in flight at once. Each failure is answered
/// after `step` times the client's earlier failures in the window.
#[derive(Clone)]
pub struct AuthThrottle {
    inner: Arc<ThrottleInner>,
    /// The `protocol` label of this handle's metrics.
    protocol: &'static str,
}

struct ThrottleInner {
    max_failures: u32,
    max_in_flight: u32,
    window: Duration,
    step: Duration,
    /// Hashes account names into [`AccountKey`]s, keyed at random per process.
    account_hasher: RandomState,
    clients: Mutex<HashMap<ClientKey, ClientRecord>>,
}

/// An account name as the throttle knows it: a keyed hash of the name, trimmed and in
/// ASCII lower case as storage looks it up (`lower(email) = lower($1)`; SQLite lowers
/// ASCII only, so two names that differ beyond it are never one key here). A hash keeps
/// each entry small whatever length of name a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AccountKey(u64);

/// What the throttle knows of one client.
#[derive(Default)]
struct ClientRecord {
    /// When the window of the failures below began: their first, or the first after
    /// the last window passed.
    window_start: Option<Instant>,
    /// Failures in the window, per account name tried.
    failures: HashMap<AccountKey, u32>,
    /// Logins begun and not yet decided.
    in_flight: u32,
}

impl ClientRecord {
    /// Forgets the failures once their window has passed.
    fn expire(&mut self, window: Duration) {
        if self
            .window_start
            .is_some_and(|start| start.elapsed() >= window)
        {
            self.failures.clear();
            self.window_start = None;
        }
    }

    fn failures(&self) -> u32 {
        self.failures
            .values()
            .fold(0, |sum, n| sum.saturating_add(*n))
    }

    fn is_idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0
    }

    /// Whether another login may begin: failures and logins in flight (each may yet
    /// fail) together below the limit, and room for one more in flight.
    fn admits(&self, limits: &ThrottleInner) -> Result<(), Throttled> {
        if self.failures().saturating_add(self.in_flight) >= limits.max_failures {
            Err(Throttled::TooManyFailures)
        } else if self.in_flight >= limits.max_in_flight {
            Err(Throttled::TooManyInFlight)
        } else {
            Ok(())
        }
    }
}

/// Why a login was refused before its password was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Throttled {
    /// The client failed (or has in flight) `max_failures` logins within the window.
    #[error("too many failed logins from this address")]
    TooManyFailures,
    /// The client has as many logins being checked as it may have at once.
    #[error("too many logins in progress from this address")]
    TooManyInFlight,
}

/// One login between [`AuthThrottle::begin`] and its outcome; it counts as a failure
/// until [`AuthAttempt::succeeded`] says otherwise. Dropped without an outcome (the
/// connection went away while the password was checked), it is counted as failed.
#[must_use = "an attempt counts as failed unless its outcome is given"]
pub struct AuthAttempt {
    throttle: AuthThrottle,
    client: ClientKey,
    account: AccountKey,
    /// Set once the outcome is recorded, so that drop does not record it again.
    decided: bool,
}

/// What became of an attempt.
enum Outcome {
    Succeeded,
    Failed,
    /// Not decided either way (storage failed): neither a failure nor a success.
    Undecided,
}

impl AuthThrottle {
    /// `max_failures` within `window`, answered `step` later per earlier failure, at most
    /// [`DEFAULT_MAX_AUTH_IN_FLIGHT`] logins in flight per client.
    pub fn new(max_failures: u32, window: Duration, step: Duration) -> Self {
        Self::with_max_in_flight(max_failures, window, step, DEFAULT_MAX_AUTH_IN_FLIGHT)
    }

    /// As [`AuthThrottle::new`], with at most `max_in_flight` logins in flight per client.
    pub fn with_max_in_flight(
        max_failures: u32,
        window: Duration,
        step: Duration,
        max_in_flight: u32,
    ) -> Self {
        AuthThrottle {
            inner: Arc::new(ThrottleInner {
                max_failures,
                max_in_flight,
                window,
                step,
                account_hasher: RandomState::new(),
                clients: Mutex::new(HashMap::new()),
            }),
            protocol: UNLABELLED,
        }
    }

    /// The same throttle (failures from a client count across protocols), counting
    /// this handle's failures and refusals in the metrics under `protocol`.
    pub fn for_protocol(&self, protocol: &'static str) -> Self {
        metrics::counter!(AUTH_FAILURES, "protocol" => protocol).increment(0);
        metrics::counter!(AUTH_REFUSED, "protocol" => protocol).increment(0);
        AuthThrottle {
            inner: self.inner.clone(),
            protocol,
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, ClientRecord>> {
        // Invariant: no code panics while holding this lock, so it is never poisoned;
        // recover the data anyway rather than propagate a panic.
        self.inner.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a login from `ip` would be refused now; for refusing early, before a
    /// SASL exchange asks for the credentials. [`AuthThrottle::begin`] checks again.
    pub fn check(&self, ip: IpAddr) -> Result<(), Throttled> {
        let mut clients = self.clients();
        let Some(record) = clients.get_mut(&ClientKey::of(ip)) else {
            return Ok(());
        };
        record.expire(self.inner.window);
        let admitted = record.admits(&self.inner);
        if admitted.is_err() {
            metrics::counter!(AUTH_REFUSED, "protocol" => self.protocol).increment(1);
        }
        admitted
    }

    /// Reserves a login from `ip` as `user` before its password is checked, or refuses
    /// it. Give the outcome to the attempt once known.
    pub fn begin(&self, ip: IpAddr, user: &str) -> Result<AuthAttempt, Throttled> {
        let client = ClientKey::of(ip);
        let account = AccountKey(
            self.inner
                .account_hasher
                .hash_one(user.trim().to_ascii_lowercase()),
        );
        let mut clients = self.clients();
        if clients.len() >= MAX_TRACKED_CLIENTS {
            let window = self.inner.window;
            clients.retain(|_, record| {
                record.expire(window);
                !record.is_idle()
            });
        }
        let record = clients.entry(client).or_default();
        record.expire(self.inner.window);
        if let Err(throttled) = record.admits(&self.inner) {
            metrics::counter!(AUTH_REFUSED, "protocol" => self.protocol).increment(1);
            return Err(throttled);
        }
        record.in_flight += 1;
        Ok(AuthAttempt {
            throttle: self.clone(),
            client,
            account,
            decided: false,
        })
    }

    /// Ends an attempt of `client` against `account`; for a failure, the delay
    /// before answering it.
    fn finish(&self, client: ClientKey, account: AccountKey, outcome: Outcome) -> Duration {
        let mut clients = self.clients();
        let Some(record) = clients.get_mut(&client) else {
            // Invariant: a record with a login in flight is never removed.
            return Duration::ZERO;
        };
        record.in_flight = record.in_flight.saturating_sub(1);
        record.expire(self.inner.window);
        let delay = match outcome {
            Outcome::Succeeded => {
                record.failures.remove(&account);
                Duration::ZERO
            }
            Outcome::Failed => {
                metrics::counter!(AUTH_FAILURES, "protocol" => self.protocol).increment(1);
                let earlier = record.failures();
                record.window_start.get_or_insert_with(Instant::now);
                let count = record.failures.entry(account).or_insert(0);
                *count = count.saturating_add(1);
                self.inner.step.saturating_mul(earlier)
            }
            Outcome::Undecided => Duration::ZERO,
        };
        if record.is_idle() {
            clients.remove(&client);
        }
        delay
    }
}

impl AuthAttempt {
    /// The password was right: the failures against this account from this client are
    /// forgotten (not those against other accounts).
    pub fn succeeded(mut self) {
        self.decide(Outcome::Succeeded);
    }

    /// The credentials were wrong: counted against the client and the account. Returns
    /// how long to wait before answering.
    pub fn failed(mut self) -> Duration {
        self.decide(Outcome::Failed)
    }

    /// The check could not be made (storage failed): neither counted nor cleared.
    pub fn undecided(mut self) {
        self.decide(Outcome::Undecided);
    }

    fn decide(&mut self, outcome: Outcome) -> Duration {
        self.decided = true;
        self.throttle.finish(self.client, self.account, outcome)
    }
}

impl Drop for AuthAttempt {
    fn drop(&mut self) {
        if !self.decided {
            self.decide(Outcome::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

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
        let a = limiter.try_acquire(addr("2001:db8::1"));
        let b = limiter.try_acquire(addr("2001:db8::2"));
        assert!(a.is_some() && b.is_some());
        assert!(limiter.try_acquire(addr("2001:db8::3")).is_none());
        assert!(limiter.try_acquire(addr("2001:db8:0:1::1")).is_some());
        // The same for IPv4 reached over an IPv6 socket.
        let mapped = limiter.try_acquire(addr("::ffff:192.0.2.9"));
        let plain = limiter.try_acquire(addr("192.0.2.9"));
        assert!(mapped.is_some() && plain.is_some());
        assert!(limiter.try_acquire(addr("192.0.2.9")).is_none());
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

    const WINDOW: Duration = Duration::from_secs(600);
    const STEP: Duration = Duration::from_millis(500);

    /// `n` failed logins from `ip` as `user`, each let through.
    fn fail(throttle: &AuthThrottle, ip: IpAddr, user: &str, n: u32) {
        for _ in 0..n {
            let attempt = throttle.begin(ip, user).expect("not throttled yet");
            let _ = attempt.failed();
        }
    }

    /// A successful login from `ip` as `user`.
    fn succeed(throttle: &AuthThrottle, ip: IpAddr, user: &str) {
        throttle.begin(ip, user).expect("admitted").succeeded();
    }

    #[test]
    fn throttle_counts_an_ipv6_64_as_one_client() {
        let throttle = AuthThrottle::new(2, WINDOW, Duration::ZERO);
        fail(&throttle, addr("2001:db8::1"), "a", 1);
        fail(&throttle, addr("2001:db8::2"), "b", 1);
        let same_64: IpAddr = addr("2001:db8::ffff");
        assert_eq!(
            throttle.begin(same_64, "c").err(),
            Some(Throttled::TooManyFailures)
        );
        assert!(throttle.check(addr("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn failures_against_any_account_block_the_client_and_each_adds_a_step() {
        let throttle = AuthThrottle::new(3, WINDOW, STEP);
        let ip: IpAddr = [192, 0, 2, 1].into();
        let mut delays = Vec::new();
        for user in ["a@x", "b@x", "c@x"] {
            assert_eq!(throttle.check(ip), Ok(()));
            delays.push(throttle.begin(ip, user).expect("admitted").failed());
        }
        assert_eq!(delays, [Duration::ZERO, STEP, STEP * 2]);
        assert_eq!(throttle.check(ip), Err(Throttled::TooManyFailures));
        assert_eq!(
            throttle.begin(ip, "d@x").err(),
            Some(Throttled::TooManyFailures)
        );
        // Another client is not affected.
        assert!(throttle.begin([192, 0, 2, 2].into(), "a@x").is_ok());
    }

    /// The attack of issue 15: wrong guesses against the victim with a correct login into
    /// the attacker's own account before the limit; the success must not clear them.
    #[test]
    fn a_success_clears_only_its_own_accounts_failures() {
        let throttle = AuthThrottle::new(4, WINDOW, Duration::ZERO);
        let ip: IpAddr = [198, 51, 100, 7].into();
        fail(&throttle, ip, "victim@x", 3);
        succeed(&throttle, ip, "mallory@x");
        fail(&throttle, ip, "victim@x", 1);
        assert_eq!(
            throttle.begin(ip, "mallory@x").err(),
            Some(Throttled::TooManyFailures)
        );

        // A success does clear that account's own failures (a user who mistyped), in
        // whatever case and spacing the name was typed.
        let user: IpAddr = [198, 51, 100, 8].into();
        fail(&throttle, user, "Alice@x", 2);
        fail(&throttle, user, "bob@x", 1);
        succeed(&throttle, user, " alice@X ");
        fail(&throttle, user, "alice@x", 2);
        // 1 against bob and 2 against alice since: one more fits.
        fail(&throttle, user, "alice@x", 1);
        assert!(throttle.check(user).is_err());
    }

    /// Attempts in flight count as failures until they succeed, so parallel attempts
    /// cannot all pass before the first failure is recorded; and no more than
    /// DEFAULT_MAX_AUTH_IN_FLIGHT run at once.
    #[test]
    fn attempts_in_flight_hold_their_place() {
        let throttle = AuthThrottle::new(10, WINDOW, Duration::ZERO);
        let ip: IpAddr = [203, 0, 113, 1].into();
        let in_flight: Vec<_> = (0..DEFAULT_MAX_AUTH_IN_FLIGHT)
            .map(|_| throttle.begin(ip, "victim@x").expect("admitted"))
            .collect();
        assert_eq!(
            throttle.begin(ip, "victim@x").err(),
            Some(Throttled::TooManyInFlight)
        );
        assert_eq!(throttle.check(ip), Err(Throttled::TooManyInFlight));
        for attempt in in_flight {
            let _ = attempt.failed();
        }
        // 4 failed; 6 more may be in flight together, then the limit of 10 is reached
        // by failures and attempts in flight together.
        let first = throttle.begin(ip, "victim@x").expect("admitted");
        let second = throttle.begin(ip, "mallory@x").expect("admitted");
        fail(&throttle, ip, "victim@x", 4);
        assert_eq!(
            throttle.begin(ip, "victim@x").err(),
            Some(Throttled::TooManyFailures)
        );
        // One that succeeds gives its place back...
        second.succeeded();
        assert_eq!(throttle.check(ip), Ok(()));
        // ...one dropped undecided (its connection went away) is a failure: 8, this
        // one, and one more make 10.
        drop(first);
        fail(&throttle, ip, "victim@x", 1);
        assert_eq!(throttle.check(ip), Err(Throttled::TooManyFailures));
    }

    #[test]
    fn an_undecided_attempt_is_neither_counted_nor_clears() {
        let throttle = AuthThrottle::new(2, WINDOW, Duration::ZERO);
        let ip: IpAddr = [203, 0, 113, 2].into();
        fail(&throttle, ip, "a@x", 1);
        throttle.begin(ip, "a@x").expect("admitted").undecided();
        throttle.begin(ip, "a@x").expect("admitted").undecided();
        fail(&throttle, ip, "a@x", 1);
        assert!(throttle.check(ip).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_forgotten_when_the_window_has_passed() {
        let throttle = AuthThrottle::new(3, WINDOW, STEP);
        let ip: IpAddr = [192, 0, 2, 9].into();
        fail(&throttle, ip, "victim@x", 2);
        tokio::time::advance(WINDOW / 2).await;
        fail(&throttle, ip, "other@x", 1);
        assert!(throttle.check(ip).is_err());
        // The window runs from the first failure: all three go together.
        tokio::time::advance(WINDOW / 2 - Duration::from_secs(1)).await;
        assert!(throttle.check(ip).is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(throttle.check(ip), Ok(()));
        let attempt = throttle.begin(ip, "victim@x").expect("admitted again");
        assert_eq!(attempt.failed(), Duration::ZERO, "a new window, no delay");
    }
}
