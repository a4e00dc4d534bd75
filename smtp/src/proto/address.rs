//! Mailbox addresses as they appear in MAIL and RCPT (RFC 5321 §4.1.2), and the xtext
//! encoding of DSN parameters (RFC 3461 §4).

/// RFC 5322 §3.2.3 atext, plus the UTF-8 octets RFC 6531 §3.3 allows in an SMTPUTF8
/// local part.
fn is_atext(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(ch) || !ch.is_ascii()
}

/// RFC 5321 §4.1.2 `Dot-string = Atom *("." Atom)`.
pub fn is_dot_string(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// The address in its canonical wire form from the unquoted form smtp-proto gives.
///
/// smtp-proto 0.2.5 drops the quotes (and backslash escapes) of a quoted local part:
/// `"john doe"@example.com` comes out as `john doe@example.com`, which is not an address.
/// We quote again any local part that is not a Dot-string (RFC 5321 §4.1.2
/// `Quoted-string`), so that a remote recipient is queued exactly as it must be sent.
pub fn canonical_mailbox(unquoted: &str) -> String {
    let Some((local, domain)) = unquoted.rsplit_once('@') else {
        return unquoted.to_owned();
    };
    if is_dot_string(local) {
        return unquoted.to_owned();
    }
    let mut quoted = String::with_capacity(local.len() + domain.len() + 4);
    quoted.push('"');
    for ch in local.chars() {
        if ch == '"' || ch == '\\' {
            quoted.push('\\');
        }
        quoted.push(ch);
    }
    quoted.push_str("\"@");
    quoted.push_str(domain);
    quoted
}

/// The domain of `local@domain`, if there is one.
pub fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, domain)| domain)
        .filter(|domain| !domain.is_empty())
}

/// RFC 3461 §4: `xtext = *( xchar / hexchar )`; octets outside `!`..`~`, and `+` and
/// `=`, are written `+XX`.
pub fn xtext_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("+{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_strings_stay_as_they_are() {
        assert_eq!(
            canonical_mailbox("john.doe@example.com"),
            "john.doe@example.com"
        );
        assert_eq!(canonical_mailbox("usér@exämple.com"), "usér@exämple.com");
    }

    #[test]
    fn other_local_parts_are_quoted_again() {
        assert_eq!(
            canonical_mailbox("john doe@example.com"),
            "\"john doe\"@example.com"
        );
        assert_eq!(canonical_mailbox("a\"b@x"), "\"a\\\"b\"@x");
        assert_eq!(canonical_mailbox("a..b@x"), "\"a..b\"@x");
    }

    #[test]
    fn domain_is_after_the_last_at() {
        assert_eq!(domain_of("\"a@b\"@example.com"), Some("example.com"));
        assert_eq!(domain_of("postmaster"), None);
        assert_eq!(domain_of("a@"), None);
    }

    #[test]
    fn xtext_round_trip_shape() {
        assert_eq!(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext_encode("QQ-123@x"), "QQ-123@x");
        assert_eq!(xtext_encode("é"), "+C3+A9");
    }
}
