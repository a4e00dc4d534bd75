//! APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315 §3), APPENDLIMIT (RFC 7889) and
//! MULTIAPPEND (RFC 3502): several messages in one command, stored all or none.

use super::store::validate_flags;
use crate::error::CommandError;
use crate::proto::command::AppendCommand;
use crate::proto::response::Code;
use crate::proto::sequence::compress;
use crate::session::{CommandResult, Completion, Session};
use storage::Delivery;

impl Session {
    pub(crate) async fn append(&mut self, append: AppendCommand) -> CommandResult {
        let account = self.account()?;
        let name = self.decode_mailbox(&append.mailbox)?;
        let mut deliveries = Vec::with_capacity(append.messages.len());
        for message in append.messages {
            // The framer refuses larger literals; this guards the limit on its own.
            if message.message.len() > self.server.config.max_message_size {
                return Err(CommandError::no(Some(Code::TooBig), "Message too large"));
            }
            if message.message.is_empty() {
                return Err(CommandError::bad("Empty message"));
            }
            deliveries.push(Delivery {
                raw: message.message,
                mailboxes: Vec::new(),
                flags: validate_flags(&message.flags)?,
                internal_date: message.date,
                outbound: None,
            });
        }
        // RFC 9051 §6.3.12: a missing mailbox is NO [TRYCREATE].
        let Some(target) = self.server.store.mailbox_by_name(account, &name).await? else {
            return Err(CommandError::no(Some(Code::TryCreate), "No such mailbox"));
        };
        for delivery in &mut deliveries {
            delivery.mailboxes.push(target.id);
        }
        // RFC 3502 §6.3.11: "If the server fails to append any message, none of the
        // messages are appended": one transaction.
        let delivered = self.server.store.deliver_all(deliveries).await?;
        let placed: Vec<(u32, u32)> = delivered
            .iter()
            .filter_map(|d| d.placed.first())
            .map(|&(_, validity, uid)| (validity.0, uid.0))
            .collect();
        let validity = placed.first().map_or(target.uid_validity.0, |&(v, _)| v);
        let uids: Vec<u32> = placed.iter().map(|&(_, uid)| uid).collect();
        let Some(uids) = compress(&uids) else {
            return Ok(Completion::ok("APPEND completed"));
        };
        Ok(Completion::ok_with(
            Code::AppendUid {
                validity,
                uids: uids.to_string(),
            },
            "APPEND completed",
        ))
    }
}
