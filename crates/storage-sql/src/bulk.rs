//! The bulk writer for moves from another server: PostgreSQL `COPY ... FROM STDIN`, and
//! multi-row `INSERT`s on SQLite, all in one transaction on a connection of its own.
//! Plain sqlx (the driver sea-orm runs on), as sea-orm has no `COPY`.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use mas_data_model::{CompatSession, Password, UpstreamOAuthLink, User, UserEmail};
use mas_storage::bulk::{BulkWriter, ImportedCompatAccessToken, ImportedCompatRefreshToken};
use mas_storage::{BoxFuture, StorageError};
use sea_orm::sqlx::{self, Postgres, Sqlite, Transaction};
use ulid::Ulid;

use crate::conv::hash_token;

/// SQLite allows 32 766 bound values per statement; the widest row has 11 columns.
const SQLITE_ROWS_PER_INSERT: usize = 1000;

/// One column's value, as both backends are given it.
enum Val {
    Text(Option<String>),
    Id(Option<Ulid>),
    Time(Option<DateTime<Utc>>),
    Bool(bool),
    Int(i32),
    Bytes(Vec<u8>),
}

/// A row type and the table it goes to.
trait BulkRow: Sync {
    const TABLE: &'static str;
    const COLUMNS: &'static [&'static str];
    fn values(&self) -> Vec<Val>;
}

impl BulkRow for User {
    const TABLE: &'static str = "users";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "username",
        "created_at",
        "locked_at",
        "deactivated_at",
        "can_request_admin",
    ];
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Id(Some(self.id)),
            Val::Text(Some(self.username.clone())),
            Val::Time(Some(self.created_at)),
            Val::Time(self.locked_at),
            Val::Time(self.deactivated_at),
            Val::Bool(self.can_request_admin),
        ]
    }
}

impl BulkRow for Password {
    const TABLE: &'static str = "user_passwords";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "user_id",
        "hashed_password",
        "version",
        "upgraded_from_id",
        "created_at",
    ];
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Id(Some(self.id)),
            Val::Id(Some(self.user_id)),
            Val::Text(Some(self.hashed_password.clone())),
            Val::Int(i32::from(self.version)),
            Val::Id(self.upgraded_from_id),
            Val::Time(Some(self.created_at)),
        ]
    }
}

impl BulkRow for UserEmail {
    const TABLE: &'static str = "user_emails";
    const COLUMNS: &'static [&'static str] =
        &["id", "user_id", "email", "email_lower", "created_at"];
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Id(Some(self.id)),
            Val::Id(Some(self.user_id)),
            Val::Text(Some(self.email.clone())),
            Val::Text(Some(self.email.to_lowercase())),
            Val::Time(Some(self.created_at)),
        ]
    }
}

impl BulkRow for UpstreamOAuthLink {
    const TABLE: &'static str = "upstream_oauth_links";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "provider_id",
        "user_id",
        "subject",
        "human_account_name",
        "created_at",
    ];
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Id(Some(self.id)),
            Val::Id(Some(self.provider_id)),
            Val::Id(self.user_id),
            Val::Text(Some(self.subject.clone())),
            Val::Text(self.human_account_name.clone()),
            Val::Time(Some(self.created_at)),
        ]
    }
}

impl BulkRow for CompatSession {
    const TABLE: &'static str = "compat_sessions";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "user_id",
        "device_id",
        "browser_session_id",
        "created_at",
        "finished_at",
        "is_synapse_admin",
        "user_agent",
        "last_active_at",
        "last_active_ip",
        "human_name",
    ];
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Id(Some(self.id)),
            Val::Id(Some(self.user_id)),
            Val::Text(self.device_id.clone()),
            Val::Id(self.browser_session_id),
            Val::Time(Some(self.created_at)),
            Val::Time(self.finished_at),
            Val::Bool(self.is_synapse_admin),
            Val::Text(self.user_agent.clone()),
            Val::Time(self.last_activity.at),
            Val::Text(self.last_activity.ip.clone()),
            Val::Text(self.human_name.clone()),
        ]
    }
}

impl BulkRow for ImportedCompatAccessToken {
    const TABLE: &'static str = "compat_access_tokens";
    const COLUMNS: &'static [&'static str] =
        &["id", "session_id", "token_hash", "created_at", "expires_at"];
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Id(Some(self.id)),
            Val::Id(Some(self.session_id)),
            Val::Bytes(hash_token(&self.token)),
            Val::Time(Some(self.created_at)),
            Val::Time(self.expires_at),
        ]
    }
}

impl BulkRow for ImportedCompatRefreshToken {
    const TABLE: &'static str = "compat_refresh_tokens";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "session_id",
        "access_token_id",
        "token_hash",
        "created_at",
    ];
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Id(Some(self.id)),
            Val::Id(Some(self.session_id)),
            Val::Id(Some(self.access_token_id)),
            Val::Bytes(hash_token(&self.token)),
            Val::Time(Some(self.created_at)),
        ]
    }
}

/// The open transaction of a bulk write.
enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// A [`BulkWriter`] on this crate's database.
pub struct SqlBulkWriter {
    tx: Tx,
}

impl std::fmt::Debug for SqlBulkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.tx {
            Tx::Postgres(_) => "postgres",
            Tx::Sqlite(_) => "sqlite",
        };
        f.debug_struct("SqlBulkWriter")
            .field("backend", &backend)
            .finish()
    }
}

/// Maps a driver error: a unique value taken becomes a conflict naming it.
fn sqlx_err(error: sqlx::Error) -> StorageError {
    if let Some(db) = error.as_database_error()
        && db.is_unique_violation()
    {
        return StorageError::Conflict(db.message().to_owned());
    }
    StorageError::Backend(Box::new(error))
}

impl SqlBulkWriter {
    /// Starts the transaction (on SQLite, holding the write lock from the start).
    pub(crate) async fn begin(db: &sea_orm::DatabaseConnection) -> Result<Self, StorageError> {
        let tx = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => Tx::Postgres(
                db.get_postgres_connection_pool()
                    .begin()
                    .await
                    .map_err(sqlx_err)?,
            ),
            _ => Tx::Sqlite(
                db.get_sqlite_connection_pool()
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(sqlx_err)?,
            ),
        };
        Ok(Self { tx })
    }

    async fn write<R: BulkRow>(&mut self, rows: &[R]) -> Result<(), StorageError> {
        if rows.is_empty() {
            return Ok(());
        }
        match &mut self.tx {
            Tx::Postgres(tx) => {
                let data = copy_text(rows);
                let statement = format!("COPY {} ({}) FROM STDIN", R::TABLE, R::COLUMNS.join(", "));
                let mut copy = tx.copy_in_raw(&statement).await.map_err(sqlx_err)?;
                if let Err(error) = copy.send(data.into_bytes()).await {
                    // The server forgets the half-sent COPY only when told.
                    let _ = copy.abort("bulk write failed").await;
                    return Err(sqlx_err(error));
                }
                copy.finish().await.map_err(sqlx_err)?;
            }
            Tx::Sqlite(tx) => {
                for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
                    let statement = insert_statement::<R>(chunk.len());
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
                    for row in chunk {
                        for value in row.values() {
                            query = match value {
                                Val::Text(v) => query.bind(v),
                                Val::Id(v) => query.bind(v.map(|id| id.to_string())),
                                Val::Time(v) => query.bind(v),
                                Val::Bool(v) => query.bind(v),
                                Val::Int(v) => query.bind(v),
                                Val::Bytes(v) => query.bind(v),
                            };
                        }
                    }
                    query.execute(&mut **tx).await.map_err(sqlx_err)?;
                }
            }
        }
        Ok(())
    }
}

/// `INSERT INTO table (columns) VALUES (?, ...), ...` for `rows` rows.
fn insert_statement<R: BulkRow>(rows: usize) -> String {
    let one = format!("({})", vec!["?"; R::COLUMNS.len()].join(", "));
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        R::TABLE,
        R::COLUMNS.join(", "),
        vec![one.as_str(); rows].join(", ")
    )
}

/// Rows in `COPY`'s text format: tab-separated, `\N` for NULL, backslash escapes.
fn copy_text<R: BulkRow>(rows: &[R]) -> String {
    let mut out = String::with_capacity(rows.len() * 128);
    for row in rows {
        for (i, value) in row.values().into_iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            match value {
                Val::Text(None) | Val::Id(None) | Val::Time(None) => out.push_str("\\N"),
                Val::Text(Some(text)) => escape_copy(&mut out, &text),
                Val::Id(Some(id)) => {
                    let _ = write!(out, "{id}");
                }
                Val::Time(Some(at)) => {
                    out.push_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true));
                }
                Val::Bool(flag) => out.push(if flag { 't' } else { 'f' }),
                Val::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                // bytea's hex input `\x...`, its backslash escaped for COPY.
                Val::Bytes(bytes) => {
                    out.push_str("\\\\x");
                    for b in bytes {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
        out.push('\n');
    }
    out
}

/// Escapes the characters `COPY`'s text format gives a meaning to.
fn escape_copy(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The trait's writing methods, each the same call for its row type.
macro_rules! writes {
    ($($method:ident: $row:ty),* $(,)?) => {
        $(
            fn $method<'a>(
                &'a mut self,
                rows: &'a [$row],
            ) -> BoxFuture<'a, Result<(), StorageError>> {
                Box::pin(self.write(rows))
            }
        )*
    };
}

impl BulkWriter for SqlBulkWriter {
    fn count_users(&mut self) -> BoxFuture<'_, Result<u64, StorageError>> {
        Box::pin(async move {
            let sql = "SELECT COUNT(*) FROM users";
            let count: i64 = match &mut self.tx {
                Tx::Postgres(tx) => sqlx::query_scalar(sql).fetch_one(&mut **tx).await,
                Tx::Sqlite(tx) => sqlx::query_scalar(sql).fetch_one(&mut **tx).await,
            }
            .map_err(sqlx_err)?;
            Ok(u64::try_from(count).unwrap_or_default())
        })
    }

    writes! {
        users: User,
        passwords: Password,
        emails: UserEmail,
        links: UpstreamOAuthLink,
        compat_sessions: CompatSession,
        compat_access_tokens: ImportedCompatAccessToken,
        compat_refresh_tokens: ImportedCompatRefreshToken,
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            match self.tx {
                Tx::Postgres(tx) => tx.commit().await,
                Tx::Sqlite(tx) => tx.commit().await,
            }
            .map_err(sqlx_err)
        })
    }

    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            match self.tx {
                Tx::Postgres(tx) => tx.rollback().await,
                Tx::Sqlite(tx) => tx.rollback().await,
            }
            .map_err(sqlx_err)
        })
    }
}
