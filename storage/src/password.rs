//! Password hashing with argon2id (RFC 9106), PHC strings in the database, on a pool of
//! threads of its own.
//!
//! Each hash costs 19 MiB and tens of milliseconds of a core. Run on tokio's blocking pool
//! (up to 512 threads), a burst of logins hashed hundreds at once, and every thread's
//! allocator arena kept its 19 MiB after the burst (4,000 logins, 16 at a time: 2 GB).
//! Here as many threads as the machine has cores do the work, each with one block buffer
//! that it reuses, and at most [`QUEUED_PER_THREAD`] jobs per thread wait: a burst beyond
//! that is told "busy" at once (a temporary failure) instead of queueing without bound.

use crate::error::{Result, StoreError};
use crate::types::Secret;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::Rng;
use rand::rngs::OsRng;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

/// Jobs waiting per hashing thread before new ones are refused: a login waits at most
/// this many hashes (well under a second), and the queue's memory is a few KB.
const QUEUED_PER_THREAD: usize = 32;

/// Hashes a password with argon2id and the crate's default cost (19 MiB, 2 passes).
pub(crate) async fn hash_password(password: Secret) -> Result<String> {
    match pool().run(Task::Hash(password)).await? {
        Done::Hashed(hash) => hash,
        Done::Verified(_) => Err(StoreError::PasswordHash(
            "wrong answer from the pool".into(),
        )),
    }
}

/// True when `password` matches the PHC string `phc`.
pub(crate) async fn verify_password(password: Secret, phc: String) -> Result<bool> {
    match pool().run(Task::Verify(password, phc)).await? {
        Done::Verified(matches) => Ok(matches),
        Done::Hashed(_) => Err(StoreError::PasswordHash(
            "wrong answer from the pool".into(),
        )),
    }
}

enum Task {
    Hash(Secret),
    Verify(Secret, String),
}

enum Done {
    Hashed(Result<String>),
    Verified(bool),
}

struct Job {
    task: Task,
    reply: tokio::sync::oneshot::Sender<Done>,
}

struct HashPool {
    jobs: SyncSender<Job>,
}

/// The process's one pool, started on first use.
fn pool() -> &'static HashPool {
    static POOL: OnceLock<HashPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let (jobs, queue) = sync_channel(threads * QUEUED_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || work(&queue));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password hashing thread");
            }
        }
        HashPool { jobs }
    })
}

impl HashPool {
    async fn run(&self, task: Task) -> Result<Done> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        match self.jobs.try_send(Job { task, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!(PASSWORD_BUSY).increment(1);
                return Err(StoreError::Busy("password checks"));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(StoreError::PasswordHash("no hashing thread".into()));
            }
        }
        answer
            .await
            .map_err(|_| StoreError::PasswordHash("a hashing thread stopped".into()))
    }
}

/// Password checks refused because the hashing pool's queue was full.
pub const PASSWORD_BUSY: &str = "letterbox_password_checks_refused_total";

/// One hashing thread: takes jobs until the process ends, with one block buffer reused
/// from job to job.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        // The lock is held only while waiting for the next job; a poisoned lock (a
        // thread that panicked while waiting) still hands out jobs.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(Job { task, reply }) = job else {
            return;
        };
        let done = match task {
            Task::Hash(password) => Done::Hashed(hash_now(&password)),
            Task::Verify(password, phc) => Done::Verified(verify_now(&password, &phc, &mut blocks)),
        };
        // The asker may have gone (its connection closed): nothing to tell then.
        let _ = reply.send(done);
    }
}

fn hash_now(password: &Secret) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::PasswordHash(e.to_string()))
}

/// RFC 9106 with the parameters, salt and length of the PHC string, into `blocks`
/// (grown when a hash needs more; never shrunk). False for a PHC string that does not
/// parse as argon2.
fn verify_now(password: &Secret, phc: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    if blocks.len() < params.block_count() {
        blocks.resize(params.block_count(), Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.expose().as_bytes(),
        salt,
        &mut computed,
        &mut blocks[..],
    );
    // Output's equality compares in constant time.
    hashed.is_ok() && Output::new(&computed).is_ok_and(|computed| computed == expected)
}

/// A random password of 20 characters from an alphabet without look-alikes.
pub fn generate_password() -> Secret {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = OsRng;
    let password: String = (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    Secret::new(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let password = Secret::new("correct horse");
        let hash = hash_password(password.clone()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password(password, hash.clone())
                .await
                .expect("checked")
        );
        assert!(
            !verify_password(Secret::new("wrong"), hash.clone())
                .await
                .expect("checked")
        );
        assert!(
            !verify_password(Secret::new("x"), "not a hash".into())
                .await
                .expect("checked")
        );
    }

    #[test]
    fn the_reused_buffer_verifies_hashes_of_other_costs() {
        let password = Secret::new("pw");
        let mut blocks = Vec::new();
        // A cheaper hash than the default, then the default: the buffer grows, and each
        // verifies only with its own password.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).expect("params"),
        )
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .expect("hash")
        .to_string();
        assert!(verify_now(&password, &cheap, &mut blocks));
        assert_eq!(blocks.len(), 1024);
        let default = hash_now(&password).expect("hash");
        assert!(verify_now(&password, &default, &mut blocks));
        assert!(!verify_now(&Secret::new("pW"), &default, &mut blocks));
        assert!(verify_now(&password, &cheap, &mut blocks));
    }
}
