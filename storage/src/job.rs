//! What a job of the writer (`writer.rs`) gives back. Its own module so that the modules
//! whose jobs the writer batches specially (`delivery/`, `fulltext.rs`) need not import
//! the writer that imports them.

use crate::notify::Change;

/// What a job gives back: its result and the changes to publish once committed.
pub(crate) struct JobOutput<T> {
    pub value: T,
    pub changes: Vec<Change>,
}

impl<T> JobOutput<T> {
    pub fn new(value: T, changes: Vec<Change>) -> Self {
        JobOutput { value, changes }
    }
}
