//! Sieve (RFC 5228) at local delivery: each local account's active script decides where
//! its copy goes, and what is sent on its behalf (redirect, vacation, reject notices).
//!
//! The script runs in the `filter` crate, on the blocking pool (its cost is chosen by the
//! script and the message), with sieve-rs's limits and a time limit here. A script that
//! fails to compile, errs, reaches a limit or runs too long gives an implicit keep (RFC
//! 5228 §2.10.6): mail is never lost to a broken script.
//!
//! Reject (RFC 5429 §2.1.1): when every local recipient's script rejects and nothing
//! else was addressed, the DATA/BDAT reply is `550 5.7.1` with the reason (the sender's
//! server tells the sender). Otherwise the transaction succeeds for the others, and the
//! rejecting account's copy is replaced by a notice to the envelope sender from the null
//! sender (RFC 5429 §2.1.2, which allows a DSN-like message), never to the null sender.

use crate::session::LocalRcpt;
use filter::{Outcome, Placement};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use storage::{
    AccountId, Delivery, Flags, LocalRecipient, MailboxId, MailboxName, Outbound, QueuedRecipient,
    SpecialUse, Store, StoreError, VacationRecord, unix_now,
};

/// A script run that takes longer than this is abandoned and the message kept: sieve-rs
/// bounds instructions, this bounds what one instruction can cost (a regex, a body test on
/// a large message).
const SCRIPT_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Bytes of a reject reason quoted in the SMTP reply or the notice.
const MAX_REASON_BYTES: usize = 400;

/// What Sieve made of one message for every local account.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Copies to store: one [`Delivery`] per (content, flags) with the mailboxes it goes to.
    pub(crate) copies: Vec<Delivery>,
    /// Messages that only leave (redirects, vacation replies, reject notices).
    pub(crate) outgoing: Vec<Delivery>,
    /// Vacation replies to record once the deliveries are durable.
    pub(crate) answered: Vec<(AccountId, Vec<VacationRecord>)>,
    /// Reject reasons of the accounts whose scripts rejected.
    pub(crate) rejected: Vec<String>,
    /// Local accounts the message was for (each once).
    pub(crate) accounts: usize,
}

/// The envelope and identity a plan needs.
pub(crate) struct Envelope<'a> {
    pub(crate) mail_from: &'a str,
    pub(crate) hostname: &'a str,
}

/// Runs every local account's active script over `raw` (the stored form, trace fields
/// included) and plans the deliveries. Store errors are the caller's to answer (4xx).
pub(crate) async fn plan(
    store: &Store,
    envelope: &Envelope<'_>,
    local: &[LocalRcpt],
    raw: &Arc<Vec<u8>>,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    // Mailbox and content/flags -> mailboxes, in first-seen order.
    let mut groups: Vec<(Option<Vec<u8>>, Flags, Vec<MailboxId>)> = Vec::new();
    let mut redirects: Vec<QueuedRecipient> = Vec::new();
    let mut seen = Vec::new();
    for LocalRcpt {
        address: recipient,
        found,
    } in local
    {
        let account = &found.account;
        // RFC 5321 §3.7.2 leaves it to us: several recipients of one account get one copy.
        if seen.contains(account) {
            continue;
        }
        seen.push(*account);
        plan.accounts += 1;
        let outcome = run_script(store, envelope, found, recipient, raw).await?;
        if let Some(error) = &outcome.error {
            tracing::warn!(%account, %error, "sieve script failed; message kept in INBOX");
        }
        if let Some(reason) = outcome.reject {
            let reason = clean_reason(&reason);
            tracing::info!(%account, %reason, "sieve: message rejected");
            if !envelope.mail_from.is_empty() {
                plan.outgoing
                    .push(reject_notice(envelope, recipient, &reason));
            }
            plan.rejected.push(reason);
            continue;
        }
        for placement in outcome.placements {
            let mailbox = resolve_mailbox(store, *account, found.inbox, &placement).await?;
            let flags = Flags::new(&placement.flags);
            match groups
                .iter_mut()
                .find(|(changed, f, _)| *changed == placement.changed && *f == flags)
            {
                Some((_, _, mailboxes)) => {
                    if !mailboxes.contains(&mailbox) {
                        mailboxes.push(mailbox)
                    }
                }
                None => groups.push((placement.changed, flags, vec![mailbox])),
            }
        }
        for address in outcome.redirects {
            if !redirects.iter().any(|r| r.address == address) {
                redirects.push(QueuedRecipient {
                    address,
                    ..QueuedRecipient::default()
                });
            }
        }
        let domain = recipient.rsplit_once('@').map(|(_, d)| d.to_owned());
        for reply in outcome.replies {
            // RFC 3834 §3.1.5 / RFC 5230 §5.1: the reply goes from the null sender.
            plan.outgoing.push(Delivery {
                raw: reply.raw,
                outbound: Some(Outbound {
                    mail_from: String::new(),
                    recipients: vec![QueuedRecipient {
                        address: reply.recipient,
                        ..QueuedRecipient::default()
                    }],
                    dkim_domain: domain.clone(),
                    ..Outbound::default()
                }),
                ..Delivery::default()
            });
        }
        if !outcome.answered.is_empty() {
            let now = unix_now();
            let sender = envelope.mail_from.to_ascii_lowercase();
            let records = outcome
                .answered
                .into_iter()
                .map(|(handle, seconds)| VacationRecord {
                    sender: sender.clone(),
                    handle,
                    expires_at: now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)),
                })
                .collect();
            plan.answered.push((*account, records));
        }
    }
    for (changed, flags, mailboxes) in groups {
        plan.copies.push(Delivery {
            raw: changed.unwrap_or_else(|| raw.as_ref().clone()),
            mailboxes,
            flags,
            ..Delivery::default()
        });
    }
    if !redirects.is_empty() {
        // RFC 5228 §4.2: the message goes on unchanged, from its original sender.
        plan.outgoing.push(Delivery {
            raw: raw.as_ref().clone(),
            outbound: Some(Outbound {
                mail_from: envelope.mail_from.to_owned(),
                recipients: redirects,
                ..Outbound::default()
            }),
            ..Delivery::default()
        });
    }
    Ok(plan)
}

/// The account's active script (as found at RCPT) run over the message, or an implicit
/// keep when it has none.
async fn run_script(
    store: &Store,
    envelope: &Envelope<'_>,
    found: &LocalRecipient,
    recipient: &str,
    raw: &Arc<Vec<u8>>,
) -> Result<Outcome, StoreError> {
    let Some(script) = found.active_script.clone() else {
        return Ok(Outcome::keep());
    };
    let account = found.account;
    let user = store.account(account).await?;
    let mailboxes = store
        .list_mailboxes(account)
        .await?
        .into_iter()
        .map(|m| {
            (
                m.name.into_string(),
                m.special_use.map(|u| u.attribute().to_owned()),
            )
        })
        .collect();
    // RFC 6609: only a script that includes needs the others.
    let mut scripts = HashMap::new();
    if script.content.contains("include") {
        for info in store.sieve_scripts(account).await? {
            if let Some(other) = store.sieve_script(account, &info.name).await? {
                scripts.insert(other.name, other.content);
            }
        }
    }
    let answered = if envelope.mail_from.is_empty() {
        Vec::new()
    } else {
        store
            .vacation_handles(
                account,
                &envelope.mail_from.to_ascii_lowercase(),
                unix_now(),
            )
            .await?
    };
    let inputs = filter::Inputs {
        mail_from: envelope.mail_from.to_owned(),
        recipient: recipient.to_owned(),
        user_address: user.email,
        hostname: envelope.hostname.to_owned(),
        scripts,
        mailboxes,
        answered,
    };
    let raw = Arc::clone(raw);
    let name = script.name.clone();
    let task = tokio::task::spawn_blocking(move || match filter::compile(&script.content) {
        Ok(compiled) => filter::run(&compiled, &raw, &inputs),
        Err(error) => Outcome {
            error: Some(format!("script {name} does not compile: {error}")),
            ..Outcome::keep()
        },
    });
    Ok(match tokio::time::timeout(SCRIPT_TIME_LIMIT, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Outcome {
            error: Some(format!("script task failed: {error}")),
            ..Outcome::keep()
        },
        Err(_) => Outcome {
            error: Some("script ran past its time limit".to_owned()),
            ..Outcome::keep()
        },
    })
}

/// The mailbox a placement names: one with its special use if asked for and present
/// (RFC 8579 §3), else the named one, created for `:create` (RFC 5490 §3.2); a mailbox
/// that does not exist and may not be created is INBOX (RFC 5228 §4.1 leaves the error
/// to us; keeping it where the user looks loses nothing). `inbox` is the account's INBOX.
async fn resolve_mailbox(
    store: &Store,
    account: AccountId,
    inbox: MailboxId,
    placement: &Placement,
) -> Result<MailboxId, StoreError> {
    if let Some(role) = placement
        .special_use
        .as_deref()
        .and_then(SpecialUse::from_attribute)
        && let Some(found) = store
            .list_mailboxes(account)
            .await?
            .into_iter()
            .find(|m| m.special_use == Some(role))
    {
        return Ok(found.id);
    }
    if placement.mailbox.eq_ignore_ascii_case("INBOX") {
        return Ok(inbox);
    }
    // The script's name as storage keeps names: one that cannot be a mailbox's names
    // none and cannot be created.
    let name = match MailboxName::new(&placement.mailbox) {
        Ok(name) => name,
        Err(error) if placement.create => {
            tracing::info!(mailbox = %placement.mailbox, %error, "sieve: cannot create mailbox; kept in INBOX");
            return Ok(inbox);
        }
        Err(_) => {
            tracing::info!(mailbox = %placement.mailbox, "sieve: no such mailbox; kept in INBOX");
            return Ok(inbox);
        }
    };
    if let Some(found) = store.mailbox_by_name(account, &name).await? {
        return Ok(found.id);
    }
    if placement.create {
        match store.create_mailbox(account, &name, None).await {
            Ok(id) => return Ok(id),
            // Created meanwhile by another delivery or session.
            Err(StoreError::AlreadyExists(_)) => {
                if let Some(found) = store.mailbox_by_name(account, &name).await? {
                    return Ok(found.id);
                }
            }
            Err(error) if error.is_temporary() => return Err(error),
            Err(error) => {
                tracing::info!(mailbox = %placement.mailbox, %error, "sieve: cannot create mailbox; kept in INBOX")
            }
        }
    } else {
        tracing::info!(mailbox = %placement.mailbox, "sieve: no such mailbox; kept in INBOX");
    }
    Ok(inbox)
}

/// A reason fit for an SMTP reply line and a header-free notice: printable, one line,
/// bounded.
pub(crate) fn clean_reason(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len().min(MAX_REASON_BYTES));
    for c in reason.chars() {
        if out.len() + c.len_utf8() > MAX_REASON_BYTES {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    let out = out.trim().to_owned();
    if out.is_empty() {
        "Message rejected".to_owned()
    } else {
        out
    }
}

/// RFC 5429 §2.1.2: the notice to the sender of a message a script rejected after the
/// SMTP transaction could no longer refuse it alone; from the null sender (RFC 3834).
fn reject_notice(envelope: &Envelope<'_>, recipient: &str, reason: &str) -> Delivery {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let id: u64 = rand::random();
    let raw = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: Message rejected by {recipient}\r\n\
         Date: {date}\r\n\
         Message-ID: <{id:016x}.reject@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Your message to {recipient} was rejected by the recipient's filter:\r\n\
         \r\n\
         {reason}\r\n",
        host = envelope.hostname,
        to = envelope.mail_from,
    );
    Delivery {
        raw: raw.into_bytes(),
        outbound: Some(Outbound {
            mail_from: String::new(),
            recipients: vec![QueuedRecipient {
                address: envelope.mail_from.to_owned(),
                ..QueuedRecipient::default()
            }],
            ..Outbound::default()
        }),
        ..Delivery::default()
    }
}

#[cfg(test)]
mod tests {
    use super::clean_reason;

    #[test]
    fn reasons_are_one_bounded_line() {
        assert_eq!(clean_reason("go\r\naway"), "go  away");
        assert_eq!(clean_reason("\r\n"), "Message rejected");
        assert!(clean_reason(&"é".repeat(1000)).len() <= 400);
    }
}
