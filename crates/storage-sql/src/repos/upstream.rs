//! Upstream identity providers and links.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_data_model::{
    BrowserSession, UpstreamOAuthAuthorizationSession, UpstreamOAuthLink, UpstreamOAuthProvider,
    User,
};
use mas_storage::repository::{
    ProviderParams, UpstreamAnswer, UpstreamOAuthLinkFilter, UpstreamOAuthLinkRepository,
    UpstreamOAuthProviderRepository, UpstreamOAuthSessionRepository,
};
use mas_storage::{Clock, Page, Pagination, Rng, StorageError};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use ulid::Ulid;

use super::Repo;
use crate::conv::{gone, json, new_id, now, to_json, ulid, ulid_opt};
use crate::entities::{
    upstream_oauth_authorization_sessions as sessions, upstream_oauth_links as links,
    upstream_oauth_providers as providers,
};

fn provider_condition(enabled: Option<bool>) -> Condition {
    match enabled {
        Some(true) => Condition::all().add(providers::Column::DisabledAt.is_null()),
        Some(false) => Condition::all().add(providers::Column::DisabledAt.is_not_null()),
        None => Condition::all(),
    }
}

fn link_condition(filter: &UpstreamOAuthLinkFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(user) = filter.user_id {
        condition = condition.add(links::Column::UserId.eq(user.to_string()));
    }
    if let Some(provider) = filter.provider_id {
        condition = condition.add(links::Column::ProviderId.eq(provider.to_string()));
    }
    if let Some(subject) = &filter.subject {
        condition = condition.add(links::Column::Subject.eq(subject.as_str()));
    }
    condition
}

fn provider(m: providers::Model) -> Result<UpstreamOAuthProvider, StorageError> {
    const T: &str = "upstream_oauth_providers";
    Ok(UpstreamOAuthProvider {
        id: ulid(T, &m.id)?,
        ui_order: m.ui_order,
        issuer: m.issuer,
        human_name: m.human_name,
        client_id: m.client_id,
        encrypted_client_secret: m.encrypted_client_secret,
        config: json(T, &m.config)?,
        created_at: m.created_at,
        disabled_at: m.disabled_at,
    })
}

#[async_trait]
impl UpstreamOAuthProviderRepository for Repo<'_> {
    #[tracing::instrument(name = "db.upstream_provider.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<UpstreamOAuthProvider>, StorageError> {
        providers::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(provider)
            .transpose()
    }

    #[tracing::instrument(name = "db.upstream_provider.all", skip_all)]
    async fn all(&mut self) -> Result<Vec<UpstreamOAuthProvider>, StorageError> {
        providers::Entity::find()
            .order_by_asc(providers::Column::UiOrder)
            .order_by_asc(providers::Column::Id)
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .map(provider)
            .collect()
    }

    #[tracing::instrument(name = "db.upstream_provider.list", skip_all)]
    async fn list(
        &mut self,
        enabled: Option<bool>,
        pagination: Pagination,
    ) -> Result<Page<UpstreamOAuthProvider>, StorageError> {
        let query = providers::Entity::find().filter(provider_condition(enabled));
        self.page(query, providers::Column::Id, &pagination, provider)
            .await
    }

    #[tracing::instrument(name = "db.upstream_provider.count", skip_all)]
    async fn count(&mut self, enabled: Option<bool>) -> Result<u64, StorageError> {
        providers::Entity::find()
            .filter(provider_condition(enabled))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }

    #[tracing::instrument(name = "db.upstream_provider.upsert", skip_all)]
    async fn upsert(
        &mut self,
        clock: &dyn Clock,
        id: Ulid,
        params: ProviderParams,
    ) -> Result<UpstreamOAuthProvider, StorageError> {
        let existing = providers::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        let created_at = existing
            .as_ref()
            .map_or_else(|| now(clock), |row| row.created_at);
        let model = providers::ActiveModel {
            id: Set(id.to_string()),
            ui_order: Set(params.ui_order),
            issuer: Set(params.issuer.clone()),
            human_name: Set(params.human_name.clone()),
            client_id: Set(params.client_id.clone()),
            encrypted_client_secret: Set(params.encrypted_client_secret.clone()),
            config: Set(to_json(&params.config)),
            created_at: Set(created_at),
            disabled_at: Set(None),
        };
        if existing.is_some() {
            providers::Entity::update(model)
                .exec(&self.conn)
                .await
                .map_err(|e| self.db_err(e))?;
        } else {
            providers::Entity::insert(model)
                .exec_without_returning(&self.conn)
                .await
                .map_err(|e| self.db_err(e))?;
        }
        Ok(UpstreamOAuthProvider {
            id,
            ui_order: params.ui_order,
            issuer: params.issuer,
            human_name: params.human_name,
            client_id: params.client_id,
            encrypted_client_secret: params.encrypted_client_secret,
            config: params.config,
            created_at,
            disabled_at: None,
        })
    }

    #[tracing::instrument(name = "db.upstream_provider.disable", skip_all)]
    async fn disable(
        &mut self,
        clock: &dyn Clock,
        mut provider: UpstreamOAuthProvider,
    ) -> Result<UpstreamOAuthProvider, StorageError> {
        let at = now(clock);
        providers::Entity::update_many()
            .col_expr(providers::Column::DisabledAt, Expr::value(at))
            .filter(providers::Column::Id.eq(provider.id.to_string()))
            .filter(providers::Column::DisabledAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        provider.disabled_at.get_or_insert(at);
        Ok(provider)
    }

    #[tracing::instrument(name = "db.upstream_provider.delete", skip_all)]
    async fn delete(&mut self, provider: UpstreamOAuthProvider) -> Result<(), StorageError> {
        providers::Entity::delete_by_id(provider.id.to_string())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}

fn link(m: links::Model) -> Result<UpstreamOAuthLink, StorageError> {
    const T: &str = "upstream_oauth_links";
    Ok(UpstreamOAuthLink {
        id: ulid(T, &m.id)?,
        provider_id: ulid(T, &m.provider_id)?,
        user_id: ulid_opt(T, m.user_id.as_deref())?,
        subject: m.subject,
        human_account_name: m.human_account_name,
        created_at: m.created_at,
    })
}

#[async_trait]
impl UpstreamOAuthLinkRepository for Repo<'_> {
    #[tracing::instrument(name = "db.upstream_link.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<UpstreamOAuthLink>, StorageError> {
        links::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(link)
            .transpose()
    }

    #[tracing::instrument(name = "db.upstream_link.find_by_subject", skip_all)]
    async fn find_by_subject(
        &mut self,
        provider: &UpstreamOAuthProvider,
        subject: &str,
    ) -> Result<Option<UpstreamOAuthLink>, StorageError> {
        links::Entity::find()
            .filter(links::Column::ProviderId.eq(provider.id.to_string()))
            .filter(links::Column::Subject.eq(subject))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(link)
            .transpose()
    }

    #[tracing::instrument(name = "db.upstream_link.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        provider: &UpstreamOAuthProvider,
        subject: &str,
        human_account_name: Option<String>,
    ) -> Result<UpstreamOAuthLink, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        links::Entity::insert(links::ActiveModel {
            id: Set(id.to_string()),
            provider_id: Set(provider.id.to_string()),
            user_id: Set(None),
            subject: Set(subject.to_owned()),
            human_account_name: Set(human_account_name.clone()),
            created_at: Set(created_at),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(UpstreamOAuthLink {
            id,
            provider_id: provider.id,
            user_id: None,
            subject: subject.to_owned(),
            human_account_name,
            created_at,
        })
    }

    #[tracing::instrument(name = "db.upstream_link.associate", skip_all)]
    async fn associate(
        &mut self,
        mut link: UpstreamOAuthLink,
        user: &User,
    ) -> Result<UpstreamOAuthLink, StorageError> {
        // Only an unlinked account is linked: two concurrent links cannot both win.
        let result = links::Entity::update_many()
            .col_expr(links::Column::UserId, Expr::value(user.id.to_string()))
            .filter(links::Column::Id.eq(link.id.to_string()))
            .filter(links::Column::UserId.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Err(StorageError::Conflict(
                "upstream_oauth_links: the account is linked already".to_owned(),
            ));
        }
        link.user_id = Some(user.id);
        Ok(link)
    }

    #[tracing::instrument(name = "db.upstream_link.unlink_user", skip_all)]
    async fn unlink_user(
        &mut self,
        provider: &UpstreamOAuthProvider,
        user: &User,
    ) -> Result<u64, StorageError> {
        let result = links::Entity::update_many()
            .col_expr(links::Column::UserId, Expr::value(None::<String>))
            .filter(links::Column::ProviderId.eq(provider.id.to_string()))
            .filter(links::Column::UserId.eq(user.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }

    #[tracing::instrument(name = "db.upstream_link.list", skip_all)]
    async fn list(
        &mut self,
        filter: &UpstreamOAuthLinkFilter,
        pagination: Pagination,
    ) -> Result<Page<UpstreamOAuthLink>, StorageError> {
        let query = links::Entity::find().filter(link_condition(filter));
        self.page(query, links::Column::Id, &pagination, link).await
    }

    #[tracing::instrument(name = "db.upstream_link.count", skip_all)]
    async fn count(&mut self, filter: &UpstreamOAuthLinkFilter) -> Result<u64, StorageError> {
        links::Entity::find()
            .filter(link_condition(filter))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }

    #[tracing::instrument(name = "db.upstream_link.remove", skip_all)]
    async fn remove(&mut self, link: UpstreamOAuthLink) -> Result<(), StorageError> {
        // The sign-in trips stay, detached: a back-channel logout still finds the
        // browser sessions they opened by the provider's session ID.
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LinkId, Expr::value(None::<String>))
            .filter(sessions::Column::LinkId.eq(link.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        links::Entity::delete_by_id(link.id.to_string())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    #[tracing::instrument(name = "db.upstream_link.all_for_user", skip_all)]
    async fn all_for_user(&mut self, user: &User) -> Result<Vec<UpstreamOAuthLink>, StorageError> {
        links::Entity::find()
            .filter(links::Column::UserId.eq(user.id.to_string()))
            .order_by_asc(links::Column::Id)
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .map(link)
            .collect()
    }
}

fn session(m: sessions::Model) -> Result<UpstreamOAuthAuthorizationSession, StorageError> {
    const T: &str = "upstream_oauth_authorization_sessions";
    Ok(UpstreamOAuthAuthorizationSession {
        id: ulid(T, &m.id)?,
        provider_id: ulid(T, &m.provider_id)?,
        state: m.state,
        nonce: m.nonce,
        code_verifier: m.code_verifier,
        next: m.next,
        created_at: m.created_at,
        completed_at: m.completed_at,
        link_id: ulid_opt(T, m.link_id.as_deref())?,
        id_token: m.id_token,
        claims: m.claims.as_deref().map(|c| json(T, c)).transpose()?,
        sid: m.sid,
        consumed_at: m.consumed_at,
        browser_session_id: ulid_opt(T, m.browser_session_id.as_deref())?,
    })
}

#[async_trait]
impl UpstreamOAuthSessionRepository for Repo<'_> {
    #[tracing::instrument(name = "db.upstream_session.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        provider: &UpstreamOAuthProvider,
        state: String,
        nonce: String,
        code_verifier: Option<String>,
        next: String,
    ) -> Result<UpstreamOAuthAuthorizationSession, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        sessions::Entity::insert(sessions::ActiveModel {
            id: Set(id.to_string()),
            provider_id: Set(provider.id.to_string()),
            state: Set(state.clone()),
            nonce: Set(nonce.clone()),
            code_verifier: Set(code_verifier.clone()),
            next: Set(next.clone()),
            created_at: Set(created_at),
            completed_at: Set(None),
            link_id: Set(None),
            id_token: Set(None),
            claims: Set(None),
            sid: Set(None),
            consumed_at: Set(None),
            browser_session_id: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(UpstreamOAuthAuthorizationSession {
            id,
            provider_id: provider.id,
            state,
            nonce,
            code_verifier,
            next,
            created_at,
            completed_at: None,
            link_id: None,
            id_token: None,
            claims: None,
            sid: None,
            consumed_at: None,
            browser_session_id: None,
        })
    }

    #[tracing::instrument(name = "db.upstream_session.lookup", skip_all)]
    async fn lookup(
        &mut self,
        id: Ulid,
    ) -> Result<Option<UpstreamOAuthAuthorizationSession>, StorageError> {
        sessions::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(session)
            .transpose()
    }

    #[tracing::instrument(name = "db.upstream_session.find_by_state", skip_all)]
    async fn find_by_state(
        &mut self,
        provider: &UpstreamOAuthProvider,
        state: &str,
    ) -> Result<Option<UpstreamOAuthAuthorizationSession>, StorageError> {
        sessions::Entity::find()
            .filter(sessions::Column::ProviderId.eq(provider.id.to_string()))
            .filter(sessions::Column::State.eq(state))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(session)
            .transpose()
    }

    #[tracing::instrument(name = "db.upstream_session.claim", skip_all)]
    async fn claim(
        &mut self,
        clock: &dyn Clock,
        mut session: UpstreamOAuthAuthorizationSession,
    ) -> Result<Option<UpstreamOAuthAuthorizationSession>, StorageError> {
        let at = now(clock);
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::CompletedAt, Expr::value(at))
            .filter(sessions::Column::Id.eq(session.id.to_string()))
            .filter(sessions::Column::CompletedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        session.completed_at = Some(at);
        Ok(Some(session))
    }

    #[tracing::instrument(name = "db.upstream_session.record_answer", skip_all)]
    async fn record_answer(
        &mut self,
        mut session: UpstreamOAuthAuthorizationSession,
        answer: UpstreamAnswer,
    ) -> Result<UpstreamOAuthAuthorizationSession, StorageError> {
        let result = sessions::Entity::update_many()
            .col_expr(
                sessions::Column::LinkId,
                Expr::value(answer.link.id.to_string()),
            )
            .col_expr(
                sessions::Column::IdToken,
                Expr::value(answer.id_token.clone()),
            )
            .col_expr(
                sessions::Column::Claims,
                Expr::value(to_json(&answer.claims)),
            )
            .col_expr(sessions::Column::Sid, Expr::value(answer.sid.clone()))
            .filter(sessions::Column::Id.eq(session.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Err(gone("upstream_oauth_authorization_sessions"));
        }
        session.link_id = Some(answer.link.id);
        session.id_token = answer.id_token;
        session.claims = Some(answer.claims);
        session.sid = answer.sid;
        Ok(session)
    }

    #[tracing::instrument(name = "db.upstream_session.consume", skip_all)]
    async fn consume(
        &mut self,
        clock: &dyn Clock,
        mut session: UpstreamOAuthAuthorizationSession,
        browser: &BrowserSession,
    ) -> Result<Option<UpstreamOAuthAuthorizationSession>, StorageError> {
        let at = now(clock);
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::ConsumedAt, Expr::value(at))
            .col_expr(
                sessions::Column::BrowserSessionId,
                Expr::value(browser.id.to_string()),
            )
            // Used up: what the provider said about the person is not kept.
            .col_expr(sessions::Column::IdToken, Expr::value(None::<String>))
            .col_expr(sessions::Column::Claims, Expr::value(None::<String>))
            .filter(sessions::Column::Id.eq(session.id.to_string()))
            .filter(sessions::Column::ConsumedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        session.consumed_at = Some(at);
        session.browser_session_id = Some(browser.id);
        session.id_token = None;
        session.claims = None;
        Ok(Some(session))
    }

    #[tracing::instrument(name = "db.upstream_session.find_for_logout", skip_all)]
    async fn find_for_logout(
        &mut self,
        provider: &UpstreamOAuthProvider,
        sid: Option<&str>,
        link: Option<&UpstreamOAuthLink>,
    ) -> Result<Vec<UpstreamOAuthAuthorizationSession>, StorageError> {
        let mut query = sessions::Entity::find()
            .filter(sessions::Column::ProviderId.eq(provider.id.to_string()))
            .filter(sessions::Column::BrowserSessionId.is_not_null());
        match (sid, link) {
            (Some(sid), _) => query = query.filter(sessions::Column::Sid.eq(sid)),
            (None, Some(link)) => {
                query = query.filter(sessions::Column::LinkId.eq(link.id.to_string()));
            }
            (None, None) => return Ok(Vec::new()),
        }
        query
            .order_by_asc(sessions::Column::Id)
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .map(session)
            .collect()
    }

    #[tracing::instrument(name = "db.upstream_session.cleanup", skip_all)]
    async fn cleanup(&mut self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let result = sessions::Entity::delete_many()
            .filter(sessions::Column::CreatedAt.lt(before))
            .filter(sessions::Column::BrowserSessionId.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }
}
