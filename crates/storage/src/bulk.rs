//! Writing many rows at once, for moving another server's accounts in (`syn2mas`).
//! Everything a [`BulkWriter`] writes is one transaction: committed at the end or not
//! at all, so a failed or interrupted move leaves the database as it was.

use chrono::{DateTime, Utc};
use ulid::Ulid;

use crate::{BoxFuture, StorageError};

/// A user to create.
#[derive(Debug, Clone)]
pub struct ImportedUser {
    /// Its ID here.
    pub id: Ulid,
    /// The Matrix localpart.
    pub username: String,
    /// When it was created on the other server.
    pub created_at: DateTime<Utc>,
    /// Set for a locked user.
    pub locked_at: Option<DateTime<Utc>>,
    /// Set for a deactivated user.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Whether it may ask for the homeserver's admin scope.
    pub can_request_admin: bool,
}

/// A password hash to keep, verified by the scheme of `version`.
#[derive(Debug, Clone)]
pub struct ImportedPassword {
    /// Its ID here.
    pub id: Ulid,
    /// Whose.
    pub user_id: Ulid,
    /// The hash, as the other server stored it.
    pub hashed_password: String,
    /// The `passwords.schemes` version that verifies it.
    pub version: u16,
    /// When it was set.
    pub created_at: DateTime<Utc>,
}

/// A confirmed email address.
#[derive(Debug, Clone)]
pub struct ImportedEmail {
    /// Its ID here.
    pub id: Ulid,
    /// Whose.
    pub user_id: Ulid,
    /// The address.
    pub email: String,
    /// When it was confirmed.
    pub created_at: DateTime<Utc>,
}

/// A link between a user and their account at an upstream provider.
#[derive(Debug, Clone)]
pub struct ImportedLink {
    /// Its ID here.
    pub id: Ulid,
    /// The provider (as stored by `config sync`).
    pub provider_id: Ulid,
    /// The user.
    pub user_id: Ulid,
    /// The user's subject at the provider.
    pub subject: String,
    /// When it was linked.
    pub created_at: DateTime<Utc>,
}

/// A compatibility-layer session: one device of a user.
#[derive(Debug, Clone)]
pub struct ImportedCompatSession {
    /// Its ID here.
    pub id: Ulid,
    /// Whose.
    pub user_id: Ulid,
    /// The Matrix device ID, when the session has one.
    pub device_id: Option<String>,
    /// The device's display name.
    pub human_name: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Whether its tokens carry the homeserver's admin scope.
    pub is_synapse_admin: bool,
    /// The last user agent seen.
    pub user_agent: Option<String>,
    /// When it was last seen.
    pub last_active_at: Option<DateTime<Utc>>,
    /// The last address seen.
    pub last_active_ip: Option<String>,
}

/// A compatibility-layer access token, given in plain and stored hashed.
#[derive(Debug, Clone)]
pub struct ImportedCompatAccessToken {
    /// Its ID here.
    pub id: Ulid,
    /// Its session.
    pub session_id: Ulid,
    /// The token as clients hold it.
    pub token: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A compatibility-layer refresh token, given in plain and stored hashed.
#[derive(Debug, Clone)]
pub struct ImportedCompatRefreshToken {
    /// Its ID here.
    pub id: Ulid,
    /// Its session.
    pub session_id: Ulid,
    /// The access token issued with it.
    pub access_token_id: Ulid,
    /// The token as clients hold it.
    pub token: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

/// One transaction of bulk inserts. Dropping it without [`BulkWriter::commit`] rolls
/// everything back. Rows referring to others must come after them (users first).
pub trait BulkWriter: Send {
    /// How many users the database holds (a move needs none), read inside the
    /// transaction.
    fn count_users(&mut self) -> BoxFuture<'_, Result<u64, StorageError>>;
    /// Writes users.
    fn users<'a>(&'a mut self, rows: &'a [ImportedUser])
    -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes password hashes.
    fn passwords<'a>(
        &'a mut self,
        rows: &'a [ImportedPassword],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes email addresses.
    fn emails<'a>(
        &'a mut self,
        rows: &'a [ImportedEmail],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes upstream links.
    fn links<'a>(&'a mut self, rows: &'a [ImportedLink])
    -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes compatibility sessions.
    fn compat_sessions<'a>(
        &'a mut self,
        rows: &'a [ImportedCompatSession],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes compatibility access tokens (hashed on the way).
    fn compat_access_tokens<'a>(
        &'a mut self,
        rows: &'a [ImportedCompatAccessToken],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes compatibility refresh tokens (hashed on the way).
    fn compat_refresh_tokens<'a>(
        &'a mut self,
        rows: &'a [ImportedCompatRefreshToken],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Makes everything written visible, at once.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>>;
    /// Drops everything written (what `--dry-run` ends with).
    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>>;
}
