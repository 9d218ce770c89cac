//! `/api/admin/v1/upstream-oauth-links` (list, get, add, delete) and
//! `/api/admin/v1/upstream-oauth-providers` (list, get): who signs in through which
//! upstream identity provider.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mas_data_model::{UpstreamOAuthLink, UpstreamOAuthProvider};
use mas_storage::repository::UpstreamOAuthLinkFilter;
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

/// A link between an account at an upstream provider and a user.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UpstreamOAuthLink)]
pub(crate) struct LinkResource {
    #[serde(skip)]
    id: Ulid,
    /// When it was recorded.
    created_at: DateTime<Utc>,
    /// The provider.
    #[schema(value_type = UlidSchema)]
    provider_id: Ulid,
    /// The account's ID at the provider (`sub`).
    subject: String,
    /// The user it signs in as; null while it is linked to no one.
    #[schema(value_type = Option<UlidSchema>)]
    user_id: Option<Ulid>,
    /// A name for the account, as the provider gave it.
    human_account_name: Option<String>,
}

impl From<UpstreamOAuthLink> for LinkResource {
    fn from(link: UpstreamOAuthLink) -> Self {
        Self {
            id: link.id,
            created_at: link.created_at,
            provider_id: link.provider_id,
            subject: link.subject,
            user_id: link.user_id,
            human_account_name: link.human_account_name,
        }
    }
}

impl Resource for LinkResource {
    const KIND: &'static str = "upstream-oauth-link";
    const PATH: &'static str = "/api/admin/v1/upstream-oauth-links";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// An upstream identity provider, as `config sync` stored it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UpstreamOAuthProvider)]
pub(crate) struct ProviderResource {
    #[serde(skip)]
    id: Ulid,
    /// Its issuer.
    issuer: Option<String>,
    /// The name its button shows.
    human_name: Option<String>,
    /// The brand its button shows (`google`, `github`...).
    brand_name: Option<String>,
    /// When it was first stored.
    created_at: DateTime<Utc>,
    /// When it was disabled (removed from the configuration); null while enabled.
    disabled_at: Option<DateTime<Utc>>,
    /// Whether signing up through it needs a registration token (never here).
    registration_token_required: bool,
}

impl From<UpstreamOAuthProvider> for ProviderResource {
    fn from(provider: UpstreamOAuthProvider) -> Self {
        Self {
            id: provider.id,
            brand_name: provider
                .config
                .get("brand_name")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            issuer: provider.issuer,
            human_name: provider.human_name,
            created_at: provider.created_at,
            disabled_at: provider.disabled_at,
            registration_token_required: false,
        }
    }
}

impl Resource for ProviderResource {
    const KIND: &'static str = "upstream-oauth-provider";
    const PATH: &'static str = "/api/admin/v1/upstream-oauth-providers";
    fn id(&self) -> Ulid {
        self.id
    }
}

/// The filters of the link list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LinkFilterParams {
    /// Only this user's links.
    #[serde(rename = "filter[user]")]
    #[param(value_type = Option<UlidSchema>)]
    user: Option<String>,
    /// Only this provider's links.
    #[serde(rename = "filter[provider]")]
    #[param(value_type = Option<UlidSchema>)]
    provider: Option<String>,
    /// Only the link of this account (its `sub` at the provider).
    #[serde(rename = "filter[subject]")]
    subject: Option<String>,
}

/// The filters of the provider list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProviderFilterParams {
    /// Only enabled (or disabled) providers.
    #[serde(rename = "filter[enabled]")]
    enabled: Option<bool>,
}

/// The routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_links, add_link))
        .routes(routes!(get_link, delete_link))
        .routes(routes!(list_providers))
        .routes(routes!(get_provider))
}

fn link_not_found(id: Ulid) -> AdminError {
    AdminError::NotFound(format!("upstream OAuth link {id} not found"))
}

/// List upstream links.
#[utoipa::path(
    get,
    path = "/api/admin/v1/upstream-oauth-links",
    tag = "upstream-oauth-link",
    operation_id = "listUpstreamOAuthLinks",
    params(PageParams, LinkFilterParams),
    responses((status = 200, description = "A page of links", body = PaginatedResponse<LinkResource>)),
)]
#[tracing::instrument(name = "handlers.admin.upstream_links.list", skip_all)]
async fn list_links(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<LinkFilterParams>,
) -> AdminResult<Json<PaginatedResponse<LinkResource>>> {
    let given = &query.filter;
    let filter = UpstreamOAuthLinkFilter {
        user_id: given.user.as_deref().map(parse_id).transpose()?,
        provider_id: given.provider.as_deref().map(parse_id).transpose()?,
        subject: given.subject.clone(),
    };
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.upstream_link().list(&filter, page),
        repo.upstream_link().count(&filter),
    );
    Ok(query.respond(listing.map(LinkResource::from)))
}

/// Get an upstream link.
#[utoipa::path(
    get,
    path = "/api/admin/v1/upstream-oauth-links/{id}",
    tag = "upstream-oauth-link",
    operation_id = "getUpstreamOAuthLink",
    params(("id" = UlidSchema, Path, description = "The link's ID")),
    responses(
        (status = 200, description = "The link", body = SingleResponse<LinkResource>),
        (status = 404, description = "No such link", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.upstream_links.get", skip_all)]
async fn get_link(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<Json<SingleResponse<LinkResource>>> {
    let link = state
        .repos
        .reader()
        .await?
        .upstream_link()
        .lookup(id)
        .await?
        .ok_or_else(|| link_not_found(id))?;
    Ok(SingleResponse::new(link.into()))
}

/// The body of `POST /api/admin/v1/upstream-oauth-links`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AddLink {
    /// The user the account will sign in as.
    #[schema(value_type = UlidSchema)]
    user_id: String,
    /// The provider.
    #[schema(value_type = UlidSchema)]
    provider_id: String,
    /// The account's ID at the provider (its `sub`; 1 to 255 characters).
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000]*$")]
    subject: String,
    /// A name for the account.
    #[schema(max_length = 255, pattern = "^[^\\u0000]*$")]
    human_account_name: Option<String>,
}

/// Link an account at an upstream provider to a user.
///
/// An account already recorded but linked to no one is linked (`200`); a new one is
/// recorded and linked (`201`).
#[utoipa::path(
    post,
    path = "/api/admin/v1/upstream-oauth-links",
    tag = "upstream-oauth-link",
    operation_id = "addUpstreamOAuthLink",
    request_body = AddLink,
    responses(
        (status = 200, description = "An existing record of the account was linked", body = SingleResponse<LinkResource>),
        (status = 201, description = "The account was recorded and linked", body = SingleResponse<LinkResource>),
        (status = 404, description = "No such user or provider", body = ErrorResponse),
        (status = 409, description = "The account is linked to a user already", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.upstream_links.add", skip_all)]
async fn add_link(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body<AddLink>,
) -> AdminResult<(StatusCode, Json<SingleResponse<LinkResource>>)> {
    let user_id = parse_id(&body.user_id)?;
    let provider_id = parse_id(&body.provider_id)?;
    let too_long = |text: &str| text.chars().count() > 255 || text.contains('\0');
    if body.subject.is_empty()
        || too_long(&body.subject)
        || body.human_account_name.as_deref().is_some_and(too_long)
    {
        return Err(AdminError::BadRequest(
            "subject (1 to 255 characters) or human_account_name (at most 255) is out of bounds"
                .to_owned(),
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
    let provider = repo
        .upstream_provider()
        .lookup(provider_id)
        .await?
        .ok_or_else(|| {
            AdminError::NotFound(format!("upstream OAuth provider {provider_id} not found"))
        })?;
    let taken = || AdminError::Conflict("this account is linked to a user already".to_owned());
    let existing = repo
        .upstream_link()
        .find_by_subject(&provider, &body.subject)
        .await?;
    let (link, status) = match existing {
        Some(link) if link.user_id.is_some() => return Err(taken()),
        Some(link) => (link, StatusCode::OK),
        None => {
            let link = repo
                .upstream_link()
                .add(
                    &mut rng,
                    clock,
                    &provider,
                    &body.subject,
                    body.human_account_name,
                )
                .await?;
            (link, StatusCode::CREATED)
        }
    };
    let link = match repo.upstream_link().associate(link, &user).await {
        Err(mas_storage::StorageError::Conflict(_)) => return Err(taken()),
        other => other?,
    };
    repo.save().await?;
    tracing::info!(link = %link.id, user = %user.id, "admin API: upstream account linked");
    Ok((status, SingleResponse::new(link.into())))
}

/// Delete an upstream link: the account no longer signs in as the user.
#[utoipa::path(
    delete,
    path = "/api/admin/v1/upstream-oauth-links/{id}",
    tag = "upstream-oauth-link",
    operation_id = "deleteUpstreamOAuthLink",
    params(("id" = UlidSchema, Path, description = "The link's ID")),
    responses(
        (status = 204, description = "The link was deleted"),
        (status = 404, description = "No such link", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.upstream_links.delete", skip_all)]
async fn delete_link(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<StatusCode> {
    let mut repo = state.repos.begin().await?;
    let link = repo
        .upstream_link()
        .lookup(id)
        .await?
        .ok_or_else(|| link_not_found(id))?;
    repo.upstream_link().remove(link).await?;
    repo.save().await?;
    tracing::info!(link = %id, "admin API: upstream link deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// List upstream providers.
#[utoipa::path(
    get,
    path = "/api/admin/v1/upstream-oauth-providers",
    tag = "upstream-oauth-provider",
    operation_id = "listUpstreamOAuthProviders",
    params(PageParams, ProviderFilterParams),
    responses((status = 200, description = "A page of providers", body = PaginatedResponse<ProviderResource>)),
)]
#[tracing::instrument(name = "handlers.admin.upstream_providers.list", skip_all)]
async fn list_providers(
    _: Admin,
    State(state): State<AppState>,
    query: ListQuery<ProviderFilterParams>,
) -> AdminResult<Json<PaginatedResponse<ProviderResource>>> {
    let enabled = query.filter.enabled;
    let mut repo = state.repos.reader().await?;
    let listing = listing!(
        query,
        |page| repo.upstream_provider().list(enabled, page),
        repo.upstream_provider().count(enabled),
    );
    Ok(query.respond(listing.map(ProviderResource::from)))
}

/// Get an upstream provider.
#[utoipa::path(
    get,
    path = "/api/admin/v1/upstream-oauth-providers/{id}",
    tag = "upstream-oauth-provider",
    operation_id = "getUpstreamOAuthProvider",
    params(("id" = UlidSchema, Path, description = "The provider's ID")),
    responses(
        (status = 200, description = "The provider", body = SingleResponse<ProviderResource>),
        (status = 404, description = "No such provider", body = ErrorResponse),
    ),
)]
#[tracing::instrument(name = "handlers.admin.upstream_providers.get", skip_all)]
async fn get_provider(
    _: Admin,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> AdminResult<Json<SingleResponse<ProviderResource>>> {
    let provider = state
        .repos
        .reader()
        .await?
        .upstream_provider()
        .lookup(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("upstream OAuth provider {id} not found")))?;
    Ok(SingleResponse::new(provider.into()))
}
