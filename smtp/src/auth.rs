//! AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms.
//!
//! The gate has checked that AUTH is offered here (submission port, TLS or loopback),
//! that the session is not yet authenticated and that no transaction is open. Passwords
//! are wrapped in [`Secret`] as soon as they are decoded and never logged.

use crate::proto::command::Mechanism;
use crate::proto::line::trim_line_end;
use crate::proto::reply::{
    AUTH_CANCELLED, AUTH_CHALLENGE, AUTH_INVALID, AUTH_LINE_TOO_LONG, AUTH_SUCCEEDED,
    CANNOT_DECODE, POLICY_CLOSE, TEMPORARY_AUTH_FAILURE, UNKNOWN_MECHANISM,
};
use crate::proto::{Line, Reply};
use crate::session::{Action, Authenticated, Session};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use netutil::Throttled;
use storage::Secret;

/// `Username:` and `Password:` in base64: the LOGIN mechanism's customary prompts.
const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// Where a SASL exchange is when the server waits for the client's next line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SaslStep {
    /// PLAIN without an initial response: waiting for `authzid NUL authcid NUL passwd`.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password of `user`.
    LoginPassword { user: String },
}

/// Why a SASL response cannot be used.
enum Decode {
    /// RFC 4954 §4: `*` cancels the exchange.
    Cancelled,
    /// Not base64, or not the shape the mechanism needs.
    Invalid,
}

impl Session {
    pub(crate) async fn auth(
        &mut self,
        mechanism: Mechanism,
        initial_response: Option<String>,
    ) -> Action {
        // Refused before the exchange asks for credentials; `verify` checks again.
        if let Err(throttled) = self.auth_throttle.check(self.peer_ip()) {
            return refuse(throttled);
        }
        match (mechanism, initial_response) {
            (Mechanism::Plain, None) => Action::Challenge {
                reply: Reply::new(AUTH_CHALLENGE, ""),
                step: SaslStep::Plain,
            },
            (Mechanism::Plain, Some(response)) => self.plain(response.as_bytes()).await,
            (Mechanism::Login, None) => Action::Challenge {
                reply: Reply::new(AUTH_CHALLENGE, LOGIN_USERNAME_PROMPT),
                step: SaslStep::LoginUser,
            },
            (Mechanism::Login, Some(response)) => self.login_user(response.as_bytes()),
            (Mechanism::Other, _) => {
                Reply::new(UNKNOWN_MECHANISM, "Unrecognized authentication type").into()
            }
        }
    }

    /// The client's line in answer to a `334` challenge.
    pub(crate) async fn sasl(&mut self, step: SaslStep, line: Line) -> Action {
        let action = match line {
            Line::TooLong => Reply::new(
                AUTH_LINE_TOO_LONG,
                "Authentication exchange line is too long",
            )
            .into(),
            Line::Complete(line) => {
                let response = trim_line_end(&line);
                match step {
                    SaslStep::Plain => self.plain(response).await,
                    SaslStep::LoginUser => self.login_user(response),
                    SaslStep::LoginPassword { user } => self.login_password(user, response).await,
                }
            }
        };
        self.count_errors(action)
    }

    async fn plain(&mut self, response: &[u8]) -> Action {
        match decode_plain(response) {
            Ok((user, password)) => self.verify(&user, password).await,
            Err(error) => decode_failure(error),
        }
    }

    fn login_user(&mut self, response: &[u8]) -> Action {
        match decode_text(response) {
            Ok(user) => Action::Challenge {
                reply: Reply::new(AUTH_CHALLENGE, LOGIN_PASSWORD_PROMPT),
                step: SaslStep::LoginPassword { user },
            },
            Err(error) => decode_failure(error),
        }
    }

    async fn login_password(&mut self, user: String, response: &[u8]) -> Action {
        match decode_text(response) {
            Ok(password) => self.verify(&user, Secret::new(password)).await,
            Err(error) => decode_failure(error),
        }
    }

    /// Checks the password, its place in the throttle taken first; a failure is counted
    /// against the address and the account and answered only after the throttle's
    /// delay, so guessing gets slower with every miss.
    async fn verify(&mut self, user: &str, password: Secret) -> Action {
        let attempt = match self.auth_throttle.begin(self.peer_ip(), user) {
            Ok(attempt) => attempt,
            Err(throttled) => return refuse(throttled),
        };
        match self.store.authenticate(user, &password).await {
            Ok(Some(account)) => {
                attempt.succeeded();
                tracing::info!(user = %account.email, "authenticated");
                self.auth = Some(Authenticated {
                    account: account.id,
                    email: account.email,
                });
                Reply::new(AUTH_SUCCEEDED, "Authentication successful").into()
            }
            Ok(None) => {
                tracing::info!(user, "authentication failed");
                tokio::time::sleep(attempt.failed()).await;
                Reply::new(AUTH_INVALID, "Authentication credentials invalid").into()
            }
            Err(error) => {
                attempt.undecided();
                tracing::warn!(%error, "authentication failed: storage error");
                Reply::new(TEMPORARY_AUTH_FAILURE, "Temporary authentication failure").into()
            }
        }
    }
}

/// A login the throttle refused, before any password check: `421 4.7.0` and the
/// connection closes (RFC 5321 §3.8), as for too many errors; a client that kept the
/// session would only be refused again until the window has passed.
fn refuse(throttled: Throttled) -> Action {
    tracing::info!(%throttled, "AUTH refused");
    Action::Close(Reply::new(
        POLICY_CLOSE,
        "Too many failed authentications, try again later",
    ))
}

fn decode_failure(error: Decode) -> Action {
    match error {
        Decode::Cancelled => Reply::new(AUTH_CANCELLED, "Authentication cancelled").into(),
        Decode::Invalid => Reply::new(CANNOT_DECODE, "Cannot decode response").into(),
    }
}

fn decode_base64(response: &[u8]) -> Result<Vec<u8>, Decode> {
    let response = response.trim_ascii();
    if response == b"*" {
        return Err(Decode::Cancelled);
    }
    // RFC 4954 §4: `=` is an empty response.
    if response == b"=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(response).map_err(|_| Decode::Invalid)
}

fn decode_text(response: &[u8]) -> Result<String, Decode> {
    String::from_utf8(decode_base64(response)?).map_err(|_| Decode::Invalid)
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`. We act only as the authenticated
/// user: an authzid naming someone else is refused.
fn decode_plain(response: &[u8]) -> Result<(String, Secret), Decode> {
    let decoded = decode_base64(response)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Decode::Invalid)?;
    let mut parts = decoded.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Decode::Invalid);
    };
    if authcid.is_empty() || (!authzid.is_empty() && authzid != authcid) {
        return Err(Decode::Invalid);
    }
    Ok((authcid.to_owned(), Secret::new(password)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        STANDARD.encode(s).into_bytes()
    }

    #[test]
    fn plain_forms() {
        let (user, password) = decode_plain(&b64("\0me@x\0pw")).ok().expect("valid");
        assert_eq!((user.as_str(), password.expose()), ("me@x", "pw"));
        let (user, _) = decode_plain(&b64("me@x\0me@x\0pw"))
            .ok()
            .expect("same authzid");
        assert_eq!(user, "me@x");
        assert!(matches!(
            decode_plain(&b64("other\0me@x\0pw")),
            Err(Decode::Invalid)
        ));
        assert!(matches!(
            decode_plain(&b64("me@x\0pw")),
            Err(Decode::Invalid)
        ));
        assert!(matches!(decode_plain(&b64("\0\0pw")), Err(Decode::Invalid)));
        assert!(matches!(decode_plain(b"!!notbase64"), Err(Decode::Invalid)));
        assert!(matches!(decode_plain(b"*"), Err(Decode::Cancelled)));
        assert!(matches!(decode_plain(b"="), Err(Decode::Invalid)));
    }

    #[test]
    fn login_text() {
        assert_eq!(decode_text(&b64("me@x")).ok().as_deref(), Some("me@x"));
        assert_eq!(decode_text(b"=").ok().as_deref(), Some(""));
        assert!(matches!(
            decode_text(&STANDARD.encode([0xff]).into_bytes()),
            Err(Decode::Invalid)
        ));
    }
}
