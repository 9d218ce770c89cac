//! Upstream identity providers and links.

use async_trait::async_trait;
use mas_data_model::{UpstreamOAuthLink, UpstreamOAuthProvider, User};
use mas_storage::repository::{
    ProviderParams, UpstreamOAuthLinkRepository, UpstreamOAuthProviderRepository,
};
use mas_storage::{Clock, Rng, StorageError};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use ulid::Ulid;

use super::Repo;
use crate::conv::{gone, json, new_id, now, to_json, ulid, ulid_opt};
use crate::entities::{upstream_oauth_links as links, upstream_oauth_providers as providers};

fn provider(m: providers::Model) -> Result<UpstreamOAuthProvider, StorageError> {
    const T: &str = "upstream_oauth_providers";
    Ok(UpstreamOAuthProvider {
        id: ulid(T, &m.id)?,
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
            .order_by_asc(providers::Column::Id)
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .map(provider)
            .collect()
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
        let result = links::Entity::update_many()
            .col_expr(links::Column::UserId, Expr::value(user.id.to_string()))
            .filter(links::Column::Id.eq(link.id.to_string()))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Err(gone("upstream_oauth_links"));
        }
        link.user_id = Some(user.id);
        Ok(link)
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
