//! Personal sessions and their tokens.

use async_trait::async_trait;
use chrono::Duration;
use mas_data_model::{LastActivity, PersonalAccessToken, PersonalSession, User};
use mas_storage::repository::{PersonalAccessTokenRepository, PersonalSessionRepository};
use mas_storage::{Clock, Page, Pagination, Rng, StorageError};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use ulid::Ulid;

use super::Repo;
use crate::conv::{hash_token, new_id, now, ulid};
use crate::entities::{personal_access_tokens as tokens, personal_sessions as sessions};

fn session(m: sessions::Model) -> Result<PersonalSession, StorageError> {
    const T: &str = "personal_sessions";
    Ok(PersonalSession {
        id: ulid(T, &m.id)?,
        owner_user_id: ulid(T, &m.owner_user_id)?,
        actor_user_id: ulid(T, &m.actor_user_id)?,
        human_name: m.human_name,
        scope: m.scope,
        created_at: m.created_at,
        revoked_at: m.revoked_at,
        last_activity: LastActivity {
            at: m.last_active_at,
            ip: m.last_active_ip,
        },
    })
}

#[async_trait]
impl PersonalSessionRepository for Repo<'_> {
    #[tracing::instrument(name = "db.personal_session.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<PersonalSession>, StorageError> {
        sessions::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(session)
            .transpose()
    }

    #[tracing::instrument(name = "db.personal_session.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        owner: &User,
        actor: &User,
        human_name: &str,
        scope: &str,
    ) -> Result<PersonalSession, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        sessions::Entity::insert(sessions::ActiveModel {
            id: Set(id.to_string()),
            owner_user_id: Set(owner.id.to_string()),
            actor_user_id: Set(actor.id.to_string()),
            human_name: Set(human_name.to_owned()),
            scope: Set(scope.to_owned()),
            created_at: Set(created_at),
            revoked_at: Set(None),
            last_active_at: Set(None),
            last_active_ip: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(PersonalSession {
            id,
            owner_user_id: owner.id,
            actor_user_id: actor.id,
            human_name: human_name.to_owned(),
            scope: scope.to_owned(),
            created_at,
            revoked_at: None,
            last_activity: LastActivity::default(),
        })
    }

    #[tracing::instrument(name = "db.personal_session.revoke", skip_all)]
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        mut session: PersonalSession,
    ) -> Result<PersonalSession, StorageError> {
        let at = now(clock);
        sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(at))
            .filter(sessions::Column::Id.eq(session.id.to_string()))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        self.revoked(&[session.id]).await?;
        session.revoked_at.get_or_insert(at);
        Ok(session)
    }

    #[tracing::instrument(name = "db.personal_session.list", skip_all)]
    async fn list(
        &mut self,
        actor: &User,
        pagination: Pagination,
    ) -> Result<Page<PersonalSession>, StorageError> {
        let query =
            sessions::Entity::find().filter(sessions::Column::ActorUserId.eq(actor.id.to_string()));
        self.page(query, sessions::Column::Id, &pagination, session)
            .await
    }
}

fn token(m: tokens::Model) -> Result<PersonalAccessToken, StorageError> {
    const T: &str = "personal_access_tokens";
    Ok(PersonalAccessToken {
        id: ulid(T, &m.id)?,
        session_id: ulid(T, &m.session_id)?,
        created_at: m.created_at,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
    })
}

#[async_trait]
impl PersonalAccessTokenRepository for Repo<'_> {
    #[tracing::instrument(name = "db.personal_access_token.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &PersonalSession,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<PersonalAccessToken, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let expires_at = ttl.map(|ttl| created_at + ttl);
        tokens::Entity::insert(tokens::ActiveModel {
            id: Set(id.to_string()),
            session_id: Set(session.id.to_string()),
            token_hash: Set(hash_token(value)),
            created_at: Set(created_at),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(PersonalAccessToken {
            id,
            session_id: session.id,
            created_at,
            expires_at,
            revoked_at: None,
        })
    }

    #[tracing::instrument(name = "db.personal_access_token.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<PersonalAccessToken>, StorageError> {
        tokens::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(token)
            .transpose()
    }

    #[tracing::instrument(name = "db.personal_access_token.find_by_token", skip_all)]
    async fn find_by_token(
        &mut self,
        value: &str,
    ) -> Result<Option<PersonalAccessToken>, StorageError> {
        tokens::Entity::find()
            .filter(tokens::Column::TokenHash.eq(hash_token(value)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(token)
            .transpose()
    }

    #[tracing::instrument(name = "db.personal_access_token.revoke", skip_all)]
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        mut value: PersonalAccessToken,
    ) -> Result<PersonalAccessToken, StorageError> {
        let at = now(clock);
        tokens::Entity::update_many()
            .col_expr(tokens::Column::RevokedAt, Expr::value(at))
            .filter(tokens::Column::Id.eq(value.id.to_string()))
            .filter(tokens::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        self.revoked(&[value.session_id]).await?;
        value.revoked_at.get_or_insert(at);
        Ok(value)
    }
}
