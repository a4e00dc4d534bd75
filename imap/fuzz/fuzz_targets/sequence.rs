//! Any bytes as a sequence set: when it parses, the merged ranges SEARCH and FETCH use
//! (`resolve`) hold exactly the numbers the set as written holds, and the indexes FETCH
//! expands agree with them, for mailboxes of several sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(set) = imap::proto::parse_sequence_set(data) else {
        return;
    };
    for largest in [0u32, 1, 7, 100, u32::MAX] {
        let merged = set.resolve(largest);
        assert!(
            merged.ranges().windows(2).all(|w| w[0].1.saturating_add(1) < w[1].0),
            "not merged: {:?}",
            merged.ranges()
        );
        let probes = (0..=130u32).chain([largest.saturating_sub(1), largest, u32::MAX]);
        for number in probes {
            assert_eq!(set.contains(number, largest), merged.contains(number), "{number}");
        }
        if largest <= 100 {
            let count = largest as usize;
            let expected: Vec<usize> = (0..count)
                .filter(|&i| merged.contains(i as u32 + 1))
                .collect();
            assert_eq!(set.seq_indexes(count), expected);
        }
    }
});
