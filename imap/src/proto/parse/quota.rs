//! QUOTA (RFC 9208 §4): GETQUOTA, GETQUOTAROOT and SETQUOTA.

use super::{PResult, Parser};
use crate::proto::command::CommandBody;

impl Parser<'_> {
    /// RFC 9208 §7: `getquota = "GETQUOTA" SP quota-root-name`
    pub(super) fn getquota(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        Ok(CommandBody::GetQuota {
            root: self.astring_utf8()?,
        })
    }

    /// RFC 9208 §7: `getquotaroot = "GETQUOTAROOT" SP mailbox`
    pub(super) fn getquotaroot(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        Ok(CommandBody::GetQuotaRoot {
            mailbox: self.mailbox()?,
        })
    }

    /// RFC 9208 §7: `setquota = "SETQUOTA" SP quota-root-name SP setquota-list`;
    /// `setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"`;
    /// `setquota-resource = resource-name SP resource-limit`.
    pub(super) fn setquota(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let root = self.astring_utf8()?;
        self.sp()?;
        let limits = self.paren_list_or_empty("Expected a list of quota limits", |p| {
            let resource = p.atom()?.to_ascii_uppercase();
            p.sp()?;
            Ok((resource, p.number64()?))
        })?;
        Ok(CommandBody::SetQuota { root, limits })
    }
}
