//! `GET|POST /login` and `POST /logout`.

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_oauth_core::params::Params;
use mas_oauth_core::passwords::Verified;
use serde::Deserialize;

use super::{
    PageResult, csrf_token, csrf_valid, current_session, error_page, forget_session,
    remember_session, render, safe_next, see_other,
};
use crate::AppState;
use crate::rate_limit::Throttled;

/// A form posted by a page: refused with an HTML page, never JSON.
pub(crate) struct PageForm(pub(crate) Params);

impl<S: Send + Sync> FromRequest<S> for PageForm {
    type Rejection = super::PageError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        match crate::oauth2::read_form(request).await {
            Ok((params, _)) => Ok(Self(params)),
            Err(rejection) => {
                let detail = match rejection.status {
                    StatusCode::PAYLOAD_TOO_LARGE => tr!("page-form-too-large"),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => tr!("page-form-not-a-form"),
                    StatusCode::REQUEST_TIMEOUT => tr!("page-form-too-slow"),
                    _ => tr!("page-form-unreadable"),
                };
                Err(super::PageError::Invalid(rejection.status, detail))
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    pub(super) next: Option<String>,
}

async fn login_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let (jar, csrf) = csrf_token(state, jar);
    // The providers' buttons are a convenience: the page works without them.
    let providers = super::upstream::buttons(state)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot list the upstream providers");
            Vec::new()
        });
    let page = render(
        status,
        "login.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf, next, username, error,
            registration_open => state.oauth.registration_open,
            passwords_enabled => state.passwords.is_enabled(),
            login_with_email => state.account.login_with_email_allowed,
            recovery => state.account.password_recovery_enabled,
            providers,
            next_param => super::query_value(next),
            base => state.page_path("/"),
        },
    );
    (jar, page).into_response()
}

#[derive(Deserialize)]
pub(super) struct LoginPageQuery {
    next: Option<String>,
    /// Set when a flow needs a fresh password even from someone signed in.
    #[serde(default)]
    reauth: bool,
}

#[tracing::instrument(name = "handlers.login.get", skip_all)]
pub(super) async fn get(
    State(state): State<AppState>,
    query: Result<Query<LoginPageQuery>, axum::extract::rejection::QueryRejection>,
    jar: PrivateCookieJar,
) -> PageResult {
    let (next, reauth) = match query {
        Ok(Query(q)) => (safe_next(q.next.as_deref()), q.reauth),
        Err(_) => (safe_next(None), false),
    };
    let signed_in = {
        let mut repo = state.repos.reader().await?;
        match current_session(repo.as_mut(), &jar).await? {
            Some(session) => repo.user().lookup(session.user_id).await?,
            None => None,
        }
    };
    match signed_in {
        // Someone signed in continues as themselves, or signs out; a flow that needs
        // the password again asks for it, with the name fixed.
        Some(user) if reauth => {
            Ok(login_page(&state, jar, StatusCode::OK, &next, &user.username, None).await)
        }
        Some(user) => {
            let (jar, csrf) = csrf_token(&state, jar);
            let page = render(
                StatusCode::OK,
                "continue.html",
                minijinja::context! {
                    service_name => &*state.service_name, csrf,
                    username => &user.username,
                    mxid => state.homeserver.mxid(&user.username),
                    next => state.page_path(&next),
                    local_next => &next,
                    base => state.page_path("/"),
                },
            );
            Ok((jar, page).into_response())
        }
        None => Ok(login_page(&state, jar, StatusCode::OK, &next, "", None).await),
    }
}

/// `GET /`: a person's account when signed in, the sign-in page otherwise.
#[tracing::instrument(name = "handlers.index", skip_all)]
pub(super) async fn index(State(state): State<AppState>, jar: PrivateCookieJar) -> PageResult {
    let mut repo = state.repos.reader().await?;
    let target = match current_session(repo.as_mut(), &jar).await? {
        Some(_) => "/account/",
        None => "/login",
    };
    Ok(see_other(&state, target))
}

/// [`post`], counted by outcome: a redirect is a sign-in, 429 a throttled attempt,
/// anything else a failure (a wrong password, an expired form).
#[tracing::instrument(name = "handlers.login.post", skip_all)]
pub(super) async fn counted_post(
    state: State<AppState>,
    ip: crate::rate_limit::ClientIp,
    headers: axum::http::HeaderMap,
    jar: PrivateCookieJar,
    form: PageForm,
) -> PageResult {
    let result = post(state, ip, headers, jar, form).await;
    let outcome = match &result {
        Ok(response) if response.status().is_redirection() => "success",
        Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => "throttled",
        _ => "failure",
    };
    crate::metrics::login_attempt("web", outcome);
    result
}

#[allow(clippy::too_many_lines)] // One linear story: check, verify, open the session.
async fn post(
    State(state): State<AppState>,
    crate::rate_limit::ClientIp(ip): crate::rate_limit::ClientIp,
    headers: axum::http::HeaderMap,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let (next, username, password) = (
        safe_next(Some(&field("next"))),
        field("username"),
        field("password"),
    );
    if !csrf_valid(&jar, &field("csrf")) {
        let message = tr!("common-form-expired");
        return Ok(login_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            &next,
            &username,
            Some(&message),
        )
        .await);
    }
    if !state.passwords.is_enabled() {
        return Ok(error_page(
            &state,
            StatusCode::FORBIDDEN,
            &tr!("login-passwords-disabled"),
            &tr!("login-passwords-disabled-detail"),
        ));
    }
    let throttled = state
        .rate_limits
        .login_from(ip)
        .map_err(Throttled::Wait)
        .and_then(|()| state.rate_limits.login_as(&username));
    match throttled {
        Ok(()) => {}
        Err(Throttled::Wait(wait)) => {
            let message = super::try_again(msg!("throttle-attempts"), wait);
            return Ok(login_page(
                &state,
                jar,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &username,
                Some(&message),
            )
            .await);
        }
        // Not echoed back: it could be a megabyte.
        Err(Throttled::UsernameTooLong) => {
            let message = tr!("login-username-too-long");
            return Ok(login_page(
                &state,
                jar,
                StatusCode::BAD_REQUEST,
                &next,
                "",
                Some(&message),
            )
            .await);
        }
    }
    // The one answer to every wrong sign-in, whatever was wrong.
    let refused = async |jar| {
        let wrong = tr!("login-wrong-credentials");
        login_page(
            &state,
            jar,
            StatusCode::UNAUTHORIZED,
            &next,
            &username,
            Some(&wrong),
        )
        .await
    };
    // Read, hash with no connection held, then write: a sign-in must not hold a
    // connection (on SQLite, the write lock) while argon2id runs.
    let (found, previous) = {
        let mut repo = state.repos.reader().await?;
        let found = find_account(&state, repo.as_mut(), &username).await?;
        (found, current_session(repo.as_mut(), &jar).await?)
    };
    // Signing in by address must not double the account's own attempts. Past them, the
    // answer is the one an unknown address gets: a different one would tell that the
    // address belongs to the account whose attempts someone used up.
    if let Some((user, _)) = &found
        && user.username != username
        && state.rate_limits.login_as(&user.username).is_err()
    {
        state.passwords.verify_decoy(password).await;
        return Ok(refused(jar).await);
    }
    let Some((user, Some(stored))) = found else {
        state.passwords.verify_decoy(password).await;
        return Ok(refused(jar).await);
    };
    let Ok(verified) = state
        .passwords
        .verify(stored.version, stored.hashed_password.clone(), password)
        .await
    else {
        return Ok(refused(jar).await);
    };
    if !user.is_valid() {
        let message = tr!("login-account-locked");
        return Ok(login_page(
            &state,
            jar,
            StatusCode::FORBIDDEN,
            &next,
            &username,
            Some(&message),
        )
        .await);
    }
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect::<String>());
    let opened = open_session(&state, &user, stored, verified, user_agent, previous).await?;
    let Some(session) = opened else {
        // The password changed while it was being checked: the one given is the old one.
        return Ok(refused(jar).await);
    };
    state.activity.record(
        mas_storage::SessionKind::Browser,
        session.id,
        state.clock.now(),
        ip.map(|ip| ip.to_string()),
    );
    Ok((
        remember_session(&state, jar, &session),
        see_other(&state, &next),
    )
        .into_response())
}

/// The account a sign-in names, with its current password: by username, or, when
/// `account.login_with_email_allowed`, by one of its email addresses (usernames never
/// hold `@`, and a Matrix ID starts with one). An unknown address is answered as an
/// unknown username is, so the form tells no one which addresses have accounts.
async fn find_account(
    state: &AppState,
    repo: &mut dyn mas_storage::Repository,
    typed: &str,
) -> Result<
    Option<(mas_data_model::User, Option<mas_data_model::Password>)>,
    mas_storage::StorageError,
> {
    let by_email =
        state.account.login_with_email_allowed && !typed.starts_with('@') && typed.contains('@');
    if !by_email {
        return repo.user_password().find_user_with_active(typed).await;
    }
    let Some(email) = repo.user_email().find_by_email(typed).await? else {
        return Ok(None);
    };
    let Some(user) = repo.user().lookup(email.user_id).await? else {
        return Ok(None);
    };
    repo.user_password()
        .find_user_with_active(&user.username)
        .await
}

/// Stores a browser session authenticated by `stored`, re-hashed first when its scheme
/// is outdated, in one unit of work; `None` when `stored` is no longer the user's
/// password (changed while it was being checked, with no connection held). The session
/// this browser had (`replaces`) ends with it: its cookie is about to be replaced, so
/// nothing could use or end it any more.
pub(crate) async fn open_session(
    state: &AppState,
    user: &mas_data_model::User,
    stored: mas_data_model::Password,
    verified: Verified,
    user_agent: Option<String>,
    replaces: Option<mas_data_model::BrowserSession>,
) -> Result<Option<mas_data_model::BrowserSession>, mas_storage::StorageError> {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let current = repo.user_password().active(user).await?;
    if current.map(|p| p.id) != Some(stored.id) {
        return Ok(None);
    }
    let password = match verified {
        Verified::Current => stored,
        Verified::Upgrade { version, hash } => {
            repo.user_password()
                .add(&mut rng, clock, user, version, hash, Some(&stored))
                .await?
        }
    };
    let session = repo
        .browser_session()
        .add(&mut rng, clock, user, user_agent)
        .await?;
    repo.browser_session()
        .authenticate_with_password(&mut rng, clock, &session, &password)
        .await?;
    if let Some(previous) = replaces {
        repo.browser_session().finish(clock, previous).await?;
    }
    repo.save().await?;
    Ok(Some(session))
}

#[tracing::instrument(name = "handlers.logout", skip_all)]
pub(super) async fn logout(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    if !csrf_valid(&jar, form.get("csrf").ok().flatten().unwrap_or_default()) {
        return Ok(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            &tr!("common-invalid-request"),
            &tr!("common-form-expired"),
        ));
    }
    // Only a session that is really finished lets the cookie go: on a failure the person
    // sees it and is still signed in, rather than believing they signed out.
    let mut repo = state.repos.begin().await?;
    if let Some(session) = current_session(repo.as_mut(), &jar).await? {
        let user = repo.user().lookup(session.user_id).await?;
        let ended = repo
            .browser_session()
            .finish(state.clock.as_ref(), session)
            .await?;
        repo.save().await?;
        if let Some(user) = user {
            super::rp_logout::notify(&state, &user, &[ended]).await;
        }
    }
    let back = match form.get("next").ok().flatten() {
        Some(next) => format!("/login?next={}", super::query_value(&safe_next(Some(next)))),
        None => "/login".to_owned(),
    };
    // Read by the upstream providers' `logged_out` template variable.
    let jar = forget_session(jar).add(super::cookie(
        &state,
        super::upstream::LOGGED_OUT_COOKIE,
        "1".to_owned(),
    ));
    Ok((jar, see_other(&state, &back)).into_response())
}
