//! Commands (RFC 9051 §6 and the extensions we implement) as
//! [`parse_command`](super::parse_command) gives them to the session, and the limits the
//! parser enforces.

use super::objectid::ObjectId;
use super::sequence::{SequenceSet, SetOrSaved};
use super::tag::Tag;
use std::borrow::Cow;
use storage::{EntryName, FlagOperation, MetadataDepth, Secret};
use time::Date;

/// Nesting of SEARCH keys (`NOT`, `OR`, parentheses): the evaluator and the parser
/// recurse, so a client must not be able to nest without bound.
pub const MAX_SEARCH_DEPTH: usize = 32;
/// Octets of a SEARCH string (BODY, TEXT, HEADER, FROM, ...; also in SORT and THREAD).
/// What clients search for is what a person typed, an address or a Message-ID, and
/// RFC 5322 §2.1.1 keeps each of those within a 998-character line; 1 KiB is above all of
/// them. A needle is compared against every candidate message (case-folded once, found
/// with a linear-time search), so this bounds the per-message work a client can ask for.
pub const MAX_SEARCH_STRING: usize = 1024;
/// RFC 2971 §3.3: at most 30 field-value pairs in ID.
pub const MAX_ID_PAIRS: usize = 30;
/// Entry names in one GETMETADATA or SETMETADATA (RFC 5464): as many as an account may
/// have, more are no use to anyone.
pub const MAX_METADATA_ENTRIES_PER_COMMAND: usize = 1000;
const _: () =
    assert!(MAX_METADATA_ENTRIES_PER_COMMAND as u64 == storage::MAX_METADATA_ENTRIES_PER_ACCOUNT);

/// Event groups in one NOTIFY SET (RFC 5465): one per filter is all a client needs
/// (there are seven filters); a few more for several subtrees.
pub const MAX_NOTIFY_EVENT_GROUPS: usize = 16;
/// Mailbox names in all the `subtree` and `mailboxes` filters of one NOTIFY SET: each
/// is watched, and RFC 5465 §3.1 advises clients "to limit the number of mailboxes used
/// with NOTIFY". Dovecot 2.3 takes 100 per namespace.
pub const MAX_NOTIFY_MAILBOX_NAMES: usize = 100;

#[derive(Debug)]
pub struct Command {
    pub tag: Tag,
    pub body: CommandBody,
}

#[derive(Debug)]
pub enum CommandBody {
    Capability,
    Noop,
    Logout,
    StartTls,
    Login {
        user: String,
        password: Secret,
    },
    Authenticate {
        mechanism: String,
        initial: Option<SaslResponse>,
    },
    Enable(Vec<String>),
    Id(Vec<(String, Option<String>)>),
    Namespace,
    Select {
        mailbox: String,
        read_only: bool,
        /// RFC 7162 §3.1.8 `SELECT mailbox (CONDSTORE)`.
        condstore: bool,
        /// RFC 7162 §3.2.5 `SELECT mailbox (QRESYNC (...))`.
        qresync: Option<QresyncParams>,
    },
    Create {
        mailbox: String,
        special_use: Vec<String>,
    },
    Delete {
        mailbox: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Subscribe {
        mailbox: String,
    },
    Unsubscribe {
        mailbox: String,
    },
    List(ListCommand),
    Lsub {
        reference: String,
        pattern: String,
    },
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    Append(AppendCommand),
    Idle,
    Check,
    Close,
    Unselect,
    Expunge {
        uids: Option<SetOrSaved>,
    },
    Search(SearchCommand),
    /// RFC 5267 §4.3.5 `CANCELUPDATE` with the tags of updating searches.
    CancelUpdate(Vec<String>),
    /// RFC 5256 SORT and UID SORT.
    Sort(SortCommand),
    /// RFC 5256 THREAD and UID THREAD.
    Thread(ThreadCommand),
    Fetch(FetchCommand),
    Store(StoreCommand),
    Copy {
        uid: bool,
        set: SetOrSaved,
        mailbox: String,
        remove: bool,
    },
    /// RFC 4978 `COMPRESS SP algorithm`.
    Compress {
        algorithm: String,
    },
    /// RFC 9208 §4.2.
    GetQuota {
        root: String,
    },
    GetQuotaRoot {
        mailbox: String,
    },
    SetQuota {
        root: String,
        limits: Vec<(String, u64)>,
    },
    /// RFC 5464 §4.2.
    GetMetadata(GetMetadataCommand),
    /// RFC 5464 §4.3: each entry with its new value, `None` (NIL) to remove it.
    SetMetadata {
        target: MetadataTarget,
        entries: Vec<(EntryName, Option<Vec<u8>>)>,
    },
    /// RFC 5465 §3.1: NOTIFY SET, or NOTIFY NONE (`None`).
    Notify(Option<NotifySet>),
    /// RFC 4467 §6.2: each URL rump with its mechanism, as sent.
    GenUrlAuth(Vec<(String, String)>),
    /// RFC 4467 §6.3: the URLs, as sent (an invalid one is answered NIL, not BAD).
    UrlFetch(Vec<String>),
    /// RFC 4467 §6.1: no mailbox resets every key of the user.
    ResetKey {
        mailbox: Option<String>,
        mechanisms: Vec<String>,
    },
}

impl CommandBody {
    /// The command name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Capability => "CAPABILITY",
            CommandBody::Noop => "NOOP",
            CommandBody::Logout => "LOGOUT",
            CommandBody::StartTls => "STARTTLS",
            CommandBody::Login { .. } => "LOGIN",
            CommandBody::Authenticate { .. } => "AUTHENTICATE",
            CommandBody::Enable(_) => "ENABLE",
            CommandBody::Id(_) => "ID",
            CommandBody::Namespace => "NAMESPACE",
            CommandBody::Select {
                read_only: false, ..
            } => "SELECT",
            CommandBody::Select {
                read_only: true, ..
            } => "EXAMINE",
            CommandBody::Create { .. } => "CREATE",
            CommandBody::Delete { .. } => "DELETE",
            CommandBody::Rename { .. } => "RENAME",
            CommandBody::Subscribe { .. } => "SUBSCRIBE",
            CommandBody::Unsubscribe { .. } => "UNSUBSCRIBE",
            CommandBody::List(_) => "LIST",
            CommandBody::Lsub { .. } => "LSUB",
            CommandBody::Status { .. } => "STATUS",
            CommandBody::Append(_) => "APPEND",
            CommandBody::Idle => "IDLE",
            CommandBody::Check => "CHECK",
            CommandBody::Close => "CLOSE",
            CommandBody::Unselect => "UNSELECT",
            CommandBody::Expunge { .. } => "EXPUNGE",
            CommandBody::Search(_) => "SEARCH",
            CommandBody::CancelUpdate(_) => "CANCELUPDATE",
            CommandBody::Sort(_) => "SORT",
            CommandBody::Thread(_) => "THREAD",
            CommandBody::Fetch(_) => "FETCH",
            CommandBody::Store(_) => "STORE",
            CommandBody::Copy { remove: false, .. } => "COPY",
            CommandBody::Copy { remove: true, .. } => "MOVE",
            CommandBody::Compress { .. } => "COMPRESS",
            CommandBody::GetQuota { .. } => "GETQUOTA",
            CommandBody::GetQuotaRoot { .. } => "GETQUOTAROOT",
            CommandBody::SetQuota { .. } => "SETQUOTA",
            CommandBody::GetMetadata(_) => "GETMETADATA",
            CommandBody::SetMetadata { .. } => "SETMETADATA",
            CommandBody::Notify(_) => "NOTIFY",
            CommandBody::GenUrlAuth(_) => "GENURLAUTH",
            CommandBody::UrlFetch(_) => "URLFETCH",
            CommandBody::ResetKey { .. } => "RESETKEY",
        }
    }
}

/// RFC 5465 §3.1 `notify-set`: STATUS, and the event groups in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySet {
    pub status: bool,
    pub groups: Vec<NotifyGroup>,
}

/// RFC 5465 §8 `event-group`.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    pub events: NotifyEvents,
}

/// RFC 5465 §6 `filter-mailboxes`; names as sent (decoded by the session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyFilter {
    /// §6.1.1.
    Selected,
    /// §6.1.2.
    SelectedDelayed,
    /// §6.3.
    Inboxes,
    /// §6.2.
    Personal,
    /// §6.4.
    Subscribed,
    /// §6.5.
    Subtree(Vec<String>),
    /// §6.6.
    Mailboxes(Vec<String>),
}

impl NotifyFilter {
    /// §6.1: a filter for the selected mailbox.
    pub fn is_selected(&self) -> bool {
        matches!(self, NotifyFilter::Selected | NotifyFilter::SelectedDelayed)
    }
}

/// RFC 5465 §8 `events`: those we know (each once), MessageNew's fetch-atts, and the
/// names of those we do not know (refused with NO [BADEVENT], §3.1). `NONE` is empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyEvents {
    pub list: Vec<NotifyEvent>,
    pub fetch: Vec<FetchItem>,
    pub unknown: Vec<String>,
}

/// RFC 5465 §5 event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyEvent {
    MessageNew,
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
    /// An `event-ext` we do not know.
    Other,
}

impl NotifyEvent {
    /// Event names compare without regard to case (RFC 5465 §8).
    pub fn of_name(name: &str) -> NotifyEvent {
        [
            NotifyEvent::MessageNew,
            NotifyEvent::MessageExpunge,
            NotifyEvent::FlagChange,
            NotifyEvent::AnnotationChange,
            NotifyEvent::MailboxName,
            NotifyEvent::SubscriptionChange,
            NotifyEvent::MailboxMetadataChange,
            NotifyEvent::ServerMetadataChange,
        ]
        .into_iter()
        .find(|event| event.name().eq_ignore_ascii_case(name))
        .unwrap_or(NotifyEvent::Other)
    }

    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::MessageNew => "MessageNew",
            NotifyEvent::MessageExpunge => "MessageExpunge",
            NotifyEvent::FlagChange => "FlagChange",
            NotifyEvent::AnnotationChange => "AnnotationChange",
            NotifyEvent::MailboxName => "MailboxName",
            NotifyEvent::SubscriptionChange => "SubscriptionChange",
            NotifyEvent::MailboxMetadataChange => "MailboxMetadataChange",
            NotifyEvent::ServerMetadataChange => "ServerMetadataChange",
            NotifyEvent::Other => "",
        }
    }

    /// RFC 5465 §8 `message-event`.
    pub fn is_message_event(self) -> bool {
        matches!(
            self,
            NotifyEvent::MessageNew
                | NotifyEvent::MessageExpunge
                | NotifyEvent::FlagChange
                | NotifyEvent::AnnotationChange
        )
    }
}

/// A SASL response as sent (base64): it carries a password, so Debug hides it.
pub struct SaslResponse(pub Vec<u8>);

impl std::fmt::Debug for SaslResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaslResponse(***)")
    }
}

/// RFC 7162 §3.2.5: `"QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
/// [SP seq-match-data] ")"`; `seq-match-data = "(" known-sequence-set SP known-uid-set ")"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

#[derive(Debug, Default)]
pub struct ListCommand {
    pub reference: String,
    pub patterns: Vec<String>,
    /// LIST-EXTENDED (RFC 5258) selection options.
    pub select_subscribed: bool,
    pub select_special_use: bool,
    pub recursive_match: bool,
    /// Return options (RFC 5258 §3.2, RFC 6154 §5, RFC 5819).
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusItem>>,
    /// Any extended syntax was used: responses may carry extended data.
    pub extended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    Recent,
    HighestModSeq,
    AppendLimit,
    /// RFC 9208 §4.2: octets (in units of 1024) an EXPUNGE would free.
    DeletedStorage,
    /// RFC 8474 §4.2 `MAILBOXID`.
    MailboxId,
}

/// RFC 5464 §4.2, §4.3: whose annotations a command is about; the mailbox name ""
/// names the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataTarget {
    Server,
    Mailbox(String),
}

/// RFC 5464 §4.2 GETMETADATA.
#[derive(Debug)]
pub struct GetMetadataCommand {
    pub target: MetadataTarget,
    pub entries: Vec<EntryName>,
    /// §4.2.1 `MAXSIZE`: "Only entry values that are less than or equal in octet size to
    /// the specified MAXSIZE limit are returned."
    pub max_size: Option<u32>,
    /// §4.2.2 `DEPTH`.
    pub depth: MetadataDepth,
}

/// APPEND with one message or, RFC 3502 MULTIAPPEND, several.
#[derive(Debug)]
pub struct AppendCommand {
    pub mailbox: String,
    pub messages: Vec<AppendMessage>,
}

#[derive(Debug)]
pub struct AppendMessage {
    pub flags: Vec<String>,
    pub date: Option<i64>,
    pub data: AppendData,
}

/// What one message of an APPEND is made of.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendData {
    /// The message as one literal (or literal8, or RFC 6855's `UTF8 (literal8)`).
    Literal(Vec<u8>),
    /// RFC 4469 §5: `"CATENATE" SP "(" cat-part *(SP cat-part) ")"`, in order.
    Catenate(Vec<CatPart>),
}

/// An IMAP URL (RFC 5092) naming one message or part of it, in the relative form
/// `/mailbox[;UIDVALIDITY=n]/;UID=m[/;SECTION=s][/;PARTIAL=o[.l]]` (RFC 4469 §5 examples).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// The mailbox name, percent-decoded (RFC 5092 §3.3: UTF-8, not modified UTF-7).
    pub mailbox: String,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    /// `isection`, as FETCH BODY[section] takes it; the default is the whole message.
    pub section: Section,
    /// `ipartial = "/;PARTIAL=" number ["." nz-number]`: offset and optional length.
    pub partial: Option<(u64, Option<u64>)>,
}

/// RFC 4469 §5: `cat-part = text-literal / url`.
#[derive(Debug, PartialEq, Eq)]
pub enum CatPart {
    /// `text-literal = "TEXT" SP literal` (or literal8 with BINARY).
    Text(Vec<u8>),
    /// `url = "URL" SP astring`: kept as sent, since a URL that does not resolve is
    /// answered `NO [BADURL url]` (RFC 4469 §6), not BAD.
    Url(String),
}

/// FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.9).
#[derive(Debug)]
pub struct FetchCommand {
    pub uid: bool,
    pub set: SetOrSaved,
    pub items: Vec<FetchItem>,
    /// RFC 7162 §3.1.4 `(CHANGEDSINCE modseq)`.
    pub changed_since: Option<u64>,
    /// RFC 7162 §3.2.6 `(... VANISHED)` of UID FETCH.
    pub vanished: bool,
    /// RFC 9394 §3.3 `(PARTIAL partial-range)` of UID FETCH.
    pub partial: Option<PartialRange>,
}

#[derive(Debug)]
pub struct SearchCommand {
    pub uid: bool,
    /// `RETURN (...)` of ESEARCH (RFC 4731); `Some(empty)` is `RETURN ()`.
    pub returns: Option<Vec<SearchReturn>>,
    pub charset: Option<String>,
    pub key: SearchKey,
}

/// RFC 5256 §3: `sort-key = "ARRIVAL" / "CC" / "DATE" / "FROM" / "SIZE" / "SUBJECT" / "TO"`;
/// RFC 5957 §4: `sort-key =/ "DISPLAYFROM" / "DISPLAYTO"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    /// RFC 5957 §2: the display name of the first From address, else its addr-spec.
    DisplayFrom,
    /// RFC 5957 §2: the display name of the first To address, else its addr-spec.
    DisplayTo,
    From,
    Size,
    Subject,
    To,
}

/// `sort-criterion = ["REVERSE" SP] sort-key`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub key: SortKey,
    pub reverse: bool,
}

#[derive(Debug)]
pub struct SortCommand {
    pub uid: bool,
    /// `RETURN (...)` of ESORT (RFC 5267 §3): answered with ESEARCH; `Some(empty)` is
    /// `RETURN ()`.
    pub returns: Option<Vec<SearchReturn>>,
    pub criteria: Vec<SortCriterion>,
    pub charset: String,
    pub key: SearchKey,
}

/// RFC 5256 §3: `thread-alg = "ORDEREDSUBJECT" / "REFERENCES" / thread-alg-ext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

#[derive(Debug)]
pub struct ThreadCommand {
    pub uid: bool,
    pub algorithm: ThreadAlgorithm,
    pub charset: String,
    pub key: SearchKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
    /// RFC 9394 §3.1 (RFC 5267 §4.4): `PARTIAL partial-range`, a window of the result.
    Partial(PartialRange),
    /// RFC 5267 §4.3 `UPDATE`: keep the result up to date with ADDTO and REMOVEFROM.
    Update,
    /// RFC 5267 §4.2 `CONTEXT`: a hint that the criteria will be used again.
    Context,
}

/// Updating searches (RFC 5267 §4.3) a session may have at once. §4.3.1: "Servers MUST
/// provide at least one updating context per client, and SHOULD provide more"; each one
/// is evaluated again for every message that arrives or changes, and a SORT context keeps
/// the sort keys of its whole result, so a client cannot make a session's every change
/// cost without bound. Ten is what Dovecot allows; past it the search is answered without
/// updates and `* NO [NOUPDATE "tag"]` (§4.3.1).
pub const MAX_UPDATE_CONTEXTS: usize = 10;

/// RFC 9394 §4: `partial-range = partial-range-first / partial-range-last`;
/// `partial-range-first = nz-number ":" nz-number` (the first results, counted from the
/// lowest UID); `partial-range-last = MINUS nz-number ":" MINUS nz-number` (counted from
/// the highest). "A range 500:400 is the same as 400:500": kept with `low <= high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialRange {
    pub low: u32,
    pub high: u32,
    /// The `-` form: positions counted back from the last result (-1 is the last).
    pub from_end: bool,
}

impl PartialRange {
    /// The positions (0-based, ascending) of `len` results that the range names; empty
    /// when it names none. RFC 9394 §3.1: "the server returns the results that are in
    /// the set".
    pub fn window(&self, len: usize) -> std::ops::Range<usize> {
        let low = usize::try_from(self.low).unwrap_or(usize::MAX);
        let high = usize::try_from(self.high).unwrap_or(usize::MAX);
        if self.from_end {
            // -low is at len - low, -high at len - high.
            let end = len.saturating_sub(low.saturating_sub(1));
            let start = len.saturating_sub(high);
            start..end.max(start)
        } else {
            let start = low.saturating_sub(1).min(len);
            start..high.min(len).max(start)
        }
    }
}

impl std::fmt::Display for PartialRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.from_end { "-" } else { "" };
        write!(f, "{sign}{}:{sign}{}", self.low, self.high)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    Flag(&'static str, bool),
    Keyword(String, bool),
    New,
    Old,
    Recent,
    Header(String, String),
    Body(String),
    Text(String),
    Larger(u64),
    Smaller(u64),
    Before(Date),
    On(Date),
    Since(Date),
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Uid(SetOrSaved),
    Seq(SetOrSaved),
    /// RFC 7162 §3.1.5 `MODSEQ [entry-name entry-type] mod-sequence-valzer`: messages
    /// whose modseq is at least this.
    ModSeq(u64),
    /// RFC 5032 `OLDER n` / `YOUNGER n`: internal date more / at most n seconds ago.
    Older(u32),
    Younger(u32),
    /// RFC 8514 §4.3 SAVEDBEFORE, SAVEDON, SAVEDSINCE and SAVEDATESUPPORTED.
    SavedBefore(Date),
    SavedOn(Date),
    SavedSince(Date),
    SaveDateSupported,
    /// RFC 8474 §6 `EMAILID objectid` / `THREADID objectid`.
    EmailId(ObjectId),
    ThreadId(ObjectId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    Flags,
    InternalDate,
    Rfc822Size,
    Envelope,
    /// `BODY` (no extension data) or `BODYSTRUCTURE`.
    BodyStructure {
        extensible: bool,
    },
    Uid,
    /// RFC 7162 §3.1.4.1 `MODSEQ`.
    ModSeq,
    /// RFC 8474 §5.1 `EMAILID`.
    EmailId,
    /// RFC 8474 §5.2 `THREADID`.
    ThreadId,
    /// `RFC822`, `RFC822.HEADER`, `RFC822.TEXT` (RFC 3501 §6.4.5).
    Rfc822(Rfc822Part),
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<(u64, u64)>,
    },
    /// RFC 3516 BINARY[part]<partial> and BINARY.PEEK.
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u64, u64)>,
    },
    BinarySize {
        part: Vec<u32>,
    },
    /// RFC 8970 §3 `PREVIEW` and `PREVIEW (LAZY)`.
    Preview {
        lazy: bool,
    },
    /// RFC 8514 §4.2 `SAVEDATE`.
    SaveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc822Part {
    Full,
    Header,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

#[derive(Debug)]
pub struct StoreCommand {
    pub uid: bool,
    pub set: SetOrSaved,
    pub operation: FlagOperation,
    pub silent: bool,
    pub flags: Vec<String>,
    /// RFC 7162 §3.1.3 `(UNCHANGEDSINCE modseq)`.
    pub unchanged_since: Option<u64>,
}

/// Why a command did not parse; answered with BAD (tagged when the tag was readable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<Tag>,
    pub message: Cow<'static, str>,
}
