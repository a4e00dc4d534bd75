//! STORE and UID STORE (RFC 9051 §6.4.6): flag changes, answered with the new flags
//! unless `.SILENT`.

use super::resolve;
use crate::error::CommandError;
use crate::proto::command::StoreCommand;
use crate::proto::response;
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::flags_text;
use storage::{Flags, SYSTEM_FLAGS};

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
        let store = self.server.store.clone();
        let Session { state, conn, .. } = self;
        let State::Selected { view, .. } = state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        if view.read_only {
            return Err(CommandError::no(None, "The mailbox is read-only"));
        }
        let flags = validate_flags(&command.flags)?;
        let indexes = resolve(view, &command.set, command.uid)?;
        let uids: Vec<storage::Uid> = indexes
            .iter()
            .filter_map(|&i| view.entries.get(i))
            .filter(|e| !view.is_expunged(e.uid))
            .map(|e| e.uid)
            .collect();
        if !uids.is_empty() {
            let outcome = store
                .store_flags(view.mailbox, uids, command.operation, flags, None)
                .await?;
            for (uid, modseq, flags) in outcome.changed {
                view.set_flags(uid, modseq, flags);
            }
        }
        if !command.silent {
            for &index in &indexes {
                let Some(entry) = view.entries.get(index) else {
                    continue;
                };
                let line = if command.uid {
                    format!(
                        "{} FETCH (UID {} FLAGS ({}))",
                        index + 1,
                        entry.uid,
                        flags_text(&entry.flags)
                    )
                } else {
                    format!("{} FETCH (FLAGS ({}))", index + 1, flags_text(&entry.flags))
                };
                response::untagged(&mut conn.out, &line);
            }
        }
        Ok(Completion::ok(if command.uid {
            "UID STORE completed"
        } else {
            "STORE completed"
        }))
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
