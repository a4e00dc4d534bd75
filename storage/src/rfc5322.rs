//! Raw header values as IMAP's ENVELOPE and BODYSTRUCTURE need them: address lists with
//! display names exactly as written (encoded words intact, RFC 9051 §7.5.2) and MIME
//! parameters with their names as written (RFC 2231 `name*`, RFC 9051 §7.5.2).
//!
//! Written by hand because mail-parser hands out decoded values only: it decodes
//! encoded words in names and parameters and merges RFC 2231 continuations, and IMAP
//! clients expect the header's own text and do the decoding themselves.

use serde::{Deserialize, Serialize};

/// One element of an ENVELOPE address list. Groups are written as in RFC 9051 §7.5.2:
/// a start marker with the group name in `mailbox` and no host, then the members, then
/// an end marker with every field empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeAddress {
    /// Display name, decoded.
    pub name: Option<String>,
    /// RFC 9051 §7.5.2 addr-adl: the obsolete source route (`@a,@b`) of an angle address
    /// (RFC 5322 §4.4 obs-route), as Dovecot and Cyrus give it. Metas stored before it
    /// was kept have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adl: Option<String>,
    pub mailbox: Option<String>,
    pub host: Option<String>,
}

/// Host given to an address that has none: a NIL host means group syntax in an
/// ENVELOPE (RFC 9051 §7.5.2), so a bare `root` must not have one. Dovecot uses the same.
pub const MISSING_DOMAIN: &str = "MISSING_DOMAIN";

#[derive(Debug, PartialEq)]
enum Token {
    /// An atom or a dot-atom piece, as written.
    Word(String),
    /// A quoted string, unquoted (backslash escapes removed).
    Quoted(String),
    /// A comment, without its parentheses.
    Comment(String),
    /// The inside of `<...>`.
    Angle(String),
    Special(char),
}

fn tokenize(value: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => text.extend(chars.next()),
                        c => text.push(c),
                    }
                }
                tokens.push(Token::Quoted(text));
            }
            '(' => {
                chars.next();
                let mut depth = 1;
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        '\\' => {
                            text.extend(chars.next());
                            continue;
                        }
                        _ => {}
                    }
                    text.push(c);
                }
                tokens.push(Token::Comment(text));
            }
            '<' => {
                chars.next();
                // The addr-spec inside: whitespace dropped, a quoted local part unquoted
                // (RFC 5322 §3.2.4: the quotes are not part of the string).
                let mut text = String::new();
                let mut quoted = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => quoted = !quoted,
                        '\\' if quoted => text.extend(chars.next()),
                        '>' if !quoted => break,
                        c if c.is_whitespace() && !quoted => {}
                        c => text.push(c),
                    }
                }
                tokens.push(Token::Angle(text));
            }
            ',' | ':' | ';' => {
                chars.next();
                tokens.push(Token::Special(c));
            }
            _ => {
                let mut text = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '"' | '(' | '<' | ',' | ':' | ';') {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(text));
            }
        }
    }
    tokens
}

/// An addr-spec split for an ENVELOPE address.
struct SplitSpec {
    /// RFC 5322 §4.4 obs-route without its colon: `@a,@b`.
    route: Option<String>,
    local: String,
    domain: String,
}

/// Splits `[@a,@b:]local@domain` at the last `@`, keeping the obsolete source route
/// apart (RFC 5322 §4.4 `obs-angle-addr = [CFWS] "<" obs-route addr-spec ">" [CFWS]`).
fn split_addr_spec(spec: &str) -> SplitSpec {
    let (route, spec) = match spec.rsplit_once(':') {
        Some((route, rest)) if route.starts_with('@') => (Some(route.to_owned()), rest),
        _ => (None, spec),
    };
    let (local, domain) = match spec.rsplit_once('@') {
        Some((local, domain)) => (local.to_owned(), domain.to_owned()),
        None => (spec.to_owned(), MISSING_DOMAIN.to_owned()),
    };
    SplitSpec {
        route,
        local,
        domain,
    }
}

#[derive(Default)]
struct Pending {
    /// Words before `<`, unquoted: the display name.
    phrase: Vec<String>,
    /// The same words as written, joined without spaces: the addr-spec when no `<>`.
    spec: String,
    angle: Option<String>,
    comment: Option<String>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.phrase.is_empty() && self.spec.is_empty() && self.angle.is_none()
    }

    fn finish(self, list: &mut Vec<EnvelopeAddress>) {
        if self.is_empty() {
            return;
        }
        let (name, spec) = match self.angle {
            Some(angle) => (Some(self.phrase.join(" ")), angle),
            // No angle brackets: the words are the addr-spec; a comment after it is the
            // old `addr (Name)` form of a display name.
            None => (self.comment, self.spec),
        };
        let split = split_addr_spec(&spec);
        list.push(EnvelopeAddress {
            name: name.filter(|n| !n.is_empty()),
            adl: split.route,
            mailbox: Some(split.local),
            host: Some(split.domain),
        });
    }
}

/// Parses an address-list header value (RFC 5322 §3.4) into ENVELOPE addresses, groups
/// as start and end markers (RFC 9051 §7.5.2).
pub fn address_list(value: &str) -> Vec<EnvelopeAddress> {
    let mut list = Vec::new();
    let mut pending = Pending::default();
    for token in tokenize(value) {
        match token {
            Token::Word(word) => {
                if pending.angle.is_none() {
                    pending.spec.push_str(&word);
                    pending.phrase.push(word);
                }
            }
            Token::Quoted(text) => {
                if pending.angle.is_none() {
                    pending.spec.push_str(&text);
                    pending.phrase.push(text);
                }
            }
            Token::Comment(text) => {
                if pending.comment.is_none() {
                    pending.comment = Some(text.trim().to_owned());
                }
            }
            Token::Angle(text) => pending.angle = Some(text),
            Token::Special(':') => {
                let name = pending.phrase.join(" ");
                list.push(EnvelopeAddress {
                    mailbox: Some(name),
                    ..EnvelopeAddress::default()
                });
                pending = Pending::default();
            }
            Token::Special(';') => {
                std::mem::take(&mut pending).finish(&mut list);
                list.push(EnvelopeAddress::default());
            }
            Token::Special(_) => std::mem::take(&mut pending).finish(&mut list),
        }
    }
    pending.finish(&mut list);
    list
}

/// A `mailbox-list` (RFC 5322 §3.4) read strictly, as `local@domain` strings, for checks
/// that must see what every receiver sees. Each mailbox is `[display-name] <addr-spec>`
/// or a bare `addr-spec` (one word, or a quoted local part and `@domain`); comments may
/// come anywhere and empty elements are skipped (§4.4 `obs-mbox-list`). `None` for
/// anything else: group syntax, a second `<...>` or words after it, words around a bare
/// address, a source route, a missing `@`, local part or domain, or no mailbox at all.
/// [`address_list`] reads the same text leniently, for display.
pub fn mailbox_list(value: &str) -> Option<Vec<String>> {
    let mut list = Vec::new();
    let mut mailbox: Vec<Token> = Vec::new();
    let tokens = tokenize(value)
        .into_iter()
        .filter(|token| !matches!(token, Token::Comment(_)));
    for token in tokens.chain(std::iter::once(Token::Special(','))) {
        match token {
            Token::Special(',') => {
                if !mailbox.is_empty() {
                    list.push(strict_mailbox(&std::mem::take(&mut mailbox))?);
                }
            }
            // `:` and `;` are group syntax (or garbage): not a mailbox-list.
            Token::Special(_) => return None,
            token => mailbox.push(token),
        }
    }
    (!list.is_empty()).then_some(list)
}

/// One mailbox of [`mailbox_list`], its comments removed.
fn strict_mailbox(tokens: &[Token]) -> Option<String> {
    let spec = match tokens {
        // name-addr: a display name of words, then the one angle-addr, last.
        [name @ .., Token::Angle(spec)]
            if name
                .iter()
                .all(|t| matches!(t, Token::Word(_) | Token::Quoted(_))) =>
        {
            spec.clone()
        }
        [Token::Word(spec)] => spec.clone(),
        [Token::Quoted(local), Token::Word(domain)] if domain.starts_with('@') => {
            format!("{local}{domain}")
        }
        _ => return None,
    };
    let (local, domain) = spec.rsplit_once('@')?;
    let domain_ok = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    // A bare word with a second `@` is not one address (`a@b@c`): only a quoted local
    // part may hold one, and inside `<...>` the quotes are gone already.
    let bare_word = matches!(tokens, [Token::Word(_)]);
    let local_bad = local.is_empty() || local.starts_with('@') || bare_word && local.contains('@');
    (domain_ok && !local_bad).then_some(spec)
}

/// `type/subtype; name=value; ...` → parameters with names lower-cased as written.
/// RFC 2231 continuations (`name*0`, `name*1*`) are joined; a parameter with any
/// extended segment is named `name*` and keeps its `charset'language'%XX` value
/// (RFC 9051 §7.5.2 passes parameters as they are; clients decode RFC 2231).
pub fn parameters(value: &str) -> Vec<(String, String)> {
    let mut raw: Vec<(String, String)> = Vec::new();
    let mut rest = match value.split_once(';') {
        Some((_, params)) => params,
        None => return Vec::new(),
    };
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        if rest.is_empty() {
            break;
        }
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((at, c)) = chars.next() {
                match c {
                    '"' => {
                        end = at + 1;
                        break;
                    }
                    '\\' => text.extend(chars.next().map(|(_, c)| c)),
                    c => text.push(c),
                }
            }
            value = text;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        if !name.is_empty() {
            raw.push((name, value));
        }
    }
    join_continuations(raw)
}

/// One RFC 2231 segment of a parameter: its index, whether it is extended, its value.
type Segment = (u32, bool, String);

fn join_continuations(raw: Vec<(String, String)>) -> Vec<(String, String)> {
    // base name -> (any segment extended?, segments)
    let mut order: Vec<String> = Vec::new();
    let mut joined: std::collections::HashMap<String, (bool, Vec<Segment>)> = Default::default();
    for (name, value) in raw {
        let (base, index, extended) = match name.split_once('*') {
            None => (name.clone(), 0, false),
            Some((base, "")) => (base.to_owned(), 0, true),
            Some((base, suffix)) => {
                let (number, extended) = match suffix.strip_suffix('*') {
                    Some(number) => (number, true),
                    None => (suffix, false),
                };
                match number.parse::<u32>() {
                    Ok(n) => (base.to_owned(), n, extended),
                    Err(_) => (name.clone(), 0, false),
                }
            }
        };
        let entry = joined.entry(base.clone()).or_insert_with(|| {
            order.push(base.clone());
            (false, Vec::new())
        });
        entry.0 |= extended;
        entry.1.push((index, extended, value));
    }
    order
        .into_iter()
        .filter_map(|base| {
            let (extended, mut segments) = joined.remove(&base)?;
            segments.sort_by_key(|s| s.0);
            let value: String = segments
                .into_iter()
                .map(|(_, segment_extended, value)| {
                    if extended && !segment_extended {
                        percent_encode(&value)
                    } else {
                        value
                    }
                })
                .collect();
            let name = if extended { format!("{base}*") } else { base };
            Some((name, value))
        })
        .collect()
}

fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The lines of a header section, each with its offset in `header` and without its line
/// break (CRLF or a bare LF), up to the empty line that ends the section (RFC 5322 §2.1).
pub(crate) fn header_lines(header: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let rest = header.get(start..).filter(|rest| !rest.is_empty())?;
        let line = match memchr::memchr(b'\n', rest) {
            Some(at) => rest.get(..=at).unwrap_or(rest),
            None => rest,
        };
        let offset = start;
        start += line.len();
        let content = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        Some((offset, content))
    })
    .take_while(|(_, content)| !content.is_empty())
}

/// The fields of a header section as written, unfolded (RFC 5322 §2.2.3: a line break
/// followed by white space is removed): the name, and the value (what comes after the
/// colon) without surrounding white space. Lines that are not fields are skipped.
pub fn unfolded_fields(header: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut in_field = false;
    for (_, content) in header_lines(header) {
        if matches!(content.first(), Some(b' ' | b'\t')) {
            if in_field && let Some((_, value)) = fields.last_mut() {
                value.push_str(&String::from_utf8_lossy(content));
            }
            continue;
        }
        let Some(colon) = content.iter().position(|&b| b == b':') else {
            in_field = false;
            continue;
        };
        let (name, value) = content.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        fields.push((
            String::from_utf8_lossy(name).trim_end().to_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        in_field = true;
    }
    for (_, value) in &mut fields {
        let trimmed = value.trim();
        if trimmed.len() != value.len() {
            *value = trimmed.to_owned();
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_header_fields_as_written() {
        let header = b"Message-ID: <a@b>\r\nTo: Team: a@b.example;\r\nX-Long:\r\n one\r\n\ttwo \r\nnot a field\r\n\r\nBody: no\r\n";
        assert_eq!(
            unfolded_fields(header),
            vec![
                ("Message-ID".to_owned(), "<a@b>".to_owned()),
                ("To".to_owned(), "Team: a@b.example;".to_owned()),
                ("X-Long".to_owned(), "one\ttwo".to_owned()),
            ]
        );
    }

    fn addr(name: Option<&str>, mailbox: Option<&str>, host: Option<&str>) -> EnvelopeAddress {
        EnvelopeAddress {
            name: name.map(str::to_owned),
            adl: None,
            mailbox: mailbox.map(str::to_owned),
            host: host.map(str::to_owned),
        }
    }

    /// RFC 9051 §7.5.2 addr-adl, as Dovecot 2.3 answers for the same header (checked by
    /// hand): the route of an angle address, whitespace dropped, in a group too.
    #[test]
    fn source_routes_are_kept_as_the_adl() {
        let routed = |name: Option<&str>, adl: &str, mailbox: &str, host: &str| EnvelopeAddress {
            adl: Some(adl.to_owned()),
            ..addr(name, Some(mailbox), Some(host))
        };
        let list = address_list(
            "Joe <@a.example,@b.example:joe@c.example>, plain@z.example, <@a.example, @b.example : spaced@c.example>, Grp: <@g.example:m@n.example>;",
        );
        assert_eq!(
            list,
            vec![
                routed(Some("Joe"), "@a.example,@b.example", "joe", "c.example"),
                addr(None, Some("plain"), Some("z.example")),
                routed(None, "@a.example,@b.example", "spaced", "c.example"),
                addr(None, Some("Grp"), None),
                routed(None, "@g.example", "m", "n.example"),
                addr(None, None, None),
            ]
        );
    }

    #[test]
    fn display_names_stay_as_written_and_comments_are_not_names() {
        let list = address_list(
            "=?utf-8?Q?J=C3=B6rg?= <joerg@example.de>, Alice (home) <a@example.net>, \"Quoted, Name\" (c) <\"q r\"@x.org>",
        );
        assert_eq!(
            list,
            vec![
                addr(
                    Some("=?utf-8?Q?J=C3=B6rg?="),
                    Some("joerg"),
                    Some("example.de")
                ),
                addr(Some("Alice"), Some("a"), Some("example.net")),
                addr(Some("Quoted, Name"), Some("q r"), Some("x.org")),
            ]
        );
    }

    #[test]
    fn groups_bare_addresses_and_missing_domains() {
        let list = address_list(
            "Project Team: ann@x.org, bob@x.org;, undisclosed-recipients:;, root, eve@x.org (Eve)",
        );
        assert_eq!(
            list,
            vec![
                addr(None, Some("Project Team"), None),
                addr(None, Some("ann"), Some("x.org")),
                addr(None, Some("bob"), Some("x.org")),
                addr(None, None, None),
                addr(None, Some("undisclosed-recipients"), None),
                addr(None, None, None),
                addr(None, Some("root"), Some(MISSING_DOMAIN)),
                addr(Some("Eve"), Some("eve"), Some("x.org")),
            ]
        );
    }

    #[test]
    fn mailbox_lists_are_read_strictly() {
        let ok = |value: &str| mailbox_list(value).unwrap_or_else(|| panic!("{value:?}"));
        assert_eq!(
            ok("=?utf-8?Q?J=C3=B6rg?= <joerg@example.de>, Alice (home) <a@example.net>"),
            ["joerg@example.de", "a@example.net"]
        );
        assert_eq!(ok("eve@x.org (Eve)"), ["eve@x.org"]);
        assert_eq!(ok("\"Quoted, Name\" <\"q r\"@x.org>,"), ["q r@x.org"]);
        assert_eq!(ok("\"j d\"@x.org"), ["j d@x.org"]);
        assert_eq!(ok("(c) a@x.org ,, b@y.org"), ["a@x.org", "b@y.org"]);
        assert_eq!(ok("ceo@b.test <m@a.test>"), ["m@a.test"]);
        for refused in [
            "",
            "(only a comment)",
            "root",
            "<>",
            "Team: a@x.org;",
            "<ceo@b.test> <m@a.test>",
            "<ceo@b.test> m@a.test",
            "<m@a.test> ceo@b.test",
            "ceo@b.test m@a.test",
            "ceo@b.test@a.test",
            "<@relay.example:m@a.test>",
            "@a.test",
            "m@",
            "m@[192.0.2.1]",
            "=?utf-8?q?m=40a.test?=",
        ] {
            assert_eq!(mailbox_list(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn rfc2231_parameters_keep_their_star_and_continuations_join() {
        let params =
            parameters("application/pdf; name*=utf-8''%E2%82%AC%20rates.pdf; x=\"=?utf-8?Q?a?=\"");
        assert_eq!(
            params,
            vec![
                (
                    "name*".to_owned(),
                    "utf-8''%E2%82%AC%20rates.pdf".to_owned()
                ),
                ("x".to_owned(), "=?utf-8?Q?a?=".to_owned()),
            ]
        );
        let params = parameters(
            "attachment; filename*0*=utf-8'de'Gro%C3%9Fe; filename*1=\" Datei\"; title*0=\"a \"; title*1=b",
        );
        assert_eq!(
            params,
            vec![
                (
                    "filename*".to_owned(),
                    "utf-8'de'Gro%C3%9Fe%20Datei".to_owned()
                ),
                ("title".to_owned(), "a b".to_owned()),
            ]
        );
    }
}
