//! Any text as a mailbox for THREAD (one message per line: id, subject, date,
//! references): both algorithms answer without panicking or overflowing the stack, and
//! every message appears in the answer exactly once (RFC 5256 §3).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let messages = text.lines().count();
    let (references, ordered_subject) = imap::fuzzing::thread(text);
    for answer in [references, ordered_subject] {
        let mut numbers: Vec<usize> = answer
            .split(['(', ')', ' '])
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().expect("a message number"))
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=messages).collect::<Vec<_>>(), "{answer}");
    }
});
