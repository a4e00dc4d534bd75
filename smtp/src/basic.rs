//! The commands that change nothing or only reset: RSET, NOOP, HELP, VRFY, EXPN
//! (RFC 5321 §4.1.1.5 to §4.1.1.9). QUIT is answered in the dispatch itself.

use crate::proto::Reply;
use crate::proto::reply::{CANNOT_VERIFY, HELP, NOT_IMPLEMENTED, OK};
use crate::session::Session;

impl Session {
    /// RFC 5321 §4.1.1.5: aborts the transaction; HELO, TLS and AUTH stay.
    pub(crate) fn rset(&mut self) -> Reply {
        self.reset_transaction();
        Reply::new(OK, "Reset OK")
    }

    pub(crate) fn noop(&mut self) -> Reply {
        Reply::new(OK, "OK")
    }

    pub(crate) fn help(&mut self) -> Reply {
        Reply::multiline(
            HELP,
            vec![
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY".into(),
                "AUTH STARTTLS; see RFC 5321".into(),
            ],
        )
    }

    /// RFC 5321 §3.5.3: we do not confirm addresses (that would help harvesters), but
    /// say that we will try.
    pub(crate) fn vrfy(&mut self) -> Reply {
        Reply::new(
            CANNOT_VERIFY,
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }

    /// RFC 5321 §3.5.2: expanding lists is not offered.
    pub(crate) fn expn(&mut self) -> Reply {
        Reply::new(NOT_IMPLEMENTED, "EXPN not available")
    }
}
