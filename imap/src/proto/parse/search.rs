//! SEARCH (RFC 9051 §6.4.4) with ESEARCH's RETURN options (RFC 4731), SEARCHRES's `$`
//! (RFC 5182), CONDSTORE's MODSEQ (RFC 7162 §3.1.5) and WITHIN's OLDER and YOUNGER
//! (RFC 5032), OBJECTID's EMAILID and THREADID (RFC 8474 §6); SORT and THREAD take their
//! search criteria from here.

use super::{PResult, Parser, err};
use crate::proto::command::{
    MAX_SEARCH_DEPTH, MAX_SEARCH_STRING, PartialRange, SearchCommand, SearchKey, SearchReturn,
};
use crate::proto::objectid::ObjectId;

impl Parser<'_> {
    /// A SEARCH string (`astring`), at most [`MAX_SEARCH_STRING`] octets.
    pub(super) fn search_string(&mut self) -> PResult<String> {
        let value = self.astring_utf8()?;
        if value.len() > MAX_SEARCH_STRING {
            return err("Search string too long");
        }
        Ok(value)
    }

    /// `search-key = "ALL" / "ANSWERED" / "BCC" SP astring / "BEFORE" SP date /
    ///  "BODY" SP astring / "CC" SP astring / "DELETED" / "FLAGGED" / "FROM" SP astring /
    ///  "KEYWORD" SP flag-keyword / "ON" SP date / "SEEN" / "SINCE" SP date /
    ///  "SUBJECT" SP astring / "TEXT" SP astring / "TO" SP astring / "UNANSWERED" /
    ///  "UNDELETED" / "UNFLAGGED" / "UNKEYWORD" SP flag-keyword / "UNSEEN" / "DRAFT" /
    ///  "HEADER" SP header-fld-name SP astring / "LARGER" SP number64 / "NOT" SP search-key /
    ///  "OR" SP search-key SP search-key / "SENTBEFORE" SP date / "SENTON" SP date /
    ///  "SENTSINCE" SP date / "SMALLER" SP number64 / "UID" SP sequence-set / "UNDRAFT" /
    ///  sequence-set / "(" search-key *(SP search-key) ")"`
    /// `search-key` (RFC 9051 §9, with RFC 3501's NEW, OLD, RECENT).
    pub(super) fn search_key(&mut self, depth: usize) -> PResult<SearchKey> {
        if depth > MAX_SEARCH_DEPTH {
            return err("Search nested too deeply");
        }
        if self.eat(b'(') {
            let mut keys = Vec::new();
            loop {
                keys.push(self.search_key(depth + 1)?);
                if self.eat(b')') {
                    return Ok(SearchKey::And(keys));
                }
                self.sp()?;
            }
        }
        if matches!(self.peek(), Some(b'0'..=b'9' | b'*' | b'$')) {
            return self.sequence().map(SearchKey::Seq);
        }
        let name = self.atom()?.to_ascii_uppercase();
        let flag = |flag: &'static str, set: bool| Ok(SearchKey::Flag(flag, set));
        match name.as_str() {
            "ALL" => Ok(SearchKey::All),
            "ANSWERED" => flag("\\Answered", true),
            "DELETED" => flag("\\Deleted", true),
            "DRAFT" => flag("\\Draft", true),
            "FLAGGED" => flag("\\Flagged", true),
            "SEEN" => flag("\\Seen", true),
            "UNANSWERED" => flag("\\Answered", false),
            "UNDELETED" => flag("\\Deleted", false),
            "UNDRAFT" => flag("\\Draft", false),
            "UNFLAGGED" => flag("\\Flagged", false),
            "UNSEEN" => flag("\\Seen", false),
            "NEW" => Ok(SearchKey::New),
            "OLD" => Ok(SearchKey::Old),
            "RECENT" => Ok(SearchKey::Recent),
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                let keyword = self.atom()?.to_owned();
                Ok(SearchKey::Keyword(keyword, name == "KEYWORD"))
            }
            "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => {
                self.sp()?;
                let value = self.search_string()?;
                let field = match name.as_str() {
                    "BCC" => "Bcc",
                    "CC" => "Cc",
                    "FROM" => "From",
                    "SUBJECT" => "Subject",
                    _ => "To",
                };
                Ok(SearchKey::Header(field.to_owned(), value))
            }
            "HEADER" => {
                self.sp()?;
                let field = self.search_string()?;
                self.sp()?;
                let value = self.search_string()?;
                Ok(SearchKey::Header(field, value))
            }
            "BODY" => {
                self.sp()?;
                Ok(SearchKey::Body(self.search_string()?))
            }
            "TEXT" => {
                self.sp()?;
                Ok(SearchKey::Text(self.search_string()?))
            }
            "LARGER" => {
                self.sp()?;
                Ok(SearchKey::Larger(self.number64()?))
            }
            "SMALLER" => {
                self.sp()?;
                Ok(SearchKey::Smaller(self.number64()?))
            }
            "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
                self.sp()?;
                let date = self.date()?;
                Ok(match name.as_str() {
                    "BEFORE" => SearchKey::Before(date),
                    "ON" => SearchKey::On(date),
                    "SINCE" => SearchKey::Since(date),
                    "SENTBEFORE" => SearchKey::SentBefore(date),
                    "SENTON" => SearchKey::SentOn(date),
                    _ => SearchKey::SentSince(date),
                })
            }
            "UID" => {
                self.sp()?;
                Ok(SearchKey::Uid(self.sequence()?))
            }
            // RFC 8514 §5: `search-key =/ "SAVEDBEFORE" SP date / "SAVEDON" SP date /
            // "SAVEDSINCE" SP date / "SAVEDATESUPPORTED"`.
            "SAVEDBEFORE" | "SAVEDON" | "SAVEDSINCE" => {
                self.sp()?;
                let date = self.date()?;
                Ok(match name.as_str() {
                    "SAVEDBEFORE" => SearchKey::SavedBefore(date),
                    "SAVEDON" => SearchKey::SavedOn(date),
                    _ => SearchKey::SavedSince(date),
                })
            }
            "SAVEDATESUPPORTED" => Ok(SearchKey::SaveDateSupported),
            // RFC 7162 §3.1.5: `"MODSEQ" [search-modseq-ext] SP mod-sequence-valzer`;
            // `search-modseq-ext = SP entry-name SP entry-type-req`. We keep one modseq
            // per message, which §3.1.5 says then stands for every entry.
            "MODSEQ" => {
                self.sp()?;
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.sp()?;
                    let entry_type = self.atom()?.to_ascii_lowercase();
                    if !matches!(entry_type.as_str(), "priv" | "shared" | "all") {
                        return err("Expected priv, shared or all");
                    }
                    self.sp()?;
                }
                Ok(SearchKey::ModSeq(self.mod_sequence(true)?))
            }
            // RFC 5032 §3: `"OLDER" SP nz-number` / `"YOUNGER" SP nz-number` (seconds).
            "OLDER" => {
                self.sp()?;
                Ok(SearchKey::Older(self.nz_number()?))
            }
            "YOUNGER" => {
                self.sp()?;
                Ok(SearchKey::Younger(self.nz_number()?))
            }
            // RFC 8474 §7: `search-key =/ "EMAILID" SP objectid / "THREADID" SP objectid`.
            "EMAILID" | "THREADID" => {
                self.sp()?;
                let Some(id) = ObjectId::new(self.atom()?) else {
                    return err("Invalid objectid");
                };
                Ok(if name == "EMAILID" {
                    SearchKey::EmailId(id)
                } else {
                    SearchKey::ThreadId(id)
                })
            }
            "NOT" => {
                self.sp()?;
                Ok(SearchKey::Not(Box::new(self.search_key(depth + 1)?)))
            }
            "OR" => {
                self.sp()?;
                let a = self.search_key(depth + 1)?;
                self.sp()?;
                let b = self.search_key(depth + 1)?;
                Ok(SearchKey::Or(Box::new(a), Box::new(b)))
            }
            _ => err("Unknown search key"),
        }
    }

    /// `search = "SEARCH" [search-return-opts] SP search-program`;
    /// `search-return-opts = SP "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")"`;
    /// `search-program = ["CHARSET" SP charset SP] search-key *(SP search-key)`
    pub(super) fn search(&mut self, uid: bool) -> PResult<SearchCommand> {
        self.sp()?;
        let returns = self.search_return_opts()?;
        let mut charset = None;
        if self.keyword("CHARSET") {
            self.sp()?;
            charset = Some(self.astring_utf8()?);
            self.sp()?;
        }
        let key = self.search_keys()?;
        Ok(SearchCommand {
            uid,
            returns,
            charset,
            key,
        })
    }

    /// `"RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")" SP`, when the
    /// input is at `RETURN` (RFC 4731 §3; SORT's too, RFC 5267 §3):
    /// `search-return-opt = "MIN" / "MAX" / "ALL" / "COUNT"`, RFC 5182 §4 `=/ "SAVE"`,
    /// RFC 5267 §5 `=/ modifier-context / modifier-partial / modifier-update` with
    /// `modifier-context = "CONTEXT"`, `modifier-update = "UPDATE"` and RFC 9394 §4
    /// `modifier-partial = "PARTIAL" SP partial-range`.
    ///
    /// RFC 9394 §3.1: "A single command MUST NOT contain more than one PARTIAL or ALL
    /// search return option"; UPDATE twice is refused as well (one context a command).
    pub(super) fn search_return_opts(&mut self) -> PResult<Option<Vec<SearchReturn>>> {
        if !self.keyword("RETURN") {
            return Ok(None);
        }
        self.sp()?;
        self.require(b'(', "Expected return options")?;
        let mut options = Vec::new();
        while !self.eat(b')') {
            if !options.is_empty() {
                self.sp()?;
            }
            let option = self.atom()?.to_ascii_uppercase();
            let option = match option.as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                "SAVE" => SearchReturn::Save,
                "CONTEXT" => SearchReturn::Context,
                "UPDATE" => SearchReturn::Update,
                "PARTIAL" => {
                    self.sp()?;
                    SearchReturn::Partial(self.partial_range()?)
                }
                _ => return err("Unknown search return option"),
            };
            let windows =
                |o: &SearchReturn| matches!(o, SearchReturn::All | SearchReturn::Partial(_));
            if windows(&option) && options.iter().any(windows) {
                return err("Only one of PARTIAL or ALL may be given");
            }
            if option == SearchReturn::Update && options.contains(&SearchReturn::Update) {
                return err("UPDATE may be given once");
            }
            options.push(option);
        }
        self.sp()?;
        Ok(Some(options))
    }

    /// RFC 9394 §4: `partial-range = partial-range-first / partial-range-last`;
    /// `partial-range-first = nz-number ":" nz-number`;
    /// `partial-range-last = MINUS nz-number ":" MINUS nz-number` (no `*`, one sign).
    pub(super) fn partial_range(&mut self) -> PResult<PartialRange> {
        let from_end = self.eat(b'-');
        let first = self.nz_number()?;
        self.require(b':', "Expected a partial range")?;
        if self.eat(b'-') != from_end {
            return err("Both ends of a partial range have the same sign");
        }
        let second = self.nz_number()?;
        Ok(PartialRange {
            low: first.min(second),
            high: first.max(second),
            from_end,
        })
    }

    /// RFC 5267 §5: `command-select =/ "CANCELUPDATE" 1*(SP quoted)`, the tags of the
    /// updating searches to end.
    pub(super) fn cancel_update(&mut self) -> PResult<Vec<String>> {
        let mut tags = Vec::new();
        while self.eat(b' ') {
            let tag = self.quoted()?;
            tags.push(String::from_utf8_lossy(&tag).into_owned());
        }
        if tags.is_empty() {
            return err("CANCELUPDATE needs the tags of updating searches");
        }
        Ok(tags)
    }

    /// `search-key *(SP search-key)`, as one key.
    pub(super) fn search_keys(&mut self) -> PResult<SearchKey> {
        let mut keys = vec![self.search_key(0)?];
        while self.eat(b' ') {
            keys.push(self.search_key(0)?);
        }
        Ok(if keys.len() == 1 {
            keys.pop().unwrap_or(SearchKey::All)
        } else {
            SearchKey::And(keys)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::{
        CommandBody, MAX_SEARCH_DEPTH, MAX_SEARCH_STRING, PartialRange, SearchKey, SearchReturn,
    };
    use crate::proto::objectid::ObjectId;
    use crate::proto::parse::tests::{fails, parse, parse_as};
    use crate::proto::tag::Tag;

    #[test]
    fn parses_search() {
        let search = parse_as!(
            Search,
            "a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM alice (SINCE 1-Feb-2020 NOT SEEN) 1:5 LARGER 10\r\n"
        );
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
    fn parses_modseq_older_and_younger() {
        // RFC 7162 §3.1.5 and RFC 5032 search keys.
        let search = parse_as!(
            Search,
            "a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 OLDER 3600 YOUNGER 60\r\n"
        );
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
    fn parses_savedate_keys() {
        // RFC 8514 §4.3 keys.
        let search = parse_as!(
            Search,
            "a SEARCH SAVEDON 28-Dec-2014 savedsince \"1-Jan-2015\" SAVEDBEFORE 2-Jan-2015 SAVEDATESUPPORTED\r\n"
        );
        let day = |d: u8, m: time::Month, y: i32| {
            time::Date::from_calendar_date(y, m, d).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            search.key,
            SearchKey::And(vec![
                SearchKey::SavedOn(day(28, time::Month::December, 2014)),
                SearchKey::SavedSince(day(1, time::Month::January, 2015)),
                SearchKey::SavedBefore(day(2, time::Month::January, 2015)),
                SearchKey::SaveDateSupported,
            ])
        );
        fails("a SEARCH SAVEDON\r\n");
        fails("a SEARCH SAVEDSINCE 32-Dec-2014\r\n");
    }

    #[test]
    fn number64_stops_at_63_bits() {
        // RFC 9051 §9 number64: 0 <= n <= 9,223,372,036,854,775,807.
        let search = parse_as!(Search, "a SEARCH LARGER 9223372036854775807\r\n");
        assert_eq!(search.key, SearchKey::Larger(i64::MAX as u64));
        fails("a SEARCH LARGER 9223372036854775808\r\n");
        fails("a SEARCH MODSEQ 18446744073709551615\r\n");
    }

    #[test]
    fn parses_partial_update_and_context() {
        // RFC 9394 §3.1 examples.
        let search = parse_as!(
            Search,
            "E01 UID SEARCH RETURN (PARTIAL -1:-100) UNDELETED UNKEYWORD $Junk\r\n"
        );
        let last = PartialRange {
            low: 1,
            high: 100,
            from_end: true,
        };
        assert_eq!(search.returns, Some(vec![SearchReturn::Partial(last)]));
        assert_eq!(last.to_string(), "-1:-100");
        let search = parse_as!(
            Search,
            "A01 SEARCH RETURN (partial 500:401 COUNT update CONTEXT MIN) UNDELETED\r\n"
        );
        let first = PartialRange {
            low: 401,
            high: 500,
            from_end: false,
        };
        assert_eq!(
            search.returns,
            Some(vec![
                SearchReturn::Partial(first),
                SearchReturn::Count,
                SearchReturn::Update,
                SearchReturn::Context,
                SearchReturn::Min
            ])
        );
        assert_eq!(first.to_string(), "401:500");
        for bad in [
            "PARTIAL 1:5 ALL",
            "ALL PARTIAL 1:5",
            "PARTIAL 1:5 PARTIAL 6:9",
            "ALL ALL",
            "UPDATE UPDATE",
            "PARTIAL",
            "PARTIAL 0:5",
            "PARTIAL 1:*",
            "PARTIAL -1:5",
            "PARTIAL 1:-5",
            "PARTIAL 5",
            "PARTIAL \"1:5\"",
            "PARTIAL 1:4294967296",
            "UPDATE (FLAGS)",
        ] {
            fails(&format!("a SEARCH RETURN ({bad}) ALL\r\n"));
        }
        let sort = parse_as!(
            Sort,
            "a UID SORT RETURN (PARTIAL 1:2 UPDATE) (DATE) UTF-8 ALL\r\n"
        );
        assert_eq!(sort.returns.map(|r| r.len()), Some(2));
    }

    #[test]
    fn parses_cancelupdate() {
        // RFC 5267 §4.3.5 example.
        let tags = parse_as!(CancelUpdate, "B04 CANCELUPDATE \"B01\" \"B02\"\r\n");
        assert_eq!(tags, vec!["B01".to_owned(), "B02".to_owned()]);
        fails("a CANCELUPDATE\r\n");
        fails("a CANCELUPDATE B01\r\n");
        fails("a CANCELUPDATE \"B01\" B02\r\n");
    }

    #[test]
    fn partial_windows_count_from_either_end() {
        let range = |low, high, from_end| PartialRange {
            low,
            high,
            from_end,
        };
        assert_eq!(range(1, 3, false).window(10), 0..3);
        assert_eq!(range(9, 20, false).window(10), 8..10);
        assert_eq!(range(11, 20, false).window(10), 10..10);
        assert_eq!(range(1, 3, true).window(10), 7..10);
        assert_eq!(range(2, 5, true).window(3), 0..2);
        assert_eq!(range(5, 7, true).window(3), 0..0);
        assert_eq!(range(1, u32::MAX, true).window(0), 0..0);
    }

    #[test]
    fn parses_emailid_and_threadid() {
        // RFC 8474 §6 example: `SEARCH EMAILID M6d99ac3275bb4e`.
        let search = parse_as!(
            Search,
            "a UID SEARCH EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9\r\n"
        );
        assert_eq!(
            search.key,
            SearchKey::And(vec![
                SearchKey::EmailId(ObjectId::new("M6d99ac3275bb4e").expect("objectid")),
                SearchKey::ThreadId(ObjectId::new("T64b478a75b7ea9").expect("objectid")),
            ])
        );
        fails("a SEARCH EMAILID M1.2\r\n");
        fails("a SEARCH EMAILID\r\n");
        fails(&format!("a SEARCH THREADID {}\r\n", "T".repeat(256)));
    }
}
