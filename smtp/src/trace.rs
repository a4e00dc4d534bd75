//! The header fields added to a message at delivery: trace fields (`Return-Path:` and
//! `Received:`, RFC 5321 §4.4) and, on submission, a missing `Date:` or `Message-ID:`
//! (RFC 6409 §8.2, §8.3). All pure functions of their inputs.

use std::net::IpAddr;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// What the `Received:` field says about the transfer.
pub(crate) struct ReceivedInfo<'a> {
    /// The HELO/EHLO argument, as the client gave it.
    pub(crate) helo: &'a str,
    pub(crate) peer: IpAddr,
    pub(crate) hostname: &'a str,
    pub(crate) protocol: &'static str,
    pub(crate) id: &'a str,
    /// Named only when the message has exactly one recipient (RFC 5321 §4.4: naming
    /// several would disclose Bcc recipients).
    pub(crate) for_recipient: Option<&'a str>,
    pub(crate) date: OffsetDateTime,
}

/// RFC 3848 and RFC 6531 §4.3: the `with` keyword.
pub(crate) fn protocol(extended: bool, tls: bool, authenticated: bool, utf8: bool) -> &'static str {
    if !extended {
        return "SMTP";
    }
    match (utf8, tls, authenticated) {
        (false, false, false) => "ESMTP",
        (false, false, true) => "ESMTPA",
        (false, true, false) => "ESMTPS",
        (false, true, true) => "ESMTPSA",
        (true, false, false) => "UTF8SMTP",
        (true, false, true) => "UTF8SMTPA",
        (true, true, false) => "UTF8SMTPS",
        (true, true, true) => "UTF8SMTPSA",
    }
}

/// RFC 5322 §3.3 date-time, in UTC.
pub(crate) fn rfc5322_date(date: OffsetDateTime) -> String {
    date.format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_owned())
}

/// The HELO name as it may appear in a header: client text is restricted to what a
/// domain or address literal uses, so it cannot break the field's structure.
fn sanitize_helo(helo: &str) -> String {
    let cleaned: String = helo
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_:[]".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

/// RFC 5321 §4.1.3 address literal of the peer: `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
fn address_literal(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

/// RFC 5321 §4.4 `Return-path-line`, added at final delivery.
pub(crate) fn return_path(sender: &str) -> String {
    format!("Return-Path: <{sender}>\r\n")
}

/// RFC 5321 §4.4 `Time-stamp-line`, folded to keep lines short.
pub(crate) fn received(info: &ReceivedInfo<'_>) -> String {
    let mut field = format!(
        "Received: from {} ({})\r\n\tby {} with {} id {}",
        sanitize_helo(info.helo),
        address_literal(info.peer),
        info.hostname,
        info.protocol,
        info.id,
    );
    if let Some(recipient) = info.for_recipient {
        field.push_str(&format!("\r\n\tfor <{recipient}>"));
    }
    field.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(info.date)));
    field
}

/// True when the header section of `message` has a field named `name`
/// (case-insensitive, RFC 5322 §1.2.2). The header ends at the first empty line; bare LF
/// line ends are understood too.
pub(crate) fn has_header(message: &[u8], name: &str) -> bool {
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        // Continuation lines start with white space.
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && line
                .get(..colon)
                .is_some_and(|field| field.trim_ascii_end().eq_ignore_ascii_case(name.as_bytes()))
        {
            return true;
        }
    }
    false
}

/// RFC 6409 §8.2/§8.3: the `Date:` and `Message-ID:` fields a submitted message lacks.
pub(crate) fn submission_fields(message: &[u8], hostname: &str, date: OffsetDateTime) -> String {
    let mut fields = String::new();
    if !has_header(message, "Date") {
        fields.push_str(&format!("Date: {}\r\n", rfc5322_date(date)));
    }
    if !has_header(message, "Message-ID") {
        // RFC 5322 §3.6.4: unique left part, our host name on the right.
        fields.push_str(&format!(
            "Message-ID: <{:016x}.{}@{hostname}>\r\n",
            rand::random::<u64>(),
            date.unix_timestamp()
        ));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn received_field_shape() {
        let field = received(&ReceivedInfo {
            helo: "client.example",
            peer: "192.0.2.7".parse().expect("ip"),
            hostname: "mx.example",
            protocol: "ESMTPS",
            id: "00ab.1",
            for_recipient: Some("u@example.com"),
            date: datetime!(2030-01-02 03:04:05 UTC),
        });
        assert_eq!(
            field,
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.example with ESMTPS id 00ab.1\r\n\tfor <u@example.com>;\r\n\tWed, 02 Jan 2030 03:04:05 +0000\r\n"
        );
    }

    #[test]
    fn helo_cannot_inject() {
        assert_eq!(sanitize_helo("a;b (c)\r\nX: y"), "a?b??c???X:?y");
        assert_eq!(sanitize_helo("[127.0.0.1]"), "[127.0.0.1]");
        assert_eq!(sanitize_helo(""), "unknown");
    }

    #[test]
    fn address_literals() {
        assert_eq!(
            address_literal("::ffff:10.0.0.1".parse().expect("ip")),
            "[10.0.0.1]"
        );
        assert_eq!(
            address_literal("2001:db8::1".parse().expect("ip")),
            "[IPv6:2001:db8::1]"
        );
    }

    #[test]
    fn protocols() {
        assert_eq!(protocol(false, true, true, false), "SMTP");
        assert_eq!(protocol(true, false, false, false), "ESMTP");
        assert_eq!(protocol(true, true, true, false), "ESMTPSA");
        assert_eq!(protocol(true, false, true, true), "UTF8SMTPA");
    }

    #[test]
    fn header_detection_stops_at_the_body() {
        let message = b"Subject: x\r\n y\r\nmessage-id : <a@b>\r\n\r\nDate: in body\r\n";
        assert!(has_header(message, "Message-ID"));
        assert!(!has_header(message, "Date"));
        assert!(has_header(b"From: a\nDate: now\n\nbody", "date"));
        assert!(!has_header(b"", "Date"));
        assert!(!has_header(b" Date: folded\r\n", "Date"));
    }

    #[test]
    fn submission_adds_only_what_is_missing() {
        let date = datetime!(2030-01-02 03:04:05 UTC);
        let fields = submission_fields(b"Subject: x\r\n\r\nbody", "mx.example", date);
        assert!(fields.starts_with("Date: Wed, 02 Jan 2030 03:04:05 +0000\r\nMessage-ID: <"));
        assert!(fields.ends_with("@mx.example>\r\n"));
        let complete = b"Date: x\r\nMessage-Id: <a@b>\r\n\r\n";
        assert_eq!(submission_fields(complete, "mx.example", date), "");
    }
}
