//! Personal sessions and their tokens.

use async_trait::async_trait;
use chrono::Duration;
use mas_data_model::{PersonalAccessToken, PersonalSession, User};
use ulid::Ulid;

use crate::{Clock, Page, Pagination, Rng, StorageError};

/// Personal sessions.
///
/// Every method fails with [`StorageError::Unavailable`] when the database cannot be
/// reached and [`StorageError::Backend`] on other database errors.
#[async_trait]
pub trait PersonalSessionRepository: Send {
    /// The session with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<PersonalSession>, StorageError>;
    /// Creates a session owned by `owner` acting as `actor`.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        owner: &User,
        actor: &User,
        human_name: &str,
        scope: &str,
    ) -> Result<PersonalSession, StorageError>;
    /// Revokes a session.
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        session: PersonalSession,
    ) -> Result<PersonalSession, StorageError>;
    /// A page of the sessions acting as `actor`.
    async fn list(
        &mut self,
        actor: &User,
        pagination: Pagination,
    ) -> Result<Page<PersonalSession>, StorageError>;
}

/// Personal access tokens (`mpt_`), found by hash.
#[async_trait]
pub trait PersonalAccessTokenRepository: Send {
    /// Issues a token; `ttl` `None` means it never expires.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &PersonalSession,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<PersonalAccessToken, StorageError>;
    /// The token with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<PersonalAccessToken>, StorageError>;
    /// The token with this value.
    async fn find_by_token(
        &mut self,
        token: &str,
    ) -> Result<Option<PersonalAccessToken>, StorageError>;
    /// Revokes the token.
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        token: PersonalAccessToken,
    ) -> Result<PersonalAccessToken, StorageError>;
}
