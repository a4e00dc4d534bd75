//! EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1).

use super::resolve;
use crate::error::CommandError;
use crate::proto::Sequence;
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::SyncPoint;

impl Session {
    pub(crate) async fn expunge(&mut self, uids: Option<&Sequence>) -> CommandResult {
        let store = self.server.store.clone();
        let Session { state, conn, .. } = self;
        let State::Selected { view, .. } = state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        if view.read_only {
            return Err(CommandError::no(None, "The mailbox is read-only"));
        }
        // Learn first what others changed (their \Deleted flags count too); EXPUNGE may
        // report everything.
        view.sync(&store, SyncPoint::Full, &mut conn.out).await?;
        let allowed = match uids {
            Some(set) => Some(resolve(view, set, true)?),
            None => None,
        };
        let doomed: Vec<storage::Uid> = view
            .entries
            .iter()
            .enumerate()
            .filter(|(index, _)| {
                allowed
                    .as_ref()
                    .is_none_or(|a| a.binary_search(index).is_ok())
            })
            .filter(|(_, e)| e.flags.contains("\\Deleted"))
            .map(|(_, e)| e.uid)
            .collect();
        if !doomed.is_empty() {
            let removed = store.expunge(view.mailbox, doomed).await?;
            view.remove(&removed, &mut conn.out);
        }
        Ok(Completion::ok(if uids.is_some() {
            "UID EXPUNGE completed"
        } else {
            "EXPUNGE completed"
        }))
    }
}
