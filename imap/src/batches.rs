//! Loading messages in bounded batches: by count and by the octets they hold (FETCH of
//! bodies, SEARCH of texts, updating searches).

/// Raw octets of the messages loaded at once for one batch (FETCH of bodies, SEARCH
/// TEXT and BODY): many small messages, or a few large ones, never 256 of 50 MB. A
/// message larger than this comes alone.
pub(crate) const MAX_BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// Splits `indexes` into batches of at most `max_count` messages whose sizes (`size` of
/// an index) add up to at most `max_bytes`; a batch always holds at least one message.
pub(crate) fn batches<'a>(
    mut indexes: &'a [usize],
    max_count: usize,
    max_bytes: u64,
    size: impl Fn(usize) -> u64 + 'a,
) -> impl Iterator<Item = &'a [usize]> + 'a {
    std::iter::from_fn(move || {
        let mut bytes: u64 = 0;
        let mut take = 0;
        for &index in indexes.iter().take(max_count.max(1)) {
            let next = bytes.saturating_add(size(index));
            if take > 0 && next > max_bytes {
                break;
            }
            bytes = next;
            take += 1;
        }
        if take == 0 {
            return None;
        }
        let (batch, rest) = indexes.split_at_checked(take)?;
        indexes = rest;
        Some(batch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let sizes = [3u64, 3, 3, 10, 1, 1, 1, 1, 1];
        let indexes: Vec<usize> = (0..sizes.len()).collect();
        let size = |i: usize| sizes.get(i).copied().unwrap_or(0);
        let cut: Vec<&[usize]> = batches(&indexes, 4, 7, size).collect();
        // 3+3 fits 7, a third 3 does not; 10 alone although over; then four of one.
        assert_eq!(cut, vec![&[0, 1][..], &[2], &[3], &[4, 5, 6, 7], &[8]]);
        assert_eq!(batches(&[], 4, 7, size).count(), 0);
        let by_count: Vec<&[usize]> = batches(&indexes, 2, u64::MAX, size).collect();
        assert_eq!(by_count.len(), 5);
    }
}
