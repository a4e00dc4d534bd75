//! Certificates from ACME (RFC 8555), against Pebble, Let's Encrypt's test CA (Debian's
//! `pebble` package), on loopback (issue 20).
//!
//! Each test runs its own Pebble with a config it writes (ports it picks, `httpPort` and
//! `tlsPort` at letterbox's HTTP and HTTPS listeners, an HTTPS certificate it makes) and
//! `pebble-challtestsrv` as Pebble's DNS server, answering every name with 127.0.0.1, so
//! that `mail.example.test` and its autoconfig names lead Pebble's validation to
//! letterbox. Python's ssl checks what a mail client would: the chain up to Pebble's
//! issuing root (fetched from Pebble's management `/roots/0`) and the name.

mod common;

use common::{TestServer, path_str, python};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server's name in the tests; challtestsrv resolves every name to 127.0.0.1.
const HOSTNAME: &str = "mail.example.test";
/// How long a first certificate may take: Pebble validates at once
/// (`PEBBLE_VA_NOSLEEP`), but a debug build on a busy 2-core machine is slow to start.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pebble's certificate lifetime in the renewal test: letterbox renews at two thirds
/// of it (60 s), with 30 s left before it would expire.
const SHORT_VALIDITY_SECS: u64 = 90;
/// Between two looks while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Connects to IMAPS and SMTPS on 127.0.0.1 as a client that asked for `name` would
/// (SNI and the name check), trusting only the CA file; prints each certificate's
/// serial and DNS names, or `unverified` and why.
const PROBE: &str = r#"
import imaplib, smtplib, socket, ssl, sys
name, imaps, smtps, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)

class IMAP(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)

class SMTP(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection(("127.0.0.1", port), timeout)
        return self.context.wrap_socket(sock, server_hostname=host)

def show(label, cert):
    names = sorted(value for kind, value in cert["subjectAltName"] if kind == "DNS")
    print(label, cert["serialNumber"], ",".join(names))

try:
    imap = IMAP(name, imaps, ssl_context=ctx)
    show("imaps", imap.sock.getpeercert())
    imap.logout()
    smtp = SMTP(name, smtps, context=ctx, timeout=30)
    show("smtps", smtp.sock.getpeercert())
    smtp.quit()
except ssl.SSLCertVerificationError as error:
    print("unverified", error.verify_message)
"#;

/// Fetches a URL over HTTPS trusting only the CA file; prints the body.
const FETCH: &str = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
sys.stdout.write(urllib.request.urlopen(sys.argv[1], context=ctx, timeout=30).read().decode())
"#;

/// A port free now on 127.0.0.1. Pebble's config must name letterbox's HTTP and HTTPS
/// ports and letterbox's must name Pebble's directory, so they are picked here.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Pebble and its DNS server, killed when dropped.
struct Pebble {
    children: Vec<Child>,
    dir: tempfile::TempDir,
    directory: String,
    /// The CA of Pebble's own HTTPS: letterbox's `acme.ca_bundle`.
    https_ca: PathBuf,
    /// Pebble's issuing root, from its management interface.
    root: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`,
    /// issuing certificates valid for `validity_secs`.
    fn start(http_port: u16, tls_port: u16, validity_secs: u64) -> Pebble {
        let dir = tempfile::tempdir().expect("tempdir");
        let (https_ca, cert, key) = https_certificate(dir.path());
        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = dir.path().join("pebble-config.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"pebble": {{
                    "listenAddress": "127.0.0.1:{listen}",
                    "managementListenAddress": "127.0.0.1:{management}",
                    "certificate": "{}", "privateKey": "{}",
                    "httpPort": {http_port}, "tlsPort": {tls_port},
                    "ocspResponderURL": "", "externalAccountBindingRequired": false,
                    "certificateValidityPeriod": {validity_secs}
                }}}}"#,
                path_str(&cert),
                path_str(&key)
            ),
        )
        .expect("write config");
        let log = |name: &str| {
            std::fs::File::create(dir.path().join(name))
                .map(Stdio::from)
                .expect("log")
        };
        let mut children = Vec::new();
        // Every A query answered with 127.0.0.1, no AAAA (letterbox listens on IPv4);
        // challtestsrv's own challenge servers off.
        children.push(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-management", &format!("127.0.0.1:{dns_management}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .stdout(log("challtestsrv.log"))
                .stderr(log("challtestsrv.err"))
                .spawn()
                .expect("start pebble-challtestsrv (Debian package pebble)"),
        );
        children.push(
            Command::new("pebble")
                .arg("-config")
                .arg(&config)
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                // No random sleeps before validation, no nonces refused at random, and a
                // new validation for every order (a renewal is validated again).
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .stdout(log("pebble.log"))
                .stderr(log("pebble.err"))
                .spawn()
                .expect("start pebble (Debian package pebble)"),
        );
        let pebble = Pebble {
            children,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            root: dir.path().join("pebble-root.pem"),
            https_ca,
            dir,
        };
        let roots = format!("https://127.0.0.1:{management}/roots/0");
        let deadline = Instant::now() + Duration::from_secs(30);
        let root = loop {
            let fetched = Command::new("python3")
                .args(["-c", FETCH, &roots, path_str(&pebble.https_ca)])
                .output()
                .expect("python3");
            if fetched.status.success() {
                break String::from_utf8_lossy(&fetched.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "Pebble did not start: {}\n{}",
                String::from_utf8_lossy(&fetched.stderr),
                pebble.log()
            );
            std::thread::sleep(POLL);
        };
        assert!(root.contains("BEGIN CERTIFICATE"), "{root}");
        std::fs::write(&pebble.root, root).expect("write root");
        pebble
    }

    fn log(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A CA and a certificate it signed for 127.0.0.1, as Pebble's own HTTPS wants (the
/// Debian package ships none): (CA file, certificate file, key file).
fn https_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA of Pebble's HTTPS");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".into()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    let paths = (
        dir.join("https-ca.pem"),
        dir.join("https-cert.pem"),
        dir.join("https-key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

/// A letterbox for `mail.example.test` whose certificates come from `pebble`, with HTTP
/// on `http_port` and (when given) HTTPS on `https_port`; `acme_extra` goes into the
/// `[acme]` table.
fn letterbox(
    pebble: &Pebble,
    http_port: u16,
    https_port: Option<u16>,
    acme_extra: &str,
) -> TestServer {
    letterbox_with_ca(
        &pebble.directory,
        &pebble.https_ca,
        http_port,
        https_port,
        acme_extra,
    )
}

/// A letterbox for `mail.example.test` with an `[acme]` table naming `directory`.
fn letterbox_with_ca(
    directory: &str,
    ca_bundle: &Path,
    http_port: u16,
    https_port: Option<u16>,
    acme_extra: &str,
) -> TestServer {
    let https = https_port
        .map(|port| format!("https = [\"127.0.0.1:{port}\"]\n"))
        .unwrap_or_default();
    TestServer::start_with_config(|data_dir| {
        format!(
            "hostname = \"{HOSTNAME}\"\ndata_dir = \"{}\"\n\n[listen]\nsmtp = [\"127.0.0.1:0\"]\n\
             submission = [\"127.0.0.1:0\"]\nsubmissions = [\"127.0.0.1:0\"]\n\
             imap = [\"127.0.0.1:0\"]\nimaps = [\"127.0.0.1:0\"]\n\
             managesieve = [\"127.0.0.1:0\"]\nhttp = [\"127.0.0.1:{http_port}\"]\n{https}\n\
             [acme]\ndirectory = \"{directory}\"\ncontact = \"mailto:postmaster@example.test\"\n\
             ca_bundle = \"{}\"\n{acme_extra}\n",
            data_dir.display(),
            path_str(ca_bundle),
        )
    })
}

/// What a client sees on IMAPS and SMTPS: (serial, DNS names) once both verify against
/// Pebble's root for the name, and are the same certificate.
fn probe(server: &TestServer, pebble: &Pebble) -> Option<(String, String)> {
    let out = python(
        PROBE,
        &[
            HOSTNAME,
            &server.port("imaps").to_string(),
            &server.port("submissions").to_string(),
            path_str(&pebble.root),
        ],
    );
    if out.starts_with("unverified") {
        return None;
    }
    let seen: Vec<(String, String)> = out
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "{out}");
            (fields[1].to_owned(), fields[2].to_owned())
        })
        .collect();
    assert_eq!(seen.len(), 2, "{out}");
    assert_eq!(
        seen[0], seen[1],
        "IMAPS and SMTPS serve different certificates"
    );
    seen.into_iter().next()
}

/// Waits until IMAPS and SMTPS serve a certificate that verifies, other than `old`.
fn wait_for_certificate(
    server: &TestServer,
    pebble: &Pebble,
    old: Option<&str>,
    within: Duration,
) -> (String, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(seen) = probe(server, pebble)
            && Some(seen.0.as_str()) != old
        {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no new Pebble certificate served (old: {old:?}); letterbox log:\n{}\nPebble log:\n{}",
            server.log(),
            pebble.log()
        );
        std::thread::sleep(POLL);
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// TLS-ALPN-01 on the HTTPS listener: the certificate is served on IMAPS, SMTPS and
/// HTTPS (autoconfig over TLS), covers the autoconfig names, and is renewed without a
/// restart when two thirds of Pebble's short lifetime have passed.
#[test]
fn a_certificate_from_pebble_is_served_and_renewed_without_a_restart() {
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, https_port, SHORT_VALIDITY_SECS);
    let server = letterbox(&pebble, http_port, Some(https_port), "");
    // The welcome names the HTTPS listener first for autoconfig, then plain HTTP.
    let autoconfig_path = "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=you@";
    let https_line = format!("  Autoconfig:      https://{HOSTNAME}:{https_port}{autoconfig_path}");
    let http_line = format!("                   or http://{HOSTNAME}:{http_port}{autoconfig_path}");
    let welcome = server.output.join("\n");
    assert!(
        welcome.contains(&format!("{https_line}{HOSTNAME}\n{http_line}{HOSTNAME}\n")),
        "{welcome}"
    );

    // Until the CA answers, the self-signed certificate: Python refuses it.
    let (serial, names) = wait_for_certificate(&server, &pebble, None, ISSUE_TIMEOUT);
    assert_eq!(
        names,
        format!("autoconfig.{HOSTNAME},autodiscover.{HOSTNAME},{HOSTNAME}")
    );
    let log = server.log();
    assert!(log.contains("challenge=TlsAlpn01"), "{log}");
    assert!(!log.contains("challenge=Http01"), "{log}");

    // Thunderbird's lookup over HTTPS, checked by curl against Pebble's root.
    let autoconfig = format!("autoconfig.{HOSTNAME}");
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(&pebble.root)
        .args(["--resolve", &format!("{autoconfig}:{https_port}:127.0.0.1")])
        .arg(format!(
            "https://{autoconfig}:{https_port}/mail/config-v1.1.xml?emailaddress=you@{HOSTNAME}"
        ))
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && body.contains(&format!("<hostname>{HOSTNAME}</hostname>")),
        "{body}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let data = server.data_dir().join("acme");
    assert_eq!(mode(&data.join("certificate.pem")), 0o600);
    assert_eq!(mode(&data.join("account.json")), 0o600);
    assert_eq!(mode(&data), 0o700);

    // Renewal at two thirds of the lifetime, by the running server: a new connection
    // gets a certificate with another serial, verified the same way.
    let (renewed, names_after) = wait_for_certificate(
        &server,
        &pebble,
        Some(&serial),
        Duration::from_secs(SHORT_VALIDITY_SECS),
    );
    assert_ne!(renewed, serial);
    assert_eq!(names_after, names);
    let log = server.log();
    assert_eq!(log.matches("ACME: account made").count(), 1, "{log}");
    assert!(log.contains("reason=\"renewal due\""), "{log}");
}

/// HTTP-01 on the HTTP listener when there is no HTTPS listener; the account and the
/// certificate are kept across a restart: the next start serves the same certificate
/// at once and orders nothing.
#[test]
fn http01_works_and_a_restart_reuses_the_account_and_certificate() {
    let http_port = free_port();
    // No HTTPS listener: Pebble's TLS-ALPN-01 validation would find nothing there.
    let pebble = Pebble::start(http_port, free_port(), 90 * 24 * 60 * 60);
    let mut server = letterbox(&pebble, http_port, None, "autoconfig_names = false\n");
    let (serial, names) = wait_for_certificate(&server, &pebble, None, ISSUE_TIMEOUT);
    assert_eq!(names, HOSTNAME);
    let log = server.log();
    assert!(log.contains("challenge=Http01"), "{log}");
    let account = std::fs::read(server.data_dir().join("acme/account.json")).expect("account");

    assert!(server.terminate(), "clean stop");
    let before_restart = server.log().len();
    server.launch();
    // Served from the first handshake on: no waiting.
    let served = probe(&server, &pebble).expect("the kept certificate verifies at once");
    assert_eq!(served, (serial, names));
    // The task looked, found nothing due, and made neither an account nor an order.
    let log = wait_for_log(
        &server,
        before_restart,
        "ACME: the certificate in use is current",
    );
    let restarted = log.get(before_restart..).unwrap_or_default();
    assert!(!restarted.contains("ACME: ordering"), "{restarted}");
    assert!(!restarted.contains("ACME: account made"), "{restarted}");
    assert_eq!(
        std::fs::read(server.data_dir().join("acme/account.json")).expect("account"),
        account
    );
}

/// A CA that cannot be reached: the server starts all the same, serves its self-signed
/// certificate (verified here against that file, for the host name), and logs the
/// failure with the time of the next try.
#[test]
fn an_unreachable_ca_is_logged_and_the_server_serves_its_self_signed_certificate() {
    let unused = tempfile::tempdir().expect("tempdir");
    let ca_bundle = https_certificate(unused.path()).0;
    let directory = format!("https://127.0.0.1:{}/dir", free_port());
    let server = letterbox_with_ca(&directory, &ca_bundle, 0, None, "");
    let self_signed = server.data_dir().join("tls-selfsigned-cert.pem");
    let out = python(
        PROBE,
        &[
            HOSTNAME,
            &server.port("imaps").to_string(),
            &server.port("submissions").to_string(),
            path_str(&self_signed),
        ],
    );
    assert!(
        out.starts_with("imaps ") && out.contains("\nsmtps "),
        "{out}"
    );
    let log = wait_for_log(&server, 0, "ACME: no certificate this time");
    assert!(log.contains("retry_in_secs=300"), "{log}");
    assert!(log.contains(&directory), "the error names the CA: {log}");
}

/// Waits up to [`ISSUE_TIMEOUT`] until the server's log from byte `from` on holds
/// `line`; returns the whole log.
fn wait_for_log(server: &TestServer, from: usize, line: &str) -> String {
    let deadline = Instant::now() + ISSUE_TIMEOUT;
    loop {
        let log = server.log();
        if log.get(from..).unwrap_or_default().contains(line) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {line:?} logged:\n{log}");
        std::thread::sleep(POLL);
    }
}
