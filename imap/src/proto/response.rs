//! Writing responses (RFC 9051 §7): status responses with their codes, continuation
//! requests, and the string forms (quoted, literal, NIL) data items use.

use std::fmt;
use std::fmt::Write as _;

/// `resp-cond-state = ("OK" / "NO" / "BAD") SP resp-text`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        }
    }
}

/// Response codes (RFC 9051 §7.1, RFC 5530, RFC 4315, RFC 7889, RFC 3516, RFC 6154,
/// RFC 8474, RFC 5464).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Alert,
    AlreadyExists,
    /// RFC 4315 §3: `APPENDUID uidvalidity append-uid`, a UID set after MULTIAPPEND.
    AppendUid {
        validity: u32,
        uids: String,
    },
    AuthenticationFailed,
    BadCharset,
    Cannot,
    Capability(String),
    /// RFC 4469 §6: `"BADURL" SP url-resp-text`, a CATENATE URL that does not resolve.
    BadUrl(String),
    ClientBug,
    /// RFC 9051 §7.1: the previously selected mailbox is now closed.
    Closed,
    /// RFC 4978 §3: compression is already on.
    CompressionActive,
    /// RFC 4315 §3: `COPYUID uidvalidity source-uids dest-uids`
    CopyUid {
        validity: u32,
        source: String,
        destination: String,
    },
    ExpungeIssued,
    /// RFC 7162 §3.1.2.1: the mailbox's HIGHESTMODSEQ, on SELECT/EXAMINE.
    HighestModSeq(u64),
    Limit,
    /// RFC 8474 §4.1: `"MAILBOXID" SP "(" objectid ")"`, at CREATE and SELECT/EXAMINE.
    MailboxId(String),
    /// RFC 5464 §4.2.1: `"METADATA" SP "LONGENTRIES" SP number`, "the size of the biggest
    /// entry value requested by the client that exceeded the MAXSIZE limit".
    MetadataLongEntries(u64),
    /// RFC 5464 §4.3: `"METADATA" SP "MAXSIZE" SP number`, "the maximum octet count that
    /// it is willing to accept".
    MetadataMaxSize(u64),
    /// RFC 5464 §4.3: `"METADATA" SP "TOOMANY"`, "the maximum number of allowed
    /// annotations has already been reached".
    MetadataTooMany,
    /// RFC 7162 §3.1.3: messages a conditional STORE left alone.
    Modified(String),
    NonExistent,
    /// RFC 5465 §5.8 / §3.1: notifications were turned off, or would be too many.
    NotificationOverflow,
    /// RFC 5465 §8: `"BADEVENT" SP "(" event *(SP event) ")"`, listing "names of all
    /// events supported by the server" (§3.1).
    BadEvent(String),
    NoPerm,
    /// RFC 5267 §4.3.1: `"NOUPDATE" SP quoted`, the tag of a search not kept up to date.
    NoUpdate(String),
    OverQuota,
    PermanentFlags(String),
    PrivacyRequired,
    ReadOnly,
    ReadWrite,
    ServerBug,
    /// RFC 7889 §4 / RFC 4469: a literal over the limit.
    TooBig,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unavailable,
    /// RFC 3516 §4.2: a part with a Content-Transfer-Encoding we cannot decode.
    UnknownCte,
    /// RFC 3501 §7.1: the first unseen message (IMAP4rev1 only).
    Unseen(u32),
    /// RFC 6154 §3: an unsupported special-use attribute in CREATE.
    UseAttr,
    /// RFC 4467 §8: `"URLMECH" SP "INTERNAL" *(SP mechanism ["=" base64])`, the
    /// mechanisms a mailbox's key serves: INTERNAL only here.
    UrlMech,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Alert => f.write_str("ALERT"),
            Code::AlreadyExists => f.write_str("ALREADYEXISTS"),
            Code::AppendUid { validity, uids } => write!(f, "APPENDUID {validity} {uids}"),
            Code::AuthenticationFailed => f.write_str("AUTHENTICATIONFAILED"),
            Code::BadCharset => f.write_str("BADCHARSET (US-ASCII UTF-8)"),
            Code::Cannot => f.write_str("CANNOT"),
            Code::Capability(list) => write!(f, "CAPABILITY {list}"),
            Code::BadUrl(url) => write!(f, "BADURL {}", url_resp_text(url)),
            Code::ClientBug => f.write_str("CLIENTBUG"),
            Code::NotificationOverflow => f.write_str("NOTIFICATIONOVERFLOW"),
            Code::BadEvent(events) => write!(f, "BADEVENT ({events})"),
            Code::Closed => f.write_str("CLOSED"),
            Code::CompressionActive => f.write_str("COMPRESSIONACTIVE"),
            Code::CopyUid {
                validity,
                source,
                destination,
            } => write!(f, "COPYUID {validity} {source} {destination}"),
            Code::ExpungeIssued => f.write_str("EXPUNGEISSUED"),
            Code::HighestModSeq(modseq) => write!(f, "HIGHESTMODSEQ {modseq}"),
            Code::Limit => f.write_str("LIMIT"),
            Code::MailboxId(id) => write!(f, "MAILBOXID ({id})"),
            Code::MetadataLongEntries(size) => write!(f, "METADATA LONGENTRIES {size}"),
            Code::MetadataMaxSize(size) => write!(f, "METADATA MAXSIZE {size}"),
            Code::MetadataTooMany => f.write_str("METADATA TOOMANY"),
            Code::Modified(set) => write!(f, "MODIFIED {set}"),
            Code::NonExistent => f.write_str("NONEXISTENT"),
            Code::UrlMech => f.write_str("URLMECH INTERNAL"),
            Code::NoPerm => f.write_str("NOPERM"),
            Code::NoUpdate(tag) => write!(f, "NOUPDATE {}", string_text(tag, false)),
            Code::OverQuota => f.write_str("OVERQUOTA"),
            Code::PermanentFlags(flags) => write!(f, "PERMANENTFLAGS ({flags})"),
            Code::PrivacyRequired => f.write_str("PRIVACYREQUIRED"),
            Code::ReadOnly => f.write_str("READ-ONLY"),
            Code::ReadWrite => f.write_str("READ-WRITE"),
            Code::ServerBug => f.write_str("SERVERBUG"),
            Code::TooBig => f.write_str("TOOBIG"),
            Code::TryCreate => f.write_str("TRYCREATE"),
            Code::UidNext(uid) => write!(f, "UIDNEXT {uid}"),
            Code::UidValidity(validity) => write!(f, "UIDVALIDITY {validity}"),
            Code::Unavailable => f.write_str("UNAVAILABLE"),
            Code::UnknownCte => f.write_str("UNKNOWN-CTE"),
            Code::Unseen(seq) => write!(f, "UNSEEN {seq}"),
            Code::UseAttr => f.write_str("USEATTR"),
        }
    }
}

/// RFC 4469 §6: `url-resp-text = 1*(%x01-09 / %x0B-0C / %x0E-5B / %x5E-FE)`: the URL as
/// the client sent it, with what would end the response code (`]`, CR, LF) or is not
/// allowed there (`\`, NUL) replaced by `?`.
fn url_resp_text(url: &str) -> String {
    let text: String = url
        .chars()
        .map(|c| match c {
            '\0' | '\r' | '\n' | '\\' | ']' => '?',
            c => c,
        })
        .collect();
    if text.is_empty() { "?".into() } else { text }
}

fn status_line(out: &mut Vec<u8>, prefix: &str, status: Status, code: Option<&Code>, text: &str) {
    let mut line = String::with_capacity(prefix.len() + text.len() + 16);
    line.push_str(prefix);
    line.push(' ');
    line.push_str(status.as_str());
    line.push(' ');
    if let Some(code) = code {
        let _ = write!(line, "[{code}] ");
    }
    // resp-text must not contain CR or LF.
    line.extend(text.chars().filter(|&c| c != '\r' && c != '\n'));
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

/// `response-tagged = tag SP resp-cond-state CRLF`
pub fn tagged(out: &mut Vec<u8>, tag: &str, status: Status, code: Option<&Code>, text: &str) {
    status_line(out, tag, status, code, text);
}

/// `response-data = "*" SP resp-cond-state CRLF`
pub fn untagged_status(out: &mut Vec<u8>, status: Status, code: Option<&Code>, text: &str) {
    status_line(out, "*", status, code, text);
}

/// `resp-cond-bye = "BYE" SP resp-text`
pub fn bye(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"* BYE ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `continue-req = "+" SP (resp-text / base64) CRLF`
pub fn continuation(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An untagged data line: `* ` + `data` + CRLF.
pub fn untagged(out: &mut Vec<u8>, data: &str) {
    out.extend_from_slice(b"* ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// True when `bytes` can be sent as a quoted string: no CR, LF or NUL, and 8-bit only
/// as valid UTF-8 when the client accepts it (RFC 9051 §4.3, RFC 6855 §3).
fn quotable(bytes: &[u8], utf8: bool) -> bool {
    const MAX_QUOTED: usize = 1024;
    bytes.len() <= MAX_QUOTED
        && bytes.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0)
        && (bytes.is_ascii() || (utf8 && std::str::from_utf8(bytes).is_ok()))
}

/// `string = quoted / literal`: quoted when possible, otherwise a literal.
pub fn string(out: &mut Vec<u8>, bytes: &[u8], utf8: bool) {
    if quotable(bytes, utf8) {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, bytes);
    }
}

/// `literal = "{" number64 "}" CRLF *CHAR8`
pub fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// `literal8 = "~{" number64 "}" CRLF *OCTET` (RFC 3516), used when the data holds NUL.
pub fn literal8(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("~{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// `astring = 1*ASTRING-CHAR / string`: an atom when it can be one, else as [`string`].
pub fn astring(out: &mut Vec<u8>, bytes: &[u8], utf8: bool) {
    if !bytes.is_empty() && bytes.iter().all(|&b| super::tag::is_astring_char(b)) {
        out.extend_from_slice(bytes);
    } else {
        string(out, bytes, utf8);
    }
}

/// `nstring = string / nil`
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>, utf8: bool) {
    match value {
        Some(bytes) => string(out, bytes, utf8),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A string value as text for a line built with `format!`: quoted when possible, else
/// a literal (which carries its own CRLF inside the line, as the grammar allows).
pub fn string_text(value: &str, utf8: bool) -> String {
    let mut out = Vec::new();
    string(&mut out, value.as_bytes(), utf8);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_status_responses() {
        let mut out = Vec::new();
        tagged(
            &mut out,
            "a1",
            Status::Ok,
            Some(&Code::AppendUid {
                validity: 7,
                uids: "3".into(),
            }),
            "APPEND completed",
        );
        untagged_status(&mut out, Status::No, None, "bad\r\nline");
        bye(&mut out, "Server shutting down");
        continuation(&mut out, "Ready for literal data");
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "a1 OK [APPENDUID 7 3] APPEND completed\r\n* NO badline\r\n* BYE Server shutting down\r\n+ Ready for literal data\r\n"
        );
    }

    #[test]
    fn chooses_quoted_or_literal() {
        let mut out = Vec::new();
        string(&mut out, b"a \"b\" \\c", false);
        out.push(b' ');
        string(&mut out, "héllo".as_bytes(), false);
        out.push(b' ');
        string(&mut out, "héllo".as_bytes(), true);
        out.push(b' ');
        nstring(&mut out, None, false);
        out.push(b' ');
        string(&mut out, b"two\r\nlines", true);
        out.push(b' ');
        astring(&mut out, b"INBOX/a]b", false);
        out.push(b' ');
        astring(&mut out, b"", false);
        out.push(b' ');
        astring(&mut out, b"a b", false);
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "\"a \\\"b\\\" \\\\c\" {6}\r\nhéllo \"héllo\" NIL {10}\r\ntwo\r\nlines INBOX/a]b \"\" \"a b\""
        );
    }
}
