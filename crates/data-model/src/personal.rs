//! Personal sessions: long-lived tokens an administrator or user issues by hand.

use chrono::{DateTime, Utc};
use ulid::Ulid;

use crate::LastActivity;

/// Who created a personal session, and manages it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalSessionOwner {
    /// A user (the CLI issues sessions owned by their actor).
    User(Ulid),
    /// A client, through the admin API with its own token.
    Client(Ulid),
}

/// A personal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalSession {
    /// The session's ID.
    pub id: Ulid,
    /// Who created it.
    pub owner: PersonalSessionOwner,
    /// The user the tokens act as.
    pub actor_user_id: Ulid,
    /// A name for it.
    pub human_name: String,
    /// The granted scope.
    pub scope: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When and where it was last used.
    pub last_activity: LastActivity,
}

/// A personal access token (`mpt_`); stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalAccessToken {
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
}
