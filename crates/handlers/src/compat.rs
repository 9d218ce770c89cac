//! The Matrix client-server compatibility layer: `/_matrix/client/{v3,r0}/login`,
//! `/logout`, `/logout/all` and `/refresh`, for clients that predate OAuth 2.0.
//!
//! A login walks this pipeline: parse and bound the body, find the user and check the
//! password (no transaction held), provision the device on the homeserver (bounded in
//! time; on failure nothing is stored), then store the session and its tokens in one
//! unit of work. Errors are Matrix errors: `{"errcode", "error"}`.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mas_data_model::{CompatSession, Password, TokenType, User};
use mas_matrix::HomeserverError;
use mas_oauth_core::passwords::Verified;
use mas_storage::jobs::HomeserverJob;
use mas_storage::repository::{CompatRotation, NewCompatLogin};
use mas_storage::{Repository, StorageError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::errors::preflight;
use crate::rate_limit::ClientIp;
use mas_storage::SessionKind;

/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The routes, under both the current (`v3`) and the legacy (`r0`) prefix.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for version in ["v3", "r0"] {
        let base = format!("/_matrix/client/{version}");
        router = router
            .route(
                &format!("{base}/login"),
                get(login_flows).post(login).options(preflight),
            )
            .route(&format!("{base}/login/sso/redirect"), get(sso_redirect))
            .route(
                &format!("{base}/login/sso/redirect/{{idp}}"),
                get(sso_redirect),
            )
            .route(&format!("{base}/logout"), post(logout).options(preflight))
            .route(
                &format!("{base}/logout/all"),
                post(logout_all).options(preflight),
            )
            .route(&format!("{base}/refresh"), post(refresh).options(preflight));
    }
    // Web clients (Element Web on its own origin) call these from the browser.
    router.layer(crate::errors::CorsLayer)
}

/// A Matrix error response.
#[derive(Debug)]
pub(crate) struct MatrixError {
    status: StatusCode,
    errcode: &'static str,
    error: String,
    retry_after: Option<std::time::Duration>,
}

impl MatrixError {
    fn new(status: StatusCode, errcode: &'static str, error: impl Into<String>) -> Self {
        Self {
            status,
            errcode,
            error: error.into(),
            retry_after: None,
        }
    }

    fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "Invalid username or password",
        )
    }

    fn unknown_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
            "Invalid access token passed.",
        )
    }

    fn limited(wait: std::time::Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            errcode: "M_LIMIT_EXCEEDED",
            error: "Too many login attempts; wait before trying again".to_owned(),
            retry_after: Some(wait),
        }
    }

    fn throttled(throttled: crate::rate_limit::Throttled) -> Self {
        match throttled {
            crate::rate_limit::Throttled::Wait(wait) => Self::limited(wait),
            crate::rate_limit::Throttled::UsernameTooLong => Self::new(
                StatusCode::BAD_REQUEST,
                "M_INVALID_USERNAME",
                "The username is too long",
            ),
        }
    }

    fn bad_json(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", error)
    }

    fn homeserver(error: &HomeserverError) -> Self {
        tracing::warn!(%error, "homeserver call failed during a compatibility request");
        if error.is_transient() {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "M_UNKNOWN",
                "The homeserver is unreachable; nothing was changed. Try again later.",
            )
        } else {
            Self::new(
                StatusCode::BAD_GATEWAY,
                "M_UNKNOWN",
                "The homeserver refused to set up the device; nothing was changed.",
            )
        }
    }
}

impl From<StorageError> for MatrixError {
    fn from(error: StorageError) -> Self {
        if matches!(error, StorageError::Unavailable) {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "M_UNKNOWN",
                "The service cannot reach its database; try again later.",
            );
        }
        tracing::error!(%error, "storage error in the compatibility layer");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "M_UNKNOWN",
            "Internal error",
        )
    }
}

impl IntoResponse for MatrixError {
    fn into_response(self) -> Response {
        let mut body = json!({ "errcode": self.errcode, "error": self.error });
        if self.errcode == "M_UNKNOWN_TOKEN" {
            body["soft_logout"] = json!(false);
        }
        if let Some(wait) = self.retry_after {
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            body["retry_after_ms"] = json!(ms.max(1));
        }
        (self.status, Json(body)).into_response()
    }
}

/// Reads a bounded JSON object body. Content types are not checked: many Matrix clients
/// send none, and Synapse never required one.
async fn json_body<T: serde::de::DeserializeOwned>(request: Request) -> Result<T, MatrixError> {
    let Ok(bytes) = axum::body::to_bytes(request.into_body(), MAX_BODY).await else {
        return Err(MatrixError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
            "The request body is too large or too slow",
        ));
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
        MatrixError::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", "Content not JSON.")
    })?;
    if !value.is_object() {
        return Err(MatrixError::bad_json("The body must be a JSON object"));
    }
    if has_control(&value) {
        return Err(MatrixError::bad_json("Control characters are not allowed"));
    }
    serde_json::from_value(value).map_err(|e| MatrixError::bad_json(e.to_string()))
}

/// Whether any string of the document (keys included) holds a control character.
fn has_control(value: &Value) -> bool {
    match value {
        Value::String(s) => s.chars().any(char::is_control),
        Value::Array(items) => items.iter().any(has_control),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.chars().any(char::is_control) || has_control(v)),
        _ => false,
    }
}

#[tracing::instrument(name = "handlers.compat.login_flows", skip_all)]
async fn login_flows(State(state): State<AppState>) -> Response {
    let mut flows = Vec::new();
    if state.passwords.is_enabled() {
        flows.push(json!({ "type": "m.login.password" }));
    }
    // Clients show one button per provider; without the list they still offer SSO.
    let providers = crate::human::upstream::buttons(&state)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot list the upstream providers");
            Vec::new()
        });
    let identity_providers: Vec<Value> = providers
        .iter()
        .map(|p| match &p.brand {
            Some(brand) => json!({ "id": p.idp_id, "name": p.name, "brand": brand }),
            None => json!({ "id": p.idp_id, "name": p.name }),
        })
        .collect();
    // SSO through this service's own pages, then the token it hands back.
    flows.push(json!({
        "type": "m.login.sso",
        "identity_providers": identity_providers,
        "org.matrix.msc3824.delegated_oidc_compatibility": true,
        "oauth_aware_preferred": true,
    }));
    flows.push(json!({ "type": "m.login.token" }));
    Json(json!({ "flows": flows })).into_response()
}

#[derive(Debug, Deserialize)]
struct Identifier {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginRequest {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    identifier: Option<Identifier>,
    /// The pre-r0.4 way of naming the user.
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// The login token of `m.login.token`.
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: bool,
}

/// The localpart a login names: a bare localpart, or a Matrix ID on this homeserver.
fn localpart_of(state: &AppState, request: &LoginRequest) -> Result<String, MatrixError> {
    let user = match &request.identifier {
        Some(identifier) if identifier.kind == "m.id.user" => identifier.user.clone(),
        Some(identifier) => {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_UNKNOWN",
                format!("Unsupported identifier type {}", identifier.kind),
            ));
        }
        None => request.user.clone(),
    };
    let Some(user) = user else {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_MISSING_PARAM",
            "No user given",
        ));
    };
    let Some(mxid) = user.strip_prefix('@') else {
        return Ok(user.to_lowercase());
    };
    match mxid.split_once(':') {
        Some((localpart, server)) if server == state.homeserver.homeserver() => {
            Ok(localpart.to_lowercase())
        }
        // Someone of another homeserver: no account here.
        _ => Err(MatrixError::forbidden()),
    }
}

/// A device ID as Synapse makes them: ten capital letters.
pub(crate) fn new_device_id() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(rng.random_range(b'A'..=b'Z')))
        .collect()
}

/// Device IDs the homeserver will take and the device scopes can name.
fn valid_device_id(device_id: &str) -> bool {
    mas_oauth_core::tokens::valid_device_id(device_id)
}

/// Finds the user and checks the password, reading only: no transaction is held while
/// the password is hashed. The account's state is told only after a correct password.
async fn check_password(
    state: &AppState,
    localpart: &str,
    password: String,
) -> Result<(User, Password, Verified), MatrixError> {
    let (user, stored) = {
        let mut repo = state.repos.reader().await?;
        match repo
            .user_password()
            .find_user_with_active(localpart)
            .await?
        {
            Some((user, stored)) => (Some(user), stored),
            None => (None, None),
        }
    };
    let (Some(user), Some(stored)) = (user, stored) else {
        state.passwords.verify_decoy(password).await;
        return Err(MatrixError::forbidden());
    };
    let Ok(verified) = state
        .passwords
        .verify(stored.version, stored.hashed_password.clone(), password)
        .await
    else {
        return Err(MatrixError::forbidden());
    };
    if user.deactivated_at.is_some() {
        return Err(MatrixError::new(
            StatusCode::FORBIDDEN,
            "M_USER_DEACTIVATED",
            "This account has been deactivated",
        ));
    }
    if user.locked_at.is_some() {
        return Err(MatrixError::new(
            StatusCode::UNAUTHORIZED,
            "M_USER_LOCKED",
            "This account has been locked",
        ));
    }

    Ok((user, stored, verified))
}

#[tracing::instrument(name = "handlers.compat.login", skip_all)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Result<Response, MatrixError> {
    // `policy.data.requester`, as MAS's compatibility login policy applies it.
    let user_agent = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    if state.policy.is_requester_banned(ip, user_agent) {
        return Err(MatrixError::new(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "Login denied by the policy enforced by this service",
        ));
    }
    let body: LoginRequest = json_body(request).await?;
    match body.kind.as_str() {
        "m.login.password" => {
            let outcome = match state.rate_limits.login_from(ip) {
                Ok(()) => password_login(state, body, ip).await,
                Err(wait) => Err(MatrixError::limited(wait)),
            };
            crate::metrics::login_attempt(
                "compat",
                match &outcome {
                    Ok(_) => "success",
                    Err(e) if e.errcode == "M_LIMIT_EXCEEDED" => "throttled",
                    Err(_) => "failure",
                },
            );
            outcome
        }
        "m.login.token" => token_login(state, body).await,
        other => Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            format!("Unknown login type {other}"),
        )),
    }
}

/// What a successful login answers.
fn login_answer(state: &AppState, user: &User, device_id: &str, tokens: &IssuedTokens) -> Response {
    let mut answer = json!({
        "user_id": state.homeserver.mxid(&user.username),
        "access_token": tokens.access_token,
        "device_id": device_id,
        "home_server": state.homeserver.homeserver(),
    });
    tokens.add_to(&mut answer);
    Json(answer).into_response()
}

/// How long a login token handed back by the SSO page stays good.
const LOGIN_TOKEN_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// `m.login.token`: the token the SSO completion page handed the client.
async fn token_login(state: AppState, body: LoginRequest) -> Result<Response, MatrixError> {
    let refused = || MatrixError::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", "Invalid login token");
    let Some(token) = body.token.as_deref() else {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_MISSING_PARAM",
            "No token given",
        ));
    };
    let now = state.clock.now();
    // Read what the token stands for, then make the device, then commit: no transaction
    // is held while the homeserver is called.
    let (login, session, user) = {
        let mut repo = state.repos.reader().await?;
        let Some(login) = repo.compat_sso_login().find_by_token(token).await? else {
            return Err(refused());
        };
        let fresh = login
            .fulfilled_at
            .is_some_and(|at| now < at + LOGIN_TOKEN_TTL);
        let Some(session_id) = login
            .session_id
            .filter(|_| fresh && login.exchanged_at.is_none())
        else {
            return Err(refused());
        };
        let session = repo
            .compat_session()
            .lookup(session_id)
            .await?
            .filter(CompatSession::is_active)
            .ok_or_else(refused)?;
        let user = repo
            .user()
            .lookup(session.user_id)
            .await?
            .filter(User::is_valid)
            .ok_or_else(refused)?;
        (login, session, user)
    };
    let device_id = session.device_id.clone().ok_or_else(refused)?;
    let display_name = body.initial_device_display_name.as_deref();
    crate::devices::ensure_device(&state, &user, &device_id, display_name)
        .await
        .map_err(|e| MatrixError::homeserver(&e))?;
    let mut repo = state.repos.begin().await?;
    // Conditional: a token is exchanged once, whatever races it.
    if repo
        .compat_sso_login()
        .exchange(state.clock.as_ref(), login)
        .await?
        .is_none()
    {
        return Err(refused());
    }
    let tokens = issue_tokens(&state, repo.as_mut(), &session, body.refresh_token).await?;
    repo.save().await?;
    Ok(login_answer(&state, &user, &device_id, &tokens))
}

#[derive(Debug, Deserialize)]
struct SsoRedirectQuery {
    #[serde(rename = "redirectUrl")]
    redirect_url: Option<String>,
}

/// `GET /login/sso/redirect[/{idp}]`: starts an SSO login and sends the browser to this
/// service's completion page (on its public address, not the homeserver's).
#[tracing::instrument(name = "handlers.compat.sso_redirect", skip_all)]
async fn sso_redirect(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    idp: Option<axum::extract::Path<String>>,
    query: Result<axum::extract::Query<SsoRedirectQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, MatrixError> {
    // Starting an SSO login stores a row: it counts as a login attempt from this address,
    // so an anonymous caller cannot fill the table.
    state
        .rate_limits
        .login_from(ip)
        .map_err(MatrixError::limited)?;
    let missing = || {
        MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_MISSING_PARAM",
            "redirectUrl must be an absolute URL",
        )
    };
    let target = query
        .ok()
        .and_then(|q| q.0.redirect_url)
        .ok_or_else(missing)?;
    let redirect_uri = url::Url::parse(&target).map_err(|_| missing())?;
    if target.chars().any(char::is_control) {
        return Err(missing());
    }
    if !sso_destination_allowed(&state.compat_sso_allowlist, &redirect_uri) {
        return Err(MatrixError::new(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "This service does not send logins to that redirectUrl",
        ));
    }
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    // A placeholder nobody learns: the real token is set when the person completes it.
    let placeholder = mas_oauth_core::tokens::random_string(&mut rng, 32);
    let mut repo = state.repos.begin().await?;
    let login = repo
        .compat_sso_login()
        .add(&mut rng, state.clock.as_ref(), &placeholder, redirect_uri)
        .await?;
    repo.save().await?;
    let complete = format!("/complete-compat-sso/{}", login.id);
    // A provider named by the client is gone to at once; an unknown one is not an error
    // (Synapse's names may have changed): the sign-in page lists them all.
    let provider = match idp {
        Some(axum::extract::Path(idp)) => crate::human::upstream::buttons(&state)
            .await?
            .into_iter()
            .find(|p| p.idp_id == idp),
        None => None,
    };
    let local = match provider {
        Some(provider) => format!(
            "upstream/authorize/{}?next={}",
            provider.id,
            crate::human::query_value(&complete)
        ),
        None => complete.trim_start_matches('/').to_owned(),
    };
    let page = state.oauth.endpoints.base.join(&local).map_err(|_| {
        MatrixError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "M_UNKNOWN",
            "Internal error",
        )
    })?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, page.to_string())],
    )
        .into_response())
}

/// Whether an SSO login may be sent to `target`: anywhere when no allow-list is
/// configured, else to an entry's scheme, host and port, under the entry's path (so
/// `https://app.example` never covers `https://app.example.evil`).
pub(crate) fn sso_destination_allowed(allowlist: &[url::Url], target: &url::Url) -> bool {
    allowlist.is_empty()
        || allowlist.iter().any(|entry| {
            entry.scheme() == target.scheme()
                && entry.host() == target.host()
                && entry.port_or_known_default() == target.port_or_known_default()
                && under(entry.path(), target.path())
        })
}

/// Whether `path` is `base` or lies below it: `/app` covers `/app` and `/app/x`, never
/// `/app-evil`.
fn under(base: &str, path: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|rest| base.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
}

/// `m.login.password`.
async fn password_login(
    state: AppState,
    body: LoginRequest,
    ip: Option<std::net::IpAddr>,
) -> Result<Response, MatrixError> {
    if !state.passwords.is_enabled() {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            "Password login is disabled",
        ));
    }
    let localpart = localpart_of(&state, &body)?;
    state
        .rate_limits
        .login_as(&localpart)
        .map_err(MatrixError::throttled)?;
    let Some(password) = body.password.clone() else {
        return Err(MatrixError::new(
            StatusCode::BAD_REQUEST,
            "M_MISSING_PARAM",
            "No password given",
        ));
    };
    let device_id = match body.device_id.clone() {
        Some(id) if valid_device_id(&id) => id,
        Some(_) => {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_INVALID_PARAM",
                "The device ID must be 1-255 letters, digits, '-', '.', '_' or '~'",
            ));
        }
        None => new_device_id(),
    };

    let (user, stored, verified) = check_password(&state, &localpart, password).await?;

    // The device must exist on the homeserver before its token is handed out.
    crate::devices::ensure_device(
        &state,
        &user,
        &device_id,
        body.initial_device_display_name.as_deref(),
    )
    .await
    .map_err(|e| MatrixError::homeserver(&e))?;

    let display_name = body.initial_device_display_name.clone();
    let store = async |replace_earlier| {
        store_login(
            &state,
            &user,
            &stored,
            verified.clone(),
            &device_id,
            display_name.clone(),
            body.refresh_token,
            replace_earlier,
            ip,
        )
        .await
    };
    // Only a device ID the client chose can have an earlier session to replace; a fresh
    // random one is not looked for (one query less on the common path). Either way, an
    // open session on the device makes ours conflict (one open session per device), and
    // the second attempt replaces it.
    let tokens = match store(body.device_id.is_some()).await {
        Err(StorageError::Conflict(_)) => store(true).await?,
        other => other?,
    };
    // The password changed while it was being checked: the one given is the old one.
    let Some(tokens) = tokens else {
        return Err(MatrixError::forbidden());
    };
    Ok(login_answer(&state, &user, &device_id, &tokens))
}

/// Stores a password login: the password's upgrade, the session (ending the device's
/// earlier one when `replace_earlier`) and its tokens, in one unit of work. In a
/// transaction (an upgrade, or a device to take over), `None` when `stored` is no longer
/// the user's password: it changed while it was being checked, and an upgrade would put
/// the old one back. The common login, one statement with no transaction, does not look
/// again: the window is the hash's few milliseconds, and it restores nothing.
#[allow(clippy::too_many_arguments)] // one call site, each argument a distinct part
pub(crate) async fn store_login(
    state: &AppState,
    user: &User,
    stored: &Password,
    verified: Verified,
    device_id: &str,
    display_name: Option<String>,
    refreshable: bool,
    replace_earlier: bool,
    ip: Option<std::net::IpAddr>,
) -> Result<Option<IssuedTokens>, StorageError> {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let upgrade = match verified {
        Verified::Upgrade { version, hash } => Some((version, hash)),
        Verified::Current => None,
    };
    // The common login writes once, all or nothing on its own (`add_with_tokens`), so it
    // needs no transaction: on PostgreSQL that saves the BEGIN and COMMIT round trips.
    let mut repo = if upgrade.is_none() && !replace_earlier {
        state.repos.reader().await?
    } else {
        let mut repo = state.repos.begin().await?;
        let current = repo.user_password().active(user).await?;
        if current.map(|p| p.id) != Some(stored.id) {
            return Ok(None);
        }
        repo
    };
    if let Some((version, hash)) = upgrade {
        repo.user_password()
            .add(&mut rng, clock, user, version, hash, Some(stored))
            .await?;
    }
    // Logging in again on a device replaces the device's earlier session.
    let earlier = if replace_earlier {
        repo.compat_session()
            .find_active_by_device(user, device_id)
            .await?
    } else {
        None
    };
    if let Some(earlier) = earlier {
        repo.compat_session().finish(clock, earlier).await?;
    }
    let access_token = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatAccessToken);
    let refresh_token = refreshable
        .then(|| mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatRefreshToken));
    let ttl = refreshable.then_some(state.compat_token_ttl);
    let login = repo
        .compat_session()
        .add_with_tokens(
            &mut rng,
            clock,
            NewCompatLogin {
                user,
                device_id,
                human_name: display_name.as_deref(),
                access_token: &access_token,
                ttl,
                refresh_token: refresh_token.as_deref(),
            },
        )
        .await?;
    repo.save().await?;
    state.activity.record(
        SessionKind::Compat,
        login.session.id,
        clock.now(),
        ip.map(|ip| ip.to_string()),
    );
    Ok(Some(IssuedTokens {
        access_token,
        refresh_token,
        expires_in: ttl,
    }))
}

/// What a login or refresh hands out.
pub(crate) struct IssuedTokens {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<chrono::Duration>,
}

impl IssuedTokens {
    fn add_to(&self, answer: &mut Value) {
        if let Some(refresh) = &self.refresh_token {
            answer["refresh_token"] = json!(refresh);
        }
        if let Some(ttl) = self.expires_in {
            answer["expires_in_ms"] = json!(ttl.num_milliseconds());
        }
    }
}

/// A new access token, and with `refreshable` a refresh token and an expiry. Without one,
/// the access token lives until logout, as Synapse's did.
async fn issue_tokens(
    state: &AppState,
    repo: &mut dyn Repository,
    session: &CompatSession,
    refreshable: bool,
) -> Result<IssuedTokens, StorageError> {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let access_token = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatAccessToken);
    let ttl = refreshable.then_some(state.compat_token_ttl);
    let access = repo
        .compat_access_token()
        .add(&mut rng, clock, session, &access_token, ttl)
        .await?;
    let refresh_token = if refreshable {
        let token = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatRefreshToken);
        repo.compat_refresh_token()
            .add(&mut rng, clock, session, &access, &token)
            .await?;
        Some(token)
    } else {
        None
    };
    Ok(IssuedTokens {
        access_token,
        refresh_token,
        expires_in: ttl,
    })
}

/// The access token of the request: the `Authorization: Bearer` header, or the
/// deprecated `access_token` query parameter.
fn access_token(headers: &HeaderMap, query: Option<&str>) -> Result<String, MatrixError> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let from_query = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    from_header.or(from_query).ok_or_else(|| {
        MatrixError::new(
            StatusCode::UNAUTHORIZED,
            "M_MISSING_TOKEN",
            "Missing access token",
        )
    })
}

/// The open session and its user behind a compatibility access token.
async fn authenticated(
    state: &AppState,
    repo: &mut dyn Repository,
    token: &str,
) -> Result<(CompatSession, User), MatrixError> {
    // A malformed token, or one of another kind, never reaches the database.
    if TokenType::check(token) != Ok(TokenType::CompatAccessToken) {
        return Err(MatrixError::unknown_token());
    }
    let now = state.clock.now();
    let Some(access) = repo.compat_access_token().find_by_token(token).await? else {
        return Err(MatrixError::unknown_token());
    };
    if !access.is_valid(now) {
        return Err(MatrixError::unknown_token());
    }
    let session = repo
        .compat_session()
        .lookup(access.session_id)
        .await?
        .filter(CompatSession::is_active)
        .ok_or_else(MatrixError::unknown_token)?;
    let user = repo
        .user()
        .lookup(session.user_id)
        .await?
        .filter(User::is_valid)
        .ok_or_else(MatrixError::unknown_token)?;
    Ok((session, user))
}

#[tracing::instrument(name = "handlers.compat.logout", skip_all)]
async fn logout(State(state): State<AppState>, request: Request) -> Result<Response, MatrixError> {
    let token = access_token(request.headers(), request.uri().query())?;
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let (session, user) = authenticated(&state, repo.as_mut(), &token).await?;
    let device_id = session.device_id.clone();
    repo.compat_session().finish(clock, session).await?;
    // Queued with the logout itself, so the device goes even if the call below fails.
    let job = device_id
        .as_ref()
        .map(|device_id| HomeserverJob::DeleteDevice {
            user_id: user.id,
            device_id: device_id.clone(),
        });
    if let Some(job) = &job {
        repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    }
    repo.save().await?;
    if let Some(device_id) = device_id {
        crate::devices::delete_device_now(&state, &user, &device_id).await;
    }
    Ok(Json(json!({})).into_response())
}

#[tracing::instrument(name = "handlers.compat.logout_all", skip_all)]
async fn logout_all(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, MatrixError> {
    let token = access_token(request.headers(), request.uri().query())?;
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let (_, user) = authenticated(&state, repo.as_mut(), &token).await?;
    // Every session of the user, as Synapse's own `logout/all` ended every access token.
    mas_storage::jobs::end_device_sessions(repo.as_mut(), clock, &user).await?;
    let job = HomeserverJob::SyncDevices { user_id: user.id };
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    crate::devices::sync_devices_now(&state, &user).await;
    Ok(Json(json!({})).into_response())
}

#[derive(Debug, Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

#[tracing::instrument(name = "handlers.compat.refresh", skip_all)]
async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Result<Response, MatrixError> {
    let body: RefreshRequest = json_body(request).await?;
    if TokenType::check(&body.refresh_token) != Ok(TokenType::CompatRefreshToken) {
        return Err(MatrixError::unknown_token());
    }
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let access_token = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatAccessToken);
    let refresh_token = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatRefreshToken);
    let ttl = state.compat_token_ttl;
    // The refresh is one write, all or nothing on its own, so it needs no transaction:
    // on PostgreSQL it is one round trip.
    let mut repo = state.repos.reader().await?;
    let rotation = CompatRotation {
        presented: &body.refresh_token,
        access_token: &access_token,
        ttl: Some(ttl),
        refresh_token: &refresh_token,
    };
    // Unknown, spent, or of a session or user that has ended: all look the same.
    let Some(rotated) = repo
        .compat_refresh_token()
        .rotate(&mut rng, clock, rotation)
        .await?
    else {
        return Err(MatrixError::unknown_token());
    };
    state.activity.record(
        SessionKind::Compat,
        rotated.access_token.session_id,
        clock.now(),
        ip.map(|ip| ip.to_string()),
    );
    let tokens = IssuedTokens {
        access_token,
        refresh_token: Some(refresh_token),
        expires_in: Some(ttl),
    };
    let mut answer = json!({ "access_token": tokens.access_token });
    tokens.add_to(&mut answer);
    Ok(Json(answer).into_response())
}
