//! Conversions between rows and domain values, and the small pieces every repository uses.

use chrono::{DateTime, SubsecRound, Utc};
use mas_storage::{Clock, Pagination, PaginationDirection, StorageError};
use sea_orm::sea_query::IntoCondition;
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, SqlErr,
};
use ulid::Ulid;
use url::Url;

/// Now, at the precision both backends store (microseconds), so a value read back
/// equals the one written.
pub(crate) fn now(clock: &dyn Clock) -> DateTime<Utc> {
    clock.now().trunc_subsecs(6)
}

pub(crate) use mas_storage::{new_id, secret_hash as hash_token};

/// Parses a stored ULID.
pub(crate) fn ulid(table: &'static str, text: &str) -> Result<Ulid, StorageError> {
    Ulid::from_string(text).map_err(|e| StorageError::InvalidData {
        table,
        reason: format!("bad ULID: {e}"),
    })
}

/// Parses an optional stored ULID.
pub(crate) fn ulid_opt(
    table: &'static str,
    text: Option<&str>,
) -> Result<Option<Ulid>, StorageError> {
    text.map(|t| ulid(table, t)).transpose()
}

/// Parses a stored URL.
pub(crate) fn url(table: &'static str, text: &str) -> Result<Url, StorageError> {
    Url::parse(text).map_err(|e| StorageError::InvalidData {
        table,
        reason: format!("bad URL: {e}"),
    })
}

/// Parses an optional stored URL.
pub(crate) fn url_opt(
    table: &'static str,
    text: Option<&str>,
) -> Result<Option<Url>, StorageError> {
    text.map(|t| url(table, t)).transpose()
}

/// Parses stored JSON.
pub(crate) fn json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::InvalidData {
        table,
        reason: format!("bad JSON: {e}"),
    })
}

/// Serialises a value for a JSON text column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A count that never holds a negative number in practice.
pub(crate) fn unsigned(table: &'static str, value: i32) -> Result<u32, StorageError> {
    u32::try_from(value).map_err(|_| StorageError::InvalidData {
        table,
        reason: format!("negative count {value}"),
    })
}

/// Maps a database error: unreachable database, unique violations, the rest.
pub(crate) fn db_err(error: DbErr) -> StorageError {
    if let Some(SqlErr::UniqueConstraintViolation(what)) = error.sql_err() {
        return StorageError::Conflict(what);
    }
    if is_unavailable(&error) {
        tracing::warn!(%error, "database unavailable");
        return StorageError::Unavailable;
    }
    StorageError::Backend(Box::new(error))
}

/// Whether the error means the database cannot be reached (rather than refused the query).
pub(crate) fn is_unavailable(error: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{RuntimeErr, error::ConnAcquireErr};
    let runtime = match error {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout | ConnAcquireErr::ConnectionClosed) => {
            return true;
        }
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    match runtime {
        RuntimeErr::SqlxError(sqlx) => {
            matches!(
                sqlx.as_ref(),
                Sqlx::Io(_)
                    | Sqlx::PoolTimedOut
                    | Sqlx::PoolClosed
                    | Sqlx::WorkerCrashed
                    | Sqlx::Tls(_)
            ) || sqlx
                .as_database_error()
                .and_then(sea_orm::sqlx::error::DatabaseError::code)
                // PostgreSQL: admin shutdown, crash shutdown, cannot connect now.
                // SQLite: busy (the busy timeout ran out), busy recovery, busy snapshot.
                .is_some_and(|code| {
                    matches!(
                        code.as_ref(),
                        "57P01" | "57P02" | "57P03" | "5" | "261" | "517"
                    )
                })
        }
        RuntimeErr::Internal(_) => false,
    }
}

/// Whether the error means the database itself is gone (a lost or refused connection,
/// a shut-down server), as opposed to a busy SQLite file, which the next statement may
/// well get past.
pub(crate) fn is_connection_lost(error: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    let busy = match error {
        DbErr::Conn(RuntimeErr::SqlxError(sqlx))
        | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
        | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => sqlx
            .as_database_error()
            .and_then(sea_orm::sqlx::error::DatabaseError::code)
            .is_some_and(|code| matches!(code.as_ref(), "5" | "261" | "517")),
        _ => false,
    };
    !busy && is_unavailable(error)
}

/// Maps a missing row after an update of a row we just read.
pub(crate) fn gone(table: &'static str) -> StorageError {
    StorageError::InvalidData {
        table,
        reason: "the row disappeared during the update".to_owned(),
    }
}

/// Orders and bounds a query for one page, by the ULID `id` column.
pub(crate) fn paginate<E: EntityTrait>(
    query: Select<E>,
    id: E::Column,
    pagination: &Pagination,
) -> Select<E>
where
    E::Column: ColumnTrait,
{
    let mut query = query;
    if let Some(after) = pagination.after {
        query = query.filter(id.gt(after.to_string()).into_condition());
    }
    if let Some(before) = pagination.before {
        query = query.filter(id.lt(before.to_string()).into_condition());
    }
    let query = match pagination.direction {
        PaginationDirection::Forward => query.order_by_asc(id),
        PaginationDirection::Backward => query.order_by_desc(id),
    };
    query.limit(
        u64::try_from(pagination.count)
            .unwrap_or(u64::MAX)
            .saturating_add(1),
    )
}
