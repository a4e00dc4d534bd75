//! Ids that are never handed out twice: from the `id_sequences` table (SQLite) or from
//! sequences (PostgreSQL, migration 0010).
//!
//! Invariant: an id taken here is larger than every id its table ever held, so a deleted
//! row's id never comes back. SQLite's `INTEGER PRIMARY KEY` without AUTOINCREMENT gives
//! the largest id plus one, which a DELETE of the largest row makes free again; RFC 8474
//! §4.1 (MAILBOXID) and the message cache (`cache.rs`) need ids that name one object for
//! ever. A PostgreSQL sequence never goes back, and writers of different accounts take
//! ids from it at once without waiting on each other (an `id_sequences` row would make
//! them queue; see `locks.rs`).

use crate::Backend;
use crate::error::{Result, StoreError};
use sqlx::AnyConnection;

/// A table whose ids come from `id_sequences` (its row there has the table's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdSequence {
    /// Migrations sqlite 0003, postgres 0001 and 0010.
    Messages,
    /// Migrations sqlite 0011, postgres 0006 and 0010.
    Mailboxes,
}

impl IdSequence {
    fn table(self) -> &'static str {
        match self {
            IdSequence::Messages => "messages",
            IdSequence::Mailboxes => "mailboxes",
        }
    }
}

/// SQLite: the UPDATE that takes the next id of `sequence` (see [`next_id`]), its row
/// named by `name` (a bound parameter, or the quoted name); with no RETURNING clause, for
/// the caller to add the one it needs.
pub(crate) fn sqlite_take_id(sequence: IdSequence, name: &str) -> String {
    let table = sequence.table();
    format!(
        "UPDATE id_sequences
         SET last_id = (SELECT CASE WHEN COALESCE(MAX(id), 0) > last_id THEN MAX(id) ELSE last_id END
                        FROM {table}) + 1
         WHERE name = {name}"
    )
}

/// An id never used before in `sequence`'s table. SQLite: one more than both the last
/// one handed out and the largest in the table, so a row written without the sequence
/// cannot collide either; inside a writer job, the UPDATE holds the row until commit.
/// PostgreSQL: the next value of the table's sequence.
pub(crate) async fn next_id(conn: &mut AnyConnection, sequence: IdSequence) -> Result<i64> {
    let table = sequence.table();
    // SQLite: the name is bound rather than written into the statement, because sqlx's
    // Any driver keeps a prepared SQLite statement only when it has arguments; preparing
    // this one at every delivery cost as much as running it.
    let backend = Backend::of_connection(conn);
    let sql = match backend {
        Backend::Postgres => format!("SELECT nextval('{table}_id_seq')"),
        Backend::Sqlite => format!("{} RETURNING last_id", sqlite_take_id(sequence, "$1")),
    };
    let query = sqlx::query_scalar(&sql);
    let query = match backend {
        Backend::Postgres => query,
        Backend::Sqlite => query.bind(table),
    };
    query
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("no id sequence for {table}")))
}
