//! Commands: one line in, one [`Command`] out. Parsing is `smtp_proto::Request::parse`;
//! this file turns its result into our own types and works around the places where
//! smtp-proto 0.2.5 is wrong or too lenient (each marked `smtp-proto workaround`).

use super::address::canonical_mailbox;
use super::line::trim_line_end;
use super::reply::{
    BAD_ARGUMENTS, BAD_RECIPIENT_SYNTAX, BAD_SENDER_SYNTAX, NOT_IMPLEMENTED, Reply, UNRECOGNIZED,
    UNSUPPORTED_PARAMETER,
};
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, MAIL_BODY_BINARYMIME, MAIL_BY_NOTIFY, MAIL_BY_RETURN, MAIL_BY_TRACE,
    MAIL_CONPERM, MAIL_REQUIRETLS, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, RCPT_CONNEG,
    RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
    RCPT_RRVS_CONTINUE, RCPT_RRVS_REJECT, Request,
};
use std::borrow::Cow;
use thiserror::Error;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// RFC 5321 §4.1.1.1.
    Ehlo {
        host: String,
    },
    Helo {
        host: String,
    },
    /// RFC 5321 §4.1.1.2.
    Mail(MailFrom),
    /// RFC 5321 §4.1.1.3.
    Rcpt(RcptTo),
    /// RFC 5321 §4.1.1.4.
    Data,
    /// RFC 3030 §2: `BDAT chunk-size [LAST]`.
    Bdat {
        size: usize,
        last: bool,
    },
    /// RFC 4954 §4: `AUTH mechanism [initial-response]`.
    Auth {
        mechanism: Mechanism,
        /// `None` when absent; `Some("")` for `=` (an empty initial response).
        initial_response: Option<String>,
    },
    /// RFC 3207 §4.
    StartTls,
    Rset,
    Noop,
    Help,
    Vrfy,
    Expn,
    Quit,
    /// Commands smtp-proto knows that we do not offer (ETRN, ATRN, BURL, LHLO).
    NotImplemented(&'static str),
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ehlo { .. } => "EHLO",
            Command::Helo { .. } => "HELO",
            Command::Mail(_) => "MAIL",
            Command::Rcpt(_) => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Auth { .. } => "AUTH",
            Command::StartTls => "STARTTLS",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Help => "HELP",
            Command::Vrfy => "VRFY",
            Command::Expn => "EXPN",
            Command::Quit => "QUIT",
            Command::NotImplemented(name) => name,
        }
    }
}

/// SASL mechanisms (RFC 4954 §4); we implement PLAIN (RFC 4616) and LOGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    Other,
}

/// RFC 3461 §4.3 RET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Headers,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Headers => "HDRS",
        }
    }
}

/// `MAIL FROM:<reverse-path> [parameters]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// Empty for the null reverse-path `<>`.
    pub address: String,
    /// RFC 1870 §3 SIZE, when declared.
    pub size: Option<usize>,
    /// RFC 6531 §3.4 SMTPUTF8.
    pub smtputf8: bool,
    /// RFC 3461 §4.3 RET.
    pub ret: Option<Ret>,
    /// RFC 3461 §4.4 ENVID, decoded from xtext.
    pub envid: Option<String>,
}

/// The forward-path of RCPT (RFC 5321 §4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain, which every server must accept (RFC 5321 §4.5.1).
    Postmaster,
    Mailbox(String),
}

/// `RCPT TO:<forward-path> [parameters]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    pub path: ForwardPath,
    /// RFC 3461 §4.1 NOTIFY values, e.g. `["FAILURE", "DELAY"]`; empty when absent.
    pub notify: Vec<&'static str>,
    /// RFC 3461 §4.2 ORCPT address (type `rfc822`), decoded from xtext.
    pub orcpt: Option<String>,
}

/// Why a line is not a command we can act on; each maps to one reply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error("command unrecognized")]
    Unknown,
    #[error("syntax: {0}")]
    Syntax(&'static str),
    #[error("{0} takes no arguments")]
    NoArguments(&'static str),
    #[error("bad sender address syntax")]
    BadSender,
    #[error("bad recipient address syntax")]
    BadRecipient,
    #[error("invalid {0} parameter")]
    InvalidParameter(&'static str),
    #[error("unsupported parameter {0}")]
    UnsupportedParameter(String),
    #[error("{0} not implemented")]
    NotImplemented(&'static str),
}

/// Longest parameter name echoed back in a 555 reply.
const MAX_ECHOED_PARAMETER: usize = 32;

impl CommandError {
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unknown => Reply::new(UNRECOGNIZED, "Command unrecognized"),
            CommandError::Syntax(syntax) => Reply::new(BAD_ARGUMENTS, format!("Syntax: {syntax}")),
            CommandError::NoArguments(command) => {
                Reply::new(BAD_ARGUMENTS, format!("{command} takes no arguments"))
            }
            CommandError::BadSender => Reply::new(BAD_SENDER_SYNTAX, "Bad sender address syntax"),
            CommandError::BadRecipient => {
                Reply::new(BAD_RECIPIENT_SYNTAX, "Bad recipient address syntax")
            }
            CommandError::InvalidParameter(param) => {
                Reply::new(BAD_ARGUMENTS, format!("Invalid {param} parameter"))
            }
            CommandError::UnsupportedParameter(param) => {
                let param: String = param.chars().take(MAX_ECHOED_PARAMETER).collect();
                Reply::new(
                    UNSUPPORTED_PARAMETER,
                    format!("Unsupported parameter {param}"),
                )
            }
            CommandError::NotImplemented(command) => {
                Reply::new(NOT_IMPLEMENTED, format!("{command} not implemented"))
            }
        }
    }
}

/// True when the line starts with the AUTH verb: only AUTH lines may be longer than
/// the command-line limit (RFC 4954 §4).
pub fn is_auth_line(line: &[u8]) -> bool {
    line.get(..5).is_some_and(|head| {
        head.eq_ignore_ascii_case(b"AUTH ") || head.eq_ignore_ascii_case(b"AUTH\t")
    })
}

/// Parses one command line (with or without its CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let owned;
    let line = if line.ends_with(b"\n") {
        line
    } else {
        owned = [line, b"\r\n"].concat();
        &owned
    };
    let request = Request::parse(&mut line.iter()).map_err(|error| from_proto(error, line))?;
    Ok(match request {
        Request::Ehlo { host } => Command::Ehlo {
            host: host.into_owned(),
        },
        Request::Helo { host } => Command::Helo {
            host: host.into_owned(),
        },
        Request::Mail { from } => Command::Mail(mail_from(from, line)?),
        Request::Rcpt { to } => Command::Rcpt(rcpt_to(to, line)?),
        Request::Data => no_arguments(Command::Data, line)?,
        Request::Bdat {
            chunk_size,
            is_last,
        } => Command::Bdat {
            size: bdat_size(chunk_size, line)?,
            last: is_last,
        },
        Request::Auth {
            mechanism,
            initial_response,
        } => Command::Auth {
            mechanism: match mechanism {
                AUTH_PLAIN => Mechanism::Plain,
                AUTH_LOGIN => Mechanism::Login,
                _ => Mechanism::Other,
            },
            initial_response: match initial_response.as_ref() {
                "" => None,
                "=" => Some(String::new()),
                _ => Some(initial_response.into_owned()),
            },
        },
        Request::StartTls => no_arguments(Command::StartTls, line)?,
        Request::Rset => no_arguments(Command::Rset, line)?,
        Request::Quit => no_arguments(Command::Quit, line)?,
        Request::Noop { .. } => Command::Noop,
        Request::Help { .. } => Command::Help,
        Request::Vrfy { .. } => Command::Vrfy,
        Request::Expn { .. } => Command::Expn,
        Request::Lhlo { .. } => Command::NotImplemented("LHLO"),
        Request::Etrn { .. } => Command::NotImplemented("ETRN"),
        Request::Atrn { .. } => Command::NotImplemented("ATRN"),
        Request::Burl { .. } => Command::NotImplemented("BURL"),
    })
}

fn from_proto(error: smtp_proto::Error, line: &[u8]) -> CommandError {
    match error {
        smtp_proto::Error::UnknownCommand => CommandError::Unknown,
        smtp_proto::Error::InvalidSenderAddress => CommandError::BadSender,
        smtp_proto::Error::InvalidRecipientAddress => CommandError::BadRecipient,
        smtp_proto::Error::SyntaxError { syntax } => CommandError::Syntax(syntax),
        smtp_proto::Error::InvalidParameter { param } => CommandError::InvalidParameter(param),
        smtp_proto::Error::UnsupportedParameter { param } => {
            CommandError::UnsupportedParameter(param)
        }
        // A whole line never needs more data; the response errors are for clients.
        smtp_proto::Error::NeedsMoreData { .. }
        | smtp_proto::Error::ResponseTooLong
        | smtp_proto::Error::InvalidResponse { .. } => {
            if verb(line).is_empty() {
                CommandError::Unknown
            } else {
                CommandError::Syntax("command incomplete")
            }
        }
    }
}

/// The words of the line without its CRLF.
fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    trim_line_end(line)
        .split(|b| b.is_ascii_whitespace())
        .filter(|word| !word.is_empty())
}

fn verb(line: &[u8]) -> &[u8] {
    words(line).next().unwrap_or_default()
}

/// smtp-proto workaround: it accepts and ignores arguments after DATA, RSET, QUIT and
/// STARTTLS. RFC 5321 §4.1.1.4/.5/.10 give them none and RFC 3207 §4 answers STARTTLS
/// with parameters with 501.
fn no_arguments(command: Command, line: &[u8]) -> Result<Command, CommandError> {
    if words(line).nth(1).is_some() {
        return Err(CommandError::NoArguments(command.name()));
    }
    Ok(command)
}

/// smtp-proto workaround: its number parser saturates and then restarts from the next
/// digit, so `BDAT 99999999999999999999999` reads as 999 (and `SIZE=` likewise). We
/// parse the number again and refuse one that does not fit.
fn exact_number(word: &[u8]) -> Option<usize> {
    if word.is_empty() || !word.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(word).ok()?.parse().ok()
}

fn bdat_size(parsed: usize, line: &[u8]) -> Result<usize, CommandError> {
    match words(line).nth(1).and_then(exact_number) {
        Some(size) if size == parsed => Ok(size),
        _ => Err(CommandError::Syntax("BDAT chunk-size [LAST]")),
    }
}

/// The text between the first `<` and the next `>` of the line.
fn raw_path(line: &[u8]) -> Option<&[u8]> {
    let open = line.iter().position(|&b| b == b'<')?;
    let rest = line.get(open + 1..)?;
    let close = rest.iter().position(|&b| b == b'>')?;
    rest.get(..close)
}

fn mail_from(
    from: smtp_proto::MailFrom<Cow<'_, str>>,
    line: &[u8],
) -> Result<MailFrom, CommandError> {
    // smtp-proto workaround: invalid UTF-8 in an address is replaced by U+FFFD, not
    // refused; an address must be ASCII or UTF-8 (RFC 6531 §3.3).
    if std::str::from_utf8(line).is_err() {
        return Err(CommandError::BadSender);
    }
    // smtp-proto workaround: `<Postmaster>` comes out as the empty address, the same as
    // `<>`. A reverse-path needs a domain (RFC 5321 §4.1.2), so refuse it.
    if from.address.is_empty() && !raw_path(line).is_some_and(|path| path.trim_ascii().is_empty()) {
        return Err(CommandError::BadSender);
    }
    // Parameters of extensions we do not announce (RFC 5321 §4.1.1.11, 555).
    let unsupported = [
        (MAIL_BODY_BINARYMIME, "BODY=BINARYMIME"),
        (MAIL_REQUIRETLS, "REQUIRETLS"),
        (MAIL_CONPERM, "CONPERM"),
        (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE, "BY"),
    ];
    for (flag, name) in unsupported {
        if from.flags & flag != 0 {
            return Err(CommandError::UnsupportedParameter(name.to_owned()));
        }
    }
    let others = [
        (from.hold_for != 0 || from.hold_until != 0, "HOLDFOR"),
        (from.mtrk.is_some(), "MTRK"),
        (from.trans_id.is_some(), "TRANSID"),
        (from.solicit.is_some(), "SOLICIT"),
        (from.mt_priority != 0, "MT-PRIORITY"),
    ];
    if let Some((_, name)) = others.into_iter().find(|(present, _)| *present) {
        return Err(CommandError::UnsupportedParameter(name.to_owned()));
    }
    let mut size = None;
    for word in words(line) {
        if let Some(value) = word
            .get(..5)
            .filter(|key| key.eq_ignore_ascii_case(b"SIZE="))
            .and_then(|_| word.get(5..))
        {
            match exact_number(value) {
                Some(value) => size = Some(value),
                None => return Err(CommandError::InvalidParameter("SIZE")),
            }
        }
    }
    let ret = if from.flags & MAIL_RET_FULL != 0 {
        Some(Ret::Full)
    } else if from.flags & MAIL_RET_HDRS != 0 {
        Some(Ret::Headers)
    } else {
        None
    };
    // RFC 4954 §5: the AUTH= parameter is accepted and ignored (we trust only our own
    // authentication).
    Ok(MailFrom {
        address: canonical_mailbox(&from.address),
        size,
        smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
        ret,
        envid: from.env_id.map(Cow::into_owned),
    })
}

fn rcpt_to(to: smtp_proto::RcptTo<Cow<'_, str>>, line: &[u8]) -> Result<RcptTo, CommandError> {
    if std::str::from_utf8(line).is_err() {
        return Err(CommandError::BadRecipient);
    }
    let path = if to.address.is_empty() {
        // smtp-proto workaround: `<Postmaster>` and `<>` both come out empty; only the
        // first is a forward-path (RFC 5321 §4.1.1.3).
        match raw_path(line) {
            Some(path) if path.trim_ascii().eq_ignore_ascii_case(b"postmaster") => {
                ForwardPath::Postmaster
            }
            _ => return Err(CommandError::BadRecipient),
        }
    } else {
        ForwardPath::Mailbox(canonical_mailbox(&to.address))
    };
    if to.flags & RCPT_CONNEG != 0 {
        return Err(CommandError::UnsupportedParameter("CONNEG".to_owned()));
    }
    if to.flags & (RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0 {
        return Err(CommandError::UnsupportedParameter("RRVS".to_owned()));
    }
    let mut notify = Vec::new();
    if to.flags & RCPT_NOTIFY_NEVER != 0 {
        // RFC 3461 §4.1: NEVER stands alone. smtp-proto workaround: it refuses
        // `SUCCESS,NEVER` but accepts `NEVER,SUCCESS`.
        if to.flags & (RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY) != 0 {
            return Err(CommandError::InvalidParameter("NOTIFY"));
        }
        notify.push("NEVER");
    }
    for (flag, name) in [
        (RCPT_NOTIFY_SUCCESS, "SUCCESS"),
        (RCPT_NOTIFY_FAILURE, "FAILURE"),
        (RCPT_NOTIFY_DELAY, "DELAY"),
    ] {
        if to.flags & flag != 0 {
            notify.push(name);
        }
    }
    Ok(RcptTo {
        path,
        notify,
        orcpt: to.orcpt.map(Cow::into_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, CommandError> {
        parse_command(line.as_bytes())
    }

    fn mail(line: &str) -> MailFrom {
        match parse(line) {
            Ok(Command::Mail(from)) => from,
            other => panic!("{line}: {other:?}"),
        }
    }

    /// Each line parses to its command, or fails with its error.
    fn assert_parses(cases: &[(&str, Result<Command, CommandError>)]) {
        for (line, expected) in cases {
            assert_eq!(&parse(line), expected, "{line:?}");
        }
    }

    fn rcpt(line: &str) -> RcptTo {
        match parse(line) {
            Ok(Command::Rcpt(to)) => to,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn simple_commands() {
        let ehlo = Command::Ehlo {
            host: "client.example".into(),
        };
        assert_parses(&[
            ("EHLO client.example\r\n", Ok(ehlo)),
            ("helo x\r\n", Ok(Command::Helo { host: "x".into() })),
            ("DATA\r\n", Ok(Command::Data)),
            ("rset\n", Ok(Command::Rset)),
            ("NOOP hello\r\n", Ok(Command::Noop)),
            ("QUIT", Ok(Command::Quit)),
            ("VRFY someone\r\n", Ok(Command::Vrfy)),
            ("HELP\r\n", Ok(Command::Help)),
            ("STARTTLS\r\n", Ok(Command::StartTls)),
            ("ETRN x\r\n", Ok(Command::NotImplemented("ETRN"))),
        ]);
    }

    #[test]
    fn unknown_and_bad_syntax() {
        let mail_syntax = "MAIL FROM:<reverse-path> [parameters]";
        let unsupported = CommandError::UnsupportedParameter("FOO=1".into());
        assert_parses(&[
            ("FOO\r\n", Err(CommandError::Unknown)),
            ("\r\n", Err(CommandError::Unknown)),
            ("EHLO\r\n", Err(CommandError::Syntax("EHLO domain"))),
            ("MAIL FROM:a@b\r\n", Err(CommandError::Syntax(mail_syntax))),
            ("RCPT TO:<a@@b>\r\n", Err(CommandError::BadRecipient)),
            ("MAIL FROM:<a@b> FOO=1\r\n", Err(unsupported)),
        ]);
    }

    #[test]
    fn commands_without_arguments_refuse_them() {
        assert_parses(&[
            ("DATA now\r\n", Err(CommandError::NoArguments("DATA"))),
            ("STARTTLS x\r\n", Err(CommandError::NoArguments("STARTTLS"))),
            ("QUIT  \r\n", Ok(Command::Quit)),
        ]);
    }

    #[test]
    fn mail_parameters() {
        let from = mail(
            "MAIL FROM:<a@example.com> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1\r\n",
        );
        assert_eq!(
            from,
            MailFrom {
                address: "a@example.com".into(),
                size: Some(1000),
                smtputf8: true,
                ret: Some(Ret::Headers),
                envid: Some("QQ+1".into()),
            }
        );
        assert_eq!(mail("MAIL FROM:<>\r\n").address, "");
        assert_eq!(mail("MAIL FROM:<a@b> AUTH=<>\r\n").address, "a@b");
    }

    #[test]
    fn size_that_overflows_is_refused_not_wrapped() {
        assert_parses(&[
            (
                "MAIL FROM:<a@b> SIZE=99999999999999999999999\r\n",
                Err(CommandError::InvalidParameter("SIZE")),
            ),
            (
                "BDAT 99999999999999999999999 LAST\r\n",
                Err(CommandError::Syntax("BDAT chunk-size [LAST]")),
            ),
            (
                "BDAT 10 LAST\r\n",
                Ok(Command::Bdat {
                    size: 10,
                    last: true,
                }),
            ),
            (
                "BDAT 0\r\n",
                Ok(Command::Bdat {
                    size: 0,
                    last: false,
                }),
            ),
        ]);
    }

    #[test]
    fn unannounced_extensions_are_refused() {
        assert!(matches!(
            parse("MAIL FROM:<a@b> REQUIRETLS\r\n"),
            Err(CommandError::UnsupportedParameter(_))
        ));
        assert!(matches!(
            parse("MAIL FROM:<a@b> BODY=BINARYMIME\r\n"),
            Err(CommandError::UnsupportedParameter(_))
        ));
        assert!(matches!(
            parse("MAIL FROM:<a@b> HOLDFOR=10\r\n"),
            Err(CommandError::UnsupportedParameter(_))
        ));
    }

    #[test]
    fn postmaster_is_not_the_null_path() {
        assert_eq!(
            rcpt("RCPT TO:<Postmaster>\r\n").path,
            ForwardPath::Postmaster
        );
        assert_eq!(parse("RCPT TO:<>\r\n"), Err(CommandError::BadRecipient));
        assert_eq!(
            parse("MAIL FROM:<postmaster>\r\n"),
            Err(CommandError::BadSender)
        );
        assert_eq!(
            rcpt("RCPT TO:<postmaster@example.com>\r\n").path,
            ForwardPath::Mailbox("postmaster@example.com".into())
        );
    }

    #[test]
    fn quoted_local_part_keeps_its_quotes() {
        assert_eq!(
            rcpt("RCPT TO:<\"john doe\"@example.com>\r\n").path,
            ForwardPath::Mailbox("\"john doe\"@example.com".into())
        );
    }

    #[test]
    fn invalid_utf8_address_is_refused() {
        assert_eq!(
            parse_command(b"MAIL FROM:<a\xff@b>\r\n"),
            Err(CommandError::BadSender)
        );
        assert_eq!(
            parse_command(b"RCPT TO:<a\xff@b>\r\n"),
            Err(CommandError::BadRecipient)
        );
    }

    #[test]
    fn dsn_recipient_parameters() {
        let to = rcpt("RCPT TO:<a@b> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a+2Bx@b\r\n");
        assert_eq!(to.notify, ["FAILURE", "DELAY"]);
        assert_eq!(to.orcpt.as_deref(), Some("a+x@b"));
        assert_eq!(rcpt("RCPT TO:<a@b> NOTIFY=NEVER\r\n").notify, ["NEVER"]);
        assert_eq!(
            parse("RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS\r\n"),
            Err(CommandError::InvalidParameter("NOTIFY"))
        );
    }

    #[test]
    fn auth_initial_response() {
        let auth = |mechanism, initial_response: Option<&str>| {
            Ok(Command::Auth {
                mechanism,
                initial_response: initial_response.map(str::to_owned),
            })
        };
        assert_parses(&[
            ("AUTH PLAIN\r\n", auth(Mechanism::Plain, None)),
            ("AUTH PLAIN =\r\n", auth(Mechanism::Plain, Some(""))),
            (
                "auth login dXNlcg==\r\n",
                auth(Mechanism::Login, Some("dXNlcg==")),
            ),
            ("AUTH CRAM-MD5\r\n", auth(Mechanism::Other, None)),
        ]);
        assert!(is_auth_line(b"auth plain xyz"));
        assert!(!is_auth_line(b"AUTHX"));
    }

    #[test]
    fn replies_for_errors() {
        assert_eq!(
            CommandError::Unknown.reply().to_bytes(),
            b"500 5.5.2 Command unrecognized\r\n"
        );
        assert_eq!(CommandError::BadRecipient.reply().basic(), 501);
        assert_eq!(
            CommandError::UnsupportedParameter("X".repeat(100))
                .reply()
                .to_bytes()
                .len(),
            "555 5.5.4 Unsupported parameter ".len() + MAX_ECHOED_PARAMETER + 2
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples: [&[u8]; 8] = [
            b"\0\0\0\r\n",
            b"MAIL FROM:<\r\n",
            b"RCPT TO:<\"\\\r\n",
            b"BDAT\r\n",
            b"AUTH \r\n",
            b"MAIL FROM:<a@b> SIZE=\r\n",
            b"\xff\xfe\xfd\n",
            b"RCPT TO:<@a,@b:c@d> NOTIFY=\r\n",
        ];
        for sample in samples {
            let _ = parse_command(sample);
            for cut in 0..sample.len() {
                let _ = parse_command(sample.get(..cut).unwrap_or_default());
            }
        }
    }
}
