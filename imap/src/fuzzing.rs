//! Entry points for the fuzz targets in `imap/fuzz/` into evaluation that the session
//! normally reaches only with a selected mailbox or a store. Not an API for anything
//! else.

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
    crate::search_eval::search_messages(criteria, messages, now)
}

/// RFC 5464 GETMETADATA `arguments` (what follows `GETMETADATA `) answered from `stored`
/// (entry names and values; the invalid names are left out): each listed entry's name
/// and value length (`None` for NIL), and the LONGENTRIES size; `None` when the command
/// does not parse.
#[allow(clippy::type_complexity)]
pub fn getmetadata(
    arguments: &[u8],
    stored: &[(&str, &[u8])],
) -> Option<(Vec<(String, Option<usize>)>, Option<usize>)> {
    let mut command = b"a GETMETADATA ".to_vec();
    command.extend_from_slice(arguments);
    let crate::proto::CommandBody::GetMetadata(command) =
        crate::proto::parse_command(&command).ok()?.body
    else {
        return None;
    };
    let mut entries: Vec<storage::MetadataEntry> = stored
        .iter()
        .filter_map(|(name, value)| {
            Some(storage::MetadataEntry {
                name: storage::EntryName::new(name).ok()?,
                value: value.to_vec(),
            })
        })
        .collect();
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    entries.dedup_by(|a, b| a.name == b.name);
    let selection = crate::command::metadata::select(
        &entries,
        &command.entries,
        command.depth,
        command.max_size,
    );
    let listed = selection
        .entries
        .iter()
        .map(|(name, value)| (name.to_string(), value.map(<[u8]>::len)))
        .collect();
    Some((listed, selection.longest_left_out))
}
