//! Connectors to the homeserver. The service keeps the homeserver's users and devices in
//! step with its own through one trait, [`HomeserverConnection`], with an implementation
//! per Synapse generation:
//!
//! - [`SynapseModern`]: the `/_synapse/mas/*` API of Synapse 1.136 and later;
//! - [`SynapseLegacy`]: the admin API, for the `experimental_features.msc3861` generation;
//! - [`ReadOnly`]: queries pass through, changes are logged and skipped;
//! - [`MockHomeserver`]: in memory, for tests, and able to play an outage.
//!
//! Every call is bounded in time ([`TIMEOUT`]): a homeserver that hangs is an
//! [`HomeserverError::Unreachable`] after a few seconds, never a request that waits forever.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;

mod legacy;
mod mock;
mod modern;
mod read_only;

pub use self::legacy::SynapseLegacy;
pub use self::mock::{MockHomeserver, MockUser};
pub use self::modern::SynapseModern;
pub use self::read_only::ReadOnly;

/// How long one call to the homeserver may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What the homeserver knows of a user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatrixUser {
    /// The display name, if set.
    pub displayname: Option<String>,
    /// The avatar `mxc://` URL, if set.
    pub avatar_url: Option<String>,
    /// Whether the account is deactivated.
    pub deactivated: bool,
}

/// A change to one field of a profile: leave it, set it, or clear it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FieldAction<T> {
    /// Leave the homeserver's value alone.
    #[default]
    Keep,
    /// Replace it.
    Set(T),
    /// Clear it.
    Unset,
}

/// Creates or updates a user on the homeserver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionRequest {
    /// The user's localpart.
    pub localpart: String,
    /// The user's stable ID at the service (the `sub` of its tokens).
    pub sub: String,
    /// The display name.
    pub displayname: FieldAction<String>,
    /// The avatar URL.
    pub avatar_url: FieldAction<String>,
    /// The email addresses.
    pub emails: FieldAction<Vec<String>>,
    /// Whether the account is locked; `None` leaves it.
    pub locked: Option<bool>,
}

impl ProvisionRequest {
    /// A request that only makes sure the user exists.
    #[must_use]
    pub fn new(localpart: impl Into<String>, sub: impl Into<String>) -> Self {
        Self {
            localpart: localpart.into(),
            sub: sub.into(),
            displayname: FieldAction::Keep,
            avatar_url: FieldAction::Keep,
            emails: FieldAction::Keep,
            locked: None,
        }
    }
}

/// Why the homeserver will not let a new user take a localpart, in its own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", errcode.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct Unavailable {
    /// The Matrix `errcode`: Synapse says `M_USER_IN_USE`, `M_EXCLUSIVE` (an application
    /// service's namespace) or `M_INVALID_USERNAME`.
    pub errcode: Option<String>,
    /// The homeserver's `error` text, which names the rule (Synapse: "User ID may not
    /// begin with _").
    pub message: String,
}

/// Why a call to the homeserver failed.
#[derive(Debug, thiserror::Error)]
pub enum HomeserverError {
    /// It could not be reached, or did not answer in time.
    #[error("the homeserver is unreachable: {0}")]
    Unreachable(String),
    /// The user does not exist there.
    #[error("the user does not exist on the homeserver")]
    UserNotFound,
    /// It answered with an error.
    #[error("the homeserver refused ({status}{}): {message}", errcode.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The Matrix `errcode`, when there was one.
        errcode: Option<String>,
        /// The homeserver's `error` text.
        message: String,
    },
    /// Its answer could not be read.
    #[error("the homeserver's answer could not be read: {0}")]
    Invalid(String),
}

impl HomeserverError {
    /// An availability check's 400 is the homeserver refusing the name (taken, reserved,
    /// against its rules), which is an answer rather than a failure.
    pub(crate) fn into_unavailable(self) -> Result<Option<Unavailable>, Self> {
        match self {
            Self::Refused {
                status: 400,
                errcode,
                message,
            } => Ok(Some(Unavailable { errcode, message })),
            other => Err(other),
        }
    }

    /// Whether trying again later may succeed: outages and server-side errors, not a
    /// refusal of the request itself.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Refused { status, .. } => *status >= 500 || *status == 429,
            Self::UserNotFound | Self::Invalid(_) => false,
        }
    }

    /// Whether a background job should try again: besides outages, a refused secret or
    /// a missing API (401, 403, 404) is a configuration an administrator will fix, and
    /// the queued work must survive until then.
    #[must_use]
    pub fn worth_retrying(&self) -> bool {
        self.is_transient()
            || matches!(
                self,
                Self::Refused {
                    status: 401 | 403 | 404,
                    ..
                }
            )
    }
}

/// The homeserver, as the service sees it. All calls name users by localpart.
#[async_trait]
pub trait HomeserverConnection: Send + Sync {
    /// The server name (the part after `:` in user IDs).
    fn homeserver(&self) -> &str;

    /// The full Matrix ID of a localpart on this homeserver.
    fn mxid(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.homeserver())
    }

    /// What the homeserver knows of a user.
    ///
    /// # Errors
    /// [`HomeserverError::UserNotFound`] when it does not exist; otherwise as the call.
    async fn query_user(&self, localpart: &str) -> Result<MatrixUser, HomeserverError>;

    /// Creates the user or updates it; `true` when it was created.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn provision_user(&self, request: &ProvisionRequest) -> Result<bool, HomeserverError>;

    /// Whether a new user may take this localpart: `None` when it may, else the
    /// homeserver's reason (taken, reserved for an application service, against its rules).
    ///
    /// # Errors
    /// When the homeserver cannot be reached or its answer cannot be read.
    async fn check_localpart(
        &self,
        localpart: &str,
    ) -> Result<Option<Unavailable>, HomeserverError>;

    /// Whether a new user may take this localpart.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or its answer cannot be read.
    async fn is_localpart_available(&self, localpart: &str) -> Result<bool, HomeserverError> {
        Ok(self.check_localpart(localpart).await?.is_none())
    }

    /// Creates the device, or renames it if it exists.
    ///
    /// # Errors
    /// [`HomeserverError::UserNotFound`] when the user is not provisioned yet.
    async fn upsert_device(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<(), HomeserverError>;

    /// Renames a device.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn update_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: &str,
    ) -> Result<(), HomeserverError>;

    /// Deletes a device and ends its access at the homeserver at once.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn delete_device(&self, localpart: &str, device_id: &str) -> Result<(), HomeserverError>;

    /// Makes the user's devices exactly `devices`: missing ones are created, others deleted.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn sync_devices(
        &self,
        localpart: &str,
        devices: &BTreeSet<String>,
    ) -> Result<(), HomeserverError>;

    /// Deactivates the user, erasing its data when `erase`.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn delete_user(&self, localpart: &str, erase: bool) -> Result<(), HomeserverError>;

    /// Reactivates a deactivated user.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn reactivate_user(&self, localpart: &str) -> Result<(), HomeserverError>;

    /// Sets the display name.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn set_displayname(&self, localpart: &str, name: &str) -> Result<(), HomeserverError>;

    /// Clears the display name.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn unset_displayname(&self, localpart: &str) -> Result<(), HomeserverError>;

    /// Lets the user replace its cross-signing keys without interactive auth for a while.
    ///
    /// # Errors
    /// When the homeserver cannot be reached or refuses.
    async fn allow_cross_signing_reset(&self, localpart: &str) -> Result<(), HomeserverError>;
}

/// An HTTP client to the homeserver: bounded in time, no redirects, the secret as bearer.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    endpoint: url::Url,
    secret: String,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(endpoint: url::Url, secret: String) -> Result<Self, HomeserverError> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mas-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HomeserverError::Unreachable(e.to_string()))?;
        Ok(Self {
            client,
            endpoint,
            secret,
        })
    }

    /// `path` (segments, each percent-encoded) under the endpoint.
    pub(crate) fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends a request and reads its JSON answer (`Null` for an empty one), measured in
    /// `mas.homeserver.request.duration` by method and outcome.
    #[tracing::instrument(
        name = "homeserver.request",
        skip_all,
        fields(http.request.method = %method, server.address = url.host_str().unwrap_or_default())
    )]
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), HomeserverError> {
        let started = std::time::Instant::now();
        let label = method.as_str().to_owned();
        let result = self.send(method, url, body).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(HomeserverError::UserNotFound) => "not_found",
            Err(HomeserverError::Refused { .. }) => "refused",
            Err(_) => "unreachable",
        };
        request_duration().record(
            started.elapsed().as_secs_f64(),
            &[
                opentelemetry::KeyValue::new("http.request.method", label),
                opentelemetry::KeyValue::new("outcome", outcome),
            ],
        );
        result
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), HomeserverError> {
        // The trace goes on to the homeserver (when traces are exported).
        let mut trace = reqwest::header::HeaderMap::new();
        let context =
            tracing_opentelemetry::OpenTelemetrySpanExt::context(&tracing::Span::current());
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(
                &context,
                &mut opentelemetry_http::HeaderInjector(&mut trace),
            );
        });
        let mut request = self
            .client
            .request(method, url)
            .headers(trace)
            .bearer_auth(&self.secret)
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| HomeserverError::Unreachable(describe(e)))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HomeserverError::Unreachable(describe(e)))?;
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok((status, value));
        }
        let errcode = value
            .get("errcode")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        if status == 404 && errcode.as_deref() == Some("M_NOT_FOUND") {
            return Err(HomeserverError::UserNotFound);
        }
        Err(HomeserverError::Refused {
            status,
            message: value
                .get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no error text")
                .to_owned(),
            errcode,
        })
    }
}

/// `mas.homeserver.request.duration`, in seconds: calls to the homeserver, by method and
/// outcome (`success`, `not_found`, `refused`, `unreachable`). A no-op until the
/// application sets a meter provider.
fn request_duration() -> &'static opentelemetry::metrics::Histogram<f64> {
    static INSTRUMENT: std::sync::OnceLock<opentelemetry::metrics::Histogram<f64>> =
        std::sync::OnceLock::new();
    INSTRUMENT.get_or_init(|| {
        opentelemetry::global::meter("mas")
            .f64_histogram("mas.homeserver.request.duration")
            .with_unit("s")
            .with_description("Calls to the homeserver, by method and outcome")
            .with_boundaries(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .build()
    })
}

/// A transport error without the URL's query (which may carry a localpart) or secrets.
fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if error.is_connect() {
        "connection refused or failed".to_owned()
    } else {
        error.without_url().to_string()
    }
}
