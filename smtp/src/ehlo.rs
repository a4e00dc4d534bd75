//! HELO and EHLO (RFC 5321 §4.1.1.1) and the extensions EHLO announces.

use crate::proto::Reply;
use crate::proto::reply::HELLO;
use crate::session::{Helo, Session, State};
use std::borrow::Cow;

impl Session {
    /// EHLO: greets, resets any transaction (RFC 5321 §4.1.4) and lists the extensions.
    /// No enhanced status code on this reply (RFC 2034 §3): clients parse the keywords.
    pub(crate) fn ehlo(&mut self, host: String) -> Reply {
        self.greeted(host, true);
        Reply::multiline(HELLO, self.extensions())
    }

    /// HELO: greets without extensions (RFC 5321 §4.1.1.1).
    pub(crate) fn helo(&mut self, host: String) -> Reply {
        self.greeted(host, false);
        Reply::new(HELLO, self.config.hostname.clone())
    }

    fn greeted(&mut self, host: String, extended: bool) {
        self.state = State::Ready;
        self.helo = Some(Helo {
            name: host,
            extended,
        });
    }

    /// The EHLO lines: our name, then one keyword per line.
    pub(crate) fn extensions(&self) -> Vec<Cow<'static, str>> {
        let mut lines: Vec<Cow<'static, str>> = vec![
            self.config.hostname.clone().into(),
            // RFC 2920
            "PIPELINING".into(),
            // RFC 1870 §4: the fixed maximum message size we accept.
            format!("SIZE {}", self.config.max_message_size).into(),
            // RFC 6152: 8-bit content is kept byte for byte.
            "8BITMIME".into(),
            // RFC 6531
            "SMTPUTF8".into(),
            // RFC 2034
            "ENHANCEDSTATUSCODES".into(),
            // RFC 3030
            "CHUNKING".into(),
            // RFC 3461
            "DSN".into(),
        ];
        if self.starttls_offered() {
            // RFC 3207
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            // RFC 4954
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines
    }
}
