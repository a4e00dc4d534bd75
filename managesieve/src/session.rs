//! One ManageSieve session: its state, the gate, and the commands (RFC 5804 §2).
//!
//! The session never touches the socket: each command gives a [`Reply`] for the driver
//! (`lib.rs`) to write.

use crate::proto::{Argument, Code, Command, response, string};
use crate::{ManageSieveConfig, ManageSieveServer};
use netutil::sasl::{self, SaslError};
use netutil::{AuthAttempt, AuthThrottle, Throttled};
use std::net::SocketAddr;
use std::sync::Arc;
use storage::{AccountId, Secret, Store, StoreError};

/// What the driver does with a command's answer.
pub(crate) enum Reply {
    Send(Vec<u8>),
    /// Write, then close (LOGOUT, too many errors).
    Close(Vec<u8>),
    /// Write, then start TLS and send the capabilities again.
    StartTls(Vec<u8>),
}

/// RFC 5804 §1.4 / §2: where the session is.
enum State {
    NotAuthenticated,
    /// AUTHENTICATE "PLAIN" without an initial response: the next line is the response.
    AwaitingSasl,
    Authenticated {
        account: AccountId,
    },
}

pub(crate) struct Session {
    config: Arc<ManageSieveConfig>,
    store: Store,
    throttle: AuthThrottle,
    tls_available: bool,
    tls: bool,
    peer: SocketAddr,
    state: State,
    /// Failed commands in a row.
    bad_commands: u32,
}

impl Session {
    pub(crate) fn new(server: &ManageSieveServer, peer: SocketAddr, tls: bool) -> Session {
        Session {
            config: server.config.clone(),
            store: server.store.clone(),
            throttle: server.net.auth_throttle.clone(),
            tls_available: server.net.tls.is_some(),
            tls,
            peer,
            state: State::NotAuthenticated,
            bad_commands: 0,
        }
    }

    pub(crate) fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated { .. })
    }

    pub(crate) fn awaiting_sasl(&self) -> bool {
        matches!(self.state, State::AwaitingSasl)
    }

    pub(crate) fn tls_started(&mut self) {
        self.tls = true;
    }

    fn plain_allowed(&self) -> bool {
        self.tls || self.config.allow_plaintext_auth
    }

    /// RFC 5804 §1.7: the capability response, then OK.
    pub(crate) fn capabilities(&self) -> Vec<u8> {
        let mut out = String::new();
        let mut line = |name: &str, value: Option<&str>| {
            out.push_str(&string(name));
            if let Some(value) = value {
                out.push(' ');
                out.push_str(&string(value));
            }
            out.push_str("\r\n");
        };
        line("IMPLEMENTATION", Some("letterbox"));
        line("SIEVE", Some(&filter::EXTENSIONS.join(" ")));
        if !self.is_authenticated() {
            // RFC 5804 §2.1: PLAIN only where the password cannot be read on the wire.
            line(
                "SASL",
                Some(if self.plain_allowed() { "PLAIN" } else { "" }),
            );
        }
        if self.tls_available && !self.tls && !self.is_authenticated() {
            line("STARTTLS", None);
        }
        let redirects = filter::MAX_REDIRECTS.to_string();
        line("MAXREDIRECTS", Some(&redirects));
        line("VERSION", Some("1.0"));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&response("OK", None, "letterbox ManageSieve ready"));
        bytes
    }

    /// A command the parser refused.
    pub(crate) fn bad(&mut self, reason: &str) -> Reply {
        if matches!(self.state, State::AwaitingSasl) {
            self.state = State::NotAuthenticated;
        }
        self.failed(response("NO", None, &format!("Syntax error: {reason}")))
    }

    /// Counts a failed command; too many in a row closes the connection.
    fn failed(&mut self, bytes: Vec<u8>) -> Reply {
        self.bad_commands += 1;
        if self.bad_commands >= self.config.max_bad_commands {
            let mut bytes = bytes;
            bytes.extend_from_slice(&response("BYE", None, "Too many errors"));
            return Reply::Close(bytes);
        }
        Reply::Send(bytes)
    }

    /// The gate (RFC 5804 §2): which command is legal in which state, then the command.
    pub(crate) async fn command(&mut self, command: Command) -> Reply {
        let outcome = match (&self.state, command.name.as_str()) {
            (State::AwaitingSasl, _) => {
                self.state = State::NotAuthenticated;
                match command.arguments.first() {
                    Some(Argument::String(bytes)) => self.login(bytes).await,
                    _ => Err(no(None, "Expected a SASL response")),
                }
            }
            (_, "CAPABILITY") => Ok(Reply::Send(self.capabilities())),
            (_, "NOOP") => {
                // RFC 5804 §2.13: the tag is echoed in a TAG response code.
                let text = match command.arguments.first() {
                    Some(Argument::String(tag)) => format!(
                        "OK (TAG {}) \"Done\"\r\n",
                        string(&String::from_utf8_lossy(tag))
                    ),
                    _ => "OK \"Done\"\r\n".to_owned(),
                };
                Ok(Reply::Send(text.into_bytes()))
            }
            (_, "LOGOUT") => Ok(Reply::Close(response("OK", None, "Logout"))),
            (State::NotAuthenticated, "STARTTLS") => {
                // RFC 5804 §2.2.
                if self.tls || !self.tls_available {
                    Err(no(None, "TLS is not available"))
                } else {
                    Ok(Reply::StartTls(response(
                        "OK",
                        None,
                        "Begin TLS negotiation",
                    )))
                }
            }
            (State::NotAuthenticated, "AUTHENTICATE") => {
                self.authenticate(&command.arguments).await
            }
            (State::NotAuthenticated, _) => Err(no(None, "Log in first")),
            (State::Authenticated { account }, name) => {
                let account = *account;
                self.scripts(account, name, &command.arguments).await
            }
        };
        match outcome {
            Ok(reply) => {
                self.bad_commands = 0;
                reply
            }
            Err(bytes) => self.failed(bytes),
        }
    }

    /// RFC 5804 §2.1 AUTHENTICATE with PLAIN (RFC 4616).
    async fn authenticate(&mut self, arguments: &[Argument]) -> Result<Reply, Vec<u8>> {
        let mechanism = match arguments.first() {
            Some(Argument::String(m)) => String::from_utf8_lossy(m).to_ascii_uppercase(),
            _ => return Err(no(None, "Expected a SASL mechanism")),
        };
        if mechanism != "PLAIN" {
            return Err(no(None, "Unsupported SASL mechanism"));
        }
        if !self.plain_allowed() {
            return Err(no(Some(Code::EncryptNeeded), "Use STARTTLS first"));
        }
        if let Err(throttled) = self.throttle.check(self.peer.ip()) {
            return Err(self.refuse(throttled));
        }
        match arguments.get(1) {
            Some(Argument::String(initial)) => {
                let initial = initial.clone();
                self.login(&initial).await
            }
            Some(Argument::Number(_)) => Err(no(None, "Expected a SASL response")),
            None => {
                // RFC 5804 §2.1: an empty challenge asks for the response.
                self.state = State::AwaitingSasl;
                Ok(Reply::Send(b"\"\"\r\n".to_vec()))
            }
        }
    }

    async fn login(&mut self, encoded: &[u8]) -> Result<Reply, Vec<u8>> {
        let credentials = match sasl::decode_plain(encoded) {
            Ok(credentials) => credentials,
            // RFC 5804 §2.1: "*" aborts the exchange.
            Err(SaslError::Cancelled) => return Err(no(None, "Authentication cancelled")),
            Err(SaslError::Malformed) => return Err(no(None, "Malformed PLAIN response")),
        };
        let attempt = self
            .throttle
            .begin(self.peer.ip(), &credentials.authcid)
            .map_err(|throttled| self.refuse(throttled))?;
        // RFC 4616 §2: acting as someone else is not offered.
        if credentials.acts_as_other() {
            return Err(auth_failed(attempt).await);
        }
        let user = credentials.authcid.clone();
        let password = Secret::new(credentials.into_password());
        match self.store.authenticate(&user, &password).await {
            Ok(Some(account)) => {
                attempt.succeeded();
                tracing::info!(user = %account.email, "logged in");
                self.state = State::Authenticated {
                    account: account.id,
                };
                Ok(Reply::Send(response("OK", None, "Logged in")))
            }
            Ok(None) => {
                tracing::info!(user, "login failed");
                Err(auth_failed(attempt).await)
            }
            Err(error) => {
                attempt.undecided();
                tracing::warn!(%error, "login not checked");
                Err(no(Some(Code::TryLater), "Try again later"))
            }
        }
    }

    fn refuse(&self, throttled: Throttled) -> Vec<u8> {
        tracing::info!(ip = %self.peer.ip(), %throttled, "login refused");
        no(
            Some(Code::TryLater),
            "Too many failed logins; try again later",
        )
    }

    /// The commands of an authenticated session (RFC 5804 §2.5-§2.12).
    async fn scripts(
        &mut self,
        account: AccountId,
        name: &str,
        arguments: &[Argument],
    ) -> Result<Reply, Vec<u8>> {
        let ok = |text: &str| Ok(Reply::Send(response("OK", None, text)));
        match (name, arguments) {
            // RFC 5804 §2.5 HAVESPACE name size.
            ("HAVESPACE", [Argument::String(script), Argument::Number(size)]) => {
                let script = text(script)?;
                if *size as usize > storage::MAX_SIEVE_SCRIPT_BYTES {
                    return Err(no(Some(Code::QuotaMaxSize), "Script too large"));
                }
                let scripts = self
                    .store
                    .sieve_scripts(account)
                    .await
                    .map_err(store_error)?;
                if scripts.len() >= storage::MAX_SIEVE_SCRIPTS
                    && !scripts.iter().any(|s| s.name == script)
                {
                    return Err(no(Some(Code::QuotaMaxScripts), "Too many scripts"));
                }
                ok("Putscript would succeed")
            }
            // RFC 5804 §2.6 PUTSCRIPT name content.
            ("PUTSCRIPT", [Argument::String(script), Argument::String(content)]) => {
                let script = text(script)?;
                let content = text(content)?;
                check(&content).await?;
                self.store
                    .put_sieve_script(account, &script, &content)
                    .await
                    .map_err(store_error)?;
                ok("Script stored")
            }
            // RFC 5804 §2.12 CHECKSCRIPT content.
            ("CHECKSCRIPT", [Argument::String(content)]) => {
                check(&text(content)?).await?;
                ok("Script is valid")
            }
            // RFC 5804 §2.7 LISTSCRIPTS.
            ("LISTSCRIPTS", []) => {
                let mut out = String::new();
                for script in self
                    .store
                    .sieve_scripts(account)
                    .await
                    .map_err(store_error)?
                {
                    out.push_str(&string(&script.name));
                    if script.active {
                        out.push_str(" ACTIVE");
                    }
                    out.push_str("\r\n");
                }
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&response("OK", None, "Listscripts completed"));
                Ok(Reply::Send(bytes))
            }
            // RFC 5804 §2.8 SETACTIVE name; "" deactivates.
            ("SETACTIVE", [Argument::String(script)]) => {
                let script = text(script)?;
                let name = (!script.is_empty()).then_some(script.as_str());
                self.store
                    .activate_sieve_script(account, name)
                    .await
                    .map_err(store_error)?;
                ok("Active script set")
            }
            // RFC 5804 §2.9 GETSCRIPT name: the script as a literal.
            ("GETSCRIPT", [Argument::String(script)]) => {
                let script = text(script)?;
                let found = self
                    .store
                    .sieve_script(account, &script)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| no(Some(Code::Nonexistent), "No such script"))?;
                let mut bytes = format!("{{{}}}\r\n", found.content.len()).into_bytes();
                bytes.extend_from_slice(found.content.as_bytes());
                bytes.extend_from_slice(b"\r\n");
                bytes.extend_from_slice(&response("OK", None, "Getscript completed"));
                Ok(Reply::Send(bytes))
            }
            // RFC 5804 §2.10 DELETESCRIPT name.
            ("DELETESCRIPT", [Argument::String(script)]) => {
                let script = text(script)?;
                self.store
                    .delete_sieve_script(account, &script)
                    .await
                    .map_err(store_error)?;
                ok("Script deleted")
            }
            // RFC 5804 §2.11.1 RENAMESCRIPT old new.
            ("RENAMESCRIPT", [Argument::String(old), Argument::String(new)]) => {
                let (old, new) = (text(old)?, text(new)?);
                self.store
                    .rename_sieve_script(account, &old, &new)
                    .await
                    .map_err(store_error)?;
                ok("Script renamed")
            }
            (
                "HAVESPACE" | "PUTSCRIPT" | "CHECKSCRIPT" | "LISTSCRIPTS" | "SETACTIVE"
                | "GETSCRIPT" | "DELETESCRIPT" | "RENAMESCRIPT",
                _,
            ) => Err(no(None, "Wrong arguments")),
            ("AUTHENTICATE" | "STARTTLS", _) => Err(no(None, "Already logged in")),
            _ => Err(no(None, "Unknown command")),
        }
    }
}

/// `NO` with a code and text.
fn no(code: Option<Code>, text: &str) -> Vec<u8> {
    response("NO", code, text)
}

/// RFC 5804 §1.6 / §2.6: names and scripts are UTF-8.
fn text(bytes: &[u8]) -> Result<String, Vec<u8>> {
    String::from_utf8(bytes.to_vec()).map_err(|_| no(None, "Not UTF-8"))
}

/// Compiles on the blocking pool (cost grows with the script); the error names the line
/// (RFC 5804 §2.6: "the human-readable text ... should describe the problem").
async fn check(content: &str) -> Result<(), Vec<u8>> {
    if content.len() > storage::MAX_SIEVE_SCRIPT_BYTES {
        return Err(no(Some(Code::QuotaMaxSize), "Script too large"));
    }
    let content = content.to_owned();
    match tokio::task::spawn_blocking(move || filter::compile(&content).map(drop)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(no(None, &error.to_string())),
        Err(_) => Err(no(Some(Code::TryLater), "Try again later")),
    }
}

/// Counts the failure and answers after the throttle's delay.
async fn auth_failed(attempt: AuthAttempt) -> Vec<u8> {
    tokio::time::sleep(attempt.failed()).await;
    no(None, "Authentication failed")
}

fn store_error(error: StoreError) -> Vec<u8> {
    match error {
        StoreError::NotFound { .. } => no(Some(Code::Nonexistent), "No such script"),
        StoreError::SieveScriptActive => no(Some(Code::Active), "The script is active"),
        StoreError::AlreadyExists(_) => {
            no(Some(Code::AlreadyExists), "A script of that name exists")
        }
        StoreError::OverQuota => no(
            Some(Code::QuotaMaxScripts),
            "Too many scripts or script too large",
        ),
        StoreError::Invalid { .. } => no(None, "Invalid script name"),
        error => {
            tracing::warn!(%error, "ManageSieve command failed");
            no(Some(Code::TryLater), "Try again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_text_never_reaches_the_client() {
        let internal = "row 17 of /var/lib/letterbox/mail.db";
        for error in [
            StoreError::NotFound {
                what: "sieve script",
                key: internal.into(),
            },
            StoreError::AlreadyExists(internal.into()),
            StoreError::Invalid {
                what: "script name",
                reason: internal.into(),
            },
            StoreError::Corrupt(internal.into()),
            StoreError::CommitFailed(internal.into()),
        ] {
            let reply = String::from_utf8(store_error(error)).expect("UTF-8");
            assert!(!reply.contains(internal), "{reply:?}");
            assert!(reply.starts_with("NO"), "{reply:?}");
        }
    }
}
