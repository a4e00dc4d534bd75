//! APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315 §3), APPENDLIMIT (RFC 7889) and
//! MULTIAPPEND (RFC 3502): several messages in one command, stored all or none; and
//! CATENATE (RFC 4469): a message built from literals and parts of stored messages.

use super::mailbox::find_mailbox;
use super::store::validate_flags;
use crate::error::CommandError;
use crate::message;
use crate::proto::base64;
use crate::proto::command::{AppendCommand, AppendData, CatPart, ImapUrl};
use crate::proto::parse_imap_url;
use crate::proto::response::Code;
use crate::proto::sequence::compress;
use crate::session::{CommandResult, Completion, Session};
use storage::mime::{BodyPart, PartContent};
use storage::{AccountId, Delivery, MailboxName};

/// Characters of base64 per line (RFC 2045 §6.8: at most 76).
const BASE64_LINE: usize = 76;

impl Session {
    pub(crate) async fn append(&mut self, append: AppendCommand) -> CommandResult {
        let account = self.account()?;
        let name = MailboxName::new(&self.decode_mailbox(&append.mailbox)?).ok();
        let mut deliveries = Vec::with_capacity(append.messages.len());
        for message in append.messages {
            let raw = match message.data {
                AppendData::Literal(raw) => raw,
                AppendData::Catenate(parts) => self.catenate(account, parts).await?,
            };
            // The framer refuses larger literals; this guards the limit on its own.
            if raw.len() > self.server.config.max_message_size {
                return Err(CommandError::no(Some(Code::TooBig), "Message too large"));
            }
            if raw.is_empty() {
                return Err(CommandError::bad("Empty message"));
            }
            let raw = binary_parts_as_base64(raw).await?;
            deliveries.push(Delivery {
                raw,
                mailboxes: Vec::new(),
                flags: validate_flags(&message.flags)?,
                internal_date: message.date,
                outbound: None,
            });
        }
        // RFC 9051 §6.3.12: a missing mailbox is NO [TRYCREATE].
        let target = match &name {
            Some(name) => self.server.store.mailbox_by_name(account, name).await?,
            // A name that cannot be a mailbox's names none.
            None => None,
        };
        let Some(target) = target else {
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

impl Session {
    /// RFC 4469 §5: the message a CATENATE describes, its parts in order. Each URL is
    /// read when its turn comes, so at most one stored message is held beside the result,
    /// which never grows past APPENDLIMIT (RFC 4469 §5: "the server MUST reject ... with
    /// TOOBIG" a result over the limit; the parser caps the number of parts).
    async fn catenate(
        &self,
        account: AccountId,
        parts: Vec<CatPart>,
    ) -> Result<Vec<u8>, CommandError> {
        let limit = self.server.config.max_message_size;
        let mut out = Vec::new();
        let mut own_email = None;
        for part in parts {
            let bytes = match part {
                CatPart::Text(text) => text,
                CatPart::Url(url) => {
                    let content = match parse_imap_url(&url) {
                        Some(target) => self.url_content(account, &target).await?,
                        // RFC 4469 §5: a CATENATE URL may be URLAUTH-authorised (RFC
                        // 4467) and name another user's message; validated as URLFETCH
                        // validates them.
                        None => self.urlauth_content(account, &url, &mut own_email).await?,
                    };
                    match content {
                        Some(bytes) => bytes,
                        None => return Err(bad_url(url)),
                    }
                }
            };
            // RFC 7889 §4 / RFC 4469 §5: the whole message is what APPENDLIMIT bounds.
            if out.len().saturating_add(bytes.len()) > limit {
                return Err(CommandError::no(Some(Code::TooBig), "Message too large"));
            }
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// What an IMAP URL names, the same octets as FETCH BODY[section]<partial> gives
    /// (RFC 5092 §5), or `None` when it names nothing this user can read: another
    /// account's mailbox is never found by name in this one.
    async fn url_content(
        &self,
        account: AccountId,
        url: &ImapUrl,
    ) -> Result<Option<Vec<u8>>, CommandError> {
        let store = &self.server.store;
        let Some(mailbox) = find_mailbox(store, account, &url.mailbox).await? else {
            return Ok(None);
        };
        self.message_content(&mailbox, url).await
    }

    /// What the message part of an IMAP URL names in `mailbox` (any account's: the
    /// caller decided this user may read it), the octets of FETCH BODY[section]<partial>,
    /// or `None` when it names nothing.
    pub(crate) async fn message_content(
        &self,
        mailbox: &storage::Mailbox,
        url: &ImapUrl,
    ) -> Result<Option<Vec<u8>>, CommandError> {
        let store = &self.server.store;
        // RFC 5092 §6: a UIDVALIDITY that is not the mailbox's makes the URL invalid.
        if url
            .uid_validity
            .is_some_and(|v| v != mailbox.uid_validity.0)
        {
            return Ok(None);
        }
        let Some(id) = store
            .message_by_uid(mailbox.id, storage::Uid(url.uid))
            .await?
        else {
            return Ok(None);
        };
        let Some(raw) = store.raw_messages(&[id]).await?.remove(&id) else {
            return Ok(None);
        };
        let meta = match store.message_meta(&[id]).await?.remove(&id) {
            Some(meta) => meta,
            None => std::sync::Arc::new(storage::mime::analyse(&raw).meta),
        };
        // RFC 4469 §5: a section that does not exist is an invalid URL, not empty text.
        let Some(data) = message::section(&raw, &meta, &url.section) else {
            return Ok(None);
        };
        Ok(Some(match url.partial {
            None => data.into_owned(),
            Some((offset, length)) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = length.map_or(data.len(), |length| {
                    start
                        .saturating_add(usize::try_from(length).unwrap_or(usize::MAX))
                        .min(data.len())
                });
                data.get(start..end).unwrap_or_default().to_vec()
            }
        }))
    }
}

/// RFC 4469 §6: "NO [BADURL url]" for a URL that is invalid or names nothing.
fn bad_url(url: String) -> CommandError {
    CommandError::no(Some(Code::BadUrl(url)), "CATENATE URL is invalid")
}

/// RFC 9051 §7.5.2: "Non-textual data such as binary data MUST be transfer encoded into
/// a textual form, such as base64, prior to being sent to the client", and RFC 3516 §4.4
/// lets a server take a binary APPEND (`~{n}`) by changing its encoding. So every leaf
/// part with `Content-Transfer-Encoding: binary` is stored base64-encoded, as Dovecot
/// stores it: BODY[n] gives base64, BINARY[n] the bytes that were appended. A message
/// without such a part is stored as sent. The MIME walk is CPU work that grows with the
/// message: on the blocking pool.
async fn binary_parts_as_base64(raw: Vec<u8>) -> Result<Vec<u8>, CommandError> {
    // Cheap test first: no "binary" anywhere, no part to encode.
    if !raw.windows(6).any(|w| w.eq_ignore_ascii_case(b"binary")) {
        return Ok(raw);
    }
    tokio::task::spawn_blocking(move || encode_binary_parts(raw))
        .await
        .map_err(|error| {
            tracing::warn!(%error, "binary APPEND task failed");
            CommandError::no(Some(Code::ServerBug), "APPEND failed")
        })
}

fn encode_binary_parts(raw: Vec<u8>) -> Vec<u8> {
    let analysis = storage::mime::analyse(&raw);
    // Depth-first over the part tree with a stack (the tree's depth is capped at
    // analysis, but nothing here recurses anyway).
    let mut binary: Vec<&BodyPart> = Vec::new();
    let mut stack: Vec<&BodyPart> = vec![&analysis.meta.root];
    while let Some(part) = stack.pop() {
        match &part.content {
            PartContent::Single if part.encoding.eq_ignore_ascii_case("binary") => {
                binary.push(part)
            }
            PartContent::Single => {}
            PartContent::Multipart(children) => stack.extend(children.iter()),
            PartContent::Message { root, .. } => stack.push(root),
        }
    }
    if binary.is_empty() {
        return raw;
    }
    binary.sort_by_key(|part| part.header_start);
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3);
    let mut copied = 0usize;
    for part in binary {
        let (header_start, body_start, body_end) = (
            part.header_start as usize,
            part.body_start as usize,
            part.body_end as usize,
        );
        let (Some(header), Some(body)) = (
            raw.get(header_start..body_start),
            raw.get(body_start..body_end),
        ) else {
            continue;
        };
        if header_start < copied {
            continue;
        }
        let Some(field) = encoding_field(header) else {
            continue;
        };
        out.extend_from_slice(&raw[copied..header_start + field.start]);
        out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
        out.extend_from_slice(&header[field.end..]);
        let encoded = base64::encode(body);
        for (index, line) in encoded.as_bytes().chunks(BASE64_LINE).enumerate() {
            if index > 0 {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line);
        }
        // The CRLF before a boundary is not part of the body and follows as it was; a
        // body that ends the message gets its line ended.
        if body_end == raw.len() {
            out.extend_from_slice(b"\r\n");
        }
        copied = body_end;
    }
    out.extend_from_slice(&raw[copied..]);
    out
}

/// Where the Content-Transfer-Encoding field (with its folded lines and CRLF) lies in a
/// part's header section.
fn encoding_field(header: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut at = 0;
    while at < header.len() {
        let line_end = memchr::memchr(b'\n', &header[at..]).map_or(header.len(), |n| at + n + 1);
        let is_field = header[at..]
            .get(..26)
            .is_some_and(|name| name.eq_ignore_ascii_case(b"content-transfer-encoding:"));
        if is_field {
            // RFC 5322 §2.2.3: a line that starts with whitespace continues the field.
            let mut end = line_end;
            while end < header.len() && matches!(header[end], b' ' | b'\t') {
                end = memchr::memchr(b'\n', &header[end..]).map_or(header.len(), |n| end + n + 1);
            }
            return Some(at..end);
        }
        at = line_end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of the binary APPEND Dovecot 2.3 was given by hand: it stored the
    /// second part as `base64` of 36 octets with this text, and so does letterbox.
    #[test]
    fn binary_parts_become_base64_and_the_rest_stays() {
        let part = b"bin\x00ary \xff\xfe data\r\nline two\r\n";
        let mut raw = b"From: a@example.net\r\nSubject: binary append\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n"
            .to_vec();
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n--XX--\r\n");
        let stored = encode_binary_parts(raw);
        let text = String::from_utf8(stored.clone()).expect("7-bit now");
        assert!(
            text.ends_with(
                "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
YmluAGFyeSD//iBkYXRhDQpsaW5lIHR3bw0K\r\n--XX--\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\n"));
        let analysis = storage::mime::analyse(&stored);
        let PartContent::Multipart(parts) = &analysis.meta.root.content else {
            panic!("not multipart");
        };
        assert_eq!(parts[1].encoding.to_ascii_lowercase(), "base64");
        assert_eq!(parts[1].body_size(), 36);
    }

    #[test]
    fn long_binary_bodies_are_cut_into_lines_and_other_messages_stay() {
        let mut raw =
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: BINARY\r\n\r\n"
                .to_vec();
        raw.extend(std::iter::repeat_n(0u8, 100));
        let stored = String::from_utf8(encode_binary_parts(raw)).expect("7-bit");
        let body = stored.split("\r\n\r\n").nth(1).expect("body");
        let lines: Vec<&str> = body.split("\r\n").collect();
        assert_eq!(lines.len(), 3, "{body:?}");
        assert_eq!(lines[0].len(), BASE64_LINE);
        assert_eq!(lines[2], "");
        let plain = b"Subject: not binary\r\n\r\nbinary is just a word here\r\n".to_vec();
        assert_eq!(encode_binary_parts(plain.clone()), plain);
    }
}
