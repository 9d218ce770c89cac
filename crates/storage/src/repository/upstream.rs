//! Upstream identity providers and links.

use async_trait::async_trait;
use mas_data_model::{UpstreamOAuthLink, UpstreamOAuthProvider, User};
use ulid::Ulid;

use crate::{Clock, Rng, StorageError};

/// The configuration of an upstream provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderParams {
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
    /// Every provider, by ID.
    async fn all(&mut self) -> Result<Vec<UpstreamOAuthProvider>, StorageError>;
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
    async fn associate(
        &mut self,
        link: UpstreamOAuthLink,
        user: &User,
    ) -> Result<UpstreamOAuthLink, StorageError>;
    /// Every link of a user.
    async fn all_for_user(&mut self, user: &User) -> Result<Vec<UpstreamOAuthLink>, StorageError>;
}
