//! URLAUTH (RFC 4467, formal syntax): GENURLAUTH, URLFETCH and RESETKEY. The URLs are taken as
//! astrings here; what is in them is `proto::urlauth`'s business, since an invalid URL
//! is a NO or a NIL, not always a BAD.

use super::{PResult, Parser, err};
use crate::proto::command::CommandBody;

/// URLs of one GENURLAUTH or URLFETCH. RFC 4467 sets no number; each URL costs a few
/// lookups, a MAC and (URLFETCH) a stored message read, and a client generating or
/// fetching the parts of one message to submit needs a handful: 256, as for CATENATE's
/// parts (`MAX_CAT_PARTS`).
pub const MAX_URLS_PER_COMMAND: usize = 256;

/// Mechanisms named by one RESETKEY: only INTERNAL exists; a few unknown ones are
/// answered, a flood of them is not read.
const MAX_MECHANISMS: usize = 16;

impl Parser<'_> {
    /// `genurlauth = "GENURLAUTH" 1*(SP url-rump SP mechanism)`; `url-rump = astring`.
    pub(super) fn genurlauth(&mut self) -> PResult<CommandBody> {
        let mut pairs = Vec::new();
        while self.eat(b' ') {
            if pairs.len() == MAX_URLS_PER_COMMAND {
                return err("Too many URLs");
            }
            let url = self.astring_utf8()?;
            self.sp()?;
            pairs.push((url, self.mechanism()?));
        }
        if pairs.is_empty() {
            return err("Expected a URL and a mechanism");
        }
        Ok(CommandBody::GenUrlAuth(pairs))
    }

    /// `urlfetch = "URLFETCH" 1*(SP url)`; `url = astring`.
    pub(super) fn urlfetch(&mut self) -> PResult<CommandBody> {
        let mut urls = Vec::new();
        while self.eat(b' ') {
            if urls.len() == MAX_URLS_PER_COMMAND {
                return err("Too many URLs");
            }
            urls.push(self.astring_utf8()?);
        }
        if urls.is_empty() {
            return err("Expected a URL");
        }
        Ok(CommandBody::UrlFetch(urls))
    }

    /// `resetkey = "RESETKEY" [SP mailbox *(SP mechanism)]`.
    pub(super) fn resetkey(&mut self) -> PResult<CommandBody> {
        if !self.eat(b' ') {
            return Ok(CommandBody::ResetKey {
                mailbox: None,
                mechanisms: Vec::new(),
            });
        }
        let mailbox = self.mailbox()?;
        let mut mechanisms = Vec::new();
        while self.eat(b' ') {
            if mechanisms.len() == MAX_MECHANISMS {
                return err("Too many mechanisms");
            }
            mechanisms.push(self.mechanism()?);
        }
        Ok(CommandBody::ResetKey {
            mailbox: Some(mailbox),
            mechanisms,
        })
    }

    /// `mechanism = "INTERNAL" / 1*(ALPHA / DIGIT / "-" / ".")`, upper-cased.
    fn mechanism(&mut self) -> PResult<String> {
        let bytes = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if bytes.is_empty() {
            return err("Expected a URLAUTH mechanism");
        }
        Ok(String::from_utf8_lossy(bytes).to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::parse::tests::{fails, parse, parse_as};

    #[test]
    fn parses_urlauth_commands() {
        let pairs = parse_as!(
            GenUrlAuth,
            "a GENURLAUTH \"imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred\" INTERNAL imap://j@h/X/;UID=1;URLAUTH=anonymous internal\r\n"
        );
        assert_eq!(
            pairs,
            vec![
                (
                    "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred".into(),
                    "INTERNAL".into()
                ),
                (
                    "imap://j@h/X/;UID=1;URLAUTH=anonymous".into(),
                    "INTERNAL".into()
                ),
            ]
        );
        let urls = parse_as!(
            UrlFetch,
            "a URLFETCH \"imap://a@h/X/;UID=1\" {3+}\r\nx y\r\n"
        );
        assert_eq!(urls, vec!["imap://a@h/X/;UID=1".to_owned(), "x y".into()]);
        assert!(matches!(
            parse("a RESETKEY\r\n"),
            CommandBody::ResetKey { mailbox: None, mechanisms } if mechanisms.is_empty()
        ));
        assert!(matches!(
            parse("a RESETKEY INBOX internal XY.Z-UNKNOWN\r\n"),
            CommandBody::ResetKey { mailbox: Some(m), mechanisms }
                if m == "INBOX" && mechanisms == ["INTERNAL", "XY.Z-UNKNOWN"]
        ));
        fails("a GENURLAUTH\r\n");
        fails("a GENURLAUTH imap://a@h/X/;UID=1;URLAUTH=anonymous\r\n");
        fails("a GENURLAUTH imap://a@h/X/;UID=1;URLAUTH=anonymous INT/ERNAL\r\n");
        fails("a URLFETCH\r\n");
        fails("a URLFETCH \r\n");
        fails("a RESETKEY \r\n");
        fails("a RESETKEY INBOX (\r\n");
        let many = format!(
            "a URLFETCH {}\r\n",
            vec!["u"; MAX_URLS_PER_COMMAND + 1].join(" ")
        );
        fails(&many);
    }
}
