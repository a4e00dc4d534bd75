//! APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315 §3) and APPENDLIMIT (RFC 7889).

use super::store::validate_flags;
use crate::error::CommandError;
use crate::proto::command::AppendCommand;
use crate::proto::response::Code;
use crate::session::{CommandResult, Completion, Session};

impl Session {
    pub(crate) async fn append(&mut self, append: AppendCommand) -> CommandResult {
        let account = self.account()?;
        let name = self.decode_mailbox(&append.mailbox)?;
        // The framer refuses larger literals; this guards the limit on its own.
        if append.message.len() > self.server.config.max_message_size {
            return Err(CommandError::no(Some(Code::TooBig), "Message too large"));
        }
        if append.message.is_empty() {
            return Err(CommandError::bad("Empty message"));
        }
        let flags = validate_flags(&append.flags)?;
        // RFC 9051 §6.3.12: a missing mailbox is NO [TRYCREATE].
        let Some(target) = self.server.store.mailbox_by_name(account, &name).await? else {
            return Err(CommandError::no(Some(Code::TryCreate), "No such mailbox"));
        };
        let (validity, uid) = self
            .server
            .store
            .append(target.id, append.message, flags, append.date)
            .await?;
        Ok(Completion::ok_with(
            Code::AppendUid {
                validity: validity.0,
                uid: uid.0,
            },
            "APPEND completed",
        ))
    }
}
