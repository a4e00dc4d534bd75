//! TXT records of mail authentication read from text: the `[dns.txt]` overrides of the
//! configuration, checked when it is loaded and answered by the resolver's cache.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::spf::Spf;
use mail_auth::{DnsError, Error, Txt};
use std::sync::Arc;

/// What a name's TXT strings mean to mail authentication, read by the kind its name
/// says: `_dmarc.` → DMARC (RFC 7489 §6.1), `._domainkey.` → DKIM key (RFC 6376
/// §3.6.2.1), otherwise SPF (RFC 7208 §4.5: the record starting `v=spf1`).
pub fn parse_txt(name: &str, records: &[String]) -> Result<Txt, String> {
    let name = name.to_ascii_lowercase();
    fn first<T: TxtRecordParser>(records: &[String], what: &str) -> Result<Arc<T>, String> {
        let mut last = String::from("no record");
        for record in records {
            match T::parse(record.as_bytes()) {
                Ok(parsed) => return Ok(Arc::new(parsed)),
                Err(error) => last = format!("{record:?} is not a {what} record ({error})"),
            }
        }
        Err(last)
    }
    if name.starts_with("_dmarc.") {
        return first::<Dmarc>(records, "DMARC").map(Txt::Dmarc);
    }
    if name.contains("._domainkey.") {
        return first::<DomainKey>(records, "DKIM key").map(Txt::DomainKey);
    }
    let spf: Vec<String> = records
        .iter()
        .filter(|r| {
            r.get(..6).is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
                && r.as_bytes().get(6).is_none_or(|b| *b == b' ')
        })
        .cloned()
        .collect();
    if spf.is_empty() {
        // As DNS would answer: TXT records, none of them SPF.
        return Ok(Txt::Error(Error::Dns(DnsError::InvalidRecordType)));
    }
    first::<Spf>(&spf, "SPF").map(Txt::Spf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_kinds() {
        let spf = parse_txt("Example.org", &["v=spf1 -all".into()]).expect("spf");
        assert!(matches!(spf, Txt::Spf(_)));
        let none = parse_txt("example.org", &["v=spf10 x".into()]).expect("other");
        assert!(matches!(none, Txt::Error(_)));
        let dmarc = parse_txt("_dmarc.example.org", &["v=DMARC1; p=none".into()]).expect("dmarc");
        assert!(matches!(dmarc, Txt::Dmarc(_)));
    }
}
