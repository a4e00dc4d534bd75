//! Any byte stream, cut into reads of sizes the input chooses, through the ManageSieve
//! parser as the driver uses it (commands, SASL continuations, both limits): no panic,
//! every command consumes bytes it was given, no literal above the limit is taken.
#![no_main]

use libfuzzer_sys::fuzz_target;
use managesieve::proto::{Argument, Limits, Parsed, parse, parse_continuation};

/// Small limits, so the fuzzer reaches every rejection path quickly.
const LIMITS: Limits = Limits {
    max_line: 256,
    max_literal: 64,
    max_arguments: 3,
};

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let continuation = first & 0x80 != 0;
    let mut buffer = Vec::new();
    for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            let parsed = if continuation {
                parse_continuation(&buffer, &LIMITS)
            } else {
                parse(&buffer, &LIMITS)
            };
            match parsed {
                Parsed::Command(command, used) => {
                    assert!(used > 0 && used <= buffer.len());
                    assert!(command.arguments.len() <= LIMITS.max_arguments.max(1));
                    for argument in &command.arguments {
                        if let Argument::String(bytes) = argument {
                            assert!(bytes.len() <= LIMITS.max_literal.max(LIMITS.max_line));
                        }
                    }
                    buffer.drain(..used);
                }
                Parsed::Bad { consumed, .. } => {
                    assert!(consumed > 0 && consumed <= buffer.len());
                    buffer.drain(..consumed);
                }
                Parsed::Incomplete => {
                    assert!(buffer.len() <= LIMITS.max_line + LIMITS.max_literal * 3 + 64);
                    break;
                }
                Parsed::TooBig => return,
            }
        }
    }
});
