//! Not-authenticated state (RFC 9051 §6.2): LOGIN and AUTHENTICATE with SASL-IR
//! (RFC 4959). STARTTLS takes no arguments and stays in the dispatch table.

use super::{PResult, Parser, err};
use crate::proto::command::{CommandBody, SaslResponse};
use storage::Secret;

impl Parser<'_> {
    /// `login = "LOGIN" SP userid SP password`
    pub(super) fn login(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let user = self.astring_utf8()?;
        self.sp()?;
        let password = self.astring_utf8()?;
        Ok(CommandBody::Login {
            user,
            password: Secret::new(password),
        })
    }

    /// `authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp]`;
    /// `initial-resp = (base64 / "=")` (RFC 4959)
    pub(super) fn authenticate(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let mechanism = self.atom()?.to_ascii_uppercase();
        let initial = if self.eat(b' ') {
            let bytes = self
                .take_while(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
            if bytes.is_empty() {
                return err("Expected an initial response");
            }
            Some(SaslResponse(bytes.to_vec()))
        } else {
            None
        };
        Ok(CommandBody::Authenticate { mechanism, initial })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::CommandBody;
    use crate::proto::parse::tests::parse;

    #[test]
    fn parses_login_and_authenticate() {
        match parse("a LOGIN {4}\r\nuser \"p\\\"w\"\r\n") {
            CommandBody::Login { user, password } => {
                assert_eq!(user, "user");
                assert_eq!(password.expose(), "p\"w");
            }
            other => panic!("{other:?}"),
        }
        match parse("a AUTHENTICATE plain AGEAYg==\r\n") {
            CommandBody::Authenticate { mechanism, initial } => {
                assert_eq!(mechanism, "PLAIN");
                assert_eq!(initial.map(|i| i.0).as_deref(), Some(&b"AGEAYg=="[..]));
            }
            other => panic!("{other:?}"),
        }
    }
}
