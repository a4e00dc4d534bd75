//! DKIM, SPF and DMARC end to end between two letterbox instances on 127.0.0.1.
//!
//! `a.test` has a DKIM key made with `letterbox dkim generate`, and its outbound static
//! route points at the inbound (port 25 role) listener of `b.test`. `b.test` resolves
//! offline: its `[dns.txt]` overrides are the records `letterbox dns a.test` printed.
//! A user of a.test submits over 587 (STARTTLS) and 465 (implicit TLS) to a user of
//! b.test, who finds the message with `dkim=pass`, `spf=pass` and `dmarc=pass` in
//! b.test's Authentication-Results.

mod common;

use common::{TestServer, inbox_messages, path_str};
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
        "hostname = \"{hostname}\"\ndata_dir = \"{}\"\npublic_addresses = [\"127.0.0.1\"]\n\n[listen]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = [\"127.0.0.1:0\"]\nsubmissions = [\"127.0.0.1:0\"]\nimap = [\"127.0.0.1:0\"]\nimaps = [\"127.0.0.1:0\"]\nhttp = [\"127.0.0.1:0\"]\n\n{extra}\n",
        path_str(&server.data_dir())
    )
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
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        if let Some(found) = inbox_messages(server, email)
            .await
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .find(|m| m.contains(needle))
        {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message with {needle:?} for {email}; b.test log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    std::fs::write(
        &b.config,
        config(
            &b,
            "mx.b.test",
            &format!("[dns]\noffline = true\n\n[dns.txt]\n{overrides}"),
        ),
    )
    .expect("b config");
    tokio::task::block_in_place(|| b.launch());

    // a.test relays b.test's mail to b.test's inbound listener.
    std::fs::write(
        &a.config,
        config(
            &a,
            "mx.a.test",
            &format!(
                "[outbound]\npoll_interval_secs = 1\nretry_delays_secs = [1]\n\n[outbound.static_routes]\n\"b.test\" = \"127.0.0.1:{}\"\n",
                b.port("smtp")
            ),
        ),
    )
    .expect("a config");
    tokio::task::block_in_place(|| a.launch());

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
