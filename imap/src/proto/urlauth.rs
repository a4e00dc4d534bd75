//! URLAUTH URLs (RFC 4467's formal syntax, on RFC 5092 §11's grammar): the absolute IMAP URL of one
//! message or part, with its owner, and the authorisation it carries:
//!
//! ```text
//! authimapurl     = "imap://" enc-user [iauth] "@" hostport "/" imessagepart
//! authimapurlrump = authimapurl iurlauth-rump
//! authimapurlfull = authimapurl iurlauth
//! iurlauth-rump   = [expire] ";URLAUTH=" access
//! iurlauth        = iurlauth-rump iua-verifier
//! iua-verifier    = ":" uauth-mechanism ":" enc-urlauth
//! expire          = ";EXPIRE=" date-time            ; RFC 3339
//! access          = ("submit+" enc-user) / ("user+" enc-user) / "authuser" / "anonymous"
//! uauth-mechanism = "INTERNAL" / 1*(ALPHA / DIGIT / "-" / ".")
//! enc-urlauth     = 32*HEXDIG
//! ```
//!
//! A hand parser, bounded by [`MAX_URL_BYTES`], and not the `url` crate: that one parses
//! generic RFC 3986 URLs and knows nothing of IMAP's `;UID=`, `;SECTION=`, `;EXPIRE=` or
//! `;URLAUTH=` parameters, would normalise the text (case, percent-encoding), and the MAC
//! must be checked over the rump exactly as the client sent it (RFC 4467: the verifier is
//! computed over the URL rump). The message part is [`parse_imap_url`]'s, which
//! CATENATE uses too.

use super::command::ImapUrl;
use super::parse::{parse_imap_url, percent_decode};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest URL taken. RFC 5092 sets none; a URL names a mailbox (at most
/// `storage::MAX_MAILBOX_NAME_BYTES`, up to three times that percent-encoded), a user, a
/// host, a section and a verifier: 8 KiB holds all of them with room to spare.
pub const MAX_URL_BYTES: usize = 8 * 1024;

/// The access identifier of RFC 4467: who may fetch with the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `"submit+" enc-user`: only a message submission entity acting for that user.
    Submit(String),
    /// `"user+" enc-user`: only that user.
    User(String),
    /// `"authuser"`: any user logged in to this server, not anonymously.
    AuthUser,
    /// `"anonymous"`: anyone, anonymous sessions too.
    Anonymous,
}

/// `iua-verifier = ":" uauth-mechanism ":" enc-urlauth`, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub mechanism: String,
    /// `enc-urlauth = 32*HEXDIG`, in the case it was sent.
    pub token: String,
}

/// A URLAUTH-ready (rump) or URLAUTH-authorised (full) IMAP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUrl {
    /// The owner, `enc-user` percent-decoded: whose mailbox, and whose key.
    pub user: String,
    /// `hostport`, as written.
    pub host: String,
    /// The message or part: mailbox, UIDVALIDITY, UID, section, partial.
    pub message: ImapUrl,
    /// `;EXPIRE=`, in Unix seconds.
    pub expire: Option<i64>,
    pub access: Access,
    /// The text up to and including the access identifier, byte for byte as sent: what
    /// the verifier authenticates (RFC 4467).
    pub rump: String,
    pub verifier: Option<Verifier>,
}

/// Parses `url` as an `authimapurlrump` or `authimapurlfull`; `None` for anything else
/// (a relative URL, one without `;URLAUTH=`, bad syntax).
pub fn parse_auth_url(url: &str) -> Option<AuthUrl> {
    // RFC 3986 §2: a URL is visible ASCII; anything else must be percent-encoded. This
    // also makes every index below a character boundary.
    if url.len() > MAX_URL_BYTES || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let scheme = url.get(..7)?;
    if !scheme.eq_ignore_ascii_case("imap://") {
        return None;
    }
    let rest = url.get(7..)?;
    let slash = rest.find('/')?;
    let (authority, path) = rest.split_at(slash);
    // `enc-user` and `iauth` have no raw "@" (`achar` excludes it): the last one ends them.
    let (userinfo, host) = authority.rsplit_once('@')?;
    if host.is_empty() {
        return None;
    }
    // `iuserinfo = enc-user [iauth]`; `iauth = ";AUTH=" ( "*" / enc-auth-type )`.
    let (enc_user, iauth) = match userinfo.find(';') {
        Some(at) => userinfo.split_at(at),
        None => (userinfo, ""),
    };
    if !iauth.is_empty() {
        let auth_type = strip_prefix_ignore_case(iauth, ";AUTH=")?;
        if auth_type != "*" && !is_achars(auth_type) {
            return None;
        }
    }
    let user = decode_achars(enc_user)?;

    // The `imessagepart` has no raw ";" but those of its own parameters, none of which is
    // EXPIRE or URLAUTH: the first of these two starts the authorisation.
    let urlauth_at = find_ignore_case(path, ";URLAUTH=")?;
    let expire_at = find_ignore_case(path, ";EXPIRE=").filter(|&at| at < urlauth_at);
    let message = parse_imap_url(path.get(..expire_at.unwrap_or(urlauth_at))?)?;
    let expire = match expire_at {
        Some(at) => {
            let text = path.get(at + ";EXPIRE=".len()..urlauth_at)?;
            Some(OffsetDateTime::parse(text, &Rfc3339).ok()?.unix_timestamp())
        }
        None => None,
    };
    let authorisation = path.get(urlauth_at + ";URLAUTH=".len()..)?;
    let (access_text, verifier_text) = match authorisation.find(':') {
        Some(at) => (authorisation.get(..at)?, Some(authorisation.get(at + 1..)?)),
        None => (authorisation, None),
    };
    let access = parse_access(access_text)?;
    let rump_len = url.len() - verifier_text.map_or(0, |v| v.len() + 1);
    let verifier = match verifier_text {
        Some(text) => {
            let (mechanism, token) = text.split_once(':')?;
            let mechanism_ok = !mechanism.is_empty()
                && mechanism
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !mechanism_ok || token.len() < 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            Some(Verifier {
                mechanism: mechanism.to_owned(),
                token: token.to_owned(),
            })
        }
        None => None,
    };
    Some(AuthUrl {
        user,
        host: host.to_owned(),
        message,
        expire,
        access,
        rump: url.get(..rump_len)?.to_owned(),
        verifier,
    })
}

/// `access = ("submit+" enc-user) / ("user+" enc-user) / "authuser" / "anonymous"`,
/// case-insensitive as URL keywords are (RFC 5092 §11).
fn parse_access(text: &str) -> Option<Access> {
    if text.eq_ignore_ascii_case("authuser") {
        Some(Access::AuthUser)
    } else if text.eq_ignore_ascii_case("anonymous") {
        Some(Access::Anonymous)
    } else if let Some(user) = strip_prefix_ignore_case(text, "submit+") {
        Some(Access::Submit(decode_achars(user)?))
    } else if let Some(user) = strip_prefix_ignore_case(text, "user+") {
        Some(Access::User(decode_achars(user)?))
    } else {
        None
    }
}

/// RFC 5092 §11: `achar = uchar / "&" / "="`; `uchar = unreserved / pct-encoded /
/// sub-delims-sh`; `sub-delims-sh = "!" / "$" / "'" / "(" / ")" / "*" / "+" / ","`.
fn is_achars(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b'&'
                        | b'='
                )
        })
}

/// `enc-user = 1*achar`, percent-decoded.
fn decode_achars(text: &str) -> Option<String> {
    if !is_achars(text) {
        return None;
    }
    percent_decode(text).filter(|user| !user.is_empty())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

fn find_ignore_case(text: &str, needle: &str) -> Option<usize> {
    text.as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::SectionText;

    /// RFC 4467 §6.2's example.
    #[test]
    fn parses_the_rfc_examples() {
        let rump = "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred";
        let url = parse_auth_url(rump).expect("rump");
        assert_eq!(url.user, "joe");
        assert_eq!(url.host, "example.com");
        assert_eq!(url.message.mailbox, "INBOX");
        assert_eq!(url.message.uid, 20);
        assert_eq!(url.message.section.part, vec![1, 2]);
        assert_eq!(url.access, Access::Submit("fred".into()));
        assert_eq!(url.rump, rump);
        assert_eq!(url.verifier, None);
        let full = format!("{rump}:internal:91354a473744909de610943775f92038");
        let url = parse_auth_url(&full).expect("full");
        assert_eq!(url.rump, rump);
        assert_eq!(
            url.verifier,
            Some(Verifier {
                mechanism: "internal".into(),
                token: "91354a473744909de610943775f92038".into()
            })
        );
    }

    #[test]
    fn parses_every_part() {
        let url = parse_auth_url(
            "IMAP://a%40example.org;AUTH=*@mail.example.org:143/my%20box;UIDVALIDITY=7/;UID=3\
             /;SECTION=HEADER.FIELDS%20(FROM)/;PARTIAL=2.5;EXPIRE=2030-01-02T03:04:05Z\
             ;URLAUTH=user+b%40example.org",
        )
        .expect("parses");
        assert_eq!(url.user, "a@example.org");
        assert_eq!(url.host, "mail.example.org:143");
        assert_eq!(url.message.mailbox, "my box");
        assert_eq!(url.message.uid_validity, Some(7));
        assert_eq!(
            url.message.section.text,
            Some(SectionText::HeaderFields {
                not: false,
                fields: vec!["FROM".into()]
            })
        );
        assert_eq!(url.message.partial, Some((2, Some(5))));
        assert_eq!(url.expire, Some(1_893_553_445));
        assert_eq!(url.access, Access::User("b@example.org".into()));
        let zoned = parse_auth_url(
            "imap://a@h/INBOX/;UID=1;EXPIRE=2030-01-02T05:04:05+02:00;URLAUTH=AuthUser",
        )
        .expect("parses");
        assert_eq!(zoned.expire, Some(1_893_553_445));
        assert_eq!(zoned.access, Access::AuthUser);
        let anonymous = parse_auth_url("imap://a@h/INBOX/;UID=1;URLAUTH=anonymous").expect("ok");
        assert_eq!(anonymous.access, Access::Anonymous);
    }

    #[test]
    fn refuses_what_is_not_a_urlauth_url() {
        let long = format!(
            "imap://a@h/{}/;UID=1;URLAUTH=anonymous",
            "x".repeat(MAX_URL_BYTES)
        );
        for bad in [
            "",
            "/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://a@h/INBOX/;UID=1",
            "imap://h/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://@h/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://a@/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://a@h;URLAUTH=anonymous",
            "imap://a;AUTH=@h/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://a@h/INBOX/;UID=1;URLAUTH=",
            "imap://a@h/INBOX/;UID=1;URLAUTH=everyone",
            "imap://a@h/INBOX/;UID=1;URLAUTH=user+",
            "imap://a@h/INBOX/;UID=1;URLAUTH=submit+a:b",
            "imap://a@h/INBOX/;UID=1;URLAUTH=anonymous:internal:abc",
            "imap://a@h/INBOX/;UID=1;URLAUTH=anonymous:internal:91354a473744909de610943775f9203g",
            "imap://a@h/INBOX/;UID=1;URLAUTH=anonymous:in/ternal:91354a473744909de610943775f92038",
            "imap://a@h/INBOX/;UID=1;URLAUTH=anonymous:internal",
            "imap://a@h/INBOX/;UID=1;EXPIRE=tomorrow;URLAUTH=anonymous",
            "imap://a@h/INBOX/;UID=0;URLAUTH=anonymous",
            "imap://a@h/INBOX/;UID=1/;SECTION=BOGUS;URLAUTH=anonymous",
            "imap://a b@h/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://a@h/INB\u{e9}X/;UID=1;URLAUTH=anonymous",
            "imap://a%ZZ@h/INBOX/;UID=1;URLAUTH=anonymous",
            "http://a@h/INBOX/;UID=1;URLAUTH=anonymous",
            &long,
        ] {
            assert_eq!(parse_auth_url(bad), None, "{bad}");
        }
    }
}
