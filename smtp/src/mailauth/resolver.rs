//! DNS for mail authentication: mail-auth's resolver behind our own caches.
//!
//! mail-auth asks each cache before it asks DNS. Ours answer, in order: the `[dns.txt]`
//! overrides from the configuration; in offline mode "no such record" for every other
//! name (so no query ever leaves the machine); otherwise what earlier lookups learnt,
//! until their TTL runs out.

use super::config::DnsConfig;
use super::txt::parse_txt;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{
    DnsError, DnssecStatus, Error, MX, MessageAuthenticator, Parameters, RecordSet, ResolverCache,
    Txt,
};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Entries one cache keeps. Each is small (a parsed record); past this, expired entries
/// are dropped, and if that is not enough, all of them: a flood of distinct names (a
/// spammer's random sender domains) must not grow memory without bound.
const MAX_CACHED: usize = 10_000;

/// A mail-auth resolver cache: fixed answers, an offline default, learnt answers.
pub struct Cache<K, V> {
    fixed: HashMap<K, V>,
    /// Offline: the answer for every name not in `fixed`.
    otherwise: Option<V>,
    learnt: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn new(fixed: HashMap<K, V>, otherwise: Option<V>) -> Self {
        Cache {
            fixed,
            otherwise,
            learnt: Mutex::new(HashMap::new()),
        }
    }

    fn learnt(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        // Poisoned only by a panic while holding it; the map is still a valid cache.
        self.learnt.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for Cache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(value) = self.fixed.get(name) {
            return Some(value.clone());
        }
        if let Some(value) = &self.otherwise {
            return Some(value.clone());
        }
        let mut learnt = self.learnt();
        match learnt.get(name) {
            Some((value, until)) if *until > Instant::now() => Some(value.clone()),
            Some(_) => {
                learnt.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.learnt().remove(name).map(|(value, _)| value)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        if self.otherwise.is_some() {
            return;
        }
        let mut learnt = self.learnt();
        if learnt.len() >= MAX_CACHED {
            let now = Instant::now();
            learnt.retain(|_, (_, until)| *until > now);
            if learnt.len() >= MAX_CACHED {
                learnt.clear();
            }
        }
        learnt.insert(key, (value, valid_until));
    }
}

fn empty<T>() -> RecordSet<T> {
    RecordSet {
        rrset: Arc::from(Vec::new().into_boxed_slice()),
        dnssec_status: DnssecStatus::Indeterminate,
    }
}

/// The absolute, lower-case form mail-auth looks names up by (`example.org.`).
fn fqdn(name: &str) -> Box<str> {
    let mut name = name.to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name.into_boxed_str()
}

/// mail-auth's authenticator with our caches.
pub struct AuthResolver {
    pub(crate) authenticator: MessageAuthenticator,
    txt: Cache<Box<str>, Txt>,
    mx: Cache<Box<str>, RecordSet<MX>>,
    ipv4: Cache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: Cache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: Cache<IpAddr, RecordSet<Box<str>>>,
}

/// The parameter type mail-auth's checks take, with our caches.
pub(crate) type Params<'x, P> = Parameters<
    'x,
    P,
    Cache<Box<str>, Txt>,
    Cache<Box<str>, RecordSet<MX>>,
    Cache<Box<str>, RecordSet<Ipv4Addr>>,
    Cache<Box<str>, RecordSet<Ipv6Addr>>,
    Cache<IpAddr, RecordSet<Box<str>>>,
>;

impl AuthResolver {
    /// The system's resolver (`/etc/resolv.conf`), or none at all when `offline`;
    /// `[dns.txt]` overrides either way. Without a system configuration every lookup
    /// fails temporarily (results say `temperror`).
    pub fn new(config: &DnsConfig) -> Result<AuthResolver, String> {
        let mut fixed = HashMap::new();
        for (name, records) in &config.txt {
            let txt = parse_txt(name, records).map_err(|e| format!("dns.txt.\"{name}\": {e}"))?;
            fixed.insert(fqdn(name), txt);
        }
        let authenticator = if config.offline {
            None
        } else {
            match MessageAuthenticator::new_system_conf() {
                Ok(authenticator) => Some(authenticator),
                Err(error) => {
                    tracing::warn!(%error, "no DNS configuration: SPF/DKIM/DMARC results will be temperror");
                    None
                }
            }
        };
        let authenticator = match authenticator {
            Some(authenticator) => authenticator,
            None => MessageAuthenticator::new(
                ResolverConfig::from_name_servers(Vec::new()),
                ResolverOpts::default(),
            )
            .map_err(|e| format!("starting the DNS resolver: {e}"))?,
        };
        let offline = config.offline;
        let not_found = || Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)));
        Ok(AuthResolver {
            authenticator,
            txt: Cache::new(fixed, offline.then(not_found)),
            mx: Cache::new(HashMap::new(), offline.then(empty)),
            ipv4: Cache::new(HashMap::new(), offline.then(empty)),
            ipv6: Cache::new(HashMap::new(), offline.then(empty)),
            ptr: Cache::new(HashMap::new(), offline.then(empty)),
        })
    }

    /// `params` with our caches, for one of mail-auth's checks.
    pub(crate) fn params<P>(&self, params: P) -> Params<'_, P> {
        Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fixed_then_offline_then_learnt() {
        let mut fixed = HashMap::new();
        fixed.insert(fqdn("Example.org"), 1u32);
        let offline = Cache::new(fixed.clone(), Some(0u32));
        assert_eq!(offline.get("example.org."), Some(1));
        assert_eq!(offline.get("other.org."), Some(0));
        let online = Cache::new(fixed, None);
        assert_eq!(online.get("other.org."), None);
        online.insert(
            fqdn("other.org"),
            2,
            Instant::now() + Duration::from_secs(60),
        );
        assert_eq!(online.get("other.org."), Some(2));
        online.insert(fqdn("old.org"), 3, Instant::now());
        assert_eq!(online.get("old.org."), None);
    }

    #[test]
    fn learnt_entries_are_bounded() {
        let cache: Cache<Box<str>, u32> = Cache::new(HashMap::new(), None);
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..(MAX_CACHED + 5) {
            cache.insert(fqdn(&format!("d{i}.example")), 1, later);
        }
        assert!(cache.learnt().len() <= MAX_CACHED);
    }
}
