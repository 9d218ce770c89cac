//! Users, their credentials and their browser sessions.

use chrono::{DateTime, Utc};
use ulid::Ulid;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's ID.
    pub id: Ulid,
    /// The Matrix localpart.
    pub username: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account was locked; a locked user cannot log in and their tokens are inactive.
    pub locked_at: Option<DateTime<Utc>>,
    /// When the account was deactivated.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Whether the user may request admin rights on the homeserver (`urn:synapse:admin:*`).
    pub can_request_admin: bool,
}

impl User {
    /// Whether the user may log in and use tokens: neither locked nor deactivated.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.locked_at.is_none() && self.deactivated_at.is_none()
    }
}

/// A password hash of a user; the newest one is the current password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Password {
    /// The password's ID.
    pub id: Ulid,
    /// Whose password it is.
    pub user_id: Ulid,
    /// The hash, in PHC string format.
    pub hashed_password: String,
    /// The `passwords.schemes` version that produced the hash.
    pub version: u16,
    /// The password this one re-hashed on login, when it was an upgrade.
    pub upgraded_from_id: Option<Ulid>,
    /// When it was set.
    pub created_at: DateTime<Utc>,
}

/// An email address of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEmail {
    /// The email's ID.
    pub id: Ulid,
    /// Whose address it is.
    pub user_id: Ulid,
    /// The address.
    pub email: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// A code sent to an address to prove the person reads it, before the address is added
/// to their account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEmailAuthentication {
    /// Its ID.
    pub id: Ulid,
    /// Who asked to add the address.
    pub user_id: Ulid,
    /// The browser session that asked: only it may type the code.
    pub browser_session_id: Ulid,
    /// The address.
    pub email: String,
    /// The code, encrypted with the service's encryption key.
    pub encrypted_code: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes typed so far.
    pub attempts: u32,
    /// When the right code was typed.
    pub completed_at: Option<DateTime<Utc>>,
}

impl UserEmailAuthentication {
    /// Whether a code may still be typed at `now`.
    #[must_use]
    pub fn is_pending(&self, now: DateTime<Utc>) -> bool {
        self.completed_at.is_none() && now < self.expires_at
    }
}

/// A registration waiting for the code sent to its address: the account is made only
/// once the code is typed, from what the form held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRegistration {
    /// Its ID.
    pub id: Ulid,
    /// The username asked for.
    pub username: String,
    /// The address the code went to, which the account gets.
    pub email: String,
    /// The `passwords.schemes` version of the hash.
    pub password_version: u16,
    /// The password's hash, in PHC string format.
    pub password_hash: String,
    /// The registration token to count a use of, when one was required.
    pub registration_token_id: Option<Ulid>,
    /// The terms of service accepted on the form (`branding.tos_uri` then).
    pub terms_url: Option<String>,
    /// The code, encrypted with the service's encryption key.
    pub encrypted_code: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes typed so far.
    pub attempts: u32,
    /// When the account was made.
    pub completed_at: Option<DateTime<Utc>>,
}

impl UserRegistration {
    /// Whether a code may still be typed at `now`.
    #[must_use]
    pub fn is_pending(&self, now: DateTime<Utc>) -> bool {
        self.completed_at.is_none() && now < self.expires_at
    }
}

/// A link sent to an address of a user who forgot their password; only its hash is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryTicket {
    /// Its ID.
    pub id: Ulid,
    /// Whose password it may set.
    pub user_id: Ulid,
    /// The address it was sent to.
    pub email: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used.
    pub consumed_at: Option<DateTime<Utc>>,
}

impl RecoveryTicket {
    /// How long a recovery link works.
    pub const LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

    /// Whether it may still set a password at `now`.
    #[must_use]
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.consumed_at.is_none() && now < self.expires_at
    }
}

/// A browser session: a user logged in to the service's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// The session's ID.
    pub id: Ulid,
    /// The logged-in user.
    pub user_id: Ulid,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it ended (logout).
    pub finished_at: Option<DateTime<Utc>>,
    /// The browser's user agent.
    pub user_agent: Option<String>,
    /// When and where it was last used.
    pub last_activity: crate::LastActivity,
}

impl BrowserSession {
    /// Whether the session is still open.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// How a browser session's user proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticationMethod {
    /// With a password.
    Password {
        /// The password used.
        password_id: Ulid,
    },
    /// Through an upstream identity provider.
    Upstream {
        /// The upstream link used.
        link_id: Ulid,
    },
}

/// One authentication within a browser session (login, re-authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// The authentication's ID.
    pub id: Ulid,
    /// The browser session it belongs to.
    pub session_id: Ulid,
    /// How the user authenticated.
    pub method: AuthenticationMethod,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A token that allows registering an account when registration requires one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    /// The token's ID.
    pub id: Ulid,
    /// The token people type.
    pub token: String,
    /// How many registrations it allows; `None` for no limit.
    pub usage_limit: Option<u32>,
    /// How many registrations used it.
    pub times_used: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When an administrator revoked it.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl RegistrationToken {
    /// The most registrations one token may allow (the database's integer).
    pub const MAX_USAGE_LIMIT: u32 = 2_147_483_647;

    /// Whether `value` may be a token: 1 to 64 letters, digits, `-`, `_`, `.` or `~`.
    #[must_use]
    pub fn is_valid_value(value: &str) -> bool {
        (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
    }

    /// Why the token cannot be used at `now`; `None` when it can.
    #[must_use]
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<TokenRefusal> {
        if self.revoked_at.is_some() {
            Some(TokenRefusal::Revoked)
        } else if self.expires_at.is_some_and(|at| now >= at) {
            Some(TokenRefusal::Expired)
        } else if self
            .usage_limit
            .is_some_and(|limit| self.times_used >= limit)
        {
            Some(TokenRefusal::UsedUp)
        } else {
            None
        }
    }

    /// Whether the token can still be used at `now`.
    #[must_use]
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.refusal(now).is_none()
    }
}

/// Why a registration token cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// An administrator revoked it.
    Revoked,
    /// Its expiry has passed.
    Expired,
    /// It has allowed as many registrations as its usage limit.
    UsedUp,
}

/// Whether `localpart` may be a username: the Matrix user ID grammar's lowercase letters,
/// digits and `._=-/+`, at most 255 bytes.
#[must_use]
pub fn is_valid_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart.len() <= 255
        && localpart
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b))
}
