//! The OAuth 2.0 API endpoints: `/oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke`.
//! A request body is read, size-bounded and parsed before any database connection is
//! taken; every error is the RFC's JSON error.

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mas_oauth_core::client_auth::ClientCredentials;
use mas_oauth_core::params::Params;
use mas_oauth_core::{ErrorCode, OAuthError, tokens};
use tower_http::cors::{Any, CorsLayer};

use crate::AppState;

/// The largest request body an API endpoint reads.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any),
        )
}

/// An OAuth error as an HTTP response: the JSON body, never cached, with a Basic
/// challenge on `invalid_client`.
pub(crate) struct ApiError(pub(crate) OAuthError);

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        Self(error)
    }
}

impl From<mas_storage::StorageError> for ApiError {
    fn from(error: mas_storage::StorageError) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::json!({ "error": self.0.code.as_str(), "error_description": self.0.description });
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.0.code == ErrorCode::InvalidClient {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth2\""),
            );
        }
        response
    }
}

fn json_ok<T: serde::Serialize>(body: &T) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A form request: its parameters and its `Authorization` header. Wrong content types,
/// oversized or slow bodies and malformed parameters are refused here, before any
/// database work.
pub(crate) struct FormRequest {
    pub(crate) params: Params,
    pub(crate) authorization: Option<String>,
}

fn status_error(status: StatusCode, description: &str) -> Response {
    let body = serde_json::json!({ "error": "invalid_request", "error_description": description });
    (status, axum::Json(body)).into_response()
}

impl<S: Send + Sync> FromRequest<S> for FormRequest {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|t| {
                    t.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        if !form {
            return Err(status_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => bytes,
            Err(error) => {
                let too_large = std::error::Error::source(&error).is_some_and(
                    <dyn std::error::Error + 'static>::is::<http_body_util::LengthLimitError>,
                );
                return Err(if too_large {
                    status_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the request body is too large",
                    )
                } else {
                    status_error(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request body could not be read in time",
                    )
                });
            }
        };
        let params = Params::parse(&bytes).map_err(|e| ApiError(e).into_response())?;
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned))
            .transpose()
            .map_err(|_| ApiError(OAuthError::invalid_client()).into_response())?;
        Ok(Self {
            params,
            authorization,
        })
    }
}

fn rng() -> rand::rngs::StdRng {
    rand::make_rng()
}

#[tracing::instrument(name = "handlers.token", skip_all)]
async fn token(State(state): State<AppState>, request: FormRequest) -> Result<Response, ApiError> {
    let credentials =
        ClientCredentials::from_request(request.authorization.as_deref(), &request.params)?;
    let grant_type = request.params.require("grant_type")?;
    if grant_type != "client_credentials" {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("grant type `{grant_type}` is not supported"),
        )
        .into());
    }
    let scope = request.params.get("scope")?;
    let oauth = &state.oauth;
    let audiences = [
        oauth.endpoints.token.as_str(),
        oauth.endpoints.issuer.as_str(),
    ];
    let mut rng = rng();
    let mut repo = state.repos.begin().await?;
    let client = credentials
        .authenticate(
            repo.as_mut(),
            &mut rng,
            state.clock.as_ref(),
            &state.encrypter,
            &audiences,
        )
        .await?;
    let response = tokens::client_credentials(
        repo.as_mut(),
        &mut rng,
        state.clock.as_ref(),
        &client,
        scope,
        state.access_token_ttl,
    )
    .await?;
    repo.save().await?;
    Ok(json_ok(&response))
}

#[tracing::instrument(name = "handlers.introspect", skip_all)]
async fn introspect(
    State(state): State<AppState>,
    request: FormRequest,
) -> Result<Response, ApiError> {
    let credentials =
        ClientCredentials::from_request(request.authorization.as_deref(), &request.params)?;
    let token = request.params.require("token")?;
    request.params.get("token_type_hint")?;
    let oauth = &state.oauth;
    let audiences = [
        oauth.endpoints.introspection.as_str(),
        oauth.endpoints.issuer.as_str(),
    ];
    let mut rng = rng();
    let mut repo = state.repos.begin().await?;
    let client = credentials
        .authenticate(
            repo.as_mut(),
            &mut rng,
            state.clock.as_ref(),
            &state.encrypter,
            &audiences,
        )
        .await?;
    if client.auth_method == mas_data_model::ClientAuthMethod::None {
        return Err(OAuthError::new(
            ErrorCode::InvalidClient,
            "introspection is for confidential clients",
        )
        .into());
    }
    let answer = tokens::introspect(repo.as_mut(), state.clock.as_ref(), token).await?;
    repo.save().await?;
    Ok(json_ok(&answer))
}

#[tracing::instrument(name = "handlers.revoke", skip_all)]
async fn revoke(State(state): State<AppState>, request: FormRequest) -> Result<Response, ApiError> {
    let credentials =
        ClientCredentials::from_request(request.authorization.as_deref(), &request.params)?;
    let token = request.params.require("token")?;
    request.params.get("token_type_hint")?;
    let oauth = &state.oauth;
    let audiences = [
        oauth.endpoints.revocation.as_str(),
        oauth.endpoints.issuer.as_str(),
    ];
    let mut rng = rng();
    let mut repo = state.repos.begin().await?;
    let client = credentials
        .authenticate(
            repo.as_mut(),
            &mut rng,
            state.clock.as_ref(),
            &state.encrypter,
            &audiences,
        )
        .await?;
    tokens::revoke(repo.as_mut(), state.clock.as_ref(), &client, token).await?;
    repo.save().await?;
    Ok(StatusCode::OK.into_response())
}
