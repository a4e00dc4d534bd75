//! Any text as a CATENATE URL (RFC 4469 §5, RFC 5092): no panic, and what parses names a
//! message (a UID) in a mailbox with a name.
#![no_main]

use imap::proto::parse_imap_url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(url) = parse_imap_url(text) {
        assert!(url.uid > 0 && !url.mailbox.is_empty());
    }
});
