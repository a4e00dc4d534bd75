//! Not-authenticated state (RFC 9051 §6.2): STARTTLS, LOGIN, AUTHENTICATE PLAIN with
//! SASL-IR (RFC 4959). Each login takes its place in the throttle before the password is
//! checked; failures are answered `NO [AUTHENTICATIONFAILED]` only after the throttle's
//! delay, refusals `NO [UNAVAILABLE]` at once.

use crate::error::CommandError;
use crate::proto::FramerLimits;
use crate::proto::command::SaslResponse;
use crate::proto::response::{self, Code, Status};
use crate::session::{CommandResult, Completion, Session, State};
use netutil::sasl::{self, SaslError};
use netutil::{AuthAttempt, Throttled};
use storage::Secret;

/// A SASL PLAIN response carries an identity and a password; 8 KiB is far beyond both.
const MAX_SASL_RESPONSE: usize = 8 * 1024;

impl Session {
    /// RFC 9051 §6.2.1: the tagged OK goes out in plaintext, then the handshake; the
    /// client must ask for CAPABILITY again.
    pub(crate) async fn starttls(&mut self) -> CommandResult {
        let Some(acceptor) = self.server.net.tls.clone() else {
            return Err(CommandError::bad("STARTTLS is not available"));
        };
        let tag = std::mem::take(&mut self.tag);
        response::tagged(
            &mut self.conn.out,
            &tag,
            Status::Ok,
            None,
            "Begin TLS negotiation now",
        );
        self.conn.start_tls(&acceptor).await?;
        Ok(Completion::Sent)
    }

    pub(crate) async fn login(&mut self, user: &str, password: &Secret) -> CommandResult {
        self.check_password(user, password).await
    }

    /// RFC 9051 §6.2.2 with RFC 4616 PLAIN: `[authzid] NUL authcid NUL passwd`.
    pub(crate) async fn authenticate(
        &mut self,
        mechanism: &str,
        initial: Option<SaslResponse>,
    ) -> CommandResult {
        if mechanism != "PLAIN" {
            return Err(CommandError::no(
                None,
                "Unsupported authentication mechanism",
            ));
        }
        let encoded = match initial {
            Some(SaslResponse(initial)) => initial,
            None => {
                // Refused before the exchange asks for credentials; `begin_login`
                // checks again.
                if let Err(throttled) = self.server.net.auth_throttle.check(self.peer.ip()) {
                    return Err(self.refuse(throttled));
                }
                response::continuation(&mut self.conn.out, "");
                self.conn.flush().await?;
                self.read_line(MAX_SASL_RESPONSE).await?
            }
        };
        let credentials = match sasl::decode_plain(&encoded) {
            Ok(credentials) => credentials,
            // RFC 9051 §6.2.2: "*" cancels the exchange, answered with BAD.
            Err(SaslError::Cancelled) => {
                return Err(CommandError::bad("Authentication cancelled"));
            }
            Err(SaslError::Malformed) => {
                return Err(CommandError::bad("Malformed PLAIN response"));
            }
        };
        // RFC 4616 §2: acting as someone else is not offered.
        if credentials.acts_as_other() {
            let attempt = self.begin_login(&credentials.authcid)?;
            return self.auth_failed(attempt).await;
        }
        let user = credentials.authcid.clone();
        self.check_password(&user, &Secret::new(credentials.into_password()))
            .await
    }

    /// Reserves the login's place in the throttle before anything is checked, or refuses
    /// it.
    fn begin_login(&self, user: &str) -> Result<AuthAttempt, CommandError> {
        self.server
            .net
            .auth_throttle
            .begin(self.peer.ip(), user)
            .map_err(|throttled| self.refuse(throttled))
    }

    /// RFC 5530 §3: UNAVAILABLE, a temporary failure, so that clients do not take a
    /// throttled login for a wrong password and ask the user for another.
    fn refuse(&self, throttled: Throttled) -> CommandError {
        tracing::info!(ip = %self.peer.ip(), %throttled, "login refused");
        CommandError::no(
            Some(Code::Unavailable),
            "Too many failed logins; try again later",
        )
    }

    async fn check_password(&mut self, user: &str, password: &Secret) -> CommandResult {
        let attempt = self.begin_login(user)?;
        let account = match self.server.store.authenticate(user, password).await {
            Ok(Some(account)) => account,
            Ok(None) => {
                tracing::info!(user, "login failed");
                return self.auth_failed(attempt).await;
            }
            Err(error) => {
                attempt.undecided();
                return Err(error.into());
            }
        };
        attempt.succeeded();
        tracing::info!(user = %account.email, "logged in");
        self.state = State::Authenticated {
            account: account.id,
        };
        // From the next command on, the limits of a known user: APPEND up to
        // APPENDLIMIT, larger literals (RFC 7889).
        self.conn
            .set_limits(FramerLimits::new(self.server.config.max_message_size));
        Ok(Completion::ok_with(
            Code::Capability(self.capabilities()),
            "Logged in",
        ))
    }

    /// Counts the failure and answers it after the throttle's delay.
    async fn auth_failed(&mut self, attempt: AuthAttempt) -> CommandResult {
        tokio::time::sleep(attempt.failed()).await;
        if let State::NotAuthenticated { auth_failures } = &mut self.state {
            *auth_failures += 1;
        }
        Err(CommandError::no(
            Some(Code::AuthenticationFailed),
            "Invalid credentials",
        ))
    }
}
