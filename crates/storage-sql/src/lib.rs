//! The sea-orm implementation of `mas-storage`: PostgreSQL in production, SQLite as the
//! embedded default, one code path for both. Backend-specific code stands only where it
//! must: job claiming (`SKIP LOCKED`), wake-ups (`LISTEN/NOTIFY`) and SQLite's immediate
//! write transactions.

// Row converters take rows by value so they compose with `Option::map` and iterators,
// whether or not a given converter happens to move every field.
#![allow(clippy::needless_pass_by_value)]

mod conv;
mod entities;
mod repos;
mod revocations;
mod waker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mas_migrations::{Migrator, MigratorTrait};
use mas_storage::repository::{
    AccessTokenRepository, AuthorizationGrantRepository, BrowserSessionRepository,
    ClientRepository, CompatAccessTokenRepository, CompatRefreshTokenRepository,
    CompatSessionRepository, CompatSsoLoginRepository, DeviceCodeGrantRepository, JobRepository,
    PersonalAccessTokenRepository, PersonalSessionRepository, RefreshTokenRepository,
    RegistrationTokenRepository, SessionRepository, UpstreamOAuthLinkRepository,
    UpstreamOAuthProviderRepository, UserEmailRepository, UserPasswordRepository, UserRepository,
};
use mas_storage::{
    BoxFuture, BoxRepository, Health, Repository, RepositoryFactory, Revocations, StorageError,
};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseExecutor,
    DatabaseTransaction, DbBackend, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub use self::revocations::SQLITE_POLL as REVOCATION_POLL;
pub use self::waker::JobWaker;
use crate::repos::Repo;
use crate::revocations::PendingRevocations;

/// How long `/health` waits for the database before calling it unreachable.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a request waits for a pooled connection before failing with "unavailable":
/// short, so an outage answers 503 at once instead of holding requests.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// The PostgreSQL advisory lock key held while migrating ("mas-migr" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d61_732d_6d69_6772;

/// How long an SQLite writer waits for a lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection pool settings, as plain values taken from the `database` section.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// `postgresql://...` or `sqlite://PATH`. Holds the password: never log it.
    pub uri: String,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long start-up keeps trying to reach the database.
    pub connect_timeout: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Option<Duration>,
    /// How long a connection lives at most.
    pub max_lifetime: Option<Duration>,
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The database refused or could not be reached in time.
    #[error("cannot connect to the database")]
    Connect(#[source] sea_orm::DbErr),
    /// A migration failed; the database is left at the last migration that succeeded.
    #[error("cannot migrate the database")]
    Migrate(#[source] sea_orm::DbErr),
}

/// Opens a connection pool, retrying until `connect_timeout` so a database that starts
/// alongside the service is waited for. SQLite files are created if missing and run in
/// WAL mode with a busy timeout.
///
/// # Errors
/// [`ConnectError::Connect`] when the database cannot be reached in time.
#[tracing::instrument(name = "db.connect", skip_all)]
pub async fn connect(options: &PoolOptions) -> Result<DatabaseConnection, ConnectError> {
    let mut connect = ConnectOptions::new(options.uri.clone());
    connect
        .max_connections(options.max_connections.max(1))
        .min_connections(options.min_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(options.idle_timeout)
        .max_lifetime(options.max_lifetime)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    let deadline = tokio::time::Instant::now() + options.connect_timeout;
    loop {
        match Database::connect(connect.clone()).await {
            Ok(db) => return Ok(db),
            // Only an unreachable database is worth waiting for; a wrong password or a
            // missing database will not fix itself.
            Err(error)
                if conv::is_unavailable(&error) && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(%error, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(ConnectError::Connect(error)),
        }
    }
}

/// Applies every pending migration. Safe to run again: applied ones are skipped.
///
/// # Errors
/// [`ConnectError::Migrate`] when a migration fails.
#[tracing::instrument(name = "db.migrate", skip_all)]
pub async fn migrate(db: &DatabaseConnection) -> Result<(), ConnectError> {
    Migrator::up(db, None).await.map_err(ConnectError::Migrate)
}

/// The migrations not yet applied, by name.
///
/// # Errors
/// [`ConnectError::Migrate`] when the migration table cannot be read.
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<Vec<String>, ConnectError> {
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(ConnectError::Migrate)?;
    Ok(pending.iter().map(|m| m.name().to_owned()).collect())
}

/// [`Health`] of a sea-orm connection pool.
#[derive(Debug, Clone)]
pub struct SqlHealth {
    db: DatabaseConnection,
}

impl SqlHealth {
    /// Checks the health of `db`.
    #[must_use]
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

impl Health for SqlHealth {
    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            match tokio::time::timeout(HEALTH_TIMEOUT, self.db.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "database health check failed");
                    Err(StorageError::Unavailable)
                }
                Err(_) => {
                    tracing::warn!("database health check timed out");
                    Err(StorageError::Unavailable)
                }
            }
        })
    }
}

/// Hands out [`SqlRepository`] units of work over a pool.
#[derive(Debug, Clone)]
pub struct SqlRepositoryFactory {
    db: DatabaseConnection,
    revocations: Revocations,
}

impl SqlRepositoryFactory {
    /// A factory over `db`. Its [`Revocations`] record is not live (caches built on it
    /// keep nothing) until [`Self::follow_revocations`] runs or the caller says this
    /// process is the only one writing.
    #[must_use]
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            revocations: Revocations::new(false),
        }
    }

    /// Hears the revocations every process announces on this database and keeps
    /// [`RepositoryFactory::revocations`] up to date, live while they are heard: `LISTEN`
    /// on PostgreSQL, the log table read every [`REVOCATION_POLL`] on SQLite. Runs
    /// forever; spawn it.
    pub fn follow_revocations(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        revocations::follow(self.db.clone(), self.revocations.clone())
    }

    /// Connects (see [`connect`]) and wraps the pool.
    ///
    /// # Errors
    /// As [`connect`].
    pub async fn connect(options: &PoolOptions) -> Result<Self, ConnectError> {
        connect(options).await.map(Self::new)
    }

    /// The pool itself, for tests and tools that need raw SQL.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Applies pending migrations; returns the names of those applied.
    ///
    /// # Errors
    /// As [`migrate`].
    pub async fn migrate(&self) -> Result<Vec<String>, ConnectError> {
        // Replicas starting together take turns: on PostgreSQL a transaction-scoped
        // advisory lock is held while migrating, and the next holder finds nothing to do.
        // (SQLite is a single node: its write lock is enough.)
        if self.db.get_database_backend() != DbBackend::Postgres {
            let pending = pending_migrations(&self.db).await?;
            migrate(&self.db).await?;
            return Ok(pending);
        }
        // The migrations run inside the locking transaction (PostgreSQL's DDL is
        // transactional), so a pool of one connection is enough and a failed
        // migration leaves nothing half-applied.
        let txn = self.db.begin().await.map_err(ConnectError::Migrate)?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await
            .map_err(ConnectError::Migrate)?;
        let pending: Vec<String> = Migrator::get_pending_migrations(&txn)
            .await
            .map_err(ConnectError::Migrate)?
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        Migrator::up(&txn, None)
            .await
            .map_err(ConnectError::Migrate)?;
        txn.commit().await.map_err(ConnectError::Migrate)?;
        Ok(pending)
    }

    /// The migrations not yet applied.
    ///
    /// # Errors
    /// As [`pending_migrations`].
    pub async fn pending_migrations(&self) -> Result<Vec<String>, ConnectError> {
        pending_migrations(&self.db).await
    }

    /// The health check of this pool.
    #[must_use]
    pub fn health(&self) -> SqlHealth {
        SqlHealth::new(self.db.clone())
    }

    /// A waker for job workers on this database.
    pub async fn job_waker(&self, poll: Duration) -> JobWaker {
        JobWaker::new(&self.db, poll).await
    }

    /// Which backend this is: `"postgres"` or `"sqlite"`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::Sqlite => "sqlite",
            _ => "other",
        }
    }

    /// Closes the pool, waiting for connections in use to come back.
    ///
    /// # Errors
    /// When the pool reports an error while closing.
    pub async fn close(self) -> Result<(), ConnectError> {
        self.db.close().await.map_err(ConnectError::Connect)
    }
}

/// How a unit of work's transaction starts. SQLite: take the write lock at BEGIN. A
/// deferred transaction that reads and then writes fails with `SQLITE_BUSY` when another
/// writer went first; an immediate one waits its turn (busy timeout) and then sees fresh
/// data.
pub(crate) fn write_transaction() -> TransactionOptions {
    TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    }
}

#[async_trait]
impl RepositoryFactory for SqlRepositoryFactory {
    async fn begin(&self) -> Result<BoxRepository, StorageError> {
        let txn = self
            .db
            .begin_with_options(write_transaction())
            .await
            .map_err(conv::db_err)?;
        Ok(Box::new(SqlRepository {
            conn: Conn::Transaction(txn),
            failed: AtomicBool::new(false),
            pending: PendingRevocations::default(),
            revocations: self.revocations.clone(),
        }))
    }

    async fn reader(&self) -> Result<BoxRepository, StorageError> {
        Ok(Box::new(SqlRepository {
            conn: Conn::Pool(self.db.clone()),
            failed: AtomicBool::new(false),
            pending: PendingRevocations::default(),
            revocations: self.revocations.clone(),
        }))
    }

    fn revocations(&self) -> &Revocations {
        &self.revocations
    }
}

enum Conn {
    Transaction(DatabaseTransaction),
    Pool(DatabaseConnection),
}

/// A unit of work over a transaction (or, for readers, the bare pool).
pub struct SqlRepository {
    conn: Conn,
    failed: AtomicBool,
    /// What this unit of work revoked, announced and recorded when it commits.
    pending: PendingRevocations,
    revocations: Revocations,
}

impl SqlRepository {
    fn repo(&self) -> Repo<'_> {
        let conn = match &self.conn {
            Conn::Transaction(txn) => DatabaseExecutor::Transaction(txn),
            Conn::Pool(db) => DatabaseExecutor::Connection(db),
        };
        Repo {
            conn,
            failed: &self.failed,
            pending: &self.pending,
            revocations: &self.revocations,
        }
    }

    /// Which backend this unit of work runs on.
    #[must_use]
    pub fn backend(&self) -> DbBackend {
        match &self.conn {
            Conn::Transaction(txn) => txn.get_database_backend(),
            Conn::Pool(db) => db.get_database_backend(),
        }
    }
}

#[async_trait]
impl Repository for SqlRepository {
    async fn save(self: Box<Self>) -> Result<(), StorageError> {
        let pending = self.pending.take();
        match self.conn {
            // Dropping the transaction rolls it back.
            Conn::Transaction(_) if self.failed.load(Ordering::Relaxed) => {
                Err(StorageError::Aborted)
            }
            Conn::Transaction(txn) => {
                let Some(pending) = pending else {
                    return txn.commit().await.map_err(conv::db_err);
                };
                pending.announce(&txn).await.map_err(conv::db_err)?;
                let committed = txn.commit().await.map_err(conv::db_err);
                // After the commit: a read that starts from now on sees the change. (On a
                // failed commit nothing changed, and forgetting costs only a re-read.)
                pending.apply(&self.revocations);
                committed
            }
            // A reader's statements committed one by one; `Repo::revoked` recorded them.
            Conn::Pool(_) => Ok(()),
        }
    }

    fn user(&mut self) -> Box<dyn UserRepository + '_> {
        Box::new(self.repo())
    }
    fn user_password(&mut self) -> Box<dyn UserPasswordRepository + '_> {
        Box::new(self.repo())
    }
    fn user_email(&mut self) -> Box<dyn UserEmailRepository + '_> {
        Box::new(self.repo())
    }
    fn browser_session(&mut self) -> Box<dyn BrowserSessionRepository + '_> {
        Box::new(self.repo())
    }
    fn registration_token(&mut self) -> Box<dyn RegistrationTokenRepository + '_> {
        Box::new(self.repo())
    }
    fn client(&mut self) -> Box<dyn ClientRepository + '_> {
        Box::new(self.repo())
    }
    fn authorization_grant(&mut self) -> Box<dyn AuthorizationGrantRepository + '_> {
        Box::new(self.repo())
    }
    fn session(&mut self) -> Box<dyn SessionRepository + '_> {
        Box::new(self.repo())
    }
    fn access_token(&mut self) -> Box<dyn AccessTokenRepository + '_> {
        Box::new(self.repo())
    }
    fn refresh_token(&mut self) -> Box<dyn RefreshTokenRepository + '_> {
        Box::new(self.repo())
    }
    fn device_code_grant(&mut self) -> Box<dyn DeviceCodeGrantRepository + '_> {
        Box::new(self.repo())
    }
    fn compat_session(&mut self) -> Box<dyn CompatSessionRepository + '_> {
        Box::new(self.repo())
    }
    fn compat_access_token(&mut self) -> Box<dyn CompatAccessTokenRepository + '_> {
        Box::new(self.repo())
    }
    fn compat_refresh_token(&mut self) -> Box<dyn CompatRefreshTokenRepository + '_> {
        Box::new(self.repo())
    }
    fn compat_sso_login(&mut self) -> Box<dyn CompatSsoLoginRepository + '_> {
        Box::new(self.repo())
    }
    fn personal_session(&mut self) -> Box<dyn PersonalSessionRepository + '_> {
        Box::new(self.repo())
    }
    fn personal_access_token(&mut self) -> Box<dyn PersonalAccessTokenRepository + '_> {
        Box::new(self.repo())
    }
    fn upstream_provider(&mut self) -> Box<dyn UpstreamOAuthProviderRepository + '_> {
        Box::new(self.repo())
    }
    fn upstream_link(&mut self) -> Box<dyn UpstreamOAuthLinkRepository + '_> {
        Box::new(self.repo())
    }
    fn job(&mut self) -> Box<dyn JobRepository + '_> {
        Box::new(self.repo())
    }
}
