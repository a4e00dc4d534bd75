//! Any text as a header field value or header section: the RFC 5322 / RFC 2045 pieces
//! storage parses by hand (address lists, MIME parameters, unfolding, the RFC 5256 base
//! subject) answer without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = storage::rfc5322::unfolded_fields(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = storage::rfc5322::address_list(text);
        let _ = storage::rfc5322::parameters(text);
        let _ = storage::mime::base_subject(text);
    }
});
