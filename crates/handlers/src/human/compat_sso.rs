//! `/complete-compat-sso/{id}`: the page a legacy Matrix client's SSO login lands on.
//! A signed-in person confirms, a compatibility session is made with a fresh device ID,
//! and the browser goes back to the client with a one-time `loginToken` that the client
//! exchanges at `POST /login` (`m.login.token`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_data_model::{BrowserSession, CompatSsoLogin};
use mas_storage::StorageError;

use super::login::PageForm;
use super::{
    PageError, PageResult, csrf_token, csrf_valid, error_page, redirect_to, render, signed_in,
};
use crate::AppState;

/// How long a started SSO login may wait for the person.
const PENDING_FOR: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

fn expired(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        &tr!("compat-expired"),
        &tr!("compat-expired-detail"),
    )
}

/// The login, if it is still waiting for the person.
async fn pending(state: &AppState, id: &str) -> Result<Option<CompatSsoLogin>, StorageError> {
    let Ok(id) = id.parse::<ulid::Ulid>() else {
        return Ok(None);
    };
    let mut repo = state.repos.reader().await?;
    let now = state.clock.now();
    Ok(repo
        .compat_sso_login()
        .lookup(id)
        .await?
        .filter(|l| l.fulfilled_at.is_none() && now < l.created_at + PENDING_FOR))
}

/// The person's browser session and the login still waiting for them; otherwise the
/// page to show (log in first, expired, or a storage error).
async fn signed_in_and_pending(
    state: &AppState,
    jar: &PrivateCookieJar,
    id: &str,
) -> Result<(BrowserSession, CompatSsoLogin), PageError> {
    let browser = signed_in(state, jar, &format!("/complete-compat-sso/{id}")).await?;
    match pending(state, id).await? {
        Some(login) => Ok((browser, login)),
        None => Err(expired(state).into()),
    }
}

#[tracing::instrument(name = "handlers.compat_sso.get", skip_all)]
pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _: super::Welcome,
    jar: PrivateCookieJar,
) -> PageResult {
    let (browser, login) = signed_in_and_pending(&state, &jar, &id).await?;
    let Some(user) = state
        .repos
        .reader()
        .await?
        .user()
        .lookup(browser.user_id)
        .await?
    else {
        return Ok(expired(&state));
    };
    let (jar, csrf) = csrf_token(&state, jar);
    let page = render(
        StatusCode::OK,
        "compat_sso.html",
        minijinja::context! {
            service_name => &*state.service_name,
            username => user.username,
            redirect_host => &login.redirect_uri[..url::Position::AfterPath],
            action => state.page_path(&format!("/complete-compat-sso/{}", login.id)),
            csrf,
        },
    );
    Ok((jar, page).into_response())
}

#[tracing::instrument(name = "handlers.compat_sso.post", skip_all)]
pub(super) async fn post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _: super::Welcome,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    if !csrf_valid(&jar, form.get("csrf").ok().flatten().unwrap_or_default()) {
        return Ok(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            &tr!("common-invalid-request"),
            &tr!("common-form-expired-go-back"),
        ));
    }
    let (browser, login) = signed_in_and_pending(&state, &jar, &id).await?;
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let login_token = mas_oauth_core::tokens::random_string(&mut rng, 32);
    let result: Result<Option<url::Url>, StorageError> = async {
        let mut repo = state.repos.begin().await?;
        let Some(user) = repo
            .user()
            .lookup(browser.user_id)
            .await?
            .filter(mas_data_model::User::is_valid)
        else {
            return Ok(None);
        };
        let device_id = crate::compat::new_device_id();
        let session = repo
            .compat_session()
            .add(
                &mut rng,
                clock,
                &user,
                Some(device_id),
                Some(browser.id),
                false,
                None,
            )
            .await?;
        let Some(done) = repo
            .compat_sso_login()
            .fulfill(clock, login, &session, &login_token)
            .await?
        else {
            return Ok(None);
        };
        repo.save().await?;
        let mut back = done.redirect_uri;
        back.query_pairs_mut()
            .append_pair("loginToken", &login_token);
        Ok(Some(back))
    }
    .await;
    Ok(match result? {
        Some(back) => redirect_to(back.as_str()),
        None => expired(&state),
    })
}
