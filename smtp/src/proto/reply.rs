//! SMTP replies: the basic code (RFC 5321 §4.2), the enhanced status code (RFC 3463,
//! announced by ENHANCEDSTATUSCODES, RFC 2034) and the text, formatted on the wire.
//!
//! Every reply the server sends is built from one of the named [`ReplyCode`]s below, so
//! that a code and its enhanced status always travel together.

use std::borrow::Cow;
use std::fmt;

/// RFC 3463 §2: `class "." subject "." detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedStatus {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A basic reply code with the enhanced status code that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyCode {
    pub basic: u16,
    /// `None` only where RFC 2034 §3 leaves it out: the greeting, the answer to
    /// HELO/EHLO, and the 3xx intermediate replies (354, and 334 whose text must be
    /// pure base64, RFC 4954 §4).
    pub enhanced: Option<EnhancedStatus>,
}

impl ReplyCode {
    const fn plain(basic: u16) -> ReplyCode {
        ReplyCode {
            basic,
            enhanced: None,
        }
    }

    const fn new(basic: u16, class: u8, subject: u16, detail: u16) -> ReplyCode {
        ReplyCode {
            basic,
            enhanced: Some(EnhancedStatus {
                class,
                subject,
                detail,
            }),
        }
    }
}

// ---- 2xx: positive completion ----

/// RFC 5321 §4.2.3 `214` help message.
pub const HELP: ReplyCode = ReplyCode::new(214, 2, 0, 0);
/// RFC 5321 §4.2.3 `220` service ready (greeting; no enhanced code, RFC 2034 §3).
pub const SERVICE_READY: ReplyCode = ReplyCode::plain(220);
/// RFC 3207 §4 `220 2.0.0` ready to start TLS.
pub const READY_TO_START_TLS: ReplyCode = ReplyCode::new(220, 2, 0, 0);
/// RFC 5321 §4.2.3 `221` closing the transmission channel.
pub const CLOSING: ReplyCode = ReplyCode::new(221, 2, 0, 0);
/// RFC 4954 §6 `235 2.7.0` authentication succeeded.
pub const AUTH_SUCCEEDED: ReplyCode = ReplyCode::new(235, 2, 7, 0);
/// RFC 5321 §4.2.3 `250` for HELO/EHLO (no enhanced code, RFC 2034 §3).
pub const HELLO: ReplyCode = ReplyCode::plain(250);
/// `250 2.0.0` requested action completed (RSET, NOOP, BDAT chunk, message accepted).
pub const OK: ReplyCode = ReplyCode::new(250, 2, 0, 0);
/// `250 2.1.0` RFC 3463 §3.2 originator address valid.
pub const SENDER_OK: ReplyCode = ReplyCode::new(250, 2, 1, 0);
/// `250 2.1.5` RFC 3463 §3.2 destination address valid.
pub const RECIPIENT_OK: ReplyCode = ReplyCode::new(250, 2, 1, 5);
/// RFC 5321 §3.5.3 `252 2.5.0` cannot VRFY, but will accept the message.
pub const CANNOT_VERIFY: ReplyCode = ReplyCode::new(252, 2, 5, 0);

// ---- 3xx: intermediate ----

/// RFC 4954 §4 `334` server challenge (base64 text only).
pub const AUTH_CHALLENGE: ReplyCode = ReplyCode::plain(334);
/// RFC 5321 §4.2.3 `354` start mail input.
pub const START_MAIL_INPUT: ReplyCode = ReplyCode::plain(354);

// ---- 4xx: transient negative ----
/// RFC 3463 §3.3 X.2.2 mailbox full, temporary so the sender retries once the
/// owner has made room (RFC 5321 §4.2.2 code 452).
pub const MAILBOX_FULL_TEMPORARY: ReplyCode = ReplyCode::new(452, 4, 2, 2);

/// `421 4.3.2` RFC 3463 §3.4 system not accepting messages: shutting down.
pub const SHUTTING_DOWN: ReplyCode = ReplyCode::new(421, 4, 3, 2);
/// `421 4.4.2` RFC 3463 §3.5 bad connection: the client went quiet too long.
pub const TIMEOUT: ReplyCode = ReplyCode::new(421, 4, 4, 2);
/// `421 4.7.0` too many connections, errors or failed logins: closing.
pub const POLICY_CLOSE: ReplyCode = ReplyCode::new(421, 4, 7, 0);
/// `451 4.3.0` RFC 5321 §4.2.3 local error in processing (storage failed).
pub const LOCAL_ERROR: ReplyCode = ReplyCode::new(451, 4, 3, 0);
/// `452 4.3.1` RFC 5321 §4.2.2 insufficient system storage; RFC 3463 §3.4 X.3.1 mail
/// system full: the content did not fit in the server's byte budget for DATA and BDAT.
pub const INSUFFICIENT_STORAGE: ReplyCode = ReplyCode::new(452, 4, 3, 1);
/// `452 4.5.3` RFC 5321 §4.5.3.1.10 too many recipients.
pub const TOO_MANY_RECIPIENTS: ReplyCode = ReplyCode::new(452, 4, 5, 3);
/// `454 4.7.0` RFC 4954 §6 temporary authentication failure.
pub const TEMPORARY_AUTH_FAILURE: ReplyCode = ReplyCode::new(454, 4, 7, 0);
/// `454 4.7.0` RFC 3207 §4: "TLS not available due to temporary reason" (the same code
/// as [`TEMPORARY_AUTH_FAILURE`], named for what it says here).
pub const TLS_NOT_AVAILABLE: ReplyCode = ReplyCode::new(454, 4, 7, 0);

// ---- 5xx: permanent negative ----

/// `500 5.5.2` RFC 5321 §4.2.3 syntax error, command unrecognized (also: line too long).
pub const UNRECOGNIZED: ReplyCode = ReplyCode::new(500, 5, 5, 2);
/// `500 5.5.6` RFC 4954 §4 authentication exchange line too long.
pub const AUTH_LINE_TOO_LONG: ReplyCode = ReplyCode::new(500, 5, 5, 6);
/// `501 5.5.4` RFC 5321 §4.2.3 syntax error in parameters or arguments.
pub const BAD_ARGUMENTS: ReplyCode = ReplyCode::new(501, 5, 5, 4);
/// `501 5.5.2` RFC 4954 §4 cannot decode the base64 of a SASL response.
pub const CANNOT_DECODE: ReplyCode = ReplyCode::new(501, 5, 5, 2);
/// `501 5.7.0` RFC 4954 §4 the client cancelled the exchange with `*`.
pub const AUTH_CANCELLED: ReplyCode = ReplyCode::new(501, 5, 7, 0);
/// `501 5.1.7` RFC 3463 §3.2 bad sender mailbox address syntax.
pub const BAD_SENDER_SYNTAX: ReplyCode = ReplyCode::new(501, 5, 1, 7);
/// `501 5.1.3` RFC 3463 §3.2 bad destination mailbox address syntax.
pub const BAD_RECIPIENT_SYNTAX: ReplyCode = ReplyCode::new(501, 5, 1, 3);
/// `502 5.5.1` RFC 5321 §4.2.3 command not implemented.
pub const NOT_IMPLEMENTED: ReplyCode = ReplyCode::new(502, 5, 5, 1);
/// `503 5.5.1` RFC 5321 §4.2.3 bad sequence of commands.
pub const BAD_SEQUENCE: ReplyCode = ReplyCode::new(503, 5, 5, 1);
/// `504 5.5.4` RFC 4954 §4 unrecognized authentication mechanism.
pub const UNKNOWN_MECHANISM: ReplyCode = ReplyCode::new(504, 5, 5, 4);
/// `530 5.7.0` RFC 4954 §6 authentication required; RFC 3207 §4 STARTTLS first.
pub const AUTH_REQUIRED: ReplyCode = ReplyCode::new(530, 5, 7, 0);
/// `535 5.7.8` RFC 4954 §6 authentication credentials invalid.
pub const AUTH_INVALID: ReplyCode = ReplyCode::new(535, 5, 7, 8);
/// `550 5.1.1` RFC 3463 §3.2 bad destination mailbox address: no such user.
pub const USER_UNKNOWN: ReplyCode = ReplyCode::new(550, 5, 1, 1);
/// `550 5.7.1` RFC 7489 §6.6.2 / §10.3: the message fails DMARC and its domain asks for
/// rejection (RFC 3463 §3.8: delivery not authorized, message refused).
pub const DMARC_REJECTED: ReplyCode = ReplyCode::new(550, 5, 7, 1);
/// `550 5.7.1` a message the recipient's Sieve script rejects (RFC 5429 §2.1.1: reject
/// at SMTP time; RFC 3463 X.7.1 delivery not authorized, message refused).
pub const SIEVE_REJECTED: ReplyCode = ReplyCode::new(550, 5, 7, 1);
/// `550 5.7.1` a submitted message whose `From:` or `Sender:` names an address the
/// authenticated user may not send as (RFC 6409 §6.1 enforces submission rights; RFC 3463
/// §3.8 X.7.1 delivery not authorized, message refused).
pub const FROM_NOT_OWNED: ReplyCode = ReplyCode::new(550, 5, 7, 1);
/// `550 5.6.0` a submitted message without exactly one readable `From:` field, or with a
/// `Sender:` that is not one address (RFC 5322 §3.6, §3.6.2; RFC 3463 §3.7 X.6.0 other
/// media error: the content itself is not acceptable).
pub const MALFORMED_ORIGINATOR: ReplyCode = ReplyCode::new(550, 5, 6, 0);
/// `552 5.2.2` RFC 3463 §3.3 mailbox full.
pub const MAILBOX_FULL: ReplyCode = ReplyCode::new(552, 5, 2, 2);
/// `552 5.3.4` RFC 1870 §6 message size exceeds fixed maximum.
pub const MESSAGE_TOO_BIG: ReplyCode = ReplyCode::new(552, 5, 3, 4);
/// `553 5.7.1` sender address not owned by the authenticated user.
pub const SENDER_NOT_OWNED: ReplyCode = ReplyCode::new(553, 5, 7, 1);
/// `553 5.6.7` RFC 6531 §3.5 non-ASCII address without SMTPUTF8.
pub const NON_ASCII_ADDRESS: ReplyCode = ReplyCode::new(553, 5, 6, 7);
/// `554 5.7.1` RFC 3463 §3.8 delivery not authorized: relay access denied.
pub const RELAY_DENIED: ReplyCode = ReplyCode::new(554, 5, 7, 1);
/// `555 5.5.4` RFC 5321 §4.1.1.11 MAIL/RCPT parameter not recognized or not implemented.
pub const UNSUPPORTED_PARAMETER: ReplyCode = ReplyCode::new(555, 5, 5, 4);

/// One reply, possibly multi-line (RFC 5321 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: ReplyCode,
    lines: Vec<Cow<'static, str>>,
}

impl Reply {
    pub fn new(code: ReplyCode, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply; an empty `lines` gives one empty line.
    pub fn multiline(code: ReplyCode, lines: Vec<Cow<'static, str>>) -> Reply {
        let lines = if lines.is_empty() {
            vec![Cow::Borrowed("")]
        } else {
            lines
        };
        Reply { code, lines }
    }

    pub fn basic(&self) -> u16 {
        self.code.basic
    }

    /// RFC 5321 §3.8: a 421 reply means the server closes the channel after sending it.
    pub fn closes_connection(&self) -> bool {
        self.code.basic == 421 || self.code.basic == 221
    }

    pub fn is_positive(&self) -> bool {
        self.code.basic < 400
    }

    /// The wire form: `code-text` for every line but the last, `code text` for the
    /// last, each ending in CRLF; the enhanced code starts each line's text (RFC 2034
    /// §3). CR and LF inside a text are replaced so that a reply can never be split.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            let head = match self.code.enhanced {
                Some(status) => format!("{}{separator}{status} ", self.code.basic),
                None => format!("{}{separator}", self.code.basic),
            };
            out.extend_from_slice(head.as_bytes());
            out.extend(
                line.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies as they go on the wire (RFC 5321 §4.2, RFC 2034 §4).
    #[test]
    fn replies_on_the_wire() {
        let cases: [(Reply, &[u8]); 6] = [
            // One line, with the enhanced code.
            (
                Reply::new(RECIPIENT_OK, "Recipient OK"),
                b"250 2.1.5 Recipient OK\r\n",
            ),
            // The greeting has no enhanced code.
            (
                Reply::new(SERVICE_READY, "mx.example ESMTP"),
                b"220 mx.example ESMTP\r\n",
            ),
            // Multi-line: a dash after the code, a space on the last line.
            (
                Reply::multiline(
                    HELLO,
                    vec!["mx.example".into(), "PIPELINING".into(), "8BITMIME".into()],
                ),
                b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            ),
            (
                Reply::multiline(HELP, vec!["a".into(), "b".into()]),
                b"214-2.0.0 a\r\n214 2.0.0 b\r\n",
            ),
            // Line breaks in the text cannot split a reply.
            (
                Reply::new(BAD_ARGUMENTS, "a\r\n250 fake"),
                b"501 5.5.4 a  250 fake\r\n",
            ),
            // An empty multi-line reply is one line.
            (Reply::multiline(AUTH_CHALLENGE, Vec::new()), b"334 \r\n"),
        ];
        for (reply, wire) in cases {
            assert_eq!(reply.to_bytes(), wire, "{reply:?}");
        }
    }

    #[test]
    fn closing_codes() {
        assert!(Reply::new(SHUTTING_DOWN, "x").closes_connection());
        assert!(Reply::new(CLOSING, "x").closes_connection());
        assert!(!Reply::new(LOCAL_ERROR, "x").closes_connection());
    }
}
