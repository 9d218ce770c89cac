//! The token endpoint's user grants: `authorization_code` and `refresh_token`, with the
//! ID token; and the userinfo answer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, TimeDelta};
use mas_data_model::{AuthorizationGrant, Client, Session, TokenType, User};
use mas_storage::{Clock, Rng};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use url::Url;

use crate::error::{ErrorCode, OAuthError};
use crate::keys::{KeyStore, SigningAlgorithm};
use crate::store::{CodeStore, SessionStore, UserStore};
use crate::tokens::{TokenResponse, generate, parse_scope};

/// How long a code may wait between consent and exchange.
pub const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);

/// How long an ID token is valid.
const ID_TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(1);

/// The outcome of a grant: tokens, or a refusal. Some refusals change state (a replayed
/// code or refresh token ends its session): their unit of work must be saved.
#[derive(Debug)]
pub enum GrantOutcome {
    /// Tokens for the client; save the unit of work.
    Issued(TokenResponse),
    /// A refusal; save the unit of work when `commit` is set, else drop it.
    Refused {
        /// The error to send.
        error: OAuthError,
        /// Whether the refusal's side effects must be kept.
        commit: bool,
    },
}

pub(crate) fn refused(description: &str) -> GrantOutcome {
    GrantOutcome::Refused {
        error: OAuthError::new(ErrorCode::InvalidGrant, description),
        commit: false,
    }
}

/// What the token issuance needs to know besides the storage.
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    /// The issuer identifier.
    pub url: &'a Url,
    /// The signing keys.
    pub keys: &'a KeyStore,
    /// Access token lifetime.
    pub access_token_ttl: Duration,
    /// The rules of `policy.data` (who may hold admin scopes).
    pub policy: &'a crate::policy::Policy,
}

/// The user of a session, if still allowed to use tokens.
pub(crate) async fn active_user<S: UserStore + ?Sized>(
    repo: &mut S,
    policy: &crate::policy::Policy,
    session: &Session,
) -> Result<Option<User>, OAuthError> {
    let Some(user_id) = session.user_id else {
        return Ok(None);
    };
    // An admin scope lasts only as long as the user's right to it: a demoted admin's
    // session neither refreshes nor exchanges a code.
    Ok(repo
        .find_user(user_id)
        .await?
        .filter(|user| user.is_valid() && policy.may_hold(user, &session.scope)))
}

/// The algorithm a client asked for at registration (`id_token_signed_response_alg`)
/// when a key signs with it; RS256 otherwise.
fn id_token_alg(keys: &KeyStore, client: &Client) -> SigningAlgorithm {
    client
        .metadata
        .as_ref()
        .and_then(|m| m.get("id_token_signed_response_alg"))
        .and_then(Value::as_str)
        .and_then(SigningAlgorithm::parse)
        .filter(|alg| keys.algorithms().contains(alg))
        .unwrap_or(SigningAlgorithm::Rs256)
}

/// A back-channel logout token for `client` (OpenID Connect Back-Channel Logout 1.0):
/// the browser session `sid` of user `sub` ended. Signed as the client's ID tokens are.
///
/// # Errors
/// [`crate::KeyError`] when no key can sign it.
pub fn logout_token(
    issuer: &Url,
    keys: &KeyStore,
    client: &Client,
    sub: &str,
    sid: &str,
    now: chrono::DateTime<chrono::Utc>,
    jti: &str,
) -> Result<String, crate::KeyError> {
    let claims = json!({
        "iss": issuer.as_str(),
        "aud": client.id.to_string(),
        "iat": now.timestamp(),
        "exp": (now + LOGOUT_TOKEN_LIFETIME).timestamp(),
        "jti": jti,
        "sub": sub,
        "sid": sid,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    keys.sign(id_token_alg(keys, client), &claims)
}

/// How long a logout token may be used.
const LOGOUT_TOKEN_LIFETIME: Duration = Duration::minutes(2);

/// A back-channel logout token to post (as the form field `logout_token`) to a client.
#[derive(Debug, Clone)]
pub struct LogoutNotice {
    /// The client told.
    pub client_id: ulid::Ulid,
    /// Its `backchannel_logout_uri`.
    pub uri: Url,
    /// The signed logout token.
    pub token: String,
}

/// The back-channel logout notices owed when browser sessions of `user` end: one per
/// client and browser session among `sessions` (the OAuth 2.0 sessions started from
/// them), for clients of the configuration that gave a `backchannel_logout_uri`. A
/// client that registered itself is never told: its URI could make the service post
/// anywhere. `jti` makes each token's ID.
///
/// # Errors
/// When storage fails. A token that cannot be signed is logged and left out.
pub async fn backchannel_logouts<S: crate::store::ClientStore + ?Sized>(
    repo: &mut S,
    issuer: &Url,
    keys: &KeyStore,
    user: &User,
    sessions: &[Session],
    now: chrono::DateTime<chrono::Utc>,
    mut jti: impl FnMut() -> String,
) -> Result<Vec<LogoutNotice>, mas_storage::StorageError> {
    let mut told = std::collections::HashSet::new();
    let mut notices = Vec::new();
    for session in sessions {
        let Some(sid) = session.browser_session_id else {
            continue;
        };
        if !told.insert((session.client_id, sid)) {
            continue;
        }
        let Some(client) = repo.find_client(session.client_id).await? else {
            continue;
        };
        let uri = client
            .metadata
            .as_ref()
            .filter(|_| client.kind == mas_data_model::ClientKind::Static)
            .and_then(|m| m.get("backchannel_logout_uri"))
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok());
        let Some(uri) = uri else { continue };
        let sub = user.id.to_string();
        match logout_token(issuer, keys, &client, &sub, &sid.to_string(), now, &jti()) {
            Ok(token) => notices.push(LogoutNotice {
                client_id: client.id,
                uri,
                token,
            }),
            Err(error) => tracing::error!(%error, "cannot sign a logout token"),
        }
    }
    Ok(notices)
}

/// The left half of the SHA-256 of `value`, base64url (`at_hash`, `c_hash`).
fn half_hash(value: &str, alg: SigningAlgorithm) -> String {
    // The hash of the signing algorithm: SHA-384 for ES384, SHA-256 otherwise.
    let function = if alg == SigningAlgorithm::Es384 {
        &ring::digest::SHA384
    } else {
        &ring::digest::SHA256
    };
    let digest = ring::digest::digest(function, value.as_bytes());
    let half = digest.as_ref().len() / 2;
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..half])
}

/// Issues an access token, a refresh token and (for `openid`) an ID token in `session`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn issue<S: SessionStore + UserStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    issuer: Issuer<'_>,
    client: &Client,
    session: &Session,
    user: &User,
    nonce: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let access_token = generate(rng, TokenType::AccessToken);
    let refresh_token = generate(rng, TokenType::RefreshToken);
    let ttl = Some(issuer.access_token_ttl);
    let access = repo
        .add_access_token(rng, clock, session, &access_token, ttl)
        .await?;
    repo.add_refresh_token(rng, clock, session, &access, &refresh_token)
        .await?;
    let id_token = if session.scope.split(' ').any(|s| s == "openid") {
        let now = clock.now();
        let browser = match session.browser_session_id {
            Some(id) => repo.find_browser_session(id).await?,
            None => None,
        };
        let auth_time = match browser {
            Some(browser) => repo.last_authentication_at(&browser).await?,
            None => None,
        };
        let mut claims = json!({
            "iss": issuer.url.as_str(),
            "sub": user.id.to_string(),
            "aud": client.id.to_string(),
            "iat": now.timestamp(),
            "exp": (now + ID_TOKEN_LIFETIME).timestamp(),
            "at_hash": half_hash(&access_token, id_token_alg(issuer.keys, client)),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::String(nonce.to_owned());
        }
        if let Some(at) = auth_time {
            claims["auth_time"] = Value::from(at.timestamp());
        }
        // The browser session is the provider's session of OpenID Connect logout: a
        // back-channel logout token names it.
        if let Some(sid) = session.browser_session_id {
            claims["sid"] = Value::String(sid.to_string());
        }
        Some(
            issuer
                .keys
                .sign(id_token_alg(issuer.keys, client), &claims)
                .map_err(|error| {
                    tracing::error!(%error, "cannot sign an ID token");
                    OAuthError::new(ErrorCode::ServerError, "internal error")
                })?,
        )
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: Some(issuer.access_token_ttl.num_seconds()),
        refresh_token: Some(refresh_token),
        scope: session.scope.clone(),
        id_token,
        session_id: Some(session.id),
    })
}

/// What checking a code found, before anything is spent or ended.
#[allow(clippy::large_enum_variant)] // One value, returned once per token request.
enum CodeCheck {
    /// Every check passed: the code may be exchanged for tokens of `session`.
    Valid {
        grant: AuthorizationGrant,
        session: Session,
        user: User,
    },
    /// The code was exchanged before: its session is to end (RFC 9700 §4.5.3).
    Replayed(Session),
    /// Refused, with why.
    Refused(&'static str),
}

/// Every check of the `authorization_code` grant, reading only.
async fn check_code<S: CodeStore + SessionStore + UserStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
) -> Result<CodeCheck, OAuthError> {
    use CodeCheck::Refused;
    let Some(grant) = repo.find_grant_by_code(code).await? else {
        return Ok(Refused("the code is unknown"));
    };
    if grant.client_id != client.id {
        return Ok(Refused("the code was issued to another client"));
    }
    if grant.cancelled_at.is_some() {
        return Ok(Refused("the authorization request was refused"));
    }
    let Some(session_id) = grant.session_id else {
        return Ok(Refused("the code is not ready"));
    };
    let Some(session) = repo.find_session(session_id).await? else {
        return Ok(Refused("the session of this code is gone"));
    };
    if grant.exchanged_at.is_some() {
        return Ok(CodeCheck::Replayed(session));
    }
    if grant
        .fulfilled_at
        .is_none_or(|at| at + CODE_LIFETIME < clock.now())
    {
        return Ok(Refused("the code has expired"));
    }
    if redirect_uri != Some(grant.redirect_uri.as_str()) {
        return Ok(Refused(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (
        grant.code.as_ref().and_then(|c| c.pkce.as_ref()),
        code_verifier,
    ) {
        (Some(_), Some(verifier))
            if !((43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))) =>
        {
            return Ok(Refused("the code_verifier is malformed"));
        }
        (Some(pkce), Some(verifier)) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
            let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
            if !bool::from(computed.as_bytes().ct_eq(pkce.challenge.as_bytes())) {
                return Ok(Refused(
                    "the code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), None) => return Ok(Refused("the code_verifier is missing")),
        // No downgrade: a verifier for a code that was issued without a challenge.
        (None, Some(_)) => return Ok(Refused("the authorization request had no code_challenge")),
        (None, None) => {}
    }
    if !session.is_active() {
        return Ok(Refused("the session of this code has ended"));
    }
    let Some(user) = active_user(repo, policy, &session).await? else {
        return Ok(Refused("the user can no longer log in"));
    };
    Ok(CodeCheck::Valid {
        grant,
        session,
        user,
    })
}

/// The user and the Matrix device (from its scope) that the `authorization_code` grant
/// with these parameters would issue tokens for, when it would succeed. The homeserver
/// refuses tokens of devices it does not know, so the caller makes the device before the
/// exchange; this only reads, with the exchange's own checks, and answers `None` for a
/// code they refuse (a wrong verifier, a replay, an ended session), so such a request
/// makes no device.
///
/// # Errors
/// `temporarily_unavailable` or `server_error` from storage.
pub async fn code_device<S: CodeStore + SessionStore + UserStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
) -> Result<Option<(User, String)>, OAuthError> {
    let check = check_code(
        repo,
        clock,
        policy,
        client,
        code,
        redirect_uri,
        code_verifier,
    );
    Ok(match check.await? {
        CodeCheck::Valid { session, user, .. } => {
            crate::tokens::device_of(&session.scope).map(|device| (user, device))
        }
        CodeCheck::Replayed(_) | CodeCheck::Refused(_) => None,
    })
}

/// The `authorization_code` grant: a code is exchanged once, by its client, with its
/// redirect URI and PKCE verifier, within [`CODE_LIFETIME`]. A second exchange ends the
/// session the first one opened (RFC 9700 §4.5.3).
///
/// # Errors
/// `temporarily_unavailable` or `server_error` from storage; protocol refusals are
/// [`GrantOutcome::Refused`].
#[allow(clippy::too_many_arguments)]
pub async fn authorization_code<S: CodeStore + SessionStore + UserStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    issuer: Issuer<'_>,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
) -> Result<GrantOutcome, OAuthError> {
    let check = check_code(
        repo,
        clock,
        issuer.policy,
        client,
        code,
        redirect_uri,
        code_verifier,
    );
    let (grant, session, user) = match check.await? {
        CodeCheck::Valid {
            grant,
            session,
            user,
        } => (grant, session, user),
        CodeCheck::Refused(why) => return Ok(refused(why)),
        CodeCheck::Replayed(session) => {
            tracing::warn!(client = %client.id, "authorization code replayed; ending its session");
            repo.end_session(clock, session).await?;
            return Ok(GrantOutcome::Refused {
                error: OAuthError::new(ErrorCode::InvalidGrant, "the code was already used"),
                commit: true,
            });
        }
    };
    let nonce = grant.nonce.clone();
    if repo.exchange_grant(clock, grant).await?.is_none() {
        // A concurrent exchange won: this one is the replay.
        repo.end_session(clock, session).await?;
        return Ok(GrantOutcome::Refused {
            error: OAuthError::new(ErrorCode::InvalidGrant, "the code was already used"),
            commit: true,
        });
    }
    let response = issue(
        repo,
        rng,
        clock,
        issuer,
        client,
        &session,
        &user,
        nonce.as_deref(),
    )
    .await?;
    Ok(GrantOutcome::Issued(response))
}

/// The `refresh_token` grant with rotation: each refresh token is used once and replaced.
/// Presenting a used one again ends the whole session (it may have been stolen) — except
/// when its successor was never used, which is a client retrying after losing the answer.
///
/// # Errors
/// As [`authorization_code`].
pub async fn refresh_token<S: SessionStore + UserStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    issuer: Issuer<'_>,
    client: &Client,
    token: &str,
    scope: Option<&str>,
) -> Result<GrantOutcome, OAuthError> {
    if TokenType::check(token) != Ok(TokenType::RefreshToken) {
        return Ok(refused("not a refresh token"));
    }
    let Some(old) = repo.find_refresh_token_by_value(token).await? else {
        return Ok(refused("the refresh token is unknown"));
    };
    let Some(session) = repo.find_session(old.session_id).await? else {
        return Ok(refused("the session is gone"));
    };
    if session.client_id != client.id {
        return Ok(refused("the refresh token was issued to another client"));
    }
    if !session.is_active() {
        return Ok(refused("the refresh token is no longer valid"));
    }
    if old.revoked_at.is_some() {
        // In an open session, only a retried refresh revokes a refresh token: the branch
        // it replaced. Someone still holding that branch means two parties refresh
        // one session (RFC 9700 §4.14): neither keeps it.
        return reused(repo, clock, session, "was replaced by a retried refresh").await;
    }
    let asked = parse_scope(scope)?;
    if asked
        .iter()
        .any(|s| !session.scope.split(' ').any(|granted| granted == s))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "a refresh cannot widen the scope",
        ));
    }
    let Some(user) = active_user(repo, issuer.policy, &session).await? else {
        return Ok(refused("the user can no longer log in"));
    };
    if old.consumed_at.is_some() {
        let successor = match old.next_token_id {
            Some(id) => repo.find_refresh_token(id).await?,
            None => None,
        };
        let successor_unused = match &successor {
            Some(next) if next.is_valid() => match next.access_token_id {
                Some(id) => repo
                    .find_access_token(id)
                    .await?
                    .is_some_and(|a| a.first_used_at.is_none()),
                None => true,
            },
            _ => false,
        };
        if !successor_unused {
            return reused(repo, clock, session, "was already used").await;
        }
        // The client never received (or never used) the answer to its last refresh. The
        // tokens we gave it then are stored only as hashes, so they cannot be handed out
        // again: a fresh pair takes their place, and the unused successor is superseded
        // by it (once: of two concurrent retries, one wins), so that branch never lives
        // again.
        let Some(next) = successor else {
            return Ok(refused("the refresh token was already used"));
        };
        let unused_access = match next.access_token_id {
            Some(access_id) => repo.find_access_token(access_id).await?,
            None => None,
        };
        let response = issue(repo, rng, clock, issuer, client, &session, &user, None).await?;
        let new_refresh = response.refresh_token.as_deref().unwrap_or_default();
        let Some(fresh) = repo.find_refresh_token_by_value(new_refresh).await? else {
            return Err(OAuthError::new(ErrorCode::ServerError, "internal error"));
        };
        if repo
            .supersede_refresh_token(clock, next, &fresh)
            .await?
            .is_none()
        {
            return Ok(refused("the refresh token was already used"));
        }
        if let Some(access) = unused_access {
            repo.revoke_access_token(clock, access).await?;
        }
        return Ok(GrantOutcome::Issued(response));
    }
    let response = issue(repo, rng, clock, issuer, client, &session, &user, None).await?;
    let new_refresh = response.refresh_token.as_deref().unwrap_or_default();
    let Some(next) = repo.find_refresh_token_by_value(new_refresh).await? else {
        return Err(OAuthError::new(ErrorCode::ServerError, "internal error"));
    };
    if repo
        .consume_refresh_token(clock, old, &next)
        .await?
        .is_none()
    {
        // A concurrent refresh of the same token won; this one changes nothing.
        return Ok(refused("the refresh token was already used"));
    }
    Ok(GrantOutcome::Issued(response))
}

/// A refresh token presented by a second party: the session ends (committed), and the
/// token is `invalid_grant` ("the refresh token {why}").
async fn reused<S: SessionStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    session: Session,
    why: &str,
) -> Result<GrantOutcome, OAuthError> {
    tracing::warn!(session = %session.id, "refresh token {why}; ending the session");
    repo.end_session(clock, session).await?;
    Ok(GrantOutcome::Refused {
        error: OAuthError::new(ErrorCode::InvalidGrant, format!("the refresh token {why}")),
        commit: true,
    })
}

/// The userinfo answer for an access token: `sub`, `preferred_username`, and `email`
/// with the `email` scope. `None` when the token is not active or has no user.
///
/// # Errors
/// `temporarily_unavailable` when the database is away.
pub async fn userinfo<S: SessionStore + UserStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    token: &str,
) -> Result<Option<Value>, OAuthError> {
    if TokenType::check(token) != Ok(TokenType::AccessToken) {
        return Ok(None);
    }
    let Some(access) = repo.find_access_token_by_value(token).await? else {
        return Ok(None);
    };
    if !access.is_valid(clock.now()) {
        return Ok(None);
    }
    // A used access token is what tells a refresh retry from a refresh token theft.
    let access = repo.mark_access_token_used(clock, access).await?;
    let Some(session) = repo.find_session(access.session_id).await? else {
        return Ok(None);
    };
    if !session.is_active() {
        return Ok(None);
    }
    let Some(user) = active_user(repo, policy, &session).await? else {
        return Ok(None);
    };
    let mut claims = json!({ "sub": user.id.to_string(), "preferred_username": user.username });
    if session.scope.split(' ').any(|s| s == "email")
        && let Some(email) = repo.primary_email(&user).await?
    {
        claims["email"] = Value::String(email);
    }
    Ok(Some(claims))
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use mas_data_model::ClientKind;
    use mas_storage::SystemClock;
    use serde_json::json;

    use super::*;
    use crate::memory::MemoryStore;
    use crate::store::SessionStore;

    fn client(kind: ClientKind, metadata: Option<Value>) -> Client {
        let params = mas_storage::repository::ClientParams {
            auth_method: mas_data_model::ClientAuthMethod::None,
            encrypted_secret: None,
            jwks: None,
            jwks_uri: None,
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            name: None,
            client_uri: None,
            logo_uri: None,
            policy_uri: None,
            tos_uri: None,
            application_type: None,
            contacts: Vec::new(),
            metadata,
        };
        params.into_client(ulid::Ulid::new(), kind, chrono::Utc::now())
    }

    #[tokio::test]
    async fn only_configured_clients_that_asked_are_told_once_per_browser_session() {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::PrivateKey::new(&mut rand::rng(), 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let keys = KeyStore::from_pems([(None, pem.as_str())]).unwrap();
        let issuer = Url::parse("https://auth.example.com/").unwrap();
        let asked = json!({ "backchannel_logout_uri": "https://app.example.com/logout" });
        let told = client(ClientKind::Static, Some(asked.clone()));
        let registered = client(ClientKind::Dynamic, Some(asked));
        let silent = client(ClientKind::Static, None);

        let store = MemoryStore::new();
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let clock = &SystemClock;
        let alice = store.add_user(&mut rng, clock, "alice");
        for c in [&told, &registered, &silent] {
            store.add_client(c.clone());
        }
        let mut unit = store.begin();
        let browser = unit.sign_in(&mut rng, clock, &alice);
        let mut sessions = Vec::new();
        for c in [&told, &told, &registered, &silent] {
            let session = unit.add_session(
                &mut rng,
                clock,
                c.id,
                Some(alice.id),
                Some(browser.id),
                "openid",
                None,
            );
            sessions.push(session.await.unwrap());
        }
        let notices = backchannel_logouts(
            &mut unit,
            &issuer,
            &keys,
            &alice,
            &sessions,
            clock.now(),
            || "jti".to_owned(),
        );
        let notices = notices.await.unwrap();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(notices[0].client_id, told.id);
        assert_eq!(notices[0].uri.as_str(), "https://app.example.com/logout");
        let jws = crate::jose::UnverifiedJws::parse(&notices[0].token).unwrap();
        jws.verify_with_jwks(&keys.jwks()).unwrap();
        let claims = &jws.payload;
        assert_eq!(claims["sid"], browser.id.to_string());
        assert_eq!(claims["sub"], alice.id.to_string());
        assert_eq!(claims["aud"], told.id.to_string());
    }
}
