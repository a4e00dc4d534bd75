//! QUOTA (RFC 9208) through Python's imaplib: the limit the administrator sets with
//! `letterbox user quota` shows in GETQUOTAROOT and GETQUOTA, usage grows with delivered
//! mail, an APPEND over the limit is refused with [OVERQUOTA], STATUS DELETED-STORAGE
//! says what an EXPUNGE would free, and SETQUOTA is refused.

mod common;

use common::{TestServer, Transcript, python_client};

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
phase = sys.argv[5]
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)
if phase == "limited":
    assert "QUOTA" in m.capabilities and "QUOTA=RES-STORAGE" in m.capabilities, m.capabilities
    print("root-empty", m.getquotaroot("INBOX"))
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    s.sendmail("sender@example.net", [user], b"Subject: three kilobytes\r\n\r\n" + b"x" * 3000 + b"\r\n")
    s.quit()
    print("quota-after-delivery", m.getquota('""'))
    try:
        print("append-over", m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"y" * 9000 + b"\r\n"))
    except imaplib.IMAP4.error as e:
        print("append-over", "error", e)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    print("status", m.status("INBOX", "(DELETED DELETED-STORAGE)"))
    print("setquota", m.setquota('""', "(STORAGE 99999)"))
else:
    print("root-unlimited", m.getquotaroot("INBOX"))
    print("quota-unlimited", m.getquota('""'))
    try:
        print("root-missing", m.getquotaroot("Nope"))
    except imaplib.IMAP4.error as e:
        print("root-missing", "error", e)
m.logout()
"#;

/// Sets the account's quota with the CLI (`limit`: bytes, or `none`), checks that its
/// answer says `said`, and runs [`SESSION`] in `phase`.
fn session_with_quota(server: &TestServer, limit: &str, said: &str, phase: &str) -> Transcript {
    let answer = server.admin_ok(&["user", "quota", &server.email, limit]);
    assert!(answer.contains(said), "{answer}");
    Transcript(python_client(server, SESSION, &[phase]))
}

#[test]
fn imaplib_sees_the_quota_the_administrator_sets() {
    let server = TestServer::start();
    let out = session_with_quota(&server, "10240", "10240 bytes", "limited");
    assert_eq!(
        out.line("root-empty"),
        "root-empty ('OK', [[b'\"INBOX\" \"\"'], [b'\"\" (STORAGE 0 10)']])"
    );
    // About 3 KB of mail (with its trace headers) against a 10 KB limit.
    let after = out.line("quota-after-delivery");
    let used_kb: u32 = after
        .split("(STORAGE ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no STORAGE usage in {after}"));
    assert!((3..=4).contains(&used_kb), "{after}");
    assert!(
        after.contains(&format!("(STORAGE {used_kb} 10)")),
        "{after}"
    );
    common::assert_contains_all(&out.line("append-over"), &["'NO'", "OVERQUOTA"]);
    let status = out.line("status");
    assert!(
        status.contains(&format!("DELETED 1 DELETED-STORAGE {used_kb}")),
        "{status}"
    );
    common::assert_contains_all(&out.line("setquota"), &["'NO'", "NOPERM"]);

    // An SMTP delivery over the limit is refused too (RFC 3463 X.2.2, mailbox full).
    let refused = std::process::Command::new("swaks")
        .args([
            "--server",
            &server.addr("smtp").to_string(),
            "--to",
            &server.email,
            "--from",
            "sender@example.net",
            "--body",
            &"z".repeat(12_000),
        ])
        .output()
        .expect("run swaks");
    let transcript = String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success() && transcript.contains("552 5.2.2"),
        "{transcript}"
    );

    let out = session_with_quota(&server, "none", "lifted", "unlimited");
    assert_eq!(
        out.line("root-unlimited"),
        "root-unlimited ('OK', [[b'\"INBOX\"'], [None]])"
    );
    common::assert_contains_all(&out.line("quota-unlimited"), &["'NO'", "NONEXISTENT"]);
    assert!(out.line("root-missing").contains("NONEXISTENT"), "{out}");
}
