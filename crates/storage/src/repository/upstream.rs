//! Upstream identity providers and links.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mas_data_model::{
    BrowserSession, UpstreamOAuthAuthorizationSession, UpstreamOAuthLink, UpstreamOAuthProvider,
    User,
};
use ulid::Ulid;

use crate::{Clock, Page, Pagination, Rng, StorageError};

/// The configuration of an upstream provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderParams {
    /// Its place among the providers (the order of the sign-in buttons).
    pub ui_order: i32,
    /// Its issuer.
    pub issuer: Option<String>,
    /// A name shown on the login page.
    pub human_name: Option<String>,
    /// Our client ID there.
    pub client_id: String,
    /// Our client secret there, already encrypted.
    pub encrypted_client_secret: Option<String>,
    /// Everything else of its configuration.
    pub config: serde_json::Value,
}

/// Upstream identity providers.
///
/// Every method fails with [`StorageError::Unavailable`] when the database cannot be
/// reached and [`StorageError::Backend`] on other database errors.
#[async_trait]
pub trait UpstreamOAuthProviderRepository: Send {
    /// The provider with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<UpstreamOAuthProvider>, StorageError>;
    /// Every provider, in `ui_order` (then ID).
    async fn all(&mut self) -> Result<Vec<UpstreamOAuthProvider>, StorageError>;
    /// A page of providers, enabled or disabled ones only if `enabled` says, by ID.
    async fn list(
        &mut self,
        enabled: Option<bool>,
        pagination: Pagination,
    ) -> Result<Page<UpstreamOAuthProvider>, StorageError>;
    /// How many providers are enabled (or disabled) as `enabled` says.
    async fn count(&mut self, enabled: Option<bool>) -> Result<u64, StorageError>;
    /// Creates or replaces a provider; its creation time is kept and it is enabled.
    async fn upsert(
        &mut self,
        clock: &dyn Clock,
        id: Ulid,
        params: ProviderParams,
    ) -> Result<UpstreamOAuthProvider, StorageError>;
    /// Disables a provider, keeping its links.
    async fn disable(
        &mut self,
        clock: &dyn Clock,
        provider: UpstreamOAuthProvider,
    ) -> Result<UpstreamOAuthProvider, StorageError>;
    /// Deletes a provider and its links.
    async fn delete(&mut self, provider: UpstreamOAuthProvider) -> Result<(), StorageError>;
}

/// Links between users and upstream accounts.
#[async_trait]
pub trait UpstreamOAuthLinkRepository: Send {
    /// The link with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<UpstreamOAuthLink>, StorageError>;
    /// The link of this upstream account.
    async fn find_by_subject(
        &mut self,
        provider: &UpstreamOAuthProvider,
        subject: &str,
    ) -> Result<Option<UpstreamOAuthLink>, StorageError>;
    /// Records an upstream account.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] when the account is already recorded.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        provider: &UpstreamOAuthProvider,
        subject: &str,
        human_account_name: Option<String>,
    ) -> Result<UpstreamOAuthLink, StorageError>;
    /// Links the account to a user.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] when it is linked already (to anyone).
    async fn associate(
        &mut self,
        link: UpstreamOAuthLink,
        user: &User,
    ) -> Result<UpstreamOAuthLink, StorageError>;
    /// Every link of a user.
    async fn all_for_user(&mut self, user: &User) -> Result<Vec<UpstreamOAuthLink>, StorageError>;
    /// Unlinks every account of `provider` from `user` (the link records stay).
    async fn unlink_user(
        &mut self,
        provider: &UpstreamOAuthProvider,
        user: &User,
    ) -> Result<u64, StorageError>;
    /// A page of links matching `filter`, by ID.
    async fn list(
        &mut self,
        filter: &UpstreamOAuthLinkFilter,
        pagination: Pagination,
    ) -> Result<Page<UpstreamOAuthLink>, StorageError>;
    /// How many links match `filter`.
    async fn count(&mut self, filter: &UpstreamOAuthLinkFilter) -> Result<u64, StorageError>;
    /// Deletes a link record; the sign-in trips that came back with it stay, without it,
    /// so a back-channel logout still finds their browser sessions by session ID.
    async fn remove(&mut self, link: UpstreamOAuthLink) -> Result<(), StorageError>;
}

/// Which upstream links a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamOAuthLinkFilter {
    /// Only this user's.
    pub user_id: Option<Ulid>,
    /// Only this provider's.
    pub provider_id: Option<Ulid>,
    /// Only this upstream account.
    pub subject: Option<String>,
}

/// What a provider's answer brought, recorded on the session it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamAnswer {
    /// The upstream account.
    pub link: UpstreamOAuthLink,
    /// The ID token, as sent.
    pub id_token: Option<String>,
    /// The claims: `{"id_token_claims", "userinfo_claims", "user"}`.
    pub claims: serde_json::Value,
    /// The provider's session ID.
    pub sid: Option<String>,
}

/// Trips of people to upstream providers.
#[async_trait]
pub trait UpstreamOAuthSessionRepository: Send {
    /// Records a trip about to start.
    #[allow(clippy::too_many_arguments)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        provider: &UpstreamOAuthProvider,
        state: String,
        nonce: String,
        code_verifier: Option<String>,
        next: String,
    ) -> Result<UpstreamOAuthAuthorizationSession, StorageError>;
    /// The session with this ID.
    async fn lookup(
        &mut self,
        id: Ulid,
    ) -> Result<Option<UpstreamOAuthAuthorizationSession>, StorageError>;
    /// The session that sent this `state` to this provider.
    async fn find_by_state(
        &mut self,
        provider: &UpstreamOAuthProvider,
        state: &str,
    ) -> Result<Option<UpstreamOAuthAuthorizationSession>, StorageError>;
    /// Takes the provider's answer, once: `None` when an answer was taken already.
    async fn claim(
        &mut self,
        clock: &dyn Clock,
        session: UpstreamOAuthAuthorizationSession,
    ) -> Result<Option<UpstreamOAuthAuthorizationSession>, StorageError>;
    /// Records what the answer brought.
    async fn record_answer(
        &mut self,
        session: UpstreamOAuthAuthorizationSession,
        answer: UpstreamAnswer,
    ) -> Result<UpstreamOAuthAuthorizationSession, StorageError>;
    /// Uses it to open `browser`, once: `None` when it was used already. The ID token and
    /// claims it kept are dropped; its provider session ID and link stay.
    async fn consume(
        &mut self,
        clock: &dyn Clock,
        session: UpstreamOAuthAuthorizationSession,
        browser: &BrowserSession,
    ) -> Result<Option<UpstreamOAuthAuthorizationSession>, StorageError>;
    /// The used sessions of `provider` with this provider session ID, or (without one)
    /// of this upstream account: what a back-channel logout ends.
    async fn find_for_logout(
        &mut self,
        provider: &UpstreamOAuthProvider,
        sid: Option<&str>,
        link: Option<&UpstreamOAuthLink>,
    ) -> Result<Vec<UpstreamOAuthAuthorizationSession>, StorageError>;
    /// Deletes the sessions started before `before` that never opened a browser session;
    /// returns how many.
    async fn cleanup(&mut self, before: DateTime<Utc>) -> Result<u64, StorageError>;
}
