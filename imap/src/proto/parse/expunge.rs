//! UID EXPUNGE (RFC 4315 §2.1). EXPUNGE takes no arguments and stays in the dispatch
//! table.

use super::{PResult, Parser};
use crate::proto::command::CommandBody;

impl Parser<'_> {
    /// `uid-expunge = "EXPUNGE" SP sequence-set` (RFC 4315 §2.1), after `"UID" SP`
    pub(super) fn uid_expunge(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        Ok(CommandBody::Expunge {
            uids: Some(self.sequence()?),
        })
    }
}
