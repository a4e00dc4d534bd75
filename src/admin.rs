//! Admin commands. They open the store directly, so they work while the server runs
//! (SQLite WAL: the server's writer and this process take turns on the write lock).

use crate::config::Config;
use crate::data_dir::open_store;
use crate::services::CLIENT_SERVICES;
use anyhow::{Context, Result};
use clap::Subcommand;
use smtp::mailauth::keys::{self, Algorithm};
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use storage::{Domain, QueueId, Secret, Store, UnixTime, generate_password};

#[derive(Subcommand)]
pub enum DomainCommand {
    /// Receive mail for DOMAIN.
    Add {
        domain: String,
    },
    List,
    /// Stop receiving mail for DOMAIN; removes its accounts, aliases and their mail.
    Remove {
        domain: String,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account; prints a generated password unless --password-stdin is given.
    Add {
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Quota in bytes (none by default).
        #[arg(long)]
        quota: Option<i64>,
    },
    /// Set a new password (generated and printed unless --password-stdin).
    Passwd {
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set (in bytes) or lift (`none`) an account's quota; IMAP clients see it with
    /// GETQUOTAROOT (RFC 9208), and mail over it is refused.
    Quota {
        email: String,
        /// Bytes, or `none` for no limit.
        limit: String,
    },
    List,
    /// Remove an account with all its mail.
    Remove {
        email: String,
    },
}

#[derive(Subcommand)]
pub enum AliasCommand {
    /// Deliver mail for ADDRESS (or every address of a domain, as `@domain`) to TARGET.
    Add {
        address: String,
        target: String,
    },
    List,
    Remove {
        address: String,
    },
}

#[derive(Subcommand)]
pub enum SieveCommand {
    /// The account's Sieve scripts; the active one is marked.
    List { email: String },
    /// Store a script (checked first: an error names its line) from FILE, `-` for
    /// standard input; replaces a script of that name.
    Put {
        email: String,
        name: String,
        file: std::path::PathBuf,
        /// Make it the active script too.
        #[arg(long)]
        activate: bool,
    },
    /// Make NAME the script run at delivery; without NAME no script runs.
    Activate { email: String, name: Option<String> },
    /// Print a script.
    Show { email: String, name: String },
    /// Remove a script (not the active one: deactivate it first).
    Remove { email: String, name: String },
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Messages waiting for remote delivery.
    List,
    /// One queued message: envelope, recipients with their DSN requests, last error.
    Show { id: i64 },
    /// Try ID again now (the running server picks it up within its poll interval).
    Retry { id: i64 },
    /// Remove ID from the queue without delivering or bouncing it.
    Drop { id: i64 },
}

#[derive(Subcommand)]
pub enum DkimCommand {
    /// Make a signing key for DOMAIN and print the TXT record to publish. The running
    /// server signs with it from the next message on.
    Generate {
        domain: String,
        /// rsa (2048 bits, accepted everywhere) or ed25519 (RFC 8463).
        #[arg(long, default_value = "rsa")]
        algorithm: Algorithm,
        /// Default: `lb` and today's date (`lb20300102`; `e` appended for ed25519).
        #[arg(long)]
        selector: Option<String>,
    },
    /// Every key, with its DNS record.
    List,
}

fn password(from_stdin: bool) -> Result<(Secret, bool)> {
    if from_stdin {
        Ok((password_from_stdin()?, false))
    } else {
        Ok((generate_password(), true))
    }
}

/// The first line of stdin (`--password-stdin`): a password never goes on a command
/// line, where `ps` shows it to every user.
pub fn password_from_stdin() -> Result<Secret> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading password from stdin")?;
    let line = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!line.is_empty(), "empty password on stdin");
    Ok(Secret::new(line))
}

pub async fn domain(config: &Config, command: DomainCommand) -> Result<()> {
    let store = open_store(config).await?;
    match command {
        DomainCommand::Add { domain } => {
            store.add_domain(&Domain::new(domain.trim())?).await?;
            println!("added domain {domain}");
        }
        DomainCommand::List => {
            for domain in store.list_domains().await? {
                println!("{domain}");
            }
        }
        DomainCommand::Remove { domain } => {
            store.remove_domain(&Domain::new(domain.trim())?).await?;
            println!("removed domain {domain}");
        }
    }
    Ok(())
}

pub async fn user(config: &Config, command: UserCommand) -> Result<()> {
    let store = open_store(config).await?;
    match command {
        UserCommand::Add {
            email,
            password_stdin,
            quota,
        } => {
            let (password, generated) = password(password_stdin)?;
            store.add_account(&email, &password).await?;
            if quota.is_some() {
                store.set_quota(&email, quota).await?;
            }
            println!("added account {email}");
            if generated {
                println!("password: {}", password.expose());
            }
        }
        UserCommand::Passwd {
            email,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            store.set_password(&email, &password).await?;
            println!("password changed for {email}");
            if generated {
                println!("password: {}", password.expose());
            }
        }
        UserCommand::Quota { email, limit } => {
            let quota = if limit.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(
                    limit
                        .parse::<i64>()
                        .ok()
                        .filter(|q| *q >= 0)
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "quota must be a number of bytes or `none`, not {limit:?}"
                            )
                        })?,
                )
            };
            store.set_quota(&email, quota).await?;
            match quota {
                Some(bytes) => println!("quota of {email} set to {bytes} bytes"),
                None => println!("quota of {email} lifted"),
            }
        }
        UserCommand::List => {
            for account in store.list_accounts().await? {
                let quota = account
                    .quota_bytes
                    .map_or("unlimited".to_owned(), |q| format!("{q} bytes"));
                println!(
                    "{}\tused {} bytes\tquota {quota}",
                    account.email, account.used_bytes
                );
            }
        }
        UserCommand::Remove { email } => {
            store.remove_account(&email).await?;
            println!("removed account {email}");
        }
    }
    Ok(())
}

pub async fn sieve(config: &Config, command: SieveCommand) -> Result<()> {
    let store = open_store(config).await?;
    let account = |email: String| {
        let store = store.clone();
        async move {
            store
                .list_accounts()
                .await?
                .into_iter()
                .find(|a| a.email.eq_ignore_ascii_case(&email))
                .map(|a| a.id)
                .ok_or_else(|| anyhow::anyhow!("no account {email}"))
        }
    };
    match command {
        SieveCommand::List { email } => {
            for script in store.sieve_scripts(account(email).await?).await? {
                let mark = if script.active { "\tactive" } else { "" };
                println!("{}{mark}", script.name);
            }
        }
        SieveCommand::Put {
            email,
            name,
            file,
            activate,
        } => {
            let id = account(email.clone()).await?;
            let content = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            filter::compile(&content).map_err(|error| anyhow::anyhow!("script {name}: {error}"))?;
            store.put_sieve_script(id, &name, &content).await?;
            println!("stored script {name} for {email}");
            if activate {
                store.activate_sieve_script(id, Some(&name)).await?;
                println!("script {name} is active");
            }
        }
        SieveCommand::Activate { email, name } => {
            store
                .activate_sieve_script(account(email).await?, name.as_deref())
                .await?;
            match name {
                Some(name) => println!("script {name} is active"),
                None => println!("no script is active"),
            }
        }
        SieveCommand::Show { email, name } => {
            let script = store
                .sieve_script(account(email).await?, &name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no script {name}"))?;
            print!("{}", script.content);
        }
        SieveCommand::Remove { email, name } => {
            store
                .delete_sieve_script(account(email).await?, &name)
                .await?;
            println!("removed script {name}");
        }
    }
    Ok(())
}

pub async fn alias(config: &Config, command: AliasCommand) -> Result<()> {
    let store = open_store(config).await?;
    match command {
        AliasCommand::Add { address, target } => {
            store.add_alias(&address, &target).await?;
            println!("added alias {address} -> {target}");
        }
        AliasCommand::List => {
            for alias in store.list_aliases().await? {
                println!("{} -> {}", alias.address, alias.target);
            }
        }
        AliasCommand::Remove { address } => {
            store.remove_alias(&address).await?;
            println!("removed alias {address}");
        }
    }
    Ok(())
}

pub async fn queue(config: &Config, command: QueueCommand) -> Result<()> {
    let store = open_store(config).await?;
    match command {
        QueueCommand::List => {
            let items = store.queue_items().await?;
            if items.is_empty() {
                println!("queue is empty");
            }
            let now = UnixTime::now();
            for item in items {
                let recipients: Vec<&str> =
                    item.recipients.iter().map(|r| r.address.as_str()).collect();
                println!(
                    "{}\tfrom <{}>\tto {}\t{} bytes\tattempts {}\tnext in {}s",
                    item.id,
                    item.mail_from,
                    recipients.join(","),
                    item.size,
                    item.attempts,
                    item.next_attempt_at.seconds_since(now).max(0)
                );
            }
        }
        QueueCommand::Show { id } => {
            let item = store
                .queue_item(QueueId(id))
                .await?
                .with_context(|| format!("no queue item {id}"))?;
            let now = UnixTime::now();
            println!("id:           {}", item.id);
            println!("message:      {} ({} bytes)", item.message, item.size);
            println!("from:         <{}>", item.mail_from);
            if let Some(ret) = &item.ret {
                println!("ret:          {ret}");
            }
            if let Some(envid) = &item.envid {
                println!("envid:        {envid}");
            }
            println!(
                "queued:       {}s ago",
                now.seconds_since(item.created_at).max(0)
            );
            println!("attempts:     {}", item.attempts);
            println!(
                "next attempt: in {}s",
                item.next_attempt_at.seconds_since(now).max(0)
            );
            if let Some(error) = &item.last_error {
                println!("last error:   {error}");
            }
            for recipient in &item.recipients {
                let mut line = format!("to:           <{}>", recipient.address);
                if !recipient.notify.is_empty() {
                    line.push_str(&format!(" NOTIFY={}", recipient.notify.join(",")));
                }
                if let Some(orcpt) = &recipient.orcpt {
                    line.push_str(&format!(" ORCPT={orcpt}"));
                }
                println!("{line}");
            }
        }
        QueueCommand::Retry { id } => {
            anyhow::ensure!(
                store.retry_queue_item(QueueId(id), UnixTime::now()).await?,
                "no queue item {id}"
            );
            println!("queue item {id} will be retried now");
        }
        QueueCommand::Drop { id } => {
            anyhow::ensure!(
                store.delete_queue_item(QueueId(id)).await?,
                "no queue item {id}"
            );
            println!("dropped queue item {id}");
        }
    }
    Ok(())
}

/// `letterbox reindex [--user EMAIL]`: the full-text index of SEARCH BODY and TEXT
/// rebuilt from the stored messages (of one account, or of all); prints how many.
pub async fn reindex(config: &Config, user: Option<&str>) -> Result<()> {
    let store = open_store(config).await?;
    let account = match user {
        Some(email) => Some(
            store
                .list_accounts()
                .await?
                .into_iter()
                .find(|a| a.email.eq_ignore_ascii_case(email))
                .map(|a| a.id)
                .ok_or_else(|| anyhow::anyhow!("no account {email}"))?,
        ),
        None => None,
    };
    let indexed = store.reindex(account).await?;
    println!("indexed {indexed} messages");
    Ok(())
}

/// `letterbox migrate --from URL --to URL`: every row of one store copied into another,
/// empty one, ids, UIDs and UIDVALIDITY as they are (see `storage`'s `migrate` module);
/// prints the rows copied per table. URLs are printed without their password.
pub async fn migrate(from: &str, to: &str) -> Result<()> {
    // Opening a SQLite store creates its file: a mistyped --from would copy nothing.
    if let Some(file) = storage::sqlite_file(from) {
        anyhow::ensure!(
            file.is_file(),
            "--from: there is no SQLite store at {}",
            file.display()
        );
    }
    if let Some(parent) = storage::sqlite_file(to)
        .as_deref()
        .and_then(std::path::Path::parent)
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating directory {}", parent.display()))?;
    }
    let source = Store::open(from)
        .await
        .with_context(|| format!("opening --from {}", without_password(from)))?;
    let target = Store::open(to)
        .await
        .with_context(|| format!("opening --to {}", without_password(to)))?;
    let report = target
        .copy_installation_from(&source)
        .await
        .with_context(|| {
            format!(
                "copying {} into {}",
                without_password(from),
                without_password(to)
            )
        })?;
    println!(
        "copied {} into {}",
        without_password(from),
        without_password(to)
    );
    for (table, rows) in &report.tables {
        println!("{table:<18}{rows:>10}");
    }
    Ok(())
}

/// A storage URL fit to print: the password of `scheme://user:password@host` and a
/// `password=` parameter replaced by `***`.
fn without_password(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut printed = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => authority.to_owned(),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        printed.push('?');
        printed.push_str(&pairs.join("&"));
    }
    printed
}

pub fn dkim(config: &Config, command: DkimCommand) -> Result<()> {
    let dir = keys::key_dir(&config.data_dir);
    match command {
        DkimCommand::Generate {
            domain,
            algorithm,
            selector,
        } => {
            let selector = selector.unwrap_or_else(|| keys::default_selector(algorithm));
            let key = keys::generate(&dir, &domain, &selector, algorithm).with_context(|| {
                format!("making a DKIM key for {domain} (another selector: --selector NAME)")
            })?;
            println!(
                "; wrote {} ({}, selector {})",
                key.path.display(),
                algorithm.tag(),
                key.selector
            );
            println!(
                "; publish this TXT record; mail from {} is signed with it from now on",
                key.domain
            );
            println!("{}", dkim_line(&key));
        }
        DkimCommand::List => {
            let (keys, errors) = keys::load_dir(&dir);
            for error in errors {
                eprintln!("letterbox: {error}");
            }
            if keys.is_empty() {
                println!("; no DKIM keys in {}", dir.display());
            }
            for key in keys {
                println!("; {} ({})", key.path.display(), key.algorithm.tag());
                println!("{}", dkim_line(&key));
            }
        }
    }
    Ok(())
}

/// TTL of the records `letterbox dns` prints: an hour, so a mistake is soon undone.
const RECORD_TTL: u32 = 3600;

/// One zone-file line.
fn record(name: &str, kind: &str, data: &str) -> String {
    format!("{name}.\t{RECORD_TTL}\tIN\t{kind}\t{data}")
}

/// TXT data as zone-file character-strings: RFC 1035 §3.3.14 limits each to 255 octets
/// (a 2048-bit key's record is longer; resolvers join the strings, RFC 7208 §3.3,
/// RFC 6376 §3.6.2.2).
fn txt_data(text: &str) -> String {
    text.as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn dkim_line(key: &keys::Key) -> String {
    record(&key.record_name(), "TXT", &txt_data(&key.record()))
}

/// `letterbox dns DOMAIN`: the records a domain needs, in zone-file syntax.
pub async fn dns(config: &Config, domain: &str) -> Result<()> {
    let domain = keys::check_domain(domain).map_err(|e| anyhow::anyhow!(e))?;
    let host = config.hostname.trim_end_matches('.');
    println!("; DNS records for {domain}, served by {host}. Add them at your DNS provider.");
    if !host.contains('.') {
        println!(
            "; note: hostname {host:?} is not a public name; set `hostname` to this server's DNS name"
        );
    }
    let store = open_store(config).await?;
    let local = match Domain::new(&domain) {
        Ok(domain) => store.is_local_domain(&domain).await?,
        Err(_) => false,
    };
    if !local {
        println!("; note: {domain} is not a local domain yet (letterbox domain add {domain})");
    }

    println!();
    println!("; Mail for {domain} goes to this server (RFC 5321 §5.1).");
    println!("{}", record(&domain, "MX", &format!("10 {host}.")));

    println!();
    println!("; SPF (RFC 7208): only this server sends mail for {domain}.");
    println!(
        "{}",
        record(
            &domain,
            "TXT",
            &txt_data(&spf_record(&config.public_addresses))
        )
    );
    if config.public_addresses.is_empty() {
        println!("; (set `public_addresses` to list this server's addresses in it)");
    }

    println!();
    println!("; DKIM (RFC 6376): the keys outgoing mail is signed with.");
    let (keys, errors) = keys::load_dir(&keys::key_dir(&config.data_dir));
    for error in errors {
        eprintln!("letterbox: {error}");
    }
    let mut any = false;
    for key in keys.iter().filter(|k| k.domain == domain) {
        println!("{}", dkim_line(key));
        any = true;
    }
    if !any {
        println!("; none yet: run `letterbox dkim generate {domain}`");
    }

    println!();
    println!("; DMARC (RFC 7489): what receivers do with mail that fails SPF and DKIM.");
    println!(
        "{}",
        record(
            &format!("_dmarc.{domain}"),
            "TXT",
            &txt_data(&format!(
                "v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"
            ))
        )
    );

    println!();
    println!("; Mail client autoconfiguration (RFC 6186; implicit TLS preferred, RFC 8314 §5.1).");
    let defaults = crate::config::Listen::default();
    let mut quickstart = false;
    let offered = crate::services::offered(|listener| {
        let (port, was_default) = srv_port(
            config.listen.addresses(listener),
            defaults.addresses(listener),
            standard_port(listener),
        )?;
        quickstart |= was_default;
        Some(port)
    });
    for service in &CLIENT_SERVICES {
        let data = match offered
            .iter()
            .find(|o| o.service.listener == service.listener)
        {
            Some(o) => format!("{} 1 {} {host}.", service.srv_priority, o.port),
            // RFC 6186 §4: target "." says the service is not offered.
            None => "0 0 0 .".to_owned(),
        };
        println!(
            "{}",
            record(&format!("{}._tcp.{domain}", service.srv), "SRV", &data)
        );
    }
    if quickstart {
        println!("; note: the config listens on quickstart ports; the standard ports are printed.");
        println!(";       Forward them (465, 587, 993, 143 and 25) to letterbox or set `listen`.");
    }

    println!();
    println!("; Thunderbird looks up https://autoconfig.{domain}/mail/config-v1.1.xml, Outlook");
    println!(
        "; https://autodiscover.{domain}/autodiscover/autodiscover.xml: letterbox answers both"
    );
    println!("; on its `listen.http` port (put a TLS proxy for these names in front of it).");
    for name in ["autoconfig", "autodiscover"] {
        println!(
            "{}",
            record(&format!("{name}.{domain}"), "CNAME", &format!("{host}."))
        );
    }
    Ok(())
}

/// RFC 7208 §5: the listed addresses (ip4/ip6), the MX hosts, and nothing else (`-all`).
fn spf_record(addresses: &[IpAddr]) -> String {
    let mut record = String::from("v=spf1");
    for address in addresses {
        match address.to_canonical() {
            IpAddr::V4(v4) => record.push_str(&format!(" ip4:{v4}")),
            IpAddr::V6(v6) => record.push_str(&format!(" ip6:{v6}")),
        }
    }
    record.push_str(" mx -all");
    record
}

/// The port to publish for a listener: its first address's port, or the standard port
/// when that is a quickstart default or picked by the system (0). `None`: not listening.
fn srv_port(
    addresses: &[SocketAddr],
    default: &[SocketAddr],
    standard: u16,
) -> Option<(u16, bool)> {
    let port = addresses.first()?.port();
    let is_default = port == 0 || default.first().is_some_and(|d| d.port() == port);
    Some(if is_default {
        (standard, true)
    } else {
        (port, false)
    })
}

/// The IANA port of a client-facing listener (0 for any other).
fn standard_port(listener: &str) -> u16 {
    CLIENT_SERVICES
        .iter()
        .find(|s| s.listener == listener)
        .map_or(0, |s| s.standard_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_urls_hide_the_password() {
        assert_eq!(
            without_password("postgres://mail:s3cret@db.example:5432/letterbox"),
            "postgres://mail:***@db.example:5432/letterbox"
        );
        assert_eq!(
            without_password("postgres://mail@db/letterbox?sslmode=require&password=s3cret"),
            "postgres://mail@db/letterbox?sslmode=require&password=***"
        );
        assert_eq!(
            without_password("sqlite:///var/lib/letterbox/letterbox.sqlite"),
            "sqlite:///var/lib/letterbox/letterbox.sqlite"
        );
        assert_eq!(without_password("data/mail.sqlite"), "data/mail.sqlite");
    }
}
