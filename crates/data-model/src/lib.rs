//! Domain types of the service. Pure: no I/O, no async, no wire formats.

mod client;
mod compat;
mod job;
mod oauth2;
mod personal;
mod tokens;
mod upstream;
mod user;

pub use chrono::{DateTime, Utc};
pub use ulid::Ulid;
pub use url::Url;

pub use self::client::{Client, ClientAuthMethod, ClientKind};
pub use self::compat::{CompatAccessToken, CompatRefreshToken, CompatSession, CompatSsoLogin};
pub use self::job::{Job, JobState};
pub use self::oauth2::{
    AccessToken, AuthorizationCode, AuthorizationGrant, DeviceCodeGrant, DeviceCodeGrantState,
    Pkce, RefreshToken, ResponseMode, Session, device_of, is_admin_scope,
};
pub use self::personal::{PersonalAccessToken, PersonalSession, PersonalSessionOwner};
pub use self::tokens::{TokenFormatError, TokenType};
pub use self::upstream::{
    UpstreamOAuthAuthorizationSession, UpstreamOAuthLink, UpstreamOAuthProvider,
};
pub use self::user::{
    Authentication, AuthenticationMethod, BrowserSession, Password, RecoveryTicket,
    RegistrationToken, TokenRefusal, User, UserEmail, UserEmailAuthentication, UserRegistration,
    is_valid_localpart,
};

/// Where a session was last seen: when, and from which IP address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastActivity {
    /// When the session was last used.
    pub at: Option<DateTime<Utc>>,
    /// The client IP address it was last used from.
    pub ip: Option<String>,
}
