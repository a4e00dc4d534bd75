//! Command handlers, one file per family. Each is an `impl Session` block; the gate in
//! `session.rs` has already checked state and link before any of them runs.

mod any;
mod append;
mod auth;
mod context;
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
