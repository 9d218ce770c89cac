//! Last activity of sessions, written in batches.

use std::fmt::Write as _;

use async_trait::async_trait;
use mas_storage::repository::ActivityRepository;
use mas_storage::{Activity, SessionKind, StorageError};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::Repo;

/// Rows per statement: three parameters each, well inside SQLite's and PostgreSQL's
/// limits on parameters.
const CHUNK: usize = 1000;

fn table(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Browser => "browser_sessions",
        SessionKind::OAuth2 => "oauth2_sessions",
        SessionKind::Compat => "compat_sessions",
        SessionKind::Personal => "personal_sessions",
    }
}

/// One `UPDATE … FROM (VALUES …)` for `rows` of `table`, in the backend's dialect (the
/// same text, but for its placeholders).
fn statement(backend: DbBackend, table: &str, rows: &[&Activity]) -> Statement {
    let mut sql = String::from("WITH v(id, at, ip) AS (VALUES ");
    let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 3);
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        match backend {
            DbBackend::Postgres => {
                let n = i * 3;
                let _ = write!(
                    sql,
                    "(${}, ${}::timestamptz, ${}::text)",
                    n + 1,
                    n + 2,
                    n + 3
                );
            }
            _ => sql.push_str("(?, ?, ?)"),
        }
        values.push(row.id.to_string().into());
        values.push(row.at.into());
        values.push(row.ip.clone().into());
    }
    let _ = write!(
        sql,
        ") UPDATE {table} SET last_active_at = v.at, \
         last_active_ip = COALESCE(v.ip, {table}.last_active_ip) \
         FROM v WHERE {table}.id = v.id"
    );
    Statement::from_sql_and_values(backend, sql, values)
}

#[async_trait]
impl ActivityRepository for Repo<'_> {
    #[tracing::instrument(name = "db.activity.record", skip_all, fields(sessions = batch.len()))]
    async fn record(&mut self, batch: &[Activity]) -> Result<u64, StorageError> {
        let backend = self.conn.get_database_backend();
        let mut updated = 0;
        for kind in [
            SessionKind::Browser,
            SessionKind::OAuth2,
            SessionKind::Compat,
            SessionKind::Personal,
        ] {
            let rows: Vec<&Activity> = batch.iter().filter(|a| a.kind == kind).collect();
            for chunk in rows.chunks(CHUNK) {
                let result = self
                    .conn
                    .execute_raw(statement(backend, table(kind), chunk))
                    .await
                    .map_err(|e| self.db_err(e))?;
                updated += result.rows_affected();
            }
        }
        Ok(updated)
    }
}
