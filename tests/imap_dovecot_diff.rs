//! Differential test against Dovecot: the same corpus of tricky messages
//! (`tests/corpus/*.eml`, CRLF, APPENDed byte for byte and in the same order) goes into
//! a private, loopback-only Dovecot and into letterbox; then ENVELOPE, BODYSTRUCTURE,
//! BODY, RFC822.SIZE, BODY[] / [HEADER] / [TEXT] / [HEADER.FIELDS (..)] /
//! [HEADER.FIELDS.NOT (..)], partial fetches, PREVIEW (RFC 8970: the same algorithm as
//! Dovecot's, so the same text), and [n], [n.MIME] (and [n.HEADER],
//! [n.TEXT] for message/rfc822 parts) for every part Dovecot's BODYSTRUCTURE shows, and
//! a set of SEARCH queries are asked of both and compared. Any difference fails, unless
//! RFC 9051 allows both answers.
//!
//! Needs Debian's `dovecot-imapd` (CI's `.ci/run` installs it; this test installs
//! nothing and fails if it is missing). The client is a raw IMAP client in Python
//! (`CLIENT` below) that parses every answer into NIL / number / string / list, so
//! representation does not count: a literal and a quoted string with the same bytes are
//! equal, NIL in any case is NIL, FETCH items are looked up by name whatever their order
//! and section names compare without case or quotes. Beyond that, only these answers are
//! taken as equal, each with its sentence at the function that does it:
//! - MIME type, subtype, encoding, parameter and disposition names in any case
//!   (`normalise_body`, `normalise_params`, `normalise_disposition`);
//! - a text part without charset and one with charset us-ascii (`normalise_params`);
//! - an RFC 2231 `name*` value decoded to UTF-8 or not (`normalise_params`);
//! - a body language as a string or a list of one (`normalise_language`);
//! - an address's mailbox name with or without its quoted-string quotes
//!   (`normalise_envelope`);
//! - SENTBEFORE on the message without a Date: field, and HEADER.FIELDS of a message
//!   with no blank line after its header (`allowed_difference`).
//!
//! Every answer of both servers is written to
//! `$CARGO_TARGET_TMPDIR/imap_dovecot_diff/answers.txt`, the differences beside it.

mod common;

use common::dovecot::{DOVECOT_PASSWORD, DOVECOT_USER, Dovecot};
use common::{TestServer, path_str, python};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One question asked of both servers: (message file or "search", item or query).
type Question = (String, String);

#[test]
fn letterbox_answers_fetch_and_search_like_dovecot() {
    let dovecot = Dovecot::start();
    let server = TestServer::start();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let count = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count();
    assert!(count >= 30, "corpus has {count} messages");

    let output = python(
        CLIENT,
        &[
            path_str(&corpus),
            &format!(
                "plain:127.0.0.1:{}:{DOVECOT_USER}:{DOVECOT_PASSWORD}",
                dovecot.port
            ),
            &format!(
                "tls:127.0.0.1:{}:{}:{}",
                server.port("imaps"),
                server.email,
                server.password
            ),
        ],
    );
    let report_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("imap_dovecot_diff");
    std::fs::create_dir_all(&report_dir).expect("report dir");
    std::fs::write(report_dir.join("answers.txt"), &output).expect("write answers");

    // Answers by question, in the order they were asked: [dovecot, letterbox].
    let mut order: Vec<Question> = Vec::new();
    let mut answers: BTreeMap<Question, [Option<String>; 2]> = BTreeMap::new();
    for line in output.lines() {
        let mut fields = line.splitn(4, '\t');
        let (Some(side), Some(what), Some(item), Some(answer)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            panic!("unexpected client output line: {line}");
        };
        let side: usize = side.parse().expect("side");
        if what == "error" {
            if side == 0 {
                panic!("dovecot failed ({item}): {answer}\nlog:\n{}", dovecot.log());
            }
            // Letterbox could not be driven at all, or stopped answering: say so, not
            // hundreds of "(no answer)" lines.
            panic!(
                "letterbox failed ({item}): {answer}\ndovecot's answers are in {}\nletterbox log (tail):\n{}",
                report_dir.join("answers.txt").display(),
                tail(&server.log(), 40)
            );
        }
        let question = (what.to_owned(), item.to_owned());
        let slot = answers.entry(question.clone()).or_insert_with(|| {
            order.push(question);
            [None, None]
        });
        slot[side] = Some(answer.to_owned());
    }
    assert!(
        order.len() > 30 * 10,
        "too few answers from dovecot:\n{output}"
    );

    let mut failures = Vec::new();
    let mut accepted = Vec::new();
    for question in &order {
        let [theirs, ours] = &answers[question];
        if theirs == ours {
            continue;
        }
        let (what, item) = question;
        let theirs = theirs.as_deref().unwrap_or("(no answer)");
        let ours = ours.as_deref().unwrap_or("(no answer)");
        let text = format!("{what} {item}\n    dovecot:   {theirs}\n    letterbox: {ours}");
        match allowed_difference(what, item, theirs, ours) {
            Some(reason) => accepted.push(format!("{text}\n    accepted: {reason}")),
            None => failures.push(text),
        }
    }
    let report = format!(
        "{} questions, {} differences, {} accepted\n\n{}\n\naccepted:\n{}\n",
        order.len(),
        failures.len(),
        accepted.len(),
        failures.join("\n"),
        accepted.join("\n")
    );
    std::fs::write(report_dir.join("differences.txt"), &report).expect("write differences");
    assert!(
        failures.is_empty(),
        "letterbox differs from dovecot (full report in {}):\n{report}\nletterbox log (tail):\n{}",
        report_dir.display(),
        tail(&server.log(), 40)
    );
}

/// The differences RFC 9051 allows, each with its sentence; anything else fails.
fn allowed_difference(what: &str, item: &str, dovecot: &str, ours: &str) -> Option<&'static str> {
    if what == "search" && item.starts_with("SENTBEFORE") {
        // RFC 9051 §6.4.4: "SENTBEFORE <date>: Messages whose [RFC5322] Date: header
        // field (disregarding time and timezone) is earlier than the specified date."
        // It does not say what a message without a Date: field does; Dovecot counts it
        // as earlier than any date. Either answer for that one message is allowed.
        let without = |answer: &str| answer.replace(" 13-missing-date.eml", "");
        if without(dovecot) == without(ours) {
            return Some("RFC 9051 §6.4.4 leaves SENTBEFORE of a message without Date: open");
        }
    }
    if item == "ENVELOPE" && dovecot.contains("\\x") && decode_b_words(ours) == dovecot {
        // An IMAP4rev1 session (no ENABLE): RFC 3501 §4.3 "A quoted string is a sequence
        // of zero or more 7-bit characters", so a display name written in raw UTF-8 in the
        // header cannot go out as is. Dovecot sends the 8-bit bytes anyway; letterbox
        // sends the same name as an RFC 2047 encoded word, which is 7-bit and decodes to
        // exactly Dovecot's bytes. After ENABLE IMAP4rev2 both send UTF-8 (RFC 9051 §4.3).
        return Some("RFC 3501 §4.3: quoted strings are 7-bit for IMAP4rev1");
    }
    if item.contains("HEADER.FIELDS (")
        && dovecot.strip_suffix("\\r\\n\"") == ours.strip_suffix('"')
    {
        // RFC 3501 §6.4.5 (and RFC 9051 §6.4.5): "the blank line is always included in
        // header data, except in the case of a message which has no body and no blank
        // line." letterbox follows that sentence; Dovecot adds a blank line to
        // HEADER.FIELDS of such a message (but not to its HEADER.FIELDS.NOT).
        return Some("RFC 9051 §6.4.5: no blank line for a message that has none");
    }
    None
}

/// Replaces every `=?utf-8?b?...?=` encoded word by its decoded bytes, written as the
/// answers are (non-ASCII bytes as `\\xNN`).
fn decode_b_words(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("=?utf-8?b?") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "=?utf-8?b?".len()..];
        let Some(end) = after.find("?=") else {
            out.push_str(&rest[start..]);
            return out;
        };
        for byte in base64_decode(&after[..end]) {
            if byte.is_ascii() {
                out.push(byte as char);
            } else {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|&a| a == byte) else {
            continue;
        };
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The IMAP client: APPENDs the corpus to each server (argv: corpus dir, then one
/// `plain|tls:host:port:user:password` per server, the reference first), asks every
/// question of each, and prints `server<TAB>message<TAB>item<TAB>answer` lines.
const CLIENT: &str = r###"
import os, re, socket, ssl, sys, urllib.parse

class Conn:
    def __init__(self, spec):
        mode, host, port, self.user, self.password = spec.split(":", 4)
        sock = socket.create_connection((host, int(port)), timeout=60)
        if mode == "tls":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
        self.sock, self.buf, self.tagno = sock, b"", 0
        self.read_response()  # greeting

    def readline(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def read_exact(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self):
        """One response as a list of ("text", bytes) and ("lit", bytes) pieces."""
        pieces = []
        while True:
            line = self.readline()
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if not m:
                pieces.append(("text", line[:-2]))
                return pieces
            text = line[: m.start()]
            # A literal8 (RFC 9051 formal syntax; BINARY answers) is "~{n}": "~" is framing.
            pieces.append(("text", text[:-1] if text.endswith(b"~") else text))
            pieces.append(("lit", self.read_exact(int(m.group(1)))))

    def command(self, *args):
        """Sends a command (bytes pieces, ("lit", bytes) for synchronizing literals);
        returns (tagged status, untagged responses)."""
        self.tagno += 1
        tag = b"T%d" % self.tagno
        out = tag
        untagged = []
        for arg in args:
            if isinstance(arg, tuple):
                # ("lit8", bytes) is RFC 3516's literal8, "~{n}", for binary APPEND.
                prefix = b"~" if arg[0] == "lit8" else b""
                self.sock.sendall(out + b" %s{%d}\r\n" % (prefix, len(arg[1])))
                while True:
                    resp = self.read_response()
                    if resp[0][1].startswith(b"+"):
                        break
                    if resp[0][1].startswith(tag + b" "):
                        return status_of(resp), untagged
                    untagged.append(resp)
                out = arg[1]
            else:
                out += b" " + arg
        self.sock.sendall(out + b"\r\n")
        while True:
            resp = self.read_response()
            if resp[0][1].startswith(tag + b" "):
                return status_of(resp), untagged
            if resp[0][1].startswith(b"* "):
                untagged.append(resp)

def status_of(resp):
    return resp[0][1].split(b" ")[1].upper().decode()

# --- a parser for response data: NIL, numbers, atoms, strings, lists -------------
NIL = "NIL"

class Atom(str):
    pass

def tokens(pieces):
    for kind, data in pieces:
        if kind == "lit":
            yield ("str", data)
            continue
        i = 0
        while i < len(data):
            c = data[i:i + 1]
            if c == b" ":
                i += 1
            elif c in b"()":
                yield (c.decode(), None)
                i += 1
            elif c == b'"':
                j, s = i + 1, bytearray()
                while data[j:j + 1] != b'"':
                    if data[j:j + 1] == b"\\":
                        j += 1
                    s += data[j:j + 1]
                    j += 1
                yield ("str", bytes(s))
                i = j + 1
            else:
                j, depth = i, 0
                while j < len(data):
                    d = data[j:j + 1]
                    if d == b"[":
                        depth += 1
                    elif d == b"]":
                        depth -= 1
                    elif depth == 0 and d in b" ()":
                        break
                    j += 1
                word = data[i:j].decode("utf-8", "replace")
                if word.upper() == "NIL":
                    yield ("nil", None)
                elif word.isdigit():
                    yield ("num", int(word))
                else:
                    yield ("atom", word)
                i = j

def parse(pieces):
    stack = [[]]
    for kind, value in tokens(pieces):
        if kind == "(":
            stack.append([])
        elif kind == ")":
            done = stack.pop()
            stack[-1].append(done)
        elif kind == "str":
            stack[-1].append(value)
        elif kind == "nil":
            stack[-1].append(NIL)
        elif kind == "num":
            stack[-1].append(value)
        else:
            stack[-1].append(Atom(value))
    return stack[0]

def canon(value):
    """One line per value: the same value gives the same text, however it was sent
    (quoted or literal, NIL in any case)."""
    if isinstance(value, list):
        return "(" + " ".join(canon(v) for v in value) + ")"
    if isinstance(value, bytes):
        out = []
        for b in value:
            ch = chr(b)
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch == "\r":
                out.append("\\r")
            elif ch == "\n":
                out.append("\\n")
            elif 0x20 <= b < 0x7F:
                out.append(ch)
            else:
                out.append("\\x%02x" % b)
        return '"' + "".join(out) + '"'
    if isinstance(value, Atom):
        return value
    return str(value)

def lower(value):
    return value.lower() if isinstance(value, bytes) else value

def normalise_params(params):
    """A body parameter list as a comparable value.

    Names in lower case: RFC 9051 §7.5.2 gives the list "as defined in [MIME-IMB]", and
    RFC 2045 §5.1 says "The type, subtype, and parameter names are not case sensitive."

    An RFC 2231 extended value ("name*" "utf-8''%E2%82%AC.pdf") decoded to UTF-8: RFC 9051
    §7.5.2 says "Servers SHOULD decode parameter-value continuations and parameter-value
    character sets as described in [RFC2231]" and "the server should decode them per
    [RFC2231], convert to UTF-8, concatenate, and return the resulting value as a parameter
    "foo*"" - a SHOULD, so the undecoded value is allowed too; the name keeps its "*"."""
    pairs = []
    if isinstance(params, list):
        for k in range(0, len(params) - 1, 2):
            name, value = lower(params[k]), params[k + 1]
            if isinstance(name, bytes) and name.endswith(b"*") and isinstance(value, bytes):
                value = decode_2231(value)
            pairs += [name, value]
    return pairs if pairs else NIL

def decode_2231(value):
    """charset'language'percent-encoded → the value in UTF-8 (RFC 2231 §4)."""
    m = re.fullmatch(rb"([^']*)'[^']*'(.*)", value, re.S)
    if not m:
        return value
    try:
        raw = urllib.parse.unquote_to_bytes(m.group(2))
        return raw.decode(m.group(1).decode() or "us-ascii").encode("utf-8")
    except (LookupError, UnicodeDecodeError):
        return value

def normalise_language(language):
    """RFC 9051 §7.5.2 body language: "A string or parenthesized list giving the body
    language value"; "de" and ("de") are the same answer."""
    return [language] if isinstance(language, bytes) else language

def normalise_disposition(disposition):
    """RFC 2183 §2.8: disposition type and parameter names are not case-sensitive."""
    if isinstance(disposition, list) and len(disposition) == 2:
        return [lower(disposition[0]), normalise_params(disposition[1])]
    return disposition

def normalise_body(body):
    """BODY/BODYSTRUCTURE as a comparable value (see normalise_params and below).

    Type, subtype and encoding in lower case: RFC 2045 §5.1 (above) and §6.1 "these
    values are not case sensitive" for Content-Transfer-Encoding, so "TEXT" and "text"
    are the same answer. Parameter values keep their case."""
    if not isinstance(body, list):
        return body
    if is_multipart(body):
        kids = children(body)
        rest = list(body[len(kids):])
        # body-ext-mpart: subtype, parameters, disposition, language, location.
        for i, f in enumerate([lower, normalise_params, normalise_disposition, normalise_language]):
            if len(rest) > i:
                rest[i] = f(rest[i])
        return [normalise_body(k) for k in kids] + rest
    out = list(body)
    if len(out) >= 7:
        out[0], out[1], out[5] = lower(out[0]), lower(out[1]), lower(out[5])
        out[2] = normalise_params(out[2])
        ext = 7
        if is_message(out):
            out[7] = normalise_envelope(out[7])
            out[8] = normalise_body(out[8])
            ext = 10
        elif out[0] == b"text":
            ext = 8
        # body-ext-1part: md5, disposition, language, location.
        if len(out) > ext + 1:
            out[ext + 1] = normalise_disposition(out[ext + 1])
        if len(out) > ext + 2:
            out[ext + 2] = normalise_language(out[ext + 2])
    return out

def normalise_envelope(envelope):
    """ENVELOPE with each address's mailbox name unquoted.

    RFC 9051 §7.5.2 defines the field as "mailbox name (local-part ABNF production from
    [RFC5322])", and that production includes the quotes of a quoted-string, while
    RFC 5322 §3.2.4 says "the DQUOTE characters ... are not part of the quoted-string":
    "john.q doe" with or without its quotes is the same local part."""
    if not isinstance(envelope, list) or len(envelope) < 8:
        return envelope
    out = list(envelope)
    for field in range(2, 8):
        if isinstance(out[field], list):
            out[field] = [unquote_mailbox(a) for a in out[field]]
    return out

def unquote_mailbox(address):
    if (isinstance(address, list) and len(address) == 4 and isinstance(address[2], bytes)
            and len(address[2]) >= 2 and address[2].startswith(b'"') and address[2].endswith(b'"')):
        return address[:2] + [re.sub(rb"\\(.)", rb"\1", address[2][1:-1])] + address[3:]
    return address

def item_key(name):
    """The name a FETCH response gives an item: BODY.PEEK[x]<a.b> answers as BODY[x]<a>;
    header field names and atoms compare without case or quotes."""
    name = name.upper().replace(".PEEK", "").replace('"', "")
    name = re.sub(r"<(\d+)\.\d+>", r"<\1>", name)
    return " ".join(name.split())

def fetch(conn, seq, item):
    status, untagged = conn.command(b"FETCH", b"%d" % seq, b"(" + item.encode() + b")")
    answers = {}
    for resp in untagged:
        data = parse(resp)
        if len(data) >= 4 and data[2] == "FETCH" and data[1] == seq:
            pairs = data[3]
            for k in range(0, len(pairs) - 1, 2):
                answers[item_key(pairs[k])] = pairs[k + 1]
    key = item_key(item)
    if status != "OK" or key not in answers:
        return "%s (no %s in %s)" % (status, key, sorted(answers))
    value = answers[key]
    if key in ("BODY", "BODYSTRUCTURE"):
        value = normalise_body(value)
    elif key == "ENVELOPE":
        value = normalise_envelope(value)
    return canon(value)

def is_multipart(body):
    return isinstance(body, list) and body and isinstance(body[0], list)

def is_message(body):
    return (isinstance(body, list) and len(body) > 8 and isinstance(body[0], bytes)
            and body[0].lower() == b"message" and isinstance(body[1], bytes)
            and body[1].lower() in (b"rfc822", b"global") and isinstance(body[8], list))

def children(body):
    """The parts of a multipart: the lists before its subtype string."""
    out = []
    for c in body:
        if not isinstance(c, list):
            break
        out.append(c)
    return out

def parts(body, prefix):
    """Part numbers (RFC 9051 §6.4.5) of every part inside `body`."""
    if is_multipart(body):
        for i, child in enumerate(children(body), 1):
            yield prefix + [i]
            yield from parts(child, prefix + [i])
    elif is_message(body) and prefix:
        inner = body[8]
        if is_multipart(inner):
            yield from parts(inner, prefix)
        else:
            yield prefix + [1]
            yield from parts(inner, prefix + [1])

def plan(bodystructure):
    """The FETCH items asked for one message: the whole-message items, then [n] and
    [n.MIME] for every part, and [n.HEADER], [n.TEXT], [n.HEADER.FIELDS] for every
    message/rfc822 part (RFC 9051 §6.4.5 section specification)."""
    items = ["ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE", "BODY.PEEK[]",
             "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]", "BODY.PEEK[HEADER.FIELDS (From Subject)]",
             "BODY.PEEK[HEADER.FIELDS.NOT (From Subject Received)]", "BODY.PEEK[]<0.40>",
             "BODY.PEEK[TEXT]<3.25>", "RFC822.HEADER", "BODY.PEEK[1]<2.10>", "PREVIEW"]
    numbers = list(parts(bodystructure, [])) if is_multipart(bodystructure) else [[1]]
    for number in numbers:
        p = ".".join(map(str, number))
        items += ["BODY.PEEK[%s]" % p, "BODY.PEEK[%s.MIME]" % p]
        sub = bodystructure
        for n in number:
            if is_message(sub):
                sub = sub[8]
            sub = children(sub)[n - 1] if is_multipart(sub) else sub
        if is_message(sub):
            items += ["BODY.PEEK[%s.HEADER]" % p, "BODY.PEEK[%s.TEXT]" % p,
                      "BODY.PEEK[%s.HEADER.FIELDS (Subject)]" % p]
        elif not is_multipart(sub):
            # RFC 9051 §6.4.5: BINARY is the part with its Content-Transfer-Encoding
            # removed; defined for leaf parts.
            items += ["BINARY.PEEK[%s]" % p, "BINARY.SIZE[%s]" % p]
    return items

# SEARCH queries. Each word is planted in the corpus where a server has to work to find
# it: inside base64 and quoted-printable bodies, across a soft line break, in encoded
# words, inside attached and digest messages, in group names. Non-ASCII words are given
# in the case they are written in: RFC 9051 §6.4.4 asks servers to ignore case only for
# ASCII characters, so folding "É" to "é" is a choice either server may make.
U = "UTF-8"
SEARCHES = [
    ["SUBJECT", "Quarterly"], ["SUBJECT", "fwd"], ["SUBJECT", "chain"],
    ["CHARSET", U, "SUBJECT", "Straßenfest"], ["CHARSET", U, "SUBJECT", "Grüße aus Köln"],
    ["CHARSET", U, "SUBJECT", "会議の議事録"], ["CHARSET", U, "SUBJECT", "Résumé"],
    ["CHARSET", U, "SUBJECT", "Grüße"],
    ["FROM", "alice"], ["FROM", "example.de"], ["CHARSET", U, "FROM", "Jörg"],
    ["CHARSET", U, "FROM", "François"], ["CHARSET", U, "FROM", "山田"], ["FROM", "Second"],
    ["TO", "bob@example.org"], ["CHARSET", U, "TO", "Zoë"], ["TO", "zoe@example.com"],
    ["TO", "carol"], ["TO", "undisclosed"], ["TO", "Project Team"], ["CC", "Friends"],
    ["HEADER", "To", "undisclosed"], ["CC", "dave"], ["CHARSET", U, "CC", "André Pirard"], ["BCC", "eve"],
    ["BODY", "pangolin"], ["BODY", "zebracorn"], ["BODY", "quokka"], ["BODY", "marsupial"],
    ["CHARSET", U, "BODY", "café"], ["CHARSET", U, "BODY", "Straßenfest"],
    ["CHARSET", U, "BODY", "Schöne"], ["CHARSET", U, "BODY", "議事録"],
    ["BODY", "narwhal"], ["BODY", "axolotl"], ["BODY", "capybara"], ["BODY", "wombat"],
    ["BODY", "platypus"], ["BODY", "tapir"], ["BODY", "quetzal"], ["BODY", "echidna"],
    ["BODY", "dugong"], ["BODY", "ocelot"], ["BODY", "preamble"], ["BODY", "epilogue"],
    ["TEXT", "Meeting notes"], ["TEXT", "X-Long-Unfolded"], ["TEXT", "zebracorn"], ["TEXT", "undisclosed"],
    ["HEADER", "Message-ID", "<qp@example.com>"], ["HEADER", "Message-ID", ""],
    ["HEADER", "Content-Type", "multipart"], ["HEADER", "X-Long-Unfolded", "word399"],
    ["HEADER", "References", "ref-0059"], ["HEADER", "Date", ""],
    ["LARGER", "2000"], ["SMALLER", "400"], ["LARGER", "5000"],
    ["NOT", "BODY", "the"], ["OR", "FROM", "alice", "TO", "zoe"],
    ["NOT", "OR", "SUBJECT", "chain", "SUBJECT", "post"],
    ["(", "SUBJECT", "group", "FROM", "coord", ")"], ["OR", "LARGER", "3000", "SMALLER", "300"],
    ["SENTBEFORE", "20-Jan-2025"], ["SENTON", "23-Jan-2025"], ["SENTSINCE", "1-Feb-2025"],
    ["SENTON", "22-Jan-2025"], ["SENTBEFORE", "23-Jan-2025"],
]

# SORT criteria and THREAD algorithms (RFC 5256), over the whole corpus: the order (and
# the tree) must be the same, ties broken by mailbox order.
SORTS = [
    ["SUBJECT"], ["REVERSE", "SUBJECT"], ["DATE"], ["REVERSE", "DATE"], ["FROM"], ["TO"],
    ["CC"], ["SIZE"], ["ARRIVAL"], ["SUBJECT", "REVERSE", "SIZE"],
]
THREADS = ["ORDEREDSUBJECT", "REFERENCES"]

def quoted(text):
    return b'"' + text.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'

def search_args(words):
    args = []
    for w in words:
        if w in ("(", ")"):
            args.append(w.encode())
        elif re.fullmatch(r"[A-Za-z0-9.-]+", w) and w.upper() not in ("NIL",):
            args.append(w.encode())
        elif all(ord(ch) < 128 for ch in w):
            args.append(quoted(w))
        else:
            args.append(("lit", w.encode()))
    # "( SUBJECT" → "(SUBJECT": parentheses stick to their neighbours.
    joined = []
    for a in args:
        if joined and isinstance(joined[-1], bytes) and joined[-1].endswith(b"(") and isinstance(a, bytes):
            joined[-1] += a
        elif a == b")" and joined and isinstance(joined[-1], bytes):
            joined[-1] += a
        else:
            joined.append(a)
    return joined

def main():
    corpus, specs = sys.argv[1], sys.argv[2:]
    names = sorted(f for f in os.listdir(corpus) if f.endswith(".eml"))
    conns = []
    for i, spec in enumerate(specs):
        try:
            conn = Conn(spec)
            status, _ = conn.command(b"LOGIN", quoted(conn.user), quoted(conn.password))
            if status != "OK":
                raise RuntimeError("LOGIN answered " + status)
            for name in names:
                with open(os.path.join(corpus, name), "rb") as f:
                    raw = f.read()
                # RFC 3516 §4.4: a message with binary parts goes in as a literal8.
                kind = "lit8" if "binary-append" in name else "lit"
                status, _ = conn.command(b"APPEND", b"INBOX", (kind, raw))
                print("%d\tappend\t%s\t%s" % (i, name, status))
            status, _ = conn.command(b"SELECT", b"INBOX")
            if status != "OK":
                raise RuntimeError("SELECT answered " + status)
            conns.append(conn)
        except Exception as e:
            print("%d\terror\tsetup\t%s" % (i, repr(e).replace("\t", " ")))
            conns.append(None)
    if conns[0] is None:
        return

    def ask(i, what, run):
        """One question to server i; a server that fails stops being asked."""
        if conns[i] is None:
            return
        try:
            print("%d\t%s\t%s" % (i, what, run(conns[i])))
        except Exception as e:
            print("%d\terror\t%s\t%s" % (i, what.replace("\t", " "), repr(e).replace("\t", " ")))
            conns[i] = None

    for seq, name in enumerate(names, 1):
        # The part numbers to ask for come from the reference server's BODYSTRUCTURE.
        structure = parse(conns[0].command(b"FETCH", b"%d" % seq, b"(BODYSTRUCTURE)")[1][0])[3][1]
        for item in plan(structure):
            for i in range(len(conns)):
                ask(i, "%s\t%s" % (name, item), lambda conn: fetch(conn, seq, item))
    for words in SEARCHES:
        query = " ".join(words)

        def search(conn):
            status, untagged = conn.command(b"SEARCH", *search_args(words))
            found = []
            for resp in untagged:
                data = parse(resp)
                if len(data) >= 2 and data[1] == "SEARCH":
                    found += [names[n - 1] if 0 < n <= len(names) else "#%d" % n for n in data[2:]]
            return "%s %s" % (status, " ".join(sorted(found)))

        for i in range(len(conns)):
            ask(i, "search\t" + query, search)
    for criteria in SORTS:
        query = "SORT (%s) UTF-8 ALL" % " ".join(criteria)

        def sort(conn):
            status, untagged = conn.command(b"SORT", ("(%s)" % " ".join(criteria)).encode(), b"UTF-8", b"ALL")
            found = []
            for resp in untagged:
                data = parse(resp)
                if len(data) >= 2 and data[1] == "SORT":
                    found += [names[n - 1] if 0 < n <= len(names) else "#%d" % n for n in data[2:]]
            return "%s %s" % (status, " ".join(found))

        for i in range(len(conns)):
            ask(i, "search\t" + query, sort)
    for algorithm in THREADS:
        query = "THREAD %s UTF-8 ALL" % algorithm

        def thread(conn):
            status, untagged = conn.command(b"THREAD", algorithm.encode(), b"UTF-8", b"ALL")
            trees = []
            for resp in untagged:
                text = resp[0][1].decode("utf-8", "replace").strip()
                if text.upper().startswith("* THREAD"):
                    trees.append(re.sub(r"\d+", lambda m: names[int(m.group()) - 1][:2]
                        if 0 < int(m.group()) <= len(names) else "#" + m.group(), text[8:].strip()))
            return "%s %s" % (status, " ".join(trees))

        for i in range(len(conns)):
            ask(i, "search\t" + query, thread)
    for conn in conns:
        if conn is not None:
            conn.command(b"LOGOUT")

main()
"###;
