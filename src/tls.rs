//! TLS setup: the configured certificate, or a self-signed one made once into data_dir,
//! served through [`ReloadingCert`] so that a renewed certificate (certbot, an ACME
//! client) is picked up without a restart: on SIGHUP, and when the files change.
//!
//! Every listener's acceptor (SMTP 465 and STARTTLS, IMAP 993 and STARTTLS) shares one
//! `ServerConfig` whose certificate resolver is a [`ReloadingCert`]; each handshake asks
//! it for the certificate of the moment. A connection keeps the certificate it was made
//! with. A new certificate that cannot be used (unreadable, not PEM, key not matching) is
//! logged and the one in use stays.

use anyhow::{Context, Result};
use netutil::CancellationToken;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::Signal;

/// How often the certificate and key files are looked at for a change: a renewal is
/// served within seconds, and two `stat` calls every few seconds cost nothing.
pub const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Builds the rustls server config and the certificate it serves. With no cert/key
/// configured, makes (once) a self-signed certificate for `hostname` in `data_dir`.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    hostname: &str,
    data_dir: &Path,
) -> Result<(ServerConfig, Arc<ReloadingCert>)> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(cert), Some(key)) => (cert.to_owned(), key.to_owned()),
        _ => self_signed(hostname, data_dir)?,
    };
    let reloading = Arc::new(ReloadingCert::load(cert_path, key_path, provider())?);
    let config = config_with_resolver(reloading.clone(), Vec::new())?;
    Ok((config, reloading))
}

/// The one crypto provider of the whole process: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server config (TLS 1.2 and 1.3) whose certificates come from `resolver`, offering
/// the ALPN protocols `alpn` (none: ALPN is not negotiated).
pub fn config_with_resolver(
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: Vec<Vec<u8>>,
) -> Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    Ok(config)
}

/// The certificate chain and key every new handshake gets, read from two files and
/// replaced whole when they are read again successfully.
#[derive(Debug)]
pub struct ReloadingCert {
    /// The certificate and key files: fixed, but for ACME ([`ReloadingCert::install`])
    /// which moves from the self-signed pair to its own file once it has a certificate.
    paths: Mutex<(PathBuf, PathBuf)>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files as they were at the last attempt to read them, good or bad: a change
    /// is tried once, not again at every check.
    seen: Mutex<Option<FileStamps>>,
}

/// What tells a file changed: modification time, size and inode (a renewal that
/// repoints a symbolic link to a new file changes the inode).
type FileStamps = [(Option<SystemTime>, u64, u64); 2];

impl ReloadingCert {
    /// Reads the certificate and key; an error names the file.
    pub fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingCert> {
        let seen = stamps(&cert_path, &key_path);
        let certified = certified_key(&cert_path, &key_path, &provider)?;
        Ok(ReloadingCert {
            paths: Mutex::new((cert_path, key_path)),
            provider,
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(Some(seen)),
        })
    }

    /// The certificate chain served now (the end-entity certificate first).
    pub fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock only means a panic elsewhere while holding it: the value is
        // replaced whole, so it is still a complete certificate.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The certificate file served now (for log lines).
    pub fn cert_path(&self) -> PathBuf {
        self.paths().0
    }

    fn paths(&self) -> (PathBuf, PathBuf) {
        self.paths.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the files again (SIGHUP). On error the certificate in use stays.
    pub fn reload(&self) -> Result<()> {
        let (cert_path, key_path) = self.paths();
        self.install(cert_path, key_path)
    }

    /// Serves the pair in `cert_path` and `key_path` (may be one file holding both) from
    /// now on, and watches those files instead of the ones before: how a certificate
    /// ACME obtained replaces the self-signed one, and how a renewed one is taken at
    /// once. On error the certificate and files in use stay.
    pub fn install(&self, cert_path: PathBuf, key_path: PathBuf) -> Result<()> {
        let stamps = stamps(&cert_path, &key_path);
        let certified = certified_key(&cert_path, &key_path, &self.provider);
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        // A bad file is tried once, not at every check; a bad new pair leaves the
        // watch on the old one.
        if (paths.0 == cert_path && paths.1 == key_path) || certified.is_ok() {
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(stamps);
        }
        let certified = certified?;
        *paths = (cert_path, key_path);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
        Ok(())
    }

    /// Reads the files again when they changed since the last attempt; `None` when they
    /// did not.
    pub fn reload_if_changed(&self) -> Option<Result<()>> {
        let (cert_path, key_path) = self.paths();
        let stamps = stamps(&cert_path, &key_path);
        let changed = self.seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref() != Some(&stamps);
        changed.then(|| self.reload())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Reloads `cert` on SIGHUP and when its files change ([`CERT_CHECK_INTERVAL`]) until
/// shutdown, logging what happened. Reading two small files blocks for microseconds; it
/// is done on this task.
pub async fn watch(cert: Arc<ReloadingCert>, mut hangup: Signal, shutdown: CancellationToken) {
    let mut check = tokio::time::interval(CERT_CHECK_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: the files were just read.
    check.tick().await;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = hangup.recv() => {
                tracing::info!("SIGHUP: reading the TLS certificate again");
                Some(cert.reload())
            }
            _ = check.tick() => cert.reload_if_changed(),
        };
        match outcome {
            None => {}
            Some(Ok(())) => tracing::info!(
                cert = %cert.cert_path().display(),
                "TLS certificate reloaded; new connections get it"
            ),
            Some(Err(error)) => tracing::error!(
                error = format!("{error:#}"),
                "TLS certificate not reloaded; the one in use stays"
            ),
        }
    }
}

fn stamps(cert: &Path, key: &Path) -> FileStamps {
    use std::os::unix::fs::MetadataExt;
    [cert, key].map(|path| match std::fs::metadata(path) {
        Ok(meta) => (meta.modified().ok(), meta.len(), meta.ino()),
        Err(_) => (None, 0, 0),
    })
}

/// The chain and key from their files, the key checked to belong to the certificate.
fn certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let certs = read_certs(cert)?;
    let private_key = read_key(key)?;
    CertifiedKey::from_der(certs, private_key, provider).with_context(|| {
        format!(
            "TLS certificate {} does not match key {}",
            cert.display(),
            key.display()
        )
    })
}

/// How long the quickstart certificate is valid: 825 days, the longest that Apple's
/// platforms accept for a TLS server certificate of any issuer (other clients accept
/// longer). Made again at a start within [`SELF_SIGNED_RENEWAL`] of its end.
const SELF_SIGNED_VALIDITY_DAYS: i64 = 825;
const SELF_SIGNED_RENEWAL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The subject rcgen's `generate_simple_self_signed` gave the quickstart certificates of
/// earlier versions (with a validity to the year 4096): such a certificate is made again.
const OLD_QUICKSTART_SUBJECT: &[u8] = b"rcgen self signed cert";

/// The quickstart certificate in `data_dir`, made when missing, old-style or near its
/// end: named after `hostname` (subject CN), valid for it, `localhost` and the loopback
/// addresses (clients that connect by IP check the address against the SANs too).
fn self_signed(hostname: &str, data_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let cert_path = data_dir.join("tls-selfsigned-cert.pem");
    let key_path = data_dir.join("tls-selfsigned-key.pem");
    if key_path.exists() && !self_signed_needs_renewal(&cert_path) {
        return Ok((cert_path, key_path));
    }
    let mut params = rcgen::CertificateParams::new(self_signed_names(hostname))
        .context("making a self-signed certificate")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let now = time::OffsetDateTime::now_utc();
    // A day back, so that a client whose clock is a little behind accepts it at once.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_VALIDITY_DAYS);
    let key_pair = rcgen::KeyPair::generate().context("making a key pair")?;
    let cert = params
        .self_signed(&key_pair)
        .context("making a self-signed certificate")?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    write_private(&key_path, key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "made a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

/// The quickstart certificate's names: the host name, `localhost`, 127.0.0.1 and ::1,
/// each once (rcgen makes the addresses IP SANs).
fn self_signed_names(hostname: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in [hostname, "localhost", "127.0.0.1", "::1"] {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Whether the quickstart certificate at `path` must be made (again): missing, made by
/// an earlier version, or written longer ago than its validity less the renewal margin
/// (it is written when made, so the file's time is its start).
fn self_signed_needs_renewal(path: &Path) -> bool {
    let Ok(pem) = std::fs::read(path) else {
        return true;
    };
    let old_style = read_certs(path).is_ok_and(|certs| {
        certs.first().is_some_and(|der| {
            der.windows(OLD_QUICKSTART_SUBJECT.len())
                .any(|window| window == OLD_QUICKSTART_SUBJECT)
        })
    });
    let lifetime = Duration::from_secs(SELF_SIGNED_VALIDITY_DAYS as u64 * 24 * 60 * 60);
    let written = std::fs::metadata(path).and_then(|meta| meta.modified());
    let near_end = written.map_or(true, |written| {
        SystemTime::now()
            .duration_since(written)
            .is_ok_and(|age| age + SELF_SIGNED_RENEWAL >= lifetime)
    });
    pem.is_empty() || old_style || near_end
}

/// Writes `bytes` to `path`, readable by the owner only, in one step: written aside
/// and renamed, so a reader (the certificate watch) sees the old file or the new one,
/// never a part.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut aside = path.as_os_str().to_owned();
    aside.push(".new");
    let aside = PathBuf::from(aside);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)
        .with_context(|| format!("writing {}", aside.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", aside.display()))?;
    std::fs::rename(&aside, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("reading TLS certificate {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing TLS certificate {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("reading TLS key {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("parsing TLS key {}", path.display()))?
        .with_context(|| format!("no private key in {}", path.display()))
}

/// Whom a TLS client of ours (the ACME client, `letterbox import imap`) trusts.
#[derive(Debug, Clone, Copy)]
pub enum ClientTrust<'a> {
    /// The system's trusted roots.
    System,
    /// The certificates of a PEM file, instead of the system's roots: a private CA, or a
    /// self-signed server certificate.
    CaFile(&'a Path),
    /// Any certificate, unchecked: for a server whose certificate cannot be checked at
    /// all (expired, wrong name). Whoever is on the path can read and change the traffic;
    /// the caller warns.
    Anything,
}

/// A TLS client config (TLS 1.2 and 1.3, aws-lc-rs) that checks the server's
/// certificate as `trust` says; ALPN and client certificates are not used.
pub fn client_config(trust: ClientTrust<'_>) -> Result<rustls::ClientConfig> {
    use hyper_rustls::ConfigBuilderExt;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match trust {
        ClientTrust::System => builder
            .with_native_roots()
            .context("reading the system's trusted certificates")?,
        ClientTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .with_context(|| format!("a certificate in {}", path.display()))?;
            }
            builder.with_root_certificates(roots)
        }
        ClientTrust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider()))),
    };
    Ok(config.with_no_client_auth())
}

/// Takes any server certificate as valid ([`ClientTrust::Anything`]); the handshake's
/// signatures are still checked, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new self-signed certificate and its key, as PEM.
    fn pair() -> (String, String, CertificateDer<'static>) {
        let made =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        (
            made.cert.pem(),
            made.signing_key.serialize_pem(),
            made.cert.der().clone(),
        )
    }

    fn end_entity(cert: &ReloadingCert) -> CertificateDer<'static> {
        cert.current()
            .end_entity_cert()
            .expect("end entity")
            .clone()
            .into_owned()
    }

    #[test]
    fn quickstart_certificates_of_earlier_versions_are_made_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_path, key_path) = self_signed("mx.example.org", dir.path()).expect("made");
        assert!(!self_signed_needs_renewal(&cert_path));
        let made = std::fs::read(&cert_path).expect("read");
        assert_eq!(
            self_signed("mx.example.org", dir.path()).expect("kept"),
            (cert_path.clone(), key_path)
        );
        assert_eq!(std::fs::read(&cert_path).expect("read"), made, "remade");
        // rcgen's generate_simple_self_signed, as letterbox made them before.
        let (old_pem, _, _) = pair();
        std::fs::write(&cert_path, old_pem).expect("write");
        assert!(self_signed_needs_renewal(&cert_path));
        assert_eq!(
            self_signed_names("LocalHost"),
            ["localhost", "127.0.0.1", "::1"]
        );
    }

    #[test]
    fn reload_takes_a_new_pair_and_keeps_the_old_one_on_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (cert1, key1, der1) = pair();
        std::fs::write(&cert_path, &cert1).expect("cert");
        std::fs::write(&key_path, &key1).expect("key");
        let reloading =
            ReloadingCert::load(cert_path.clone(), key_path.clone(), provider()).expect("load");
        assert_eq!(end_entity(&reloading), der1);
        assert!(reloading.reload_if_changed().is_none(), "nothing changed");

        // A renewal: both files replaced (by rename, as certbot's links do).
        let (cert2, key2, der2) = pair();
        std::fs::write(dir.path().join("new-cert"), &cert2).expect("cert");
        std::fs::write(dir.path().join("new-key"), &key2).expect("key");
        std::fs::rename(dir.path().join("new-cert"), &cert_path).expect("rename");
        std::fs::rename(dir.path().join("new-key"), &key_path).expect("rename");
        assert!(matches!(reloading.reload_if_changed(), Some(Ok(()))));
        assert_eq!(end_entity(&reloading), der2);

        // Not a certificate, then a certificate without its key: the old one stays.
        std::fs::write(&cert_path, "not PEM").expect("cert");
        let error = reloading.reload().expect_err("garbage accepted");
        assert!(format!("{error:#}").contains("cert.pem"), "{error:#}");
        assert_eq!(end_entity(&reloading), der2);
        assert!(
            reloading.reload_if_changed().is_none(),
            "a bad file is tried once, not at every check"
        );
        let (cert3, _, _) = pair();
        std::fs::write(&cert_path, &cert3).expect("cert");
        let error = reloading
            .reload_if_changed()
            .expect("changed")
            .expect_err("mismatched key accepted");
        assert!(format!("{error:#}").contains("does not match"), "{error:#}");
        assert_eq!(end_entity(&reloading), der2);
    }
}
