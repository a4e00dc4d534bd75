//! COPY, MOVE (RFC 6851) and their UID forms (RFC 9051 §6.4.7, §6.4.9).

use super::{PResult, Parser};
use crate::proto::command::CommandBody;

impl Parser<'_> {
    /// `copy = "COPY" SP sequence-set SP mailbox`; `move` likewise (RFC 6851 §3.1);
    /// `uid = "UID" SP (copy / move / ...)`
    pub(super) fn copy(&mut self, uid: bool, remove: bool) -> PResult<CommandBody> {
        self.sp()?;
        let set = self.sequence()?;
        self.sp()?;
        let mailbox = self.mailbox()?;
        Ok(CommandBody::Copy {
            uid,
            set,
            mailbox,
            remove,
        })
    }
}
