//! SORT and THREAD (RFC 5256), with the search criteria of [`super::search`].

use super::{PResult, Parser, err};
use crate::proto::command::{
    SearchKey, SortCommand, SortCriterion, SortKey, ThreadAlgorithm, ThreadCommand,
};

impl Parser<'_> {
    /// RFC 5256 §5: `sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria`;
    /// RFC 5267 §5 (ESORT): `sort =/ ["UID" SP] "SORT" search-return-opts SP sort-criteria
    /// SP search-criteria`;
    /// `sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"`;
    /// `search-criteria = charset 1*(SP search-key)`.
    pub(super) fn sort(&mut self, uid: bool) -> PResult<SortCommand> {
        self.sp()?;
        let returns = self.search_return_opts()?;
        let criteria = self.paren_list("Expected sort criteria", |p| {
            let reverse = p.keyword("REVERSE");
            if reverse {
                p.sp()?;
            }
            let key = match p.atom()?.to_ascii_uppercase().as_str() {
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                // RFC 5957 §4.
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                _ => return err("Unknown sort criterion"),
            };
            Ok(SortCriterion { key, reverse })
        })?;
        self.sp()?;
        let (charset, key) = self.search_criteria()?;
        Ok(SortCommand {
            uid,
            returns,
            criteria,
            charset,
            key,
        })
    }

    /// RFC 5256 §5: `search-criteria = charset 1*(SP search-key)`.
    fn search_criteria(&mut self) -> PResult<(String, SearchKey)> {
        let charset = self.astring_utf8()?;
        self.sp()?;
        Ok((charset, self.search_keys()?))
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
        let (charset, key) = self.search_criteria()?;
        Ok(ThreadCommand {
            uid,
            algorithm,
            charset,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::{
        CommandBody, SearchKey, SearchReturn, SortCriterion, SortKey, ThreadAlgorithm,
        ThreadCommand,
    };
    use crate::proto::parse::tests::{fails, parse, parse_as};

    fn by(key: SortKey, reverse: bool) -> SortCriterion {
        SortCriterion { key, reverse }
    }

    #[test]
    fn parses_sort_and_thread() {
        // RFC 5256 §4 examples.
        let sort = parse_as!(Sort, "A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994\r\n");
        assert_eq!(sort.criteria, vec![by(SortKey::Subject, false)]);
        assert_eq!(sort.charset, "UTF-8");
        let sort = parse_as!(
            Sort,
            "A284 UID SORT (REVERSE DATE SIZE) US-ASCII SUBJECT \"afternoon\" ALL\r\n"
        );
        assert!(sort.uid);
        assert_eq!(
            sort.criteria,
            vec![by(SortKey::Date, true), by(SortKey::Size, false)]
        );
        assert!(matches!(sort.key, SearchKey::And(ref keys) if keys.len() == 2));
        let thread = parse_as!(Thread, "A283 THREAD REFERENCES UTF-8 SINCE 5-MAR-2000\r\n");
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
    fn parses_esort_return_options_and_display_keys() {
        // RFC 5267 §3.1 example.
        let sort = parse_as!(
            Sort,
            "C1 UID SORT RETURN (MIN COUNT) (DATE) UTF-8 SINCE 1-Feb-1994\r\n"
        );
        assert!(sort.uid);
        assert_eq!(
            sort.returns,
            Some(vec![SearchReturn::Min, SearchReturn::Count])
        );
        assert_eq!(sort.criteria.len(), 1);
        let sort = parse_as!(
            Sort,
            "a SORT RETURN () (REVERSE DISPLAYFROM displayto) US-ASCII ALL\r\n"
        );
        assert_eq!(sort.returns, Some(vec![]));
        assert_eq!(
            sort.criteria,
            vec![
                by(SortKey::DisplayFrom, true),
                by(SortKey::DisplayTo, false)
            ]
        );
        let sort = parse_as!(Sort, "a SORT (ARRIVAL) UTF-8 ALL\r\n");
        assert_eq!(sort.returns, None);
        let sort = parse_as!(Sort, "a SORT RETURN (SAVE ALL) (SIZE) UTF-8 ALL\r\n");
        assert_eq!(
            sort.returns,
            Some(vec![SearchReturn::Save, SearchReturn::All])
        );
        fails("a SORT RETURN (PARTIAL 1:5 ALL) (DATE) UTF-8 ALL\r\n");
        fails("a SORT RETURN (MIN)(DATE) UTF-8 ALL\r\n");
        fails("a SORT RETURN MIN (DATE) UTF-8 ALL\r\n");
        fails("a SORT (DISPLAY) UTF-8 ALL\r\n");
    }
}
