//! A delivery before the writer runs: its line ends made CRLF and what IMAP needs of it
//! computed once (house rule 11).

use crate::cache::CachedMessage;
use crate::error::{Result, StoreError};
use crate::mime::analyse_off_workers;
use crate::mime::{analyse, top_header};
use crate::queue::Outbound;
use crate::types::{Flags, MailboxId, MessageId, QueueId, Uid, UidValidity};
use std::sync::Arc;

/// A message to store: into mailboxes (local delivery, APPEND) and/or the outbound queue.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub raw: Vec<u8>,
    pub mailboxes: Vec<MailboxId>,
    pub flags: Flags,
    /// Seconds since the epoch; now when `None`.
    pub internal_date: Option<i64>,
    /// Envelope sender and remote recipients when the message also goes out.
    pub outbound: Option<Outbound>,
}

/// Where a delivered message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub message: MessageId,
    pub placed: Vec<(MailboxId, UidValidity, Uid)>,
    pub queued: Option<QueueId>,
}

/// A message up to this size is analysed on the async worker that has it: cheaper than
/// handing it to the blocking pool, and done in well under a millisecond.
const ANALYSE_INLINE_MAX: usize = 256 * 1024;

/// A delivery with what IMAP needs computed (house rule 11), ready for the writer.
pub(crate) struct PreparedDelivery {
    pub(super) delivery: Delivery,
    /// The UID to place the message at (an import keeping another server's UIDs, see
    /// `import.rs`); the next free one when `None`. Only with a single mailbox.
    pub(crate) uid: Option<Uid>,
    pub(super) meta: String,
    /// The top-level header bytes, stored beside the raw message for header FETCHes.
    pub(super) header: Arc<[u8]>,
    /// What the cache keeps of it once committed.
    pub(super) cached: CachedMessage,
    /// The decoded body text. The full-text index row is the background indexer's, on
    /// both backends (`fulltext/indexer.rs`): nothing of it is computed here.
    pub(super) body_text: String,
    pub(super) sent_date: Option<i64>,
}

/// A statement of the `messages` row with its arguments bound so far.
pub(super) type MessageRowQuery<'q> =
    sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl PreparedDelivery {
    /// Binds the columns of its `messages` row, as the next seven arguments: raw,
    /// header, size, meta, body_text, sent_date, created_at (`now`).
    pub(super) fn bind_message_row<'q>(
        &'q self,
        query: MessageRowQuery<'q>,
        now: i64,
    ) -> MessageRowQuery<'q> {
        query
            .bind(&self.delivery.raw)
            .bind(&self.header[..])
            .bind(self.delivery.raw.len() as i64)
            .bind(&self.meta)
            .bind(&self.body_text)
            .bind(self.sent_date)
            .bind(now)
    }

    pub(crate) async fn new(delivery: Delivery) -> Result<Self> {
        if delivery.mailboxes.is_empty() && delivery.outbound.is_none() {
            return Err(StoreError::invalid(
                "delivery",
                "no mailbox and no recipient",
            ));
        }
        let mut delivery = delivery;
        delivery.raw = crlf_line_ends(std::mem::take(&mut delivery.raw));
        let analysis = if delivery.raw.len() > ANALYSE_INLINE_MAX {
            analyse_off_workers(delivery.raw.clone()).await?
        } else {
            analyse(&delivery.raw)
        };
        let meta = serde_json::to_string(&analysis.meta)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let header: Arc<[u8]> = Arc::from(top_header(&delivery.raw, &analysis.meta.root));
        // PostgreSQL's TEXT cannot hold NUL; SEARCH never matches one (RFC 9051 §6.4.4
        // searches strings, and a NUL is not a character of any).
        let body_text = if analysis.body_text.contains('\0') {
            analysis.body_text.replace('\0', "")
        } else {
            analysis.body_text
        };
        Ok(PreparedDelivery {
            uid: None,
            sent_date: analysis.meta.sent_date,
            cached: CachedMessage {
                meta: Arc::new(analysis.meta),
                header: Arc::clone(&header),
            },
            header,
            body_text,
            meta,
            delivery,
        })
    }
}

/// RFC 5322 §2.3: CR and LF occur only together. A bare LF and a bare CR are each stored
/// as CRLF, so that IMAP serves text with CRLF line ends (RFC 9051 §7.5.2: BINARY
/// sections MUST use CRLF) and sizes, offsets and line counts agree with what is sent.
/// The bare CR matters for SMTP smuggling: a `\r.\r` that DATA kept as content must not
/// reach a receiver that ends lines at CR when we relay it; as CRLF it is an ordinary
/// line that the relay dot-stuffs. Nothing else in the message changes; 8-bit octets
/// are kept.
pub fn crlf_line_ends(raw: Vec<u8>) -> Vec<u8> {
    let is_bare = |at: usize| match raw.get(at) {
        Some(b'\n') => at.checked_sub(1).and_then(|before| raw.get(before)) != Some(&b'\r'),
        Some(b'\r') => raw.get(at + 1) != Some(&b'\n'),
        _ => false,
    };
    // Only CRs and LFs are looked at, found by a SIMD search.
    let bare = memchr::memchr2_iter(b'\r', b'\n', &raw)
        .filter(|&at| is_bare(at))
        .count();
    if bare == 0 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + bare);
    let mut copied = 0;
    for at in memchr::memchr2_iter(b'\r', b'\n', &raw).filter(|&at| is_bare(at)) {
        out.extend_from_slice(raw.get(copied..at).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
        copied = at + 1;
    }
    out.extend_from_slice(raw.get(copied..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::crlf_line_ends;

    #[test]
    fn bare_cr_and_bare_lf_become_crlf() {
        for (raw, stored) in [
            (&b""[..], &b""[..]),
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\nb", b"a\r\nb"),
            (b"\n", b"\r\n"),
            (b"\r", b"\r\n"),
            // The smuggling shape: `\r.\r` becomes a line holding a dot.
            (b"a\r.\rMAIL", b"a\r\n.\r\nMAIL"),
            (b"a\r\r\nb", b"a\r\n\r\nb"),
            (b"a\n\rb", b"a\r\n\r\nb"),
            (b"\xff\r\xfe", b"\xff\r\n\xfe"),
        ] {
            assert_eq!(crlf_line_ends(raw.to_vec()), stored, "{raw:?}");
        }
    }
}
