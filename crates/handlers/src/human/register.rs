//! `GET|POST /register`: creating an account with a password, when
//! `account.password_registration_enabled` (and passwords) allow it. Clients send people
//! here with `prompt=create`; the login page links here too.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, PrivateCookieJar};
use mas_data_model::{BrowserSession, User, UserRegistration};
use mas_storage::StorageError;
use mas_storage::jobs::EmailJob;
use mas_storage::repository::NewRegistration;

use super::login::{LoginQuery, PageForm};
use super::{
    PageResult, csrf_token, csrf_valid, error_page, query_value, remember_session, render,
    safe_next, see_other, throttled,
};
use crate::AppState;
use crate::i18n::Msg;
use crate::rate_limit::{ClientIp, PerAddress};

/// What the form held, to show it again.
struct Filled<'a> {
    next: &'a str,
    username: &'a str,
    email: &'a str,
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
        email,
        token,
    } = *filled;
    let captcha = state.captcha.as_ref().map(|c| {
        let (script, class) = c.service().widget();
        minijinja::context! { script, class, site_key => c.site_key() }
    });
    let context = minijinja::context! {
        service_name => &*state.service_name, csrf, next, username, email, token, error,
        token_required => state.account.registration_token_required,
        email_required => state.account.registration_email_required,
        tos_uri => state.tos_uri.as_deref(),
        captcha,
        next_param => query_value(next),
        base => state.page_path("/"),
    };
    let page = match &state.captcha {
        Some(c) => super::render_with_policy(
            status,
            "register.html",
            context,
            &super::captcha_policy(c.service().sources()),
        ),
        None => render(status, "register.html", context),
    };
    (jar, page).into_response()
}

fn closed(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::FORBIDDEN,
        &tr!("register-closed"),
        &tr!("register-closed-detail"),
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
        email: "",
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
    if let Some(message) = throttled(
        state,
        PerAddress::UsernameCheck,
        ip,
        msg!("throttle-from-address-attempts"),
    ) {
        return Ok(Some((StatusCode::TOO_MANY_REQUESTS, message)));
    }
    if let Some((status, message)) = name_unavailable(state, username).await? {
        return Ok(Some((status, tr!(message.0))));
    }
    if !charge_registration {
        return Ok(None);
    }
    Ok(throttled(
        state,
        PerAddress::Registration,
        ip,
        msg!("throttle-from-address-attempts"),
    )
    .map(|message| (StatusCode::TOO_MANY_REQUESTS, message)))
}

/// Why the name cannot be had now, if it cannot: taken here, or (the homeserver has the
/// last word: it may hold users this service does not know, or reserve names for
/// application services) not available there.
async fn name_unavailable(
    state: &AppState,
    username: &str,
) -> Result<Option<(StatusCode, Msg)>, StorageError> {
    let mut repo = state.repos.reader().await?;
    if repo.user().find_by_username(username).await?.is_some() {
        return Ok(Some((StatusCode::CONFLICT, TAKEN)));
    }
    drop(repo);
    let unreachable = (
        StatusCode::SERVICE_UNAVAILABLE,
        msg!("register-homeserver-unreachable"),
    );
    let asked = tokio::time::timeout(
        crate::devices::DEADLINE,
        state.homeserver.is_localpart_available(username),
    )
    .await;
    Ok(match asked {
        Ok(Ok(true)) => None,
        Ok(Ok(false)) => Some((StatusCode::CONFLICT, msg!("register-username-unavailable"))),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot ask the homeserver about a new username");
            Some(unreachable)
        }
        Err(_) => Some(unreachable),
    })
}

/// What a name already taken is told.
const TAKEN: Msg = msg!("common-username-taken");

/// What a token that ran out, expired or was revoked between the check and the
/// registration is told.
const USED_UP: Msg = msg!("register-token-no-longer-usable");

/// The registration token typed, when it can be used now; else why not, in words.
async fn usable_token(
    state: &AppState,
    typed: &str,
) -> Result<Result<mas_data_model::RegistrationToken, String>, StorageError> {
    if !mas_data_model::RegistrationToken::is_valid_value(typed) {
        return Ok(Err(tr!("token-unknown")));
    }
    let mut repo = state.repos.reader().await?;
    let Some(token) = repo.registration_token().find_by_token(typed).await? else {
        return Ok(Err(tr!("token-unknown")));
    };
    Ok(match token.refusal(state.clock.now()) {
        Some(why) => Err(crate::i18n::token_refusal(why)),
        None => Ok(token),
    })
}

#[tracing::instrument(name = "handlers.register.post", skip_all)]
#[allow(clippy::too_many_lines)] // One linear story: check, hash, make the account.
pub(super) async fn post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    _: super::Welcome,
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
    let email = field("email").trim().to_owned();
    let email_required = state.account.registration_email_required;
    let refuse = |jar, status, error: &str| {
        // Overlong values are not shown again: they could be a megabyte.
        let filled = Filled {
            next: &next,
            username: &username,
            email: shown(&email, MAX_ADDRESS),
            token: shown(&typed_token, 64),
        };
        register_page(&state, jar, status, &filled, Some(error))
    };
    if !csrf_valid(&jar, &field("csrf")) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("common-form-expired"),
        ));
    }
    if !state.oauth.registration_open {
        return Ok(closed(&state));
    }
    if !mas_data_model::is_valid_localpart(&username) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("register-username-invalid"),
        ));
    }
    if email_required && (email.len() > MAX_ADDRESS || !mas_email::is_valid_address(&email)) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("common-not-an-email"),
        ));
    }
    // `policy.data` (its requester bans are `Welcome`'s): which names and addresses may
    // register, and what a password must hold.
    let policy = &state.policy;
    let refused = policy
        .check_username(&username)
        .into_iter()
        .chain(if email_required {
            policy.check_email(&email)
        } else {
            Vec::new()
        })
        .next();
    if let Some(violation) = refused {
        return Ok(refuse(
            jar,
            StatusCode::FORBIDDEN,
            &crate::i18n::violation(&violation),
        ));
    }
    if let Some(violation) = policy.check_password(&password).first() {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &crate::i18n::violation(violation),
        ));
    }
    let terms_url = state.tos_uri.as_deref().map(str::to_owned);
    if terms_url.is_some() && field("accept_terms") != "on" {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("common-accept-terms"),
        ));
    }
    if password != field("password_confirm") {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("register-passwords-differ"),
        ));
    }
    if !state.passwords.is_strong_enough(&password, &[&username]) {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("common-password-too-easy"),
        ));
    }
    if state.account.registration_token_required && typed_token.is_empty() {
        return Ok(refuse(
            jar,
            StatusCode::BAD_REQUEST,
            &tr!("register-token-required"),
        ));
    }
    // Each attempt past the cheap checks costs a registration attempt, once: the CAPTCHA
    // (a call to its provider) and the token are checked against it.
    let mut charged = false;
    if let Some(captcha) = &state.captcha {
        let answer = field(captcha.service().field());
        if answer.is_empty() {
            return Ok(refuse(
                jar,
                StatusCode::BAD_REQUEST,
                &tr!("register-captcha-missing"),
            ));
        }
        if let Some(message) = throttled(
            &state,
            PerAddress::Registration,
            ip,
            msg!("throttle-from-address-attempts"),
        ) {
            return Ok(refuse(jar, StatusCode::TOO_MANY_REQUESTS, &message));
        }
        charged = true;
        match captcha.verify(&answer, ip).await {
            Ok(true) => {}
            Ok(false) => {
                return Ok(refuse(
                    jar,
                    StatusCode::BAD_REQUEST,
                    &tr!("register-captcha-wrong"),
                ));
            }
            Err(error) => {
                tracing::warn!(%error, "cannot check a CAPTCHA answer");
                return Ok(refuse(
                    jar,
                    StatusCode::SERVICE_UNAVAILABLE,
                    &tr!("register-captcha-unavailable"),
                ));
            }
        }
    }
    // The token before the name: without a good one, nobody learns which names are
    // free, and each check costs a registration attempt, so tokens cannot be guessed at
    // speed.
    let registration_token = if state.account.registration_token_required {
        if !charged
            && let Some(message) = throttled(
                &state,
                PerAddress::Registration,
                ip,
                msg!("throttle-from-address-attempts"),
            )
        {
            return Ok(refuse(jar, StatusCode::TOO_MANY_REQUESTS, &message));
        }
        charged = true;
        match usable_token(&state, &typed_token).await? {
            Ok(token) => Some(token),
            Err(message) => return Ok(refuse(jar, StatusCode::FORBIDDEN, &message)),
        }
    } else {
        None
    };
    if let Some((status, message)) = may_register(&state, &username, ip, !charged).await? {
        return Ok(refuse(jar, status, &message));
    }
    if email_required && let Err(wait) = state.rate_limits.registration_code_sent(ip, &email) {
        let message = super::try_again(msg!("throttle-codes-sent"), wait);
        return Ok(refuse(jar, StatusCode::TOO_MANY_REQUESTS, &message));
    }
    // Hashing takes a while: done before a connection is taken.
    let (version, hash) = match state.passwords.hash(password).await {
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
    let account = NewAccount {
        username: username.clone(),
        password_version: version,
        password_hash: hash,
        registration_token_id: registration_token.map(|t| t.id),
        terms_url,
        email: None,
    };
    if email_required {
        let locale = Some(super::browser_locale());
        return wait_for_code(&state, jar, &next, account, email, locale).await;
    }
    match make_account(&state, &account, None).await? {
        Ok((user, session)) => {
            tracing::info!(user = %user.id, "account created");
            Ok((
                remember_session(&state, jar, &session),
                see_other(&state, &next),
            )
                .into_response())
        }
        Err((status, message)) => Ok(refuse(jar, status, &tr!(message.0))),
    }
}

/// `value` to show in the form again, unless it is overlong.
fn shown(value: &str, max: usize) -> &str {
    if value.len() <= max { value } else { "" }
}

/// The longest address taken (RFC 5321's limit on a path).
const MAX_ADDRESS: usize = 254;

/// How long a registration's code works.
const CODE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Codes typed after which a registration is spent (as for adding an address).
const MAX_TRIES: u32 = 5;

/// The cookie naming this browser's registration waiting for its code: only the browser
/// that filled the form may finish it.
const REGISTRATION_COOKIE: &str = "mas-registration";

/// What the account is made from, once everything is checked.
struct NewAccount {
    username: String,
    password_version: u16,
    password_hash: String,
    registration_token_id: Option<ulid::Ulid>,
    /// The terms of service accepted.
    terms_url: Option<String>,
    /// A proven address the account gets.
    email: Option<String>,
}

/// Stores the registration, queues its code for `email` and sends the browser to type
/// it. The account is made only then.
async fn wait_for_code(
    state: &AppState,
    jar: PrivateCookieJar,
    next: &str,
    account: NewAccount,
    email: String,
    locale: Option<String>,
) -> PageResult {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let sealed = state
        .encrypter
        .encrypt(&mut rng, super::emails::new_code().as_bytes());
    let mut repo = state.repos.begin().await?;
    let registration = repo
        .user_registration()
        .add(
            &mut rng,
            clock,
            NewRegistration {
                username: account.username,
                email,
                password_version: account.password_version,
                password_hash: account.password_hash,
                registration_token_id: account.registration_token_id,
                terms_url: account.terms_url,
                encrypted_code: sealed,
                expires_at: clock.now() + CODE_LIFETIME,
            },
        )
        .await?;
    let job = EmailJob::Registration {
        registration_id: registration.id,
        locale,
    };
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    tracing::info!(registration = %registration.id, "registration waits for its email code");
    let jar = jar.add(super::cookie(
        state,
        REGISTRATION_COOKIE,
        registration.id.to_string(),
    ));
    Ok((
        jar,
        see_other(
            state,
            &format!("/register/verify?next={}", query_value(next)),
        ),
    )
        .into_response())
}

/// Makes the account, in one unit with the use of its registration token and, when it
/// comes from a registration waiting for a code, that registration's completion.
async fn make_account(
    state: &AppState,
    account: &NewAccount,
    registration: Option<UserRegistration>,
) -> Result<Result<(User, BrowserSession), (StatusCode, Msg)>, StorageError> {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let result: Result<_, StorageError> = async {
        let mut repo = state.repos.begin().await?;
        if let Some(registration) = registration
            && repo
                .user_registration()
                .complete(clock, registration)
                .await?
                .is_none()
        {
            return Ok(Err((StatusCode::NOT_FOUND, USED_CODE)));
        }
        if repo
            .user()
            .find_by_username(&account.username)
            .await?
            .is_some()
        {
            return Ok(Err((StatusCode::CONFLICT, TAKEN)));
        }
        if let Some(email) = &account.email
            && repo.user_email().find_by_email(email).await?.is_some()
        {
            return Ok(Err((StatusCode::CONFLICT, ADDRESS_TAKEN)));
        }
        // Counted in the same unit as the account: an account is made only with a use
        // of the token, and a token used up meanwhile makes none.
        if let Some(id) = account.registration_token_id {
            let token = repo.registration_token().lookup(id).await?;
            let used = match token {
                Some(token) => repo.registration_token().use_token(clock, &token).await?,
                None => None,
            };
            if used.is_none() {
                return Ok(Err((StatusCode::FORBIDDEN, USED_UP)));
            }
        }
        let user = repo.user().add(&mut rng, clock, &account.username).await?;
        let password = repo
            .user_password()
            .add(
                &mut rng,
                clock,
                &user,
                account.password_version,
                account.password_hash.clone(),
                None,
            )
            .await?;
        if let Some(email) = &account.email {
            repo.user_email().add(&mut rng, clock, &user, email).await?;
        }
        if let Some(url) = &account.terms_url {
            repo.user_registration()
                .accept_terms(&mut rng, clock, &user, url)
                .await?;
        }
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
        // Taken by a concurrent registration between the check and the insert: the name,
        // or (finishing at the same moment) the address.
        Err(StorageError::Conflict(_)) => {
            let address_taken = match &account.email {
                Some(email) => {
                    let mut repo = state.repos.reader().await?;
                    repo.user_email().find_by_email(email).await?.is_some()
                }
                None => false,
            };
            Ok(Err((
                StatusCode::CONFLICT,
                if address_taken { ADDRESS_TAKEN } else { TAKEN },
            )))
        }
        other => other,
    }
}

/// What an address already on an account is told, once its owner proved they read it.
const ADDRESS_TAKEN: Msg = msg!("register-address-taken");

/// What a registration finished already (in another tab) is told.
const USED_CODE: Msg = msg!("register-finished-already");

/// This browser's registration waiting for a code, while a code may still be typed.
async fn waiting(
    state: &AppState,
    jar: &PrivateCookieJar,
) -> Result<Option<UserRegistration>, StorageError> {
    let Some(id) = jar
        .get(REGISTRATION_COOKIE)
        .and_then(|c| c.value().parse::<ulid::Ulid>().ok())
    else {
        return Ok(None);
    };
    let mut repo = state.repos.reader().await?;
    Ok(repo
        .user_registration()
        .lookup(id)
        .await?
        .filter(|r| r.is_pending(state.clock.now()) && r.attempts < MAX_TRIES))
}

fn code_expired(state: &AppState, next: &str) -> Response {
    let again = state.page_path(&format!("/register?next={}", query_value(next)));
    render(
        StatusCode::NOT_FOUND,
        "message.html",
        minijinja::context! {
            service_name => &*state.service_name,
            title => tr!("common-code-expired"),
            detail => tr!("register-code-expired-detail"),
            link => again, link_text => tr!("register-create-an-account"),
        },
    )
}

fn code_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    registration: &UserRegistration,
    next: &str,
    error: Option<&str>,
) -> Response {
    let context = minijinja::context! {
        error,
        email => &registration.email,
        action => state.page_path(&format!("/register/verify?next={}", query_value(next))),
        button => tr!("register-create-account"),
    };
    super::form_page(state, jar, status, "email_code.html", context)
}

/// `GET /register/verify`: where the code sent to the address is typed.
#[tracing::instrument(name = "handlers.register.code", skip_all)]
pub(super) async fn code_get(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
    jar: PrivateCookieJar,
) -> PageResult {
    let next = safe_next(query.ok().and_then(|Query(q)| q.next).as_deref());
    if !state.oauth.registration_open {
        return Ok(closed(&state));
    }
    Ok(match waiting(&state, &jar).await? {
        Some(registration) => code_page(&state, jar, StatusCode::OK, &registration, &next, None),
        None => code_expired(&state, &next),
    })
}

/// `POST /register/verify`: the code; the right one makes the account.
#[tracing::instrument(name = "handlers.register.verify", skip_all)]
pub(super) async fn code_post(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
    _: super::Welcome,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let next = safe_next(query.ok().and_then(|Query(q)| q.next).as_deref());
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or_default().to_owned();
    if !state.oauth.registration_open {
        return Ok(closed(&state));
    }
    let Some(registration) = waiting(&state, &jar).await? else {
        return Ok(code_expired(&state, &next));
    };
    if !csrf_valid(&jar, &field("csrf")) {
        return Ok(code_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            &registration,
            &next,
            Some(&tr!("common-form-expired")),
        ));
    }
    if let Err(wait) = state.rate_limits.email_code_tried(registration.id) {
        let message = super::try_again(msg!("throttle-codes-tried"), wait);
        return Ok(code_page(
            &state,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            &registration,
            &next,
            Some(&message),
        ));
    }
    // Counted before the code is compared, in the database: concurrent tries cannot get
    // past the limit between a read and a write.
    let counted = {
        let mut repo = state.repos.begin().await?;
        let counted = repo
            .user_registration()
            .record_attempt(registration)
            .await?;
        repo.save().await?;
        counted
    };
    if counted.attempts > MAX_TRIES {
        return Ok(code_expired(&state, &next));
    }
    let Some(matches) =
        super::code_matches(&state.encrypter, &counted.encrypted_code, &field("code"))
    else {
        tracing::error!(registration = %counted.id, "a registration code does not decrypt");
        return Ok(code_expired(&state, &next));
    };
    if !matches {
        if counted.attempts >= MAX_TRIES {
            return Ok(code_expired(&state, &next));
        }
        return Ok(code_page(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
            &counted,
            &next,
            Some(&tr!("common-wrong-code")),
        ));
    }
    finish(&state, jar, &next, counted).await
}

/// Makes the account of a registration whose code was just typed.
async fn finish(
    state: &AppState,
    jar: PrivateCookieJar,
    next: &str,
    counted: UserRegistration,
) -> PageResult {
    let state = state.clone();
    // A token may have become required since the form was sent, or its row deleted.
    if state.account.registration_token_required && counted.registration_token_id.is_none() {
        return Ok(error_page(
            &state,
            StatusCode::FORBIDDEN,
            &tr!("common-account-not-created"),
            &tr!(USED_UP.0),
        ));
    }
    // The policy may have changed since the form (a restart with new rules).
    let refused = state
        .policy
        .check_username(&counted.username)
        .into_iter()
        .chain(state.policy.check_email(&counted.email))
        .next();
    if let Some(violation) = refused {
        return Ok(error_page(
            &state,
            StatusCode::FORBIDDEN,
            &tr!("common-account-not-created"),
            &crate::i18n::violation(&violation),
        ));
    }
    // The homeserver is asked again: it may have reserved the name since the form.
    if let Some((status, message)) = name_unavailable(&state, &counted.username).await? {
        return Ok(error_page(
            &state,
            status,
            &tr!("common-account-not-created"),
            &tr!(message.0),
        ));
    }
    let account = NewAccount {
        username: counted.username.clone(),
        password_version: counted.password_version,
        password_hash: counted.password_hash.clone(),
        registration_token_id: counted.registration_token_id,
        terms_url: counted.terms_url.clone(),
        email: Some(counted.email.clone()),
    };
    let jar = jar.remove(Cookie::build(REGISTRATION_COOKIE).path("/"));
    match make_account(&state, &account, Some(counted)).await? {
        Ok((user, session)) => {
            tracing::info!(user = %user.id, "account created with a proven address");
            Ok((
                remember_session(&state, jar, &session),
                see_other(&state, next),
            )
                .into_response())
        }
        Err((status, message)) => Ok((
            jar,
            error_page(
                &state,
                status,
                &tr!("common-account-not-created"),
                &tr!(message.0),
            ),
        )
            .into_response()),
    }
}
