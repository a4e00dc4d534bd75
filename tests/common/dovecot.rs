//! A private Dovecot for the differential tests (`tests/imap_dovecot_diff.rs`,
//! `tests/imap_session_diff.rs`): its own config, state, log and Maildir in a temporary
//! directory, one account, listening on 127.0.0.1 only.
//!
//! Needs Debian's `dovecot-imapd` (CI's `.ci/run` installs it; the tests install nothing
//! and fail if it is missing).

use super::path_str;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Dovecot may take to greet on a busy 2-core machine.
const DOVECOT_STARTUP: Duration = Duration::from_secs(30);
pub const DOVECOT_USER: &str = "differ";
pub const DOVECOT_PASSWORD: &str = "differ-secret";

/// A running private Dovecot; SIGTERM and wait on drop.
pub struct Dovecot {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    /// The implicit-TLS listener (RFC 8314 §3.3) of [`Dovecot::start_with_tls`]; 0 when
    /// there is none.
    pub tls_port: u16,
}

impl Dovecot {
    /// Dovecot at its defaults (one Maildir++ namespace).
    pub fn start() -> Dovecot {
        Self::start_with("")
    }

    /// Dovecot serving the Maildir at `maildir` (one `letterbox export maildir` wrote,
    /// say) as its user's mail; the tree is opened to Dovecot's mail user first.
    pub fn start_on_maildir(maildir: &Path) -> Dovecot {
        let status = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(maildir)
            .status()
            .expect("chmod");
        assert!(status.success(), "chmod -R {}", maildir.display());
        // The last value of a setting is the one Dovecot takes.
        Self::start_with(&format!("mail_location = maildir:{}", maildir.display()))
    }

    /// The user's Maildir, as Dovecot writes it.
    pub fn maildir(&self) -> std::path::PathBuf {
        self.dir.path().join("mail").join(DOVECOT_USER)
    }

    /// SIGTERM and wait: the Maildir is then complete and nobody writes to it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM lets the master stop its imap, auth and login processes.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Dovecot with TLS: the certificate `cert` and its key `key` (PEM) served with
    /// STARTTLS on [`Dovecot::port`] and from the first byte on [`Dovecot::tls_port`].
    pub fn start_with_tls(cert: &Path, key: &Path) -> Dovecot {
        Self::start_inner("", Some((cert, key)))
    }

    /// Dovecot with `extra_config` appended to its configuration (e.g. a `namespace`).
    pub fn start_with(extra_config: &str) -> Dovecot {
        Self::start_inner(extra_config, None)
    }

    fn start_inner(extra_config: &str, tls: Option<(&Path, &Path)>) -> Dovecot {
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .find(|path| Path::new(path).exists())
            .unwrap_or_else(|| {
                panic!("dovecot not found: install Debian's dovecot-imapd (CI's .ci/run does)")
            });
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Dovecot's own processes (and the mail user below) must reach the files.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for sub in ["base", "state", "mail", "home"] {
            std::fs::create_dir(root.join(sub)).expect("mkdir");
        }
        for writable in ["mail", "home"] {
            std::fs::set_permissions(root.join(writable), std::fs::Permissions::from_mode(0o777))
                .expect("chmod");
        }
        let passwd = root.join("passwd");
        // user:password:uid:gid:gecos:home:shell: empty uid/gid take mail_uid/mail_gid.
        // A home of its own (which Dovecot creates at login), apart from the Maildir, for
        // settings that name files there (`%h`, e.g. `mail_attribute_dict`).
        std::fs::write(
            &passwd,
            format!(
                "{DOVECOT_USER}:{{PLAIN}}{DOVECOT_PASSWORD}::::{}::\n",
                root.join("home").join(DOVECOT_USER).display()
            ),
        )
        .expect("passwd");
        // Dovecot refuses mail access as uid 0: as root, mail is owned by nobody and
        // the helper processes run as the users the Debian package creates; as anyone
        // else, everything runs as that user.
        let uid = std::fs::metadata(&passwd).expect("stat").uid();
        let (internal_user, login_user, mail_uid, mail_gid) = if uid == 0 {
            ("dovecot".to_owned(), "dovenull".to_owned(), 65534, 65534)
        } else {
            let name = String::from_utf8(
                Command::new("id")
                    .arg("-un")
                    .output()
                    .expect("id -un")
                    .stdout,
            )
            .expect("user name")
            .trim()
            .to_owned();
            let gid = std::fs::metadata(&passwd).expect("stat").gid();
            (name.clone(), name, uid, gid)
        };
        let port = free_port();
        let tls_port = if tls.is_some() { free_port() } else { 0 };
        // Dovecot's config process reads the certificate and key (`<` includes a file).
        let ssl = match tls {
            Some((cert, key)) => format!(
                "ssl = yes\nssl_cert = <{}\nssl_key = <{}",
                path_str(cert),
                path_str(key)
            ),
            None => "ssl = no".to_owned(),
        };
        let path = |name: &str| root.join(name).display().to_string();
        let config = format!(
            "# Private test instance: nothing outside this directory, loopback only.
base_dir = {base}
state_dir = {state}
log_path = {log}
info_log_path = {log}
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {internal_user}
default_login_user = {login_user}
mail_uid = {mail_uid}
mail_gid = {mail_gid}
first_valid_uid = 1
mail_location = maildir:{mail}/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
{extra_config}
",
            base = path("base"),
            state = path("state"),
            log = path("dovecot.log"),
            mail = path("mail"),
            passwd = path_str(&passwd),
        );
        let conf = root.join("dovecot.conf");
        std::fs::write(&conf, config).expect("dovecot.conf");
        let child = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let mut dovecot = Dovecot {
            child: Some(child),
            dir,
            port,
            tls_port,
        };
        dovecot.wait_for_greeting();
        dovecot
    }

    fn wait_for_greeting(&mut self) {
        let deadline = Instant::now() + DOVECOT_STARTUP;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("dovecot exited ({status}); log:\n{}", self.log());
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut greeting = [0u8; 64];
                if let Ok(n) = stream.read(&mut greeting)
                    && greeting[..n].starts_with(b"* OK")
                {
                    let _ = stream.write_all(b"a LOGOUT\r\n");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not greet on port {}; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago: bind 127.0.0.1:0, read it, release it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
