//! CANCELUPDATE (RFC 5267 §4.3.5). The updating searches themselves, their state and
//! notifications, are in `contexts.rs`.

use crate::error::CommandError;
use crate::session::{CommandResult, Completion, Session, State};

impl Session {
    /// RFC 5267 §4.3.5: "CANCELUPDATE command, which will prevent all updates to the
    /// contexts named in the arguments from being transmitted by the server".
    pub(crate) fn cancel_update(&mut self, tags: &[String]) -> CommandResult {
        let State::Selected { view, .. } = &mut self.state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        if !view.contexts.cancel(tags) {
            return Err(CommandError::no(None, "Unknown tag"));
        }
        Ok(Completion::ok("Updates cancelled"))
    }
}
