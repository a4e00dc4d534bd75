//! METADATA (RFC 5464): GETMETADATA and SETMETADATA on a mailbox's annotations or, with
//! the mailbox name "", the server's (kept per account: see `storage/src/metadata.rs`).
//!
//! As Dovecot 2.3 answers: one `* METADATA` response per GETMETADATA, none when there is
//! nothing to list; a requested entry without a value as NIL, unless DEPTH asks for what
//! is below it; values as literals; entry names lower-cased. No unsolicited METADATA
//! responses (§4.4.2 makes them optional, and §4.1 allows them only after
//! `ENABLE METADATA`, which is therefore not turned on either).

use crate::error::CommandError;
use crate::proto::command::{GetMetadataCommand, MetadataTarget};
use crate::proto::mutf7;
use crate::proto::response::{self, Code};
use crate::session::{CommandResult, Completion, Session};
use std::collections::HashSet;
use storage::{EntryName, MetadataDepth, MetadataEntry, MetadataOwner, StoreError};

/// What one GETMETADATA answers: each entry with its value (`None` for NIL), in order,
/// and the size of the largest value MAXSIZE left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Selection<'a> {
    pub(crate) entries: Vec<(&'a EntryName, Option<&'a [u8]>)>,
    pub(crate) longest_left_out: Option<usize>,
}

/// RFC 5464 §4.2: for each requested entry in order, its value (§4.2.2: "the server
/// returns the value of the specified entry name (if it exists), plus all entries below
/// the entry name up to the specified DEPTH"), then the entries below it in name order.
/// An entry that does not exist is NIL without DEPTH and left out with it (as Dovecot
/// 2.3). §4.2.1 MAXSIZE: "Only entry values that are less than or equal in octet size to
/// the specified MAXSIZE limit are returned." Each entry is listed once, however often
/// it is asked for: what one command can make us send is bounded by what the account
/// holds (`storage::MAX_METADATA_BYTES_PER_ACCOUNT`) and the command's own size.
///
/// `stored` is in name order, as [`storage::Store::metadata`] gives it.
pub(crate) fn select<'a>(
    stored: &'a [MetadataEntry],
    requested: &'a [EntryName],
    depth: MetadataDepth,
    max_size: Option<u32>,
) -> Selection<'a> {
    let mut selection = Selection::default();
    let mut listed: HashSet<&str> = HashSet::new();
    let mut list = |name: &'a EntryName, value: Option<&'a [u8]>| {
        if !listed.insert(name.as_str()) {
            return;
        }
        let limit = max_size.and_then(|max| usize::try_from(max).ok());
        match value {
            Some(value) if limit.is_some_and(|limit| value.len() > limit) => {
                let longest = selection.longest_left_out.get_or_insert(0);
                *longest = (*longest).max(value.len());
            }
            _ => selection.entries.push((name, value)),
        }
    };
    for root in requested {
        match stored.binary_search_by(|entry| entry.name.cmp(root)) {
            Ok(found) => {
                if let Some(entry) = stored.get(found) {
                    list(&entry.name, Some(&entry.value));
                }
            }
            Err(_) if depth == MetadataDepth::Zero => list(root, None),
            Err(_) => {}
        }
        if depth == MetadataDepth::Zero {
            continue;
        }
        // Every name below `root` starts with `root/`; in name order they are one run.
        let prefix = format!("{root}/");
        let start = stored.partition_point(|entry| entry.name.as_str() < prefix.as_str());
        let below = stored
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|entry| entry.name.as_str().starts_with(&prefix))
            .filter(|entry| entry.name.is_below(root, depth));
        for entry in below {
            list(&entry.name, Some(&entry.value));
        }
    }
    selection
}

impl Session {
    /// The owner of the annotations a command names, and its name as the METADATA
    /// response gives it (`""` for the server).
    async fn metadata_owner(
        &self,
        target: &MetadataTarget,
    ) -> Result<(MetadataOwner, String), CommandError> {
        match target {
            MetadataTarget::Server => Ok((MetadataOwner::Server(self.account()?), String::new())),
            MetadataTarget::Mailbox(name) => {
                let mailbox = self.existing(name).await?;
                Ok((
                    MetadataOwner::Mailbox(mailbox.id),
                    mailbox.name.into_string(),
                ))
            }
        }
    }

    /// RFC 5464 §4.2 GETMETADATA; §4.4.1: `metadata-resp = "METADATA" SP mailbox SP
    /// entry-values`, one response for the whole answer.
    pub(crate) async fn get_metadata(&mut self, command: GetMetadataCommand) -> CommandResult {
        let (owner, mailbox) = self.metadata_owner(&command.target).await?;
        let stored = self.server.store.metadata(owner).await?;
        let selection = select(&stored, &command.entries, command.depth, command.max_size);
        if !selection.entries.is_empty() {
            let utf8 = self.utf8();
            let out = &mut self.conn.out;
            out.extend_from_slice(b"* METADATA ");
            // `mailbox` as an astring, as Dovecot writes it (an atom when it can be).
            if utf8 {
                response::astring(out, mailbox.as_bytes(), true);
            } else {
                response::astring(out, mutf7::encode(&mailbox).as_bytes(), false);
            }
            out.extend_from_slice(b" (");
            for (index, (name, value)) in selection.entries.iter().enumerate() {
                if index > 0 {
                    out.push(b' ');
                }
                // `entry-value = entry SP value`; `value = nstring / literal8`.
                response::astring(out, name.as_str().as_bytes(), false);
                out.push(b' ');
                match value {
                    None => out.extend_from_slice(b"NIL"),
                    Some(value) if value.contains(&0) => response::literal8(out, value),
                    Some(value) => response::literal(out, value),
                }
            }
            out.extend_from_slice(b")\r\n");
        }
        Ok(match selection.longest_left_out {
            // §4.2.1: "the server MUST include the METADATA LONGENTRIES response code in
            // the tagged OK response".
            Some(longest) => Completion::ok_with(
                Code::MetadataLongEntries(u64::try_from(longest).unwrap_or(u64::MAX)),
                "GETMETADATA completed",
            ),
            None => Completion::ok("GETMETADATA completed"),
        })
    }

    /// RFC 5464 §4.3 SETMETADATA: all the entries or none. "The server SHOULD NOT return
    /// a METADATA response containing the updated annotation data."
    pub(crate) async fn set_metadata(
        &mut self,
        target: &MetadataTarget,
        entries: Vec<(EntryName, Option<Vec<u8>>)>,
    ) -> CommandResult {
        let (owner, _) = self.metadata_owner(target).await?;
        match self.server.store.set_metadata(owner, entries).await {
            Ok(()) => Ok(Completion::ok("SETMETADATA completed")),
            // RFC 5530 §3 OVERQUOTA: the account's annotations, together, are over
            // their limit (`[METADATA MAXSIZE]` is about one value).
            Err(StoreError::OverQuota) => Err(CommandError::no(
                Some(Code::OverQuota),
                format!(
                    "The annotations of an account may take at most {} octets",
                    storage::MAX_METADATA_BYTES_PER_ACCOUNT
                ),
            )),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> EntryName {
        EntryName::new(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn stored(entries: &[(&str, &str)]) -> Vec<MetadataEntry> {
        let mut stored: Vec<MetadataEntry> = entries
            .iter()
            .map(|(n, v)| MetadataEntry {
                name: name(n),
                value: v.as_bytes().to_vec(),
            })
            .collect();
        stored.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        stored
    }

    /// The selection as `name=value` (`name=NIL`) words, and the longest left out.
    fn answer(
        stored: &[MetadataEntry],
        requested: &[&str],
        depth: MetadataDepth,
        max_size: Option<u32>,
    ) -> (String, Option<usize>) {
        let requested: Vec<EntryName> = requested.iter().map(|n| name(n)).collect();
        let selection = select(stored, &requested, depth, max_size);
        let words: Vec<String> = selection
            .entries
            .iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{name}={}", String::from_utf8_lossy(value)),
                None => format!("{name}=NIL"),
            })
            .collect();
        (words.join(" "), selection.longest_left_out)
    }

    #[test]
    fn depth_lists_the_entry_then_what_is_below_it_in_name_order() {
        use MetadataDepth::{Infinity, One, Zero};
        let stored = stored(&[
            ("/shared/x", "root"),
            ("/shared/x/z", "z"),
            ("/shared/x/a/deep", "deep"),
            ("/shared/x-y", "sibling"),
            ("/shared/x/b", "b"),
            ("/private/x/b", "private"),
        ]);
        assert_eq!(
            answer(&stored, &["/shared/x", "/shared/none"], Zero, None).0,
            "/shared/x=root /shared/none=NIL"
        );
        assert_eq!(
            answer(&stored, &["/shared/x"], One, None).0,
            "/shared/x=root /shared/x/b=b /shared/x/z=z"
        );
        assert_eq!(
            answer(&stored, &["/shared/x"], Infinity, None).0,
            "/shared/x=root /shared/x/a/deep=deep /shared/x/b=b /shared/x/z=z"
        );
        // Without a value of its own the entry is left out when DEPTH lists below it.
        assert_eq!(
            answer(&stored, &["/shared/x/a"], One, None).0,
            "/shared/x/a/deep=deep"
        );
        assert_eq!(answer(&stored, &["/shared/none"], Infinity, None).0, "");
        assert_eq!(
            answer(&stored, &["/private"], Infinity, None).0,
            "/private/x/b=private"
        );
        assert_eq!(answer(&stored, &["/private"], One, None).0, "");
        assert_eq!(answer(&stored, &["/private"], Zero, None).0, "/private=NIL");
        // Each entry once, however often it is asked for or reached.
        assert_eq!(
            answer(
                &stored,
                &["/shared/x/b", "/shared/x", "/shared/x/b"],
                One,
                None
            )
            .0,
            "/shared/x/b=b /shared/x=root /shared/x/z=z"
        );
        assert_eq!(
            answer(&stored, &["/shared/none", "/shared/none"], Zero, None).0,
            "/shared/none=NIL"
        );
    }

    #[test]
    fn maxsize_leaves_out_larger_values_and_reports_the_largest() {
        use MetadataDepth::{One, Zero};
        let stored = stored(&[
            ("/shared/a", "1"),
            ("/shared/b", "333"),
            ("/shared/c", "22"),
        ]);
        assert_eq!(
            answer(
                &stored,
                &["/shared/a", "/shared/b", "/shared/n"],
                Zero,
                Some(1)
            ),
            ("/shared/a=1 /shared/n=NIL".into(), Some(3))
        );
        assert_eq!(
            answer(&stored, &["/shared"], One, Some(0)),
            (String::new(), Some(3))
        );
        assert_eq!(
            answer(&stored, &["/shared"], One, Some(3)),
            ("/shared/a=1 /shared/b=333 /shared/c=22".into(), None)
        );
    }
}
