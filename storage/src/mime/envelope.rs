//! The header fields IMAP reads of a message: RFC 9051 §7.5.2 ENVELOPE, the decoded
//! header values for SEARCH, the display names SORT uses (RFC 5957) and the message ids
//! THREAD uses (RFC 5256).

use super::types::Envelope;
use crate::rfc5322::{self, EnvelopeAddress};
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue, Message, MessagePart};

pub(super) fn envelope(message: &Message<'_>, raw: &[u8]) -> Envelope {
    let root_headers = message
        .parts
        .first()
        .map(|p| p.headers.as_slice())
        .unwrap_or_default();
    // RFC 9051 §7.5.2: values as in the header; a field present but empty is "", an
    // absent one NIL.
    let raw_field = |name: &str| {
        root_headers
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| raw_value(raw, h.offset_start, h.offset_end))
    };
    let addresses = |name: &str| {
        raw_field(name)
            .map(|value| rfc5322::address_list(&value))
            .unwrap_or_default()
    };
    let from = addresses("From");
    // RFC 9051 §7.5.2: an absent or empty Sender or Reply-To takes the value of From.
    let or_from = |list: Vec<EnvelopeAddress>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: raw_field("Date"),
        subject: raw_field("Subject"),
        sender: or_from(addresses("Sender")),
        reply_to: or_from(addresses("Reply-To")),
        from,
        to: addresses("To"),
        cc: addresses("Cc"),
        bcc: addresses("Bcc"),
        in_reply_to: raw_field("In-Reply-To"),
        message_id: raw_field("Message-ID"),
    }
}

/// RFC 5957 §2: "the display-name of the first" address, decoded (RFC 2047), when it has
/// a non-empty one, else its addr-spec; "" when there is no address. A group's start
/// marker (no host, RFC 9051 §7.5.2) gives the group name, as Dovecot 2.3 sorts it.
/// Not case-folded: the comparison is the reader's.
pub fn display_name(addresses: &[EnvelopeAddress]) -> String {
    let Some(first) = addresses.first() else {
        return String::new();
    };
    let Some(host) = first.host.as_deref() else {
        return first.mailbox.clone().unwrap_or_default();
    };
    if let Some(name) = first.name.as_deref() {
        // The name as written, unquoted: mail-parser decodes its encoded words as it
        // does an unstructured field's, which ends at a line break.
        let line: String = name.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
        let line = format!("{line}\r\n");
        if let HeaderValue::Text(text) = MessageStream::new(line.as_bytes()).parse_unstructured()
            && !text.trim().is_empty()
        {
            return text.trim().to_owned();
        }
    }
    format!("{}@{host}", first.mailbox.as_deref().unwrap_or(""))
}

pub(super) fn decoded_headers(message: &Message<'_>, raw: &[u8]) -> Vec<(String, String)> {
    message
        .headers()
        .iter()
        .map(|header| {
            let value = match &header.value {
                HeaderValue::Text(text) => text.to_string(),
                HeaderValue::TextList(list) => list.join(", "),
                HeaderValue::Address(address) => addresses_text(address),
                _ => raw_value(raw, header.offset_start, header.offset_end),
            };
            (header.name.as_str().to_owned(), value)
        })
        .collect()
}

fn addresses_text(address: &Address<'_>) -> String {
    let mut parts = Vec::new();
    for addr in address.iter() {
        match (&addr.name, &addr.address) {
            (Some(name), Some(email)) => parts.push(format!("{name} <{email}>")),
            (None, Some(email)) => parts.push(email.to_string()),
            (Some(name), None) => parts.push(name.to_string()),
            (None, None) => {}
        }
    }
    parts.join(", ")
}

/// RFC 5256 §3 REFERENCES step 1A: the message ids of References; "If a message does
/// not contain a References header line, or the References header line does not contain
/// any valid message ids, then use the first (if any) valid message id of the
/// In-Reply-To header line as the only valid message id in the References header line."
pub(super) fn thread_references(message: &mail_parser::Message<'_>) -> Vec<String> {
    let references = message_ids(message.references());
    if !references.is_empty() {
        return references;
    }
    message_ids(message.in_reply_to())
        .into_iter()
        .take(1)
        .collect()
}

fn message_ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The value of a header field of a part as written in the raw bytes, unfolded and trimmed.
pub(super) fn raw_header(part: &MessagePart<'_>, raw: &[u8], name: &str) -> Option<String> {
    part.headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| raw_value(raw, h.offset_start, h.offset_end))
}

pub(super) fn raw_value(raw: &[u8], start: u32, end: u32) -> String {
    let start = (start as usize).min(raw.len());
    let end = (end as usize).clamp(start, raw.len());
    let unfolded: Vec<u8> = raw[start..end]
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&unfolded).trim().to_owned()
}
