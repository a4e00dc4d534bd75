//! The HTTP listener with real clients: Python's urllib fetches the Thunderbird and Apple
//! documents and parses them with xml.etree and plistlib, curl posts the Outlook
//! autodiscover request, and Python's prometheus_client parses `/metrics` around mail
//! sent with smtplib and read with imaplib.

mod common;

use common::{TestServer, python};
use std::collections::HashMap;
use std::process::Command;

/// GET (or POST with a body) and print `STATUS CONTENT-TYPE` on one line, then the body;
/// an error status is an answer, not an exception. argv: url, [host header], [body].
const FETCH: &str = r#"
import sys, urllib.request, urllib.error
url = sys.argv[1]
host = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
body = sys.argv[3].encode() if len(sys.argv) > 3 else None
request = urllib.request.Request(url, data=body)
if host:
    request.add_header("Host", host)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        status, ctype, data = response.status, response.headers.get("Content-Type"), response.read()
except urllib.error.HTTPError as error:
    status, ctype, data = error.code, error.headers.get("Content-Type"), error.read()
sys.stdout.write(f"{status} {ctype}\n")
sys.stdout.buffer.write(data)
"#;

/// The Thunderbird document as JSON: provider id, then each server's fields.
const THUNDERBIRD: &str = r#"
import json, sys, urllib.request
import xml.etree.ElementTree as ET
request = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    request.add_header("Host", sys.argv[2])
with urllib.request.urlopen(request, timeout=30) as response:
    root = ET.fromstring(response.read())
assert root.tag == "clientConfig" and root.get("version") == "1.1", root.tag
provider = root.find("emailProvider")
servers = []
for server in provider:
    if server.tag in ("incomingServer", "outgoingServer"):
        fields = {child.tag: child.text for child in server}
        fields["kind"] = server.tag + ":" + server.get("type")
        servers.append(fields)
print(json.dumps({"id": provider.get("id"), "domain": provider.find("domain").text, "servers": servers}))
"#;

/// Outlook's POX request, as Outlook sends it.
fn autodiscover_request(email: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\n  <Request>\n    <EMailAddress>{email}</EMailAddress>\n    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\n  </Request>\n</Autodiscover>\n"
    )
}

/// Parses an autodiscover response from stdin; prints JSON of its protocols.
const AUTODISCOVER_PARSE: &str = r#"
import json, sys
import xml.etree.ElementTree as ET
ns = {"a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
      "r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
root = ET.fromstring(sys.stdin.buffer.read())
assert root.tag == "{%s}Autodiscover" % ns["a"], root.tag
account = root.find("r:Response/r:Account", ns)
out = {"type": account.find("r:AccountType", ns).text, "action": account.find("r:Action", ns).text}
for protocol in account.findall("r:Protocol", ns):
    fields = {child.tag.split("}")[1]: child.text for child in protocol}
    out[fields["Type"]] = fields
print(json.dumps(out))
"#;

/// Fetches the Apple profile; prints its content type and the plist as JSON.
const APPLE: &str = r#"
import json, plistlib, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    ctype = response.headers.get("Content-Type")
    profile = plistlib.loads(response.read())
print(json.dumps({"content_type": ctype, "profile": profile}))
"#;

/// Scrapes `/metrics` and parses it with prometheus_client; prints one line per sample:
/// `name{label="value",...} value`, labels sorted.
const SCRAPE: &str = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    assert response.headers.get("Content-Type").startswith("text/plain"), response.headers
    text = response.read().decode()
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        print(f"{sample.name}{{{labels}}} {sample.value}")
"#;

/// Sends one message to the inbound (port 25 role) listener, then fails a login on the
/// submission port.
const SMTPLIB: &str = r#"
import base64, smtplib, sys
smtp_port, submission_port = int(sys.argv[1]), int(sys.argv[2])
with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as s:
    s.ehlo("client.test")
    refused = s.sendmail("sender@client.test", ["you@localhost"], b"Subject: metrics\r\n\r\nhello\r\n")
    assert refused == {}, refused
with smtplib.SMTP("127.0.0.1", submission_port, timeout=30) as s:
    s.ehlo("client.test")
    # One AUTH PLAIN (RFC 4616) by hand: login() would go on to try LOGIN as well.
    credentials = base64.b64encode(b"\0you@localhost\0not the password").decode()
    code, _ = s.docmd("AUTH", "PLAIN " + credentials)
    print("smtp auth refused", code)
"#;

/// Reads the message with imaplib, after one failed LOGIN on another connection.
const IMAPLIB: &str = r#"
import imaplib, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
bad = imaplib.IMAP4("127.0.0.1", port)
try:
    bad.login(user, "not the password")
    raise SystemExit("login with a wrong password succeeded")
except imaplib.IMAP4.error:
    print("imap login refused")
bad.logout()
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
typ, data = imap.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
typ, data = imap.fetch("1", "(RFC822)")
assert typ == "OK" and b"Subject: metrics" in data[0][1], (typ, data)
imap.logout()
print("imap read")
"#;

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr("http"))
}

/// `(status line, body)` of a request.
fn fetch(url: &str, host: Option<&str>, body: Option<&str>) -> (String, String) {
    let mut args = vec![url, host.unwrap_or("")];
    if let Some(body) = body {
        args.push(body);
    }
    let out = python(FETCH, &args);
    let (status, body) = out.split_once('\n').unwrap_or((&out, ""));
    (status.to_owned(), body.to_owned())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// POSTs an autodiscover request with curl; returns the HTTP status and the body.
fn curl_autodiscover(server: &TestServer, path: &str, body: &str) -> (u16, String) {
    let text = common::succeeded(
        "curl",
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "30"])
            .args(["--header", "Content-Type: text/xml"])
            .args(["--data-binary", body])
            .args(["--write-out", "\n%{http_code}"])
            .arg(url(server, path)),
    );
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_owned())
}

fn parse_autodiscover(body: &str) -> serde_json::Value {
    let output = common::run_with_input(
        Command::new("python3").args(["-c", AUTODISCOVER_PARSE]),
        body.as_bytes(),
    );
    assert!(
        output.status.success(),
        "{}\n{body}",
        String::from_utf8_lossy(&output.stderr)
    );
    json(&String::from_utf8_lossy(&output.stdout))
}

#[test]
fn thunderbird_autoconfig_names_our_host_ports_and_tls_modes() {
    let server = TestServer::start();
    let expected = serde_json::json!({
        "id": "localhost",
        "domain": "localhost",
        "servers": [
            {"kind": "incomingServer:imap", "hostname": "localhost", "port": server.port("imaps").to_string(),
             "socketType": "SSL", "username": "%EMAILADDRESS%", "authentication": "password-cleartext"},
            {"kind": "incomingServer:imap", "hostname": "localhost", "port": server.port("imap").to_string(),
             "socketType": "STARTTLS", "username": "%EMAILADDRESS%", "authentication": "password-cleartext"},
            {"kind": "outgoingServer:smtp", "hostname": "localhost", "port": server.port("submissions").to_string(),
             "socketType": "SSL", "username": "%EMAILADDRESS%", "authentication": "password-cleartext"},
            {"kind": "outgoingServer:smtp", "hostname": "localhost", "port": server.port("submission").to_string(),
             "socketType": "STARTTLS", "username": "%EMAILADDRESS%", "authentication": "password-cleartext"},
        ],
    });
    let well_known = url(
        &server,
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=you%40localhost",
    );
    assert_eq!(json(&python(THUNDERBIRD, &[&well_known])), expected);
    // The autoconfig.DOMAIN form, with the domain only in the Host header.
    let host_form = url(&server, "/mail/config-v1.1.xml");
    assert_eq!(
        json(&python(THUNDERBIRD, &[&host_form, "autoconfig.localhost"])),
        expected
    );

    // The README's Thunderbird lookup URL: Thunderbird appends the domain to it.
    let lookup = url(&server, "/mail/config-v1.1.xml?domain=localhost");
    let host = format!("localhost:{}", server.port("http"));
    assert_eq!(json(&python(THUNDERBIRD, &[&lookup, &host])), expected);
    // The same asked of the server's IP address: the domain comes from the query.
    assert_eq!(json(&python(THUNDERBIRD, &[&lookup])), expected);
    assert!(
        fetch(
            &url(&server, "/mail/config-v1.1.xml?domain=example.org"),
            None,
            None
        )
        .0
        .starts_with("404")
    );
    assert!(
        fetch(
            &url(&server, "/mail/config-v1.1.xml?domain=a%20b"),
            None,
            None
        )
        .0
        .starts_with("400")
    );

    // An address with no account gets exactly the same document.
    let (status, existing) = fetch(&well_known, None, None);
    assert!(status.starts_with("200 application/xml"), "{status}");
    let nobody = url(
        &server,
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=nobody%40localhost",
    );
    assert_eq!(fetch(&nobody, None, None), (status, existing));

    // A domain we do not host, and addresses that are not addresses.
    let other = url(
        &server,
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=you%40example.org",
    );
    assert!(fetch(&other, None, None).0.starts_with("404"));
    assert!(
        fetch(&host_form, Some("autoconfig.example.org"), None)
            .0
            .starts_with("404")
    );
    for bad in [
        "you",
        "you%40",
        "%3Cscript%3E%40localhost",
        "a%20b%40localhost",
    ] {
        let bad = url(
            &server,
            &format!("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={bad}"),
        );
        let (status, _) = fetch(&bad, None, None);
        assert!(status.starts_with("400"), "{bad}: {status}");
    }
}

#[test]
fn outlook_autodiscover_answers_hosted_domains_only() {
    let server = TestServer::start();
    server.admin_ok(&["domain", "add", "example.org"]);
    server.add_user("carol@example.org", "secret-carol");
    for path in [
        "/autodiscover/autodiscover.xml",
        "/Autodiscover/Autodiscover.xml",
    ] {
        let (status, body) =
            curl_autodiscover(&server, path, &autodiscover_request("carol@example.org"));
        assert_eq!(status, 200, "{body}");
        let parsed = parse_autodiscover(&body);
        assert_eq!(parsed["type"], "email");
        assert_eq!(parsed["action"], "settings");
        let imap = &parsed["IMAP"];
        assert_eq!(imap["Server"], "localhost");
        assert_eq!(imap["Port"], server.port("imaps").to_string());
        assert_eq!(imap["SSL"], "on");
        assert_eq!(imap["LoginName"], "carol@example.org");
        let smtp = &parsed["SMTP"];
        assert_eq!(smtp["Port"], server.port("submissions").to_string());
        assert_eq!(smtp["SSL"], "on");
        assert_eq!(smtp["LoginName"], "carol@example.org");
    }

    // No account: the same document with the other address in it.
    let (_, carol) = curl_autodiscover(
        &server,
        "/autodiscover/autodiscover.xml",
        &autodiscover_request("carol@example.org"),
    );
    let (status, nobody) = curl_autodiscover(
        &server,
        "/autodiscover/autodiscover.xml",
        &autodiscover_request("nobody@example.org"),
    );
    assert_eq!(status, 200);
    assert_eq!(nobody.replace("nobody@", "carol@"), carol);

    // Through urllib too: an address that needs escaping comes back escaped.
    let (status, body) = fetch(
        &url(&server, "/autodiscover/autodiscover.xml"),
        None,
        Some(&autodiscover_request("o&apos;hara&amp;co@example.org")),
    );
    assert!(status.starts_with("200"), "{status}");
    assert_eq!(
        parse_autodiscover(&body)["IMAP"]["LoginName"],
        "o'hara&co@example.org"
    );

    let (status, _) = curl_autodiscover(
        &server,
        "/autodiscover/autodiscover.xml",
        &autodiscover_request("carol@example.net"),
    );
    assert_eq!(status, 404);
    for bad in [
        "not xml".to_owned(),
        autodiscover_request("carol"),
        "<Autodiscover><Request><EMailAddress>carol@example.org</EMailAddress></Request></Autodiscover>".to_owned(),
    ] {
        let (status, _) = curl_autodiscover(&server, "/autodiscover/autodiscover.xml", &bad);
        assert_eq!(status, 400, "{bad}");
    }
    // A body past the limit is refused before it is parsed.
    let huge = autodiscover_request(&format!("{}@example.org", "a".repeat(64 * 1024)));
    let (status, _) = curl_autodiscover(&server, "/autodiscover/autodiscover.xml", &huge);
    assert_eq!(status, 413);
}

#[test]
fn apple_profile_is_a_plist_with_one_mail_payload() {
    let server = TestServer::start();
    let fetch_profile = |email: &str| {
        let out = python(
            APPLE,
            &[&url(&server, &format!("/apple/mobileconfig?email={email}"))],
        );
        json(&out)
    };
    let you = fetch_profile("you%40localhost");
    assert_eq!(you["content_type"], "application/x-apple-aspen-config");
    let profile = &you["profile"];
    assert_eq!(profile["PayloadType"], "Configuration");
    assert_eq!(profile["PayloadVersion"], 1);
    let payloads = profile["PayloadContent"].as_array().expect("payloads");
    assert_eq!(payloads.len(), 1);
    let mail = &payloads[0];
    assert_eq!(mail["PayloadType"], "com.apple.mail.managed");
    assert_eq!(mail["EmailAccountType"], "EmailTypeIMAP");
    assert_eq!(mail["EmailAddress"], "you@localhost");
    assert_eq!(mail["IncomingMailServerHostName"], "localhost");
    assert_eq!(mail["IncomingMailServerPortNumber"], server.port("imaps"));
    assert_eq!(mail["IncomingMailServerUseSSL"], true);
    assert_eq!(mail["IncomingMailServerUsername"], "you@localhost");
    assert_eq!(
        mail["IncomingMailServerAuthentication"],
        "EmailAuthPassword"
    );
    assert_eq!(mail["OutgoingMailServerHostName"], "localhost");
    assert_eq!(
        mail["OutgoingMailServerPortNumber"],
        server.port("submissions")
    );
    assert_eq!(mail["OutgoingMailServerUseSSL"], true);
    assert_eq!(mail["OutgoingMailServerUsername"], "you@localhost");
    assert_ne!(mail["PayloadUUID"], profile["PayloadUUID"]);
    assert_ne!(mail["PayloadIdentifier"], profile["PayloadIdentifier"]);

    // No account: the same profile for the other address (its own UUIDs).
    let nobody = fetch_profile("nobody%40localhost");
    let normalize = |value: &serde_json::Value, email: &str| {
        let text = value.to_string().replace(email, "ADDRESS");
        let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
        value["profile"]["PayloadUUID"] = "UUID".into();
        value["profile"]["PayloadIdentifier"] = "ID".into();
        value["profile"]["PayloadContent"][0]["PayloadUUID"] = "UUID".into();
        value["profile"]["PayloadContent"][0]["PayloadIdentifier"] = "ID".into();
        value
    };
    assert_ne!(nobody["profile"]["PayloadUUID"], profile["PayloadUUID"]);
    assert_eq!(
        normalize(&nobody, "nobody@localhost"),
        normalize(&you, "you@localhost")
    );

    let (status, _) = fetch(
        &url(&server, "/apple/mobileconfig?email=you%40example.org"),
        None,
        None,
    );
    assert!(status.starts_with("404"), "{status}");
    let (status, _) = fetch(&url(&server, "/apple/mobileconfig?email=you"), None, None);
    assert!(status.starts_with("400"), "{status}");
    let (status, _) = fetch(&url(&server, "/apple/mobileconfig"), None, None);
    assert!(status.starts_with("400"), "{status}");
}

#[test]
fn healthz_answers_ok() {
    let server = TestServer::start();
    let (status, body) = fetch(&url(&server, "/healthz"), None, None);
    assert!(status.starts_with("200"), "{status}");
    assert_eq!(body.trim(), "ok");
    let (status, _) = fetch(&url(&server, "/no-such-page"), None, None);
    assert!(status.starts_with("404"), "{status}");
    // One log line per request, with the peer, path and status.
    let log = server.log();
    for line in [
        r#"HTTP request method=GET path="/healthz" status=200"#,
        r#"HTTP request method=GET path="/no-such-page" status=404"#,
    ] {
        assert!(
            log.lines()
                .any(|logged| logged.contains(line) && logged.contains("peer=127.0.0.1")),
            "no {line:?} in {log}"
        );
    }

    // A client that never finishes its request head is cut off (slowloris), and its
    // connection was counted.
    use std::io::{Read, Write};
    let started = std::time::Instant::now();
    let mut slow = std::net::TcpStream::connect(server.addr("http")).expect("connect");
    slow.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .expect("write");
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(40),
        "still open after {waited:?}"
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let metrics = scrape(&server);
    assert!(
        metrics[r#"letterbox_connections_total{listener="http"}"#] >= 3.0,
        "{metrics:?}"
    );
}

/// Every sample of `/metrics`, keyed `name{labels}`.
fn scrape(server: &TestServer) -> HashMap<String, f64> {
    python(SCRAPE, &[&url(server, "/metrics")])
        .lines()
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("sample line");
            (key.to_owned(), value.parse().expect("sample value"))
        })
        .collect()
}

/// How much `key` grew from `before` to `after` (a missing sample counts as 0).
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[test]
fn metrics_count_mail_sent_and_read() {
    let server =
        TestServer::start_with("[outbound.static_routes]\n\"remote.example\" = \"127.0.0.1:9\"\n");
    let start = scrape(&server);
    // Present from the start, before any traffic.
    for key in [
        r#"letterbox_connections_open{listener="imaps"}"#,
        r#"letterbox_connections_total{listener="submissions"}"#,
        r#"letterbox_auth_failures_total{protocol="imap"}"#,
        r#"letterbox_queue_items{}"#,
        r#"letterbox_queue_oldest_age_seconds{}"#,
    ] {
        assert!(start.contains_key(key), "{key} missing: {start:?}");
    }
    assert_eq!(start[r#"letterbox_queue_items{}"#], 0.0);

    let out = python(
        SMTPLIB,
        &[
            &server.port("smtp").to_string(),
            &server.port("submission").to_string(),
        ],
    );
    assert!(out.contains("smtp auth refused 535"), "{out}");
    let sent = scrape(&server);
    let smtp = |command: &str, outcome: &str| {
        format!(r#"letterbox_smtp_commands_total{{command="{command}",outcome="{outcome}"}}"#)
    };
    for (command, count) in [
        ("EHLO", 2.0),
        ("MAIL", 1.0),
        ("RCPT", 1.0),
        ("DATA", 1.0),
        ("QUIT", 2.0),
    ] {
        assert_eq!(
            delta(&start, &sent, &smtp(command, "2xx")),
            count,
            "{command}: {sent:?}"
        );
    }
    assert_eq!(delta(&start, &sent, &smtp("AUTH", "5xx")), 1.0);
    assert_eq!(
        delta(&start, &sent, "letterbox_messages_delivered_total{}"),
        1.0
    );
    assert_eq!(
        delta(&start, &sent, "letterbox_storage_deliver_seconds_count{}"),
        1.0
    );
    assert!(delta(&start, &sent, "letterbox_storage_commit_seconds_count{}") >= 1.0);
    assert_eq!(
        delta(
            &start,
            &sent,
            r#"letterbox_auth_failures_total{protocol="smtp"}"#
        ),
        1.0
    );
    for (listener, count) in [("smtp", 1.0), ("submission", 1.0), ("imap", 0.0)] {
        let key = format!(r#"letterbox_connections_total{{listener="{listener}"}}"#);
        assert_eq!(delta(&start, &sent, &key), count, "{key}");
    }

    let out = python(
        IMAPLIB,
        &[
            &server.port("imap").to_string(),
            &server.email,
            &server.password,
        ],
    );
    assert!(out.contains("imap read"), "{out}");
    let read = scrape(&server);
    let imap = |command: &str, outcome: &str| {
        format!(r#"letterbox_imap_commands_total{{command="{command}",outcome="{outcome}"}}"#)
    };
    for (command, outcome, count) in [
        ("LOGIN", "ok", 1.0),
        ("LOGIN", "no", 1.0),
        ("SELECT", "ok", 1.0),
        ("FETCH", "ok", 1.0),
        ("LOGOUT", "ok", 2.0),
    ] {
        assert_eq!(
            delta(&sent, &read, &imap(command, outcome)),
            count,
            "{command} {outcome}: {read:?}"
        );
    }
    assert_eq!(
        delta(
            &sent,
            &read,
            r#"letterbox_auth_failures_total{protocol="imap"}"#
        ),
        1.0
    );
    assert_eq!(
        delta(
            &sent,
            &read,
            r#"letterbox_connections_total{listener="imap"}"#
        ),
        2.0
    );
    assert_eq!(
        delta(&sent, &read, "letterbox_messages_delivered_total{}"),
        0.0
    );

    // A message for a remote domain waits in the queue (its route refuses connections).
    python(
        r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.login(sys.argv[2], sys.argv[3])
    s.sendmail(sys.argv[2], ["someone@remote.example"],
        b"From: " + sys.argv[2].encode() + b"\r\nSubject: queued\r\n\r\nhi\r\n")
"#,
        &[
            &server.port("submission").to_string(),
            &server.email,
            &server.password,
        ],
    );
    let queued = scrape(&server);
    assert_eq!(queued[r#"letterbox_queue_items{}"#], 1.0, "{queued:?}");
    assert!(queued[r#"letterbox_queue_oldest_age_seconds{}"#] >= 0.0);
}
