//! The repository implementations, one module per area.

pub(crate) mod activity;
pub(crate) mod compat;
pub(crate) mod job;
pub(crate) mod oauth2;
pub(crate) mod personal;
pub(crate) mod registration;
pub(crate) mod upstream;
pub(crate) mod user;

use std::sync::atomic::{AtomicBool, Ordering};

use mas_storage::{Page, Pagination, Revocations, StorageError};
use ulid::Ulid;

use crate::revocations::{Pending, PendingRevocations};
use sea_orm::sea_query::{Alias, Expr, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseExecutor, DbErr, EntityTrait, FromQueryResult, Iterable,
    QueryResult, Select,
};

/// What every repository holds: the connection or transaction of its unit of work.
pub(crate) struct Repo<'c> {
    pub(crate) conn: DatabaseExecutor<'c>,
    /// Set when a statement failed. PostgreSQL aborts the transaction then (and a later
    /// COMMIT silently rolls back), so the unit of work refuses to report a save.
    pub(crate) failed: &'c AtomicBool,
    /// What this unit of work revoked, for caches of introspection answers.
    pub(crate) pending: &'c PendingRevocations,
    pub(crate) revocations: &'c Revocations,
    /// Closed while the database is away, so others fail fast; `pool` is what the probe
    /// that reopens it pings.
    pub(crate) gate: &'c crate::gate::Gate,
    pub(crate) pool: &'c sea_orm::DatabaseConnection,
}

impl Repo<'_> {
    /// Maps a database error and marks the unit of work as failed; a lost database
    /// closes the gate.
    pub(crate) fn db_err(&self, error: DbErr) -> StorageError {
        self.failed.store(true, Ordering::Relaxed);
        if crate::conv::is_connection_lost(&error) {
            self.gate.mark_away(self.pool);
        }
        crate::conv::db_err(error)
    }

    /// Notes, after the statement that did it, that tokens depending on `keys` (session,
    /// user or client ids) are no longer valid. A transaction announces it when it
    /// commits; a reader's statement has committed already.
    pub(crate) async fn revoked(&self, keys: &[Ulid]) -> Result<(), StorageError> {
        self.note(Pending::of(keys.to_vec())).await
    }

    /// As [`Self::revoked`], for a statement that announced the revocation itself: on a
    /// reader only this process's record is left to update; a transaction still announces
    /// it at commit (a second announcement is harmless), since it only counts from then.
    pub(crate) fn revoked_announced(&self, keys: &[Ulid]) {
        let revoked = Pending::of(keys.to_vec());
        if matches!(self.conn, DatabaseExecutor::Connection(_)) {
            revoked.apply(self.revocations);
        } else {
            self.pending.add(revoked);
        }
    }

    /// As [`Self::revoked`], for a change too broad to name by keys.
    pub(crate) async fn revoked_all(&self) -> Result<(), StorageError> {
        self.note(Pending::everything()).await
    }

    async fn note(&self, revoked: Pending) -> Result<(), StorageError> {
        if matches!(self.conn, DatabaseExecutor::Connection(_)) {
            // Outside a transaction the change is committed already: announce it now.
            revoked
                .announce(&self.conn)
                .await
                .map_err(|e| self.db_err(e))?;
            revoked.apply(self.revocations);
        } else {
            self.pending.add(revoked);
        }
        Ok(())
    }

    /// The one row of a joined `query` whose tables were selected with [`prefixed`].
    pub(crate) async fn one_row(
        &self,
        query: &SelectStatement,
    ) -> Result<Option<QueryResult>, StorageError> {
        self.conn.query_one(query).await.map_err(|e| self.db_err(e))
    }

    /// The part of a joined `row` selected with `prefix`; `None` when a left join found
    /// nothing for it (its `id`, a primary key, is null). Any other failure to read is an
    /// error.
    pub(crate) fn part<M: FromQueryResult>(
        &self,
        row: &QueryResult,
        prefix: &str,
    ) -> Result<Option<M>, StorageError> {
        let id: Option<String> = row
            .try_get("", &format!("{prefix}id"))
            .map_err(|e| self.db_err(e))?;
        if id.is_none() {
            return Ok(None);
        }
        M::from_query_result(row, prefix)
            .map(Some)
            .map_err(|e| self.db_err(e))
    }

    /// One page of `query`, keyed and ordered by `id`, each row converted by `convert`.
    pub(crate) async fn page<E, T>(
        &self,
        query: Select<E>,
        id: E::Column,
        pagination: &Pagination,
        convert: fn(E::Model) -> Result<T, StorageError>,
    ) -> Result<Page<T>, StorageError>
    where
        E: EntityTrait,
        E::Column: ColumnTrait,
    {
        let rows = crate::conv::paginate(query, id, pagination)
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .map(convert)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pagination.process(rows))
    }
}

/// Selects every column of `E` from the table aliased `table`, named `prefix` + column, so
/// a joined row can be read back with `Model::from_query_result(row, prefix)`.
pub(crate) fn prefixed<E: EntityTrait>(query: &mut SelectStatement, table: &Alias, prefix: &str) {
    for column in E::Column::iter() {
        let name = sea_orm::IdenStatic::as_str(&column);
        query.expr_as(
            Expr::col((table.clone(), column)),
            Alias::new(format!("{prefix}{name}")),
        );
    }
}
