//! A new user's first minutes with Thunderbird 153 (Debian's ESR) against the quickstart:
//! the Account Hub a fresh profile opens, autoconfig, the security exception for the
//! self-signed certificate, the Inbox, and sending. Thunderbird runs for real under Xvfb;
//! tests/clients/thunderbird_account_hub.py clicks through it over Marionette.

mod common;

use common::{TestServer, headers_by_mailbox, mail_from_a_friend};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// Thunderbird under `xvfb-run`, in a process group of its own so that dropping it stops
/// Xvfb, Thunderbird and its content processes together.
struct Thunderbird {
    child: Child,
}

impl Thunderbird {
    fn start(profile: &std::path::Path) -> Thunderbird {
        let child = Command::new("xvfb-run")
            .args([
                "-a",
                "thunderbird",
                "--marionette",
                "-remote-allow-system-access",
            ])
            .arg("--profile")
            .arg(profile)
            .arg("--no-remote")
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start xvfb-run thunderbird (Debian packages xvfb, xauth, thunderbird)");
        Thunderbird { child }
    }
}

impl Drop for Thunderbird {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

#[test]
fn thunderbird_sets_up_the_account_in_its_account_hub_reads_and_sends() {
    let server = TestServer::start();
    // A message from elsewhere waits in the Inbox before the account is set up.
    mail_from_a_friend(&server, "Welcome aboard");

    // The README's step for the quickstart: Thunderbird looks up `localhost`'s settings on
    // letterbox's HTTP listener (mailnews.auto_config_url), set before the first start.
    let profile = tempfile::tempdir().expect("tempdir");
    let marionette_port = free_port();
    std::fs::write(
        profile.path().join("user.js"),
        format!(
            "user_pref(\"marionette.port\", {marionette_port});\n\
             user_pref(\"mailnews.auto_config_url\", \"http://localhost:{}/mail/config-v1.1.xml?domain=\");\n\
             user_pref(\"datareporting.policy.dataSubmissionEnabled\", false);\n",
            server.port("http")
        ),
    )
    .expect("write user.js");
    let _thunderbird = Thunderbird::start(profile.path());

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/thunderbird_account_hub.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .args([
            &marionette_port.to_string(),
            &server.email,
            &server.password,
            &server.port("submissions").to_string(),
            "Welcome aboard",
        ])
        .output()
        .expect("run python3");
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Thunderbird script failed:\n{seen}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    println!("{seen}");

    // What autoconfig gave the Account Hub: implicit TLS, the full address as user name.
    let imaps = server.port("imaps");
    let submissions = server.port("submissions");
    assert!(
        seen.contains(&format!(
            "imap server: imap://you%40localhost@localhost port {imaps} user you@localhost socket type 3"
        )),
        "{seen}"
    );
    assert!(
        seen.contains(&format!(
            "smtp server: localhost port {submissions} user you@localhost socket type 3"
        )),
        "{seen}"
    );
    // The special-use folders it found (RFC 6154), and the waiting message in the list.
    common::assert_contains_all(
        &seen,
        &[
            "folders: INBOX, Archive, Drafts, Junk, Sent, Trash",
            "inbox row: Welcome aboard | friend@example.org",
            // Thunderbird offers the exception for IMAP only: sending fails until the SMTP port has
            // one too (the README tells the user how), then goes through.
            "first send: error: Sending of the message failed. The certificate is not trusted because it is self-signed.",
            "second send: sent",
        ],
    );

    // The message went out through submission, was delivered, and Thunderbird saved its
    // copy in Sent with IMAP APPEND.
    let mailboxes = headers_by_mailbox(&server, &["INBOX", "Sent"], "SUBJECT");
    common::assert_contains_all(
        &mailboxes,
        &[
            "INBOX ['Subject: Welcome aboard', 'Subject: Welcome aboard (sent from Thunderbird)']",
            "Sent ['Subject: Welcome aboard (sent from Thunderbird)']",
        ],
    );
}
