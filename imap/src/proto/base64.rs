//! Base64 (RFC 4648 §4) for SASL (RFC 4422 via RFC 9051 §6.2.2), BINARY decoding
//! (RFC 3516) and the modified alphabet of mailbox names (RFC 3501 §5.1.3).

/// RFC 4648 §4 alphabet.
pub const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// RFC 3501 §5.1.3: modified BASE64, with "," instead of "/".
pub const MODIFIED_UTF7: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes `input`; `pad` adds the `=` padding of RFC 4648 (mUTF-7 has none).
pub fn encode_with(input: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let symbols = chunk.len() + 1;
        for i in 0..4 {
            if i < symbols {
                let index = ((n >> (18 - 6 * i)) & 0x3f) as usize;
                out.push(char::from(alphabet[index]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

pub fn encode(input: &[u8]) -> String {
    encode_with(input, STANDARD, true)
}

fn value_of(alphabet: &[u8; 64], byte: u8) -> Option<u32> {
    alphabet.iter().position(|&a| a == byte).map(|v| v as u32)
}

/// Strict decoding: only alphabet characters and trailing padding. `None` on anything else
/// (RFC 9051 §6.2.2: a malformed SASL response is a BAD).
pub fn decode_with(input: &[u8], alphabet: &[u8; 64], padded: bool) -> Option<Vec<u8>> {
    let body = if padded {
        let trimmed = input
            .strip_suffix(b"==")
            .or_else(|| input.strip_suffix(b"="));
        if !input.len().is_multiple_of(4) {
            return None;
        }
        trimmed.unwrap_or(input)
    } else {
        input
    };
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &byte in body {
        acc = (acc << 6) | value_of(alphabet, byte)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero and fewer than a byte (RFC 4648 §3.5).
    if bits >= 6 || acc != 0 {
        return None;
    }
    Some(out)
}

pub fn decode(input: &[u8]) -> Option<Vec<u8>> {
    decode_with(input, STANDARD, true)
}

/// Lenient decoding of a base64 Content-Transfer-Encoding body (RFC 2045 §6.8: characters
/// outside the alphabet are ignored, decoding stops at padding).
pub fn decode_lenient(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &byte in input {
        if byte == b'=' {
            break;
        }
        let Some(value) = value_of(STANDARD, byte) else {
            continue;
        };
        acc = ((acc << 6) | value) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for input in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "\0user\0pass",
        ] {
            let input = input.as_bytes();
            let encoded = encode(input);
            assert_eq!(decode(encoded.as_bytes()).as_deref(), Some(input));
            assert_eq!(decode_lenient(encoded.as_bytes()), input);
        }
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(b"fo"), "Zm8=");
    }

    #[test]
    fn strict_rejects_garbage() {
        assert_eq!(decode(b"Zm9v!"), None);
        assert_eq!(decode(b"Zm8"), None);
        assert_eq!(decode(b"Zm9=").as_deref(), None);
    }

    #[test]
    fn lenient_skips_line_breaks() {
        assert_eq!(decode_lenient(b"Zm9v\r\nYmFy\r\n"), b"foobar");
    }
}
