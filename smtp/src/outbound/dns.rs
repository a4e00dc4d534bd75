//! Where mail for a domain goes: the relay, a static route, or the domain's MX hosts
//! (RFC 5321 §5.1), looked up through an injectable [`Resolver`] so tests need no network.

use super::config::{HostPort, OutboundConfig};
use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// RFC 5321 §4.5.4.1 / §5.1: the SMTP port of an MX host.
const SMTP_PORT: u16 = 25;

/// What a DNS query found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// The name exists but has no record of that type.
    NoRecords,
    /// NXDOMAIN: the name does not exist.
    NoDomain,
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// The exchange, without the trailing dot; empty for the root (`.`, RFC 7505).
    pub exchange: String,
}

/// DNS as the queue needs it. `Err` is a temporary failure (timeout, SERVFAIL).
pub trait Resolver: Send + Sync {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Lookup<Vec<Mx>>, String>>;
    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Lookup<Vec<IpAddr>>, String>>;
}

/// The system's resolver (`/etc/resolv.conf`) through hickory.
pub struct SystemResolver {
    inner: TokioResolver,
}

impl SystemResolver {
    pub fn new() -> Result<SystemResolver, String> {
        let inner = TokioResolver::builder_tokio()
            .map_err(|e| format!("reading the system DNS configuration: {e}"))?
            .build()
            .map_err(|e| format!("starting the DNS resolver: {e}"))?;
        Ok(SystemResolver { inner })
    }
}

fn fqdn(name: &str) -> String {
    // A trailing dot makes the name absolute: no search-list lookups.
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn classify<T>(error: hickory_resolver::net::NetError) -> Result<Lookup<T>, String> {
    if error.is_nx_domain() {
        Ok(Lookup::NoDomain)
    } else if error.is_no_records_found() {
        Ok(Lookup::NoRecords)
    } else {
        Err(error.to_string())
    }
}

impl Resolver for SystemResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Lookup<Vec<Mx>>, String>> {
        Box::pin(async move {
            match self.inner.mx_lookup(fqdn(domain).as_str()).await {
                Ok(lookup) => {
                    let records: Vec<Mx> = lookup
                        .answers()
                        .iter()
                        .filter_map(|record| match &record.data {
                            RData::MX(mx) => Some(Mx {
                                preference: mx.preference,
                                exchange: mx.exchange.to_ascii().trim_end_matches('.').to_owned(),
                            }),
                            _ => None,
                        })
                        .collect();
                    Ok(if records.is_empty() {
                        Lookup::NoRecords
                    } else {
                        Lookup::Found(records)
                    })
                }
                Err(error) => classify(error),
            }
        })
    }

    fn ips<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Lookup<Vec<IpAddr>>, String>> {
        Box::pin(async move {
            match self.inner.lookup_ip(fqdn(host).as_str()).await {
                Ok(lookup) => {
                    let ips: Vec<IpAddr> = lookup.iter().collect();
                    Ok(if ips.is_empty() {
                        Lookup::NoRecords
                    } else {
                        Lookup::Found(ips)
                    })
                }
                Err(error) => classify(error),
            }
        })
    }
}

/// A resolver that always fails temporarily: used when the system has no DNS
/// configuration, so static routes and the relay still work and the rest waits.
pub struct NoResolver(pub String);

impl Resolver for NoResolver {
    fn mx<'a>(&'a self, _domain: &'a str) -> BoxFuture<'a, Result<Lookup<Vec<Mx>>, String>> {
        Box::pin(async move { Err(self.0.clone()) })
    }

    fn ips<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, Result<Lookup<Vec<IpAddr>>, String>> {
        Box::pin(async move { Err(self.0.clone()) })
    }
}

/// How a host is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// An MX host or a static route: opportunistic STARTTLS (RFC 3207), no AUTH.
    Direct,
    /// The configured smarthost: its TLS mode, certificate checked, AUTH when configured.
    Relay,
}

/// One host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Name for logs, the DSN's Remote-MTA and TLS SNI.
    pub name: String,
    pub port: u16,
    pub kind: HostKind,
}

/// Why a domain cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    pub permanent: bool,
    /// RFC 3463 status, e.g. `5.1.2` (bad destination system) or `4.4.3`.
    pub status: &'static str,
    pub reason: String,
}

/// Routes domains to hosts: static route, then relay, then DNS.
#[derive(Clone)]
pub struct Router {
    pub config: Arc<OutboundConfig>,
    pub resolver: Arc<dyn Resolver>,
}

impl Router {
    /// The hosts to try for `domain`, most preferred first.
    pub async fn hosts(&self, domain: &str) -> Result<Vec<Host>, RouteError> {
        if let Some(route) = self.config.static_route(domain) {
            return Ok(vec![direct(route, HostKind::Direct)]);
        }
        if let Some(relay) = &self.config.relay {
            return Ok(vec![direct(relay, HostKind::Relay)]);
        }
        let records = match self.resolver.mx(domain).await {
            Ok(Lookup::Found(records)) => records,
            // RFC 5321 §5.1: no MX records: the domain itself is the implicit MX.
            Ok(Lookup::NoRecords) => vec![Mx {
                preference: 0,
                exchange: domain.trim_end_matches('.').to_owned(),
            }],
            Ok(Lookup::NoDomain) => {
                return Err(RouteError {
                    permanent: true,
                    status: "5.1.2",
                    reason: format!("domain {domain} does not exist"),
                });
            }
            Err(error) => {
                return Err(RouteError {
                    permanent: false,
                    status: "4.4.3",
                    reason: format!("DNS lookup of MX for {domain} failed: {error}"),
                });
            }
        };
        mx_hosts(domain, records)
    }

    /// The addresses of `host`: itself when it is an IP literal, else A and AAAA.
    pub async fn addresses(&self, host: &Host) -> Result<Vec<SocketAddr>, RouteError> {
        if let Ok(ip) = host.name.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, host.port)]);
        }
        match self.resolver.ips(&host.name).await {
            Ok(Lookup::Found(ips)) => Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, host.port))
                .collect()),
            Ok(Lookup::NoRecords | Lookup::NoDomain) => Err(RouteError {
                permanent: false,
                status: "4.4.4",
                reason: format!("host {} has no address", host.name),
            }),
            Err(error) => Err(RouteError {
                permanent: false,
                status: "4.4.3",
                reason: format!("DNS lookup of {} failed: {error}", host.name),
            }),
        }
    }
}

fn direct(route: &HostPort, kind: HostKind) -> Host {
    Host {
        name: route.host.clone(),
        port: route.port,
        kind,
    }
}

/// Orders MX records (RFC 5321 §5.1: lowest preference first, random among equals) and
/// applies RFC 7505 null MX.
fn mx_hosts(domain: &str, mut records: Vec<Mx>) -> Result<Vec<Host>, RouteError> {
    // RFC 7505 §3: a single MX with the root as exchange says the domain takes no mail.
    if records
        .iter()
        .any(|mx| mx.exchange.is_empty() || mx.exchange == ".")
    {
        return Err(RouteError {
            permanent: true,
            status: "5.1.10",
            reason: format!("domain {domain} accepts no mail (null MX, RFC 7505)"),
        });
    }
    {
        use rand::seq::SliceRandom;
        records.shuffle(&mut rand::thread_rng());
    }
    records.sort_by_key(|mx| mx.preference);
    let mut hosts: Vec<Host> = Vec::with_capacity(records.len());
    for mx in records {
        if !hosts
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(&mx.exchange))
        {
            hosts.push(Host {
                name: mx.exchange,
                port: SMTP_PORT,
                kind: HostKind::Direct,
            });
        }
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeDns {
        mx: HashMap<&'static str, Lookup<Vec<Mx>>>,
    }

    impl Resolver for FakeDns {
        fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Lookup<Vec<Mx>>, String>> {
            Box::pin(async move { Ok(self.mx.get(domain).cloned().unwrap_or(Lookup::NoDomain)) })
        }

        fn ips<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, Result<Lookup<Vec<IpAddr>>, String>> {
            Box::pin(async move { Ok(Lookup::Found(vec![IpAddr::from([192, 0, 2, 1])])) })
        }
    }

    fn mx(preference: u16, exchange: &str) -> Mx {
        Mx {
            preference,
            exchange: exchange.to_owned(),
        }
    }

    fn router(config: OutboundConfig) -> Router {
        let mut records = HashMap::new();
        records.insert(
            "example.net",
            Lookup::Found(vec![mx(20, "mx2.example.net"), mx(10, "mx1.example.net")]),
        );
        records.insert("null.example", Lookup::Found(vec![mx(0, "")]));
        records.insert("bare.example", Lookup::NoRecords);
        Router {
            config: Arc::new(config),
            resolver: Arc::new(FakeDns { mx: records }),
        }
    }

    /// The hosts for `domain` with neither relay nor static routes: from DNS alone.
    async fn dns_hosts(domain: &str) -> Result<Vec<Host>, RouteError> {
        router(OutboundConfig::default()).hosts(domain).await
    }

    #[tokio::test]
    async fn mx_hosts_in_preference_order() {
        let hosts = dns_hosts("example.net").await.expect("hosts");
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["mx1.example.net", "mx2.example.net"]);
        assert!(
            hosts
                .iter()
                .all(|h| h.port == 25 && h.kind == HostKind::Direct)
        );
    }

    #[tokio::test]
    async fn null_mx_and_missing_domain_are_permanent() {
        let error = dns_hosts("null.example").await.expect_err("null MX");
        assert!(error.permanent);
        assert_eq!(error.status, "5.1.10");
        let error = dns_hosts("nowhere.example").await.expect_err("NXDOMAIN");
        assert!(error.permanent);
    }

    #[tokio::test]
    async fn no_mx_falls_back_to_the_domain() {
        let hosts = dns_hosts("bare.example").await.expect("implicit MX");
        assert_eq!(hosts[0].name, "bare.example");
    }

    #[tokio::test]
    async fn static_route_beats_relay_beats_dns() {
        let mut config = OutboundConfig {
            relay: Some(HostPort::try_from("relay.example:587".to_owned()).expect("relay")),
            ..OutboundConfig::default()
        };
        config.static_routes.insert(
            "example.net".into(),
            HostPort::try_from("127.0.0.1:2526".to_owned()).expect("route"),
        );
        let router = router(config);
        let hosts = router.hosts("example.net").await.expect("static");
        assert_eq!((hosts[0].name.as_str(), hosts[0].port), ("127.0.0.1", 2526));
        let hosts = router.hosts("null.example").await.expect("relay");
        assert_eq!(hosts[0].kind, HostKind::Relay);
        let addresses = router.addresses(&hosts[0]).await.expect("addresses");
        assert_eq!(addresses, [SocketAddr::from(([192, 0, 2, 1], 587))]);
    }
}
