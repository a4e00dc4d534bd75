//! COPY, MOVE and their UID forms (RFC 9051 §6.4.7, RFC 6851), with COPYUID (RFC 4315).

use super::resolve;
use crate::error::CommandError;
use crate::proto::SetOrSaved;
use crate::proto::response::{self, Code, Status};
use crate::proto::sequence::compress;
use crate::session::{CommandResult, Completion, Session, State};

impl Session {
    pub(crate) async fn copy(
        &mut self,
        uid: bool,
        set: &SetOrSaved,
        mailbox: &str,
        remove: bool,
    ) -> CommandResult {
        let account = self.account()?;
        let store = self.server.store.clone();
        // RFC 9051 §6.4.7: a missing destination is NO [TRYCREATE].
        let Some(target) = self.mailbox_named(account, mailbox).await? else {
            return Err(CommandError::no(Some(Code::TryCreate), "No such mailbox"));
        };
        let Session { state, conn, .. } = self;
        let State::Selected { view, .. } = state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        if remove && view.read_only {
            return Err(CommandError::no(None, "The mailbox is read-only"));
        }
        let indexes = resolve(view, set, uid)?;
        let uids = view.live_uids(&indexes);
        let verb = match (uid, remove) {
            (false, false) => "COPY completed",
            (true, false) => "UID COPY completed",
            (false, true) => "MOVE completed",
            (true, true) => "UID MOVE completed",
        };
        if uids.is_empty() {
            return Ok(Completion::ok(verb));
        }
        // MOVE (and COPY) into the selected mailbox itself is carried out: the messages get
        // new UIDs at the end and, for MOVE, the old ones are expunged. RFC 6851 does not
        // forbid it; Dovecot and Cyrus do the same.
        let mapping = if remove {
            store.move_messages(view.mailbox, uids, target.id).await?
        } else {
            store.copy_messages(view.mailbox, uids, target.id).await?
        };
        let source: Vec<u32> = mapping.iter().map(|(from, _)| from.0).collect();
        let destination: Vec<u32> = mapping.iter().map(|(_, to)| to.0).collect();
        let code = match (compress(&source), compress(&destination)) {
            (Some(source), Some(destination)) => Some(Code::CopyUid {
                validity: target.uid_validity.0,
                source: source.to_string(),
                destination: destination.to_string(),
            }),
            _ => None,
        };
        if !remove {
            return Ok(match code {
                Some(code) => Completion::ok_with(code, verb),
                None => Completion::ok(verb),
            });
        }
        // RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGE responses.
        if let Some(code) = code {
            response::untagged_status(&mut conn.out, Status::Ok, Some(&code), "Moved UIDs");
        }
        let moved: Vec<storage::Uid> = mapping.iter().map(|&(from, _)| from).collect();
        view.remove(&moved, &mut conn.out);
        Ok(Completion::ok(verb))
    }
}
