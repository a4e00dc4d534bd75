//! SEARCH evaluated on a small mailbox: the first line of the input is the criteria
//! (what follows `SEARCH `), the rest up to three messages separated by NUL NUL. Never
//! panics; the answer is ascending numbers of messages that exist; and a key and its NOT
//! split the mailbox between them (RFC 9051 §6.4.4).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// INTERNALDATE of every message and "now" for OLDER/YOUNGER: 2026-12-06.
const NOW: i64 = 1_796_515_200;

fuzz_target!(|data: &[u8]| {
    let (criteria, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let messages: Vec<&[u8]> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == 0).filter(|m| !m.is_empty()).take(3).collect()
    };
    let Some(found) = imap::fuzzing::search(criteria, &messages, NOW) else {
        return;
    };
    let count = u32::try_from(messages.len()).expect("three at most");
    assert!(found.windows(2).all(|w| w[0] < w[1]), "{found:?}");
    assert!(found.iter().all(|&n| (1..=count).contains(&n)), "{found:?}");
    // Negated as one parenthesised key, where nothing in it can close that parenthesis
    // early or hide one: no parentheses, quotes, literals or line breaks.
    if criteria
        .iter()
        .all(|b| !matches!(b, b'(' | b')' | b'"' | b'\\' | b'{' | b'\r' | b'\n'))
    {
        let negated = [b"NOT (".as_slice(), criteria, b")"].concat();
        if let Some(others) = imap::fuzzing::search(&negated, &messages, NOW) {
            let mut all: Vec<u32> = found.iter().chain(&others).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (1..=count).collect::<Vec<_>>(), "{found:?} and {others:?}");
        }
    }
});
