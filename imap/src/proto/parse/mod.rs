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
mod quota;
mod search;
mod select;
mod sort_thread;
mod store;

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
    /// commands (RFC 9208) and SORT and THREAD (RFC 5256). One arm a command, one function
    /// a command family.
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
            // `expunge = "EXPUNGE"`
            "EXPUNGE" => CommandBody::Expunge { uids: None },
            "SEARCH" => CommandBody::Search(self.search(false)?),
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

/// Parses a bare `sequence-set` (tests and tools).
pub fn parse_sequence_set(input: &[u8]) -> Option<SequenceSet> {
    let mut parser = Parser { input, pos: 0 };
    let set = parser.sequence_set().ok()?;
    (parser.pos == input.len()).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::*;
    use crate::proto::sequence::Sequence;
    use storage::FlagOperation;

    fn parse(text: &str) -> CommandBody {
        parse_command(text.as_bytes())
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
            .body
    }

    fn fails(text: &str) -> ParseError {
        match parse_command(text.as_bytes()) {
            Ok(c) => panic!("{text:?} parsed: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_simple_commands() {
        assert!(matches!(parse("a CAPABILITY\r\n"), CommandBody::Capability));
        assert!(matches!(parse("a noop\r\n"), CommandBody::Noop));
        assert!(matches!(
            parse("a UID EXPUNGE 1:3\r\n"),
            CommandBody::Expunge { uids: Some(_) }
        ));
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
    fn parses_fetch_items() {
        let CommandBody::Fetch {
            uid, set, items, ..
        } = parse(
            "a UID FETCH 1:*,5 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From \"To\")]<0.100> BODY[] BINARY.PEEK[1] BODY RFC822.SIZE)\r\n",
        )
        else {
            panic!()
        };
        assert!(uid);
        assert_eq!(
            set,
            Sequence::Set(parse_sequence_set(b"1:*,5").unwrap_or_else(|| panic!()))
        );
        assert_eq!(
            items,
            vec![
                FetchItem::Flags,
                FetchItem::BodySection {
                    peek: true,
                    section: Section {
                        part: vec![1, 2],
                        text: Some(SectionText::HeaderFields {
                            not: false,
                            fields: vec!["From".into(), "To".into()]
                        })
                    },
                    partial: Some((0, 100))
                },
                FetchItem::BodySection {
                    peek: false,
                    section: Section::default(),
                    partial: None
                },
                FetchItem::Binary {
                    peek: true,
                    part: vec![1],
                    partial: None
                },
                FetchItem::BodyStructure { extensible: false },
                FetchItem::Rfc822Size,
            ]
        );
        let CommandBody::Fetch { items, .. } = parse("a FETCH 2 full\r\n") else {
            panic!()
        };
        assert_eq!(items.len(), 5);
        let CommandBody::Fetch { items, .. } = parse("a FETCH 2 BODY[2.MIME]\r\n") else {
            panic!()
        };
        assert!(
            matches!(&items[0], FetchItem::BodySection { section, .. } if section.text == Some(SectionText::Mime))
        );
    }

    #[test]
    fn parses_search() {
        let CommandBody::Search(search) = parse(
            "a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM alice (SINCE 1-Feb-2020 NOT SEEN) 1:5 LARGER 10\r\n",
        ) else {
            panic!()
        };
        assert!(search.uid);
        assert_eq!(
            search.returns,
            Some(vec![SearchReturn::Min, SearchReturn::Count])
        );
        assert_eq!(search.charset.as_deref(), Some("UTF-8"));
        let SearchKey::And(keys) = search.key else {
            panic!()
        };
        assert_eq!(keys.len(), 3);
        assert!(
            matches!(&keys[0], SearchKey::Or(a, _) if **a == SearchKey::Header("From".into(), "alice".into()))
        );
        let deep = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(MAX_SEARCH_DEPTH + 2));
        fails(&deep);
    }

    #[test]
    fn search_strings_have_a_length_limit() {
        let longest = "n".repeat(MAX_SEARCH_STRING);
        for key in ["BODY", "TEXT", "FROM", "SUBJECT", "HEADER X-Id"] {
            let CommandBody::Search(search) = parse(&format!("a SEARCH {key} {longest}\r\n"))
            else {
                panic!("{key}")
            };
            assert_ne!(search.key, SearchKey::All);
            // One octet more, as an atom or as a literal: BAD with the tag.
            let over = format!("{longest}n");
            let error = fails(&format!("b SEARCH {key} {over}\r\n"));
            assert_eq!(error.message, "Search string too long");
            assert_eq!(error.tag.as_ref().map(Tag::as_str), Some("b"));
            let error = fails(&format!(
                "c SEARCH NOT {key} {{{}}}\r\n{over}\r\n",
                over.len()
            ));
            assert_eq!(error.message, "Search string too long");
        }
        let error = fails(&format!("d SORT (DATE) UTF-8 BODY {longest}n\r\n"));
        assert_eq!(error.message, "Search string too long");
    }

    #[test]
    fn parses_store_append_list_status() {
        let CommandBody::Store(store) = parse("a STORE 1 +FLAGS.SILENT (\\Seen $Label)\r\n") else {
            panic!()
        };
        assert_eq!(store.operation, FlagOperation::Add);
        assert!(store.silent);
        assert_eq!(store.flags, vec!["\\Seen", "$Label"]);
        let CommandBody::Append(append) =
            parse("a APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {5+}\r\nhello\r\n")
        else {
            panic!()
        };
        assert_eq!(append.messages[0].message, b"hello");
        assert_eq!(append.messages[0].flags, vec!["\\Seen"]);
        assert!(append.messages[0].date.is_some());
        let CommandBody::Append(append) = parse("a APPEND INBOX UTF8 (~{3}\r\na\0b)\r\n") else {
            panic!()
        };
        assert_eq!(append.messages[0].message, b"a\0b");
        // RFC 3502 §6 example shape: two messages, the second with flags only.
        let CommandBody::Append(append) =
            parse("a APPEND Drafts {3+}\r\none (\\Draft) {3+}\r\ntwo\r\n")
        else {
            panic!()
        };
        assert_eq!(append.messages.len(), 2);
        assert_eq!(append.messages[1].message, b"two");
        assert_eq!(append.messages[1].flags, vec!["\\Draft"]);
        fails("a APPEND INBOX\r\n");
        let CommandBody::List(list) = parse(
            "a LIST (SUBSCRIBED) \"\" (\"*\" %) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
        ) else {
            panic!()
        };
        assert!(list.select_subscribed && list.return_children && list.extended);
        assert_eq!(list.patterns, vec!["*", "%"]);
        assert_eq!(
            list.return_status,
            Some(vec![StatusItem::Messages, StatusItem::Unseen])
        );
        let CommandBody::List(list) = parse("a LIST \"\" INBOX/%\r\n") else {
            panic!()
        };
        assert!(!list.extended);
        assert!(matches!(
            parse("a STATUS blurdybloop (UIDNEXT MESSAGES)\r\n"),
            CommandBody::Status { items, .. } if items == vec![StatusItem::UidNext, StatusItem::Messages]
        ));
        assert!(matches!(
            parse("a CREATE Sent (USE (\\Sent))\r\n"),
            CommandBody::Create { special_use, .. } if special_use == vec!["\\Sent"]
        ));
        assert!(matches!(parse("a ID NIL\r\n"), CommandBody::Id(p) if p.is_empty()));
        assert!(matches!(
            parse("a ID (\"name\" \"mutt\" \"version\" NIL)\r\n"),
            CommandBody::Id(p) if p.len() == 2
        ));
    }

    #[test]
    fn parses_condstore_and_qresync_syntax() {
        // RFC 7162 §3.1.3 example.
        let CommandBody::Store(store) =
            parse("d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n")
        else {
            panic!()
        };
        assert_eq!(store.unchanged_since, Some(320162338));
        assert!(store.silent);
        // RFC 7162 §3.1.4.2 example.
        let CommandBody::Fetch {
            items,
            changed_since,
            vanished,
            ..
        } = parse("s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n")
        else {
            panic!()
        };
        assert_eq!(items, vec![FetchItem::Flags]);
        assert_eq!(changed_since, Some(12345));
        assert!(vanished);
        assert!(matches!(
            parse("a FETCH 1 (MODSEQ FLAGS)\r\n"),
            CommandBody::Fetch { items, .. } if items == vec![FetchItem::ModSeq, FetchItem::Flags]
        ));
        fails("a FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)\r\n");
        fails("a UID FETCH 1:* FLAGS (VANISHED)\r\n");
        fails("a UID FETCH 1:* FLAGS (CHANGEDSINCE 0)\r\n");
        // RFC 7162 §3.2.5.1 example.
        let CommandBody::Select { qresync, .. } = parse(
            "A03 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:5,7 41,43:45,47)))\r\n",
        ) else {
            panic!()
        };
        let qresync = qresync.unwrap_or_else(|| panic!("no QRESYNC"));
        assert_eq!(qresync.uid_validity, 67890007);
        assert_eq!(qresync.modseq, 20050715194045000);
        assert!(qresync.known_uids.is_some() && qresync.seq_match.is_some());
        assert!(matches!(
            parse("a EXAMINE INBOX (CONDSTORE)\r\n"),
            CommandBody::Select {
                condstore: true,
                read_only: true,
                ..
            }
        ));
        fails("a SELECT INBOX (FROB)\r\n");
        // RFC 7162 §3.1.5 and RFC 5032 search keys.
        let CommandBody::Search(search) =
            parse("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 OLDER 3600 YOUNGER 60\r\n")
        else {
            panic!()
        };
        assert_eq!(
            search.key,
            SearchKey::And(vec![
                SearchKey::ModSeq(620162338),
                SearchKey::Older(3600),
                SearchKey::Younger(60)
            ])
        );
        fails("a SEARCH YOUNGER 0\r\n");
    }

    #[test]
    fn parses_sort_and_thread() {
        // RFC 5256 §4 examples.
        let CommandBody::Sort(sort) = parse("A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994\r\n")
        else {
            panic!()
        };
        assert_eq!(
            sort.criteria,
            vec![SortCriterion {
                key: SortKey::Subject,
                reverse: false
            }]
        );
        assert_eq!(sort.charset, "UTF-8");
        let CommandBody::Sort(sort) =
            parse("A284 UID SORT (REVERSE DATE SIZE) US-ASCII SUBJECT \"afternoon\" ALL\r\n")
        else {
            panic!()
        };
        assert!(sort.uid);
        assert_eq!(
            sort.criteria,
            vec![
                SortCriterion {
                    key: SortKey::Date,
                    reverse: true
                },
                SortCriterion {
                    key: SortKey::Size,
                    reverse: false
                }
            ]
        );
        assert!(matches!(sort.key, SearchKey::And(ref keys) if keys.len() == 2));
        let CommandBody::Thread(thread) =
            parse("A283 THREAD REFERENCES UTF-8 SINCE 5-MAR-2000\r\n")
        else {
            panic!()
        };
        assert_eq!(thread.algorithm, ThreadAlgorithm::References);
        assert!(matches!(
            parse("a UID THREAD ORDEREDSUBJECT UTF-8 ALL\r\n"),
            CommandBody::Thread(ThreadCommand { uid: true, .. })
        ));
        fails("a SORT () UTF-8 ALL\r\n");
        fails("a SORT (SUBJECT) ALL\r\n");
        fails("a THREAD FROB UTF-8 ALL\r\n");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 42;
        let pieces: [&[u8]; 24] = [
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
