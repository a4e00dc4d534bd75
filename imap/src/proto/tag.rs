//! Command tags (RFC 9051 §2.2.1), validated once when built.

use std::fmt;

/// Longest tag we accept; real clients use a few characters, and a tag is echoed on every
/// completion, so a huge one is only a way to make us write more.
pub const MAX_TAG_LENGTH: usize = 64;

/// `tag = 1*<any ASTRING-CHAR except "+">`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

/// `ATOM-CHAR = <any CHAR except atom-specials>`;
/// `atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials`
pub fn is_atom_char(byte: u8) -> bool {
    matches!(byte, 0x21..=0x7e)
        && !matches!(byte, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR = ATOM-CHAR / resp-specials`
pub fn is_astring_char(byte: u8) -> bool {
    is_atom_char(byte) || byte == b']'
}

impl Tag {
    pub fn parse(bytes: &[u8]) -> Option<Tag> {
        let valid = !bytes.is_empty()
            && bytes.len() <= MAX_TAG_LENGTH
            && bytes.iter().all(|&b| is_astring_char(b) && b != b'+');
        if !valid {
            return None;
        }
        // Only ASCII bytes pass the check above.
        String::from_utf8(bytes.to_vec()).ok().map(Tag)
    }

    /// The tag at the start of a command line, if it has a valid one.
    pub fn of_line(line: &[u8]) -> Option<Tag> {
        let end = line
            .iter()
            .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
            .unwrap_or(line.len());
        Tag::parse(line.get(..end)?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_tags() {
        assert!(Tag::parse(b"a001").is_some());
        assert!(Tag::parse(b"A.1]").is_some());
        for bad in ["", "+a", "a+", "a b", "a{", "a*", "a%", "a\""] {
            assert_eq!(Tag::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(Tag::parse(b"\xff"), None);
        assert_eq!(
            Tag::of_line(b"x1 NOOP").map(|t| t.to_string()).as_deref(),
            Some("x1")
        );
        assert_eq!(Tag::parse(&[b'a'; MAX_TAG_LENGTH + 1]), None);
    }
}
