//! Personal sessions and their tokens.

use async_trait::async_trait;
use chrono::Duration;
use mas_data_model::{
    LastActivity, PersonalAccessToken, PersonalSession, PersonalSessionOwner, User,
};
use mas_storage::repository::{
    PersonalAccessTokenRepository, PersonalSessionFilter, PersonalSessionRepository,
};
use mas_storage::{Clock, Page, Pagination, Rng, StorageError};
use sea_orm::sea_query::Condition;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use ulid::Ulid;

use super::Repo;
use crate::conv::{hash_token, new_id, now, ulid};
use crate::entities::{personal_access_tokens as tokens, personal_sessions as sessions};

fn session(m: sessions::Model) -> Result<PersonalSession, StorageError> {
    const T: &str = "personal_sessions";
    Ok(PersonalSession {
        id: ulid(T, &m.id)?,
        // A client's session keeps its actor in `owner_user_id` (see the migration).
        owner: match m.owner_client_id {
            Some(client) => PersonalSessionOwner::Client(ulid(T, &client)?),
            None => PersonalSessionOwner::User(ulid(T, &m.owner_user_id)?),
        },
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
        owner: PersonalSessionOwner,
        actor: &User,
        human_name: &str,
        scope: &str,
    ) -> Result<PersonalSession, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let (owner_user, owner_client) = match owner {
            PersonalSessionOwner::User(user) => (user, None),
            PersonalSessionOwner::Client(client) => (actor.id, Some(client.to_string())),
        };
        sessions::Entity::insert(sessions::ActiveModel {
            id: Set(id.to_string()),
            owner_user_id: Set(owner_user.to_string()),
            owner_client_id: Set(owner_client),
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
            owner,
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

    #[tracing::instrument(name = "db.personal_session.list_by", skip_all)]
    async fn list_by(
        &mut self,
        filter: PersonalSessionFilter,
        pagination: Pagination,
    ) -> Result<Page<PersonalSession>, StorageError> {
        let query = sessions::Entity::find().filter(condition(filter));
        self.page(query, sessions::Column::Id, &pagination, session)
            .await
    }

    #[tracing::instrument(name = "db.personal_session.count", skip_all)]
    async fn count(&mut self, filter: PersonalSessionFilter) -> Result<u64, StorageError> {
        sessions::Entity::find()
            .filter(condition(filter))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }
}

fn condition(filter: PersonalSessionFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(user) = filter.owner_user_id {
        condition = condition
            .add(sessions::Column::OwnerUserId.eq(user.to_string()))
            .add(sessions::Column::OwnerClientId.is_null());
    }
    if let Some(client) = filter.owner_client_id {
        condition = condition.add(sessions::Column::OwnerClientId.eq(client.to_string()));
    }
    if let Some(actor) = filter.actor_user_id {
        condition = condition.add(sessions::Column::ActorUserId.eq(actor.to_string()));
    }
    match filter.active {
        Some(true) => condition = condition.add(sessions::Column::RevokedAt.is_null()),
        Some(false) => condition = condition.add(sessions::Column::RevokedAt.is_not_null()),
        None => {}
    }
    condition
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

    #[tracing::instrument(name = "db.personal_access_token.active_for_session", skip_all)]
    async fn active_for_session(
        &mut self,
        session: &PersonalSession,
    ) -> Result<Option<PersonalAccessToken>, StorageError> {
        tokens::Entity::find()
            .filter(tokens::Column::SessionId.eq(session.id.to_string()))
            .filter(tokens::Column::RevokedAt.is_null())
            .order_by_desc(tokens::Column::Id)
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(token)
            .transpose()
    }

    #[tracing::instrument(name = "db.personal_access_token.revoke_all", skip_all)]
    async fn revoke_all(
        &mut self,
        clock: &dyn Clock,
        session: &PersonalSession,
    ) -> Result<u64, StorageError> {
        // Writing the session's row first holds its lock to the end of the unit of work:
        // a concurrent regeneration waits here, then sees (and revokes) the token this
        // one issues.
        sessions::Entity::update_many()
            .col_expr(
                sessions::Column::HumanName,
                Expr::col(sessions::Column::HumanName),
            )
            .filter(sessions::Column::Id.eq(session.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        let result = tokens::Entity::update_many()
            .col_expr(tokens::Column::RevokedAt, Expr::value(now(clock)))
            .filter(tokens::Column::SessionId.eq(session.id.to_string()))
            .filter(tokens::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected > 0 {
            self.revoked(&[session.id]).await?;
        }
        Ok(result.rows_affected)
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
