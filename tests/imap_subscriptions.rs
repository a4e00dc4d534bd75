//! The subscription list (RFC 9051 §6.3.7-§6.3.9, RFC 3501 LSUB) and LIST-EXTENDED
//! (RFC 5258) against Python's imaplib: a subscribed name outlives its mailbox and is
//! listed `\NonExistent` by `LIST (SUBSCRIBED)`, RENAME leaves the list alone,
//! UNSUBSCRIBE takes a name whose mailbox is gone, LSUB shows an unsubscribed superior
//! as `\Noselect`, and RECURSIVEMATCH gives CHILDINFO only for a descendant the pattern
//! does not return itself. Every expected line is what Dovecot 2.3.19 answered to the
//! same commands (with `/` as its separator), checked by hand on 2026-12-06, but for
//! `\HasChildren`/`\HasNoChildren`, which letterbox gives to every LIST and Dovecot to
//! an extended one only with RETURN (CHILDREN): RFC 5258 §4 allows both.

mod common;

use common::Transcript;

/// After `common::PY_PRELUDE`.
const SESSION: &str = r#"
import re
m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
m.login(user, password)

def run(name, *args):
    """Prints `name status | every untagged LIST/LSUB line, sorted`."""
    m.untagged_responses = {}
    typ, data = m._simple_command(*args)
    lines = []
    for key in ("LIST", "LSUB"):
        for value in m.untagged_responses.get(key, []):
            text = value.decode() if isinstance(value, bytes) else repr(value)
            # A name as an atom or a quoted string is the same astring (RFC 9051 §4.3);
            # Dovecot sends atoms where it can, letterbox quotes every name.
            text = re.sub(r'"/" "([^"\\]*)"', r'"/" \1', text)
            # The extended item's tag is an astring too (RFC 5258 §6): Dovecot writes
            # CHILDINFO as an atom, RFC 5258's examples (and letterbox) quote it.
            text = text.replace('("CHILDINFO" ', '(CHILDINFO ')
            lines.append(key + " " + text)
    print(name, typ, "|", " ; ".join(sorted(lines)))

for name in ["Fruit/Apple", "Fruit/Banana", "Fruit/Peach", "Tofu", "X/Y/Z", "W/V"]:
    m.create(name)
# Dovecot (Maildir++) makes no superior levels; these are removed so both have none.
for name in ["Fruit", "W"]:
    m.delete(name)
m.create("W")
for name in ["Fruit/Banana", "Fruit/Peach", "X", "X/Y/Z", "W/V"]:
    m.subscribe(name)
m.delete("Fruit/Peach")

run("subscribed", "LIST", "(SUBSCRIBED)", '""', '"Fruit*"')
run("subscribed-children", "LIST", "(SUBSCRIBED)", '""', '"Fruit*"', "RETURN", "(CHILDREN)")
run("recursive-level", "LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', '"%"')
run("recursive-fruit", "LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', '"Fruit*"')
run("recursive-x", "LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', '"X*"')
run("recursive-w", "LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', '"W*"')
run("return-subscribed", "LIST", '""', '"Fruit"', "RETURN", "(SUBSCRIBED)")
run("basic", "LIST", '""', '"Fruit"')
run("lsub-all", "LSUB", '""', '"Fruit*"')
run("lsub-level", "LSUB", '""', '"F%"')
run("lsub-x", "LSUB", '""', '"X/%"')
m.rename("Fruit/Banana", "Fruit/Mango")
run("after-rename", "LSUB", '""', '"Fruit*"')
m.untagged_responses = {}
typ, data = m._simple_command("UNSUBSCRIBE", "Fruit/Peach")
print("unsubscribe-gone", typ)
typ, data = m._simple_command("SUBSCRIBE", "Nothing/Here")
print("subscribe-missing", typ)
run("after-unsubscribe", "LSUB", '""', '"Fruit*"')
m.logout()
"#;

#[test]
fn subscriptions_outlive_their_mailboxes_as_in_dovecot() {
    let out = Transcript::of_script(SESSION);
    let expected = [
        (
            "subscribed",
            r#"OK | LIST (\Subscribed \HasNoChildren) "/" Fruit/Banana ; LIST (\Subscribed \NonExistent \HasNoChildren) "/" Fruit/Peach"#,
        ),
        (
            "subscribed-children",
            r#"OK | LIST (\Subscribed \HasNoChildren) "/" Fruit/Banana ; LIST (\Subscribed \NonExistent \HasNoChildren) "/" Fruit/Peach"#,
        ),
        (
            "recursive-fruit",
            r#"OK | LIST (\Subscribed \HasNoChildren) "/" Fruit/Banana ; LIST (\Subscribed \NonExistent \HasNoChildren) "/" Fruit/Peach"#,
        ),
        (
            "recursive-x",
            r#"OK | LIST (\Subscribed \HasChildren) "/" X (CHILDINFO ("SUBSCRIBED")) ; LIST (\Subscribed \HasNoChildren) "/" X/Y/Z"#,
        ),
        (
            "recursive-w",
            r#"OK | LIST (\Subscribed \HasNoChildren) "/" W/V"#,
        ),
        (
            "return-subscribed",
            r#"OK | LIST (\NonExistent \HasChildren) "/" Fruit"#,
        ),
        ("basic", r#"OK | LIST (\Noselect \HasChildren) "/" Fruit"#),
        (
            "lsub-all",
            r#"OK | LSUB () "/" Fruit/Banana ; LSUB () "/" Fruit/Peach"#,
        ),
        ("lsub-level", r#"OK | LSUB (\Noselect) "/" Fruit"#),
        ("lsub-x", r#"OK | LSUB (\Noselect) "/" X/Y"#),
        // RENAME leaves the subscription list alone (as Dovecot does).
        (
            "after-rename",
            r#"OK | LSUB () "/" Fruit/Banana ; LSUB () "/" Fruit/Peach"#,
        ),
        ("unsubscribe-gone", "OK"),
        // RFC 9051 §6.3.7: "A server MAY validate the mailbox argument to SUBSCRIBE".
        ("subscribe-missing", "NO"),
        ("after-unsubscribe", r#"OK | LSUB () "/" Fruit/Banana"#),
    ];
    for (name, want) in expected {
        assert_eq!(out.answer(name), want, "{name}\n{out}");
    }
    // `%` at the top: Fruit for its subscribed children, W (which exists, unsubscribed)
    // for W/V, X subscribed itself with CHILDINFO for X/Y/Z; the default mailboxes are
    // subscribed at creation.
    let level = out.answer("recursive-level");
    for line in [
        r#"LIST (\NonExistent \HasChildren) "/" Fruit (CHILDINFO ("SUBSCRIBED"))"#,
        r#"LIST (\HasChildren) "/" W (CHILDINFO ("SUBSCRIBED"))"#,
        r#"LIST (\Subscribed \HasChildren) "/" X (CHILDINFO ("SUBSCRIBED"))"#,
        r#"LIST (\Subscribed \HasNoChildren) "/" INBOX"#,
    ] {
        assert!(level.contains(line), "{line} missing: {level}");
    }
    assert!(!level.contains("Tofu"), "{level}");
}
