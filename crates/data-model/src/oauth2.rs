//! OAuth 2.0 grants, sessions and tokens.

use chrono::{DateTime, Utc};
use ulid::Ulid;
use url::Url;

use crate::LastActivity;

/// How the authorization response is returned to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// In the redirect URI's query.
    Query,
    /// In the redirect URI's fragment.
    Fragment,
    /// In an auto-submitted form.
    FormPost,
}

impl ResponseMode {
    /// The parameter value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Fragment => "fragment",
            Self::FormPost => "form_post",
        }
    }

    /// Parses the parameter value.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Query, Self::Fragment, Self::FormPost]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// A PKCE challenge (S256 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    /// The challenge method; always `S256` here.
    pub method: String,
    /// The challenge.
    pub challenge: String,
}

/// The code of an authorization grant; the code itself is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// The PKCE challenge the code is bound to.
    pub pkce: Option<Pkce>,
}

/// An authorization request, from `/authorize` until its code is exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationGrant {
    /// The grant's ID.
    pub id: Ulid,
    /// The requesting client.
    pub client_id: Ulid,
    /// Where the response goes.
    pub redirect_uri: Url,
    /// The requested scope, space-separated.
    pub scope: String,
    /// The client's `state`.
    pub state: Option<String>,
    /// The client's `nonce`.
    pub nonce: Option<String>,
    /// How the response is returned.
    pub response_mode: ResponseMode,
    /// Whether an ID token is returned beside the code.
    pub response_type_id_token: bool,
    /// The code, when a code was requested.
    pub code: Option<AuthorizationCode>,
    /// `max_age` in seconds.
    pub max_age: Option<u32>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// The `prompt` values, space-separated.
    pub prompt: Option<String>,
    /// When it was created; codes live 10 minutes at most from here.
    pub created_at: DateTime<Utc>,
    /// When the user consented and a session was attached.
    pub fulfilled_at: Option<DateTime<Utc>>,
    /// When the code was exchanged at the token endpoint.
    pub exchanged_at: Option<DateTime<Utc>>,
    /// When it was cancelled (user denied).
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The session created when it was fulfilled.
    pub session_id: Option<Ulid>,
}

/// An OAuth 2.0 session: what a client may do on behalf of a user (or itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's ID.
    pub id: Ulid,
    /// The user, absent for `client_credentials` sessions.
    pub user_id: Option<Ulid>,
    /// The browser session that authorised it.
    pub browser_session_id: Option<Ulid>,
    /// The client.
    pub client_id: Ulid,
    /// The granted scope, space-separated.
    pub scope: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// When and where it was last used.
    pub last_activity: LastActivity,
    /// A name the user gave it.
    pub human_name: Option<String>,
}

impl Session {
    /// Whether the session is still open.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// An access token; the token itself is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token's ID.
    pub id: Ulid,
    /// Its session.
    pub session_id: Ulid,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it expires; `None` for no expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was first used.
    pub first_used_at: Option<DateTime<Utc>>,
}

impl AccessToken {
    /// Whether the token is usable at `now`.
    #[must_use]
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// A refresh token; the token itself is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The token's ID.
    pub id: Ulid,
    /// Its session.
    pub session_id: Ulid,
    /// The access token issued with it.
    pub access_token_id: Option<Ulid>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was used to get a successor.
    pub consumed_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The token issued in exchange for it.
    pub next_token_id: Option<Ulid>,
}

impl RefreshToken {
    /// Whether it can still be exchanged.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.consumed_at.is_none() && self.revoked_at.is_none()
    }
}

/// Where a device authorization grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCodeGrantState {
    /// Waiting for the user.
    Pending,
    /// The user approved.
    Fulfilled,
    /// The user refused.
    Rejected,
    /// The device got its tokens.
    Exchanged,
}

/// A device authorization grant (RFC 8628); the device code is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodeGrant {
    /// The grant's ID.
    pub id: Ulid,
    /// The device's client.
    pub client_id: Ulid,
    /// The requested scope.
    pub scope: String,
    /// The code the user types.
    pub user_code: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Where it stands.
    pub state: DeviceCodeGrantState,
    /// The browser session that approved or rejected it.
    pub browser_session_id: Option<Ulid>,
    /// The session created on exchange.
    pub session_id: Option<Ulid>,
    /// The device's IP address.
    pub ip_address: Option<String>,
    /// The device's user agent.
    pub user_agent: Option<String>,
}

/// Whether a scope grants administrative rights (on the homeserver or here).
#[must_use]
pub fn is_admin_scope(token: &str) -> bool {
    matches!(token, "urn:synapse:admin:*" | "urn:mas:admin")
}

/// The device named by a device scope, if exactly one is.
#[must_use]
pub fn device_of(scope: &str) -> Option<String> {
    let mut devices: Vec<&str> = scope
        .split(' ')
        .filter_map(|t| {
            t.strip_prefix("urn:matrix:client:device:")
                .or_else(|| t.strip_prefix("urn:matrix:org.matrix.msc2967.client:device:"))
        })
        .collect();
    devices.dedup();
    match devices.as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    }
}
