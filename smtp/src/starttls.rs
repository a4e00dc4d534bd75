//! STARTTLS (RFC 3207). The gate has already checked that it is offered (a certificate,
//! a plain stream) and that no transaction is open.

use crate::proto::Reply;
use crate::proto::reply::READY_TO_START_TLS;
use crate::session::{Action, Session, State};

impl Session {
    pub(crate) fn starttls(&mut self) -> Action {
        // The driver sends this, then throws away whatever the client pipelined after
        // STARTTLS (RFC 3207 §4.2, CVE-2011-0411) before the handshake.
        Action::StartTls(Reply::new(READY_TO_START_TLS, "Ready to start TLS"))
    }

    /// RFC 3207 §4.2: after the handshake the server discards all knowledge obtained from
    /// the client: back to before EHLO.
    pub(crate) fn tls_started(&mut self) {
        self.tls = true;
        self.state = State::Connected;
        self.helo = None;
        self.auth = None;
        tracing::debug!("TLS started");
    }
}
