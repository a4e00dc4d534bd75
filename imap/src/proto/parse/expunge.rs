//! UID EXPUNGE (RFC 4315 §2.1). EXPUNGE takes no arguments and stays in the dispatch
//! table.

use super::{PResult, Parser};
use crate::proto::command::CommandBody;

impl Parser<'_> {
    /// `uid-expunge = "EXPUNGE" SP sequence-set` (RFC 4315 §2.1), after `"UID" SP`
    pub(super) fn uid_expunge(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        Ok(CommandBody::Expunge {
            uids: Some(self.sequence()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::CommandBody;
    use crate::proto::parse::tests::parse;

    #[test]
    fn parses_uid_expunge() {
        assert!(matches!(
            parse("a UID EXPUNGE 1:3\r\n"),
            CommandBody::Expunge { uids: Some(_) }
        ));
    }
}
