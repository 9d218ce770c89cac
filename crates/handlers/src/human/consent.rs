//! `GET|POST /consent/{grant}`: the person allows or denies a client.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_data_model::{AuthorizationGrant, BrowserSession};
use mas_oauth_core::authorize::{self, Redirect};
use mas_storage::{BoxRepository, Repository, StorageError};

use super::login::PageForm;
use super::{
    PageError, PageResult, csrf_token, csrf_valid, current_session, deliver, deliver_unattended,
    describe_scopes, error_page, render, see_other,
};
use crate::AppState;

/// Where a grant stands for this browser.
pub(super) enum Step {
    /// Log in first.
    Login,
    /// Give the password again first: the grant wants a newer sign-in than this one.
    Reauth,
    /// Ask, with this session and grant.
    Ask(Box<(BrowserSession, AuthorizationGrant)>),
    /// The grant cannot be used any more.
    Gone,
    /// Nobody is signed in and the client asked for a new account (`prompt=create`).
    Register,
}

pub(super) async fn step(
    state: &AppState,
    repo: &mut dyn Repository,
    jar: &PrivateCookieJar,
    grant_id: &str,
) -> Result<Step, StorageError> {
    let Ok(id) = grant_id.parse::<ulid::Ulid>() else {
        return Ok(Step::Gone);
    };
    let Some(grant) = repo.authorization_grant().lookup(id).await? else {
        return Ok(Step::Gone);
    };
    let now = state.clock.now();
    if !authorize::awaits_answer(&grant, now) {
        return Ok(Step::Gone);
    }
    let Some(session) = current_session(repo, jar).await? else {
        if authorize::asks_for_new_account(&grant) && state.oauth.registration_open {
            return Ok(Step::Register);
        }
        return Ok(Step::Login);
    };
    let last = repo.browser_session().last_authentication(&session).await?;
    if authorize::needs_new_sign_in(&grant, last.map(|a| a.created_at), now) {
        return Ok(Step::Reauth);
    }
    Ok(Step::Ask(Box::new((session, grant))))
}

/// Sends the person to `page` (login or registration), to come back to this grant.
fn first(state: &AppState, page: &str, grant_id: &str) -> Response {
    let next = super::query_value(&format!("/consent/{grant_id}"));
    let separator = if page.ends_with('&') { "" } else { "?" };
    see_other(state, &format!("/{page}{separator}next={next}"))
}

fn gone(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        &tr!("consent-expired"),
        &tr!("consent-expired-detail"),
    )
}

/// The grant this browser may answer now, or the page to go to first.
async fn answerable(
    state: &AppState,
    repo: &mut dyn Repository,
    jar: &PrivateCookieJar,
    grant_id: &str,
) -> Result<(BrowserSession, AuthorizationGrant), PageError> {
    Ok(match step(state, repo, jar, grant_id).await? {
        Step::Ask(found) => *found,
        Step::Login => return Err(first(state, "login", grant_id).into()),
        Step::Reauth => return Err(first(state, "login?reauth=true&", grant_id).into()),
        Step::Register => return Err(first(state, "register", grant_id).into()),
        Step::Gone => return Err(gone(state).into()),
    })
}

#[tracing::instrument(name = "handlers.consent.get", skip_all)]
pub(super) async fn get(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    _: super::Welcome,
    jar: PrivateCookieJar,
) -> PageResult {
    let mut repo = state.repos.begin().await?;
    let (session, grant) = answerable(&state, repo.as_mut(), &jar, &grant_id).await?;
    let client = repo.client().lookup(grant.client_id).await?;
    let user = repo.user().lookup(session.user_id).await?;
    let (Some(client), Some(user)) = (client, user) else {
        return Ok(gone(&state));
    };
    if authorize::consent_remembered(repo.as_mut(), session.user_id, &grant).await? {
        let Some(redirect) = answered_once(decide(&state, repo, &session, grant, true).await)?
        else {
            return Ok(gone(&state));
        };
        return Ok(deliver_unattended(&state, &client, &redirect));
    }
    let (jar, csrf) = csrf_token(&state, jar);
    let scopes = describe_scopes(&grant.scope);
    let page = render(
        StatusCode::OK,
        "consent.html",
        minijinja::context! {
            service_name => &*state.service_name,
            client_name => client.name.unwrap_or_else(|| client.id.to_string()),
            client_uri => client.client_uri.map(|u| u.to_string()),
            unverified => client.kind != mas_data_model::ClientKind::Static,
            username => user.username,
            scopes,
            action => state.page_path(&format!("/consent/{}", grant.id)),
            csrf,
        },
    );
    Ok((jar, page).into_response())
}

#[tracing::instrument(name = "handlers.consent.post", skip_all)]
pub(super) async fn post(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
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
    let allow = match form.get("action").ok().flatten() {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return Ok(error_page(
                &state,
                StatusCode::BAD_REQUEST,
                &tr!("common-invalid-request"),
                &tr!("common-choose-allow-or-deny"),
            ));
        }
    };
    let mut repo = state.repos.begin().await?;
    let (session, grant) = answerable(&state, repo.as_mut(), &jar, &grant_id).await?;
    let Some(redirect) = answered_once(decide(&state, repo, &session, grant, allow).await)? else {
        return Ok(gone(&state));
    };
    Ok(deliver(&redirect))
}

/// The answer, or `None` when another answer to the grant won a race (a second tab, a
/// double click): that person is shown the request as done, not an error.
fn answered_once(
    decided: Result<Redirect, StorageError>,
) -> Result<Option<Redirect>, StorageError> {
    match decided {
        Ok(redirect) => Ok(Some(redirect)),
        Err(StorageError::InvalidData { table, reason }) => {
            tracing::info!(table, reason, "the request was answered meanwhile");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Answers the client: fulfils the grant with a new session (`allow`), or cancels it.
/// Commits `repo`.
pub(super) async fn decide(
    state: &AppState,
    mut repo: BoxRepository,
    session: &BrowserSession,
    grant: AuthorizationGrant,
    allow: bool,
) -> Result<Redirect, StorageError> {
    let issuer = state.oauth.endpoints.issuer.clone();
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();

    let answer = mas_oauth_core::authorize::answer(
        repo.as_mut(),
        &mut rng,
        clock,
        &state.policy,
        &issuer,
        session,
        grant,
        allow,
    );
    let redirect = answer.await?;
    repo.save().await?;
    Ok(redirect)
}
