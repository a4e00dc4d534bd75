//! Answers to the CA's challenges while an order is open: HTTP-01 on the HTTP listener
//! (RFC 8555 §8.3) and TLS-ALPN-01 on the HTTPS listener (RFC 8737).
//!
//! The ACME task puts an answer here before it tells the CA the challenge is ready
//! (RFC 8555 §7.5.1) and takes it away when the order is done, whatever the outcome.
//! Nothing else is served from here: an unknown token is 404, an `acme-tls/1`
//! handshake for a name with no open challenge fails.

use crate::tls::ReloadingCert;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// The path prefix of HTTP-01 answers (RFC 8555 §8.3).
pub const HTTP01_PATH: &str = "/.well-known/acme-challenge/{token}";
/// A token is base64url of at least 128 bits of entropy (RFC 8555 §8.3); CAs use 43
/// characters. Longer requests are not answered (nor looked up).
const MAX_TOKEN: usize = 256;

/// The answers of the challenges open now.
#[derive(Debug, Default)]
pub struct Challenges {
    /// HTTP-01: token to key authorization (RFC 8555 §8.1).
    http01: RwLock<HashMap<String, String>>,
    /// TLS-ALPN-01: lower-case domain to its validation certificate (RFC 8737 §3).
    tls_alpn01: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    pub fn put_http01(&self, token: &str, key_authorization: &str) {
        write(&self.http01).insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Makes the validation certificate for `domain` (RFC 8737 §3): self-signed, its
    /// only SAN the domain, and a critical acmeIdentifier extension holding the SHA-256
    /// digest of the key authorization.
    pub fn put_tls_alpn01(&self, domain: &str, digest: &[u8]) -> anyhow::Result<()> {
        let domain = domain.to_ascii_lowercase();
        let key_pair = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![domain.clone()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .custom_extensions
            .push(rcgen::CustomExtension::new_acme_identifier(digest));
        let cert = params.self_signed(&key_pair)?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
        // Not `CertifiedKey::from_der`: its check that key and certificate match parses
        // the certificate, and webpki refuses the critical extension it does not know.
        let signing_key = crate::tls::provider().key_provider.load_private_key(key)?;
        let certified = CertifiedKey::new(vec![cert.der().clone()], signing_key);
        write(&self.tls_alpn01).insert(domain, Arc::new(certified));
        Ok(())
    }

    /// Forgets every answer: the order they were for is over.
    pub fn clear(&self) {
        write(&self.http01).clear();
        write(&self.tls_alpn01).clear();
    }

    fn http01(&self, token: &str) -> Option<String> {
        read(&self.http01).get(token).cloned()
    }

    fn tls_alpn01(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        read(&self.tls_alpn01)
            .get(&domain.to_ascii_lowercase())
            .cloned()
    }
}

// A poisoned lock only means a panic elsewhere while holding it; every change is one
// insert or clear, so the map is whole.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `GET /.well-known/acme-challenge/{token}`: the key authorization (RFC 8555 §8.3).
pub async fn http01(
    State(challenges): State<Arc<Challenges>>,
    Path(token): Path<String>,
) -> Response {
    let answer = (token.len() <= MAX_TOKEN)
        .then(|| challenges.http01(&token))
        .flatten();
    match answer {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such challenge\n").into_response(),
    }
}

/// The certificates of the HTTPS listener: the validation certificate to a client that
/// offers only `acme-tls/1` (RFC 8737 §3: the CA sends that single protocol and the
/// name being validated in SNI), the server's certificate to everyone else.
#[derive(Debug)]
pub struct HttpsResolver {
    pub challenges: Arc<Challenges>,
    pub certificate: Arc<ReloadingCert>,
}

impl ResolvesServerCert for HttpsResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = client_hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if !acme {
            return Some(self.certificate.current());
        }
        // RFC 8737 §3: the validation certificate only when acme-tls/1 is negotiated;
        // with no open challenge for the name the handshake fails.
        let domain = client_hello.server_name()?;
        let found = self.challenges.tls_alpn01(domain);
        if found.is_none() {
            tracing::info!(
                domain,
                "acme-tls/1 handshake for a name with no open challenge"
            );
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http01_answers_open_tokens_only() {
        let challenges = Arc::new(Challenges::default());
        challenges.put_http01("tok", "tok.thumb");
        let answer = http01(State(challenges.clone()), Path("tok".to_owned())).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"tok.thumb");
        let answer = http01(State(challenges.clone()), Path("other".to_owned())).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        challenges.clear();
        let answer = http01(State(challenges), Path("tok".to_owned())).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    }

    /// RFC 8737 §3: the acmeIdentifier extension (1.3.6.1.5.5.7.1.31) is critical and
    /// holds an OCTET STRING of the 32-octet digest; the only SAN is the name.
    #[test]
    fn the_validation_certificate_carries_the_digest() {
        let challenges = Challenges::default();
        let digest = [7u8; 32];
        challenges
            .put_tls_alpn01("Mail.Example.Test", &digest)
            .expect("made");
        let certified = challenges.tls_alpn01("mail.example.test").expect("stored");
        let der = certified.end_entity_cert().expect("certificate");
        let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse");
        let extension = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(extension.critical);
        let mut expected = vec![0x04, 32];
        expected.extend_from_slice(&digest);
        assert_eq!(extension.value, expected.as_slice());
        let names: Vec<String> = cert
            .subject_alternative_name()
            .expect("SAN")
            .expect("SAN")
            .value
            .general_names
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert_eq!(names, ["DNSName(mail.example.test)"]);
    }
}
