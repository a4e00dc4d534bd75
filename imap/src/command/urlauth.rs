//! URLAUTH (RFC 4467): GENURLAUTH makes an IMAP URL carry its own authorisation,
//! URLFETCH reads what such URLs name (also another user's message, when the URL says
//! this user may), RESETKEY revokes them.
//!
//! INTERNAL, the one mechanism: the verifier is the hex HMAC-SHA-256 of the URL rump, as
//! the client sent it, under the mailbox's access key (storage's `urlauth_keys`, made on
//! the first GENURLAUTH of the mailbox). A URL that fails any check is answered NIL
//! (RFC 4467 §6.3), so URLFETCH tells nothing about which check failed; the MAC is checked in
//! constant time (`hmac`'s `verify_slice`).
//!
//! Access identifiers (RFC 4467 `access`) as letterbox has them: every session is a logged-in user, so
//! `anonymous` and `authuser` are any session; `user+name` is the session of `name`; and
//! `submit+name` too, as letterbox has no separate submission entity (its SMTP side has
//! no BURL): the user named submits on their own behalf.

use super::mailbox::find_mailbox;
use crate::error::CommandError;
use crate::proto::response::{self, Code, Status};
use crate::proto::urlauth::{Access, AuthUrl, parse_auth_url};
use crate::session::{CommandResult, Completion, Session};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use storage::{AccountId, UrlAuthKey};

/// RFC 4467: the one mechanism every URLAUTH server has.
const INTERNAL: &str = "INTERNAL";

type HmacSha256 = Hmac<Sha256>;

/// The MAC of `rump` under `key`; `None` only if HMAC refused the key, which it does
/// for no length.
fn mac(key: &UrlAuthKey, rump: &str) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).ok()?;
    mac.update(rump.as_bytes());
    Some(mac)
}

/// `enc-urlauth` for `rump`: lower-case hex, as RFC 4467's examples write it.
fn token(key: &UrlAuthKey, rump: &str) -> Option<String> {
    let bytes = mac(key, rump)?.finalize().into_bytes();
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// True when `token` (hex, either case) is the MAC of `rump` under `key`.
fn verify(key: &UrlAuthKey, rump: &str, token: &str) -> bool {
    let Some(bytes) = decode_hex(token) else {
        return false;
    };
    mac(key, rump).is_some_and(|mac| mac.verify_slice(&bytes).is_ok())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

/// True when a URL with `access` may be used by the logged-in user `email`.
fn access_allows(access: &Access, email: &str) -> bool {
    match access {
        Access::Anonymous | Access::AuthUser => true,
        Access::User(user) | Access::Submit(user) => user.eq_ignore_ascii_case(email),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Session {
    /// RFC 4467 §6.2 GENURLAUTH: `* GENURLAUTH` with each URL authorised, in order, or
    /// a failure for the whole command.
    pub(crate) async fn genurlauth(&mut self, pairs: Vec<(String, String)>) -> CommandResult {
        let account = self.account()?;
        let store = &self.server.store;
        let email = store.account(account).await?.email;
        let mut authorised = Vec::with_capacity(pairs.len());
        for (text, mechanism) in pairs {
            if mechanism != INTERNAL {
                return Ok(Completion::Tagged {
                    status: Status::Bad,
                    code: Some(Code::UrlMech),
                    text: format!("{mechanism} mechanism invalid").into(),
                });
            }
            // RFC 4467 §6.2's examples answer BAD for a URL without an access
            // identifier or with a verifier already; so for any URL that is not a rump.
            let Some(url) = parse_auth_url(&text) else {
                return Err(CommandError::bad(
                    "Not a URLAUTH-ready IMAP URL (imap://user@host/mailbox/;UID=n;URLAUTH=access)",
                ));
            };
            if url.verifier.is_some() {
                return Err(CommandError::bad("URLAUTH token already in supplied URL"));
            }
            // A URL that could never be used is an invalid argument (as Dovecot 2.3).
            if url.expire.is_some_and(|expire| expire <= now()) {
                return Err(CommandError::bad("URLAUTH has already expired"));
            }
            // §6.2: the URL names the owner of the key table used: only one's own.
            if !url.user.eq_ignore_ascii_case(&email) {
                return Err(CommandError::no(
                    Some(Code::NoPerm),
                    "The URL must name the logged-in user",
                ));
            }
            // §6.2: the mailbox must exist.
            let Some(mailbox) = find_mailbox(store, account, &url.message.mailbox).await? else {
                return Err(CommandError::no(Some(Code::NonExistent), "No such mailbox"));
            };
            // The URL must name a message (as Dovecot 2.3 checks): a URL that could never
            // be fetched is not handed out. RFC 4469 §6's code for a URL that names
            // nothing.
            let names_message = url
                .message
                .uid_validity
                .is_none_or(|validity| validity == mailbox.uid_validity.0)
                && store
                    .message_by_uid(mailbox.id, storage::Uid(url.message.uid))
                    .await?
                    .is_some();
            if !names_message {
                return Err(CommandError::no(
                    Some(Code::BadUrl(text)),
                    "The URL names no message",
                ));
            }
            let key = store.urlauth_key_or_new(mailbox.id).await?;
            let Some(token) = token(&key, &url.rump) else {
                return Err(CommandError::no(Some(Code::ServerBug), "No MAC"));
            };
            authorised.push(format!("{}:internal:{token}", url.rump));
        }
        let out = &mut self.conn.out;
        // `genurlauth-data = "*" SP "GENURLAUTH" 1*(SP url-full)`, `url-full = astring`:
        // an atom when it can be one (as Dovecot 2.3 writes it), else quoted.
        out.extend_from_slice(b"* GENURLAUTH");
        for url in &authorised {
            out.push(b' ');
            response::astring(out, url.as_bytes(), false);
        }
        out.extend_from_slice(b"\r\n");
        Ok(Completion::ok("GENURLAUTH completed"))
    }

    /// RFC 4467 §6.3 URLFETCH: `* URLFETCH url nstring` for each URL in order (one
    /// response a URL, which `urlfetch-data = "*" SP "URLFETCH" 1*(SP url SP nstring)`
    /// allows, so a large part is sent before the next is read), NIL for each that does
    /// not validate.
    pub(crate) async fn urlfetch(&mut self, urls: Vec<String>) -> CommandResult {
        let account = self.account()?;
        let mut own_email = None;
        for url in urls {
            let content = self.urlauth_content(account, &url, &mut own_email).await?;
            let out = &mut self.conn.out;
            out.extend_from_slice(b"* URLFETCH ");
            response::astring(out, url.as_bytes(), false);
            out.push(b' ');
            match content {
                Some(bytes) => response::literal(out, &bytes),
                None => out.extend_from_slice(b"NIL"),
            }
            out.extend_from_slice(b"\r\n");
            self.conn.flush_if_full().await?;
        }
        Ok(Completion::ok("URLFETCH completed"))
    }

    /// RFC 4467 §6.1 RESETKEY: without a mailbox, every key of the user goes; with one,
    /// its key is replaced (for INTERNAL, the only mechanism).
    pub(crate) async fn resetkey(
        &mut self,
        mailbox: Option<&str>,
        mechanisms: &[String],
    ) -> CommandResult {
        let account = self.account()?;
        let Some(name) = mailbox else {
            self.server.store.remove_urlauth_keys(account).await?;
            return Ok(Completion::ok("All keys removed"));
        };
        // As RFC 4467 §6.1's example answers an unknown mechanism: BAD [URLMECH INTERNAL].
        if let Some(unknown) = mechanisms.iter().find(|m| *m != INTERNAL) {
            return Ok(Completion::Tagged {
                status: Status::Bad,
                code: Some(Code::UrlMech),
                text: format!("{unknown} mechanism invalid").into(),
            });
        }
        let mailbox = self.existing(name).await?;
        self.server.store.reset_urlauth_key(mailbox.id).await?;
        Ok(Completion::ok_with(Code::UrlMech, "RESETKEY completed"))
    }

    /// What a URLAUTH-authorised URL names, for the logged-in `account` (URLFETCH, and
    /// CATENATE's URLs), or `None` when it does not validate (RFC 4467 §6.3): not a full
    /// URLAUTH URL, not INTERNAL, expired, an access identifier that is not this user,
    /// an owner, mailbox or key that is not there, a wrong MAC, or a message, UIDVALIDITY
    /// or section that is not there. `own_email` is the session's address once read (the
    /// caller keeps it for the other URLs of its command, so it is read at most once).
    pub(crate) async fn urlauth_content(
        &self,
        account: AccountId,
        text: &str,
        own_email: &mut Option<String>,
    ) -> Result<Option<Vec<u8>>, CommandError> {
        let Some(url) = parse_auth_url(text) else {
            return Ok(None);
        };
        let Some(owner_mailbox) = self.authorised_mailbox(account, &url, own_email).await? else {
            return Ok(None);
        };
        self.message_content(&owner_mailbox, &url.message).await
    }

    /// The mailbox of `url` when the URL authorises `account` to read from it.
    async fn authorised_mailbox(
        &self,
        account: AccountId,
        url: &AuthUrl,
        own_email: &mut Option<String>,
    ) -> Result<Option<storage::Mailbox>, CommandError> {
        let store = &self.server.store;
        let Some(verifier) = &url.verifier else {
            return Ok(None);
        };
        if !verifier.mechanism.eq_ignore_ascii_case(INTERNAL) {
            return Ok(None);
        }
        // RFC 4467 ;EXPIRE=: not valid from that moment on.
        if url.expire.is_some_and(|expire| expire <= now()) {
            return Ok(None);
        }
        // Only `user+` and `submit+` need the session's address (one lookup a command).
        let allowed = match &url.access {
            Access::Anonymous | Access::AuthUser => true,
            access => {
                if own_email.is_none() {
                    *own_email = Some(store.account(account).await?.email);
                }
                access_allows(access, own_email.as_deref().unwrap_or_default())
            }
        };
        if !allowed {
            return Ok(None);
        }
        let Some(owner) = store.account_by_email(&url.user).await? else {
            return Ok(None);
        };
        let Some(mailbox) = find_mailbox(store, owner.id, &url.message.mailbox).await? else {
            return Ok(None);
        };
        let Some(key) = store.urlauth_key(mailbox.id).await? else {
            return Ok(None);
        };
        Ok(verify(&key, &url.rump, &verifier.token).then_some(mailbox))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> UrlAuthKey {
        UrlAuthKey::from_bytes([byte; storage::URLAUTH_KEY_BYTES])
    }

    #[test]
    fn tokens_verify_only_for_their_rump_and_key() {
        let rump = "imap://a@h/INBOX/;UID=1;URLAUTH=anonymous";
        let made = token(&key(1), rump).expect("token");
        assert_eq!(made.len(), 64);
        assert!(verify(&key(1), rump, &made));
        assert!(verify(&key(1), rump, &made.to_ascii_uppercase()));
        assert!(!verify(&key(2), rump, &made));
        assert!(!verify(
            &key(1),
            "imap://a@h/INBOX/;UID=2;URLAUTH=anonymous",
            &made
        ));
        assert!(!verify(&key(1), rump, &made[..62]));
        assert!(!verify(&key(1), rump, &made[..63]));
        let mut flipped = made.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("hex");
        assert!(!verify(&key(1), rump, &flipped));
    }

    #[test]
    fn access_identifiers_name_who_may_fetch() {
        let me = "b@example.org";
        assert!(access_allows(&Access::Anonymous, me));
        assert!(access_allows(&Access::AuthUser, me));
        assert!(access_allows(&Access::User("B@Example.org".into()), me));
        assert!(access_allows(&Access::Submit("b@example.org".into()), me));
        assert!(!access_allows(&Access::Submit("a@example.org".into()), me));
        assert!(!access_allows(&Access::User("a@example.org".into()), me));
    }
}
