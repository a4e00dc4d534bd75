//! Entry points for the fuzz targets in `imap/fuzz/` into evaluation that the session
//! normally reaches only with a selected mailbox. Not an API for anything else.

/// RFC 5256 THREAD (REFERENCES and ORDEREDSUBJECT) over messages described one per line
/// of `input` (`message-id SP subject SP sent-date *(SP reference)`): the THREAD data
/// of both algorithms.
pub fn thread(input: &str) -> (String, String) {
    crate::command::sort::thread_lines(input)
}

/// SEARCH `criteria` (what follows `SEARCH `) over `messages` analysed as at delivery,
/// message n with sequence number and UID n: the matching numbers, `None` when the
/// command does not parse.
pub fn search(criteria: &[u8], messages: &[&[u8]], now: i64) -> Option<Vec<u32>> {
    crate::command::search::search_messages(criteria, messages, now)
}
