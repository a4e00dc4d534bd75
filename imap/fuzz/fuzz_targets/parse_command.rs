//! Any bytes as one framed command: the parser answers Ok or a ParseError, never
//! panics (house rule 5), and a parsed command's name is one of ours.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = imap::proto::parse_command(data) {
        assert!(!command.body.name().is_empty());
    }
    // The pieces the parser leans on, on their own.
    let _ = imap::proto::parse_sequence_set(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = imap::proto::mutf7::decode(text);
    }
});
