//! A minimal OpenID Provider on plain hyper, keeping everything in memory
//! (`mas_oauth_core::memory`). It listens on `LISTEN` (127.0.0.1:8095), has one user,
//! `alice`, whose password is `ALICE_PASSWORD` (required), and one confidential client, which it
//! prints with its secret, redirecting to `REDIRECT_URI`
//! (`http://127.0.0.1:8096/callback`). Nothing survives a restart.
//!
//! `cargo run -p mas-oauth-core --example authorization_server`
#![allow(dead_code)] // The shared server module serves the SQLite example too.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use mas_data_model::{BrowserSession, ClientKind, User};
use mas_oauth_core::memory::{MemoryStore, MemoryUnit};
use mas_storage::{Encrypter, StorageError, SystemClock};

#[path = "support/server.rs"]
pub mod server;

/// The memory store, and the one password hash the example knows.
pub struct Memory {
    store: MemoryStore,
    passwords: Vec<(String, u16, String)>,
    /// When the store was last pruned, in seconds since the epoch.
    pruned_at: AtomicI64,
}

impl server::Backend for Memory {
    type Unit = MemoryUnit;
    type Store = MemoryUnit;

    fn store(unit: &mut MemoryUnit) -> &mut MemoryUnit {
        unit
    }

    async fn begin(&self) -> Result<MemoryUnit, StorageError> {
        // What can no longer be used goes, once a minute at most.
        let now = chrono::Utc::now();
        let last = self.pruned_at.load(Ordering::Relaxed);
        let due = now.timestamp() - last >= 60;
        let swap = |at| {
            self.pruned_at
                .compare_exchange(last, at, Ordering::Relaxed, Ordering::Relaxed)
        };
        if due && swap(now.timestamp()).is_ok() {
            // Kept a day past their use, as the service's cleanup keeps them.
            self.store.prune(now, chrono::Duration::days(1));
        }
        Ok(self.store.begin())
    }

    async fn commit(&self, unit: MemoryUnit) -> Result<(), StorageError> {
        unit.commit();
        Ok(())
    }

    async fn password_of(
        &self,
        _unit: &mut MemoryUnit,
        username: &str,
    ) -> Result<Option<(User, u16, String)>, StorageError> {
        let user = self.store.find_user_by_username(username);
        let hash = self.passwords.iter().find(|(name, ..)| name == username);
        Ok(user
            .zip(hash)
            .map(|(user, (_, v, h))| (user, *v, h.clone())))
    }

    async fn sign_in(
        &self,
        unit: &mut MemoryUnit,
        user: &User,
    ) -> Result<BrowserSession, StorageError> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        Ok(unit.sign_in(&mut rng, &SystemClock, user))
    }
}

/// A provider in memory, with `alice` (password `password`, email
/// `alice@example.com`) and a client with `secret` redirecting to `redirect_uri`;
/// returns it and the client's ID.
///
/// # Errors
/// When the password cannot be hashed, or `redirect_uri` is not a URL.
pub fn provider(
    address: std::net::SocketAddr,
    password: &str,
    secret: &str,
    redirect_uri: &str,
) -> Result<(Arc<server::Provider<Memory>>, ulid::Ulid), server::StartError> {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let store = MemoryStore::new();
    let alice = store.add_user(&mut rng, &SystemClock, "alice");
    store.set_email(&alice, "alice@example.com");
    let passwords = server::password_manager();
    let (version, hash) = passwords.hash(rand::random(), password)?;
    let encrypter = Encrypter::new(&rand::random());
    let redirect_uri = url::Url::parse(redirect_uri)?;
    let params = server::example_client(&encrypter, secret, redirect_uri);
    let client_id = ulid::Ulid::new();
    let now = chrono::Utc::now();
    store.add_client(params.into_client(client_id, ClientKind::Static, now));
    let provider = server::Provider {
        backend: Memory {
            store,
            passwords: vec![("alice".to_owned(), version, hash)],
            pruned_at: AtomicI64::new(0),
        },
        endpoints: server::endpoints_at(address)?,
        keys: server::fresh_keys()?,
        encrypter,
        decoy: server::decoy(&passwords)?,
        passwords,
        policy: mas_oauth_core::policy::Policy::default(),
    };
    Ok((Arc::new(provider), client_id))
}

#[tokio::main]
async fn main() -> Result<(), server::StartError> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let listen = env("LISTEN", "127.0.0.1:8095");
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let Ok(password) = std::env::var("ALICE_PASSWORD") else {
        return Err("set ALICE_PASSWORD, alice's password".into());
    };
    let redirect_uri = env("REDIRECT_URI", "http://127.0.0.1:8096/callback");
    let secret = ulid::Ulid::new().to_string();
    let (provider, client_id) =
        provider(listener.local_addr()?, &password, &secret, &redirect_uri)?;
    println!("issuer {}", provider.endpoints.issuer);
    println!("client_id {client_id} client_secret {secret}");
    Ok(server::serve(listener, provider).await?)
}
