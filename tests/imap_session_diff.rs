//! Whole IMAP sessions compared with Dovecot (issue 14).
//!
//! Each test plays one scenario, a list of steps "session n sends X", against a private
//! Dovecot (`common::dovecot`, laid out as letterbox lays out an account: `/` as the
//! hierarchy delimiter and the same special-use mailboxes, all subscribed) and against
//! letterbox, over plain IMAP on loopback, with the raw client of `common::raw_imap`.
//! Every response line of every session is compared: the greeting, tagged and untagged
//! answers, continuation requests, and what the other open sessions are told at their
//! next NOOP or while they IDLE. Sessions are IMAP4rev1 (nobody ENABLEs IMAP4rev2:
//! Dovecot 2.3 has no IMAP4rev2).
//!
//! Both transcripts are normalised by the rules of [`ACCEPTED`], one table, each with
//! the RFC sentence that allows the difference it takes away; any other difference
//! fails the test with the scenario, the step, the session and the lines of both
//! servers. Both transcripts and the differences are written to
//! `$CARGO_TARGET_TMPDIR/imap_session_diff/<scenario>.txt`.

mod common;

use common::TestServer;
use common::dovecot::{DOVECOT_PASSWORD, DOVECOT_USER, Dovecot};
use common::raw_imap::{CLOSED, Piece, RawImap, TIMEOUT};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Dovecot laid out as letterbox makes a new account (storage `DEFAULT_MAILBOXES`,
/// `MAILBOX_DELIMITER`): `/` between levels, INBOX and five special-use mailboxes, all
/// of them subscribed. A change is seen by an IDLE-ing session within a second. With
/// METADATA (RFC 5464), as letterbox has it, the annotations kept in a file in the user's
/// home; nothing else changes with it but the capability list (which is not compared).
/// With URLAUTH (RFC 4467) for URLs naming the host `mail.example.org` (Dovecot keeps
/// the mailbox keys as annotations; its imap-urlauth services need nothing more here).
const DOVECOT_LAYOUT: &str = r"
mailbox_idle_check_interval = 1 secs
imap_metadata = yes
mail_attribute_dict = file:%h/dovecot-attributes
imap_urlauth_host = mail.example.org
namespace inbox {
  inbox = yes
  separator = /
  mailbox INBOX {
    auto = subscribe
  }
  mailbox Sent {
    auto = subscribe
    special_use = \Sent
  }
  mailbox Drafts {
    auto = subscribe
    special_use = \Drafts
  }
  mailbox Trash {
    auto = subscribe
    special_use = \Trash
  }
  mailbox Junk {
    auto = subscribe
    special_use = \Junk
  }
  mailbox Archive {
    auto = subscribe
    special_use = \Archive
  }
}
";

/// How long an IDLE-ing session is given to hear of a change made by another session,
/// and how long it must then stay quiet for its answer to be complete. The quiet time is
/// a guess about scheduling: 700 ms split one answer in two once in a CI run at load 11
/// on this 2-core machine, so it is 2 s (the scenarios wait for it a few times each).
const IDLE_FIRST_LINE: Duration = Duration::from_secs(10);
const IDLE_QUIET: Duration = Duration::from_secs(2);

/// One step: session `n` (from 1) sends the command. Sessions connect and LOGIN when
/// first named and LOGOUT, in order, after the last step. In a command, `{msg:NAME}` is
/// a literal holding the message NAME of [`MESSAGES`] (`~{msg:NAME}` a literal8),
/// `{uidvalidity}` the last UIDVALIDITY this server announced and `{highestmodseq}` the
/// last HIGHESTMODSEQ, `{urluser}` the user as an IMAP URL writes it (RFC 5092 §11
/// `enc-user`), `{urlauth}` the first URL of the last GENURLAUTH response and `{today}`
/// today's date (UTC) as a SEARCH date. Three steps are not commands: `IDLE` sends IDLE and reads up to
/// the continuation request, `(idle)` takes what the IDLE-ing session is told unasked,
/// and `DONE` ends the IDLE.
type Step = (usize, &'static str);

const IDLE: &str = "IDLE";
const IDLE_WAIT: &str = "(idle)";
const DONE: &str = "DONE";

/// The messages APPENDed in the scenarios (CRLF, with a fixed Date).
const MESSAGES: &[(&str, &[u8])] = &[
    (
        "a",
        b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: first\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <a@example.com>\r\n\r\nThe first message.\r\n",
    ),
    (
        "b",
        b"From: Carol <carol@example.net>\r\nTo: Bob <bob@example.org>\r\nSubject: second\r\nDate: Tue, 08 Dec 2026 11:00:00 +0000\r\nMessage-ID: <b@example.net>\r\n\r\nThe second message, about pangolins.\r\n",
    ),
    (
        "c",
        b"From: Alice <alice@example.com>\r\nTo: Dave <dave@example.org>\r\nSubject: third\r\nDate: Wed, 09 Dec 2026 12:00:00 +0000\r\nMessage-ID: <c@example.com>\r\n\r\nThe third message, about pangolins too.\r\n",
    ),
    // For SORT=DISPLAY (RFC 5957): a bare address, an encoded display name, an empty one,
    // a group.
    (
        "d",
        b"From: bob@example.org\r\nTo: =?utf-8?q?=C3=89mile?= <emile@example.org>\r\nSubject: Alpha\r\nDate: Sun, 06 Dec 2026 09:00:00 +0000\r\nMessage-ID: <d@example.org>\r\n\r\nThe fourth message.\r\n",
    ),
    (
        "e",
        b"From: \"\" <aaron@example.com>\r\nTo: undisclosed-recipients:;\r\nSubject: zulu\r\nDate: Thu, 10 Dec 2026 13:00:00 +0000\r\nMessage-ID: <e@example.com>\r\n\r\nThe fifth message.\r\n",
    ),
    ("binary", include_bytes!("corpus/55-binary-append.eml")),
    // The TEXT parts of a CATENATE (RFC 4469) that rebuilds a multipart message.
    (
        "cat-head",
        b"From: Cat <cat@example.org>\r\nSubject: catenated\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"cat\"\r\n\r\n--cat\r\n",
    ),
    ("cat-mid", b"\r\n--cat\r\n"),
    ("cat-tail", b"\r\n--cat--\r\n"),
    // An annotation value (RFC 5464) on two lines, sent as a literal.
    ("note", b"A note\r\non two lines"),
    // Issue 14's items 3, 4, 5 and 9 (the corpus of tests/imap_dovecot_diff.rs).
    ("42", include_bytes!("corpus/42-thread-root.eml")),
    ("43", include_bytes!("corpus/43-thread-reply.eml")),
    ("44", include_bytes!("corpus/44-thread-reply-to-reply.eml")),
    ("45", include_bytes!("corpus/45-thread-missing-parent.eml")),
    ("46", include_bytes!("corpus/46-thread-sibling-missing-parent.eml")),
    ("47", include_bytes!("corpus/47-thread-subject-only.eml")),
    ("49", include_bytes!("corpus/49-date-near-midnight-with-offset.eml")),
    ("50", include_bytes!("corpus/50-text-parts-without-charset.eml")),
    ("51", include_bytes!("corpus/51-folded-quoted-boundary.eml")),
    ("52", include_bytes!("corpus/52-message-rfc822-as-the-body.eml")),
    ("53", include_bytes!("corpus/53-single-part-message-attached.eml")),
    ("54", include_bytes!("corpus/54-obsolete-source-route.eml")),
];

// ---------------------------------------------------------------------------------------
// The accepted differences.
// ---------------------------------------------------------------------------------------

/// One accepted difference: what differs, the RFC sentence that allows it, and the rule
/// that rewrites both servers' answers to the form they are compared in.
struct Accepted {
    what: &'static str,
    rfc: &'static str,
    rule: Rule,
}

enum Rule {
    /// Rewrites one response line; `Seen` is what this server said in the whole scenario.
    Line(fn(&str, &Seen) -> String),
    /// Rewrites the lines of one answer as a whole, knowing the step and its session.
    Answer(fn(&Context, Vec<String>) -> Vec<String>),
}

/// Every difference between Dovecot's and letterbox's sessions that the test accepts,
/// applied in this order to every answer of both servers. Nothing else is taken away.
const ACCEPTED: &[Accepted] = &[
    Accepted {
        what: "capability lists (greeting, LOGIN's response code)",
        rfc: "RFC 3501 §7.2.1: \"The capability listing contains a space-separated listing of \
              capability names that the server supports.\" The servers implement different \
              extensions; the scenarios use only what both list.",
        rule: Rule::Line(capability_list),
    },
    Accepted {
        what: "the human-readable text of status responses (greeting, tagged and untagged \
               OK/NO/BAD, BYE); status and response code are compared",
        rfc: "RFC 3501 §7.1.1: \"When tagged, it indicates successful completion of the \
              associated command. The human-readable text MAY be presented to the user as an \
              information message.\" §7.1: \"The response code contains additional \
              information or status codes for client software beyond the OK/NO/BAD \
              condition\": software reads the code, people read the text.",
        rule: Rule::Line(status_text),
    },
    Accepted {
        what: "the text of a continuation request",
        rfc: "RFC 3501 §7.5: \"This form of response indicates that the server is ready to \
              accept the continuation of a command from the client. The remainder of this \
              response is a line of text.\"",
        rule: Rule::Line(continuation_text),
    },
    Accepted {
        what: "NO [NONEXISTENT] (letterbox) and NO (Dovecot) for SELECT, STATUS, \
               GETMETADATA and SETMETADATA of a mailbox that does not exist",
        rfc: "RFC 3501 §7.1: \"Status responses MAY include an OPTIONAL \"response code\".\" \
              RFC 5530 §3: \"NONEXISTENT: The operation attempts to access a mailbox that \
              doesn't exist.\"",
        rule: Rule::Line(without_nonexistent),
    },
    Accepted {
        what: "NO [CANNOT] (letterbox) and NO (Dovecot) for a mailbox name that is not valid \
               modified UTF-7",
        rfc: "RFC 3501 §7.1: \"Status responses MAY include an OPTIONAL \"response code\".\" \
              RFC 5530 §3: \"CANNOT: The operation violates some invariant of the server and \
              can never succeed.\" (RFC 3501 §5.1.3: such a name is not one a server can have.)",
        rule: Rule::Answer(without_cannot_for_mutf7),
    },
    Accepted {
        what: "OK [CLIENTBUG] (Dovecot) and OK (letterbox) for STATUS of the selected mailbox",
        rfc: "RFC 3501 §7.1: \"Status responses MAY include an OPTIONAL \"response code\".\" \
              RFC 5530 §3: \"CLIENTBUG: The server has detected a client bug.\" (RFC 3501 \
              §6.3.10: \"the STATUS command SHOULD NOT be used on the currently selected \
              mailbox\").",
        rule: Rule::Line(without_clientbug),
    },
    Accepted {
        what: "a HIGHESTMODSEQ response code in the tagged OK of a command after which a \
               QRESYNC session heard of EXISTS or VANISHED (Dovecot); the untagged \
               OK [HIGHESTMODSEQ] of SELECT and of CONDSTORE enabling is compared",
        rfc: "RFC 3501 §7.1: \"Status responses MAY include an OPTIONAL \"response code\".\" \
              RFC 7162 asks for HIGHESTMODSEQ in the untagged OK of SELECT/EXAMINE \
              (§3.1.2.1), not in the tagged OK of NOOP or IDLE.",
        rule: Rule::Line(without_tagged_highestmodseq),
    },
    Accepted {
        what: "MAILBOXID (letterbox implements OBJECTID, Dovecot 2.3 does not): the \
               untagged OK [MAILBOXID (...)] of SELECT/EXAMINE and the [MAILBOXID (...)] \
               code in the tagged OK of CREATE",
        rfc: "RFC 3501 §7.1: \"Status responses MAY include an OPTIONAL \"response code\".\" \
              RFC 8474 §4.1 asks for MAILBOXID only of a server that lists OBJECTID, and \
              the capability lists differ (above).",
        rule: Rule::Answer(without_mailboxid),
    },
    Accepted {
        what: "the order of flags in FLAGS, PERMANENTFLAGS and FETCH FLAGS lists",
        rfc: "RFC 3501 §7.2.6: \"The flag parenthesized list identifies the flags (at a \
              minimum, the system-defined flags) that are applicable for this mailbox.\" \
              §7.4.2 FLAGS: \"A parenthesized list of flags that are set for this message.\" \
              The list names a set.",
        rule: Rule::Line(flag_order),
    },
    Accepted {
        what: "UIDVALIDITY values (SELECT/EXAMINE, STATUS, APPENDUID, COPYUID): compared by \
               the order in which the server first announced each value",
        rfc: "RFC 3501 §2.3.1.1: \"If unique identifiers from an earlier session fail to \
              persist in this session, the unique identifier validity value MUST be greater \
              than the one used in the earlier session.\" and \"One good value to use for the \
              unique identifier validity value is a 32-bit representation of the creation \
              date/time of the mailbox.\" The value is the server's to choose.",
        rule: Rule::Line(uidvalidity_values),
    },
    Accepted {
        what: "mod-sequence values (HIGHESTMODSEQ, FETCH MODSEQ, SEARCH/ESEARCH MODSEQ): \
               their presence is compared, not their value (Dovecot gives messages APPENDed \
               one after the other the same mod-sequence, letterbox one each); which \
               messages CHANGEDSINCE, UNCHANGEDSINCE and SEARCH MODSEQ select is compared",
        rfc: "RFC 7162 §3.1: \"An IMAP server that supports this extension MUST associate a \
              positive unsigned 63-bit value called a modification sequence (mod-sequence) \
              with every IMAP message. This is an opaque value updated by the server whenever \
              a metadata item is modified.\"",
        rule: Rule::Line(modseq_values),
    },
    Accepted {
        what: "the day of a date-time written with a leading space (letterbox) or zero \
               (Dovecot) in INTERNALDATE and SAVEDATE",
        rfc: "RFC 3501 §9: `date-day-fixed = (SP DIGIT) / 2DIGIT ; Fixed-format version of \
              date-day`: either form.",
        rule: Rule::Line(|line, _| date_day_padding(line)),
    },
    Accepted {
        what: "the time of day in SAVEDATE values (the date and the zone are compared)",
        rfc: "RFC 8514 (abstract): the save date \"always indicates the moment at which the \
              message was saved in its current mailbox\": each server saved it at its own \
              moment, seconds apart.",
        rule: Rule::Line(savedate_times),
    },
    Accepted {
        what: "the case of a body's Content-Transfer-Encoding in BODYSTRUCTURE",
        rfc: "RFC 2045 §6.1: \"These values are not case sensitive -- Base64 and BASE64 and \
              bAsE64 are all equivalent.\" RFC 3501 §7.4.2 gives body-fld-enc as a string.",
        rule: Rule::Line(encoding_case),
    },
    Accepted {
        what: "a mailbox name (and a LIST extended item's tag) as an atom or as a quoted \
               string in LIST, LSUB and STATUS",
        rfc: "RFC 3501 §9: \"mailbox = \"INBOX\" / astring\" and \"astring = \
              1*ASTRING-CHAR / string\"; RFC 5258 §6: \"mbox-list-extended-item-tag = \
              astring\". Both spellings are the same astring.",
        rule: Rule::Line(mailbox_astrings),
    },
    Accepted {
        what: "special-use attributes in LIST and LSUB answers to commands that do not ask \
               for them: Dovecot sends them in a LIST without options and in LSUB, letterbox \
               in every LIST and never in LSUB; with the SPECIAL-USE selection or return \
               option they are compared",
        rfc: "RFC 6154 §2: \"An IMAP server that supports this extension MAY include any or \
              all of the following attributes in responses to the non-extended IMAP LIST \
              command.\" Unasked they are the server's choice; the SPECIAL-USE options \
              are how a client asks for them.",
        rule: Rule::Answer(special_use_unasked),
    },
    Accepted {
        what: "\\HasChildren / \\HasNoChildren in a LIST the client did not ask CHILDREN of \
               (letterbox always sends them, Dovecot for some selection options only), and in \
               the LIST responses NOTIFY sends unasked (RFC 5465 §5.4: \"an extended LIST \
               response [RFC5258]\"); with RETURN (CHILDREN) they are compared",
        rfc: "RFC 5258 §4: \"The CHILDREN return option is simply an indication that the \
              client wants this information; a server MAY provide it even if the option is \
              not specified.\"",
        rule: Rule::Answer(children_unasked),
    },
    Accepted {
        what: "UID in an unsolicited FETCH (flags changed elsewhere, in answers to commands \
               that ask for no UID, before QRESYNC): letterbox sends it, Dovecot does not",
        rfc: "RFC 9051 §7.5.2 UID: \"If the server chooses to send unsolicited FETCH \
              responses, they MUST include UID FETCH item.\" RFC 3501 §7.4.2 neither asks \
              for it nor forbids it; QRESYNC makes it a MUST for both (RFC 7162 §3.2.4), \
              which is compared.",
        rule: Rule::Answer(unsolicited_uid),
    },
    Accepted {
        what: "the order of the data items in a FETCH response",
        rfc: "RFC 3501 §7.4.2: \"The data are pairs of data item names and their values in \
              parentheses.\" No order is given for the pairs.",
        rule: Rule::Line(fetch_item_order),
    },
    Accepted {
        what: "the order of the items in a STATUS response (Dovecot: its own; letterbox: \
               the order they were asked in)",
        rfc: "RFC 3501 §7.2.4: \"It returns the mailbox name that matches the STATUS \
              specification and the requested mailbox status information.\" No order is \
              given for the items.",
        rule: Rule::Line(status_item_order),
    },
    Accepted {
        what: "the order of consecutive FETCH responses (a change made elsewhere reported \
               before or after the ones the command asked for) and of consecutive LIST or \
               LSUB responses",
        rfc: "RFC 3501 §7: \"Server data MAY be sent as a result of a client command, or MAY \
              be sent unilaterally by the server. There is no syntactic difference between \
              server data that resulted from a specific command and server data that were \
              sent unilaterally.\" §7.2.2: \"There can be multiple LIST responses for a \
              single LIST command.\" (no order among them).",
        rule: Rule::Answer(response_order),
    },
    Accepted {
        what: "NOTIFY SET with MessageNew but not MessageExpunge (or FlagChange without both) \
               for other mailboxes than the selected one (Dovecot: OK, it checks the selected \
               mailbox's events only; letterbox: BAD)",
        rfc: "RFC 5465 §5: \"If one of MessageNew or MessageExpunge is specified, then both \
              events MUST be specified. Otherwise, the server MUST respond with the tagged BAD \
              response.\" Dovecot 2.3 does not; both answers are compared as the BAD.",
        rule: Rule::Answer(notify_unpaired_events),
    },
    Accepted {
        what: "the events a NO [BADEVENT ...] to NOTIFY lists (Dovecot: the unsupported ones \
               asked for, without parentheses; letterbox: every supported one, in \
               parentheses); that it is a NO with BADEVENT is compared",
        rfc: "RFC 5465 §3.1: \"If the client requests information for events of an \
              unsupported type, the server MUST refuse the command with a tagged NO response \
              (not a BAD). This response SHOULD contain the BADEVENT response code, which \
              MUST list names of all events supported by the server.\" §8: \
              `unsupported-events-code = \"BADEVENT\" SP \"(\" event *(SP event) \")\"`.",
        rule: Rule::Line(badevent_list),
    },
    Accepted {
        what: "the order of the STATUS responses to NOTIFY SET STATUS, one per watched \
               mailbox (Dovecot: its directory order; letterbox: name order)",
        rfc: "RFC 5465 §3.1: \"If the NOTIFY command enables MessageNew, MessageExpunge, \
              AnnotationChange, or FlagChange notifications for a mailbox other than the \
              currently selected mailbox, and the client has specified the STATUS indicator \
              parameter, then the server MUST send a STATUS response for that mailbox before \
              NOTIFY's tagged OK.\" One response a mailbox; no order among them.",
        rule: Rule::Answer(notify_status_order),
    },
    Accepted {
        what: "the order of the entries in the METADATA response to a GETMETADATA with \
               DEPTH 1 or infinity (letterbox: each requested entry, then the entries \
               below it in name order; Dovecot: in the order its attribute dictionary \
               iterates)",
        rfc: "RFC 5464 §4.2.2: \"For each entry name specified in the GETMETADATA command, \
              the server returns the value of the specified entry name (if it exists), plus \
              all entries below the entry name up to the specified DEPTH.\" Which entries, \
              not in which order.",
        rule: Rule::Answer(metadata_depth_order),
    },
    Accepted {
        what: "in GENURLAUTH and URLFETCH responses, the URL's user (Dovecot: differ; \
               letterbox: an address, written with %40 and so quoted, not an atom), its \
               UIDVALIDITY value and the INTERNAL verifier (each server's MAC under its own \
               key); the rest of the URL, and all URLFETCH returns, are compared",
        rfc: "Not a difference of the servers but of the accounts the scenario runs as: \
              a URL names its user (RFC 5092 §11: `enc-user = 1*achar`, and `achar` has \
              no \"@\"), and an astring that is not an atom is quoted (RFC 3501 §4.3). \
              UIDVALIDITY values differ as above. RFC 4467's formal syntax says of the \
              verifier only `enc-urlauth = 32*HEXDIG`.",
        rule: Rule::Line(urlauth_urls),
    },
    Accepted {
        what: "the untagged NO Dovecot sends after a URLFETCH answered NIL, telling why \
               (letterbox tells nothing: the NIL is the whole answer)",
        rfc: "RFC 3501 §7.1.2: \"The untagged form indicates a warning; the command can \
              still complete successfully.\"",
        rule: Rule::Answer(urlfetch_warnings),
    },
    Accepted {
        what: "STORE in a mailbox opened with EXAMINE: Dovecot answers OK and ignores it, \
               letterbox answers NO; neither changes a flag (compared by the FETCH after)",
        rfc: "RFC 3501 §6.3.2: \"No changes to the permanent state of the mailbox, including \
              per-user state, are permitted\"; §6.4.6 lets STORE end in \"NO - store error: \
              can't store that data\" and does not say which a read-only mailbox gets.",
        rule: Rule::Answer(read_only_store),
    },
    Accepted {
        what: "ENABLE while a mailbox is selected: Dovecot enables, letterbox answers BAD",
        rfc: "RFC 5161 §3.1: \"The ENABLE command is only valid in the authenticated state \
              (see [IMAP]), before any mailbox is selected. Clients MUST NOT issue ENABLE \
              once they SELECT/EXAMINE a mailbox; however, server implementations don't have \
              to check that no mailbox is selected or was previously selected during the \
              duration of a connection.\"",
        rule: Rule::Answer(enable_when_selected),
    },
    Accepted {
        what: "an untagged OK without a response code while the session waits in IDLE \
               (Dovecot's keepalive `* OK Still here`, sent when its timer fires: on a \
               loaded machine within a scenario)",
        rfc: "RFC 3501 §7.1.1: \"An untagged form indicates an information-only message; \
              the nature of the information MAY be indicated by a response code.\" RFC 2177 \
              §3: \"the server is now free to send untagged EXISTS, EXPUNGE, and other \
              messages at any time\".",
        rule: Rule::Answer(without_idle_keepalive),
    },
];

/// What one server announced in the whole scenario, for the rules that compare values
/// by their order.
#[derive(Default)]
struct Seen {
    /// UIDVALIDITY values in the order the server first announced them.
    uidvalidities: Vec<u64>,
}

/// The step an answer belongs to and the state its session was in before it. The same
/// on both sides: it follows from the steps and the tagged status of SELECT/EXAMINE.
struct Context<'a> {
    sent: &'a str,
    /// `Some(read_only)` while a mailbox is selected.
    selected: Option<bool>,
    qresync: bool,
}

/// Where a UIDVALIDITY value follows.
const UIDVALIDITY_KEYS: &[&str] = &["UIDVALIDITY ", "[APPENDUID ", "[COPYUID "];
/// Where a mod-sequence value follows (`HIGHESTMODSEQ n`, `MODSEQ (n)`, `(MODSEQ n)`).
const MODSEQ_KEYS: &[&str] = &["MODSEQ ", "MODSEQ ("];
/// RFC 6154 §2 special-use attributes.
const SPECIAL_USE: &[&str] = &[
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];
/// RFC 2045 §6.1 mechanisms, as body-fld-enc strings.
const ENCODINGS: &[&str] = &["7BIT", "8BIT", "BINARY", "BASE64", "QUOTED-PRINTABLE"];

impl Seen {
    fn of(answers: &[Answer]) -> Seen {
        let mut seen = Seen::default();
        for line in answers.iter().flat_map(|a| &a.lines) {
            for value in numbers_after(line, UIDVALIDITY_KEYS) {
                if !seen.uidvalidities.contains(&value) {
                    seen.uidvalidities.push(value);
                }
            }
        }
        seen
    }
}

/// Every number that follows one of `keys` in `line`.
fn numbers_after(line: &str, keys: &[&str]) -> Vec<u64> {
    let mut numbers = Vec::new();
    rewrite_numbers_after(line, keys, |n| {
        numbers.push(n);
        n.to_string()
    });
    numbers
}

/// `line` with every number that follows one of `keys` replaced by `rewrite(number)`.
fn rewrite_numbers_after(
    line: &str,
    keys: &[&str],
    mut rewrite: impl FnMut(u64) -> String,
) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        // The earliest key; of two at one place, the longer.
        let next = keys
            .iter()
            .filter_map(|key| rest.find(key).map(|at| (at, at + key.len())))
            .min_by_key(|&(at, end)| (at, std::cmp::Reverse(end)));
        let Some((_, end)) = next else {
            out.push_str(rest);
            return out;
        };
        let digits = rest[end..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - end);
        out.push_str(&rest[..end]);
        match rest[end..end + digits].parse() {
            Ok(number) => out.push_str(&rewrite(number)),
            Err(_) => out.push_str(&rest[end..end + digits]),
        }
        rest = &rest[end + digits..];
    }
}

fn capability_list(line: &str, _: &Seen) -> String {
    match line.find("[CAPABILITY ") {
        Some(at) => {
            let end = line[at..].find(']').map_or(line.len(), |e| at + e);
            format!("{}[CAPABILITY …{}", &line[..at], &line[end..])
        }
        None => line.to_owned(),
    }
}

/// `tag|* OK|NO|BAD|BYE|PREAUTH [code] text` with the text as `…`.
fn status_text(line: &str, _: &Seen) -> String {
    let mut words = line.splitn(3, ' ');
    let (Some(tag), Some(status)) = (words.next(), words.next()) else {
        return line.to_owned();
    };
    let is_status = ["OK", "NO", "BAD", "BYE", "PREAUTH"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(status));
    if !is_status {
        return line.to_owned();
    }
    let rest = words.next().unwrap_or("");
    let code = rest
        .strip_prefix('[')
        .and_then(|inner| inner.find(']').map(|end| format!(" [{}]", &inner[..end])))
        .unwrap_or_default();
    format!("{tag} {status}{code} …")
}

fn continuation_text(line: &str, _: &Seen) -> String {
    if line.starts_with('+') {
        "+ …".to_owned()
    } else {
        line.to_owned()
    }
}

/// `line` without the response code `[code ...]` of a status response (`tagged`: only
/// of a tagged one).
fn without_code(line: &str, code: &str, tagged: bool) -> String {
    if tagged && line.starts_with("* ") {
        return line.to_owned();
    }
    match line.find(&format!(" [{code}")) {
        Some(at) => match line[at..].find(']') {
            Some(end) => format!("{}{}", &line[..at], &line[at + end + 1..]),
            None => line.to_owned(),
        },
        None => line.to_owned(),
    }
}

/// Only for a command naming a mailbox with `&` (the modified UTF-7 shift character).
fn without_cannot_for_mutf7(context: &Context, lines: Vec<String>) -> Vec<String> {
    if !context.sent.contains('&') {
        return lines;
    }
    lines
        .into_iter()
        .map(|line| without_code(&line, "CANNOT]", true))
        .collect()
}

fn without_idle_keepalive(context: &Context, lines: Vec<String>) -> Vec<String> {
    if context.sent != IDLE_WAIT {
        return lines;
    }
    lines
        .into_iter()
        .filter(|line| {
            line.strip_prefix("* OK ")
                .is_none_or(|text| text.starts_with('['))
        })
        .collect()
}

fn without_nonexistent(line: &str, _: &Seen) -> String {
    without_code(line, "NONEXISTENT]", false)
}

fn without_clientbug(line: &str, _: &Seen) -> String {
    without_code(line, "CLIENTBUG]", true)
}

fn without_tagged_highestmodseq(line: &str, _: &Seen) -> String {
    without_code(line, "HIGHESTMODSEQ ", true)
}

/// Drops an untagged `* OK [MAILBOXID (...)]` and the code from a tagged OK.
fn without_mailboxid(_: &Context, lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|line| !line.starts_with("* OK [MAILBOXID "))
        .map(|line| without_code(&line, "MAILBOXID ", true))
        .collect()
}

/// Sorts the words of every `FLAGS (...)` list (PERMANENTFLAGS included).
fn flag_order(line: &str, _: &Seen) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("FLAGS (") {
        let start = at + "FLAGS (".len();
        let Some(len) = rest[start..].find(')') else {
            break;
        };
        let mut flags: Vec<&str> = rest[start..start + len].split_whitespace().collect();
        flags.sort_unstable_by_key(|flag| flag.to_ascii_lowercase());
        out.push_str(&rest[..start]);
        out.push_str(&flags.join(" "));
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

fn uidvalidity_values(line: &str, seen: &Seen) -> String {
    rewrite_numbers_after(line, UIDVALIDITY_KEYS, |value| {
        let index = seen.uidvalidities.iter().position(|&v| v == value);
        format!("<uidvalidity {}>", index.map_or(0, |i| i + 1))
    })
}

/// `INTERNALDATE " 7-Dec-2026 ...` and `SAVEDATE " 7-Dec-2026 ...` as `"07-Dec-2026 ...`.
fn date_day_padding(line: &str) -> String {
    let mut out = line.to_owned();
    for key in ["INTERNALDATE \" ", "SAVEDATE \" "] {
        let padded = key.replace("\" ", "\"0");
        while let Some(at) = out.find(key) {
            let digit = out.as_bytes().get(at + key.len()).copied();
            if !digit.is_some_and(|b| b.is_ascii_digit()) {
                break;
            }
            out.replace_range(at..at + key.len(), &padded);
        }
    }
    out
}

/// `SAVEDATE "07-Dec-2026 12:00:01 +0000"` as `SAVEDATE "07-Dec-2026 <time> +0000"`.
fn savedate_times(line: &str, _: &Seen) -> String {
    const KEY: &str = "SAVEDATE \"";
    let Some(start) = line.find(KEY).map(|i| i + KEY.len()) else {
        return line.to_owned();
    };
    let value = &line[start..];
    match (value.find(' '), value.get(12..21)) {
        (Some(11), Some(time)) if time.ends_with(' ') => {
            format!("{}<time>{}", &line[..start + 12], &line[start + 20..])
        }
        _ => line.to_owned(),
    }
}

/// Today's date (UTC) as IMAP writes a SEARCH date (RFC 3501 §9 `date-text`).
fn today() -> String {
    let format = time::macros::format_description!("[day padding:none]-[month repr:short]-[year]");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .expect("formats")
}

fn modseq_values(line: &str, _: &Seen) -> String {
    rewrite_numbers_after(line, MODSEQ_KEYS, |_| "<modseq>".to_owned())
}

fn encoding_case(line: &str, _: &Seen) -> String {
    if !line.contains("BODYSTRUCTURE (") && !line.contains("BODY (") {
        return line.to_owned();
    }
    let mut out = line.to_owned();
    for encoding in ENCODINGS {
        out = out.replace(
            &format!("\"{encoding}\""),
            &format!("\"{}\"", encoding.to_lowercase()),
        );
    }
    out
}

/// In a `* GENURLAUTH` or `* URLFETCH` line, each URL (the first word after the name
/// in URLFETCH, every word in GENURLAUTH) unquoted, with `USER` for its user and for the
/// user of `user+`/`submit+`, `V` for its UIDVALIDITY and `MAC` for the verifier.
fn urlauth_urls(line: &str, _: &Seen) -> String {
    let (head, rest, every) = if let Some(rest) = line.strip_prefix("* GENURLAUTH ") {
        ("* GENURLAUTH ", rest, true)
    } else if let Some(rest) = line.strip_prefix("* URLFETCH ") {
        ("* URLFETCH ", rest, false)
    } else {
        return line.to_owned();
    };
    let (urls, tail) = if every {
        (rest, "")
    } else {
        rest.split_at(rest.find(' ').unwrap_or(rest.len()))
    };
    let urls: Vec<String> = urls.split(' ').map(normal_url).collect();
    format!("{head}{}{tail}", urls.join(" "))
}

fn normal_url(url: &str) -> String {
    let url = url.trim_matches('"');
    let mut out = String::new();
    let mut rest = url;
    // `imap://user@`, `UIDVALIDITY=n`, `+user` of the access, `:internal:hex`.
    while !rest.is_empty() {
        let (skip, keep_until): (usize, fn(char) -> bool) = if rest.starts_with("imap://") {
            out.push_str("imap://USER");
            (7, |c| c != '@')
        } else if rest.starts_with("UIDVALIDITY=") {
            out.push_str("UIDVALIDITY=V");
            (12, |c| c.is_ascii_digit())
        } else if rest.starts_with("user+") || rest.starts_with("submit+") {
            let plus = rest.find('+').map_or(0, |p| p + 1);
            out.push_str(&rest[..plus]);
            out.push_str("USER");
            (plus, |c| c != ':')
        } else if rest.starts_with(":internal:") {
            out.push_str(":internal:MAC");
            (10, |c| c.is_ascii_hexdigit())
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        rest = &rest[skip..];
        rest = rest.trim_start_matches(keep_until);
    }
    out
}

/// The answer to a URLFETCH without its untagged NO warnings.
fn urlfetch_warnings(context: &Context, lines: Vec<String>) -> Vec<String> {
    if !context.sent.to_ascii_uppercase().starts_with("URLFETCH ") {
        return lines;
    }
    lines
        .into_iter()
        .filter(|line| !line.starts_with("* NO "))
        .collect()
}

/// In LIST, LSUB and STATUS, every quoted string that could be an atom (the LIST
/// delimiter aside, which is always quoted) is written as the atom.
fn mailbox_astrings(line: &str, _: &Seen) -> String {
    let skip_delimiter = if line.starts_with("* LIST ") || line.starts_with("* LSUB ") {
        true
    } else if line.starts_with("* STATUS ") {
        false
    } else {
        return line.to_owned();
    };
    let mut out = String::new();
    let mut delimiter_seen = !skip_delimiter;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            let next = line[i..].find('"').map_or(line.len(), |n| i + n);
            out.push_str(&line[i..next]);
            i = next;
            continue;
        }
        let end = quoted_end(bytes, i);
        let inner = &line[i + 1..end.saturating_sub(1).max(i + 1)];
        let atom = !inner.is_empty() && inner.bytes().all(is_astring_char);
        if atom && delimiter_seen {
            out.push_str(inner);
        } else {
            out.push_str(&line[i..end]);
        }
        delimiter_seen = true;
        i = end;
    }
    out
}

/// RFC 3501 §9: `ASTRING-CHAR = ATOM-CHAR / resp-specials`.
fn is_astring_char(byte: u8) -> bool {
    byte.is_ascii_graphic() && !b"(){%*\"\\".contains(&byte)
}

/// A LIST/LSUB line without the attributes of `drop`.
fn without_attributes(line: &str, drop: &[&str]) -> String {
    let Some(open) = line.find('(') else {
        return line.to_owned();
    };
    let Some(close) = line[open..].find(')').map(|c| open + c) else {
        return line.to_owned();
    };
    let kept: Vec<&str> = line[open + 1..close]
        .split_whitespace()
        .filter(|a| !drop.iter().any(|d| d.eq_ignore_ascii_case(a)))
        .collect();
    format!(
        "{}({}){}",
        &line[..open],
        kept.join(" "),
        &line[close + 1..]
    )
}

fn special_use_unasked(context: &Context, lines: Vec<String>) -> Vec<String> {
    let sent = context.sent.to_ascii_uppercase();
    if !(sent.starts_with("LIST ") || sent.starts_with("LSUB ")) || sent.contains("SPECIAL-USE") {
        return lines;
    }
    lines
        .into_iter()
        .map(|line| {
            if line.starts_with("* LIST (") || line.starts_with("* LSUB (") {
                without_attributes(&line, SPECIAL_USE)
            } else {
                line
            }
        })
        .collect()
}

fn children_unasked(context: &Context, lines: Vec<String>) -> Vec<String> {
    let sent = context.sent.to_ascii_uppercase();
    let unasked = sent == IDLE_WAIT.to_ascii_uppercase() || sent.starts_with("NOTIFY ");
    if !unasked && (!sent.starts_with("LIST ") || sent.contains("CHILDREN")) {
        return lines;
    }
    lines
        .into_iter()
        .map(|line| {
            if line.starts_with("* LIST (") {
                without_attributes(&line, &["\\HasChildren", "\\HasNoChildren"])
            } else {
                line
            }
        })
        .collect()
}

fn unsolicited_uid(context: &Context, lines: Vec<String>) -> Vec<String> {
    let asks_uid = context
        .sent
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word.eq_ignore_ascii_case("UID"));
    if asks_uid || context.qresync {
        return lines;
    }
    lines
        .into_iter()
        .map(|line| match fetch_items(&line) {
            Some((head, items)) => {
                let kept: Vec<_> = items
                    .into_iter()
                    .filter(|(name, _)| name != "UID")
                    .collect();
                fetch_line(head, &kept)
            }
            None => line,
        })
        .collect()
}

fn fetch_item_order(line: &str, _: &Seen) -> String {
    match fetch_items(line) {
        Some((head, mut items)) => {
            items.sort();
            fetch_line(head, &items)
        }
        None => line.to_owned(),
    }
}

fn status_item_order(line: &str, _: &Seen) -> String {
    let Some(open) = line.strip_prefix("* STATUS ").and(line.rfind(" (")) else {
        return line.to_owned();
    };
    let Some(list) = line[open + 2..].strip_suffix(')') else {
        return line.to_owned();
    };
    let words: Vec<&str> = list.split(' ').collect();
    let mut pairs: Vec<String> = words.chunks(2).map(|pair| pair.join(" ")).collect();
    pairs.sort();
    format!("{} ({})", &line[..open], pairs.join(" "))
}

fn response_order(_: &Context, mut lines: Vec<String>) -> Vec<String> {
    let kind = |line: &str| {
        if fetch_items(line).is_some() {
            1
        } else if line.starts_with("* LIST ") || line.starts_with("* LSUB ") {
            2
        } else {
            0
        }
    };
    let mut start = 0;
    while start < lines.len() {
        let run = kind(&lines[start]);
        let end = start + lines[start..].iter().take_while(|l| kind(l) == run).count();
        if run != 0 {
            lines[start..end].sort();
        }
        start = end;
    }
    lines
}

fn badevent_list(line: &str, _: &Seen) -> String {
    match (line.find("[BADEVENT "), line.find(']')) {
        (Some(start), Some(end)) if end > start => {
            format!("{}[BADEVENT]{}", &line[..start], &line[end + 1..])
        }
        _ => line.to_owned(),
    }
}

fn notify_unpaired_events(context: &Context, lines: Vec<String>) -> Vec<String> {
    let sent = context.sent.to_ascii_uppercase();
    let (new, expunge) = (sent.contains("MESSAGENEW"), sent.contains("MESSAGEEXPUNGE"));
    let flags = sent.contains("FLAGCHANGE");
    if !sent.starts_with("NOTIFY SET ") || (new == expunge && (!flags || new)) {
        return lines;
    }
    lines
        .into_iter()
        .map(|line| match line.split_once(" OK ") {
            Some((tag, text)) if !tag.starts_with('*') => format!("{tag} BAD {text}"),
            _ => line,
        })
        .collect()
}

fn notify_status_order(context: &Context, mut lines: Vec<String>) -> Vec<String> {
    if context
        .sent
        .to_ascii_uppercase()
        .starts_with("NOTIFY SET STATUS ")
    {
        let statuses = lines
            .iter()
            .take_while(|l| l.starts_with("* STATUS "))
            .count();
        lines[..statuses].sort();
    }
    lines
}

fn metadata_depth_order(context: &Context, lines: Vec<String>) -> Vec<String> {
    let sent = context.sent.to_ascii_uppercase();
    let below = sent.starts_with("GETMETADATA (")
        && (sent.contains("DEPTH 1") || sent.contains("DEPTH INFINITY"));
    if !below {
        return lines;
    }
    lines
        .into_iter()
        .map(|line| match metadata_entries(&line) {
            Some((head, mut entries)) => {
                entries.sort();
                let entries: Vec<String> =
                    entries.iter().map(|(n, v)| format!("{n} {v}")).collect();
                format!("{head} ({})", entries.join(" "))
            }
            None => line,
        })
        .collect()
}

/// `* METADATA mailbox (entry value ...)` as its head (`* METADATA mailbox`) and its
/// (entry, value) pairs.
fn metadata_entries(line: &str) -> Option<(&str, Vec<(String, String)>)> {
    let rest = line.strip_prefix("* METADATA ")?;
    let mailbox_end = value_end(rest.as_bytes(), 0);
    let head = &line[..line.len() - rest.len() + mailbox_end];
    let body = rest[mailbox_end..].strip_prefix(" (")?.strip_suffix(')')?;
    // An entry name is an astring, which ends as a value does.
    let entries = pairs(body, value_end)
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    Some((head, entries))
}

fn read_only_store(context: &Context, mut lines: Vec<String>) -> Vec<String> {
    let sent = context.sent.to_ascii_uppercase();
    let store = sent.starts_with("STORE ") || sent.starts_with("UID STORE ");
    if context.selected == Some(true)
        && store
        && let Some(tagged) = lines.last_mut()
    {
        for status in [" OK", " NO"] {
            if let Some(at) = tagged.find(status) {
                tagged.replace_range(at..at + status.len(), " OK|NO");
                break;
            }
        }
    }
    lines
}

fn enable_when_selected(context: &Context, lines: Vec<String>) -> Vec<String> {
    if context.selected.is_some() && context.sent.to_ascii_uppercase().starts_with("ENABLE ") {
        return vec!["(ENABLE in the selected state: the server's choice)".to_owned()];
    }
    lines
}

/// `* n FETCH (items)` as its head (`* n FETCH`) and its (name, value) pairs, names in
/// upper case.
fn fetch_items(line: &str) -> Option<(&str, Vec<(String, String)>)> {
    let rest = line.strip_prefix("* ")?;
    let number_end = rest.find(' ')?;
    rest[..number_end].parse::<u32>().ok()?;
    let after = rest[number_end..].strip_prefix(" FETCH (")?;
    let head = &line[..2 + number_end + " FETCH".len()];
    let body = after.strip_suffix(')')?;
    let items = pairs(body, name_end)
        .into_iter()
        .map(|(name, value)| (name.to_ascii_uppercase(), value.to_owned()))
        .collect();
    Some((head, items))
}

/// The (name, value) pairs of a parenthesised list's `body`, names ending where
/// `name_end` says.
fn pairs(body: &str, name_end: fn(&[u8], usize) -> usize) -> Vec<(&str, &str)> {
    let bytes = body.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let name_end = name_end(bytes, i);
        let value_start = (name_end + 1).min(bytes.len());
        let value_end = value_end(bytes, value_start);
        pairs.push((&body[i..name_end], &body[value_start..value_end]));
        i = value_end + 1;
    }
    pairs
}

fn fetch_line(head: &str, items: &[(String, String)]) -> String {
    let items: Vec<String> = items.iter().map(|(n, v)| format!("{n} {v}")).collect();
    format!("{head} ({})", items.join(" "))
}

/// The end of a FETCH item name such as `BODY[HEADER.FIELDS (FROM)]<0>`.
fn name_end(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => depth += 1,
            b']' => depth -= 1,
            b' ' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The end of the value at `i`: an atom or number, a quoted string, a literal as
/// `common::raw_imap` writes it (`{n}` and n escaped octets), or a parenthesised list.
fn value_end(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => {
                depth += 1;
                i += 1;
                continue;
            }
            b')' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                i += 1;
            }
            b' ' if depth == 0 => return i,
            b' ' => {
                i += 1;
                continue;
            }
            b'"' => i = quoted_end(bytes, i),
            b'{' => i = literal_end(bytes, i),
            b'~' if bytes.get(i + 1) == Some(&b'{') => i = literal_end(bytes, i + 1),
            _ => {
                while i < bytes.len() && !b" ()\"".contains(&bytes[i]) {
                    i += 1;
                }
            }
        }
        if depth == 0 {
            return i;
        }
    }
    i
}

/// The end (past the closing quote) of the quoted string at `i`.
fn quoted_end(bytes: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of the literal at `i` (`{n}` then n octets, escaped as `common::raw_imap`
/// writes them: `\r`, `\n`, `\\` and `\xNN` are one octet each).
fn literal_end(bytes: &[u8], i: usize) -> usize {
    let Some(close) = bytes[i..].iter().position(|&b| b == b'}').map(|c| i + c) else {
        return bytes.len();
    };
    let size: usize = std::str::from_utf8(&bytes[i + 1..close])
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut at = close + 1;
    for _ in 0..size {
        at += match (bytes.get(at), bytes.get(at + 1)) {
            (Some(b'\\'), Some(b'x')) => 4,
            (Some(b'\\'), _) => 2,
            _ => 1,
        };
    }
    at.min(bytes.len())
}

// ---------------------------------------------------------------------------------------
// Playing a scenario.
// ---------------------------------------------------------------------------------------

/// One server's answer to one step.
struct Answer {
    session: usize,
    /// The step as written (`(connect)`, `LOGIN`, `LOGOUT` for the implicit ones).
    sent: String,
    lines: Vec<String>,
}

struct Session {
    client: RawImap,
    tag: char,
    count: u32,
    /// The tag of the IDLE command in progress.
    idling: Option<String>,
}

impl Session {
    fn next_tag(&mut self) -> String {
        self.count += 1;
        format!("{}{}", self.tag, self.count)
    }
}

/// Plays `steps` against the server on `port` as `user`.
fn play(port: u16, user: &str, password: &str, steps: &[Step]) -> Vec<Answer> {
    let mut sessions: Vec<Option<Session>> = Vec::new();
    let mut answers = Vec::new();
    let mut uidvalidity = String::new();
    let mut highestmodseq = String::new();
    let mut urlauth = String::new();
    for &(n, step) in steps {
        if sessions.len() < n {
            sessions.resize_with(n, || None);
        }
        let session = sessions[n - 1].get_or_insert_with(|| {
            let (client, greeting) = RawImap::connect(port);
            answers.push(Answer {
                session: n,
                sent: "(connect)".into(),
                lines: vec![greeting],
            });
            let mut session = Session {
                client,
                tag: (b'a' + (n - 1) as u8) as char,
                count: 0,
                idling: None,
            };
            let tag = session.next_tag();
            let login = format!("LOGIN \"{user}\" \"{password}\"");
            answers.push(Answer {
                session: n,
                sent: "LOGIN".into(),
                lines: session.client.command(&tag, &[Piece::Text(&login)]),
            });
            session
        });
        let lines = match step {
            IDLE => {
                let tag = session.next_tag();
                session.idling = Some(tag.clone());
                session.client.start(&tag, "IDLE")
            }
            IDLE_WAIT => session.client.unsolicited(IDLE_FIRST_LINE, IDLE_QUIET),
            DONE => {
                let tag = session.idling.take().expect("DONE without IDLE");
                session.client.send_line("DONE");
                session.client.until_tagged(&tag)
            }
            command => {
                let command = command
                    .replace("{uidvalidity}", &uidvalidity)
                    .replace("{highestmodseq}", &highestmodseq)
                    .replace("{urluser}", &user.replace('@', "%40"))
                    .replace("{urlauth}", &urlauth)
                    .replace("{today}", &today());
                let tag = session.next_tag();
                session.client.command(&tag, &pieces(&command))
            }
        };
        for line in &lines {
            if let Some(value) = numbers_after(line, &["UIDVALIDITY "]).last() {
                uidvalidity = value.to_string();
            }
            if let Some(value) = numbers_after(line, &["HIGHESTMODSEQ "]).last() {
                highestmodseq = value.to_string();
            }
            if let Some(url) = line.strip_prefix("* GENURLAUTH ") {
                urlauth = url
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_owned();
            }
        }
        answers.push(Answer {
            session: n,
            sent: step.to_owned(),
            lines,
        });
    }
    for (index, session) in sessions.iter_mut().enumerate() {
        if let Some(session) = session {
            let tag = session.next_tag();
            answers.push(Answer {
                session: index + 1,
                sent: "LOGOUT".into(),
                lines: session.client.command(&tag, &[Piece::Text("LOGOUT")]),
            });
        }
    }
    answers
}

/// A command with its `{msg:NAME}` literals as pieces.
fn pieces(command: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = command;
    while let Some(start) = rest.find("{msg:") {
        let end = start + rest[start..].find('}').expect("closing brace");
        let name = &rest[start + "{msg:".len()..end];
        let message = MESSAGES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no message {name}"))
            .1;
        match rest[..start].strip_suffix('~') {
            Some(text) => {
                pieces.push(Piece::Text(text));
                pieces.push(Piece::Literal8(message));
            }
            None => {
                pieces.push(Piece::Text(&rest[..start]));
                pieces.push(Piece::Literal(message));
            }
        }
        rest = &rest[end + 1..];
    }
    pieces.push(Piece::Text(rest));
    pieces
}

// ---------------------------------------------------------------------------------------
// Comparing.
// ---------------------------------------------------------------------------------------

/// The lines of every answer after the rules of [`ACCEPTED`], and for each answer the
/// rules that changed it.
fn normalise(answers: &[Answer]) -> Vec<(Vec<String>, Vec<&'static str>)> {
    let seen = Seen::of(answers);
    let mut sessions: Vec<(Option<bool>, bool)> = Vec::new();
    answers
        .iter()
        .map(|answer| {
            if sessions.len() < answer.session {
                sessions.resize(answer.session, (None, false));
            }
            let (selected, qresync) = &mut sessions[answer.session - 1];
            let context = Context {
                sent: &answer.sent,
                selected: *selected,
                qresync: *qresync,
            };
            let mut lines = answer.lines.clone();
            let mut changed_by = Vec::new();
            for accepted in ACCEPTED {
                let before = lines.clone();
                lines = match accepted.rule {
                    Rule::Line(rule) => lines.iter().map(|l| rule(l, &seen)).collect(),
                    Rule::Answer(rule) => rule(&context, lines),
                };
                if lines != before {
                    changed_by.push(accepted.what);
                }
            }
            // What the step leaves behind for the next ones.
            let sent = answer.sent.to_ascii_uppercase();
            let ok = answer
                .lines
                .last()
                .is_some_and(|l| l.split(' ').nth(1) == Some("OK"));
            if sent.starts_with("SELECT ") || sent.starts_with("EXAMINE ") {
                *selected = ok.then_some(sent.starts_with("EXAMINE "));
            } else if sent == "CLOSE" || sent == "UNSELECT" {
                *selected = None;
            } else if sent.starts_with("ENABLE ") && sent.contains("QRESYNC") && ok {
                *qresync = true;
            }
            (lines, changed_by)
        })
        .collect()
}

/// Plays `steps` against Dovecot and letterbox and fails on any difference the table
/// does not accept, and on any answer that did not come.
fn compare(scenario: &str, steps: &[Step]) {
    let dovecot = Dovecot::start_with(DOVECOT_LAYOUT);
    let server = TestServer::start();
    let (theirs, ours) = std::thread::scope(|scope| {
        let theirs = scope.spawn(|| play(dovecot.port, DOVECOT_USER, DOVECOT_PASSWORD, steps));
        let ours = play(server.port("imap"), &server.email, &server.password, steps);
        (theirs.join().expect("dovecot side"), ours)
    });
    assert_eq!(theirs.len(), ours.len(), "both played the same steps");
    let (normal_theirs, normal_ours) = (normalise(&theirs), normalise(&ours));

    let mut transcript = String::new();
    let mut failures = String::new();
    let mut accepted = String::new();
    let mut accepted_count = 0;
    let mut compared = 0;
    for (index, (theirs, ours)) in theirs.iter().zip(&ours).enumerate() {
        compared += theirs.lines.len().max(ours.lines.len());
        let ((their_lines, their_rules), (our_lines, our_rules)) =
            (&normal_theirs[index], &normal_ours[index]);
        let head = format!(
            "step {index}, session {} sent `{}`",
            theirs.session, theirs.sent
        );
        let _ = writeln!(transcript, "{head}");
        for line in &theirs.lines {
            let _ = writeln!(transcript, "  dovecot:   {line}");
        }
        for line in &ours.lines {
            let _ = writeln!(transcript, "  letterbox: {line}");
        }
        let lost = |lines: &[String]| {
            let logout = theirs.sent == "LOGOUT";
            lines
                .iter()
                .any(|l| l == TIMEOUT || (l == CLOSED && !logout))
        };
        if their_lines != our_lines || lost(&theirs.lines) || lost(&ours.lines) {
            let _ = writeln!(failures, "{head}:\n{}", diff(their_lines, our_lines));
        } else if theirs.lines != ours.lines {
            let mut rules: Vec<&str> = their_rules.iter().chain(our_rules).copied().collect();
            rules.sort_unstable();
            rules.dedup();
            accepted_count += 1;
            let _ = writeln!(accepted, "{head}:\n    {}", rules.join("\n    "));
        }
    }
    let summary = format!(
        "{scenario}: {} answers, {compared} response lines compared, {accepted_count} of them equal only after accepted differences",
        theirs.len(),
    );
    let table: String = ACCEPTED
        .iter()
        .map(|a| format!("- {}\n  {}\n", a.what, a.rfc))
        .collect();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("imap_session_diff");
    std::fs::create_dir_all(&dir).expect("report dir");
    std::fs::write(
        dir.join(format!("{scenario}.txt")),
        format!(
            "{summary}\n\nnot accepted:\n{failures}\naccepted:\n{accepted}\ntranscripts:\n{transcript}\nthe accepted differences:\n{table}"
        ),
    )
    .expect("write report");
    println!("{summary}");
    assert!(
        failures.is_empty(),
        "letterbox's session differs from Dovecot's in scenario {scenario} (- dovecot, + letterbox; transcripts in {}):\n{failures}",
        dir.display()
    );
}

/// The lines of both answers, `-` for Dovecot's only, `+` for letterbox's only (a
/// longest common subsequence diff; answers are short).
fn diff(theirs: &[String], ours: &[String]) -> String {
    let (n, m) = (theirs.len(), ours.len());
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if theirs[i] == ours[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && theirs[i] == ours[j] {
            let _ = writeln!(out, "      {}", theirs[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || common[i + 1][j] >= common[i][j + 1]) {
            let _ = writeln!(out, "    - {}", theirs[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "    + {}", ours[j]);
            j += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The scenarios.
// ---------------------------------------------------------------------------------------

#[test]
fn select_and_examine_announce_the_same_mailbox_state() {
    compare(
        "select_examine",
        &[
            (1, "SELECT INBOX"),
            (1, "APPEND INBOX (\\Seen) {msg:a}"),
            (1, "APPEND INBOX ($Important) {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (2, "SELECT INBOX"),
            (2, "EXAMINE INBOX"),
            (2, "SELECT INBOX (CONDSTORE)"),
            (2, "EXAMINE Sent"),
            (2, "SELECT Archive"),
            (2, "SELECT Nonexistent"),
            (1, "NOOP"),
        ],
    );
}

#[test]
fn flag_and_keyword_changes_and_appends_reach_the_other_session() {
    compare(
        "flags_keywords",
        &[
            (1, "SELECT INBOX"),
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (2, "SELECT INBOX"),
            (1, "STORE 1 +FLAGS (\\Flagged)"),
            (1, "STORE 2 +FLAGS ($Label1 Project)"),
            (2, "NOOP"),
            (1, "STORE 1:2 -FLAGS (\\Flagged Project)"),
            (1, "UID STORE 2 FLAGS (\\Answered $Label1)"),
            (2, "NOOP"),
            (2, "APPEND INBOX (\\Draft Later) {msg:c}"),
            (1, "NOOP"),
            (1, "FETCH 1:* (UID FLAGS)"),
            (2, "FETCH 1:* (UID FLAGS)"),
        ],
    );
}

#[test]
fn an_expunge_reaches_the_other_sessions_as_expunge_or_vanished() {
    compare(
        "expunge_vanished",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (1, "SELECT INBOX"),
            (2, "SELECT INBOX"),
            (3, "ENABLE QRESYNC"),
            (3, "SELECT INBOX"),
            (1, "STORE 2 +FLAGS.SILENT (\\Deleted)"),
            (1, "EXPUNGE"),
            (2, "NOOP"),
            (3, "NOOP"),
            (2, "FETCH 1:* (UID)"),
            (3, "FETCH 1:* (UID)"),
        ],
    );
}

#[test]
fn an_expunge_and_an_arrival_reach_the_other_session_in_one_noop() {
    compare(
        "expunge_and_arrival",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "SELECT INBOX"),
            (2, "SELECT INBOX"),
            (1, "STORE 1 +FLAGS.SILENT (\\Deleted)"),
            (1, "EXPUNGE"),
            (1, "APPEND INBOX {msg:c}"),
            (2, "NOOP"),
            (2, "FETCH 1:* (UID FLAGS)"),
        ],
    );
}

#[test]
fn silent_stores_with_condstore_still_report_modseqs() {
    compare(
        "store_silent_condstore",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "SELECT INBOX (CONDSTORE)"),
            (2, "SELECT INBOX (CONDSTORE)"),
            (1, "STORE 1 +FLAGS.SILENT (\\Seen)"),
            (1, "UID STORE 2 +FLAGS.SILENT (\\Flagged)"),
            (2, "NOOP"),
            (1, "STORE 1 -FLAGS.SILENT (\\Seen)"),
            (1, "FETCH 1:* (FLAGS MODSEQ)"),
            // NOOP first: without it Dovecot reads session 1's last change before it
            // answers the FETCH, letterbox answers from its last sync and reports the
            // change after the FETCH responses (the flags and MODSEQ of message 1 then
            // differ in the answer, not after it).
            (2, "NOOP"),
            (2, "FETCH 1:* (FLAGS) (CHANGEDSINCE 1)"),
        ],
    );
}

#[test]
fn a_store_unchangedsince_answers_modified_for_what_changed_meanwhile() {
    compare(
        "unchangedsince_modified",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (1, "SELECT INBOX (CONDSTORE)"),
            (2, "SELECT INBOX (CONDSTORE)"),
            (1, "STORE 1 +FLAGS (\\Seen)"),
            (
                2,
                "STORE 1:3 (UNCHANGEDSINCE {highestmodseq}) +FLAGS (\\Flagged)",
            ),
            (2, "UID STORE 1:3 (UNCHANGEDSINCE 1) -FLAGS (\\Flagged)"),
            (1, "NOOP"),
            (1, "FETCH 1:* (FLAGS MODSEQ)"),
        ],
    );
}

#[test]
fn search_esearch_and_saved_results_answer_alike() {
    compare(
        "search_esearch_searchres",
        &[
            (1, "APPEND INBOX (\\Seen) {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND INBOX (\\Flagged) {msg:c}"),
            (1, "SELECT INBOX"),
            (1, "SEARCH ALL"),
            (1, "SEARCH UNSEEN"),
            (1, "SEARCH FROM alice"),
            (1, "UID SEARCH BODY pangolins"),
            (1, "SEARCH CHARSET UTF-8 SUBJECT second"),
            (1, "SEARCH RETURN () FLAGGED"),
            (1, "SEARCH RETURN (MIN MAX COUNT) ALL"),
            (1, "UID SEARCH RETURN (ALL) NOT SEEN"),
            (1, "SEARCH RETURN (COUNT) DELETED"),
            (1, "SEARCH RETURN (MIN) DELETED"),
            (1, "SEARCH RETURN (SAVE) FROM alice"),
            (1, "FETCH $ (UID FLAGS)"),
            (1, "SEARCH $ UNSEEN"),
            (1, "UID SEARCH RETURN (SAVE MIN) UNSEEN"),
            (1, "UID FETCH $ (FLAGS)"),
            (1, "STORE $ +FLAGS (\\Answered)"),
            (1, "SEARCH ANSWERED"),
            (1, "SEARCH RETURN (SAVE) DELETED"),
            (1, "FETCH $ (UID)"),
        ],
    );
}

#[test]
fn esort_and_sort_display_answer_alike() {
    compare(
        "esort_sort_display",
        &[
            (1, "APPEND INBOX (\\Seen) {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND INBOX (\\Flagged) {msg:c}"),
            (1, "APPEND INBOX {msg:d}"),
            (1, "APPEND INBOX {msg:e}"),
            (1, "SELECT INBOX"),
            // RFC 5267 §3.1: MIN/MAX the first and last in sort order, ALL in sort order.
            (1, "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL"),
            (1, "UID SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL"),
            (1, "SORT RETURN () (FROM) UTF-8 ALL"),
            (1, "SORT RETURN (COUNT) (DATE) UTF-8 DELETED"),
            (1, "SORT RETURN (MIN MAX) (DATE) UTF-8 DELETED"),
            // Not ARRIVAL: APPENDs may straddle a second on one server and not the other.
            (1, "UID SORT RETURN (MAX MIN) (REVERSE SIZE) UTF-8 UNSEEN"),
            // RFC 5957 §2.
            (1, "SORT (DISPLAYFROM) UTF-8 ALL"),
            (1, "SORT (REVERSE DISPLAYFROM) UTF-8 ALL"),
            (1, "SORT (DISPLAYTO) UTF-8 ALL"),
            (
                1,
                "UID SORT RETURN (MIN MAX ALL) (DISPLAYTO REVERSE SUBJECT) UTF-8 ALL",
            ),
            // RFC 5182 with SORT.
            (1, "SORT RETURN (SAVE) (REVERSE SUBJECT) UTF-8 FROM alice"),
            (1, "FETCH $ (UID)"),
            (1, "SORT RETURN (SAVE MAX) (SUBJECT) UTF-8 ALL"),
            (1, "FETCH $ (UID)"),
        ],
    );
}

#[test]
fn copy_and_move_answer_copyuid_and_expunge() {
    compare(
        "copy_move",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (1, "SELECT INBOX"),
            (2, "SELECT Archive"),
            (1, "COPY 1 Archive"),
            (1, "UID COPY 2:3 Archive"),
            (1, "MOVE 1 Trash"),
            (1, "UID MOVE 3 Archive"),
            (2, "NOOP"),
            (2, "FETCH 1:* (UID FLAGS)"),
            (1, "COPY 1 Nonexistent"),
            (1, "MOVE 1 Nonexistent"),
            (1, "FETCH 1:* (UID)"),
            (1, "STATUS Trash (MESSAGES UIDNEXT)"),
        ],
    );
}

#[test]
fn uid_expunge_removes_only_the_given_uids() {
    compare(
        "uid_expunge",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (1, "SELECT INBOX"),
            (2, "SELECT INBOX"),
            (1, "STORE 1:3 +FLAGS.SILENT (\\Deleted)"),
            (1, "UID EXPUNGE 2"),
            (2, "NOOP"),
            (1, "FETCH 1:* (UID FLAGS)"),
            (1, "UID EXPUNGE 1:*"),
            (2, "NOOP"),
            (1, "UID EXPUNGE 1:*"),
        ],
    );
}

#[test]
fn close_expunges_silently_and_unselect_does_not() {
    compare(
        "close_unselect",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (1, "SELECT INBOX"),
            (2, "SELECT INBOX"),
            (1, "STORE 1 +FLAGS.SILENT (\\Deleted)"),
            (1, "UNSELECT"),
            (2, "NOOP"),
            (1, "FETCH 1 (FLAGS)"),
            (1, "SELECT INBOX"),
            (1, "CLOSE"),
            (2, "NOOP"),
            (1, "EXAMINE INBOX"),
            (1, "STORE 1 +FLAGS (\\Deleted)"),
            (1, "FETCH 1 (FLAGS)"),
            (2, "STORE 1 +FLAGS.SILENT (\\Deleted)"),
            (1, "CLOSE"),
            (2, "NOOP"),
            (1, "CLOSE"),
        ],
    );
}

#[test]
fn status_answers_for_the_selected_mailbox_and_others() {
    compare(
        "status",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX (\\Seen) {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (1, "APPEND Archive {msg:a}"),
            (1, "SELECT INBOX"),
            (
                1,
                "STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)",
            ),
            (
                1,
                "STATUS Archive (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)",
            ),
            (2, "APPEND INBOX {msg:a}"),
            // NOOP first: STATUS of the selected mailbox counts what the session was told
            // in Dovecot (the arrival only after the NOOP), what is stored in letterbox;
            // RFC 3501 §6.3.10: STATUS "SHOULD NOT be used on the currently selected
            // mailbox".
            (1, "NOOP"),
            (1, "STATUS INBOX (MESSAGES UIDNEXT RECENT)"),
            (2, "STATUS INBOX (MESSAGES RECENT UNSEEN)"),
            (1, "STATUS Archive (HIGHESTMODSEQ)"),
            (1, "STATUS Nonexistent (MESSAGES)"),
        ],
    );
}

#[test]
fn select_with_qresync_reports_what_changed_since_a_modseq() {
    compare(
        "enable_qresync_select",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (1, "SELECT INBOX (CONDSTORE)"),
            (1, "STORE 1 +FLAGS (\\Seen)"),
            (1, "STORE 3 +FLAGS (\\Deleted)"),
            (1, "EXPUNGE"),
            (2, "ENABLE CONDSTORE"),
            (2, "ENABLE QRESYNC"),
            (2, "SELECT INBOX (QRESYNC ({uidvalidity} 1))"),
            (2, "SELECT INBOX (QRESYNC ({uidvalidity} 1 1:10))"),
            (2, "EXAMINE INBOX (QRESYNC (1 1))"),
            (2, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"),
            (1, "APPEND INBOX {msg:a}"),
            (2, "NOOP"),
        ],
    );
}

#[test]
fn an_idle_session_hears_of_appends_flags_and_expunges() {
    compare(
        "idle",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "SELECT INBOX"),
            (1, IDLE),
            (2, "APPEND INBOX {msg:b}"),
            (1, IDLE_WAIT),
            (2, "SELECT INBOX"),
            (2, "STORE 1 +FLAGS (\\Flagged)"),
            (1, IDLE_WAIT),
            (2, "STORE 2 +FLAGS.SILENT (\\Deleted)"),
            // Heard before the EXPUNGE: of a flag change and an expunge of one message
            // heard at once, Dovecot tells only the expunge, letterbox both.
            (1, IDLE_WAIT),
            (2, "EXPUNGE"),
            (1, IDLE_WAIT),
            (1, DONE),
            (1, "FETCH 1:* (UID FLAGS)"),
        ],
    );
}

#[test]
fn list_lsub_and_list_extended_answer_alike_after_mailbox_changes() {
    compare(
        "list",
        &[
            (1, "CREATE Projects"),
            (1, "CREATE Projects/Alpha"),
            (1, "CREATE Projects/Beta"),
            (1, "CREATE Projects/Alpha/Notes"),
            (1, "SUBSCRIBE Projects/Alpha"),
            (1, "SUBSCRIBE Projects/Beta"),
            (1, "SUBSCRIBE Projects/Alpha/Notes"),
            (1, "LIST \"\" \"*\""),
            (1, "LIST \"\" \"%\""),
            (1, "LIST \"\" \"Projects/%\""),
            (1, "LSUB \"\" \"*\""),
            (1, "LSUB \"\" \"Projects/%\""),
            (1, "DELETE Projects/Beta"),
            (1, "RENAME Projects/Alpha Projects/Gamma"),
            (1, "LIST \"\" \"*\""),
            (1, "LSUB \"\" \"*\""),
            (1, "LIST (SUBSCRIBED) \"\" \"*\""),
            (1, "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\""),
            (1, "LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN)"),
            (1, "LIST \"\" \"*\" RETURN (SUBSCRIBED CHILDREN)"),
            (1, "LIST (SPECIAL-USE) \"\" \"*\""),
            (1, "LIST \"\" \"*\" RETURN (SPECIAL-USE)"),
            (1, "UNSUBSCRIBE Projects/Beta"),
            (1, "LSUB \"\" \"*\""),
            (1, "DELETE Projects/Gamma/Notes"),
            (1, "DELETE Projects/Gamma"),
            (1, "LIST \"\" \"Projects*\""),
        ],
    );
}

#[test]
fn a_binary_append_is_fetched_as_binary_and_as_body() {
    compare(
        "binary_append",
        &[
            (1, "APPEND INBOX ~{msg:binary}"),
            (1, "SELECT INBOX"),
            (1, "FETCH 1 (BINARY.SIZE[2] RFC822.SIZE)"),
            (1, "FETCH 1 (BODYSTRUCTURE)"),
            (1, "FETCH 1 (BINARY.PEEK[2])"),
            (1, "FETCH 1 (BODY.PEEK[2])"),
            (1, "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])"),
            (1, "FETCH 1 (BINARY[2]<0.16>)"),
        ],
    );
}

#[test]
fn recent_goes_to_one_read_write_session_and_examine_sees_it() {
    compare(
        "recent_two_sessions",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (2, "EXAMINE INBOX"),
            (1, "SELECT INBOX"),
            (2, "FETCH 1:* (FLAGS)"),
            (1, "FETCH 1:* (FLAGS)"),
            (3, "APPEND INBOX {msg:c}"),
            (2, "NOOP"),
            (1, "NOOP"),
            (2, "FETCH 1:* (FLAGS)"),
            (1, "FETCH 1:* (FLAGS)"),
            (1, "SEARCH RECENT"),
            (1, "SEARCH NEW"),
            (2, "SEARCH RECENT"),
            (3, "STATUS INBOX (MESSAGES RECENT)"),
            (3, "SELECT INBOX"),
            (3, "FETCH 1:* (FLAGS)"),
        ],
    );
}

/// Each session enables CONDSTORE in a mailbox of its own: once any client used
/// CONDSTORE in a mailbox, Dovecot 2.3 sends HIGHESTMODSEQ at every SELECT of it, even to
/// sessions that did not enable CONDSTORE (its index keeps mod-sequences from then on);
/// letterbox, which always keeps them, sends it once the session enabled CONDSTORE.
#[test]
fn the_first_condstore_enabling_command_announces_highestmodseq() {
    compare(
        "condstore_enabling",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "APPEND Archive {msg:a}"),
            (1, "APPEND Drafts {msg:b}"),
            (1, "APPEND Trash {msg:c}"),
            (1, "APPEND Junk {msg:a}"),
            (1, "SELECT INBOX"),
            (1, "FETCH 1 (FLAGS MODSEQ)"),
            (1, "STORE 1 +FLAGS (\\Seen)"),
            (1, "FETCH 2 (FLAGS MODSEQ)"),
            (2, "SELECT Archive"),
            (2, "SEARCH MODSEQ 1"),
            (2, "STORE 1 +FLAGS (\\Flagged)"),
            (3, "SELECT Drafts"),
            (3, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)"),
            (4, "SELECT Trash"),
            (4, "STORE 1 (UNCHANGEDSINCE 1000) +FLAGS (\\Answered)"),
            (5, "SELECT Junk"),
            (5, "STATUS Sent (HIGHESTMODSEQ)"),
            (5, "FETCH 1 (FLAGS)"),
            (5, "ENABLE CONDSTORE"),
        ],
    );
}

/// RFC 4469: CATENATE of TEXT literals and URLs to parts of a stored message (with the
/// UIDVALIDITY each server announced, and without), inside a MULTIAPPEND too; a TEXT
/// literal8 with a binary part; BADURL for a UID that does not exist. (A section that
/// does not exist is not played: Dovecot 2.3 takes it as empty text, as FETCH gives it,
/// where letterbox answers BADURL since the URL names nothing; imap/src/tests.rs.)
#[test]
fn catenate_builds_messages_from_text_and_stored_parts() {
    compare(
        "catenate",
        &[
            (1, "APPEND INBOX ~{msg:binary}"),
            (1, "SELECT INBOX"),
            (
                1,
                "APPEND INBOX CATENATE (TEXT {msg:cat-head} URL \"/INBOX;UIDVALIDITY={uidvalidity}/;UID=1/;SECTION=1.MIME\" URL \"/INBOX;UIDVALIDITY={uidvalidity}/;UID=1/;SECTION=1\" TEXT {msg:cat-mid} URL \"/INBOX/;UID=1/;SECTION=2.MIME\" URL \"/INBOX/;UID=1/;SECTION=2\" TEXT {msg:cat-tail})",
            ),
            (1, "NOOP"),
            (1, "FETCH 2 (BODY.PEEK[] BODYSTRUCTURE)"),
            (1, "FETCH 2 (BINARY.PEEK[2])"),
            (
                1,
                "APPEND INBOX CATENATE (URL \"/INBOX/;UID=1/;SECTION=HEADER\" TEXT {msg:cat-tail}) (\\Seen) CATENATE (TEXT ~{msg:binary})",
            ),
            (1, "NOOP"),
            (1, "FETCH 3:4 (FLAGS BODY.PEEK[])"),
            (1, "APPEND INBOX CATENATE (URL \"/INBOX/;UID=99\")"),
            (1, "NOOP"),
        ],
    );
}

/// RFC 9394 / RFC 5267 §4.4 PARTIAL (the `m:n` ranges Dovecot 2.3 knows; `-m:-n` and
/// PARTIAL FETCH are in tests/imap_context.rs) on SEARCH and SORT, with SAVE, MIN and
/// COUNT; MODSEQ in SORT and ESORT answers (RFC 7162 §3.1.5, RFC 5267 §3).
#[test]
fn partial_results_and_esort_modseq_answer_alike() {
    compare(
        "partial_esort_modseq",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX (\\Seen) {msg:b}"),
            (1, "APPEND INBOX (\\Flagged) {msg:c}"),
            (1, "APPEND INBOX {msg:d}"),
            (1, "APPEND INBOX {msg:e}"),
            (1, "SELECT INBOX"),
            (1, "SEARCH RETURN (PARTIAL 1:2) ALL"),
            (1, "UID SEARCH RETURN (PARTIAL 4:2 COUNT MIN) ALL"),
            (1, "SEARCH RETURN (PARTIAL 9:10) UNSEEN"),
            (1, "SEARCH RETURN (PARTIAL 2:9 MAX) UNSEEN"),
            (1, "SEARCH RETURN (PARTIAL 1:2 ALL) ALL"),
            (1, "SEARCH RETURN (PARTIAL 0:2) ALL"),
            (1, "SEARCH RETURN (SAVE PARTIAL 2:3) ALL"),
            (1, "FETCH $ (UID)"),
            (1, "SORT RETURN (PARTIAL 2:4) (SUBJECT) UTF-8 ALL"),
            (
                1,
                "UID SORT RETURN (PARTIAL 1:2 MAX COUNT) (REVERSE DATE) UTF-8 ALL",
            ),
            (1, "SEARCH RETURN (CONTEXT) UNSEEN"),
            (1, "STORE 2 +FLAGS (\\Answered)"),
            (1, "SORT (SUBJECT) UTF-8 MODSEQ 1"),
            (1, "SORT RETURN (MIN) (SUBJECT) UTF-8 MODSEQ 1"),
            (1, "UID SORT RETURN (MAX COUNT) (DATE) UTF-8 MODSEQ 1"),
            (1, "SORT RETURN () (SUBJECT) UTF-8 MODSEQ 1 UNSEEN"),
            (1, "SORT RETURN (COUNT) (SUBJECT) UTF-8 MODSEQ 1 DELETED"),
        ],
    );
}

/// RFC 5267 §4.3 CONTEXT=SEARCH: updating searches told, at the next NOOP, of what
/// another session's STORE, APPEND and MOVE and their own session's STORE did to their
/// results (REMOVEFROM before EXPUNGE, ADDTO after EXISTS), until CANCELUPDATE. Session
/// 1's tags are a1 (LOGIN), a2, ... in step order.
#[test]
fn updating_searches_hear_of_changes_alike() {
    compare(
        "context_search_updates",
        &[
            (1, "APPEND INBOX {msg:a}"),
            (1, "APPEND INBOX (\\Seen) {msg:b}"),
            (1, "APPEND INBOX {msg:c}"),
            (1, "SELECT INBOX"),
            (2, "SELECT INBOX"),
            // a6 and a7.
            (1, "UID SEARCH RETURN (UPDATE) UNSEEN"),
            (1, "SEARCH RETURN (UPDATE COUNT) UNSEEN"),
            (2, "STORE 1 +FLAGS (\\Seen)"),
            (1, "NOOP"),
            (2, "APPEND INBOX {msg:d}"),
            (1, "NOOP"),
            (2, "MOVE 3 Archive"),
            (1, "NOOP"),
            (1, "CANCELUPDATE \"a7\""),
            (1, "STORE 1 -FLAGS (\\Seen)"),
            (2, "STORE 2 -FLAGS (\\Seen)"),
            (1, "NOOP"),
            (1, "CANCELUPDATE \"zz\""),
            (1, "CANCELUPDATE a6"),
            (1, "CANCELUPDATE \"a6\""),
            (2, "STORE 1:* +FLAGS (\\Seen)"),
            (1, "NOOP"),
        ],
    );
}

/// METADATA (RFC 5464): server and mailbox annotations set, read back (one entry, a
/// list, DEPTH 0, 1 and infinity, MAXSIZE with [METADATA LONGENTRIES]) and removed with
/// NIL; names case-insensitive and answered in lower case; the server's /shared/comment
/// is the administrator's (NO [CANNOT]); invalid entry names and options are BAD; a
/// mailbox that does not exist is NO; RENAME keeps a mailbox's annotations and DELETE
/// takes them; no session hears of another's SETMETADATA unasked (§4.4.2 makes the
/// unsolicited METADATA response optional; Dovecot sends none). DEPTH on the server's
/// entries is left out: Dovecot 2.3 lists none below a server entry (tests/imap_metadata.rs
/// has it), and so are limits, which Dovecot 2.3 does not have.
#[test]
fn metadata_annotations_answer_alike() {
    compare(
        "metadata",
        &[
            (1, "GETMETADATA \"\" /shared/comment"),
            (1, "SETMETADATA \"\" (/shared/comment \"hello\")"),
            (
                1,
                "SETMETADATA \"\" (/private/vendor/vendor.letterbox/theme \"dark\")",
            ),
            (
                1,
                "GETMETADATA \"\" (/private/vendor/vendor.letterbox/theme /shared/admin)",
            ),
            (
                1,
                "SETMETADATA INBOX (/private/comment \"my inbox\" /shared/comment \"shared inbox\")",
            ),
            (1, "GETMETADATA INBOX (/private/comment /shared/comment)"),
            (1, "GETMETADATA inbox /Private/Comment"),
            (1, "SETMETADATA INBOX (/Shared/Comment {msg:note})"),
            (1, "GETMETADATA INBOX /shared/comment"),
            (
                1,
                "SETMETADATA INBOX (/shared/vendor/vendor.letterbox/a \"1\" /shared/vendor/vendor.letterbox/a/b \"2\" /shared/vendor/vendor.letterbox/a/b/c \"3\" /shared/vendor/vendor.letterbox/a/d \"4\")",
            ),
            (
                1,
                "GETMETADATA (DEPTH 1) INBOX /shared/vendor/vendor.letterbox/a",
            ),
            (
                1,
                "GETMETADATA (DEPTH infinity) INBOX /shared/vendor/vendor.letterbox/a",
            ),
            (
                1,
                "GETMETADATA (DEPTH 1) INBOX /shared/vendor/vendor.letterbox/a/b",
            ),
            (1, "GETMETADATA (DEPTH 0) INBOX /shared/vendor"),
            (1, "GETMETADATA (DEPTH 1) INBOX /shared/vendor"),
            (1, "GETMETADATA (DEPTH 1) INBOX /shared/nothing"),
            (
                1,
                "GETMETADATA (MAXSIZE 5) INBOX (/private/comment /shared/comment /shared/nothing)",
            ),
            (1, "GETMETADATA (MAXSIZE 8 DEPTH 1) INBOX /private"),
            (1, "GETMETADATA (DEPTH infinity MAXSIZE 1) INBOX /shared"),
            (1, "SETMETADATA INBOX (/private/comment NIL)"),
            (1, "GETMETADATA INBOX (/private/comment /shared/comment)"),
            (1, "SETMETADATA INBOX (/shared/comment \"\")"),
            (1, "GETMETADATA INBOX /shared/comment"),
            (1, "GETMETADATA INBOX /private/com*"),
            (1, "SETMETADATA INBOX (/private//x \"1\")"),
            (1, "SETMETADATA INBOX (/private/x/ \"1\")"),
            (1, "SETMETADATA INBOX (/other/x \"1\")"),
            (1, "SETMETADATA INBOX (private/x \"1\")"),
            (1, "SETMETADATA INBOX (/shared/x)"),
            (1, "GETMETADATA (DEPTH 2) INBOX /shared"),
            (1, "GETMETADATA (FOO 1) INBOX /shared"),
            (1, "GETMETADATA (MAXSIZE x) INBOX /shared"),
            (1, "GETMETADATA INBOX /shared/comment extra"),
            (1, "GETMETADATA Nonexistent /shared/comment"),
            (1, "SETMETADATA Nonexistent (/shared/comment \"x\")"),
            (1, "CREATE \"Work Box\""),
            (1, "CREATE \"Work Box/Sub\""),
            (
                1,
                "SETMETADATA \"Work Box\" (/private/comment \"w\" /shared/comment \"team\")",
            ),
            (1, "SETMETADATA \"Work Box/Sub\" (/private/comment \"s\")"),
            (
                1,
                "GETMETADATA \"Work Box\" (/private/comment /shared/comment)",
            ),
            (1, "RENAME \"Work Box\" Play"),
            (1, "GETMETADATA Play (/private/comment /shared/comment)"),
            (1, "GETMETADATA Play/Sub /private/comment"),
            (1, "GETMETADATA \"Work Box\" /private/comment"),
            (1, "DELETE Play/Sub"),
            (1, "CREATE Play/Sub"),
            (1, "GETMETADATA Play/Sub /private/comment"),
            (2, "SELECT INBOX"),
            (
                1,
                "SETMETADATA INBOX (/private/comment \"while selected elsewhere\")",
            ),
            (2, "NOOP"),
            (2, "GETMETADATA INBOX /private/comment"),
            (2, "EXAMINE Play"),
            (2, "SETMETADATA Play (/shared/comment NIL)"),
            (2, "GETMETADATA Play (/private/comment /shared/comment)"),
        ],
    );
}

/// NOTIFY (RFC 5465, which Dovecot 2.3 announces): NOTIFY SET STATUS tells each watched
/// mailbox's STATUS before its OK; then, with no command in progress, new mail in
/// another mailbox is told as STATUS (§5.2), and mailboxes created, renamed (with
/// OLDNAME), subscribed and deleted as LIST (§5.4, §5.5); a MessageNew without
/// MessageExpunge is BAD (§5); after NOTIFY NONE nothing more is told unasked.
#[test]
fn notify_tells_the_same_events() {
    compare(
        "notify",
        &[
            // Dovecot creates its special-use mailboxes when they are first opened;
            // opened here, it does not tell of their creation to NOTIFY below.
            (1, "STATUS INBOX (UIDVALIDITY)"),
            (1, "STATUS Sent (UIDVALIDITY)"),
            (1, "STATUS Drafts (UIDVALIDITY)"),
            (1, "STATUS Trash (UIDVALIDITY)"),
            (1, "STATUS Junk (UIDVALIDITY)"),
            (1, "STATUS Archive (UIDVALIDITY)"),
            (1, "NOTIFY SET (personal (MessageNew))"),
            (
                1,
                "NOTIFY SET STATUS (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))",
            ),
            (2, "APPEND Archive {msg:a}"),
            (1, IDLE_WAIT),
            (2, "CREATE Projects"),
            (1, IDLE_WAIT),
            (2, "RENAME Projects Work"),
            (1, IDLE_WAIT),
            (2, "SUBSCRIBE Work"),
            (1, IDLE_WAIT),
            (2, "UNSUBSCRIBE Work"),
            (1, IDLE_WAIT),
            (2, "DELETE Work"),
            (1, IDLE_WAIT),
            (1, "NOTIFY NONE"),
            (2, "APPEND Archive {msg:b}"),
            (1, "NOOP"),
        ],
    );
}

/// NOTIFY for the selected mailbox (RFC 5465 §5.1 to §5.3, §6.1.1): a message another
/// session appends is told at once as EXISTS and the FETCH asked for, a flag change as
/// FETCH with UID and FLAGS, an expunge as EXPUNGE, all with no command in progress; an
/// unsupported event is NO [BADEVENT] (§3.1).
#[test]
fn notify_tells_the_selected_mailbox_at_once() {
    compare(
        "notify_selected",
        &[
            (1, "SELECT INBOX"),
            (
                1,
                "NOTIFY SET (selected (MessageNew MessageExpunge AnnotationChange))",
            ),
            (
                1,
                "NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))",
            ),
            // Dovecot starts watching the selected mailbox a second after a command
            // ends, and misses what changed before: give it the time.
            (1, IDLE_WAIT),
            (2, "APPEND INBOX {msg:a}"),
            (1, IDLE_WAIT),
            (2, "SELECT INBOX"),
            (2, "STORE 1 +FLAGS (\\Flagged)"),
            (1, IDLE_WAIT),
            (2, "STORE 1 +FLAGS (\\Deleted)"),
            (1, IDLE_WAIT),
            (2, "EXPUNGE"),
            (1, IDLE_WAIT),
            (1, "NOOP"),
        ],
    );
}

/// The URL of the first message of INBOX, for [`urlauth_urls_answer_alike`].
macro_rules! message_url {
    () => {
        "imap://{urluser}@mail.example.org/INBOX;UIDVALIDITY={uidvalidity}/;UID=1"
    };
}

/// URLAUTH (RFC 4467): GENURLAUTH of URLs to a message, a header field, a partial of the
/// text, with `;EXPIRE=` in the future and in the past; URLFETCH of them from another
/// session of the user (`user+`, `authuser` and `anonymous` access), of a URL with a MAC
/// that is not the server's and of a relative URL (NIL); RESETKEY of the mailbox and of
/// every key, after which the URLs are NIL; GENURLAUTH of a URL without access
/// identifier, or with a verifier already, BAD. Left out: URLFETCH of an expunged
/// message from another session, on which Dovecot 2.3.19 closes that session's
/// connection (letterbox answers NIL); and, because the servers differ where RFC 4467
/// leaves it open, `submit+user` fetched by the user (Dovecot: NIL, only its submission
/// service may; letterbox has no such service and lets the user named fetch), a section the message does not have (Dovecot: empty;
/// letterbox: NIL, as for CATENATE), GENURLAUTH refusals other than syntax (another
/// user, a missing mailbox or message: Dovecot BAD, letterbox NO with a code), unknown
/// mechanisms (Dovecot NO; letterbox BAD [URLMECH INTERNAL], as RFC 4467's RESETKEY
/// example). tests/imap_urlauth.rs has all of them.
#[test]
fn urlauth_urls_answer_alike() {
    compare(
        "urlauth",
        &[
            (1, "APPEND INBOX {msg:b}"),
            (1, "SELECT INBOX"),
            (
                1,
                concat!(
                    "GENURLAUTH \"",
                    message_url!(),
                    ";URLAUTH=user+{urluser}\" INTERNAL"
                ),
            ),
            (2, "URLFETCH \"{urlauth}\""),
            (
                1,
                concat!(
                    "GENURLAUTH \"",
                    message_url!(),
                    "/;SECTION=HEADER.FIELDS%20(SUBJECT);URLAUTH=authuser\" INTERNAL"
                ),
            ),
            (2, "URLFETCH \"{urlauth}\""),
            (
                1,
                concat!(
                    "GENURLAUTH \"",
                    message_url!(),
                    "/;SECTION=TEXT/;PARTIAL=4.6;URLAUTH=anonymous\" INTERNAL"
                ),
            ),
            (2, "URLFETCH \"{urlauth}\" /INBOX/;UID=1"),
            (
                1,
                concat!(
                    "GENURLAUTH \"",
                    message_url!(),
                    ";EXPIRE=2099-01-01T00:00:00Z;URLAUTH=authuser\" INTERNAL"
                ),
            ),
            (2, "URLFETCH \"{urlauth}\""),
            (
                1,
                concat!(
                    "GENURLAUTH \"",
                    message_url!(),
                    ";EXPIRE=2020-01-01T00:00:00Z;URLAUTH=authuser\" INTERNAL"
                ),
            ),
            (
                2,
                concat!(
                    "URLFETCH \"",
                    message_url!(),
                    ";URLAUTH=authuser:internal:0123456789abcdef0123456789abcdef0123456789\""
                ),
            ),
            (1, concat!("GENURLAUTH \"", message_url!(), "\" INTERNAL")),
            (1, "GENURLAUTH \"{urlauth}\" INTERNAL"),
            (1, "RESETKEY INBOX"),
            (2, "URLFETCH \"{urlauth}\""),
            (
                1,
                concat!(
                    "GENURLAUTH \"",
                    message_url!(),
                    ";URLAUTH=authuser\" INTERNAL"
                ),
            ),
            (2, "URLFETCH \"{urlauth}\""),
            (1, "RESETKEY"),
            (2, "URLFETCH \"{urlauth}\""),
        ],
    );
}

/// RFC 8514 SAVEDATE (Dovecot 2.3 lists it): FETCH SAVEDATE of appended and copied
/// messages, and SEARCH SAVEDBEFORE, SAVEDON, SAVEDSINCE and SAVEDATESUPPORTED, with an
/// internal date in the past that the save date does not follow.
#[test]
fn savedate_is_fetched_and_searched_alike() {
    compare(
        "savedate",
        &[
            (
                1,
                "APPEND INBOX (\\Seen) \"01-Jan-2020 10:00:00 +0000\" {msg:a}",
            ),
            (1, "APPEND INBOX {msg:b}"),
            (1, "CREATE Later"),
            (1, "SELECT INBOX"),
            (1, "FETCH 1:* (UID SAVEDATE)"),
            (1, "FETCH 1 (INTERNALDATE)"),
            (1, "UID COPY 1 Later"),
            (1, "UID SEARCH SAVEDON {today}"),
            (1, "UID SEARCH SAVEDSINCE 1-Jan-2021"),
            (1, "UID SEARCH SAVEDBEFORE 1-Jan-2021"),
            (1, "UID SEARCH SAVEDBEFORE {today}"),
            (1, "UID SEARCH SAVEDSINCE {today} BEFORE 1-Jan-2021"),
            (1, "UID SEARCH SAVEDATESUPPORTED"),
            (2, "EXAMINE Later"),
            (2, "FETCH 1 (SAVEDATE INTERNALDATE FLAGS)"),
            (2, "UID SEARCH SAVEDON {today}"),
        ],
    );
}

/// Issue 14 item 8: COPY and MOVE into the mailbox that is selected are carried out
/// (RFC 6851 §3.3 does not forbid it; Dovecot and Cyrus do it): the new copies arrive in
/// this session and the other one, a MOVE expunges the original.
#[test]
fn copy_and_move_into_the_selected_mailbox() {
    compare(
        "copy_move_into_selected",
        &[
            (1, "APPEND INBOX (\\Seen) {msg:a}"),
            (1, "APPEND INBOX {msg:b}"),
            (1, "SELECT INBOX"),
            (2, "SELECT INBOX"),
            (1, "COPY 1 INBOX"),
            (1, "UID MOVE 2 INBOX"),
            (1, "FETCH 1:* (UID FLAGS)"),
            (2, "NOOP"),
            (2, "FETCH 1:* (UID FLAGS)"),
            (1, "UID COPY 1:* INBOX"),
            (1, "STATUS Archive (MESSAGES)"),
            (1, "NOOP"),
        ],
    );
}

/// Issue 14 item 6: mailbox names that are not valid modified UTF-7 (RFC 3501 §5.1.3) are
/// refused with NO, not BAD, and LIST patterns made of such characters get an answer.
#[test]
fn names_that_are_not_modified_utf7_get_no() {
    compare(
        "mutf7_names",
        &[
            (1, "CREATE \"&Jjo\""),
            (1, "CREATE \"a&b\""),
            (1, "CREATE \"caf&AOk-\""),
            (1, "SELECT \"&ZZZ\""),
            (1, "RENAME \"caf&AOk-\" \"&\""),
            (1, "LIST \"\" \"&\""),
            (1, "LIST \"\" \"&Jjo*\""),
            (1, "LIST \"\" \"caf*\""),
            (1, "STATUS \"&Jjo\" (MESSAGES)"),
            (1, "DELETE \"caf&AOk-\""),
        ],
    );
}

/// Issue 14's items 3 (a folded quoted boundary), 4 (SENT* dates in the Date field's own
/// zone), 5 (MIME details: a charset-less text part, bodies of single-part and attached
/// messages, a source route in ENVELOPE) and 9 (THREAD=REFERENCES) in one session, with
/// the messages of tests/imap_dovecot_diff.rs.
#[test]
fn structure_dates_and_threads_answer_alike() {
    compare(
        "structure_dates_threads",
        &[
            (1, "APPEND INBOX {msg:42}"),
            (1, "APPEND INBOX {msg:43}"),
            (1, "APPEND INBOX {msg:44}"),
            (1, "APPEND INBOX {msg:45}"),
            (1, "APPEND INBOX {msg:46}"),
            (1, "APPEND INBOX {msg:47}"),
            (1, "APPEND INBOX {msg:49}"),
            (1, "APPEND INBOX {msg:50}"),
            (1, "APPEND INBOX {msg:51}"),
            (1, "APPEND INBOX {msg:52}"),
            (1, "APPEND INBOX {msg:53}"),
            (1, "APPEND INBOX {msg:54}"),
            (1, "SELECT INBOX"),
            (1, "THREAD REFERENCES UTF-8 ALL"),
            (1, "UID THREAD REFERENCES UTF-8 ALL"),
            (1, "FETCH 7 (ENVELOPE)"),
            (1, "SEARCH SENTON 22-Jan-2025"),
            (1, "SEARCH SENTBEFORE 23-Jan-2025"),
            (1, "SEARCH SENTSINCE 23-Jan-2025"),
            (1, "FETCH 8:12 (BODYSTRUCTURE)"),
            (1, "FETCH 8:12 (BODY)"),
            (
                1,
                "FETCH 9 (BODY.PEEK[1] BODY.PEEK[1.MIME] BINARY.PEEK[2] BINARY.SIZE[2])",
            ),
            (1, "FETCH 10:11 (BODY.PEEK[1] BODY.PEEK[2])"),
            (1, "FETCH 12 (ENVELOPE)"),
        ],
    );
}
