//! Not-authenticated state (RFC 9051 §6.2): STARTTLS, LOGIN, AUTHENTICATE PLAIN with
//! SASL-IR (RFC 4959). Failures are answered `NO [AUTHENTICATIONFAILED]` only after the
//! throttle's delay, and recorded in it.

use crate::error::CommandError;
use crate::proto::command::SaslResponse;
use crate::proto::response::{self, Code, Status};
use crate::proto::{FramerLimits, base64};
use crate::session::{CommandResult, Completion, Session, State};
use storage::Secret;

/// A SASL PLAIN response carries an identity and a password; 8 KiB is far beyond both.
const MAX_SASL_RESPONSE: usize = 8 * 1024;

impl Session {
    /// RFC 9051 §6.2.1: the tagged OK goes out in plaintext, then the handshake; the
    /// client must ask for CAPABILITY again.
    pub(crate) async fn starttls(&mut self) -> CommandResult {
        let Some(acceptor) = self.server.tls.clone() else {
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
                response::continuation(&mut self.conn.out, "");
                self.conn.flush().await?;
                self.read_line(MAX_SASL_RESPONSE).await?
            }
        };
        // RFC 9051 §6.2.2: "*" cancels the exchange, answered with BAD.
        if encoded == b"*" {
            return Err(CommandError::bad("Authentication cancelled"));
        }
        // RFC 4959 §3: "=" is an empty initial response.
        let decoded = if encoded == b"=" {
            Vec::new()
        } else {
            base64::decode(&encoded).ok_or_else(|| CommandError::bad("Invalid base64"))?
        };
        let mut fields = decoded.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(CommandError::bad("Malformed PLAIN response"));
        };
        let (Ok(authzid), Ok(authcid), Ok(password)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(password),
        ) else {
            return Err(CommandError::bad("Malformed PLAIN response"));
        };
        // RFC 4616 §2: acting as someone else is not offered.
        if !authzid.is_empty() && authzid != authcid {
            return self.auth_failed().await;
        }
        self.check_password(authcid, &Secret::new(password)).await
    }

    async fn check_password(&mut self, user: &str, password: &Secret) -> CommandResult {
        let ip = self.peer.ip();
        let throttle = &self.server.auth_throttle;
        if throttle.is_blocked(ip) {
            tracing::info!(%ip, "login refused: too many failures from this address");
            return Err(CommandError::no(
                Some(Code::Unavailable),
                "Too many failed logins; try again later",
            ));
        }
        match self.server.store.authenticate(user, password).await? {
            Some(account) => {
                throttle.record_success(ip);
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
            None => {
                tracing::info!(user, "login failed");
                self.auth_failed().await
            }
        }
    }

    async fn auth_failed(&mut self) -> CommandResult {
        let ip = self.peer.ip();
        let delay = self.server.auth_throttle.delay(ip);
        self.server.auth_throttle.record_failure(ip);
        tokio::time::sleep(delay).await;
        if let State::NotAuthenticated { auth_failures } = &mut self.state {
            *auth_failures += 1;
        }
        Err(CommandError::no(
            Some(Code::AuthenticationFailed),
            "Invalid credentials",
        ))
    }
}
