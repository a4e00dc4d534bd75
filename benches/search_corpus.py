#!/usr/bin/env python3
"""Corpus and client of benches/search-vs-dovecot.sh (stdlib only).

  search_corpus.py corpus DIR COUNT
      Writes COUNT messages into the Maildir DIR (cur/, with a dovecot-uidlist so that
      Dovecot and `letterbox import maildir` give every message the same UID). Made
      deterministically (a fixed seed) from real English text, the licences Debian
      ships in /usr/share/common-licenses: plain text, some of it non-ASCII; text
      attachments (base64 and quoted-printable); binary attachments (random bytes,
      base64); HTML alternatives. RARE_WORD is in a few bodies, text attachments and
      subjects.
  search_corpus.py search HOST PORT USER PASSWORD NAME REPEAT
      Times UID SEARCH TEXT and BODY for the rare and the common word on INBOX: one
      search first (not timed), then REPEAT timed, the median printed; prints the UIDs
      found to NAME.results for the script to compare.
"""
import email.utils
import imaplib
import os
import random
import statistics
import sys
import time
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.header import Header
from email.mime.nonmultipart import MIMENonMultipart
import email.charset

QP_UTF8 = email.charset.Charset("utf-8")
QP_UTF8.body_encoding = email.charset.QP

SEED = 18
RARE_WORD = "zanzibarite"
COMMON_WORD = "warranty"
LICENCES = "/usr/share/common-licenses"
UIDVALIDITY = 1700000000


def paragraphs():
    found = []
    for name in sorted(os.listdir(LICENCES)):
        path = os.path.join(LICENCES, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        found.extend(p.strip() for p in text.split("\n\n") if len(p.strip()) > 80)
    if not found:
        sys.exit("no text in %s" % LICENCES)
    return found


def message(n, rng, texts):
    def text(count):
        return "\n\n".join(rng.choice(texts) for _ in range(count))

    body = text(rng.randint(1, 4))
    if rng.random() < 0.15:
        body = "Viele Grüße aus Köln, ΣΟΦΙΑ.\n\n" + body
    subject = "Re: %s" % " ".join(rng.choice(texts).split()[:6])
    rare = n % 2000 == 7
    kind = rng.random()
    attachment_text = None
    if rare:
        where = (n // 2000) % 3
        if where == 0:
            body += "\n\nThe %s sample is ready.\n" % RARE_WORD
        elif where == 1:
            attachment_text = "id;mineral\n%d;%s\n" % (n, RARE_WORD)
        else:
            subject += " " + RARE_WORD
    if kind < 0.15 or attachment_text is not None:
        msg = MIMEMultipart("mixed")
        msg.attach(MIMEText(body, "plain", "utf-8"))
        content = (attachment_text or "") + text(rng.randint(1, 3))
        if rng.random() < 0.5:
            att = MIMEText(content, "plain", "utf-8")  # base64
        else:
            att = MIMENonMultipart("text", "plain")
            att.set_payload(content, QP_UTF8)
        att.add_header("Content-Disposition", "attachment", filename="notes-%d.txt" % n)
        msg.attach(att)
    elif kind < 0.25:
        msg = MIMEMultipart("mixed")
        msg.attach(MIMEText(body, "plain", "utf-8"))
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(4000, 30000)))
        att = MIMEApplication(blob, "octet-stream")
        att.add_header("Content-Disposition", "attachment", filename="scan-%d.bin" % n)
        msg.attach(att)
    elif kind < 0.30:
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(body, "plain", "utf-8"))
        html = "".join("<p>%s</p>" % p for p in body.split("\n\n"))
        msg.attach(MIMEText("<html><body>%s</body></html>" % html, "html", "utf-8"))
    else:
        msg = MIMEText(body, "plain", "utf-8")
    msg["Subject"] = Header(subject, "utf-8")
    msg["From"] = "Sender %d <sender%d@example.org>" % (n % 50, n % 50)
    msg["To"] = "you@localhost"
    msg["Date"] = email.utils.formatdate(1_700_000_000 + n * 60)
    msg["Message-ID"] = "<corpus-%d@example.org>" % n
    raw = msg.as_bytes()
    return raw.replace(b"\r\n", b"\n")


def corpus(directory, count):
    rng = random.Random(SEED)
    texts = paragraphs()
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    lines = ["3 V%d N%d" % (UIDVALIDITY, count + 1)]
    for n in range(count):
        base = "%d.M%dP1.corpus" % (1_700_000_000 + n, n)
        with open(os.path.join(directory, "cur", base + ":2,S"), "wb") as f:
            f.write(message(n, rng, texts))
        lines.append("%d :%s" % (n + 1, base))
    with open(os.path.join(directory, "dovecot-uidlist"), "w") as f:
        f.write("\n".join(lines) + "\n")


def search(host, port, user, password, name, repeat):
    m = imaplib.IMAP4(host, int(port))
    m.login(user, password)
    typ, data = m.select("INBOX", readonly=True)
    exists = int(data[0])
    results = []
    for key in ("TEXT", "BODY"):
        for label, word in (("rare", RARE_WORD), ("common", COMMON_WORD)):
            def once():
                typ, data = m.uid("SEARCH", key, word)
                if typ != "OK":
                    sys.exit("%s: UID SEARCH %s %s: %s %s" % (name, key, word, typ, data))
                return data[0].decode().split()
            found = once()
            times = []
            for _ in range(int(repeat)):
                start = time.perf_counter()
                again = once()
                times.append(time.perf_counter() - start)
                if again != found:
                    sys.exit("%s: SEARCH %s %s answered differently" % (name, key, word))
            median = statistics.median(times)
            print("%-18s %-4s %-6s %8.4f s  %6d of %d messages" % (
                name, key, label, median, len(found), exists))
            results.append("%s %s %s" % (key, label, " ".join(found)))
    m.logout()
    with open(name + ".results", "w") as f:
        f.write("\n".join(results) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["corpus"]:
        corpus(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["search"]:
        search(*sys.argv[2:8])
    else:
        sys.exit(__doc__)
