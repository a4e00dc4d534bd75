//! Mail client autoconfiguration: the documents a client fetches to fill in its
//! account settings from nothing but an email address.
//!
//! - Thunderbird (and K-9, FairEmail, Evolution): `clientConfig` 1.1 XML, looked up at
//!   `autoconfig.DOMAIN/mail/config-v1.1.xml` and `DOMAIN/.well-known/autoconfig/mail/
//!   config-v1.1.xml` (the Mozilla autoconfig format).
//! - Outlook: POX autodiscover, a POST of the request schema to
//!   `autodiscover.DOMAIN/autodiscover/autodiscover.xml`, answered in the 2006a schema.
//! - Apple Mail (macOS, iOS): a configuration profile (`.mobileconfig` property list)
//!   with one `com.apple.mail.managed` payload, opened by the user.
//!
//! Every answer names our host name and the ports we listen on, implicit TLS first
//! (RFC 8314 §5.1). A domain we do not host is 404. Whether the address has an account
//! is never looked at: the documents are the same for every local part, so they cannot
//! be used to find out which addresses exist.

use super::{HttpState, plain_error, xml::escape};
use crate::services::{Offered, Protocol, Security};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use smtp::mailauth::keys::check_domain;
use std::fmt::Write;
use storage::Domain;

/// RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle brackets, so an
/// address is at most 254.
const MAX_ADDRESS: usize = 254;
/// The autodiscover request namespace (Outlook POX request schema).
const AUTODISCOVER_REQUEST_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
/// The autodiscover response envelope and the Outlook response schema it carries.
const AUTODISCOVER_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
const AUTODISCOVER_RESPONSE_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
/// Apple's MIME type for configuration profiles.
const MOBILECONFIG_TYPE: &str = "application/x-apple-aspen-config";
const XML_TYPE: &str = "application/xml; charset=utf-8";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(thunderbird),
        )
        .route("/mail/config-v1.1.xml", get(thunderbird))
        .route("/autodiscover/autodiscover.xml", post(outlook))
        .route("/Autodiscover/Autodiscover.xml", post(outlook))
        .route("/apple/mobileconfig", get(apple))
}

/// Why a request gets no document.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("not a domain served here")]
    NotHosted,
    #[error("this server offers no IMAP service")]
    NoImap,
    #[error("storage unavailable")]
    Unavailable,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::NotHosted | Refusal::NoImap => StatusCode::NOT_FOUND,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        plain_error(status, &self.to_string())
    }
}

/// An address as a client sends it, checked once: `local@domain` with a dot-atom local
/// part (RFC 5322 §3.4.1; UTF-8 allowed, RFC 6531 §3.3) and a host name domain, in the
/// RFC 5321 size limits. Quoted local parts are refused: no mail client configures one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EmailAddress {
    /// `local@domain` with the domain in lower case.
    address: String,
    /// Where the domain starts in `address`.
    domain_start: usize,
}

impl EmailAddress {
    fn parse(text: &str) -> Result<EmailAddress, Refusal> {
        let bad = Refusal::BadRequest("not an email address");
        let (local, domain) = text.rsplit_once('@').ok_or(bad)?;
        let atext = |c: char| {
            c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
        };
        let dot_atom = !local.is_empty()
            && local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(atext));
        if !dot_atom || local.len() > MAX_LOCAL_PART || local.chars().any(char::is_control) {
            return Err(Refusal::BadRequest("not an email address"));
        }
        let domain =
            check_domain(domain).map_err(|_| Refusal::BadRequest("not an email address"))?;
        let address = format!("{local}@{domain}");
        if address.len() > MAX_ADDRESS {
            return Err(Refusal::BadRequest("email address too long"));
        }
        Ok(EmailAddress {
            domain_start: local.len() + 1,
            address,
        })
    }

    fn as_str(&self) -> &str {
        &self.address
    }

    fn domain(&self) -> &str {
        self.address.get(self.domain_start..).unwrap_or_default()
    }
}

/// The domain a request without an address is about: the Host header (RFC 9110 §7.2)
/// without its port and without the `autoconfig.` or `autodiscover.` label a client
/// put in front of the mail domain.
fn domain_from_host(headers: &HeaderMap) -> Result<String, Refusal> {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .ok_or(Refusal::BadRequest("no Host header and no emailaddress"))?;
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name
        .strip_prefix("autoconfig.")
        .or_else(|| name.strip_prefix("autodiscover."))
        .unwrap_or(name);
    check_domain(name).map_err(|_| Refusal::BadRequest("Host is not a domain name"))
}

async fn ensure_hosted(state: &HttpState, domain: &str) -> Result<(), Refusal> {
    // A name that is no domain name (`check_domain` lets `_` through) is hosted nowhere.
    let Ok(domain) = Domain::new(domain) else {
        return Err(Refusal::NotHosted);
    };
    match state.store.is_local_domain(&domain).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::NotHosted),
        Err(error) => {
            tracing::warn!(%error, "autoconfig: cannot read the domains");
            Err(Refusal::Unavailable)
        }
    }
}

fn preferred(services: &[Offered], protocol: Protocol) -> Option<&Offered> {
    services.iter().find(|o| o.service.protocol == protocol)
}

/// What Thunderbird-style clients put in the query: the address being set up
/// (`emailaddress`, the well-known form) or its domain (`domain`, which Thunderbird
/// appends to a lookup URL; clients that ask by IP have nothing else to name it by).
#[derive(Deserialize)]
struct ThunderbirdQuery {
    emailaddress: Option<String>,
    domain: Option<String>,
}

async fn thunderbird(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(query): Query<ThunderbirdQuery>,
) -> Result<Response, Refusal> {
    // The domain from `emailaddress`, `domain` or Host, in that order.
    let domain = match (&query.emailaddress, &query.domain) {
        (Some(address), _) => EmailAddress::parse(address)?.domain().to_owned(),
        (None, Some(domain)) => {
            check_domain(domain).map_err(|_| Refusal::BadRequest("domain is not a domain name"))?
        }
        (None, None) => domain_from_host(&headers)?,
    };
    ensure_hosted(&state, &domain).await?;
    let document = thunderbird_document(&domain, &state.hostname, &state.services);
    Ok(([(header::CONTENT_TYPE, XML_TYPE)], document).into_response())
}

/// The `clientConfig` 1.1 document: every IMAP and submission service we offer, best
/// first (clients try them in order). `%EMAILADDRESS%` is filled in by the client, so
/// nothing of the address is echoed.
fn thunderbird_document(domain: &str, hostname: &str, services: &[Offered]) -> String {
    let domain = escape(domain);
    let hostname = escape(hostname);
    let mut xml = String::new();
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str("<clientConfig version=\"1.1\">\n");
    let _ = writeln!(xml, "  <emailProvider id=\"{domain}\">");
    let _ = writeln!(xml, "    <domain>{domain}</domain>");
    let _ = writeln!(xml, "    <displayName>{domain}</displayName>");
    let _ = writeln!(xml, "    <displayShortName>{domain}</displayShortName>");
    for offered in services {
        let (element, kind) = match offered.service.protocol {
            Protocol::Imap => ("incomingServer", "imap"),
            Protocol::Smtp => ("outgoingServer", "smtp"),
        };
        let socket_type = match offered.service.security {
            Security::ImplicitTls => "SSL",
            Security::StartTls => "STARTTLS",
        };
        let _ = writeln!(xml, "    <{element} type=\"{kind}\">");
        let _ = writeln!(xml, "      <hostname>{hostname}</hostname>");
        let _ = writeln!(xml, "      <port>{}</port>", offered.port);
        let _ = writeln!(xml, "      <socketType>{socket_type}</socketType>");
        xml.push_str("      <username>%EMAILADDRESS%</username>\n");
        xml.push_str("      <authentication>password-cleartext</authentication>\n");
        let _ = writeln!(xml, "    </{element}>");
    }
    xml.push_str("  </emailProvider>\n");
    xml.push_str("</clientConfig>\n");
    xml
}

async fn outlook(State(state): State<HttpState>, body: Bytes) -> Result<Response, Refusal> {
    let text =
        std::str::from_utf8(&body).map_err(|_| Refusal::BadRequest("request is not UTF-8"))?;
    let address = EmailAddress::parse(&requested_address(text)?)?;
    ensure_hosted(&state, address.domain()).await?;
    let document = outlook_document(&address, &state.hostname, &state.services);
    Ok(([(header::CONTENT_TYPE, XML_TYPE)], document).into_response())
}

/// The `EMailAddress` of a POX autodiscover request:
/// `<Autodiscover xmlns=REQUEST_NS><Request><EMailAddress>…`. roxmltree refuses DTDs,
/// so no entity can expand; the body limit bounds the rest.
fn requested_address(text: &str) -> Result<String, Refusal> {
    let document = roxmltree::Document::parse(text)
        .map_err(|_| Refusal::BadRequest("request is not well-formed XML"))?;
    document
        .descendants()
        .find(|node| node.has_tag_name((AUTODISCOVER_REQUEST_NS, "EMailAddress")))
        .and_then(|node| node.text())
        .map(|text| text.trim().to_owned())
        .ok_or(Refusal::BadRequest("request has no EMailAddress"))
}

/// The POX response (2006a schema): one IMAP and one SMTP protocol, the best we offer.
/// `SSL on` is implicit TLS; STARTTLS is `Encryption TLS`, which overrides `SSL` for
/// Outlook, while `SSL` stays `on` so a client that ignores `Encryption` fails its
/// handshake rather than send a password in clear.
fn outlook_document(address: &EmailAddress, hostname: &str, services: &[Offered]) -> String {
    let login = escape(address.as_str());
    let hostname = escape(hostname);
    let mut xml = String::new();
    xml.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = writeln!(xml, "<Autodiscover xmlns=\"{AUTODISCOVER_NS}\">");
    let _ = writeln!(xml, "  <Response xmlns=\"{AUTODISCOVER_RESPONSE_NS}\">");
    let _ = writeln!(xml, "    <User><DisplayName>{login}</DisplayName></User>");
    xml.push_str("    <Account>\n");
    xml.push_str("      <AccountType>email</AccountType>\n");
    xml.push_str("      <Action>settings</Action>\n");
    for protocol in [Protocol::Imap, Protocol::Smtp] {
        let Some(offered) = preferred(services, protocol) else {
            continue;
        };
        let kind = match protocol {
            Protocol::Imap => "IMAP",
            Protocol::Smtp => "SMTP",
        };
        let encryption = match offered.service.security {
            Security::ImplicitTls => "SSL",
            Security::StartTls => "TLS",
        };
        xml.push_str("      <Protocol>\n");
        let _ = writeln!(xml, "        <Type>{kind}</Type>");
        let _ = writeln!(xml, "        <Server>{hostname}</Server>");
        let _ = writeln!(xml, "        <Port>{}</Port>", offered.port);
        xml.push_str("        <DomainRequired>off</DomainRequired>\n");
        let _ = writeln!(xml, "        <LoginName>{login}</LoginName>");
        xml.push_str("        <SPA>off</SPA>\n");
        xml.push_str("        <SSL>on</SSL>\n");
        let _ = writeln!(xml, "        <Encryption>{encryption}</Encryption>");
        xml.push_str("        <AuthRequired>on</AuthRequired>\n");
        if protocol == Protocol::Smtp {
            xml.push_str("        <UsePOPAuth>on</UsePOPAuth>\n");
        }
        xml.push_str("      </Protocol>\n");
    }
    xml.push_str("    </Account>\n");
    xml.push_str("  </Response>\n");
    xml.push_str("</Autodiscover>\n");
    xml
}

#[derive(Deserialize)]
struct AppleQuery {
    email: String,
}

async fn apple(
    State(state): State<HttpState>,
    Query(query): Query<AppleQuery>,
) -> Result<Response, Refusal> {
    let address = EmailAddress::parse(&query.email)?;
    ensure_hosted(&state, address.domain()).await?;
    let profile = apple_profile(&address, &state.hostname, &state.services)?;
    let disposition = format!("attachment; filename=\"{}.mobileconfig\"", address.domain());
    Ok((
        [
            (header::CONTENT_TYPE, MOBILECONFIG_TYPE.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        profile,
    )
        .into_response())
}

/// A configuration profile with one mail account payload (Apple's
/// `com.apple.mail.managed`), written by the `plist` crate, which escapes the strings.
/// The password is left out: the device asks for it. The UUIDs are name-based
/// (RFC 9562 §5.5) on our host name and the address, so fetching the profile again
/// gives the same identifiers and installing it again replaces the account instead of
/// adding a second one.
fn apple_profile(
    address: &EmailAddress,
    hostname: &str,
    services: &[Offered],
) -> Result<Vec<u8>, Refusal> {
    use plist::{Dictionary, Value};
    let imap = preferred(services, Protocol::Imap).ok_or(Refusal::NoImap)?;
    let email = address.as_str();
    let uuid = |what: &str| {
        let name = format!("letterbox:{hostname}:{email}:{what}");
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes())
            .hyphenated()
            .to_string()
            .to_uppercase()
    };
    // Reverse-DNS identifiers, as Apple's profiles use: `host.example.org` gives
    // `org.example.host.letterbox.<uuid>`.
    let reversed: Vec<&str> = hostname.trim_end_matches('.').rsplit('.').collect();
    let identifier = |uuid: &str| format!("{}.letterbox.{uuid}", reversed.join("."));
    let string = |s: &str| Value::String(s.to_owned());

    let account_uuid = uuid("account");
    let mut account = Dictionary::new();
    account.insert("EmailAccountDescription".into(), string(email));
    account.insert("EmailAccountType".into(), string("EmailTypeIMAP"));
    account.insert("EmailAddress".into(), string(email));
    // Apple's UseSSL is "use TLS": implicit TLS on 993, STARTTLS on other ports.
    let server = |account: &mut Dictionary, direction: &str, port: u16| {
        for (key, value) in [
            ("Authentication", string("EmailAuthPassword")),
            ("HostName", string(hostname)),
            ("PortNumber", Value::Integer(port.into())),
            ("UseSSL", Value::Boolean(true)),
            ("Username", string(email)),
        ] {
            account.insert(format!("{direction}MailServer{key}"), value);
        }
    };
    server(&mut account, "Incoming", imap.port);
    if let Some(smtp) = preferred(services, Protocol::Smtp) {
        server(&mut account, "Outgoing", smtp.port);
        account.insert(
            "OutgoingPasswordSameAsIncomingPassword".into(),
            Value::Boolean(true),
        );
    }
    account.insert("PayloadDescription".into(), string("Mail account"));
    account.insert("PayloadDisplayName".into(), string(email));
    account.insert(
        "PayloadIdentifier".into(),
        string(&identifier(&account_uuid)),
    );
    account.insert("PayloadType".into(), string("com.apple.mail.managed"));
    account.insert("PayloadUUID".into(), string(&account_uuid));
    account.insert("PayloadVersion".into(), Value::Integer(1.into()));

    let profile_uuid = uuid("profile");
    let mut profile = Dictionary::new();
    profile.insert(
        "PayloadContent".into(),
        Value::Array(vec![Value::Dictionary(account)]),
    );
    profile.insert(
        "PayloadDescription".into(),
        string(&format!("Sets up the mail account {email} on {hostname}.")),
    );
    profile.insert(
        "PayloadDisplayName".into(),
        string(&format!("Mail: {email}")),
    );
    profile.insert(
        "PayloadIdentifier".into(),
        string(&identifier(&profile_uuid)),
    );
    profile.insert("PayloadRemovalDisallowed".into(), Value::Boolean(false));
    profile.insert("PayloadType".into(), string("Configuration"));
    profile.insert("PayloadUUID".into(), string(&profile_uuid));
    profile.insert("PayloadVersion".into(), Value::Integer(1.into()));

    let mut out = Vec::new();
    Value::Dictionary(profile)
        .to_writer_xml(&mut out)
        .map_err(|error| {
            tracing::error!(%error, "cannot write the Apple profile");
            Refusal::Unavailable
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::offered;

    fn services() -> Vec<Offered> {
        offered(|listener| match listener {
            "imaps" => Some(993),
            "imap" => Some(143),
            "submission" => Some(587),
            _ => None,
        })
    }

    #[test]
    fn addresses_are_checked_and_the_domain_lowered() {
        let address = EmailAddress::parse("Fred.Bloggs+x@Example.ORG").expect("valid");
        assert_eq!(address.as_str(), "Fred.Bloggs+x@example.org");
        assert_eq!(address.domain(), "example.org");
        for bad in [
            "",
            "fred",
            "@example.org",
            "fred@",
            "fr ed@example.org",
            "fred..b@example.org",
            ".fred@example.org",
            "fred@exa mple.org",
            "fred@[127.0.0.1]",
            "<fred>@example.org",
            "\"fred\"@example.org",
            "fred\n@example.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long_local = format!("{}@example.org", "a".repeat(MAX_LOCAL_PART + 1));
        assert!(EmailAddress::parse(&long_local).is_err());
    }

    #[test]
    fn the_host_header_names_the_domain() {
        let mut headers = HeaderMap::new();
        for (host, domain) in [
            ("autoconfig.Example.org", "example.org"),
            ("example.org:8080", "example.org"),
            ("autodiscover.example.org", "example.org"),
        ] {
            headers.insert(header::HOST, host.parse().expect("header"));
            assert_eq!(domain_from_host(&headers).expect(host), domain);
        }
        headers.insert(header::HOST, "[::1]:80".parse().expect("header"));
        assert!(domain_from_host(&headers).is_err());
    }

    #[test]
    fn thunderbird_lists_implicit_tls_first_and_escapes() {
        let xml = thunderbird_document("example.org", "mx<&>.example.org", &services());
        assert!(xml.contains("<hostname>mx&lt;&amp;&gt;.example.org</hostname>"));
        let imaps = xml.find("<port>993</port>").expect("993");
        let imap = xml.find("<port>143</port>").expect("143");
        assert!(imaps < imap);
        assert!(xml.contains("<socketType>STARTTLS</socketType>"));
        assert!(!xml.contains("465"), "submissions is not listening");
    }

    #[test]
    fn the_autodiscover_request_is_parsed_with_its_namespace() {
        let request = format!(
            "<?xml version=\"1.0\"?><Autodiscover xmlns=\"{AUTODISCOVER_REQUEST_NS}\"><Request>\
             <EMailAddress> fred@example.org </EMailAddress>\
             <AcceptableResponseSchema>{AUTODISCOVER_RESPONSE_NS}</AcceptableResponseSchema>\
             </Request></Autodiscover>"
        );
        assert_eq!(
            requested_address(&request).expect("parsed"),
            "fred@example.org"
        );
        assert!(
            requested_address("<Autodiscover><EMailAddress>a@b.c</EMailAddress></Autodiscover>")
                .is_err()
        );
        assert!(requested_address("<a>").is_err());
        let entity = "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>";
        assert!(requested_address(entity).is_err());
    }

    #[test]
    fn outlook_escapes_the_address() {
        let address = EmailAddress::parse("o'hara&co@example.org").expect("valid");
        let xml = outlook_document(&address, "mx.example.org", &services());
        assert!(xml.contains("<LoginName>o&apos;hara&amp;co@example.org</LoginName>"));
        assert!(xml.contains("<Port>993</Port>") && xml.contains("<Port>587</Port>"));
        assert!(xml.contains("<Encryption>TLS</Encryption>"));
    }

    #[test]
    fn the_apple_profile_is_stable_per_address() {
        let fred = EmailAddress::parse("fred@example.org").expect("valid");
        let first = apple_profile(&fred, "mx.example.org", &services()).expect("profile");
        let again = apple_profile(&fred, "mx.example.org", &services()).expect("profile");
        assert_eq!(first, again);
        let text = String::from_utf8(first).expect("utf-8");
        assert!(text.contains("<string>com.apple.mail.managed</string>"));
        assert!(text.contains("org.example.mx.letterbox."));
        let other = EmailAddress::parse("wilma@example.org").expect("valid");
        let other = apple_profile(&other, "mx.example.org", &services()).expect("profile");
        assert_ne!(text.as_bytes(), other.as_slice());
    }
}
