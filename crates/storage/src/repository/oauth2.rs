//! OAuth 2.0 clients, grants, sessions and tokens.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_data_model::{
    AccessToken, AuthorizationGrant, Client, ClientAuthMethod, ClientKind, DeviceCodeGrant, Pkce,
    RefreshToken, ResponseMode, Session,
};
use ulid::Ulid;
use url::Url;

use crate::{Clock, Page, Pagination, Rng, StorageError};

/// The metadata of a client, as configured or registered.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientParams {
    /// How it authenticates.
    pub auth_method: ClientAuthMethod,
    /// Its secret, already encrypted with [`crate::Encrypter`].
    pub encrypted_secret: Option<String>,
    /// Its public keys.
    pub jwks: Option<serde_json::Value>,
    /// Where its public keys are published.
    pub jwks_uri: Option<Url>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<Url>,
    /// The grant types it may use.
    pub grant_types: Vec<String>,
    /// A name shown to users.
    pub name: Option<String>,
    /// Its home page.
    pub client_uri: Option<Url>,
    /// Its logo.
    pub logo_uri: Option<Url>,
    /// Its privacy policy.
    pub policy_uri: Option<Url>,
    /// Its terms of service.
    pub tos_uri: Option<Url>,
    /// `web` or `native`.
    pub application_type: Option<String>,
    /// Contact addresses.
    pub contacts: Vec<String>,
    /// The rest of its registration metadata.
    pub metadata: Option<serde_json::Value>,
}

impl ClientParams {
    /// The client these are the metadata of, stored under `id` at `created_at`.
    #[must_use]
    pub fn into_client(self, id: Ulid, kind: ClientKind, created_at: DateTime<Utc>) -> Client {
        Client {
            id,
            kind,
            auth_method: self.auth_method,
            encrypted_secret: self.encrypted_secret,
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            redirect_uris: self.redirect_uris,
            grant_types: self.grant_types,
            name: self.name,
            client_uri: self.client_uri,
            logo_uri: self.logo_uri,
            policy_uri: self.policy_uri,
            tos_uri: self.tos_uri,
            application_type: self.application_type,
            contacts: self.contacts,
            metadata: self.metadata,
            created_at,
        }
    }
}

/// OAuth 2.0 clients.
///
/// Every method fails with [`StorageError::Unavailable`] when the database cannot be
/// reached and [`StorageError::Backend`] on other database errors; other errors are named.
#[async_trait]
pub trait ClientRepository: Send {
    /// The client with this `client_id`.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<Client>, StorageError>;
    /// Every client declared in the configuration, by ID.
    async fn all_static(&mut self) -> Result<Vec<Client>, StorageError>;
    /// Creates or replaces a static client; its creation time is kept.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] when a dynamically registered client has this ID.
    async fn upsert_static(
        &mut self,
        clock: &dyn Clock,
        id: Ulid,
        params: ClientParams,
    ) -> Result<Client, StorageError>;
    /// Registers a dynamic client with a fresh ID.
    async fn add_dynamic(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        params: ClientParams,
    ) -> Result<Client, StorageError>;
    /// Deletes a client and everything that belongs to it (sessions, grants, tokens).
    async fn delete(&mut self, client: Client) -> Result<(), StorageError>;
    /// A page of clients.
    async fn list(&mut self, pagination: Pagination) -> Result<Page<Client>, StorageError>;
    /// Records the `jti` of a client assertion until `expires_at`. Returns `false` when
    /// the client already used it: the assertion is a replay.
    async fn record_assertion(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError>;
    /// Forgets assertions that expired before `before`; returns how many.
    async fn cleanup_assertions(&mut self, before: DateTime<Utc>) -> Result<u64, StorageError>;
    /// Deletes the dynamically registered clients registered before `registered_before`
    /// that never started an authorization and that nothing refers to (no session,
    /// authorization grant or device code grant); static clients are never deleted.
    /// Returns how many.
    async fn cleanup_unused(
        &mut self,
        registered_before: DateTime<Utc>,
    ) -> Result<u64, StorageError>;
}

/// What `/authorize` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuthorizationGrant {
    /// The requesting client.
    pub client_id: Ulid,
    /// Where the response goes.
    pub redirect_uri: Url,
    /// The requested scope.
    pub scope: String,
    /// The client's `state`.
    pub state: Option<String>,
    /// The client's `nonce`.
    pub nonce: Option<String>,
    /// How the response is returned.
    pub response_mode: ResponseMode,
    /// Whether an ID token is returned beside the code.
    pub response_type_id_token: bool,
    /// The PKCE challenge the code will be bound to.
    pub pkce: Option<Pkce>,
    /// `max_age`.
    pub max_age: Option<u32>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// `prompt`.
    pub prompt: Option<String>,
}

/// Authorization grants.
#[async_trait]
pub trait AuthorizationGrantRepository: Send {
    /// Stores a new grant.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        grant: NewAuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError>;
    /// The grant with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<AuthorizationGrant>, StorageError>;
    /// The grant whose code this is.
    async fn find_by_code(
        &mut self,
        code: &str,
    ) -> Result<Option<AuthorizationGrant>, StorageError>;
    /// Attaches the session the user consented to and the code (plain; stored as a hash)
    /// the client will exchange.
    ///
    /// # Errors
    /// [`StorageError::InvalidData`] when the grant was already fulfilled or cancelled
    /// (a concurrent consent won).
    async fn fulfill(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
        session: &Session,
        code: &str,
    ) -> Result<AuthorizationGrant, StorageError>;
    /// Marks the code exchanged. Returns `None` when it already was: exactly one of
    /// several concurrent exchanges gets the grant back.
    async fn exchange(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
    ) -> Result<Option<AuthorizationGrant>, StorageError>;
    /// Marks the grant cancelled (the user refused).
    ///
    /// # Errors
    /// [`StorageError::InvalidData`] when the grant was already fulfilled or cancelled
    /// (a concurrent answer won).
    async fn cancel(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError>;
    /// Deletes the grants created before `created_before`, whatever their state (the caller
    /// picks a time past which none can be approved nor its code exchanged); returns how
    /// many.
    async fn cleanup(&mut self, created_before: DateTime<Utc>) -> Result<u64, StorageError>;
}

/// Which OAuth 2.0 sessions a listing or bulk operation covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this user's.
    pub user_id: Option<Ulid>,
    /// Only this client's.
    pub client_id: Option<Ulid>,
    /// Only the open (`true`) or finished (`false`) ones.
    pub active: Option<bool>,
}

/// OAuth 2.0 sessions.
#[async_trait]
pub trait SessionRepository: Send {
    /// The session with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<Session>, StorageError>;
    /// Starts a session.
    #[allow(clippy::too_many_arguments)]
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        user_id: Option<Ulid>,
        browser_session_id: Option<Ulid>,
        scope: &str,
        user_agent: Option<String>,
    ) -> Result<Session, StorageError>;
    /// Ends a session (its tokens become inactive).
    async fn finish(
        &mut self,
        clock: &dyn Clock,
        session: Session,
    ) -> Result<Session, StorageError>;
    /// Ends every open session matching `filter`; returns how many.
    async fn finish_all(
        &mut self,
        clock: &dyn Clock,
        filter: SessionFilter,
    ) -> Result<u64, StorageError>;
    /// A page of sessions matching `filter`.
    async fn list(
        &mut self,
        filter: SessionFilter,
        pagination: Pagination,
    ) -> Result<Page<Session>, StorageError>;
    /// How many sessions match `filter`.
    async fn count(&mut self, filter: SessionFilter) -> Result<u64, StorageError>;
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

/// OAuth 2.0 access tokens, found by the hash of the token.
#[async_trait]
pub trait AccessTokenRepository: Send {
    /// Issues a token in a session; `ttl` `None` means it never expires.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<AccessToken, StorageError>;
    /// The token with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<AccessToken>, StorageError>;
    /// The token with this value.
    async fn find_by_token(&mut self, token: &str) -> Result<Option<AccessToken>, StorageError>;
    /// Marks the token used (once).
    async fn mark_used(
        &mut self,
        clock: &dyn Clock,
        token: AccessToken,
    ) -> Result<AccessToken, StorageError>;
    /// Revokes the token.
    async fn revoke(
        &mut self,
        clock: &dyn Clock,
        token: AccessToken,
    ) -> Result<AccessToken, StorageError>;
    /// Revokes every token of a session; returns how many.
    async fn revoke_all_in_session(
        &mut self,
        clock: &dyn Clock,
        session_id: Ulid,
    ) -> Result<u64, StorageError>;
    /// Deletes tokens that expired or were revoked before `before`; returns how many.
    async fn cleanup(&mut self, before: DateTime<Utc>) -> Result<u64, StorageError>;
}

/// OAuth 2.0 refresh tokens, found by the hash of the token.
#[async_trait]
pub trait RefreshTokenRepository: Send {
    /// Issues a refresh token beside an access token.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        access_token: &AccessToken,
        token: &str,
    ) -> Result<RefreshToken, StorageError>;
    /// The token with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<RefreshToken>, StorageError>;
    /// The token with this value.
    async fn find_by_token(&mut self, token: &str) -> Result<Option<RefreshToken>, StorageError>;
    /// Marks `token` consumed in exchange for `next`. Returns `None` when it was already
    /// consumed or revoked: exactly one of several concurrent refreshes wins.
    async fn consume(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError>;
    /// Marks `token` consumed in exchange for `next` *and* revoked: a retried refresh
    /// replaced the branch it started, which must never be refreshed again. Returns
    /// `None` when it was already consumed or revoked (of two concurrent retries, one
    /// wins).
    async fn supersede(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError>;
    /// Revokes every token of a session; returns how many.
    async fn revoke_all_in_session(
        &mut self,
        clock: &dyn Clock,
        session_id: Ulid,
    ) -> Result<u64, StorageError>;
    /// Deletes tokens consumed or revoked before `before`, except a consumed token whose
    /// successor is still live (needed to recognise a replay); returns how many.
    async fn cleanup(&mut self, before: DateTime<Utc>) -> Result<u64, StorageError>;
}

/// What `/oauth2/device` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviceCodeGrant {
    /// The device's client.
    pub client_id: Ulid,
    /// The requested scope.
    pub scope: String,
    /// The device code (plain; stored as a hash).
    pub device_code: String,
    /// The code the user types.
    pub user_code: String,
    /// How long the codes live.
    pub expires_in: Duration,
    /// The device's IP address.
    pub ip_address: Option<String>,
    /// The device's user agent.
    pub user_agent: Option<String>,
}

/// Device authorization grants.
#[async_trait]
pub trait DeviceCodeGrantRepository: Send {
    /// Stores a new grant.
    ///
    /// # Errors
    /// [`StorageError::Conflict`] when the user code is taken.
    async fn add(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        grant: NewDeviceCodeGrant,
    ) -> Result<DeviceCodeGrant, StorageError>;
    /// The grant with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<DeviceCodeGrant>, StorageError>;
    /// The grant with this user code.
    async fn find_by_user_code(
        &mut self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;
    /// The grant with this device code.
    async fn find_by_device_code(
        &mut self,
        device_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;
    /// The user approved it in this browser session; `None` unless it was pending.
    async fn fulfill(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        browser_session_id: Ulid,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;
    /// The user refused it; `None` unless it was pending.
    async fn reject(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        browser_session_id: Ulid,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;
    /// Records a poll of the token endpoint; `false` (and nothing recorded) when the
    /// previous poll was less than `interval` ago, so of two concurrent polls one loses.
    async fn record_poll(
        &mut self,
        clock: &dyn Clock,
        grant: &DeviceCodeGrant,
        interval: Duration,
    ) -> Result<bool, StorageError>;
    /// The device got its tokens in `session`; `None` unless it was fulfilled and not yet
    /// exchanged: exactly one of several concurrent exchanges wins.
    async fn exchange(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        session: &Session,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;
    /// Deletes the grants that expired before `expired_before`, whatever their state;
    /// returns how many.
    async fn cleanup(&mut self, expired_before: DateTime<Utc>) -> Result<u64, StorageError>;
}
