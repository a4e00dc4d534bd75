//! The domains and accounts a test starts from, made through the `Store` API as an
//! administrator would. Shared by the storage suite and benchmarks and the SMTP and IMAP
//! session tests, which include this file with `#[path]` (as they do postgres.rs).
#![allow(dead_code)]

use storage::{AccountId, Domain, Secret, Store};

/// Adds the domain `name`, which must be valid and new.
pub async fn add_domain(store: &Store, name: &str) {
    store
        .add_domain(&Domain::new(name).expect("valid domain"))
        .await
        .expect("add domain");
}

/// Adds the account `email` (its domain added before) with `password`.
pub async fn add_account(store: &Store, email: &str, password: &str) -> AccountId {
    store
        .add_account(email, &Secret::new(password))
        .await
        .expect("add account")
}
