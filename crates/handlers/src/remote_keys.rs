//! Fetches the key sets `private_key_jwt` clients publish at their `jwks_uri`.
//!
//! Fetching happens before any database transaction begins, so a slow or hostile key
//! server never holds a pool connection. Answers are bounded in time and size, redirects
//! are not followed, and good answers are cached for a few minutes.
//!
//! The fetch happens before the client is authenticated, so anyone naming the client in
//! an assertion could otherwise make us fetch at will. Hence: one fetch per URI at a time
//! (others wait for its result), failures remembered with exponential backoff, and a
//! cached set missing the assertion's key fetched again at most once a minute.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

/// The whole fetch, connection included.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key set accepted.
const MAX_BYTES: usize = 256 * 1024;

/// How long answers are kept; fixed in production, shortened by tests.
#[derive(Debug, Clone, Copy)]
struct Timings {
    /// How long a fetched key set is trusted before it is fetched again.
    fresh_for: Duration,
    /// How old a key set must be before a key-id miss fetches it again.
    refetch_after: Duration,
    /// The wait after the first failed fetch; it doubles with each further failure.
    first_backoff: Duration,
    /// The longest wait between failed fetches.
    max_backoff: Duration,
}

impl Timings {
    /// The timings the server runs with.
    const PRODUCTION: Self = Self {
        fresh_for: Duration::from_mins(5),
        refetch_after: Duration::from_mins(1),
        first_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_mins(5),
    };

    /// The wait after `failures` failed fetches in a row (at least one).
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What is known about one `jwks_uri`.
#[derive(Debug, Default)]
struct Entry {
    /// The last key set fetched, and when.
    keys: Option<(Instant, Value)>,
    /// Failed fetches since the last good one.
    failures: u32,
    /// No fetch is tried before this, after a failure.
    retry_at: Option<Instant>,
}

/// A cache of client key sets fetched over HTTP(S).
pub struct RemoteKeys {
    http: reqwest::Client,
    timings: Timings,
    // Each URI has its own lock, held across its fetch, so concurrent requests share one
    // fetch and a slow key server only delays its own client.
    entries: Mutex<HashMap<Url, Arc<Mutex<Entry>>>>,
}

impl RemoteKeys {
    /// The HTTP client (bounded timeouts, no redirects), for other calls to clients.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
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
        Self::with_timings(Timings::PRODUCTION)
    }

    /// A fetcher keeping answers for `timings` (shortened in tests).
    fn with_timings(timings: Timings) -> Result<Self, reqwest::Error> {
        let http = crate::outbound_client(TIMEOUT)?;
        Ok(Self {
            http,
            timings,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The key set at `uri`, from the cache while fresh. `lacks_key` says whether a set
    /// misses the key the request needs; a fresh set that does is fetched again, at most
    /// once per `refetch_after`. `None` when no fresh set can be had (the fetch failed,
    /// or failed lately and is backing off); the reason is logged, as the client only
    /// ever learns `invalid_client`.
    #[tracing::instrument(name = "remote_keys.get", skip(self, lacks_key), fields(%uri))]
    pub async fn get(&self, uri: &Url, lacks_key: impl Fn(&Value) -> bool) -> Option<Value> {
        let entry = self
            .entries
            .lock()
            .await
            .entry(uri.clone())
            .or_default()
            .clone();
        let mut entry = entry.lock().await;
        let now = Instant::now();
        let fresh = entry
            .keys
            .as_ref()
            .filter(|(at, _)| now.duration_since(*at) < self.timings.fresh_for)
            .map(|(at, keys)| (*at, keys.clone()));
        if let Some((at, keys)) = &fresh
            && (now.duration_since(*at) < self.timings.refetch_after || !lacks_key(keys))
        {
            return Some(keys.clone());
        }
        let fresh = fresh.map(|(_, keys)| keys);
        if entry.retry_at.is_some_and(|at| now < at) {
            tracing::debug!(
                failures = entry.failures,
                "jwks_uri backing off after failures"
            );
            return fresh;
        }
        match self.fetch(uri).await {
            Ok(keys) => {
                *entry = Entry {
                    keys: Some((Instant::now(), keys.clone())),
                    failures: 0,
                    retry_at: None,
                };
                Some(keys)
            }
            Err(reason) => {
                entry.failures = entry.failures.saturating_add(1);
                let wait = self.timings.backoff(entry.failures);
                entry.retry_at = Some(Instant::now() + wait);
                tracing::warn!(%reason, failures = entry.failures, retry_in = ?wait, "cannot fetch a client's jwks_uri");
                // A fresh set still serves the keys it has.
                fresh
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::{RemoteKeys, Timings};

    const SHORT: Timings = Timings {
        fresh_for: Duration::from_mins(1),
        refetch_after: Duration::from_millis(500),
        first_backoff: Duration::from_millis(400),
        max_backoff: Duration::from_secs(2),
    };

    /// A key server counting its requests, failing while `failing` is set.
    async fn key_server() -> (url::Url, Arc<AtomicUsize>, Arc<AtomicBool>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(true));
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get({
                let (hits, failing) = (hits.clone(), failing.clone());
                move || async move {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    if failing.load(Ordering::SeqCst) {
                        Err(axum::http::StatusCode::BAD_GATEWAY)
                    } else {
                        Ok(axum::Json(json!({"keys": [{"kid": format!("k{n}")}]})))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (uri.parse().unwrap(), hits, failing)
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let waits: Vec<u64> = (1..=8)
            .map(|n| Timings::PRODUCTION.backoff(n).as_secs())
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(
            Timings::PRODUCTION.backoff(u32::MAX),
            Duration::from_mins(5)
        );
    }

    #[tokio::test]
    async fn failures_back_off_and_a_success_resets_them() {
        let (uri, hits, failing) = key_server().await;
        let keys = RemoteKeys::with_timings(SHORT).unwrap();
        let never_lacking = |_: &Value| false;
        for _ in 0..5 {
            assert!(keys.get(&uri, never_lacking).await.is_none());
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch, then backoff");

        tokio::time::sleep(SHORT.first_backoff).await;
        assert!(keys.get(&uri, never_lacking).await.is_none());
        assert_eq!(hits.load(Ordering::SeqCst), 2, "tried again after the wait");
        // The second failure waits twice as long.
        tokio::time::sleep(SHORT.first_backoff).await;
        assert!(keys.get(&uri, never_lacking).await.is_none());
        assert_eq!(hits.load(Ordering::SeqCst), 2, "still backing off");

        failing.store(false, Ordering::SeqCst);
        tokio::time::sleep(SHORT.first_backoff).await;
        let got = keys.get(&uri, never_lacking).await.unwrap();
        assert_eq!(got["keys"][0]["kid"], "k2");
        assert_eq!(keys.get(&uri, never_lacking).await, Some(got));
        assert_eq!(hits.load(Ordering::SeqCst), 3, "then served from the cache");
    }

    #[tokio::test]
    async fn a_missing_key_refetches_at_most_once_per_interval() {
        let (uri, hits, failing) = key_server().await;
        failing.store(false, Ordering::SeqCst);
        let keys = RemoteKeys::with_timings(SHORT).unwrap();
        let wants = |kid: &'static str| move |set: &Value| set["keys"][0]["kid"] != kid;

        assert_eq!(
            keys.get(&uri, wants("k0")).await.unwrap()["keys"][0]["kid"],
            "k0"
        );
        // A miss on a set fetched just now is answered from the cache, however often.
        for _ in 0..5 {
            let got = keys.get(&uri, wants("k1")).await.unwrap();
            assert_eq!(got["keys"][0]["kid"], "k0");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        // Once the set is old enough, a miss fetches it again, once.
        tokio::time::sleep(SHORT.refetch_after).await;
        for _ in 0..5 {
            let got = keys.get(&uri, wants("k1")).await.unwrap();
            assert_eq!(got["keys"][0]["kid"], "k1");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        // A failed refetch keeps serving the fresh set, and backs off.
        failing.store(true, Ordering::SeqCst);
        tokio::time::sleep(SHORT.refetch_after).await;
        for _ in 0..5 {
            let got = keys.get(&uri, wants("k9")).await.unwrap();
            assert_eq!(got["keys"][0]["kid"], "k1");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }
}
