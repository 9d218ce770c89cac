//! The repository traits, one per stored thing, and the unit of work that hands them out.

mod compat;
mod job;
mod oauth2;
mod personal;
mod registration;
mod upstream;
mod user;

use async_trait::async_trait;

pub use self::compat::{
    CompatAccessTokenRepository, CompatLogin, CompatRefreshTokenRepository, CompatRotated,
    CompatRotation, CompatSessionFilter, CompatSessionRepository, CompatSsoLoginRepository,
    NewCompatLogin,
};
pub use self::job::{JobRepository, NewJob};
pub use self::oauth2::{
    AccessTokenRepository, AuthorizationGrantRepository, ClientParams, ClientRepository,
    DeviceCodeGrantRepository, NewAuthorizationGrant, NewDeviceCodeGrant, RefreshTokenRepository,
    SessionFilter, SessionRepository,
};
pub use self::personal::{
    PersonalAccessTokenRepository, PersonalSessionFilter, PersonalSessionRepository,
};
pub use self::registration::{NewRegistration, UserRecoveryRepository, UserRegistrationRepository};
pub use self::upstream::{
    ProviderParams, UpstreamAnswer, UpstreamOAuthLinkFilter, UpstreamOAuthLinkRepository,
    UpstreamOAuthProviderRepository, UpstreamOAuthSessionRepository,
};
pub use self::user::{
    BrowserSessionFilter, BrowserSessionRepository, RegistrationTokenFilter,
    RegistrationTokenRepository, UserEmailFilter, UserEmailRepository, UserFilter,
    UserPasswordRepository, UserRepository, UserState,
};
use crate::StorageError;

/// A boxed repository, as handlers hold it.
pub type BoxRepository = Box<dyn Repository>;

/// A unit of work: the repositories of every stored thing, over one transaction.
///
/// Nothing is visible to others until [`Repository::save`]; dropping it rolls back.
#[async_trait]
pub trait Repository: Send {
    /// Commits everything done through this repository.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] if the database went away (nothing was committed),
    /// [`StorageError::Backend`] for other failures.
    async fn save(self: Box<Self>) -> Result<(), StorageError>;

    /// Users.
    fn user(&mut self) -> Box<dyn UserRepository + '_>;
    /// Password hashes.
    fn user_password(&mut self) -> Box<dyn UserPasswordRepository + '_>;
    /// Email addresses.
    fn user_email(&mut self) -> Box<dyn UserEmailRepository + '_>;
    /// Browser sessions and their authentications.
    fn browser_session(&mut self) -> Box<dyn BrowserSessionRepository + '_>;
    /// Registration tokens.
    fn registration_token(&mut self) -> Box<dyn RegistrationTokenRepository + '_>;
    /// Registrations waiting for their email code.
    fn user_registration(&mut self) -> Box<dyn UserRegistrationRepository + '_>;
    /// Account recovery tickets.
    fn user_recovery(&mut self) -> Box<dyn UserRecoveryRepository + '_>;
    /// OAuth 2.0 clients.
    fn client(&mut self) -> Box<dyn ClientRepository + '_>;
    /// Authorization grants.
    fn authorization_grant(&mut self) -> Box<dyn AuthorizationGrantRepository + '_>;
    /// OAuth 2.0 sessions.
    fn session(&mut self) -> Box<dyn SessionRepository + '_>;
    /// OAuth 2.0 access tokens.
    fn access_token(&mut self) -> Box<dyn AccessTokenRepository + '_>;
    /// OAuth 2.0 refresh tokens.
    fn refresh_token(&mut self) -> Box<dyn RefreshTokenRepository + '_>;
    /// Device authorization grants.
    fn device_code_grant(&mut self) -> Box<dyn DeviceCodeGrantRepository + '_>;
    /// Compatibility sessions.
    fn compat_session(&mut self) -> Box<dyn CompatSessionRepository + '_>;
    /// Compatibility access tokens.
    fn compat_access_token(&mut self) -> Box<dyn CompatAccessTokenRepository + '_>;
    /// Compatibility refresh tokens.
    fn compat_refresh_token(&mut self) -> Box<dyn CompatRefreshTokenRepository + '_>;
    /// Compatibility SSO logins.
    fn compat_sso_login(&mut self) -> Box<dyn CompatSsoLoginRepository + '_>;
    /// Personal sessions.
    fn personal_session(&mut self) -> Box<dyn PersonalSessionRepository + '_>;
    /// Personal access tokens.
    fn personal_access_token(&mut self) -> Box<dyn PersonalAccessTokenRepository + '_>;
    /// Upstream identity providers.
    fn upstream_provider(&mut self) -> Box<dyn UpstreamOAuthProviderRepository + '_>;
    /// Links of users to upstream accounts.
    fn upstream_link(&mut self) -> Box<dyn UpstreamOAuthLinkRepository + '_>;
    /// Trips of people to upstream providers.
    fn upstream_session(&mut self) -> Box<dyn UpstreamOAuthSessionRepository + '_>;
    /// The job queue.
    fn job(&mut self) -> Box<dyn JobRepository + '_>;
    /// Last activity of sessions, written in batches.
    fn activity(&mut self) -> Box<dyn ActivityRepository + '_>;
}

/// Writes the last activity of many sessions at once.
#[async_trait]
pub trait ActivityRepository: Send {
    /// Stores each session's last activity, one statement per kind of session; an
    /// activity without an address keeps the stored one. Sessions that no longer exist
    /// are skipped. Returns how many sessions were updated.
    async fn record(&mut self, batch: &[crate::Activity]) -> Result<u64, StorageError>;
}

/// Hands out repositories.
#[async_trait]
pub trait RepositoryFactory: Send + Sync {
    /// A repository over a new transaction; writes from concurrent units of work wait
    /// for each other where they touch the same rows.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when no connection can be had quickly.
    async fn begin(&self) -> Result<BoxRepository, StorageError>;

    /// A repository whose statements run on the pool without an explicit transaction,
    /// for hot read paths (introspection). `save` is a no-op.
    ///
    /// # Errors
    /// As [`RepositoryFactory::begin`].
    async fn reader(&self) -> Result<BoxRepository, StorageError>;

    /// The record of revoked sessions, users and clients that units of work from this
    /// factory (and, where the backend can say so, from other processes) write to.
    fn revocations(&self) -> &crate::Revocations;
}
