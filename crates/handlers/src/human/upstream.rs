//! `/upstream/*`: signing in through an upstream identity provider.
//!
//! `/upstream/authorize/{provider}` records a trip (state, nonce, PKCE verifier) and sends
//! the browser to the provider; `/upstream/callback/{provider}` takes the answer once,
//! exchanges the code and checks the ID token, and records the upstream account; then
//! `/upstream/link/{trip}` (only in the browser that started the trip) signs a linked
//! account straight in, or shows what will be imported and creates the account, or
//! links the upstream account to the account signed in.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, PrivateCookieJar};
use chrono::TimeDelta;
use mas_data_model::{
    BrowserSession, UpstreamOAuthAuthorizationSession, UpstreamOAuthLink, UpstreamOAuthProvider,
    User,
};
use mas_oauth_core::params::Params;
use mas_storage::repository::UpstreamAnswer;
use mas_storage::{Repository, StorageError};
use mas_upstream::{ImportAction, Imported, OnConflict, Provider, UpstreamError};
use serde::Deserialize;

use super::login::PageForm;
use super::{
    PageError, PageResult, cookie, csrf_token, csrf_valid, current_session, error_page,
    query_value, redirect_to, remember_session, render, safe_next, see_other,
};
use crate::AppState;
use crate::rate_limit::ClientIp;

/// The trips this browser started, so that only it may finish them.
const TRIPS_COOKIE: &str = "mas-upstream";
/// Set by signing out, for `logged_out` in the extra authorization parameters.
pub(crate) const LOGGED_OUT_COOKIE: &str = "mas-logged-out";
/// How many trips a browser may have under way.
const MAX_TRIPS: usize = 5;
/// How long a trip may take, from the button to the account.
const TRIP_LASTS: TimeDelta = TimeDelta::minutes(30);

/// An enabled provider and its settings, with the secret decrypted.
async fn load_provider(
    state: &AppState,
    id: &str,
) -> Result<Option<(UpstreamOAuthProvider, Provider)>, PageError> {
    load_any_provider(state, id, false).await
}

/// A provider and its settings, with the secret decrypted; a disabled one only with
/// `even_disabled` (a provider disabled here can still end the sessions it opened).
pub(super) async fn load_any_provider(
    state: &AppState,
    id: &str,
    even_disabled: bool,
) -> Result<Option<(UpstreamOAuthProvider, Provider)>, PageError> {
    let Ok(id) = id.parse::<ulid::Ulid>() else {
        return Ok(None);
    };
    let Some(stored) = state
        .repos
        .reader()
        .await?
        .upstream_provider()
        .lookup(id)
        .await?
        .filter(|p| even_disabled || p.disabled_at.is_none())
    else {
        return Ok(None);
    };
    let secret = match stored.encrypted_client_secret.as_deref() {
        Some(sealed) => {
            if let Ok(Ok(secret)) = state.encrypter.decrypt(sealed).map(String::from_utf8) {
                Some(secret)
            } else {
                tracing::error!(provider = %id, "cannot decrypt an upstream provider's client secret (was secrets.encryption changed?)");
                return Err(misconfigured(state, &tr!("upstream-secret-unreadable")).into());
            }
        }
        None => None,
    };
    match Provider::from_stored(&stored.config, secret) {
        Ok(provider) => Ok(Some((stored, provider))),
        Err(error) => Err(misconfigured(state, &error.to_string()).into()),
    }
}

/// An enabled provider as sign-in pages and legacy clients list it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Button {
    /// Its ID (a ULID).
    pub(crate) id: String,
    /// The name on its button.
    pub(crate) name: String,
    /// Its brand, for an icon.
    pub(crate) brand: Option<String>,
    /// The identity provider ID legacy Matrix clients use.
    pub(crate) idp_id: String,
}

/// The enabled providers, in the configuration's order.
pub(crate) async fn buttons(state: &AppState) -> Result<Vec<Button>, StorageError> {
    let providers = state
        .repos
        .reader()
        .await?
        .upstream_provider()
        .all()
        .await?;
    Ok(providers
        .into_iter()
        .filter(|p| p.disabled_at.is_none())
        .filter_map(|p| match Provider::from_stored(&p.config, None) {
            Ok(provider) => Some(provider),
            Err(error) => {
                tracing::warn!(provider = %p.id, %error, "a stored upstream provider is unusable; run `mas-cli config sync`");
                None
            }
        })
        .map(|p| Button {
            id: p.id.to_string(),
            name: p.config.display_name(),
            brand: p.config.brand_name.clone(),
            idp_id: Provider::matrix_idp_id(&p.config),
        })
        .collect())
}

fn unknown_provider(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::NOT_FOUND,
        &tr!("upstream-unknown-provider"),
        &tr!("upstream-unknown-provider-detail"),
    )
}

fn misconfigured(state: &AppState, detail: &str) -> Response {
    error_page(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        &tr!("upstream-misconfigured"),
        &tr!("upstream-misconfigured-detail", detail = detail),
    )
}

/// The page for a failed trip; a provider that could not be reached is a 502.
fn failed(state: &AppState, provider: &Provider, error: &UpstreamError) -> Response {
    tracing::warn!(provider = %provider.id, %error, "sign-in through an upstream provider failed");
    let status = match error {
        UpstreamError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        UpstreamError::Configuration(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    // What went wrong, in words; the technical detail stays as it came.
    let (message, detail) = match error {
        UpstreamError::Unreachable(detail) => (msg!("upstream-error-unreachable"), detail),
        UpstreamError::Configuration(detail) => (msg!("upstream-error-configuration"), detail),
        UpstreamError::TokenRefused(detail) => (msg!("upstream-error-token-refused"), detail),
        UpstreamError::IdToken(detail) => (msg!("upstream-error-id-token"), detail),
        UpstreamError::UserInfo(detail) => (msg!("upstream-error-userinfo"), detail),
        UpstreamError::LogoutToken(detail) => (msg!("upstream-error-logout-token"), detail),
    };
    error_page(
        state,
        status,
        &tr!("upstream-failed", provider = provider.config.display_name()),
        &tr!(message.0, detail = detail.as_str()),
    )
}

fn stale_trip(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        &tr!("upstream-stale-trip"),
        &tr!("upstream-stale-trip-detail"),
    )
}

/// Where the provider sends the browser back to.
fn callback_uri(state: &AppState, provider: &Provider) -> Result<url::Url, Box<Response>> {
    state
        .oauth
        .endpoints
        .base
        .join(&format!("upstream/callback/{}", provider.id))
        .map_err(|_| {
            Box::new(misconfigured(
                state,
                &tr!("upstream-public-base-unjoinable"),
            ))
        })
}

fn trips(jar: &PrivateCookieJar) -> Vec<String> {
    jar.get(TRIPS_COOKIE)
        .map(|c| {
            c.value()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn with_trips(state: &AppState, jar: PrivateCookieJar, list: &[String]) -> PrivateCookieJar {
    if list.is_empty() {
        jar.remove(Cookie::build(TRIPS_COOKIE).path("/"))
    } else {
        jar.add(cookie(state, TRIPS_COOKIE, list.join(",")))
    }
}

#[derive(Deserialize)]
pub(super) struct AuthorizeQuery {
    next: Option<String>,
}

/// `GET /upstream/authorize/{provider}?next=`: off to the provider.
#[tracing::instrument(name = "handlers.upstream.authorize", skip_all)]
pub(super) async fn authorize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ClientIp(ip): ClientIp,
    query: Result<Query<AuthorizeQuery>, axum::extract::rejection::QueryRejection>,
    jar: PrivateCookieJar,
) -> PageResult {
    let Some((stored, provider)) = load_provider(&state, &id).await? else {
        return Ok(unknown_provider(&state));
    };
    // Each trip stores a row: throttled per address like authorization requests.
    if let Some(message) = super::throttled(
        &state,
        crate::rate_limit::PerAddress::AnonymousRequest,
        ip,
        msg!("throttle-from-address-sign-in-attempts"),
    ) {
        return Ok(error_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &tr!("upstream-too-many-attempts"),
            &message,
        ));
    }
    let next = safe_next(query.ok().and_then(|Query(q)| q.next).as_deref());
    // The request that sent the person here (an `/authorize` of a client), for templates.
    let params: BTreeMap<String, String> = url::Url::parse("http://here")
        .and_then(|base| base.join(&next))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let signed_in = {
        let mut repo = state.repos.reader().await?;
        current_session(repo.as_mut(), &jar).await?.is_some()
    };
    let logged_out = !signed_in && jar.get(LOGGED_OUT_COOKIE).is_some();
    let extra =
        match mas_upstream::claims::authorization_parameters(&provider.config, &params, logged_out)
        {
            Ok(extra) => extra,
            Err(error) => return Ok(misconfigured(&state, &error.to_string())),
        };
    let redirect_uri = match callback_uri(&state, &provider) {
        Ok(uri) => uri,
        Err(page) => return Ok(*page),
    };
    let started = match state.upstreams.start(&provider, &redirect_uri, extra).await {
        Ok(started) => started,
        Err(error) => return Ok(failed(&state, &provider, &error)),
    };
    let trip = {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = state.repos.begin().await?;
        let trip = repo
            .upstream_session()
            .add(
                &mut rng,
                state.clock.as_ref(),
                &stored,
                started.state,
                started.nonce,
                started.code_verifier,
                next,
            )
            .await?;
        repo.save().await?;
        trip
    };
    let mut list = trips(&jar);
    list.push(trip.id.to_string());
    let keep_from = list.len().saturating_sub(MAX_TRIPS);
    let jar = with_trips(&state, jar, &list[keep_from..]);
    Ok((jar, redirect_to(started.url.as_str())).into_response())
}

/// `GET /upstream/callback/{provider}`: the answer in the query.
#[tracing::instrument(name = "handlers.upstream.callback_get", skip_all)]
pub(super) async fn callback_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    jar: PrivateCookieJar,
) -> PageResult {
    match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => callback(&state, &id, &params, &jar, false).await,
        Err(_) => Ok(stale_trip(&state)),
    }
}

/// `POST /upstream/callback/{provider}`: the answer as a form (`response_mode=form_post`).
/// The browser sends no `SameSite=Lax` cookie with the provider's cross-site POST, so the
/// answer is posted again from a page of ours, with them.
#[tracing::instrument(name = "handlers.upstream.callback_post", skip_all)]
pub(super) async fn callback_post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    callback(&state, &id, &form, &jar, true).await
}

/// The answer's fields a page of ours posts again.
const ANSWER_FIELDS: [&str; 5] = ["state", "code", "error", "error_description", "iss"];

/// What a provider's `error_description` may show on our page: it comes from the URL,
/// so anyone can write it; kept short and on one line.
fn description(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    clean.trim().to_owned()
}

async fn callback(
    state: &AppState,
    id: &str,
    params: &Params,
    jar: &PrivateCookieJar,
    posted: bool,
) -> PageResult {
    let Some((stored, provider)) = load_provider(state, id).await? else {
        return Ok(unknown_provider(state));
    };
    let field = |name: &str| params.get(name).ok().flatten();
    let Some(given_state) = field("state") else {
        return Ok(stale_trip(state));
    };
    let clock = state.clock.as_ref();
    let found = state
        .repos
        .reader()
        .await?
        .upstream_session()
        .find_by_state(&stored, given_state)
        .await?
        .filter(|t| clock.now() < t.created_at + TRIP_LASTS);
    let Some(trip) = found else {
        return Ok(stale_trip(state));
    };
    // Only the browser that started the trip may bring its answer: a code sent to
    // someone else's browser must not sign that browser in as the provider's account.
    if !trips(jar).contains(&trip.id.to_string()) {
        if posted && field("again").is_none() {
            let mut fields: Vec<[&str; 2]> = ANSWER_FIELDS
                .iter()
                .filter_map(|name| field(name).map(|value| [*name, value]))
                .collect();
            fields.push(["again", "1"]);
            let action = state.page_path(&format!("/upstream/callback/{}", provider.id));
            return Ok(super::auto_post(&action, &fields));
        }
        return Ok(stale_trip(state));
    }
    // The answer is taken once, before anything is asked of the provider.
    let trip = {
        let mut repo = state.repos.begin().await?;
        let claimed = repo.upstream_session().claim(clock, trip).await?;
        repo.save().await?;
        claimed
    };
    let Some(trip) = trip else {
        return Ok(stale_trip(state));
    };
    if let Some(error) = field("error") {
        let detail = match field("error_description") {
            Some(text) => format!("{}: {}", description(error), description(text)),
            None => description(error),
        };
        let cancelled = error == "access_denied";
        tracing::info!(provider = %provider.id, cancelled, "the provider answered with an error");
        return Ok(error_page(
            state,
            StatusCode::BAD_REQUEST,
            &tr!("upstream-failed", provider = provider.config.display_name()),
            &if cancelled {
                tr!("upstream-cancelled", detail = &*detail)
            } else {
                tr!("upstream-provider-error", detail = &*detail)
            },
        ));
    }
    let Some(code) = field("code") else {
        return Ok(stale_trip(state));
    };
    let redirect_uri = match callback_uri(state, &provider) {
        Ok(uri) => uri,
        Err(page) => return Ok(*page),
    };
    let answer = state
        .upstreams
        .finish(
            &provider,
            &redirect_uri,
            code,
            &trip.nonce,
            trip.code_verifier.as_deref(),
            &state.oauth.keys,
        )
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return Ok(failed(state, &provider, &error)),
    };
    let imported = match mas_upstream::claims::import(&provider.config, &answer.claims) {
        Ok(imported) => imported,
        Err(error) => {
            return Ok(failed(
                state,
                &provider,
                &UpstreamError::IdToken(error.to_string()),
            ));
        }
    };
    let trip = record(state, &stored, trip, &imported, answer).await?;
    Ok(see_other(state, &format!("/upstream/link/{}", trip.id)))
}

/// Records the upstream account (a first sign-in adds it) and what the answer brought.
async fn record(
    state: &AppState,
    stored: &UpstreamOAuthProvider,
    trip: UpstreamOAuthAuthorizationSession,
    imported: &Imported,
    answer: mas_upstream::Answer,
) -> Result<UpstreamOAuthAuthorizationSession, StorageError> {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let clock = state.clock.as_ref();
    let mut repo = state.repos.begin().await?;
    let found = repo
        .upstream_link()
        .find_by_subject(stored, &imported.subject)
        .await?;
    let link = if let Some(link) = found {
        link
    } else {
        let added = repo
            .upstream_link()
            .add(
                &mut rng,
                clock,
                stored,
                &imported.subject,
                imported.account_name.clone(),
            )
            .await;
        match added {
            Ok(link) => link,
            // A concurrent first sign-in of the same account recorded it first.
            Err(StorageError::Conflict(_)) => {
                drop(repo);
                repo = state.repos.begin().await?;
                repo.upstream_link()
                    .find_by_subject(stored, &imported.subject)
                    .await?
                    .ok_or(StorageError::Conflict("upstream_oauth_links".into()))?
            }
            Err(error) => return Err(error),
        }
    };
    let trip = repo
        .upstream_session()
        .record_answer(
            trip,
            UpstreamAnswer {
                link,
                id_token: answer.id_token,
                claims: answer.claims,
                sid: answer.sid,
            },
        )
        .await?;
    repo.save().await?;
    Ok(trip)
}

/// A trip of this browser that came back with an upstream account and was not used yet,
/// with its provider and the account.
struct Returned {
    trip: UpstreamOAuthAuthorizationSession,
    stored: UpstreamOAuthProvider,
    provider: Provider,
    link: UpstreamOAuthLink,
    imported: Imported,
}

async fn returned(
    state: &AppState,
    jar: &PrivateCookieJar,
    id: &str,
) -> Result<Result<Returned, Response>, PageError> {
    if !trips(jar).iter().any(|t| t == id) {
        return Ok(Err(stale_trip(state)));
    }
    let Ok(trip_id) = id.parse::<ulid::Ulid>() else {
        return Ok(Err(stale_trip(state)));
    };
    let now = state.clock.now();
    let (trip, link) = {
        let mut repo = state.repos.reader().await?;
        let Some(trip) = repo
            .upstream_session()
            .lookup(trip_id)
            .await?
            .filter(|t| t.consumed_at.is_none() && now < t.created_at + TRIP_LASTS)
        else {
            return Ok(Err(stale_trip(state)));
        };
        let link = match trip.link_id {
            Some(link_id) => repo.upstream_link().lookup(link_id).await?,
            None => None,
        };
        (trip, link)
    };
    let Some(link) = link else {
        return Ok(Err(stale_trip(state)));
    };
    let Some((stored, provider)) = load_provider(state, &trip.provider_id.to_string()).await?
    else {
        return Ok(Err(unknown_provider(state)));
    };
    let claims = trip.claims.clone().unwrap_or_default();
    let imported = match mas_upstream::claims::import(&provider.config, &claims) {
        Ok(imported) => imported,
        Err(error) => {
            return Ok(Err(failed(
                state,
                &provider,
                &UpstreamError::IdToken(error.to_string()),
            )));
        }
    };
    Ok(Ok(Returned {
        trip,
        stored,
        provider,
        link,
        imported,
    }))
}

fn locked(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::FORBIDDEN,
        &tr!("upstream-account-locked"),
        &tr!("upstream-account-locked-detail"),
    )
}

/// What the person chose on the registration page.
struct Choice {
    username: String,
    displayname: Option<String>,
    email: Option<String>,
    /// The terms of service accepted (`branding.tos_uri` then).
    terms_url: Option<String>,
}

/// `GET /upstream/link/{trip}`.
#[tracing::instrument(name = "handlers.upstream.link_get", skip_all)]
pub(super) async fn link_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    jar: PrivateCookieJar,
) -> PageResult {
    let back = match returned(&state, &jar, &id).await? {
        Ok(back) => back,
        Err(page) => return Ok(page),
    };
    let (current, linked_user) = {
        let mut repo = state.repos.reader().await?;
        let current = current_session(repo.as_mut(), &jar).await?;
        let linked_user = match back.link.user_id {
            Some(user_id) => repo.user().lookup(user_id).await?,
            None => None,
        };
        (current, linked_user)
    };
    if let Some(user) = linked_user {
        return sign_in(&state, jar, &headers, back, &user, current, None).await;
    }
    if let Some(current) = current {
        return Ok(page(&state, jar, &back, Some(&current), None).await?);
    }
    if let Some(localpart) = back.imported.localpart.forced() {
        let existing = state
            .repos
            .reader()
            .await?
            .user()
            .find_by_username(localpart)
            .await?;
        if let Some(existing) = existing {
            return on_conflict(&state, jar, &headers, back, &existing).await;
        }
    }
    // Terms of service to accept need the page, whatever `skip_confirmation` says.
    if back.provider.config.claims_imports.skip_confirmation && state.tos_uri.is_none() {
        let choice = Choice {
            username: back.imported.localpart.value.clone().unwrap_or_default(),
            displayname: back.imported.displayname.forced().map(str::to_owned),
            email: back.imported.email.forced().map(str::to_owned),
            terms_url: None,
        };
        return register(&state, jar, &headers, ip, back, choice).await;
    }
    Ok(page(&state, jar, &back, None, None).await?)
}

/// The forced localpart is an existing account's: `on_conflict` says what happens.
async fn on_conflict(
    state: &AppState,
    jar: PrivateCookieJar,
    headers: &axum::http::HeaderMap,
    back: Returned,
    existing: &User,
) -> PageResult {
    let policy = back.provider.config.claims_imports.localpart.on_conflict;
    let refuse = || {
        error_page(
            state,
            StatusCode::CONFLICT,
            &tr!("upstream-username-exists"),
            &tr!(
                "upstream-username-exists-detail",
                username = &*existing.username,
                provider = back.provider.config.display_name()
            ),
        )
    };
    if policy == OnConflict::Fail {
        return Ok(refuse());
    }
    if policy == OnConflict::Set {
        let links = state
            .repos
            .reader()
            .await?
            .upstream_link()
            .all_for_user(existing)
            .await?;
        if links.iter().any(|l| l.provider_id == back.stored.id) {
            return Ok(refuse());
        }
    }
    let replace = policy == OnConflict::Replace;
    sign_in(state, jar, headers, back, existing, None, Some(replace)).await
}

/// Opens a browser session for `user` through the trip, ending the one it replaces;
/// `link_first` links the upstream account to `user` first (`Some(true)`: replacing the
/// user's other links to this provider).
async fn sign_in(
    state: &AppState,
    jar: PrivateCookieJar,
    headers: &axum::http::HeaderMap,
    back: Returned,
    user: &User,
    replaces: Option<BrowserSession>,
    link_first: Option<bool>,
) -> PageResult {
    if !user.is_valid() {
        return Ok(locked(state));
    }
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    if let Some(replace) = link_first {
        if replace {
            repo.upstream_link().unlink_user(&back.stored, user).await?;
        }
        // Another trip may have linked this account meanwhile.
        match repo
            .upstream_link()
            .associate(back.link.clone(), user)
            .await
        {
            Ok(_) => {}
            Err(StorageError::Conflict(_)) => return Ok(stale_trip(state)),
            Err(error) => return Err(error.into()),
        }
    }
    let user_agent = user_agent(headers);
    let Some(session) = open(repo.as_mut(), &mut rng, state, user, &back, user_agent).await? else {
        return Ok(stale_trip(state));
    };
    if let Some(previous) = replaces {
        repo.browser_session().finish(clock, previous).await?;
    }
    repo.save().await?;
    Ok(signed_in(state, jar, &back, &session))
}

fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect())
}

/// A browser session for `user`, authenticated by the trip's upstream account, with the
/// trip used up; `None` when the trip was used meanwhile.
async fn open(
    repo: &mut dyn Repository,
    rng: &mut rand::rngs::StdRng,
    state: &AppState,
    user: &User,
    back: &Returned,
    user_agent: Option<String>,
) -> Result<Option<BrowserSession>, StorageError> {
    let clock = state.clock.as_ref();
    let session = repo
        .browser_session()
        .add(rng, clock, user, user_agent)
        .await?;
    repo.browser_session()
        .authenticate_with_upstream(rng, clock, &session, back.link.id)
        .await?;
    if repo
        .upstream_session()
        .consume(clock, back.trip.clone(), &session)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    Ok(Some(session))
}

/// The browser, signed in, on its way to where the trip was going.
fn signed_in(
    state: &AppState,
    jar: PrivateCookieJar,
    back: &Returned,
    session: &BrowserSession,
) -> Response {
    state.activity.record(
        mas_storage::SessionKind::Browser,
        session.id,
        state.clock.now(),
        None,
    );
    let id = back.trip.id.to_string();
    let left: Vec<String> = trips(&jar).into_iter().filter(|t| *t != id).collect();
    let jar = with_trips(state, jar, &left).remove(Cookie::build(LOGGED_OUT_COOKIE).path("/"));
    let jar = remember_session(state, jar, session);
    (jar, see_other(state, &back.trip.next)).into_response()
}

/// The registration page, or (someone signed in) the page that links to their account.
async fn page(
    state: &AppState,
    jar: PrivateCookieJar,
    back: &Returned,
    current: Option<&BrowserSession>,
    error: Option<(StatusCode, &str)>,
) -> Result<Response, StorageError> {
    let (jar, csrf) = csrf_token(state, jar);
    let here = format!("/upstream/link/{}", back.trip.id);
    let username = match current {
        Some(session) => state
            .repos
            .reader()
            .await?
            .user()
            .lookup(session.user_id)
            .await?
            .map(|u| u.username),
        None => None,
    };
    let imported = &back.imported;
    let localpart = imported
        .localpart
        .value
        .clone()
        .filter(|_| imported.localpart.action != ImportAction::Ignore)
        .unwrap_or_default();
    let (status, error) = error.map_or((StatusCode::OK, None), |(s, e)| (s, Some(e)));
    let page = render(
        status,
        "upstream.html",
        minijinja::context! {
            service_name => &*state.service_name,
            provider_name => back.provider.config.display_name(),
            account_name => &imported.account_name,
            mode => if current.is_some() { "link" } else { "register" },
            username,
            error,
            csrf,
            action => state.page_path(&here),
            base => state.page_path("/"),
            back => &here,
            back_param => query_value(&here),
            localpart_fixed => imported.localpart.forced().is_some(),
            mxid => state.homeserver.mxid(&localpart),
            localpart,
            displayname => &imported.displayname.value,
            displayname_action => imported.displayname.action,
            email => &imported.email.value,
            email_action => imported.email.action,
            tos_uri => state.tos_uri.as_deref(),
        },
    );
    Ok((jar, page).into_response())
}

/// `POST /upstream/link/{trip}`: `action=register` (with `username`, and the suggested
/// attributes ticked) or `action=link` (to the account signed in).
#[tracing::instrument(name = "handlers.upstream.link_post", skip_all)]
pub(super) async fn link_post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    if !csrf_valid(&jar, &field("csrf")) {
        return Ok(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            &tr!("common-invalid-request"),
            &tr!("common-form-expired-go-back"),
        ));
    }
    let back = match returned(&state, &jar, &id).await? {
        Ok(back) => back,
        Err(page) => return Ok(page),
    };
    if back.link.user_id.is_some() {
        // Linked meanwhile (another tab): the GET signs in.
        return Ok(see_other(&state, &format!("/upstream/link/{id}")));
    }
    let (current, current_user) = {
        let mut repo = state.repos.reader().await?;
        let current = current_session(repo.as_mut(), &jar).await?;
        let user = match &current {
            Some(session) => repo.user().lookup(session.user_id).await?,
            None => None,
        };
        (current, user)
    };
    match (field("action").as_str(), current, current_user) {
        ("link", Some(current), Some(user)) => {
            sign_in(
                &state,
                jar,
                &headers,
                back,
                &user,
                Some(current),
                Some(false),
            )
            .await
        }
        ("register", None, _) => {
            let imported = &back.imported;
            let ticked = |name: &str| field(name) == "on";
            let pick = |attribute: &mas_upstream::Attribute, tick: &str| {
                attribute.forced().map(str::to_owned).or_else(|| {
                    attribute
                        .suggested()
                        .filter(|_| ticked(tick))
                        .map(str::to_owned)
                })
            };
            if state.tos_uri.is_some() && !ticked("accept_terms") {
                let message = tr!("common-accept-terms");
                let refused = (StatusCode::BAD_REQUEST, message.as_str());
                return Ok(page(&state, jar, &back, None, Some(refused)).await?);
            }
            let choice = Choice {
                username: imported
                    .localpart
                    .forced()
                    .map_or_else(|| field("username"), str::to_owned),
                displayname: pick(&imported.displayname, "import_displayname"),
                email: pick(&imported.email, "import_email"),
                terms_url: state.tos_uri.as_deref().map(str::to_owned),
            };
            register(&state, jar, &headers, ip, back, choice).await
        }
        // The page was for another situation (signed in or out since): show it again.
        _ => Ok(see_other(&state, &format!("/upstream/link/{id}"))),
    }
}

/// Creates the account, links the upstream account to it and signs it in.
async fn register(
    state: &AppState,
    jar: PrivateCookieJar,
    headers: &axum::http::HeaderMap,
    ip: Option<std::net::IpAddr>,
    back: Returned,
    choice: Choice,
) -> PageResult {
    if !mas_data_model::is_valid_localpart(&choice.username) {
        let message = tr!("upstream-invalid-username", username = &*choice.username);
        return Ok(page(
            state,
            jar,
            &back,
            None,
            Some((StatusCode::BAD_REQUEST, &message)),
        )
        .await?);
    }
    // `policy.data`, as for /register: the requester, the name, the address.
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let policy = &state.policy;
    let refused = if policy.is_requester_banned(ip, user_agent) {
        Some(mas_oauth_core::policy::Violation::RequesterBanned)
    } else {
        let mut found = policy.check_username(&choice.username);
        if let Some(email) = &choice.email {
            found.extend(policy.check_email(email));
        }
        found.into_iter().next()
    };
    if let Some(violation) = refused {
        let message = crate::i18n::violation(&violation);
        return Ok(page(
            state,
            jar,
            &back,
            None,
            Some((StatusCode::FORBIDDEN, &message)),
        )
        .await?);
    }
    if let Some((status, message)) =
        super::register::may_register(state, &choice.username, ip, true).await?
    {
        return Ok(page(state, jar, &back, None, Some((status, &message))).await?);
    }
    let created = create(state, headers, &back, &choice).await;
    match created {
        Ok(Registered::Done(done)) => {
            let (user, session) = *done;
            tracing::info!(user = %user.id, provider = %back.provider.id, "account created through an upstream provider");
            Ok(signed_in(state, jar, &back, &session))
        }
        Ok(Registered::NameTaken) | Err(StorageError::Conflict(_)) => {
            let message = tr!("common-username-taken");
            let taken = (StatusCode::CONFLICT, message.as_str());
            Ok(page(state, jar, &back, None, Some(taken)).await?)
        }
        Ok(Registered::Stale) => Ok(stale_trip(state)),
        Err(error) => Err(error.into()),
    }
}

/// How a registration through a provider ended.
enum Registered {
    /// The account was made and signed in.
    Done(Box<(User, BrowserSession)>),
    /// The username was taken meanwhile.
    NameTaken,
    /// The trip was used, or the upstream account linked, meanwhile.
    Stale,
}

/// Creates the account in one unit of work: the user, the address (unless another account
/// has it), the link, the browser session, and the provisioning job.
async fn create(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    back: &Returned,
    choice: &Choice,
) -> Result<Registered, StorageError> {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    if repo
        .user()
        .find_by_username(&choice.username)
        .await?
        .is_some()
    {
        return Ok(Registered::NameTaken);
    }
    let user = repo.user().add(&mut rng, clock, &choice.username).await?;
    if let Some(email) = &choice.email
        && repo.user_email().find_by_email(email).await?.is_none()
    {
        repo.user_email().add(&mut rng, clock, &user, email).await?;
    }
    if let Some(url) = &choice.terms_url {
        repo.user_registration()
            .accept_terms(&mut rng, clock, &user, url)
            .await?;
    }
    match repo
        .upstream_link()
        .associate(back.link.clone(), &user)
        .await
    {
        Ok(_) => {}
        Err(StorageError::Conflict(_)) => return Ok(Registered::Stale),
        Err(error) => return Err(error),
    }
    let Some(session) = open(
        repo.as_mut(),
        &mut rng,
        state,
        &user,
        back,
        user_agent(headers),
    )
    .await?
    else {
        return Ok(Registered::Stale);
    };
    let job = mas_storage::jobs::HomeserverJob::ProvisionUser {
        user_id: user.id,
        display_name: choice.displayname.clone(),
        avatar_url: None,
    };
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    Ok(Registered::Done(Box::new((user, session))))
}
