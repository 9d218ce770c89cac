//! `/link` (enter a device's code) and `/device/{grant}` (allow or deny it).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_oauth_core::device::{awaits_answer, normalise_user_code};
use serde::Deserialize;

use super::login::PageForm;
use super::{
    PageResult, csrf_token, csrf_valid, error_page, render, see_other, signed_in, throttled,
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

#[tracing::instrument(name = "handlers.link.get", skip_all)]
pub(super) async fn link_get(
    State(state): State<AppState>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
    jar: PrivateCookieJar,
) -> PageResult {
    let code = query
        .ok()
        .and_then(|Query(q)| q.code)
        .map(|c| normalise_user_code(&c))
        .unwrap_or_default();
    let back = if code.is_empty() {
        "/link".to_owned()
    } else {
        format!("/link?code={code}")
    };
    signed_in(&state, &jar, &back).await?;
    Ok(link_page(&state, jar, StatusCode::OK, &code, None))
}

#[tracing::instrument(name = "handlers.link.post", skip_all)]
pub(super) async fn link_post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let code = normalise_user_code(form.get("code").ok().flatten().unwrap_or_default());
    if !csrf_valid(&jar, form.get("csrf").ok().flatten().unwrap_or_default()) {
        return Ok(link_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            &code,
            Some(tr!("common-form-expired").as_str()),
        ));
    }
    signed_in(&state, &jar, "/link").await?;
    // User codes are short: guesses are throttled (`rate_limiting.device_code_link`).
    if let Some(message) = throttled(
        &state,
        PerAddress::DeviceLink,
        ip,
        msg!("throttle-from-address-codes"),
    ) {
        return Ok(link_page(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            &code,
            Some(&message),
        ));
    }
    let mut repo = state.repos.reader().await?;
    let found = repo.device_code_grant().find_by_user_code(&code).await?;
    match found {
        Some(grant) if awaits_answer(&grant, state.clock.now()) => {
            Ok(see_other(&state, &format!("/device/{}", grant.id)))
        }
        _ => Ok(link_page(
            &state,
            jar,
            StatusCode::NOT_FOUND,
            &code,
            Some(tr!("device-code-unknown").as_str()),
        )),
    }
}

#[tracing::instrument(name = "handlers.device.get", skip_all)]
pub(super) async fn device_get(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    _: super::Welcome,
    jar: PrivateCookieJar,
) -> PageResult {
    let session = signed_in(&state, &jar, &format!("/device/{grant_id}")).await?;
    let mut repo = state.repos.reader().await?;
    let Ok(id) = grant_id.parse::<ulid::Ulid>() else {
        return Ok(gone(&state));
    };
    let Some(grant) = repo
        .device_code_grant()
        .lookup(id)
        .await?
        .filter(|grant| awaits_answer(grant, state.clock.now()))
    else {
        return Ok(gone(&state));
    };
    let client = repo.client().lookup(grant.client_id).await?;
    let user = repo.user().lookup(session.user_id).await?;
    let (Some(client), Some(user)) = (client, user) else {
        return Ok(gone(&state));
    };
    let (jar, csrf) = csrf_token(&state, jar);
    let scopes = super::describe_scopes(&grant.scope);
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
    Ok((jar, page).into_response())
}

fn gone(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        &tr!("common-code-expired"),
        &tr!("device-start-again"),
    )
}

#[tracing::instrument(name = "handlers.device.post", skip_all)]
pub(super) async fn device_post(
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
    let session = signed_in(&state, &jar, &format!("/device/{grant_id}")).await?;
    let Ok(id) = grant_id.parse::<ulid::Ulid>() else {
        return Ok(gone(&state));
    };
    let clock = state.clock.as_ref();
    let result: Result<Option<bool>, mas_storage::StorageError> = async {
        let mut repo = state.repos.begin().await?;
        let Some(grant) = repo.device_code_grant().lookup(id).await? else {
            return Ok(None);
        };
        let answer = mas_oauth_core::device::answer(
            repo.as_mut(),
            clock,
            &state.policy,
            &session,
            grant,
            allow,
        );
        let answered = answer.await?;
        repo.save().await?;
        Ok(answered)
    }
    .await;
    let (title, detail) = match result? {
        Some(true) => (tr!("device-connected"), tr!("device-connected-detail")),
        Some(false) => (
            tr!("device-not-connected"),
            tr!("device-not-connected-detail"),
        ),
        None => return Ok(gone(&state)),
    };
    Ok(render(
        StatusCode::OK,
        "message.html",
        minijinja::context! { service_name => &*state.service_name, title, detail },
    ))
}
