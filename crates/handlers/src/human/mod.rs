//! Pages for people: login, consent, and the authorization endpoint that leads to them.
//! Server-rendered forms with CSRF tokens; the session lives in an encrypted,
//! `HttpOnly`, `SameSite=Lax` cookie, `Secure` when the service is served over HTTPS.

mod account;
mod authorize;
mod backchannel;
mod compat_sso;
mod consent;
mod device;
mod emails;
mod error;
pub(crate) mod login;
mod recover;
mod register;
pub(crate) mod rp_logout;
mod sessions;
pub(crate) mod upstream;

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, PrivateCookieJar, SameSite};
use mas_data_model::BrowserSession;
use mas_storage::Repository;
use minijinja::Environment;
use serde::Serialize;
use subtle::ConstantTimeEq;

pub(crate) use self::error::{PageError, PageResult};
use crate::AppState;

/// The session cookie: the browser session's ID, encrypted.
const SESSION_COOKIE: &str = "mas-session";
/// The CSRF cookie: a random token forms must echo, encrypted.
const CSRF_COOKIE: &str = "mas-csrf";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_function("t", crate::i18n::template_message);
    env.add_function("lang", crate::i18n::template_lang);
    for (name, source) in [
        ("base.html", include_str!("../../templates/base.html")),
        ("api_doc.html", include_str!("../../templates/api_doc.html")),
        ("account.html", include_str!("../../templates/account.html")),
        ("recover.html", include_str!("../../templates/recover.html")),
        (
            "recover_sent.html",
            include_str!("../../templates/recover_sent.html"),
        ),
        (
            "recover_password.html",
            include_str!("../../templates/recover_password.html"),
        ),
        (
            "account_confirm.html",
            include_str!("../../templates/account_confirm.html"),
        ),
        (
            "account_nav.html",
            include_str!("../../templates/account_nav.html"),
        ),
        (
            "sessions.html",
            include_str!("../../templates/sessions.html"),
        ),
        (
            "email_code.html",
            include_str!("../../templates/email_code.html"),
        ),
        ("session.html", include_str!("../../templates/session.html")),
        ("login.html", include_str!("../../templates/login.html")),
        (
            "upstream.html",
            include_str!("../../templates/upstream.html"),
        ),
        (
            "register.html",
            include_str!("../../templates/register.html"),
        ),
        ("consent.html", include_str!("../../templates/consent.html")),
        (
            "continue.html",
            include_str!("../../templates/continue.html"),
        ),
        (
            "compat_sso.html",
            include_str!("../../templates/compat_sso.html"),
        ),
        ("error.html", include_str!("../../templates/error.html")),
        ("link.html", include_str!("../../templates/link.html")),
        ("message.html", include_str!("../../templates/message.html")),
        (
            "form_post.html",
            include_str!("../../templates/form_post.html"),
        ),
    ] {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, name, "a built-in template does not parse");
        }
    }
    env
});

pub(crate) fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/authorize", get(authorize::get))
        .route("/", get(login::index))
        .route("/login", get(login::get).post(login::counted_post))
        .route("/account/", get(account::index))
        .route("/account", get(account::without_slash))
        .route("/account/display-name", post(account::display_name))
        .route("/account/password", post(account::password))
        .route(
            "/account/cross-signing-reset",
            get(account::cross_signing_get).post(account::cross_signing_post),
        )
        .route(
            "/account/deactivate",
            get(account::deactivate_get).post(account::deactivate_post),
        )
        .route(
            "/account/sign-out-others",
            get(account::sign_out_others_get).post(account::sign_out_others_post),
        )
        .route("/account/emails", post(emails::add))
        .route(
            "/account/emails/{id}",
            get(emails::code_get).post(emails::code_post),
        )
        .route("/account/emails/{id}/remove", post(emails::remove))
        .route("/account/sessions", get(sessions::list))
        .route("/account/sessions/{id}", get(sessions::view))
        .route("/account/sessions/{id}/end", post(sessions::end))
        .route("/account/sessions/{id}/rename", post(sessions::rename))
        .route("/logout", post(login::logout))
        .route("/upstream/authorize/{provider}", get(upstream::authorize))
        .route(
            "/upstream/callback/{provider}",
            get(upstream::callback_get).post(upstream::callback_post),
        )
        .route(
            "/upstream/backchannel-logout/{provider}",
            post(backchannel::backchannel_logout),
        )
        .route(
            "/upstream/link/{trip}",
            get(upstream::link_get).post(upstream::link_post),
        )
        .route("/register", get(register::get).post(register::post))
        .route("/recover", get(recover::get).post(recover::post))
        .route(
            "/account/password/recovery",
            get(recover::link_get).post(recover::link_post),
        )
        .route(
            "/register/verify",
            get(register::code_get).post(register::code_post),
        )
        .route("/consent/{grant_id}", get(consent::get).post(consent::post))
        .route("/link", get(device::link_get).post(device::link_post))
        .route(
            "/complete-compat-sso/{id}",
            get(compat_sso::get).post(compat_sso::post),
        )
        .route(
            "/device/{grant_id}",
            get(device::device_get).post(device::device_post),
        )
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            error::render_error_pages,
        ))
        .layer(axum::middleware::from_fn(crate::i18n::negotiate))
}

/// The pages' content security policy: no scripts, no framing.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action *; frame-ancestors 'none'";

/// The one script of the `form_post` page, which submits its form.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit()";

/// The policy of the `form_post` page: its script allowed by hash, nothing else.
static FORM_POST_CSP: LazyLock<String> = LazyLock::new(|| {
    let digest = ring::digest::digest(&ring::digest::SHA256, FORM_POST_SCRIPT.as_bytes());
    let hash = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest.as_ref());
    format!("default-src 'none'; script-src 'sha256-{hash}'; form-action *; frame-ancestors 'none'")
});

/// Renders a page; a template failure becomes the plain error page.
pub(crate) fn render<S: Serialize>(status: StatusCode, template: &str, context: S) -> Response {
    render_with_policy(status, template, context, PAGE_CSP)
}

/// The policy of a page that shows a CAPTCHA widget: the provider's scripts, frames,
/// styles and calls are let in, nothing else.
pub(crate) fn captcha_policy(sources: &str) -> String {
    format!(
        "default-src 'none'; script-src {sources}; frame-src {sources}; connect-src {sources}; img-src {sources}; style-src 'unsafe-inline' {sources}; form-action *; frame-ancestors 'none'"
    )
}

pub(crate) fn render_with_policy<S: Serialize>(
    status: StatusCode,
    template: &str,
    context: S,
    policy: &str,
) -> Response {
    let page = TEMPLATES
        .get_template(template)
        .and_then(|t| t.render(context))
        .unwrap_or_else(|error| {
            tracing::error!(%error, template, "cannot render a page");
            let words = tr!("common-something-went-wrong");
            let lang = crate::i18n::locale().tag();
            format!("<!DOCTYPE html><html lang=\"{lang}\"><title>{words}</title><p>{words}</p>")
        });
    let mut response = (status, Html(page)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Pages carry grant and session IDs in their paths: never sent to other sites.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(policy) = HeaderValue::from_str(policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// A page with a form: this browser's CSRF token (set when new), the service's name and
/// the base path join `context`.
pub(crate) fn form_page(
    state: &AppState,
    jar: PrivateCookieJar,
    status: StatusCode,
    template: &str,
    context: minijinja::Value,
) -> Response {
    let (jar, csrf) = csrf_token(state, jar);
    let page = render(
        status,
        template,
        minijinja::context! {
            csrf, service_name => &*state.service_name, base => state.page_path("/"), ..context
        },
    );
    (jar, page).into_response()
}

/// The error page, for people (when a client cannot be told).
pub(crate) fn error_page(
    state: &AppState,
    status: StatusCode,
    title: &str,
    detail: &str,
) -> Response {
    render(
        status,
        "error.html",
        minijinja::context! { service_name => &*state.service_name, title, detail },
    )
}

/// The error page for a request an application sent the person with: what happened in
/// the person's words, and the protocol's own description (in English, as the OAuth
/// specifications write them) for the application's developers.
pub(crate) fn request_error_page(state: &AppState, detail: &str, technical: &str) -> Response {
    request_error_with(state, detail, technical, minijinja::context! {})
}

/// [`request_error_page`] with more for the page (the way back to the application).
fn request_error_with(
    state: &AppState,
    detail: &str,
    technical: &str,
    more: minijinja::Value,
) -> Response {
    render(
        StatusCode::BAD_REQUEST,
        "error.html",
        minijinja::context! {
            service_name => &*state.service_name,
            title => tr!("common-request-cannot-be-completed"),
            detail,
            technical,
            ..more
        },
    )
}

/// A cookie with the attributes every cookie of ours has.
pub(crate) fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Lax)
        .build()
}

/// The CSRF token of this browser, creating one when missing.
pub(crate) fn csrf_token(state: &AppState, jar: PrivateCookieJar) -> (PrivateCookieJar, String) {
    if let Some(existing) = jar.get(CSRF_COOKIE) {
        return (jar, existing.value().to_owned());
    }
    let mut bytes = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::make_rng::<rand::rngs::StdRng>(), &mut bytes);
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    (jar.add(cookie(state, CSRF_COOKIE, token.clone())), token)
}

/// Whether a form's CSRF token is this browser's.
pub(crate) fn csrf_valid(jar: &PrivateCookieJar, given: &str) -> bool {
    jar.get(CSRF_COOKIE).is_some_and(|c| {
        !given.is_empty() && bool::from(c.value().as_bytes().ct_eq(given.as_bytes()))
    })
}

/// The browser's open session, if any.
pub(crate) async fn current_session(
    repo: &mut dyn Repository,
    jar: &PrivateCookieJar,
) -> Result<Option<BrowserSession>, mas_storage::StorageError> {
    let Some(id) = jar
        .get(SESSION_COOKIE)
        .and_then(|c| c.value().parse::<ulid::Ulid>().ok())
    else {
        return Ok(None);
    };
    Ok(repo
        .browser_session()
        .lookup(id)
        .await?
        .filter(BrowserSession::is_active))
}

/// The browser's open session; without one, the person is sent to sign in and come back
/// to `back` (a local path with its query).
pub(crate) async fn signed_in(
    state: &AppState,
    jar: &PrivateCookieJar,
    back: &str,
) -> Result<BrowserSession, PageError> {
    let mut repo = state.repos.reader().await?;
    match current_session(repo.as_mut(), jar).await? {
        Some(session) => {
            state.activity.record(
                mas_storage::SessionKind::Browser,
                session.id,
                state.clock.now(),
                None,
            );
            Ok(session)
        }
        None => Err(see_other(state, &format!("/login?next={}", query_value(back))).into()),
    }
}

/// The OAuth 2.0 sessions of `user` started from one of the browser sessions `browsers`
/// (among the newest 1000 of the user's), open ones only with `active_only`.
pub(crate) async fn oauth_sessions_from(
    repo: &mut dyn Repository,
    user: &mas_data_model::User,
    browsers: &[ulid::Ulid],
    active_only: bool,
) -> Result<Vec<mas_data_model::Session>, mas_storage::StorageError> {
    let filter = mas_storage::repository::SessionFilter {
        user_id: Some(user.id),
        client_id: None,
        active: active_only.then_some(true),
    };
    let sessions = repo
        .session()
        .list(filter, mas_storage::Pagination::first(1000))
        .await?
        .edges;
    Ok(sessions
        .into_iter()
        .filter(|s| s.browser_session_id.is_some_and(|b| browsers.contains(&b)))
        .collect())
}

/// Remembers the browser session in the cookie jar.
pub(crate) fn remember_session(
    state: &AppState,
    jar: PrivateCookieJar,
    session: &BrowserSession,
) -> PrivateCookieJar {
    jar.add(cookie(state, SESSION_COOKIE, session.id.to_string()))
}

/// Forgets the browser session.
pub(crate) fn forget_session(jar: PrivateCookieJar) -> PrivateCookieJar {
    jar.remove(Cookie::build(SESSION_COOKIE).path("/"))
}

/// Accepts only local paths as post-login destinations (no open redirect).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        // Browsers drop tabs and line breaks from URLs (`/\t/evil.example` becomes
        // `//evil.example`), and spaces have no place in our paths either.
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// `value` encoded for a query string.
pub(crate) fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A 303 to a page of ours (`local` from the service's root; see [`AppState::page_path`]).
pub(crate) fn see_other(state: &AppState, local: &str) -> Response {
    redirect_to(&state.page_path(local))
}

/// A 303 to `location` as given.
pub(crate) fn redirect_to(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Delivers an authorization answer to a client: a redirect, or an auto-posted form.
pub(crate) fn deliver(redirect: &mas_oauth_core::authorize::Redirect) -> Response {
    if let Some(url) = redirect.location() {
        return redirect_to(url.as_str());
    }
    let params: Vec<[&str; 2]> = redirect
        .params
        .iter()
        .map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    auto_post(redirect.redirect_uri.as_str(), &params)
}

/// A page whose one script posts `params` to `action` at once (a button without scripts).
pub(crate) fn auto_post(action: &str, params: &[[&str; 2]]) -> Response {
    render_with_policy(
        StatusCode::OK,
        "form_post.html",
        minijinja::context! { action, params, script => FORM_POST_SCRIPT },
        &FORM_POST_CSP,
    )
}

/// The language of this page (what the browser asked for, among those there are): what
/// a message sent on the person's behalf is written in.
pub(crate) fn browser_locale() -> String {
    crate::i18n::locale().tag().to_owned()
}

/// The message `what` ("Too many …. Try again in N seconds.", its `$seconds` filled
/// in), for a bucket that ran dry.
pub(crate) fn try_again(what: crate::i18n::Msg, wait: std::time::Duration) -> String {
    tr!(what.0, seconds = wait.as_secs().max(1))
}

/// Whether the code typed in a form (its digits) is the one sealed in `sealed`, compared
/// in constant time; `None` when the sealed code does not decrypt.
pub(crate) fn code_matches(
    encrypter: &mas_storage::Encrypter,
    sealed: &str,
    typed: &str,
) -> Option<bool> {
    let expected = encrypter.decrypt(sealed).ok()?;
    let typed: String = typed.chars().filter(char::is_ascii_digit).collect();
    Some(!typed.is_empty() && bool::from(typed.as_bytes().ct_eq(&expected)))
}

/// A request from a requester that `policy.data.requester` does not turn away: pages
/// that take it answer the others with a `403` page before anything else.
pub(crate) struct Welcome;

impl axum::extract::FromRequestParts<AppState> for Welcome {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = state
            .rate_limits
            .client_ip(&parts.extensions, &parts.headers);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        if state.policy.is_requester_banned(ip, user_agent) {
            return Err(error_page(
                state,
                StatusCode::FORBIDDEN,
                &tr!("common-not-allowed"),
                &crate::i18n::violation(&mas_oauth_core::policy::Violation::RequesterBanned),
            ));
        }
        Ok(Self)
    }
}

/// Takes one request from `ip`'s bucket of `kind`; when it is dry, the message `what` to
/// show ("Too many … came from your address…", see [`try_again`]).
pub(crate) fn throttled(
    state: &AppState,
    kind: crate::rate_limit::PerAddress,
    ip: Option<std::net::IpAddr>,
    what: crate::i18n::Msg,
) -> Option<String> {
    let wait = state.rate_limits.throttle(kind, ip).err()?;
    Some(try_again(what, wait))
}

/// An authorization error for `client`. A client from the configuration gets it as a
/// redirect; a registered one's redirect URI is whatever its registrant chose, so the
/// person sees the error and a link to go back instead: without a click, the service
/// would be an open redirector (RFC 9700 §4.11.2).
pub(crate) fn deliver_error(
    state: &AppState,
    client: &mas_data_model::Client,
    redirect: &mas_oauth_core::authorize::Redirect,
) -> Response {
    if client.kind == mas_data_model::ClientKind::Static {
        return deliver(redirect);
    }
    let param = |name: &str| {
        redirect
            .params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let error = param("error").unwrap_or_default();
    let detail = match error {
        "access_denied" => tr!("page-error-access-denied"),
        "login_required"
        | "interaction_required"
        | "consent_required"
        | "account_selection_required" => tr!("page-error-interaction-required"),
        _ => tr!("common-request-refused"),
    };
    let technical = param("error_description").map_or_else(
        || error.to_owned(),
        |description| format!("{error}: {description}"),
    );
    let back_host = redirect
        .redirect_uri
        .host_str()
        .map_or_else(|| redirect.redirect_uri.scheme().to_owned(), str::to_owned);
    let back_href = redirect.location().map(|url| url.to_string());
    let back_params: Vec<[&str; 2]> = redirect
        .params
        .iter()
        .map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    request_error_with(
        state,
        &detail,
        &technical,
        minijinja::context! {
            back_host,
            back_href,
            back_action => redirect.redirect_uri.as_str(),
            back_params,
        },
    )
}

/// An answer sent without the person clicking anything (a silent request, a remembered
/// consent): a code goes back as a redirect, an error as [`deliver_error`] says.
pub(crate) fn deliver_unattended(
    state: &AppState,
    client: &mas_data_model::Client,
    redirect: &mas_oauth_core::authorize::Redirect,
) -> Response {
    if redirect.params.iter().any(|(k, _)| k == "error") {
        deliver_error(state, client, redirect)
    } else {
        deliver(redirect)
    }
}

/// One scope token as a person reads it, with the token itself for who wants it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct ScopeInWords {
    /// What it lets the client do, in words.
    words: String,
    /// The token as the client asked for it.
    raw: String,
}

/// The tokens of `scope` in words, in the order asked.
pub(crate) fn describe_scopes(scope: &str) -> Vec<ScopeInWords> {
    scope
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(|token| {
            let device = token
                .strip_prefix("urn:matrix:client:device:")
                .or_else(|| token.strip_prefix("urn:matrix:org.matrix.msc2967.client:device:"));
            let words = match token {
                "openid" => tr!("scope-openid"),
                "email" => tr!("scope-email"),
                "urn:matrix:client:api:*" | "urn:matrix:org.matrix.msc2967.client:api:*" => {
                    tr!("scope-matrix-api")
                }
                "urn:matrix:client:api:guest"
                | "urn:matrix:org.matrix.msc2967.client:api:guest" => tr!("scope-matrix-guest"),
                "urn:synapse:admin:*" => tr!("scope-synapse-admin"),
                "urn:mas:admin" => tr!("scope-mas-admin"),
                "urn:mas:graphql:*" => tr!("scope-mas-graphql"),
                _ => device.map_or_else(
                    || tr!("scope-unknown", scope = token),
                    |device| tr!("scope-device", device = device),
                ),
            };
            ScopeInWords {
                words,
                raw: token.to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_file_is_built_in_and_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                super::TEMPLATES.get_template(&name).is_ok(),
                "templates/{name} is not in TEMPLATES, or does not parse"
            );
        }
    }
}
