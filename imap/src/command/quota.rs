//! QUOTA (RFC 9208): one quota root per account, named "" (the empty string), with the
//! STORAGE resource: the account's limit, set by the administrator
//! (`letterbox user add --quota`), against the octets its mail takes.

use crate::error::CommandError;
use crate::proto::response::{self, Code};
use crate::session::{CommandResult, Completion, Session};

/// The name of every account's one quota root.
const QUOTA_ROOT: &str = "";

impl Session {
    /// `quota-response = "QUOTA" SP astring SP quota-list`;
    /// `quota-resource = resource-name SP resource-usage SP resource-limit`, STORAGE in
    /// units of 1024 octets (RFC 9208 §5.1). `None` when the account has no limit.
    async fn quota_line(&self) -> Result<Option<String>, CommandError> {
        let account = self.server.store.account(self.account()?).await?;
        Ok(account.quota_bytes.map(|limit| {
            let used = u64::try_from(account.used_bytes).unwrap_or(0);
            let limit = u64::try_from(limit).unwrap_or(0);
            format!(
                "QUOTA \"{QUOTA_ROOT}\" (STORAGE {} {})",
                used.div_ceil(1024),
                limit / 1024
            )
        }))
    }

    /// RFC 9208 §4.2 GETQUOTA: the usage and limits of a quota root.
    pub(crate) async fn get_quota(&mut self, root: &str) -> CommandResult {
        match self.quota_line().await? {
            Some(line) if root == QUOTA_ROOT => {
                response::untagged(&mut self.conn.out, &line);
                Ok(Completion::ok("GETQUOTA completed"))
            }
            _ => Err(CommandError::no(
                Some(Code::NonExistent),
                "No such quota root",
            )),
        }
    }

    /// RFC 9208 §4.3 GETQUOTAROOT: `quotaroot-response = "QUOTAROOT" SP mailbox
    /// *(SP astring)`, then a QUOTA response for each root.
    pub(crate) async fn get_quota_root(&mut self, mailbox: &str) -> CommandResult {
        let target = self.existing(mailbox).await?;
        let quota = self.quota_line().await?;
        let mut line = format!("QUOTAROOT {}", self.encode_mailbox(target.name.as_str()));
        if quota.is_some() {
            line.push_str(&format!(" \"{QUOTA_ROOT}\""));
        }
        response::untagged(&mut self.conn.out, &line);
        if let Some(quota) = quota {
            response::untagged(&mut self.conn.out, &quota);
        }
        Ok(Completion::ok("GETQUOTAROOT completed"))
    }

    /// RFC 9208 §4.1 SETQUOTA needs the QUOTASET capability, which we do not offer:
    /// limits are the administrator's.
    pub(crate) fn set_quota(&mut self, _root: &str, _limits: &[(String, u64)]) -> CommandResult {
        Err(CommandError::no(
            Some(Code::NoPerm),
            "Quotas are set by the administrator",
        ))
    }
}
