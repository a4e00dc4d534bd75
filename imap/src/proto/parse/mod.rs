//! The command parser. It works on one complete command as framed by
//! [`super::framer`]: literals are inline after their `{n}` CRLF. Each parser carries its
//! ABNF rule (RFC 9051 §9 unless noted). It never panics: every read goes through `get`,
//! and recursion is bounded.
//!
//! [`Parser::command_body`] is the dispatch table: one arm a command, calling into one
//! module a command family. The lexical pieces they share are in [`lexer`].

mod any;
mod append;
mod auth;
mod copy;
mod expunge;
mod fetch;
mod lexer;
mod list;
mod mailbox;
mod metadata;
mod notify;
mod quota;
mod search;
mod select;
mod sort_thread;
mod store;
mod urlauth;

use super::command::{Command, CommandBody, ParseError};
use super::sequence::SequenceSet;
use super::tag::Tag;
use std::borrow::Cow;

/// What each grammar function gives: its value, or the text of the BAD answer.
type PResult<T> = Result<T, Cow<'static, str>>;

/// A cursor over one framed command. Each command family adds its grammar functions
/// to it in its own module.
struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

/// Fails with `message`.
fn err<T>(message: &'static str) -> PResult<T> {
    Err(Cow::Borrowed(message))
}

impl Parser<'_> {
    /// What follows `tag SP`, up to and including CRLF: `command-any / command-auth /
    /// command-nonauth / command-select`, where
    /// `command-any = "CAPABILITY" / "LOGOUT" / "NOOP" / x-command / id`;
    /// `command-auth = append / create / delete / enable / examine / list / namespace-command /
    ///  rename / select / status / subscribe / unsubscribe / idle`;
    /// `command-nonauth = login / authenticate / "STARTTLS"`;
    /// `command-select = "CLOSE" / "UNSELECT" / "EXPUNGE" / copy / move / fetch / store /
    ///  search / uid`; with RFC 3501's CHECK and LSUB, COMPRESS (RFC 4978), the quota
    /// commands (RFC 9208), SORT and THREAD (RFC 5256), CANCELUPDATE (RFC 5267) and
    /// GETMETADATA and SETMETADATA (RFC 5464), NOTIFY (RFC 5465), GENURLAUTH, URLFETCH and
    /// RESETKEY (RFC 4467). One arm a command, one function a command
    /// family.
    fn command_body(&mut self) -> PResult<CommandBody> {
        let name = self.atom()?.to_ascii_uppercase();
        let body = match name.as_str() {
            "CAPABILITY" => CommandBody::Capability,
            "NOOP" => CommandBody::Noop,
            "LOGOUT" => CommandBody::Logout,
            "STARTTLS" => CommandBody::StartTls,
            "NAMESPACE" => CommandBody::Namespace,
            "IDLE" => CommandBody::Idle,
            "CHECK" => CommandBody::Check,
            "CLOSE" => CommandBody::Close,
            "UNSELECT" => CommandBody::Unselect,
            "LOGIN" => self.login()?,
            "AUTHENTICATE" => self.authenticate()?,
            "ENABLE" => self.enable()?,
            "ID" => CommandBody::Id(self.id()?),
            "COMPRESS" => self.compress()?,
            "SELECT" | "EXAMINE" => self.select(name == "EXAMINE")?,
            "CREATE" => self.create()?,
            "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => self.delete_or_subscribe(&name)?,
            "RENAME" => self.rename()?,
            "LIST" => CommandBody::List(self.list()?),
            "LSUB" => self.lsub()?,
            "STATUS" => self.status()?,
            "APPEND" => CommandBody::Append(self.append()?),
            "GETQUOTA" => self.getquota()?,
            "GETQUOTAROOT" => self.getquotaroot()?,
            "SETQUOTA" => self.setquota()?,
            "GETMETADATA" => self.getmetadata()?,
            "SETMETADATA" => self.setmetadata()?,
            "NOTIFY" => self.notify()?,
            "GENURLAUTH" => self.genurlauth()?,
            "URLFETCH" => self.urlfetch()?,
            "RESETKEY" => self.resetkey()?,
            // `expunge = "EXPUNGE"`
            "EXPUNGE" => CommandBody::Expunge { uids: None },
            "SEARCH" => CommandBody::Search(self.search(false)?),
            "CANCELUPDATE" => CommandBody::CancelUpdate(self.cancel_update()?),
            "SORT" => CommandBody::Sort(self.sort(false)?),
            "THREAD" => CommandBody::Thread(self.thread(false)?),
            "FETCH" => self.fetch(false)?,
            "STORE" => CommandBody::Store(self.store(false)?),
            "COPY" | "MOVE" => self.copy(false, name == "MOVE")?,
            "UID" => self.uid()?,
            _ => return err("Unknown command"),
        };
        self.end()?;
        Ok(body)
    }

    /// `uid = "UID" SP (copy / move / fetch / search / store / uid-expunge)`, with RFC
    /// 5256's SORT and THREAD.
    fn uid(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        let sub = self.atom()?.to_ascii_uppercase();
        Ok(match sub.as_str() {
            "FETCH" => self.fetch(true)?,
            "STORE" => CommandBody::Store(self.store(true)?),
            "SEARCH" => CommandBody::Search(self.search(true)?),
            "SORT" => CommandBody::Sort(self.sort(true)?),
            "THREAD" => CommandBody::Thread(self.thread(true)?),
            "COPY" | "MOVE" => self.copy(true, sub == "MOVE")?,
            "EXPUNGE" => self.uid_expunge()?,
            _ => return err("Unknown UID command"),
        })
    }
}

/// `command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF`
pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    let tag = Tag::of_line(input);
    let Some(tag) = tag else {
        return Err(ParseError {
            tag: None,
            message: Cow::Borrowed("Missing or invalid tag"),
        });
    };
    let mut parser = Parser {
        input,
        pos: tag.as_str().len(),
    };
    let body = parser.sp().and_then(|()| parser.command_body());
    match body {
        Ok(body) => Ok(Command { tag, body }),
        Err(message) => Err(ParseError {
            tag: Some(tag),
            message,
        }),
    }
}

pub use append::parse_imap_url;
pub(crate) use append::percent_decode;

/// Parses a bare `sequence-set` (tests and tools).
pub fn parse_sequence_set(input: &[u8]) -> Option<SequenceSet> {
    let mut parser = Parser { input, pos: 0 };
    let set = parser.sequence_set().ok()?;
    (parser.pos == input.len()).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of `text`, which must parse.
    pub(super) fn parse(text: &str) -> CommandBody {
        parse_command(text.as_bytes())
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
            .body
    }

    /// The body of `text`'s command, which must parse as `CommandBody::$variant`.
    macro_rules! parse_as {
        ($variant:ident, $text:expr) => {
            match crate::proto::parse::tests::parse($text) {
                crate::proto::command::CommandBody::$variant(body) => body,
                other => panic!("{:?} is not {}: {other:?}", $text, stringify!($variant)),
            }
        };
    }
    pub(crate) use parse_as;

    /// The error for `text`, which must not parse.
    pub(super) fn fails(text: &str) -> ParseError {
        match parse_command(text.as_bytes()) {
            Ok(c) => panic!("{text:?} parsed: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_simple_commands() {
        assert!(matches!(parse("a CAPABILITY\r\n"), CommandBody::Capability));
        assert!(matches!(parse("a noop\r\n"), CommandBody::Noop));
    }

    #[test]
    fn rejects_bad_syntax_with_tag() {
        let e = fails("a FROB\r\n");
        assert_eq!(e.tag.map(|t| t.to_string()).as_deref(), Some("a"));
        assert_eq!(fails("+ NOOP\r\n").tag, None);
        fails("a NOOP extra\r\n");
        fails("a LOGIN user\r\n");
        fails("a FETCH 0 FLAGS\r\n");
        fails("a FETCH 1 BODY[1.HEADER.FIELDS ()]\r\n");
        fails("a LOGIN {10}\r\nuser\r\n");
        fails("a SEARCH NOT\r\n");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 42;
        let pieces: [&[u8]; 31] = [
            b"a ",
            b"UID ",
            b"FETCH ",
            b"SEARCH ",
            b"STORE ",
            b"(",
            b")",
            b"[",
            b"]",
            b"{3}\r\n",
            b"\"",
            b"\\",
            b"1:*",
            b"BODY",
            b".PEEK",
            b"<0.",
            b">",
            b"NOT ",
            b"OR ",
            b"APPEND ",
            b"LIST ",
            b"~{2}\r\n",
            b"\r\n",
            b"\xff",
            b"GETMETADATA ",
            b"SETMETADATA ",
            b"/shared/",
            b"(DEPTH infinity MAXSIZE 9) ",
            b"NOTIFY SET ",
            b"(selected (MessageNew (UID) MessageExpunge)) ",
            b"(subtree (A B) NONE)",
        ];
        for _ in 0..20_000 {
            let mut input = Vec::new();
            for _ in 0..(seed % 12) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                input.extend_from_slice(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            let _ = parse_command(&input);
        }
    }
}
