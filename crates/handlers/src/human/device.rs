//! `/link` (enter a device's code) and `/device/{grant}` (allow or deny it).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_data_model::BrowserSession;
use mas_oauth_core::device::{awaits_answer, normalise_user_code};
use serde::Deserialize;

use super::login::PageForm;
use super::{
    csrf_token, csrf_valid, current_session, error_page, render, see_other, storage_error_page,
    throttled,
};
use crate::AppState;
use crate::rate_limit::{ClientIp, PerAddress};

#[derive(Deserialize)]
pub(super) struct LinkQuery {
    code: Option<String>,
}

fn link_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    code: &str,
    error: Option<&str>,
) -> Response {
    let (jar, csrf) = csrf_token(state, jar);
    let page = render(
        status,
        "link.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf, code, error,
            base => state.page_path("/"),
        },
    );
    (jar, page).into_response()
}

pub(super) fn login_first(state: &AppState, path: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    see_other(state, &format!("/login?next={next}"))
}

pub(super) async fn session(
    state: &AppState,
    jar: &PrivateCookieJar,
) -> Result<Option<BrowserSession>, Response> {
    let mut repo = state
        .repos
        .reader()
        .await
        .map_err(|e| storage_error_page(state, &e))?;
    current_session(repo.as_mut(), jar)
        .await
        .map_err(|e| storage_error_page(state, &e))
}

#[tracing::instrument(name = "handlers.link.get", skip_all)]
pub(super) async fn link_get(
    State(state): State<AppState>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
    jar: PrivateCookieJar,
) -> Response {
    let code = query
        .ok()
        .and_then(|Query(q)| q.code)
        .map(|c| normalise_user_code(&c))
        .unwrap_or_default();
    match session(&state, &jar).await {
        Ok(Some(_)) => link_page(&state, jar, StatusCode::OK, &code, None),
        Ok(None) if code.is_empty() => login_first(&state, "/link"),
        Ok(None) => login_first(&state, &format!("/link?code={code}")),
        Err(page) => page,
    }
}

#[tracing::instrument(name = "handlers.link.post", skip_all)]
pub(super) async fn link_post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> Response {
    let code = normalise_user_code(form.get("code").ok().flatten().unwrap_or_default());
    if !csrf_valid(&jar, form.get("csrf").ok().flatten().unwrap_or_default()) {
        return link_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            &code,
            Some("The form expired. Please try again."),
        );
    }
    match session(&state, &jar).await {
        Ok(Some(_)) => {}
        Ok(None) => return login_first(&state, "/link"),
        Err(page) => return page,
    }
    // User codes are short: guesses are throttled (`rate_limiting.device_code_link`).
    if let Some(message) = throttled(&state, PerAddress::DeviceLink, ip, "codes") {
        return link_page(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            &code,
            Some(&message),
        );
    }
    let mut repo = match state.repos.reader().await {
        Ok(repo) => repo,
        Err(error) => return storage_error_page(&state, &error),
    };
    let found = repo.device_code_grant().find_by_user_code(&code).await;
    match found {
        Ok(Some(grant)) if awaits_answer(&grant, state.clock.now()) => {
            see_other(&state, &format!("/device/{}", grant.id))
        }
        Ok(_) => link_page(
            &state,
            jar,
            StatusCode::NOT_FOUND,
            &code,
            Some("This code is unknown or has expired."),
        ),
        Err(error) => storage_error_page(&state, &error),
    }
}

#[tracing::instrument(name = "handlers.device.get", skip_all)]
pub(super) async fn device_get(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    jar: PrivateCookieJar,
) -> Response {
    let Some(session) = (match session(&state, &jar).await {
        Ok(session) => session,
        Err(page) => return page,
    }) else {
        return login_first(&state, &format!("/device/{grant_id}"));
    };
    let mut repo = match state.repos.reader().await {
        Ok(repo) => repo,
        Err(error) => return storage_error_page(&state, &error),
    };
    let Ok(id) = grant_id.parse::<ulid::Ulid>() else {
        return gone(&state);
    };
    let grant = match repo.device_code_grant().lookup(id).await {
        Ok(Some(grant)) if awaits_answer(&grant, state.clock.now()) => grant,
        Ok(_) => return gone(&state),
        Err(error) => return storage_error_page(&state, &error),
    };
    let client = repo.client().lookup(grant.client_id).await;
    let user = repo.user().lookup(session.user_id).await;
    let (client, user) = match (client, user) {
        (Ok(Some(client)), Ok(Some(user))) => (client, user),
        (Err(error), _) | (_, Err(error)) => return storage_error_page(&state, &error),
        _ => return gone(&state),
    };
    let (jar, csrf) = csrf_token(&state, jar);
    let scopes: Vec<&str> = grant.scope.split(' ').collect();
    let page = render(
        StatusCode::OK,
        "consent.html",
        minijinja::context! {
            service_name => &*state.service_name,
            client_name => client.name.unwrap_or_else(|| client.id.to_string()),
            client_uri => client.client_uri.map(|u| u.to_string()),
            unverified => client.kind != mas_data_model::ClientKind::Static,
            device_flow => true,
            username => user.username,
            scopes,
            action => state.page_path(&format!("/device/{}", grant.id)),
            csrf,
        },
    );
    (jar, page).into_response()
}

fn gone(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        "This code has expired",
        "Start again on the device.",
    )
}

#[tracing::instrument(name = "handlers.device.post", skip_all)]
pub(super) async fn device_post(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> Response {
    if !csrf_valid(&jar, form.get("csrf").ok().flatten().unwrap_or_default()) {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The form expired. Please go back and try again.",
        );
    }
    let allow = match form.get("action").ok().flatten() {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return error_page(
                &state,
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "Choose Allow or Deny.",
            );
        }
    };
    let Some(session) = (match session(&state, &jar).await {
        Ok(session) => session,
        Err(page) => return page,
    }) else {
        return login_first(&state, &format!("/device/{grant_id}"));
    };
    let Ok(id) = grant_id.parse::<ulid::Ulid>() else {
        return gone(&state);
    };
    let clock = state.clock.as_ref();
    let result: Result<Option<bool>, mas_storage::StorageError> = async {
        let mut repo = state.repos.begin().await?;
        let Some(grant) = repo
            .device_code_grant()
            .lookup(id)
            .await?
            .filter(|g| awaits_answer(g, clock.now()))
        else {
            return Ok(None);
        };
        // Approved only if the account may grant what is asked, and the device is not
        // another session's to take.
        let approved = allow && {
            let user = repo.user().lookup(session.user_id).await?;
            let may_admin = user.is_some_and(|u| u.can_request_admin);
            let admin_ok = may_admin
                || !grant
                    .scope
                    .split(' ')
                    .any(mas_oauth_core::tokens::is_admin_scope);
            admin_ok
                && mas_storage::jobs::device_held_elsewhere(
                    repo.as_mut(),
                    session.user_id,
                    &grant.scope,
                    grant.client_id,
                )
                .await?
                .is_none()
        };
        let done = if approved {
            repo.device_code_grant()
                .fulfill(clock, grant, session.id)
                .await?
        } else {
            repo.device_code_grant()
                .reject(clock, grant, session.id)
                .await?
        };
        repo.save().await?;
        Ok(done.map(|_| approved))
    }
    .await;
    let (title, detail) = match result {
        Ok(Some(true)) => ("Device connected", "You can go back to your device."),
        Ok(Some(false)) => (
            "Device not connected",
            "The device was refused access to your account.",
        ),
        Ok(None) => return gone(&state),
        Err(error) => return storage_error_page(&state, &error),
    };
    render(
        StatusCode::OK,
        "message.html",
        minijinja::context! { service_name => &*state.service_name, title, detail },
    )
}
