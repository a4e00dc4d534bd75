//! SORT and THREAD (RFC 5256), with the search criteria of [`super::search`].

use super::{PResult, Parser, err};
use crate::proto::command::{SortCommand, SortCriterion, SortKey, ThreadAlgorithm, ThreadCommand};

impl Parser<'_> {
    /// RFC 5256 §5: `sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria`;
    /// `sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"`;
    /// `search-criteria = charset 1*(SP search-key)`.
    pub(super) fn sort(&mut self, uid: bool) -> PResult<SortCommand> {
        self.sp()?;
        self.require(b'(', "Expected sort criteria")?;
        let mut criteria = Vec::new();
        loop {
            let reverse = self.keyword("REVERSE");
            if reverse {
                self.sp()?;
            }
            let key = match self.atom()?.to_ascii_uppercase().as_str() {
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                _ => return err("Unknown sort criterion"),
            };
            criteria.push(SortCriterion { key, reverse });
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        self.sp()?;
        let charset = self.astring_utf8()?;
        self.sp()?;
        let key = self.search_keys()?;
        Ok(SortCommand {
            uid,
            criteria,
            charset,
            key,
        })
    }

    /// RFC 5256 §5: `thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria`.
    pub(super) fn thread(&mut self, uid: bool) -> PResult<ThreadCommand> {
        self.sp()?;
        let algorithm = match self.atom()?.to_ascii_uppercase().as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            _ => return err("Unknown threading algorithm"),
        };
        self.sp()?;
        let charset = self.astring_utf8()?;
        self.sp()?;
        let key = self.search_keys()?;
        Ok(ThreadCommand {
            uid,
            algorithm,
            charset,
            key,
        })
    }
}
