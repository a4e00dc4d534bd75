//! EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1).

use super::{resolve, writable_view};
use crate::proto::SetOrSaved;
use crate::session::{CommandResult, Completion, Session};
use crate::view::SyncPoint;

impl Session {
    pub(crate) async fn expunge(&mut self, uids: Option<&SetOrSaved>) -> CommandResult {
        let store = self.server.store.clone();
        let Session { state, conn, .. } = self;
        let view = writable_view(state)?;
        // Learn first what others changed (their \Deleted flags count too); EXPUNGE may
        // report everything.
        view.sync(&store, SyncPoint::Full, &mut conn.out).await?;
        let allowed = match uids {
            Some(set) => Some(resolve(view, set, true)?),
            None => None,
        };
        // Storage decides what is \Deleted at the moment of the commit, so a flag that
        // another session removed just now is respected.
        let within: Option<Vec<storage::Uid>> = allowed.map(|indexes| {
            indexes
                .iter()
                .filter_map(|&index| view.entries.get(index))
                .map(|e| e.uid)
                .collect()
        });
        let removed = store.expunge_deleted(view.mailbox, within).await?;
        if !removed.is_empty() {
            view.remove(&removed, &mut conn.out);
        }
        Ok(Completion::ok(if uids.is_some() {
            "UID EXPUNGE completed"
        } else {
            "EXPUNGE completed"
        }))
    }
}
