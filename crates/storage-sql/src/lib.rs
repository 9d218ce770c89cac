//! The sea-orm implementation of `mas-storage`: PostgreSQL in production, SQLite as the
//! embedded default, one code path for both.

use std::time::Duration;

use mas_storage::{BoxFuture, Health, StorageError};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// How long `/health` waits for the database before calling it unreachable.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Option<Duration>,
    /// How long a connection lives at most.
    pub max_lifetime: Option<Duration>,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The database refused or could not be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sea_orm::DbErr),
}

/// Opens a connection pool. SQLite files are created if missing and run in WAL mode with
/// a busy timeout, so concurrent requests wait for each other instead of failing.
///
/// # Errors
/// [`ConnectError::Connect`] when the database cannot be reached.
#[tracing::instrument(name = "db.connect", skip_all)]
pub async fn connect(options: &PoolOptions) -> Result<DatabaseConnection, ConnectError> {
    let mut connect = ConnectOptions::new(options.uri.clone());
    connect
        .max_connections(options.max_connections)
        .min_connections(options.min_connections)
        .connect_timeout(options.connect_timeout)
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
    Database::connect(connect)
        .await
        .map_err(ConnectError::Connect)
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

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    #[tokio::test]
    async fn sqlite_file_is_created_in_wal_mode_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mas.db");
        let db = connect(&PoolOptions {
            uri: format!("sqlite://{}", path.display()),
            max_connections: 2,
            min_connections: 0,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: None,
            max_lifetime: None,
        })
        .await
        .unwrap();
        SqlHealth::new(db.clone()).check().await.unwrap();
        assert!(path.exists());
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "PRAGMA journal_mode",
            ))
            .await
            .unwrap()
            .unwrap();
        let mode: String = row.try_get_by_index(0).unwrap();
        assert_eq!(mode, "wal");
    }
}
