//! The three kinds of sessions people hold: browser sessions (`user-sessions`),
//! compatibility sessions (`compat-sessions`) and OAuth 2.0 sessions (`oauth2-sessions`):
//! list, get, finish. Finishing a session with a device queues its removal from the
//! homeserver.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use mas_data_model::{BrowserSession, CompatSession, Session};
use mas_storage::jobs::HomeserverJob;
use mas_storage::repository::{BrowserSessionFilter, CompatSessionFilter, SessionFilter};
use serde::{Deserialize, Serialize};
use ulid::Ulid;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    Admin, AdminError, AdminResult, ErrorResponse, IdPath, ListQuery, PageParams,
    PaginatedResponse, Resource, SingleResponse, UlidSchema, listing, parse_id,
};
use crate::AppState;

/// Whether a session is open, for filters.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SessionStatus {
    /// Still open.
    Active,
    /// Ended.
    Finished,
}

fn active(status: Option<SessionStatus>) -> Option<bool> {
    status.map(|s| matches!(s, SessionStatus::Active))
}

/// The filters shared by the session lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionFilterParams {
    /// Only this user's sessions.
    #[serde(rename = "filter[user]")]
    #[param(value_type = Option<UlidSchema>)]
    user: Option<String>,
    /// Only open (`active`) or ended (`finished`) sessions.
    #[serde(rename = "filter[status]")]
    #[param(inline)]
    status: Option<SessionStatus>,
}

/// The filters of the OAuth 2.0 session list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OAuth2SessionFilterParams {
    /// Only this user's sessions.
    #[serde(rename = "filter[user]")]
    #[param(value_type = Option<UlidSchema>)]
    user: Option<String>,
    /// Only this client's sessions.
    #[serde(rename = "filter[client]")]
    #[param(value_type = Option<UlidSchema>)]
    client: Option<String>,
    /// Only open (`active`) or ended (`finished`) sessions.
    #[serde(rename = "filter[status]")]
    #[param(inline)]
    status: Option<SessionStatus>,
}

/// A browser session: a person signed in to this service's pages.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UserSession)]
pub(crate) struct UserSessionResource {
    #[serde(skip)]
    id: Ulid,
    /// When it started.
    created_at: DateTime<Utc>,
    /// When it ended; null while open.
    finished_at: Option<DateTime<Utc>>,
    /// Whose it is.
    #[schema(value_type = UlidSchema)]
    user_id: Ulid,
    /// The browser's user agent.
    user_agent: Option<String>,
    /// When it was last used.
    last_active_at: Option<DateTime<Utc>>,
    /// From where it was last used.
    last_active_ip: Option<String>,
}

impl From<BrowserSession> for UserSessionResource {
    fn from(s: BrowserSession) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            finished_at: s.finished_at,
            user_id: s.user_id,
            user_agent: s.user_agent,
            last_active_at: s.last_activity.at,
            last_active_ip: s.last_activity.ip,
        }
    }
}

impl Resource for UserSessionResource {
    const KIND: &'static str = "user-session";
    const PATH: &'static str = "/api/admin/v1/user-sessions";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// A compatibility session: a Matrix device logged in through `/login`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CompatSession)]
pub(crate) struct CompatSessionResource {
    #[serde(skip)]
    id: Ulid,
    /// Whose it is.
    #[schema(value_type = UlidSchema)]
    user_id: Ulid,
    /// The Matrix device.
    device_id: Option<String>,
    /// The browser session it was made from (SSO logins).
    #[schema(value_type = Option<UlidSchema>)]
    user_session_id: Option<Ulid>,
    /// When it started.
    created_at: DateTime<Utc>,
    /// The client's user agent.
    user_agent: Option<String>,
    /// When it was last used.
    last_active_at: Option<DateTime<Utc>>,
    /// From where it was last used.
    last_active_ip: Option<String>,
    /// When it ended; null while open.
    finished_at: Option<DateTime<Utc>>,
    /// The device's name.
    human_name: Option<String>,
}

impl From<CompatSession> for CompatSessionResource {
    fn from(s: CompatSession) -> Self {
        Self {
            id: s.id,
            user_id: s.user_id,
            device_id: s.device_id,
            user_session_id: s.browser_session_id,
            created_at: s.created_at,
            user_agent: s.user_agent,
            last_active_at: s.last_activity.at,
            last_active_ip: s.last_activity.ip,
            finished_at: s.finished_at,
            human_name: s.human_name,
        }
    }
}

impl Resource for CompatSessionResource {
    const KIND: &'static str = "compat-session";
    const PATH: &'static str = "/api/admin/v1/compat-sessions";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// An OAuth 2.0 session: what a client holds after a grant.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OAuth2Session)]
pub(crate) struct OAuth2SessionResource {
    #[serde(skip)]
    id: Ulid,
    /// When it started.
    created_at: DateTime<Utc>,
    /// When it ended; null while open.
    finished_at: Option<DateTime<Utc>>,
    /// Whose it is; null for a client acting alone.
    #[schema(value_type = Option<UlidSchema>)]
    user_id: Option<Ulid>,
    /// The browser session it was granted in.
    #[schema(value_type = Option<UlidSchema>)]
    user_session_id: Option<Ulid>,
    /// The client.
    #[schema(value_type = UlidSchema)]
    client_id: Ulid,
    /// The granted scope.
    scope: String,
    /// The client's user agent.
    user_agent: Option<String>,
    /// When it was last used.
    last_active_at: Option<DateTime<Utc>>,
    /// From where it was last used.
    last_active_ip: Option<String>,
    /// The device's name.
    human_name: Option<String>,
}

impl From<Session> for OAuth2SessionResource {
    fn from(s: Session) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            finished_at: s.finished_at,
            user_id: s.user_id,
            user_session_id: s.browser_session_id,
            client_id: s.client_id,
            scope: s.scope,
            user_agent: s.user_agent,
            last_active_at: s.last_activity.at,
            last_active_ip: s.last_activity.ip,
            human_name: s.human_name,
        }
    }
}

impl Resource for OAuth2SessionResource {
    const KIND: &'static str = "oauth2-session";
    const PATH: &'static str = "/api/admin/v1/oauth2-sessions";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// The routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_user_sessions))
        .routes(routes!(get_user_session))
        .routes(routes!(finish_user_session))
        .routes(routes!(list_compat_sessions))
        .routes(routes!(get_compat_session))
        .routes(routes!(finish_compat_session))
        .routes(routes!(list_oauth2_sessions))
        .routes(routes!(get_oauth2_session))
        .routes(routes!(finish_oauth2_session))
}

fn not_found(kind: &str, id: Ulid) -> AdminError {
    AdminError::NotFound(format!("{kind} {id} not found"))
}

fn user_filter(user: Option<&str>) -> AdminResult<Option<Ulid>> {
    user.map(parse_id).transpose()
}

/// List browser sessions.
#[utoipa::path(
    get,
    path = "/api/admin/v1/user-sessions",
    tag = "user-session",
    operation_id = "listUserSessions",
    params(PageParams, SessionFilterParams),
    responses((status = 200, description = "A page of browser sessions", body = PaginatedResponse<UserSessionResource>)),
)]
#[tracing::instrument(name = "handlers.admin.user_sessions.list", skip_all)]
async fn list_user_sessions(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<SessionFilterParams>,
) -> AdminResult<Json<PaginatedResponse<UserSessionResource>>> {
    let filter = BrowserSessionFilter {
        user_id: user_filter(query.filter.user.as_deref())?,
        active: active(query.filter.status),
    };
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.browser_session().list_by(filter, page),
        repo.browser_session().count(filter),
    );
    Ok(query.respond(listing.map(UserSessionResource::from)))
}

/// Get a browser session.
#[utoipa::path(
    get,
    path = "/api/admin/v1/user-sessions/{id}",
    tag = "user-session",
    operation_id = "getUserSession",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    responses(
        (status = 200, description = "The session", body = SingleResponse<UserSessionResource>),
        (status = 404, description = "No such session", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.user_sessions.get", skip_all)]
async fn get_user_session(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<Json<SingleResponse<UserSessionResource>>> {
    let mut repo = state.repos.reader().await?;
    let session = repo
        .browser_session()
        .lookup(id)
        .await?
        .ok_or_else(|| not_found("user session", id))?;
    Ok(SingleResponse::new(session.into()))
}

/// End a browser session; the clients that had a sign-in from it are told through
/// back-channel logout.
#[utoipa::path(
    post,
    path = "/api/admin/v1/user-sessions/{id}/finish",
    tag = "user-session",
    operation_id = "finishUserSession",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    responses(
        (status = 200, description = "The ended session", body = SingleResponse<UserSessionResource>),
        (status = 409, description = "The session has ended already", body = ErrorResponse),
        (status = 404, description = "No such session", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.user_sessions.finish", skip_all)]
async fn finish_user_session(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<Json<SingleResponse<UserSessionResource>>> {
    let mut repo = state.repos.begin().await?;
    let session = repo
        .browser_session()
        .lookup(id)
        .await?
        .ok_or_else(|| not_found("user session", id))?;
    if session.finished_at.is_some() {
        return Err(AdminError::Conflict(format!(
            "user session {id} has ended already"
        )));
    }
    let user = repo.user().lookup(session.user_id).await?;
    let session = repo
        .browser_session()
        .finish(state.clock.as_ref(), session)
        .await?;
    repo.save().await?;
    tracing::info!(session = %id, "admin API: browser session ended");
    if let Some(user) = user {
        crate::human::rp_logout::notify(&state, &user, std::slice::from_ref(&session)).await;
    }
    Ok(SingleResponse::new(session.into()))
}

/// List compatibility sessions.
#[utoipa::path(
    get,
    path = "/api/admin/v1/compat-sessions",
    tag = "compat-session",
    operation_id = "listCompatSessions",
    params(PageParams, SessionFilterParams),
    responses((status = 200, description = "A page of compatibility sessions", body = PaginatedResponse<CompatSessionResource>)),
)]
#[tracing::instrument(name = "handlers.admin.compat_sessions.list", skip_all)]
async fn list_compat_sessions(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<SessionFilterParams>,
) -> AdminResult<Json<PaginatedResponse<CompatSessionResource>>> {
    let filter = CompatSessionFilter {
        user_id: user_filter(query.filter.user.as_deref())?,
        active: active(query.filter.status),
    };
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.compat_session().list(filter, page),
        repo.compat_session().count(filter),
    );
    Ok(query.respond(listing.map(CompatSessionResource::from)))
}

/// Get a compatibility session.
#[utoipa::path(
    get,
    path = "/api/admin/v1/compat-sessions/{id}",
    tag = "compat-session",
    operation_id = "getCompatSession",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    responses(
        (status = 200, description = "The session", body = SingleResponse<CompatSessionResource>),
        (status = 404, description = "No such session", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.compat_sessions.get", skip_all)]
async fn get_compat_session(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<Json<SingleResponse<CompatSessionResource>>> {
    let mut repo = state.repos.reader().await?;
    let session = repo
        .compat_session()
        .lookup(id)
        .await?
        .ok_or_else(|| not_found("compatibility session", id))?;
    Ok(SingleResponse::new(session.into()))
}

/// Queues the removal of a device from the homeserver, in the caller's unit of work.
async fn delete_device(
    repo: &mut mas_storage::BoxRepository,
    state: &AppState,
    user_id: Ulid,
    device_id: Option<String>,
) -> AdminResult<()> {
    if let Some(device_id) = device_id {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let job = HomeserverJob::DeleteDevice { user_id, device_id };
        repo.job()
            .schedule(&mut rng, state.clock.as_ref(), job.to_job())
            .await?;
    }
    Ok(())
}

/// End a compatibility session; its device is removed from the homeserver.
#[utoipa::path(
    post,
    path = "/api/admin/v1/compat-sessions/{id}/finish",
    tag = "compat-session",
    operation_id = "finishCompatSession",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    responses(
        (status = 200, description = "The ended session", body = SingleResponse<CompatSessionResource>),
        (status = 409, description = "The session has ended already", body = ErrorResponse),
        (status = 404, description = "No such session", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.compat_sessions.finish", skip_all)]
async fn finish_compat_session(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<Json<SingleResponse<CompatSessionResource>>> {
    let mut repo = state.repos.begin().await?;
    let session = repo
        .compat_session()
        .lookup(id)
        .await?
        .ok_or_else(|| not_found("compatibility session", id))?;
    if session.finished_at.is_some() {
        return Err(AdminError::Conflict(format!(
            "compatibility session {id} has ended already"
        )));
    }
    let session = repo
        .compat_session()
        .finish(state.clock.as_ref(), session)
        .await?;
    delete_device(
        &mut repo,
        &state,
        session.user_id,
        session.device_id.clone(),
    )
    .await?;
    repo.save().await?;
    tracing::info!(session = %id, "admin API: compatibility session ended");
    Ok(SingleResponse::new(session.into()))
}

/// List OAuth 2.0 sessions.
#[utoipa::path(
    get,
    path = "/api/admin/v1/oauth2-sessions",
    tag = "oauth2-session",
    operation_id = "listOAuth2Sessions",
    params(PageParams, OAuth2SessionFilterParams),
    responses((status = 200, description = "A page of OAuth 2.0 sessions", body = PaginatedResponse<OAuth2SessionResource>)),
)]
#[tracing::instrument(name = "handlers.admin.oauth2_sessions.list", skip_all)]
async fn list_oauth2_sessions(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<OAuth2SessionFilterParams>,
) -> AdminResult<Json<PaginatedResponse<OAuth2SessionResource>>> {
    let filter = SessionFilter {
        user_id: user_filter(query.filter.user.as_deref())?,
        client_id: query.filter.client.as_deref().map(parse_id).transpose()?,
        active: active(query.filter.status),
    };
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.session().list(filter, page),
        repo.session().count(filter),
    );
    Ok(query.respond(listing.map(OAuth2SessionResource::from)))
}

/// Get an OAuth 2.0 session.
#[utoipa::path(
    get,
    path = "/api/admin/v1/oauth2-sessions/{id}",
    tag = "oauth2-session",
    operation_id = "getOAuth2Session",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    responses(
        (status = 200, description = "The session", body = SingleResponse<OAuth2SessionResource>),
        (status = 404, description = "No such session", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.oauth2_sessions.get", skip_all)]
async fn get_oauth2_session(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<Json<SingleResponse<OAuth2SessionResource>>> {
    let mut repo = state.repos.reader().await?;
    let session = repo
        .session()
        .lookup(id)
        .await?
        .ok_or_else(|| not_found("OAuth 2.0 session", id))?;
    Ok(SingleResponse::new(session.into()))
}

/// End an OAuth 2.0 session; its device, if it has one, is removed from the homeserver.
#[utoipa::path(
    post,
    path = "/api/admin/v1/oauth2-sessions/{id}/finish",
    tag = "oauth2-session",
    operation_id = "finishOAuth2Session",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    responses(
        (status = 200, description = "The ended session", body = SingleResponse<OAuth2SessionResource>),
        (status = 409, description = "The session has ended already", body = ErrorResponse),
        (status = 404, description = "No such session", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.oauth2_sessions.finish", skip_all)]
async fn finish_oauth2_session(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<Json<SingleResponse<OAuth2SessionResource>>> {
    let mut repo = state.repos.begin().await?;
    let session = repo
        .session()
        .lookup(id)
        .await?
        .ok_or_else(|| not_found("OAuth 2.0 session", id))?;
    if session.finished_at.is_some() {
        return Err(AdminError::Conflict(format!(
            "OAuth 2.0 session {id} has ended already"
        )));
    }
    let session = repo.session().finish(state.clock.as_ref(), session).await?;
    if let Some(user_id) = session.user_id {
        let device = mas_data_model::device_of(&session.scope);
        delete_device(&mut repo, &state, user_id, device).await?;
    }
    repo.save().await?;
    tracing::info!(session = %id, "admin API: OAuth 2.0 session ended");
    Ok(SingleResponse::new(session.into()))
}
