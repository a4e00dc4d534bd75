//! The mail services a client is told about, written down once: `letterbox dns` turns
//! them into RFC 6186 SRV records, the HTTP listener into autoconfiguration documents,
//! and the quickstart into the settings it prints.

use crate::config::Listen;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    /// Message submission (RFC 6409), not port 25.
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (RFC 8314 §3).
    ImplicitTls,
    /// Plain until STARTTLS (RFC 3207, RFC 9051 §6.2.1).
    StartTls,
}

/// One client-facing service and the listener that serves it.
#[derive(Debug)]
pub struct Service {
    /// The `listen` key, and the name in the `listening NAME ADDR` line.
    pub listener: &'static str,
    /// RFC 6186 §3.1 / RFC 8314 §5.1 service label for the SRV record.
    pub srv: &'static str,
    pub protocol: Protocol,
    pub security: Security,
    /// The IANA port.
    pub standard_port: u16,
    /// SRV priority: implicit TLS before STARTTLS (RFC 8314 §5.1).
    pub srv_priority: u16,
}

/// Every client-facing service, implicit TLS first within each protocol: the order of
/// preference RFC 8314 §5.1 asks clients (and so the documents we give them) to follow.
pub static CLIENT_SERVICES: [Service; 4] = [
    Service {
        listener: "imaps",
        srv: "_imaps",
        protocol: Protocol::Imap,
        security: Security::ImplicitTls,
        standard_port: 993,
        srv_priority: 0,
    },
    Service {
        listener: "imap",
        srv: "_imap",
        protocol: Protocol::Imap,
        security: Security::StartTls,
        standard_port: 143,
        srv_priority: 10,
    },
    Service {
        listener: "submissions",
        srv: "_submissions",
        protocol: Protocol::Smtp,
        security: Security::ImplicitTls,
        standard_port: 465,
        srv_priority: 0,
    },
    Service {
        listener: "submission",
        srv: "_submission",
        protocol: Protocol::Smtp,
        security: Security::StartTls,
        standard_port: 587,
        srv_priority: 10,
    },
];

/// A service this server offers, at the port clients should use.
#[derive(Debug, Clone, Copy)]
pub struct Offered {
    pub service: &'static Service,
    pub port: u16,
}

/// The services on offer, in [`CLIENT_SERVICES`] order, given the port of each listener
/// (`None`: that listener is off).
pub fn offered(mut port_of: impl FnMut(&str) -> Option<u16>) -> Vec<Offered> {
    CLIENT_SERVICES
        .iter()
        .filter_map(|service| port_of(service.listener).map(|port| Offered { service, port }))
        .collect()
}

/// The services at the ports the running server bound: the first address of each
/// listener, as printed in the `listening` lines.
pub fn offered_at(bound: &[(&str, SocketAddr)]) -> Vec<Offered> {
    offered(|name| {
        bound
            .iter()
            .find(|(listener, _)| *listener == name)
            .map(|(_, address)| address.port())
    })
}

impl Listen {
    /// The addresses of the listener named as in the config file; empty for an unknown
    /// name.
    pub fn addresses(&self, listener: &str) -> &[SocketAddr] {
        match listener {
            "smtp" => &self.smtp,
            "submission" => &self.submission,
            "submissions" => &self.submissions,
            "imap" => &self.imap,
            "imaps" => &self.imaps,
            "http" => &self.http,
            "https" => &self.https,
            "managesieve" => &self.managesieve,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_tls_comes_first_and_missing_listeners_are_left_out() {
        let bound = [
            ("submission", SocketAddr::from(([127, 0, 0, 1], 2587))),
            ("imap", SocketAddr::from(([127, 0, 0, 1], 2143))),
            ("imaps", SocketAddr::from(([127, 0, 0, 1], 2993))),
            ("imaps", SocketAddr::from(([127, 0, 0, 1], 3993))),
        ];
        let offered: Vec<(&str, u16)> = offered_at(&bound)
            .iter()
            .map(|o| (o.service.listener, o.port))
            .collect();
        assert_eq!(
            offered,
            [("imaps", 2993), ("imap", 2143), ("submission", 2587)]
        );
    }
}
