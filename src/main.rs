//! letterbox: a mail server you run yourself. SMTP in, IMAP out, one storage layer.
#![forbid(unsafe_code)]

mod acme;
mod admin;
mod config;
mod data_dir;
mod http;
mod serve;
mod services;
mod tls;
mod transfer;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "letterbox",
    version,
    about = "A mail server you run yourself: SMTP, IMAP, one store."
)]
struct Cli {
    /// Configuration file (TOML). Without it, the embedded quickstart defaults apply.
    #[arg(long, global = true, env = "LETTERBOX_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Check the configuration file and print what it means.
    CheckConfig,
    /// Manage the domains this server receives mail for.
    #[command(subcommand)]
    Domain(admin::DomainCommand),
    /// Manage accounts.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage aliases (`name@domain`, or `@domain` for a catch-all).
    #[command(subcommand)]
    Alias(admin::AliasCommand),
    /// Manage the Sieve scripts (RFC 5228) that file incoming mail of an account.
    #[command(subcommand)]
    Sieve(admin::SieveCommand),
    /// Inspect the outbound queue.
    #[command(subcommand)]
    Queue(admin::QueueCommand),
    /// Manage the DKIM keys outgoing mail is signed with.
    #[command(subcommand)]
    Dkim(admin::DkimCommand),
    /// Print every DNS record DOMAIN needs: MX, SPF, DKIM, DMARC, SRV, autoconfig and
    /// autodiscover.
    Dns { domain: String },
    /// Move an account's mail in from a Maildir (Dovecot, Courier), an mbox file or a
    /// live IMAP server, keeping UIDs and UIDVALIDITY where it can (see README "Moving
    /// in and out").
    #[command(subcommand)]
    Import(transfer::ImportCommand),
    /// Write an account's mail out as a Maildir (with Dovecot's UID files) or mbox files.
    #[command(subcommand)]
    Export(transfer::ExportCommand),
    /// Rebuild the full-text index that SEARCH BODY and TEXT use, from the stored
    /// messages: of one account, or of all. Safe while the server runs.
    Reindex {
        /// Only this account's messages.
        #[arg(long)]
        user: Option<String>,
    },
    /// Copy a whole installation into a new, empty store (e.g. SQLite to PostgreSQL),
    /// keeping UIDs and UIDVALIDITY so IMAP clients need not download mail again. Stop
    /// the server first; the configuration file is not read.
    Migrate {
        /// Storage URL to copy from: `sqlite://PATH` (the file must exist) or
        /// `postgres://...`.
        #[arg(long)]
        from: String,
        /// Storage URL to copy into: a new database, or one with no mail or accounts.
        #[arg(long)]
        to: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("letterbox: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// async-imap (the client of `letterbox import imap`) logs every command it sends, a
/// LOGIN with its password among them, at trace level from this module: never shown,
/// whatever LETTERBOX_LOG asks (the more specific directive wins).
const IMAP_CLIENT_WIRE_LOG: &str = "async_imap::imap_stream=off";

fn run(cli: Cli) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LETTERBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
                .add_directive(IMAP_CLIENT_WIRE_LOG.parse()?),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files and journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Both stores are given on the command line: no configuration to read.
    if let Command::Migrate { from, to } = &cli.command {
        return runtime.block_on(admin::migrate(from, to));
    }
    let config = config::Config::load(cli.config.as_deref())?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::run(config).await,
            Command::CheckConfig => {
                println!("configuration is valid");
                println!("hostname = {}", config.hostname);
                println!("storage  = {}", config.storage_url());
                println!("listen   = {:?}", config.listen);
                Ok(())
            }
            Command::Domain(command) => admin::domain(&config, command).await,
            Command::User(command) => admin::user(&config, command).await,
            Command::Alias(command) => admin::alias(&config, command).await,
            Command::Sieve(command) => admin::sieve(&config, command).await,
            Command::Queue(command) => admin::queue(&config, command).await,
            Command::Dkim(command) => admin::dkim(&config, command),
            Command::Dns { domain } => admin::dns(&config, &domain).await,
            Command::Import(command) => transfer::import(&config, command).await,
            Command::Export(command) => transfer::export(&config, command).await,
            Command::Reindex { user } => admin::reindex(&config, user.as_deref()).await,
            // Run above, before the configuration is read.
            Command::Migrate { from, to } => admin::migrate(&from, &to).await,
        }
    })
}
