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

/// A sequence set resolved against a mailbox: inclusive ranges, sorted, disjoint and
/// not adjacent. What a set with thousands of overlapping ranges (`1:*,1:*,...`) is
/// turned into before anything is expanded or looked up (issue 13).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet(Vec<(u32, u32)>);

/// A set argument as a command gives it: an explicit set, or `$`, the result saved by
/// `SEARCH RETURN (SAVE)` (RFC 5182, RFC 9051 §6.4.4.1). Named for what it holds: it
/// is not resolved to messages until the view looks it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOrSaved {
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

    /// Sorts and merges the ranges with `*` standing for `largest`: linear in the
    /// number of ranges as written (after a sort), whatever they cover.
    pub fn resolve(&self, largest: u32) -> RangeSet {
        let mut ranges: Vec<(u32, u32)> = self.ranges(largest).collect();
        ranges.sort_unstable();
        // `dedup_by` hands us (later, earlier-kept): fold the later into the earlier when
        // they overlap or touch.
        ranges.dedup_by(|(low, high), (_, kept_high)| {
            if *low <= kept_high.saturating_add(1) {
                *kept_high = (*kept_high).max(*high);
                true
            } else {
                false
            }
        });
        RangeSet(ranges)
    }

    /// True when `number` is in the set, `*` standing for `largest`: for one number.
    /// To ask about many (SEARCH over a mailbox), [`SequenceSet::resolve`] once and ask
    /// the [`RangeSet`], which answers by binary search.
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
        // Merged first, so each message is produced once however often it is named.
        let mut out: Vec<usize> = Vec::new();
        for &(low, high) in &self.resolve(largest).0 {
            let low = low.max(1);
            let high = high.min(largest);
            if low > high {
                continue;
            }
            out.extend((low as usize - 1)..(high as usize));
        }
        out
    }

    /// Indexes (0-based) into `uids` (sorted ascending) of the UIDs in this set. `*` is the
    /// largest UID; RFC 9051 §6.4.9: `559:*` includes the last message even when 559 is
    /// larger than every UID.
    pub fn uid_indexes(&self, uids: &[u32]) -> Vec<usize> {
        let largest = uids.last().copied().unwrap_or(0);
        // Disjoint sorted ranges give sorted indexes without duplicates.
        let mut out: Vec<usize> = Vec::new();
        for &(low, high) in &self.resolve(largest).0 {
            let from = uids.partition_point(|&u| u < low);
            let to = uids.partition_point(|&u| u <= high);
            if from < to {
                out.extend(from..to);
            }
        }
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

impl RangeSet {
    /// The set of the given numbers (UIDs saved by `SEARCH RETURN (SAVE)`), in any order.
    pub fn from_numbers(numbers: impl IntoIterator<Item = u32>) -> RangeSet {
        SequenceSet(
            numbers
                .into_iter()
                .map(|n| SeqRange {
                    start: SeqNumber::Value(n),
                    end: SeqNumber::Value(n),
                })
                .collect(),
        )
        .resolve(0)
    }

    /// True when `number` is in the set: a binary search over the merged ranges.
    pub fn contains(&self, number: u32) -> bool {
        let at = self.0.partition_point(|&(_, high)| high < number);
        self.0.get(at).is_some_and(|&(low, _)| low <= number)
    }

    /// The ranges, sorted, disjoint and not adjacent.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }

    /// Adds `low..=high` (`low <= high`), which lies above every number in the set: the
    /// set stays sorted, disjoint and not adjacent without a sort.
    pub fn push_above(&mut self, low: u32, high: u32) {
        match self.0.last_mut() {
            Some((_, last)) if last.saturating_add(1) >= low => *last = (*last).max(high),
            _ => self.0.push((low, high)),
        }
    }

    /// How many of `sorted` (ascending, no duplicates) are in the set: two binary
    /// searches per range.
    pub fn count_in(&self, sorted: &[u32]) -> usize {
        self.0
            .iter()
            .map(|&(low, high)| {
                sorted.partition_point(|&n| n <= high) - sorted.partition_point(|&n| n < low)
            })
            .sum()
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

    #[test]
    fn ranges_pushed_above_merge_and_count() {
        let mut set = RangeSet::default();
        set.push_above(3, 5);
        set.push_above(6, 6);
        set.push_above(9, u32::MAX);
        assert_eq!(set.ranges(), &[(3, 6), (9, u32::MAX)]);
        assert_eq!(set.count_in(&[1, 2, 3, 6, 7, 8, 9, 40]), 4);
        assert_eq!(set.count_in(&[]), 0);
        assert!(set.contains(4) && !set.contains(7) && set.contains(u32::MAX));
    }
    use crate::proto::parse::parse_sequence_set;

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
    fn merges_ranges_before_expanding() {
        assert_eq!(
            set("10,8:9,1:3,2,4:6,20:*").resolve(15).ranges(),
            &[(1, 6), (8, 10), (15, 20)]
        );
        assert_eq!(set("*:4,7").resolve(2).ranges(), &[(2, 4), (7, 7)]);
        assert_eq!(
            set("1:4294967295,5").resolve(3).ranges(),
            &[(1, 4_294_967_295)]
        );
        // The attack of issue 13: 16,000 times the whole mailbox is one range, and
        // expands to each message once.
        let attack = set(&vec!["1:*"; 16_000].join(","));
        assert_eq!(attack.resolve(2009).ranges(), &[(1, 2009)]);
        assert_eq!(attack.seq_indexes(2009), (0..2009).collect::<Vec<_>>());
        let uids: Vec<u32> = (1..=2009).map(|n| n * 2).collect();
        assert_eq!(attack.uid_indexes(&uids), (0..2009).collect::<Vec<_>>());
        // A range that covers every possible number is not expanded beyond the mailbox.
        assert_eq!(set("1:4294967295").seq_indexes(3), vec![0, 1, 2]);
    }

    #[test]
    fn range_set_contains_by_binary_search() {
        let resolved = set("3:5,9,12:*").resolve(14);
        for (n, expected) in [
            (0, false),
            (2, false),
            (3, true),
            (5, true),
            (6, false),
            (9, true),
            (10, false),
            (12, true),
            (14, true),
            (15, false),
            (u32::MAX, false),
        ] {
            assert_eq!(resolved.contains(n), expected, "{n}");
        }
        assert!(!RangeSet::default().contains(1));
        let saved = RangeSet::from_numbers([7, 3, 4, 4, 10]);
        assert_eq!(saved.ranges(), &[(3, 4), (7, 7), (10, 10)]);
    }

    #[test]
    fn resolved_sets_agree_with_the_sets_as_written() {
        // Deterministic pseudo-random sets, compared against the definition (each range
        // as written, `*` as the largest number) on every number of a small mailbox.
        fn next(seed: &mut u64, bound: u64) -> u64 {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed % bound
        }
        fn number(seed: &mut u64) -> SeqNumber {
            match next(seed, 8) {
                0 => SeqNumber::Star,
                _ => SeqNumber::Value(next(seed, 50) as u32 + 1),
            }
        }
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..500 {
            let largest = next(&mut seed, 40) as u32;
            let ranges = (0..=next(&mut seed, 6))
                .map(|_| SeqRange {
                    start: number(&mut seed),
                    end: number(&mut seed),
                })
                .collect();
            let written = SequenceSet(ranges);
            let resolved = written.resolve(largest);
            for n in 0..60 {
                assert_eq!(
                    resolved.contains(n),
                    written.contains(n, largest),
                    "{written} {n}"
                );
            }
            let expected: Vec<usize> = (1..=largest)
                .filter(|&n| written.contains(n, largest))
                .map(|n| n as usize - 1)
                .collect();
            assert_eq!(written.seq_indexes(largest as usize), expected, "{written}");
            let uids: Vec<u32> = (1..=largest).map(|n| n * 3).collect();
            let expected: Vec<usize> = uids
                .iter()
                .enumerate()
                .filter(|&(_, &uid)| written.contains(uid, uids.last().copied().unwrap_or(0)))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(written.uid_indexes(&uids), expected, "{written}");
        }
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
