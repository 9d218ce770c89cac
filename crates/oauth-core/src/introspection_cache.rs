//! The homeserver's introspection, answered from memory when the answer still holds.
//!
//! Every Matrix request a homeserver serves may ask about its token, so this is the
//! service's hottest path. An active answer is kept, keyed by the token's SHA-256, with
//! the [`Ticket`] taken before it was read and the ids it depends on (session, user,
//! client). It is served again only while [`Revocations::is_current`] says nothing it
//! depends on was revoked since, the token has not expired, and for at most
//! [`mas_storage::MAX_CACHE_AGE`]. Inactive answers are never kept: a token made a
//! moment later must not be refused.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use mas_data_model::TokenType;
use mas_storage::{Clock, Revocations, SessionKind, Ticket};
use ulid::Ulid;

use crate::error::OAuthError;
use crate::store::{MatrixStore, SessionStore, UserStore};
use crate::tokens::{Asker, Introspection, IntrospectionView, hint_matches, introspect_checked};

/// Answers kept at most (a few hundred bytes each).
pub const DEFAULT_CAPACITY: usize = 32 * 1024;

/// A kept answer.
#[derive(Debug)]
struct Entry {
    answer: Arc<Shared>,
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
    /// the storage keeps: [`mas_storage::RepositoryFactory::revocations`]).
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

    fn get(&self, key: &[u8; 32], now: DateTime<Utc>) -> Option<(HomeserverAnswer, Arc<Entry>)> {
        let entry = self.entries.get(key)?;
        let expired = entry.expires_at.is_some_and(|at| at <= now);
        if expired || !self.revocations.is_current(&entry.ticket, &entry.keys) {
            self.entries.remove(key);
            return None;
        }
        let answer = HomeserverAnswer {
            shared: Arc::clone(&entry.answer),
            expires_in: entry.expires_at.map(|at| (at - now).num_seconds().max(0)),
        };
        Some((answer, entry))
    }
}

/// An answer as the cache shares it, written out ahead for each kind of caller.
#[derive(Debug, Default)]
struct Shared {
    introspection: Introspection,
    /// As most callers are told it.
    json: Rendered,
    /// As a caller reading `device_id` is told it, when that differs.
    device_reader_json: Option<Rendered>,
}

/// An answer in JSON, but for `expires_in`, which changes every second.
#[derive(Debug, Default)]
struct Rendered {
    /// The JSON without `expires_in`.
    text: Vec<u8>,
    /// Where `,"expires_in":N` goes, for answers that expire.
    at: Option<usize>,
}

/// What a kept answer is in the impossible case that it cannot be written: refused.
const INACTIVE_JSON: &[u8] = br#"{"active":false}"#;

impl Rendered {
    /// `view` written out, with `expires_in` cut out to be filled in on each ask.
    fn new(mut view: IntrospectionView<'_>) -> Self {
        const MEMBER: &[u8] = br#","expires_in":0"#;
        let expires = view.expires_in.is_some();
        view.expires_in = expires.then_some(0);
        // Writing plain fields into memory cannot fail; if it ever did, the token is
        // refused rather than described wrongly.
        let Ok(mut text) = serde_json::to_vec(&view) else {
            return Self {
                text: INACTIVE_JSON.to_vec(),
                at: None,
            };
        };
        // Every quote inside a string value is escaped, so `"expires_in":` unescaped is
        // the key itself, found once.
        let at = expires
            .then(|| text.windows(MEMBER.len()).position(|w| w == MEMBER))
            .flatten();
        if let Some(at) = at {
            text.drain(at..at + MEMBER.len());
        }
        Self { text, at }
    }

    /// The JSON with `expires_in` filled in.
    fn with_expires_in(&self, expires_in: Option<i64>) -> Vec<u8> {
        let (Some(at), Some(seconds)) = (self.at, expires_in) else {
            return self.text.clone();
        };
        let mut out = Vec::with_capacity(self.text.len() + 32);
        out.extend_from_slice(&self.text[..at]);
        out.extend_from_slice(br#","expires_in":"#);
        out.extend_from_slice(itoa::Buffer::new().format(seconds).as_bytes());
        out.extend_from_slice(&self.text[at..]);
        out
    }
}

/// What the homeserver is told about a token, shared with the cache while it is kept.
#[derive(Debug, Clone)]
pub struct HomeserverAnswer {
    shared: Arc<Shared>,
    expires_in: Option<i64>,
}

impl HomeserverAnswer {
    fn new(introspection: Introspection) -> Self {
        let device_reader_json = introspection.device_reader_scope().map(|scope| {
            let mut view = introspection.view();
            view.scope = Some(&scope);
            Rendered::new(view)
        });
        Self {
            expires_in: introspection.expires_in,
            shared: Arc::new(Shared {
                json: Rendered::new(introspection.view()),
                device_reader_json,
                introspection,
            }),
        }
    }

    fn inactive() -> Self {
        static INACTIVE: LazyLock<Arc<Shared>> = LazyLock::new(|| {
            Arc::new(Shared {
                json: Rendered::new(Introspection::default().view()),
                ..Shared::default()
            })
        });
        Self {
            shared: Arc::clone(&INACTIVE),
            expires_in: None,
        }
    }

    /// Whether the token is usable now.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.shared.introspection.active
    }

    /// The answer in JSON (RFC 7662), shaped for a caller that reads `device_id` when
    /// `reads_device_id` (see [`Introspection::for_device_id_reader`]). Kept answers are
    /// written out once, not on every ask.
    #[must_use]
    pub fn to_json(&self, reads_device_id: bool) -> Vec<u8> {
        let rendered = match &self.shared.device_reader_json {
            Some(json) if reads_device_id => json,
            _ => &self.shared.json,
        };
        rendered.with_expires_in(self.expires_in)
    }

    /// The answer as an owned [`Introspection`], shaped as [`Self::to_json`] shapes it.
    #[must_use]
    pub fn to_introspection(&self, reads_device_id: bool) -> Introspection {
        let mut answer = self.shared.introspection.clone();
        answer.expires_in = self.expires_in;
        if reads_device_id {
            answer.for_device_id_reader();
        }
        answer
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
/// lookup; refresh tokens are never active here. `open` gives the unit of work to ask,
/// and is called only when the cache cannot answer. The unit is dropped, never
/// committed, yet an answer records that the token is in use (what tells a refresh
/// retry from a theft): `open` must give a unit whose writes stand without a commit,
/// as `mas-storage`'s `reader()` does (each statement on the pool, no transaction). With
/// units that undo on drop (the `memory` module's), such writes are lost.
///
/// # Errors
/// `temporarily_unavailable` when the answer is not kept and the database is away.
pub async fn introspect_for_homeserver<Open, Opening, Unit>(
    cache: &IntrospectionCache,
    open: Open,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    token: &str,
    hint: Option<&str>,
) -> Result<HomeserverAnswer, OAuthError>
where
    Open: FnOnce() -> Opening,
    Opening: std::future::Future<Output = Result<Unit, mas_storage::StorageError>>,
    Unit: std::ops::DerefMut,
    Unit::Target: SessionStore + UserStore + MatrixStore,
{
    let Ok(kind) = TokenType::check(token) else {
        return Ok(HomeserverAnswer::inactive());
    };
    if !hint_matches(kind, hint) {
        return Ok(HomeserverAnswer::inactive());
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
    let mut unit = open().await?;
    let answer =
        introspect_checked(&mut *unit, clock, policy, token, kind, Asker::Homeserver).await?;
    if answer.introspection.active {
        cache.note_use(kind, &answer.keys, now);
    }
    let active = answer.introspection.active;
    let told = HomeserverAnswer::new(answer.introspection);
    if let Some(key) = key
        && active
        && cache.revocations.is_current(&ticket, &answer.keys)
    {
        cache.entries.insert(
            key,
            Arc::new(Entry {
                answer: Arc::clone(&told.shared),
                expires_at: answer.expires_at,
                ticket,
                keys: answer.keys,
            }),
        );
    }
    Ok(told)
}

#[cfg(test)]
mod tests {
    use super::{HomeserverAnswer, Introspection};

    fn answer(expires_in: Option<i64>, username: &str) -> Introspection {
        Introspection {
            active: true,
            scope: Some(
                "urn:matrix:client:api:* urn:matrix:client:device:DEV urn:matrix:org.matrix.msc2967.client:device:DEV".to_owned(),
            ),
            client_id: Some("legacy".to_owned()),
            username: Some(username.to_owned()),
            token_type: Some("access_token"),
            exp: expires_in.map(|s| 1_700_000_000 + s),
            expires_in,
            iat: Some(1_700_000_000),
            nbf: Some(1_700_000_000),
            sub: Some(format!("@{username}:example.com")),
            jti: None,
            device_id: Some("DEV".to_owned()),
        }
    }

    #[test]
    fn written_ahead_answers_read_as_the_answer_itself_with_the_current_expiry() {
        // A username that spells the member being cut out, quotes and all.
        for username in ["alice", r#"x","expires_in":0,"y"#] {
            for expires_in in [None, Some(0), Some(300)] {
                let mut told = HomeserverAnswer::new(answer(expires_in, username));
                for now in [expires_in, expires_in.map(|s| s - 1)] {
                    told.expires_in = now;
                    for reads_device_id in [false, true] {
                        let json = told.to_json(reads_device_id);
                        let seen: serde_json::Value = serde_json::from_slice(&json).unwrap();
                        let mut expected = answer(now, username);
                        expected.exp = expires_in.map(|s| 1_700_000_000 + s);
                        if reads_device_id {
                            expected.for_device_id_reader();
                        }
                        assert_eq!(seen, serde_json::to_value(&expected).unwrap());
                        // The keys in MAS's order, as serialising the answer writes them.
                        assert_eq!(json, serde_json::to_vec(&expected).unwrap());
                        assert_eq!(told.to_introspection(reads_device_id), expected);
                    }
                }
            }
        }
        assert!(!HomeserverAnswer::inactive().is_active());
        assert_eq!(
            HomeserverAnswer::inactive().to_json(true),
            br#"{"active":false}"#
        );
    }
}
