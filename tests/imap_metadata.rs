//! METADATA (RFC 5464) through Python's imaplib: every line a client sees when it keeps
//! annotations on the server and on mailboxes: set, read back (a list, DEPTH, MAXSIZE
//! with `[METADATA LONGENTRIES]`), removed with NIL, binary values as literal8, invalid
//! entry names BAD, the limits with their response codes (`[METADATA MAXSIZE]`,
//! `[METADATA TOOMANY]`, `[OVERQUOTA]`), and annotations that follow a mailbox through
//! RENAME and go with it at DELETE. What Dovecot 2.3 also has is compared with it, whole
//! sessions, in tests/imap_session_diff.rs (`metadata_annotations_answer_alike`).

mod common;

use common::{PY_RECORDING, PY_RUN, Transcript};

/// The commands of RFC 5464 for imaplib. After `common::PY_PRELUDE`.
const PRELUDE: &str = r#"
# RFC 5464 §4.2, §4.3: commands imaplib does not know by name.
imaplib.Commands["GETMETADATA"] = ("AUTH", "SELECTED")
imaplib.Commands["SETMETADATA"] = ("AUTH", "SELECTED")
"#;

const SESSION: &str = r#"
m = connect(Recording)
print("capabilities", "METADATA" in m.capabilities, "METADATA-SERVER" in m.capabilities)
# Server annotations (mailbox name ""): the administrator's /shared/comment reads NIL
# and cannot be set; the user's own entries can, and DEPTH lists them.
run(m, "server-comment", "GETMETADATA", '""', "/shared/comment")
run(m, "server-set-comment", "SETMETADATA", '""', '(/shared/comment "hello")')
run(m, "server-set", "SETMETADATA", '""', '(/private/vendor/vendor.example/theme "dark" /shared/vendor/vendor.example/motd "hi")')
run(m, "server-depth", "GETMETADATA", "(DEPTH infinity)", '""', "(/private /shared)")
# Mailbox annotations; names are case-insensitive and answered in lower case.
run(m, "set", "SETMETADATA", "INBOX", '(/private/comment "My own notes" /Shared/Comment "Team inbox")')
run(m, "get", "GETMETADATA", "inbox", "(/PRIVATE/comment /shared/comment /shared/none)")
run(m, "set-tree", "SETMETADATA", "INBOX", '(/shared/vendor/x/a "1" /shared/vendor/x/a/b "22" /shared/vendor/x/a/b/c "333")')
run(m, "depth-1", "GETMETADATA", "(DEPTH 1)", "INBOX", "/shared/vendor/x/a")
run(m, "depth-infinity", "GETMETADATA", "(DEPTH infinity)", "INBOX", "/shared/vendor/x")
run(m, "maxsize", "GETMETADATA", "(MAXSIZE 2 DEPTH infinity)", "INBOX", "/shared/vendor/x")
# A binary value: sent as literal8 (non-synchronising), answered as literal8.
run(m, "set-binary", "SETMETADATA", "INBOX", b"(/private/vendor/x/bin ~{4+}\r\na\x00b\xff)")
run(m, "get-binary", "GETMETADATA", "INBOX", "/private/vendor/x/bin")
run(m, "remove", "SETMETADATA", "INBOX", "(/private/comment NIL /private/vendor/x/bin NIL)")
run(m, "after-remove", "GETMETADATA", "INBOX", "(/private/comment /private/vendor/x/bin)")
# RFC 5464 §3.2: invalid entry names are BAD.
run(m, "wildcard", "GETMETADATA", "INBOX", "/shared/comm*")
run(m, "double-slash", "SETMETADATA", "INBOX", '(/shared//x "1")')
run(m, "no-scope", "SETMETADATA", "INBOX", '(/public/x "1")')
run(m, "scope-alone", "SETMETADATA", "INBOX", '(/shared "1")')
run(m, "missing", "GETMETADATA", "Nonexistent", "/shared/comment")
# A mailbox name that is not an atom, and one in modified UTF-7.
m.create('"Project Notes"'); m.create("Caf&AOk-")
run(m, "quoted-name", "SETMETADATA", '"Project Notes"', '(/shared/comment "plans")')
run(m, "quoted-get", "GETMETADATA", '"Project Notes"', "/shared/comment")
run(m, "utf7-set", "SETMETADATA", "Caf&AOk-", '(/private/comment "coffee")')
run(m, "utf7-get", "GETMETADATA", "Caf&AOk-", "/private/comment")
# RENAME keeps a mailbox's annotations; DELETE takes them with it.
m.rename('"Project Notes"', "Archive/Plans")
run(m, "renamed", "GETMETADATA", "Archive/Plans", "/shared/comment")
m.delete("Archive/Plans"); m.create("Archive/Plans")
run(m, "recreated", "GETMETADATA", "Archive/Plans", "/shared/comment")
# Limits: a value over 64 KiB (refused before its octets are read), more than 100
# entries on one mailbox (none of them set), more than 1 MiB for the account.
big = b"x" * (64 * 1024 + 1)
run(m, "too-large", "SETMETADATA", "INBOX", b"(/shared/big {%d+}\r\n" % len(big) + big + b")")
run(m, "after-too-large", "NOOP")
many = " ".join('/private/vendor/x/n%d "v"' % n for n in range(101))
run(m, "too-many", "SETMETADATA", "Trash", "(%s)" % many)
run(m, "after-too-many", "GETMETADATA", "(DEPTH infinity)", "Trash", "/private")
large = b"y" * (64 * 1024)
for n in range(16):
    run(m, "large-%d" % n, "SETMETADATA", "Drafts", b"(/private/vendor/x/large%d {%d+}\r\n" % (n, len(large)) + large + b")")
run(m, "large-sizes", "GETMETADATA", "(MAXSIZE 0 DEPTH 1)", "Drafts", "/private/vendor/x")
# Another session hears of none of it unasked (RFC 5464 §4.4.2: optional).
other = connect(Recording)
other.select("INBOX")
run(m, "set-while-selected", "SETMETADATA", "INBOX", '(/shared/comment "Changed")')
run(other, "other-noop", "NOOP")
run(other, "other-get", "GETMETADATA", "INBOX", "/shared/comment")
other.logout()
m.logout()
"#;

#[test]
fn imaplib_keeps_server_and_mailbox_annotations() {
    let out = Transcript::of_script(&format!("{PY_RECORDING}{PRELUDE}{PY_RUN}{SESSION}"));
    // RFC 5464 §1: METADATA for server and mailbox annotations, not METADATA-SERVER.
    assert_eq!(out.line("capabilities"), "capabilities True False");

    out.assert_lines(&[
        r#"server-comment * METADATA "" (/shared/comment NIL) | OK GETMETADATA completed"#,
        "server-set-comment NO [CANNOT] Invalid entry name: the server's /shared/comment is set by the administrator",
        "server-set OK SETMETADATA completed",
    ]);
    assert_eq!(
        out.line("server-depth"),
        concat!(
            r#"server-depth * METADATA "" (/private/vendor/vendor.example/theme {4}\r\ndark "#,
            r#"/shared/vendor/vendor.example/motd {2}\r\nhi) | OK GETMETADATA completed"#
        )
    );

    assert_eq!(out.line("set"), "set OK SETMETADATA completed");
    // A requested entry without a value is NIL (RFC 5464 §4.2); values are literals.
    assert_eq!(
        out.line("get"),
        concat!(
            r"get * METADATA INBOX (/private/comment {12}\r\nMy own notes ",
            r"/shared/comment {10}\r\nTeam inbox /shared/none NIL) | OK GETMETADATA completed"
        )
    );
    // §4.2.2: the entry, then what is below it up to the depth.
    assert_eq!(
        out.line("depth-1"),
        r"depth-1 * METADATA INBOX (/shared/vendor/x/a {1}\r\n1 /shared/vendor/x/a/b {2}\r\n22) | OK GETMETADATA completed"
    );
    assert_eq!(
        out.line("depth-infinity"),
        concat!(
            r"depth-infinity * METADATA INBOX (/shared/vendor/x/a {1}\r\n1 ",
            r"/shared/vendor/x/a/b {2}\r\n22 /shared/vendor/x/a/b/c {3}\r\n333) | OK GETMETADATA completed"
        )
    );
    // §4.2.1: larger values left out, the largest of them in LONGENTRIES.
    assert_eq!(
        out.line("maxsize"),
        r"maxsize * METADATA INBOX (/shared/vendor/x/a {1}\r\n1 /shared/vendor/x/a/b {2}\r\n22) | OK [METADATA LONGENTRIES 3] GETMETADATA completed"
    );
    assert_eq!(
        out.line("set-binary"),
        "set-binary OK SETMETADATA completed"
    );
    assert_eq!(
        out.line("get-binary"),
        r"get-binary * METADATA INBOX (/private/vendor/x/bin ~{4}\r\na\x00b\xff) | OK GETMETADATA completed"
    );
    assert_eq!(out.line("remove"), "remove OK SETMETADATA completed");
    assert_eq!(
        out.line("after-remove"),
        "after-remove * METADATA INBOX (/private/comment NIL /private/vendor/x/bin NIL) | OK GETMETADATA completed"
    );

    out.assert_lines(&[
        "wildcard BAD Invalid entry name: it has * or %",
        "double-slash BAD Invalid entry name: it has two consecutive /",
        "no-scope BAD Invalid entry name: it must begin with /private or /shared",
        "scope-alone NO [CANNOT] Invalid entry name: /shared is a scope, not an entry",
        "missing NO [NONEXISTENT] No such mailbox",
    ]);

    out.assert_lines(&[
        "quoted-name OK SETMETADATA completed",
        r#"quoted-get * METADATA "Project Notes" (/shared/comment {5}\r\nplans) | OK GETMETADATA completed"#,
        "utf7-set OK SETMETADATA completed",
    ]);
    assert_eq!(
        out.line("utf7-get"),
        r"utf7-get * METADATA Caf&AOk- (/private/comment {6}\r\ncoffee) | OK GETMETADATA completed"
    );
    assert_eq!(
        out.line("renamed"),
        r"renamed * METADATA Archive/Plans (/shared/comment {5}\r\nplans) | OK GETMETADATA completed"
    );
    assert_eq!(
        out.line("recreated"),
        "recreated * METADATA Archive/Plans (/shared/comment NIL) | OK GETMETADATA completed"
    );

    // RFC 5464 §4.3: "[METADATA MAXSIZE NNN]" with the most a value may be.
    out.assert_lines(&[
        "too-large NO [METADATA MAXSIZE 65536] Annotation value too large",
        "after-too-large OK Done",
        "too-many NO [METADATA TOOMANY] Too many annotations",
        "after-too-many OK GETMETADATA completed",
    ]);
    for n in 0..15 {
        assert_eq!(
            out.line(&format!("large-{n}")),
            format!("large-{n} OK SETMETADATA completed")
        );
    }
    out.assert_lines(&[
        "large-15 NO [OVERQUOTA] The annotations of an account may take at most 1048576 octets",
        "large-sizes OK [METADATA LONGENTRIES 65536] GETMETADATA completed",
    ]);

    out.assert_lines(&[
        "set-while-selected OK SETMETADATA completed",
        "other-noop OK Done",
    ]);
    assert_eq!(
        out.line("other-get"),
        r"other-get * METADATA INBOX (/shared/comment {7}\r\nChanged) | OK GETMETADATA completed"
    );
}
