//! Change notifications: what the writer publishes after each commit, in commit order.
//!
//! A session watches the one mailbox it has selected ([`crate::Store::watch_mailbox`]):
//! a commit wakes only the sessions of the mailboxes it changed, not every session of
//! the installation. What a session is woken with is only "something changed here"; it
//! reads what changed with `changes_since`, so a wake-up can never be lost or lag
//! behind (a `watch` channel keeps one version number, not a queue). Everything is also
//! sent on one broadcast channel ([`crate::Store::subscribe`]) for whoever wants the
//! changes themselves (the storage suite).
//!
//! Several nodes (PostgreSQL): after each commit the writer hands the mailboxes it
//! changed to this node's [`Notifier`], which sends them to every listening node as a
//! `NOTIFY` on [`CHANGES_CHANNEL`], in a transaction of its own. While one `NOTIFY` is on
//! its way, what later commits changed is gathered and sent in the next one, so a busy
//! node sends far fewer notifications than it commits. A `NOTIFY` is never sent inside a
//! writer's transaction: PostgreSQL holds one lock for the whole server from the start
//! of the commit of a transaction that notified until its end, fsync included, so every
//! writer of every node would commit one after another (`writer.rs`). A notification
//! is sent after the commit it names, so a node that hears it and reads finds the
//! change. Each node's listener turns the mailboxes changed by other nodes into
//! [`ChangeKind::OtherNode`]; a session reads what changed with `changes_since`.
//!
//! A node listens only while something here wants other nodes' changes: a watch (a
//! session's selected mailbox, an account's list) or a subscriber. A node that only
//! takes mail in (SMTP, no IMAP session) would otherwise be woken by every batch every
//! other node commits, and by its own, for nothing (issue 18: on two nodes taking SMTP
//! load, a tenth of their context switches per message). When another node's
//! notification arrives and nobody here is interested, the listener closes its
//! connection (a node alone hears only its own, and keeps listening); the first
//! watch made after that connects and listens again, and then publishes
//! [`ChangeKind::Resync`], so a session that started watching (and read its mailbox)
//! before the listener listened again rereads and misses nothing committed meanwhile.
//!
//! A notification can go missing: this node's listener lost its connection, a node
//! stopped between a commit and its `NOTIFY`, or a `NOTIFY` failed. Then sessions are
//! told [`ChangeKind::Resync`] and reread their mailbox: a listener that connects again
//! publishes it; a notifier whose send failed sends "every mailbox" (`NODE *`) once it
//! can; and every node sends that when it starts, for what it may not have told before
//! it stopped.

use crate::error::Result;
use crate::types::{AccountId, Flags, MailboxId, ModSeq, Uid};
use sqlx::any::AnyConnectOptions;
use sqlx::postgres::PgListener;
use sqlx::{AnyConnection, Connection, Executor};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// Capacity of the broadcast channel of every change; a subscriber lagging further than
/// this is told how many it missed.
pub const CHANGE_CHANNEL_CAPACITY: usize = 16_384;
/// Watched mailboxes kept before the hub drops those nobody watches any more (then it
/// waits until twice as many are kept): a bound on the map, without a sweep per change.
const WATCHED_MAILBOXES_BEFORE_PRUNE: usize = 1024;

/// The PostgreSQL notification channel the nodes of one database share.
pub(crate) const CHANGES_CHANNEL: &str = "letterbox_changes";

/// PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; a batch naming more
/// mailboxes is sent as several notifications.
const NOTIFY_PAYLOAD_LIMIT: usize = 7_900;

/// The payload word that names every mailbox: each node rereads them all.
const EVERY_MAILBOX: &str = "*";

/// How long the listener (and the notifier) waits before connecting again after its
/// connection failed.
const LISTENER_RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A message was added (delivery, APPEND, COPY, MOVE).
    Appended { uid: Uid, modseq: ModSeq },
    /// A message's flags changed.
    FlagsChanged {
        uid: Uid,
        modseq: ModSeq,
        flags: Flags,
    },
    /// A message was removed.
    Expunged { uid: Uid, modseq: ModSeq },
    /// The mailbox was created, deleted, renamed or (un)subscribed.
    MailboxChanged,
    /// The account's subscription list changed (RFC 9051 §6.3.7, §6.3.8); `mailbox` is
    /// 0, as a subscription names a mailbox that may not exist.
    SubscriptionsChanged,
    /// Another node committed changes to this mailbox: read them with `changes_since`.
    OtherNode,
    /// Changes from other nodes may have been missed (the listener reconnected): every
    /// mailbox may have changed. `account` and `mailbox` are 0.
    Resync,
}

impl Change {
    /// Every session rereads its mailbox (see [`ChangeKind::Resync`]).
    pub(crate) fn resync() -> Change {
        Change {
            account: AccountId(0),
            mailbox: MailboxId(0),
            kind: ChangeKind::Resync,
        }
    }

    /// True when a session showing `mailbox` must reread it.
    pub fn concerns(&self, mailbox: MailboxId) -> bool {
        self.mailbox == mailbox || self.kind == ChangeKind::Resync
    }
}

/// Where committed changes go: the watchers of each changed mailbox, and the broadcast
/// channel of every change. The lock is held only to look up, insert or bump, never
/// across an await.
pub(crate) struct ChangeHub {
    every_change: broadcast::Sender<Change>,
    by_mailbox: Mutex<WatchedMailboxes>,
    /// How many want other nodes' changes now: live watches, plus one for ever once
    /// anyone subscribed (see the module's comment).
    interest: Arc<watch::Sender<usize>>,
}

/// One count of [`ChangeHub::interest`], given back when dropped.
struct Interest(Arc<watch::Sender<usize>>);

impl Interest {
    fn new(count: &Arc<watch::Sender<usize>>) -> Interest {
        count.send_modify(|n| *n += 1);
        Interest(Arc::clone(count))
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[derive(Default)]
struct WatchedMailboxes {
    /// Changes published so far. A watch's value is this count when it was last woken
    /// (or made): it grows with every change to the mailbox, and a watch made anew for a
    /// mailbox never shows a value an earlier watch of it showed before a change
    /// (`shared_changes.rs` relies on both).
    published: u64,
    senders: HashMap<MailboxId, watch::Sender<u64>>,
    prune_at: usize,
    /// Per account: woken when its list of mailboxes or of subscriptions changes (IMAP
    /// NOTIFY, RFC 5465 §5.4, §5.5), not by changes to the messages of a mailbox.
    accounts: HashMap<AccountId, watch::Sender<u64>>,
}

/// Tells a session that its mailbox changed (see [`ChangeHub`]).
pub struct MailboxWatch {
    version: watch::Receiver<u64>,
    /// Keeps this node listening to other nodes while the watch lives.
    _interest: Interest,
}

impl MailboxWatch {
    /// True once if anything changed since the last call (or since the watch began).
    /// Never waits.
    pub fn take_change(&mut self) -> bool {
        let changed = self.version.has_changed().unwrap_or(false);
        if changed {
            self.version.borrow_and_update();
        }
        changed
    }

    /// Waits until something changed (IDLE). Cancel-safe; waits forever once the store
    /// is gone, as nothing will change any more.
    pub async fn changed(&mut self) {
        if self.version.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl ChangeHub {
    pub(crate) fn new() -> Arc<ChangeHub> {
        let (every_change, _) = broadcast::channel(CHANGE_CHANNEL_CAPACITY);
        Arc::new(ChangeHub {
            every_change,
            interest: Arc::new(watch::Sender::new(0)),
            by_mailbox: Mutex::new(WatchedMailboxes {
                published: 0,
                senders: HashMap::new(),
                prune_at: WATCHED_MAILBOXES_BEFORE_PRUNE,
                accounts: HashMap::new(),
            }),
        })
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, WatchedMailboxes> {
        // Poisoned only by a panic while holding it; the map is still valid.
        self.by_mailbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching `mailbox`: changes committed from now on wake the watch.
    pub(crate) fn watch(&self, mailbox: MailboxId) -> MailboxWatch {
        let mut watched = self.watched();
        if !watched.senders.contains_key(&mailbox) && watched.senders.len() >= watched.prune_at {
            watched
                .senders
                .retain(|_, sender| sender.receiver_count() > 0);
            watched.prune_at = (watched.senders.len() * 2).max(WATCHED_MAILBOXES_BEFORE_PRUNE);
        }
        let published = watched.published;
        let sender = watched
            .senders
            .entry(mailbox)
            .or_insert_with(|| watch::channel(published).0);
        MailboxWatch {
            version: sender.subscribe(),
            _interest: Interest::new(&self.interest),
        }
    }

    /// The value of `mailbox`'s watch (see [`WatchedMailboxes::published`]), `None` when
    /// nobody watches it.
    pub(crate) fn version_of(&self, mailbox: MailboxId) -> Option<u64> {
        self.watched()
            .senders
            .get(&mailbox)
            .map(|sender| *sender.borrow())
    }

    /// Starts watching the list of mailboxes and subscriptions of `account`: woken when a
    /// mailbox of it is created, deleted or renamed, when its subscriptions change, and
    /// (PostgreSQL) by any change another node made to it, as those do not say what they
    /// were.
    pub(crate) fn watch_account(&self, account: AccountId) -> MailboxWatch {
        let mut watched = self.watched();
        if !watched.accounts.contains_key(&account)
            && watched.accounts.len() >= WATCHED_MAILBOXES_BEFORE_PRUNE
        {
            watched
                .accounts
                .retain(|_, sender| sender.receiver_count() > 0);
        }
        let sender = watched
            .accounts
            .entry(account)
            .or_insert_with(|| watch::channel(0).0);
        MailboxWatch {
            version: sender.subscribe(),
            _interest: Interest::new(&self.interest),
        }
    }

    /// Every change from now on. A subscriber keeps this node listening to other nodes
    /// for as long as the store lives: a `broadcast::Receiver` says nothing when dropped.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.interest.send_modify(|n| *n += 1);
        self.every_change.subscribe()
    }

    /// True while anything here wants other nodes' changes (see the module's comment).
    fn interested(&self) -> bool {
        *self.interest.borrow() > 0
    }

    /// Publishes one commit's changes, in order: each changed mailbox's watchers are woken
    /// once; [`ChangeKind::Resync`] wakes every watcher. The watches are woken after the
    /// lock is released: waking every IDLE session of a mailbox takes a while (4,000
    /// sessions: milliseconds), and each session woken looks up its watch's version under
    /// this lock at once (`shared_changes.rs`), on the other worker thread, which would
    /// otherwise wait for the last of them to be woken (issue 17).
    pub(crate) fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        let mut wake: Vec<(watch::Sender<u64>, u64)> = Vec::new();
        {
            let mut watched = self.watched();
            for change in changes {
                watched.published += 1;
                let published = watched.published;
                if change.kind == ChangeKind::Resync {
                    wake.extend(
                        watched
                            .senders
                            .values()
                            .chain(watched.accounts.values())
                            .map(|sender| (sender.clone(), published)),
                    );
                } else if matches!(
                    change.kind,
                    ChangeKind::MailboxChanged
                        | ChangeKind::SubscriptionsChanged
                        | ChangeKind::OtherNode
                ) && let Some(sender) = watched.accounts.get(&change.account)
                {
                    wake.push((sender.clone(), published));
                }
                if change.kind != ChangeKind::Resync
                    && let Some(sender) = watched.senders.get(&change.mailbox)
                {
                    if sender.receiver_count() == 0 {
                        watched.senders.remove(&change.mailbox);
                    } else {
                        wake.push((sender.clone(), published));
                    }
                }
                // No subscriber is fine: nobody is watching.
                let _ = self.every_change.send(change);
            }
        }
        for (sender, published) in wake {
            // A watch's value only grows: a later publish (a Resync from the listener
            // task, racing a writer's) may have woken it with a higher one already, and
            // then this one has nothing to add.
            sender.send_if_modified(|version| {
                let newer = published > *version;
                if newer {
                    *version = published;
                }
                newer
            });
        }
    }
}

/// The NOTIFY payloads naming `mailboxes` (account and mailbox ids): `NODE ACCOUNT:MAILBOX
/// ...`, each mailbox once, split to stay under PostgreSQL's payload limit.
fn notify_payloads(node: u64, mailboxes: &BTreeSet<(i64, i64)>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for (account, mailbox) in mailboxes {
        let item = format!(" {account}:{mailbox}");
        if !current.is_empty() && current.len() + item.len() > NOTIFY_PAYLOAD_LIMIT {
            payloads.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current = node.to_string();
        }
        current.push_str(&item);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// The mailboxes a payload from another node names, or a resync when it names every
/// mailbox; nothing for this node's own.
fn changes_from_other_node(payload: &str, this_node: u64) -> Vec<Change> {
    let mut words = payload.split(' ');
    match words.next().and_then(|node| node.parse::<u64>().ok()) {
        Some(node) if node != this_node => {}
        _ => return Vec::new(),
    }
    words
        .filter_map(|word| {
            if word == EVERY_MAILBOX {
                return Some(Change::resync());
            }
            let (account, mailbox) = word.split_once(':')?;
            Some(Change {
                account: AccountId(account.parse().ok()?),
                mailbox: MailboxId(mailbox.parse().ok()?),
                kind: ChangeKind::OtherNode,
            })
        })
        .collect()
}

/// What the writers hand the notifier.
enum Told {
    /// (account, mailbox) pairs a commit changed.
    Mailboxes(Vec<(i64, i64)>),
    /// Something may have committed unheard (a COMMIT whose answer was lost).
    Everything,
}

/// Tells other nodes what this node committed (PostgreSQL; see the module's comment).
/// Cheap to clone; the task ends once every clone is gone, after sending what it holds.
#[derive(Clone)]
pub(crate) struct Notifier(mpsc::UnboundedSender<Told>);

impl Notifier {
    /// Starts the notifier of node `node`; it connects with `connect` when it first has
    /// something to send, which is at once: every mailbox (see the module's comment).
    pub(crate) fn start(connect: AnyConnectOptions, node: u64) -> Notifier {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_notifier(connect, node, receiver));
        Notifier(sender)
    }

    /// After a commit: the mailboxes it changed.
    pub(crate) fn tell(&self, changes: &[Change]) {
        let mailboxes: Vec<(i64, i64)> = changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Resync)
            .map(|c| (c.account.0, c.mailbox.0))
            .collect();
        if !mailboxes.is_empty() {
            // The task ends only once every sender is gone.
            let _ = self.0.send(Told::Mailboxes(mailboxes));
        }
    }

    /// Every node rereads every mailbox.
    pub(crate) fn tell_resync(&self) {
        let _ = self.0.send(Told::Everything);
    }
}

async fn run_notifier(
    connect: AnyConnectOptions,
    node: u64,
    mut receiver: mpsc::UnboundedReceiver<Told>,
) {
    let mut conn: Option<AnyConnection> = None;
    // What is to be sent: every mailbox, or those gathered.
    let mut everything = true;
    let mut mailboxes: BTreeSet<(i64, i64)> = BTreeSet::new();
    loop {
        if !everything && mailboxes.is_empty() {
            match receiver.recv().await {
                Some(told) => gather(told, &mut everything, &mut mailboxes),
                None => break,
            }
        }
        while let Ok(told) = receiver.try_recv() {
            gather(told, &mut everything, &mut mailboxes);
        }
        let payloads = if everything {
            vec![format!("{node} {EVERY_MAILBOX}")]
        } else {
            notify_payloads(node, &mailboxes)
        };
        match send_notifications(&mut conn, &connect, &payloads).await {
            Ok(()) => {
                everything = false;
                mailboxes.clear();
            }
            Err(error) => {
                tracing::warn!(%error, "telling other nodes of changes failed");
                if let Some(broken) = conn.take() {
                    let _ = broken.close_hard().await;
                }
                // Some may have gone out: the next send tells every mailbox instead.
                everything = true;
                mailboxes.clear();
                if receiver.is_closed() && receiver.is_empty() {
                    break;
                }
                tokio::time::sleep(LISTENER_RECONNECT_DELAY).await;
            }
        }
    }
    if let Some(conn) = conn {
        let _ = conn.close().await;
    }
}

fn gather(told: Told, everything: &mut bool, mailboxes: &mut BTreeSet<(i64, i64)>) {
    match told {
        Told::Mailboxes(changed) if !*everything => mailboxes.extend(changed),
        Told::Mailboxes(_) => {}
        Told::Everything => {
            *everything = true;
            mailboxes.clear();
        }
    }
}

/// Sends `payloads` on [`CHANGES_CHANNEL`], each `NOTIFY` in a transaction of its own.
/// Such a transaction writes a commit record to the WAL (PostgreSQL gives it a
/// transaction id), which its COMMIT would wait to see fsynced: one more fsync for each
/// batch of commits, in turn with the writers'. Nothing waits on that durability: the
/// notification names commits that are durable already, and if the server stops before
/// it is on disk, every listener loses its connection and resyncs anyway (see the
/// module's comment). So the notifier's connection commits without waiting for the WAL
/// flush (`synchronous_commit = off`, for this connection only); the writers' commits
/// stay synchronous.
async fn send_notifications(
    conn: &mut Option<AnyConnection>,
    connect: &AnyConnectOptions,
    payloads: &[String],
) -> sqlx::Result<()> {
    let conn = match conn {
        Some(conn) => conn,
        None => {
            let mut new = AnyConnection::connect_with(connect).await?;
            new.execute("SET synchronous_commit = off").await?;
            conn.insert(new)
        }
    };
    for payload in payloads {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A connection listening on [`CHANGES_CHANNEL`].
async fn listener(url: &str) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// Starts this node's listener for other nodes' changes (PostgreSQL). Returns once it
/// listens, so that nothing committed after `Store::open` returns is missed.
pub(crate) async fn listen_to_other_nodes(
    url: &str,
    this_node: u64,
    hub: Weak<ChangeHub>,
) -> Result<()> {
    let first = listener(url).await?;
    let Some(interest) = hub.upgrade().map(|changes| changes.interest.subscribe()) else {
        return Ok(());
    };
    tokio::spawn(run_listener(
        first,
        url.to_owned(),
        this_node,
        hub,
        interest,
    ));
    Ok(())
}

/// The listener's task: ends once the store is gone (no strong reference to the hub
/// left). `listening` is `None` while nobody here is interested (see the module's
/// comment).
async fn run_listener(
    first: PgListener,
    url: String,
    this_node: u64,
    weak_changes: Weak<ChangeHub>,
    mut interest: watch::Receiver<usize>,
) {
    let mut listening = Some(first);
    loop {
        let Some(connection) = listening.as_mut() else {
            // Nobody here wants other nodes' changes: wait until someone does, then
            // listen, and have every session reread what it may have read before.
            if interest.wait_for(|&n| n > 0).await.is_err() {
                return;
            }
            listening = Some(listen_again(&url).await);
            let Some(changes) = weak_changes.upgrade() else {
                return;
            };
            changes.publish([Change::resync()]);
            continue;
        };
        let received = connection.try_recv().await;
        let Some(changes) = weak_changes.upgrade() else {
            return;
        };
        match received {
            Ok(Some(notification)) => {
                let heard = changes_from_other_node(notification.payload(), this_node);
                if heard.is_empty() {
                    // This node's own: nothing to do.
                } else if changes.interested() {
                    changes.publish(heard);
                } else {
                    // Another node's, which concerns nobody here: stop listening; the
                    // next watch made listens anew.
                    listening = None;
                }
            }
            // The connection was lost and sqlx made a new one at once, listening
            // again; what other nodes committed in between went unheard.
            Ok(None) => {
                tracing::warn!("lost the connection listening for other nodes' changes");
                changes.publish([Change::resync()]);
            }
            // The connection failed and could not be made again at once (the server
            // restarts): listen anew, and once listening, have every session reread.
            Err(error) => {
                tracing::warn!(%error, "listening for other nodes' changes failed");
                drop(changes);
                listening = Some(listen_again(&url).await);
                tracing::info!("listening for other nodes' changes again");
                let Some(changes) = weak_changes.upgrade() else {
                    return;
                };
                changes.publish([Change::resync()]);
            }
        }
    }
}

/// A new listening connection, trying until it listens.
async fn listen_again(url: &str) -> PgListener {
    loop {
        match listener(url).await {
            Ok(new) => return new,
            Err(error) => {
                tracing::warn!(%error, "listening for other nodes' changes failed");
                tokio::time::sleep(LISTENER_RECONNECT_DELAY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appended(account: i64, mailbox: i64) -> Change {
        Change {
            account: AccountId(account),
            mailbox: MailboxId(mailbox),
            kind: ChangeKind::Appended {
                uid: Uid(1),
                modseq: ModSeq(1),
            },
        }
    }

    #[test]
    fn a_watch_wakes_for_its_own_mailbox_and_for_a_resync_only() {
        let hub = ChangeHub::new();
        let mut inbox = hub.watch(MailboxId(1));
        let mut other = hub.watch(MailboxId(2));
        assert!(!inbox.take_change() && !other.take_change());
        hub.publish([appended(1, 1), appended(1, 1), appended(1, 3)]);
        assert!(inbox.take_change(), "its own mailbox changed");
        assert!(!inbox.take_change(), "told once for a batch");
        assert!(!other.take_change(), "woken by another mailbox's change");
        hub.publish([Change::resync()]);
        assert!(inbox.take_change() && other.take_change());
        // Mailboxes nobody watches any more are dropped.
        drop(other);
        hub.publish([appended(1, 2)]);
        assert!(!hub.watched().senders.contains_key(&MailboxId(2)));
        for mailbox in 10..(10 + WATCHED_MAILBOXES_BEFORE_PRUNE as i64 * 2) {
            drop(hub.watch(MailboxId(mailbox)));
        }
        assert!(hub.watched().senders.len() <= WATCHED_MAILBOXES_BEFORE_PRUNE + 1);
    }

    #[test]
    fn an_account_watch_wakes_for_its_mailbox_list_only() {
        let hub = ChangeHub::new();
        let mut account = hub.watch_account(AccountId(1));
        let mut other = hub.watch_account(AccountId(2));
        hub.publish([appended(1, 1)]);
        assert!(!account.take_change(), "woken by a new message");
        let listed = |kind| Change {
            account: AccountId(1),
            mailbox: MailboxId(0),
            kind,
        };
        hub.publish([listed(ChangeKind::SubscriptionsChanged)]);
        assert!(account.take_change() && !other.take_change());
        hub.publish([listed(ChangeKind::MailboxChanged)]);
        assert!(account.take_change() && !other.take_change());
        hub.publish([Change::resync()]);
        assert!(account.take_change() && other.take_change());
    }

    #[tokio::test]
    async fn idle_wakes_when_its_mailbox_changes() {
        let hub = ChangeHub::new();
        let mut inbox = hub.watch(MailboxId(1));
        let waiting = tokio::spawn(async move { inbox.changed().await });
        tokio::task::yield_now().await;
        hub.publish([appended(1, 2)]);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "woken by another mailbox");
        hub.publish([appended(1, 1)]);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken in time")
            .expect("task");
    }

    #[test]
    fn payloads_name_each_mailbox_once_and_stay_under_the_limit() {
        let mailboxes: BTreeSet<(i64, i64)> = (0..3000).map(|n| (7, n % 1500)).collect();
        let payloads = notify_payloads(42, &mailboxes);
        assert!(payloads.len() > 1);
        let mut seen = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8000);
            assert!(payload.starts_with("42 "));
            seen.extend(
                changes_from_other_node(payload, 1)
                    .into_iter()
                    .map(|c| c.mailbox.0),
            );
        }
        assert_eq!(seen, (0..1500).collect::<Vec<_>>());
    }

    #[test]
    fn the_notifier_gathers_each_mailbox_once_and_every_mailbox_covers_all() {
        let mut everything = false;
        let mut mailboxes = BTreeSet::new();
        gather(
            Told::Mailboxes(vec![(1, 2), (1, 3)]),
            &mut everything,
            &mut mailboxes,
        );
        gather(
            Told::Mailboxes(vec![(1, 2)]),
            &mut everything,
            &mut mailboxes,
        );
        assert!(!everything);
        assert_eq!(notify_payloads(9, &mailboxes), ["9 1:2 1:3"]);
        gather(Told::Everything, &mut everything, &mut mailboxes);
        gather(
            Told::Mailboxes(vec![(4, 5)]),
            &mut everything,
            &mut mailboxes,
        );
        assert!(everything && mailboxes.is_empty());
    }

    #[test]
    fn a_node_ignores_its_own_payloads_and_garbage() {
        let payload = &notify_payloads(42, &BTreeSet::from([(3, 9)]))[0];
        assert!(changes_from_other_node(payload, 42).is_empty());
        assert_eq!(
            changes_from_other_node(payload, 5),
            vec![Change {
                account: AccountId(3),
                mailbox: MailboxId(9),
                kind: ChangeKind::OtherNode
            }]
        );
        assert_eq!(changes_from_other_node("42 *", 5), vec![Change::resync()]);
        assert!(changes_from_other_node("42 *", 42).is_empty());
        assert!(changes_from_other_node("x 1:2", 5).is_empty());
        assert!(changes_from_other_node("", 5).is_empty());
    }
}
