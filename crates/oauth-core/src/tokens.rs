//! Issuing tokens and answering for them: the token response, introspection (RFC 7662)
//! and revocation (RFC 7009).

use chrono::{DateTime, Utc};
use mas_data_model::{Client, Session, TokenType};
use mas_storage::{Clock, Rng};
use serde::Serialize;
use ulid::Ulid;

use crate::error::{ErrorCode, OAuthError};
use crate::store::{MatrixStore, SessionStore, UserStore};

/// A fresh token of `kind`: 30 random letters and digits with the prefix and checksum.
pub fn generate(rng: Rng<'_>, kind: TokenType) -> String {
    kind.format(&random_string(rng, 30))
}

/// `len` random ASCII letters and digits (codes, the random part of tokens).
pub fn random_string(rng: Rng<'_>, len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| {
            // Rejection sampling keeps every character equally likely.
            loop {
                let byte = (rng.next_u32() & 0xff) as u8;
                if usize::from(byte) < 62 * 4 {
                    return char::from(ALPHABET[usize::from(byte) % 62]);
                }
            }
        })
        .collect()
}

/// The token endpoint's success response.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
    /// The refresh token, when one is issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope.
    pub scope: String,
    /// The ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The session the tokens belong to: for the caller, never sent.
    #[serde(skip)]
    pub session_id: Option<ulid::Ulid>,
}

/// Whether a scope token is made of the characters RFC 6749 allows (NQCHAR).
fn valid_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c))
}

/// The Matrix device scope prefixes, stable and unstable.
const DEVICE_SCOPES: [&str; 2] = [
    "urn:matrix:client:device:",
    "urn:matrix:org.matrix.msc2967.client:device:",
];

/// Whether `token` is a scope this provider grants: OpenID Connect's, Matrix API and
/// device scopes (stable and MSC2967 spellings), and the admin scopes.
#[must_use]
pub fn known_scope(token: &str) -> bool {
    if let Some(device) = DEVICE_SCOPES.iter().find_map(|p| token.strip_prefix(p)) {
        return valid_device_id(device);
    }
    matches!(
        token,
        "openid"
            | "email"
            | "profile"
            | "urn:matrix:client:api:*"
            | "urn:matrix:org.matrix.msc2967.client:api:*"
            | "urn:synapse:admin:*"
            | "urn:mas:admin"
            | "urn:mas:graphql:*"
    )
}

/// Whether a device ID is acceptable in a device scope: 1 to 255 unreserved characters.
#[must_use]
pub fn valid_device_id(device: &str) -> bool {
    (1..=255).contains(&device.len())
        && device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

pub use mas_data_model::is_admin_scope;

/// Splits and checks a `scope` parameter.
///
/// # Errors
/// `invalid_scope` for characters outside NQCHAR.
pub fn parse_scope(scope: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let mut tokens = Vec::new();
    for token in scope
        .unwrap_or_default()
        .split(' ')
        .filter(|t| !t.is_empty())
    {
        if !valid_scope_token(token) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "the scope holds characters OAuth does not allow",
            ));
        }
        if !known_scope(token) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("unknown scope `{token}`"),
            ));
        }
        if !tokens.iter().any(|t| t == token) {
            tokens.push(token.to_owned());
        }
    }
    Ok(tokens)
}

/// The checked scope of a personal access token, space-separated: known scopes, at
/// least one, and no device (the tokens stand for the user, on no device).
///
/// # Errors
/// `invalid_scope`, saying why.
pub fn personal_scope(scope: &str) -> Result<String, OAuthError> {
    let tokens = parse_scope(Some(scope))?;
    if tokens.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "give at least one scope",
        ));
    }
    if let Some(device) = tokens.iter().find(|t| t.contains(":device:")) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("`{device}`: personal access tokens carry no device"),
        ));
    }
    Ok(tokens.join(" "))
}

/// A personal access token issued now: its record and its value (shown once).
#[derive(Debug)]
pub struct IssuedPersonalToken {
    /// The stored token (hashed).
    pub access: mas_data_model::PersonalAccessToken,
    /// The token itself, `mpt_...`.
    pub token: String,
}

/// Issues a new token for a personal session, good for `ttl` (or for ever).
///
/// # Errors
/// Whatever the storage says.
pub async fn issue_personal_token<S: MatrixStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    session: &mas_data_model::PersonalSession,
    ttl: Option<chrono::Duration>,
) -> Result<IssuedPersonalToken, mas_storage::StorageError> {
    let token = generate(rng, TokenType::PersonalAccessToken);
    let access = repo
        .add_personal_token(rng, clock, session, &token, ttl)
        .await?;
    Ok(IssuedPersonalToken { access, token })
}

/// Why a personal session cannot be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonalRefusal {
    /// The user it would act as is locked or deactivated.
    ActorInactive,
    /// The scope holds this admin scope, and the user may not request admin rights.
    AdminNotAllowed(String),
}

/// Starts a personal session acting as `actor` (owned by `owner`), with its first token,
/// good for `ttl` (or for ever): refused for a locked or deactivated actor, and for an
/// admin scope the actor may not request (`policy`). `scope` is one that
/// [`personal_scope`] accepted.
///
/// # Errors
/// Whatever the storage says.
#[allow(clippy::too_many_arguments)] // The session's parts, and the usual clock and rng.
pub async fn start_personal_session<S: MatrixStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    owner: mas_data_model::PersonalSessionOwner,
    actor: &mas_data_model::User,
    name: &str,
    scope: &str,
    ttl: Option<chrono::Duration>,
) -> Result<
    Result<(mas_data_model::PersonalSession, IssuedPersonalToken), PersonalRefusal>,
    mas_storage::StorageError,
> {
    if !actor.is_valid() {
        return Ok(Err(PersonalRefusal::ActorInactive));
    }
    if let Some(admin) = scope.split(' ').find(|s| is_admin_scope(s))
        && !policy.may_request_admin(actor)
    {
        return Ok(Err(PersonalRefusal::AdminNotAllowed(admin.to_owned())));
    }
    let session = repo
        .add_personal_session(rng, clock, owner, actor, name, scope)
        .await?;
    let issued = issue_personal_token(repo, rng, clock, &session, ttl).await?;
    Ok(Ok((session, issued)))
}

/// The `client_credentials` grant: a session of the client itself, and an access token.
///
/// # Errors
/// `unauthorized_client` when the client may not use the grant (public clients never may),
/// `invalid_scope` for scopes that need a user, and for `urn:mas:admin` unless
/// `may_administer` (the client is in `policy.data.admin_clients`).
pub async fn client_credentials<S: SessionStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    client: &Client,
    scope: Option<&str>,
    ttl: chrono::Duration,
    may_administer: bool,
) -> Result<TokenResponse, OAuthError> {
    if client.auth_method == mas_data_model::ClientAuthMethod::None
        || !client.grant_types.iter().any(|g| g == "client_credentials")
    {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the client_credentials grant",
        ));
    }
    let scopes = parse_scope(scope)?;
    // Only the clients the configuration names may administer this service; no client
    // acting alone may hold the homeserver's admin scope, which needs a user.
    if let Some(admin) = scopes
        .iter()
        .find(|s| is_admin_scope(s) && !(may_administer && *s == "urn:mas:admin"))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("`{admin}` cannot be granted to this client acting alone"),
        ));
    }
    if let Some(user_scope) = scopes.iter().find(|s| {
        *s == "openid"
            || s.starts_with("urn:matrix:client:")
            || s.starts_with("urn:matrix:org.matrix.msc2967.client:")
    }) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("`{user_scope}` needs a user and cannot be granted to a client alone"),
        ));
    }
    let scope = scopes.join(" ");
    let session = repo
        .add_session(rng, clock, client.id, None, None, &scope, None)
        .await?;
    let token = generate(rng, TokenType::AccessToken);
    repo.add_access_token(rng, clock, &session, &token, Some(ttl))
        .await?;
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: Some(ttl.num_seconds()),
        refresh_token: None,
        scope,
        id_token: None,
        session_id: Some(session.id),
    })
}

/// The `client_id` MAS answers for compatibility tokens, which no OAuth client issued;
/// homeservers and tools written against MAS read it.
pub const COMPAT_CLIENT_ID: &str = "legacy";

/// An introspection answer (RFC 7662); inactive tokens are `{"active": false}` only.
///
/// Each kind of token answers the keys MAS answers for it (the fields are in MAS's
/// order). OAuth 2.0 tokens: `client_id`, `jti`, and `username`/`sub` when the session
/// has a user. Compatibility tokens: `client_id` [`COMPAT_CLIENT_ID`] and `device_id`,
/// no `jti`. Personal tokens: neither `client_id` (their owner is a user) nor `jti`.
/// Refresh tokens have no `exp` or `expires_in`; every kind has `iat` and `nbf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    /// Whether the token is usable now.
    pub active: bool,
    /// The granted scope.
    pub scope: Option<String>,
    /// The client the token was issued to ([`COMPAT_CLIENT_ID`] for compatibility tokens).
    pub client_id: Option<String>,
    /// The user's localpart.
    pub username: Option<String>,
    /// `access_token` or `refresh_token`.
    pub token_type: Option<&'static str>,
    /// Expiry, in seconds since the epoch.
    pub exp: Option<i64>,
    /// Seconds until expiry.
    pub expires_in: Option<i64>,
    /// Issue time, in seconds since the epoch.
    pub iat: Option<i64>,
    /// Not usable before, in seconds since the epoch: the issue time.
    pub nbf: Option<i64>,
    /// The user's ID.
    pub sub: Option<String>,
    /// The token's ID.
    pub jti: Option<String>,
    /// The device of a compatibility session (MAS's extension; OAuth 2.0 sessions name
    /// theirs in `scope` only).
    pub device_id: Option<String>,
}

impl Introspection {
    /// The answer as it is sent: borrowed, so a kept answer is written out without a copy.
    #[must_use]
    pub(crate) fn view(&self) -> IntrospectionView<'_> {
        IntrospectionView {
            active: self.active,
            scope: self.scope.as_deref(),
            client_id: self.client_id.as_deref(),
            username: self.username.as_deref(),
            token_type: self.token_type,
            exp: self.exp,
            expires_in: self.expires_in,
            iat: self.iat,
            nbf: self.nbf,
            sub: self.sub.as_deref(),
            jti: self.jti.as_deref(),
            device_id: self.device_id.as_deref(),
        }
    }

    /// Shapes the answer for a caller that sent `X-MAS-Supports-Device-Id: 1`, as MAS
    /// does: it reads a compatibility session's device from `device_id`, so the device
    /// scopes leave `scope`. Answers without `device_id` (every other kind) are unchanged.
    pub fn for_device_id_reader(&mut self) {
        if let Some(scope) = self.device_reader_scope() {
            self.scope = Some(scope);
        }
    }

    /// The scope a caller reading `device_id` is told, when it differs from `scope`.
    pub(crate) fn device_reader_scope(&self) -> Option<String> {
        let (Some(device), Some(scope)) = (&self.device_id, &self.scope) else {
            return None;
        };
        let names_device = |t: &str| {
            DEVICE_SCOPES
                .iter()
                .any(|p| t.strip_prefix(p) == Some(device))
        };
        // Compatibility answers end with their device scopes: cut them off.
        let suffix = scope
            .match_indices(' ')
            .map(|(space, _)| space)
            .find(|&space| scope[space + 1..].split(' ').all(names_device));
        if let Some(space) = suffix {
            return Some(scope[..space].to_owned());
        }
        let kept: Vec<&str> = scope.split(' ').filter(|t| !names_device(t)).collect();
        Some(kept.join(" "))
    }
}

impl Serialize for Introspection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(serializer)
    }
}

/// An [`Introspection`] as it is written out, in MAS's order; absent fields are left out.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub(crate) struct IntrospectionView<'a> {
    /// Whether the token is usable now.
    pub(crate) active: bool,
    /// The granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<&'a str>,
    /// The client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<&'a str>,
    /// The user's localpart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) username: Option<&'a str>,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token_type: Option<&'static str>,
    /// Expiry, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) exp: Option<i64>,
    /// Seconds until expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires_in: Option<i64>,
    /// Issue time, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) iat: Option<i64>,
    /// Not usable before, in seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nbf: Option<i64>,
    /// The user's ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sub: Option<&'a str>,
    /// The token's ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) jti: Option<&'a str>,
    /// The device of a compatibility session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) device_id: Option<&'a str>,
}

/// Who asks an introspection question, which decides what it may learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// A client (by its id): only OAuth 2.0 tokens issued to that same client answer.
    Client(Ulid),
    /// The homeserver (or a static client the administrator trusts): compatibility and
    /// personal tokens answer too, with the Matrix fields. Refresh tokens never answer
    /// active here: a resource server would take them for access tokens.
    Homeserver,
}

impl Asker {
    /// Who an authenticated client is when it asks: public clients may not introspect;
    /// a static client (declared by the administrator, as the homeserver of the MSC3861
    /// generation is) asks as the homeserver; any other as itself.
    ///
    /// # Errors
    /// `invalid_client` for a public client.
    pub fn of(client: &Client) -> Result<Self, OAuthError> {
        match (client.auth_method, client.kind) {
            (mas_data_model::ClientAuthMethod::None, _) => Err(OAuthError::new(
                ErrorCode::InvalidClient,
                "introspection is for confidential clients",
            )),
            (_, mas_data_model::ClientKind::Static) => Ok(Self::Homeserver),
            (_, mas_data_model::ClientKind::Dynamic) => Ok(Self::Client(client.id)),
        }
    }
}

/// Whether an introspection's `token_type_hint` agrees with the kind of token sent.
/// A token of another kind than its hint answers inactive: a resource server that
/// asks about an access token must never be told a refresh token is active. Hints this
/// provider does not know are ignored, as RFC 7662 allows.
#[must_use]
pub fn hint_matches(kind: TokenType, hint: Option<&str>) -> bool {
    let is_refresh = matches!(
        kind,
        TokenType::RefreshToken | TokenType::CompatRefreshToken
    );
    match hint {
        Some("access_token") => !is_refresh,
        Some("refresh_token") => is_refresh,
        _ => true,
    }
}

/// The Matrix API and device scopes exist in a stable and an MSC2967 spelling; each
/// implies its twin, so a homeserver that knows either one recognises the token.
#[must_use]
pub fn with_matrix_twins(scope: &str) -> String {
    const PAIRS: [(&str, &str); 2] = [
        (
            "urn:matrix:client:api:*",
            "urn:matrix:org.matrix.msc2967.client:api:*",
        ),
        (
            "urn:matrix:client:device:",
            "urn:matrix:org.matrix.msc2967.client:device:",
        ),
    ];
    let mut out: Vec<String> = Vec::new();
    let mut push = |token: String| {
        if !out.contains(&token) {
            out.push(token);
        }
    };
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        push(token.to_owned());
        for (stable, unstable) in PAIRS {
            if let Some(rest) = token.strip_prefix(stable) {
                push(format!("{unstable}{rest}"));
            } else if let Some(rest) = token.strip_prefix(unstable) {
                push(format!("{stable}{rest}"));
            }
        }
    }
    out.join(" ")
}

/// Whether an earlier consent to `granted` covers a request for `requested`. Device
/// scopes count like the others: a device the person has not seen this client use is
/// shown to them, so a client cannot silently sign in as a device of its choosing.
#[must_use]
pub fn consent_covers(granted: &str, requested: &str) -> bool {
    let granted: Vec<&str> = granted.split(' ').collect();
    requested
        .split(' ')
        .filter(|t| !t.is_empty())
        .all(|t| granted.contains(&t))
}

pub use mas_data_model::device_of;

/// The answer for a compatibility token (`mct_`, or `syt_` imported from Synapse).
async fn introspect_compat<S: MatrixStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    token: &str,
) -> Result<Answer, OAuthError> {
    let inactive = Answer::default();
    let now = clock.now();
    // One indexed lookup for the token, its session and its user: this is the path every
    // Matrix request takes, through the homeserver.
    let Some((access, session, user)) = repo.find_compat_token_with_session(token).await? else {
        return Ok(inactive);
    };
    if !access.is_valid(now) || !session.is_active() || !user.is_valid() {
        return Ok(inactive);
    }
    let mut scope = String::from("urn:matrix:client:api:*");
    if session.is_synapse_admin {
        scope.push_str(" urn:synapse:admin:*");
    }
    // The device scopes come last, so a caller that reads `device_id` gets the scope
    // cut short rather than rebuilt (see `Introspection::for_device_id_reader`).
    if let Some(device) = &session.device_id {
        scope.push_str(" urn:matrix:client:device:");
        scope.push_str(device);
    }
    let keys = vec![session.id, user.id];
    Ok(Answer::active(
        keys,
        access.expires_at,
        Introspection {
            active: true,
            scope: Some(with_matrix_twins(&scope)),
            client_id: Some(COMPAT_CLIENT_ID.to_owned()),
            username: Some(user.username.clone()),
            token_type: Some("access_token"),
            exp: access.expires_at.map(|at| at.timestamp()),
            expires_in: access.expires_at.map(|at| (at - now).num_seconds().max(0)),
            iat: Some(access.created_at.timestamp()),
            nbf: Some(access.created_at.timestamp()),
            sub: Some(user.id.to_string()),
            // MAS names no compatibility token, so neither do we.
            jti: None,
            device_id: session.device_id,
        },
    ))
}

/// The answer for a personal access token (`mpt_`).
async fn introspect_personal<S: MatrixStore + UserStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    token: &str,
) -> Result<Answer, OAuthError> {
    let inactive = Answer::default();
    let now = clock.now();
    let Some(access) = repo.find_personal_token_by_value(token).await? else {
        return Ok(inactive);
    };
    if access.revoked_at.is_some() || access.expires_at.is_some_and(|at| at <= now) {
        return Ok(inactive);
    }
    let Some(session) = repo.find_personal_session(access.session_id).await? else {
        return Ok(inactive);
    };
    if session.revoked_at.is_some() {
        return Ok(inactive);
    }
    // An admin scope needs the right to request one, at every use: it can be taken away.
    let Some(user) = repo
        .find_user(session.actor_user_id)
        .await?
        .filter(|u| u.is_valid() && policy.may_hold(u, &session.scope))
    else {
        return Ok(inactive);
    };
    let keys = vec![session.id, user.id];
    Ok(Answer::active(
        keys,
        access.expires_at,
        Introspection {
            active: true,
            scope: Some(with_matrix_twins(&session.scope)),
            // MAS names a client only for sessions a client owns; a user owns these.
            client_id: None,
            username: Some(user.username.clone()),
            token_type: Some("access_token"),
            exp: access.expires_at.map(|at| at.timestamp()),
            expires_in: access.expires_at.map(|at| (at - now).num_seconds().max(0)),
            iat: Some(access.created_at.timestamp()),
            nbf: Some(access.created_at.timestamp()),
            sub: Some(user.id.to_string()),
            jti: None,
            // The device, if any, is in the scope, as for OAuth 2.0 sessions.
            device_id: None,
        },
    ))
}

/// Answers for `token`. A string that is not one of our tokens is inactive without any
/// database lookup; so is a token of another kind than `hint` names (see
/// [`hint_matches`]), a token issued to another client than the asking one, and a
/// token whose session ended, or whose user is locked or deactivated.
///
/// # Errors
/// `temporarily_unavailable` when the database is away.
pub async fn introspect<S: SessionStore + UserStore + MatrixStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    token: &str,
    hint: Option<&str>,
    asker: Asker,
) -> Result<Introspection, OAuthError> {
    let Ok(kind) = TokenType::check(token) else {
        return Ok(Introspection::default());
    };
    if !hint_matches(kind, hint) {
        return Ok(Introspection::default());
    }
    Ok(introspect_checked(repo, clock, policy, token, kind, asker)
        .await?
        .introspection)
}

/// An introspection answer with what it depends on, for caching.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// The answer itself; `expires_in` is as of the read.
    pub(crate) introspection: Introspection,
    /// When the token expires, if it does.
    pub(crate) expires_at: Option<DateTime<Utc>>,
    /// The session, user and client ids whose revocation makes the answer stale.
    pub(crate) keys: Vec<Ulid>,
}

impl Answer {
    fn active(
        keys: Vec<Ulid>,
        expires_at: Option<DateTime<Utc>>,
        introspection: Introspection,
    ) -> Self {
        Self {
            introspection,
            expires_at,
            keys,
        }
    }
}

/// As [`introspect`], for a token whose format was checked already.
pub(crate) async fn introspect_checked<S: SessionStore + UserStore + MatrixStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    token: &str,
    kind: TokenType,
    asker: Asker,
) -> Result<Answer, OAuthError> {
    let inactive = Answer::default();
    match (kind, asker) {
        (TokenType::CompatAccessToken, Asker::Homeserver) => {
            return introspect_compat(repo, clock, token).await;
        }
        (TokenType::PersonalAccessToken, Asker::Homeserver) => {
            return introspect_personal(repo, clock, policy, token).await;
        }
        _ => {}
    }
    let now = clock.now();
    let mut in_use = None;
    let (session_id, token_type, id, created_at, expires_at) = match kind {
        TokenType::AccessToken => {
            let Some(access) = repo.find_access_token_by_value(token).await? else {
                return Ok(inactive);
            };
            if !access.is_valid(now) {
                return Ok(inactive);
            }
            let fields = (
                access.session_id,
                "access_token",
                access.id,
                access.created_at,
                access.expires_at,
            );
            in_use = Some(access);
            fields
        }
        // A homeserver takes whatever it is told is active for an access token: a
        // refresh token must never pass for one, whatever hint came with it.
        TokenType::RefreshToken if asker == Asker::Homeserver => return Ok(inactive),
        TokenType::RefreshToken => {
            let Some(refresh) = repo.find_refresh_token_by_value(token).await? else {
                return Ok(inactive);
            };
            if !refresh.is_valid() {
                return Ok(inactive);
            }
            (
                refresh.session_id,
                "refresh_token",
                refresh.id,
                refresh.created_at,
                None,
            )
        }
        // Compatibility and personal tokens answer to the homeserver only.
        _ => return Ok(inactive),
    };
    let Some(session) = repo.find_session(session_id).await? else {
        return Ok(inactive);
    };
    if !session.is_active() {
        return Ok(inactive);
    }
    // A client learns only about its own tokens: another's would tell it who uses them.
    if let Asker::Client(asking) = asker
        && asking != session.client_id
    {
        return Ok(inactive);
    }
    let user = match session.user_id {
        // An admin scope lasts only as long as the user's right to it.
        Some(user_id) => match repo.find_user(user_id).await? {
            Some(user) if user.is_valid() && policy.may_hold(&user, &session.scope) => Some(user),
            _ => return Ok(inactive),
        },
        None => None,
    };
    if let Some(access) = in_use {
        // A resource server asking about a token means the token is in use; that is
        // what tells a refresh retry from a refresh token theft. Only once it answers
        // active to this asker: a stranger's question proves nothing.
        repo.mark_access_token_used(clock, access).await?;
    }
    let scope = match asker {
        Asker::Homeserver => with_matrix_twins(&session.scope),
        Asker::Client(_) => session.scope.clone(),
    };
    let mut keys = vec![session.id, session.client_id];
    keys.extend(user.as_ref().map(|u| u.id));
    Ok(Answer::active(
        keys,
        expires_at,
        Introspection {
            active: true,
            scope: Some(scope),
            client_id: Some(session.client_id.to_string()),
            username: user.as_ref().map(|u| u.username.clone()),
            token_type: Some(token_type),
            exp: expires_at.map(|at| at.timestamp()),
            expires_in: expires_at.map(|at| (at - now).num_seconds().max(0)),
            iat: Some(created_at.timestamp()),
            nbf: Some(created_at.timestamp()),
            sub: user.map(|u| u.id.to_string()),
            jti: Some(id.to_string()),
            // The device is in the scope; MAS gives `device_id` for compatibility
            // sessions only.
            device_id: None,
        },
    ))
}

/// Revokes `token` (RFC 7009): its whole session ends, access and refresh tokens alike,
/// and the ended session is returned. Unknown or malformed tokens are not an error.
///
/// # Errors
/// `unauthorized_client` when the token belongs to another client.
pub async fn revoke<S: SessionStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    client: &Client,
    token: &str,
) -> Result<Option<Session>, OAuthError> {
    let Ok(kind) = TokenType::check(token) else {
        return Ok(None);
    };
    let session_id = match kind {
        TokenType::AccessToken => repo
            .find_access_token_by_value(token)
            .await?
            .map(|t| t.session_id),
        TokenType::RefreshToken => repo
            .find_refresh_token_by_value(token)
            .await?
            .map(|t| t.session_id),
        _ => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedTokenType,
                "only OAuth 2.0 tokens are revoked here",
            ));
        }
    };
    let Some(session_id) = session_id else {
        return Ok(None);
    };
    let Some(session) = repo.find_session(session_id).await? else {
        return Ok(None);
    };
    if session.client_id != client.id {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the token was not issued to this client",
        ));
    }
    Ok(Some(repo.end_session(clock, session).await?))
}

#[cfg(test)]
mod tests {
    use super::{consent_covers, device_of, with_matrix_twins};

    #[test]
    fn consent_covers_the_same_scopes_and_the_same_device() {
        let granted = "openid urn:matrix:client:api:* urn:matrix:client:device:AAAA";
        assert!(consent_covers(
            granted,
            "urn:matrix:client:api:* openid urn:matrix:client:device:AAAA"
        ));
        assert!(!consent_covers(
            granted,
            "urn:matrix:client:api:* openid urn:matrix:client:device:BBBB"
        ));
        assert!(consent_covers(granted, "openid"));
        assert!(!consent_covers(granted, "openid email"));
        assert!(!consent_covers(granted, "openid urn:synapse:admin:*"));
    }

    #[test]
    fn a_device_id_reader_gets_the_scope_without_the_device() {
        let answer = |scope: &str| super::Introspection {
            scope: Some(with_matrix_twins(scope)),
            device_id: Some("DEV".to_owned()),
            ..super::Introspection::default()
        };
        // As compatibility answers are built (device last), and in another order.
        for scope in [
            "urn:matrix:client:api:* urn:synapse:admin:* urn:matrix:client:device:DEV",
            "urn:matrix:client:device:DEV urn:matrix:client:api:* urn:synapse:admin:*",
        ] {
            let mut seen = answer(scope);
            seen.for_device_id_reader();
            assert_eq!(
                seen.scope.as_deref(),
                Some(
                    "urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:api:* urn:synapse:admin:*"
                ),
                "{scope}"
            );
        }
    }

    #[test]
    fn matrix_scopes_come_with_their_twins() {
        let scope = with_matrix_twins("openid urn:matrix:org.matrix.msc2967.client:device:XY");
        assert_eq!(
            scope,
            "openid urn:matrix:org.matrix.msc2967.client:device:XY urn:matrix:client:device:XY"
        );
        assert_eq!(device_of(&scope).as_deref(), Some("XY"));
        assert_eq!(
            device_of("urn:matrix:client:device:A urn:matrix:client:device:B"),
            None
        );
    }
}
