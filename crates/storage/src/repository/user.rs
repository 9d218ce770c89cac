//! Users, passwords, emails, browser sessions, registration tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_data_model::{
    Authentication, BrowserSession, Password, RegistrationToken, User, UserEmail,
    UserEmailAuthentication,
};
use ulid::Ulid;

use crate::{Clock, Page, Pagination, Rng, StorageError};

/// Which users a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Only users in this state.
    pub state: Option<UserState>,
    /// Only users with (or without) the right to request admin.
    pub can_request_admin: Option<bool>,
    /// Only users whose username contains this text.
    pub search: Option<String>,
    /// Only users with (or without) an open OAuth 2.0 session.
    pub has_active_oauth2_session: Option<bool>,
    /// Only users with (or without) an open compatibility session.
    pub has_active_compat_session: Option<bool>,
}

/// Which email addresses a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserEmailFilter {
    /// Only this user's.
    pub user_id: Option<Ulid>,
    /// Only this address, compared without regard to case.
    pub email: Option<String>,
}

/// Which browser sessions a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrowserSessionFilter {
    /// Only this user's.
    pub user_id: Option<Ulid>,
    /// Only the open (`true`) or finished (`false`) ones.
    pub active: Option<bool>,
}

/// The state of a user account, for filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    /// Neither locked nor deactivated.
    Active,
    /// Locked or deactivated (a deactivated user is locked out too, as MAS counts it).
    Locked,
    /// Deactivated.
    Deactivated,
}

/// Users.
///
/// Every method fails with [`StorageError::Unavailable`] when the database cannot be
/// reached and [`StorageError::Backend`] on other database errors; other errors are named.
#[async_trait]
pub trait UserRepository: Send {
    /// The user with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<User>, StorageError>;
    /// The user with this username.
    async fn find_by_username(&mut self, username: &str) -> Result<Option<User>, StorageError>;
    /// Creates a user.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] when the username is taken.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        username: &str,
    ) -> Result<User, StorageError>;
    /// Locks a user (kept if already locked).
    async fn lock(&mut self, clock: &dyn Clock, user: User) -> Result<User, StorageError>;
    /// Unlocks a user.
    async fn unlock(&mut self, user: User) -> Result<User, StorageError>;
    /// Deactivates a user (kept if already deactivated).
    async fn deactivate(&mut self, clock: &dyn Clock, user: User) -> Result<User, StorageError>;
    /// Reactivates a user.
    async fn reactivate(&mut self, user: User) -> Result<User, StorageError>;
    /// Grants or removes the right to request homeserver admin rights.
    async fn set_can_request_admin(&mut self, user: User, can: bool) -> Result<User, StorageError>;
    /// A page of users matching `filter`, by ID.
    async fn list(
        &mut self,
        filter: &UserFilter,
        pagination: Pagination,
    ) -> Result<Page<User>, StorageError>;
    /// How many users match `filter`.
    async fn count(&mut self, filter: &UserFilter) -> Result<u64, StorageError>;
}

/// Password hashes; the newest of a user is their password.
#[async_trait]
pub trait UserPasswordRepository: Send {
    /// The user's current password, if any.
    async fn active(&mut self, user: &User) -> Result<Option<Password>, StorageError>;
    /// The user with this username and their current password, in one read (the login
    /// path); `None` when there is no such user.
    async fn find_user_with_active(
        &mut self,
        username: &str,
    ) -> Result<Option<(User, Option<Password>)>, StorageError>;
    /// Sets a new password hash; `upgraded_from` when it re-hashes the current one.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        version: u16,
        hashed_password: String,
        upgraded_from: Option<&Password>,
    ) -> Result<Password, StorageError>;
}

/// Email addresses of users.
#[async_trait]
pub trait UserEmailRepository: Send {
    /// The email with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<UserEmail>, StorageError>;
    /// Who has this address, compared without regard to case.
    async fn find_by_email(&mut self, email: &str) -> Result<Option<UserEmail>, StorageError>;
    /// All addresses of a user, oldest first.
    async fn all(&mut self, user: &User) -> Result<Vec<UserEmail>, StorageError>;
    /// Adds an address to a user.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] when any user already has it.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        email: &str,
    ) -> Result<UserEmail, StorageError>;
    /// Removes an address.
    async fn remove(&mut self, email: UserEmail) -> Result<(), StorageError>;
    /// A page of addresses matching `filter`, by ID.
    async fn list(
        &mut self,
        filter: &UserEmailFilter,
        pagination: Pagination,
    ) -> Result<Page<UserEmail>, StorageError>;
    /// How many addresses match `filter`.
    async fn count(&mut self, filter: &UserEmailFilter) -> Result<u64, StorageError>;
    /// Starts proving that `session`'s person reads `email`: `encrypted_code` is the
    /// code sent there, good until `expires_at`.
    #[allow(clippy::too_many_arguments)]
    async fn start_authentication(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &BrowserSession,
        email: &str,
        encrypted_code: String,
        expires_at: DateTime<Utc>,
    ) -> Result<UserEmailAuthentication, StorageError>;
    /// The authentication with this ID.
    async fn lookup_authentication(
        &mut self,
        id: Ulid,
    ) -> Result<Option<UserEmailAuthentication>, StorageError>;
    /// Counts one code typed, atomically (concurrent tries all count); returns the
    /// authentication as it now stands.
    async fn record_attempt(
        &mut self,
        authentication: UserEmailAuthentication,
    ) -> Result<UserEmailAuthentication, StorageError>;
    /// Deletes the authentications that stopped working before `expired_before` (used
    /// or not: the address is on the account or was never proven); returns how many.
    async fn cleanup_authentications(
        &mut self,
        expired_before: DateTime<Utc>,
    ) -> Result<u64, StorageError>;
    /// Marks it done, once: `None` when it was completed already (a concurrent
    /// submission of the same code).
    async fn complete_authentication(
        &mut self,
        clock: &dyn Clock,
        authentication: UserEmailAuthentication,
    ) -> Result<Option<UserEmailAuthentication>, StorageError>;
}

/// Browser sessions and the authentications within them.
#[async_trait]
pub trait BrowserSessionRepository: Send {
    /// The session with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<BrowserSession>, StorageError>;
    /// Starts a session for a user.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        user: &User,
        user_agent: Option<String>,
    ) -> Result<BrowserSession, StorageError>;
    /// Ends a session.
    async fn finish(
        &mut self,
        clock: &dyn Clock,
        session: BrowserSession,
    ) -> Result<BrowserSession, StorageError>;
    /// Ends every open session of a user; returns how many.
    async fn finish_all(&mut self, clock: &dyn Clock, user: &User) -> Result<u64, StorageError>;
    /// A page of a user's sessions, optionally only the open ones.
    async fn list(
        &mut self,
        user: &User,
        active_only: bool,
        pagination: Pagination,
    ) -> Result<Page<BrowserSession>, StorageError>;
    /// A page of sessions of any user matching `filter`, by ID.
    async fn list_by(
        &mut self,
        filter: BrowserSessionFilter,
        pagination: Pagination,
    ) -> Result<Page<BrowserSession>, StorageError>;
    /// How many sessions match `filter`.
    async fn count(&mut self, filter: BrowserSessionFilter) -> Result<u64, StorageError>;
    /// Records that the user proved their password in this session.
    async fn authenticate_with_password(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &BrowserSession,
        password: &Password,
    ) -> Result<Authentication, StorageError>;
    /// Records that the user came back from an upstream provider in this session.
    async fn authenticate_with_upstream(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &BrowserSession,
        link_id: Ulid,
    ) -> Result<Authentication, StorageError>;
    /// The newest authentication of a session.
    async fn last_authentication(
        &mut self,
        session: &BrowserSession,
    ) -> Result<Option<Authentication>, StorageError>;
    /// Records when and from where the session was last used.
    async fn record_activity(
        &mut self,
        id: Ulid,
        at: DateTime<Utc>,
        ip: Option<String>,
    ) -> Result<(), StorageError>;
}

/// Registration tokens.
#[async_trait]
pub trait RegistrationTokenRepository: Send {
    /// The token with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<RegistrationToken>, StorageError>;
    /// The token with this value.
    async fn find_by_token(
        &mut self,
        token: &str,
    ) -> Result<Option<RegistrationToken>, StorageError>;
    /// Creates a token.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] when the value exists.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        token: &str,
        usage_limit: Option<u32>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<RegistrationToken, StorageError>;
    /// Counts one use, atomically; `None` when the token is no longer valid.
    async fn use_token(
        &mut self,
        clock: &dyn Clock,
        token: &RegistrationToken,
    ) -> Result<Option<RegistrationToken>, StorageError>;
    /// Revokes a token.
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        token: RegistrationToken,
    ) -> Result<RegistrationToken, StorageError>;
    /// Lifts a token's revocation.
    async fn unrevoke(
        &mut self,
        token: RegistrationToken,
    ) -> Result<RegistrationToken, StorageError>;
    /// Sets a token's usage limit and expiry (`None`: no limit, never); returns the token
    /// as it now stands.
    async fn set_limits(
        &mut self,
        token: RegistrationToken,
        usage_limit: Option<u32>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<RegistrationToken, StorageError>;
    /// A page of the tokens matching `filter`, by ID.
    async fn list(
        &mut self,
        filter: RegistrationTokenFilter,
        pagination: Pagination,
    ) -> Result<Page<RegistrationToken>, StorageError>;
    /// How many tokens match `filter`.
    async fn count(&mut self, filter: RegistrationTokenFilter) -> Result<u64, StorageError>;
}

/// Which registration tokens a listing returns; the time-dependent filters are as of
/// `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationTokenFilter {
    /// The time `expired` and `valid` are judged at.
    pub now: DateTime<Utc>,
    /// Only tokens used at least once (`true`) or never.
    pub used: Option<bool>,
    /// Only revoked (`true`) or unrevoked tokens.
    pub revoked: Option<bool>,
    /// Only expired (`true`) or unexpired tokens.
    pub expired: Option<bool>,
    /// Only tokens that can (`true`) or cannot be used now.
    pub valid: Option<bool>,
}

impl RegistrationTokenFilter {
    /// No filter, as of `now`.
    #[must_use]
    pub fn at(now: DateTime<Utc>) -> Self {
        Self {
            now,
            used: None,
            revoked: None,
            expired: None,
            valid: None,
        }
    }
}
