//! DATA content from any bytes: dot-unstuffing and the end of data (RFC 5321 §4.1.1.4,
//! §4.5.2), then the line ends storage keeps (RFC 5322 §2.3), then the dot-stuffing the
//! outbound client relays with. Checked:
//! - cutting the input into reads anywhere gives the same content and the same end;
//! - DATA ends exactly at the first `<CRLF>.<CRLF>` (or a `.<CRLF>` at the very start),
//!   never at a bare CR or LF (SMTP smuggling);
//! - stored content has CR and LF only as CRLF;
//! - what we relay, read back by a strict receiver, is the stored content and ends
//!   where it should (no second message inside).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp::outbound::client::dot_stuff;
use smtp::proto::{BodyError, DotDecoder};

/// Small, so the fuzzer also reaches the over-limit path.
const LIMIT: usize = 4096;

/// Feeds `input` in reads of `chunk` octets: the content (or why not) and the octets
/// used, when the end of data was seen.
fn decode(input: &[u8], chunk: usize) -> Option<(Result<Vec<u8>, BodyError>, usize)> {
    let mut decoder = DotDecoder::new(LIMIT);
    let mut used_total = 0;
    for piece in input.chunks(chunk) {
        let (used, done) = decoder.feed(piece);
        assert!(used <= piece.len());
        used_total += used;
        if done {
            return Some((decoder.finish(), used_total));
        }
        assert_eq!(used, piece.len(), "every octet is used until the end");
    }
    None
}

/// Where DATA must end: after the first `<CRLF>.<CRLF>`, the CRLF before the dot
/// being the one that ends the last line (or the DATA command's own).
fn expected_end(input: &[u8]) -> Option<usize> {
    if input.starts_with(b".\r\n") {
        return Some(3);
    }
    input
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|at| at + 5)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let whole = decode(input, input.len().max(1));
    let split = decode(input, usize::from(first % 16) + 1);
    assert_eq!(whole, split, "reads cut elsewhere change the result");
    let ends_at = expected_end(input);
    let Some((content, used)) = whole else {
        assert_eq!(ends_at, None, "DATA did not end at <CRLF>.<CRLF>");
        return;
    };
    assert_eq!(
        Some(used),
        ends_at,
        "DATA ended elsewhere than the first <CRLF>.<CRLF>"
    );
    let Ok(content) = content else {
        return;
    };
    let stored = storage::crlf_line_ends(content);
    for (at, &byte) in stored.iter().enumerate() {
        if byte == b'\r' {
            assert_eq!(stored.get(at + 1), Some(&b'\n'), "bare CR stored");
        }
        if byte == b'\n' {
            assert_eq!(at.checked_sub(1).and_then(|b| stored.get(b)), Some(&b'\r'));
        }
    }
    // Relayed and read back: the same message, ending where we ended it.
    let relayed = dot_stuff(&stored);
    let (read_back, read_used) = decode(&relayed, relayed.len()).expect("relayed DATA ends");
    assert_eq!(
        read_used,
        relayed.len(),
        "a second message inside the relayed one"
    );
    // dot_stuff ends the last line (an empty message is one empty line).
    let mut expected = stored;
    if !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    if expected.len() <= LIMIT {
        assert_eq!(read_back, Ok(expected));
    }
});
