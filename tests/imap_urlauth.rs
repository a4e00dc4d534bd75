//! URLAUTH (RFC 4467) through Python's imaplib, with three users: the owner (A) makes
//! URLs to parts of a message in her INBOX with GENURLAUTH, and B and C use them with
//! URLFETCH and CATENATE. What each sees: a `submit+B` URL gives B the octets and A and
//! C NIL; a changed MAC, a past `;EXPIRE=`, a RESETKEY (of the mailbox, or of every key)
//! and an expunged message all give NIL; `anonymous` and `authuser` URLs give anyone the
//! section or partial they name; GENURLAUTH refuses what is not a rump of a message in
//! the user's own mailbox (BAD or NO with its code), RESETKEY an unknown mechanism. Run
//! on SQLite, and on PostgreSQL with `LETTERBOX_TEST_BACKEND=postgres`, as every
//! integration test. What Dovecot 2.3 answers alike is compared with it in
//! tests/imap_session_diff.rs (`urlauth_urls_answer_alike`).

mod common;

use common::{PY_RECORDING, PY_RUN, TestServer, Transcript, python_client};

/// After `common::PY_PRELUDE` and `common::PY_RECORDING`; argv 5..8 are B's and C's
/// addresses and passwords. `normal` makes what `common::PY_RUN` prints show the users'
/// addresses as A, B and C, the UIDVALIDITY as V and each INTERNAL MAC (64 hex digits)
/// as MAC.
const PRELUDE: &str = r#"
import re, urllib.parse
b_user, b_password, c_user, c_password = sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
enc = lambda u: urllib.parse.quote(u, safe="")

# RFC 4467 §6: commands imaplib does not know by name.
for name in ("GENURLAUTH", "URLFETCH", "RESETKEY"):
    imaplib.Commands[name] = ("AUTH", "SELECTED")

def login(name, secret):
    m = Recording("127.0.0.1", imaps, ssl_context=ctx)
    ok(m.login(name, secret))
    return m

validity = None
def normal(line):
    for name, label in ((user, "A"), (b_user, "B"), (c_user, "C")):
        line = line.replace(enc(name), label).replace(name, label)
    if validity is not None:
        line = line.replace("UIDVALIDITY=%d" % validity, "UIDVALIDITY=V")
        line = line.replace("UIDVALIDITY=%d" % (validity + 1), "UIDVALIDITY=V+1")
    return re.sub(r":internal:[0-9a-f]{64}", ":internal:MAC", line)

def gen(m, label, rump, mechanism="INTERNAL"):
    """GENURLAUTH of one rump; the URL it gave, or None."""
    lines = run(m, label, "GENURLAUTH", '"%s"' % rump, mechanism)
    found = re.match(r'\* GENURLAUTH "?([^" ]*)"?$', lines[0])
    return found.group(1) if found else None

def fetch(m, label, *urls):
    return run(m, label, "URLFETCH", *('"%s"' % u for u in urls))
"#;

const SESSION: &str = r#"
a = login(user, password)
print("capabilities", "URLAUTH" in a.capabilities)
report = (b"From: A <a@example.org>\r\nSubject: Quarterly report\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
    b"Figures attached.\r\n--XX\r\nContent-Type: text/plain; name=figures.txt\r\n\r\n"
    b"revenue 42\r\n--XX--\r\n")
note = b"From: A <a@example.org>\r\nSubject: Note\r\n\r\nshort-lived\r\n"
ok(a.append("INBOX", None, None, report)); ok(a.append("INBOX", None, None, note))
a.select("INBOX")
validity = int(a.response("UIDVALIDITY")[1][0])
base = "imap://%s@mail.example.org/INBOX;UIDVALIDITY=%d/;UID=1" % (enc(user), validity)
b = login(b_user, b_password)
c = login(c_user, c_password)

# A submit+B URL to the whole message: B may fetch it, A and C may not.
submit = gen(a, "gen-submit", base + ";URLAUTH=submit+" + enc(b_user))
fetch(b, "b-submit", submit)
fetch(a, "a-submit", submit)
fetch(c, "c-submit", submit)
user_b = gen(a, "gen-user", base + "/;SECTION=HEADER.FIELDS%20(SUBJECT);urlauth=user+" + enc(b_user))
fetch(b, "b-user", user_b)
fetch(c, "c-user", user_b)
# Any change of the MAC, or of the URL it covers, is NIL.
last = submit[-1]
fetch(b, "tampered-mac", submit[:-1] + ("0" if last != "0" else "1"))
fetch(b, "tampered-url", submit.replace(";UID=1", ";UID=2"))
fetch(b, "no-mac", base + ";URLAUTH=submit+" + enc(b_user))
fetch(b, "relative", "/INBOX/;UID=1")
# ;EXPIRE=: a date in the past is NIL, one in the future is not.
gen(a, "gen-past", base + "/;SECTION=2;EXPIRE=2020-01-01T00:00:00Z;URLAUTH=anonymous")
import datetime, time
# Whole seconds: at least 2 s ahead, so a slow machine still fetches it before it expires.
soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
soon = gen(a, "gen-soon", base + "/;SECTION=2;EXPIRE=" + soon + ";URLAUTH=anonymous")
print("soon-before", fetch(b, "soon-before-line", soon)[0].endswith(" {10}\\r\\nrevenue 42"))
time.sleep(4)  # the expiry is a moment on the clock: nothing to wait for but time
print("soon-after", fetch(b, "soon-after-line", soon)[0].endswith(" NIL"))
future = gen(a, "gen-future", base + "/;SECTION=2;EXPIRE=2099-01-01T00:00:00+01:00;URLAUTH=anonymous")
fetch(b, "future", future)
# anonymous and authuser: any user; a section, a partial of a section.
anonymous = gen(a, "gen-anonymous", base + "/;SECTION=2;URLAUTH=anonymous")
fetch(c, "c-anonymous", anonymous)
partial = gen(a, "gen-partial", base + "/;SECTION=1/;PARTIAL=8.4;URLAUTH=authuser")
fetch(c, "c-partial", partial)
fetch(c, "missing-section", gen(a, "gen-missing", base + "/;SECTION=3;URLAUTH=anonymous"))
# Several URLs in one command, each answered in order.
fetch(b, "several", anonymous, "imap://nobody@h/INBOX/;UID=1;URLAUTH=anonymous:internal:" + "F" * 64, partial)
# CATENATE of another user's message through a URLAUTH URL.
run(b, "catenate", "APPEND", "INBOX", 'CATENATE (URL "%s" TEXT {6+}\r\nhello!)' % user_b)
b.select("INBOX")
print("catenated", escape(b.fetch("1", "(BODY.PEEK[])")[1][0][1]))
run(b, "catenate-anonymous", "APPEND", "INBOX", 'CATENATE (URL "%s")' % anonymous)
print("catenated-anonymous", escape(b.fetch("2", "(BODY.PEEK[])")[1][0][1]))
run(b, "catenate-tampered", "APPEND", "INBOX", 'CATENATE (URL "%s")' % (anonymous[:-1] + ("0" if anonymous[-1] != "0" else "1")))
# An expunged message is NIL.
note_url = gen(a, "gen-note", base.replace(";UID=1", ";UID=2") + ";URLAUTH=anonymous")
fetch(c, "note", note_url)
a.store("2", "+FLAGS", "\\Deleted"); a.expunge()
fetch(c, "expunged", note_url)
# RESETKEY INBOX: URLs made before are NIL, a new one works.
run(a, "resetkey-inbox", "RESETKEY", "INBOX")
fetch(b, "after-reset", submit)
again = gen(a, "gen-again", base + ";URLAUTH=submit+" + enc(b_user))
print("same-mac", again == submit)
fetch(b, "again", again)
# RESETKEY alone: every key of the user goes.
run(a, "resetkey-all", "RESETKEY")
fetch(b, "after-reset-all", again)
fetch(c, "after-reset-all-anonymous", anonymous)
# What GENURLAUTH and RESETKEY refuse.
gen(a, "gen-no-access", base)
gen(a, "gen-with-mac", again)
gen(a, "gen-other-user", base.replace(enc(user), enc(b_user)) + ";URLAUTH=anonymous")
gen(b, "gen-b-for-a", base + ";URLAUTH=anonymous")
gen(a, "gen-no-mailbox", base.replace("/INBOX;", "/Nonexistent;") + ";URLAUTH=anonymous")
gen(a, "gen-no-message", base.replace(";UID=1", ";UID=9") + ";URLAUTH=anonymous")
gen(a, "gen-other-validity", base.replace("UIDVALIDITY=%d" % validity, "UIDVALIDITY=%d" % (validity + 1)) + ";URLAUTH=anonymous")
gen(a, "gen-mechanism", base + ";URLAUTH=anonymous", "XY.Z-UNKNOWN")
gen(a, "gen-relative", "/INBOX/;UID=1;URLAUTH=anonymous")
run(a, "resetkey-mechanism", "RESETKEY", "INBOX", "XY.Z-UNKNOWN")
run(a, "resetkey-missing", "RESETKEY", "Nonexistent")
run(a, "urlfetch-empty", "URLFETCH")
for m in (a, b, c):
    m.logout()
"#;

fn transcript() -> Transcript {
    let server = TestServer::start();
    let domain = server
        .email
        .split_once('@')
        .map(|(_, domain)| domain.to_owned())
        .expect("the first account has a domain");
    let (b, c) = (format!("bob@{domain}"), format!("carol@{domain}"));
    server.add_user(&b, "pw-bob");
    server.add_user(&c, "pw-carol");
    Transcript(python_client(
        &server,
        &format!("{PY_RECORDING}{PRELUDE}{PY_RUN}{SESSION}"),
        &[&b, "pw-bob", &c, "pw-carol"],
    ))
}

#[test]
fn imaplib_generates_fetches_and_revokes_urlauth_urls() {
    let out = transcript();
    let base = "imap://A@mail.example.org/INBOX;UIDVALIDITY=V/;UID=1";
    let report = r"From: A <a@example.org>\r\nSubject: Quarterly report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nFigures attached.\r\n--XX\r\nContent-Type: text/plain; name=figures.txt\r\n\r\nrevenue 42\r\n--XX--\r\n";
    let submit = format!("{base};URLAUTH=submit+B:internal:MAC");
    let user_b = format!("{base}/;SECTION=HEADER.FIELDS%20(SUBJECT);urlauth=user+B:internal:MAC");
    let anonymous = format!("{base}/;SECTION=2;URLAUTH=anonymous:internal:MAC");
    let partial = format!("{base}/;SECTION=1/;PARTIAL=8.4;URLAUTH=authuser:internal:MAC");
    let expected = [
        "capabilities True".to_owned(),
        format!(r#"gen-submit * GENURLAUTH "{submit}" | OK GENURLAUTH completed"#),
        format!(r#"b-submit * URLFETCH "{submit}" {{242}}\r\n{report} | OK URLFETCH completed"#),
        format!(r#"a-submit * URLFETCH "{submit}" NIL | OK URLFETCH completed"#),
        format!(r#"c-submit * URLFETCH "{submit}" NIL | OK URLFETCH completed"#),
        format!(r#"gen-user * GENURLAUTH "{user_b}" | OK GENURLAUTH completed"#),
        format!(
            r#"b-user * URLFETCH "{user_b}" {{29}}\r\nSubject: Quarterly report\r\n\r\n | OK URLFETCH completed"#
        ),
        format!(r#"c-user * URLFETCH "{user_b}" NIL | OK URLFETCH completed"#),
        format!(r#"tampered-url * URLFETCH "{}" NIL | OK URLFETCH completed"#, submit.replace(";UID=1", ";UID=2")),
        format!(r#"no-mac * URLFETCH "{base};URLAUTH=submit+B" NIL | OK URLFETCH completed"#),
        r#"relative * URLFETCH /INBOX/;UID=1 NIL | OK URLFETCH completed"#.to_owned(),
        "gen-past BAD URLAUTH has already expired".to_owned(),
        "soon-before True".to_owned(),
        "soon-after True".to_owned(),
        format!(
            r#"future * URLFETCH "{base}/;SECTION=2;EXPIRE=2099-01-01T00:00:00+01:00;URLAUTH=anonymous:internal:MAC" {{10}}\r\nrevenue 42 | OK URLFETCH completed"#
        ),
        format!(r#"c-anonymous * URLFETCH "{anonymous}" {{10}}\r\nrevenue 42 | OK URLFETCH completed"#),
        format!(r#"c-partial * URLFETCH "{partial}" {{4}}\r\natta | OK URLFETCH completed"#),
        format!(
            r#"missing-section * URLFETCH "{base}/;SECTION=3;URLAUTH=anonymous:internal:MAC" NIL | OK URLFETCH completed"#
        ),
        format!(
            r#"several * URLFETCH "{anonymous}" {{10}}\r\nrevenue 42 | * URLFETCH imap://nobody@h/INBOX/;UID=1;URLAUTH=anonymous:internal:FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF NIL | * URLFETCH "{partial}" {{4}}\r\natta | OK URLFETCH completed"#
        ),
        r"note * URLFETCH ".to_owned(),
        "resetkey-inbox OK [URLMECH INTERNAL] RESETKEY completed".to_owned(),
        format!(r#"after-reset * URLFETCH "{submit}" NIL | OK URLFETCH completed"#),
        "same-mac False".to_owned(),
        format!(r#"again * URLFETCH "{submit}" {{242}}\r\n{report} | OK URLFETCH completed"#),
        "resetkey-all OK All keys removed".to_owned(),
        format!(r#"after-reset-all * URLFETCH "{submit}" NIL | OK URLFETCH completed"#),
        format!(r#"after-reset-all-anonymous * URLFETCH "{anonymous}" NIL | OK URLFETCH completed"#),
        "gen-no-access BAD Not a URLAUTH-ready IMAP URL (imap://user@host/mailbox/;UID=n;URLAUTH=access)".to_owned(),
        "gen-with-mac BAD URLAUTH token already in supplied URL".to_owned(),
        "gen-other-user NO [NOPERM] The URL must name the logged-in user".to_owned(),
        "gen-b-for-a NO [NOPERM] The URL must name the logged-in user".to_owned(),
        "gen-no-mailbox NO [NONEXISTENT] No such mailbox".to_owned(),
        "gen-no-message NO [BADURL imap://A@mail.example.org/INBOX;UIDVALIDITY=V/;UID=9;URLAUTH=anonymous] The URL names no message".to_owned(),
        "gen-other-validity NO [BADURL imap://A@mail.example.org/INBOX;UIDVALIDITY=V+1/;UID=1;URLAUTH=anonymous] The URL names no message".to_owned(),
        "gen-mechanism BAD [URLMECH INTERNAL] XY.Z-UNKNOWN mechanism invalid".to_owned(),
        "gen-relative BAD Not a URLAUTH-ready IMAP URL (imap://user@host/mailbox/;UID=n;URLAUTH=access)".to_owned(),
        "resetkey-mechanism BAD [URLMECH INTERNAL] XY.Z-UNKNOWN mechanism invalid".to_owned(),
        "resetkey-missing NO [NONEXISTENT] No such mailbox".to_owned(),
        "urlfetch-empty BAD Expected a URL".to_owned(),
        // What B's CATENATE of A's parts holds (RFC 4469 §5).
        r"catenated Subject: Quarterly report\r\n\r\nhello!".to_owned(),
        "catenated-anonymous revenue 42".to_owned(),
    ];
    for line in &expected {
        let label = line.split(' ').next().unwrap_or(line);
        let seen = out.line(label);
        if label == "note" {
            // Its octets are checked below; the line starts as any URLFETCH does.
            assert!(seen.starts_with(line), "{out}");
        } else {
            assert_eq!(&seen, line, "{out}");
        }
    }
    // The tampered MAC is the same URL but one hex digit: NIL whatever it became.
    let tampered = out.line("tampered-mac");
    assert!(
        tampered.starts_with(&format!(
            r#"tampered-mac * URLFETCH "{base};URLAUTH=submit+B:internal:"#
        )) && tampered.ends_with(r#"" NIL | OK URLFETCH completed"#),
        "{out}"
    );
    assert!(
        out.line("note")
            .ends_with(r"\r\nFrom: A <a@example.org>\r\nSubject: Note\r\n\r\nshort-lived\r\n | OK URLFETCH completed"),
        "{out}"
    );
    assert!(
        out.line("expunged")
            .ends_with(r#"" NIL | OK URLFETCH completed"#),
        "{out}"
    );
    // RFC 4469 §5 with URLAUTH: B builds a message from A's parts (what the messages hold
    // is in the table above); a bad MAC is BADURL.
    assert!(
        out.line("catenate").starts_with("catenate OK [APPENDUID "),
        "{out}"
    );
    assert!(
        out.line("catenate-anonymous").contains(" OK [APPENDUID "),
        "{out}"
    );
    assert!(
        out.line("catenate-tampered")
            .starts_with("catenate-tampered NO [BADURL "),
        "{out}"
    );
}
