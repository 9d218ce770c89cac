//! A store that keeps everything in memory (feature `memory`): every trait of
//! [`crate::store`], for tests and for small services that may forget every session
//! when they restart.
//!
//! [`MemoryStore`] is the shared state; each request works in a [`MemoryUnit`] from
//! [`MemoryStore::begin`], which [`MemoryUnit::commit`] keeps and dropping undoes.
//! Every operation takes the store's lock for its own duration only, so the *exactly
//! once* operations hold between concurrent units. Secrets (codes and tokens) are kept
//! as their SHA-256 only.
//!
//! Units are not isolated as database transactions are: a unit's writes are seen by the
//! others before it commits, and nobody waits. Undoing a write puts the record back as it
//! was only while it still holds what the unit wrote: a later write by another unit is
//! kept. So of two units racing on one record, the one that loses an *exactly once*
//! operation stays the loser even if the winner is then dropped (a database would have
//! made it wait, then let it win).
//!
//! Nothing is forgotten on its own: call [`MemoryStore::prune`] now and then.
//!
//! ```
//! use mas_oauth_core::memory::MemoryStore;
//! use mas_oauth_core::store::UserStore;
//! use mas_storage::SystemClock;
//!
//! # async fn demo() -> Result<(), mas_storage::StorageError> {
//! let store = MemoryStore::new();
//! let mut rng = rand::make_rng::<rand::rngs::StdRng>();
//! let alice = store.add_user(&mut rng, &SystemClock, "alice");
//! let mut unit = store.begin();
//! assert_eq!(unit.find_user(alice.id).await?, Some(alice));
//! unit.commit();
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_data_model::{
    AccessToken, AuthorizationCode, AuthorizationGrant, BrowserSession, Client, ClientKind,
    CompatAccessToken, CompatSession, DeviceCodeGrant, DeviceCodeGrantState, LastActivity,
    PersonalAccessToken, PersonalSession, PersonalSessionOwner, RefreshToken, Session, User,
};
use mas_storage::repository::{ClientParams, NewAuthorizationGrant, NewDeviceCodeGrant};
use mas_storage::{Clock, Rng, StorageError, new_id, secret_hash as digest};
use ulid::Ulid;

use crate::store::{
    ClientStore, CodeStore, DeviceGrantStore, MatrixStore, SessionStore, UserStore,
};

/// What undoes one write of a unit that is dropped without being committed.
type Undo = Box<dyn FnOnce(&mut State) + Send>;

/// The SHA-256 of a secret: what is kept, and searched for.
type Digest = Vec<u8>;

/// A device grant and when its device last polled.
#[derive(Clone, PartialEq)]
struct DeviceRow {
    grant: DeviceCodeGrant,
    last_polled_at: Option<DateTime<Utc>>,
}

/// Every record, by ID, and the secrets' digests pointing at them.
#[derive(Default)]
struct State {
    clients: HashMap<Ulid, Client>,
    assertions: HashMap<(Ulid, String), DateTime<Utc>>,
    grants: HashMap<Ulid, AuthorizationGrant>,
    codes: HashMap<Digest, Ulid>,
    device_grants: HashMap<Ulid, DeviceRow>,
    device_codes: HashMap<Digest, Ulid>,
    sessions: HashMap<Ulid, Session>,
    access_tokens: HashMap<Ulid, AccessToken>,
    access_digests: HashMap<Digest, Ulid>,
    refresh_tokens: HashMap<Ulid, RefreshToken>,
    refresh_digests: HashMap<Digest, Ulid>,
    users: HashMap<Ulid, User>,
    emails: HashMap<Ulid, String>,
    browser_sessions: HashMap<Ulid, BrowserSession>,
    authenticated_at: HashMap<Ulid, DateTime<Utc>>,
    personal_sessions: HashMap<Ulid, PersonalSession>,
    personal_tokens: HashMap<Ulid, PersonalAccessToken>,
    personal_digests: HashMap<Digest, Ulid>,
}

/// The shared state of an in-memory store; clones share it.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

/// One unit of work on a [`MemoryStore`]: its writes are seen at once by every unit,
/// and undone when it is dropped without [`MemoryUnit::commit`].
pub struct MemoryUnit {
    state: Arc<Mutex<State>>,
    undo: Vec<Undo>,
}

impl std::fmt::Debug for MemoryUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryUnit")
            .field("writes", &self.undo.len())
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every write finishes under the lock without panicking, so a poisoned lock still
    // guards whole records.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What answering a grant that was answered already (or never stored) fails with.
fn answered() -> StorageError {
    StorageError::InvalidData {
        table: "authorization grants",
        reason: "the grant was answered already".to_owned(),
    }
}

/// Writes `value` under `key` in the table `table` picks, and remembers how to undo it:
/// put back what was there, unless another unit has written the record since.
fn put<K, V>(
    state: &mut State,
    undo: &mut Vec<Undo>,
    table: fn(&mut State) -> &mut HashMap<K, V>,
    key: K,
    value: V,
) where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + PartialEq + Send + 'static,
{
    let written = value.clone();
    let previous = table(state).insert(key.clone(), value);
    undo.push(Box::new(move |state| {
        let table = table(state);
        if table.get(&key) != Some(&written) {
            return;
        }
        match previous {
            Some(previous) => table.insert(key, previous),
            None => table.remove(&key),
        };
    }));
}

/// Changes the record with this ID when `allowed` says its stored state may, under the
/// lock held, so that of two units only one gets the change: the changed record.
fn update<V>(
    state: &mut State,
    undo: &mut Vec<Undo>,
    table: fn(&mut State) -> &mut HashMap<Ulid, V>,
    id: Ulid,
    allowed: impl FnOnce(&V) -> bool,
    change: impl FnOnce(&mut V),
) -> Option<V>
where
    V: Clone + PartialEq + Send + 'static,
{
    let mut record = table(state).get(&id).filter(|r| allowed(r))?.clone();
    change(&mut record);
    put(state, undo, table, id, record.clone());
    Some(record)
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a unit of work.
    #[must_use]
    pub fn begin(&self) -> MemoryUnit {
        MemoryUnit {
            state: Arc::clone(&self.state),
            undo: Vec::new(),
        }
    }

    /// Adds a client the service configures itself (not one that registered).
    pub fn add_client(&self, client: Client) {
        lock(&self.state).clients.insert(client.id, client);
    }

    /// Adds a user named `username`.
    pub fn add_user(&self, rng: Rng<'_>, clock: &dyn Clock, username: &str) -> User {
        let now = clock.now();
        let user = User {
            id: new_id(rng, now),
            username: username.to_owned(),
            created_at: now,
            locked_at: None,
            deactivated_at: None,
            can_request_admin: false,
        };
        lock(&self.state).users.insert(user.id, user.clone());
        user
    }

    /// The user named `username`.
    #[must_use]
    pub fn find_user_by_username(&self, username: &str) -> Option<User> {
        let state = lock(&self.state);
        state
            .users
            .values()
            .find(|u| u.username == username)
            .cloned()
    }

    /// Locks (`true`) or unlocks a user: a locked user's sessions stop working.
    pub fn set_locked(&self, clock: &dyn Clock, user_id: Ulid, locked: bool) {
        if let Some(user) = lock(&self.state).users.get_mut(&user_id) {
            user.locked_at = locked.then(|| clock.now());
        }
    }

    /// Gives `user` the email address the `email` scope shows.
    pub fn set_email(&self, user: &User, email: &str) {
        lock(&self.state).emails.insert(user.id, email.to_owned());
    }

    /// Forgets what could no longer be used `kept_for` before `now`, as the service's
    /// cleanup job does with its retention: authorization grants past their approval
    /// window and code lifetime, expired device grants, ended sessions with their
    /// tokens, expired or revoked access tokens, spent refresh tokens (except one whose
    /// successor is live: presenting it again must still be recognised), sign-ins no open
    /// session started from, and spent client assertions. The retention is what keeps a
    /// replayed code or refresh token recognised (and its session ended) rather than
    /// unknown; it also keeps this clear of units still at work. Returns how many records
    /// went. Personal sessions and their tokens are kept.
    #[allow(clippy::must_use_candidate)] // Pruning is the point; the count is for logs.
    pub fn prune(&self, now: DateTime<Utc>, kept_for: Duration) -> usize {
        let cutoff = now - kept_for;
        let before_cutoff = |at: Option<DateTime<Utc>>| at.is_some_and(|at| at < cutoff);
        let mut state = lock(&self.state);
        let before = state.len();
        let grant_horizon =
            cutoff - crate::authorize::APPROVAL_WINDOW - crate::grants::CODE_LIFETIME;
        state.grants.retain(|_, g| g.created_at >= grant_horizon);
        state
            .device_grants
            .retain(|_, r| r.grant.expires_at >= cutoff);
        state.sessions.retain(|_, s| !before_cutoff(s.finished_at));
        state.assertions.retain(|_, until| *until > now);
        let State {
            sessions,
            access_tokens,
            refresh_tokens,
            browser_sessions,
            authenticated_at,
            device_grants,
            ..
        } = &mut *state;
        access_tokens.retain(|_, t| {
            sessions.contains_key(&t.session_id)
                && !before_cutoff(t.revoked_at)
                && !before_cutoff(t.expires_at)
        });
        let live: std::collections::HashSet<Ulid> = refresh_tokens
            .values()
            .filter(|t| t.is_valid())
            .map(|t| t.id)
            .collect();
        refresh_tokens.retain(|_, t| {
            let successor_live = t.next_token_id.is_some_and(|next| live.contains(&next));
            sessions.contains_key(&t.session_id)
                && !before_cutoff(t.revoked_at)
                && (successor_live || !before_cutoff(t.consumed_at))
        });
        // A sign-in is looked at while a session started from it is open (ID tokens'
        // `auth_time`) or a device grant it approved waits for its device.
        let used: std::collections::HashSet<Ulid> = sessions
            .values()
            .filter(|s| s.is_active())
            .filter_map(|s| s.browser_session_id)
            .chain(
                device_grants
                    .values()
                    .filter_map(|r| r.grant.browser_session_id),
            )
            .collect();
        browser_sessions.retain(|id, b| {
            let ended_long_ago = before_cutoff(b.finished_at);
            let idle = b.created_at < cutoff && !used.contains(id);
            !(ended_long_ago || idle)
        });
        authenticated_at.retain(|id, _| browser_sessions.contains_key(id));
        let State {
            grants,
            codes,
            device_grants,
            device_codes,
            access_tokens,
            access_digests,
            refresh_tokens,
            refresh_digests,
            ..
        } = &mut *state;
        codes.retain(|_, id| grants.contains_key(id));
        device_codes.retain(|_, id| device_grants.contains_key(id));
        access_digests.retain(|_, id| access_tokens.contains_key(id));
        refresh_digests.retain(|_, id| refresh_tokens.contains_key(id));
        before - state.len()
    }
}

impl State {
    /// How many records it holds (the digest indexes are not counted).
    fn len(&self) -> usize {
        self.clients.len()
            + self.assertions.len()
            + self.grants.len()
            + self.device_grants.len()
            + self.sessions.len()
            + self.access_tokens.len()
            + self.refresh_tokens.len()
            + self.users.len()
            + self.browser_sessions.len()
            + self.personal_sessions.len()
            + self.personal_tokens.len()
    }
}

/// Picks one table of the state.
type Table<K, V> = fn(&mut State) -> &mut HashMap<K, V>;

impl MemoryUnit {
    /// Keeps every write of this unit.
    pub fn commit(mut self) {
        self.undo.clear();
    }

    /// Records that `user` proved who they are just now, in a new browser session.
    pub fn sign_in(&mut self, rng: Rng<'_>, clock: &dyn Clock, user: &User) -> BrowserSession {
        let now = clock.now();
        let session = BrowserSession {
            id: new_id(rng, now),
            user_id: user.id,
            created_at: now,
            finished_at: None,
            user_agent: None,
            last_activity: LastActivity::default(),
        };
        let mut state = lock(&self.state);
        let undo = &mut self.undo;
        put(
            &mut state,
            undo,
            |s| &mut s.browser_sessions,
            session.id,
            session.clone(),
        );
        put(
            &mut state,
            undo,
            |s| &mut s.authenticated_at,
            session.id,
            now,
        );
        session
    }

    /// Writes `value` under `key`, undone with the unit.
    fn insert<K, V>(&mut self, table: Table<K, V>, key: K, value: V)
    where
        K: Eq + Hash + Clone + Send + 'static,
        V: Clone + PartialEq + Send + 'static,
    {
        put(&mut lock(&self.state), &mut self.undo, table, key, value);
    }

    /// Stores a new record and the digest of the secret it is found by.
    fn insert_secret<V>(
        &mut self,
        table: Table<Ulid, V>,
        index: Table<Digest, Ulid>,
        secret: &str,
        id: Ulid,
        value: V,
    ) where
        V: Clone + PartialEq + Send + 'static,
    {
        // One lock for both, the record first: a prune never sees one without the other.
        let mut state = lock(&self.state);
        put(&mut state, &mut self.undo, table, id, value);
        put(&mut state, &mut self.undo, index, digest(secret), id);
    }

    /// The record with this ID.
    fn get<V: Clone>(&self, table: Table<Ulid, V>, id: Ulid) -> Option<V> {
        table(&mut lock(&self.state)).get(&id).cloned()
    }

    /// The record whose secret this is.
    fn get_by_secret<V: Clone>(
        &self,
        table: Table<Ulid, V>,
        index: Table<Digest, Ulid>,
        secret: &str,
    ) -> Option<V> {
        let mut state = lock(&self.state);
        let id = *index(&mut state).get(&digest(secret))?;
        table(&mut state).get(&id).cloned()
    }

    /// Changes the stored record with this ID when `allowed` says its stored state may,
    /// under the lock, so that of two units only one gets the change: the changed record.
    fn update<V>(
        &mut self,
        table: Table<Ulid, V>,
        id: Ulid,
        allowed: impl FnOnce(&V) -> bool,
        change: impl FnOnce(&mut V),
    ) -> Option<V>
    where
        V: Clone + PartialEq + Send + 'static,
    {
        update(
            &mut lock(&self.state),
            &mut self.undo,
            table,
            id,
            allowed,
            change,
        )
    }

    /// As [`MemoryUnit::update`] for a change made once (a timestamp set the first
    /// time): the record as stored after, changed by this call or before it; `record`
    /// itself when the store does not have it.
    fn update_or_stored<V>(
        &mut self,
        table: Table<Ulid, V>,
        id: Ulid,
        record: V,
        allowed: impl FnOnce(&V) -> bool,
        change: impl FnOnce(&mut V),
    ) -> V
    where
        V: Clone + PartialEq + Send + 'static,
    {
        self.update(table, id, allowed, change)
            .or_else(|| self.get(table, id))
            .unwrap_or(record)
    }

    /// Moves a device grant on, when `allowed` says its stored state may: exactly once.
    fn advance_device_grant(
        &mut self,
        id: Ulid,
        allowed: impl FnOnce(&DeviceRow) -> bool,
        change: impl FnOnce(&mut DeviceRow),
    ) -> Option<DeviceCodeGrant> {
        let row = self.update(|s| &mut s.device_grants, id, allowed, change)?;
        Some(row.grant)
    }

    /// Replaces a refresh token by `next`, revoking it too when `revoke`: exactly once.
    fn replace_refresh_token(
        &mut self,
        clock: &dyn Clock,
        token: &RefreshToken,
        next: &RefreshToken,
        revoke: bool,
    ) -> Option<RefreshToken> {
        let now = clock.now();
        self.update(
            |s| &mut s.refresh_tokens,
            token.id,
            RefreshToken::is_valid,
            |t| {
                t.consumed_at = Some(now);
                t.next_token_id = Some(next.id);
                if revoke {
                    t.revoked_at = Some(now);
                }
            },
        )
    }
}

impl Drop for MemoryUnit {
    fn drop(&mut self) {
        if self.undo.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        for undo in self.undo.drain(..).rev() {
            undo(&mut state);
        }
    }
}

#[async_trait]
impl ClientStore for MemoryUnit {
    async fn find_client(&mut self, id: Ulid) -> Result<Option<Client>, StorageError> {
        Ok(self.get(|s| &mut s.clients, id))
    }

    async fn register_client(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        params: ClientParams,
    ) -> Result<Client, StorageError> {
        let now = clock.now();
        let client = params.into_client(new_id(rng, now), ClientKind::Dynamic, now);
        self.insert(|s| &mut s.clients, client.id, client.clone());
        Ok(client)
    }

    async fn record_client_assertion(
        &mut self,
        _rng: Rng<'_>,
        clock: &dyn Clock,
        client_id: Ulid,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        // Kept even when the unit is undone: the record must outlive the request.
        let now = clock.now();
        let mut state = lock(&self.state);
        state.assertions.retain(|_, until| *until > now);
        let key = (client_id, jti.to_owned());
        if state.assertions.contains_key(&key) {
            return Ok(false);
        }
        state.assertions.insert(key, expires_at);
        Ok(true)
    }
}

#[async_trait]
impl CodeStore for MemoryUnit {
    async fn add_grant(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        grant: NewAuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError> {
        let now = clock.now();
        let grant = AuthorizationGrant {
            id: new_id(rng, now),
            client_id: grant.client_id,
            redirect_uri: grant.redirect_uri,
            scope: grant.scope,
            state: grant.state,
            nonce: grant.nonce,
            response_mode: grant.response_mode,
            response_type_id_token: grant.response_type_id_token,
            code: Some(AuthorizationCode { pkce: grant.pkce }),
            max_age: grant.max_age,
            login_hint: grant.login_hint,
            prompt: grant.prompt,
            created_at: now,
            fulfilled_at: None,
            exchanged_at: None,
            cancelled_at: None,
            session_id: None,
        };
        self.insert(|s| &mut s.grants, grant.id, grant.clone());
        Ok(grant)
    }

    async fn find_grant(&mut self, id: Ulid) -> Result<Option<AuthorizationGrant>, StorageError> {
        Ok(self.get(|s| &mut s.grants, id))
    }

    async fn find_grant_by_code(
        &mut self,
        code: &str,
    ) -> Result<Option<AuthorizationGrant>, StorageError> {
        Ok(self.get_by_secret(|s| &mut s.grants, |s| &mut s.codes, code))
    }

    async fn fulfill_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
        session: &Session,
        code: &str,
    ) -> Result<AuthorizationGrant, StorageError> {
        let now = clock.now();
        let fulfilled = self
            .update(
                |s| &mut s.grants,
                grant.id,
                awaits_answer,
                |g| {
                    g.fulfilled_at = Some(now);
                    g.session_id = Some(session.id);
                },
            )
            .ok_or_else(answered)?;
        self.insert(|s| &mut s.codes, digest(code), fulfilled.id);
        Ok(fulfilled)
    }

    async fn exchange_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
    ) -> Result<Option<AuthorizationGrant>, StorageError> {
        let now = clock.now();
        Ok(self.update(
            |s| &mut s.grants,
            grant.id,
            |g| g.exchanged_at.is_none(),
            |g| g.exchanged_at = Some(now),
        ))
    }

    async fn cancel_grant(
        &mut self,
        clock: &dyn Clock,
        grant: AuthorizationGrant,
    ) -> Result<AuthorizationGrant, StorageError> {
        let now = clock.now();
        self.update(
            |s| &mut s.grants,
            grant.id,
            awaits_answer,
            |g| {
                g.cancelled_at = Some(now);
            },
        )
        .ok_or_else(answered)
    }
}

/// Whether a stored grant was neither consented to nor refused yet.
fn awaits_answer(grant: &AuthorizationGrant) -> bool {
    grant.fulfilled_at.is_none() && grant.cancelled_at.is_none()
}

#[async_trait]
impl DeviceGrantStore for MemoryUnit {
    async fn add_device_grant(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        grant: NewDeviceCodeGrant,
    ) -> Result<DeviceCodeGrant, StorageError> {
        let now = clock.now();
        let row = DeviceRow {
            grant: DeviceCodeGrant {
                id: new_id(rng, now),
                client_id: grant.client_id,
                scope: grant.scope,
                user_code: grant.user_code,
                created_at: now,
                expires_at: now + grant.expires_in,
                state: DeviceCodeGrantState::Pending,
                browser_session_id: None,
                session_id: None,
                ip_address: grant.ip_address,
                user_agent: grant.user_agent,
            },
            last_polled_at: None,
        };
        // The check and the writes under one lock: a user code names one grant.
        let mut state = lock(&self.state);
        let taken = state
            .device_grants
            .values()
            .any(|r| r.grant.user_code == row.grant.user_code);
        if taken {
            return Err(StorageError::Conflict("the user code is taken".to_owned()));
        }
        let created = row.grant.clone();
        let undo = &mut self.undo;
        put(&mut state, undo, |s| &mut s.device_grants, created.id, row);
        let code = digest(&grant.device_code);
        put(&mut state, undo, |s| &mut s.device_codes, code, created.id);
        Ok(created)
    }

    async fn find_device_grant(
        &mut self,
        device_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        let row = self.get_by_secret(
            |s| &mut s.device_grants,
            |s| &mut s.device_codes,
            device_code,
        );
        Ok(row.map(|r| r.grant))
    }

    async fn find_device_grant_by_id(
        &mut self,
        id: Ulid,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        Ok(self.get(|s| &mut s.device_grants, id).map(|r| r.grant))
    }

    async fn find_device_grant_by_user_code(
        &mut self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        let state = lock(&self.state);
        let row = state
            .device_grants
            .values()
            .find(|r| r.grant.user_code == user_code);
        Ok(row.map(|r| r.grant.clone()))
    }

    async fn answer_device_grant(
        &mut self,
        _clock: &dyn Clock,
        grant: DeviceCodeGrant,
        browser_session_id: Ulid,
        approved: bool,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        Ok(self.advance_device_grant(
            grant.id,
            |r| r.grant.state == DeviceCodeGrantState::Pending,
            |r| {
                r.grant.browser_session_id = Some(browser_session_id);
                r.grant.state = if approved {
                    DeviceCodeGrantState::Fulfilled
                } else {
                    DeviceCodeGrantState::Rejected
                };
            },
        ))
    }

    async fn record_device_poll(
        &mut self,
        clock: &dyn Clock,
        grant: &DeviceCodeGrant,
        interval: Duration,
    ) -> Result<bool, StorageError> {
        let now = clock.now();
        let polled = self.advance_device_grant(
            grant.id,
            |r| r.last_polled_at.is_none_or(|at| at <= now - interval),
            |r| r.last_polled_at = Some(now),
        );
        Ok(polled.is_some())
    }

    async fn exchange_device_grant(
        &mut self,
        _clock: &dyn Clock,
        grant: DeviceCodeGrant,
        session: &Session,
    ) -> Result<Option<DeviceCodeGrant>, StorageError> {
        Ok(self.advance_device_grant(
            grant.id,
            |r| r.grant.state == DeviceCodeGrantState::Fulfilled,
            |r| {
                r.grant.state = DeviceCodeGrantState::Exchanged;
                r.grant.session_id = Some(session.id);
            },
        ))
    }
}

#[async_trait]
impl SessionStore for MemoryUnit {
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
        let now = clock.now();
        let session = Session {
            id: new_id(rng, now),
            user_id,
            browser_session_id,
            client_id,
            scope: scope.to_owned(),
            created_at: now,
            finished_at: None,
            user_agent,
            last_activity: LastActivity::default(),
            human_name: None,
        };
        self.insert(|s| &mut s.sessions, session.id, session.clone());
        Ok(session)
    }

    async fn find_session(&mut self, id: Ulid) -> Result<Option<Session>, StorageError> {
        Ok(self.get(|s| &mut s.sessions, id))
    }

    async fn open_sessions(
        &mut self,
        user_id: Ulid,
        client_id: Ulid,
        limit: usize,
    ) -> Result<Vec<Session>, StorageError> {
        let state = lock(&self.state);
        let mut open: Vec<Session> = state
            .sessions
            .values()
            .filter(|s| s.user_id == Some(user_id) && s.client_id == client_id && s.is_active())
            .cloned()
            .collect();
        open.sort_by_key(|s| std::cmp::Reverse(s.id));
        open.truncate(limit);
        Ok(open)
    }

    async fn end_session(
        &mut self,
        clock: &dyn Clock,
        session: Session,
    ) -> Result<Session, StorageError> {
        let now = clock.now();
        // One lock for the tokens and the session: nothing is issued in between.
        let mut state = lock(&self.state);
        let undo = &mut self.undo;
        let access: Vec<Ulid> = state
            .access_tokens
            .values()
            .filter(|t| t.session_id == session.id && t.revoked_at.is_none())
            .map(|t| t.id)
            .collect();
        for id in access {
            let unrevoked = |t: &AccessToken| t.revoked_at.is_none();
            let revoke = |t: &mut AccessToken| t.revoked_at = Some(now);
            update(
                &mut state,
                undo,
                |s| &mut s.access_tokens,
                id,
                unrevoked,
                revoke,
            );
        }
        let refresh: Vec<Ulid> = state
            .refresh_tokens
            .values()
            .filter(|t| t.session_id == session.id && t.revoked_at.is_none())
            .map(|t| t.id)
            .collect();
        for id in refresh {
            let unrevoked = |t: &RefreshToken| t.revoked_at.is_none();
            let revoke = |t: &mut RefreshToken| t.revoked_at = Some(now);
            update(
                &mut state,
                undo,
                |s| &mut s.refresh_tokens,
                id,
                unrevoked,
                revoke,
            );
        }
        let finish = |s: &mut Session| s.finished_at = Some(now);
        let sessions: Table<Ulid, Session> = |s| &mut s.sessions;
        if let Some(ended) = update(
            &mut state,
            undo,
            sessions,
            session.id,
            Session::is_active,
            finish,
        ) {
            return Ok(ended);
        }
        Ok(match state.sessions.get(&session.id) {
            Some(stored) => stored.clone(),
            None => Session {
                finished_at: session.finished_at.or(Some(now)),
                ..session
            },
        })
    }

    async fn add_access_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<AccessToken, StorageError> {
        let now = clock.now();
        let access = AccessToken {
            id: new_id(rng, now),
            session_id: session.id,
            created_at: now,
            expires_at: ttl.map(|ttl| now + ttl),
            revoked_at: None,
            first_used_at: None,
        };
        self.insert_secret(
            |s| &mut s.access_tokens,
            |s| &mut s.access_digests,
            token,
            access.id,
            access.clone(),
        );
        Ok(access)
    }

    async fn find_access_token(&mut self, id: Ulid) -> Result<Option<AccessToken>, StorageError> {
        Ok(self.get(|s| &mut s.access_tokens, id))
    }

    async fn find_access_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<AccessToken>, StorageError> {
        Ok(self.get_by_secret(|s| &mut s.access_tokens, |s| &mut s.access_digests, token))
    }

    async fn mark_access_token_used(
        &mut self,
        clock: &dyn Clock,
        token: AccessToken,
    ) -> Result<AccessToken, StorageError> {
        let now = clock.now();
        let unused = |t: &AccessToken| t.first_used_at.is_none();
        let used = |t: &mut AccessToken| t.first_used_at = Some(now);
        Ok(self.update_or_stored(|s| &mut s.access_tokens, token.id, token, unused, used))
    }

    async fn revoke_access_token(
        &mut self,
        clock: &dyn Clock,
        token: AccessToken,
    ) -> Result<AccessToken, StorageError> {
        let now = clock.now();
        let unrevoked = |t: &AccessToken| t.revoked_at.is_none();
        let revoke = |t: &mut AccessToken| t.revoked_at = Some(now);
        Ok(self.update_or_stored(|s| &mut s.access_tokens, token.id, token, unrevoked, revoke))
    }

    async fn add_refresh_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &Session,
        access_token: &AccessToken,
        token: &str,
    ) -> Result<RefreshToken, StorageError> {
        let now = clock.now();
        let refresh = RefreshToken {
            id: new_id(rng, now),
            session_id: session.id,
            access_token_id: Some(access_token.id),
            created_at: now,
            consumed_at: None,
            revoked_at: None,
            next_token_id: None,
        };
        self.insert_secret(
            |s| &mut s.refresh_tokens,
            |s| &mut s.refresh_digests,
            token,
            refresh.id,
            refresh.clone(),
        );
        Ok(refresh)
    }

    async fn find_refresh_token(&mut self, id: Ulid) -> Result<Option<RefreshToken>, StorageError> {
        Ok(self.get(|s| &mut s.refresh_tokens, id))
    }

    async fn find_refresh_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<RefreshToken>, StorageError> {
        Ok(self.get_by_secret(|s| &mut s.refresh_tokens, |s| &mut s.refresh_digests, token))
    }

    async fn consume_refresh_token(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError> {
        Ok(self.replace_refresh_token(clock, &token, next, false))
    }

    async fn supersede_refresh_token(
        &mut self,
        clock: &dyn Clock,
        token: RefreshToken,
        next: &RefreshToken,
    ) -> Result<Option<RefreshToken>, StorageError> {
        Ok(self.replace_refresh_token(clock, &token, next, true))
    }
}

#[async_trait]
impl UserStore for MemoryUnit {
    async fn find_user(&mut self, id: Ulid) -> Result<Option<User>, StorageError> {
        Ok(self.get(|s| &mut s.users, id))
    }

    async fn find_browser_session(
        &mut self,
        id: Ulid,
    ) -> Result<Option<BrowserSession>, StorageError> {
        Ok(self.get(|s| &mut s.browser_sessions, id))
    }

    async fn last_authentication_at(
        &mut self,
        session: &BrowserSession,
    ) -> Result<Option<DateTime<Utc>>, StorageError> {
        Ok(self.get(|s| &mut s.authenticated_at, session.id))
    }

    async fn primary_email(&mut self, user: &User) -> Result<Option<String>, StorageError> {
        Ok(self.get(|s| &mut s.emails, user.id))
    }
}

#[async_trait]
impl MatrixStore for MemoryUnit {
    async fn find_compat_token_with_session(
        &mut self,
        _token: &str,
    ) -> Result<Option<(CompatAccessToken, CompatSession, User)>, StorageError> {
        // Compatibility sessions come from the service's `/login`, which the core leaves
        // to the service: this store has none.
        Ok(None)
    }

    async fn device_held_elsewhere(
        &mut self,
        user_id: Ulid,
        scope: &str,
        client_id: Ulid,
    ) -> Result<Option<String>, StorageError> {
        let Some(device) = mas_data_model::device_of(scope) else {
            return Ok(None);
        };
        let state = lock(&self.state);
        let held = state.sessions.values().any(|s| {
            s.user_id == Some(user_id)
                && s.client_id != client_id
                && s.is_active()
                && s.scope
                    .split(' ')
                    .filter_map(mas_data_model::device_of)
                    .any(|d| d == device)
        });
        Ok(held.then_some(device))
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
        let now = clock.now();
        let session = PersonalSession {
            id: new_id(rng, now),
            owner,
            actor_user_id: actor.id,
            human_name: name.to_owned(),
            scope: scope.to_owned(),
            created_at: now,
            revoked_at: None,
            last_activity: LastActivity::default(),
        };
        self.insert(|s| &mut s.personal_sessions, session.id, session.clone());
        Ok(session)
    }

    async fn find_personal_session(
        &mut self,
        id: Ulid,
    ) -> Result<Option<PersonalSession>, StorageError> {
        Ok(self.get(|s| &mut s.personal_sessions, id))
    }

    async fn add_personal_token(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        session: &PersonalSession,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<PersonalAccessToken, StorageError> {
        let now = clock.now();
        let access = PersonalAccessToken {
            id: new_id(rng, now),
            session_id: session.id,
            created_at: now,
            expires_at: ttl.map(|ttl| now + ttl),
            revoked_at: None,
        };
        self.insert_secret(
            |s| &mut s.personal_tokens,
            |s| &mut s.personal_digests,
            token,
            access.id,
            access.clone(),
        );
        Ok(access)
    }

    async fn find_personal_token_by_value(
        &mut self,
        token: &str,
    ) -> Result<Option<PersonalAccessToken>, StorageError> {
        Ok(self.get_by_secret(
            |s| &mut s.personal_tokens,
            |s| &mut s.personal_digests,
            token,
        ))
    }
}

#[cfg(test)]
mod tests {
    use mas_storage::SystemClock;

    use super::*;

    fn rng() -> rand::rngs::StdRng {
        rand::make_rng()
    }

    /// A session of `client` for `user`, with an access and a refresh token, committed.
    async fn session_with_tokens(
        store: &MemoryStore,
        user: &User,
    ) -> (Session, AccessToken, RefreshToken) {
        let mut unit = store.begin();
        let clock = &SystemClock;
        let session = unit
            .add_session(
                &mut rng(),
                clock,
                Ulid::new(),
                Some(user.id),
                None,
                "openid",
                None,
            )
            .await
            .unwrap();
        let access = unit
            .add_access_token(&mut rng(), clock, &session, "mat_one", None)
            .await
            .unwrap();
        let refresh = unit
            .add_refresh_token(&mut rng(), clock, &session, &access, "mar_one")
            .await
            .unwrap();
        unit.commit();
        (session, access, refresh)
    }

    #[tokio::test]
    async fn a_unit_dropped_without_commit_leaves_nothing_behind() {
        let store = MemoryStore::new();
        let alice = store.add_user(&mut rng(), &SystemClock, "alice");
        let (session, access, refresh) = session_with_tokens(&store, &alice).await;

        let mut unit = store.begin();
        let ended = unit
            .end_session(&SystemClock, session.clone())
            .await
            .unwrap();
        assert!(!ended.is_active());
        let extra = unit
            .add_access_token(&mut rng(), &SystemClock, &session, "mat_two", None)
            .await
            .unwrap();
        drop(unit);

        let mut unit = store.begin();
        let found = unit.find_session(session.id).await.unwrap().unwrap();
        assert!(found.is_active(), "the end was undone");
        let token = unit.find_access_token_by_value("mat_one").await.unwrap();
        assert_eq!(token, Some(access));
        let token = unit.find_refresh_token_by_value("mar_one").await.unwrap();
        assert_eq!(token, Some(refresh));
        assert_eq!(unit.find_access_token(extra.id).await.unwrap(), None);
        assert_eq!(
            unit.find_access_token_by_value("mat_two").await.unwrap(),
            None
        );

        // The same, committed, stays.
        unit.end_session(&SystemClock, found).await.unwrap();
        unit.commit();
        let mut unit = store.begin();
        let found = unit.find_session(session.id).await.unwrap().unwrap();
        assert!(!found.is_active());
        let token = unit
            .find_access_token_by_value("mat_one")
            .await
            .unwrap()
            .unwrap();
        assert!(token.revoked_at.is_some(), "its tokens went with it");
    }

    #[tokio::test]
    async fn undoing_a_unit_keeps_what_another_unit_wrote_since() {
        let store = MemoryStore::new();
        let clock = &SystemClock;
        let alice = store.add_user(&mut rng(), clock, "alice");
        let (session, access, _) = session_with_tokens(&store, &alice).await;

        // A marks the token used; B then ends the session and commits; A is dropped.
        let mut first = store.begin();
        first.mark_access_token_used(clock, access).await.unwrap();
        let mut second = store.begin();
        second.end_session(clock, session.clone()).await.unwrap();
        second.commit();
        drop(first);

        let mut unit = store.begin();
        let token = unit
            .find_access_token_by_value("mat_one")
            .await
            .unwrap()
            .unwrap();
        assert!(token.revoked_at.is_some(), "B's revocation stays");
        let found = unit.find_session(session.id).await.unwrap().unwrap();
        assert!(!found.is_active());
    }

    #[tokio::test]
    async fn prune_forgets_what_can_no_longer_be_used() {
        let store = MemoryStore::new();
        let clock = mas_storage::MockClock::default();
        let alice = store.add_user(&mut rng(), &clock, "alice");
        let (ended, ..) = session_with_tokens(&store, &alice).await;
        let mut unit = store.begin();
        unit.end_session(&clock, ended).await.unwrap();
        let (idle, used) = (
            unit.sign_in(&mut rng(), &clock, &alice),
            unit.sign_in(&mut rng(), &clock, &alice),
        );
        let open = unit
            .add_session(
                &mut rng(),
                &clock,
                Ulid::new(),
                Some(alice.id),
                Some(used.id),
                "openid",
                None,
            )
            .await
            .unwrap();
        unit.add_access_token(&mut rng(), &clock, &open, "mat_live", None)
            .await
            .unwrap();
        unit.commit();

        let day = Duration::days(1);
        assert_eq!(store.prune(clock.now(), day), 0, "kept for a day");
        clock.advance(day + Duration::seconds(1));
        assert_eq!(
            store.prune(clock.now(), day),
            4,
            "the ended session, its two tokens, and the sign-in nothing uses"
        );
        let mut unit = store.begin();
        assert_eq!(
            unit.find_access_token_by_value("mat_one").await.unwrap(),
            None
        );
        let live = unit.find_access_token_by_value("mat_live").await.unwrap();
        assert!(live.is_some());
        assert!(unit.find_session(open.id).await.unwrap().is_some());
        assert_eq!(unit.find_browser_session(idle.id).await.unwrap(), None);
        let kept = unit.find_browser_session(used.id).await.unwrap();
        assert_eq!(kept, Some(used.clone()));
        assert!(unit.last_authentication_at(&used).await.unwrap().is_some());
        assert_eq!(store.prune(clock.now(), day), 0);
    }

    #[tokio::test]
    async fn exactly_once_holds_between_units() {
        let store = MemoryStore::new();
        let clock = &SystemClock;
        let alice = store.add_user(&mut rng(), clock, "alice");
        let (session, access, refresh) = session_with_tokens(&store, &alice).await;

        // Two refreshes of one token: the first to consume it wins.
        let (mut first, mut second) = (store.begin(), store.begin());
        let next = first
            .add_refresh_token(&mut rng(), clock, &session, &access, "mar_two")
            .await
            .unwrap();
        let won = first.consume_refresh_token(clock, refresh.clone(), &next);
        assert!(won.await.unwrap().is_some());
        let lost = second.consume_refresh_token(clock, refresh.clone(), &next);
        assert!(lost.await.unwrap().is_none());
        let lost = second.supersede_refresh_token(clock, refresh, &next);
        assert!(lost.await.unwrap().is_none());
        first.commit();
        drop(second);

        // Two exchanges of one code.
        let mut unit = store.begin();
        let grant = NewAuthorizationGrant {
            client_id: session.client_id,
            redirect_uri: url::Url::parse("https://app.example/cb").unwrap(),
            scope: "openid".to_owned(),
            state: None,
            nonce: None,
            response_mode: mas_data_model::ResponseMode::Query,
            response_type_id_token: false,
            pkce: None,
            max_age: None,
            login_hint: None,
            prompt: None,
        };
        let grant = unit.add_grant(&mut rng(), clock, grant).await.unwrap();
        let grant = unit.fulfill_grant(clock, grant, &session, "the code").await;
        let grant = grant.unwrap();
        let again = unit
            .fulfill_grant(clock, grant.clone(), &session, "another")
            .await;
        assert!(
            matches!(again, Err(StorageError::InvalidData { .. })),
            "a grant is answered once"
        );
        let refused = unit.cancel_grant(clock, grant.clone()).await;
        assert!(
            matches!(refused, Err(StorageError::InvalidData { .. })),
            "a refusal after the consent changes nothing"
        );
        unit.commit();
        let (mut first, mut second) = (store.begin(), store.begin());
        let found = first.find_grant_by_code("the code").await.unwrap().unwrap();
        assert_eq!(found.id, grant.id);
        assert!(
            first
                .exchange_grant(clock, found.clone())
                .await
                .unwrap()
                .is_some()
        );
        assert!(second.exchange_grant(clock, found).await.unwrap().is_none());
        assert_eq!(second.find_grant_by_code("another").await.unwrap(), None);
    }

    #[tokio::test]
    async fn device_grants_poll_at_the_interval_and_are_exchanged_once() {
        let store = MemoryStore::new();
        let clock = mas_storage::MockClock::default();
        let alice = store.add_user(&mut rng(), &clock, "alice");
        let mut unit = store.begin();
        let browser = unit.sign_in(&mut rng(), &clock, &alice);
        let new = NewDeviceCodeGrant {
            client_id: Ulid::new(),
            scope: "openid".to_owned(),
            device_code: "device".to_owned(),
            user_code: "ABCD-EFGH".to_owned(),
            expires_in: Duration::minutes(10),
            ip_address: None,
            user_agent: None,
        };
        let grant = unit.add_device_grant(&mut rng(), &clock, new.clone()).await;
        let grant = grant.unwrap();
        let taken = unit.add_device_grant(&mut rng(), &clock, new).await;
        assert!(matches!(taken, Err(StorageError::Conflict(_))));
        let gap = Duration::seconds(4);
        assert!(unit.record_device_poll(&clock, &grant, gap).await.unwrap());
        assert!(!unit.record_device_poll(&clock, &grant, gap).await.unwrap());
        clock.advance(Duration::seconds(5));
        assert!(unit.record_device_poll(&clock, &grant, gap).await.unwrap());

        let found = unit.find_device_grant_by_user_code("ABCD-EFGH").await;
        let found = found.unwrap().unwrap();
        let answered = unit.answer_device_grant(&clock, found.clone(), browser.id, true);
        assert!(answered.await.unwrap().is_some());
        let twice = unit.answer_device_grant(&clock, found, browser.id, false);
        assert!(twice.await.unwrap().is_none(), "answered once");
        let session = unit
            .add_session(
                &mut rng(),
                &clock,
                grant.client_id,
                Some(alice.id),
                None,
                "openid",
                None,
            )
            .await
            .unwrap();
        let found = unit.find_device_grant("device").await.unwrap().unwrap();
        assert_eq!(found.state, DeviceCodeGrantState::Fulfilled);
        let first = unit.exchange_device_grant(&clock, found.clone(), &session);
        assert!(first.await.unwrap().is_some());
        let second = unit.exchange_device_grant(&clock, found, &session);
        assert!(second.await.unwrap().is_none());
    }
}
