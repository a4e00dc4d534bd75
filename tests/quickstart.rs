//! The first minute: `letterbox serve` on a new installation, the admin CLI beside a
//! running server, config errors, graceful shutdown.

mod common;

use common::{TestServer, letterbox_bin, python};
use std::process::Command;

#[test]
fn first_start_prints_an_account_and_every_listener() {
    let server = TestServer::start();
    assert_eq!(server.email, "you@localhost");
    assert_eq!(server.password.len(), 20);
    for listener in ["smtp", "submission", "submissions", "imap", "imaps", "http"] {
        assert_ne!(server.port(listener), 0, "{listener} not bound");
    }
    // The autoconfig URL beside the manual settings, and it answers.
    let autoconfig = format!(
        "http://localhost:{}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=you@localhost",
        server.port("http")
    );
    assert!(
        server
            .output
            .iter()
            .any(|line| line.trim() == format!("Autoconfig:      {autoconfig}")),
        "{:#?}",
        server.output
    );
    let document = python(
        "import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode())",
        &[&autoconfig.replace("localhost:", "127.0.0.1:")],
    );
    assert!(
        document.contains(&format!("<port>{}</port>", server.port("imaps"))),
        "{document}"
    );
    let users = server.admin_ok(&["user", "list"]);
    assert!(users.contains("you@localhost"), "{users}");
    assert!(server.data_dir().join("tls-selfsigned-cert.pem").exists());
    // The log goes to a file here, not a terminal: plain text, no colour codes.
    let log = server.log();
    for listener in [
        "SMTP listener started",
        "IMAP listener started",
        "HTTP listener started",
    ] {
        assert!(log.contains(listener), "no {listener:?} in {log}");
    }
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log}");
}

/// A first start that cannot bind (a port in use) makes no account; the next start that
/// binds makes it and prints its password, so the password is never lost.
#[test]
fn a_first_start_on_a_busy_port_loses_no_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("letterbox.toml");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = |imap: &str| {
        format!(
            "hostname = \"localhost\"\ndata_dir = \"{}\"\n[listen]\nsmtp = [\"127.0.0.1:0\"]\n\
             submission = [\"127.0.0.1:0\"]\nsubmissions = [\"127.0.0.1:0\"]\nimap = [\"{imap}\"]\n\
             imaps = [\"127.0.0.1:0\"]\nhttp = [\"127.0.0.1:0\"]\nmanagesieve = [\"127.0.0.1:0\"]\n",
            dir.path().join("data").display()
        )
    };
    let busy_address = busy.local_addr().expect("address").to_string();
    std::fs::write(&path, config(&busy_address)).expect("write");
    let failed = letterbox_with(&path, "serve");
    assert!(!failed.status.success());
    let error = String::from_utf8_lossy(&failed.stderr);
    assert!(error.contains("cannot listen for imap"), "{error}");
    assert!(
        !String::from_utf8_lossy(&failed.stdout).contains("Password:"),
        "a password was printed by a start that did not run"
    );
    drop(busy);

    std::fs::write(&path, config("127.0.0.1:0")).expect("write");
    let mut child = Command::new(letterbox_bin())
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start letterbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut welcome = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("read");
        if line == "ready" {
            break;
        }
        welcome.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let password = welcome
        .iter()
        .find_map(|line| line.trim().strip_prefix("Password:"))
        .map(str::trim);
    assert_eq!(password.map(str::len), Some(20), "{welcome:#?}");
}

/// The quickstart certificate is one a client can be told to trust: Python's ssl, given
/// it as its only CA, verifies it for `localhost` and for 127.0.0.1 (an IP SAN), and it
/// is named after the host and valid for at most 825 days (what Apple accepts).
#[test]
fn the_quickstart_certificate_verifies_for_the_host_name_and_the_loopback_address() {
    let server = TestServer::start();
    let cert = server.data_dir().join("tls-selfsigned-cert.pem");
    let answer = python(
        "import ssl, socket, sys, time
cert, port = sys.argv[1], int(sys.argv[2])
for name in ['localhost', '127.0.0.1']:
    ctx = ssl.create_default_context(cafile=cert)
    with socket.create_connection(('127.0.0.1', port), timeout=30) as sock:
        with ctx.wrap_socket(sock, server_hostname=name) as tls:
            peer = tls.getpeercert()
            subject = dict(item[0] for item in peer['subject'])
            days = (ssl.cert_time_to_seconds(peer['notAfter']) - time.time()) / 86400
            sans = sorted(value for _, value in peer['subjectAltName'])
            print(name, 'verified', subject['commonName'], round(days), ','.join(sans))",
        &[common::path_str(&cert), &server.port("imaps").to_string()],
    );
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(
        lines,
        [
            "localhost verified localhost 825 0:0:0:0:0:0:0:1,127.0.0.1,localhost",
            "127.0.0.1 verified localhost 825 0:0:0:0:0:0:0:1,127.0.0.1,localhost",
        ],
        "{answer}"
    );
}

/// The welcome text in the README is what the first start prints, line for line, with
/// this run's password, ports and data directory put back to the README's.
#[test]
fn the_readme_shows_the_welcome_the_server_prints() {
    let server = TestServer::start();
    let block = common::readme_block("prints what to type into a mail client:\n\n```\n");
    let quickstart_ports = [
        ("imaps", 2993),
        ("imap", 2143),
        ("submissions", 2465),
        ("submission", 2587),
        ("smtp", 2525),
        ("http", 2080),
        ("managesieve", 24190),
    ];
    let readme_password = block
        .lines()
        .find_map(|line| line.trim().strip_prefix("Password:"))
        .map(str::trim)
        .expect("password line");
    let data_dir = server.data_dir();
    let mut printed = String::new();
    for line in server
        .output
        .iter()
        .take_while(|line| !line.starts_with("listening "))
    {
        let mut line = line
            .replace(&server.password, readme_password)
            .replace(&data_dir.display().to_string(), "./letterbox-data");
        for (listener, port) in quickstart_ports {
            for after in [",", " "] {
                line = line.replace(
                    &format!("port {}{after}", server.port(listener)),
                    &format!("port {port}{after}"),
                );
            }
            line = line.replace(
                &format!("localhost:{}/", server.port(listener)),
                &format!("localhost:{port}/"),
            );
        }
        printed.push_str(&line);
        printed.push('\n');
    }
    assert_eq!(block.trim_end(), printed.trim_end());
}

#[test]
fn admin_commands_work_while_the_server_runs() {
    let server = TestServer::start();
    server.admin_ok(&["domain", "add", "example.org"]);
    server.add_user("carol@example.org", "secret-carol");
    server.admin_ok(&["alias", "add", "info@example.org", "carol@example.org"]);
    let aliases = server.admin_ok(&["alias", "list"]);
    assert!(
        aliases.contains("info@example.org -> carol@example.org"),
        "{aliases}"
    );
    let domains = server.admin_ok(&["domain", "list"]);
    assert_eq!(domains, "example.org\nlocalhost\n");
    let generated = server.admin_ok(&["user", "add", "dave@example.org"]);
    assert!(generated.contains("password: "), "{generated}");
    let refused = server.admin(&["user", "add", "eve@unknown.org"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("domain unknown.org not found"));
    server.admin_ok(&["user", "remove", "dave@example.org"]);
    assert!(!server.admin_ok(&["user", "list"]).contains("dave@"));
}

#[test]
fn a_restart_keeps_the_account_and_prints_no_new_password() {
    let mut server = TestServer::start();
    assert!(server.terminate(), "SIGTERM did not end the server cleanly");
    let first_password = server.password.clone();
    server.password.clear();
    server.launch();
    assert!(
        server.password.is_empty(),
        "a second start made another account"
    );
    assert!(server.admin_ok(&["user", "list"]).contains("you@localhost"));
    assert!(!first_password.is_empty());
}

#[test]
fn a_bad_config_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "hostname = \"mx.example.org\"\n[limits]\nmax_mesage_size = 1000\n",
    )
    .expect("write");
    let output = letterbox_with(&path, "check-config");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("bad.toml") && error.contains("max_mesage_size"),
        "{error}"
    );

    std::fs::write(&path, "[limits]\nmax_recipients = \"many\"\n").expect("write");
    let output = letterbox_with(&path, "serve");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("max_recipients"), "{error}");
}

#[test]
fn check_config_shows_the_http_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("letterbox.toml");
    std::fs::write(&path, "[listen]\nhttp = [\"127.0.0.1:8080\"]\n").expect("write");
    let output = letterbox_with(&path, "check-config");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("http: [127.0.0.1:8080]"), "{text}");
}

/// The README's sample configuration, every table in it, is one `check-config` accepts.
#[test]
fn the_readme_sample_configuration_is_valid() {
    let sample = common::readme_block("```toml\n");
    for table in [
        "[listen]",
        "[tls]",
        "[acme]",
        "[limits]",
        "[submission]",
        "[outbound]",
        "[inbound]",
        "[dns]",
    ] {
        assert!(sample.contains(table), "the sample has no {table}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("letterbox.toml");
    std::fs::write(&path, sample).expect("write");
    let output = letterbox_with(&path, "check-config");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `letterbox --config PATH COMMAND` to its end.
fn letterbox_with(path: &std::path::Path, command: &str) -> std::process::Output {
    Command::new(letterbox_bin())
        .arg("--config")
        .arg(path)
        .arg(command)
        .output()
        .expect("run letterbox")
}

/// Mail and password hashes are the owner's alone, whatever the umask: the data
/// directory is 0700 and the SQLite database 0600, also when an earlier start left
/// them readable by others.
#[test]
fn the_data_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut server = TestServer::start();
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let data = server.data_dir();
    let database = data.join("letterbox.sqlite");
    if server.storage.is_some() {
        // PostgreSQL: only the directory is ours.
        assert_eq!(mode(&data), 0o700);
        return;
    }
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&database), 0o600);
    // Opened up by hand (or by an older version): the next start narrows them again.
    assert!(server.terminate(), "server did not stop cleanly");
    for path in [&data, &database] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    server.launch();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&database), 0o600);
}
