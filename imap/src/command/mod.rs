//! Command handlers, one file per family. Each is an `impl Session` block; the gate in
//! `session.rs` has already checked state and link before any of them runs.

mod any;
mod append;
mod auth;
pub(crate) mod context;
mod copy;
mod expunge;
mod fetch;
mod idle;
mod mailbox;
pub(crate) mod metadata;
mod notify;
mod quota;
pub(crate) mod search;
mod select;
pub(crate) mod sort;
mod store;
mod urlauth;

use crate::error::CommandError;
use crate::proto::SetOrSaved;
use crate::session::State;
use crate::view::View;

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

/// The selected mailbox's view, for a command that changes it: BAD when no mailbox is
/// selected, NO when it was opened read-only (RFC 9051 §6.3.3 EXAMINE).
pub(crate) fn writable_view(state: &mut State) -> Result<&mut View, CommandError> {
    let State::Selected { view, .. } = state else {
        return Err(CommandError::bad("No mailbox selected"));
    };
    if view.read_only {
        return Err(CommandError::no(None, "The mailbox is read-only"));
    }
    Ok(&mut **view)
}

/// Resolves a sequence set (or `$`) to indexes into the view, sorted and unique.
/// RFC 9051 §6.4: a sequence number beyond the mailbox is a BAD; UIDs that do not exist
/// are simply not there.
pub(crate) fn resolve(
    view: &View,
    set: &SetOrSaved,
    uid: bool,
) -> Result<Vec<usize>, CommandError> {
    match set {
        SetOrSaved::Saved => {
            let mut indexes: Vec<usize> = view
                .saved
                .iter()
                .filter_map(|&uid| view.index_of(uid))
                .collect();
            indexes.sort_unstable();
            indexes.dedup();
            Ok(indexes)
        }
        SetOrSaved::Set(set) if uid => Ok(set.uid_indexes(view.uids())),
        SetOrSaved::Set(set) => {
            let count = u32::try_from(view.exists()).unwrap_or(u32::MAX);
            if set.exceeds(count) {
                return Err(CommandError::bad("Invalid message sequence number"));
            }
            Ok(set.seq_indexes(view.exists()))
        }
    }
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
