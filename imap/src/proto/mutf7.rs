//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3), used with IMAP4rev1 clients. Once a
//! client enables IMAP4rev2 or UTF8=ACCEPT, names travel as UTF-8 instead (RFC 9051
//! §5.1, RFC 6855 §3).

use super::base64::{MODIFIED_UTF7, decode_with, encode_with};

/// Encodes a UTF-8 mailbox name into modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|unit| unit.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&encode_with(&bytes, MODIFIED_UTF7, false));
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decodes a modified UTF-7 name. `None` when a shifted sequence is malformed (bad
/// base64, odd length, lone surrogate, or an unterminated `&`). Non-ASCII characters,
/// which RFC 3501 does not allow here, are passed through: some IMAP4rev1 clients send
/// UTF-8 anyway, and refusing them helps nobody.
pub fn decode(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(rest.get(..at)?);
        let after = rest.get(at + 1..)?;
        let end = after.find('-')?;
        let encoded = after.get(..end)?;
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = decode_with(encoded.as_bytes(), MODIFIED_UTF7, false)?;
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                // chunks_exact(2): every pair has exactly two octets.
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            let decoded = String::from_utf16(&units).ok()?;
            // RFC 3501 §5.1.3: printable ASCII must not be encoded.
            if decoded.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&decoded);
        }
        rest = after.get(end + 1..)?;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        // RFC 3501 §5.1.3 example.
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").as_deref(), Some("Tom & Jerry"));
    }

    #[test]
    fn round_trips_non_bmp_and_mixed() {
        for name in [
            "Entwürfe",
            "Gelöschte Elemente",
            "😀 fun",
            "a&b&c",
            "INBOX",
            "x€y",
        ] {
            assert_eq!(decode(&encode(name)).as_deref(), Some(name), "{name}");
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(decode("&"), None);
        assert_eq!(decode("&U,BTFw"), None);
        assert_eq!(decode("&AGE-"), None); // encodes "a": printable ASCII must not be shifted
        assert_eq!(decode("&2D0-"), None); // lone surrogate
        assert_eq!(decode("&!!-"), None);
    }
}
