//! The sea-orm implementation of `mas-storage`: PostgreSQL in production, SQLite as the
//! embedded default, one code path for both. Backend-specific code stands only where it
//! must: job claiming (`SKIP LOCKED`), wake-ups (`LISTEN/NOTIFY`) and SQLite's immediate
//! write transactions.

// Row converters take rows by value so they compose with `Option::map` and iterators,
// whether or not a given converter happens to move every field.
#![allow(clippy::needless_pass_by_value)]

mod bulk;
mod conv;
mod entities;
mod gate;
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
    UpstreamOAuthProviderRepository, UpstreamOAuthSessionRepository, UserEmailRepository,
    UserPasswordRepository, UserRecoveryRepository, UserRegistrationRepository, UserRepository,
};
use mas_storage::{
    BoxFuture, BoxRepository, Health, Repository, RepositoryFactory, Revocations, StorageError,
};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseExecutor,
    DatabaseTransaction, DbBackend, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub use self::bulk::SqlBulkWriter;
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
#[derive(Clone)]
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

impl std::fmt::Debug for PoolOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URI may hold the password.
        f.debug_struct("PoolOptions")
            .field("uri", &"[REDACTED]")
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .finish()
    }
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URI is not a URL of a supported database. Its text is left out of the
    /// message, as it may hold a password.
    #[error(
        "the database URI is not a valid `postgresql://` or `sqlite://` URL (in a password, \
         `#`, `?`, `/`, `@` and `%` must be percent-encoded, e.g. `#` as `%23`)"
    )]
    InvalidUri,
    /// The SQLite database file could not be created.
    #[error("cannot create the SQLite database file {}", path.display())]
    CreateFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database refused or could not be reached in time.
    #[error("cannot connect to the database")]
    Connect(#[source] sea_orm::DbErr),
    /// A migration failed; the database is left at the last migration that succeeded.
    #[error("cannot migrate the database")]
    Migrate(#[source] sea_orm::DbErr),
}

/// Opens a connection pool, retrying until `connect_timeout` so a database that starts
/// alongside the service is waited for. SQLite files are created if missing (readable
/// by their owner only) and run in WAL mode with a busy timeout.
///
/// # Errors
/// [`ConnectError::InvalidUri`] when the URI is not a URL of a supported database,
/// [`ConnectError::CreateFile`] when a missing SQLite file cannot be created, and
/// [`ConnectError::Connect`] when the database cannot be reached in time.
#[tracing::instrument(name = "db.connect", skip_all)]
pub async fn connect(options: &PoolOptions) -> Result<DatabaseConnection, ConnectError> {
    // sea-orm quotes the whole URI, password included, in its error for a URI that does
    // not parse or has no driver: that error must never be reached. A fragment never
    // belongs in a PostgreSQL URI; it means an unencoded `#` cut the password short.
    let supported = url::Url::parse(&options.uri).is_ok_and(|url| match url.scheme() {
        "postgres" | "postgresql" => url.fragment().is_none(),
        scheme => scheme == "sqlite",
    });
    if !supported {
        return Err(ConnectError::InvalidUri);
    }
    if let Some(path) = sqlite_file_to_create(&options.uri) {
        create_private_file(&path).map_err(|source| ConnectError::CreateFile { path, source })?;
    }
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

/// The file an SQLite URI names, when it is one that SQLite would create: not in memory,
/// not read-only, not empty, and not an SQLite `file:` URI (whose path SQLite decodes
/// itself).
fn sqlite_file_to_create(uri: &str) -> Option<std::path::PathBuf> {
    use sea_orm::sqlx::sqlite::SqliteConnectOptions;

    if !uri.starts_with("sqlite:") {
        return None;
    }
    // The driver's own parser, so the path is decoded exactly as it will be opened.
    let options: SqliteConnectOptions = uri.parse().ok()?;
    let params = uri.split_once('?').map_or("", |(_, query)| query);
    let special_mode = url::form_urlencoded::parse(params.as_bytes())
        .any(|(key, value)| key == "mode" && (value == "memory" || value == "ro"));
    let path = options.get_filename();
    let name = path.to_string_lossy();
    if special_mode || name.is_empty() || name.starts_with("file:") || name == ":memory:" {
        return None;
    }
    Some(path.to_path_buf())
}

/// Creates `path` empty and readable by its owner only, unless something already
/// exists there (left as it is: a symlink is not followed, an existing database keeps
/// the mode its owner gave it). SQLite would otherwise create it world-readable under
/// the usual umask, and gives its `-wal` and `-shm` files the database file's mode.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // SQLite's own error says this better (e.g. a missing directory).
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
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
    gate: gate::Gate,
}

impl SqlHealth {
    /// Checks the health of `db`.
    #[must_use]
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            gate: gate::Gate::default(),
        }
    }
}

impl Health for SqlHealth {
    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            // Known to be away: answer now; the probe finds out when it is back.
            if self.gate.is_away() {
                return Err(StorageError::Unavailable);
            }
            match tokio::time::timeout(HEALTH_TIMEOUT, self.db.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "database health check failed");
                    if conv::is_connection_lost(&error) {
                        self.gate.mark_away(&self.db);
                    }
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
    gate: gate::Gate,
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
            gate: gate::Gate::default(),
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

    /// A unit of work over `conn`.
    fn unit(&self, conn: Conn) -> SqlRepository {
        SqlRepository {
            conn,
            failed: AtomicBool::new(false),
            pending: PendingRevocations::default(),
            revocations: self.revocations.clone(),
            gate: self.gate.clone(),
            pool: self.db.clone(),
        }
    }

    /// The pool itself, for tests and tools that need raw SQL.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The pool's connections now: (open, idle), for the metrics.
    #[must_use]
    pub fn pool_usage(&self) -> (u32, usize) {
        if self.db.get_database_backend() == DbBackend::Postgres {
            let pool = self.db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        } else {
            let pool = self.db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
    }

    /// A bulk writer on a connection of its own, for moving another server in: one
    /// transaction, committed or rolled back at the end.
    ///
    /// # Errors
    /// When no connection can be had, or SQLite's write lock is held elsewhere.
    pub async fn bulk_writer(&self) -> Result<SqlBulkWriter, StorageError> {
        SqlBulkWriter::begin(&self.db).await
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
        SqlHealth {
            db: self.db.clone(),
            gate: self.gate.clone(),
        }
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
        if self.gate.is_away() {
            return Err(StorageError::Unavailable);
        }
        let txn = match self.db.begin_with_options(write_transaction()).await {
            Ok(txn) => txn,
            Err(error) => {
                if conv::is_connection_lost(&error) {
                    self.gate.mark_away(&self.db);
                }
                return Err(conv::db_err(error));
            }
        };
        Ok(Box::new(self.unit(Conn::Transaction(txn))))
    }

    async fn reader(&self) -> Result<BoxRepository, StorageError> {
        if self.gate.is_away() {
            return Err(StorageError::Unavailable);
        }
        Ok(Box::new(self.unit(Conn::Pool(self.db.clone()))))
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
    gate: gate::Gate,
    pool: DatabaseConnection,
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
            gate: &self.gate,
            pool: &self.pool,
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
    fn user_registration(&mut self) -> Box<dyn UserRegistrationRepository + '_> {
        Box::new(self.repo())
    }
    fn user_recovery(&mut self) -> Box<dyn UserRecoveryRepository + '_> {
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
    fn upstream_session(&mut self) -> Box<dyn UpstreamOAuthSessionRepository + '_> {
        Box::new(self.repo())
    }
    fn job(&mut self) -> Box<dyn JobRepository + '_> {
        Box::new(self.repo())
    }
    fn activity(&mut self) -> Box<dyn mas_storage::repository::ActivityRepository + '_> {
        Box::new(self.repo())
    }
}
