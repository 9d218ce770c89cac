//! Compatibility-layer sessions, tokens and SSO logins.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_data_model::{
    CompatAccessToken, CompatRefreshToken, CompatSession, CompatSsoLogin, LastActivity, User,
};
use mas_storage::repository::{
    CompatAccessTokenRepository, CompatLogin, CompatRefreshTokenRepository, CompatRotated,
    CompatRotation, CompatSessionFilter, CompatSessionRepository, CompatSsoLoginRepository,
    NewCompatLogin,
};
use mas_storage::{Clock, Page, Pagination, Rng, StorageError};
use sea_orm::sea_query::{
    Alias, CommonTableExpression, Condition, Expr, ExprTrait, InsertStatement, JoinType, Query,
    WithClause,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseExecutor, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryTrait, Set, Statement, TransactionTrait, Value,
};
use ulid::Ulid;
use url::Url;

use super::{Repo, prefixed};
use crate::conv::{hash_token, new_id, now, ulid, ulid_opt, url};
use crate::entities::{
    compat_access_tokens as access_tokens, compat_refresh_tokens as refresh_tokens,
    compat_sessions as sessions, compat_sso_logins as sso_logins, users,
};
use crate::write_transaction;

fn session(m: sessions::Model) -> Result<CompatSession, StorageError> {
    const T: &str = "compat_sessions";
    Ok(CompatSession {
        id: ulid(T, &m.id)?,
        user_id: ulid(T, &m.user_id)?,
        device_id: m.device_id,
        browser_session_id: ulid_opt(T, m.browser_session_id.as_deref())?,
        created_at: m.created_at,
        finished_at: m.finished_at,
        is_synapse_admin: m.is_synapse_admin,
        user_agent: m.user_agent,
        last_activity: LastActivity {
            at: m.last_active_at,
            ip: m.last_active_ip,
        },
        human_name: m.human_name,
    })
}

/// Runs `inserts` (parents first) so that all rows are stored or none. On PostgreSQL as one
/// statement, the earlier inserts in a `WITH`: a statement is atomic without a transaction,
/// and its foreign keys are checked at its end, when every row exists. SQLite has no
/// inserts in `WITH`; there they run in a transaction.
async fn store_together(
    conn: &DatabaseExecutor<'_>,
    mut inserts: Vec<InsertStatement>,
) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        let Some(last) = inserts.pop() else {
            return Ok(());
        };
        if inserts.is_empty() {
            conn.execute(&last).await?;
            return Ok(());
        }
        let mut with = WithClause::new();
        for (n, insert) in inserts.into_iter().enumerate() {
            with.cte(
                CommonTableExpression::new()
                    .query(insert)
                    .table_name(Alias::new(format!("stored_{n}")))
                    .to_owned(),
            );
        }
        conn.execute(&with.query(last)).await?;
        return Ok(());
    }
    let txn = atomically(conn).await?;
    for insert in &inserts {
        txn.execute(insert).await?;
    }
    txn.commit().await
}

/// A transaction for writes that must land together: a write transaction on a bare
/// connection, a savepoint inside a unit of work's own transaction.
async fn atomically(conn: &DatabaseExecutor<'_>) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    match conn {
        DatabaseExecutor::Connection(db) => db.begin_with_options(write_transaction()).await,
        nested => nested.begin().await,
    }
}

/// A new, open session (not stored yet).
fn new_session(
    rng: Rng<'_>,
    created_at: DateTime<Utc>,
    user: &User,
    device_id: Option<String>,
    browser_session_id: Option<Ulid>,
    is_synapse_admin: bool,
    human_name: Option<String>,
) -> CompatSession {
    CompatSession {
        id: new_id(rng, created_at),
        user_id: user.id,
        device_id,
        browser_session_id,
        created_at,
        finished_at: None,
        is_synapse_admin,
        user_agent: None,
        last_activity: LastActivity::default(),
        human_name,
    }
}

/// The row that stores a new session.
fn session_row(session: &CompatSession) -> sessions::ActiveModel {
    sessions::ActiveModel {
        id: Set(session.id.to_string()),
        user_id: Set(session.user_id.to_string()),
        device_id: Set(session.device_id.clone()),
        browser_session_id: Set(session.browser_session_id.map(|b| b.to_string())),
        created_at: Set(session.created_at),
        finished_at: Set(None),
        is_synapse_admin: Set(session.is_synapse_admin),
        user_agent: Set(None),
        last_active_at: Set(None),
        last_active_ip: Set(None),
        human_name: Set(session.human_name.clone()),
    }
}

/// A new access token of `session`; `ttl` `None` means it never expires.
fn new_access_token(
    rng: Rng<'_>,
    session: &CompatSession,
    created_at: DateTime<Utc>,
    ttl: Option<Duration>,
) -> CompatAccessToken {
    CompatAccessToken {
        id: new_id(rng, created_at),
        session_id: session.id,
        created_at,
        expires_at: ttl.map(|ttl| created_at + ttl),
    }
}

/// The row that stores a new access token, as the hash of `token`.
fn access_token_row(access_token: &CompatAccessToken, token: &str) -> access_tokens::ActiveModel {
    access_tokens::ActiveModel {
        id: Set(access_token.id.to_string()),
        session_id: Set(access_token.session_id.to_string()),
        token_hash: Set(hash_token(token)),
        created_at: Set(access_token.created_at),
        expires_at: Set(access_token.expires_at),
    }
}

/// A new, unused refresh token of `session`, paired with `access_token`.
fn new_refresh_token(
    rng: Rng<'_>,
    session: &CompatSession,
    access_token: &CompatAccessToken,
    created_at: DateTime<Utc>,
) -> CompatRefreshToken {
    CompatRefreshToken {
        id: new_id(rng, created_at),
        session_id: session.id,
        access_token_id: access_token.id,
        created_at,
        consumed_at: None,
    }
}

/// The row that stores a new refresh token, as the hash of `token`.
fn refresh_token_row(
    refresh_token: &CompatRefreshToken,
    token: &str,
) -> refresh_tokens::ActiveModel {
    refresh_tokens::ActiveModel {
        id: Set(refresh_token.id.to_string()),
        session_id: Set(refresh_token.session_id.to_string()),
        access_token_id: Set(refresh_token.access_token_id.to_string()),
        token_hash: Set(hash_token(token)),
        created_at: Set(refresh_token.created_at),
        consumed_at: Set(None),
    }
}

fn session_condition(filter: CompatSessionFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(user) = filter.user_id {
        condition = condition.add(sessions::Column::UserId.eq(user.to_string()));
    }
    match filter.active {
        Some(true) => condition = condition.add(sessions::Column::FinishedAt.is_null()),
        Some(false) => condition = condition.add(sessions::Column::FinishedAt.is_not_null()),
        None => {}
    }
    condition
}

#[async_trait]
impl CompatSessionRepository for Repo<'_> {
    #[tracing::instrument(name = "db.compat_session.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<CompatSession>, StorageError> {
        sessions::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(session)
            .transpose()
    }

    #[tracing::instrument(name = "db.compat_session.find_active_by_device", skip_all)]
    async fn find_active_by_device(
        &mut self,
        user: &User,
        device_id: &str,
    ) -> Result<Option<CompatSession>, StorageError> {
        sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user.id.to_string()))
            .filter(sessions::Column::DeviceId.eq(device_id))
            .filter(sessions::Column::FinishedAt.is_null())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(session)
            .transpose()
    }

    #[tracing::instrument(name = "db.compat_session.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        device_id: Option<String>,
        browser_session_id: Option<Ulid>,
        is_synapse_admin: bool,
        human_name: Option<String>,
    ) -> Result<CompatSession, StorageError> {
        let session = new_session(
            rng,
            now(clock),
            user,
            device_id,
            browser_session_id,
            is_synapse_admin,
            human_name,
        );
        sessions::Entity::insert(session_row(&session))
            .exec_without_returning(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(session)
    }

    #[tracing::instrument(name = "db.compat_session.add_with_tokens", skip_all)]
    async fn add_with_tokens(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        login: NewCompatLogin<'_>,
    ) -> Result<CompatLogin, StorageError> {
        let created_at = now(clock);
        let session = new_session(
            rng,
            created_at,
            login.user,
            Some(login.device_id.to_owned()),
            None,
            // May *ask* for admin rights, in OAuth; a login never grants them.
            false,
            login.human_name.map(str::to_owned),
        );
        let access_token = new_access_token(rng, &session, created_at, login.ttl);
        let refresh_token = login.refresh_token.map(|token| {
            (
                new_refresh_token(rng, &session, &access_token, created_at),
                token,
            )
        });
        let mut inserts = vec![
            sessions::Entity::insert(session_row(&session)).into_query(),
            access_tokens::Entity::insert(access_token_row(&access_token, login.access_token))
                .into_query(),
        ];
        if let Some((stored, token)) = &refresh_token {
            inserts.push(
                refresh_tokens::Entity::insert(refresh_token_row(stored, token)).into_query(),
            );
        }
        store_together(&self.conn, inserts)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(CompatLogin {
            session,
            access_token,
            refresh_token: refresh_token.map(|(stored, _)| stored),
        })
    }

    #[tracing::instrument(name = "db.compat_session.finish", skip_all)]
    async fn finish(
        &mut self,
        clock: &dyn Clock,
        mut session: CompatSession,
    ) -> Result<CompatSession, StorageError> {
        let at = now(clock);
        sessions::Entity::update_many()
            .col_expr(sessions::Column::FinishedAt, Expr::value(at))
            .filter(sessions::Column::Id.eq(session.id.to_string()))
            .filter(sessions::Column::FinishedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        self.revoked(&[session.id]).await?;
        session.finished_at.get_or_insert(at);
        Ok(session)
    }

    #[tracing::instrument(name = "db.compat_session.finish_all", skip_all)]
    async fn finish_all(
        &mut self,
        clock: &dyn Clock,
        filter: CompatSessionFilter,
    ) -> Result<u64, StorageError> {
        let user_id = filter.user_id;
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::FinishedAt, Expr::value(now(clock)))
            .filter(session_condition(filter))
            .filter(sessions::Column::FinishedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected > 0 {
            match user_id {
                Some(user_id) => self.revoked(&[user_id]).await?,
                None => self.revoked_all().await?,
            }
        }
        Ok(result.rows_affected)
    }

    #[tracing::instrument(name = "db.compat_session.list", skip_all)]
    async fn list(
        &mut self,
        filter: CompatSessionFilter,
        pagination: Pagination,
    ) -> Result<Page<CompatSession>, StorageError> {
        self.page(
            sessions::Entity::find().filter(session_condition(filter)),
            sessions::Column::Id,
            &pagination,
            session,
        )
        .await
    }

    #[tracing::instrument(name = "db.compat_session.count", skip_all)]
    async fn count(&mut self, filter: CompatSessionFilter) -> Result<u64, StorageError> {
        sessions::Entity::find()
            .filter(session_condition(filter))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }

    #[tracing::instrument(name = "db.compat_session.set_human_name", skip_all)]
    async fn set_human_name(
        &mut self,
        id: Ulid,
        human_name: Option<String>,
    ) -> Result<(), StorageError> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::HumanName, Expr::value(human_name))
            .filter(sessions::Column::Id.eq(id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    #[tracing::instrument(name = "db.compat_session.record_activity", skip_all)]
    async fn record_activity(
        &mut self,
        id: Ulid,
        at: DateTime<Utc>,
        ip: Option<String>,
    ) -> Result<(), StorageError> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastActiveAt, Expr::value(at))
            .col_expr(sessions::Column::LastActiveIp, Expr::value(ip))
            .filter(sessions::Column::Id.eq(id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}

fn access_token(m: access_tokens::Model) -> Result<CompatAccessToken, StorageError> {
    const T: &str = "compat_access_tokens";
    Ok(CompatAccessToken {
        id: ulid(T, &m.id)?,
        session_id: ulid(T, &m.session_id)?,
        created_at: m.created_at,
        expires_at: m.expires_at,
    })
}

#[async_trait]
impl CompatAccessTokenRepository for Repo<'_> {
    #[tracing::instrument(name = "db.compat_access_token.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &CompatSession,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<CompatAccessToken, StorageError> {
        let access_token = new_access_token(rng, session, now(clock), ttl);
        access_tokens::Entity::insert(access_token_row(&access_token, token))
            .exec_without_returning(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(access_token)
    }

    #[tracing::instrument(name = "db.compat_access_token.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<CompatAccessToken>, StorageError> {
        access_tokens::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(access_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.compat_access_token.find_by_token", skip_all)]
    async fn find_by_token(
        &mut self,
        token: &str,
    ) -> Result<Option<CompatAccessToken>, StorageError> {
        access_tokens::Entity::find()
            .filter(access_tokens::Column::TokenHash.eq(hash_token(token)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(access_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.compat_access_token.find_with_session", skip_all)]
    async fn find_with_session(
        &mut self,
        token: &str,
    ) -> Result<Option<(CompatAccessToken, CompatSession, User)>, StorageError> {
        let (t, s, u) = (Alias::new("t"), Alias::new("s"), Alias::new("u"));
        let mut query = Query::select();
        query
            .from_as(access_tokens::Entity, t.clone())
            .join_as(
                JoinType::InnerJoin,
                sessions::Entity,
                s.clone(),
                Expr::col((s.clone(), sessions::Column::Id))
                    .equals((t.clone(), access_tokens::Column::SessionId)),
            )
            .join_as(
                JoinType::InnerJoin,
                users::Entity,
                u.clone(),
                Expr::col((u.clone(), users::Column::Id))
                    .equals((s.clone(), sessions::Column::UserId)),
            )
            .and_where(
                Expr::col((t.clone(), access_tokens::Column::TokenHash)).eq(hash_token(token)),
            );
        prefixed::<access_tokens::Entity>(&mut query, &t, "t_");
        prefixed::<sessions::Entity>(&mut query, &s, "s_");
        prefixed::<users::Entity>(&mut query, &u, "u_");
        let Some(row) = self.one_row(&query).await? else {
            return Ok(None);
        };
        let (Some(token), Some(session_row), Some(user_row)) = (
            self.part::<access_tokens::Model>(&row, "t_")?,
            self.part::<sessions::Model>(&row, "s_")?,
            self.part::<users::Model>(&row, "u_")?,
        ) else {
            return Ok(None);
        };
        Ok(Some((
            access_token(token)?,
            session(session_row)?,
            crate::repos::user::user(user_row)?,
        )))
    }
}

fn refresh_token(m: refresh_tokens::Model) -> Result<CompatRefreshToken, StorageError> {
    const T: &str = "compat_refresh_tokens";
    Ok(CompatRefreshToken {
        id: ulid(T, &m.id)?,
        session_id: ulid(T, &m.session_id)?,
        access_token_id: ulid(T, &m.access_token_id)?,
        created_at: m.created_at,
        consumed_at: m.consumed_at,
    })
}

#[async_trait]
impl CompatRefreshTokenRepository for Repo<'_> {
    #[tracing::instrument(name = "db.compat_refresh_token.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &CompatSession,
        access_token: &CompatAccessToken,
        token: &str,
    ) -> Result<CompatRefreshToken, StorageError> {
        let refresh_token = new_refresh_token(rng, session, access_token, now(clock));
        refresh_tokens::Entity::insert(refresh_token_row(&refresh_token, token))
            .exec_without_returning(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(refresh_token)
    }

    #[tracing::instrument(name = "db.compat_refresh_token.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<CompatRefreshToken>, StorageError> {
        refresh_tokens::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(refresh_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.compat_refresh_token.find_by_token", skip_all)]
    async fn find_by_token(
        &mut self,
        token: &str,
    ) -> Result<Option<CompatRefreshToken>, StorageError> {
        refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(hash_token(token)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(refresh_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.compat_refresh_token.rotate", skip_all)]
    async fn rotate(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        rotation: CompatRotation<'_>,
    ) -> Result<Option<CompatRotated>, StorageError> {
        let at = now(clock);
        let access_id = new_id(rng, at);
        let refresh_id = new_id(rng, at);
        let expires_at = rotation.ttl.map(|ttl| at + ttl);
        let values = RotationValues {
            at,
            presented: hash_token(rotation.presented),
            access_id: access_id.to_string(),
            access_hash: hash_token(rotation.access_token),
            expires_at,
            refresh_id: refresh_id.to_string(),
            refresh_hash: hash_token(rotation.refresh_token),
        };
        let rotated = match self.conn.get_database_backend() {
            DbBackend::Postgres => rotate_in_one_statement(&self.conn, values).await,
            _ => rotate_step_by_step(&self.conn, values).await,
        }
        .map_err(|e| self.db_err(e))?;
        let Some(session_id) = rotated else {
            return Ok(None);
        };
        let session_id = ulid("compat_refresh_tokens", &session_id)?;
        // The old access token's cached answers go. On PostgreSQL the statement announced
        // it already; what is left is this process's own record.
        if self.conn.get_database_backend() == DbBackend::Postgres {
            self.revoked_announced(&[session_id]);
        } else {
            self.revoked(&[session_id]).await?;
        }
        let access_token = CompatAccessToken {
            id: access_id,
            session_id,
            created_at: at,
            expires_at,
        };
        let refresh_token = CompatRefreshToken {
            id: refresh_id,
            session_id,
            access_token_id: access_id,
            created_at: at,
            consumed_at: None,
        };
        Ok(Some(CompatRotated {
            access_token,
            refresh_token,
        }))
    }
}

/// The values of one refresh, bound into its statements.
struct RotationValues {
    at: DateTime<Utc>,
    presented: Vec<u8>,
    access_id: String,
    access_hash: Vec<u8>,
    expires_at: Option<DateTime<Utc>>,
    refresh_id: String,
    refresh_hash: Vec<u8>,
}

/// Which refresh tokens may be exchanged: unused, in an open session of a user who is
/// neither locked nor deactivated. `r` is the refresh token's row, `{hash}` the
/// placeholder of the presented token's hash.
fn exchangeable(hash: &str) -> String {
    format!(
        "r.token_hash = {hash} AND r.consumed_at IS NULL AND EXISTS ( \
         SELECT 1 FROM compat_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = r.session_id AND s.finished_at IS NULL \
         AND u.locked_at IS NULL AND u.deactivated_at IS NULL)"
    )
}

/// PostgreSQL: the whole refresh in one statement, its writes in `WITH`, so it is atomic
/// without a transaction; the revocation is announced when it commits. The session of
/// the consumed token, when one was exchanged.
async fn rotate_in_one_statement(
    conn: &DatabaseExecutor<'_>,
    v: RotationValues,
) -> Result<Option<String>, DbErr> {
    let sql = format!(
        "WITH consumed AS ( \
           UPDATE compat_refresh_tokens r SET consumed_at = $1 WHERE {} \
           RETURNING r.session_id, r.access_token_id), \
         expired AS ( \
           UPDATE compat_access_tokens a SET expires_at = $1 \
           FROM consumed c WHERE a.id = c.access_token_id), \
         access AS ( \
           INSERT INTO compat_access_tokens (id, session_id, token_hash, created_at, expires_at) \
           SELECT $3, c.session_id, $4, $1, $5 FROM consumed c), \
         refresh AS ( \
           INSERT INTO compat_refresh_tokens \
             (id, session_id, access_token_id, token_hash, created_at, consumed_at) \
           SELECT $6, c.session_id, $3, $7, $1, NULL FROM consumed c) \
         SELECT c.session_id, pg_notify($8, c.session_id) FROM consumed c",
        exchangeable("$2")
    );
    let values: [Value; 8] = [
        v.at.into(),
        v.presented.into(),
        v.access_id.into(),
        v.access_hash.into(),
        v.expires_at.into(),
        v.refresh_id.into(),
        v.refresh_hash.into(),
        crate::revocations::CHANNEL.into(),
    ];
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    row.map(|row| row.try_get_by_index::<String>(0)).transpose()
}

/// SQLite, which has no writes in `WITH`: the same steps in a transaction (a savepoint
/// inside a unit of work's own).
async fn rotate_step_by_step(
    conn: &DatabaseExecutor<'_>,
    v: RotationValues,
) -> Result<Option<String>, DbErr> {
    let backend = conn.get_database_backend();
    let txn = atomically(conn).await?;
    let consume = format!(
        "UPDATE compat_refresh_tokens AS r SET consumed_at = ? WHERE {} \
         RETURNING session_id, access_token_id",
        exchangeable("?")
    );
    let Some(row) = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            consume,
            [v.at.into(), v.presented.into()],
        ))
        .await?
    else {
        txn.rollback().await?;
        return Ok(None);
    };
    let session_id: String = row.try_get_by_index(0)?;
    let old_access_id: String = row.try_get_by_index(1)?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "UPDATE compat_access_tokens SET expires_at = ? WHERE id = ?",
        [v.at.into(), old_access_id.into()],
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO compat_access_tokens (id, session_id, token_hash, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?)",
        [
            v.access_id.clone().into(),
            session_id.clone().into(),
            v.access_hash.into(),
            v.at.into(),
            v.expires_at.into(),
        ],
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO compat_refresh_tokens \
           (id, session_id, access_token_id, token_hash, created_at, consumed_at) \
         VALUES (?, ?, ?, ?, ?, NULL)",
        [
            v.refresh_id.into(),
            session_id.clone().into(),
            v.access_id.into(),
            v.refresh_hash.into(),
            v.at.into(),
        ],
    ))
    .await?;
    txn.commit().await?;
    Ok(Some(session_id))
}

fn sso_login(m: sso_logins::Model) -> Result<CompatSsoLogin, StorageError> {
    const T: &str = "compat_sso_logins";
    Ok(CompatSsoLogin {
        id: ulid(T, &m.id)?,
        redirect_uri: url(T, &m.redirect_uri)?,
        created_at: m.created_at,
        fulfilled_at: m.fulfilled_at,
        exchanged_at: m.exchanged_at,
        session_id: ulid_opt(T, m.session_id.as_deref())?,
    })
}

#[async_trait]
impl CompatSsoLoginRepository for Repo<'_> {
    #[tracing::instrument(name = "db.compat_sso_login.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        login_token: &str,
        redirect_uri: Url,
    ) -> Result<CompatSsoLogin, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        sso_logins::Entity::insert(sso_logins::ActiveModel {
            id: Set(id.to_string()),
            redirect_uri: Set(redirect_uri.to_string()),
            login_token_hash: Set(hash_token(login_token)),
            created_at: Set(created_at),
            fulfilled_at: Set(None),
            exchanged_at: Set(None),
            session_id: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(CompatSsoLogin {
            id,
            redirect_uri,
            created_at,
            fulfilled_at: None,
            exchanged_at: None,
            session_id: None,
        })
    }

    #[tracing::instrument(name = "db.compat_sso_login.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<CompatSsoLogin>, StorageError> {
        sso_logins::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(sso_login)
            .transpose()
    }

    #[tracing::instrument(name = "db.compat_sso_login.find_by_token", skip_all)]
    async fn find_by_token(
        &mut self,
        login_token: &str,
    ) -> Result<Option<CompatSsoLogin>, StorageError> {
        sso_logins::Entity::find()
            .filter(sso_logins::Column::LoginTokenHash.eq(hash_token(login_token)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(sso_login)
            .transpose()
    }

    #[tracing::instrument(name = "db.compat_sso_login.fulfill", skip_all)]
    async fn fulfill(
        &mut self,
        clock: &dyn Clock,
        mut login: CompatSsoLogin,
        session: &CompatSession,
        login_token: &str,
    ) -> Result<Option<CompatSsoLogin>, StorageError> {
        let at = now(clock);
        let result = sso_logins::Entity::update_many()
            .col_expr(sso_logins::Column::FulfilledAt, Expr::value(at))
            .col_expr(
                sso_logins::Column::SessionId,
                Expr::value(session.id.to_string()),
            )
            .col_expr(
                sso_logins::Column::LoginTokenHash,
                Expr::value(hash_token(login_token)),
            )
            .filter(sso_logins::Column::Id.eq(login.id.to_string()))
            .filter(sso_logins::Column::FulfilledAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        login.fulfilled_at = Some(at);
        login.session_id = Some(session.id);
        Ok(Some(login))
    }

    #[tracing::instrument(name = "db.compat_sso_login.cleanup", skip_all)]
    async fn cleanup(
        &mut self,
        clock: &dyn Clock,
        abandoned_before: DateTime<Utc>,
        delete_before: DateTime<Utc>,
    ) -> Result<(u64, u64), StorageError> {
        let abandoned = Query::select()
            .column(sso_logins::Column::SessionId)
            .from(sso_logins::Entity)
            .and_where(sso_logins::Column::FulfilledAt.lt(abandoned_before))
            .and_where(sso_logins::Column::ExchangedAt.is_null())
            .and_where(sso_logins::Column::SessionId.is_not_null())
            .to_owned();
        // A session whose login token was never exchanged has no access token, unless an
        // exchange raced this cleanup; the cache forgets everything to be safe (rare).
        let ended = sessions::Entity::update_many()
            .col_expr(sessions::Column::FinishedAt, Expr::value(now(clock)))
            .filter(sessions::Column::FinishedAt.is_null())
            .filter(sessions::Column::Id.in_subquery(abandoned))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .rows_affected;
        if ended > 0 {
            self.revoked_all().await?;
        }
        let deleted = sso_logins::Entity::delete_many()
            .filter(sso_logins::Column::CreatedAt.lt(delete_before))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .rows_affected;
        Ok((ended, deleted))
    }

    #[tracing::instrument(name = "db.compat_sso_login.exchange", skip_all)]
    async fn exchange(
        &mut self,
        clock: &dyn Clock,
        mut login: CompatSsoLogin,
    ) -> Result<Option<CompatSsoLogin>, StorageError> {
        let at = now(clock);
        let result = sso_logins::Entity::update_many()
            .col_expr(sso_logins::Column::ExchangedAt, Expr::value(at))
            .filter(sso_logins::Column::Id.eq(login.id.to_string()))
            .filter(sso_logins::Column::FulfilledAt.is_not_null())
            .filter(sso_logins::Column::ExchangedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        login.exchanged_at = Some(at);
        Ok(Some(login))
    }
}
