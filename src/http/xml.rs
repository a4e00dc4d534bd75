//! Escaping for the XML we write by hand (the autoconfig and autodiscover documents are
//! fixed templates with a few values in them; a DOM writer would add nothing).

use std::borrow::Cow;

/// `text` as XML character data or attribute value (XML 1.0 §2.4, §3.3.3): the five
/// special characters become entity references. Control characters other than tab, CR
/// and LF are not allowed in XML 1.0 at all (§2.2); callers pass validated values, and
/// any that slipped through are dropped rather than written as an invalid document.
pub fn escape(text: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'') || is_forbidden(c);
    if !text.contains(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_forbidden(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Characters outside XML 1.0's `Char` production (§2.2) that a Rust `str` can hold.
fn is_forbidden(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_hold() {
        assert!(matches!(escape("mail.example.org"), Cow::Borrowed(_)));
        assert_eq!(escape("a<b>&\"c'\u{1}d"), "a&lt;b&gt;&amp;&quot;c&apos;d");
    }
}
