//! DKIM, SPF and DMARC end to end between two letterbox instances on 127.0.0.1.
//!
//! `a.test` has a DKIM key made with `letterbox dkim generate`, and its outbound static
//! route points at the inbound (port 25 role) listener of `b.test`. `b.test` resolves
//! offline: its `[dns.txt]` overrides are the records `letterbox dns a.test` printed.
//! A user of a.test submits over 587 (STARTTLS) and 465 (implicit TLS) to a user of
//! b.test, who finds the message with `dkim=pass`, `spf=pass` and `dmarc=pass` in
//! b.test's Authentication-Results.
//!
//! Issue 15: on submission, From: and Sender: must be the account's own addresses (or,
//! widened, of its domains), and the DKIM key is that of the account's domain only.

mod common;

use common::{TestServer, inbox_messages, labelled_line, path_str, python};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// How long the relay from a.test to b.test may take (a debug build on a busy 2-core
/// machine; the queue polls every second).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
const ALICE: &str = "alice@a.test";
const ALICE_PASSWORD: &str = "alice-password-1";
const BOB: &str = "bob@b.test";
const BOB_PASSWORD: &str = "bob-password-1";

/// A full configuration (the harness's own has `hostname = "localhost"`).
fn config(server: &TestServer, hostname: &str, extra: &str) -> String {
    format!(
        "hostname = \"{hostname}\"\ndata_dir = \"{}\"\npublic_addresses = [\"127.0.0.1\"]\n\n[listen]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = [\"127.0.0.1:0\"]\nsubmissions = [\"127.0.0.1:0\"]\nimap = [\"127.0.0.1:0\"]\nimaps = [\"127.0.0.1:0\"]\nhttp = [\"127.0.0.1:0\"]\nmanagesieve = [\"127.0.0.1:0\"]\n\n{extra}\n",
        path_str(&server.data_dir())
    )
}

/// Writes `server`'s [`config`] with `hostname` and `extra`, and starts it.
fn launch(server: &mut TestServer, hostname: &str, extra: &str) {
    std::fs::write(&server.config, config(server, hostname, extra)).expect("write config");
    tokio::task::block_in_place(|| server.launch());
}

/// A stopped installation with `domain` and one user on it.
fn installation(domain: &str, email: &str, password: &str) -> TestServer {
    let mut server = TestServer::start();
    assert!(server.terminate(), "clean stop");
    server.admin_ok(&["domain", "add", domain]);
    server.add_user(email, password);
    server
}

/// The TXT records of a zone-file listing as (name without the final dot, text).
fn txt_records(zone: &str) -> Vec<(String, String)> {
    zone.lines()
        .filter(|line| !line.starts_with(';'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.splitn(5, '\t').collect();
            match fields.as_slice() {
                [name, _ttl, "IN", "TXT", data] => {
                    // "part one" "part two" → the joined text (RFC 7208 §3.3).
                    let text: String = data
                        .split('"')
                        .enumerate()
                        .filter(|(i, _)| i % 2 == 1)
                        .map(|(_, part)| part)
                        .collect();
                    Some((name.trim_end_matches('.').to_owned(), text))
                }
                _ => None,
            }
        })
        .collect()
}

async fn submit(server: &TestServer, implicit_tls: bool, raw: &str) {
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build()
        .expect("tls parameters");
    let (port, tls) = if implicit_tls {
        (server.port("submissions"), Tls::Wrapper(tls))
    } else {
        (server.port("submission"), Tls::Required(tls))
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(tls)
        .credentials(Credentials::new(ALICE.into(), ALICE_PASSWORD.into()))
        .build();
    let envelope = Envelope::new(
        Some(ALICE.parse().expect("from")),
        vec![BOB.parse().expect("to")],
    )
    .expect("envelope");
    transport
        .send_raw(&envelope, raw.as_bytes())
        .await
        .expect("submission accepted");
}

/// Waits until `email`'s INBOX holds a message containing `needle`.
async fn wait_for(server: &TestServer, email: &str, needle: &str) -> String {
    let found = common::wait_for_inbox(server, email, DELIVERY_TIMEOUT, |m| {
        String::from_utf8_lossy(m).contains(needle)
    })
    .await;
    String::from_utf8_lossy(&found).into_owned()
}

/// The Authentication-Results field b.test put on `stored`, unfolded.
fn authentication_results(stored: &str) -> String {
    let start = stored
        .find("Authentication-Results: mx.b.test;")
        .unwrap_or_else(|| panic!("no Authentication-Results from mx.b.test:\n{stored}"));
    let field = &stored[start..];
    let end = field.find("\r\nReceived:").expect("Received follows");
    field[..end].replace("\r\n\t", " ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_spf_and_dmarc_pass_between_two_instances() {
    let (mut a, mut b) = tokio::task::block_in_place(|| {
        (
            installation("a.test", ALICE, ALICE_PASSWORD),
            installation("b.test", BOB, BOB_PASSWORD),
        )
    });

    // a.test: a DKIM key from the CLI, then every record it needs.
    std::fs::write(&a.config, config(&a, "mx.a.test", "")).expect("a config");
    let generated = a.admin_ok(&["dkim", "generate", "a.test"]);
    assert!(
        generated.contains("._domainkey.a.test.\t3600\tIN\tTXT\t\"v=DKIM1; k=rsa; p="),
        "{generated}"
    );
    let zone = a.admin_ok(&["dns", "a.test"]);
    for expected in [
        "a.test.\t3600\tIN\tMX\t10 mx.a.test.",
        "a.test.\t3600\tIN\tTXT\t\"v=spf1 ip4:127.0.0.1 mx -all\"",
        "_dmarc.a.test.\t3600\tIN\tTXT\t\"v=DMARC1; p=quarantine; rua=mailto:postmaster@a.test\"",
        "_submissions._tcp.a.test.\t3600\tIN\tSRV\t0 1 465 mx.a.test.",
        "_submission._tcp.a.test.\t3600\tIN\tSRV\t10 1 587 mx.a.test.",
        "_imaps._tcp.a.test.\t3600\tIN\tSRV\t0 1 993 mx.a.test.",
        "_imap._tcp.a.test.\t3600\tIN\tSRV\t10 1 143 mx.a.test.",
        "autoconfig.a.test.\t3600\tIN\tCNAME\tmx.a.test.",
        "autodiscover.a.test.\t3600\tIN\tCNAME\tmx.a.test.",
    ] {
        assert!(
            zone.contains(expected),
            "{expected:?} missing from:\n{zone}"
        );
    }
    let records = txt_records(&zone);
    assert_eq!(records.len(), 3, "SPF, DKIM, DMARC: {records:?}");
    assert!(
        records
            .iter()
            .any(|(name, text)| name.contains("._domainkey.") && text.len() > 300)
    );

    // b.test publishes what `letterbox dns a.test` printed, and nothing else exists.
    let overrides: String = records
        .iter()
        .map(|(name, text)| format!("\"{name}\" = [\"{text}\"]\n"))
        .collect();
    launch(
        &mut b,
        "mx.b.test",
        &format!("[dns]\noffline = true\n\n[dns.txt]\n{overrides}"),
    );

    // a.test relays b.test's mail to b.test's inbound listener.
    launch(
        &mut a,
        "mx.a.test",
        &format!(
            "[outbound]\npoll_interval_secs = 1\nretry_delays_secs = [1]\n\n[outbound.static_routes]\n\"b.test\" = \"127.0.0.1:{}\"\n",
            b.port("smtp")
        ),
    );

    for (implicit_tls, subject) in [(false, "over 587"), (true, "over 465")] {
        let raw = format!(
            "From: Alice <{ALICE}>\r\nTo: Bob <{BOB}>\r\nSubject: {subject}\r\n\r\nSigned, sealed, delivered.\r\n"
        );
        submit(&a, implicit_tls, &raw).await;
        let stored = wait_for(&b, BOB, subject).await;
        assert!(
            stored.contains("DKIM-Signature: v=1; a=rsa-sha256;"),
            "{stored}"
        );
        let results = authentication_results(&stored);
        for expected in [
            "dkim=pass header.d=a.test header.s=lb",
            "spf=pass (mx.b.test: domain of alice@a.test designates 127.0.0.1 as permitted sender) smtp.mailfrom=alice@a.test",
            "dmarc=pass header.from=a.test policy.dmarc=quarantine",
        ] {
            assert!(results.contains(expected), "{expected:?} in {results}");
        }
        // The body arrived unchanged (the signature covers it; lettre adds a CRLF).
        assert!(
            stored.ends_with("\r\n\r\nSigned, sealed, delivered.\r\n\r\n"),
            "{stored:?}"
        );
    }
    assert!(a.terminate(), "a.test stops cleanly");
    assert!(b.terminate(), "b.test stops cleanly");
}

const MALLORY: &str = "mallory@a.test";
const MALLORY_PASSWORD: &str = "mallory-password-1";
const REMOTE: &str = "rcpt@remote.test";

/// Submits as mallory over 587 on loopback (AUTH without TLS is allowed there), one
/// message per `label|envelope sender|From: value` argument (no From: field when the value
/// is empty), to a remote recipient and to alice@a.test; prints `label code text`.
const SMTPLIB_SEND_AS: &str = r#"
import smtplib, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP("127.0.0.1", port)
s.login(user, password)
for case in sys.argv[4:]:
    label, mail_from, from_value = case.split("|")
    head = ("From: %s\r\n" % from_value) if from_value else ""
    message = head + "To: rcpt@remote.test\r\nSubject: %s\r\n\r\nbody\r\n" % label
    try:
        s.sendmail(mail_from, ["rcpt@remote.test", "alice@a.test"], message.encode())
        print(label, 250)
    except smtplib.SMTPDataError as e:
        print(label, e.smtp_code, e.smtp_error.decode())
s.quit()
"#;

fn send_as(server: &TestServer, cases: &[&str]) -> String {
    let port = server.port("submission").to_string();
    let mut args = vec![port.as_str(), MALLORY, MALLORY_PASSWORD];
    args.extend_from_slice(cases);
    tokio::task::block_in_place(|| python(SMTPLIB_SEND_AS, &args))
}

/// Checks that `stored` (as received at remote.test) is signed with d=a.test and that
/// the signature verifies there.
fn assert_signed_for_a_test(label: &str, stored: &str) {
    let (signature, results) = dkim_of(stored);
    assert!(signature.contains(" d=a.test;"), "{label}: {signature}");
    assert!(
        results.contains("dkim=pass header.d=a.test"),
        "{label}: {results}"
    );
}

/// The `DKIM-Signature:` and `Authentication-Results:` of a message as received,
/// unfolded.
fn dkim_of(stored: &str) -> (String, String) {
    let unfolded = stored.replace("\r\n\t", " ").replace("\r\n ", " ");
    let field = |name: &str| {
        unfolded
            .lines()
            .filter(|line| line.starts_with(name))
            .collect::<Vec<_>>()
            .join("\n")
    };
    (
        field("DKIM-Signature:"),
        field("Authentication-Results: mx.remote.test;"),
    )
}

/// Issue 15: mallory@a.test, on a server that also hosts b.test (with DKIM keys for
/// both), cannot put ceo@b.test or alice@a.test in From: (550 5.7.1, nothing queued or
/// delivered), nor leave From: out (550 5.6.0); her own address, her alias and the null
/// reverse-path go out signed with d=a.test. Widened to her domains, any a.test address
/// goes, b.test still not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_sends_only_as_the_account_and_signs_for_its_domain() {
    let (mut a, mut r) = tokio::task::block_in_place(|| {
        (
            installation("a.test", MALLORY, MALLORY_PASSWORD),
            installation("remote.test", REMOTE, "rcpt-password-1"),
        )
    });
    a.admin_ok(&["domain", "add", "b.test"]);
    a.add_user("ceo@b.test", "ceo-password-1");
    a.add_user("alice@a.test", "alice-password-1");
    a.admin_ok(&["alias", "add", "sales@a.test", MALLORY]);
    let mut overrides = String::new();
    for domain in ["a.test", "b.test"] {
        a.admin_ok(&["dkim", "generate", domain]);
        for (name, text) in txt_records(&a.admin_ok(&["dns", domain])) {
            overrides.push_str(&format!("\"{name}\" = [\"{text}\"]\n"));
        }
    }
    launch(
        &mut r,
        "mx.remote.test",
        &format!("[dns]\noffline = true\n\n[dns.txt]\n{overrides}"),
    );
    let route = format!(
        "[outbound]\npoll_interval_secs = 1\nretry_delays_secs = [1]\n\n[outbound.static_routes]\n\"remote.test\" = \"127.0.0.1:{}\"\n",
        r.port("smtp")
    );
    launch(&mut a, "mx.a.test", &route);

    let out = send_as(
        &a,
        &[
            "other-domain|mallory@a.test|CEO <ceo@b.test>",
            "same-domain|mallory@a.test|Alice <alice@a.test>",
            "null-sender-foreign|| ceo@b.test",
            "no-from|mallory@a.test|",
        ],
    );
    for label in ["other-domain", "same-domain", "null-sender-foreign"] {
        let line = labelled_line(&out, label);
        assert!(line.starts_with(&format!("{label} 550 5.7.1 ")), "{out}");
    }
    assert!(
        labelled_line(&out, "other-domain")
            .contains("ceo@b.test is not an address of mallory@a.test"),
        "{out}"
    );
    assert!(
        labelled_line(&out, "no-from").starts_with("no-from 550 5.6.0 "),
        "{out}"
    );
    let queue = a.admin_ok(&["queue", "list"]);
    assert!(queue.contains("queue is empty"), "{queue}");
    assert!(inbox_messages(&a, "alice@a.test").await.is_empty());
    assert!(inbox_messages(&a, "ceo@b.test").await.is_empty());

    let out = send_as(
        &a,
        &[
            "own-address|mallory@a.test|Mallory <mallory@a.test>",
            "alias|mallory@a.test|Sales <sales@a.test>",
            "null-sender||mallory@a.test",
        ],
    );
    for label in ["own-address", "alias", "null-sender"] {
        assert!(
            labelled_line(&out, label).starts_with(&format!("{label} 250")),
            "{out}"
        );
        let stored = wait_for(&r, REMOTE, &format!("Subject: {label}")).await;
        assert_signed_for_a_test(label, &stored);
    }
    assert_eq!(inbox_messages(&a, "alice@a.test").await.len(), 3);
    // The refused ones never went anywhere.
    for stored in inbox_messages(&r, REMOTE).await {
        let text = String::from_utf8_lossy(&stored);
        for refused in [
            "other-domain",
            "same-domain",
            "null-sender-foreign",
            "no-from",
        ] {
            assert!(!text.contains(&format!("Subject: {refused}\r\n")), "{text}");
        }
        assert!(!text.contains("d=b.test"), "{text}");
    }

    // Widened: any address of a.test, still nothing of b.test.
    assert!(a.terminate(), "clean stop");
    let widened = format!("[submission]\nfrom_own_domains = true\n\n{route}");
    launch(&mut a, "mx.a.test", &widened);
    let out = send_as(
        &a,
        &[
            "widened-foreign|mallory@a.test|CEO <ceo@b.test>",
            "widened-same-domain|mallory@a.test|Boss <boss@a.test>",
        ],
    );
    assert!(
        labelled_line(&out, "widened-foreign").starts_with("widened-foreign 550 5.7.1 "),
        "{out}"
    );
    assert!(
        labelled_line(&out, "widened-same-domain").starts_with("widened-same-domain 250"),
        "{out}"
    );
    let stored = wait_for(&r, REMOTE, "Subject: widened-same-domain").await;
    assert_signed_for_a_test("widened-same-domain", &stored);
    assert!(
        !inbox_messages(&r, REMOTE)
            .await
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains("widened-foreign")),
        "the foreign From: went out"
    );
    assert!(a.terminate(), "a.test stops cleanly");
    assert!(r.terminate(), "remote.test stops cleanly");
}
