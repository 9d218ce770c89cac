//! Providers' endpoints (discovered or configured) and key sets, fetched with bounded
//! timeouts and kept for an hour; a key set is fetched again when a token names a key it
//! lacks (the provider rotated its keys), at most every 30 seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mas_config::sections::{DiscoveryMode, UpstreamProviderConfig};
use openidconnect::JsonWebKeySetUrl;
use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use serde_json::Value;
use ulid::Ulid;
use url::Url;

use crate::UpstreamError;

/// How long discovered endpoints and fetched keys are kept.
const KEEP_FOR: Duration = Duration::from_hours(1);
/// How soon a key set may be fetched again because a token named an unknown key.
const KEYS_REFETCH_AFTER: Duration = Duration::from_secs(30);

/// A provider's endpoints.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) authorization: Url,
    pub(crate) token: Url,
    pub(crate) userinfo: Option<Url>,
    pub(crate) jwks_uri: Option<Url>,
    /// Whether its discovery document lists PKCE with S256.
    pub(crate) pkce_s256: bool,
}

/// A fetched key set.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) set: CoreJsonWebKeySet,
    pub(crate) fetched_at: Instant,
}

impl Keys {
    /// The key set as JSON, for the JWS checks of `mas-oauth-core`.
    pub(crate) fn as_json(&self) -> Value {
        serde_json::to_value(&self.set).unwrap_or_default()
    }
}

#[derive(Default)]
struct Cached {
    endpoints: Option<(Arc<Endpoints>, Instant)>,
    keys: Option<Arc<Keys>>,
}

/// The upstream providers' HTTP client and caches; one per process, shared.
pub struct Upstreams {
    pub(crate) http: openidconnect::reqwest::Client,
    // Keyed by the provider and its settings, so that a re-synced provider starts afresh.
    cache: Mutex<HashMap<(Ulid, String), Cached>>,
    pub(crate) keys_refetch_after: Duration,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

fn cache_key(config: &UpstreamProviderConfig) -> (Ulid, String) {
    (config.id, serde_json::to_string(config).unwrap_or_default())
}

impl Upstreams {
    /// A client whose every request to a provider ends within `timeout`. Redirects are
    /// not followed: a provider's endpoints are used as given.
    ///
    /// # Errors
    /// [`UpstreamError::Configuration`] when the HTTP client cannot be built (no TLS roots).
    pub fn new(timeout: Duration) -> Result<Self, UpstreamError> {
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            // Some APIs (GitHub's) refuse requests without one.
            .user_agent(concat!("mas-upstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UpstreamError::Configuration(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            cache: Mutex::new(HashMap::new()),
            keys_refetch_after: KEYS_REFETCH_AFTER,
        })
    }

    /// Lets a key set be fetched again this soon after the last fetch when a token names
    /// a key it lacks (30 seconds by default; tests rotate keys faster).
    #[must_use]
    pub fn with_keys_refetch_after(mut self, after: Duration) -> Self {
        self.keys_refetch_after = after;
        self
    }

    fn with_cache<T>(
        &self,
        config: &UpstreamProviderConfig,
        f: impl FnOnce(&mut Cached) -> T,
    ) -> T {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        f(cache.entry(cache_key(config)).or_default())
    }

    /// The provider's endpoints, discovered unless `discovery_mode` is `disabled`, with
    /// the configured overrides.
    pub(crate) async fn endpoints(
        &self,
        config: &UpstreamProviderConfig,
    ) -> Result<Arc<Endpoints>, UpstreamError> {
        let cached = self.with_cache(config, |c| {
            c.endpoints
                .as_ref()
                .filter(|(_, at)| at.elapsed() < KEEP_FOR)
                .map(|(e, _)| Arc::clone(e))
        });
        if let Some(endpoints) = cached {
            return Ok(endpoints);
        }
        let endpoints = Arc::new(self.discover(config).await?);
        self.with_cache(config, |c| {
            c.endpoints = Some((Arc::clone(&endpoints), Instant::now()));
        });
        Ok(endpoints)
    }

    async fn discover(&self, config: &UpstreamProviderConfig) -> Result<Endpoints, UpstreamError> {
        let document = match (config.discovery_mode, config.issuer.as_deref()) {
            (DiscoveryMode::Disabled, _) => Value::Null,
            (_, None) => {
                return Err(UpstreamError::Configuration(
                    "`issuer` is needed for discovery".to_owned(),
                ));
            }
            (mode, Some(issuer)) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let document = self.get_json(&url).await?;
                if mode == DiscoveryMode::Oidc {
                    check_document(&document, issuer)?;
                }
                document
            }
        };
        let discovered = |name: &str| {
            document
                .get(name)
                .and_then(Value::as_str)
                .map(|u| {
                    Url::parse(u).map_err(|_| {
                        UpstreamError::Configuration(format!(
                            "the discovery document's `{name}` is not a URL"
                        ))
                    })
                })
                .transpose()
        };
        let required = |given: &Option<Url>, name: &str| match given {
            Some(url) => Ok(url.clone()),
            None => discovered(name)?.ok_or_else(|| {
                UpstreamError::Configuration(format!("no `{name}` (configured or discovered)"))
            }),
        };
        let optional = |given: &Option<Url>, name: &str| match given {
            Some(url) => Ok(Some(url.clone())),
            None => discovered(name),
        };
        Ok(Endpoints {
            authorization: required(&config.authorization_endpoint, "authorization_endpoint")?,
            token: required(&config.token_endpoint, "token_endpoint")?,
            userinfo: optional(&config.userinfo_endpoint, "userinfo_endpoint")?,
            jwks_uri: optional(&config.jwks_uri, "jwks_uri")?,
            pkce_s256: document
                .get("code_challenge_methods_supported")
                .and_then(Value::as_array)
                .is_some_and(|methods| methods.iter().any(|m| m == "S256")),
        })
    }

    /// The provider's key set: the one kept, or a fresh one when there is none, it is
    /// old, or `stale` says the kept one lacks a key (and it is not fetched too often).
    pub(crate) async fn keys(
        &self,
        config: &UpstreamProviderConfig,
        endpoints: &Endpoints,
        stale: bool,
    ) -> Result<Arc<Keys>, UpstreamError> {
        let kept = self.with_cache(config, |c| c.keys.clone());
        if let Some(keys) = &kept {
            let age = keys.fetched_at.elapsed();
            if age < KEEP_FOR && !(stale && age >= self.keys_refetch_after) {
                return Ok(Arc::clone(keys));
            }
        }
        let Some(uri) = &endpoints.jwks_uri else {
            return Ok(Arc::new(Keys {
                set: CoreJsonWebKeySet::new(Vec::new()),
                fetched_at: Instant::now(),
            }));
        };
        let set =
            CoreJsonWebKeySet::fetch_async(&JsonWebKeySetUrl::from_url(uri.clone()), &self.http)
                .await
                .map_err(|e| UpstreamError::Unreachable(format!("key set at {uri}: {e}")))?;
        let keys = Arc::new(Keys {
            set,
            fetched_at: Instant::now(),
        });
        self.with_cache(config, |c| c.keys = Some(Arc::clone(&keys)));
        Ok(keys)
    }

    /// GETs a JSON document.
    pub(crate) async fn get_json(&self, url: &str) -> Result<Value, UpstreamError> {
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("{url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(UpstreamError::Unreachable(format!(
                "{url} answered {status}"
            )));
        }
        response
            .json()
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("{url} did not send JSON: {e}")))
    }
}

/// The strict checks of `discovery_mode: oidc`: the document has what OpenID Connect
/// Discovery requires, and names exactly the configured issuer.
fn check_document(document: &Value, issuer: &str) -> Result<(), UpstreamError> {
    let metadata: CoreProviderMetadata = serde_json::from_value(document.clone()).map_err(|e| {
        UpstreamError::Configuration(format!("the discovery document is not valid: {e}"))
    })?;
    let named = metadata.issuer().as_str();
    if named != issuer {
        return Err(UpstreamError::Configuration(format!(
            "the discovery document names the issuer `{named}`, not the configured `{issuer}`"
        )));
    }
    // Our secret, the codes and the tokens go to these: over TLS, unless the provider
    // runs on this machine.
    for name in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
    ] {
        let Some(url) = document.get(name).and_then(Value::as_str) else {
            continue;
        };
        if !secure(url) {
            return Err(UpstreamError::Configuration(format!(
                "the discovery document's `{name}` ({url}) is not https \
                 (`discovery_mode: insecure` allows it)"
            )));
        }
    }
    Ok(())
}

/// Whether `url` is https, or http to a loopback address.
fn secure(url: &str) -> bool {
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn strict_discovery_wants_tls_except_on_this_machine() {
        for url in [
            "https://idp.example/",
            "http://127.0.0.1:8080/x",
            "http://[::1]/",
            "http://localhost/",
        ] {
            assert!(super::secure(url), "{url}");
        }
        for url in [
            "http://idp.example/",
            "http://10.0.0.1/",
            "ftp://idp.example/",
            "not a url",
        ] {
            assert!(!super::secure(url), "{url}");
        }
    }
}
