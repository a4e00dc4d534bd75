//! PARTIAL (RFC 9394) and CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267 §4) through Python's
//! imaplib, with two sessions on one mailbox: what a client that pages through results,
//! or keeps a search or a sorted list up to date while another client changes the
//! mailbox, is told, line by line. Dovecot 2.3 has no CONTEXT=SORT, no `-m:-n` ranges
//! and no PARTIAL FETCH, so these are checked against the RFCs' examples here;
//! tests/imap_session_diff.rs compares what Dovecot has (PARTIAL 1:n, UPDATE on SEARCH,
//! CANCELUPDATE) with its answers.

mod common;

use common::Transcript;

/// imaplib with every line it reads kept, so the order of untagged responses is seen;
/// `run` answers the tagged status and the untagged lines the command brought, with the
/// correlators `(TAG "...")` and `[NOUPDATE "..."]` written as the label of the command
/// that had that tag.
/// After `common::PY_PRELUDE`.
const PRELUDE: &str = r#"
class Recording(imaplib.IMAP4_SSL):
    def _get_line(self):
        line = super()._get_line()
        self.__dict__.setdefault("lines", []).append(line.decode())
        return line

labels = {}
tags = {}
# RFC 5267 §4.3.5: a command imaplib does not know by name.
imaplib.Commands["CANCELUPDATE"] = ("SELECTED",)

def run(m, label, *args):
    tag = (m.tagpre + str(m.tagnum).encode()).decode()
    labels[tag] = label
    tags[label] = tag
    m.lines = []
    try:
        typ, _ = m._simple_command(*args)
    except m.error as e:
        typ = "BAD" if "BAD" in str(e) else "ERR %s" % e
    lines = []
    for line in m.lines:
        if not line.startswith("* "):
            continue
        for tag, name in labels.items():
            line = line.replace('"%s")' % tag, '"%s")' % name).replace('"%s"]' % tag, '"%s"]' % name)
        lines.append(line)
    print(label, typ, " | ".join(lines))

def message(subject):
    return ("From: a@example.com\r\nSubject: %s\r\n\r\nbody\r\n" % subject).encode()
"#;

const PARTIAL: &str = r#"
m = connect(Recording)
for subject in ["d", "b", "c", "a", "e"]:
    m.append("INBOX", None, None, message(subject))
m.select("INBOX")
run(m, "first", "UID", "SEARCH", "RETURN", "(PARTIAL 1:2)", "ALL")
run(m, "last", "UID", "SEARCH", "RETURN", "(PARTIAL -1:-2)", "ALL")
run(m, "reversed", "SEARCH", "RETURN", "(PARTIAL 10:3 COUNT MIN)", "ALL")
run(m, "beyond", "SEARCH", "RETURN", "(PARTIAL -9:-6)", "ALL")
run(m, "with-all", "SEARCH", "RETURN", "(PARTIAL 1:2 ALL)", "ALL")
run(m, "sorted", "SORT", "RETURN", "(PARTIAL 2:4)", "(SUBJECT)", "UTF-8", "ALL")
run(m, "sorted-last", "UID", "SORT", "RETURN", "(PARTIAL -1:-2 MAX)", "(SUBJECT)", "UTF-8", "ALL")
run(m, "save", "SEARCH", "RETURN", "(SAVE PARTIAL -1:-2)", "ALL")
run(m, "saved", "FETCH", "$", "(UID)")
run(m, "fetch", "UID", "FETCH", "1:*", "(UID)", "(PARTIAL -2:-1)")
run(m, "fetch-first", "UID", "FETCH", "2:*", "(UID)", "(PARTIAL 1:1)")
run(m, "fetch-seq", "FETCH", "1:*", "(UID)", "(PARTIAL 1:1)")
m.logout()
"#;

#[test]
fn imaplib_pages_search_sort_and_fetch_results() {
    let out = Transcript::of_script(&format!("{PRELUDE}{PARTIAL}"));
    // RFC 9394 §3.1: "The first result [...] is 1"; "-1 is the last message".
    out.assert_lines(&[
        r#"first OK * ESEARCH (TAG "first") UID PARTIAL (1:2 1:2)"#,
        r#"last OK * ESEARCH (TAG "last") UID PARTIAL (-1:-2 4:5)"#,
    ]);
    // "A range 500:400 is the same as 400:500"; a range past the results gives what is
    // there; MIN and COUNT are about the whole result.
    assert_eq!(
        out.line("reversed"),
        r#"reversed OK * ESEARCH (TAG "reversed") MIN 1 PARTIAL (3:10 3:5) COUNT 5"#
    );
    // "If the whole range references results that do not exist, [...] "NIL"".
    out.assert_lines(&[
        r#"beyond OK * ESEARCH (TAG "beyond") PARTIAL (-6:-9 NIL)"#,
        // "either one PARTIAL, one ALL, or neither PARTIAL nor ALL is allowed".
        "with-all BAD ",
        // RFC 5267 §4.4 for SORT: positions in sort order. Subjects a (4), b (2), c (3),
        // d (1), e (5).
        r#"sorted OK * ESEARCH (TAG "sorted") PARTIAL (2:4 2:3,1)"#,
        r#"sorted-last OK * ESEARCH (TAG "sorted-last") UID MAX 5 PARTIAL (-1:-2 1,5)"#,
        // RFC 9394 §3.2: with SAVE, "the "$" marker would contain references to all
        // messages returned by the PARTIAL result option".
        r#"save OK * ESEARCH (TAG "save") PARTIAL (-1:-2 4:5)"#,
        "saved OK * 4 FETCH (UID 4) | * 5 FETCH (UID 5)",
        // RFC 9394 §3.3: UID FETCH answers for the messages of the range only.
        "fetch OK * 4 FETCH (UID 4) | * 5 FETCH (UID 5)",
        "fetch-first OK * 2 FETCH (UID 2)",
        "fetch-seq BAD ",
    ]);
}

const CONTEXTS: &str = r#"
a = connect(Recording); b = connect(Recording)
for subject in ["d", "b", "f"]:
    b.append("INBOX", None, None, message(subject))
a.select("INBOX"); b.select("INBOX")
run(a, "unseen", "UID", "SEARCH", "RETURN", "(UPDATE)", "UNSEEN")
run(a, "count", "SEARCH", "RETURN", "(UPDATE COUNT)", "UNSEEN")
run(a, "sorted", "SORT", "RETURN", "(UPDATE ALL)", "(SUBJECT)", "UTF-8", "UNSEEN")
# The other session reads message 2 (b): it leaves every result.
run(b, "b-seen", "STORE", "2", "+FLAGS.SILENT", "(\\Seen)")
run(a, "after-seen", "NOOP")
# Two arrivals: a (first in subject order) and e (between d and f).
b.append("INBOX", None, None, message("a")); b.append("INBOX", None, None, message("e"))
run(a, "after-append", "NOOP")
# This session's own STORE: told at the end of the STORE.
run(a, "own-store", "STORE", "1", "+FLAGS.SILENT", "(\\Seen)")
# The other session expunges message 3 (f): REMOVEFROM comes before the EXPUNGE.
run(b, "b-delete", "STORE", "3", "+FLAGS.SILENT", "(\\Deleted)")
run(b, "b-expunge", "EXPUNGE")
run(a, "after-expunge", "NOOP")
run(a, "cancel", "CANCELUPDATE", '"%s"' % tags["count"], '"%s"' % tags["sorted"])
run(a, "cancel-again", "CANCELUPDATE", '"%s"' % tags["count"])
run(b, "b-unseen", "STORE", "1:*", "-FLAGS.SILENT", "(\\Seen)")
run(a, "after-cancel", "NOOP")
# RFC 5267 §4.3: a tag already used by an updating search is BAD for another one.
a.lines = []
a.send(b'REUSE UID SEARCH RETURN (UPDATE) ALL\r\n')
print("reuse-1", a.readline().decode().strip(), "|", a.readline().decode().strip())
a.send(b'REUSE SEARCH RETURN (UPDATE) ALL\r\n')
print("reuse-2", a.readline().decode().strip())
# RFC 5267 §4.3.1: past the limit, NOUPDATE and the other options still answered.
for n in range(8):
    run(a, "fill-%d" % n, "SEARCH", "RETURN", "(UPDATE)", "ALL")
run(a, "one-too-many", "SEARCH", "RETURN", "(UPDATE COUNT)", "ALL")
run(a, "younger", "SEARCH", "RETURN", "(UPDATE COUNT)", "YOUNGER", "60")
a.logout(); b.logout()
"#;

#[test]
fn imaplib_keeps_searches_and_sorted_lists_up_to_date() {
    let out = Transcript::of_script(&format!("{PRELUDE}{CONTEXTS}"));
    // RFC 5267 §4.3: UPDATE adds no data of its own; other options are answered.
    out.assert_lines(&[
        r#"unseen OK * ESEARCH (TAG "unseen") UID"#,
        r#"count OK * ESEARCH (TAG "count") COUNT 3"#,
        // Subjects b (2), d (1), f (3).
        r#"sorted OK * ESEARCH (TAG "sorted") ALL 2,1,3"#,
    ]);
    // §4.3.4: REMOVEFROM; position 0 for SEARCH, the position in sort order for SORT.
    let after_seen = out.line("after-seen");
    assert!(
        after_seen.starts_with(r"after-seen OK * 2 FETCH (UID 2 FLAGS (\Seen"),
        "{after_seen}"
    );
    assert!(
        after_seen.ends_with(concat!(
            r#"FLAGS (\Seen \Recent)) | * ESEARCH (TAG "unseen") UID REMOVEFROM (0 2) | "#,
            r#"* ESEARCH (TAG "count") REMOVEFROM (0 2) | "#,
            r#"* ESEARCH (TAG "sorted") REMOVEFROM (1 2)"#
        )),
        "{after_seen}"
    );
    // §4.3.3: ADDTO after EXISTS; for SORT, a (4) first and e (5) between d and f:
    // (1 4) leaves d, f at 2, 3, then (3 5) puts e before f.
    let after_append = out.line("after-append");
    assert!(
        after_append.starts_with("after-append OK * 5 EXISTS | "),
        "{after_append}"
    );
    assert!(
        after_append.ends_with(concat!(
            r#"* ESEARCH (TAG "unseen") UID ADDTO (0 4:5) | "#,
            r#"* ESEARCH (TAG "count") ADDTO (0 4:5) | "#,
            r#"* ESEARCH (TAG "sorted") ADDTO (1 4 3 5)"#
        )),
        "{after_append}"
    );
    // d (message 1) was at position 2 of a, d, e, f.
    assert_eq!(
        out.line("own-store"),
        concat!(
            r#"own-store OK * ESEARCH (TAG "unseen") UID REMOVEFROM (0 1) | "#,
            r#"* ESEARCH (TAG "count") REMOVEFROM (0 1) | "#,
            r#"* ESEARCH (TAG "sorted") REMOVEFROM (2 1)"#
        )
    );
    // f (message 3, last of a, e, f) goes before its EXPUNGE, numbered as before it.
    let after_expunge = out.line("after-expunge");
    assert!(
        after_expunge.starts_with(concat!(
            "after-expunge OK ",
            r#"* ESEARCH (TAG "unseen") UID REMOVEFROM (0 3) | "#,
            r#"* ESEARCH (TAG "count") REMOVEFROM (0 3) | "#,
            r#"* ESEARCH (TAG "sorted") REMOVEFROM (3 3) | * 3 EXPUNGE"#
        )),
        "{after_expunge}"
    );
    // §4.3.5: cancelled contexts are told nothing more; an unknown tag is NO.
    out.assert_lines(&["cancel OK ", "cancel-again NO "]);
    let after_cancel = out.line("after-cancel");
    assert!(
        after_cancel.ends_with(r#"* ESEARCH (TAG "unseen") UID ADDTO (0 1:2)"#),
        "{after_cancel}"
    );
    assert!(!after_cancel.contains(r#"(TAG "count")"#), "{after_cancel}");
    assert_eq!(
        out.line("reuse-1"),
        r#"reuse-1 * ESEARCH (TAG "REUSE") UID | REUSE OK UID SEARCH completed"#
    );
    assert!(
        out.line("reuse-2").starts_with("reuse-2 REUSE BAD"),
        "{out}"
    );
    // unseen, REUSE and eight more: the eleventh is refused, and still counted.
    assert_eq!(
        out.line("one-too-many"),
        concat!(
            r#"one-too-many OK * NO [NOUPDATE "one-too-many"] Too many updating searches | "#,
            r#"* ESEARCH (TAG "one-too-many") COUNT 4"#
        )
    );
    assert!(
        out.line("younger").contains(r#"* NO [NOUPDATE "younger"]"#),
        "{out}"
    );
}
