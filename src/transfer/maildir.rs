//! Maildir++ in and out, as Dovecot and Courier lay it out: INBOX in the root's `cur/`
//! and `new/`, every other mailbox in a `.Name` directory with its hierarchy levels
//! joined by `.` and written in modified UTF-7 (RFC 3501 §5.1.3), the flags after `:2,`
//! in each file name (<https://cr.yp.to/proto/maildir.html>: D draft, F flagged, P
//! passed, R replied, S seen, T trashed; Dovecot adds `a`–`z` for the keywords listed
//! in the folder's `dovecot-keywords`), a file's modification time as its INTERNALDATE
//! (Dovecot sets it so), and Dovecot's `dovecot-uidlist` with the UIDVALIDITY, the next
//! UID and the UID of each file (`3 V<uidvalidity> N<nextuid> G<guid>`, then
//! `<uid> [fields] :<file name without :2,…>`).
//!
//! `P` (passed) has no IMAP flag, and Dovecot shows none for it: it is left out.

use super::{
    MailboxImport, already_imported, each_message, ensure_dir, export_plan, is_keyword,
    lf_line_ends, mailbox_named, mtime, progress, read_line_bounded, say, tmp_path,
};
use anyhow::{Context, Result};
use imap::proto::mutf7;
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use storage::{AccountId, Flags, ImportedMessage, MailboxName, Store, Uid, UidValidity};

/// Maildir flag letters and the IMAP system flags they stand for.
const FLAG_LETTERS: &[(char, &str)] = &[
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];
/// Dovecot names keywords in file names by the letters `a`–`z`: 26 per folder at most.
const MAX_KEYWORD_LETTERS: usize = 26;
/// Longest line read from `dovecot-uidlist`, `dovecot-keywords` or `subscriptions`
/// (a file name or a mailbox name with a few fields): anything longer is not theirs.
const MAX_CONTROL_LINE: usize = 64 * 1024;
/// What marks the start of the flags in a file name.
const INFO_SEPARATOR: &str = ":2,";

/// One mailbox directory of the tree.
struct Folder {
    /// The mailbox name here (`/` between levels).
    name: String,
    dir: PathBuf,
}

/// What `dovecot-uidlist` says about a folder.
struct UidList {
    uid_validity: UidValidity,
    /// The next UID Dovecot would give: past every UID it gave out.
    next_uid: Uid,
    /// File name (without `:2,…`) → UID.
    uids: HashMap<String, Uid>,
}

pub async fn import(store: &Store, account: AccountId, root: &Path, limit: usize) -> Result<()> {
    ensure_dir(root)?;
    let folders = folders(root)?;
    let mut files = Vec::with_capacity(folders.len());
    for folder in &folders {
        files.push(message_files(&folder.dir)?);
    }
    let bar = progress(files.iter().map(|f| f.len() as u64).sum(), "messages");
    for (folder, files) in folders.iter().zip(files) {
        bar.set_message(folder.name.clone());
        let line = import_folder(store, account, folder, files, limit, &bar)
            .await
            .with_context(|| format!("importing {}", folder.dir.display()))?;
        say(&bar, &line);
    }
    bar.finish_and_clear();
    let subscriptions = read_subscriptions(&root.join("subscriptions"))?;
    for name in &subscriptions {
        let subscribe = async {
            let name = MailboxName::new(name)?;
            store.set_subscribed(account, &name, true).await
        };
        subscribe
            .await
            .with_context(|| format!("subscribing to {name}"))?;
    }
    println!("{} subscriptions", subscriptions.len());
    Ok(())
}

async fn import_folder(
    store: &Store,
    account: AccountId,
    folder: &Folder,
    mut files: Vec<(String, PathBuf)>,
    limit: usize,
    bar: &indicatif::ProgressBar,
) -> Result<String> {
    let uid_list = read_uid_list(&folder.dir.join("dovecot-uidlist"))?;
    let keywords = read_keywords(&folder.dir.join("dovecot-keywords"))?;
    let mut mailbox = mailbox_named(store, account, &folder.name).await?;
    // Keep the source's UIDs into a mailbox that is empty, or that has its UIDVALIDITY
    // already (an earlier run of this import).
    let keep = match &uid_list {
        Some(list) if mailbox.uid_validity == list.uid_validity => true,
        Some(list) if store.mailbox_status(mailbox.id).await?.messages == 0 => {
            store
                .adopt_uid_validity(mailbox.id, list.uid_validity)
                .await?;
            mailbox = store.mailbox(mailbox.id).await?;
            true
        }
        _ => false,
    };
    let uid_of = |name: &str| -> Option<Uid> {
        let list = uid_list.as_ref()?;
        list.uids.get(base_name(name)).copied()
    };
    // Messages with a UID first, in UID order; then the others (Dovecot has not seen
    // them yet) by name, which starts with their delivery time.
    files.sort_by(|a, b| match (uid_of(&a.0), uid_of(&b.0)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    let mut import = MailboxImport::new(store, mailbox.clone()).await?;
    let mut uid_next_raised = false;
    // A UID listed twice (a damaged list) is kept for its first file only.
    let mut last_uid = Uid(0);
    for (name, path) in &files {
        bar.inc(1);
        let uid = uid_of(name).filter(|&uid| keep && uid > last_uid);
        if let Some(uid) = uid {
            last_uid = uid;
        }
        if uid.is_none() && keep && !uid_next_raised {
            raise_uid_next(&mut import, uid_list.as_ref()).await?;
            uid_next_raised = true;
        }
        if let Some(uid) = uid
            && already_imported(&mailbox, uid)
        {
            import.skipped += 1;
            continue;
        }
        let Some(message) = read_message(path, name, &keywords, limit)? else {
            import.too_large += 1;
            continue;
        };
        match uid {
            Some(uid) => {
                import
                    .add(ImportedMessage {
                        uid: Some(uid),
                        ..message
                    })
                    .await?
            }
            None => {
                import.add_unless_present(message).await?;
            }
        }
    }
    if keep && !uid_next_raised {
        raise_uid_next(&mut import, uid_list.as_ref()).await?;
    }
    let how = match (&uid_list, keep) {
        (Some(list), true) => format!("UIDVALIDITY {} and UIDs kept", list.uid_validity),
        (Some(_), false) => "new UIDs: the mailbox held other mail; IMAP clients will \
                             download it again"
            .to_owned(),
        (None, _) => "new UIDs: no dovecot-uidlist".to_owned(),
    };
    import.finish(&how).await
}

/// Writes what is batched, then moves UIDNEXT to the source's next UID, so that no UID
/// the source gave out (to a message expunged there since) is given again.
async fn raise_uid_next(import: &mut MailboxImport<'_>, list: Option<&UidList>) -> Result<()> {
    import.flush().await?;
    if let Some(list) = list {
        import
            .store
            .raise_uid_next(import.mailbox.id, list.next_uid)
            .await?;
    }
    Ok(())
}

/// A message file with the flags of its name and its modification time; `None` when
/// it is larger than `limit`.
fn read_message(
    path: &Path,
    name: &str,
    keywords: &[String],
    limit: usize,
) -> Result<Option<ImportedMessage>> {
    let metadata = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if metadata.len() > limit as u64 {
        return Ok(None);
    }
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(ImportedMessage {
        raw,
        flags: flags_of(name, keywords),
        internal_date: mtime(&metadata),
        uid: None,
    }))
}

/// The flags in a file name (after `:2,`).
fn flags_of(name: &str, keywords: &[String]) -> Flags {
    let mut flags = Flags::default();
    let Some((_, letters)) = name.rsplit_once(INFO_SEPARATOR) else {
        return flags;
    };
    for letter in letters.chars() {
        if let Some((_, flag)) = FLAG_LETTERS.iter().find(|(l, _)| *l == letter) {
            flags.insert(flag);
        } else if letter.is_ascii_lowercase()
            && let Some(keyword) = keywords.get(usize::from(letter as u8 - b'a'))
        {
            flags.insert(keyword);
        }
    }
    flags
}

/// A file name without its `:2,…` part: how `dovecot-uidlist` names the file.
fn base_name(name: &str) -> &str {
    name.split_once(':').map_or(name, |(base, _)| base)
}

/// INBOX (the root) and every `.Folder` directory under it that has a `cur/`.
fn folders(root: &Path) -> Result<Vec<Folder>> {
    let mut folders = vec![Folder {
        name: "INBOX".to_owned(),
        dir: root.to_owned(),
    }];
    let mut others = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("{}", root.display()))? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(encoded) = file_name.to_str().and_then(|n| n.strip_prefix('.')) else {
            continue;
        };
        if encoded.is_empty() || !entry.path().join("cur").is_dir() {
            continue;
        }
        // Maildir++ names are modified UTF-7 (RFC 3501 §5.1.3), levels joined by `.`.
        let name = encoded
            .split('.')
            .map(|level| mutf7::decode(level).unwrap_or_else(|| level.to_owned()))
            .collect::<Vec<_>>()
            .join("/");
        others.push(Folder {
            name,
            dir: entry.path(),
        });
    }
    others.sort_by(|a, b| a.name.cmp(&b.name));
    folders.extend(others);
    Ok(folders)
}

/// The files of a folder's `cur/` and `new/`: (name, path).
fn message_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                files.push((name, entry.path()));
            }
        }
    }
    Ok(files)
}

/// The lines of a small control file; none when it is missing.
fn control_lines(path: &Path) -> Result<Vec<String>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("{}", path.display())),
    };
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    while read_line_bounded(&mut reader, &mut line, MAX_CONTROL_LINE)? {
        let text = String::from_utf8_lossy(&line);
        lines.push(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    Ok(lines)
}

/// Reads `dovecot-uidlist`, versions 1 (`1 <uidvalidity> <nextuid>`, then
/// `<uid> <name>`) and 2/3 (`3 V<uidvalidity> N<nextuid> …`, then
/// `<uid> [fields] :<name>`).
fn read_uid_list(path: &Path) -> Result<Option<UidList>> {
    let lines = control_lines(path)?;
    let Some((header, records)) = lines.split_first() else {
        return Ok(None);
    };
    let mut fields = header.split_ascii_whitespace();
    let version = fields.next().unwrap_or_default();
    let (mut validity, mut next) = (0u32, 1u32);
    if version == "1" {
        validity = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        next = fields.next().and_then(|v| v.parse().ok()).unwrap_or(1);
    } else {
        for field in fields {
            if let Some(v) = field.strip_prefix('V') {
                validity = v.parse().unwrap_or(0);
            } else if let Some(n) = field.strip_prefix('N') {
                next = n.parse().unwrap_or(1);
            }
        }
    }
    if validity == 0 {
        return Ok(None);
    }
    let mut uids = HashMap::new();
    let mut last = 0u32;
    for record in records {
        let Some((uid, rest)) = record.split_once(' ') else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        if uid == 0 || uid == u32::MAX {
            continue;
        }
        let name = if version == "1" {
            rest.trim()
        } else {
            // Extension fields come before ` :`; a line without fields starts with `:`.
            match rest.strip_prefix(':') {
                Some(name) => name,
                None => match rest.split_once(" :") {
                    Some((_, name)) => name,
                    None => continue,
                },
            }
        };
        last = last.max(uid);
        uids.insert(base_name(name).to_owned(), Uid(uid));
    }
    // Dovecot appends records without rewriting the header: the next UID is past both.
    let next_uid = Uid(next.max(last.saturating_add(1)));
    Ok(Some(UidList {
        uid_validity: UidValidity(validity),
        next_uid,
        uids,
    }))
}

/// `dovecot-keywords`: `<index> <keyword>` per line; the index is the letter's place
/// (`a` is 0).
fn read_keywords(path: &Path) -> Result<Vec<String>> {
    let mut keywords = vec![String::new(); MAX_KEYWORD_LETTERS];
    for line in control_lines(path)? {
        let Some((index, keyword)) = line.split_once(' ') else {
            continue;
        };
        let keyword = keyword.trim();
        if let Ok(index) = index.parse::<usize>()
            && let Some(slot) = keywords.get_mut(index)
            && is_keyword(keyword)
        {
            *slot = keyword.to_owned();
        }
    }
    Ok(keywords)
}

/// Dovecot's `subscriptions`: version 2 (`V\t2`, an empty line, then one name per line
/// with its levels separated by tabs) or the older one name per line, levels by `.`.
fn read_subscriptions(path: &Path) -> Result<Vec<String>> {
    let lines = control_lines(path)?;
    let (names, separator) = match lines.first() {
        Some(first) if first.starts_with("V\t") => (lines.get(1..).unwrap_or_default(), '\t'),
        _ => (&lines[..], '.'),
    };
    Ok(names
        .iter()
        .filter(|name| !name.is_empty())
        .map(|name| {
            name.split(separator)
                .map(|level| mutf7::decode(level).unwrap_or_else(|| level.to_owned()))
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect())
}

pub async fn export(store: &Store, account: AccountId, root: &Path) -> Result<()> {
    let (mailboxes, bar) = export_plan(store, account, root).await?;
    for mailbox in &mailboxes {
        bar.set_message(mailbox.name.to_string());
        let line = export_mailbox(store, mailbox, root, &bar)
            .await
            .with_context(|| format!("exporting {}", mailbox.name))?;
        say(&bar, &line);
    }
    bar.finish_and_clear();
    let subscriptions = store.subscriptions(account).await?;
    let mut text = String::from("V\t2\n\n");
    for name in &subscriptions {
        let levels: Vec<String> = name.as_str().split('/').map(mutf7::encode).collect();
        text.push_str(&levels.join("\t"));
        text.push('\n');
    }
    write_atomically(&root.join("subscriptions"), text.as_bytes())?;
    println!("{} subscriptions", subscriptions.len());
    Ok(())
}

async fn export_mailbox(
    store: &Store,
    mailbox: &storage::Mailbox,
    root: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<String> {
    let (dir, renamed) = folder_dir(root, mailbox.name.as_str());
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    if mailbox.name != "INBOX" {
        std::fs::write(dir.join("maildirfolder"), b"")?;
    }
    let entries = store.mailbox_entries(mailbox.id).await?;
    // Keyword letters in the order keywords first appear; past 26 a keyword has none.
    let mut keywords: Vec<String> = Vec::new();
    let mut dropped = HashSet::new();
    for flag in entries.iter().flat_map(|e| e.flags.iter()) {
        if flag.starts_with('\\') || keywords.iter().any(|k| k == flag) {
            continue;
        }
        if keywords.len() < MAX_KEYWORD_LETTERS {
            keywords.push(flag.to_owned());
        } else {
            dropped.insert(flag.to_owned());
        }
    }
    // Files an earlier export wrote: base name → name in cur/.
    let mut written: HashMap<String, String> = HashMap::new();
    for sub in ["cur", "new"] {
        for entry in std::fs::read_dir(dir.join(sub))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            written.insert(base_name(&name).to_owned(), format!("{sub}/{name}"));
        }
    }
    let mut uid_list = format!(
        "3 V{} N{} G{}\n",
        mailbox.uid_validity,
        mailbox.uid_next,
        uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("letterbox mailbox {}", mailbox.id).as_bytes()
        )
        .simple()
    );
    let (mut new, mut kept) = (0u64, 0u64);
    each_message(store, &entries, bar, |entry, raw| {
        let text = lf_line_ends(raw);
        let base = format!(
            "{}.M{}V{}.letterbox,S={},W={}",
            entry.internal_date,
            entry.uid,
            mailbox.uid_validity,
            text.len(),
            raw.len()
        );
        let name = format!("{base}{INFO_SEPARATOR}{}", letters(&entry.flags, &keywords));
        let target = dir.join("cur").join(&name);
        match written.get(&base) {
            Some(old) => {
                if *old != format!("cur/{name}") {
                    std::fs::rename(dir.join(old), &target)?;
                }
                kept += 1;
            }
            None => {
                write_message(&dir, &base, &target, &text, entry.internal_date)?;
                new += 1;
            }
        }
        uid_list.push_str(&format!("{} :{base}\n", entry.uid));
        Ok(())
    })
    .await?;
    write_atomically(&dir.join("dovecot-uidlist"), uid_list.as_bytes())?;
    let keyword_lines: String = keywords
        .iter()
        .enumerate()
        .map(|(index, keyword)| format!("{index} {keyword}\n"))
        .collect();
    write_atomically(&dir.join("dovecot-keywords"), keyword_lines.as_bytes())?;
    let mut line = format!(
        "{}: {new} written, {kept} there already, UIDVALIDITY {}",
        mailbox.name, mailbox.uid_validity
    );
    if renamed {
        line.push_str(", written with `_` for `.` in its name (Maildir++ cannot hold a `.`)");
    }
    if !dropped.is_empty() {
        line.push_str(&format!(
            ", {} keywords past the 26 a Maildir folder can name left out",
            dropped.len()
        ));
    }
    Ok(line)
}

/// A mailbox's directory: the root for INBOX, `.Level1.Level2` for the others (levels
/// in modified UTF-7). `true` when a `.` in a level had to become `_`.
fn folder_dir(root: &Path, name: &str) -> (PathBuf, bool) {
    if name == "INBOX" {
        return (root.to_owned(), false);
    }
    let mut renamed = false;
    let levels: Vec<String> = name
        .split('/')
        .map(|level| {
            renamed |= level.contains('.');
            mutf7::encode(&level.replace('.', "_"))
        })
        .collect();
    (root.join(format!(".{}", levels.join("."))), renamed)
}

/// The flag letters of a file name, in ASCII order as the Maildir spec asks.
fn letters(flags: &Flags, keywords: &[String]) -> String {
    let mut letters: Vec<char> = FLAG_LETTERS
        .iter()
        .filter(|(_, flag)| flags.contains(flag))
        .map(|&(letter, _)| letter)
        .collect();
    for (index, keyword) in keywords.iter().enumerate() {
        if flags.contains(keyword) {
            letters.push(char::from(b'a' + index as u8));
        }
    }
    letters.sort_unstable();
    letters.into_iter().collect()
}

/// Writes a message the Maildir way: into `tmp/`, with its INTERNALDATE as modification
/// time, then renamed into `cur/`, so that a reader never sees half a file.
fn write_message(dir: &Path, base: &str, target: &Path, text: &[u8], date: i64) -> Result<()> {
    let tmp = dir.join("tmp").join(base);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text)?;
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(date.max(0) as u64);
    file.set_modified(time)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, target)?;
    Ok(())
}

/// Writes a control file whole or not at all (a new file renamed over the old).
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_from_letters_and_keywords_by_index() {
        let keywords = vec!["$Label1".to_owned(), "work".to_owned()];
        let flags = flags_of("123.M1P2.host,S=41,W=45:2,FPRSTb", &keywords);
        assert_eq!(
            flags.to_stored(),
            "\\Answered \\Deleted \\Flagged \\Seen work"
        );
        assert!(flags_of("123.M1P2.host", &keywords).is_empty());
        // A letter with no keyword in dovecot-keywords stands for nothing.
        assert!(flags_of("x:2,z", &keywords).is_empty());
        assert_eq!(letters(&flags, &keywords), "FRSTb");
    }

    #[test]
    fn uid_lists_of_both_versions_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dovecot-uidlist");
        std::fs::write(
            &path,
            "3 V1796597803 N3 G89df\n1 :1.M1.vm,S=41,W=45\n4 W23 :4.M4.vm,S=20,W=23\nbad\n",
        )
        .expect("write");
        let list = read_uid_list(&path).expect("read").expect("list");
        assert_eq!(list.uid_validity, UidValidity(1_796_597_803));
        // N3 is stale: Dovecot appended UID 4 without rewriting the header.
        assert_eq!(list.next_uid, Uid(5));
        assert_eq!(list.uids.get("4.M4.vm,S=20,W=23"), Some(&Uid(4)));
        assert_eq!(list.uids.len(), 2);
        std::fs::write(&path, "1 42 10\n3 old.file\n").expect("write");
        let list = read_uid_list(&path).expect("read").expect("list");
        assert_eq!(
            (list.uid_validity, list.next_uid),
            (UidValidity(42), Uid(10))
        );
        assert_eq!(list.uids.get("old.file"), Some(&Uid(3)));
    }

    #[test]
    fn folder_names_are_modified_utf7_joined_by_dots() {
        let root = Path::new("/m");
        assert_eq!(folder_dir(root, "INBOX").0, PathBuf::from("/m"));
        assert_eq!(
            folder_dir(root, "Work/Äpfel").0,
            PathBuf::from("/m/.Work.&AMQ-pfel")
        );
        assert_eq!(folder_dir(root, "v1.2"), (PathBuf::from("/m/.v1_2"), true));
    }
}
