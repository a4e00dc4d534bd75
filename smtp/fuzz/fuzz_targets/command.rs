//! Any byte stream, cut into reads of sizes the input chooses, through the command-line
//! framer and the command parser, as a session reads commands: no panic (house rule 5),
//! no line over its limit, and every error answered with a well-formed reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp::proto::command::{is_auth_line, parse_command};
use smtp::proto::{InputBuffer, Line};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
const MAX_LINE: usize = 512;
/// RFC 4954 §4: AUTH lines may be up to 12288 octets; the framer uses the larger limit.
const MAX_AUTH_LINE: usize = 12288;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut input = InputBuffer::new();
    for piece in stream.chunks(chunk) {
        input.extend(piece);
        while let Some(line) = input.next_line(MAX_AUTH_LINE) {
            let Line::Complete(line) = line else {
                continue;
            };
            assert!(
                line.len() <= MAX_AUTH_LINE,
                "a line over the framer's limit"
            );
            assert!(line.ends_with(b"\n"), "a complete line ends with LF");
            if line.len() > MAX_LINE && !is_auth_line(&line) {
                continue;
            }
            match parse_command(&line) {
                Ok(command) => assert!(!command.name().is_empty()),
                Err(error) => {
                    // One reply line: CRLF only at its end, whatever the input held.
                    let reply = error.reply().to_bytes();
                    let body = reply.strip_suffix(b"\r\n").expect("a reply ends with CRLF");
                    assert!(!body.contains(&b'\r') && !body.contains(&b'\n'));
                }
            }
        }
    }
});
