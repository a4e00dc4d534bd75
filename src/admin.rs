//! Admin commands. They open the store directly, so they work while the server runs
//! (SQLite WAL: the server's writer and this process take turns on the write lock).

use crate::config::Config;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::BufRead;
use storage::{Secret, Store, generate_password};

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
            for item in items {
                let recipients: Vec<&str> =
                    item.recipients.iter().map(|r| r.address.as_str()).collect();
                println!(
                    "{}\tfrom <{}>\tto {}\t{} bytes\tattempts {}",
                    item.id,
                    item.mail_from,
                    recipients.join(","),
                    item.size,
                    item.attempts
                );
            }
        }
    }
    Ok(())
}
