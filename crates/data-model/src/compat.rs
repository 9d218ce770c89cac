//! Sessions and tokens of the Matrix compatibility layer (`/_matrix/client/*/login`).

use chrono::{DateTime, Utc};
use ulid::Ulid;
use url::Url;

use crate::LastActivity;

/// A compatibility session: one Matrix device logged in through `/login`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatSession {
    /// The session's ID.
    pub id: Ulid,
    /// The user.
    pub user_id: Ulid,
    /// The Matrix device ID.
    pub device_id: Option<String>,
    /// The browser session that created it (SSO login).
    pub browser_session_id: Option<Ulid>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether its tokens carry homeserver admin rights.
    pub is_synapse_admin: bool,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// When and where it was last used.
    pub last_activity: LastActivity,
    /// The device display name.
    pub human_name: Option<String>,
}

impl CompatSession {
    /// Whether the session is still open.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// A compatibility access token (`mct_`); stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatAccessToken {
    /// The token's ID.
    pub id: Ulid,
    /// Its session.
    pub session_id: Ulid,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it expires; `None` for no expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

impl CompatAccessToken {
    /// Whether the token is unexpired at `now`.
    #[must_use]
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// A compatibility refresh token (`mcr_`); stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatRefreshToken {
    /// The token's ID.
    pub id: Ulid,
    /// Its session.
    pub session_id: Ulid,
    /// The access token issued with it.
    pub access_token_id: Ulid,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was exchanged for a successor.
    pub consumed_at: Option<DateTime<Utc>>,
}

/// An SSO login of the compatibility layer: a browser login that ends in an `m.login.token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatSsoLogin {
    /// The login's ID.
    pub id: Ulid,
    /// Where the client wants the login token delivered.
    pub redirect_uri: Url,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When the user completed it in the browser.
    pub fulfilled_at: Option<DateTime<Utc>>,
    /// When the login token was exchanged.
    pub exchanged_at: Option<DateTime<Utc>>,
    /// The session created when it was fulfilled.
    pub session_id: Option<Ulid>,
}
