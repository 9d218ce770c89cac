//! HTTP handlers, grouped by the resources a listener can serve.

// First: its `tr!` and `msg!` macros serve every module after it.
#[macro_use]
mod i18n;
#[cfg(test)]
mod account_tests;
mod admin;
#[cfg(test)]
mod admin_tests;
mod captcha;
mod compat;
#[cfg(test)]
mod compat_tests;
mod devices;
mod discovery;
mod errors;
mod health;
mod human;
#[cfg(test)]
mod human_tests;
mod limits;
mod metrics;
mod oauth2;
#[cfg(test)]
mod oauth2_tests;
mod passwords;
mod rate_limit;
#[cfg(test)]
mod recovery_tests;
mod remote_keys;
#[cfg(test)]
mod upstream_tests;

use std::sync::Arc;

use axum::Router;
use mas_oauth_core::{Endpoints, KeyStore, ProviderMetadata};
use mas_storage::{Clock, Encrypter, Health, RepositoryFactory};

pub use self::captcha::{Captcha, CaptchaError, CaptchaService};
pub use self::metrics::MetricsRender;
pub use self::passwords::PasswordChecker;
pub use self::rate_limit::{Limit, Limits, RateLimits};
pub use self::remote_keys::RemoteKeys;
use tower_http::trace::TraceLayer;

/// The OAuth 2.0 provider's fixed parts: endpoints, keys, discovery document.
#[derive(Debug)]
pub struct OAuthState {
    /// Where each endpoint lives.
    pub endpoints: Endpoints,
    /// The signing keys.
    pub keys: KeyStore,
    /// The discovery document, built once.
    pub metadata: serde_json::Value,
    /// Whether people may create accounts with a password (`prompt=create`, `/register`).
    pub registration_open: bool,
    /// The clients whose `client_credentials` grant may carry `urn:mas:admin`
    /// (`policy.data.admin_clients`).
    pub admin_clients: Vec<ulid::Ulid>,
}

impl OAuthState {
    /// Builds the state; `registration_open` says whether `prompt=create` is offered.
    #[must_use]
    pub fn new(endpoints: Endpoints, keys: KeyStore, registration_open: bool) -> Self {
        let metadata = serde_json::to_value(ProviderMetadata::new(
            &endpoints,
            &keys.algorithms(),
            registration_open,
        ))
        .unwrap_or_default();
        Self {
            endpoints,
            keys,
            metadata,
            registration_open,
            admin_clients: Vec::new(),
        }
    }
}

/// What the handlers need from the rest of the service: [`AppParts`] behind one `Arc`,
/// because axum clones the state for every request and extractor, and one shared
/// counter costs far less than a dozen on the hot introspection path.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl From<AppParts> for AppState {
    fn from(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    /// Changes before the state is shared (tests swap the homeserver) cost nothing;
    /// later ones copy the parts.
    fn deref_mut(&mut self) -> &mut AppParts {
        Arc::make_mut(&mut self.0)
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct AppParts {
    /// The database's health.
    pub health: Arc<dyn Health>,
    /// The OAuth 2.0 provider.
    pub oauth: Arc<OAuthState>,
    /// Units of work on the database.
    pub repos: Arc<dyn RepositoryFactory>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Encrypts and decrypts secrets at rest.
    pub encrypter: Encrypter,
    /// Lifetime of OAuth 2.0 access tokens.
    pub access_token_ttl: chrono::Duration,
    /// Lifetime of refreshable compatibility access tokens (`experimental.compat_token_ttl`).
    pub compat_token_ttl: chrono::Duration,
    /// Where legacy SSO logins may go (`experimental.compat_sso_redirect_allowlist`);
    /// empty: anywhere, after the person confirms the named destination.
    pub compat_sso_allowlist: Arc<[url::Url]>,
    /// Encrypts the cookies.
    pub cookie_key: axum_extra::extract::cookie::Key,
    /// Whether cookies are marked `Secure` (the service is served over HTTPS).
    pub secure_cookies: bool,
    /// Password checks with bounded concurrency.
    pub passwords: Arc<PasswordChecker>,
    /// The name pages call the service by.
    pub service_name: Arc<str>,
    /// The rules of `policy.data`.
    pub policy: Arc<mas_oauth_core::policy::Policy>,
    /// The CAPTCHA `/register` asks for (`captcha`), if any.
    pub captcha: Option<Arc<Captcha>>,
    /// The terms of service people accept when they register (`branding.tos_uri`).
    pub tos_uri: Option<Arc<str>>,
    /// The secret the homeserver introspects with (`matrix.secret`).
    pub matrix_secret: Option<Arc<str>>,
    /// Key sets of clients that publish them at a `jwks_uri`.
    pub remote_keys: Arc<RemoteKeys>,
    /// The homeserver, for devices the compatibility layer and OAuth logins create.
    pub homeserver: Arc<dyn mas_matrix::HomeserverConnection>,
    /// Login throttles.
    pub rate_limits: Arc<RateLimits>,
    /// The homeserver's introspection answers, kept while they hold.
    pub introspection_cache: Arc<mas_oauth_core::IntrospectionCache>,
    /// Whether this process runs the homeserver job worker, for `/health`.
    pub worker: WorkerStatus,
    /// What people may change themselves on their account pages.
    pub account: AccountSwitches,
    /// Sessions' last activity, noted here and written in batches by a task.
    pub activity: Arc<mas_storage::ActivityTracker>,
    /// Upstream identity providers' HTTP client, endpoints and keys.
    pub upstreams: Arc<mas_upstream::Upstreams>,
    /// The metrics exporter's rendering, when `telemetry.metrics.exporter` is
    /// `prometheus`: `/metrics` serves this.
    pub metrics: Option<MetricsRender>,
    /// Whether requests are measured: a metrics exporter is on (`prometheus`, or one
    /// that pushes: `otlp`, `stdout`).
    pub measured: bool,
}

/// What people may change themselves on their account pages (the `account` section's
/// switches, MAS's defaults: everything allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // Four independent switches of the configuration.
pub struct AccountSwitches {
    /// Change the display name (`account.displayname_change_allowed`).
    pub displayname_change_allowed: bool,
    /// Change the password (`account.password_change_allowed`).
    pub password_change_allowed: bool,
    /// Deactivate the account (`account.account_deactivation_allowed`).
    pub account_deactivation_allowed: bool,
    /// Add and remove email addresses (`account.email_change_allowed`).
    pub email_change_allowed: bool,
    /// Sign in at `/login` with an email address (`account.login_with_email_allowed`).
    pub login_with_email_allowed: bool,
    /// `/register` asks for a registration token
    /// (`account.password_registration_token_required`).
    pub registration_token_required: bool,
    /// `/register` asks for an email address and makes the account once the code sent
    /// there is typed (`account.password_registration_email_required`).
    pub registration_email_required: bool,
    /// "Forgot your password?" sends a link that sets a new one
    /// (`account.password_recovery_enabled`).
    pub password_recovery_enabled: bool,
}

impl Default for AccountSwitches {
    fn default() -> Self {
        Self {
            displayname_change_allowed: true,
            password_change_allowed: true,
            account_deactivation_allowed: true,
            email_change_allowed: true,
            login_with_email_allowed: false,
            registration_token_required: false,
            registration_email_required: true,
            password_recovery_enabled: false,
        }
    }
}

/// The HTTP client of the service's own calls out (remote key sets, CAPTCHA checks):
/// `timeout` for connecting and for the whole call, no redirects followed, this build
/// named in `User-Agent`.
pub(crate) fn outbound_client(
    timeout: std::time::Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mas-server/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Whether the job worker runs in this process, for `/health`: shared between the task
/// that runs it and the handlers.
#[derive(Debug, Clone, Default)]
pub struct WorkerStatus(Arc<std::sync::atomic::AtomicU8>);

impl WorkerStatus {
    // 0, the default, is "not run in this process".
    const RUNNING: u8 = 1;
    const STOPPED: u8 = 2;

    /// Records that the worker started in this process.
    pub fn started(&self) {
        self.0
            .store(Self::RUNNING, std::sync::atomic::Ordering::Release);
    }

    /// Records that the worker of this process ended (stopped or failed).
    pub fn stopped(&self) {
        self.0
            .store(Self::STOPPED, std::sync::atomic::Ordering::Release);
    }

    /// How `/health` describes it.
    pub(crate) fn describe(&self) -> &'static str {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            Self::RUNNING => "running",
            Self::STOPPED => "stopped",
            _ => "not in this process",
        }
    }

    /// Whether the worker is not run in this process, for tests.
    #[cfg(test)]
    pub(crate) fn is_elsewhere(&self) -> bool {
        self.describe() == "not in this process"
    }
}

impl AppParts {
    /// The path people's browsers use for `local` (a path from the service's root, such as
    /// `/login`): under `http.public_base`'s path, so pages work behind a prefix.
    pub(crate) fn page_path(&self, local: &str) -> String {
        let base = self.oauth.endpoints.base.path();
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            local.trim_start_matches('/')
        )
    }
}

impl axum::extract::FromRef<AppState> for axum_extra::extract::cookie::Key {
    fn from_ref(state: &AppState) -> Self {
        state.cookie_key.clone()
    }
}

/// A resource this build serves; a listener mounts the ones its configuration lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `GET /health`.
    Health,
    /// Discovery documents, webfinger and the JWK set.
    Discovery,
    /// The OAuth 2.0 API: token, introspection, revocation, userinfo.
    OAuth,
    /// Pages for people: authorization, login, consent.
    Human,
    /// The Matrix client-server compatibility layer (`/_matrix/client/*/login`...).
    Compat,
    /// `GET /metrics`, in Prometheus' text format.
    Prometheus,
    /// The admin API (`/api/admin/v1`), its OpenAPI document and documentation page.
    AdminApi,
}

/// The router of one listener: the given resources, under an optional path prefix.
pub fn router(resources: &[Resource], prefix: Option<&str>, state: AppState) -> Router {
    let mut router = Router::new();
    for resource in resources {
        router = match resource {
            Resource::Health => router.merge(health::router()),
            Resource::Discovery => router.merge(discovery::router()),
            Resource::OAuth => router.merge(oauth2::router()),
            Resource::Human => router.merge(human::router(&state)),
            Resource::Compat => router.merge(compat::router()),
            Resource::Prometheus => router.merge(metrics::router()),
            Resource::AdminApi => router.merge(admin::router()),
        };
    }
    // Measured only when something reads the measurements.
    if state.measured {
        router = router.route_layer(metrics::TrackLayer);
    }
    let router = router
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .with_state(state);
    let router = match prefix.map(|p| p.trim_end_matches('/')) {
        Some(prefix) if !prefix.is_empty() => Router::new()
            .nest(prefix, router)
            .fallback(errors::not_found),
        _ => router,
    };
    // One layer for the three: each `Router::layer` call boxes every route once more.
    router.layer(
        tower::ServiceBuilder::new()
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(PathOnly)
                    .on_failure(QuietUnavailable),
            )
            .layer(limits::LimitsLayer)
            // A stalled upload is cut off instead of holding a task (and never a
            // connection).
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                std::time::Duration::from_secs(10),
            )),
    )
}

/// Logs failed requests as tower-http does (at error level), except a 503: that is the
/// answer to every request while the database or the homeserver is away, thousands a
/// second under load, and the cause is logged where it is noticed (the database's
/// loss once, by the gate).
#[derive(Clone, Copy)]
struct QuietUnavailable;

impl tower_http::trace::OnFailure<tower_http::classify::ServerErrorsFailureClass>
    for QuietUnavailable
{
    fn on_failure(
        &mut self,
        failure: tower_http::classify::ServerErrorsFailureClass,
        latency: std::time::Duration,
        _span: &tracing::Span,
    ) {
        let latency_ms = latency.as_millis();
        match failure {
            tower_http::classify::ServerErrorsFailureClass::StatusCode(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
            ) => tracing::debug!(latency_ms, "response failed: 503 Service Unavailable"),
            other => tracing::error!(classification = %other, latency_ms, "response failed"),
        }
    }
}

/// Request spans that name the method and path only: query strings carry tokens
/// (`?access_token=`), user codes, `state` and `nonce`, which must not reach the logs.
#[derive(Debug, Clone, Copy)]
struct PathOnly;

impl<B> tower_http::trace::MakeSpan<B> for PathOnly {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            path = request.uri().path(),
            version = ?request.version(),
        );
        // A caller that sends `traceparent` gets this request in its own trace (when
        // traces are exported; the propagator does nothing otherwise).
        if !span.is_disabled() {
            let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
            });
            // Fails only when no trace layer is installed: then nothing is exported.
            let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, parent);
        }
        span
    }
}

#[cfg(test)]
pub(crate) mod test_state {
    use std::sync::Arc;

    use mas_storage::{BoxFuture, Health, StorageError, SystemClock};
    use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};

    use crate::{AppState, OAuthState};

    /// A database that is always up.
    pub(crate) struct Up;

    impl Health for Up {
        fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// An OAuth state on `https://auth.example.com/` with freshly generated keys.
    pub(crate) fn oauth() -> Arc<OAuthState> {
        oauth_with(false)
    }

    /// The same, with password registration open or closed.
    pub(crate) fn oauth_with(registration_open: bool) -> Arc<OAuthState> {
        oauth_at("https://auth.example.com/", registration_open)
    }

    /// An OAuth state served at `public_base`.
    pub(crate) fn oauth_at(public_base: &str, registration_open: bool) -> Arc<OAuthState> {
        let config = mas_config::generate().unwrap();
        let pems: Vec<String> = config
            .secrets
            .keys
            .iter()
            .map(|k| k.key.as_ref().unwrap().expose().to_owned())
            .collect();
        let keys =
            mas_oauth_core::KeyStore::from_pems(pems.iter().map(|p| (None, p.as_str()))).unwrap();
        let base = url::Url::parse(public_base).unwrap();
        let endpoints = mas_oauth_core::Endpoints::new(base.clone(), &base);
        Arc::new(OAuthState::new(endpoints, keys, registration_open))
    }

    /// Registration metadata of a test client: the method, redirect URIs and grants
    /// given, nothing else.
    pub(crate) fn client_params(
        auth_method: mas_data_model::ClientAuthMethod,
        redirect_uris: Vec<url::Url>,
        grant_types: &[&str],
    ) -> mas_storage::repository::ClientParams {
        mas_storage::repository::ClientParams {
            auth_method,
            encrypted_secret: None,
            jwks: None,
            jwks_uri: None,
            redirect_uris,
            grant_types: grant_types.iter().map(|g| (*g).to_owned()).collect(),
            name: None,
            client_uri: None,
            logo_uri: None,
            policy_uri: None,
            tos_uri: None,
            application_type: None,
            contacts: Vec::new(),
            metadata: None,
        }
    }

    /// A migrated SQLite database in a temporary directory (kept while the guard lives).
    pub(crate) async fn database() -> (SqlRepositoryFactory, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let factory = SqlRepositoryFactory::connect(&PoolOptions {
            uri: format!("sqlite://{}", dir.path().join("mas.db").display()),
            max_connections: 4,
            min_connections: 0,
            connect_timeout: std::time::Duration::from_secs(5),
            idle_timeout: None,
            max_lifetime: None,
        })
        .await
        .unwrap();
        factory.migrate().await.unwrap();
        (factory, dir)
    }

    /// A state over a fresh database, with `health` as the health check.
    pub(crate) async fn state(health: Arc<dyn Health>) -> (AppState, tempfile::TempDir) {
        let (factory, dir) = database().await;
        // One process on its own database: every revocation is heard.
        mas_storage::RepositoryFactory::revocations(&factory).set_live(true);
        let activity = Arc::new(mas_storage::ActivityTracker::new());
        let introspection_cache = Arc::new(
            mas_oauth_core::IntrospectionCache::new(
                mas_storage::RepositoryFactory::revocations(&factory).clone(),
                1024,
            )
            .tracking(Arc::clone(&activity)),
        );
        let state = crate::AppParts {
            health,
            oauth: oauth(),
            repos: Arc::new(factory),
            clock: Arc::new(SystemClock),
            encrypter: mas_storage::Encrypter::new(&[9; 32]),
            access_token_ttl: chrono::Duration::minutes(5),
            compat_token_ttl: chrono::Duration::minutes(5),
            compat_sso_allowlist: Arc::from([]),
            cookie_key: axum_extra::extract::cookie::Key::derive_from(&[7; 32]),
            secure_cookies: false,
            passwords: Arc::new(crate::PasswordChecker::new(
                mas_oauth_core::passwords::PasswordManager::new(
                    vec![mas_oauth_core::passwords::Scheme {
                        version: 1,
                        algorithm: mas_oauth_core::passwords::Algorithm::Argon2id,
                        secret: None,
                        unicode_normalization: false,
                    }],
                    0,
                ),
            )),
            service_name: "auth.example.com".into(),
            tos_uri: None,
            policy: Arc::default(),
            captcha: None,
            matrix_secret: Some("homeserver-secret".into()),
            remote_keys: Arc::new(crate::RemoteKeys::new().unwrap()),
            homeserver: Arc::new(mas_matrix::MockHomeserver::new("example.com")),
            rate_limits: Arc::new(crate::RateLimits::new(
                crate::Limits::generous(),
                Vec::new(),
            )),
            introspection_cache,
            worker: crate::WorkerStatus::default(),
            account: crate::AccountSwitches::default(),
            activity,
            upstreams: Arc::new(
                mas_upstream::Upstreams::new(std::time::Duration::from_secs(5))
                    .unwrap()
                    .with_keys_refetch_after(std::time::Duration::ZERO),
            ),
            metrics: None,
            measured: false,
        };
        (state.into(), dir)
    }
}
