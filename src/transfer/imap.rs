//! `letterbox import imap`: copies a live account from another IMAP server (RFC 9051,
//! RFC 3501) through async-imap: every mailbox with its hierarchy (the source's
//! delimiter becomes `/`, names decoded from modified UTF-7, RFC 3501 §5.1.3), flags,
//! keywords, INTERNALDATEs and subscriptions.
//!
//! UIDs: a mailbox here that is empty takes the source mailbox's UIDVALIDITY, every
//! message keeps its UID and UIDNEXT follows the source's (`storage::import`), so IMAP
//! clients carry on without downloading anything again (RFC 9051 §2.3.1.1). A mailbox
//! that held other mail gets the messages at new UIDs, and the report says so.
//!
//! Run again, it copies only what is new, never twice. What a run reached is kept in
//! `data_dir/import-state/` per source and account ([`SyncState`]): for each mailbox
//! the source's UIDVALIDITY, the UIDNEXT copied up to and, where the source has CONDSTORE
//! (RFC 7162), its HIGHESTMODSEQ. The next run fetches the UIDs from there on only, and
//! the flags of the messages whose MODSEQ grew since (`CHANGEDSINCE`, RFC 7162 §3.1.4),
//! so that a flag changed on the source follows while one changed here since stays.
//! Without the state (a first run, another node's data_dir) a mailbox that has the
//! source's UIDVALIDITY takes what is below its UIDNEXT as there already, as `import
//! maildir` does. A message that is found at its UID here with the same size and
//! INTERNALDATE is there already (an interrupted run); any other is compared by content
//! (`MailboxImport::add_unless_present`).
//!
//! Streaming: the UIDs, sizes and dates of the messages to copy are read first (a few
//! bytes each), then the messages in UID ranges of at most [`MAX_BATCH_MESSAGES`] or
//! [`MAX_BATCH_BYTES`], one `UID FETCH` each, written as they arrive. The source is read
//! with EXAMINE and BODY.PEEK: nothing changes there.
//!
//! Not copied: expunges on the source after a first run (a message deleted there stays
//! here), mailboxes of other namespaces than the ones LIST shows, ACLs, METADATA.

use super::{
    MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MailboxImport, is_keyword, mailbox_named,
    maildir::write_atomically, progress, say,
};
use anyhow::{Context, Result, bail};
use async_imap::types::{Fetch, Flag, Name, NameAttribute};
use futures::{Stream, StreamExt};
use imap::proto::{mutf7, sequence};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use storage::{
    AccountId, FlagOperation, Flags, ImportedMessage, MailboxId, MailboxName, MessageEntry, Secret,
    Store, Uid, UidValidity,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long the source may stay silent: for the TCP connection, the TLS handshake, and
/// each response (one message of a batch at most 16 MiB arrives within it on a link
/// of 60 kB/s). A server that stops answering must not hold the import for ever.
const SERVER_SILENCE_LIMIT: Duration = Duration::from_secs(300);
/// Flag changes written in one storage call at most, so that a mailbox whose every flag
/// changed is not held in memory whole.
const MAX_FLAG_UPDATES: usize = 1000;
/// What a message is read with: BODY.PEEK leaves \Seen alone (RFC 9051 §6.4.5).
const BODY_ITEMS: &str = "(UID FLAGS INTERNALDATE BODY.PEEK[])";
/// What the list of messages to copy is read with.
const INDEX_ITEMS: &str = "(UID RFC822.SIZE INTERNALDATE)";
/// Where the state of earlier runs is kept, under data_dir.
const STATE_DIR: &str = "import-state";

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (port 993, RFC 8314 §3.3).
    Tls,
    /// STARTTLS before LOGIN (RFC 9051 §6.2.1).
    StartTls,
    /// None: the password crosses the network readable.
    Plain,
}

/// The account to copy from.
#[derive(Debug)]
pub struct Source {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub login: String,
    pub password: Secret,
    /// Trust these certificates (PEM) instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Take any certificate.
    pub insecure: bool,
}

/// What earlier runs from one source into one account reached, by source mailbox name
/// (as the source spells it). Kept as JSON in `data_dir/import-state/`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SyncState {
    /// For a person reading the file: `login@host:port`.
    source: String,
    /// For a person reading the file: the account here.
    account: String,
    mailboxes: BTreeMap<String, MailboxState>,
}

/// One mailbox's state after a run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct MailboxState {
    source_uid_validity: UidValidity,
    /// The mailbox here and its UIDVALIDITY: another mailbox (deleted and made again)
    /// does not hold what the state says.
    mailbox: MailboxId,
    uid_validity: UidValidity,
    /// Every source UID below this one was copied (or skipped as too large).
    uid_next: Uid,
    /// The source's HIGHESTMODSEQ when the run looked; flag changes above it are to be
    /// brought. None without CONDSTORE.
    highest_modseq: Option<u64>,
}

/// A mailbox as the source's LIST names it.
#[derive(Debug, PartialEq)]
struct SourceMailbox {
    /// The name on the wire (modified UTF-7, the source's delimiter).
    wire: String,
    /// The name here.
    name: String,
    /// A `/` in one of its levels became `_` (it is the delimiter here).
    renamed: bool,
}

/// What EXAMINE said about a mailbox (RFC 9051 §6.3.3, RFC 7162 §3.1.2.1).
struct Examined {
    uid_validity: UidValidity,
    uid_next: Option<Uid>,
    highest_modseq: Option<u64>,
    exists: u32,
}

/// A message to copy, as the list read first gives it.
#[derive(Debug, Clone, Copy)]
struct Indexed {
    uid: Uid,
    size: u32,
    internal_date: i64,
}

/// Where a fetched message goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placement {
    /// At the UID it has on the source.
    AtUid,
    /// At the next free UID here, unless the mailbox holds it already (by content): the
    /// mailbox held other mail.
    NewUid,
    /// The same, in a mailbox that keeps the source's UIDs, because letterbox gave this
    /// UID to other mail: the report counts these.
    Renumbered,
}

/// The connection, plain or TLS, behind one type for async-imap.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Connection for T {}
type Session = async_imap::Session<Box<dyn Connection>>;

/// The counts of the whole run.
#[derive(Debug, Default)]
struct Totals {
    copied: u64,
    flag_changes: u64,
}

pub async fn import(
    store: &Store,
    account: AccountId,
    email: &str,
    data_dir: &Path,
    source: Source,
    limit: usize,
) -> Result<()> {
    if source.security == Security::Plain {
        eprintln!(
            "warning: no TLS (--tls or --starttls): the password and the mail cross the \
             network readable"
        );
    }
    if source.insecure {
        eprintln!(
            "warning: --insecure: the server's certificate is not checked; whoever is \
             between here and {} can read the password and the mail",
            source.host
        );
    }
    let state_path = state_path(data_dir, &source, account);
    let mut state = read_state(&state_path)?;
    state.source = format!("{}@{}:{}", source.login, source.host, source.port);
    state.account = email.to_owned();

    let (mut session, mut condstore) = open(&source).await?;
    let mailboxes = list(&mut session, false).await?;

    let bar = progress(0, "messages");
    let mut totals = Totals::default();
    let mut failed = Vec::new();
    for source_mailbox in &mailboxes {
        bar.set_message(source_mailbox.name.clone());
        let saved = state.mailboxes.get(&source_mailbox.wire).copied();
        let mut copy = MailboxCopy {
            session: &mut session,
            store,
            account,
            limit,
            bar: &bar,
            condstore,
            renumbered: 0,
        };
        match copy.run(source_mailbox, saved, &mut totals).await {
            Ok((line, reached)) => {
                say(&bar, &line);
                state.mailboxes.insert(source_mailbox.wire.clone(), reached);
                write_state(&state_path, &state)?;
            }
            Err(error) => {
                say(
                    &bar,
                    &format!("{}: not copied: {error:#}", source_mailbox.name),
                );
                failed.push(source_mailbox.name.clone());
                // The connection may be amid an answer (or dead): the next mailbox gets
                // a new one.
                (session, condstore) = open(&source).await?;
            }
        }
    }
    bar.finish_and_clear();

    let subscribed = list(&mut session, true).await?;
    for mailbox in &subscribed {
        let subscribe = async {
            let name = MailboxName::new(&mailbox.name)?;
            store.set_subscribed(account, &name, true).await
        };
        subscribe
            .await
            .with_context(|| format!("subscribing to {}", mailbox.name))?;
    }
    // The copy is complete; a LOGOUT the server does not answer changes nothing.
    let _ = answer("LOGOUT", session.logout()).await;
    println!(
        "{} messages copied, {} flag changes, {} subscriptions",
        totals.copied,
        totals.flag_changes,
        subscribed.len()
    );
    if !failed.is_empty() {
        bail!("not copied: {}", failed.join(", "));
    }
    Ok(())
}

/// One mailbox's copy: what it needs of the run.
struct MailboxCopy<'a> {
    session: &'a mut Session,
    store: &'a Store,
    account: AccountId,
    limit: usize,
    bar: &'a indicatif::ProgressBar,
    condstore: bool,
    /// Messages of the mailbox placed at new UIDs though it keeps the source's.
    renumbered: u64,
}

impl MailboxCopy<'_> {
    /// Copies what is new in `source` (see the module's comment); returns the line of
    /// the report and the state reached.
    async fn run(
        &mut self,
        source: &SourceMailbox,
        saved: Option<MailboxState>,
        totals: &mut Totals,
    ) -> Result<(String, MailboxState)> {
        let examined = examine(self.session, &source.wire).await?;
        let mut mailbox = mailbox_named(self.store, self.account, &source.name).await?;
        // Keep the source's UIDs in a mailbox that has its UIDVALIDITY already (an
        // earlier run) or that is empty.
        let keep = if mailbox.uid_validity == examined.uid_validity {
            true
        } else if self.store.mailbox_status(mailbox.id).await?.messages == 0 {
            self.store
                .adopt_uid_validity(mailbox.id, examined.uid_validity)
                .await?;
            mailbox = self.store.mailbox(mailbox.id).await?;
            true
        } else {
            false
        };
        let saved = saved.filter(|s| {
            s.source_uid_validity == examined.uid_validity
                && s.mailbox == mailbox.id
                && s.uid_validity == mailbox.uid_validity
        });
        let from = match saved {
            Some(saved) => saved.uid_next,
            None if keep => mailbox.uid_next,
            None => Uid(1),
        };
        let nothing_new = examined.exists == 0 || examined.uid_next.is_some_and(|n| n <= from);
        let index = if nothing_new {
            Vec::new()
        } else {
            index(self.session, from).await?
        };
        self.bar.inc_length(index.len() as u64);

        let entries = self.store.mailbox_entries(mailbox.id).await?;
        let mut import = MailboxImport::with_entries(self.store, mailbox.clone(), &entries);
        // The UIDs from this one on are still free here (an estimate that only errs
        // upwards: a message placed at a new UID may turn out to be there already).
        let mut free_from = mailbox.uid_next;
        let mut wanted: Vec<(Indexed, Placement)> = Vec::new();
        let mut wanted_bytes = 0usize;
        for &message in &index {
            if message.size as usize > self.limit {
                import.too_large += 1;
                self.bar.inc(1);
                continue;
            }
            let placement = if !keep {
                Placement::NewUid
            } else if message.uid < mailbox.uid_next {
                // Below UIDNEXT: copied by an interrupted run, or a UID that letterbox
                // gave to other mail after an earlier run moved UIDNEXT.
                if entry_at(&entries, message.uid).is_some_and(|e| same_message(e, &message)) {
                    import.skipped += 1;
                    self.bar.inc(1);
                    continue;
                }
                Placement::Renumbered
            } else if message.uid >= free_from {
                Placement::AtUid
            } else {
                Placement::Renumbered
            };
            free_from = match placement {
                Placement::AtUid => Uid(message.uid.0.saturating_add(1)),
                Placement::NewUid | Placement::Renumbered => Uid(free_from.0.saturating_add(1)),
            };
            let size = message.size as usize;
            if !wanted.is_empty()
                && (wanted.len() >= MAX_BATCH_MESSAGES || wanted_bytes + size > MAX_BATCH_BYTES)
            {
                self.fetch(&wanted, &mut import).await?;
                wanted.clear();
                wanted_bytes = 0;
            }
            wanted.push((message, placement));
            wanted_bytes += size;
        }
        self.fetch(&wanted, &mut import).await?;
        import.flush().await?;
        totals.copied += import.imported;

        let seen_up_to = index
            .last()
            .map_or(from, |last| Uid(last.uid.0.saturating_add(1)));
        let uid_next = examined.uid_next.unwrap_or(seen_up_to).max(seen_up_to);
        if keep {
            // No UID the source gave out (to a message expunged there since) is given
            // again here.
            self.store.raise_uid_next(mailbox.id, uid_next).await?;
        }
        let mut flag_changes = 0;
        if let (true, Some(since), Some(now)) = (
            keep,
            saved.and_then(|s| s.highest_modseq),
            examined.highest_modseq,
        ) && now > since
        {
            flag_changes = self
                .follow_flag_changes(mailbox.id, &entries, from, since)
                .await?;
        }
        import.flags_changed = flag_changes;
        totals.flag_changes += flag_changes;

        let mut how = if keep {
            format!("UIDVALIDITY {} and UIDs kept", examined.uid_validity)
        } else {
            "new UIDs: the mailbox held other mail; IMAP clients will download it again".to_owned()
        };
        if self.renumbered > 0 {
            how.push_str(&format!(
                ", {} at new UIDs: letterbox had given theirs to other mail",
                self.renumbered
            ));
        }
        if source.renamed {
            how.push_str(&format!(
                ", named {} on the source (`/` is the delimiter here)",
                source.wire
            ));
        }
        let reached = MailboxState {
            source_uid_validity: examined.uid_validity,
            mailbox: mailbox.id,
            uid_validity: mailbox.uid_validity,
            uid_next: uid_next.max(from),
            highest_modseq: if self.condstore {
                examined.highest_modseq
            } else {
                None
            },
        };
        Ok((import.finish(&how).await?, reached))
    }

    /// Fetches the messages of `wanted` (ascending UIDs) in one `UID FETCH` and adds
    /// them to `import` as they arrive; counts in `self.renumbered` those that keep no
    /// UID in a mailbox that keeps UIDs (also when the server sends them out of order:
    /// a UID below one already placed can no longer be kept).
    async fn fetch(
        &mut self,
        wanted: &[(Indexed, Placement)],
        import: &mut MailboxImport<'_>,
    ) -> Result<()> {
        let uids: Vec<u32> = wanted.iter().map(|(m, _)| m.uid.0).collect();
        let Some(set) = sequence::compress(&uids) else {
            return Ok(());
        };
        let mut arrived = vec![false; wanted.len()];
        let mut last_placed = Uid(0);
        let mut stream = answer(
            "UID FETCH",
            self.session.uid_fetch(set.to_string(), BODY_ITEMS),
        )
        .await?;
        while let Some(fetch) = next(&mut stream).await? {
            // Unsolicited FETCH responses (RFC 9051 §7.5.2) and repeats are not ours.
            let Some(uid) = fetch.uid.map(Uid) else {
                continue;
            };
            let Ok(at) = wanted.binary_search_by_key(&uid, |(m, _)| m.uid) else {
                continue;
            };
            let (Some(done), Some(&(indexed, placement)), Some(body)) =
                (arrived.get_mut(at), wanted.get(at), fetch.body())
            else {
                continue;
            };
            if *done {
                continue;
            }
            *done = true;
            self.bar.inc(1);
            if body.len() > self.limit {
                import.too_large += 1;
                continue;
            }
            let message = ImportedMessage {
                raw: body.to_vec(),
                flags: flags_of(&fetch),
                internal_date: fetch
                    .internal_date()
                    .map_or(indexed.internal_date, |d| d.timestamp()),
                uid: None,
            };
            if placement == Placement::AtUid && uid > last_placed {
                last_placed = uid;
                import
                    .add(ImportedMessage {
                        uid: Some(uid),
                        ..message
                    })
                    .await?;
            } else if import.add_unless_present(message).await? && placement != Placement::NewUid {
                self.renumbered += 1;
            }
        }
        // Expunged on the source since the list was read.
        let gone = arrived.iter().filter(|done| !**done).count() as u64;
        self.bar.inc(gone);
        Ok(())
    }

    /// Brings the flags of the messages below `below` that changed on the source since
    /// `since` (RFC 7162 §3.1.4 CHANGEDSINCE), where the message at that UID here is
    /// the one copied (same size and INTERNALDATE). Returns how many changed here.
    async fn follow_flag_changes(
        &mut self,
        mailbox: MailboxId,
        entries: &[MessageEntry],
        below: Uid,
        since: u64,
    ) -> Result<u64> {
        if below.0 <= 1 {
            return Ok(0);
        }
        let mut pending: BTreeMap<String, Vec<Uid>> = BTreeMap::new();
        let mut pending_count = 0;
        let mut changed = 0;
        let mut stream = answer(
            "UID FETCH CHANGEDSINCE",
            self.session.uid_fetch(
                format!("1:{}", below.0 - 1),
                format!("(UID FLAGS RFC822.SIZE INTERNALDATE) (CHANGEDSINCE {since})"),
            ),
        )
        .await?;
        while let Some(fetch) = next(&mut stream).await? {
            let (Some(uid), Some(size), Some(date)) =
                (fetch.uid.map(Uid), fetch.size, fetch.internal_date())
            else {
                continue;
            };
            let copied = Indexed {
                uid,
                size,
                internal_date: date.timestamp(),
            };
            let Some(entry) = entry_at(entries, uid).filter(|e| same_message(e, &copied)) else {
                continue;
            };
            let flags = flags_of(&fetch);
            if flags != entry.flags {
                pending.entry(flags.to_stored()).or_default().push(uid);
                pending_count += 1;
            }
            if pending_count >= MAX_FLAG_UPDATES {
                changed += store_flags(self.store, mailbox, &mut pending).await?;
                pending_count = 0;
            }
        }
        changed += store_flags(self.store, mailbox, &mut pending).await?;
        Ok(changed)
    }
}

/// Sets the flags `pending` holds (stored form → UIDs) and empties it; returns how many
/// messages changed.
async fn store_flags(
    store: &Store,
    mailbox: MailboxId,
    pending: &mut BTreeMap<String, Vec<Uid>>,
) -> Result<u64> {
    let mut changed = 0;
    for (flags, uids) in std::mem::take(pending) {
        let outcome = store
            .store_flags(
                mailbox,
                uids,
                FlagOperation::Replace,
                Flags::from_stored(&flags),
                None,
            )
            .await?;
        changed += outcome.changed.len() as u64;
    }
    Ok(changed)
}

/// The entry at `uid` of `entries` (in UID order).
fn entry_at(entries: &[MessageEntry], uid: Uid) -> Option<&MessageEntry> {
    entries
        .binary_search_by_key(&uid, |e| e.uid)
        .ok()
        .and_then(|at| entries.get(at))
}

/// Whether the entry here is the source's message: same size and INTERNALDATE.
fn same_message(entry: &MessageEntry, message: &Indexed) -> bool {
    entry.size == message.size && entry.internal_date == message.internal_date
}

/// A logged-in session, and whether CONDSTORE is enabled in it.
async fn open(source: &Source) -> Result<(Session, bool)> {
    let mut session = connect(source).await?;
    let capabilities = answer("CAPABILITY", session.capabilities()).await?;
    // RFC 7162 §3.1: ENABLE CONDSTORE makes every EXAMINE report HIGHESTMODSEQ.
    let condstore = capabilities.has_str("CONDSTORE")
        && capabilities.has_str("ENABLE")
        && answer(
            "ENABLE CONDSTORE",
            session.run_command_and_check_ok("ENABLE CONDSTORE"),
        )
        .await
        .is_ok();
    Ok((session, condstore))
}

/// Connects, protects the connection as `source.security` says, and logs in.
async fn connect(source: &Source) -> Result<Session> {
    let address = (source.host.as_str(), source.port);
    let tcp = match tokio::time::timeout(SERVER_SILENCE_LIMIT, TcpStream::connect(address)).await {
        Ok(tcp) => tcp.with_context(|| format!("connecting to {}:{}", source.host, source.port))?,
        Err(_) => bail!("connecting to {}:{}: timed out", source.host, source.port),
    };
    let mut client = match source.security {
        Security::Tls => {
            let tls = tls_handshake(source, Box::new(tcp)).await?;
            async_imap::Client::new(tls)
        }
        Security::StartTls | Security::Plain => {
            let plain: Box<dyn Connection> = Box::new(tcp);
            async_imap::Client::new(plain)
        }
    };
    greeting(&mut client).await?;
    if source.security == Security::StartTls {
        // RFC 9051 §6.2.1: TLS begins after the tagged OK; nothing is sent before.
        answer(
            "STARTTLS",
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await?;
        let tls = tls_handshake(source, client.into_inner()).await?;
        client = async_imap::Client::new(tls);
    }
    // RFC 9051 §6.2.3 LOGIN; async-imap quotes both strings.
    match tokio::time::timeout(
        SERVER_SILENCE_LIMIT,
        client.login(&source.login, source.password.expose()),
    )
    .await
    {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((error, _))) => Err(error).context(format!("logging in as {}", source.login)),
        Err(_) => bail!("logging in as {}: no answer", source.login),
    }
}

/// Reads the server's greeting (RFC 9051 §7.1): OK or PREAUTH goes on, anything else
/// (BYE) ends the import.
async fn greeting(client: &mut async_imap::Client<Box<dyn Connection>>) -> Result<()> {
    let response = match tokio::time::timeout(SERVER_SILENCE_LIMIT, client.read_response()).await {
        Ok(Some(response)) => response.context("reading the greeting")?,
        Ok(None) => bail!("the server closed the connection before its greeting"),
        Err(_) => bail!("no greeting from the server"),
    };
    match response.parsed() {
        async_imap::imap_proto::Response::Data {
            status: async_imap::imap_proto::Status::Ok | async_imap::imap_proto::Status::PreAuth,
            ..
        } => Ok(()),
        other => bail!("the server does not accept us: {other:?}"),
    }
}

/// The TLS handshake over `stream`, checking the certificate against the system's roots
/// (or `--ca-file`, or not at all with `--insecure`) for `source.host`.
async fn tls_handshake(
    source: &Source,
    stream: Box<dyn Connection>,
) -> Result<Box<dyn Connection>> {
    let trust = match (&source.ca_file, source.insecure) {
        (_, true) => crate::tls::ClientTrust::Anything,
        (Some(path), false) => crate::tls::ClientTrust::CaFile(path),
        (None, false) => crate::tls::ClientTrust::System,
    };
    let config = crate::tls::client_config(trust).context("TLS")?;
    let name = rustls::pki_types::ServerName::try_from(source.host.clone())
        .with_context(|| format!("{} is not a host name", source.host))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(SERVER_SILENCE_LIMIT, connector.connect(name, stream)).await {
        Ok(tls) => Ok(Box::new(tls.with_context(|| {
            format!("TLS with {}:{}", source.host, source.port)
        })?)),
        Err(_) => bail!("TLS with {}:{}: timed out", source.host, source.port),
    }
}

/// The mailboxes LIST shows (or, `subscribed`, LSUB: RFC 3501 §6.3.9), with their
/// names here; mailboxes that cannot be selected (RFC 9051 §7.3.1 \Noselect,
/// \NonExistent) are left out of LIST's.
async fn list(session: &mut Session, subscribed: bool) -> Result<Vec<SourceMailbox>> {
    if subscribed {
        let mut stream = answer("LSUB", session.lsub(Some(""), Some("*"))).await?;
        names(&mut stream, true).await
    } else {
        let mut stream = answer("LIST", session.list(Some(""), Some("*"))).await?;
        names(&mut stream, false).await
    }
}

/// The names a LIST or LSUB answers, all of them or (`all` false) the selectable ones.
async fn names(
    stream: &mut (impl Stream<Item = async_imap::error::Result<Name>> + Unpin),
    all: bool,
) -> Result<Vec<SourceMailbox>> {
    let mut mailboxes = Vec::new();
    while let Some(name) = next(stream).await? {
        let selectable = !name.attributes().iter().any(|a| match a {
            NameAttribute::NoSelect => true,
            NameAttribute::Extension(e) => e.eq_ignore_ascii_case("\\NonExistent"),
            _ => false,
        });
        if all || selectable {
            mailboxes.push(source_mailbox(name.name(), name.delimiter()));
        }
    }
    Ok(mailboxes)
}

/// The name here of a source mailbox: levels split at the source's delimiter, each
/// decoded from modified UTF-7 (kept as sent where it is not), joined with `/`; a `/`
/// within a level becomes `_`.
fn source_mailbox(wire: &str, delimiter: Option<&str>) -> SourceMailbox {
    let levels: Vec<&str> = match delimiter {
        Some(delimiter) if !delimiter.is_empty() => wire.split(delimiter).collect(),
        _ => vec![wire],
    };
    let mut renamed = false;
    let name = levels
        .iter()
        .map(|level| {
            let decoded = mutf7::decode(level).unwrap_or_else(|| (*level).to_owned());
            renamed |= decoded.contains('/');
            decoded.replace('/', "_")
        })
        .collect::<Vec<_>>()
        .join("/");
    SourceMailbox {
        wire: wire.to_owned(),
        name,
        renamed,
    }
}

/// EXAMINE (RFC 9051 §6.3.3): the mailbox read-only, nothing changes on the source.
async fn examine(session: &mut Session, wire: &str) -> Result<Examined> {
    let mailbox = answer("EXAMINE", session.examine(wire)).await?;
    // RFC 9051 §7.1: UIDVALIDITY is a nz-number.
    let Some(uid_validity) = mailbox.uid_validity.filter(|&v| v != 0).map(UidValidity) else {
        bail!("the server gives no UIDVALIDITY");
    };
    Ok(Examined {
        uid_validity,
        uid_next: mailbox.uid_next.filter(|&n| n != 0).map(Uid),
        highest_modseq: mailbox.highest_modseq,
        exists: mailbox.exists,
    })
}

/// The UIDs from `from` on, with their sizes and INTERNALDATEs, ascending. `from:*`
/// names the last message even when its UID is below `from` (RFC 9051 §6.4.8): such
/// answers are left out.
async fn index(session: &mut Session, from: Uid) -> Result<Vec<Indexed>> {
    let mut index = Vec::new();
    let mut stream = answer(
        "UID FETCH",
        session.uid_fetch(format!("{from}:*"), INDEX_ITEMS),
    )
    .await?;
    while let Some(fetch) = next(&mut stream).await? {
        let (Some(uid), Some(size)) = (fetch.uid.map(Uid), fetch.size) else {
            continue;
        };
        if uid < from {
            continue;
        }
        // RFC 9051 §2.3.3: every message has one; a date that cannot be read is not
        // replaced by a made-up one.
        let Some(date) = fetch.internal_date() else {
            bail!("UID {uid}: the server's INTERNALDATE cannot be read");
        };
        index.push(Indexed {
            uid,
            size,
            internal_date: date.timestamp(),
        });
    }
    index.sort_unstable_by_key(|m| m.uid);
    index.dedup_by_key(|m| m.uid);
    Ok(index)
}

/// The flags of a FETCH response as stored here: the system flags (RFC 9051 §2.3.2) and
/// keywords that are atoms; \Recent (the session's, RFC 3501 §2.3.2) and unknown
/// `\` flags are left out.
fn flags_of(fetch: &Fetch) -> Flags {
    let mut flags = Flags::default();
    for flag in fetch.flags() {
        match flag {
            Flag::Seen => flags.insert("\\Seen"),
            Flag::Answered => flags.insert("\\Answered"),
            Flag::Flagged => flags.insert("\\Flagged"),
            Flag::Deleted => flags.insert("\\Deleted"),
            Flag::Draft => flags.insert("\\Draft"),
            Flag::Custom(name) => {
                let system = storage::SYSTEM_FLAGS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&name));
                if system || is_keyword(&name) {
                    flags.insert(&name);
                }
            }
            Flag::Recent | Flag::MayCreate => {}
        }
    }
    flags
}

/// Awaits a command's answer, for at most [`SERVER_SILENCE_LIMIT`].
async fn answer<T>(
    what: &str,
    future: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(SERVER_SILENCE_LIMIT, future).await {
        Ok(result) => result.with_context(|| what.to_owned()),
        Err(_) => bail!("{what}: no answer from the server"),
    }
}

/// The next item of a response stream, waiting at most [`SERVER_SILENCE_LIMIT`].
async fn next<T>(
    stream: &mut (impl Stream<Item = async_imap::error::Result<T>> + Unpin),
) -> Result<Option<T>> {
    match tokio::time::timeout(SERVER_SILENCE_LIMIT, stream.next()).await {
        Ok(Some(item)) => Ok(Some(item?)),
        Ok(None) => Ok(None),
        Err(_) => bail!("no answer from the server"),
    }
}

/// The state file for copies from `source` into `account`: one per login, server and
/// account, named by a UUID of the three (RFC 9562 §5.5).
fn state_path(data_dir: &Path, source: &Source, account: AccountId) -> PathBuf {
    let key = format!(
        "imap {} {}:{} into {}",
        source.login,
        source.host.to_ascii_lowercase(),
        source.port,
        account
    );
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes());
    data_dir
        .join(STATE_DIR)
        .join(format!("imap-{}.json", id.simple()))
}

fn read_state(path: &Path) -> Result<SyncState> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {} (delete it to start over)", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_state(path: &Path, state: &SyncState) -> Result<()> {
    super::ensure_dir_for(path)?;
    write_atomically(path, &serde_json::to_vec_pretty(state)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_our_delimiter_and_utf8() {
        let name = |wire, delimiter| source_mailbox(wire, delimiter).name;
        assert_eq!(name("INBOX", Some(".")), "INBOX");
        assert_eq!(name("Work.Projects", Some(".")), "Work/Projects");
        assert_eq!(name("&AMQ-pfel.Q1", Some(".")), "Äpfel/Q1");
        assert_eq!(name("INBOX.Sent", Some(".")), "INBOX/Sent");
        assert_eq!(name("a.b", None), "a.b");
        assert_eq!(name("Work/Projects", Some("/")), "Work/Projects");
        // A `/` inside a level cannot stay: it is the delimiter here.
        let odd = source_mailbox("1/2.x", Some("."));
        assert_eq!((odd.name.as_str(), odd.renamed), ("1_2/x", true));
        // Not modified UTF-7 (a broken server): kept as sent.
        assert_eq!(name("&&", Some(".")), "&&");
    }

    #[test]
    fn the_state_file_is_one_per_login_server_and_account() {
        let source = |login: &str, host: &str| Source {
            host: host.to_owned(),
            port: 993,
            security: Security::Tls,
            login: login.to_owned(),
            password: Secret::new("x"),
            ca_file: None,
            insecure: false,
        };
        let dir = Path::new("/d");
        let a = state_path(dir, &source("alice", "imap.example.org"), AccountId(1));
        assert_eq!(
            a,
            state_path(dir, &source("alice", "IMAP.example.org"), AccountId(1))
        );
        assert_ne!(
            a,
            state_path(dir, &source("bob", "imap.example.org"), AccountId(1))
        );
        assert_ne!(
            a,
            state_path(dir, &source("alice", "imap.example.org"), AccountId(2))
        );
        assert!(a.starts_with("/d/import-state"));
    }
}
