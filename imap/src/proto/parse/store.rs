//! STORE and UID STORE (RFC 9051 §6.4.6) with CONDSTORE's UNCHANGEDSINCE (RFC 7162
//! §3.1.3).

use super::{PResult, Parser, err};
use crate::proto::command::StoreCommand;
use storage::FlagOperation;

impl Parser<'_> {
    /// `store = "STORE" SP sequence-set SP store-att-flags`;
    /// `store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))`
    pub(super) fn store(&mut self, uid: bool) -> PResult<StoreCommand> {
        self.sp()?;
        let set = self.sequence()?;
        self.sp()?;
        // RFC 7162 §3.1.3: `store-modifiers = SP "(" store-modifier *(SP store-modifier) ")"`;
        // `store-modifier =/ "UNCHANGEDSINCE" SP mod-sequence-valzer`.
        let mut unchanged_since = None;
        if self.eat(b'(') {
            loop {
                if self.keyword("UNCHANGEDSINCE") {
                    self.sp()?;
                    unchanged_since = Some(self.mod_sequence(true)?);
                } else {
                    return err("Unknown STORE modifier");
                }
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            self.sp()?;
        }
        let operation = if self.eat(b'+') {
            FlagOperation::Add
        } else if self.eat(b'-') {
            FlagOperation::Remove
        } else {
            FlagOperation::Replace
        };
        let name = self.atom()?.to_ascii_uppercase();
        let silent = match name.as_str() {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return err("Expected FLAGS or FLAGS.SILENT"),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut flags = vec![self.flag()?];
            while self.eat(b' ') {
                flags.push(self.flag()?);
            }
            flags
        };
        Ok(StoreCommand {
            uid,
            set,
            operation,
            silent,
            flags,
            unchanged_since,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::parse::tests::parse_as;
    use storage::FlagOperation;

    #[test]
    fn parses_store() {
        let store = parse_as!(Store, "a STORE 1 +FLAGS.SILENT (\\Seen $Label)\r\n");
        assert_eq!(store.operation, FlagOperation::Add);
        assert!(store.silent);
        assert_eq!(store.flags, vec!["\\Seen", "$Label"]);
    }

    #[test]
    fn parses_unchangedsince() {
        // RFC 7162 §3.1.3 example.
        let store = parse_as!(
            Store,
            "d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n"
        );
        assert_eq!(store.unchanged_since, Some(320162338));
        assert!(store.silent);
    }
}
