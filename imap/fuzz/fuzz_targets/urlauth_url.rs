//! Any text as a URLAUTH URL (RFC 4467 §9 on RFC 5092): no panic, and what parses has an
//! owner, a message, and a rump that is the start of the text, ending where the
//! verifier (if any) begins.
#![no_main]

use imap::proto::urlauth::{MAX_URL_BYTES, parse_auth_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(url) = parse_auth_url(text) {
        assert!(text.len() <= MAX_URL_BYTES);
        assert!(!url.user.is_empty() && !url.host.is_empty());
        assert!(url.message.uid > 0 && !url.message.mailbox.is_empty());
        assert!(text.starts_with(&url.rump));
        match &url.verifier {
            None => assert_eq!(url.rump.len(), text.len()),
            Some(v) => assert_eq!(
                text.len(),
                url.rump.len() + 2 + v.mechanism.len() + v.token.len()
            ),
        }
    }
});
