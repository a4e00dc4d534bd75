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
use crate::session::{Action, Authenticated, SaslStep, Session};
use netutil::Throttled;
use netutil::sasl::{self, SaslError};
use storage::Secret;

/// `Username:` and `Password:` in base64: the LOGIN mechanism's customary prompts.
const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

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
        match sasl::decode_plain(response) {
            Ok(credentials) if credentials.acts_as_other() => {
                // RFC 4616 §2: acting as someone else is not offered; the login fails
                // (and counts) as a wrong password does, without a password check.
                match self
                    .auth_throttle
                    .begin(self.peer_ip(), &credentials.authcid)
                {
                    Ok(attempt) => {
                        tracing::info!(
                            user = credentials.authcid,
                            "authorization identity refused"
                        );
                        tokio::time::sleep(attempt.failed()).await;
                        Reply::new(AUTH_INVALID, "Authentication credentials invalid").into()
                    }
                    Err(throttled) => refuse(throttled),
                }
            }
            Ok(credentials) => {
                let user = credentials.authcid.clone();
                self.verify(&user, Secret::new(credentials.into_password()))
                    .await
            }
            Err(error) => decode_failure(error),
        }
    }

    fn login_user(&mut self, response: &[u8]) -> Action {
        match sasl::decode_text(response) {
            Ok(user) => Action::Challenge {
                reply: Reply::new(AUTH_CHALLENGE, LOGIN_PASSWORD_PROMPT),
                step: SaslStep::LoginPassword { user },
            },
            Err(error) => decode_failure(error),
        }
    }

    async fn login_password(&mut self, user: String, response: &[u8]) -> Action {
        match sasl::decode_text(response) {
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

/// RFC 4954 §4: a cancelled exchange is answered 501 5.0.0, a response that cannot be
/// decoded 501 5.5.2.
fn decode_failure(error: SaslError) -> Action {
    match error {
        SaslError::Cancelled => Reply::new(AUTH_CANCELLED, "Authentication cancelled").into(),
        SaslError::Malformed => Reply::new(CANNOT_DECODE, "Cannot decode response").into(),
    }
}
