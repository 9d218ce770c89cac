//! `/api/admin/v1/user-registration-tokens`: list, get, add, update, revoke, unrevoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mas_data_model::RegistrationToken;
use mas_storage::BoxRepository;
use mas_storage::repository::RegistrationTokenFilter;
use serde::{Deserialize, Deserializer, Serialize};
use ulid::Ulid;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    Admin, AdminError, AdminResult, ErrorResponse, IdPath, ListQuery, OptionalBody, PageParams,
    PaginatedResponse, Resource, SingleResponse, UlidSchema, Whole, listing,
};
use crate::AppState;

/// A registration token: what people type to be allowed to create an account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UserRegistrationToken)]
pub(crate) struct TokenResource {
    #[serde(skip)]
    id: Ulid,
    /// The token.
    token: String,
    /// Whether it can be used now (not revoked, not expired, not used up).
    valid: bool,
    /// How many registrations it allows; null for no limit.
    usage_limit: Option<u32>,
    /// How many registrations used it.
    times_used: u32,
    /// When it was created.
    created_at: DateTime<Utc>,
    /// When it was last used.
    last_used_at: Option<DateTime<Utc>>,
    /// When it stops working; null for never.
    expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; null while it is not.
    revoked_at: Option<DateTime<Utc>>,
}

impl TokenResource {
    fn new(token: RegistrationToken, now: DateTime<Utc>) -> Self {
        Self {
            id: token.id,
            valid: token.is_valid(now),
            token: token.token,
            usage_limit: token.usage_limit,
            times_used: token.times_used,
            created_at: token.created_at,
            last_used_at: token.last_used_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
        }
    }
}

impl Resource for TokenResource {
    const KIND: &'static str = "user-registration_token";
    const PATH: &'static str = "/api/admin/v1/user-registration-tokens";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// The filters of the token list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TokenFilterParams {
    /// Only tokens used at least once (or never).
    #[serde(rename = "filter[used]")]
    used: Option<bool>,
    /// Only revoked (or unrevoked) tokens.
    #[serde(rename = "filter[revoked]")]
    revoked: Option<bool>,
    /// Only expired (or unexpired) tokens.
    #[serde(rename = "filter[expired]")]
    expired: Option<bool>,
    /// Only tokens that can (or cannot) be used now.
    #[serde(rename = "filter[valid]")]
    valid: Option<bool>,
}

/// The routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(get, update))
        .routes(routes!(revoke))
        .routes(routes!(unrevoke))
}

type One = AdminResult<Json<SingleResponse<TokenResource>>>;

async fn find(repo: &mut BoxRepository, id: Ulid) -> AdminResult<RegistrationToken> {
    repo.registration_token()
        .lookup(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("registration token {id} not found")))
}

/// List registration tokens.
#[utoipa::path(
    get,
    path = "/api/admin/v1/user-registration-tokens",
    tag = "user-registration-token",
    operation_id = "listUserRegistrationTokens",
    params(PageParams, TokenFilterParams),
    responses((status = 200, description = "A page of tokens", body = PaginatedResponse<TokenResource>)),
)]
#[tracing::instrument(name = "handlers.admin.registration_tokens.list", skip_all)]
async fn list(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<TokenFilterParams>,
) -> AdminResult<Json<PaginatedResponse<TokenResource>>> {
    let now = state.clock.now();
    let given = &query.filter;
    let filter = RegistrationTokenFilter {
        now,
        used: given.used,
        revoked: given.revoked,
        expired: given.expired,
        valid: given.valid,
    };
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.registration_token().list(filter, page),
        repo.registration_token().count(filter),
    );
    Ok(query.respond(listing.map(|t| TokenResource::new(t, now))))
}

/// Get a registration token.
#[utoipa::path(
    get,
    path = "/api/admin/v1/user-registration-tokens/{id}",
    tag = "user-registration-token",
    operation_id = "getUserRegistrationToken",
    params(("id" = UlidSchema, Path, description = "The token's ID")),
    responses(
        (status = 200, description = "The token", body = SingleResponse<TokenResource>),
        (status = 404, description = "No such token", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.registration_tokens.get", skip_all)]
async fn get(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let token = find(&mut state.repos.reader().await?, id).await?;
    Ok(SingleResponse::new(TokenResource::new(
        token,
        state.clock.now(),
    )))
}

/// The body of `POST /api/admin/v1/user-registration-tokens`, which may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct AddToken {
    /// The token (letters, digits, `-`, `_`, `.`, `~`, 1 to 64); a random one when
    /// left out.
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,64}$")]
    token: Option<String>,
    /// How many registrations it allows; no limit when left out.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 2_147_483_647)]
    usage_limit: Option<Whole>,
    /// When it stops working (RFC 3339); never when left out.
    #[schema(value_type = Option<String>, format = DateTime, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")]
    expires_at: Option<Rfc3339>,
}

/// A time as RFC 3339 writes it (what the document's `date-time` format means), read
/// strictly: `chrono`'s own reading accepts other forms and refuses some of these.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rfc3339(DateTime<Utc>);

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| Self(at.with_timezone(&Utc)))
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time: {e}")))
    }
}

fn valid_limit(limit: Option<u32>) -> AdminResult<Option<u32>> {
    match limit {
        Some(0) => Err(AdminError::BadRequest(
            "usage_limit: at least 1 (leave it out for no limit)".to_owned(),
        )),
        Some(n) if n > mas_data_model::RegistrationToken::MAX_USAGE_LIMIT => Err(
            AdminError::BadRequest("usage_limit: at most 2147483647".to_owned()),
        ),
        other => Ok(other),
    }
}

/// Create a registration token.
#[utoipa::path(
    post,
    path = "/api/admin/v1/user-registration-tokens",
    tag = "user-registration-token",
    operation_id = "addUserRegistrationToken",
    request_body(content = Option<AddToken>, description = "May be left out"),
    responses(
        (status = 201, description = "The token was created", body = SingleResponse<TokenResource>),
        (status = 409, description = "A token with this value exists", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.registration_tokens.add", skip_all)]
async fn add(
    _: Admin,
    State(state): State<AppState>,
    OptionalBody(body): OptionalBody<AddToken>,
) -> AdminResult<(StatusCode, Json<SingleResponse<TokenResource>>)> {
    let usage_limit = valid_limit(body.usage_limit.map(|w| w.0))?;
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let value = match body.token {
        Some(token) if mas_data_model::RegistrationToken::is_valid_value(&token) => token,
        Some(_) => {
            return Err(AdminError::BadRequest(
                "token: 1 to 64 letters, digits, `-`, `_`, `.` or `~`".to_owned(),
            ));
        }
        None => mas_oauth_core::tokens::random_string(&mut rng, 20),
    };
    let mut repo = state.repos.begin().await?;
    let exists = || AdminError::Conflict("a registration token with this value exists".to_owned());
    // The value is unique in the database: a second one is a conflict there.
    let token = match repo
        .registration_token()
        .add(
            &mut rng,
            clock,
            &value,
            usage_limit,
            body.expires_at.map(|at| at.0),
        )
        .await
    {
        Err(mas_storage::StorageError::Conflict(_)) => return Err(exists()),
        other => other?,
    };
    repo.save().await?;
    tracing::info!(token = %token.id, "admin API: registration token created");
    let shown = TokenResource::new(token, clock.now());
    Ok((StatusCode::CREATED, SingleResponse::new(shown)))
}

/// A field of a partial update: left out (keep), `null` (clear) or a value (set).
#[derive(Debug, Default)]
enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Change<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(deserializer)?.map_or(Self::Clear, Self::Set))
    }
}

impl<T> Change<T> {
    fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(value) => Some(value),
        }
    }
}

/// The body of `PUT /api/admin/v1/user-registration-tokens/{id}`: a field left out is
/// kept, a field set to null is cleared.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct UpdateToken {
    /// The new expiry (RFC 3339); null for never.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")]
    expires_at: Change<Rfc3339>,
    /// The new usage limit; null for no limit.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 2_147_483_647)]
    usage_limit: Change<Whole>,
}

/// Change a registration token's expiry or usage limit.
#[utoipa::path(
    put,
    path = "/api/admin/v1/user-registration-tokens/{id}",
    tag = "user-registration-token",
    operation_id = "updateUserRegistrationToken",
    params(("id" = UlidSchema, Path, description = "The token's ID")),
    request_body(content = Option<UpdateToken>, description = "May be left out"),
    responses(
        (status = 200, description = "The token", body = SingleResponse<TokenResource>),
        (status = 404, description = "No such token", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.registration_tokens.update", skip_all)]
async fn update(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    OptionalBody(body): OptionalBody<UpdateToken>,
) -> One {
    let mut repo = state.repos.begin().await?;
    let token = find(&mut repo, id).await?;
    let usage_limit = valid_limit(
        body.usage_limit
            .apply(token.usage_limit.map(Whole))
            .map(|w| w.0),
    )?;
    let expires_at = body
        .expires_at
        .apply(token.expires_at.map(Rfc3339))
        .map(|at| at.0);
    let token = repo
        .registration_token()
        .set_limits(token, usage_limit, expires_at)
        .await?;
    repo.save().await?;
    tracing::info!(token = %id, "admin API: registration token changed");
    Ok(SingleResponse::new(TokenResource::new(
        token,
        state.clock.now(),
    )))
}

/// Revoke a registration token.
#[utoipa::path(
    post,
    path = "/api/admin/v1/user-registration-tokens/{id}/revoke",
    tag = "user-registration-token",
    operation_id = "revokeUserRegistrationToken",
    params(("id" = UlidSchema, Path, description = "The token's ID")),
    responses(
        (status = 200, description = "The revoked token", body = SingleResponse<TokenResource>),
        (status = 404, description = "No such token", body = ErrorResponse),
        (status = 409, description = "The token is revoked already", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.registration_tokens.revoke", skip_all)]
async fn revoke(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let clock = state.clock.as_ref();
    let mut repo = state.repos.begin().await?;
    let token = find(&mut repo, id).await?;
    if token.revoked_at.is_some() {
        return Err(AdminError::Conflict(format!(
            "registration token {id} is revoked already"
        )));
    }
    let token = repo.registration_token().revoke(clock, token).await?;
    repo.save().await?;
    tracing::info!(token = %id, "admin API: registration token revoked");
    Ok(SingleResponse::new(TokenResource::new(token, clock.now())))
}

/// Lift a registration token's revocation.
#[utoipa::path(
    post,
    path = "/api/admin/v1/user-registration-tokens/{id}/unrevoke",
    tag = "user-registration-token",
    operation_id = "unrevokeUserRegistrationToken",
    params(("id" = UlidSchema, Path, description = "The token's ID")),
    responses(
        (status = 200, description = "The token", body = SingleResponse<TokenResource>),
        (status = 404, description = "No such token", body = ErrorResponse),
        (status = 409, description = "The token is not revoked", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.registration_tokens.unrevoke", skip_all)]
async fn unrevoke(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let mut repo = state.repos.begin().await?;
    let token = find(&mut repo, id).await?;
    if token.revoked_at.is_none() {
        return Err(AdminError::Conflict(format!(
            "registration token {id} is not revoked"
        )));
    }
    let token = repo.registration_token().unrevoke(token).await?;
    repo.save().await?;
    tracing::info!(token = %id, "admin API: registration token unrevoked");
    Ok(SingleResponse::new(TokenResource::new(
        token,
        state.clock.now(),
    )))
}
