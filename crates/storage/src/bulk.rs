//! Writing many rows at once, for moving another server's accounts in (`syn2mas`).
//! Everything a [`BulkWriter`] writes is one transaction: committed at the end or not
//! at all, so a failed or interrupted move leaves the database as it was. Rows are the
//! domain types, except tokens, which arrive in plain (the domain types hold none) and
//! are stored hashed.

use chrono::{DateTime, Utc};
use mas_data_model::{CompatSession, Password, UpstreamOAuthLink, User, UserEmail};
use ulid::Ulid;

use crate::{BoxFuture, StorageError};

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
    fn users<'a>(&'a mut self, rows: &'a [User]) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes password hashes.
    fn passwords<'a>(&'a mut self, rows: &'a [Password])
    -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes email addresses.
    fn emails<'a>(&'a mut self, rows: &'a [UserEmail]) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes upstream links.
    fn links<'a>(
        &'a mut self,
        rows: &'a [UpstreamOAuthLink],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Writes compatibility sessions.
    fn compat_sessions<'a>(
        &'a mut self,
        rows: &'a [CompatSession],
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
