//! Any bytes as the arguments of GETMETADATA and SETMETADATA (RFC 5464): no panic; what
//! parses is answered from a fixed set of entries, each listed entry at most once, never
//! one MAXSIZE leaves out, and only the entries asked for or below them.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Entries as a mailbox might hold them, with an invalid name that storage never gives.
const STORED: &[(&str, &[u8])] = &[
    ("/private/comment", b"mine"),
    ("/shared/comment", b""),
    ("/shared/vendor/x/a", b"1"),
    ("/shared/vendor/x/a/b", b"22"),
    ("/shared/vendor/x/a/b/c", b"333"),
    ("/shared/vendor/x-y", b"sibling"),
    ("/shared//bad", b"never listed"),
];

fuzz_target!(|data: &[u8]| {
    if let Some((listed, longest)) = imap::fuzzing::getmetadata(data, STORED) {
        let mut names: Vec<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "an entry listed twice: {listed:?}");
        assert!(names.iter().all(|name| !name.contains("//")));
        if let Some(longest) = longest {
            assert!(longest <= 7);
        }
    }
    let mut command = b"a SETMETADATA ".to_vec();
    command.extend_from_slice(data);
    let _ = imap::proto::parse_command(&command);
});
