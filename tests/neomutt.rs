//! neomutt (Debian) with the README's muttrc snippet, as a user runs it: in a terminal
//! (tmux), accepting the self-signed certificate once, reading the Inbox and sending.

mod common;

use common::{TestServer, headers_by_mailbox, mail_from_a_friend};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long one screen may take to appear (a debug server on a busy 2-core machine).
const SCREEN_TIMEOUT: Duration = Duration::from_secs(60);

/// A tmux server of the test's own (its own socket), so tests never see each other's panes.
struct Terminal {
    socket: String,
}

impl Terminal {
    fn run(command: &str) -> Terminal {
        let terminal = Terminal {
            socket: format!("letterbox-test-{}", std::process::id()),
        };
        terminal.tmux(&[
            "new-session",
            "-d",
            "-s",
            "mutt",
            "-x",
            "160",
            "-y",
            "40",
            command,
        ]);
        terminal
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "mutt"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.tmux(&["capture-pane", "-p", "-t", "mutt"]);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The muttrc block of the README, pointed at this server's ports.
fn readme_muttrc(server: &TestServer) -> String {
    common::readme_block("```muttrc\n")
        .replace(":2993/", &format!(":{}/", server.port("imaps")))
        .replace(":2465/", &format!(":{}/", server.port("submissions")))
}

#[test]
fn neomutt_with_the_readme_settings_reads_and_sends() {
    let server = TestServer::start();
    mail_from_a_friend(&server, "Hello mutt user");

    let home = tempfile::tempdir().expect("tempdir");
    let home_path = home.path();
    // The README's lines as they are, then what a user types at prompts instead (the
    // password) and an "editor" that writes the body, so the test needs no keystrokes in vi.
    let editor = home_path.join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\necho 'Written in neomutt.' >> \"$1\"\n").expect("editor");
    Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .expect("chmod");
    let muttrc = format!(
        "{}set imap_pass = \"{password}\"\nset smtp_pass = \"{password}\"\nset editor = \"{}\"\n",
        readme_muttrc(&server),
        editor.display(),
        password = server.password,
    );
    let muttrc_path = home_path.join("muttrc");
    std::fs::write(&muttrc_path, muttrc).expect("muttrc");

    let terminal = Terminal::run(&format!(
        "env HOME={} neomutt -n -F {}",
        home_path.display(),
        muttrc_path.display()
    ));
    // The self-signed certificate, shown once; `a` keeps it in certificate_file.
    terminal.wait_for("(r)eject, accept (o)nce, (a)ccept always");
    terminal.keys(&["a"]);
    let index = terminal.wait_for("Hello mutt user");
    assert!(index.contains("+INBOX [Msgs:1 New:1"), "{index}");
    assert!(
        Path::new(home_path).join(".neomutt-certificates").exists(),
        "certificate_file not written"
    );

    // m, To, Subject, (the editor), y: sent through submission with the same certificate.
    terminal.keys(&["m"]);
    terminal.wait_for("To:");
    terminal.keys(&["you@localhost", "Enter"]);
    terminal.wait_for("Subject:");
    terminal.keys(&["Sent from neomutt", "Enter"]);
    let compose = terminal.wait_for("y:Send");
    assert!(
        compose.contains("From: Your Name <you@localhost>"),
        "{compose}"
    );
    terminal.keys(&["y"]);
    // Back in the index once sent; the message comes back to the Inbox as new mail.
    let index = terminal.wait_for("+INBOX [Msgs:2");
    assert!(index.contains("Sent from neomutt"), "{index}");
    terminal.keys(&["q"]);

    let mailboxes = headers_by_mailbox(&server, &["INBOX", "Sent"], "SUBJECT FROM");
    common::assert_contains_all(
        &mailboxes,
        &[
            "INBOX ['From: Your Name <you@localhost> Subject: Sent from neomutt', 'From: friend@example.org Subject: Hello mutt user']",
            "Sent ['From: Your Name <you@localhost> Subject: Sent from neomutt']",
        ],
    );
}
