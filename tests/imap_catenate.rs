//! CATENATE (RFC 4469) as Python's imaplib sends it: imaplib has no CATENATE helper,
//! so the command goes through `_simple_command` with the TEXT part as an inline
//! LITERAL+ (RFC 7888). A message made of a header literal and a part of a stored
//! message reads back through FETCH BODY[] byte for byte; a URL with another
//! UIDVALIDITY is NO [BADURL url] (RFC 4469 §6) and stores nothing.

mod common;

use common::Transcript;

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)
print("caps", " ".join(m.capabilities))
source = (b"From: Bob <bob@example.net>\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
    b"first part\r\n--XX\r\nContent-Type: text/plain; name=b.txt\r\n\r\nsecond part\r\nline two\r\n--XX--\r\n")
print("source", m.append("INBOX", None, None, source)[0])
m.select("INBOX")
validity = int(m.response("UIDVALIDITY")[1][0])
header = b"From: Alice <alice@example.org>\r\nSubject: catenated\r\n\r\n"
typ, data = m._simple_command("APPEND", "INBOX",
    b"CATENATE (TEXT {%d+}\r\n%s URL \"/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=2\")" % (len(header), header, validity))
print("catenate", typ, data[0].decode())
typ, data = m.uid("FETCH", "2", "(BODY.PEEK[])")
body = data[0][1]
expected = header + b"second part\r\nline two"
print("body", "same" if body == expected else "differs: %r" % body)
bad = "/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=2" % (validity + 1)
typ, data = m._simple_command("APPEND", "INBOX", b"CATENATE (URL \"%s\")" % bad.encode())
print("badurl", typ, data[0].decode())
print("expected", "[BADURL %s]" % bad)
m.noop()
print("count", m.search(None, "ALL")[1][0].decode())
m.logout()
"#;

#[test]
fn catenate_builds_a_message_from_text_and_a_stored_part() {
    let out = Transcript::of_script(SESSION);
    out.assert_lines(&["source OK", "body same", "count 1 2"]);
    assert!(out.line("caps").contains(" CATENATE"), "{out}");
    assert!(
        out.line("catenate").starts_with("catenate OK [APPENDUID ")
            && out.line("catenate").contains(" 2]"),
        "{out}"
    );
    let expected = out.line("expected");
    let code = expected.trim_start_matches("expected ");
    assert!(
        out.line("badurl")
            .starts_with(&format!("badurl NO {code} ")),
        "{out}"
    );
}
