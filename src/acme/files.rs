//! What ACME keeps in the data directory, in `acme/` (mode 0700, files 0600):
//!
//! - `account.json`: the account key and URL (RFC 8555 §7.3) with the directory they
//!   belong to; made once, reused across restarts, made again only for another CA.
//! - `certificate.pem`: the private key, then the chain the CA issued (end-entity
//!   first). One file, replaced in one rename, so the certificate watch never sees a
//!   key that does not match its certificate.

use anyhow::{Context, Result};
use instant_acme::AccountCredentials;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The largest file read back here: an account is a few hundred octets, a chain a few
/// kilobytes.
const MAX_FILE: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    /// The directory URL the account was made at.
    directory: String,
    credentials: AccountCredentials,
}

impl Files {
    pub fn new(data_dir: &Path) -> Files {
        Files {
            dir: data_dir.join("acme"),
        }
    }

    pub fn certificate(&self) -> PathBuf {
        self.dir.join("certificate.pem")
    }

    fn account(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    fn make_dir(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))
    }

    /// The account made at `directory`, if one was kept.
    pub fn read_account(&self, directory: &str) -> Result<Option<AccountCredentials>> {
        let path = self.account();
        let Some(text) = read_bounded(&path)? else {
            return Ok(None);
        };
        let stored: StoredAccount = serde_json::from_slice(&text)
            .with_context(|| format!("reading ACME account {}", path.display()))?;
        Ok((stored.directory == directory).then_some(stored.credentials))
    }

    pub fn write_account(&self, directory: &str, credentials: AccountCredentials) -> Result<()> {
        self.make_dir()?;
        let stored = StoredAccount {
            directory: directory.to_owned(),
            credentials,
        };
        let json = serde_json::to_vec_pretty(&stored).context("serializing the ACME account")?;
        crate::tls::write_private(&self.account(), &json)
    }

    pub fn write_certificate(&self, key_and_chain: &str) -> Result<()> {
        self.make_dir()?;
        crate::tls::write_private(&self.certificate(), key_and_chain.as_bytes())
    }

    /// The certificate kept, `None` when there is none; an error when it cannot be read.
    pub fn read_certificate(&self) -> Result<Option<Issued>> {
        let path = self.certificate();
        match read_bounded(&path)? {
            None => Ok(None),
            Some(pem) => Issued::from_pem(&pem)
                .map(Some)
                .with_context(|| format!("reading {}", path.display())),
        }
    }
}

/// The contents of a file, `None` when it does not exist.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let mut contents = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut contents)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        contents.len() as u64 <= MAX_FILE,
        "{} is larger than {MAX_FILE} octets",
        path.display()
    );
    Ok(Some(contents))
}

/// What the schedule needs to know of an issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The DNS names of its subjectAltName, lower case.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Hexadecimal, for log lines.
    pub serial: String,
}

impl Issued {
    /// Reads the end-entity certificate (the first in the PEM).
    pub fn from_pem(pem: &[u8]) -> Result<Issued> {
        let der = rustls_pemfile::certs(&mut &pem[..])
            .next()
            .context("no certificate")?
            .context("not PEM")?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&der).context("not an X.509 certificate")?;
        let time = |t: x509_parser::time::ASN1Time| {
            let seconds = t.timestamp();
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
        };
        let names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(dns.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Issued {
            names,
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            serial: cert.raw_serial_as_string(),
        })
    }

    /// Whether it is valid for every one of `names` (lower case).
    pub fn covers(&self, names: &[String]) -> bool {
        names.iter().all(|name| self.names.contains(name))
    }

    /// When to renew it: `renew_before` its end, or by default once two thirds of its
    /// lifetime have passed (Let's Encrypt's advice, which leaves a third for retries);
    /// never before half its lifetime, so that a `renew_before` longer than a short
    /// lifetime does not renew again and again.
    pub fn renew_at(&self, renew_before: Option<Duration>) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        let earliest = self.not_before + lifetime / 2;
        match renew_before {
            Some(before) => self
                .not_after
                .checked_sub(before)
                .map_or(earliest, |at| at.max(earliest)),
            None => self.not_before + lifetime * 2 / 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn issued(days: u32) -> Issued {
        let not_before = SystemTime::UNIX_EPOCH + 1000 * DAY;
        Issued {
            names: vec!["mail.example.org".into()],
            not_before,
            not_after: not_before + days * DAY,
            serial: "01".into(),
        }
    }

    #[test]
    fn renewal_comes_at_two_thirds_or_as_configured_but_not_before_half() {
        let cert = issued(90);
        assert_eq!(cert.renew_at(None), cert.not_before + 60 * DAY);
        assert_eq!(cert.renew_at(Some(10 * DAY)), cert.not_before + 80 * DAY);
        assert_eq!(cert.renew_at(Some(80 * DAY)), cert.not_before + 45 * DAY);
        let short = issued(6);
        assert_eq!(short.renew_at(Some(30 * DAY)), short.not_before + 3 * DAY);
    }

    #[test]
    fn a_certificate_is_read_back_with_its_names_and_dates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Files::new(dir.path());
        assert!(files.read_certificate().expect("nothing").is_none());
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["Mail.Example.Org".into(), "a.example.org".into()])
                .expect("params");
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 4, 1);
        let cert = params.self_signed(&key).expect("cert");
        files
            .write_certificate(&format!("{}{}", key.serialize_pem(), cert.pem()))
            .expect("write");
        let read = files.read_certificate().expect("read").expect("there");
        assert_eq!(read.names, ["mail.example.org", "a.example.org"]);
        assert!(read.covers(&["a.example.org".into()]));
        assert!(!read.covers(&["b.example.org".into()]));
        assert_eq!(
            read.not_after
                .duration_since(read.not_before)
                .expect("order"),
            90 * DAY
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(files.certificate())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(files.certificate(), "garbage").expect("write");
        assert!(files.read_certificate().is_err());
    }
}
