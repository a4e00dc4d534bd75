//! ESORT (RFC 5267 §3) and SORT=DISPLAY (RFC 5957) through Python's imaplib, on mail
//! delivered by smtplib: what a client that sorts by sender name, or asks only for the
//! first, last and count of a sorted list, is told. tests/imap_session_diff.rs compares
//! the same commands with Dovecot's answers.

mod common;

use common::Transcript;

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
import re

def deliver(sender, subject, date):
    headers = "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n" % (sender, user, subject, date)
    s = smtplib.SMTP("127.0.0.1", smtp_port)
    s.sendmail("sender@example.net", [user], (headers + "\r\nbody\r\n").encode())
    s.quit()

deliver('"Zed Zebra" <aaa@example.net>', "c", "Tue, 03 Feb 2026 09:00:00 +0000")
deliver("bob@example.net", "a", "Sun, 01 Feb 2026 09:00:00 +0000")
deliver("=?utf-8?q?=C3=89mile?= <zz@example.net>", "b", "Wed, 04 Feb 2026 09:00:00 +0000")
deliver('"" <carol@example.net>', "d", "Mon, 02 Feb 2026 09:00:00 +0000")

def esearch(*args):
    # imaplib's tags vary between runs: the correlator is checked, then written as "t".
    tag = m.tagpre + str(m.tagnum).encode()
    typ, _ = m._simple_command(*args)
    data = m.untagged_responses.pop("ESEARCH", [])
    return typ, [d.replace(b'(TAG "%s")' % tag, b'(TAG "t")') for d in data]

m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
print("capabilities", "ESORT" in m.capabilities, "SORT=DISPLAY" in m.capabilities)
m.login(user, password)
m.select("INBOX")
print("esort-subject", esearch("SORT", "RETURN", "(MIN MAX COUNT ALL)", "(SUBJECT)", "UTF-8", "ALL"))
print("esort-uid-date", esearch("UID", "SORT", "RETURN", "(MIN MAX)", "(DATE)", "UTF-8", "ALL"))
print("esort-none", esearch("SORT", "RETURN", "(MIN COUNT)", "(DATE)", "UTF-8", "DELETED"))
print("sort-displayfrom", m.sort("(DISPLAYFROM)", "UTF-8", "ALL"))
print("sort-reverse-displayfrom", m.sort("(REVERSE DISPLAYFROM)", "UTF-8", "ALL"))
print("esort-save-min", esearch("SORT", "RETURN", "(SAVE MIN)", "(DISPLAYFROM)", "UTF-8", "ALL"))
print("search-saved", m.search(None, "$"))
m.logout()
"#;

#[test]
fn imaplib_sorts_by_display_name_and_gets_esearch_answers() {
    let out = Transcript::of_script(SESSION);
    out.assert_lines(&[
        "capabilities True True",
        // Subjects a (2), b (3), c (1), d (4): MIN and MAX in sort order, ALL in sort order.
        r#"esort-subject ('OK', [b'(TAG "t") MIN 2 MAX 4 ALL 2:3,1,4 COUNT 4'])"#,
        // Dates: 2 (Feb 1), 4, 1, 3 (Feb 4).
        r#"esort-uid-date ('OK', [b'(TAG "t") UID MIN 2 MAX 3'])"#,
        r#"esort-none ('OK', [b'(TAG "t") COUNT 0'])"#,
        // RFC 5957 §2: BOB@EXAMPLE.NET (no name), CAROL@EXAMPLE.NET (empty name), Émile
        // (decoded), Zed Zebra.
        "sort-displayfrom ('OK', [b'2 4 3 1'])",
        "sort-reverse-displayfrom ('OK', [b'1 3 4 2'])",
        // RFC 5182 §2.4: with MIN alone, only that message is saved.
        r#"esort-save-min ('OK', [b'(TAG "t") MIN 2'])"#,
        "search-saved ('OK', [b'2'])",
    ]);
}
