//! STORE and UID STORE (RFC 9051 §6.4.6): flag changes, answered with the new flags
//! unless `.SILENT`.

use super::{resolve, writable_view};
use crate::error::CommandError;
use crate::proto::command::StoreCommand;
use crate::proto::response::{self, Code};
use crate::proto::sequence::SequenceSet;
use crate::session::{CommandResult, Completion, Session};
use crate::view::flags_fetch_line;
use std::collections::HashSet;
use storage::{Flags, ModSeq, SYSTEM_FLAGS};

/// Keywords a message may carry; beyond this a client is abusing flags as storage.
const MAX_FLAGS_PER_STORE: usize = 64;

/// RFC 9051 §2.3.2: system flags are the five of SYSTEM_FLAGS (and \Recent, which no
/// client may set); anything else with a backslash is not ours to invent.
pub(crate) fn validate_flags(flags: &[String]) -> Result<Flags, CommandError> {
    if flags.len() > MAX_FLAGS_PER_STORE {
        return Err(CommandError::bad("Too many flags"));
    }
    let mut valid = Vec::with_capacity(flags.len());
    for flag in flags {
        if flag.starts_with('\\') {
            if flag.eq_ignore_ascii_case("\\Recent") {
                continue;
            }
            if !SYSTEM_FLAGS
                .iter()
                .any(|system| system.eq_ignore_ascii_case(flag))
            {
                return Err(CommandError::bad("Unknown system flag"));
            }
        }
        valid.push(flag.as_str());
    }
    Ok(Flags::new(valid))
}

impl Session {
    pub(crate) async fn store(&mut self, command: StoreCommand) -> CommandResult {
        // RFC 7162 §3.1: UNCHANGEDSINCE is CONDSTORE enabling.
        if command.unchanged_since.is_some() {
            self.enable_condstore();
        }
        let store = self.server.store.clone();
        let Session { state, conn, .. } = self;
        let view = writable_view(state)?;
        let flags = validate_flags(&command.flags)?;
        let indexes = resolve(view, &command.set, command.uid)?;
        let uids = view.live_uids(&indexes);
        let mut changed = HashSet::new();
        let mut modified = Vec::new();
        if !uids.is_empty() {
            let outcome = store
                .store_flags(
                    view.mailbox,
                    uids,
                    command.operation,
                    flags,
                    command.unchanged_since.map(ModSeq),
                )
                .await?;
            view.announce_keywords(outcome.changed.iter().map(|(_, _, f)| f), &mut conn.out);
            for (uid, modseq, flags) in outcome.changed {
                view.set_flags(uid, modseq, flags);
                changed.insert(uid);
            }
            modified = outcome.modified;
        }
        // RFC 7162 §3.2.4: once QRESYNC is enabled, every FETCH response a STORE causes
        // carries the UID, so the client can apply it without a sequence number map.
        let with_uid = command.uid || view.qresync;
        for &index in &indexes {
            let Some(entry) = view.entries.get(index) else {
                continue;
            };
            if modified.contains(&entry.uid) {
                continue;
            }
            let line = if !command.silent {
                // RFC 7162 §3.1.4.1: with CONDSTORE on, FETCH responses carry MODSEQ.
                flags_fetch_line(
                    index,
                    entry,
                    with_uid,
                    view.condstore,
                    view.is_recent(entry.uid),
                )
            } else if view.condstore && changed.contains(&entry.uid) {
                // RFC 7162 §3.1.3: .SILENT still tells a CONDSTORE client the new MODSEQ.
                let uid = if with_uid {
                    format!("UID {} ", entry.uid)
                } else {
                    String::new()
                };
                format!("{} FETCH ({uid}MODSEQ ({}))", index + 1, entry.modseq)
            } else {
                continue;
            };
            response::untagged(&mut conn.out, &line);
        }
        let done = if command.uid {
            "UID STORE completed"
        } else {
            "STORE completed"
        };
        // RFC 7162 §3.1.3: `OK [MODIFIED set]` names what UNCHANGEDSINCE protected, as
        // UIDs for UID STORE and sequence numbers for STORE.
        let modified: Vec<u32> = modified
            .iter()
            .filter_map(|&uid| {
                if command.uid {
                    Some(uid.0)
                } else {
                    view.index_of(uid).and_then(|i| u32::try_from(i + 1).ok())
                }
            })
            .collect();
        match SequenceSet::from_numbers(&modified) {
            Some(set) => Ok(Completion::ok_with(
                Code::Modified(set.to_string()),
                "Conditional STORE failed for some messages",
            )),
            None => Ok(Completion::ok(done)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_flags() {
        let flags = validate_flags(&["\\seen".into(), "$Label".into(), "\\Recent".into()]);
        assert_eq!(
            flags.ok().map(|f| f.to_stored()).as_deref(),
            Some("$Label \\Seen")
        );
        assert!(validate_flags(&["\\Bogus".into()]).is_err());
    }
}
