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

/// What the form held, to show it again.
struct Filled<'a> {
    next: &'a str,
    username: &'a str,
    token: &'a str,
}

fn register_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    filled: &Filled<'_>,
    error: Option<&str>,
) -> Response {
    let (jar, csrf) = csrf_token(state, jar);
    let Filled {
        next,
        username,
        token,
    } = *filled;
    let page = render(
        status,
        "register.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf, next, username, token, error,
            token_required => state.account.registration_token_required,
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
    let filled = Filled {
        next: &next,
        username: "",
        token: "",
    };
    register_page(&state, jar, StatusCode::OK, &filled, None)
}

/// Why this address may not register this name now, if it may not. Each form tells
/// whether a name is taken, so checks are throttled (`rate_limiting.username_availability`)
/// and names cannot be listed; each account made costs a hash and a homeserver account
/// (`rate_limiting.registration`).
///
/// `charge_registration` is false when the attempt was already counted (a registration
/// token was checked first).
pub(super) async fn may_register(
    state: &AppState,
    username: &str,
    ip: Option<std::net::IpAddr>,
    charge_registration: bool,
) -> Result<Option<(StatusCode, String)>, StorageError> {
    if let Some(message) = throttled(state, PerAddress::UsernameCheck, ip, "attempts") {
        return Ok(Some((StatusCode::TOO_MANY_REQUESTS, message)));
    }
    if let Some((status, message)) = name_unavailable(state, username).await? {
        return Ok(Some((status, message.to_owned())));
    }
    if !charge_registration {
        return Ok(None);
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
        return Ok(Some((StatusCode::CONFLICT, TAKEN)));
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

/// What a name already taken is told.
const TAKEN: &str = "This username is taken.";

/// What a token that ran out, expired or was revoked between the check and the
/// registration is told.
const USED_UP: &str = "This registration token can no longer be used.";

/// The registration token typed, when it can be used now; else why not, in words.
async fn usable_token(
    state: &AppState,
    typed: &str,
) -> Result<Result<mas_data_model::RegistrationToken, &'static str>, StorageError> {
    const UNKNOWN: &str = "This registration token is not valid.";
    if !mas_data_model::RegistrationToken::is_valid_value(typed) {
        return Ok(Err(UNKNOWN));
    }
    let mut repo = state.repos.reader().await?;
    let Some(token) = repo.registration_token().find_by_token(typed).await? else {
        return Ok(Err(UNKNOWN));
    };
    Ok(match token.refusal(state.clock.now()) {
        Some(why) => Err(why),
        None => Ok(token),
    })
}

#[tracing::instrument(name = "handlers.register.post", skip_all)]
#[allow(clippy::too_many_lines)] // One linear story: check, hash, make the account.
pub(super) async fn post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let (next, username, password, typed_token) = (
        safe_next(Some(&field("next"))),
        field("username"),
        field("password"),
        field("token"),
    );
    let refuse = |jar, status, error: &str| {
        // An overlong token is not shown again: it could be a megabyte.
        let token = if typed_token.len() <= 64 {
            &typed_token
        } else {
            ""
        };
        let filled = Filled {
            next: &next,
            username: &username,
            token,
        };
        register_page(&state, jar, status, &filled, Some(error))
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
    if state.account.registration_token_required && typed_token.is_empty() {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            "A registration token is required.",
        ));
    }
    // The token first: without a good one, nobody learns which names are free. Each
    // check costs a registration attempt, so tokens cannot be guessed at speed.
    let registration_token = if state.account.registration_token_required {
        if let Some(message) = throttled(&state, PerAddress::Registration, ip, "attempts") {
            return Ok(refuse(jar, StatusCode::TOO_MANY_REQUESTS, &message));
        }
        match usable_token(&state, &typed_token).await? {
            Ok(token) => Some(token),
            Err(message) => return Ok(refuse(jar, StatusCode::FORBIDDEN, message)),
        }
    } else {
        None
    };
    let charged = registration_token.is_some();
    if let Some((status, message)) = may_register(&state, &username, ip, !charged).await? {
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
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let result: Result<_, StorageError> = async {
        let mut repo = state.repos.begin().await?;
        if repo.user().find_by_username(&username).await?.is_some() {
            return Ok(Err((StatusCode::CONFLICT, TAKEN)));
        }
        // Counted in the same unit as the account: an account is made only with a use
        // of the token, and a token used up meanwhile makes none.
        if let Some(token) = &registration_token
            && repo
                .registration_token()
                .use_token(clock, token)
                .await?
                .is_none()
        {
            return Ok(Err((StatusCode::FORBIDDEN, USED_UP)));
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
        Ok(Ok((user, session)))
    }
    .await;
    match result {
        Ok(Ok((user, session))) => {
            tracing::info!(user = %user.id, "account created");
            Ok((
                remember_session(&state, jar, &session),
                see_other(&state, &next),
            )
                .into_response())
        }
        Ok(Err((status, message))) => Ok(refuse(jar, status, message)),
        // Taken by a concurrent registration between the check and the insert.
        Err(StorageError::Conflict(_)) => Ok(refuse(jar, StatusCode::CONFLICT, TAKEN)),
        Err(error) => Err(error.into()),
    }
}
