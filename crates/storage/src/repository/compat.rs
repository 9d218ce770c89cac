//! Compatibility-layer sessions, tokens and SSO logins.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_data_model::{CompatAccessToken, CompatRefreshToken, CompatSession, CompatSsoLogin, User};
use ulid::Ulid;
use url::Url;

use crate::{Clock, Page, Pagination, Rng, StorageError};

/// What a login stores: a session on a device and its first tokens.
#[derive(Debug, Clone, Copy)]
pub struct NewCompatLogin<'a> {
    /// Whose session it is.
    pub user: &'a User,
    /// The Matrix device it logs in.
    pub device_id: &'a str,
    /// The device's display name, if the client gave one.
    pub human_name: Option<&'a str>,
    /// The access token handed out (stored as its hash).
    pub access_token: &'a str,
    /// How long the access token lives; `None` means until logout.
    pub ttl: Option<Duration>,
    /// A refresh token handed out with it (stored as its hash).
    pub refresh_token: Option<&'a str>,
}

/// What [`CompatSessionRepository::add_with_tokens`] stored.
#[derive(Debug, Clone)]
pub struct CompatLogin {
    /// The new session.
    pub session: CompatSession,
    /// Its access token.
    pub access_token: CompatAccessToken,
    /// Its refresh token, when one was asked for.
    pub refresh_token: Option<CompatRefreshToken>,
}

/// What a refresh presents and hands out in exchange.
#[derive(Debug, Clone, Copy)]
pub struct CompatRotation<'a> {
    /// The refresh token the client presented.
    pub presented: &'a str,
    /// The new access token (stored as its hash).
    pub access_token: &'a str,
    /// How long the new access token lives; `None` means until logout.
    pub ttl: Option<Duration>,
    /// The new refresh token (stored as its hash).
    pub refresh_token: &'a str,
}

/// What [`CompatRefreshTokenRepository::rotate`] stored.
#[derive(Debug, Clone)]
pub struct CompatRotated {
    /// The new access token.
    pub access_token: CompatAccessToken,
    /// The new refresh token.
    pub refresh_token: CompatRefreshToken,
}

/// Which compatibility sessions a listing or bulk operation covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompatSessionFilter {
    /// Only this user's.
    pub user_id: Option<Ulid>,
    /// Only the open (`true`) or finished (`false`) ones.
    pub active: Option<bool>,
}

/// Compatibility sessions (one per Matrix device logged in through `/login`).
///
/// Every method fails with [`StorageError::Unavailable`] when the database cannot be
/// reached and [`StorageError::Backend`] on other database errors; other errors are named.
#[async_trait]
pub trait CompatSessionRepository: Send {
    /// The session with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<CompatSession>, StorageError>;
    /// The user's open session on this device.
    async fn find_active_by_device(
        &mut self,
        user: &User,
        device_id: &str,
    ) -> Result<Option<CompatSession>, StorageError>;
    /// Starts a session.
    #[allow(clippy::too_many_arguments)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        device_id: Option<String>,
        browser_session_id: Option<Ulid>,
        is_synapse_admin: bool,
        human_name: Option<String>,
    ) -> Result<CompatSession, StorageError>;
    /// Starts a login's session with its first tokens, all stored or none: one statement
    /// on PostgreSQL, so a unit of work from `reader()` stores a login in one round trip.
    /// Fails with [`StorageError::Conflict`] when the device has an open session.
    async fn add_with_tokens(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        login: NewCompatLogin<'_>,
    ) -> Result<CompatLogin, StorageError>;
    /// Ends a session.
    async fn finish(
        &mut self,
        clock: &dyn Clock,
        session: CompatSession,
    ) -> Result<CompatSession, StorageError>;
    /// Ends every open session matching `filter`; returns how many.
    async fn finish_all(
        &mut self,
        clock: &dyn Clock,
        filter: CompatSessionFilter,
    ) -> Result<u64, StorageError>;
    /// A page of sessions matching `filter`.
    async fn list(
        &mut self,
        filter: CompatSessionFilter,
        pagination: Pagination,
    ) -> Result<Page<CompatSession>, StorageError>;
    /// How many sessions match `filter`.
    async fn count(&mut self, filter: CompatSessionFilter) -> Result<u64, StorageError>;
    /// Names the session's device as its owner chose (`None` clears the name).
    async fn set_human_name(
        &mut self,
        id: Ulid,
        human_name: Option<String>,
    ) -> Result<(), StorageError>;
    /// Records when and from where the session was last used.
    async fn record_activity(
        &mut self,
        id: Ulid,
        at: DateTime<Utc>,
        ip: Option<String>,
    ) -> Result<(), StorageError>;
}

/// Compatibility access tokens (`mct_`), found by hash.
#[async_trait]
pub trait CompatAccessTokenRepository: Send {
    /// Issues a token; `ttl` `None` means it never expires.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &CompatSession,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<CompatAccessToken, StorageError>;
    /// The token with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<CompatAccessToken>, StorageError>;
    /// The token with this value.
    async fn find_by_token(
        &mut self,
        token: &str,
    ) -> Result<Option<CompatAccessToken>, StorageError>;
    /// The token with its session and the session's user, in one lookup: the homeserver's
    /// introspection path. Whether they are still valid is the caller's to judge.
    async fn find_with_session(
        &mut self,
        token: &str,
    ) -> Result<Option<(CompatAccessToken, CompatSession, User)>, StorageError>;
}

/// Compatibility refresh tokens (`mcr_`), found by hash.
#[async_trait]
pub trait CompatRefreshTokenRepository: Send {
    /// Issues a refresh token beside an access token.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &CompatSession,
        access_token: &CompatAccessToken,
        token: &str,
    ) -> Result<CompatRefreshToken, StorageError>;
    /// The token with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<CompatRefreshToken>, StorageError>;
    /// The token with this value.
    async fn find_by_token(
        &mut self,
        token: &str,
    ) -> Result<Option<CompatRefreshToken>, StorageError>;
    /// A refresh, all or nothing: the presented token is consumed, the access token it
    /// was issued with expires, and the new pair is stored in the same session. `None`,
    /// with nothing changed, unless the presented token exists and is unused and its
    /// session and user are still valid; of two concurrent refreshes with one token, one
    /// wins. One statement on PostgreSQL, so a unit of work from `reader()` refreshes in
    /// one round trip.
    async fn rotate(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        rotation: CompatRotation<'_>,
    ) -> Result<Option<CompatRotated>, StorageError>;
}

/// SSO logins of the compatibility layer.
#[async_trait]
pub trait CompatSsoLoginRepository: Send {
    /// Starts a login whose `m.login.token` is `login_token` (stored as a hash).
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        login_token: &str,
        redirect_uri: Url,
    ) -> Result<CompatSsoLogin, StorageError>;
    /// The login with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<CompatSsoLogin>, StorageError>;
    /// The login with this login token.
    async fn find_by_token(
        &mut self,
        login_token: &str,
    ) -> Result<Option<CompatSsoLogin>, StorageError>;
    /// The user completed it: attaches the session and replaces the login token with
    /// `login_token`, the one handed to the client. `None` unless it was not yet
    /// fulfilled (of two concurrent completions, one wins).
    async fn fulfill(
        &mut self,
        clock: &dyn Clock,
        login: CompatSsoLogin,
        session: &CompatSession,
        login_token: &str,
    ) -> Result<Option<CompatSsoLogin>, StorageError>;
    /// Housekeeping: ends the sessions of logins completed before `abandoned_before` whose
    /// token was never exchanged (the client went away), and deletes every login started
    /// before `delete_before`. Returns (sessions ended, logins deleted).
    async fn cleanup(
        &mut self,
        clock: &dyn Clock,
        abandoned_before: DateTime<Utc>,
        delete_before: DateTime<Utc>,
    ) -> Result<(u64, u64), StorageError>;
    /// Marks the login token exchanged; `None` unless it was fulfilled and not yet exchanged.
    async fn exchange(
        &mut self,
        clock: &dyn Clock,
        login: CompatSsoLogin,
    ) -> Result<Option<CompatSsoLogin>, StorageError>;
}
