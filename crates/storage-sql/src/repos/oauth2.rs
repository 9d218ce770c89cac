//! OAuth 2.0 clients, grants, sessions and tokens.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_data_model::{
    AccessToken, AuthorizationCode, AuthorizationGrant, Client, ClientAuthMethod, ClientKind,
    DeviceCodeGrant, DeviceCodeGrantState, LastActivity, Pkce, RefreshToken, ResponseMode, Session,
};
use mas_storage::repository::{
    AccessTokenRepository, AuthorizationGrantRepository, ClientParams, ClientRepository,
    DeviceCodeGrantRepository, NewAuthorizationGrant, NewDeviceCodeGrant, RefreshTokenRepository,
    SessionFilter, SessionRepository,
};
use mas_storage::{Clock, Page, Pagination, Rng, StorageError};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use ulid::Ulid;

use super::Repo;
use crate::conv::{
    gone, hash_token, json, new_id, now, to_json, ulid, ulid_opt, unsigned, url, url_opt,
};
use crate::entities::{
    oauth2_access_tokens as access_tokens, oauth2_authorization_grants as grants,
    oauth2_client_assertion_jtis as jtis, oauth2_clients as clients,
    oauth2_device_code_grants as device_grants, oauth2_refresh_tokens as refresh_tokens,
    oauth2_sessions as sessions,
};

fn client(m: clients::Model) -> Result<Client, StorageError> {
    const T: &str = "oauth2_clients";
    let auth_method =
        ClientAuthMethod::parse(&m.auth_method).ok_or_else(|| StorageError::InvalidData {
            table: T,
            reason: format!("unknown auth method {}", m.auth_method),
        })?;
    let redirect_uris: Vec<String> = json(T, &m.redirect_uris)?;
    Ok(Client {
        id: ulid(T, &m.id)?,
        kind: if m.is_static {
            ClientKind::Static
        } else {
            ClientKind::Dynamic
        },
        auth_method,
        encrypted_secret: m.encrypted_secret,
        jwks: m.jwks.as_deref().map(|j| json(T, j)).transpose()?,
        jwks_uri: url_opt(T, m.jwks_uri.as_deref())?,
        redirect_uris: redirect_uris
            .iter()
            .map(|u| url(T, u))
            .collect::<Result<_, _>>()?,
        grant_types: json(T, &m.grant_types)?,
        name: m.name,
        client_uri: url_opt(T, m.client_uri.as_deref())?,
        logo_uri: url_opt(T, m.logo_uri.as_deref())?,
        policy_uri: url_opt(T, m.policy_uri.as_deref())?,
        tos_uri: url_opt(T, m.tos_uri.as_deref())?,
        application_type: m.application_type,
        contacts: json(T, &m.contacts)?,
        metadata: m.metadata.as_deref().map(|j| json(T, j)).transpose()?,
        created_at: m.created_at,
    })
}

fn client_model(
    id: Ulid,
    is_static: bool,
    params: &ClientParams,
    created_at: DateTime<Utc>,
) -> clients::ActiveModel {
    let uris: Vec<&str> = params.redirect_uris.iter().map(url::Url::as_str).collect();
    clients::ActiveModel {
        id: Set(id.to_string()),
        is_static: Set(is_static),
        auth_method: Set(params.auth_method.as_str().to_owned()),
        encrypted_secret: Set(params.encrypted_secret.clone()),
        jwks: Set(params.jwks.as_ref().map(to_json)),
        jwks_uri: Set(params.jwks_uri.as_ref().map(ToString::to_string)),
        redirect_uris: Set(to_json(&uris)),
        grant_types: Set(to_json(&params.grant_types)),
        name: Set(params.name.clone()),
        client_uri: Set(params.client_uri.as_ref().map(ToString::to_string)),
        logo_uri: Set(params.logo_uri.as_ref().map(ToString::to_string)),
        policy_uri: Set(params.policy_uri.as_ref().map(ToString::to_string)),
        tos_uri: Set(params.tos_uri.as_ref().map(ToString::to_string)),
        application_type: Set(params.application_type.clone()),
        contacts: Set(to_json(&params.contacts)),
        metadata: Set(params.metadata.as_ref().map(to_json)),
        created_at: Set(created_at),
        first_used_at: sea_orm::ActiveValue::NotSet,
    }
}

/// The rows of `entity` whose `client_id` is the client of the enclosing statement.
fn naming_client<E: EntityTrait>(entity: E, client_id: E::Column) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(entity)
        .and_where(Expr::col((entity, client_id)).equals((clients::Entity, clients::Column::Id)))
        .to_owned()
}

#[async_trait]
impl ClientRepository for Repo<'_> {
    #[tracing::instrument(name = "db.client.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<Client>, StorageError> {
        clients::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(client)
            .transpose()
    }

    #[tracing::instrument(name = "db.client.all_static", skip_all)]
    async fn all_static(&mut self) -> Result<Vec<Client>, StorageError> {
        clients::Entity::find()
            .filter(clients::Column::IsStatic.eq(true))
            .all(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .into_iter()
            .map(client)
            .collect::<Result<Vec<_>, _>>()
            .map(|mut all| {
                all.sort_by_key(|c| c.id);
                all
            })
    }

    #[tracing::instrument(name = "db.client.upsert_static", skip_all)]
    async fn upsert_static(
        &mut self,
        clock: &dyn Clock,
        id: Ulid,
        params: ClientParams,
    ) -> Result<Client, StorageError> {
        let existing = clients::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        let created_at = match existing {
            Some(row) if !row.is_static => {
                return Err(StorageError::Conflict(format!(
                    "client {id} was registered dynamically"
                )));
            }
            Some(row) => {
                let model = client_model(id, true, &params, row.created_at);
                clients::Entity::update(model)
                    .exec(&self.conn)
                    .await
                    .map_err(|e| self.db_err(e))?;
                row.created_at
            }
            None => {
                let created_at = now(clock);
                clients::Entity::insert(client_model(id, true, &params, created_at))
                    .exec_without_returning(&self.conn)
                    .await
                    .map_err(|e| self.db_err(e))?;
                created_at
            }
        };
        Ok(params.into_client(id, ClientKind::Static, created_at))
    }

    #[tracing::instrument(name = "db.client.add_dynamic", skip_all)]
    async fn add_dynamic(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        params: ClientParams,
    ) -> Result<Client, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        clients::Entity::insert(client_model(id, false, &params, created_at))
            .exec_without_returning(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(params.into_client(id, ClientKind::Dynamic, created_at))
    }

    #[tracing::instrument(name = "db.client.delete", skip_all)]
    async fn delete(&mut self, client: Client) -> Result<(), StorageError> {
        // Foreign keys cascade to sessions, grants and their tokens.
        clients::Entity::delete_by_id(client.id.to_string())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        self.revoked(&[client.id]).await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.client.record_assertion", skip_all)]
    async fn record_assertion(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let id = new_id(rng, now(clock));
        // Scoped to the client: two clients may pick the same jti.
        let jti_hash = hash_token(&format!("{client_id}:{jti}"));
        let result = jtis::Entity::insert(jtis::ActiveModel {
            id: Set(id.to_string()),
            client_id: Set(client_id.to_string()),
            jti_hash: Set(jti_hash),
            expires_at: Set(expires_at),
        })
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(jtis::Column::JtiHash)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.conn)
        .await;
        match result {
            Ok(rows) => Ok(rows == 1),
            Err(sea_orm::DbErr::RecordNotInserted) => Ok(false),
            Err(e) => Err(self.db_err(e)),
        }
    }

    #[tracing::instrument(name = "db.client.cleanup_assertions", skip_all)]
    async fn cleanup_assertions(&mut self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let result = jtis::Entity::delete_many()
            .filter(jtis::Column::ExpiresAt.lt(before))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }

    #[tracing::instrument(name = "db.client.cleanup_unused", skip_all)]
    async fn cleanup_unused(
        &mut self,
        registered_before: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        // Every table with a foreign key to clients (assertion jti records have none, and
        // expire within minutes). A client none of them names has no session, so no token
        // depends on it and no revocation needs announcing.
        let result = clients::Entity::delete_many()
            .filter(clients::Column::IsStatic.eq(false))
            .filter(clients::Column::CreatedAt.lt(registered_before))
            .filter(clients::Column::FirstUsedAt.is_null())
            .filter(Expr::not_exists(naming_client(
                sessions::Entity,
                sessions::Column::ClientId,
            )))
            .filter(Expr::not_exists(naming_client(
                grants::Entity,
                grants::Column::ClientId,
            )))
            .filter(Expr::not_exists(naming_client(
                device_grants::Entity,
                device_grants::Column::ClientId,
            )))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }

    #[tracing::instrument(name = "db.client.list", skip_all)]
    async fn list(&mut self, pagination: Pagination) -> Result<Page<Client>, StorageError> {
        self.page(
            clients::Entity::find(),
            clients::Column::Id,
            &pagination,
            client,
        )
        .await
    }
}

fn grant(m: grants::Model) -> Result<AuthorizationGrant, StorageError> {
    const T: &str = "oauth2_authorization_grants";
    let response_mode =
        ResponseMode::parse(&m.response_mode).ok_or_else(|| StorageError::InvalidData {
            table: T,
            reason: format!("unknown response mode {}", m.response_mode),
        })?;
    let pkce = match (m.code_challenge_method, m.code_challenge) {
        (Some(method), Some(challenge)) => Some(Pkce { method, challenge }),
        _ => None,
    };
    Ok(AuthorizationGrant {
        id: ulid(T, &m.id)?,
        client_id: ulid(T, &m.client_id)?,
        redirect_uri: url(T, &m.redirect_uri)?,
        scope: m.scope,
        state: m.state,
        nonce: m.nonce,
        response_mode,
        response_type_id_token: m.response_type_id_token,
        code: Some(AuthorizationCode { pkce }),
        max_age: m.max_age.map(|a| unsigned(T, a)).transpose()?,
        login_hint: m.login_hint,
        prompt: m.prompt,
        created_at: m.created_at,
        fulfilled_at: m.fulfilled_at,
        exchanged_at: m.exchanged_at,
        cancelled_at: m.cancelled_at,
        session_id: ulid_opt(T, m.session_id.as_deref())?,
    })
}

impl Repo<'_> {
    /// Marks a live refresh token consumed in exchange for `next` (and revoked too, when
    /// `revoke`), conditionally: `None` when it was already consumed or revoked.
    async fn replace_refresh_token(
        &self,
        clock: &dyn Clock,
        mut token: RefreshToken,
        next: &RefreshToken,
        revoke: bool,
    ) -> Result<Option<RefreshToken>, StorageError> {
        let at = now(clock);
        let mut update = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::ConsumedAt, Expr::value(at))
            .col_expr(
                refresh_tokens::Column::NextTokenId,
                Expr::value(next.id.to_string()),
            );
        if revoke {
            update = update.col_expr(refresh_tokens::Column::RevokedAt, Expr::value(at));
        }
        let result = update
            .filter(refresh_tokens::Column::Id.eq(token.id.to_string()))
            .filter(refresh_tokens::Column::ConsumedAt.is_null())
            .filter(refresh_tokens::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        token.consumed_at = Some(at);
        if revoke {
            token.revoked_at = Some(at);
        }
        token.next_token_id = Some(next.id);
        Ok(Some(token))
    }

    /// Records that a registered client started its first authorization, once: the
    /// cleanup keeps clients that were ever used (apps keep their registration).
    async fn mark_client_used(
        &self,
        client_id: Ulid,
        at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        clients::Entity::update_many()
            .col_expr(clients::Column::FirstUsedAt, Expr::value(at))
            .filter(clients::Column::Id.eq(client_id.to_string()))
            .filter(clients::Column::FirstUsedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }
}

#[async_trait]
impl AuthorizationGrantRepository for Repo<'_> {
    #[tracing::instrument(name = "db.authorization_grant.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        new: NewAuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let pkce = new.pkce.clone();
        let max_age = new.max_age.map(|a| i32::try_from(a).unwrap_or(i32::MAX));
        grants::Entity::insert(grants::ActiveModel {
            id: Set(id.to_string()),
            client_id: Set(new.client_id.to_string()),
            redirect_uri: Set(new.redirect_uri.to_string()),
            scope: Set(new.scope.clone()),
            state: Set(new.state.clone()),
            nonce: Set(new.nonce.clone()),
            response_mode: Set(new.response_mode.as_str().to_owned()),
            response_type_id_token: Set(new.response_type_id_token),
            code_hash: Set(None),
            code_challenge: Set(pkce.as_ref().map(|p| p.challenge.clone())),
            code_challenge_method: Set(pkce.as_ref().map(|p| p.method.clone())),
            max_age: Set(max_age),
            login_hint: Set(new.login_hint.clone()),
            prompt: Set(new.prompt.clone()),
            created_at: Set(created_at),
            fulfilled_at: Set(None),
            exchanged_at: Set(None),
            cancelled_at: Set(None),
            session_id: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        self.mark_client_used(new.client_id, created_at).await?;
        Ok(AuthorizationGrant {
            id,
            client_id: new.client_id,
            redirect_uri: new.redirect_uri,
            scope: new.scope,
            state: new.state,
            nonce: new.nonce,
            response_mode: new.response_mode,
            response_type_id_token: new.response_type_id_token,
            code: Some(AuthorizationCode { pkce: new.pkce }),
            max_age: new.max_age,
            login_hint: new.login_hint,
            prompt: new.prompt,
            created_at,
            fulfilled_at: None,
            exchanged_at: None,
            cancelled_at: None,
            session_id: None,
        })
    }

    #[tracing::instrument(name = "db.authorization_grant.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<AuthorizationGrant>, StorageError> {
        grants::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(grant)
            .transpose()
    }

    #[tracing::instrument(name = "db.authorization_grant.find_by_code", skip_all)]
    async fn find_by_code(
        &mut self,
        code: &str,
    ) -> Result<Option<AuthorizationGrant>, StorageError> {
        grants::Entity::find()
            .filter(grants::Column::CodeHash.eq(hash_token(code)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(grant)
            .transpose()
    }

    #[tracing::instrument(name = "db.authorization_grant.fulfill", skip_all)]
    async fn fulfill(
        &mut self,
        clock: &dyn Clock,
        mut grant: AuthorizationGrant,
        session: &Session,
        code: &str,
    ) -> Result<AuthorizationGrant, StorageError> {
        let at = now(clock);
        let result = grants::Entity::update_many()
            .col_expr(grants::Column::FulfilledAt, Expr::value(at))
            .col_expr(grants::Column::CodeHash, Expr::value(hash_token(code)))
            .col_expr(
                grants::Column::SessionId,
                Expr::value(session.id.to_string()),
            )
            .filter(grants::Column::Id.eq(grant.id.to_string()))
            .filter(grants::Column::FulfilledAt.is_null())
            .filter(grants::Column::CancelledAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Err(gone("oauth2_authorization_grants"));
        }
        grant.fulfilled_at = Some(at);
        grant.session_id = Some(session.id);
        Ok(grant)
    }

    #[tracing::instrument(name = "db.authorization_grant.exchange", skip_all)]
    async fn exchange(
        &mut self,
        clock: &dyn Clock,
        mut grant: AuthorizationGrant,
    ) -> Result<Option<AuthorizationGrant>, StorageError> {
        let at = now(clock);
        let result = grants::Entity::update_many()
            .col_expr(grants::Column::ExchangedAt, Expr::value(at))
            .filter(grants::Column::Id.eq(grant.id.to_string()))
            .filter(grants::Column::ExchangedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        grant.exchanged_at = Some(at);
        Ok(Some(grant))
    }

    #[tracing::instrument(name = "db.authorization_grant.cancel", skip_all)]
    async fn cancel(
        &mut self,
        clock: &dyn Clock,
        mut grant: AuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError> {
        let at = now(clock);
        let result = grants::Entity::update_many()
            .col_expr(grants::Column::CancelledAt, Expr::value(at))
            .filter(grants::Column::Id.eq(grant.id.to_string()))
            .filter(grants::Column::FulfilledAt.is_null())
            .filter(grants::Column::CancelledAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        // A grant is answered once: a refusal racing a consent must not cancel the code
        // the consent issued.
        if result.rows_affected == 0 {
            return Err(gone("oauth2_authorization_grants"));
        }
        grant.cancelled_at = Some(at);
        Ok(grant)
    }

    #[tracing::instrument(name = "db.authorization_grant.cleanup", skip_all)]
    async fn cleanup(&mut self, created_before: DateTime<Utc>) -> Result<u64, StorageError> {
        // Nothing refers to a grant, and deleting one leaves its session alone.
        let result = grants::Entity::delete_many()
            .filter(grants::Column::CreatedAt.lt(created_before))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }
}

fn session(m: sessions::Model) -> Result<Session, StorageError> {
    const T: &str = "oauth2_sessions";
    Ok(Session {
        id: ulid(T, &m.id)?,
        user_id: ulid_opt(T, m.user_id.as_deref())?,
        browser_session_id: ulid_opt(T, m.browser_session_id.as_deref())?,
        client_id: ulid(T, &m.client_id)?,
        scope: m.scope,
        created_at: m.created_at,
        finished_at: m.finished_at,
        user_agent: m.user_agent,
        last_activity: LastActivity {
            at: m.last_active_at,
            ip: m.last_active_ip,
        },
        human_name: m.human_name,
    })
}

fn session_condition(filter: SessionFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(user) = filter.user_id {
        condition = condition.add(sessions::Column::UserId.eq(user.to_string()));
    }
    if let Some(client) = filter.client_id {
        condition = condition.add(sessions::Column::ClientId.eq(client.to_string()));
    }
    match filter.active {
        Some(true) => condition = condition.add(sessions::Column::FinishedAt.is_null()),
        Some(false) => condition = condition.add(sessions::Column::FinishedAt.is_not_null()),
        None => {}
    }
    condition
}

#[async_trait]
impl SessionRepository for Repo<'_> {
    #[tracing::instrument(name = "db.session.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<Session>, StorageError> {
        sessions::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(session)
            .transpose()
    }

    #[tracing::instrument(name = "db.session.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        user_id: Option<Ulid>,
        browser_session_id: Option<Ulid>,
        scope: &str,
        user_agent: Option<String>,
    ) -> Result<Session, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        sessions::Entity::insert(sessions::ActiveModel {
            id: Set(id.to_string()),
            user_id: Set(user_id.map(|u| u.to_string())),
            browser_session_id: Set(browser_session_id.map(|b| b.to_string())),
            client_id: Set(client_id.to_string()),
            scope: Set(scope.to_owned()),
            created_at: Set(created_at),
            finished_at: Set(None),
            user_agent: Set(user_agent.clone()),
            last_active_at: Set(None),
            last_active_ip: Set(None),
            human_name: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(Session {
            id,
            user_id,
            browser_session_id,
            client_id,
            scope: scope.to_owned(),
            created_at,
            finished_at: None,
            user_agent,
            last_activity: LastActivity::default(),
            human_name: None,
        })
    }

    #[tracing::instrument(name = "db.session.finish", skip_all)]
    async fn finish(
        &mut self,
        clock: &dyn Clock,
        mut session: Session,
    ) -> Result<Session, StorageError> {
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

    #[tracing::instrument(name = "db.session.finish_all", skip_all)]
    async fn finish_all(
        &mut self,
        clock: &dyn Clock,
        filter: SessionFilter,
    ) -> Result<u64, StorageError> {
        let key = filter.user_id.or(filter.client_id);
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::FinishedAt, Expr::value(now(clock)))
            .filter(session_condition(filter))
            .filter(sessions::Column::FinishedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected > 0 {
            match key {
                Some(key) => self.revoked(&[key]).await?,
                None => self.revoked_all().await?,
            }
        }
        Ok(result.rows_affected)
    }

    #[tracing::instrument(name = "db.session.list", skip_all)]
    async fn list(
        &mut self,
        filter: SessionFilter,
        pagination: Pagination,
    ) -> Result<Page<Session>, StorageError> {
        self.page(
            sessions::Entity::find().filter(session_condition(filter)),
            sessions::Column::Id,
            &pagination,
            session,
        )
        .await
    }

    #[tracing::instrument(name = "db.session.count", skip_all)]
    async fn count(&mut self, filter: SessionFilter) -> Result<u64, StorageError> {
        sessions::Entity::find()
            .filter(session_condition(filter))
            .count(&self.conn)
            .await
            .map_err(|e| self.db_err(e))
    }

    #[tracing::instrument(name = "db.session.set_human_name", skip_all)]
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

    #[tracing::instrument(name = "db.session.record_activity", skip_all)]
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

fn access_token(m: access_tokens::Model) -> Result<AccessToken, StorageError> {
    const T: &str = "oauth2_access_tokens";
    Ok(AccessToken {
        id: ulid(T, &m.id)?,
        session_id: ulid(T, &m.session_id)?,
        created_at: m.created_at,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
        first_used_at: m.first_used_at,
    })
}

#[async_trait]
impl AccessTokenRepository for Repo<'_> {
    #[tracing::instrument(name = "db.access_token.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<AccessToken, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let expires_at = ttl.map(|ttl| created_at + ttl);
        access_tokens::Entity::insert(access_tokens::ActiveModel {
            id: Set(id.to_string()),
            session_id: Set(session.id.to_string()),
            token_hash: Set(hash_token(token)),
            created_at: Set(created_at),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            first_used_at: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(AccessToken {
            id,
            session_id: session.id,
            created_at,
            expires_at,
            revoked_at: None,
            first_used_at: None,
        })
    }

    #[tracing::instrument(name = "db.access_token.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<AccessToken>, StorageError> {
        access_tokens::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(access_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.access_token.find_by_token", skip_all)]
    async fn find_by_token(&mut self, token: &str) -> Result<Option<AccessToken>, StorageError> {
        access_tokens::Entity::find()
            .filter(access_tokens::Column::TokenHash.eq(hash_token(token)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(access_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.access_token.mark_used", skip_all)]
    async fn mark_used(
        &mut self,
        clock: &dyn Clock,
        mut token: AccessToken,
    ) -> Result<AccessToken, StorageError> {
        if token.first_used_at.is_some() {
            return Ok(token);
        }
        let at = now(clock);
        access_tokens::Entity::update_many()
            .col_expr(access_tokens::Column::FirstUsedAt, Expr::value(at))
            .filter(access_tokens::Column::Id.eq(token.id.to_string()))
            .filter(access_tokens::Column::FirstUsedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        token.first_used_at = Some(at);
        Ok(token)
    }

    #[tracing::instrument(name = "db.access_token.revoke", skip_all)]
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        mut token: AccessToken,
    ) -> Result<AccessToken, StorageError> {
        let at = now(clock);
        access_tokens::Entity::update_many()
            .col_expr(access_tokens::Column::RevokedAt, Expr::value(at))
            .filter(access_tokens::Column::Id.eq(token.id.to_string()))
            .filter(access_tokens::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        self.revoked(&[token.session_id]).await?;
        token.revoked_at.get_or_insert(at);
        Ok(token)
    }

    #[tracing::instrument(name = "db.access_token.revoke_all_in_session", skip_all)]
    async fn revoke_all_in_session(
        &mut self,
        clock: &dyn Clock,
        session_id: Ulid,
    ) -> Result<u64, StorageError> {
        let result = access_tokens::Entity::update_many()
            .col_expr(access_tokens::Column::RevokedAt, Expr::value(now(clock)))
            .filter(access_tokens::Column::SessionId.eq(session_id.to_string()))
            .filter(access_tokens::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected > 0 {
            self.revoked(&[session_id]).await?;
        }
        Ok(result.rows_affected)
    }

    #[tracing::instrument(name = "db.access_token.cleanup", skip_all)]
    async fn cleanup(&mut self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let result = access_tokens::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(access_tokens::Column::ExpiresAt.lt(before))
                    .add(access_tokens::Column::RevokedAt.lt(before)),
            )
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }
}

fn refresh_token(m: refresh_tokens::Model) -> Result<RefreshToken, StorageError> {
    const T: &str = "oauth2_refresh_tokens";
    Ok(RefreshToken {
        id: ulid(T, &m.id)?,
        session_id: ulid(T, &m.session_id)?,
        access_token_id: ulid_opt(T, m.access_token_id.as_deref())?,
        created_at: m.created_at,
        consumed_at: m.consumed_at,
        revoked_at: m.revoked_at,
        next_token_id: ulid_opt(T, m.next_token_id.as_deref())?,
    })
}

#[async_trait]
impl RefreshTokenRepository for Repo<'_> {
    #[tracing::instrument(name = "db.refresh_token.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        access_token: &AccessToken,
        token: &str,
    ) -> Result<RefreshToken, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
            id: Set(id.to_string()),
            session_id: Set(session.id.to_string()),
            access_token_id: Set(Some(access_token.id.to_string())),
            token_hash: Set(hash_token(token)),
            created_at: Set(created_at),
            consumed_at: Set(None),
            revoked_at: Set(None),
            next_token_id: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        Ok(RefreshToken {
            id,
            session_id: session.id,
            access_token_id: Some(access_token.id),
            created_at,
            consumed_at: None,
            revoked_at: None,
            next_token_id: None,
        })
    }

    #[tracing::instrument(name = "db.refresh_token.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<RefreshToken>, StorageError> {
        refresh_tokens::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(refresh_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.refresh_token.find_by_token", skip_all)]
    async fn find_by_token(&mut self, token: &str) -> Result<Option<RefreshToken>, StorageError> {
        refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(hash_token(token)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(refresh_token)
            .transpose()
    }

    #[tracing::instrument(name = "db.refresh_token.consume", skip_all)]
    async fn consume(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError> {
        self.replace_refresh_token(clock, token, next, false).await
    }

    #[tracing::instrument(name = "db.refresh_token.supersede", skip_all)]
    async fn supersede(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError> {
        self.replace_refresh_token(clock, token, next, true).await
    }

    #[tracing::instrument(name = "db.refresh_token.revoke_all_in_session", skip_all)]
    async fn revoke_all_in_session(
        &mut self,
        clock: &dyn Clock,
        session_id: Ulid,
    ) -> Result<u64, StorageError> {
        let result = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(now(clock)))
            .filter(refresh_tokens::Column::SessionId.eq(session_id.to_string()))
            .filter(refresh_tokens::Column::RevokedAt.is_null())
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }

    #[tracing::instrument(name = "db.refresh_token.cleanup", skip_all)]
    async fn cleanup(&mut self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        // A consumed token is kept while its successor is still unconsumed: presenting it
        // again must be recognised as a replay (or an idempotent retry), not as unknown.
        let successors_in_use = Query::select()
            .column(refresh_tokens::Column::Id)
            .from(refresh_tokens::Entity)
            .and_where(refresh_tokens::Column::ConsumedAt.is_null())
            .and_where(refresh_tokens::Column::RevokedAt.is_null())
            .to_owned();
        let result = refresh_tokens::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(refresh_tokens::Column::RevokedAt.lt(before))
                    .add(
                        Condition::all()
                            .add(refresh_tokens::Column::ConsumedAt.lt(before))
                            .add(
                                Condition::any()
                                    .add(refresh_tokens::Column::NextTokenId.is_null())
                                    .add(
                                        refresh_tokens::Column::NextTokenId
                                            .not_in_subquery(successors_in_use),
                                    ),
                            ),
                    ),
            )
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }
}

fn device_grant(m: device_grants::Model) -> Result<DeviceCodeGrant, StorageError> {
    const T: &str = "oauth2_device_code_grants";
    let state = if m.exchanged_at.is_some() {
        DeviceCodeGrantState::Exchanged
    } else if m.rejected_at.is_some() {
        DeviceCodeGrantState::Rejected
    } else if m.fulfilled_at.is_some() {
        DeviceCodeGrantState::Fulfilled
    } else {
        DeviceCodeGrantState::Pending
    };
    Ok(DeviceCodeGrant {
        id: ulid(T, &m.id)?,
        client_id: ulid(T, &m.client_id)?,
        scope: m.scope,
        user_code: m.user_code,
        created_at: m.created_at,
        expires_at: m.expires_at,
        state,
        browser_session_id: ulid_opt(T, m.browser_session_id.as_deref())?,
        session_id: ulid_opt(T, m.session_id.as_deref())?,
        ip_address: m.ip_address,
        user_agent: m.user_agent,
    })
}

impl Repo<'_> {
    /// Moves a device grant on with a conditional update, then reads it back.
    async fn advance_device_grant(
        &self,
        grant: &DeviceCodeGrant,
        set: Vec<(device_grants::Column, sea_orm::Value)>,
        only_if: Condition,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        let mut update = device_grants::Entity::update_many();
        for (column, value) in set {
            update = update.col_expr(column, Expr::value(value));
        }
        let result = update
            .filter(device_grants::Column::Id.eq(grant.id.to_string()))
            .filter(only_if)
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        device_grants::Entity::find_by_id(grant.id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(device_grant)
            .transpose()
    }
}

fn pending() -> Condition {
    Condition::all()
        .add(device_grants::Column::FulfilledAt.is_null())
        .add(device_grants::Column::RejectedAt.is_null())
        .add(device_grants::Column::ExchangedAt.is_null())
}

#[async_trait]
impl DeviceCodeGrantRepository for Repo<'_> {
    #[tracing::instrument(name = "db.device_code_grant.add", skip_all)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        new: NewDeviceCodeGrant,
    ) -> Result<DeviceCodeGrant, StorageError> {
        let created_at = now(clock);
        let id = new_id(rng, created_at);
        let expires_at = created_at + new.expires_in;
        device_grants::Entity::insert(device_grants::ActiveModel {
            id: Set(id.to_string()),
            client_id: Set(new.client_id.to_string()),
            scope: Set(new.scope.clone()),
            device_code_hash: Set(hash_token(&new.device_code)),
            user_code: Set(new.user_code.clone()),
            created_at: Set(created_at),
            expires_at: Set(expires_at),
            fulfilled_at: Set(None),
            rejected_at: Set(None),
            exchanged_at: Set(None),
            browser_session_id: Set(None),
            session_id: Set(None),
            ip_address: Set(new.ip_address.clone()),
            user_agent: Set(new.user_agent.clone()),
            last_polled_at: Set(None),
        })
        .exec_without_returning(&self.conn)
        .await
        .map_err(|e| self.db_err(e))?;
        self.mark_client_used(new.client_id, created_at).await?;
        Ok(DeviceCodeGrant {
            id,
            client_id: new.client_id,
            scope: new.scope,
            user_code: new.user_code,
            created_at,
            expires_at,
            state: DeviceCodeGrantState::Pending,
            browser_session_id: None,
            session_id: None,
            ip_address: new.ip_address,
            user_agent: new.user_agent,
        })
    }

    #[tracing::instrument(name = "db.device_code_grant.lookup", skip_all)]
    async fn lookup(&mut self, id: Ulid) -> Result<Option<DeviceCodeGrant>, StorageError> {
        device_grants::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(device_grant)
            .transpose()
    }

    #[tracing::instrument(name = "db.device_code_grant.find_by_user_code", skip_all)]
    async fn find_by_user_code(
        &mut self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        device_grants::Entity::find()
            .filter(device_grants::Column::UserCode.eq(user_code))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(device_grant)
            .transpose()
    }

    #[tracing::instrument(name = "db.device_code_grant.find_by_device_code", skip_all)]
    async fn find_by_device_code(
        &mut self,
        device_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        device_grants::Entity::find()
            .filter(device_grants::Column::DeviceCodeHash.eq(hash_token(device_code)))
            .one(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?
            .map(device_grant)
            .transpose()
    }

    #[tracing::instrument(name = "db.device_code_grant.fulfill", skip_all)]
    async fn fulfill(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        browser_session_id: Ulid,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        let set = vec![
            (device_grants::Column::FulfilledAt, Some(now(clock)).into()),
            (
                device_grants::Column::BrowserSessionId,
                Some(browser_session_id.to_string()).into(),
            ),
        ];
        self.advance_device_grant(&grant, set, pending()).await
    }

    #[tracing::instrument(name = "db.device_code_grant.reject", skip_all)]
    async fn reject(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        browser_session_id: Ulid,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        let set = vec![
            (device_grants::Column::RejectedAt, Some(now(clock)).into()),
            (
                device_grants::Column::BrowserSessionId,
                Some(browser_session_id.to_string()).into(),
            ),
        ];
        self.advance_device_grant(&grant, set, pending()).await
    }

    #[tracing::instrument(name = "db.device_code_grant.record_poll", skip_all)]
    async fn record_poll(
        &mut self,
        clock: &dyn Clock,
        grant: &DeviceCodeGrant,
        interval: Duration,
    ) -> Result<bool, StorageError> {
        let now = now(clock);
        let set = vec![(device_grants::Column::LastPolledAt, Some(now).into())];
        let only_if = Condition::any()
            .add(device_grants::Column::LastPolledAt.is_null())
            .add(device_grants::Column::LastPolledAt.lte(now - interval));
        Ok(self
            .advance_device_grant(grant, set, only_if)
            .await?
            .is_some())
    }

    #[tracing::instrument(name = "db.device_code_grant.exchange", skip_all)]
    async fn exchange(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        session: &Session,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        let set = vec![
            (device_grants::Column::ExchangedAt, Some(now(clock)).into()),
            (
                device_grants::Column::SessionId,
                Some(session.id.to_string()).into(),
            ),
        ];
        let only_if = Condition::all()
            .add(device_grants::Column::FulfilledAt.is_not_null())
            .add(device_grants::Column::RejectedAt.is_null())
            .add(device_grants::Column::ExchangedAt.is_null());
        self.advance_device_grant(&grant, set, only_if).await
    }

    #[tracing::instrument(name = "db.device_code_grant.cleanup", skip_all)]
    async fn cleanup(&mut self, expired_before: DateTime<Utc>) -> Result<u64, StorageError> {
        let result = device_grants::Entity::delete_many()
            .filter(device_grants::Column::ExpiresAt.lt(expired_before))
            .exec(&self.conn)
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(result.rows_affected)
    }
}
