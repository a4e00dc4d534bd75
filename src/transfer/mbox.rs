//! mbox in and out. The format is the one every Unix mail reader knows
//! (<https://www.loc.gov/preservation/digital/formats/fdd/fdd000383.shtml>, RFC 4155):
//! each message starts with a `From sender date` line, and a line of the message that
//! starts with `From ` is written with a `>` before it. mboxrd also escapes lines that
//! are already `>From `, `>>From `, … with one more `>`, so reading drops exactly one;
//! mboxo escapes only `From `, which reads back the same but for messages that had
//! `>From ` to begin with (they lose a `>`, as in every other reader).
//!
//! Flags live in header fields that mail readers add (mutt, Dovecot's mbox):
//! `Status:` (`R` read, `O` old), `X-Status:` (`A` answered, `F` flagged, `T` draft,
//! `D` deleted) and `X-Keywords:`. They are taken out of the message on import (they
//! are the mailbox's, not the message's) and written on export.
//!
//! Written by hand: mail-parser's mbox iterator (the only maintained one) keeps a
//! whole message however long, with no bound, and keeps the blank line that separates
//! messages as part of each.

use super::{
    MailboxImport, each_message, ensure_dir_for, export_plan, is_keyword, lf_line_ends,
    mailbox_named, progress, read_line_bounded, say, tmp_path,
};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use storage::{AccountId, Flags, ImportedMessage, Store};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Lines are read in pieces of at most this many bytes (a longer line is several
/// pieces): a file without line ends never fills memory.
const MAX_LINE_PIECE: usize = 64 * 1024;
/// Header fields that belong to the mbox, not to the message: read for flags (the
/// first three) and left out of the imported message; Dovecot's mbox driver writes the
/// others.
const MBOX_FIELDS: &[&str] = &[
    "Status",
    "X-Status",
    "X-Keywords",
    "X-UID",
    "X-IMAP",
    "X-IMAPbase",
    "Content-Length",
];
/// `X-Status:` letters and the IMAP system flags they stand for.
const X_STATUS_LETTERS: &[(char, &str)] = &[
    ('A', "\\Answered"),
    ('F', "\\Flagged"),
    ('T', "\\Draft"),
    ('D', "\\Deleted"),
];

/// One message of an mbox: its `From ` line and its bytes (`None` when it is larger
/// than the limit).
struct MboxMessage {
    from_line: Vec<u8>,
    raw: Option<Vec<u8>>,
}

/// Reads an mbox one message at a time.
struct MboxReader<R> {
    reader: R,
    line: Vec<u8>,
    /// The `From ` line of the next message, once read.
    next_from: Option<Vec<u8>>,
    started: bool,
    limit: usize,
    /// Bytes read so far, for the progress bar.
    position: u64,
}

impl<R: BufRead> MboxReader<R> {
    fn new(reader: R, limit: usize) -> Self {
        MboxReader {
            reader,
            line: Vec::new(),
            next_from: None,
            started: false,
            limit,
            position: 0,
        }
    }

    fn read_line(&mut self) -> std::io::Result<bool> {
        let more = read_line_bounded(&mut self.reader, &mut self.line, MAX_LINE_PIECE)?;
        self.position += self.line.len() as u64;
        Ok(more)
    }

    fn next_message(&mut self) -> Result<Option<MboxMessage>> {
        if !self.started {
            self.started = true;
            // Blank lines may come first; anything else is not an mbox.
            while self.read_line()? {
                if self.line.starts_with(b"From ") {
                    self.next_from = Some(self.line.clone());
                    break;
                }
                if !self.line.iter().all(u8::is_ascii_whitespace) {
                    bail!("not an mbox: the first line is not a `From ` line");
                }
            }
        }
        let Some(from_line) = self.next_from.take() else {
            return Ok(None);
        };
        let mut raw = Some(Vec::new());
        let mut at_line_start = true;
        while self.read_line()? {
            let starts_line = at_line_start;
            at_line_start = self.line.ends_with(b"\n");
            if starts_line && self.line.starts_with(b"From ") {
                self.next_from = Some(self.line.clone());
                break;
            }
            // mboxrd: `>From `, `>>From `, … lose one `>`.
            let escaped = starts_line && {
                let quotes = self.line.iter().take_while(|&&b| b == b'>').count();
                quotes > 0
                    && self
                        .line
                        .get(quotes..)
                        .is_some_and(|l| l.starts_with(b"From "))
            };
            let content = if escaped {
                self.line.get(1..).unwrap_or_default()
            } else {
                &self.line[..]
            };
            if let Some(bytes) = raw.as_mut() {
                if bytes.len() + content.len() > self.limit {
                    raw = None;
                } else {
                    bytes.extend_from_slice(content);
                }
            }
        }
        // The blank line before the next `From ` (and at the end) separates messages.
        if let Some(bytes) = raw.as_mut() {
            if bytes.ends_with(b"\r\n\r\n") {
                bytes.truncate(bytes.len() - 2);
            } else if bytes.ends_with(b"\n\n") {
                bytes.truncate(bytes.len() - 1);
            }
        }
        Ok(Some(MboxMessage { from_line, raw }))
    }
}

pub async fn import(
    store: &Store,
    account: AccountId,
    file: &Path,
    mailbox: &str,
    limit: usize,
) -> Result<()> {
    let opened = std::fs::File::open(file).with_context(|| format!("{}", file.display()))?;
    let length = opened.metadata()?.len();
    let mut reader = MboxReader::new(BufReader::new(opened), limit);
    let mailbox = mailbox_named(store, account, mailbox).await?;
    let mut import = MailboxImport::new(store, mailbox).await?;
    let bar = progress(length, "bytes");
    bar.set_message(import.mailbox.name.to_string());
    while let Some(message) = reader.next_message()? {
        bar.set_position(reader.position);
        let Some(raw) = message.raw else {
            import.too_large += 1;
            continue;
        };
        let (raw, flags) = take_mbox_fields(&raw);
        let internal_date = from_line_date(&message.from_line).unwrap_or_else(storage::unix_now);
        import
            .add_unless_present(ImportedMessage {
                raw,
                flags,
                internal_date,
                uid: None,
            })
            .await?;
    }
    let line = import.finish("new UIDs").await?;
    bar.finish_and_clear();
    say(&bar, &line);
    Ok(())
}

/// The header section's lines: (start, end) of each field with its continuation lines,
/// and where the body starts.
fn header_fields(raw: &[u8]) -> (Vec<(usize, usize)>, usize) {
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let end = raw
            .get(at..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(raw.len(), |n| at + n + 1);
        let line = raw.get(at..end).unwrap_or_default();
        if line == b"\n" || line == b"\r\n" {
            return (fields, at);
        }
        match fields.last_mut() {
            Some(last) if line.starts_with(b" ") || line.starts_with(b"\t") => last.1 = end,
            _ => fields.push((at, end)),
        }
        at = end;
    }
    (fields, raw.len())
}

/// The field's name, when `field` is one of [`MBOX_FIELDS`], and its value.
fn mbox_field(field: &[u8]) -> Option<(&'static str, String)> {
    let text = String::from_utf8_lossy(field);
    let (name, value) = text.split_once(':')?;
    let known = MBOX_FIELDS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name.trim()))?;
    Some((known, value.trim().to_owned()))
}

/// The message without its mbox fields, and the flags they held.
fn take_mbox_fields(raw: &[u8]) -> (Vec<u8>, Flags) {
    let (fields, body) = header_fields(raw);
    let mut flags = Flags::default();
    let mut kept = Vec::with_capacity(raw.len());
    for (start, end) in fields {
        let field = raw.get(start..end).unwrap_or_default();
        match mbox_field(field) {
            Some(("Status", value)) if value.contains('R') => flags.insert("\\Seen"),
            Some(("X-Status", value)) => {
                for (letter, flag) in X_STATUS_LETTERS {
                    if value.contains(*letter) {
                        flags.insert(flag);
                    }
                }
            }
            Some(("X-Keywords", value)) => {
                for keyword in value.split([',', ' ', '\t']).filter(|k| is_keyword(k)) {
                    flags.insert(keyword);
                }
            }
            Some(_) => {}
            None => kept.extend_from_slice(field),
        }
    }
    kept.extend_from_slice(raw.get(body..).unwrap_or_default());
    (kept, flags)
}

/// The date of a `From sender Www Mmm dd hh:mm:ss yyyy` line (asctime, UTC unless a
/// `+hhmm`/`-hhmm` zone follows the time or the year), as seconds since the epoch.
fn from_line_date(line: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(line);
    let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
    // The sender may be missing or hold spaces: find the month from the third token on.
    let month_at = (2..tokens.len()).find(|&i| tokens.get(i).and_then(|t| month(t)).is_some())?;
    let month = month(tokens.get(month_at)?)?;
    let day: u8 = tokens.get(month_at + 1)?.parse().ok()?;
    let mut clock = tokens.get(month_at + 2)?.split(':');
    let hour: u8 = clock.next()?.parse().ok()?;
    let minute: u8 = clock.next()?.parse().ok()?;
    let second: u8 = clock.next().map_or(Some(0), |s| s.parse().ok())?;
    let mut year = None;
    let mut offset = UtcOffset::UTC;
    for token in tokens.iter().skip(month_at + 3) {
        if let Some(zone) = zone(token) {
            offset = zone;
        } else if let Ok(y) = token.parse::<i32>() {
            year = Some(y);
        }
    }
    let date = Date::from_calendar_date(year?, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .unix_timestamp(),
    )
}

fn month(token: &str) -> Option<Month> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let at = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(token))?;
    Month::try_from(at as u8 + 1).ok()
}

/// `+hhmm` or `-hhmm`.
fn zone(token: &str) -> Option<UtcOffset> {
    let sign = match token.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = token.get(1..)?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i8 = digits.get(..2)?.parse().ok()?;
    let minutes: i8 = digits.get(2..)?.parse().ok()?;
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

pub async fn export(store: &Store, account: AccountId, root: &Path) -> Result<()> {
    let (mailboxes, bar) = export_plan(store, account, root).await?;
    for mailbox in &mailboxes {
        bar.set_message(mailbox.name.to_string());
        let path = mbox_path(root, mailbox.name.as_str());
        ensure_dir_for(&path)?;
        let written = export_mailbox(store, mailbox, &path, &bar)
            .await
            .with_context(|| format!("exporting {}", mailbox.name))?;
        say(
            &bar,
            &format!("{}: {written} messages in {}", mailbox.name, path.display()),
        );
    }
    bar.finish_and_clear();
    Ok(())
}

/// Where a mailbox's mbox goes: Thunderbird's layout, `Work/Projects` as
/// `Work.sbd/Projects`, so that a mailbox can hold messages and have children. A level
/// that would name a hidden file or a parent directory gets a `_` in front.
fn mbox_path(root: &Path, name: &str) -> PathBuf {
    let levels: Vec<String> = name
        .split('/')
        .map(|level| {
            if level.starts_with('.') {
                format!("_{level}")
            } else {
                level.to_owned()
            }
        })
        .collect();
    let mut path = root.to_owned();
    if let Some((last, superiors)) = levels.split_last() {
        for level in superiors {
            path.push(format!("{level}.sbd"));
        }
        path.push(last);
    }
    path
}

/// Writes a mailbox's messages to a new file, renamed over `path` once complete (so an
/// export run again replaces the file, and an interrupted one leaves the old).
async fn export_mailbox(
    store: &Store,
    mailbox: &storage::Mailbox,
    path: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<u64> {
    let tmp = tmp_path(path);
    let mut out = BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let entries = store.mailbox_entries(mailbox.id).await?;
    let mut written = 0;
    each_message(store, &entries, bar, |entry, raw| {
        write_message(
            &mut out,
            &lf_line_ends(raw),
            &entry.flags,
            entry.internal_date,
        )?;
        written += 1;
        Ok(())
    })
    .await?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(written)
}

/// One message as mboxrd: the `From ` line with its INTERNALDATE, the header without
/// old mbox fields and with the flags' fields, every `>*From ` line with one more `>`,
/// and a blank line after it.
fn write_message(out: &mut impl Write, text: &[u8], flags: &Flags, date: i64) -> Result<()> {
    let when = OffsetDateTime::from_unix_timestamp(date).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let asctime = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    writeln!(out, "From MAILER-DAEMON {}", when.format(&asctime)?)?;
    let (fields, body) = header_fields(text);
    let mut message = Vec::with_capacity(text.len() + 64);
    for (start, end) in fields {
        let field = text.get(start..end).unwrap_or_default();
        if mbox_field(field).is_none() {
            message.extend_from_slice(field);
        }
    }
    if !message.is_empty() && !message.ends_with(b"\n") {
        message.push(b'\n');
    }
    let status = if flags.contains("\\Seen") { "RO" } else { "O" };
    message.extend_from_slice(format!("Status: {status}\n").as_bytes());
    let x_status: String = X_STATUS_LETTERS
        .iter()
        .filter(|(_, flag)| flags.contains(flag))
        .map(|&(letter, _)| letter)
        .collect();
    if !x_status.is_empty() {
        message.extend_from_slice(format!("X-Status: {x_status}\n").as_bytes());
    }
    let keywords: Vec<&str> = flags.iter().filter(|f| !f.starts_with('\\')).collect();
    if !keywords.is_empty() {
        message.extend_from_slice(format!("X-Keywords: {}\n", keywords.join(" ")).as_bytes());
    }
    message.extend_from_slice(text.get(body..).unwrap_or_default());
    if body >= text.len() {
        // A message without a blank line after its header gets one.
        message.push(b'\n');
    }
    for line in message.split_inclusive(|&b| b == b'\n') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if line.get(quotes..).is_some_and(|l| l.starts_with(b"From ")) {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
    }
    if !message.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mbox: &[u8], limit: usize) -> Vec<(String, Option<String>)> {
        let mut reader = MboxReader::new(mbox, limit);
        let mut messages = Vec::new();
        while let Some(m) = reader.next_message().expect("read") {
            messages.push((
                String::from_utf8_lossy(&m.from_line).into_owned(),
                m.raw.map(|r| String::from_utf8_lossy(&r).into_owned()),
            ));
        }
        messages
    }

    #[test]
    fn messages_are_split_on_from_lines_and_unescaped_once() {
        let mbox = b"From a@b Thu Nov 24 18:22:48 1986\nSubject: one\n\n>From here\n>>From there\n>Fromage\n\nFrom c@d Fri Nov 25 00:00:00 1986\nSubject: two\n\nbody\n";
        let messages = read_all(mbox, 1 << 20);
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[0].1.as_deref(),
            Some("Subject: one\n\nFrom here\n>From there\n>Fromage\n")
        );
        assert_eq!(messages[1].1.as_deref(), Some("Subject: two\n\nbody\n"));
        assert!(messages[1].0.starts_with("From c@d"));
        // Over the limit: the message is skipped, the next one still read.
        let messages = read_all(mbox, 40);
        assert_eq!(messages[0].1, None);
        assert_eq!(messages[1].1.as_deref(), Some("Subject: two\n\nbody\n"));
        assert!(read_all(b"", 10).is_empty());
        assert!(
            MboxReader::new(&b"Subject: x\n"[..], 10)
                .next_message()
                .is_err()
        );
    }

    #[test]
    fn from_line_dates_are_asctime_in_utc_or_their_zone() {
        assert_eq!(
            from_line_date(b"From a@b Thu Nov 24 18:22:48 1986\n"),
            Some(533_240_568)
        );
        assert_eq!(
            from_line_date(b"From a@b Thu Nov 24 18:22:48 1986 +0100\n"),
            Some(533_240_568 - 3600)
        );
        assert_eq!(
            from_line_date(b"From MAILER-DAEMON Mon Jan  2 03:04:05 2023"),
            Some(1_672_628_645)
        );
        assert_eq!(from_line_date(b"From a@b\n"), None);
    }

    #[test]
    fn flags_travel_in_status_fields_both_ways() {
        let raw = b"Subject: s\nStatus: RO\nX-Status: AF\nX-Keywords: $Label1, work\n\nFrom me\n";
        let (message, flags) = take_mbox_fields(raw);
        assert_eq!(message, b"Subject: s\n\nFrom me\n");
        assert_eq!(
            flags.to_stored(),
            "$Label1 \\Answered \\Flagged \\Seen work"
        );
        let mut out = Vec::new();
        write_message(&mut out, &message, &flags, 533_240_568).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "From MAILER-DAEMON Mon Nov 24 18:22:48 1986\nSubject: s\nStatus: RO\nX-Status: AF\nX-Keywords: $Label1 work\n\n>From me\n\n"
        );
        let mut reader = MboxReader::new(&out[..], 1 << 20);
        let again = reader.next_message().expect("read").expect("message");
        let (back, back_flags) = take_mbox_fields(&again.raw.expect("raw"));
        assert_eq!((back, back_flags), (message, flags));
    }

    #[test]
    fn mailbox_paths_stay_under_the_root() {
        let root = Path::new("/out");
        assert_eq!(mbox_path(root, "INBOX"), PathBuf::from("/out/INBOX"));
        assert_eq!(
            mbox_path(root, "Work/Projects"),
            PathBuf::from("/out/Work.sbd/Projects")
        );
        assert_eq!(mbox_path(root, "../x"), PathBuf::from("/out/_...sbd/x"));
    }
}
