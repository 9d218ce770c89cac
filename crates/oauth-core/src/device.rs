//! The device authorization grant (RFC 8628): a device without a browser shows a short
//! code; the person enters it on another device, logs in and approves.

use chrono::TimeDelta;
use mas_data_model::{BrowserSession, Client, DeviceCodeGrant, DeviceCodeGrantState, User};
use mas_storage::repository::NewDeviceCodeGrant;
use mas_storage::{Clock, Rng, StorageError};
use serde::Serialize;
use url::Url;

use crate::error::{ErrorCode, OAuthError};
use crate::grants::{GrantOutcome, Issuer, issue, refused};
use crate::store::{DeviceGrantStore, MatrixStore, SessionStore, UserStore};
use crate::tokens::{parse_scope, random_string};

/// The grant type name at the token endpoint.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How long the codes live.
pub const LIFETIME: TimeDelta = TimeDelta::minutes(10);

/// How often the device may poll, in seconds.
pub const INTERVAL: i64 = 5;

/// Letters that cannot be confused with each other or spell words (no vowels).
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// The answer to the device: the codes and where the person goes.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceAuthorization {
    /// The device's secret, to poll with.
    pub device_code: String,
    /// The code the person types.
    pub user_code: String,
    /// Where the person types it.
    pub verification_uri: String,
    /// The same, with the code filled in.
    pub verification_uri_complete: String,
    /// Seconds the codes live.
    pub expires_in: i64,
    /// Seconds between polls.
    pub interval: i64,
}

/// A fresh user code, `XXXX-XXXX`.
fn user_code(rng: Rng<'_>) -> String {
    let letters: String = (0..8)
        .map(|_| {
            let n = usize::try_from(rng.next_u32() % 20).unwrap_or_default();
            char::from(USER_CODE_ALPHABET[n])
        })
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// Normalises what a person typed: case, spaces and dashes do not matter.
#[must_use]
pub fn normalise_user_code(typed: &str) -> String {
    let letters: String = typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if letters.len() == 8 {
        format!("{}-{}", &letters[..4], &letters[4..])
    } else {
        letters
    }
}

/// Starts a device authorization for `client`.
///
/// # Errors
/// `unauthorized_client` when the client may not use the device grant; `invalid_scope`.
#[allow(clippy::too_many_arguments)]
pub async fn start<S: DeviceGrantStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    client: &Client,
    scope: Option<&str>,
    link: &Url,
    ip_address: Option<String>,
    user_agent: Option<String>,
) -> Result<DeviceAuthorization, OAuthError> {
    if !client.grant_types.iter().any(|g| g == DEVICE_GRANT) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        ));
    }
    let scope = parse_scope(scope)?;
    if scope.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "a scope is required",
        ));
    }
    let device_code = random_string(rng, 40);
    let user_code = user_code(rng);
    repo.add_device_grant(
        rng,
        clock,
        NewDeviceCodeGrant {
            client_id: client.id,
            scope: scope.join(" "),
            device_code: device_code.clone(),
            user_code: user_code.clone(),
            expires_in: LIFETIME,
            ip_address,
            user_agent,
        },
    )
    .await?;
    let mut complete = link.clone();
    complete.query_pairs_mut().append_pair("code", &user_code);
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri: link.to_string(),
        verification_uri_complete: complete.to_string(),
        expires_in: LIFETIME.num_seconds(),
        interval: INTERVAL,
    })
}

/// Whether a grant can still be answered by a person.
#[must_use]
pub fn awaits_answer(grant: &DeviceCodeGrant, now: chrono::DateTime<chrono::Utc>) -> bool {
    grant.state == DeviceCodeGrantState::Pending && now < grant.expires_at
}

/// Whether the grant can give its device tokens at `now`; else the answer to the device.
fn readiness(
    grant: &DeviceCodeGrant,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), (ErrorCode, &'static str)> {
    match grant.state {
        DeviceCodeGrantState::Exchanged => {
            Err((ErrorCode::InvalidGrant, "the device code was already used"))
        }
        DeviceCodeGrantState::Rejected => Err((ErrorCode::AccessDenied, "the user refused")),
        _ if grant.expires_at < now => Err((ErrorCode::ExpiredToken, "the device code expired")),
        DeviceCodeGrantState::Pending => Err((
            ErrorCode::AuthorizationPending,
            "the user has not answered yet",
        )),
        DeviceCodeGrantState::Fulfilled => Ok(()),
    }
}

/// Carries out the answer of the person signed in as `browser` to a device's request:
/// approved when they allow it and [`crate::authorize::refusal`] finds nothing against it
/// (the same rules as a consent), refused otherwise. `Some(approved)`, or `None` when
/// the grant no longer awaits an answer (answered already, or expired). The caller saves
/// its unit of work either way.
///
/// # Errors
/// When storage fails.
pub async fn answer<S: DeviceGrantStore + UserStore + MatrixStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    browser: &BrowserSession,
    grant: DeviceCodeGrant,
    allow: bool,
) -> Result<Option<bool>, StorageError> {
    if !awaits_answer(&grant, clock.now()) {
        return Ok(None);
    }
    let refusal = crate::authorize::refusal(
        repo,
        policy,
        browser.user_id,
        &grant.scope,
        grant.client_id,
        allow,
    );
    let approved = refusal.await?.is_none();
    let answered = repo
        .answer_device_grant(clock, grant, browser.id, approved)
        .await?;
    Ok(answered.map(|_| approved))
}

/// The person who approved the grant and their browser session, while that session is
/// open and they may still hold the grant's scope; else why not.
async fn approver<S: UserStore + ?Sized>(
    repo: &mut S,
    policy: &crate::policy::Policy,
    grant: &DeviceCodeGrant,
) -> Result<Result<(BrowserSession, User), &'static str>, OAuthError> {
    let browser = match grant.browser_session_id {
        Some(id) => repo.find_browser_session(id).await?,
        None => None,
    };
    // The approval is the browser session's: once that ends (signed out, replaced by a
    // new sign-in, ended from the sessions page, or the account locked), the person who
    // approved is gone, and a device that has not polled yet gets nothing.
    let Some(browser) = browser.filter(BrowserSession::is_active) else {
        return Ok(Err("the approving session is gone"));
    };
    let user = repo.find_user(browser.user_id).await?;
    // An admin scope lasts only as long as the user's right to it.
    match user.filter(|u| u.is_valid() && policy.may_hold(u, &grant.scope)) {
        Some(user) => Ok(Ok((browser, user))),
        None => Ok(Err("the user can no longer log in")),
    }
}

/// The user and the Matrix device (from its scope) that polling with this device code
/// would issue tokens for, when it would. The homeserver refuses tokens of devices it
/// does not know, so the caller makes the device before the exchange; this only reads,
/// with the exchange's own checks of the grant and the approval, and answers `None` for
/// a grant they refuse, which so makes no device. (The poll rate is not checked: a poll
/// told to slow down may still make the device its next poll would.)
///
/// # Errors
/// `temporarily_unavailable` or `server_error` from storage.
pub async fn grant_device<S: DeviceGrantStore + UserStore + ?Sized>(
    repo: &mut S,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    client: &Client,
    device_code: &str,
) -> Result<Option<(User, String)>, OAuthError> {
    let grant = repo.find_device_grant(device_code).await?;
    let Some(grant) = grant.filter(|g| g.client_id == client.id) else {
        return Ok(None);
    };
    if readiness(&grant, clock.now()).is_err() {
        return Ok(None);
    }
    let Ok((_, user)) = approver(repo, policy, &grant).await? else {
        return Ok(None);
    };
    Ok(crate::tokens::device_of(&grant.scope).map(|device| (user, device)))
}

/// The device polls with its device code.
///
/// # Errors
/// As the other grants; protocol answers (`authorization_pending`, `access_denied`,
/// `expired_token`) are [`GrantOutcome::Refused`].
pub async fn exchange<S: DeviceGrantStore + SessionStore + UserStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    issuer: Issuer<'_>,
    client: &Client,
    device_code: &str,
) -> Result<GrantOutcome, OAuthError> {
    let Some(grant) = repo.find_device_grant(device_code).await? else {
        return Ok(refused("the device code is unknown"));
    };
    if grant.client_id != client.id {
        return Ok(refused("the device code was issued to another client"));
    }
    // One second of slack, so a device that polls exactly at the interval is never
    // told to slow down by network jitter.
    let min_gap = TimeDelta::seconds(INTERVAL - 1);
    if !repo.record_device_poll(clock, &grant, min_gap).await? {
        return Ok(GrantOutcome::Refused {
            error: OAuthError::new(ErrorCode::SlowDown, "poll less often"),
            commit: false,
        });
    }
    // The recorded poll must be kept, whatever the answer.
    if let Err((code, description)) = readiness(&grant, clock.now()) {
        return Ok(GrantOutcome::Refused {
            error: OAuthError::new(code, description),
            commit: true,
        });
    }
    let (browser, user) = match approver(repo, issuer.policy, &grant).await? {
        Ok(approver) => approver,
        Err(why) => return Ok(refused(why)),
    };
    let session = repo
        .add_session(
            rng,
            clock,
            client.id,
            Some(browser.user_id),
            Some(browser.id),
            &grant.scope,
            grant.user_agent.clone(),
        )
        .await?;
    if repo
        .exchange_device_grant(clock, grant, &session)
        .await?
        .is_none()
    {
        return Ok(refused("the device code was already used"));
    }
    Ok(GrantOutcome::Issued(
        issue(repo, rng, clock, issuer, client, &session, &user, None).await?,
    ))
}
