//! What the engine needs from storage, one small trait per concern, so that a service
//! backing the engine with its own tables implements only what the operations it calls
//! need:
//!
//! | Trait | What it keeps | Operations that ask for it |
//! |---|---|---|
//! | [`ClientStore`] | clients, client assertions seen | [`crate::authorize::validate`], [`crate::client_auth`], [`crate::registration`] |
//! | [`CodeStore`] | authorization grants and their codes | [`crate::authorize::answer`], [`crate::grants::authorization_code`] |
//! | [`DeviceGrantStore`] | device authorization grants | [`crate::device`] |
//! | [`SessionStore`] | OAuth 2.0 sessions, access and refresh tokens | every grant, [`crate::tokens::introspect`], [`crate::tokens::revoke`], [`crate::grants::userinfo`] |
//! | [`UserStore`] | users, their sign-ins, their email | ID tokens, userinfo, consent |
//! | [`MatrixStore`] | what a homeserver's clients hold: compatibility and personal tokens | introspection for the homeserver, consent to a Matrix device, personal sessions |
//!
//! Every `mas_storage::Repository` is each of them already, so `mas-storage-sql` (and
//! any full unit of work) serves them as it is; the `memory` feature brings the
//! `memory` module, which keeps them all in memory.
//!
//! Each call happens inside the caller's unit of work: the engine says when one must be
//! kept ([`crate::grants::GrantOutcome`]), and the store makes it all-or-nothing. The
//! operations marked *exactly once* must hold under concurrency: of two units doing it
//! to the same record at once, one gets `None` (or `false`). Secrets are found by
//! [`mas_storage::secret_hash`], and new records take a [`mas_storage::new_id`].

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_data_model::{
    AccessToken, AuthorizationGrant, BrowserSession, Client, CompatAccessToken, CompatSession,
    DeviceCodeGrant, PersonalAccessToken, PersonalSession, PersonalSessionOwner, RefreshToken,
    Session, User,
};
use mas_storage::repository::{
    ClientParams, NewAuthorizationGrant, NewDeviceCodeGrant, SessionFilter,
};
use mas_storage::{Clock, Pagination, Repository, Rng, StorageError};
use ulid::Ulid;

/// The clients: what authorization requests, client authentication and dynamic client
/// registration read and write.
#[async_trait]
pub trait ClientStore: Send {
    /// The client with this ID.
    async fn find_client(&mut self, id: Ulid) -> Result<Option<Client>, StorageError>;

    /// Stores a client that registered itself (RFC 7591), under a new ID of the store's
    /// choosing: a ULID no other client has, made from `rng` at `clock`'s now.
    async fn register_client(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        params: ClientParams,
    ) -> Result<Client, StorageError>;

    /// Remembers a client assertion's `jti` until `expires_at`; `false` when the client
    /// used it before (a replay). Of two concurrent uses, at most one gets `true`; and
    /// the record must outlive the request, so the caller saves it at once, before the
    /// rest of the request can fail (the service authenticates clients in a unit of work
    /// of its own). Records past `expires_at` may be pruned.
    async fn record_client_assertion(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError>;
}

/// Authorization grants: a client's request waiting for the person's answer, then the
/// code the client exchanges. Codes are secrets: a store should keep only their hash.
#[async_trait]
pub trait CodeStore: Send {
    /// Stores a grant the person has yet to answer, under a new ULID.
    async fn add_grant(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        grant: NewAuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError>;

    /// The grant with this ID.
    async fn find_grant(&mut self, id: Ulid) -> Result<Option<AuthorizationGrant>, StorageError>;

    /// The grant whose code this is.
    async fn find_grant_by_code(
        &mut self,
        code: &str,
    ) -> Result<Option<AuthorizationGrant>, StorageError>;

    /// The person consented: the grant gets its session and its code. Exactly once:
    /// [`StorageError::InvalidData`] when the grant was fulfilled or cancelled already.
    async fn fulfill_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
        session: &Session,
        code: &str,
    ) -> Result<AuthorizationGrant, StorageError>;

    /// The code was exchanged for tokens. Exactly once: `None` when it was before.
    async fn exchange_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
    ) -> Result<Option<AuthorizationGrant>, StorageError>;

    /// The person refused, or the request could not be granted. Exactly once, as
    /// [`CodeStore::fulfill_grant`]: [`StorageError::InvalidData`] when the grant was
    /// fulfilled or cancelled already.
    async fn cancel_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError>;
}

/// Device authorization grants (RFC 8628). Device codes are secrets: a store should keep
/// only their hash.
#[async_trait]
pub trait DeviceGrantStore: Send {
    /// Stores a new grant; [`StorageError::Conflict`] when its user code is taken.
    async fn add_device_grant(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        grant: NewDeviceCodeGrant,
    ) -> Result<DeviceCodeGrant, StorageError>;

    /// The grant with this device code.
    async fn find_device_grant(
        &mut self,
        device_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;

    /// The grant with this ID.
    async fn find_device_grant_by_id(
        &mut self,
        id: Ulid,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;

    /// The grant whose user code this is (as [`crate::device::normalise_user_code`]
    /// writes it).
    async fn find_device_grant_by_user_code(
        &mut self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;

    /// The person signed in as `browser_session_id` approved (`approved`) or refused the
    /// grant. Exactly once: `None` unless it was still pending.
    async fn answer_device_grant(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        browser_session_id: Ulid,
        approved: bool,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;

    /// Records a poll of the token endpoint. Exactly once per `interval`: `false`, and
    /// nothing recorded, when the previous poll was less than `interval` ago.
    async fn record_device_poll(
        &mut self,
        clock: &dyn Clock,
        grant: &DeviceCodeGrant,
        interval: Duration,
    ) -> Result<bool, StorageError>;

    /// The device got its tokens in `session`. Exactly once: `None` unless the grant was
    /// approved and not exchanged yet.
    async fn exchange_device_grant(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        session: &Session,
    ) -> Result<Option<DeviceCodeGrant>, StorageError>;
}

/// OAuth 2.0 sessions and their access and refresh tokens. Tokens are secrets: a store
/// should keep only their hash, and find them by it.
#[async_trait]
pub trait SessionStore: Send {
    /// Starts a session of `client_id`, for `user_id` when a person granted it, in the
    /// browser session they granted it from.
    #[allow(clippy::too_many_arguments)] // The session's parts, and the usual clock and rng.
    async fn add_session(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        user_id: Option<Ulid>,
        browser_session_id: Option<Ulid>,
        scope: &str,
        user_agent: Option<String>,
    ) -> Result<Session, StorageError>;

    /// The session with this ID.
    async fn find_session(&mut self, id: Ulid) -> Result<Option<Session>, StorageError>;

    /// The newest `limit` open sessions of this user with this client, in any order.
    async fn open_sessions(
        &mut self,
        user_id: Ulid,
        client_id: Ulid,
        limit: usize,
    ) -> Result<Vec<Session>, StorageError>;

    /// Ends the session and revokes every token it issued, all in this unit of work.
    async fn end_session(
        &mut self,
        clock: &dyn Clock,
        session: Session,
    ) -> Result<Session, StorageError>;

    /// Issues an access token in `session`; `ttl` `None` means it never expires.
    async fn add_access_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<AccessToken, StorageError>;

    /// The access token with this ID.
    async fn find_access_token(&mut self, id: Ulid) -> Result<Option<AccessToken>, StorageError>;

    /// The access token with this value.
    async fn find_access_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<AccessToken>, StorageError>;

    /// Marks the access token used, the first time.
    async fn mark_access_token_used(
        &mut self,
        clock: &dyn Clock,
        token: AccessToken,
    ) -> Result<AccessToken, StorageError>;

    /// Revokes one access token.
    async fn revoke_access_token(
        &mut self,
        clock: &dyn Clock,
        token: AccessToken,
    ) -> Result<AccessToken, StorageError>;

    /// Issues a refresh token beside `access_token`.
    async fn add_refresh_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        access_token: &AccessToken,
        token: &str,
    ) -> Result<RefreshToken, StorageError>;

    /// The refresh token with this ID.
    async fn find_refresh_token(&mut self, id: Ulid) -> Result<Option<RefreshToken>, StorageError>;

    /// The refresh token with this value.
    async fn find_refresh_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<RefreshToken>, StorageError>;

    /// `token` was used, and `next` replaces it. Exactly once: `None` when it was
    /// consumed or revoked already.
    async fn consume_refresh_token(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError>;

    /// As [`SessionStore::consume_refresh_token`], and `token` is revoked too: a retried
    /// refresh replaced the branch it started, which must never be refreshed again.
    async fn supersede_refresh_token(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError>;
}

/// The people: who a session acts for, when they last signed in, and their email.
#[async_trait]
pub trait UserStore: Send {
    /// The user with this ID.
    async fn find_user(&mut self, id: Ulid) -> Result<Option<User>, StorageError>;

    /// The browser session (a person signed in to the service) with this ID.
    async fn find_browser_session(
        &mut self,
        id: Ulid,
    ) -> Result<Option<BrowserSession>, StorageError>;

    /// When the person last proved who they are in this browser session (an ID token's
    /// `auth_time`, and what `max_age` is measured against).
    async fn last_authentication_at(
        &mut self,
        session: &BrowserSession,
    ) -> Result<Option<DateTime<Utc>>, StorageError>;

    /// The email address userinfo and ID tokens give for the `email` scope.
    async fn primary_email(&mut self, user: &User) -> Result<Option<String>, StorageError>;
}

/// What a Matrix homeserver's clients hold besides OAuth 2.0 sessions: compatibility
/// tokens (from `/_matrix/client/*/login`) and personal access tokens. A service that
/// serves no homeserver has none of them, and answers `None`.
#[async_trait]
pub trait MatrixStore: Send {
    /// The compatibility access token with this value, its session and its user.
    async fn find_compat_token_with_session(
        &mut self,
        token: &str,
    ) -> Result<Option<(CompatAccessToken, CompatSession, User)>, StorageError>;

    /// The Matrix device that `scope` names, when an open session of this user other
    /// than `client_id`'s holds it (compatibility sessions included).
    async fn device_held_elsewhere(
        &mut self,
        user_id: Ulid,
        scope: &str,
        client_id: Ulid,
    ) -> Result<Option<String>, StorageError>;

    /// Starts a personal session acting as `actor`.
    async fn add_personal_session(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        owner: PersonalSessionOwner,
        actor: &User,
        name: &str,
        scope: &str,
    ) -> Result<PersonalSession, StorageError>;

    /// The personal session with this ID.
    async fn find_personal_session(
        &mut self,
        id: Ulid,
    ) -> Result<Option<PersonalSession>, StorageError>;

    /// Issues a personal access token; `ttl` `None` means it never expires.
    async fn add_personal_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &PersonalSession,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<PersonalAccessToken, StorageError>;

    /// The personal access token with this value.
    async fn find_personal_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<PersonalAccessToken>, StorageError>;
}

#[async_trait]
impl<R: Repository + ?Sized> ClientStore for R {
    async fn find_client(&mut self, id: Ulid) -> Result<Option<Client>, StorageError> {
        self.client().lookup(id).await
    }

    async fn register_client(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        params: ClientParams,
    ) -> Result<Client, StorageError> {
        self.client().add_dynamic(rng, clock, params).await
    }

    async fn record_client_assertion(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        self.client()
            .record_assertion(rng, clock, client_id, jti, expires_at)
            .await
    }
}

#[async_trait]
impl<R: Repository + ?Sized> CodeStore for R {
    async fn add_grant(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        grant: NewAuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError> {
        self.authorization_grant().add(rng, clock, grant).await
    }

    async fn find_grant(&mut self, id: Ulid) -> Result<Option<AuthorizationGrant>, StorageError> {
        self.authorization_grant().lookup(id).await
    }

    async fn find_grant_by_code(
        &mut self,
        code: &str,
    ) -> Result<Option<AuthorizationGrant>, StorageError> {
        self.authorization_grant().find_by_code(code).await
    }

    async fn fulfill_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
        session: &Session,
        code: &str,
    ) -> Result<AuthorizationGrant, StorageError> {
        self.authorization_grant()
            .fulfill(clock, grant, session, code)
            .await
    }

    async fn exchange_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
    ) -> Result<Option<AuthorizationGrant>, StorageError> {
        self.authorization_grant().exchange(clock, grant).await
    }

    async fn cancel_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError> {
        self.authorization_grant().cancel(clock, grant).await
    }
}

#[async_trait]
impl<R: Repository + ?Sized> DeviceGrantStore for R {
    async fn add_device_grant(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        grant: NewDeviceCodeGrant,
    ) -> Result<DeviceCodeGrant, StorageError> {
        self.device_code_grant().add(rng, clock, grant).await
    }

    async fn find_device_grant(
        &mut self,
        device_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        self.device_code_grant()
            .find_by_device_code(device_code)
            .await
    }

    async fn find_device_grant_by_id(
        &mut self,
        id: Ulid,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        self.device_code_grant().lookup(id).await
    }

    async fn find_device_grant_by_user_code(
        &mut self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        self.device_code_grant().find_by_user_code(user_code).await
    }

    async fn answer_device_grant(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        browser_session_id: Ulid,
        approved: bool,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        let mut grants = self.device_code_grant();
        if approved {
            grants.fulfill(clock, grant, browser_session_id).await
        } else {
            grants.reject(clock, grant, browser_session_id).await
        }
    }

    async fn record_device_poll(
        &mut self,
        clock: &dyn Clock,
        grant: &DeviceCodeGrant,
        interval: Duration,
    ) -> Result<bool, StorageError> {
        self.device_code_grant()
            .record_poll(clock, grant, interval)
            .await
    }

    async fn exchange_device_grant(
        &mut self,
        clock: &dyn Clock,
        grant: DeviceCodeGrant,
        session: &Session,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        self.device_code_grant()
            .exchange(clock, grant, session)
            .await
    }
}

#[async_trait]
impl<R: Repository + ?Sized> SessionStore for R {
    async fn add_session(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        user_id: Option<Ulid>,
        browser_session_id: Option<Ulid>,
        scope: &str,
        user_agent: Option<String>,
    ) -> Result<Session, StorageError> {
        self.session()
            .add(
                rng,
                clock,
                client_id,
                user_id,
                browser_session_id,
                scope,
                user_agent,
            )
            .await
    }

    async fn find_session(&mut self, id: Ulid) -> Result<Option<Session>, StorageError> {
        self.session().lookup(id).await
    }

    async fn open_sessions(
        &mut self,
        user_id: Ulid,
        client_id: Ulid,
        limit: usize,
    ) -> Result<Vec<Session>, StorageError> {
        let filter = SessionFilter {
            user_id: Some(user_id),
            client_id: Some(client_id),
            active: Some(true),
        };
        let page = self.session().list(filter, Pagination::last(limit)).await?;
        Ok(page.edges)
    }

    async fn end_session(
        &mut self,
        clock: &dyn Clock,
        session: Session,
    ) -> Result<Session, StorageError> {
        self.access_token()
            .revoke_all_in_session(clock, session.id)
            .await?;
        self.refresh_token()
            .revoke_all_in_session(clock, session.id)
            .await?;
        self.session().finish(clock, session).await
    }

    async fn add_access_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<AccessToken, StorageError> {
        self.access_token()
            .add(rng, clock, session, token, ttl)
            .await
    }

    async fn find_access_token(&mut self, id: Ulid) -> Result<Option<AccessToken>, StorageError> {
        self.access_token().lookup(id).await
    }

    async fn find_access_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<AccessToken>, StorageError> {
        self.access_token().find_by_token(token).await
    }

    async fn mark_access_token_used(
        &mut self,
        clock: &dyn Clock,
        token: AccessToken,
    ) -> Result<AccessToken, StorageError> {
        self.access_token().mark_used(clock, token).await
    }

    async fn revoke_access_token(
        &mut self,
        clock: &dyn Clock,
        token: AccessToken,
    ) -> Result<AccessToken, StorageError> {
        self.access_token().revoke(clock, token).await
    }

    async fn add_refresh_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        access_token: &AccessToken,
        token: &str,
    ) -> Result<RefreshToken, StorageError> {
        self.refresh_token()
            .add(rng, clock, session, access_token, token)
            .await
    }

    async fn find_refresh_token(&mut self, id: Ulid) -> Result<Option<RefreshToken>, StorageError> {
        self.refresh_token().lookup(id).await
    }

    async fn find_refresh_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<RefreshToken>, StorageError> {
        self.refresh_token().find_by_token(token).await
    }

    async fn consume_refresh_token(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError> {
        self.refresh_token().consume(clock, token, next).await
    }

    async fn supersede_refresh_token(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError> {
        self.refresh_token().supersede(clock, token, next).await
    }
}

#[async_trait]
impl<R: Repository + ?Sized> UserStore for R {
    async fn find_user(&mut self, id: Ulid) -> Result<Option<User>, StorageError> {
        self.user().lookup(id).await
    }

    async fn find_browser_session(
        &mut self,
        id: Ulid,
    ) -> Result<Option<BrowserSession>, StorageError> {
        self.browser_session().lookup(id).await
    }

    async fn last_authentication_at(
        &mut self,
        session: &BrowserSession,
    ) -> Result<Option<DateTime<Utc>>, StorageError> {
        let last = self.browser_session().last_authentication(session).await?;
        Ok(last.map(|a| a.created_at))
    }

    async fn primary_email(&mut self, user: &User) -> Result<Option<String>, StorageError> {
        let emails = self.user_email().all(user).await?;
        Ok(emails.into_iter().next().map(|e| e.email))
    }
}

#[async_trait]
impl<R: Repository + ?Sized> MatrixStore for R {
    async fn find_compat_token_with_session(
        &mut self,
        token: &str,
    ) -> Result<Option<(CompatAccessToken, CompatSession, User)>, StorageError> {
        self.compat_access_token().find_with_session(token).await
    }

    async fn device_held_elsewhere(
        &mut self,
        user_id: Ulid,
        scope: &str,
        client_id: Ulid,
    ) -> Result<Option<String>, StorageError> {
        mas_storage::jobs::device_held_elsewhere(self, user_id, scope, client_id).await
    }

    async fn add_personal_session(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        owner: PersonalSessionOwner,
        actor: &User,
        name: &str,
        scope: &str,
    ) -> Result<PersonalSession, StorageError> {
        self.personal_session()
            .add(rng, clock, owner, actor, name, scope)
            .await
    }

    async fn find_personal_session(
        &mut self,
        id: Ulid,
    ) -> Result<Option<PersonalSession>, StorageError> {
        self.personal_session().lookup(id).await
    }

    async fn add_personal_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &PersonalSession,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<PersonalAccessToken, StorageError> {
        self.personal_access_token()
            .add(rng, clock, session, token, ttl)
            .await
    }

    async fn find_personal_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<PersonalAccessToken>, StorageError> {
        self.personal_access_token().find_by_token(token).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use mas_data_model::ClientKind;
    use mas_storage::{Encrypter, SystemClock};
    use serde_json::json;

    use super::*;
    use crate::client_auth::ClientCredentials;
    use crate::params::Params;

    /// A service's own table of clients: nothing but what `ClientStore` asks for.
    #[derive(Default)]
    struct Clients {
        clients: Vec<Client>,
        assertions: HashSet<(Ulid, String)>,
    }

    #[async_trait]
    impl ClientStore for Clients {
        async fn find_client(&mut self, id: Ulid) -> Result<Option<Client>, StorageError> {
            Ok(self.clients.iter().find(|c| c.id == id).cloned())
        }

        async fn register_client(
            &mut self,
            rng: Rng<'_>,
            clock: &dyn Clock,
            params: ClientParams,
        ) -> Result<Client, StorageError> {
            let id = mas_storage::new_id(rng, clock.now());
            let client = params.into_client(id, ClientKind::Dynamic, clock.now());
            self.clients.push(client.clone());
            Ok(client)
        }

        async fn record_client_assertion(
            &mut self,
            _rng: Rng<'_>,
            _clock: &dyn Clock,
            client_id: Ulid,
            jti: &str,
            _expires_at: DateTime<Utc>,
        ) -> Result<bool, StorageError> {
            Ok(self.assertions.insert((client_id, jti.to_owned())))
        }
    }

    #[tokio::test]
    #[allow(clippy::too_many_lines)] // One story: register, authenticate, validate.
    async fn a_service_with_only_a_client_store_registers_and_authenticates_clients() {
        let mut store = Clients::default();
        let encrypter = Encrypter::new(&[7; 32]);
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let metadata = json!({
            "client_name": "billing",
            "client_uri": "https://billing.example.com/",
            "token_endpoint_auth_method": "client_secret_post",
            "redirect_uris": ["https://billing.example.com/callback"],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        });
        let (client, response) = crate::registration::register(
            &mut store,
            &mut rng,
            &SystemClock,
            &encrypter,
            &[],
            crate::policy::ClientRegistrationRules::default(),
            &metadata,
        )
        .await
        .unwrap();
        let secret = response["client_secret"].as_str().unwrap().to_owned();
        assert_eq!(store.clients.len(), 1);

        let authenticate = async |store: &mut Clients, secret: &str| {
            let body = format!("client_id={}&client_secret={secret}", client.id);
            let form = Params::parse(body.as_bytes()).unwrap();
            let credentials = ClientCredentials::from_request(None, &form).unwrap();
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            let audiences = ["https://auth.example.com/oauth2/token"];
            credentials
                .authenticate(store, &mut rng, &SystemClock, &encrypter, &audiences, None)
                .await
        };
        let found = authenticate(&mut store, &secret).await.unwrap();
        assert_eq!(found.id, client.id);
        let refused = authenticate(&mut store, "not the secret")
            .await
            .unwrap_err();
        assert_eq!(refused.code.as_str(), "invalid_client");

        // A client authenticating with a signed assertion: its `jti` works once.
        let jwt_metadata = json!({
            "client_uri": "https://billing.example.com/",
            "token_endpoint_auth_method": "client_secret_jwt",
            "redirect_uris": ["https://billing.example.com/callback"],
        });
        let rules = crate::policy::ClientRegistrationRules::default();
        let register = crate::registration::register(
            &mut store,
            &mut rng,
            &SystemClock,
            &encrypter,
            &[],
            rules,
            &jwt_metadata,
        );
        let (signer, response) = register.await.unwrap();
        let key = response["client_secret"].as_str().unwrap().as_bytes();
        let claims = json!({
            "iss": signer.id.to_string(), "sub": signer.id.to_string(),
            "aud": "https://auth.example.com/oauth2/token",
            "exp": chrono::Utc::now().timestamp() + 60, "jti": "once",
        });
        let assertion = crate::jose::sign_hmac("HS256", key, &claims).unwrap();
        let body = format!(
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion={assertion}"
        );
        let form = Params::parse(body.as_bytes()).unwrap();
        let credentials = ClientCredentials::from_request(None, &form).unwrap();
        let audiences = ["https://auth.example.com/oauth2/token"];
        for (attempt, accepted) in [(1, true), (2, false)] {
            let found = credentials
                .authenticate(
                    &mut store,
                    &mut rng,
                    &SystemClock,
                    &encrypter,
                    &audiences,
                    None,
                )
                .await;
            assert_eq!(found.is_ok(), accepted, "attempt {attempt}: {found:?}");
        }
        assert_eq!(store.assertions.len(), 1);

        // An authorization request of that client, checked against the same store.
        let query = format!(
            "client_id={}&response_type=code&scope=openid&redirect_uri=https%3A%2F%2Fbilling.example.com%2Fcallback\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            client.id
        );
        let issuer = url::Url::parse("https://auth.example.com/").unwrap();
        let params = Params::parse(query.as_bytes()).unwrap();
        let request = crate::authorize::validate(&mut store, &issuer, &params)
            .await
            .unwrap();
        assert_eq!(request.client.id, client.id);
        let unknown =
            Params::parse(b"client_id=01J00000000000000000000000&response_type=code").unwrap();
        assert!(
            crate::authorize::validate(&mut store, &issuer, &unknown)
                .await
                .is_err()
        );
    }
}
