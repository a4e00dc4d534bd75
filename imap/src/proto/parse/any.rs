//! Commands valid in any state and the session-wide settings: ENABLE (RFC 5161), ID
//! (RFC 2971) and COMPRESS (RFC 4978). CAPABILITY, NOOP, LOGOUT and NAMESPACE take no
//! arguments and stay in the dispatch table.

use super::{PResult, Parser, err};
use crate::proto::command::{CommandBody, MAX_ID_PAIRS};

impl Parser<'_> {
    /// `id = "ID" SP id-params-list`;
    /// `id-params-list = "(" *(string SP nstring) ")" / nil` (RFC 2971 §4)
    pub(super) fn id(&mut self) -> PResult<Vec<(String, Option<String>)>> {
        self.sp()?;
        if self.keyword("NIL") {
            return Ok(Vec::new());
        }
        self.require(b'(', "Expected ( or NIL")?;
        let mut pairs = Vec::new();
        while !self.eat(b')') {
            if !pairs.is_empty() {
                self.sp()?;
            }
            if pairs.len() >= MAX_ID_PAIRS {
                return err("Too many ID fields");
            }
            let field = String::from_utf8_lossy(&self.string()?).into_owned();
            self.sp()?;
            let value = self
                .nstring()?
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            pairs.push((field, value));
        }
        Ok(pairs)
    }

    /// `enable = "ENABLE" 1*(SP capability)` (RFC 5161)
    pub(super) fn enable(&mut self) -> PResult<CommandBody> {
        let mut capabilities = Vec::new();
        while self.eat(b' ') {
            capabilities.push(self.atom()?.to_owned());
        }
        if capabilities.is_empty() {
            return err("ENABLE needs a capability");
        }
        Ok(CommandBody::Enable(capabilities))
    }

    /// RFC 4978 §4: `compress = "COMPRESS" SP algorithm`; `algorithm = "DEFLATE"`.
    pub(super) fn compress(&mut self) -> PResult<CommandBody> {
        self.sp()?;
        Ok(CommandBody::Compress {
            algorithm: self.atom()?.to_ascii_uppercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::CommandBody;
    use crate::proto::parse::tests::parse;

    #[test]
    fn parses_id() {
        assert!(matches!(parse("a ID NIL\r\n"), CommandBody::Id(p) if p.is_empty()));
        assert!(matches!(
            parse("a ID (\"name\" \"mutt\" \"version\" NIL)\r\n"),
            CommandBody::Id(p) if p.len() == 2
        ));
    }
}
