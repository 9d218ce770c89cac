//! Email addresses on the account page: adding one proves the person reads it with a
//! code sent there (by the `send-email` job), and removing one takes a click.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::PrivateCookieJar;
use chrono::TimeDelta;
use mas_data_model::{BrowserSession, User, UserEmailAuthentication};
use mas_storage::StorageError;
use mas_storage::jobs::EmailJob;

use super::account::{field, person, posted};
use super::login::PageForm;
use super::{PageError, PageResult, error_page, see_other};
use crate::AppState;
use crate::rate_limit::ClientIp;

/// How long a code works.
const CODE_LIFETIME: TimeDelta = TimeDelta::hours(1);

/// Codes typed after which an authentication is spent: six digits are a million
/// guesses, and this leaves one chance in 200,000.
const MAX_TRIES: u32 = 5;

/// The longest address taken (RFC 5321's limit on a path).
const MAX_ADDRESS: usize = 254;

fn not_allowed(state: &AppState) -> PageError {
    super::account::not_allowed(state, msg!("emails-off"))
}

fn refused(state: &AppState, status: StatusCode, detail: &str) -> Response {
    error_page(state, status, &tr!("emails-not-added"), detail)
}

/// A six-digit code.
pub(super) fn new_code() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    format!("{:06}", rng.random_range(0..1_000_000u32))
}

#[tracing::instrument(name = "handlers.account.emails.add", skip_all)]
pub(super) async fn add(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (session, user) = posted(&state, &jar, &form, "/account/").await?;
    if !state.account.email_change_allowed {
        return Err(not_allowed(&state));
    }
    let email = field(&form, "email").trim();
    if email.len() > MAX_ADDRESS || !mas_email::is_valid_address(email) {
        return Ok(refused(
            &state,
            StatusCode::BAD_REQUEST,
            &tr!("common-not-an-email"),
        ));
    }
    if let Some(violation) = state.policy.check_email(email).first() {
        return Ok(refused(
            &state,
            StatusCode::FORBIDDEN,
            &crate::i18n::violation(violation),
        ));
    }
    if let Err(wait) = state.rate_limits.email_code_sent(ip, email, session.id) {
        return Ok(refused(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &super::try_again(msg!("throttle-codes-sent"), wait),
        ));
    }
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let mine = repo
        .user_email()
        .find_by_email(email)
        .await?
        .is_some_and(|e| e.user_id == user.id);
    if mine {
        return Ok(refused(
            &state,
            StatusCode::CONFLICT,
            &tr!("emails-already-yours"),
        ));
    }
    // Whether another account has it is not said here (that would tell anyone which
    // addresses have accounts): the code is sent all the same, and adding it fails.
    let sealed = state.encrypter.encrypt(&mut rng, new_code().as_bytes());
    let authentication = repo
        .user_email()
        .start_authentication(
            &mut rng,
            clock,
            &session,
            email,
            sealed,
            clock.now() + CODE_LIFETIME,
        )
        .await?;
    let job = EmailJob::Verification {
        authentication_id: authentication.id,
        locale: Some(super::browser_locale()),
    };
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    tracing::info!(user = %user.id, authentication = %authentication.id, "email code requested");
    Ok(see_other(
        &state,
        &format!("/account/emails/{}", authentication.id),
    ))
}

/// This browser session's pending authentication with this ID.
async fn pending(
    state: &AppState,
    session: &BrowserSession,
    id: &str,
) -> Result<Option<UserEmailAuthentication>, StorageError> {
    let Ok(id) = id.parse::<ulid::Ulid>() else {
        return Ok(None);
    };
    let mut repo = state.repos.reader().await?;
    Ok(repo
        .user_email()
        .lookup_authentication(id)
        .await?
        .filter(|a| a.browser_session_id == session.id)
        .filter(|a| a.is_pending(state.clock.now()) && a.attempts < MAX_TRIES))
}

fn gone(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::NOT_FOUND,
        &tr!("common-code-expired"),
        &tr!("emails-code-expired-detail"),
    )
}

fn code_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    authentication: &UserEmailAuthentication,
    error: Option<&str>,
) -> Response {
    let context = minijinja::context! {
        error,
        email => &authentication.email,
        action => state.page_path(&format!("/account/emails/{}", authentication.id)),
        nav => true, button => tr!("emails-add-button"),
    };
    super::form_page(state, jar, status, "email_code.html", context)
}

#[tracing::instrument(name = "handlers.account.emails.code", skip_all)]
pub(super) async fn code_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    jar: PrivateCookieJar,
) -> PageResult {
    let back = format!("/account/emails/{}", super::query_value(&id));
    let (session, _) = person(&state, &jar, &back).await?;
    Ok(match pending(&state, &session, &id).await? {
        Some(authentication) => code_page(&state, jar, StatusCode::OK, &authentication, None),
        None => gone(&state),
    })
}

#[tracing::instrument(name = "handlers.account.emails.verify", skip_all)]
pub(super) async fn code_post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (session, user) = posted(&state, &jar, &form, "/account/").await?;
    if !state.account.email_change_allowed {
        return Err(not_allowed(&state));
    }
    let Some(authentication) = pending(&state, &session, &id).await? else {
        return Ok(gone(&state));
    };
    if let Err(wait) = state.rate_limits.email_code_tried(session.id) {
        let message = super::try_again(msg!("throttle-codes-tried"), wait);
        return Ok(code_page(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            &authentication,
            Some(&message),
        ));
    }
    // Each try is counted before the code is compared, in the database: concurrent
    // tries cannot get past the limit between a read and a write.
    let counted = {
        let mut repo = state.repos.begin().await?;
        let counted = repo.user_email().record_attempt(authentication).await?;
        repo.save().await?;
        counted
    };
    if counted.attempts > MAX_TRIES {
        return Ok(gone(&state));
    }
    let Some(matches) = super::code_matches(
        &state.encrypter,
        &counted.encrypted_code,
        field(&form, "code"),
    ) else {
        tracing::error!(authentication = %counted.id, "an email code does not decrypt");
        return Err(PageError::from(error_page(
            &state,
            StatusCode::INTERNAL_SERVER_ERROR,
            &tr!("common-something-went-wrong"),
            &tr!("emails-add-again"),
        )));
    };
    if !matches {
        if counted.attempts >= MAX_TRIES {
            return Ok(gone(&state));
        }
        let message = tr!("common-wrong-code");
        return Ok(code_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            &counted,
            Some(&message),
        ));
    }
    add_verified(&state, &user, counted).await
}

/// Adds the address whose code was just typed, once.
async fn add_verified(
    state: &AppState,
    user: &User,
    authentication: UserEmailAuthentication,
) -> PageResult {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let email = authentication.email.clone();
    let Some(_) = repo
        .user_email()
        .complete_authentication(clock, authentication)
        .await?
    else {
        return Ok(gone(state));
    };
    match repo.user_email().add(&mut rng, clock, user, &email).await {
        Ok(_) => {}
        Err(StorageError::Conflict(_)) => {
            return Ok(refused(state, StatusCode::CONFLICT, &tr!("emails-taken")));
        }
        Err(error) => return Err(error.into()),
    }
    schedule_provisioning(repo.as_mut(), clock, user).await?;
    repo.save().await?;
    tracing::info!(user = %user.id, "email address added");
    Ok(see_other(state, "/account/?saved=email-added"))
}

/// The homeserver keeps a copy of the account's addresses: provisioning the user again
/// brings it up to date, through the job queue.
async fn schedule_provisioning(
    repo: &mut dyn mas_storage::Repository,
    clock: &dyn mas_storage::Clock,
    user: &User,
) -> Result<(), StorageError> {
    let job = mas_storage::jobs::HomeserverJob::provision(user.id);
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    Ok(())
}

#[tracing::instrument(name = "handlers.account.emails.remove", skip_all)]
pub(super) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (_, user) = posted(&state, &jar, &form, "/account/").await?;
    if !state.account.email_change_allowed {
        return Err(not_allowed(&state));
    }
    let mut repo = state.repos.begin().await?;
    let email = match id.parse::<ulid::Ulid>() {
        Ok(id) => repo
            .user_email()
            .lookup(id)
            .await?
            .filter(|e| e.user_id == user.id),
        Err(_) => None,
    };
    let Some(email) = email else {
        return Ok(error_page(
            &state,
            StatusCode::NOT_FOUND,
            &tr!("emails-no-such-address"),
            &tr!("emails-no-such-address-detail"),
        ));
    };
    repo.user_email().remove(email).await?;
    schedule_provisioning(repo.as_mut(), state.clock.as_ref(), &user).await?;
    repo.save().await?;
    tracing::info!(user = %user.id, "email address removed");
    Ok(see_other(&state, "/account/?saved=email-removed"))
}
