//! SORT and THREAD (RFC 5256) through Python's imaplib (`IMAP4.sort`, `IMAP4.thread`)
//! on mail delivered by smtplib. The differential test against Dovecot
//! (tests/imap_dovecot_diff.rs) checks every criterion on the whole corpus.

mod common;

use common::Transcript;

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"

def deliver(sender, subject, date, message_id, references=None, padding=0):
    headers = "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n" % (
        sender, user, subject, date, message_id)
    if references:
        headers += "References: %s\r\nIn-Reply-To: %s\r\n" % (references, references.split()[-1])
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    s.sendmail("sender@example.net", [user], (headers + "\r\nbody\r\n" + "x" * padding).encode())
    s.quit()

deliver("zed@example.net", "Budget 2027", "Tue, 03 Feb 2026 09:00:00 +0000", "<b1@example.net>", padding=900)
deliver("amy@example.net", "Re: Budget 2027", "Tue, 03 Feb 2026 10:00:00 +0000", "<b2@example.net>", "<b1@example.net>")
deliver("mia@example.net", "Lunch", "Mon, 02 Feb 2026 12:00:00 +0000", "<l1@example.net>", padding=400)
deliver("bob@example.net", "Re: Re: Budget 2027", "Wed, 04 Feb 2026 08:00:00 +0000", "<b3@example.net>", "<b1@example.net> <b2@example.net>")

m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
assert "SORT" in m.capabilities and "THREAD=REFERENCES" in m.capabilities, m.capabilities
m.login(user, password)
m.select("INBOX")
print("sort-date", m.sort("(DATE)", "UTF-8", "ALL"))
print("sort-reverse-date", m.sort("(REVERSE DATE)", "UTF-8", "ALL"))
print("sort-from", m.sort("(FROM)", "UTF-8", "ALL"))
print("sort-subject-size", m.sort("(SUBJECT REVERSE SIZE)", "UTF-8", "ALL"))
print("sort-searched", m.sort("(SIZE)", "UTF-8", "SUBJECT", "budget"))
print("uid-sort", m.uid("SORT", "(REVERSE SIZE)", "UTF-8", "ALL"))
print("thread-references", m.thread("REFERENCES", "UTF-8", "ALL"))
print("thread-orderedsubject", m.thread("ORDEREDSUBJECT", "UTF-8", "ALL"))
print("sort-charset", m._simple_command("SORT", "(DATE)", "KOI8-R", "ALL"), m.untagged_responses.get("NO"))
m.logout()
"#;

#[test]
fn imaplib_sorts_and_threads() {
    let out = Transcript::of_script(SESSION);
    // Messages: 1 Budget (Feb 3 09:00, largest), 2 Re: Budget (Feb 3 10:00),
    // 3 Lunch (Feb 2), 4 Re: Re: Budget (Feb 4).
    out.assert_lines(&[
        "sort-date ('OK', [b'3 1 2 4'])",
        "sort-reverse-date ('OK', [b'4 2 1 3'])",
        // amy, bob, mia, zed.
        "sort-from ('OK', [b'2 4 3 1'])",
        // Base subjects "budget 2027" (1, 2, 4; largest first) then "lunch".
        "sort-subject-size ('OK', [b'1 4 2 3'])",
        "sort-searched ('OK', [b'2 4 1'])",
        "uid-sort ('OK', [b'1 3 4 2'])",
        "thread-references ('OK', [b'(3)(1 2 4)'])",
        "thread-orderedsubject ('OK', [b'(3)(1 (2)(4))'])",
    ]);
    assert!(out.line("sort-charset").contains("NO"), "{out}");
}
