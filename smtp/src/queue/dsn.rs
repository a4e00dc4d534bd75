//! Delivery status notifications (RFC 3464): the `multipart/report` sent back to the
//! envelope sender when recipients fail for good, or once when they are still waiting
//! after a while, honouring the sender's RFC 3461 requests (NOTIFY, RET, ENVID, ORCPT).

use crate::outbound::client::Failure;
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use std::fmt::Write as _;
use storage::QueuedRecipient;
use time::OffsetDateTime;

/// RFC 3461 §4.1: a failure notice unless NOTIFY says NEVER or lists only other events
/// (no NOTIFY means the MTA's default, FAILURE).
pub fn wants_failure_notice(recipient: &QueuedRecipient) -> bool {
    recipient.notify.is_empty()
        || recipient
            .notify
            .iter()
            .any(|n| n.eq_ignore_ascii_case("FAILURE"))
}

/// RFC 3461 §4.1: a delay notice when NOTIFY lists DELAY, or when there is no NOTIFY
/// (the MTA's default, which here includes DELAY as Postfix and Exim do).
pub fn wants_delay_notice(recipient: &QueuedRecipient) -> bool {
    recipient.notify.is_empty()
        || recipient
            .notify
            .iter()
            .any(|n| n.eq_ignore_ascii_case("DELAY"))
}

/// RFC 3464 §2.3.3: what the report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Given up on: `Action: failed`.
    Failed,
    /// Still being retried, until the given time: `Action: delayed` (§2.3.3) with
    /// `Will-Retry-Until` (§2.3.8).
    Delayed { retry_until: i64 },
}

/// What goes into one report.
pub struct Report<'a> {
    pub action: Action,
    /// Our host name: Reporting-MTA and the From address's domain.
    pub reporting_mta: &'a str,
    /// The envelope sender, to whom the report goes.
    pub to: &'a str,
    /// RFC 3461 ENVID as stored (xtext).
    pub envid: Option<&'a str>,
    /// RFC 3461 RET: `HDRS` returns the header section only.
    pub ret: Option<&'a str>,
    /// When we took the message (seconds since the epoch).
    pub arrival: i64,
    pub failures: &'a [(QueuedRecipient, Failure)],
    /// The message as it was relayed.
    pub original: &'a [u8],
    pub now: i64,
}

/// Builds the report message, ready to store or send.
pub fn build(report: &Report<'_>) -> std::io::Result<Vec<u8>> {
    let host = report.reporting_mta;
    let delayed = matches!(report.action, Action::Delayed { .. });
    // A delay notice returns the header only: the message is still on its way.
    let headers_only = delayed || report.ret.is_some_and(|r| r.eq_ignore_ascii_case("HDRS"));

    let mut human = String::new();
    match report.action {
        Action::Failed => human.push_str(&format!(
            "This is the mail system at {host}.\r\n\r\nYour message could not be delivered to the following recipients:\r\n\r\n"
        )),
        Action::Delayed { retry_until } => human.push_str(&format!(
            "This is the mail system at {host}.\r\n\r\nYour message has not been delivered yet to the following recipients. \
             This is only a warning: nothing needs doing, and delivery will be tried until {}.\r\n\r\n",
            rfc5322(retry_until)
        )),
    }
    for (recipient, failure) in report.failures {
        let _ = write!(
            human,
            "  <{}>: {}\r\n",
            recipient.address,
            one_line(&failure.reason)
        );
    }
    human.push_str(if headers_only {
        "\r\nThe header section of your message is attached.\r\n"
    } else {
        "\r\nYour message is attached.\r\n"
    });

    // RFC 3464 §2.2: per-message fields, then a block per recipient.
    let mut status = String::new();
    let _ = write!(status, "Reporting-MTA: dns; {host}\r\n");
    if let Some(envid) = report.envid {
        // RFC 3464 §2.2.1: the ENVID as the sender gave it, xtext decoded.
        let _ = write!(
            status,
            "Original-Envelope-Id: {}\r\n",
            one_line(&xtext_decode(envid))
        );
    }
    let _ = write!(status, "Arrival-Date: {}\r\n", rfc5322(report.arrival));
    for (recipient, failure) in report.failures {
        status.push_str("\r\n");
        if let Some(orcpt) = &recipient.orcpt {
            // RFC 3464 §2.3.1: `type;address` from ORCPT, the address xtext decoded.
            let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            let _ = write!(
                status,
                "Original-Recipient: {kind};{}\r\n",
                one_line(&xtext_decode(address))
            );
        }
        let _ = write!(status, "Final-Recipient: rfc822;{}\r\n", recipient.address);
        match report.action {
            Action::Failed => {
                status.push_str("Action: failed\r\n");
                let _ = write!(status, "Status: {}\r\n", permanent_status(&failure.status));
            }
            Action::Delayed { .. } => {
                status.push_str("Action: delayed\r\n");
                let _ = write!(status, "Status: {}\r\n", failure.status);
            }
        }
        if let Some(mta) = &failure.remote_mta {
            let _ = write!(status, "Remote-MTA: dns; {mta}\r\n");
        }
        match &failure.reply {
            Some(reply) => {
                let _ = write!(
                    status,
                    "Diagnostic-Code: smtp; {}\r\n",
                    one_line(&reply.to_string())
                );
            }
            None => {
                let _ = write!(
                    status,
                    "Diagnostic-Code: X-Letterbox; {}\r\n",
                    one_line(&failure.reason)
                );
            }
        }
        let _ = write!(status, "Last-Attempt-Date: {}\r\n", rfc5322(report.now));
        if let Action::Delayed { retry_until } = report.action {
            let _ = write!(status, "Will-Retry-Until: {}\r\n", rfc5322(retry_until));
        }
    }

    let original = if headers_only {
        let end = report
            .original
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(report.original.len(), |p| p + 2);
        MimePart::new(
            ContentType::new("text/rfc822-headers"),
            report.original.get(..end).unwrap_or_default().to_vec(),
        )
    } else {
        MimePart::new(ContentType::new("message/rfc822"), report.original.to_vec())
    }
    // RFC 2046 §5.2.1: message/rfc822 is never base64; it is sent as it is.
    .transfer_encoding(if report.original.is_ascii() {
        "7bit"
    } else {
        "8bit"
    });

    let status_encoding = if status.is_ascii() { "7bit" } else { "8bit" };
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(ContentType::new("text/plain"), human),
            MimePart::new(
                ContentType::new("message/delivery-status"),
                status.into_bytes(),
            )
            .transfer_encoding(status_encoding),
            original,
        ],
    );
    let from = format!("MAILER-DAEMON@{host}");
    MessageBuilder::new()
        .from(("Mail Delivery System", from.as_str()))
        .to(report.to)
        .subject(if delayed {
            "Delayed Mail (still being retried)"
        } else {
            "Undelivered Mail Returned to Sender"
        })
        .message_id(format!("dsn.{:016x}@{host}", rand::random::<u64>()))
        .date(report.now)
        // RFC 3834 §5: automatic responses say so, so nobody answers them automatically.
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(body)
        .write_to_vec()
}

/// A DSN reports a final failure: a 4.x.x status (a temporary failure we gave up on)
/// becomes 5.x.x, as RFC 3464 §2.3.4 expects for `Action: failed`.
fn permanent_status(status: &str) -> String {
    match status.strip_prefix("4.") {
        Some(rest) => format!("5.{rest}"),
        None => status.to_owned(),
    }
}

/// Network text on one header line: no CR, LF or other controls.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn rfc5322(timestamp: i64) -> String {
    let date = OffsetDateTime::from_unix_timestamp(timestamp).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    crate::trace::rfc5322_date(date)
}

/// RFC 3461 §4: `+XX` is the octet with hex value XX.
pub fn xtext_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'+'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(decoded) = u8::from_str_radix(hex, 16)
        {
            out.push(decoded);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_notices_follow_notify() {
        let with = |notify: &[&str]| QueuedRecipient {
            address: "a@example.net".into(),
            notify: notify.iter().map(|n| n.to_string()).collect(),
            orcpt: None,
        };
        assert!(wants_delay_notice(&with(&[])));
        assert!(wants_delay_notice(&with(&["FAILURE", "DELAY"])));
        assert!(!wants_delay_notice(&with(&["FAILURE"])));
        assert!(!wants_delay_notice(&with(&["NEVER"])));
        assert!(!wants_failure_notice(&with(&["DELAY"])));
    }

    fn recipient(address: &str, notify: &[&str], orcpt: Option<&str>) -> QueuedRecipient {
        QueuedRecipient {
            address: address.into(),
            notify: notify.iter().map(|n| (*n).to_owned()).collect(),
            orcpt: orcpt.map(str::to_owned),
        }
    }

    #[test]
    fn notify_never_and_success_only_get_no_notice() {
        assert!(wants_failure_notice(&recipient("a@x", &[], None)));
        assert!(wants_failure_notice(&recipient(
            "a@x",
            &["SUCCESS", "FAILURE"],
            None
        )));
        assert!(!wants_failure_notice(&recipient("a@x", &["NEVER"], None)));
        assert!(!wants_failure_notice(&recipient("a@x", &["SUCCESS"], None)));
    }

    #[test]
    fn xtext_decodes_plus_hex() {
        assert_eq!(xtext_decode("a+2Bb+3Dc"), "a+b=c");
        assert_eq!(xtext_decode("broken+Z"), "broken+Z");
    }

    #[test]
    fn report_has_the_rfc_3464_parts() {
        let failures = [(
            recipient("bob@example.net", &[], Some("rfc822;bob+2Bx@example.net")),
            Failure::local(true, "5.1.1", "no such user"),
        )];
        let original = b"Subject: hi\r\nFrom: me@example.org\r\n\r\nsecret body\r\n";
        let build_with = |ret| {
            let raw = build(&Report {
                action: Action::Failed,
                reporting_mta: "mx.example.org",
                to: "me@example.org",
                envid: Some("id+2B1"),
                ret,
                arrival: 0,
                failures: &failures,
                original,
                now: 60,
            })
            .expect("build");
            String::from_utf8(raw).expect("utf-8")
        };
        let full = build_with(None);
        assert!(
            full.contains("report-type=\"delivery-status\"")
                || full.contains("report-type=delivery-status"),
            "{full}"
        );
        for part in [
            "multipart/report",
            "Content-Type: message/delivery-status",
            "Original-Envelope-Id: id+1",
            "Original-Recipient: rfc822;bob+x@example.net",
            "Final-Recipient: rfc822;bob@example.net",
            "Status: 5.1.1",
            "Auto-Submitted: auto-replied",
            "secret body",
        ] {
            assert!(full.contains(part), "no {part:?} in {full}");
        }
        let headers = build_with(Some("HDRS"));
        assert!(headers.contains("text/rfc822-headers"), "{headers}");
        assert!(!headers.contains("secret body"), "{headers}");
    }
}
