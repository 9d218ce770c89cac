//! `/api/admin/v1/users`: list, get, add, set a password, grant or remove the admin
//! right, lock, unlock, deactivate, reactivate.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mas_data_model::User;
use mas_storage::jobs::HomeserverJob;
use mas_storage::repository::{UserFilter, UserState};
use mas_storage::{BoxRepository, accounts};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use ulid::Ulid;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    Admin, AdminError, AdminResult, Body, IdPath, ListQuery, Listing, OptionalBody, PageParams,
    PaginatedResponse, Resource, SingleResponse, TextPath, UlidSchema, listing,
};
use crate::AppState;

/// A user.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub(crate) struct UserResource {
    #[serde(skip)]
    id: Ulid,
    /// The username (the localpart of the Matrix ID).
    username: String,
    /// When the user was created.
    created_at: DateTime<Utc>,
    /// When the user was locked; null when it is not.
    locked_at: Option<DateTime<Utc>>,
    /// When the user was deactivated; null when it is not.
    deactivated_at: Option<DateTime<Utc>>,
    /// Whether the user may request admin scopes.
    admin: bool,
    /// Whether the user was a guest of the homeserver before it moved here (never: guests
    /// are not moved).
    legacy_guest: bool,
}

impl From<User> for UserResource {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            created_at: user.created_at,
            locked_at: user.locked_at,
            deactivated_at: user.deactivated_at,
            admin: user.can_request_admin,
            legacy_guest: false,
        }
    }
}

impl Resource for UserResource {
    const KIND: &'static str = "user";
    const PATH: &'static str = "/api/admin/v1/users";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// A user's status, for filters.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UserStatus {
    /// Neither locked nor deactivated.
    Active,
    /// Locked (deactivated users are locked too).
    Locked,
    /// Deactivated.
    Deactivated,
}

/// The filters of the user list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserFilterParams {
    /// Only users who may (or may not) request admin scopes.
    #[serde(rename = "filter[admin]")]
    admin: Option<bool>,
    /// Only former guests (`true` matches no one: guests are not moved here).
    #[serde(rename = "filter[legacy-guest]")]
    legacy_guest: Option<bool>,
    /// Only users whose username contains this text (the order stays by ID).
    #[serde(rename = "filter[search]")]
    search: Option<String>,
    /// Only users with this status.
    #[serde(rename = "filter[status]")]
    #[param(inline)]
    status: Option<UserStatus>,
    /// Only users with (or without) an open OAuth 2.0 session.
    #[serde(rename = "filter[has-active-oauth2-session]")]
    has_active_oauth2_session: Option<bool>,
    /// Only users with (or without) an open compatibility session.
    #[serde(rename = "filter[has-active-compat-session]")]
    has_active_compat_session: Option<bool>,
}

/// The routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(get))
        .routes(routes!(by_username))
        .routes(routes!(set_password))
        .routes(routes!(set_admin))
        .routes(routes!(lock))
        .routes(routes!(unlock))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
}

async fn find(repo: &mut BoxRepository, id: Ulid) -> AdminResult<User> {
    repo.user()
        .lookup(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("user {id} not found")))
}

type One = AdminResult<Json<SingleResponse<UserResource>>>;

/// List users.
#[utoipa::path(
    get,
    path = "/api/admin/v1/users",
    tag = "user",
    operation_id = "listUsers",
    params(PageParams, UserFilterParams),
    responses((status = 200, description = "A page of users", body = PaginatedResponse<UserResource>)),
)]
#[tracing::instrument(name = "handlers.admin.users.list", skip_all)]
async fn list(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<UserFilterParams>,
) -> AdminResult<Json<PaginatedResponse<UserResource>>> {
    let given = &query.filter;
    if given.legacy_guest == Some(true) {
        return Ok(query.respond(Listing::empty(&query)));
    }
    let filter = UserFilter {
        state: given.status.map(|s| match s {
            UserStatus::Active => UserState::Active,
            UserStatus::Locked => UserState::Locked,
            UserStatus::Deactivated => UserState::Deactivated,
        }),
        can_request_admin: given.admin,
        search: given.search.clone(),
        has_active_oauth2_session: given.has_active_oauth2_session,
        has_active_compat_session: given.has_active_compat_session,
    };
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.user().list(&filter, page),
        repo.user().count(&filter),
    );
    Ok(query.respond(listing.map(UserResource::from)))
}

/// Get a user.
#[utoipa::path(
    get,
    path = "/api/admin/v1/users/{id}",
    tag = "user",
    operation_id = "getUser",
    params(("id" = UlidSchema, Path, description = "The user's ID")),
    responses(
        (status = 200, description = "The user", body = SingleResponse<UserResource>),
        (status = 404, description = "No such user", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.get", skip_all)]
async fn get(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let mut repo = state.repos.reader().await?;
    let user = find(&mut repo, id).await?;
    Ok(SingleResponse::new(user.into()))
}

/// Get a user by username.
#[utoipa::path(
    get,
    path = "/api/admin/v1/users/by-username/{username}",
    tag = "user",
    operation_id = "getUserByUsername",
    params(("username" = String, Path, description = "The username (localpart)")),
    responses(
        (status = 200, description = "The user", body = SingleResponse<UserResource>),
        (status = 404, description = "No such user", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.by_username", skip_all)]
async fn by_username(_: Admin, State(state): State<AppState>, TextPath(username): TextPath) -> One {
    let not_found = || {
        let shown: String = username.chars().take(255).collect();
        AdminError::NotFound(format!("user `{shown}` not found"))
    };
    // No user can have an invalid username: not worth a query (nor a NUL byte in one).
    if !mas_data_model::is_valid_localpart(&username) {
        return Err(not_found());
    }
    let mut repo = state.repos.reader().await?;
    let user = repo
        .user()
        .find_by_username(&username)
        .await?
        .ok_or_else(not_found)?;
    Ok(SingleResponse::new(user.into()))
}

/// The body of `POST /api/admin/v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AddUser {
    /// The username (the localpart of the Matrix ID).
    #[schema(pattern = "^[a-z0-9._=/+-]{1,255}$")]
    username: String,
    /// Skip asking the homeserver whether the username is free (for users of
    /// application services, which the homeserver reserves).
    #[serde(default)]
    skip_homeserver_check: bool,
    /// A display name to set on the homeserver (at most 255 characters, no NUL).
    #[schema(max_length = 255, pattern = "^[^\\u0000]*$")]
    displayname: Option<String>,
    /// An avatar to set on the homeserver: an `mxc://` URI of media it holds.
    #[schema(pattern = "^mxc://[A-Za-z0-9.:\\[\\]-]+/[A-Za-z0-9_-]+$")]
    avatar_url: Option<String>,
}

/// Add a user.
///
/// The user is created here and provisioned on the homeserver by a background job.
#[utoipa::path(
    post,
    path = "/api/admin/v1/users",
    tag = "user",
    operation_id = "createUser",
    request_body = AddUser,
    responses(
        (status = 201, description = "The user was created", body = SingleResponse<UserResource>),
        (status = 409, description = "The username is taken or reserved", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.add", skip_all)]
async fn add(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body<AddUser>,
) -> AdminResult<(StatusCode, Json<SingleResponse<UserResource>>)> {
    if !mas_data_model::is_valid_localpart(&body.username) {
        return Err(AdminError::BadRequest(
            "the username is not valid: use lowercase letters, digits and . _ = - / + (at most 255)"
                .to_owned(),
        ));
    }
    if body.avatar_url.as_deref().is_some_and(|a| !is_mxc_uri(a)) {
        return Err(AdminError::BadRequest(
            "avatar_url must be an mxc:// URI (mxc://server/media-id)".to_owned(),
        ));
    }
    let display_name = body.displayname.filter(|n| !n.trim().is_empty());
    if display_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 255 || n.contains('\0'))
    {
        return Err(AdminError::BadRequest(
            "the display name is longer than 255 characters or holds a NUL character".to_owned(),
        ));
    }
    // Synapse keeps numeric user IDs for guests, and would refuse to provision one.
    if body.username.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AdminError::Conflict(
            "numeric usernames are reserved by the homeserver for guests".to_owned(),
        ));
    }
    let taken = || AdminError::Conflict(format!("the username `{}` is taken", body.username));
    if state
        .repos
        .reader()
        .await?
        .user()
        .find_by_username(&body.username)
        .await?
        .is_some()
    {
        return Err(taken());
    }
    if !body.skip_homeserver_check {
        match state.homeserver.check_localpart(&body.username).await {
            Ok(None) => {}
            Ok(Some(reason)) => {
                return Err(AdminError::Conflict(format!(
                    "the homeserver refuses the username `{}`: {reason}",
                    body.username
                )));
            }
            Err(error) => {
                tracing::warn!(%error, "admin API: the homeserver could not check a username");
                return Err(AdminError::Unavailable(
                    "the homeserver cannot be reached to check the username; try again later, or pass skip_homeserver_check"
                        .to_owned(),
                ));
            }
        }
    }
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let user = match repo.user().add(&mut rng, clock, &body.username).await {
        Err(mas_storage::StorageError::Conflict(_)) => return Err(taken()),
        other => other?,
    };
    let job = HomeserverJob::ProvisionUser {
        user_id: user.id,
        display_name,
        avatar_url: body.avatar_url,
    };
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    tracing::info!(user = %user.id, "admin API: user created");
    Ok((StatusCode::CREATED, SingleResponse::new(user.into())))
}

/// Whether `uri` is `mxc://<server name>/<media ID>` as the Matrix specification
/// writes them.
fn is_mxc_uri(uri: &str) -> bool {
    let Some((server, media)) = uri.strip_prefix("mxc://").and_then(|r| r.split_once('/')) else {
        return false;
    };
    !server.is_empty()
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:[]-".contains(&b))
        && !media.is_empty()
        && media
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
}

/// The body of `set-password`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SetPassword {
    /// The new password.
    #[schema(min_length = 1)]
    password: String,
    /// Accept a password below `passwords.minimum_complexity`.
    #[serde(default)]
    skip_password_check: Option<bool>,
}

/// Set a user's password.
#[utoipa::path(
    post,
    path = "/api/admin/v1/users/{id}/set-password",
    tag = "user",
    operation_id = "setUserPassword",
    params(("id" = UlidSchema, Path, description = "The user's ID")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "The password was set"),
        (status = 404, description = "No such user", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.set_password", skip_all)]
async fn set_password(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Body(body): Body<SetPassword>,
) -> AdminResult<StatusCode> {
    if !state.passwords.is_enabled() {
        return Err(AdminError::Forbidden(
            "passwords are disabled in the configuration (passwords.enabled)".to_owned(),
        ));
    }
    let user = find(&mut state.repos.reader().await?, id).await?;
    if body.password.is_empty() {
        return Err(AdminError::BadRequest("the password is empty".to_owned()));
    }
    if !body.skip_password_check.unwrap_or(false)
        && !state
            .passwords
            .is_strong_enough(&body.password, &[&user.username])
    {
        return Err(AdminError::BadRequest(
            "the password is too weak (passwords.minimum_complexity)".to_owned(),
        ));
    }
    let (version, hash) = state.passwords.hash(body.password).await.map_err(|e| {
        tracing::error!(error = %e, "admin API: hashing a password failed");
        AdminError::Internal
    })?;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let user = find(&mut repo, user.id).await?;
    repo.user_password()
        .add(&mut rng, state.clock.as_ref(), &user, version, hash, None)
        .await?;
    repo.save().await?;
    tracing::info!(user = %user.id, "admin API: password set");
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `set-admin`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SetAdmin {
    /// Whether the user may request admin scopes.
    admin: bool,
}

/// Grant or remove the right to request admin scopes.
///
/// Removing it also ends the user's sessions that hold an admin scope.
#[utoipa::path(
    post,
    path = "/api/admin/v1/users/{id}/set-admin",
    tag = "user",
    operation_id = "userSetAdmin",
    params(("id" = UlidSchema, Path, description = "The user's ID")),
    request_body = SetAdmin,
    responses(
        (status = 200, description = "The user", body = SingleResponse<UserResource>),
        (status = 404, description = "No such user", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.set_admin", skip_all)]
async fn set_admin(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Body(body): Body<SetAdmin>,
) -> One {
    let (mut repo, mut rng, user) = open(&state, id).await?;
    let clock = state.clock.as_ref();
    let (user, _) = accounts::set_admin(repo.as_mut(), &mut rng, clock, user, body.admin).await?;
    save(repo, user).await
}

/// Lock a user.
///
/// A locked user cannot log in, and every session it had ends (unlike MAS, which keeps
/// them for when the lock is lifted).
#[utoipa::path(
    post,
    path = "/api/admin/v1/users/{id}/lock",
    tag = "user",
    operation_id = "lockUser",
    params(("id" = UlidSchema, Path, description = "The user's ID")),
    responses(
        (status = 200, description = "The user", body = SingleResponse<UserResource>),
        (status = 404, description = "No such user", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.lock", skip_all)]
async fn lock(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let (mut repo, mut rng, user) = open(&state, id).await?;
    let user = accounts::lock(repo.as_mut(), &mut rng, state.clock.as_ref(), user).await?;
    save(repo, user).await
}

/// Unlock a user (a deactivated user stays deactivated).
#[utoipa::path(
    post,
    path = "/api/admin/v1/users/{id}/unlock",
    tag = "user",
    operation_id = "unlockUser",
    params(("id" = UlidSchema, Path, description = "The user's ID")),
    responses(
        (status = 200, description = "The user", body = SingleResponse<UserResource>),
        (status = 404, description = "No such user", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.unlock", skip_all)]
async fn unlock(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let (mut repo, mut rng, user) = open(&state, id).await?;
    let user = accounts::unlock(repo.as_mut(), &mut rng, state.clock.as_ref(), user).await?;
    save(repo, user).await
}

/// The body of `deactivate`, which may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct Deactivate {
    /// Keep the user's data on the homeserver instead of erasing it.
    #[serde(default)]
    skip_erase: bool,
}

/// Deactivate a user.
///
/// Every session ends, and the homeserver deactivates the user, erasing its data
/// unless `skip_erase` is set.
#[utoipa::path(
    post,
    path = "/api/admin/v1/users/{id}/deactivate",
    tag = "user",
    operation_id = "deactivateUser",
    params(("id" = UlidSchema, Path, description = "The user's ID")),
    request_body(content = Option<Deactivate>, description = "May be left out"),
    responses(
        (status = 200, description = "The user", body = SingleResponse<UserResource>),
        (status = 404, description = "No such user", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.deactivate", skip_all)]
async fn deactivate(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    OptionalBody(body): OptionalBody<Deactivate>,
) -> One {
    let (mut repo, mut rng, user) = open(&state, id).await?;
    let clock = state.clock.as_ref();
    let user = accounts::deactivate(repo.as_mut(), &mut rng, clock, user, !body.skip_erase).await?;
    save(repo, user).await
}

/// Reactivate a deactivated user (a locked user stays locked).
#[utoipa::path(
    post,
    path = "/api/admin/v1/users/{id}/reactivate",
    tag = "user",
    operation_id = "reactivateUser",
    params(("id" = UlidSchema, Path, description = "The user's ID")),
    responses(
        (status = 200, description = "The user", body = SingleResponse<UserResource>),
        (status = 404, description = "No such user", body = super::common::ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.users.reactivate", skip_all)]
async fn reactivate(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let (mut repo, mut rng, user) = open(&state, id).await?;
    let user = accounts::reactivate(repo.as_mut(), &mut rng, state.clock.as_ref(), user).await?;
    save(repo, user).await
}

/// A unit of work over the user, for a change.
async fn open(state: &AppState, id: Ulid) -> AdminResult<(BoxRepository, StdRng, User)> {
    let mut repo = state.repos.begin().await?;
    let user = find(&mut repo, id).await?;
    Ok((repo, rand::make_rng::<StdRng>(), user))
}

/// Commits a change and answers the user as it now is.
async fn save(repo: BoxRepository, user: User) -> One {
    repo.save().await?;
    tracing::info!(user = %user.id, "admin API: user changed");
    Ok(SingleResponse::new(user.into()))
}
