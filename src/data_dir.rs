//! The data directory and the store in it, opened the same way by `serve` and by every
//! admin command: created when missing, and kept private whatever the umask.

use crate::config::Config;
use anyhow::{Context, Result};
use storage::Store;

pub async fn open_store(config: &Config) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    keep_private(&config.data_dir, PRIVATE_DIRECTORY)?;
    let url = config.storage_url();
    let store = Store::open(&url)
        .await
        .with_context(|| format!("opening storage {url}"))?;
    // The database holds every message and every password hash: the owner's alone,
    // whatever the umask. SQLite makes new -wal and -shm files with the database's mode.
    if let Some(file) = storage::sqlite_file(&url) {
        keep_private(&file, PRIVATE_FILE)?;
        // Made by an earlier version with the umask's mode: SQLite keeps them as they are.
        for suffix in ["-wal", "-shm"] {
            let mut companion = file.clone().into_os_string();
            companion.push(suffix);
            let companion = std::path::PathBuf::from(companion);
            if companion.exists() {
                keep_private(&companion, PRIVATE_FILE)?;
            }
        }
    }
    Ok(store)
}

/// Mode of the data directory: mail, password hashes and keys live in it.
const PRIVATE_DIRECTORY: u32 = 0o700;
/// Mode of the SQLite database file.
const PRIVATE_FILE: u32 = 0o600;

/// Takes group and other permissions away from `path` when it has any.
fn keep_private(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("reading the permissions of {}", path.display()))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("making {} private", path.display()))?;
        tracing::info!(path = %path.display(), mode = format!("{mode:o}"), "permissions narrowed");
    }
    Ok(())
}
