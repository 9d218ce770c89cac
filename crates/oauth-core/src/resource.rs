//! For a resource server: an API of the embedder's that accepts this service's access
//! tokens by asking its introspection endpoint (RFC 7662), and remembers the answers for
//! a while so that it does not ask on every request. The HTTP call is the embedder's, with
//! whatever client it has: this module builds the request's body and reads the answer.
//!
//! The resource server authenticates to the endpoint as a static client of the service
//! (one from `clients:` with a `client_secret_*` method): those may introspect every
//! access token, where another client only learns about tokens issued to it.
//! `examples/resource_server.rs` is a whole one, on axum and reqwest.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What the introspection endpoint says of a token: the fields a resource server reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introspection {
    /// Whether the token may be used now.
    pub active: bool,
    /// Its scope, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client it was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user's username, for a token that acts for a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The subject: the user's ID, or the client's for a `client_credentials` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// When it expires, in seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

impl Introspection {
    /// The answer for a token that may not be used.
    #[must_use]
    pub fn inactive() -> Self {
        Self {
            active: false,
            scope: None,
            client_id: None,
            username: None,
            sub: None,
            exp: None,
        }
    }

    /// Reads the endpoint's JSON answer.
    ///
    /// # Errors
    /// When the body is not an introspection answer.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Whether the token is active and its scope holds `wanted`.
    #[must_use]
    pub fn allows(&self, wanted: &str) -> bool {
        self.active
            && self
                .scope
                .as_deref()
                .is_some_and(|scope| scope.split(' ').any(|token| token == wanted))
    }
}

/// The form body of an introspection request for an access token.
#[must_use]
pub fn request_body(token: &str) -> String {
    let token = percent_encoding::utf8_percent_encode(token, FORM);
    format!("token={token}&token_type_hint=access_token")
}

/// What `application/x-www-form-urlencoded` leaves as it is: letters, digits, `*-._`.
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// The token of an `Authorization: Bearer …` header value (RFC 6750 §2.1), when it is one.
#[must_use]
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Introspection answers remembered by the SHA-256 of their token (a memory dump shows
/// no token), each until the sooner of its token's expiry and `max_age` after it was
/// asked. `max_age` bounds how long a revoked token keeps working here: a minute is a
/// common choice.
pub struct IntrospectionCache {
    entries: quick_cache::sync::Cache<[u8; 32], (Introspection, DateTime<Utc>)>,
    max_age: Duration,
}

impl std::fmt::Debug for IntrospectionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionCache")
            .field("entries", &self.entries.len())
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl IntrospectionCache {
    /// A cache of at most `capacity` answers, each kept at most `max_age`.
    #[must_use]
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            max_age,
        }
    }

    /// The remembered answer for `token` at `now`, if any: an active one whose token has
    /// expired since reads inactive.
    #[must_use]
    pub fn get(&self, token: &str, now: DateTime<Utc>) -> Option<Introspection> {
        let (answer, until) = self.entries.get(&key(token))?;
        if now >= until {
            return None;
        }
        if answer.exp.is_some_and(|exp| now.timestamp() >= exp) {
            return Some(Introspection::inactive());
        }
        Some(answer)
    }

    /// Remembers the endpoint's `answer` for `token`, asked at `now`.
    pub fn insert(&self, token: &str, answer: Introspection, now: DateTime<Utc>) {
        let until = now + self.max_age;
        self.entries.insert(key(token), (answer, until));
    }
}

fn key(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(exp: i64) -> Introspection {
        Introspection {
            active: true,
            scope: Some("urn:example:read openid".to_owned()),
            client_id: Some("01J00000000000000000000000".to_owned()),
            username: None,
            sub: Some("01J00000000000000000000000".to_owned()),
            exp: Some(exp),
        }
    }

    #[test]
    fn answers_are_kept_until_max_age_or_the_tokens_expiry() {
        let cache = IntrospectionCache::new(10, Duration::seconds(60));
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        cache.insert("tok", active(1_000_030), now);
        assert_eq!(cache.get("tok", now), Some(active(1_000_030)));
        assert_eq!(cache.get("other", now), None);
        // Expired: inactive, without asking again.
        let later = now + Duration::seconds(30);
        assert_eq!(cache.get("tok", later), Some(Introspection::inactive()));
        // Past max_age: asked again.
        cache.insert("long", active(2_000_000), now);
        assert!(cache.get("long", now + Duration::seconds(59)).is_some());
        assert_eq!(cache.get("long", now + Duration::seconds(60)), None);
    }

    #[test]
    fn bearer_tokens_scopes_and_the_request_body() {
        assert_eq!(bearer("Bearer mat_abc"), Some("mat_abc"));
        assert_eq!(bearer("bearer  mat_abc "), Some("mat_abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
        assert!(active(0).allows("urn:example:read"));
        assert!(!active(0).allows("urn:example"));
        assert!(!Introspection::inactive().allows("openid"));
        assert_eq!(
            request_body("a+b/c=d"),
            "token=a%2Bb%2Fc%3Dd&token_type_hint=access_token"
        );
        let answer = Introspection::from_json(
            br#"{"active":true,"scope":"openid","client_id":"x","exp":5,"iat":1,"jti":"y"}"#,
        )
        .unwrap();
        assert!(answer.active && answer.exp == Some(5));
        assert_eq!(
            Introspection::from_json(br#"{"active":false}"#).unwrap(),
            Introspection::inactive()
        );
        assert!(Introspection::from_json(b"<html>").is_err());
    }
}
