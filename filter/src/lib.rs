//! Sieve (RFC 5228) for letterbox: compiling a script with our limits, and running the
//! active script of an account over one incoming message, giving what delivery must do.
//!
//! Interpretation is sieve-rs's (Stalwart's compiler and interpreter on mail-parser);
//! this crate sets its limits, answers its questions from data the caller loaded before
//! (the account's other scripts for `include`, its mailboxes for `mailboxexists`, the
//! vacation replies already sent to this sender) and turns its events into an
//! [`Outcome`]. It does no I/O: the SMTP delivery path loads the inputs, runs [`run`] on
//! the blocking pool (its cost grows with the script and the message) and stores what
//! the outcome says.
//!
//! Invariant: a script that fails to compile or run never loses mail: the outcome is
//! then to keep the message in INBOX (RFC 5228 §2.10.6), and the error is reported.
#![forbid(unsafe_code)]

use mail_parser::Message;
use sha2::{Digest, Sha256};
use sieve::compiler::grammar::Capability;
use sieve::{Compiler, Envelope, Event, Input, Mailbox, Recipient, Runtime, Script, Sieve};
use std::collections::HashMap;
use std::sync::Arc;

pub use sieve::compiler::CompileError;

/// Instructions one delivery may run, included scripts together: an ordinary filter runs
/// a few hundred; loops (`foreverypart`) over a large message stay well under this.
pub const MAX_INSTRUCTIONS: usize = 100_000;
/// `redirect`s one script may do (RFC 5228 §4.2 lets us limit them): a forward or two,
/// not a fan-out through us.
pub const MAX_REDIRECTS: usize = 2;
/// Messages one run may create and send (vacation replies, notices).
pub const MAX_OUT_MESSAGES: usize = 2;
/// RFC 6609 §3.2: `include` depth; three is what users need (main, a library, a part).
pub const MAX_NESTED_INCLUDES: usize = 3;
/// RFC 5230 §4.1: ":days" has a minimum of 1 and a site-defined default; 7 days as the
/// RFC suggests.
pub const DEFAULT_VACATION_DAYS: u64 = 7;
/// Bytes of a script the compiler accepts: what storage keeps
/// (`storage::MAX_SIEVE_SCRIPT_BYTES`, 64 KiB).
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// Bytes of a variable: the body of a vacation reply is built from them.
const MAX_VARIABLE_BYTES: usize = 16 * 1024;
/// Nesting of blocks and tests in a script: the compiler's recursion is bounded by these.
const MAX_NESTED_BLOCKS: usize = 15;
const MAX_NESTED_TESTS: usize = 15;

/// The Sieve extensions we run, as ManageSieve's `SIEVE` capability lists them
/// (RFC 5804 §1.7). Left out: what needs something we do not have (enotify, extlists,
/// spamtest, virustest, metadata, imapsieve) and sieve-rs's own non-standard ones.
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "comparator-i;ascii-numeric",
    "body",
    "copy",
    "date",
    "index",
    "duplicate",
    "editheader",
    "variables",
    "relational",
    "subaddress",
    "imap4flags",
    "include",
    "mailbox",
    "mailboxid",
    "special-use",
    "vacation",
    "vacation-seconds",
    "regex",
    "mime",
    "foreverypart",
    "extracttext",
    "enclose",
    "replace",
    "environment",
    "ihave",
];

/// Capabilities refused at run time (a script that requires one keeps its mail).
fn disabled() -> Vec<Capability> {
    vec![
        Capability::Enotify,
        Capability::ExtLists,
        Capability::SpamTest,
        Capability::SpamTestPlus,
        Capability::VirusTest,
        Capability::MboxMetadata,
        Capability::ServerMetadata,
        Capability::ImapSieve,
        Capability::Convert,
        Capability::Expressions,
        Capability::While,
        Capability::EnvelopeDeliverBy,
        Capability::RedirectDeliverBy,
        Capability::EnvelopeDsn,
        Capability::RedirectDsn,
        Capability::Fcc,
    ]
}

/// A script that does not compile: where and why, for the user (RFC 5804 §2.6: the
/// human-readable text should say where).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based line of the error, when the compiler knows it.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn compiler() -> Compiler {
    Compiler::new()
        .with_max_script_size(MAX_SCRIPT_BYTES)
        .with_max_nested_blocks(MAX_NESTED_BLOCKS)
        .with_max_nested_tests(MAX_NESTED_TESTS)
        .with_max_includes(MAX_NESTED_INCLUDES)
}

/// Compiles `script` (RFC 5228 §2: UTF-8 text) with our limits.
pub fn compile(script: &str) -> Result<Sieve, ScriptError> {
    compiler().compile(script.as_bytes()).map_err(|error| {
        let (mut line, mut column) = (error.line_num(), error.line_pos());
        // sieve-rs reports an unknown command at its enclosing block's position (line 0
        // at the top level): find the word in the script instead.
        if let sieve::compiler::ErrorType::UnexpectedToken { found, .. } = error.error_type()
            && let Some((l, c)) = word_position(script, found)
            && (line == 0 || l > line)
        {
            (line, column) = (l, c);
        }
        ScriptError {
            line,
            column,
            message: error
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    })
}

/// 1-based line and 0-based column of the first whole-word `word` in `script`.
fn word_position(script: &str, word: &str) -> Option<(usize, usize)> {
    if word.is_empty() {
        return None;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    for (n, line) in script.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line.get(from..).and_then(|rest| rest.find(word)) {
            let start = from + at;
            let end = start + word.len();
            let before = line.get(..start).and_then(|b| b.chars().next_back());
            let after = line.get(end..).and_then(|a| a.chars().next());
            if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
                return Some((n + 1, start));
            }
            from = end;
        }
    }
    None
}

/// What the run needs to know besides the message.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// RFC 5321 reverse-path; empty for the null sender.
    pub mail_from: String,
    /// The envelope recipient this copy is for.
    pub recipient: String,
    /// The account's own address (vacation's From and its "is it for me" check).
    pub user_address: String,
    /// Our host name (Message-ID of replies).
    pub hostname: String,
    /// The account's other scripts by name, for `include :personal` (RFC 6609).
    pub scripts: HashMap<String, String>,
    /// The account's mailboxes and their special use attribute (`\Sent`...), for
    /// `mailboxexists` (RFC 5490) and `:specialuse` (RFC 8579).
    pub mailboxes: Vec<(String, Option<String>)>,
    /// Handles (see [`vacation_handle`]) under which this sender was answered and must
    /// not be again yet (RFC 5230 §4.2).
    pub answered: Vec<String>,
}

/// Where a copy of the message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `INBOX` for keep.
    pub mailbox: String,
    /// RFC 5232 flags to set.
    pub flags: Vec<String>,
    /// RFC 5490 §3 `:create`.
    pub create: bool,
    /// RFC 8579 `:specialuse`: a mailbox with this use is preferred.
    pub special_use: Option<String>,
    /// The message as changed by the script (editheader); `None`: as received.
    pub changed: Option<Vec<u8>>,
}

/// A message the script sends (vacation reply): to `recipient`, from the null sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub recipient: String,
    pub raw: Vec<u8>,
}

/// What delivery must do for one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub placements: Vec<Placement>,
    /// RFC 5429 reject/ereject with the reason.
    pub reject: Option<String>,
    /// RFC 5228 §4.2 redirect targets.
    pub redirects: Vec<String>,
    pub replies: Vec<Reply>,
    /// Vacation replies to record, `(handle, seconds they hold)`.
    pub answered: Vec<(String, u64)>,
    /// Why the run stopped early (the outcome is then keep); for the log.
    pub error: Option<String>,
}

impl Outcome {
    /// RFC 5228 §2.10.2 implicit keep: INBOX, no flags.
    pub fn keep() -> Outcome {
        Outcome {
            placements: vec![inbox(Vec::new())],
            ..Outcome::default()
        }
    }

    fn failed(error: String) -> Outcome {
        Outcome {
            error: Some(error),
            ..Outcome::keep()
        }
    }
}

fn inbox(flags: Vec<String>) -> Placement {
    Placement {
        mailbox: "INBOX".to_owned(),
        flags,
        create: false,
        special_use: None,
        changed: None,
    }
}

/// The handle a vacation (or duplicate) id is recorded under: a digest, so that a long
/// `:handle` or reason does not become a long key.
pub fn vacation_handle(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn runtime(hostname: &str) -> Runtime {
    Runtime::new()
        .without_capabilities(disabled())
        .with_cpu_limit(MAX_INSTRUCTIONS)
        .with_max_redirects(MAX_REDIRECTS)
        .with_max_out_messages(MAX_OUT_MESSAGES)
        .with_max_nested_includes(MAX_NESTED_INCLUDES)
        .with_max_variable_size(MAX_VARIABLE_BYTES)
        .with_default_vacation_expiry(DEFAULT_VACATION_DAYS * 86400)
        .with_local_hostname(hostname.to_owned())
}

/// Runs `script` over `raw` for one recipient. Never fails: a run that errs or reaches a
/// limit gives [`Outcome::keep`] with the error.
pub fn run(script: &Sieve, raw: &[u8], inputs: &Inputs) -> Outcome {
    let runtime = runtime(&inputs.hostname);
    let mut context = runtime
        .filter(raw)
        .with_user_address(inputs.user_address.as_str());
    context.set_envelope(Envelope::From, inputs.mail_from.as_str());
    context.set_envelope(Envelope::To, inputs.recipient.as_str());
    let vacation_forbidden = no_auto_reply(context.message());
    let mut outcome = Outcome::default();
    let mut created: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut input = Input::script("main", Arc::new(script.clone()));
    // Bounded by sieve-rs's instruction limit: every event costs at least one instruction.
    while let Some(result) = context.run(input) {
        let event = match result {
            Ok(event) => event,
            Err(error) => return Outcome::failed(format!("{error:?}")),
        };
        input = match event {
            Event::IncludeScript { name, optional } => match &name {
                // RFC 6609 §3.2: `:personal` scripts are the user's; we have no global ones.
                Script::Personal(n) => match inputs.scripts.get(n.as_str()) {
                    Some(text) => match compile(text) {
                        Ok(included) => Input::script(name.clone(), included),
                        Err(error) => {
                            return Outcome::failed(format!("included script {n}: {error}"));
                        }
                    },
                    None if optional => Input::False,
                    None => return Outcome::failed(format!("included script {n} not found")),
                },
                Script::Global(_) if optional => Input::False,
                Script::Global(n) => {
                    return Outcome::failed(format!("global script {n} not found"));
                }
            },
            Event::MailboxExists {
                mailboxes,
                special_use,
            } => {
                let exists = mailboxes.iter().all(|m| match m {
                    Mailbox::Name(name) => inputs
                        .mailboxes
                        .iter()
                        .any(|(have, _)| mailbox_name_eq(have, name)),
                    Mailbox::Id(_) => false,
                });
                let uses = special_use.iter().all(|u| {
                    inputs
                        .mailboxes
                        .iter()
                        .any(|(_, have)| have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(u)))
                });
                (exists && uses).into()
            }
            Event::ListContains { .. } => Input::False,
            Event::DuplicateId { id, expiry, .. } => {
                let handle = vacation_handle(&id);
                // Vacation's ids start with "_v" (sieve-rs); the duplicate extension's
                // (RFC 7352) are recorded the same way.
                let vacation = id.starts_with("_v");
                if (vacation && vacation_forbidden) || inputs.answered.contains(&handle) {
                    Input::True
                } else {
                    outcome.answered.push((handle, expiry));
                    Input::False
                }
            }
            Event::SetEnvelope { .. } => Input::True,
            Event::Function { .. } => Input::result(String::new().into()),
            Event::Keep { flags, message_id } => {
                let mut placement = inbox(flags);
                placement.changed = created.get(&message_id).cloned();
                outcome.placements.push(placement);
                Input::True
            }
            Event::Discard => Input::True,
            Event::Reject { reason, .. } => {
                outcome.reject = Some(reason);
                Input::True
            }
            Event::FileInto {
                folder,
                flags,
                special_use,
                create,
                message_id,
                ..
            } => {
                outcome.placements.push(Placement {
                    mailbox: folder,
                    flags,
                    create,
                    special_use,
                    changed: created.get(&message_id).cloned(),
                });
                Input::True
            }
            Event::SendMessage {
                recipient,
                message_id,
                ..
            } => {
                match (recipient, created.remove(&message_id)) {
                    (Recipient::Address(to), Some(raw)) => {
                        outcome.replies.push(Reply { recipient: to, raw })
                    }
                    (Recipient::Address(to), None) => outcome.redirects.push(to),
                    (other, _) => {
                        tracing::info!(recipient = ?other, "sieve: send to a list or group ignored")
                    }
                }
                Input::True
            }
            Event::Notify { method, .. } => {
                tracing::info!(%method, "sieve: notify ignored");
                Input::True
            }
            Event::CreatedMessage {
                message_id,
                message,
            } => {
                created.insert(message_id, message);
                Input::True
            }
        };
    }
    // A placement of the original in INBOX twice (keep after fileinto "INBOX") is one.
    outcome.placements.dedup_by(|a, b| {
        mailbox_name_eq(&a.mailbox, &b.mailbox) && a.changed == b.changed && {
            b.flags.append(&mut a.flags);
            true
        }
    });
    outcome
}

/// Whether the message must get no automatic reply, whatever the script says. sieve-rs
/// checks most of this itself, but misses `Auto-Submitted` (mail-parser gives it a
/// header name of its own) and `Precedence` other than bulk.
fn no_auto_reply(message: &Message<'_>) -> bool {
    fn raw<'m>(message: &'m Message<'_>, name: &'static str) -> Option<&'m str> {
        message.header_raw(name).map(str::trim)
    }
    let raw = |name: &'static str| raw(message, name);
    // RFC 3834 §2 / RFC 5230 §4.5: anything but "no" is automatic mail.
    let auto_submitted = raw("Auto-Submitted").is_some_and(|v| {
        !v.split(';')
            .next()
            .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("no"))
    });
    // RFC 3834 §2: "Precedence: bulk/list/junk" is mail to many; RFC 2369/2919 lists.
    let precedence = raw("Precedence").is_some_and(|v| {
        ["bulk", "list", "junk"]
            .iter()
            .any(|p| v.eq_ignore_ascii_case(p))
    });
    let list = raw("List-Id").is_some() || raw("List-Unsubscribe").is_some();
    auto_submitted || precedence || list
}

/// RFC 3501 §5.1: INBOX is case-insensitive; other names are compared as they are.
fn mailbox_name_eq(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case("INBOX") || b.eq_ignore_ascii_case("INBOX") {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: Budget\r\nMessage-ID: <m1@example.net>\r\n\r\nThe numbers.\r\n";

    fn inputs() -> Inputs {
        Inputs {
            mail_from: "bob@example.net".into(),
            recipient: "alice@example.org".into(),
            user_address: "alice@example.org".into(),
            hostname: "mx.example.org".into(),
            mailboxes: vec![("INBOX".into(), None), ("Work".into(), None)],
            ..Inputs::default()
        }
    }

    fn outcome(script: &str, raw: &[u8], inputs: &Inputs) -> Outcome {
        run(&compile(script).expect("compiles"), raw, inputs)
    }

    #[test]
    fn no_action_is_implicit_keep() {
        let out = outcome("if false { discard; }", MESSAGE, &inputs());
        assert_eq!(out, Outcome::keep());
    }

    #[test]
    fn fileinto_with_flags_and_copy() {
        let script = r#"require ["fileinto", "imap4flags", "copy", "mailbox"];
            if header :contains "subject" "budget" {
                fileinto :copy :create :flags ["\\Flagged", "$work"] "Work/2026";
            }"#;
        let out = outcome(script, MESSAGE, &inputs());
        assert_eq!(out.placements.len(), 2, "{out:?}");
        assert_eq!(out.placements[0].mailbox, "Work/2026");
        assert!(out.placements[0].create);
        assert_eq!(out.placements[0].flags, ["\\Flagged", "$work"]);
        assert_eq!(out.placements[1].mailbox, "INBOX");
    }

    #[test]
    fn discard_keeps_nothing_and_reject_has_its_reason() {
        assert!(
            outcome("discard;", MESSAGE, &inputs())
                .placements
                .is_empty()
        );
        let out = outcome(
            "require \"reject\"; reject \"no thanks\";",
            MESSAGE,
            &inputs(),
        );
        assert_eq!(out.reject.as_deref(), Some("no thanks"));
        assert!(out.placements.is_empty());
    }

    #[test]
    fn envelope_subaddress_and_variables() {
        let script = r#"require ["envelope", "subaddress", "variables", "fileinto"];
            if envelope :detail "to" "lists" { fileinto "Lists"; }
            set "folder" "Work";
            if header :matches "subject" "B*" { fileinto "${folder}/${1}"; }"#;
        let mut inputs = inputs();
        inputs.recipient = "alice+lists@example.org".into();
        let out = outcome(script, MESSAGE, &inputs);
        let boxes: Vec<_> = out.placements.iter().map(|p| p.mailbox.as_str()).collect();
        assert_eq!(boxes, ["Lists", "Work/udget"], "{out:?}");
    }

    #[test]
    fn vacation_replies_once_per_handle_and_never_to_lists_or_the_null_sender() {
        let script = r#"require "vacation"; vacation :days 3 :subject "Away" "I am away.";"#;
        let out = outcome(script, MESSAGE, &inputs());
        assert_eq!(out.replies.len(), 1, "{out:?}");
        let reply = String::from_utf8_lossy(&out.replies[0].raw).into_owned();
        assert_eq!(out.replies[0].recipient, "bob@example.net");
        assert!(reply.contains("Auto-Submitted: auto-replied"), "{reply}");
        assert!(reply.contains("In-Reply-To: <m1@example.net>"), "{reply}");
        assert!(reply.contains("Subject: Away"), "{reply}");
        assert_eq!(out.answered.len(), 1);
        assert_eq!(out.answered[0].1, 3 * 86400);
        // Kept as well: vacation does not cancel the implicit keep.
        assert_eq!(out.placements.len(), 1);

        // Answered before under that handle: no reply.
        let mut again = inputs();
        again.answered = vec![out.answered[0].0.clone()];
        assert!(outcome(script, MESSAGE, &again).replies.is_empty());

        let mut null = inputs();
        null.mail_from = String::new();
        assert!(outcome(script, MESSAGE, &null).replies.is_empty());

        for header in [
            "List-Id: <team.example.net>",
            "Auto-Submitted: auto-generated",
            "Precedence: bulk",
            "Precedence: list",
            "Precedence: junk",
        ] {
            let raw = format!("{header}\r\n{}", String::from_utf8_lossy(MESSAGE));
            let out = outcome(script, raw.as_bytes(), &inputs());
            assert!(out.replies.is_empty(), "replied despite {header}");
        }
        // Auto-Submitted: no is an ordinary message.
        let raw = format!("Auto-Submitted: no\r\n{}", String::from_utf8_lossy(MESSAGE));
        assert_eq!(outcome(script, raw.as_bytes(), &inputs()).replies.len(), 1);

        // Not addressed to the user in To/Cc: no reply (RFC 5230 §4.5).
        let raw = b"From: bob@example.net\r\nTo: team@example.net\r\nSubject: x\r\n\r\nx\r\n";
        assert!(outcome(script, raw, &inputs()).replies.is_empty());
        // ... unless :addresses names the address it was sent to.
        let with_addresses =
            r#"require "vacation"; vacation :addresses ["team@example.net"] "Away.";"#;
        assert_eq!(outcome(with_addresses, raw, &inputs()).replies.len(), 1);
    }

    #[test]
    fn include_runs_the_users_other_script() {
        let mut inputs = inputs();
        inputs.scripts.insert(
            "lib".into(),
            "require \"fileinto\"; fileinto \"Work\";".into(),
        );
        let out = outcome(
            "require \"include\"; include :personal \"lib\";",
            MESSAGE,
            &inputs,
        );
        assert_eq!(out.placements[0].mailbox, "Work");
        let out = outcome(
            "require \"include\"; include :personal \"missing\";",
            MESSAGE,
            &inputs,
        );
        assert_eq!(out.placements, Outcome::keep().placements);
        assert!(out.error.is_some());
    }

    #[test]
    fn mailboxexists_and_redirect() {
        let script = r#"require ["mailbox", "fileinto"];
            if mailboxexists "Work" { fileinto "Work"; }
            if mailboxexists "Nope" { fileinto "Nope"; }
            redirect "carol@example.com";"#;
        let out = outcome(script, MESSAGE, &inputs());
        let boxes: Vec<_> = out.placements.iter().map(|p| p.mailbox.as_str()).collect();
        assert_eq!(boxes, ["Work"]);
        assert_eq!(out.redirects, ["carol@example.com"]);
    }

    #[test]
    fn a_loop_past_the_instruction_limit_keeps() {
        // foreverypart over many parts with many tests each: more instructions than the
        // limit allows.
        let mut body =
            String::from("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n");
        for _ in 0..2000 {
            body.push_str("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
        }
        body.push_str("--b--\r\n");
        let mut tests = String::new();
        for n in 0..60 {
            tests.push_str(&format!(
                "if header :contains \"subject\" \"{n}\" {{ discard; }}\n"
            ));
        }
        let script = format!("require [\"foreverypart\", \"mime\"]; foreverypart {{ {tests} }}");
        let out = outcome(&script, body.as_bytes(), &inputs());
        assert_eq!(out.placements, Outcome::keep().placements);
        assert!(out.error.is_some(), "{out:?}");
    }

    #[test]
    fn compile_errors_name_the_line() {
        let error = compile("require \"fileinto\";\n\nfileinto \"A\"\nkeep;\n").expect_err("error");
        assert_eq!(error.line, 4, "{error}");
        let error = compile("keep;\nbogus_command;\n").expect_err("error");
        assert_eq!(error.line, 2, "{error}");
    }
}
