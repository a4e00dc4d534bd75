//! SEARCH BODY and TEXT through the full-text index (issue 18), as imaplib sees them:
//! on a corpus with text and binary attachments, non-ASCII text, encoded headers,
//! nested messages, a message too large to index, copies and expunged messages, the
//! answers with the index are those of a full scan of the messages (the index emptied,
//! every message pending) and those after `letterbox reindex`, on SQLite and PostgreSQL.

mod common;

use common::postgres::PostgresDatabase;
use common::{TestServer, block_on, python_client};
use sqlx::Connection;

/// argv: IMAPS port, SMTP port, user, password, then `fill` or `search`.
const SCRIPT: &str = r#"
import imaplib, smtplib, ssl, sys, base64
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.header import Header

imaps, smtp_port, user, password, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)

WORDS = ("the quick brown fox jumps over lazy dogs while report numbers and "
         "meeting notes pile up near the harbour office").split()

def corpus():
    # Deterministic: message n's words are chosen by n.
    out = []
    for n in range(40):
        words = " ".join(WORDS[(n * 7 + k) % len(WORDS)] for k in range(30))
        kind = n % 8
        if kind == 0:
            msg = MIMEText("Plain words: %s\nline one\nline two\n" % words, "plain", "utf-8")
        elif kind == 1:
            msg = MIMEMultipart("mixed")
            msg.attach(MIMEText("See the attached table. %s" % words))
            att = MIMEText("id,name\n%d,zanzibarite%d\n" % (n, n), "csv", "utf-8")
            att.add_header("Content-Disposition", "attachment", filename="table%d.csv" % n)
            msg.attach(att)
        elif kind == 2:
            msg = MIMEMultipart("mixed")
            msg.attach(MIMEText("A picture follows. %s" % words))
            msg.attach(MIMEApplication(b"\x89PNG\r\n secretbinaryword \x00\xff" * 20, "octet-stream"))
        elif kind == 3:
            msg = MIMEText("Viele Grüße aus Köln, ΣΟΦΙΑ und ΟΔΟΣ. 300 \u212a. %s" % words, "plain", "utf-8")
        elif kind == 4:
            msg = MIMEMultipart("alternative")
            msg.attach(MIMEText("quixotic plan, %s" % words))
            msg.attach(MIMEText("<p>quixotic <b>plan</b>, 100%_done say \"hi\"</p>", "html"))
        elif kind == 5:
            inner = EmailMessage()
            inner["Subject"] = "Forwarded inner subject %d" % n
            inner["From"] = "inner@example.net"
            inner.set_content("nested body words %s" % words)
            msg = MIMEMultipart("mixed")
            msg.attach(MIMEText("Forwarding this."))
            msg.attach(MIMEMessage(inner))
        elif kind == 6:
            msg = MIMEText("Short.", "plain", "us-ascii")
        else:
            msg = MIMEText(base64.b64encode(words.encode()).decode() + "\n", "plain", "us-ascii")
        msg["Subject"] = Header("Bericht %d aus Köln" % n if n % 3 == 0 else "Report %d" % n, "utf-8")
        msg["From"] = "Sender %d <sender%d@example.org>" % (n % 5, n % 5)
        msg["To"] = user
        msg["X-Tracking"] = "track-%04d" % n
        out.append(msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    # One over MAX_INDEXED_TEXT_BYTES (4 MiB of text): searched without the index.
    big = MIMEText(("filler text " * 400000) + "needleinbigmessage\n", "plain", "us-ascii")
    big["Subject"] = "Large"
    out.append(big.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return out

NEEDLES = [
    ("BODY", "zanzibarite"), ("BODY", "zanzibarite17"), ("TEXT", "ZANZIBARITE25"),
    ("BODY", "secretbinaryword"), ("TEXT", "secretbinaryword"),
    ("BODY", "quixotic"), ("BODY", "100%_done"), ("BODY", 'say "hi"'), ("BODY", "100_"),
    ("BODY", "grüße"), ("BODY", "GRÜSSE"), ("TEXT", "köln"), ("BODY", "köln"),
    ("BODY", "σοφια"), ("BODY", "οδος"), ("BODY", "300 k"),
    ("BODY", "the"), ("TEXT", "report"), ("BODY", "harbour office"),
    ("TEXT", "forwarded inner subject"), ("BODY", "forwarded inner"),
    ("TEXT", "content-disposition: attachment"), ("TEXT", "x-tracking: track-001"),
    ("TEXT", "sender 3 <sender3@"), ("TEXT", "bericht"), ("BODY", "bericht"),
    ("BODY", "needleinbigmessage"), ("TEXT", "needleinbigmessage"),
    ("BODY", "ab"), ("TEXT", "o"), ("BODY", ""), ("TEXT", "line one\nline two"),
    ("BODY", "line one\nline two"), ("BODY", "nowhere-to-be-found"),
]
COMPOUND = [
    'BODY "the" BODY "report"', 'OR BODY "quixotic" BODY "zanzibarite"',
    'NOT BODY "the"', 'TEXT "köln" NOT BODY "köln"', 'BODY "nested" FROM "sender2"',
    'UID 1:20 TEXT "report"',
    # Indexed keys with flags, and with a string the index cannot answer for.
    'BODY "the" FLAGGED', 'TEXT "report" NOT FLAGGED', 'BODY "the" BODY "ab"',
    'TEXT "bericht" OR FLAGGED BODY "ab"',
]

if mode == "fill":
    m.create("Archive")
    for raw in corpus():
        m.append("INBOX", None, None, raw)
    # By SMTP too, as mail from another server arrives.
    with smtplib.SMTP("127.0.0.1", smtp_port) as s:
        s.sendmail("friend@example.org", [user],
                   b"From: friend@example.org\r\nTo: " + user.encode() + b"\r\nSubject: by smtp\r\n\r\nzanzibarite via smtp\r\n")
    m.select("INBOX")
    # Copies keep their text; the originals of some go.
    m.uid("COPY", "1:12", "Archive")
    m.uid("STORE", "3:9,30", "+FLAGS", "(\\Flagged)")
    m.uid("STORE", "2,10,18,20", "+FLAGS", "(\\Deleted)")
    m.expunge()
    print("filled")
else:
    for mailbox in ("INBOX", "Archive"):
        m.select(mailbox)
        for key, needle in NEEDLES:
            m.literal = needle.encode()
            typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", key)
            print("%s %s %r %s %s" % (mailbox, key, needle, typ, data[0].decode()))
        for criteria in COMPOUND:
            typ, data = m.uid("SEARCH", "CHARSET", "UTF-8", criteria.encode())
            print("%s %s %s %s" % (mailbox, criteria, typ, data[0].decode()))
m.logout()
"#;

/// Empties the full-text index: every message is pending, searched by a full scan.
fn drop_index(url: &str) {
    sqlx::any::install_default_drivers();
    block_on(async {
        let mut db = sqlx::AnyConnection::connect(url).await.expect("connect");
        for sql in [
            "DELETE FROM message_fulltext",
            // Not queued (0): the server's indexer leaves them pending.
            "INSERT INTO fulltext_pending (message_id, queued) SELECT id, 0 FROM messages
             WHERE id NOT IN (SELECT message_id FROM fulltext_pending)",
        ] {
            sqlx::query(sql).execute(&mut db).await.expect(sql);
        }
    });
}

/// The answer line of the search labelled `label` (mailbox, key and needle).
fn answer<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in\n{out}"))
}

fn search_answers_equal_a_full_scan(server: TestServer) {
    assert_eq!(python_client(&server, SCRIPT, &["fill"]).trim(), "filled");
    let indexed = python_client(&server, SCRIPT, &["search"]);
    // What a user sees: UIDs of INBOX (1-41 appended, 42 by SMTP; 2, 10, 18, 20 gone).
    for (query, expected) in [
        ("INBOX BODY 'zanzibarite' ", "OK 26 34 42"),
        ("Archive BODY 'zanzibarite' ", "OK 2 10"),
        ("INBOX BODY 'zanzibarite17' ", "OK "),
        ("INBOX TEXT 'ZANZIBARITE25' ", "OK 26"),
        ("INBOX BODY 'secretbinaryword' ", "OK "),
        ("INBOX BODY 'grüße' ", "OK 4 12 28 36"),
        ("INBOX BODY 'σοφια' ", "OK 4 12 28 36"),
        ("INBOX BODY '300 k' ", "OK 4 12 28 36"),
        ("INBOX BODY '100%_done' ", "OK 5 13 21 29 37"),
        ("INBOX BODY '100_' ", "OK "),
        ("INBOX BODY 'needleinbigmessage' ", "OK 41"),
        ("INBOX TEXT 'needleinbigmessage' ", "OK 41"),
        (
            "INBOX TEXT 'x-tracking: track-001' ",
            "OK 11 12 13 14 15 16 17 19",
        ),
        ("INBOX BODY 'köln' ", "OK 4 12 28 36"),
        // Across a line break (not through the index's candidates, still from its text).
        ("INBOX BODY 'line one\\nline two' ", "OK 1 9 17 25 33"),
    ] {
        assert_eq!(answer(&indexed, query), expected, "{query}");
    }

    drop_index(&server.storage_url());
    let scanned = python_client(&server, SCRIPT, &["search"]);
    assert_eq!(indexed, scanned, "the index answers as a full scan does");

    let reindexed = server.admin_ok(&["reindex", "--user", &server.email]);
    // 42 placed, 4 expunged from INBOX of which 2 are still in Archive (a copy is the
    // same message).
    assert_eq!(reindexed.trim(), "indexed 40 messages");
    let after = python_client(&server, SCRIPT, &["search"]);
    assert_eq!(indexed, after, "after reindex");
}

#[test]
fn search_through_the_index_on_sqlite() {
    search_answers_equal_a_full_scan(TestServer::start());
}

#[test]
fn search_through_the_index_on_postgres() {
    let database = block_on(PostgresDatabase::create());
    let server = TestServer::start_node(&database.url, "");
    search_answers_equal_a_full_scan(server);
}
