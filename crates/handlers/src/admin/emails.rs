//! `/api/admin/v1/user-emails`: list, get, add, delete. The homeserver's copy of a
//! user's addresses follows through a provisioning job.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mas_data_model::UserEmail;
use mas_storage::jobs::HomeserverJob;
use mas_storage::repository::UserEmailFilter;
use serde::{Deserialize, Serialize};
use ulid::Ulid;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    Admin, AdminError, AdminResult, Body, ErrorResponse, IdPath, ListQuery, PageParams,
    PaginatedResponse, Resource, SingleResponse, UlidSchema, listing, parse_id,
};
use crate::AppState;

/// An email address of a user.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UserEmail)]
pub(crate) struct EmailResource {
    #[serde(skip)]
    id: Ulid,
    /// When it was added.
    created_at: DateTime<Utc>,
    /// Whose it is.
    #[schema(value_type = UlidSchema)]
    user_id: Ulid,
    /// The address.
    email: String,
}

impl From<UserEmail> for EmailResource {
    fn from(email: UserEmail) -> Self {
        Self {
            id: email.id,
            created_at: email.created_at,
            user_id: email.user_id,
            email: email.email,
        }
    }
}

impl Resource for EmailResource {
    const KIND: &'static str = "user-email";
    const PATH: &'static str = "/api/admin/v1/user-emails";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// The filters of the email list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EmailFilterParams {
    /// Only this user's addresses.
    #[serde(rename = "filter[user]")]
    #[param(value_type = Option<UlidSchema>)]
    user: Option<String>,
    /// Only this address (compared without regard to case).
    #[serde(rename = "filter[email]")]
    email: Option<String>,
}

/// The routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(get, delete))
}

type One = AdminResult<Json<SingleResponse<EmailResource>>>;

/// List email addresses.
#[utoipa::path(
    get,
    path = "/api/admin/v1/user-emails",
    tag = "user-email",
    operation_id = "listUserEmails",
    params(PageParams, EmailFilterParams),
    responses((status = 200, description = "A page of addresses", body = PaginatedResponse<EmailResource>)),
)]
#[tracing::instrument(name = "handlers.admin.emails.list", skip_all)]
async fn list(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<EmailFilterParams>,
) -> AdminResult<Json<PaginatedResponse<EmailResource>>> {
    let filter = UserEmailFilter {
        user_id: query.filter.user.as_deref().map(parse_id).transpose()?,
        email: query.filter.email.clone(),
    };
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.user_email().list(&filter, page),
        repo.user_email().count(&filter),
    );
    Ok(query.respond(listing.map(EmailResource::from)))
}

/// Get an email address.
#[utoipa::path(
    get,
    path = "/api/admin/v1/user-emails/{id}",
    tag = "user-email",
    operation_id = "getUserEmail",
    params(("id" = UlidSchema, Path, description = "The address's ID")),
    responses(
        (status = 200, description = "The address", body = SingleResponse<EmailResource>),
        (status = 404, description = "No such address", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.emails.get", skip_all)]
async fn get(_: Admin, State(state): State<AppState>, IdPath(id): IdPath) -> One {
    let email = state
        .repos
        .reader()
        .await?
        .user_email()
        .lookup(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(SingleResponse::new(email.into()))
}

fn not_found(id: Ulid) -> AdminError {
    AdminError::NotFound(format!("user email {id} not found"))
}

/// The body of `POST /api/admin/v1/user-emails`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AddEmail {
    /// Whose address it is.
    #[schema(value_type = UlidSchema)]
    user_id: String,
    /// The address.
    #[schema(format = Email)]
    email: String,
}

/// Add an email address to a user, without asking the person to prove it.
#[utoipa::path(
    post,
    path = "/api/admin/v1/user-emails",
    tag = "user-email",
    operation_id = "addUserEmail",
    request_body = AddEmail,
    responses(
        (status = 201, description = "The address was added", body = SingleResponse<EmailResource>),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 409, description = "Someone has this address already", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.emails.add", skip_all)]
async fn add(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body<AddEmail>,
) -> AdminResult<(StatusCode, Json<SingleResponse<EmailResource>>)> {
    let user_id = parse_id(&body.user_id)?;
    if body.email.contains('\0') || !mas_email::is_valid_address(&body.email) {
        return Err(AdminError::BadRequest(
            "the email address is not valid".to_owned(),
        ));
    }
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let user = repo
        .user()
        .lookup(user_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("user {user_id} not found")))?;
    let taken = || AdminError::Conflict("someone has this email address already".to_owned());
    if repo
        .user_email()
        .find_by_email(&body.email)
        .await?
        .is_some()
    {
        return Err(taken());
    }
    let email = match repo
        .user_email()
        .add(&mut rng, clock, &user, &body.email)
        .await
    {
        Err(mas_storage::StorageError::Conflict(_)) => return Err(taken()),
        other => other?,
    };
    let job = HomeserverJob::provision(user.id);
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    tracing::info!(user = %user.id, email = %email.id, "admin API: email address added");
    Ok((StatusCode::CREATED, SingleResponse::new(email.into())))
}

/// Delete an email address.
#[utoipa::path(
    delete,
    path = "/api/admin/v1/user-emails/{id}",
    tag = "user-email",
    operation_id = "deleteUserEmail",
    params(("id" = UlidSchema, Path, description = "The address's ID")),
    responses(
        (status = 204, description = "The address was deleted"),
        (status = 404, description = "No such address", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.emails.delete", skip_all)]
async fn delete(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<StatusCode> {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let email = repo
        .user_email()
        .lookup(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let user_id = email.user_id;
    repo.user_email().remove(email).await?;
    let job = HomeserverJob::provision(user_id);
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    tracing::info!(user = %user_id, email = %id, "admin API: email address deleted");
    Ok(StatusCode::NO_CONTENT)
}
