//! PREVIEW (RFC 8970) and SAVEDATE (RFC 8514) as a user of Python's imaplib sees them:
//! the preview of a plain message, of an HTML-only one and of a multipart/alternative;
//! non-ASCII preview text as a literal for a client that did not ENABLE UTF8=ACCEPT;
//! SAVEDATE after APPEND is the moment of the APPEND whatever the INTERNALDATE given,
//! a COPY gets the moment of the COPY (not the original's), an entry stored before save
//! dates were kept answers NIL, and the SAVED* search keys find them.

mod common;

use common::{TestServer, Transcript, block_on, python_client};
use sqlx::Connection;

/// After `common::PY_PRELUDE`.
const APPEND: &str = r#"
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)
for cap in ["PREVIEW", "SAVEDATE"]:
    assert cap in m.capabilities, (cap, m.capabilities)
plain = ("Subject: plain\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nHallo Bob,\r\n\r\nviele Gr\u00fc\u00dfe   aus K\u00f6ln.\r\n"
    "> what you wrote\r\n-- \r\nAlice\r\n").encode()
html = (b"Subject: html\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
    b"<html><head><title>Invoice</title><style>p { color: red }</style></head>\r\n"
    b"<body><p>Your <b>invoice</b> is ready.</p>\r\n<p>Total:   42 EUR</p></body></html>\r\n")
alternative = (b"Subject: alternative\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nThe plain part\r\nwins.\r\n"
    b"--b\r\nContent-Type: text/html\r\n\r\n<p>The html part</p>\r\n--b--\r\n")
for raw, date in [(plain, None), (html, None), (alternative, '"01-Feb-2002 10:00:00 +0000"'),
                  (b"Subject: old\r\n\r\nsaved long ago\r\n", '"01-Feb-2002 10:00:00 +0000"')]:
    typ, data = m.append("INBOX", None, date, raw)
    assert typ == "OK", (typ, data)
m.logout()
print("appended")
"#;

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
import calendar, re, time
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)

def fetch(seq, items):
    """The FETCH response with any literal inlined as {n}text."""
    parts = []
    for piece in ok(m.fetch(seq, items)):
        if isinstance(piece, tuple):
            parts.append(piece[0].decode() + piece[1].decode())
        else:
            parts.append(piece.decode())
    return "".join(parts)

def save_date(seq):
    text = fetch(seq, "(SAVEDATE)")
    found = re.search(r'SAVEDATE "([^"]+)"', text)
    if found is None:
        return text
    return calendar.timegm(time.strptime(found.group(1).strip(), "%d-%b-%Y %H:%M:%S +0000"))

ok(m.select("INBOX"))
for seq in ["1", "2", "3"]:
    print("preview-" + seq, fetch(seq, "(PREVIEW)"))
print("lazy", fetch("3", "(PREVIEW (LAZY))"))
print("savedate-aged", fetch("4", "(SAVEDATE)"))
print("savedate-unknown", fetch("3", "(SAVEDATE)"))
fresh = save_date("1")
print("append-now", abs(fresh - time.time()) < 60)

before = int(time.time())
ok(m.copy("4", "Archive"))
after = int(time.time())
yesterday = time.strftime("%d-%b-%Y", time.gmtime(time.time() - 86400))
print("inbox-saved-before", ok(m.search(None, "SAVEDBEFORE", yesterday)))
print("inbox-saved-since", ok(m.search(None, "SAVEDSINCE", yesterday)))
print("inbox-supported", ok(m.search(None, "SAVEDATESUPPORTED")))
print("inbox-saved-on", ok(m.search(None, "SAVEDON", "1-Mar-2001")))
ok(m.select("Archive"))
copied = save_date("1")
print("copy-time", before <= copied <= after, copied >= fresh)
print("copy-internaldate", fetch("1", "(INTERNALDATE)"))
print("archive-saved-since", ok(m.search(None, "SAVEDSINCE", yesterday)))
m.logout()
"#;

#[test]
fn preview_and_savedate_as_a_client_sees_them() {
    let server = TestServer::start();
    let out = python_client(&server, APPEND, &[]);
    assert!(out.contains("appended"), "{out}");

    // Message 4 as if saved into INBOX long ago (1 March 2001), message 3 as if stored
    // before save dates were kept.
    let url = server.storage_url();
    sqlx::any::install_default_drivers();
    block_on(async {
        let mut db = sqlx::AnyConnection::connect(&url).await.expect("connect");
        for (uid, save_date) in [(4i64, Some(983_440_800i64)), (3, None)] {
            sqlx::query(
                "UPDATE mailbox_messages SET save_date = $1 WHERE uid = $2
                 AND mailbox_id = (SELECT id FROM mailboxes WHERE name = 'INBOX')",
            )
            .bind(save_date)
            .bind(uid)
            .execute(&mut db)
            .await
            .expect("age the save date");
        }
    });

    Transcript(python_client(&server, SESSION, &[])).assert_lines(&[
        // Quoted lines are left out; the signature stays; 8-bit text comes as a literal
        // to a client that did not enable UTF-8 (RFC 8970 §7 `nstring`).
        "preview-1 1 (PREVIEW {44}Hallo Bob, viele Grüße aus Köln. -- Alice)",
        r#"preview-2 2 (PREVIEW "Your invoice is ready. Total: 42 EUR")"#,
        r#"preview-3 3 (PREVIEW "The plain part wins.")"#,
        r#"lazy 3 (PREVIEW "The plain part wins.")"#,
        r#"savedate-aged 4 (SAVEDATE " 1-Mar-2001 10:00:00 +0000")"#,
        "savedate-unknown 3 (SAVEDATE NIL)",
        "append-now True",
        // RFC 8514 §4.3: the unknown save date of message 3 searches as its internal date.
        "inbox-saved-before [b'3 4']",
        "inbox-saved-since [b'1 2']",
        "inbox-supported [b'1 2 3 4']",
        "inbox-saved-on [b'4']",
        // The copy is saved when copied; its internal date is the original's.
        "copy-time True True",
        r#"copy-internaldate 1 (INTERNALDATE " 1-Feb-2002 10:00:00 +0000")"#,
        "archive-saved-since [b'1']",
    ]);
}
