//! The IMAP stress client's wire layer and session model (`benches/imap_stress`, a bench
//! target without a test harness), replayed on short `S:` transcripts: each contradiction
//! the model reports, and the legitimate server behaviours (seen from Dovecot) it must not
//! report. No server, no network.

#[allow(dead_code)]
#[path = "../benches/imap_stress/model/mod.rs"]
mod model;
#[allow(dead_code)]
#[path = "../benches/imap_stress/wire.rs"]
mod wire;

use model::{Cx, Facts, Session, StoreOp};
use wire::{Resp, Status, Tok};

const MAILBOXES: [&str; 3] = ["stress-a", "stress-b", "stress-c"];

fn session() -> Session {
    Session::new(MAILBOXES.iter().map(|m| (*m).to_owned()).collect(), false)
}

fn cx() -> Cx {
    Cx::new(vec![Facts::default(); MAILBOXES.len()])
}

fn parse(line: &str) -> Resp {
    let bytes = format!("{line}\r\n").into_bytes();
    assert_eq!(wire::frame_len(&bytes), Ok(Some(bytes.len())), "{line}");
    wire::parse(&bytes).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Feeds server lines to the model; a tagged line's code is kept like the client does.
fn feed(session: &mut Session, cx: &mut Cx, lines: &[&str]) {
    for line in lines {
        match parse(line) {
            Resp::Status {
                tag: Some(_), code, ..
            } => session.tagged_code(code.as_ref(), cx),
            resp => session.untagged(&resp, cx),
        }
    }
}

/// The kinds of finding these lines make, as one command's responses.
fn replay(session: &mut Session, lines: &[&str]) -> Vec<&'static str> {
    let mut c = cx();
    feed(session, &mut c, lines);
    kinds(&c)
}

/// The kinds of finding of a SELECT (EXAMINE when `examine`) of `mailbox` answered with
/// `lines`, the last one tagged OK.
fn select(
    session: &mut Session,
    mailbox: usize,
    examine: bool,
    lines: &[&str],
) -> Vec<&'static str> {
    session.begin_select(mailbox, examine);
    let mut c = cx();
    feed(session, &mut c, lines);
    session.finish_select(true, &mut c);
    kinds(&c)
}

fn kinds(cx: &Cx) -> Vec<&'static str> {
    cx.findings.iter().map(|f| f.kind).collect()
}

/// What a selected session reports of one unsolicited `line`.
fn reported(line: &str) -> Vec<&'static str> {
    replay(&mut selected(), &[line])
}

/// stress-a selected with three messages, UIDs 10, 11, 12, their flags known.
fn selected() -> Session {
    let mut s = session();
    let select_findings = select(
        &mut s,
        0,
        false,
        &[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $kw1)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $kw1 \\*)] Flags permitted.",
            "* 3 EXISTS",
            "* 0 RECENT",
            "* OK [UIDVALIDITY 7] UIDs valid",
            "* OK [UIDNEXT 13] Predicted next UID",
            "a OK [READ-WRITE] Select completed.",
        ],
    );
    assert_eq!(select_findings, Vec::<&str>::new());
    let mut c = cx();
    c.solicited_fetch = true;
    feed(
        &mut s,
        &mut c,
        &[
            "* 1 FETCH (UID 10 FLAGS (\\Seen))",
            "* 2 FETCH (UID 11 FLAGS ($kw1))",
            "* 3 FETCH (UID 12 FLAGS ())",
        ],
    );
    assert_eq!(kinds(&c), Vec::<&str>::new());
    s
}

#[test]
fn framing_waits_for_the_whole_literal() {
    let bytes = b"* LIST () \"/\" {5}\r\nab";
    assert_eq!(wire::frame_len(bytes), Ok(None));
    let bytes = b"* LIST () \"/\" {5}\r\nabcde\r\n* 1 EXISTS\r\n";
    assert_eq!(wire::frame_len(bytes), Ok(Some(26)));
    match wire::parse(&bytes[..26]) {
        Ok(Resp::Data { name, args, .. }) => {
            assert_eq!(name, "LIST");
            let args = args.expect("tokens");
            assert_eq!(args[2], Tok::Str("abcde".into()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn status_responses_keep_their_code() {
    match parse("a1 OK [COPYUID 7 1:3,5 20:23] Moved UIDs.") {
        Resp::Status {
            tag: Some(tag),
            status: Status::Ok,
            code: Some(code),
            text,
        } => {
            assert_eq!(tag, "a1");
            assert_eq!(code.name, "COPYUID");
            assert_eq!(code.args.len(), 3);
            assert_eq!(text, "Moved UIDs.");
            assert_eq!(
                code.args[1].atom().map(wire::expand_set),
                Some(Ok(vec![1, 2, 3, 5]))
            );
        }
        other => panic!("{other:?}"),
    }
    match parse("* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.") {
        Resp::Status {
            code: Some(code), ..
        } => assert_eq!(code.args[0].list().map(<[Tok]>::len), Some(2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fetch_data_reads_flags_uid_and_modseq() {
    let Resp::Data {
        number: Some(4),
        args: Ok(args),
        ..
    } = parse("* 4 FETCH (MODSEQ (41) FLAGS (\\Seen \\Recent $KW2) UID 99)")
    else {
        panic!("not a FETCH");
    };
    let data = wire::fetch_data(&args).expect("FETCH data");
    assert_eq!(data.uid, Some(99));
    assert_eq!(data.modseq, Some(41));
    assert_eq!(
        data.flags,
        Some(vec!["$kw2".into(), "\\recent".into(), "\\seen".into()])
    );
}

#[test]
fn a_consistent_session_has_no_findings() {
    let mut s = selected();
    assert_eq!(
        replay(
            &mut s,
            &[
                // A new keyword is announced before it is used (RFC 9051 §7.3.5), as Dovecot does.
                "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $kw1 $kw2)",
                "* 2 FETCH (FLAGS ($kw1 $kw2))",
                "* 4 EXISTS",
                "* 4 FETCH (UID 15 FLAGS ())",
                "* 1 EXPUNGE",
                "* 3 FETCH (UID 15 FLAGS (\\Seen))",
            ]
        ),
        Vec::<&str>::new()
    );
    let view = s.view.as_ref().expect("selected");
    let uids: Vec<Option<u32>> = view.slots.iter().map(|slot| slot.uid).collect();
    assert_eq!(uids, [Some(11), Some(12), Some(15)]);
}

#[test]
fn a_keyword_not_in_the_last_flags_response_is_reported() {
    assert_eq!(
        reported("* 1 FETCH (FLAGS (\\Seen $kw9))"),
        ["keyword_not_in_flags"]
    );
}

#[test]
fn a_message_not_announced_by_exists_is_reported() {
    // letterbox, issue 14: C: UID FETCH 46:* (FLAGS) / S: * 32 FETCH .. while EXISTS was 31.
    let mut s = selected();
    assert_eq!(
        replay(&mut s, &["* 4 FETCH (UID 13 FLAGS ())"]),
        ["fetch_out_of_range"]
    );
    assert_eq!(replay(&mut s, &["* 4 EXPUNGE"]), ["expunge_out_of_range"]);
}

#[test]
fn exists_going_down_and_uids_moving_are_reported() {
    let mut s = selected();
    assert_eq!(replay(&mut s, &["* 2 EXISTS"]), ["exists_decreased"]);

    let mut s = selected();
    assert_eq!(
        replay(&mut s, &["* 2 FETCH (UID 20 FLAGS ())"]),
        ["uid_changed"]
    );

    let mut s = selected();
    assert_eq!(
        replay(
            &mut s,
            &[
                "* 5 EXISTS",
                "* 5 FETCH (UID 30 FLAGS ())",
                "* 4 FETCH (UID 31 FLAGS ())",
            ]
        ),
        ["uid_not_ascending"]
    );
}

#[test]
fn expunge_while_answering_fetch_store_or_search_is_reported() {
    let mut s = selected();
    let mut c = cx();
    c.forbid_expunge = Some("FETCH");
    feed(&mut s, &mut c, &["* 1 EXPUNGE"]);
    assert_eq!(kinds(&c), ["expunge_during_fetch_store_search"]);
}

#[test]
fn search_results_are_checked_against_the_view_when_they_come() {
    // Dovecot: a UID SEARCH answer followed by EXPUNGEs of messages it named is fine.
    let mut s = selected();
    let mut c = cx();
    c.searching = Some(true);
    feed(&mut s, &mut c, &["* SEARCH 10 11 12", "* 1 EXPUNGE"]);
    s.check_search(&mut c);
    assert_eq!(kinds(&c), Vec::<&str>::new());

    // letterbox, issue 14: a UID of an APPENDed message not yet announced by EXISTS.
    let mut c = cx();
    c.searching = Some(true);
    feed(&mut s, &mut c, &["* SEARCH 11 13"]);
    assert_eq!(kinds(&c), ["search_uid_not_in_view"]);

    let mut c = cx();
    c.searching = Some(false);
    feed(&mut s, &mut c, &["* SEARCH 1 3"]);
    assert_eq!(kinds(&c), ["search_seq_out_of_range"]);

    let mut c = cx();
    c.searching = Some(false);
    s.check_search(&mut c);
    assert_eq!(kinds(&c), ["search_without_response"]);
}

#[test]
fn vanished_removes_known_and_unknown_messages_and_reports_strangers() {
    let mut s = selected();
    s.qresync = true;
    s.condstore = true;
    assert_eq!(
        replay(&mut s, &["* 5 EXISTS", "* VANISHED 11,14"]),
        Vec::<&str>::new()
    );
    let view = s.view.as_ref().expect("selected");
    let uids: Vec<Option<u32>> = view.slots.iter().map(|slot| slot.uid).collect();
    assert_eq!(uids, [Some(10), Some(12), None]);

    assert_eq!(
        replay(&mut s, &["* VANISHED 11"]),
        ["vanished_uid_not_in_view"]
    );

    assert_eq!(reported("* VANISHED 10"), ["vanished_without_qresync"]);
}

#[test]
fn unsolicited_fetch_needs_uid_only_with_qresync() {
    // Dovecot sends `* 14 FETCH (MODSEQ (41) FLAGS (..))` to a CONDSTORE-only session.
    let mut s = selected();
    s.condstore = true;
    assert_eq!(
        replay(&mut s, &["* 1 FETCH (MODSEQ (41) FLAGS (\\Seen))"]),
        Vec::<&str>::new()
    );
    assert_eq!(
        replay(&mut s, &["* 1 FETCH (FLAGS (\\Seen))"]),
        ["condstore_fetch_without_modseq"]
    );

    // letterbox, issue 14: C: STORE 6 -FLAGS ($kw15) / S: * 6 FETCH (FLAGS ($kw13) MODSEQ (12)).
    let mut s = selected();
    s.condstore = true;
    s.qresync = true;
    assert_eq!(
        replay(&mut s, &["* 1 FETCH (FLAGS (\\Seen) MODSEQ (42))"]),
        ["qresync_fetch_without_uid"]
    );
}

#[test]
fn flags_changing_without_a_new_modseq_are_reported() {
    let mut s = selected();
    s.condstore = true;
    assert_eq!(
        replay(
            &mut s,
            &[
                "* 1 FETCH (UID 10 FLAGS (\\Seen) MODSEQ (5))",
                "* 1 FETCH (UID 10 FLAGS (\\Seen \\Recent) MODSEQ (5))",
                "* 1 FETCH (UID 10 FLAGS () MODSEQ (5))",
            ]
        ),
        ["flags_changed_same_modseq"]
    );
}

#[test]
fn a_select_ignores_the_old_mailbox_until_closed() {
    let mut s = selected();
    s.qresync = true;
    s.condstore = true;
    let findings = select(
        &mut s,
        1,
        true,
        &[
            // Still about stress-a: dropped.
            "* 3 FETCH (UID 12 FLAGS (\\Seen))",
            "* OK [CLOSED] Previous mailbox closed.",
            "* FLAGS (\\Seen)",
            "* 1 EXISTS",
            "* OK [UIDVALIDITY 8] UIDs valid",
            "* OK [HIGHESTMODSEQ 3] Highest",
            "a OK [READ-ONLY] Examine completed.",
        ],
    );
    assert_eq!(findings, Vec::<&str>::new());
    let view = s.view.as_ref().expect("selected");
    assert_eq!((view.mailbox, view.exists(), view.read_only), (1, 1, true));

    assert_eq!(
        select(
            &mut s,
            0,
            false,
            &["* FLAGS (\\Seen)", "* 1 EXISTS", "a OK Select completed."],
        ),
        [
            "select_missing_uidvalidity",
            "select_missing_highestmodseq",
            "select_without_closed"
        ]
    );
}

#[test]
fn a_store_result_must_show_the_change_unless_another_session_raced() {
    let flags = ["$kw1".to_owned()];
    let mut s = selected();
    let mut c = cx();
    feed(&mut s, &mut c, &["* 1 FETCH (FLAGS (\\Seen))"]);
    s.check_store(StoreOp::Add, &flags, &[10], false, false, &mut c);
    assert_eq!(kinds(&c), ["store_result_lacks_flag"]);

    let mut s = selected();
    let mut c = cx();
    feed(&mut s, &mut c, &["* 1 FETCH (FLAGS (\\Seen))"]);
    s.check_store(StoreOp::Add, &flags, &[10], false, true, &mut c);
    assert_eq!(kinds(&c), Vec::<&str>::new());

    let mut s = selected();
    let mut c = cx();
    feed(&mut s, &mut c, &["* 2 FETCH (FLAGS ($kw1 \\Recent))"]);
    s.check_store(StoreOp::Replace, &flags, &[11], false, false, &mut c);
    s.check_store(StoreOp::Remove, &flags, &[11], false, false, &mut c);
    assert_eq!(kinds(&c), ["store_result_keeps_flag"]);
}

#[test]
fn new_uids_must_be_above_what_was_seen_before_the_command() {
    let mut s = selected();
    let mut c = Cx::new(vec![
        Facts {
            uidvalidity: Some(7),
            max_uid: 12,
            uidnext: 13,
            max_modseq: 0,
        },
        Facts::default(),
        Facts::default(),
    ]);
    s.check_new_uids("APPENDUID", 0, 7, &[13], &mut c);
    assert_eq!(kinds(&c), Vec::<&str>::new());
    s.check_new_uids("APPENDUID", 0, 7, &[12], &mut c);
    s.check_new_uids("COPYUID", 0, 9, &[14, 14], &mut c);
    assert_eq!(
        kinds(&c),
        [
            "appenduid_not_new",
            "uidvalidity_changed",
            "copyuid_duplicate"
        ]
    );
}

#[test]
fn only_a_read_write_session_takes_recent() {
    for (examine, claims) in [(true, 0), (false, 1)] {
        let mut s = Session::new(MAILBOXES.iter().map(|m| (*m).to_owned()).collect(), true);
        let done = if examine {
            "a OK [READ-ONLY] Examine completed."
        } else {
            "a OK [READ-WRITE] Select completed."
        };
        let lines = [
            "* FLAGS (\\Seen)",
            "* 1 EXISTS",
            "* 1 RECENT",
            "* OK [UIDVALIDITY 7] x",
            done,
        ];
        assert_eq!(select(&mut s, 0, examine, &lines), Vec::<&str>::new());
        let mut c = cx();
        feed(&mut s, &mut c, &["* 1 FETCH (UID 3 FLAGS (\\Recent))"]);
        assert_eq!(c.recent.len(), claims, "EXAMINE: {examine}");
    }
}
