//! For a resource server: an API of the embedder's that accepts this service's access
//! tokens by asking its introspection endpoint (RFC 7662), and remembers the answers for
//! a while so that it does not ask on every request. The HTTP call is the embedder's, with
//! whatever client it has: this module builds the request, reads the answer and keeps it.
//!
//! The API authenticates to the endpoint as a static client of the service (`clients:`,
//! `client_secret_basic`). A static client is trusted as the homeserver is: it learns about
//! every token, Matrix ones included, so its secret is as sensitive as `matrix.secret`, and
//! the API must decide whose tokens it takes: [`TokenInfo::issued_to`] the clients that are
//! its own front ends. (The service's scopes are its own and the homeserver's: there is no
//! scope or audience of the embedder's to check.) `examples/resource_server.rs` is a whole
//! such API, on axum and reqwest.

use chrono::{DateTime, Duration, Utc};
use mas_data_model::TokenType;
use serde::{Deserialize, Serialize};

/// What the introspection endpoint says of a token: the fields a resource server reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
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
    /// The user's ID, for a token that acts for a user (a `client_credentials` token has
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// When it expires, in seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

impl TokenInfo {
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

    /// Whether the token is active and was issued to one of `clients` (by their IDs).
    #[must_use]
    pub fn issued_to<S: AsRef<str>>(&self, clients: &[S]) -> bool {
        self.active
            && self
                .client_id
                .as_deref()
                .is_some_and(|id| clients.iter().any(|c| c.as_ref() == id))
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
    format!("token={}&token_type_hint=access_token", form_encode(token))
}

/// The `Authorization` header value with which a client authenticates by
/// `client_secret_basic`: its ID and secret each form-encoded first (RFC 6749 §2.3.1), as
/// the service decodes them.
#[must_use]
pub fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    use base64::Engine;
    let pair = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    format!("Basic {encoded}")
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The token of an `Authorization: Bearer …` header value (RFC 6750 §2.1), when it is one.
#[must_use]
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim_start();
    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    let body = token.trim_end_matches('=');
    (scheme.eq_ignore_ascii_case("bearer") && !body.is_empty() && body.bytes().all(b64token))
        .then_some(token)
}

/// Whether `token` is written as this service's OAuth 2.0 access tokens are (`mat_`, with
/// its checksum): anything else cannot be one, and need not be asked about.
#[must_use]
pub fn is_access_token(token: &str) -> bool {
    TokenType::check(token) == Ok(TokenType::AccessToken)
}

/// Active answers remembered by the SHA-256 of their token (a memory dump shows no
/// token), each until the sooner of its token's expiry and `max_age` after it was asked.
/// `max_age` bounds how long a token revoked at the service keeps working at the API: a
/// minute is a common choice. Inactive answers are not kept, so a token is never refused
/// for having been asked about before it was issued; [`is_access_token`] keeps malformed
/// ones from costing a request.
pub struct TokenCache {
    entries: quick_cache::sync::Cache<[u8; 32], (TokenInfo, DateTime<Utc>)>,
    max_age: Duration,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.len())
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl TokenCache {
    /// A cache of at most `capacity` answers, each kept at most `max_age`.
    #[must_use]
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            max_age,
        }
    }

    /// The remembered answer for `token` at `now`, if any: one whose token has expired
    /// since reads inactive.
    #[must_use]
    pub fn get(&self, token: &str, now: DateTime<Utc>) -> Option<TokenInfo> {
        let (answer, until) = self.entries.get(&key(token))?;
        if now >= until {
            return None;
        }
        if answer.exp.is_some_and(|exp| now.timestamp() >= exp) {
            return Some(TokenInfo::inactive());
        }
        Some(answer)
    }

    /// Remembers the endpoint's `answer` for `token`, asked at `now`, if it is active.
    pub fn insert(&self, token: &str, answer: TokenInfo, now: DateTime<Utc>) {
        if !answer.active {
            return;
        }
        if let Some(until) = now.checked_add_signed(self.max_age) {
            self.entries.insert(key(token), (answer, until));
        }
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

    fn active(exp: i64) -> TokenInfo {
        TokenInfo {
            active: true,
            scope: Some("urn:mas:graphql:* openid".to_owned()),
            client_id: Some("01J00000000000000000000000".to_owned()),
            username: Some("alice".to_owned()),
            sub: Some("01J00000000000000000000001".to_owned()),
            exp: Some(exp),
        }
    }

    #[test]
    fn active_answers_are_kept_until_max_age_or_the_tokens_expiry() {
        let cache = TokenCache::new(10, Duration::seconds(60));
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        cache.insert("tok", active(1_000_030), now);
        assert_eq!(cache.get("tok", now), Some(active(1_000_030)));
        assert_eq!(cache.get("other", now), None);
        // Expired: inactive, without asking again.
        let later = now + Duration::seconds(30);
        assert_eq!(cache.get("tok", later), Some(TokenInfo::inactive()));
        // Past max_age: asked again.
        cache.insert("long", active(2_000_000), now);
        assert!(cache.get("long", now + Duration::seconds(59)).is_some());
        assert_eq!(cache.get("long", now + Duration::seconds(60)), None);
        // Inactive answers are not kept: the token may be issued a moment later.
        cache.insert("new", TokenInfo::inactive(), now);
        assert_eq!(cache.get("new", now), None);
        // A max_age past the end of time keeps nothing, and does not panic.
        let forever = TokenCache::new(10, Duration::MAX);
        forever.insert("tok", active(2_000_000), now);
        assert_eq!(forever.get("tok", now), None);
    }

    #[test]
    fn headers_tokens_clients_and_the_request() {
        assert_eq!(bearer("Bearer mat_abc"), Some("mat_abc"));
        assert_eq!(bearer("bearer  mat_abc"), Some("mat_abc"));
        assert_eq!(bearer("Bearer abc=="), Some("abc=="));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer a b"), None);
        assert_eq!(bearer("Bearer a,b"), None);
        let token = TokenType::AccessToken.format("abcdefghijklmnopqrstuvwxyz0123");
        assert!(is_access_token(&token));
        assert!(!is_access_token("mat_not_a_token"));
        assert!(!is_access_token(
            &TokenType::RefreshToken.format("abcdefghijklmnopqrstuvwxyz0123")
        ));
        let ours = ["01J00000000000000000000000"];
        assert!(active(0).issued_to(&ours));
        assert!(!active(0).issued_to(&["01J00000000000000000000009"]));
        assert!(!TokenInfo::inactive().issued_to(&ours));
        assert!(active(0).allows("openid"));
        assert!(!active(0).allows("urn:mas:graphql"));
        assert_eq!(
            request_body("a+b/c=d"),
            "token=a%2Bb%2Fc%3Dd&token_type_hint=access_token"
        );
        // RFC 6749 §2.3.1: form-encoded, then Base64.
        assert_eq!(basic_authorization("id", "a+b c"), "Basic aWQ6YSUyQmIrYw==");
        let answer = TokenInfo::from_json(
            br#"{"active":true,"scope":"openid","client_id":"x","exp":5,"iat":1,"jti":"y"}"#,
        )
        .unwrap();
        assert!(answer.active && answer.exp == Some(5));
        assert_eq!(
            TokenInfo::from_json(br#"{"active":false}"#).unwrap(),
            TokenInfo::inactive()
        );
        assert!(TokenInfo::from_json(b"<html>").is_err());
    }
}
