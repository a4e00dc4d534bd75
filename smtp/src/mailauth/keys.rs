//! DKIM keys (RFC 6376, RFC 8463): made by `letterbox dkim generate`, kept one per file
//! as `<data_dir>/dkim/<domain>.<selector>.key` (PKCS#8 PEM, mode 0600), published as a
//! TXT record at `<selector>._domainkey.<domain>`, and used by the queue worker to sign
//! each message just before it is relayed.
//!
//! Keys made elsewhere work too: any RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) PEM file
//! with that name. Every key of a domain signs (an RSA and an Ed25519 key give two
//! signatures, RFC 8463 §4); retire a rotated-out key by removing its file.

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// File name suffix of a key file.
const KEY_SUFFIX: &str = ".key";
/// RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits, SHOULD use 2048.
const RSA_BITS: aws_lc_rs::rsa::KeySize = aws_lc_rs::rsa::KeySize::Rsa2048;
/// RFC 6376 §5.4.1: the fields a signature should cover. From is required (§5.4); the
/// rest are those whose change would alter what the reader sees or how the message
/// threads. mail-auth lists absent ones too, so they cannot be added later (§8.15);
/// that is why no `List-*` field is here: a mailing list adds those, and must not break
/// the signature by doing so.
pub const SIGNED_HEADERS: [&str; 12] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// The two key types DKIM knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA-SHA256 (RFC 6376 §3.3.1): what every verifier accepts.
    Rsa,
    /// Ed25519-SHA256 (RFC 8463): short, but not yet verified everywhere.
    Ed25519,
}

impl Algorithm {
    /// The `k=` tag of the DNS record.
    pub fn tag(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "rsa" => Ok(Algorithm::Rsa),
            "ed25519" => Ok(Algorithm::Ed25519),
            _ => Err(format!("unknown key algorithm {value:?} (rsa or ed25519)")),
        }
    }
}

/// What went wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// One key: where it signs and how it is published.
pub struct Key {
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    pub path: PathBuf,
    /// The `p=` value: SubjectPublicKeyInfo for RSA, the raw 32 octets for Ed25519
    /// (RFC 8463 §4.2).
    public_key: Vec<u8>,
    signer: DkimSigner<DkimKey, Done>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key is never printed.
        f.debug_struct("Key")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The DNS name of the record: `<selector>._domainkey.<domain>`.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record's text (RFC 6376 §3.6.1).
    pub fn record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.tag(),
            STANDARD.encode(&self.public_key)
        )
    }

    /// A `DKIM-Signature:` field for `message`, folded, with its CRLF.
    pub fn sign(&self, message: &[u8]) -> Result<String, String> {
        self.signer
            .sign(message)
            .map(|signature| signature.to_header())
            .map_err(|e| e.to_string())
    }

    /// Reads a key file named `<domain>.<selector>.key`.
    pub fn load(path: &Path) -> Result<Key, KeyError> {
        let (domain, selector) = key_name(path).ok_or_else(|| {
            KeyError::Invalid(format!(
                "{}: not named <domain>.<selector>{KEY_SUFFIX}",
                path.display()
            ))
        })?;
        let pem = std::fs::read(path).map_err(|error| KeyError::Io {
            path: path.to_owned(),
            error,
        })?;
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            KeyError::Invalid(format!("{}: not a PEM private key: {e}", path.display()))
        })?;
        let invalid = |e: &dyn fmt::Display| KeyError::Invalid(format!("{}: {e}", path.display()));
        let (algorithm, key, public_key) = match &der {
            PrivateKeyDer::Pkcs1(_) => rsa_key(der.clone_key()).map_err(|e| invalid(&e))?,
            PrivateKeyDer::Pkcs8(pkcs8) => match rsa_key(der.clone_key()) {
                Ok(rsa) => rsa,
                Err(_) => {
                    let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                        .map_err(|_| invalid(&"neither an RSA nor an Ed25519 key"))?;
                    let public = key.public_key();
                    (Algorithm::Ed25519, DkimKey::Ed25519(key), public)
                }
            },
            _ => return Err(invalid(&"unsupported key type (use RSA or Ed25519)")),
        };
        let signer = DkimSigner::from_key(key)
            .domain(domain.clone())
            .selector(selector.clone())
            .headers(SIGNED_HEADERS)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Key {
            domain,
            selector,
            algorithm,
            path: path.to_owned(),
            public_key,
            signer,
        })
    }
}

/// An RSA key with the SubjectPublicKeyInfo that goes into `p=`.
fn rsa_key(der: PrivateKeyDer<'static>) -> Result<(Algorithm, DkimKey, Vec<u8>), String> {
    let pair = match &der {
        PrivateKeyDer::Pkcs1(pkcs1) => aws_lc_rs::rsa::KeyPair::from_der(pkcs1.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(pkcs8) => {
            aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8.secret_pkcs8_der())
        }
        _ => return Err("not an RSA key".into()),
    }
    .map_err(|e| format!("not an RSA key: {e}"))?;
    let spki = {
        use aws_lc_rs::signature::KeyPair;
        pair.public_key()
            .as_der()
            .map_err(|e| format!("encoding the public key: {e}"))?
            .as_ref()
            .to_vec()
    };
    let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| e.to_string())?;
    Ok((Algorithm::Rsa, DkimKey::Rsa(key), spki))
}

/// `<domain>.<selector>.key` → (domain, selector); the selector has no dot.
fn key_name(path: &Path) -> Option<(String, String)> {
    let name = path.file_name()?.to_str()?.strip_suffix(KEY_SUFFIX)?;
    let (domain, selector) = name.rsplit_once('.')?;
    (!domain.is_empty() && !selector.is_empty())
        .then(|| (domain.to_ascii_lowercase(), selector.to_owned()))
}

/// A selector for a key made today: `lb` and the date (`lb20300102`), with `e` for
/// Ed25519, so that a rotated key gets a new name and both can be published at once.
pub fn default_selector(algorithm: Algorithm) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let suffix = match algorithm {
        Algorithm::Rsa => "",
        Algorithm::Ed25519 => "e",
    };
    format!(
        "lb{:04}{:02}{:02}{suffix}",
        today.year(),
        u8::from(today.month()),
        today.day()
    )
}

/// The key directory inside the data directory.
pub fn key_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dkim")
}

/// RFC 6376 §3.1: a selector is a sub-domain (we take one label: letters, digits,
/// hyphen), so it fits the file name and the DNS name.
pub fn check_selector(selector: &str) -> Result<(), String> {
    let valid = !selector.is_empty()
        && selector.len() <= 63
        && selector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !selector.starts_with('-')
        && !selector.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "selector {selector:?}: use one DNS label (letters, digits, hyphens)"
        ))
    }
}

/// A domain name as we take it on the command line.
/// Unlike [`storage::Domain`], it lets `_` through, as DNS names may have it.
pub fn check_domain(domain: &str) -> Result<String, String> {
    storage::dns_name(domain, |b| {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
    })
    .map_err(|domain| format!("{domain:?} is not a domain name"))
}

/// Makes a new key for `domain` and writes it (mode 0600) into `dir`; refuses to
/// overwrite an existing one.
pub fn generate(
    dir: &Path,
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
) -> Result<Key, KeyError> {
    let domain = check_domain(domain).map_err(KeyError::Invalid)?;
    check_selector(selector).map_err(KeyError::Invalid)?;
    let pkcs8: Vec<u8> = match algorithm {
        Algorithm::Rsa => aws_lc_rs::rsa::KeyPair::generate(RSA_BITS)
            .and_then(|pair| pair.as_der())
            .map(|der| der.as_ref().to_vec()),
        Algorithm::Ed25519 => aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map(|document| document.as_ref().to_vec()),
    }
    .map_err(|_| KeyError::Invalid("key generation failed".into()))?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |error| KeyError::Io { path, error }
    };
    create_private_dir(dir).map_err(io(dir))?;
    let path = dir.join(format!("{domain}.{selector}{KEY_SUFFIX}"));
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?
    };
    file.write_all(pem("PRIVATE KEY", &pkcs8).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&path))?;
    Key::load(&path)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// RFC 7468 textual encoding, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every key in `dir`, sorted by domain and selector; files that are not keys are
/// reported, not fatal.
pub fn load_dir(dir: &Path) -> (Vec<Key>, Vec<KeyError>) {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return (keys, errors),
        Err(error) => {
            errors.push(KeyError::Io {
                path: dir.to_owned(),
                error,
            });
            return (keys, errors);
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(KEY_SUFFIX))
        {
            match Key::load(&path) {
                Ok(key) => keys.push(key),
                Err(error) => errors.push(error),
            }
        }
    }
    keys.sort_by(|a, b| (&a.domain, &a.selector).cmp(&(&b.domain, &b.selector)));
    (keys, errors)
}

/// The keys the queue worker signs with, read again from the key directory whenever
/// its modification time changes (a key made with `letterbox dkim generate` is used
/// from the next message on, without a restart).
pub struct KeyRing {
    dir: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    modified: Option<SystemTime>,
    keys: Arc<Vec<Key>>,
}

impl KeyRing {
    /// No signing.
    pub fn none() -> KeyRing {
        KeyRing {
            dir: None,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// Keys from `dir` (which need not exist yet).
    pub fn from_dir(dir: PathBuf) -> KeyRing {
        KeyRing {
            dir: Some(dir),
            loaded: Mutex::new(Loaded::default()),
        }
    }

    fn keys(&self) -> Arc<Vec<Key>> {
        let Some(dir) = &self.dir else {
            return Arc::new(Vec::new());
        };
        let modified = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
        // A poisoned lock only means a panic elsewhere mid-reload: the data is still a
        // complete list (it is replaced whole), so keep using it.
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.modified != modified || modified.is_none() && !loaded.keys.is_empty() {
            let (keys, errors) = load_dir(dir);
            for error in errors {
                tracing::warn!(%error, "DKIM key not usable");
            }
            tracing::info!(keys = keys.len(), dir = %dir.display(), "DKIM keys loaded");
            loaded.keys = Arc::new(keys);
            loaded.modified = modified;
        }
        loaded.keys.clone()
    }

    /// The `DKIM-Signature:` fields for `message` (one per key of `domain`), to be put
    /// in front of it; empty when the domain has no key.
    pub fn sign(&self, domain: &str, message: &[u8]) -> String {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let keys = self.keys();
        let mut fields = String::new();
        for key in keys.iter().filter(|k| k.domain == domain) {
            match key.sign(message) {
                Ok(field) => {
                    tracing::debug!(domain = %key.domain, selector = %key.selector, "DKIM signed");
                    fields.push_str(&field);
                }
                Err(error) => {
                    tracing::warn!(%error, selector = %key.selector, "DKIM signing failed");
                }
            }
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names() {
        assert_eq!(
            key_name(Path::new("/x/a.example.lb1.key")),
            Some(("a.example".into(), "lb1".into()))
        );
        assert_eq!(key_name(Path::new("/x/lb1.key")), None);
        assert_eq!(key_name(Path::new("/x/a.example.lb1.pem")), None);
        assert!(check_selector("lb20300101").is_ok());
        assert!(check_selector("a.b").is_err());
        assert!(check_selector("").is_err());
        assert_eq!(check_domain("Example.ORG.").as_deref(), Ok("example.org"));
        assert!(check_domain("a..b").is_err());
    }

    #[test]
    fn generate_load_and_sign() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rsa = generate(dir.path(), "Example.org", "lb1", Algorithm::Rsa).expect("rsa");
        let ed = generate(dir.path(), "example.org", "lb2", Algorithm::Ed25519).expect("ed");
        assert_eq!(rsa.record_name(), "lb1._domainkey.example.org");
        assert!(
            rsa.record().starts_with("v=DKIM1; k=rsa; p=MII"),
            "{}",
            rsa.record()
        );
        assert!(ed.record().starts_with("v=DKIM1; k=ed25519; p="));
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&rsa.path)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(generate(dir.path(), "example.org", "lb1", Algorithm::Rsa).is_err());
        let ring = KeyRing::from_dir(dir.path().to_owned());
        let fields = ring.sign(
            "EXAMPLE.org",
            b"From: a@example.org\r\nSubject: x\r\n\r\nhi\r\n",
        );
        assert_eq!(fields.matches("DKIM-Signature:").count(), 2, "{fields}");
        assert!(fields.contains("c=relaxed/relaxed"), "{fields}");
        assert!(fields.contains("s=lb1"), "{fields}");
        assert_eq!(ring.sign("other.org", b"From: a@other.org\r\n\r\n"), "");
    }
}
