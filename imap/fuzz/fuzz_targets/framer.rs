//! Any byte stream, cut into reads of sizes the input chooses, through the framer and
//! the parser, as a session would: no panic, and no frame larger than the limits allow.
#![no_main]

use imap::proto::{Frame, Framer, FramerLimits, parse_command};
use libfuzzer_sys::fuzz_target;

/// APPEND's literal limit in [`LIMITS`].
const APPEND_LIMIT: usize = 1024;
/// Small limits, so the fuzzer reaches every rejection path quickly.
const LIMITS: FramerLimits = FramerLimits {
    max_line: 256,
    max_literal: 64,
    max_append_literal: Some(APPEND_LIMIT),
    max_command: 2048,
};

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut framer = Framer::new(LIMITS);
    for piece in stream.chunks(chunk) {
        framer.feed(piece);
        while let Some(frame) = framer.next_frame() {
            if let Frame::Command(command) = frame {
                assert!(command.len() <= LIMITS.max_command + APPEND_LIMIT);
                let _ = parse_command(&command);
            }
        }
    }
});
