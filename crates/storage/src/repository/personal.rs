//! Personal sessions and their tokens.

use async_trait::async_trait;
use chrono::Duration;
use mas_data_model::{PersonalAccessToken, PersonalSession, PersonalSessionOwner, User};
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
        owner: PersonalSessionOwner,
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
    /// A page of the sessions matching `filter`, by ID.
    async fn list_by(
        &mut self,
        filter: PersonalSessionFilter,
        pagination: Pagination,
    ) -> Result<Page<PersonalSession>, StorageError>;
    /// How many sessions match `filter`.
    async fn count(&mut self, filter: PersonalSessionFilter) -> Result<u64, StorageError>;
}

/// Which personal sessions a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersonalSessionFilter {
    /// Only those this user owns.
    pub owner_user_id: Option<Ulid>,
    /// Only those this client owns.
    pub owner_client_id: Option<Ulid>,
    /// Only those acting as this user.
    pub actor_user_id: Option<Ulid>,
    /// Only the unrevoked (`true`) or revoked (`false`) ones.
    pub active: Option<bool>,
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
    /// The newest unrevoked token of a session, if any.
    async fn active_for_session(
        &mut self,
        session: &PersonalSession,
    ) -> Result<Option<PersonalAccessToken>, StorageError>;
    /// Revokes every unrevoked token of a session, waiting for any other unit of work
    /// doing the same (a concurrent regeneration) to finish first; returns how many.
    async fn revoke_all(
        &mut self,
        clock: &dyn Clock,
        session: &PersonalSession,
    ) -> Result<u64, StorageError>;
    /// Revokes the token.
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        token: PersonalAccessToken,
    ) -> Result<PersonalAccessToken, StorageError>;
}
