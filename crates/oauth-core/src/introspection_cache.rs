//! The homeserver's introspection, answered from memory when the answer still holds.
//!
//! Every Matrix request a homeserver serves may ask about its token, so this is the
//! service's hottest path. An active answer is kept, keyed by the token's SHA-256, with
//! the [`Ticket`] taken before it was read and the ids it depends on (session, user,
//! client). It is served again only while [`Revocations::is_current`] says nothing it
//! depends on was revoked since, the token has not expired, and for at most
//! [`mas_storage::MAX_CACHE_AGE`]. Inactive answers are never kept: a token made a
//! moment later must not be refused.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mas_data_model::TokenType;
use mas_storage::{Clock, RepositoryFactory, Revocations, SessionKind, Ticket};
use ulid::Ulid;

use crate::error::OAuthError;
use crate::tokens::{Asker, Introspection, hint_matches, introspect_checked};

/// Answers kept at most (a few hundred bytes each).
pub const DEFAULT_CAPACITY: usize = 32 * 1024;

/// A kept answer.
#[derive(Debug)]
struct Entry {
    introspection: Introspection,
    expires_at: Option<DateTime<Utc>>,
    ticket: Ticket,
    keys: Vec<Ulid>,
}

/// Active introspection answers for the homeserver, kept while they hold.
pub struct IntrospectionCache {
    entries: quick_cache::sync::Cache<[u8; 32], Arc<Entry>>,
    revocations: Revocations,
    /// Where the sessions of active answers are noted as used, when set.
    activity: Option<Arc<mas_storage::ActivityTracker>>,
}

impl std::fmt::Debug for IntrospectionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are token hashes: nothing to show.
        f.debug_struct("IntrospectionCache")
            .field("entries", &self.entries.len())
            .field("live", &self.revocations.is_live())
            .field("tracking", &self.activity.is_some())
            .finish()
    }
}

impl IntrospectionCache {
    /// A cache of at most `capacity` answers, checked against `revocations` (the record
    /// the storage keeps: [`RepositoryFactory::revocations`]).
    #[must_use]
    pub fn new(revocations: Revocations, capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            revocations,
            activity: None,
        }
    }

    /// Notes the session of every active answer in `tracker`, as used now: the homeserver
    /// asks on each request, so this is the session's last activity.
    #[must_use]
    pub fn tracking(mut self, tracker: Arc<mas_storage::ActivityTracker>) -> Self {
        self.activity = Some(tracker);
        self
    }

    fn note_use(&self, kind: TokenType, keys: &[Ulid], now: DateTime<Utc>) {
        let (Some(tracker), Some(session)) = (&self.activity, keys.first()) else {
            return;
        };
        let kind = match kind {
            TokenType::AccessToken | TokenType::RefreshToken => SessionKind::OAuth2,
            TokenType::CompatAccessToken | TokenType::CompatRefreshToken => SessionKind::Compat,
            TokenType::PersonalAccessToken => SessionKind::Personal,
        };
        tracker.record(kind, *session, now, None);
    }

    /// How many answers are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no answer is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn get(&self, key: &[u8; 32], now: DateTime<Utc>) -> Option<(Introspection, Arc<Entry>)> {
        let entry = self.entries.get(key)?;
        let expired = entry.expires_at.is_some_and(|at| at <= now);
        if expired || !self.revocations.is_current(&entry.ticket, &entry.keys) {
            self.entries.remove(key);
            return None;
        }
        let mut answer = entry.introspection.clone();
        answer.expires_in = entry.expires_at.map(|at| (at - now).num_seconds().max(0));
        Some((answer, entry))
    }
}

/// Whether answers about tokens of this kind may be kept: the access tokens a homeserver
/// asks about on every request.
fn cacheable(kind: TokenType) -> bool {
    matches!(
        kind,
        TokenType::AccessToken | TokenType::CompatAccessToken | TokenType::PersonalAccessToken
    )
}

/// `mas.introspection.cache.lookups`: the homeserver's introspections of cacheable
/// tokens, by `result` (`hit` or `miss`). A no-op until the application sets a meter
/// provider.
fn lookups() -> &'static opentelemetry::metrics::Counter<u64> {
    static INSTRUMENT: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> =
        std::sync::OnceLock::new();
    INSTRUMENT.get_or_init(|| {
        opentelemetry::global::meter("mas")
            .u64_counter("mas.introspection.cache.lookups")
            .with_description(
                "Homeserver introspections answered from the cache (hit) or the database (miss)",
            )
            .build()
    })
}

/// Introspection for the homeserver (see [`crate::tokens::introspect`] with
/// [`Asker::Homeserver`]), answered from `cache` while the answer holds. A string that is
/// not one of our tokens, or not of the kind `hint` names, is inactive without any
/// lookup; refresh tokens are never active here.
///
/// # Errors
/// `temporarily_unavailable` when the answer is not kept and the database is away.
pub async fn introspect_for_homeserver(
    cache: &IntrospectionCache,
    repos: &dyn RepositoryFactory,
    clock: &dyn Clock,
    token: &str,
    hint: Option<&str>,
) -> Result<Introspection, OAuthError> {
    let Ok(kind) = TokenType::check(token) else {
        return Ok(Introspection::default());
    };
    if !hint_matches(kind, hint) {
        return Ok(Introspection::default());
    }
    let key = cacheable(kind).then(|| {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(digest.as_ref());
        key
    });
    let now = clock.now();
    if let Some(key) = &key {
        let found = cache.get(key, now);
        lookups().add(
            1,
            &[opentelemetry::KeyValue::new(
                "result",
                if found.is_some() { "hit" } else { "miss" },
            )],
        );
        if let Some((answer, entry)) = found {
            cache.note_use(kind, &entry.keys, now);
            return Ok(answer);
        }
    }
    // Taken before the read: a revocation that commits while we read makes what we
    // read stale.
    let ticket = cache.revocations.ticket();
    let mut repo = repos.reader().await?;
    let answer = introspect_checked(repo.as_mut(), clock, token, kind, Asker::Homeserver).await?;
    if answer.introspection.active {
        cache.note_use(kind, &answer.keys, now);
    }
    if let Some(key) = key
        && answer.introspection.active
        && cache.revocations.is_current(&ticket, &answer.keys)
    {
        cache.entries.insert(
            key,
            Arc::new(Entry {
                introspection: answer.introspection.clone(),
                expires_at: answer.expires_at,
                ticket,
                keys: answer.keys,
            }),
        );
    }
    Ok(answer.introspection)
}
