//! The same minimal OpenID Provider as `authorization_server.rs`, keeping everything in
//! SQLite through `mas-storage-sql` (this service's schema, migrated at start), so
//! sessions and tokens survive a restart. It opens `DATABASE` (`sqlite://example.db`),
//! listens on `LISTEN` (127.0.0.1:8095), and on first start adds `alice` with the
//! password `ALICE_PASSWORD`. Its client is `01JB6EXAMP0000000000000000`, with the
//! secret `CLIENT_SECRET` (printed), redirecting to `REDIRECT_URI`.
//!
//! `cargo run -p mas-oauth-core --example authorization_server_sqlite`
#![allow(dead_code)] // The shared server module serves the in-memory example too.

use std::sync::Arc;

use mas_data_model::{BrowserSession, User};
use mas_storage::repository::BoxRepository;
use mas_storage::{Repository, RepositoryFactory, StorageError, SystemClock};
use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};

#[path = "support/server.rs"]
pub mod server;

/// The example's client, the same at every start.
pub const CLIENT_ID: &str = "01JB6EXAMP0000000000000000";

/// Units of work over a SQLite database.
pub struct Sqlite {
    repos: SqlRepositoryFactory,
}

impl server::Backend for Sqlite {
    type Unit = BoxRepository;
    type Store = dyn Repository;

    fn store(unit: &mut BoxRepository) -> &mut (dyn Repository + 'static) {
        unit.as_mut()
    }

    async fn begin(&self) -> Result<BoxRepository, StorageError> {
        self.repos.begin().await
    }

    async fn commit(&self, unit: BoxRepository) -> Result<(), StorageError> {
        unit.save().await
    }

    async fn password_of(
        &self,
        unit: &mut BoxRepository,
        username: &str,
    ) -> Result<Option<(User, u16, String)>, StorageError> {
        let found = unit.user_password().find_user_with_active(username).await?;
        Ok(found
            .and_then(|(user, password)| password.map(|p| (user, p.version, p.hashed_password))))
    }

    async fn sign_in(
        &self,
        unit: &mut BoxRepository,
        user: &User,
    ) -> Result<BrowserSession, StorageError> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let clock = &SystemClock;
        let browser = unit
            .browser_session()
            .add(&mut rng, clock, user, None)
            .await?;
        let Some(password) = unit.user_password().active(user).await? else {
            return Err(StorageError::Conflict("the password is gone".to_owned()));
        };
        let mut sessions = unit.browser_session();
        sessions
            .authenticate_with_password(&mut rng, clock, &browser, &password)
            .await?;
        Ok(browser)
    }
}

/// A provider over the SQLite database at `uri`, migrated, with `alice` (added with
/// `password` and `alice@example.com` when missing) and [`CLIENT_ID`] (with `secret`,
/// redirecting to `redirect_uri`).
///
/// # Errors
/// When the database cannot be opened or migrated, or `redirect_uri` is not a URL.
pub async fn provider(
    address: std::net::SocketAddr,
    uri: &str,
    password: &str,
    secret: &str,
    redirect_uri: &str,
) -> Result<Arc<server::Provider<Sqlite>>, server::StartError> {
    let options = PoolOptions {
        uri: uri.to_owned(),
        max_connections: 4,
        min_connections: 0,
        connect_timeout: std::time::Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
    };
    let repos = SqlRepositoryFactory::connect(&options).await?;
    repos.migrate().await?;
    let passwords = server::password_manager();
    let encrypter = mas_storage::Encrypter::new(&rand::random());
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let clock = &SystemClock;
    let mut repo = repos.begin().await?;
    if repo.user().find_by_username("alice").await?.is_none() {
        let alice = repo.user().add(&mut rng, clock, "alice").await?;
        let (version, hash) = passwords.hash(rand::random(), password)?;
        let mut passwords_of = repo.user_password();
        passwords_of
            .add(&mut rng, clock, &alice, version, hash, None)
            .await?;
        drop(passwords_of);
        let mut emails = repo.user_email();
        emails
            .add(&mut rng, clock, &alice, "alice@example.com")
            .await?;
    }
    // The secret is encrypted with this run's key, so it is stored again at each start.
    let params = server::example_client(&encrypter, secret, url::Url::parse(redirect_uri)?);
    let client_id = CLIENT_ID.parse()?;
    repo.client()
        .upsert_static(clock, client_id, params)
        .await?;
    repo.save().await?;
    Ok(Arc::new(server::Provider {
        backend: Sqlite { repos },
        endpoints: server::endpoints_at(address)?,
        keys: server::fresh_keys()?,
        encrypter,
        decoy: server::decoy(&passwords)?,
        passwords,
        policy: mas_oauth_core::policy::Policy::default(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), server::StartError> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let listen = env("LISTEN", "127.0.0.1:8095");
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let database = env("DATABASE", "sqlite://example.db");
    let Ok(password) = std::env::var("ALICE_PASSWORD") else {
        return Err("set ALICE_PASSWORD, alice's password (used when alice is added)".into());
    };
    let redirect_uri = env("REDIRECT_URI", "http://127.0.0.1:8096/callback");
    let secret = env("CLIENT_SECRET", &ulid::Ulid::new().to_string());
    let address = listener.local_addr()?;
    let provider = provider(address, &database, &password, &secret, &redirect_uri).await?;
    println!("issuer {}", provider.endpoints.issuer);
    println!("client_id {CLIENT_ID} client_secret {secret}");
    Ok(server::serve(listener, provider).await?)
}
