//! Selecting a mailbox (RFC 9051 §6.3.2, §6.3.3): SELECT and EXAMINE with RFC 7162's
//! CONDSTORE and QRESYNC parameters. CLOSE and UNSELECT take no arguments and stay in
//! the dispatch table.

use super::{PResult, Parser, err};
use crate::proto::command::{CommandBody, QresyncParams};

impl Parser<'_> {
    /// `select = "SELECT" SP mailbox [select-params]`; `examine` likewise.
    pub(super) fn select(&mut self, read_only: bool) -> PResult<CommandBody> {
        self.sp()?;
        let mailbox = self.mailbox()?;
        let (condstore, qresync) = self.select_params()?;
        Ok(CommandBody::Select {
            mailbox,
            read_only,
            condstore,
            qresync,
        })
    }

    /// `select-params = SP "(" select-param *(SP select-param) ")"` (RFC 4466 §2.1),
    /// with RFC 7162's `"CONDSTORE"` and `"QRESYNC" SP "(" ... ")"`.
    pub(super) fn select_params(&mut self) -> PResult<(bool, Option<QresyncParams>)> {
        let mut condstore = false;
        let mut qresync = None;
        if !self.eat(b' ') {
            return Ok((false, None));
        }
        self.require(b'(', "Expected SELECT parameters")?;
        if self.eat(b')') {
            return Ok((false, None));
        }
        loop {
            if self.keyword("CONDSTORE") {
                condstore = true;
            } else if self.keyword("QRESYNC") {
                self.sp()?;
                self.require(b'(', "Expected QRESYNC parameters")?;
                let uid_validity = self.nz_number()?;
                self.sp()?;
                let modseq = self.mod_sequence(false)?;
                let mut known_uids = None;
                let mut seq_match = None;
                if self.eat(b' ') {
                    if self.eat(b'(') {
                        let sequences = self.sequence_set()?;
                        self.sp()?;
                        let uids = self.sequence_set()?;
                        self.require(b')', "Expected ) after sequence match data")?;
                        seq_match = Some((sequences, uids));
                    } else {
                        known_uids = Some(self.sequence_set()?);
                        if self.eat(b' ') {
                            self.require(b'(', "Expected sequence match data")?;
                            let sequences = self.sequence_set()?;
                            self.sp()?;
                            let uids = self.sequence_set()?;
                            self.require(b')', "Expected ) after sequence match data")?;
                            seq_match = Some((sequences, uids));
                        }
                    }
                }
                self.require(b')', "Expected ) after QRESYNC parameters")?;
                qresync = Some(QresyncParams {
                    uid_validity,
                    modseq,
                    known_uids,
                    seq_match,
                });
            } else {
                return err("Unsupported SELECT parameter");
            }
            if self.eat(b')') {
                return Ok((condstore, qresync));
            }
            self.sp()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::command::CommandBody;
    use crate::proto::parse::tests::{fails, parse};

    #[test]
    fn parses_condstore_and_qresync_parameters() {
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
    }
}
