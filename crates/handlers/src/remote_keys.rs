//! Fetches the key sets `private_key_jwt` clients publish at their `jwks_uri`.
//!
//! Fetching happens before any database transaction begins, so a slow or hostile key
//! server never holds a pool connection. Answers are bounded in time and size, redirects
//! are not followed, and good answers are cached for a few minutes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

/// How long a fetched key set is trusted before it is fetched again.
const FRESH_FOR: Duration = Duration::from_mins(5);
/// The whole fetch, connection included.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key set accepted.
const MAX_BYTES: usize = 256 * 1024;

/// A cache of client key sets fetched over HTTP(S).
pub struct RemoteKeys {
    http: reqwest::Client,
    cache: Mutex<HashMap<Url, (Instant, Value)>>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys").finish_non_exhaustive()
    }
}

impl RemoteKeys {
    /// A fetcher with the bounds above.
    ///
    /// # Errors
    /// When the TLS stack cannot be initialised.
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mas-server/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The key set at `uri`, from the cache while fresh. `None` when it cannot be had;
    /// the reason is logged, as the client only ever learns `invalid_client`.
    #[tracing::instrument(name = "remote_keys.get", skip(self), fields(%uri))]
    pub async fn get(&self, uri: &Url) -> Option<Value> {
        if let Some((at, keys)) = self.cache.lock().await.get(uri)
            && at.elapsed() < FRESH_FOR
        {
            return Some(keys.clone());
        }
        match self.fetch(uri).await {
            Ok(keys) => {
                self.cache
                    .lock()
                    .await
                    .insert(uri.clone(), (Instant::now(), keys.clone()));
                Some(keys)
            }
            Err(reason) => {
                tracing::warn!(%reason, "cannot fetch a client's jwks_uri");
                None
            }
        }
    }

    async fn fetch(&self, uri: &Url) -> Result<Value, String> {
        let mut response = self
            .http
            .get(uri.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BYTES as u64)
        {
            return Err("key set too large".to_owned());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err("key set too large".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        let keys: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if !keys.get("keys").is_some_and(Value::is_array) {
            return Err("not a JWK set (no `keys` array)".to_owned());
        }
        Ok(keys)
    }
}
