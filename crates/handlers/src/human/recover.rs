//! Account recovery, when `account.password_recovery_enabled`: `/recover` takes an email
//! address and queues a link to it, `/account/password/recovery?ticket=…` sets a new
//! password with that link, once. Whether an account has the address is never said: the
//! request queues the same job either way, and the job finds out.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_data_model::RecoveryTicket;
use mas_storage::StorageError;
use mas_storage::jobs::EmailJob;
use serde::Deserialize;

use super::login::PageForm;
use super::{PageResult, csrf_valid, error_page, render};
use crate::AppState;
use crate::rate_limit::ClientIp;

/// The longest address taken (RFC 5321's limit on a path).
const MAX_ADDRESS: usize = 254;

fn off(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::NOT_FOUND,
        &tr!("recover-off"),
        &tr!("recover-off-detail"),
    )
}

fn request_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let context = minijinja::context! { email, error };
    super::form_page(state, jar, status, "recover.html", context)
}

/// `GET /recover`: the form that asks for an address.
#[tracing::instrument(name = "handlers.recover.get", skip_all)]
pub(super) async fn get(State(state): State<AppState>, jar: PrivateCookieJar) -> Response {
    if !state.account.password_recovery_enabled {
        return off(&state);
    }
    request_page(&state, jar, StatusCode::OK, "", None)
}

/// `POST /recover`: queues a link for whichever account has the address.
#[tracing::instrument(name = "handlers.recover.post", skip_all)]
pub(super) async fn post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    if !state.account.password_recovery_enabled {
        return Ok(off(&state));
    }
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let email = field("email").trim().to_owned();
    let shown = if email.len() <= MAX_ADDRESS {
        &email
    } else {
        ""
    };
    if !csrf_valid(&jar, &field("csrf")) {
        return Ok(request_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            shown,
            Some(&tr!("common-form-expired")),
        ));
    }
    if email.len() > MAX_ADDRESS || !mas_email::is_valid_address(&email) {
        return Ok(request_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            shown,
            Some(&tr!("common-not-an-email")),
        ));
    }
    if let Err(wait) = state.rate_limits.recovery_requested(ip, &email) {
        let message = super::try_again(msg!("throttle-links"), wait);
        return Ok(request_page(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            shown,
            Some(&message),
        ));
    }
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let job = EmailJob::Recovery {
        sealed_email: state.encrypter.encrypt(&mut rng, email.as_bytes()),
        locale: Some(super::browser_locale()),
    };
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    tracing::info!("recovery link asked for");
    Ok(render(
        StatusCode::OK,
        "recover_sent.html",
        minijinja::context! {
            service_name => &*state.service_name, email,
            minutes => RecoveryTicket::LIFETIME.num_minutes(),
            base => state.page_path("/"),
        },
    ))
}

/// The link's query.
#[derive(Deserialize)]
pub(super) struct TicketQuery {
    ticket: Option<String>,
}

/// The ticket with this value, while it can still set a password.
async fn usable(state: &AppState, value: &str) -> Result<Option<RecoveryTicket>, StorageError> {
    // Tickets are 32 letters and digits: anything else is not one, and is not looked up.
    if value.len() != 32 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let mut repo = state.repos.reader().await?;
    let Some(ticket) = repo
        .user_recovery()
        .find_by_ticket(value)
        .await?
        .filter(|t| t.is_usable(state.clock.now()))
    else {
        return Ok(None);
    };
    // Only while the address is still the account's: someone who removed an address
    // they lost leaves no live link behind in that mailbox.
    let owner = repo.user_email().find_by_email(&ticket.email).await?;
    Ok(owner
        .is_some_and(|e| e.user_id == ticket.user_id)
        .then_some(ticket))
}

fn link_dead(state: &AppState) -> Response {
    let minutes = RecoveryTicket::LIFETIME.num_minutes();
    render(
        StatusCode::NOT_FOUND,
        "message.html",
        minijinja::context! {
            service_name => &*state.service_name,
            title => tr!("recover-link-dead"),
            detail => tr!("recover-link-dead-detail", minutes = minutes),
            link => state.page_path("/recover"), link_text => tr!("recover-ask-new-link"),
        },
    )
}

fn password_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    ticket: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    let context = minijinja::context! { ticket, email, error };
    super::form_page(state, jar, status, "recover_password.html", context)
}

/// `GET /account/password/recovery?ticket=…`: the form for the new password.
#[tracing::instrument(name = "handlers.recover.link", skip_all)]
pub(super) async fn link_get(
    State(state): State<AppState>,
    query: Result<Query<TicketQuery>, axum::extract::rejection::QueryRejection>,
    jar: PrivateCookieJar,
) -> PageResult {
    if !state.account.password_recovery_enabled || !state.passwords.is_enabled() {
        return Ok(off(&state));
    }
    let value = query.ok().and_then(|Query(q)| q.ticket).unwrap_or_default();
    Ok(match usable(&state, &value).await? {
        Some(ticket) => password_page(&state, jar, StatusCode::OK, &value, &ticket.email, None),
        None => link_dead(&state),
    })
}

/// `POST /account/password/recovery`: sets the new password, using the link up.
#[tracing::instrument(name = "handlers.recover.set", skip_all)]
#[allow(clippy::too_many_lines)] // One linear story: check, hash, set, end sessions.
pub(super) async fn link_post(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    if !state.account.password_recovery_enabled || !state.passwords.is_enabled() {
        return Ok(off(&state));
    }
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    let value = field("ticket");
    let Some(ticket) = usable(&state, &value).await? else {
        return Ok(link_dead(&state));
    };
    let refuse = |jar, status, error: &str| {
        password_page(&state, jar, status, &value, &ticket.email, Some(error))
    };
    if !csrf_valid(&jar, &field("csrf")) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("common-form-expired"),
        ));
    }
    let user = {
        let mut repo = state.repos.reader().await?;
        repo.user().lookup(ticket.user_id).await?
    };
    let Some(user) = user.filter(|u| u.locked_at.is_none() && u.deactivated_at.is_none()) else {
        return Ok(link_dead(&state));
    };
    let new = field("new_password");
    if new != field("new_password_confirm") {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("common-passwords-differ"),
        ));
    }
    if !state.passwords.is_strong_enough(&new, &[&user.username]) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("common-password-too-easy"),
        ));
    }
    if let Some(violation) = state.policy.check_password(&new).first() {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &crate::i18n::violation(violation),
        ));
    }
    // Hashed with no connection held, with the newest scheme.
    let (version, hash) = match state.passwords.hash(new).await {
        Ok(hashed) => hashed,
        Err(error) => {
            tracing::error!(%error, "cannot hash a new password");
            return Ok(error_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                &tr!("common-something-went-wrong"),
                &tr!("common-please-try-again"),
            ));
        }
    };
    let everywhere = field("sign_out_everywhere") == "on";
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    // Used in the same unit as the password it sets: two tabs cannot both set one.
    if repo.user_recovery().consume(clock, ticket).await?.is_none() {
        return Ok(link_dead(&state));
    }
    repo.user_password()
        .add(&mut rng, clock, &user, version, hash, None)
        .await?;
    let ended = if everywhere {
        mas_storage::accounts::end_all_sessions(repo.as_mut(), &mut rng, clock, &user).await?
    } else {
        0
    };
    repo.save().await?;
    tracing::info!(user = %user.id, everywhere, "password set with a recovery link");
    if ended > 0 {
        crate::devices::sync_devices_now(&state, &user).await;
    }
    let detail = if everywhere {
        tr!("recover-done-everywhere")
    } else {
        tr!("recover-done")
    };
    let page = render(
        StatusCode::OK,
        "message.html",
        minijinja::context! {
            service_name => &*state.service_name,
            title => tr!("recover-done-title"),
            detail,
            link => state.page_path("/login"), link_text => tr!("register-sign-in"),
        },
    );
    Ok((jar, page).into_response())
}
