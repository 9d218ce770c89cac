//! `/account/`: a person's own account: profile, password, cross-signing reset and
//! deactivation, and the deep links Matrix clients open (`?action=`). Sessions and
//! devices are in [`super::sessions`].

use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use chrono::TimeDelta;
use mas_data_model::{BrowserSession, User};
use mas_oauth_core::passwords::Verified;
use mas_storage::jobs::HomeserverJob;
use serde::Deserialize;

use super::login::PageForm;
use super::{
    PageError, PageResult, csrf_token, csrf_valid, error_page, forget_session, render, see_other,
    signed_in,
};
use crate::AppState;
use crate::rate_limit::Throttled;

/// How long after signing in a person may do something sensitive without giving their
/// password again.
pub(super) const RECENT: TimeDelta = TimeDelta::minutes(5);

/// Synapse's limit on display names, in characters.
const MAX_DISPLAY_NAME: usize = 256;

#[derive(Deserialize)]
pub(super) struct AccountQuery {
    action: Option<String>,
    device_id: Option<String>,
    saved: Option<String>,
}

/// The person signed in in this browser, and their account; otherwise the page to show.
pub(super) async fn person(
    state: &AppState,
    jar: &PrivateCookieJar,
    back: &str,
) -> Result<(BrowserSession, User), PageError> {
    let session = signed_in(state, jar, back).await?;
    let user = state
        .repos
        .reader()
        .await?
        .user()
        .lookup(session.user_id)
        .await?
        .filter(User::is_valid);
    match user {
        Some(user) => Ok((session, user)),
        None => Err(error_page(
            state,
            StatusCode::FORBIDDEN,
            &tr!("account-unusable"),
            &tr!("account-unusable-detail"),
        )
        .into()),
    }
}

/// The path back to this page with its query, for after signing in.
fn here(path: &str, query: Option<&str>) -> String {
    match query {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    }
}

/// A notice for the page after a change, from a fixed list (never the query's words).
pub(super) fn notice(saved: Option<&str>) -> Option<String> {
    let message = match saved? {
        "display-name" => msg!("account-notice-display-name"),
        "password" => msg!("account-notice-password"),
        "password-everywhere" => msg!("account-notice-password-everywhere"),
        "ended" => msg!("sessions-notice-ended"),
        "renamed" => msg!("sessions-notice-renamed"),
        "everywhere" => msg!("sessions-notice-everywhere"),
        "email-added" => msg!("emails-notice-added"),
        "email-removed" => msg!("emails-notice-removed"),
        _ => return None,
    };
    Some(tr!(message.0))
}

/// `GET /account`, as a homeserver's `account_management_url` may name it: the same page,
/// deep link and all.
pub(super) async fn without_slash(RawQuery(raw): RawQuery) -> Response {
    // Relative, so it stays under a path prefix.
    axum::response::Redirect::permanent(&here("account/", raw.as_deref())).into_response()
}

#[tracing::instrument(name = "handlers.account.index", skip_all)]
pub(super) async fn index(
    State(state): State<AppState>,
    query: Result<Query<AccountQuery>, axum::extract::rejection::QueryRejection>,
    RawQuery(raw): RawQuery,
    jar: PrivateCookieJar,
) -> PageResult {
    let (session, user) = person(&state, &jar, &here("/account/", raw.as_deref())).await?;
    let query = query.map(|Query(q)| q).ok();
    let action = query.as_ref().and_then(|q| q.action.as_deref());
    let device_id = query.as_ref().and_then(|q| q.device_id.as_deref());
    match action {
        Some("org.matrix.sessions_list" | "org.matrix.devices_list") => {
            return Ok(see_other(&state, "/account/sessions"));
        }
        Some(
            "org.matrix.session_view"
            | "org.matrix.device_view"
            | "org.matrix.session_end"
            | "org.matrix.device_delete",
        ) => return super::sessions::open_device(&state, &user, device_id).await,
        Some("org.matrix.cross_signing_reset") => {
            return Ok(see_other(&state, "/account/cross-signing-reset"));
        }
        Some("org.matrix.account_deactivate") if state.account.account_deactivation_allowed => {
            return Ok(see_other(&state, "/account/deactivate"));
        }
        _ => {}
    }
    // The profile lives on the homeserver; a page without it beats no page.
    let display_name =
        match crate::devices::within_deadline(state.homeserver.query_user(&user.username)).await {
            Ok(found) => found.displayname,
            Err(error) => {
                tracing::warn!(%error, "cannot read a profile from the homeserver");
                None
            }
        };
    let emails = state.repos.reader().await?.user_email().all(&user).await?;
    let emails: Vec<_> = emails
        .iter()
        .map(|e| minijinja::context! { id => e.id.to_string(), email => &e.email })
        .collect();
    let (jar, csrf) = csrf_token(&state, jar);
    let page = render(
        StatusCode::OK,
        "account.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf,
            base => state.page_path("/"),
            username => &user.username,
            mxid => state.homeserver.mxid(&user.username),
            display_name,
            emails,
            switches => minijinja::context! {
                display_name => state.account.displayname_change_allowed,
                password => state.account.password_change_allowed && state.passwords.is_enabled(),
                deactivate => state.account.account_deactivation_allowed,
                email => state.account.email_change_allowed,
            },
            signed_in_at => session.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            notice => notice(query.as_ref().and_then(|q| q.saved.as_deref())),
        },
    );
    Ok((jar, page).into_response())
}

/// A field of a posted form, empty when missing.
pub(super) fn field<'a>(form: &'a mas_oauth_core::params::Params, name: &str) -> &'a str {
    form.get(name).ok().flatten().unwrap_or_default()
}

/// The page for a form whose CSRF token does not match.
pub(super) fn expired_form(state: &AppState) -> PageError {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        &tr!("common-invalid-request"),
        &tr!("common-form-expired-go-back"),
    )
    .into()
}

/// The person who posted a form, after its CSRF token is checked; otherwise the page to
/// show (the form expired, sign in first).
pub(super) async fn posted(
    state: &AppState,
    jar: &PrivateCookieJar,
    form: &mas_oauth_core::params::Params,
    back: &str,
) -> Result<(BrowserSession, User), PageError> {
    if !csrf_valid(jar, field(form, "csrf")) {
        return Err(expired_form(state));
    }
    person(state, jar, back).await
}

/// The page for a change the configuration does not let people make: `detail` says
/// which ("… is turned off on this server. Ask its administrators.").
pub(super) fn not_allowed(state: &AppState, detail: crate::i18n::Msg) -> PageError {
    error_page(
        state,
        StatusCode::FORBIDDEN,
        &tr!("common-not-allowed"),
        &tr!(detail.0),
    )
    .into()
}

#[tracing::instrument(name = "handlers.account.display_name", skip_all)]
pub(super) async fn display_name(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (_, user) = posted(&state, &jar, &form, "/account/").await?;
    if !state.account.displayname_change_allowed {
        return Err(not_allowed(&state, msg!("account-off-display-name")));
    }
    let name = field(&form, "display_name").trim();
    if name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Ok(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            &tr!("account-display-name-invalid"),
            &tr!(
                "account-display-name-invalid-detail",
                max = MAX_DISPLAY_NAME
            ),
        ));
    }
    let hs = state.homeserver.as_ref();
    let change = async {
        if name.is_empty() {
            hs.unset_displayname(&user.username).await
        } else {
            hs.set_displayname(&user.username, name).await
        }
    };
    crate::devices::within_deadline(change).await?;
    Ok(see_other(&state, "/account/?saved=display-name"))
}

/// Whether this browser session proved its password (or came back from a provider)
/// within [`RECENT`].
async fn recently_authenticated(
    state: &AppState,
    session: &BrowserSession,
) -> Result<bool, PageError> {
    let last = state
        .repos
        .reader()
        .await?
        .browser_session()
        .last_authentication(session)
        .await?;
    Ok(last.is_some_and(|a| state.clock.now() - a.created_at < RECENT))
}

/// Why a password given on a form was not accepted.
enum PasswordRefused {
    /// Wrong, or none given.
    Wrong,
    /// Too many tries for this account.
    Throttled(String),
}

/// Checks `password` against the person's current one, with the sign-in throttle of
/// their account: a stolen session must not become a way to guess the password.
async fn check_password(
    state: &AppState,
    user: &User,
    password: &str,
) -> Result<Result<(mas_data_model::Password, Verified), PasswordRefused>, PageError> {
    match state.rate_limits.login_as(&user.username) {
        Ok(()) => {}
        Err(Throttled::Wait(wait)) => {
            return Ok(Err(PasswordRefused::Throttled(super::try_again(
                msg!("throttle-attempts"),
                wait,
            ))));
        }
        Err(Throttled::UsernameTooLong) => return Ok(Err(PasswordRefused::Wrong)),
    }
    let stored = state
        .repos
        .reader()
        .await?
        .user_password()
        .active(user)
        .await?;
    let Some(stored) = stored.filter(|_| !password.is_empty()) else {
        state.passwords.verify_decoy(password.to_owned()).await;
        return Ok(Err(PasswordRefused::Wrong));
    };
    match state
        .passwords
        .verify(
            stored.version,
            stored.hashed_password.clone(),
            password.to_owned(),
        )
        .await
    {
        Ok(verified) => Ok(Ok((stored, verified))),
        Err(_) => Ok(Err(PasswordRefused::Wrong)),
    }
}

/// A sensitive action's confirmation page: what it does, and the password field when
/// the sign-in is not recent.
#[allow(clippy::too_many_arguments)]
fn confirm_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    which: &str,
    user: &User,
    ask_password: bool,
    error: Option<&str>,
) -> Response {
    let (jar, csrf) = csrf_token(state, jar);
    let page = render(
        status,
        "account_confirm.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf, which, error, ask_password,
            base => state.page_path("/"),
            username => &user.username,
            mxid => state.homeserver.mxid(&user.username),
        },
    );
    (jar, page).into_response()
}

/// Which sensitive action a confirmation page is for.
#[derive(Clone, Copy)]
enum Sensitive {
    CrossSigningReset,
    Deactivate,
    SignOutOthers,
}

impl Sensitive {
    fn name(self) -> &'static str {
        match self {
            Self::CrossSigningReset => "cross-signing-reset",
            Self::Deactivate => "deactivate",
            Self::SignOutOthers => "sign-out-others",
        }
    }

    /// The person on the action's page, if the configuration allows the action.
    async fn person(
        self,
        state: &AppState,
        jar: &PrivateCookieJar,
    ) -> Result<(BrowserSession, User), PageError> {
        let found = person(state, jar, &format!("/account/{}", self.name())).await?;
        if matches!(self, Self::Deactivate) && !state.account.account_deactivation_allowed {
            return Err(not_allowed(state, msg!("account-off-deactivate")));
        }
        Ok(found)
    }
}

async fn confirm_get(state: &AppState, jar: PrivateCookieJar, which: Sensitive) -> PageResult {
    let (session, user) = which.person(state, &jar).await?;
    let ask = !recently_authenticated(state, &session).await?;
    Ok(confirm_page(
        state,
        jar,
        StatusCode::OK,
        which.name(),
        &user,
        ask,
        None,
    ))
}

/// Checks a sensitive action's form: its CSRF token, and the password when the sign-in
/// is not recent. The person and their session, or the page to show instead.
async fn confirmed(
    state: &AppState,
    jar: PrivateCookieJar,
    form: &mas_oauth_core::params::Params,
    which: Sensitive,
) -> Result<(PrivateCookieJar, BrowserSession, User), PageError> {
    if !csrf_valid(&jar, field(form, "csrf")) {
        return Err(expired_form(state));
    }
    let (session, user) = which.person(state, &jar).await?;
    if recently_authenticated(state, &session).await? {
        return Ok((jar, session, user));
    }
    let refused = match check_password(state, &user, field(form, "password")).await? {
        Ok(_) => return Ok((jar, session, user)),
        Err(PasswordRefused::Wrong) => (tr!("account-wrong-password"), StatusCode::UNAUTHORIZED),
        Err(PasswordRefused::Throttled(message)) => (message, StatusCode::TOO_MANY_REQUESTS),
    };
    Err(confirm_page(
        state,
        jar,
        refused.1,
        which.name(),
        &user,
        true,
        Some(&refused.0),
    )
    .into())
}

#[tracing::instrument(name = "handlers.account.cross_signing_reset.get", skip_all)]
pub(super) async fn cross_signing_get(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
) -> PageResult {
    confirm_get(&state, jar, Sensitive::CrossSigningReset).await
}

#[tracing::instrument(name = "handlers.account.cross_signing_reset.post", skip_all)]
pub(super) async fn cross_signing_post(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (_, _, user) = confirmed(&state, jar, &form, Sensitive::CrossSigningReset).await?;
    crate::devices::within_deadline(state.homeserver.allow_cross_signing_reset(&user.username))
        .await?;
    tracing::info!(user = %user.id, "cross-signing reset allowed");
    Ok(render(
        StatusCode::OK,
        "message.html",
        minijinja::context! {
            service_name => &*state.service_name,
            title => tr!("account-reset-allowed"),
            detail => tr!("account-reset-allowed-detail"),
        },
    ))
}

#[tracing::instrument(name = "handlers.account.deactivate.get", skip_all)]
pub(super) async fn deactivate_get(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
) -> PageResult {
    confirm_get(&state, jar, Sensitive::Deactivate).await
}

#[tracing::instrument(name = "handlers.account.deactivate.post", skip_all)]
pub(super) async fn deactivate_post(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (jar, _, user) = confirmed(&state, jar, &form, Sensitive::Deactivate).await?;
    let erase = field(&form, "erase") == "on";
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    // Every session ends with the account, and the homeserver deactivates it (erasing
    // its data when asked) through the job queue, which survives a homeserver outage.
    let user =
        mas_storage::accounts::deactivate(repo.as_mut(), &mut rng, clock, user, erase).await?;
    repo.save().await?;
    tracing::info!(user = %user.id, erase, "account deactivated by its owner");
    let page = render(
        StatusCode::OK,
        "message.html",
        minijinja::context! {
            service_name => &*state.service_name,
            title => tr!("account-deactivated"),
            detail => tr!("account-deactivated-detail"),
        },
    );
    Ok((forget_session(jar), page).into_response())
}

#[tracing::instrument(name = "handlers.account.sign_out_others.get", skip_all)]
pub(super) async fn sign_out_others_get(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
) -> PageResult {
    confirm_get(&state, jar, Sensitive::SignOutOthers).await
}

#[tracing::instrument(name = "handlers.account.sign_out_others.post", skip_all)]
pub(super) async fn sign_out_others_post(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (_, session, user) = confirmed(&state, jar, &form, Sensitive::SignOutOthers).await?;
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let (compat, oauth) =
        mas_storage::jobs::end_device_sessions(repo.as_mut(), clock, &user).await?;
    end_other_browsers(repo.as_mut(), clock, &user, &session).await?;
    // The homeserver's devices follow: one job makes them those of the open sessions.
    if compat + oauth > 0 {
        let job = HomeserverJob::SyncDevices { user_id: user.id };
        repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    }
    repo.save().await?;
    tracing::info!(user = %user.id, compat, oauth, "every other session signed out by its owner");
    if compat + oauth > 0 {
        crate::devices::sync_devices_now(&state, &user).await;
    }
    Ok(see_other(&state, "/account/sessions?saved=everywhere"))
}

#[tracing::instrument(name = "handlers.account.password", skip_all)]
pub(super) async fn password(
    State(state): State<AppState>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (session, user) = posted(&state, &jar, &form, "/account/").await?;
    if !state.account.password_change_allowed || !state.passwords.is_enabled() {
        return Err(not_allowed(&state, msg!("account-off-password")));
    }
    let refuse = |status, detail: &str| {
        error_page(&state, status, &tr!("account-password-not-changed"), detail)
    };
    let new = field(&form, "new_password");
    if new != field(&form, "new_password_confirm") {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            &tr!("common-passwords-differ"),
        ));
    }
    if !state.passwords.is_strong_enough(new, &[&user.username]) {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            &tr!("account-new-password-too-easy"),
        ));
    }
    if let Some(violation) = state.policy.check_password(new).first() {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            &crate::i18n::violation(violation),
        ));
    }
    match check_password(&state, &user, field(&form, "current_password")).await? {
        Ok(_) => {}
        Err(PasswordRefused::Wrong) => {
            return Ok(refuse(
                StatusCode::UNAUTHORIZED,
                &tr!("account-current-password-wrong"),
            ));
        }
        Err(PasswordRefused::Throttled(message)) => {
            return Ok(refuse(StatusCode::TOO_MANY_REQUESTS, &message));
        }
    }
    // Hashed with no connection held, with the newest scheme.
    let (version, hash) = state
        .passwords
        .hash(new.to_owned())
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot hash a new password");
            PageError::from(error_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                &tr!("common-something-went-wrong"),
                &tr!("common-please-try-again"),
            ))
        })?;
    let everywhere = field(&form, "sign_out_others") == "on";
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let password = repo
        .user_password()
        .add(&mut rng, clock, &user, version, hash, None)
        .await?;
    // This browser proved the new password just now.
    repo.browser_session()
        .authenticate_with_password(&mut rng, clock, &session, &password)
        .await?;
    let mut ended_devices = false;
    if everywhere {
        let (compat, oauth) =
            mas_storage::jobs::end_device_sessions(repo.as_mut(), clock, &user).await?;
        end_other_browsers(repo.as_mut(), clock, &user, &session).await?;
        if compat + oauth > 0 {
            let job = HomeserverJob::SyncDevices { user_id: user.id };
            repo.job().schedule(&mut rng, clock, job.to_job()).await?;
            ended_devices = true;
        }
    }
    repo.save().await?;
    tracing::info!(user = %user.id, everywhere, "password changed by its owner");
    if ended_devices {
        crate::devices::sync_devices_now(&state, &user).await;
    }
    let saved = if everywhere {
        "password-everywhere"
    } else {
        "password"
    };
    Ok(see_other(&state, &format!("/account/?saved={saved}")))
}

/// Ends every open browser session of `user` but `keep`.
async fn end_other_browsers(
    repo: &mut dyn mas_storage::Repository,
    clock: &dyn mas_storage::Clock,
    user: &User,
    keep: &BrowserSession,
) -> Result<(), mas_storage::StorageError> {
    loop {
        let open = repo
            .browser_session()
            .list(user, true, mas_storage::Pagination::first(100))
            .await?;
        let others: Vec<BrowserSession> =
            open.edges.into_iter().filter(|s| s.id != keep.id).collect();
        if others.is_empty() {
            return Ok(());
        }
        for other in others {
            repo.browser_session().finish(clock, other).await?;
        }
    }
}
