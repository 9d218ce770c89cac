//! `GET|POST /register`: creating an account with a password, when
//! `account.password_registration_enabled` (and passwords) allow it. Clients send people
//! here with `prompt=create`; the login page links here too.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_storage::StorageError;

use super::login::{LoginQuery, PageForm};
use super::{
    PageResult, csrf_token, csrf_valid, error_page, query_value, remember_session, render,
    safe_next, see_other, throttled,
};
use crate::AppState;
use crate::rate_limit::{ClientIp, PerAddress};

fn register_page(
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
        "register.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf, next, username, error,
            next_param => query_value(next),
            base => state.page_path("/"),
        },
    );
    (jar, page).into_response()
}

fn closed(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::FORBIDDEN,
        "Registration is closed",
        "This service does not let people create accounts themselves. Ask its administrator for one.",
    )
}

#[tracing::instrument(name = "handlers.register.get", skip_all)]
pub(super) async fn get(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
    jar: PrivateCookieJar,
) -> Response {
    if !state.oauth.registration_open {
        return closed(&state);
    }
    let next = safe_next(query.ok().and_then(|Query(q)| q.next).as_deref());
    register_page(&state, jar, StatusCode::OK, &next, "", None)
}

/// Why this address may not register this name now, if it may not. Each form tells
/// whether a name is taken, so checks are throttled (`rate_limiting.username_availability`)
/// and names cannot be listed; each account made costs a hash and a homeserver account
/// (`rate_limiting.registration`).
pub(super) async fn may_register(
    state: &AppState,
    username: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<Option<(StatusCode, String)>, StorageError> {
    if let Some(message) = throttled(state, PerAddress::UsernameCheck, ip, "attempts") {
        return Ok(Some((StatusCode::TOO_MANY_REQUESTS, message)));
    }
    if let Some((status, message)) = name_unavailable(state, username).await? {
        return Ok(Some((status, message.to_owned())));
    }
    Ok(throttled(state, PerAddress::Registration, ip, "attempts")
        .map(|message| (StatusCode::TOO_MANY_REQUESTS, message)))
}

/// Why the name cannot be had now, if it cannot: taken here, or (the homeserver has the
/// last word: it may hold users this service does not know, or reserve names for
/// application services) not available there.
async fn name_unavailable(
    state: &AppState,
    username: &str,
) -> Result<Option<(StatusCode, &'static str)>, StorageError> {
    let mut repo = state.repos.reader().await?;
    if repo.user().find_by_username(username).await?.is_some() {
        return Ok(Some((StatusCode::CONFLICT, "This username is taken.")));
    }
    drop(repo);
    let unreachable = (
        StatusCode::SERVICE_UNAVAILABLE,
        "The homeserver cannot be reached right now. Please try again later.",
    );
    let asked = tokio::time::timeout(
        crate::devices::DEADLINE,
        state.homeserver.is_localpart_available(username),
    )
    .await;
    Ok(match asked {
        Ok(Ok(true)) => None,
        Ok(Ok(false)) => Some((StatusCode::CONFLICT, "This username is not available.")),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot ask the homeserver about a new username");
            Some(unreachable)
        }
        Err(_) => Some(unreachable),
    })
}

#[tracing::instrument(name = "handlers.register.post", skip_all)]
pub(super) async fn post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let (next, username, password) = (
        safe_next(Some(&field("next"))),
        field("username"),
        field("password"),
    );
    let refuse = |jar, status, error: &str| {
        register_page(&state, jar, status, &next, &username, Some(error))
    };
    if !csrf_valid(&jar, &field("csrf")) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            "The form expired. Please try again.",
        ));
    }
    if !state.oauth.registration_open {
        return Ok(closed(&state));
    }
    if !mas_data_model::is_valid_localpart(&username) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            "A username may only use lowercase letters, digits and . _ = - / + (at most 255).",
        ));
    }
    if password != field("password_confirm") {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            "The passwords do not match.",
        ));
    }
    if !state.passwords.is_strong_enough(&password, &[&username]) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            "This password is too easy to guess. Try a longer one, or a few unrelated words.",
        ));
    }
    if let Some((status, message)) = may_register(&state, &username, ip).await? {
        return Ok(refuse(jar, status, &message));
    }
    // Hashing takes a while: done before a connection is taken.
    let (version, hash) = match state.passwords.hash(password).await {
        Ok(hashed) => hashed,
        Err(error) => {
            tracing::error!(%error, "cannot hash a new password");
            return Ok(error_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Please try again.",
            ));
        }
    };
    let taken = "This username is taken.";
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let result: Result<_, StorageError> = async {
        let mut repo = state.repos.begin().await?;
        if repo.user().find_by_username(&username).await?.is_some() {
            return Ok(None);
        }
        let user = repo.user().add(&mut rng, clock, &username).await?;
        let password = repo
            .user_password()
            .add(&mut rng, clock, &user, version, hash, None)
            .await?;
        let session = repo
            .browser_session()
            .add(&mut rng, clock, &user, None)
            .await?;
        repo.browser_session()
            .authenticate_with_password(&mut rng, clock, &session, &password)
            .await?;
        let job = mas_storage::jobs::HomeserverJob::provision(user.id);
        repo.job().schedule(&mut rng, clock, job.to_job()).await?;
        repo.save().await?;
        Ok(Some((user, session)))
    }
    .await;
    match result {
        Ok(Some((user, session))) => {
            tracing::info!(user = %user.id, "account created");
            Ok((
                remember_session(&state, jar, &session),
                see_other(&state, &next),
            )
                .into_response())
        }
        // Taken, or taken by a concurrent registration between the check and the insert.
        Ok(None) | Err(StorageError::Conflict(_)) => Ok(refuse(jar, StatusCode::CONFLICT, taken)),
        Err(error) => Err(error.into()),
    }
}
