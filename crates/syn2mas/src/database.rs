//! Synapse's database, read only: PostgreSQL (`psycopg2`) or SQLite (`sqlite3`), as
//! its configuration names it, or a URI given instead.

use std::path::PathBuf;

use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use sqlx::FromRow;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};

/// The Synapse schema versions this release was tested with.
pub const TESTED_SCHEMA_VERSIONS: std::ops::RangeInclusive<i64> = 94..=94;

/// Why Synapse's database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SynapseDatabaseError {
    /// The configuration names no database this tool can read.
    #[error("Synapse's database: {0}")]
    Unsupported(String),
    /// The database could not be reached or queried.
    #[error("Synapse's database: {0}")]
    Query(#[from] sqlx::Error),
}

/// How to reach Synapse's database.
#[derive(Debug, Clone)]
pub enum SynapseDatabaseOptions {
    /// PostgreSQL.
    Postgres(Box<PgConnectOptions>),
    /// An SQLite file, opened read-only.
    Sqlite(PathBuf),
}

impl SynapseDatabaseOptions {
    /// From a URI given on the command line (`postgresql://...` or `sqlite://PATH`).
    ///
    /// # Errors
    /// [`SynapseDatabaseError::Unsupported`] for another scheme or a malformed URI.
    pub fn from_uri(uri: &str) -> Result<Self, SynapseDatabaseError> {
        if let Some(path) = uri
            .strip_prefix("sqlite://")
            .or_else(|| uri.strip_prefix("sqlite:"))
        {
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
            return uri
                .parse::<PgConnectOptions>()
                .map(|o| Self::Postgres(Box::new(o)))
                .map_err(|e| SynapseDatabaseError::Unsupported(e.to_string()));
        }
        Err(SynapseDatabaseError::Unsupported(format!(
            "`{uri}` is neither a postgresql:// nor an sqlite:// URI"
        )))
    }
}

/// An open, read-only connection to Synapse's database.
#[derive(Debug, Clone)]
pub enum SynapseDatabase {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

/// What Synapse's database holds, for the checks and the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynapseCounts {
    /// Users who move (neither guests nor application services').
    pub users: i64,
    /// Guest users (skipped).
    pub guests: i64,
    /// Application services' users (skipped).
    pub appservice_users: i64,
    /// Users with a password hash.
    pub with_password: i64,
    /// Devices.
    pub devices: i64,
    /// Access tokens.
    pub access_tokens: i64,
    /// Email addresses (validated ones move).
    pub emails: i64,
}

macro_rules! on_both {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            SynapseDatabase::Postgres($pool) => $body,
            SynapseDatabase::Sqlite($pool) => $body,
        }
    };
}

impl SynapseDatabase {
    /// Connects, read-only for SQLite (a missing file is an error, never created).
    ///
    /// # Errors
    /// [`SynapseDatabaseError::Query`] when the database cannot be reached.
    pub async fn connect(options: SynapseDatabaseOptions) -> Result<Self, SynapseDatabaseError> {
        Ok(match options {
            SynapseDatabaseOptions::Postgres(options) => Self::Postgres(
                PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(std::time::Duration::from_secs(10))
                    .connect_with(*options)
                    .await?,
            ),
            SynapseDatabaseOptions::Sqlite(path) => Self::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        SqliteConnectOptions::new()
                            .filename(path)
                            .read_only(true)
                            .create_if_missing(false),
                    )
                    .await?,
            ),
        })
    }

    async fn count(&self, sql: &'static str) -> Result<i64, SynapseDatabaseError> {
        Ok(on_both!(self, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await?))
    }

    /// Synapse's schema version.
    ///
    /// # Errors
    /// [`SynapseDatabaseError::Query`], for one when it is not a Synapse database.
    pub async fn schema_version(&self) -> Result<i64, SynapseDatabaseError> {
        self.count("SELECT CAST(version AS BIGINT) FROM schema_version")
            .await
    }

    /// The identity providers Synapse's users are linked to (`user_external_ids`).
    ///
    /// # Errors
    /// [`SynapseDatabaseError::Query`].
    pub async fn linked_providers(&self) -> Result<Vec<String>, SynapseDatabaseError> {
        let sql = "SELECT DISTINCT auth_provider FROM user_external_ids ORDER BY auth_provider";
        Ok(on_both!(self, pool => sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await?))
    }

    /// How many of each thing there are.
    ///
    /// # Errors
    /// [`SynapseDatabaseError::Query`].
    pub async fn counts(&self) -> Result<SynapseCounts, SynapseDatabaseError> {
        Ok(SynapseCounts {
            users: self
                .count("SELECT COUNT(*) FROM users WHERE is_guest = 0 AND appservice_id IS NULL")
                .await?,
            guests: self.count("SELECT COUNT(*) FROM users WHERE is_guest <> 0").await?,
            appservice_users: self
                .count("SELECT COUNT(*) FROM users WHERE appservice_id IS NOT NULL")
                .await?,
            with_password: self
                .count("SELECT COUNT(*) FROM users WHERE password_hash IS NOT NULL AND password_hash <> ''")
                .await?,
            devices: self.count("SELECT COUNT(*) FROM devices").await?,
            access_tokens: self.count("SELECT COUNT(*) FROM access_tokens").await?,
            emails: self
                .count("SELECT COUNT(*) FROM user_threepids WHERE medium = 'email'")
                .await?,
        })
    }

    /// The rows of `sql`, as they come: never a whole table in memory.
    pub(crate) fn stream<'a, R>(
        &'a self,
        sql: &'static str,
    ) -> BoxStream<'a, Result<R, sqlx::Error>>
    where
        R: Send + Unpin + 'a + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow>,
    {
        on_both!(self, pool => sqlx::query_as::<_, R>(sql).fetch(pool))
    }

    /// The user IDs whose localpart this service cannot hold (users who would move,
    /// not guests or application services'), at most `limit` of them, and how many
    /// there are in all.
    ///
    /// # Errors
    /// [`SynapseDatabaseError::Query`].
    pub async fn invalid_localparts(
        &self,
        server_name: &str,
        limit: usize,
    ) -> Result<(Vec<String>, u64), SynapseDatabaseError> {
        let mut rows = self.stream::<(Option<String>,)>(
            "SELECT name FROM users WHERE is_guest = 0 AND appservice_id IS NULL ORDER BY name",
        );
        let mut names = Vec::new();
        let mut total = 0;
        while let Some((name,)) = rows.try_next().await? {
            let Some(name) = name else { continue };
            if crate::migrate::localpart(&name, server_name).is_none() {
                total += 1;
                if names.len() < limit {
                    names.push(name);
                }
            }
        }
        Ok((names, total))
    }

    /// The other clients connected to Synapse's database, by application name (empty
    /// when they gave none); PostgreSQL only (SQLite keeps no such list). A running
    /// Synapse holds some; the server's own workers (autovacuum) do not count.
    ///
    /// # Errors
    /// [`SynapseDatabaseError::Query`].
    pub async fn other_clients(&self) -> Result<Vec<String>, SynapseDatabaseError> {
        match self {
            Self::Postgres(pool) => Ok(sqlx::query_scalar::<_, Option<String>>(
                "SELECT application_name FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                   AND backend_type = 'client backend'",
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()),
            Self::Sqlite(_) => Ok(Vec::new()),
        }
    }

    /// Closes the connections.
    pub async fn close(self) {
        on_both!(self, pool => pool.close().await);
    }
}
