//! Command handlers, one file per family. Each is an `impl Session` block; the gate in
//! `session.rs` has already checked state and link before any of them runs.

mod any;
mod append;
mod auth;
mod copy;
mod expunge;
mod fetch;
mod idle;
mod mailbox;
mod quota;
mod search;
mod select;
mod sort;
mod store;

use crate::error::CommandError;
use crate::proto::Sequence;
use crate::view::View;

/// Resolves a sequence set (or `$`) to indexes into the view, sorted and unique.
/// RFC 9051 §6.4: a sequence number beyond the mailbox is a BAD; UIDs that do not exist
/// are simply not there.
pub(crate) fn resolve(view: &View, set: &Sequence, uid: bool) -> Result<Vec<usize>, CommandError> {
    match set {
        Sequence::Saved => {
            let mut indexes: Vec<usize> = view
                .saved
                .iter()
                .filter_map(|&uid| view.index_of(uid))
                .collect();
            indexes.sort_unstable();
            indexes.dedup();
            Ok(indexes)
        }
        Sequence::Set(set) if uid => Ok(set.uid_indexes(view.uids())),
        Sequence::Set(set) => {
            let count = u32::try_from(view.exists()).unwrap_or(u32::MAX);
            if set.exceeds(count) {
                return Err(CommandError::bad("Invalid message sequence number"));
            }
            Ok(set.seq_indexes(view.exists()))
        }
    }
}
