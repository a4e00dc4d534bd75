//! Selecting a mailbox (RFC 9051 §6.3.2, §6.3.3) and leaving it: SELECT, EXAMINE,
//! CLOSE (§6.4.1) and UNSELECT (RFC 3691).

use crate::error::CommandError;
use crate::proto::command::QresyncParams;
use crate::proto::objectid;
use crate::proto::response::{self, Code, Status};
use crate::session::{CommandResult, Completion, Session, State};
use crate::view::{View, flags_fetch_line};
use storage::{MAILBOX_DELIMITER, ModSeq};

impl Session {
    pub(crate) async fn select(
        &mut self,
        mailbox: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<QresyncParams>,
    ) -> CommandResult {
        let account = self.account()?;
        // RFC 7162 §3.2.5: QRESYNC parameters without ENABLE QRESYNC are a BAD.
        if qresync.is_some() && !self.enabled.qresync {
            return Err(CommandError::bad("ENABLE QRESYNC first"));
        }
        if condstore {
            self.enabled.condstore = true;
        }
        // RFC 9051 §6.3.2: selecting deselects first, even when the new one fails; the
        // client learns with [CLOSED] that the old mailbox is gone.
        if matches!(self.state, State::Selected { .. }) {
            self.state = State::Authenticated { account };
            response::untagged_status(
                &mut self.conn.out,
                Status::Ok,
                Some(&Code::Closed),
                "Previous mailbox closed",
            );
        }
        let Some(target) = self.mailbox_named(account, mailbox).await? else {
            return Err(CommandError::no(Some(Code::NonExistent), "No such mailbox"));
        };
        let mut view =
            View::open(&self.server.store, target.id, read_only, !self.enabled.rev2).await?;
        view.condstore = self.enabled.condstore;
        view.qresync = self.enabled.qresync;
        let out = &mut self.conn.out;
        view.write_flags(out);
        response::untagged(out, &format!("{} EXISTS", view.exists()));
        if !self.enabled.rev2 {
            // RFC 3501 §6.3.1: RECENT is required of IMAP4rev1.
            response::untagged(out, &format!("{} RECENT", view.recent_count()));
            // RFC 3501 §6.3.1: the first unseen message.
            if let Some(first) = view
                .entries
                .iter()
                .position(|e| !e.flags.contains("\\Seen"))
            {
                let seq = u32::try_from(first + 1).unwrap_or(u32::MAX);
                response::untagged_status(
                    out,
                    Status::Ok,
                    Some(&Code::Unseen(seq)),
                    "First unseen",
                );
            }
        }
        let status = self.server.store.mailbox(target.id).await?;
        let out = &mut self.conn.out;
        response::untagged_status(
            out,
            Status::Ok,
            Some(&Code::UidValidity(view.uid_validity.0)),
            "UIDs valid",
        );
        response::untagged_status(
            out,
            Status::Ok,
            Some(&Code::UidNext(status.uid_next.0)),
            "Predicted next UID",
        );
        // RFC 8474 §4.1: SELECT and EXAMINE report the mailbox's MAILBOXID.
        response::untagged_status(
            &mut self.conn.out,
            Status::Ok,
            Some(&Code::MailboxId(objectid::mailbox_id(target.id))),
            "Mailbox id",
        );
        if self.enabled.condstore {
            // RFC 7162 §3.1.2.1: HIGHESTMODSEQ on every SELECT/EXAMINE once enabled.
            response::untagged_status(
                &mut self.conn.out,
                Status::Ok,
                Some(&Code::HighestModSeq(view.highest_modseq().0)),
                "Highest",
            );
        }
        if let Some(qresync) = qresync
            && qresync.uid_validity == view.uid_validity.0
        {
            self.resynchronise(&view, &qresync).await?;
        }
        if self.enabled.rev2 {
            // RFC 9051 §6.3.2: a LIST response with the mailbox name.
            let line = format!(
                "LIST () \"{MAILBOX_DELIMITER}\" {}",
                self.encode_mailbox(view.name.as_str())
            );
            response::untagged(&mut self.conn.out, &line);
        }
        self.state = State::Selected {
            account,
            view: Box::new(view),
        };
        let (code, text) = if read_only {
            (Code::ReadOnly, "EXAMINE completed")
        } else {
            (Code::ReadWrite, "SELECT completed")
        };
        Ok(Completion::ok_with(code, text))
    }

    /// RFC 7162 §3.2.5: after the SELECT responses, what the client missed since its
    /// modseq: `VANISHED (EARLIER)` with the expunged UIDs it may know, then FETCH with
    /// the flags of every message changed since. The sequence match data is a hint we
    /// need not use: the expunge history is kept whole.
    async fn resynchronise(
        &mut self,
        view: &View,
        qresync: &QresyncParams,
    ) -> Result<(), CommandError> {
        let since = ModSeq(qresync.modseq);
        let out = &mut self.conn.out;
        view.write_vanished_earlier(&self.server.store, since, qresync.known_uids.as_ref(), out)
            .await?;
        for (index, entry) in view.entries.iter().enumerate() {
            if entry.modseq > since {
                response::untagged(
                    out,
                    &flags_fetch_line(index, entry, true, true, view.is_recent(entry.uid)),
                );
            }
        }
        Ok(())
    }

    /// CLOSE (`expunge` true: RFC 9051 §6.4.1, silently removes \Deleted messages when
    /// read-write) and UNSELECT (RFC 3691: leaves without expunging).
    pub(crate) async fn close(&mut self, expunge: bool) -> CommandResult {
        let account = self.account()?;
        let State::Selected { view, .. } = &mut self.state else {
            return Err(CommandError::bad("No mailbox selected"));
        };
        let expunge_now = expunge && !view.read_only;
        let mailbox = view.mailbox;
        self.state = State::Authenticated { account };
        if expunge_now {
            // RFC 9051 §6.4.1: CLOSE removes what is \Deleted, silently; storage checks the
            // flag at the moment of the commit, so flags set elsewhere count too.
            self.server.store.expunge_deleted(mailbox, None).await?;
        }
        Ok(Completion::ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        }))
    }
}
