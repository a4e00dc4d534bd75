//! Moving in and out: `letterbox import maildir|mbox|imap` and `letterbox export
//! maildir|mbox`.
//!
//! Everything goes through the storage crate's `Store`. Both directions stream: one
//! message is read at a time, and messages are written in batches bounded in count and
//! bytes ([`MAX_BATCH_MESSAGES`], [`MAX_BATCH_BYTES`]), so a mailbox of any size needs
//! memory for one batch, plus a few dozen bytes per message for the lists of UIDs,
//! sizes and file names.
//!
//! Running an import again (after an interruption, or to pick up what arrived since)
//! never duplicates a message:
//! - Where UIDs are kept (a Dovecot Maildir with `dovecot-uidlist` into a mailbox that
//!   was empty, or that has the source's UIDVALIDITY from an earlier run), a message
//!   whose UID is below the mailbox's UIDNEXT is already there (or was expunged here
//!   since) and is skipped.
//! - Everything else (mbox, a Maildir without UIDs, a mailbox that held mail before) is
//!   compared with what the mailbox held when the import started: a message with the
//!   same size, INTERNALDATE and bytes as one there is skipped, each one there matching
//!   at most one imported message (so a message that is twice in the source is
//!   imported twice).
//!
//! An export written again replaces what it wrote before (mbox), or writes only the
//! messages whose files are missing and renames the others to their current flags
//! (Maildir): the file names are made from UIDVALIDITY and UID.

mod imap;
mod maildir;
mod mbox;

use crate::config::Config;
use crate::data_dir::open_store;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::path::PathBuf;
use storage::{AccountId, ImportedMessage, Mailbox, MailboxName, MessageId, Store, Uid};

/// Messages written in one storage transaction at most.
const MAX_BATCH_MESSAGES: usize = 100;
/// Bytes of the messages of one batch at most (a larger message goes alone): bounds the
/// memory an import holds, whatever the size of the mailbox.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// A Dovecot or Courier Maildir++ tree (cur/ new/, folders as .Sent,
    /// .Work.Projects): flags, keywords (dovecot-keywords), subscriptions, and, from
    /// dovecot-uidlist, the UIDVALIDITY and UIDs, kept where the mailbox here is empty.
    Maildir {
        /// The Maildir's root (the one holding INBOX's cur/ and the .Folder directories).
        dir: PathBuf,
        /// The account to import into.
        #[arg(long)]
        user: String,
    },
    /// An mbox file (mboxrd or mboxo), with Status:, X-Status: and X-Keywords: flags
    /// and the date of each `From ` line as INTERNALDATE.
    Mbox {
        file: PathBuf,
        #[arg(long)]
        user: String,
        /// The mailbox to import into, created when missing.
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
    /// A live account on another IMAP server: every mailbox (hierarchy, flags,
    /// keywords, INTERNALDATEs, subscriptions), keeping UIDVALIDITY and UIDs where the
    /// mailbox here is empty. Run again, it copies what is new and the flag changes
    /// (where the server has CONDSTORE).
    Imap {
        /// The server's host name (checked against its certificate).
        #[arg(long)]
        host: String,
        /// Default: 993 with --tls, else 143.
        #[arg(long)]
        port: Option<u16>,
        /// TLS from the start (port 993).
        #[arg(long, conflicts_with = "starttls")]
        tls: bool,
        /// STARTTLS before logging in (port 143).
        #[arg(long)]
        starttls: bool,
        /// The user name on that server.
        #[arg(long)]
        login: String,
        /// Read the password from the first line of stdin (it is never taken from the
        /// command line, where `ps` shows it).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The account here to copy into.
        #[arg(long)]
        user: String,
        /// Trust the certificates in this PEM file instead of the system's (a private
        /// CA, a self-signed certificate).
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        /// Do not check the server's certificate at all (warns: anyone on the path can
        /// read the password and the mail).
        #[arg(long, conflicts_with = "ca_file")]
        insecure: bool,
    },
}

#[derive(Subcommand)]
pub enum ExportCommand {
    /// Every mailbox as a Maildir++ tree that Dovecot reads with the same UIDVALIDITY,
    /// UIDs, flags, keywords and subscriptions (dovecot-uidlist, dovecot-keywords,
    /// subscriptions), and mutt reads too.
    Maildir {
        #[arg(long)]
        user: String,
        dir: PathBuf,
    },
    /// Every mailbox as an mboxrd file (INBOX as DIR/INBOX, Work/Projects as
    /// DIR/Work.sbd/Projects) with Status:, X-Status: and X-Keywords: headers.
    Mbox {
        #[arg(long)]
        user: String,
        dir: PathBuf,
    },
}

pub async fn import(config: &Config, command: ImportCommand) -> Result<()> {
    let store = open_store(config).await?;
    let imported = import_into(&store, config, command).await;
    // A running server's indexer hears only of its own deliveries, so what this process
    // stored is indexed before it ends (also after a failure part way).
    let indexed = store.index_queued().await;
    imported?;
    indexed?;
    Ok(())
}

async fn import_into(store: &Store, config: &Config, command: ImportCommand) -> Result<()> {
    let limit = config.limits.max_message_size;
    match command {
        ImportCommand::Maildir { dir, user } => {
            let account = account(store, &user).await?;
            maildir::import(store, account, &dir, limit).await
        }
        ImportCommand::Mbox {
            file,
            user,
            mailbox,
        } => {
            let account = account(store, &user).await?;
            mbox::import(store, account, &file, &mailbox, limit).await
        }
        ImportCommand::Imap {
            host,
            port,
            tls,
            starttls,
            login,
            password_stdin: _,
            user,
            ca_file,
            insecure,
        } => {
            let password = crate::admin::password_from_stdin()?;
            let account = account(store, &user).await?;
            let security = match (tls, starttls) {
                (true, _) => imap::Security::Tls,
                (false, true) => imap::Security::StartTls,
                (false, false) => imap::Security::Plain,
            };
            let source = imap::Source {
                host,
                port: port.unwrap_or(if tls { 993 } else { 143 }),
                security,
                login,
                password,
                ca_file,
                insecure,
            };
            imap::import(store, account, &user, &config.data_dir, source, limit).await
        }
    }
}

pub async fn export(config: &Config, command: ExportCommand) -> Result<()> {
    let store = open_store(config).await?;
    match command {
        ExportCommand::Maildir { user, dir } => {
            let account = account(&store, &user).await?;
            maildir::export(&store, account, &dir).await
        }
        ExportCommand::Mbox { user, dir } => {
            let account = account(&store, &user).await?;
            mbox::export(&store, account, &dir).await
        }
    }
}

async fn account(store: &Store, email: &str) -> Result<AccountId> {
    store
        .list_accounts()
        .await?
        .into_iter()
        .find(|a| a.email.eq_ignore_ascii_case(email.trim()))
        .map(|a| a.id)
        .with_context(|| format!("no account {email}"))
}

/// The mailbox `name` of `account`, created when missing.
async fn mailbox_named(store: &Store, account: AccountId, name: &str) -> Result<Mailbox> {
    let name = MailboxName::new(name).with_context(|| format!("creating mailbox {name}"))?;
    if let Some(mailbox) = store.mailbox_by_name(account, &name).await? {
        return Ok(mailbox);
    }
    let id = store
        .create_mailbox(account, &name, None)
        .await
        .with_context(|| format!("creating mailbox {name}"))?;
    Ok(store.mailbox(id).await?)
}

/// A progress bar on a terminal; nothing when stdout is not one (a log, a pipe, a test).
fn progress(length: u64, what: &str) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    let template = format!("{{msg}} [{{bar:30}}] {{pos}}/{{len}} {what} ({{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The start of every export: the root made, the account's mailboxes, and a progress
/// bar over all their messages.
async fn export_plan(
    store: &Store,
    account: AccountId,
    root: &std::path::Path,
) -> Result<(Vec<Mailbox>, ProgressBar)> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let mailboxes = store.list_mailboxes(account).await?;
    let mut total = 0u64;
    for mailbox in &mailboxes {
        total += u64::from(store.mailbox_status(mailbox.id).await?.messages);
    }
    Ok((mailboxes, progress(total, "messages")))
}

/// Where one mailbox's import stands: the batch being filled, what the mailbox held
/// before (to skip what is there already), and the counts for the report.
struct MailboxImport<'a> {
    store: &'a Store,
    mailbox: Mailbox,
    batch: Vec<ImportedMessage>,
    batch_bytes: usize,
    /// (size, INTERNALDATE) → the messages with them that the mailbox held when the
    /// import began and no imported message has matched yet.
    existing: HashMap<(u32, i64), Vec<MessageId>>,
    imported: u64,
    skipped: u64,
    too_large: u64,
    /// Messages here whose flags were set to the source's (`import imap`).
    flags_changed: u64,
}

impl<'a> MailboxImport<'a> {
    async fn new(store: &'a Store, mailbox: Mailbox) -> Result<MailboxImport<'a>> {
        let entries = store.mailbox_entries(mailbox.id).await?;
        Ok(Self::with_entries(store, mailbox, &entries))
    }

    /// An import into `mailbox`, whose messages when it began are `entries`.
    fn with_entries(
        store: &'a Store,
        mailbox: Mailbox,
        entries: &[storage::MessageEntry],
    ) -> MailboxImport<'a> {
        let mut existing: HashMap<(u32, i64), Vec<MessageId>> = HashMap::new();
        for entry in entries {
            existing
                .entry((entry.size, entry.internal_date))
                .or_default()
                .push(entry.message);
        }
        MailboxImport {
            store,
            mailbox,
            batch: Vec::new(),
            batch_bytes: 0,
            existing,
            imported: 0,
            skipped: 0,
            too_large: 0,
            flags_changed: 0,
        }
    }

    /// Adds a message found again by its content (see the module's comment): skipped
    /// when the mailbox held the same bytes with the same INTERNALDATE when the import
    /// began. `false` when skipped.
    async fn add_unless_present(&mut self, mut message: ImportedMessage) -> Result<bool> {
        message.raw = storage::crlf_line_ends(std::mem::take(&mut message.raw));
        let key = (
            u32::try_from(message.raw.len()).unwrap_or(u32::MAX),
            message.internal_date,
        );
        if let Some(candidates) = self.existing.get_mut(&key) {
            let raws = self.store.raw_messages(candidates).await?;
            if let Some(at) = candidates
                .iter()
                .position(|id| raws.get(id).is_some_and(|raw| *raw == message.raw))
            {
                candidates.swap_remove(at);
                self.skipped += 1;
                return Ok(false);
            }
        }
        self.add(message).await?;
        Ok(true)
    }

    /// Adds a message to the batch, writing the batch when it is full.
    async fn add(&mut self, message: ImportedMessage) -> Result<()> {
        if !self.batch.is_empty()
            && (self.batch.len() >= MAX_BATCH_MESSAGES
                || self.batch_bytes + message.raw.len() > MAX_BATCH_BYTES)
        {
            self.flush().await?;
        }
        self.batch_bytes += message.raw.len();
        self.batch.push(message);
        Ok(())
    }

    /// Writes the batch in one transaction.
    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let count = batch.len() as u64;
        self.store
            .import_messages(self.mailbox.id, batch)
            .await
            .with_context(|| format!("importing into {}", self.mailbox.name))?;
        self.imported += count;
        Ok(())
    }

    /// Writes what is left and says what happened, in one line.
    async fn finish(mut self, how: &str) -> Result<String> {
        self.flush().await?;
        let mut line = format!(
            "{}: {} imported, {} already there",
            self.mailbox.name, self.imported, self.skipped
        );
        if self.flags_changed > 0 {
            line.push_str(&format!(", {} with new flags", self.flags_changed));
        }
        if self.too_large > 0 {
            line.push_str(&format!(
                ", {} skipped as larger than limits.max_message_size",
                self.too_large
            ));
        }
        if !how.is_empty() {
            line.push_str(&format!(" ({how})"));
        }
        Ok(line)
    }
}

/// Where UIDs are kept, everything below UIDNEXT is there already (or was expunged here
/// since): only UIDs from UIDNEXT on are imported.
fn already_imported(mailbox: &Mailbox, uid: Uid) -> bool {
    uid < mailbox.uid_next
}

/// Prints a line of the report above the progress bar (or plainly without one).
fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

/// Reads one line of `reader` through its LF into `line` (cleared first), at most `max`
/// bytes: a longer line comes in pieces of `max` bytes, so that a file without line
/// ends never fills memory. `false` at the end of the input.
fn read_line_bounded(
    reader: &mut impl std::io::BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    line.clear();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let room = max.saturating_sub(line.len()).max(1);
        let window = available.get(..room).unwrap_or(available);
        if let Some(at) = window.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(window.get(..=at).unwrap_or(window));
            reader.consume(at + 1);
            return Ok(true);
        }
        let taken = window.len();
        line.extend_from_slice(window);
        reader.consume(taken);
        if line.len() >= max {
            return Ok(true);
        }
    }
}

/// Stored messages end lines with CRLF (see `storage::crlf_line_ends`); files for Unix
/// readers (Dovecot's Maildir, mutt's mbox) end them with LF, as Dovecot writes them.
fn lf_line_ends(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().peekable();
    while let Some(&byte) = bytes.next() {
        if byte == b'\r' && bytes.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(byte);
    }
    out
}

/// Calls `write` with every message of `entries` and its stored bytes, reading them in
/// runs of at most [`MAX_BATCH_MESSAGES`] and [`MAX_BATCH_BYTES`] (a larger message goes
/// alone); a message expunged meanwhile is left out. Moves `bar` one step a message.
async fn each_message(
    store: &Store,
    entries: &[storage::MessageEntry],
    bar: &ProgressBar,
    mut write: impl FnMut(&storage::MessageEntry, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut rest = entries;
    while !rest.is_empty() {
        let mut count = 0;
        let mut bytes = 0usize;
        for entry in rest {
            let size = entry.size as usize;
            if count > 0 && (count >= MAX_BATCH_MESSAGES || bytes + size > MAX_BATCH_BYTES) {
                break;
            }
            count += 1;
            bytes += size;
        }
        let (batch, after) = rest.split_at(count);
        rest = after;
        let ids: Vec<MessageId> = batch.iter().map(|e| e.message).collect();
        let raws = store.raw_messages(&ids).await?;
        for entry in batch {
            bar.inc(1);
            if let Some(raw) = raws.get(&entry.message) {
                write(entry, raw)?;
            }
        }
    }
    Ok(())
}

/// The name a file is written under before it is renamed into place, so that a reader
/// never sees half of it.
fn tmp_path(path: &std::path::Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".letterbox-tmp");
    PathBuf::from(tmp)
}

/// Seconds since the epoch of a file's modification time (0 before the epoch).
fn mtime(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// RFC 9051 §9: a keyword is an atom (no atom-specials); anything else from a file
/// could not be sent to a client.
fn is_keyword(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('\\')
        && word
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

/// Makes the directories a file goes in.
fn ensure_dir_for(path: &std::path::Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

/// Fails unless `dir` is a directory.
fn ensure_dir(dir: &std::path::Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(())
}
