//! The OAuth 2.0 API endpoints: `/oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke`.
//! A request body is read, size-bounded and parsed before any database connection is
//! taken; every error is the RFC's JSON error.

use std::net::IpAddr;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mas_oauth_core::client_auth::ClientCredentials;
use mas_oauth_core::params::Params;
use mas_oauth_core::{ErrorCode, OAuthError, grants, tokens};

use crate::AppState;
use crate::rate_limit::{ClientIp, PerAddress};

/// The largest request body an API endpoint reads.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

pub(crate) fn router() -> Router<AppState> {
    use crate::errors::preflight;
    Router::new()
        .route("/oauth2/token", post(token).options(preflight))
        .route("/oauth2/introspect", post(introspect).options(preflight))
        .route("/oauth2/revoke", post(revoke).options(preflight))
        .route("/oauth2/registration", post(register).options(preflight))
        .route(
            "/oauth2/device",
            post(device_authorization).options(preflight),
        )
        .route(
            "/oauth2/userinfo",
            axum::routing::get(userinfo)
                .post(userinfo)
                .options(preflight),
        )
        .layer(crate::errors::CorsLayer)
}

/// An OAuth error as an HTTP response: the JSON body, never cached, with a Basic
/// challenge on `invalid_client`; or a 429 for an address that failed to authenticate
/// too often.
pub(crate) enum ApiError {
    /// The protocol's error.
    OAuth(OAuthError),
    /// Too many failed client authentications from this address: wait this long.
    Throttled(std::time::Duration),
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        Self::OAuth(error)
    }
}

impl From<mas_storage::StorageError> for ApiError {
    fn from(error: mas_storage::StorageError) -> Self {
        Self::OAuth(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            Self::OAuth(error) => error,
            Self::Throttled(wait) => return too_many_requests(wait),
        };
        let status = StatusCode::from_u16(error.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::json!({ "error": error.code.as_str(), "error_description": error.description });
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if error.code == ErrorCode::InvalidClient {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth2\""),
            );
        }
        response
    }
}

/// A `200` with `body` in JSON, never to be cached.
fn json_ok<T: serde::Serialize>(body: &T) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A `200` with `bytes`, JSON already written, never to be cached.
fn json_bytes_ok(bytes: Vec<u8>) -> Response {
    let mut response = Response::new(axum::body::Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A form request: its parameters and its `Authorization` header. Wrong content types,
/// oversized or slow bodies and malformed parameters are refused here, before any
/// database work.
pub(crate) struct FormRequest {
    pub(crate) params: Params,
    pub(crate) authorization: Option<String>,
    /// All the request's headers (moved, not copied as the `HeaderMap` extractor would).
    pub(crate) headers: axum::http::HeaderMap,
}

/// 429 for an address whose bucket ran dry, in OAuth's JSON, with `Retry-After`.
pub(crate) fn too_many_requests(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": format!("too many requests from this address; try again in {seconds} s"),
    });
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        axum::Json(body),
    )
        .into_response()
}

fn status_error(status: StatusCode, description: &str) -> Response {
    let body = serde_json::json!({ "error": "invalid_request", "error_description": description });
    (status, axum::Json(body)).into_response()
}

/// Why a form body was refused: the status and words to tell the sender.
pub(crate) struct FormRejection {
    pub(crate) status: StatusCode,
    pub(crate) description: String,
}

/// Reads a form body: the right content type, at most [`MAX_BODY`] bytes, parameters
/// without control characters. A request with no content type and no body is an empty
/// form, so the endpoint can name the parameter that is missing (RFC 6749 §5.2).
pub(crate) async fn read_form(
    request: Request,
) -> Result<(Params, axum::http::request::Parts), FormRejection> {
    let (parts, body) = request.into_parts();
    let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) else {
        // Reading with a limit of zero refuses the first byte, so a body of no declared
        // type is never read further than that.
        return match axum::body::to_bytes(body, 0).await {
            Ok(_) => Ok((Params::default(), parts)),
            Err(error) => Err(body_error(&error, unsupported_media_type)),
        };
    };
    let form = content_type.to_str().ok().is_some_and(|v| {
        v.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form {
        return Err(unsupported_media_type());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|error| body_error(&error, too_large))?;
    let params = Params::parse(&bytes).map_err(|e| FormRejection {
        status: StatusCode::BAD_REQUEST,
        description: e.description,
    })?;
    Ok((params, parts))
}

fn unsupported_media_type() -> FormRejection {
    FormRejection {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        description: "the body must be application/x-www-form-urlencoded".to_owned(),
    }
}

fn too_large() -> FormRejection {
    FormRejection {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        description: "the request body is too large".to_owned(),
    }
}

/// Why a body could not be read: `over_limit` when it was longer than allowed, else it
/// was not sent in time.
fn body_error(error: &axum::Error, over_limit: fn() -> FormRejection) -> FormRejection {
    let is_over_limit = std::error::Error::source(error)
        .is_some_and(<dyn std::error::Error + 'static>::is::<http_body_util::LengthLimitError>);
    if is_over_limit {
        over_limit()
    } else {
        FormRejection {
            status: StatusCode::REQUEST_TIMEOUT,
            description: "the request body could not be read in time".to_owned(),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for FormRequest {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (params, parts) = read_form(request)
            .await
            .map_err(|r| status_error(r.status, &r.description))?;
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned))
            .transpose()
            .map_err(|_| ApiError::OAuth(OAuthError::invalid_client()).into_response())?;
        Ok(Self {
            params,
            authorization,
            headers: parts.headers,
        })
    }
}

/// Authenticates the client in a unit of work of its own, committed at once: a client
/// assertion's `jti` stays spent even if the rest of the request fails. An address that
/// failed too often is refused before anything is checked, so guessing a secret or
/// forging assertions gets a few tries a minute.
async fn authenticate(
    state: &AppState,
    ip: Option<IpAddr>,
    credentials: &ClientCredentials,
    audiences: &[&str],
) -> Result<mas_data_model::Client, ApiError> {
    let client_id = credentials.client_id.as_str();
    state
        .rate_limits
        .client_auth_allowed(ip, client_id)
        .map_err(ApiError::Throttled)?;
    let remote_keys = remote_keys(state, credentials).await?;
    let mut repo = state.repos.begin().await?;
    let outcome = credentials
        .authenticate(
            repo.as_mut(),
            &mut rng(),
            state.clock.as_ref(),
            &state.encrypter,
            audiences,
            remote_keys.as_ref(),
        )
        .await;
    let client = match outcome {
        Ok(client) => client,
        Err(error) => {
            if error.code == ErrorCode::InvalidClient {
                state.rate_limits.client_auth_failed(ip, client_id);
            }
            return Err(error.into());
        }
    };
    repo.save().await?;
    Ok(client)
}

/// The key set a `private_key_jwt` client publishes at its `jwks_uri`, fetched with no
/// transaction open.
async fn remote_keys(
    state: &AppState,
    credentials: &ClientCredentials,
) -> Result<Option<serde_json::Value>, ApiError> {
    if credentials.method != mas_data_model::ClientAuthMethod::PrivateKeyJwt {
        return Ok(None);
    }
    let Ok(id) = credentials.client_id.parse::<ulid::Ulid>() else {
        return Ok(None);
    };
    let client = state.repos.reader().await?.client().lookup(id).await?;
    let Some(uri) = client
        .as_ref()
        .and_then(mas_oauth_core::client_auth::remote_jwks_uri)
    else {
        return Ok(None);
    };
    Ok(state
        .remote_keys
        .get(uri, |keys| credentials.assertion_key_missing_from(keys))
        .await)
}

/// Refuses a client acting alone (`client_credentials`) from a requester that
/// `policy.data.requester` turns away, as MAS's authorization grant policy does.
fn check_requester(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    headers: &axum::http::HeaderMap,
    grant: &Grant<'_>,
) -> Result<(), OAuthError> {
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    if matches!(grant, Grant::ClientCredentials(_))
        && state.policy.is_requester_banned(ip, user_agent)
    {
        return Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "requests from here are not allowed by the policy of this service",
        ));
    }
    Ok(())
}

fn rng() -> rand::rngs::StdRng {
    rand::make_rng()
}

#[tracing::instrument(name = "handlers.token", skip_all)]
async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: FormRequest,
) -> Result<Response, ApiError> {
    let params = &request.params;
    let credentials = ClientCredentials::from_request(request.authorization.as_deref(), params)?;
    let grant_type = params.require("grant_type")?;
    // Everything the grant needs is read before the database is touched.
    let grant = Grant::from_params(params, grant_type)?;
    check_requester(&state, ip, &request.headers, &grant)?;
    let oauth = &state.oauth;
    let audiences = [
        oauth.endpoints.token.as_str(),
        oauth.endpoints.issuer.as_str(),
    ];
    let clock = state.clock.as_ref();
    let mut rng = rng();
    let client = authenticate(&state, ip, &credentials, &audiences).await?;
    prepare_device(&state, &client, &grant).await?;
    let mut repo = state.repos.begin().await?;
    let issuer = grants::Issuer {
        url: &oauth.endpoints.issuer,
        keys: &oauth.keys,
        access_token_ttl: state.access_token_ttl,
        policy: &state.policy,
    };
    let outcome = match grant {
        Grant::ClientCredentials(scope) => grants::GrantOutcome::Issued(
            tokens::client_credentials(
                repo.as_mut(),
                &mut rng,
                clock,
                &client,
                scope,
                state.access_token_ttl,
                oauth.admin_clients.contains(&client.id),
            )
            .await?,
        ),
        Grant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            grants::authorization_code(
                repo.as_mut(),
                &mut rng,
                clock,
                issuer,
                &client,
                code,
                redirect_uri,
                verifier,
            )
            .await?
        }
        Grant::Refresh { token, scope } => {
            grants::refresh_token(
                repo.as_mut(),
                &mut rng,
                clock,
                issuer,
                &client,
                token,
                scope,
            )
            .await?
        }
        Grant::Device(device_code) => {
            mas_oauth_core::device::exchange(
                repo.as_mut(),
                &mut rng,
                clock,
                issuer,
                &client,
                device_code,
            )
            .await?
        }
    };
    match outcome {
        grants::GrantOutcome::Issued(response) => {
            repo.save().await?;
            if let Some(session) = response.session_id {
                state.activity.record(
                    mas_storage::SessionKind::OAuth2,
                    session,
                    clock.now(),
                    ip.map(|ip| ip.to_string()),
                );
            }
            Ok(json_ok(&response))
        }
        grants::GrantOutcome::Refused { error, commit } => {
            if commit {
                repo.save().await?;
            }
            Err(error.into())
        }
    }
}

/// A code or device code that will give a user tokens for a Matrix device: the device is
/// made on the homeserver first, outside any transaction, because the homeserver refuses
/// tokens of devices it does not know. Whether the grant will give tokens is the core's
/// decision, made with every check the exchange makes: a grant that will be refused (a
/// wrong verifier, a replayed code whose logout deleted the device) makes no device.
async fn prepare_device(
    state: &AppState,
    client: &mas_data_model::Client,
    grant: &Grant<'_>,
) -> Result<(), ApiError> {
    let mut repo = state.repos.reader().await?;
    let clock = state.clock.as_ref();
    let policy = &state.policy;
    let found = match grant {
        Grant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            let check = grants::code_device(
                repo.as_mut(),
                clock,
                policy,
                client,
                code,
                *redirect_uri,
                *verifier,
            );
            check.await?
        }
        Grant::Device(device_code) => {
            let check = mas_oauth_core::device::grant_device(
                repo.as_mut(),
                clock,
                policy,
                client,
                device_code,
            );
            check.await?
        }
        Grant::ClientCredentials(_) | Grant::Refresh { .. } => None,
    };
    let Some((user, device_id)) = found else {
        return Ok(());
    };
    drop(repo);
    crate::devices::ensure_device(state, &user, &device_id, None)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "cannot create the device on the homeserver");
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the homeserver is unreachable; try again later",
            )
            .into()
        })
}

impl<'a> Grant<'a> {
    /// Reads the grant's parameters from the form.
    fn from_params(params: &'a Params, grant_type: &str) -> Result<Self, OAuthError> {
        Ok(match grant_type {
            "client_credentials" => Grant::ClientCredentials(params.get("scope")?),
            "authorization_code" => Grant::Code {
                code: params.require("code")?,
                redirect_uri: params.get("redirect_uri")?,
                verifier: params.get("code_verifier")?,
            },
            mas_oauth_core::device::DEVICE_GRANT => Grant::Device(params.require("device_code")?),
            "refresh_token" => Grant::Refresh {
                token: params.require("refresh_token")?,
                scope: params.get("scope")?,
            },
            other => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!("grant type `{other}` is not supported"),
                ));
            }
        })
    }
}

/// A token request's grant, read from the form.
enum Grant<'a> {
    ClientCredentials(Option<&'a str>),
    Code {
        code: &'a str,
        redirect_uri: Option<&'a str>,
        verifier: Option<&'a str>,
    },
    Refresh {
        token: &'a str,
        scope: Option<&'a str>,
    },
    Device(&'a str),
}

/// The throttle's name for the homeserver's shared secret (no client ID has a space).
const HOMESERVER: &str = "matrix secret";

/// The homeserver's shared secret, when the request authenticates with one.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

#[tracing::instrument(name = "handlers.introspect", skip_all)]
async fn introspect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: FormRequest,
) -> Result<Response, ApiError> {
    let token = request.params.require("token")?;
    let hint = request.params.get("token_type_hint")?;
    // Synapse says so when it reads `device_id`; a compatibility session's device then
    // leaves the scope, as with MAS (`device_id` itself is always there for them).
    let reads_device_id = request
        .headers
        .get("x-mas-supports-device-id")
        .is_some_and(|v| v == "1");
    let clock = state.clock.as_ref();
    // The homeserver's answer: from the cache while it holds, else one indexed lookup.
    let for_homeserver = || {
        mas_oauth_core::introspect_for_homeserver(
            &state.introspection_cache,
            || state.repos.reader(),
            clock,
            &state.policy,
            token,
            hint,
        )
    };
    // The homeserver's hot path: the shared secret, then the cache, no transaction.
    if let Some(secret) = bearer(request.authorization.as_deref()) {
        let expected = state.matrix_secret.as_deref().unwrap_or_default();
        // The right secret always passes, so no one sharing the homeserver's address can
        // hold it back; a wrong one is counted, and past the budget answered 429.
        if expected.is_empty()
            || !mas_oauth_core::client_auth::constant_time_eq(
                secret.as_bytes(),
                expected.as_bytes(),
            )
        {
            state
                .rate_limits
                .client_auth_allowed(ip, HOMESERVER)
                .map_err(ApiError::Throttled)?;
            state.rate_limits.client_auth_failed(ip, HOMESERVER);
            return Err(OAuthError::invalid_client().into());
        }
        let answer = for_homeserver().await?;
        return Ok(json_bytes_ok(answer.to_json(reads_device_id)));
    }
    let credentials =
        ClientCredentials::from_request(request.authorization.as_deref(), &request.params)?;
    let oauth = &state.oauth;
    let audiences = [
        oauth.endpoints.introspection.as_str(),
        oauth.endpoints.issuer.as_str(),
    ];
    let client = authenticate(&state, ip, &credentials, &audiences).await?;
    let asker = tokens::Asker::of(&client)?;
    // The homeserver's view comes from its cache, without a transaction.
    if asker == tokens::Asker::Homeserver {
        let answer = for_homeserver().await?;
        return Ok(json_bytes_ok(answer.to_json(reads_device_id)));
    }
    let mut repo = state.repos.begin().await?;
    let mut answer =
        tokens::introspect(repo.as_mut(), clock, &state.policy, token, hint, asker).await?;
    repo.save().await?;
    if reads_device_id {
        answer.for_device_id_reader();
    }
    Ok(json_ok(&answer))
}

#[tracing::instrument(name = "handlers.revoke", skip_all)]
async fn revoke(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: FormRequest,
) -> Result<Response, ApiError> {
    let credentials =
        ClientCredentials::from_request(request.authorization.as_deref(), &request.params)?;
    let token = request.params.require("token")?;
    request.params.get("token_type_hint")?;
    let oauth = &state.oauth;
    let audiences = [
        oauth.endpoints.revocation.as_str(),
        oauth.endpoints.issuer.as_str(),
    ];
    let client = authenticate(&state, ip, &credentials, &audiences).await?;
    let clock = state.clock.as_ref();
    let mut repo = state.repos.begin().await?;
    let ended = tokens::revoke(repo.as_mut(), clock, &client, token).await?;
    // A Matrix client logging out: its device goes from the homeserver too, queued in
    // the same unit of work so it happens even if the call below fails.
    let device = match ended {
        Some(session) => match (session.user_id, tokens::device_of(&session.scope)) {
            (Some(user_id), Some(device_id)) => repo
                .user()
                .lookup(user_id)
                .await?
                .map(|user| (user, device_id)),
            _ => None,
        },
        None => None,
    };
    if let Some((user, device_id)) = &device {
        let job = mas_storage::jobs::HomeserverJob::DeleteDevice {
            user_id: user.id,
            device_id: device_id.clone(),
        };
        repo.job().schedule(&mut rng(), clock, job.to_job()).await?;
    }
    repo.save().await?;
    if let Some((user, device_id)) = device {
        crate::devices::delete_device_now(&state, &user, &device_id).await;
    }
    Ok(StatusCode::OK.into_response())
}

#[tracing::instrument(name = "handlers.userinfo", skip_all)]
async fn userinfo(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let challenge = |error: &str| {
        let body = serde_json::json!({ "error": error, "error_description": "a valid access token is required" });
        let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        let value = format!("Bearer error=\"{error}\"");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return challenge("invalid_request");
    };
    let mut repo = match state.repos.reader().await {
        Ok(repo) => repo,
        Err(error) => return ApiError::from(error).into_response(),
    };
    match grants::userinfo(
        repo.as_mut(),
        state.clock.as_ref(),
        &state.policy,
        token.trim(),
    )
    .await
    {
        Ok(Some(claims)) => json_ok(&claims),
        Ok(None) => challenge("invalid_token"),
        Err(error) => ApiError::OAuth(error).into_response(),
    }
}

#[tracing::instrument(name = "handlers.registration", skip_all)]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Result<Response, ApiError> {
    // Each registration stores a client: an anonymous caller gets a small budget.
    if let Err(wait) = state
        .rate_limits
        .throttle(PerAddress::ClientRegistration, ip)
    {
        return Ok(too_many_requests(wait));
    }
    let (parts, body) = request.into_parts();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Ok(status_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        ));
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return Ok(status_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large or too slow",
        ));
    };
    let metadata: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(value @ serde_json::Value::Object(_)) => value,
        _ => {
            return Err(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "the body is not a JSON object",
            )
            .into());
        }
    };
    if contains_control(&metadata) {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the metadata holds control characters",
        )
        .into());
    }
    let mut rng = rng();
    let mut repo = state.repos.begin().await?;
    let (_, response) = mas_oauth_core::registration::register(
        repo.as_mut(),
        &mut rng,
        state.clock.as_ref(),
        &state.encrypter,
        &state.oauth.keys.algorithms(),
        state.policy.client_registration,
        &metadata,
    )
    .await?;
    repo.save().await?;
    let mut response = (StatusCode::CREATED, axum::Json(response)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Whether any string in a JSON value holds a control character (NUL included).
fn contains_control(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.chars().any(char::is_control),
        serde_json::Value::Array(items) => items.iter().any(contains_control),
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.chars().any(char::is_control) || contains_control(v)),
        _ => false,
    }
}

#[tracing::instrument(name = "handlers.device_authorization", skip_all)]
async fn device_authorization(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    request: FormRequest,
) -> Result<Response, ApiError> {
    // Each request stores an authorization nobody has approved yet.
    if let Err(wait) = state.rate_limits.throttle(PerAddress::AnonymousRequest, ip) {
        return Ok(too_many_requests(wait));
    }
    let credentials =
        ClientCredentials::from_request(request.authorization.as_deref(), &request.params)?;
    let scope = request.params.get("scope")?;
    let oauth = &state.oauth;
    let audiences = [
        oauth.endpoints.device_authorization.as_str(),
        oauth.endpoints.issuer.as_str(),
    ];
    let client = authenticate(&state, ip, &credentials, &audiences).await?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(512).collect());
    let mut rng = rng();
    let mut repo = state.repos.begin().await?;
    let answer = mas_oauth_core::device::start(
        repo.as_mut(),
        &mut rng,
        state.clock.as_ref(),
        &client,
        scope,
        &oauth.endpoints.device_link,
        ip.map(|ip| ip.to_string()),
        user_agent,
    )
    .await?;
    repo.save().await?;
    Ok(json_ok(&answer))
}
