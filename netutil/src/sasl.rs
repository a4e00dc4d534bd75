//! SASL responses as every protocol here carries them, decoded once: IMAP AUTHENTICATE
//! (RFC 9051 §6.2.2), SMTP AUTH (RFC 4954 §4) and ManageSieve (RFC 5804 §2.1) all send
//! base64 lines, `*` to cancel and `=` for an empty response (RFC 4959 §3, RFC 4954 §4);
//! and the PLAIN mechanism (RFC 4616) that all of them offer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;

/// Why a client's SASL response gave no credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*`: the exchange is over (IMAP BAD, SMTP 501 5.0.0).
    Cancelled,
    /// Not base64, not UTF-8, or not the mechanism's form (IMAP BAD, SMTP 501 5.5.2).
    Malformed,
}

/// One response line decoded from base64; `*` cancels, `=` is empty. Surrounding
/// whitespace is not part of the response.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    match line.trim_ascii() {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Vec::new()),
        encoded => STANDARD.decode(encoded).map_err(|_| SaslError::Malformed),
    }
}

/// A response that carries text (the LOGIN mechanism's user name and password).
pub fn decode_text(line: &[u8]) -> Result<String, SaslError> {
    String::from_utf8(decode_response(line)?).map_err(|_| SaslError::Malformed)
}

/// What a PLAIN response names. The password is only given away by
/// [`PlainCredentials::into_password`], and Debug does not show it.
pub struct PlainCredentials {
    authzid: String,
    /// The account logging in.
    pub authcid: String,
    password: String,
}

impl PlainCredentials {
    /// RFC 4616 §2: an authorization identity other than the authentication identity
    /// asks to act as someone else. Nothing here offers that, so such a login fails as
    /// a wrong password would ("the server MUST fail the authentication").
    pub fn acts_as_other(&self) -> bool {
        !self.authzid.is_empty() && self.authzid != self.authcid
    }

    pub fn into_password(self) -> String {
        self.password
    }
}

impl fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .finish_non_exhaustive()
    }
}

/// RFC 4616 §2: `message = [authzid] UTF8NUL authcid UTF8NUL passwd`, with
/// `authcid = 1*SAFE` and `passwd = 1*SAFE` (SAFE is any UTF-8 but NUL).
pub fn decode_plain(line: &[u8]) -> Result<PlainCredentials, SaslError> {
    let decoded = String::from_utf8(decode_response(line)?).map_err(|_| SaslError::Malformed)?;
    let mut fields = decoded.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Malformed);
    };
    if authcid.is_empty() || password.is_empty() {
        return Err(SaslError::Malformed);
    }
    Ok(PlainCredentials {
        authzid: authzid.to_owned(),
        authcid: authcid.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(text: &str) -> Vec<u8> {
        STANDARD.encode(text).into_bytes()
    }

    #[test]
    fn plain_responses_give_the_account_and_password() {
        let credentials = decode_plain(&encoded("\0me@x\0pw")).expect("valid");
        assert!(!credentials.acts_as_other());
        assert_eq!(credentials.authcid, "me@x");
        assert_eq!(credentials.into_password(), "pw");
        let same = decode_plain(&encoded("me@x\0me@x\0pw")).expect("same authzid");
        assert!(!same.acts_as_other());
        let other = decode_plain(&encoded("boss@x\0me@x\0pw")).expect("well formed");
        assert!(other.acts_as_other());
        assert!(!format!("{other:?}").contains("pw"));
    }

    #[test]
    fn malformed_and_cancelled_plain_responses() {
        for bad in ["me@x\0pw", "\0\0pw", "\0me@x\0", "a\0b\0c\0d"] {
            assert_eq!(
                decode_plain(&encoded(bad)).err(),
                Some(SaslError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode_plain(b"!!notbase64").err(),
            Some(SaslError::Malformed)
        );
        assert_eq!(
            decode_plain(&[0xff, 0xfe]).err(),
            Some(SaslError::Malformed)
        );
        assert_eq!(decode_plain(b"*").err(), Some(SaslError::Cancelled));
        assert_eq!(decode_plain(b"=").err(), Some(SaslError::Malformed));
        assert_eq!(decode_plain(b" * \r\n").err(), Some(SaslError::Cancelled));
    }

    #[test]
    fn text_responses() {
        assert_eq!(decode_text(&encoded("me@x")).as_deref(), Ok("me@x"));
        assert_eq!(decode_text(b"=").as_deref(), Ok(""));
        let not_utf8 = STANDARD.encode([0xff]).into_bytes();
        assert_eq!(decode_text(&not_utf8), Err(SaslError::Malformed));
    }
}
