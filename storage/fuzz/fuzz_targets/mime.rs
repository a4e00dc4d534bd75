//! Any bytes as a delivered message: analysis never panics, every offset it stores lies
//! within the message and in order, the part tree is no deeper than MAX_MIME_DEPTH, and
//! the meta that would be stored reads back as it was written (house rule 12).
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::mime::{BodyPart, MAX_MIME_DEPTH, MessageMeta, PartContent, analyse};

fuzz_target!(|data: &[u8]| {
    let analysis = analyse(data);
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut parts: Vec<(&BodyPart, usize)> = vec![(&analysis.meta.root, 0)];
    while let Some((part, depth)) = parts.pop() {
        assert!(depth <= MAX_MIME_DEPTH, "part at depth {depth}");
        assert!(
            part.header_start <= part.body_start
                && part.body_start <= part.body_end
                && part.body_end <= length,
            "offsets out of order: {part:?}"
        );
        match &part.content {
            PartContent::Single => {}
            PartContent::Multipart(children) => {
                parts.extend(children.iter().map(|child| (child, depth + 1)))
            }
            PartContent::Message { root, .. } => parts.push((root, depth + 1)),
        }
    }
    let json = serde_json::to_string(&analysis.meta).expect("meta serialises");
    let back: MessageMeta = serde_json::from_str(&json).expect("stored meta reads back");
    assert_eq!(back, analysis.meta);
    let _ = storage::mime::top_header(data, &analysis.meta.root);
});
