//! `/api/admin/v1/personal-sessions`: personal access tokens (`mpt_`) for scripts and
//! bots: list, get, add, revoke, and regenerate (a new token for the same session).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mas_data_model::{PersonalAccessToken, PersonalSession, PersonalSessionOwner};
use mas_oauth_core::tokens::PersonalRefusal;
use mas_storage::BoxRepository;
use mas_storage::repository::PersonalSessionFilter;
use serde::{Deserialize, Serialize};
use ulid::Ulid;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    Admin, AdminError, AdminResult, Body, ErrorResponse, IdPath, ListQuery, OptionalBody,
    PageParams, PaginatedResponse, Resource, SingleResponse, UlidSchema, Whole, listing, parse_id,
};
use crate::AppState;

/// The longest life a token may be given: ten years, in seconds.
const MAX_EXPIRES_IN: u32 = 315_360_000;

/// A personal session and, right after it is made or regenerated, its token.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PersonalSession)]
pub(crate) struct PersonalSessionResource {
    #[serde(skip)]
    id: Ulid,
    /// When it was created.
    created_at: DateTime<Utc>,
    /// When it was revoked; null while it holds.
    revoked_at: Option<DateTime<Utc>>,
    /// The user who created it, if a user did.
    #[schema(value_type = Option<UlidSchema>)]
    owner_user_id: Option<Ulid>,
    /// The client that created it, if a client did.
    #[schema(value_type = Option<UlidSchema>)]
    owner_client_id: Option<Ulid>,
    /// The user its tokens act as.
    #[schema(value_type = UlidSchema)]
    actor_user_id: Ulid,
    /// Its name.
    human_name: String,
    /// The scope its tokens carry.
    scope: String,
    /// When it was last used.
    last_active_at: Option<DateTime<Utc>>,
    /// From where it was last used.
    last_active_ip: Option<String>,
    /// When its current token expires; null when it never does, or has no token.
    expires_at: Option<DateTime<Utc>>,
    /// The token itself: only in the answer that made it, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
}

impl PersonalSessionResource {
    fn new(
        session: PersonalSession,
        token: Option<&PersonalAccessToken>,
        value: Option<String>,
    ) -> Self {
        let (owner_user_id, owner_client_id) = match session.owner {
            PersonalSessionOwner::User(user) => (Some(user), None),
            PersonalSessionOwner::Client(client) => (None, Some(client)),
        };
        Self {
            id: session.id,
            created_at: session.created_at,
            revoked_at: session.revoked_at,
            owner_user_id,
            owner_client_id,
            actor_user_id: session.actor_user_id,
            human_name: session.human_name,
            scope: session.scope,
            last_active_at: session.last_activity.at,
            last_active_ip: session.last_activity.ip,
            expires_at: token.and_then(|t| t.expires_at),
            access_token: value,
        }
    }
}

impl Resource for PersonalSessionResource {
    const KIND: &'static str = "personal-session";
    const PATH: &'static str = "/api/admin/v1/personal-sessions";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// Whether a personal session holds, for filters.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PersonalSessionStatus {
    /// Not revoked.
    Active,
    /// Revoked.
    Revoked,
}

/// The filters of the personal session list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PersonalSessionFilterParams {
    /// Only sessions this user created.
    #[serde(rename = "filter[owner_user]")]
    #[param(value_type = Option<UlidSchema>)]
    owner_user: Option<String>,
    /// Only sessions this client created.
    #[serde(rename = "filter[owner_client]")]
    #[param(value_type = Option<UlidSchema>)]
    owner_client: Option<String>,
    /// Only sessions acting as this user.
    #[serde(rename = "filter[actor_user]")]
    #[param(value_type = Option<UlidSchema>)]
    actor_user: Option<String>,
    /// Only active or revoked sessions.
    #[serde(rename = "filter[status]")]
    #[param(inline)]
    status: Option<PersonalSessionStatus>,
}

/// The routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(get))
        .routes(routes!(revoke))
        .routes(routes!(regenerate))
}

type One = AdminResult<Json<SingleResponse<PersonalSessionResource>>>;

fn id_filter(raw: Option<&str>) -> AdminResult<Option<Ulid>> {
    raw.map(parse_id).transpose()
}

async fn find(repo: &mut BoxRepository, id: Ulid) -> AdminResult<PersonalSession> {
    repo.personal_session()
        .lookup(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("personal session {id} not found")))
}

/// The session as the API shows it, with its current token's expiry.
async fn shown(
    repo: &mut BoxRepository,
    session: PersonalSession,
) -> AdminResult<PersonalSessionResource> {
    let token = repo
        .personal_access_token()
        .active_for_session(&session)
        .await?;
    Ok(PersonalSessionResource::new(session, token.as_ref(), None))
}

fn ttl(expires_in: Option<Whole>) -> AdminResult<Option<chrono::Duration>> {
    match expires_in.map(|w| w.0) {
        None => Ok(None),
        Some(seconds @ 1..=MAX_EXPIRES_IN) => {
            Ok(Some(chrono::Duration::seconds(i64::from(seconds))))
        }
        Some(_) => Err(AdminError::BadRequest(
            "expires_in: between 1 second and 10 years".to_owned(),
        )),
    }
}

/// List personal sessions.
#[utoipa::path(
    get,
    path = "/api/admin/v1/personal-sessions",
    tag = "personal-session",
    operation_id = "listPersonalSessions",
    params(PageParams, PersonalSessionFilterParams),
    responses((status = 200, description = "A page of personal sessions", body = PaginatedResponse<PersonalSessionResource>)),
)]
#[tracing::instrument(name = "handlers.admin.personal_sessions.list", skip_all)]
async fn list(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<PersonalSessionFilterParams>,
) -> AdminResult<Json<PaginatedResponse<PersonalSessionResource>>> {
    let given = &query.filter;
    let filter = PersonalSessionFilter {
        owner_user_id: id_filter(given.owner_user.as_deref())?,
        owner_client_id: id_filter(given.owner_client.as_deref())?,
        actor_user_id: id_filter(given.actor_user.as_deref())?,
        active: given
            .status
            .map(|s| matches!(s, PersonalSessionStatus::Active)),
    };
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.personal_session().list_by(filter, page),
        repo.personal_session().count(filter),
    );
    // Each with its token's expiry: one indexed read per session on the page.
    let mut page = None;
    if let Some(found) = listing.page {
        let mut edges = Vec::with_capacity(found.edges.len());
        for session in found.edges {
            edges.push(shown(&mut repo, session).await?);
        }
        page = Some(mas_storage::Page {
            edges,
            has_next_page: found.has_next_page,
            has_previous_page: found.has_previous_page,
        });
    }
    Ok(query.respond(super::common::Listing {
        page,
        count: listing.count,
    }))
}

/// Get a personal session.
#[utoipa::path(
    get,
    path = "/api/admin/v1/personal-sessions/{id}",
    tag = "personal-session",
    operation_id = "getPersonalSession",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    responses(
        (status = 200, description = "The session", body = SingleResponse<PersonalSessionResource>),
        (status = 404, description = "No such session", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.personal_sessions.get", skip_all)]
async fn get(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let mut repo = state.repos.reader().await?;
    let session = find(&mut repo, id).await?;
    Ok(SingleResponse::new(shown(&mut repo, session).await?))
}

/// The body of `POST /api/admin/v1/personal-sessions`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AddPersonalSession {
    /// The user the token acts as.
    #[schema(value_type = UlidSchema)]
    actor_user_id: String,
    /// A name for it (1 to 255 characters).
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]*$")]
    human_name: String,
    /// The scopes, space-separated: known scopes, no device scope. `urn:mas:admin` and
    /// `urn:synapse:admin:*` need a user who may request admin.
    #[schema(
        pattern = r"^(openid|email|profile|urn:matrix:client:api:\*|urn:matrix:org\.matrix\.msc2967\.client:api:\*|urn:synapse:admin:\*|urn:mas:admin|urn:mas:graphql:\*)( (openid|email|profile|urn:matrix:client:api:\*|urn:matrix:org\.matrix\.msc2967\.client:api:\*|urn:synapse:admin:\*|urn:mas:admin|urn:mas:graphql:\*))*$"
    )]
    scope: String,
    /// Seconds until the token expires (at most ten years); it never does without.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 315_360_000)]
    expires_in: Option<Whole>,
}

/// Create a personal session and its token for a user.
///
/// The answer carries the token in `access_token`; it is not shown again. The session
/// is owned by the caller: its user, or its client.
#[utoipa::path(
    post,
    path = "/api/admin/v1/personal-sessions",
    tag = "personal-session",
    operation_id = "createPersonalSession",
    request_body = AddPersonalSession,
    responses(
        (status = 201, description = "The session, with its token", body = SingleResponse<PersonalSessionResource>),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 409, description = "The user is locked or deactivated", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.personal_sessions.add", skip_all)]
async fn add(
    admin: Admin,
    State(state): State<AppState>,
    Body(body): Body<AddPersonalSession>,
) -> AdminResult<(StatusCode, Json<SingleResponse<PersonalSessionResource>>)> {
    let actor_id = parse_id(&body.actor_user_id)?;
    let name = body.human_name.trim();
    if name.is_empty() || name.chars().count() > 255 || name.contains('\0') {
        return Err(AdminError::BadRequest(
            "human_name: give 1 to 255 characters".to_owned(),
        ));
    }
    let scope = mas_oauth_core::tokens::personal_scope(&body.scope)
        .map_err(|e| AdminError::BadRequest(format!("scope: {}", e.description)))?;
    let ttl = ttl(body.expires_in)?;
    let owner = admin.owner().ok_or_else(|| {
        AdminError::Forbidden("this token names neither a user nor a client".to_owned())
    })?;
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let actor = repo
        .user()
        .lookup(actor_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("user {actor_id} not found")))?;
    let started = mas_oauth_core::tokens::start_personal_session(
        repo.as_mut(),
        &mut rng,
        clock,
        &state.policy,
        owner,
        &actor,
        name,
        &scope,
        ttl,
    );
    let (session, issued) = match started.await? {
        Ok(started) => started,
        Err(PersonalRefusal::ActorInactive) => {
            return Err(AdminError::Conflict(format!(
                "user {actor_id} is locked or deactivated"
            )));
        }
        Err(PersonalRefusal::AdminNotAllowed(admin_scope)) => {
            return Err(AdminError::Forbidden(format!(
                "user {actor_id} may not request admin rights, so a token cannot carry `{admin_scope}`"
            )));
        }
    };
    repo.save().await?;
    tracing::info!(session = %session.id, actor = %actor.id, "admin API: personal session created");
    let shown = PersonalSessionResource::new(session, Some(&issued.access), Some(issued.token));
    Ok((StatusCode::CREATED, SingleResponse::new(shown)))
}

/// Revoke a personal session, and so its token.
#[utoipa::path(
    post,
    path = "/api/admin/v1/personal-sessions/{id}/revoke",
    tag = "personal-session",
    operation_id = "revokePersonalSession",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    responses(
        (status = 200, description = "The revoked session", body = SingleResponse<PersonalSessionResource>),
        (status = 404, description = "No such session", body = ErrorResponse),
        (status = 409, description = "The session is revoked already", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.personal_sessions.revoke", skip_all)]
async fn revoke(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let mut repo = state.repos.begin().await?;
    let session = find(&mut repo, id).await?;
    if session.revoked_at.is_some() {
        return Err(AdminError::Conflict(format!(
            "personal session {id} is revoked already"
        )));
    }
    let session = repo
        .personal_session()
        .revoke(state.clock.as_ref(), session)
        .await?;
    let shown = shown(&mut repo, session).await?;
    repo.save().await?;
    tracing::info!(session = %id, "admin API: personal session revoked");
    Ok(SingleResponse::new(shown))
}

/// The body of `regenerate`, which may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct Regenerate {
    /// Seconds until the new token expires (at most ten years); it never does without.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 315_360_000)]
    expires_in: Option<Whole>,
}

/// Replace a personal session's token with a new one.
///
/// The current token stops working; the answer carries the new one in `access_token`.
#[utoipa::path(
    post,
    path = "/api/admin/v1/personal-sessions/{id}/regenerate",
    tag = "personal-session",
    operation_id = "regeneratePersonalSession",
    params(("id" = UlidSchema, Path, description = "The session's ID")),
    request_body(content = Option<Regenerate>, description = "May be left out"),
    responses(
        (status = 201, description = "The session, with its new token", body = SingleResponse<PersonalSessionResource>),
        (status = 404, description = "No such session", body = ErrorResponse),
        (status = 409, description = "The session is revoked, or its user is locked or deactivated", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.personal_sessions.regenerate", skip_all)]
async fn regenerate(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    OptionalBody(body): OptionalBody<Regenerate>,
) -> AdminResult<(StatusCode, Json<SingleResponse<PersonalSessionResource>>)> {
    let ttl = ttl(body.expires_in)?;
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let session = find(&mut repo, id).await?;
    if session.revoked_at.is_some() {
        return Err(AdminError::Conflict(format!(
            "personal session {id} is revoked"
        )));
    }
    let actor = repo.user().lookup(session.actor_user_id).await?;
    if !actor.is_some_and(|a| a.is_valid()) {
        return Err(AdminError::Conflict(format!(
            "the user of personal session {id} is locked or deactivated"
        )));
    }
    repo.personal_access_token()
        .revoke_all(clock, &session)
        .await?;
    let issued =
        mas_oauth_core::tokens::issue_personal_token(repo.as_mut(), &mut rng, clock, &session, ttl)
            .await?;
    repo.save().await?;
    tracing::info!(session = %id, "admin API: personal session regenerated");
    let shown = PersonalSessionResource::new(session, Some(&issued.access), Some(issued.token));
    Ok((StatusCode::CREATED, SingleResponse::new(shown)))
}
