//! `GET|POST /login` and `POST /logout`.

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_oauth_core::params::Params;
use mas_oauth_core::passwords::Verified;
use serde::Deserialize;

use super::{
    csrf_token, csrf_valid, current_session, error_page, forget_session, remember_session, render,
    safe_next, see_other, storage_error_page,
};
use crate::AppState;
use crate::rate_limit::Throttled;

/// A form posted by a page: refused with an HTML page, never JSON.
pub(crate) struct PageForm(pub(crate) Params);

impl<S: Send + Sync> FromRequest<S> for PageForm {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        match crate::oauth2::read_form(request).await {
            Ok((params, _)) => Ok(Self(params)),
            Err(rejection) => Err((
                rejection.status,
                axum::response::Html(format!(
                    "<!DOCTYPE html><title>Invalid request</title><h1>Invalid request</h1><p>{}</p>",
                    minijinja::HtmlEscape(&rejection.description)
                )),
            )
                .into_response()),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    pub(super) next: Option<String>,
}

fn login_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let (jar, csrf) = csrf_token(state, jar);
    let page = render(
        status,
        "login.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf, next, username, error,
            registration_open => state.oauth.registration_open,
            next_param => super::query_value(next),
            base => state.page_path("/"),
        },
    );
    (jar, page).into_response()
}

#[tracing::instrument(name = "handlers.login.get", skip_all)]
pub(super) async fn get(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
    jar: PrivateCookieJar,
) -> Response {
    let next = safe_next(query.ok().and_then(|Query(q)| q.next).as_deref());
    login_page(&state, jar, StatusCode::OK, &next, "", None)
}

#[tracing::instrument(name = "handlers.login.post", skip_all)]
#[allow(clippy::too_many_lines)] // One linear story: check, verify, open the session.
pub(super) async fn post(
    State(state): State<AppState>,
    crate::rate_limit::ClientIp(ip): crate::rate_limit::ClientIp,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> Response {
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let (next, username, password) = (
        safe_next(Some(&field("next"))),
        field("username"),
        field("password"),
    );
    if !csrf_valid(&jar, &field("csrf")) {
        return login_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            &next,
            &username,
            Some("The form expired. Please try again."),
        );
    }
    if !state.passwords.is_enabled() {
        return error_page(
            &state,
            StatusCode::FORBIDDEN,
            "Password login is disabled",
            "This service does not accept passwords.",
        );
    }
    let throttled = state
        .rate_limits
        .login_from(ip)
        .map_err(Throttled::Wait)
        .and_then(|()| state.rate_limits.login_as(&username));
    match throttled {
        Ok(()) => {}
        Err(Throttled::Wait(wait)) => {
            let message = format!(
                "Too many attempts. Try again in {} seconds.",
                wait.as_secs().max(1)
            );
            return login_page(
                &state,
                jar,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &username,
                Some(&message),
            );
        }
        // Not echoed back: it could be a megabyte.
        Err(Throttled::UsernameTooLong) => {
            return login_page(
                &state,
                jar,
                StatusCode::BAD_REQUEST,
                &next,
                "",
                Some("That username is too long."),
            );
        }
    }
    let mut repo = match state.repos.begin().await {
        Ok(repo) => repo,
        Err(error) => return storage_error_page(&state, &error),
    };
    let wrong = "Wrong username or password.";
    let user = match repo.user().find_by_username(&username).await {
        Ok(user) => user,
        Err(error) => return storage_error_page(&state, &error),
    };
    let stored = match &user {
        Some(user) => match repo.user_password().active(user).await {
            Ok(stored) => stored,
            Err(error) => return storage_error_page(&state, &error),
        },
        None => None,
    };
    let (Some(user), Some(stored)) = (user, stored) else {
        state.passwords.verify_decoy(password).await;
        return login_page(
            &state,
            jar,
            StatusCode::UNAUTHORIZED,
            &next,
            &username,
            Some(wrong),
        );
    };
    let Ok(verified) = state
        .passwords
        .verify(stored.version, stored.hashed_password.clone(), password)
        .await
    else {
        return login_page(
            &state,
            jar,
            StatusCode::UNAUTHORIZED,
            &next,
            &username,
            Some(wrong),
        );
    };
    if !user.is_valid() {
        return login_page(
            &state,
            jar,
            StatusCode::FORBIDDEN,
            &next,
            &username,
            Some("This account is locked or deactivated."),
        );
    }
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let result: Result<_, mas_storage::StorageError> = async {
        let password = match verified {
            Verified::Current => stored,
            Verified::Upgrade { version, hash } => {
                repo.user_password()
                    .add(&mut rng, clock, &user, version, hash, Some(&stored))
                    .await?
            }
        };
        let session = repo
            .browser_session()
            .add(&mut rng, clock, &user, None)
            .await?;
        repo.browser_session()
            .authenticate_with_password(&mut rng, clock, &session, &password)
            .await?;
        repo.save().await?;
        Ok(session)
    }
    .await;
    match result {
        Ok(session) => (
            remember_session(&state, jar, &session),
            see_other(&state, &next),
        )
            .into_response(),
        Err(error) => storage_error_page(&state, &error),
    }
}

#[tracing::instrument(name = "handlers.logout", skip_all)]
pub(super) async fn logout(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> Response {
    if !csrf_valid(&jar, form.get("csrf").ok().flatten().unwrap_or_default()) {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The form expired. Please try again.",
        );
    }
    if let Ok(mut repo) = state.repos.begin().await
        && let Ok(Some(session)) = current_session(repo.as_mut(), &jar).await
    {
        let _ = repo
            .browser_session()
            .finish(state.clock.as_ref(), session)
            .await;
        let _ = repo.save().await;
    }
    (forget_session(jar), see_other(&state, "/login")).into_response()
}
