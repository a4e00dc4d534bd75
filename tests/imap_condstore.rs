//! CONDSTORE and QRESYNC (RFC 7162) and WITHIN (RFC 5032) against Python's imaplib: a
//! client that goes offline while another device changes flags, expunges and receives
//! mail, then comes back and resynchronises with `SELECT (QRESYNC ...)` and
//! `UID FETCH (CHANGEDSINCE ... VANISHED)`; conditional STORE; SEARCH MODSEQ; OLDER and
//! YOUNGER.

mod common;

use common::Transcript;

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
import re

def run(m, *args):
    """Runs a command; returns (tagged status, tagged text, every untagged line)."""
    m.untagged_responses = {}
    try:
        typ, data = m._simple_command(*args)
    except imaplib.IMAP4.error as error:
        return "BAD", str(error), []
    lines = []
    for key, values in m.untagged_responses.items():
        for value in values:
            text = value.decode() if isinstance(value, bytes) else repr(value)
            lines.append(key + " " + text)
    return typ, (data[-1].decode() if data and isinstance(data[-1], bytes) else str(data)), lines

def show(name, result):
    typ, text, lines = result
    print(name, typ, "|", text, "|", " ; ".join(sorted(lines)))
    return result

for subject in ["one", "two", "three"]:
    deliver(subject)

# The laptop: QRESYNC on, remembers UIDVALIDITY and HIGHESTMODSEQ, goes offline.
laptop = connect()
assert "CONDSTORE" in laptop.capabilities and "QRESYNC" in laptop.capabilities, laptop.capabilities
show("enable", run(laptop, "ENABLE", "QRESYNC"))
typ, text, lines = show("select", run(laptop, "SELECT", "INBOX"))
validity = int(re.search(r"UIDVALIDITY (\d+)", " ".join(lines)).group(1))
highest = int(re.search(r"HIGHESTMODSEQ (\d+)", " ".join(lines)).group(1))
laptop.state = "SELECTED"
show("fetch-modseq", run(laptop, "FETCH", "1:*", "(UID MODSEQ)"))
laptop.logout()

# The phone: flags message 2, deletes message 3, and new mail arrives.
phone = connect()
phone.select("INBOX")
phone.store("2", "+FLAGS", "(\\Flagged)")
phone.store("3", "+FLAGS", "(\\Deleted)")
phone.expunge()
deliver("four")

# The laptop comes back.
laptop = connect()
show("without-enable", run(laptop, "SELECT", "INBOX", "(QRESYNC (%d %d 1:3))" % (validity, highest)))
run(laptop, "ENABLE", "QRESYNC")
show("resync", run(laptop, "SELECT", "INBOX", "(QRESYNC (%d %d 1:3))" % (validity, highest)))
laptop.state = "SELECTED"
show("changedsince", run(laptop, "UID", "FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %d VANISHED)" % highest))
show("search-modseq", run(laptop, "SEARCH", "MODSEQ", str(highest + 1)))

# Conditional STORE: the phone changes message 1 after the laptop read its MODSEQ.
typ, text, lines = run(laptop, "FETCH", "1", "(MODSEQ)")
modseq_1 = int(re.search(r"MODSEQ \((\d+)\)", " ".join(lines)).group(1))
phone.store("1", "+FLAGS", "($Phone)")
show("conditional-store", run(laptop, "UID", "STORE", "1", "(UNCHANGEDSINCE %d)" % modseq_1, "+FLAGS", "(\\Seen)"))
show("conditional-store-ok", run(laptop, "STORE", "2", "(UNCHANGEDSINCE 9223372036854775807)", "+FLAGS.SILENT", "($Laptop)"))
show("flags-1", run(laptop, "UID", "FETCH", "1", "(FLAGS)"))
show("store-by-number", run(laptop, "STORE", "3", "+FLAGS", "(\\Answered)"))

# Under QRESYNC an expunge is reported as VANISHED.
run(laptop, "STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
show("expunge", run(laptop, "EXPUNGE"))

# WITHIN: an old APPEND is OLDER than an hour; fresh deliveries are YOUNGER.
phone.append("INBOX", None, '"01-Jan-2020 10:00:00 +0000"', b"Subject: old\r\n\r\nold\r\n")
show("noop", run(laptop, "NOOP"))
show("older", run(laptop, "UID", "SEARCH", "OLDER", "3600"))
show("younger", run(laptop, "UID", "SEARCH", "YOUNGER", "3600"))
show("status", run(phone, "STATUS", "INBOX", "(HIGHESTMODSEQ MESSAGES)"))
laptop.logout()
phone.logout()
"#;

#[test]
fn imaplib_resynchronises_with_condstore_and_qresync() {
    let out = Transcript::of_script(SESSION);
    assert!(out.line("enable").contains("ENABLED QRESYNC"), "{out}");
    assert!(out.line("select").contains("HIGHESTMODSEQ"), "{out}");
    let fetch = out.line("fetch-modseq");
    assert_eq!(fetch.matches("MODSEQ (").count(), 3, "{fetch}");

    // QRESYNC parameters without ENABLE QRESYNC: BAD (RFC 7162 §3.2.5).
    assert!(
        out.line("without-enable").starts_with("without-enable BAD"),
        "{out}"
    );

    // Back from offline: UID 3 vanished, UID 2 flagged, UID 4 new, in one SELECT.
    let resync = out.line("resync");
    assert!(resync.starts_with("resync OK"), "{resync}");
    common::assert_contains_all(
        &resync,
        &[
            "VANISHED (EARLIER) 3",
            "FETCH 2 (UID 2 FLAGS (\\Flagged) MODSEQ (",
        ],
    );
    assert!(
        // RFC 3501 §2.3.2: this session is the first to hear of UID 4.
        resync.contains("FETCH 3 (UID 4 FLAGS (\\Recent) MODSEQ ("),
        "{resync}"
    );
    assert!(
        !resync.contains("UID 1 "),
        "message 1 did not change: {resync}"
    );
    assert!(resync.contains("EXISTS 3"), "{resync}");

    let changed = out.line("changedsince");
    common::assert_contains_all(
        &changed,
        &[
            "VANISHED (EARLIER) 3",
            "UID 2 FLAGS (\\Flagged) MODSEQ (",
            "UID 4 FLAGS (\\Recent) MODSEQ (",
        ],
    );
    assert!(!changed.contains("UID 1 "), "{changed}");

    let search = out.line("search-modseq");
    assert!(search.contains("SEARCH 2 3 (MODSEQ "), "{search}");

    // The phone changed message 1 after the laptop read it: the STORE leaves it alone.
    let conditional = out.line("conditional-store");
    assert!(
        conditional.contains("OK | [MODIFIED 1]"),
        "conditional STORE: {conditional}"
    );
    let flags = out.line("flags-1");
    assert!(
        flags.contains("$Phone") && !flags.contains("\\Seen"),
        "{flags}"
    );
    // .SILENT with CONDSTORE still reports the new MODSEQ, without FLAGS.
    let silent = out.line("conditional-store-ok");
    assert!(silent.starts_with("conditional-store-ok OK"), "{silent}");
    // RFC 7162 §3.2.4: under QRESYNC a STORE by sequence number answers with the UID.
    assert!(silent.contains("FETCH 2 (UID 2 MODSEQ ("), "{silent}");
    assert!(
        !silent
            .split(" ; ")
            .any(|response| response.contains("FETCH") && response.contains("FLAGS")),
        "{silent}"
    );
    // $Laptop is new to the mailbox: announced first (RFC 9051 §7.3.5).
    assert!(
        silent.contains("; FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Phone $Laptop)"),
        "{silent}"
    );

    let by_number = out.line("store-by-number");
    assert!(
        by_number.contains("FETCH 3 (UID 4 FLAGS (\\Answered \\Recent) MODSEQ ("),
        "{by_number}"
    );

    let expunge = out.line("expunge");
    assert!(expunge.contains("VANISHED 1"), "{expunge}");
    let untagged = expunge.rsplit(" | ").next().unwrap_or_default();
    assert!(!untagged.contains("EXPUNGE"), "{expunge}");

    assert!(out.line("noop").contains("EXISTS 3"), "{out}");
    assert!(out.line("older").contains("SEARCH 5"), "{out}");
    let younger = out.line("younger");
    assert!(younger.contains("SEARCH 2 4"), "{younger}");
    let status = out.line("status");
    assert!(
        status.contains("HIGHESTMODSEQ") && status.contains("MESSAGES 3"),
        "{status}"
    );
}
