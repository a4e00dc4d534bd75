//! Sequence sets (RFC 9051 §9 `sequence-set`) and their resolution against a mailbox view.

use std::fmt;

/// One end of a range: a number or `*`, the largest number in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNumber {
    Value(u32),
    Star,
}

/// `seq-range = seq-number ":" seq-number`; a single number is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub start: SeqNumber,
    pub end: SeqNumber,
}

/// A non-empty `sequence-set` as written by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<SeqRange>);

/// A set argument: an explicit set, or `$`, the result saved by `SEARCH RETURN (SAVE)`
/// (RFC 5182, RFC 9051 §6.4.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sequence {
    Set(SequenceSet),
    Saved,
}

impl SeqNumber {
    fn resolve(self, largest: u32) -> u32 {
        match self {
            SeqNumber::Value(v) => v,
            SeqNumber::Star => largest,
        }
    }
}

impl SequenceSet {
    /// The inclusive ranges with `*` replaced by `largest` and each range ordered low to
    /// high (RFC 9051 §9: `4:2` is `2:4`).
    pub fn ranges(&self, largest: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.0.iter().map(move |range| {
            let a = range.start.resolve(largest);
            let b = range.end.resolve(largest);
            (a.min(b), a.max(b))
        })
    }

    /// True when `number` is in the set, `*` standing for `largest`.
    pub fn contains(&self, number: u32, largest: u32) -> bool {
        self.ranges(largest)
            .any(|(low, high)| (low..=high).contains(&number))
    }

    /// True when any number (not `*`) exceeds `largest`: RFC 9051 §6.4.? "The server SHOULD
    /// respond with a tagged BAD response to a command that uses a message sequence number
    /// greater than the number of messages in the selected mailbox."
    pub fn exceeds(&self, largest: u32) -> bool {
        self.0.iter().any(|range| {
            [range.start, range.end].iter().any(|n| {
                matches!(n, SeqNumber::Value(v) if *v > largest)
                    || (*n == SeqNumber::Star && largest == 0)
            })
        })
    }

    /// Indexes (0-based) into a view of `count` messages addressed by sequence number,
    /// sorted and without duplicates. Numbers beyond `count` are ignored.
    pub fn seq_indexes(&self, count: usize) -> Vec<usize> {
        let largest = u32::try_from(count).unwrap_or(u32::MAX);
        let mut out: Vec<usize> = Vec::new();
        for (low, high) in self.ranges(largest) {
            let low = low.max(1);
            let high = high.min(largest);
            if low > high {
                continue;
            }
            out.extend((low as usize - 1)..(high as usize));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Indexes (0-based) into `uids` (sorted ascending) of the UIDs in this set. `*` is the
    /// largest UID; RFC 9051 §6.4.9: `559:*` includes the last message even when 559 is
    /// larger than every UID.
    pub fn uid_indexes(&self, uids: &[u32]) -> Vec<usize> {
        let largest = uids.last().copied().unwrap_or(0);
        let mut out: Vec<usize> = Vec::new();
        for (low, high) in self.ranges(largest) {
            let from = uids.partition_point(|&u| u < low);
            let to = uids.partition_point(|&u| u <= high);
            if from < to {
                out.extend(from..to);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The set of the given numbers, compressed into ranges (for COPYUID, ESEARCH ALL).
    pub fn from_numbers(numbers: &[u32]) -> Option<SequenceSet> {
        let mut sorted = numbers.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        compress(&sorted)
    }
}

/// Compresses numbers in the given order into ranges of consecutive values. COPYUID
/// keeps the order of the source UIDs, so this does not sort.
pub fn compress(numbers: &[u32]) -> Option<SequenceSet> {
    let mut ranges: Vec<SeqRange> = Vec::new();
    for &n in numbers {
        if let Some(SeqRange {
            end: SeqNumber::Value(end),
            ..
        }) = ranges.last_mut()
            && end.checked_add(1) == Some(n)
        {
            *end = n;
            continue;
        }
        ranges.push(SeqRange {
            start: SeqNumber::Value(n),
            end: SeqNumber::Value(n),
        });
    }
    (!ranges.is_empty()).then_some(SequenceSet(ranges))
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqNumber::Value(v) => write!(f, "{v}"),
            SeqNumber::Star => f.write_str("*"),
        }
    }
}

impl fmt::Display for SequenceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if range.start == range.end {
                write!(f, "{}", range.start)?;
            } else {
                write!(f, "{}:{}", range.start, range.end)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::parse_sequence_set;

    fn set(text: &str) -> SequenceSet {
        parse_sequence_set(text.as_bytes()).expect("valid set")
    }

    #[test]
    fn resolves_sequence_numbers() {
        assert_eq!(set("1:*").seq_indexes(3), vec![0, 1, 2]);
        assert_eq!(set("3:1").seq_indexes(5), vec![0, 1, 2]);
        assert_eq!(set("2,4:5,2").seq_indexes(5), vec![1, 3, 4]);
        assert_eq!(set("*").seq_indexes(0), Vec::<usize>::new());
        assert!(set("6").exceeds(5));
        assert!(!set("1:*").exceeds(5));
        assert!(set("*").exceeds(0));
    }

    #[test]
    fn resolves_uids() {
        let uids = [3, 5, 9, 10];
        assert_eq!(set("1:4").uid_indexes(&uids), vec![0]);
        assert_eq!(set("5:*").uid_indexes(&uids), vec![1, 2, 3]);
        assert_eq!(set("100:*").uid_indexes(&uids), vec![3]);
        assert_eq!(set("6:8").uid_indexes(&uids), Vec::<usize>::new());
        assert_eq!(set("*").uid_indexes(&[]), Vec::<usize>::new());
    }

    #[test]
    fn compresses_and_formats() {
        assert_eq!(
            SequenceSet::from_numbers(&[5, 1, 2, 3, 9])
                .map(|s| s.to_string())
                .as_deref(),
            Some("1:3,5,9")
        );
        assert_eq!(
            compress(&[4, 5, 2]).map(|s| s.to_string()).as_deref(),
            Some("4:5,2")
        );
        assert_eq!(compress(&[]), None);
        assert_eq!(set("1:*,7").to_string(), "1:*,7");
    }
}
