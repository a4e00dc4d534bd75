//! Admin commands. They open the store directly, so they work while the server runs
//! (SQLite WAL: the server's writer and this process take turns on the write lock).

use crate::config::Config;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::BufRead;
use storage::{QueueId, Secret, Store, generate_password};

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

pub async fn open_store(config: &Config) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let url = config.storage_url();
    Store::open(&url)
        .await
        .with_context(|| format!("opening storage {url}"))
}

fn password(from_stdin: bool) -> Result<(Secret, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading password from stdin")?;
        let line = line.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!line.is_empty(), "empty password on stdin");
        Ok((Secret::new(line), false))
    } else {
        Ok((generate_password(), true))
    }
}

pub async fn domain(config: &Config, command: DomainCommand) -> Result<()> {
    let store = open_store(config).await?;
    match command {
        DomainCommand::Add { domain } => {
            store.add_domain(&domain).await?;
            println!("added domain {domain}");
        }
        DomainCommand::List => {
            for domain in store.list_domains().await? {
                println!("{domain}");
            }
        }
        DomainCommand::Remove { domain } => {
            store.remove_domain(&domain).await?;
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
            let now = unix_now();
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
                    (item.next_attempt_at - now).max(0)
                );
            }
        }
        QueueCommand::Show { id } => {
            let item = store
                .queue_item(QueueId(id))
                .await?
                .with_context(|| format!("no queue item {id}"))?;
            let now = unix_now();
            println!("id:           {}", item.id);
            println!("message:      {} ({} bytes)", item.message, item.size);
            println!("from:         <{}>", item.mail_from);
            if let Some(ret) = &item.ret {
                println!("ret:          {ret}");
            }
            if let Some(envid) = &item.envid {
                println!("envid:        {envid}");
            }
            println!("queued:       {}s ago", (now - item.created_at).max(0));
            println!("attempts:     {}", item.attempts);
            println!("next attempt: in {}s", (item.next_attempt_at - now).max(0));
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
                store.retry_queue_item(QueueId(id), unix_now()).await?,
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
