//! `/authorize`, the login and consent pages: what a person and a client see when a
//! request is wrong, and the pages' own defences.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mas_data_model::ClientAuthMethod;
use mas_storage::SystemClock;
use tower::ServiceExt;
use ulid::Ulid;
use url::Url;

use crate::test_state::{Up, state};
use crate::{AppState, Resource, router};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn client(state: &AppState, method: ClientAuthMethod, redirect: &str) -> Ulid {
    client_with_grants(
        state,
        method,
        redirect,
        &["authorization_code", "refresh_token"],
    )
    .await
}

async fn client_with_grants(
    state: &AppState,
    method: ClientAuthMethod,
    redirect: &str,
    grants: &[&str],
) -> Ulid {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    // Several URIs may be given, separated by spaces.
    let redirect_uris = redirect
        .split(' ')
        .map(|uri| Url::parse(uri).unwrap())
        .collect();
    let mut params = crate::test_state::client_params(method, redirect_uris, grants);
    params.name = Some("Some App".to_owned());
    let client = repo
        .client()
        .add_dynamic(&mut rng, &SystemClock, params)
        .await
        .unwrap();
    repo.save().await.unwrap();
    client.id
}

/// A client from the configuration (trusted with redirects) with one redirect URI.
pub(crate) async fn static_client(state: &AppState, redirect: &str) -> Ulid {
    let id = Ulid::new();
    let mut repo = state.repos.begin().await.unwrap();
    repo.client()
        .upsert_static(
            &SystemClock,
            id,
            crate::test_state::client_params(
                ClientAuthMethod::None,
                vec![Url::parse(redirect).unwrap()],
                &["authorization_code", "refresh_token"],
            ),
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    id
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    get_in(state, uri, None).await
}

/// A pending `openid` authorization request of `client`, to `https://app.example.com/cb`.
async fn pending_grant(
    repo: &mut mas_storage::BoxRepository,
    rng: &mut rand::rngs::StdRng,
    clock: &dyn mas_storage::Clock,
    client: Ulid,
) -> mas_data_model::AuthorizationGrant {
    let new = mas_storage::repository::NewAuthorizationGrant {
        client_id: client,
        redirect_uri: Url::parse("https://app.example.com/cb").unwrap(),
        scope: "openid".to_owned(),
        state: None,
        nonce: None,
        response_mode: mas_data_model::ResponseMode::Query,
        response_type_id_token: false,
        pkce: None,
        max_age: None,
        login_hint: None,
        prompt: None,
    };
    repo.authorization_grant()
        .add(rng, clock, new)
        .await
        .unwrap()
}

/// A `Cookie` header holding these cookies, sealed as the service's own jar seals them.
pub(crate) fn sealed_cookies(state: &AppState, cookies: &[(&'static str, String)]) -> String {
    use axum::response::IntoResponse;
    use axum_extra::extract::cookie::{Cookie, PrivateCookieJar};
    let mut jar = PrivateCookieJar::new(state.cookie_key.clone());
    for (name, value) in cookies {
        jar = jar.add(Cookie::new(*name, value.clone()));
    }
    jar.into_response()
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The link back to the client on an error page for a registered client.
fn link_back(page: &str) -> String {
    page.split("<a href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn untrusted_clients_and_redirects_get_a_page_not_a_redirect() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let id = static_client(&state, "https://app.example.com/cb").await;
    let two = client(
        &state,
        ClientAuthMethod::None,
        "https://app.example.com/cb https://app.example.com/other",
    )
    .await;
    let pkce = format!("code_challenge={CHALLENGE}&code_challenge_method=S256");
    // With only one registered URI, leaving it out is fine: the request goes on to the
    // login page, and errors would go to that URI.
    let (status, headers, _) = get(
        &state,
        &format!("/authorize?client_id={id}&response_type=code&scope=openid&{pkce}"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/consent/"),
        "{headers:?}"
    );
    let (status, headers, _) = get(
        &state,
        &format!("/authorize?client_id={id}&response_type=token&scope=openid&{pkce}&state=s"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .starts_with("https://app.example.com/cb?error=unsupported_response_type"),
        "{headers:?}"
    );
    for uri in [
        "/authorize?response_type=code&scope=openid".to_owned(),
        format!(
            "/authorize?client_id={}&response_type=code&scope=openid",
            Ulid::new()
        ),
        format!(
            "/authorize?client_id={id}&redirect_uri=https://evil.example.com/cb&response_type=code&scope=openid&{pkce}"
        ),
        format!(
            "/authorize?client_id={id}&redirect_uri=https://app.example.com/cb/extra&response_type=code&scope=openid&{pkce}"
        ),
        // Unparsable, and a query that cannot be read (a repeated `client_id`).
        format!(
            "/authorize?client_id={id}&redirect_uri=not%20a%20url&response_type=code&scope=openid&{pkce}"
        ),
        format!(
            "/authorize?client_id={id}&client_id={id}&redirect_uri=https://app.example.com/cb&response_type=code&scope=openid&{pkce}"
        ),
        // No `redirect_uri`, but the client has two: which one is meant cannot be known.
        format!("/authorize?client_id={two}&response_type=code&scope=openid&{pkce}"),
    ] {
        let (status, headers, body) = get(&state, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            headers.get("location").is_none(),
            "never redirects to an unverified URI: {uri}"
        );
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(body.contains("This request cannot be completed"), "{body}");
    }
}

#[tokio::test]
async fn client_mistakes_are_sent_back_to_the_client() {
    let (state, _dir) = state(Arc::new(Up)).await;
    // A client from the configuration: trusted with redirects.
    let public = Ulid::new();
    let mut repo = state.repos.begin().await.unwrap();
    repo.client()
        .upsert_static(
            &SystemClock,
            public,
            crate::test_state::client_params(
                ClientAuthMethod::None,
                vec![Url::parse("https://app.example.com/cb").unwrap()],
                &["authorization_code", "refresh_token"],
            ),
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    // A registered one: its redirect URI is its registrant's choice.
    let registered = client(&state, ClientAuthMethod::None, "https://app.example.com/cb").await;
    let base =
        format!("/authorize?client_id={public}&redirect_uri=https://app.example.com/cb&state=xyz");
    let cases = [
        (
            "&response_type=token&scope=openid",
            "unsupported_response_type",
        ),
        (
            "&response_type=code%20id_token&scope=openid",
            "unsupported_response_type",
        ),
        ("&response_type=code&scope=openid", "invalid_request"),
        (
            &format!(
                "&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=plain"
            ),
            "invalid_request",
        ),
        (
            &format!("&response_type=code&scope=openid&code_challenge={CHALLENGE}"),
            "invalid_request",
        ),
        (
            &format!(
                "&response_type=code&scope=made:up&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ),
            "invalid_scope",
        ),
        (
            &format!(
                "&response_type=code&scope=openid&prompt=none&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ),
            "login_required",
        ),
        (
            &format!(
                "&response_type=code&scope=openid&request=eyJ&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ),
            "request_not_supported",
        ),
        (
            &format!(
                "&response_type=code&scope=openid&request_uri=https://app.example.com/r&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ),
            "request_not_supported",
        ),
        (
            "&response_type=code&scope=openid&code_challenge_method=S256",
            "invalid_request",
        ),
        (
            "&response_type=code&scope=openid&code_challenge=short&code_challenge_method=S256",
            "invalid_request",
        ),
        (
            &format!(
                "&response_type=code&scope=openid&code_challenge={}&code_challenge_method=S256",
                "a".repeat(129)
            ),
            "invalid_request",
        ),
    ];
    for (extra, error) in cases {
        let (status, headers, _) = get(&state, &format!("{base}{extra}")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{extra}");
        let location = headers["location"].to_str().unwrap();
        assert!(
            location.starts_with("https://app.example.com/cb?"),
            "{location}"
        );
        let query = query_of(location);
        assert_eq!(
            query.get("error").map(String::as_str),
            Some(error),
            "{extra}"
        );
        assert_eq!(query.get("state").map(String::as_str), Some("xyz"));
        assert_eq!(
            query.get("iss").map(String::as_str),
            Some("https://auth.example.com/")
        );

        // The attack: a registered client makes the same mistake on purpose, to use the
        // service as an open redirector. The person sees the error, and a link back.
        let uri = format!("{base}{extra}").replace(&public.to_string(), &registered.to_string());
        let (status, headers, page) = get(&state, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}");
        assert!(headers.get("location").is_none(), "{extra}");
        assert!(page.contains("Return to app.example.com"), "{page}");
        let href = link_back(&page);
        assert!(href.starts_with("https://app.example.com/cb?"), "{href}");
        assert_eq!(
            query_of(&href).get("error").map(String::as_str),
            Some(error),
            "{extra}"
        );
    }
}

#[tokio::test]
async fn a_valid_request_goes_to_consent_then_login() {
    let (state, _dir) = state(Arc::new(Up)).await;
    // Registered without a port: a native app's loopback redirect may use any port.
    let native = client(&state, ClientAuthMethod::None, "http://127.0.0.1/callback").await;
    let uri = format!(
        "/authorize?client_id={native}&redirect_uri=http://127.0.0.1:53682/callback&response_type=code&scope=openid%20urn:matrix:client:api:*&code_challenge={CHALLENGE}&code_challenge_method=S256&state=s"
    );
    let (status, headers, _) = get(&state, &uri).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let consent = headers["location"].to_str().unwrap().to_owned();
    assert!(consent.starts_with("/consent/"), "{consent}");
    let (status, headers, _) = get(&state, &consent).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let login = headers["location"].to_str().unwrap();
    assert_eq!(
        login,
        format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(consent.as_bytes()).collect::<String>()
        )
    );

    let (status, headers, page) = get(&state, login).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("name=\"csrf\""), "{page}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP in this test: {cookie}"
    );
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert_eq!(headers["cache-control"], "no-store");
    // Served over https, the same cookie is `Secure`.
    let mut https = state.clone();
    https.secure_cookies = true;
    let (_, headers, _) = get(&https, login).await;
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // A stale or missing CSRF token is refused, with the form shown again.
    let app = router(&[Resource::Human], None, state.clone());
    let response = app
        .oneshot(
            Request::post("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("csrf=forged&username=alice&password=x&next=/"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("The form expired"));
}

#[test]
fn login_destinations_stay_on_this_site() {
    use crate::human::safe_next;
    assert_eq!(safe_next(Some("/consent/01ABC")), "/consent/01ABC");
    for hostile in [
        "https://evil.example.com/",
        "//evil.example.com/",
        "/\\evil.example.com",
        "javascript:alert(1)",
        "",
        // Browsers drop tabs and line breaks: these would become `//evil.example.com`.
        "/\t/evil.example.com",
        "/\n/evil.example.com",
        "/\r/evil.example.com",
        "/ /evil.example.com",
    ] {
        assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
    }
    assert_eq!(safe_next(None), "/");
}

#[test]
fn redirect_uris_match_exactly_except_loopback_ports() {
    use mas_oauth_core::authorize::redirect_uri_matches;
    let registered = [
        Url::parse("https://app.example.com/cb").unwrap(),
        Url::parse("http://127.0.0.1/native").unwrap(),
        Url::parse("http://[::1]/native").unwrap(),
        Url::parse("http://localhost/loop").unwrap(),
    ];
    let ok = [
        "https://app.example.com/cb",
        "http://127.0.0.1:4000/native",
        "http://[::1]:9/native",
        "http://localhost:8123/loop",
    ];
    let refused = [
        "https://app.example.com/cb/",
        "https://app.example.com/cb?x=1",
        "https://app.example.com:8443/cb",
        "http://app.example.com/cb",
        "https://APP.example.com.evil.com/cb",
        "http://127.0.0.1:4000/other",
        "https://127.0.0.1:4000/native",
        "https://localhost:8123/loop",
        "http://localhost:8123/other",
        "http://localhost.evil.example/loop",
    ];
    for uri in ok {
        assert!(
            redirect_uri_matches(&registered, &Url::parse(uri).unwrap()),
            "{uri}"
        );
    }
    for uri in refused {
        assert!(
            !redirect_uri_matches(&registered, &Url::parse(uri).unwrap()),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn registration_is_closed_unless_configured() {
    let (state, _dir) = state(Arc::new(Up)).await;
    assert!(!state.oauth.registration_open);
    let (status, _, page) = get(&state, "/register?next=/consent/x").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Registration is closed"), "{page}");
    let (status, _, page) = get(&state, "/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains(r#"id="register""#),
        "no link to a closed page: {page}"
    );

    // Opened: the page is a form, and the login page links to it, keeping `next`.
    let mut open = state.clone();
    open.oauth = crate::test_state::oauth_with(true);
    let (status, _, page) = get(&open, "/register?next=/consent/x").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"name="password_confirm""#), "{page}");
    let (_, _, page) = get(&open, "/login?next=/consent/x").await;
    assert!(
        page.contains("&#x2f;register?next=%2Fconsent%2Fx"),
        "{page}"
    );
}

#[tokio::test]
async fn a_client_without_the_code_grant_is_unauthorized() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let id = client_with_grants(
        &state,
        ClientAuthMethod::ClientSecretBasic,
        "https://app.example.com/cb",
        &["client_credentials"],
    )
    .await;
    let (status, headers, page) = get(
        &state,
        &format!(
            "/authorize?client_id={id}&redirect_uri=https://app.example.com/cb&response_type=code&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ),
    )
    .await;
    // A registered client: the error is shown, with the way back to the client.
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers.get("location").is_none());
    let query = query_of(&link_back(&page));
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("unauthorized_client")
    );
    assert_eq!(query.get("state").map(String::as_str), Some("s"));
}

#[tokio::test]
async fn pages_live_under_the_public_base_path() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.oauth = crate::test_state::oauth_at("https://example.com/auth/", true);
    let id = client(&state, ClientAuthMethod::None, "https://app.example.com/cb").await;
    let send = |uri: String| {
        let app = router(&[Resource::Human], Some("/auth"), state.clone());
        async move {
            let response = app
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            // The templates escape `/` in attributes, as browsers read them back.
            let page = String::from_utf8_lossy(&bytes).replace("&#x2f;", "/");
            (status, location, page)
        }
    };
    let (status, consent, _) = send(format!(
        "/auth/authorize?client_id={id}&redirect_uri=https://app.example.com/cb&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256"
    ))
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let consent = consent.unwrap();
    assert!(consent.starts_with("/auth/consent/"), "{consent}");
    let (_, login, _) = send(consent.clone()).await;
    let login = login.unwrap();
    // `next` stays a path from the service's root; the browser goes under the base.
    assert!(
        login.starts_with("/auth/login?next=%2Fconsent%2F"),
        "{login}"
    );
    let (status, _, page) = send(login).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"action="/auth/login""#), "{page}");
    assert!(
        page.contains(r#"href="/auth/register?next=%2Fconsent%2F"#),
        "{page}"
    );
    let (_, _, page) = send("/auth/register".to_owned()).await;
    assert!(page.contains(r#"action="/auth/register""#), "{page}");
}

#[tokio::test]
async fn a_request_left_pending_for_over_an_hour_expires() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let id = client(&state, ClientAuthMethod::None, "https://app.example.com/cb").await;
    let mut grants = Vec::new();
    for minutes_ago in [61, 59] {
        let clock = mas_storage::MockClock::new(
            chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        );
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = state.repos.begin().await.unwrap();
        let grant = pending_grant(&mut repo, &mut rng, &clock, id).await;
        repo.save().await.unwrap();
        grants.push(grant.id);
    }
    let (status, _, page) = get(&state, &format!("/consent/{}", grants[0])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("This request has expired"), "{page}");
    let (status, headers, _) = get(&state, &format!("/consent/{}", grants[1])).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "still pending: log in first");
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );
}

#[tokio::test]
async fn session_cookies_are_encrypted_and_tampering_signs_out() {
    use axum::response::IntoResponse;
    use axum_extra::extract::cookie::{Cookie, PrivateCookieJar};

    let (state, _dir) = state(Arc::new(Up)).await;
    let id = client(&state, ClientAuthMethod::None, "https://app.example.com/cb").await;
    let clock = SystemClock;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let user = repo.user().add(&mut rng, &clock, "dave").await.unwrap();
    let password = repo
        .user_password()
        .add(
            &mut rng,
            &clock,
            &user,
            1,
            "$argon2id$unused".to_owned(),
            None,
        )
        .await
        .unwrap();
    let session = repo
        .browser_session()
        .add(&mut rng, &clock, &user, None)
        .await
        .unwrap();
    repo.browser_session()
        .authenticate_with_password(&mut rng, &clock, &session, &password)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let (_, headers, _) = get(
        &state,
        &format!(
            "/authorize?client_id={id}&redirect_uri=https://app.example.com/cb&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ),
    )
    .await;
    let consent = headers["location"].to_str().unwrap().to_owned();

    // The cookie this service would set for the session.
    let jar = PrivateCookieJar::new(state.cookie_key.clone())
        .add(Cookie::new("mas-session", session.id.to_string()));
    let set_cookie = jar.into_response().headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let sealed = set_cookie.split(';').next().unwrap().to_owned();
    assert!(!sealed.contains(&session.id.to_string()), "{sealed}");
    let mut tampered = sealed.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let with_cookie = |cookie: String| {
        let app = router(&[Resource::Human], None, state.clone());
        let request = Request::get(consent.as_str())
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let location = response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            (response.status(), location)
        }
    };
    let (status, location) = with_cookie(sealed).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the real cookie is signed in: {location:?}"
    );
    for forged in [format!("mas-session={}", session.id), tampered] {
        let (status, location) = with_cookie(forged.clone()).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{forged}");
        assert!(location.unwrap().starts_with("/login?next="), "{forged}");
    }
}

#[tokio::test]
async fn the_form_post_page_runs_exactly_its_own_script() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let id = static_client(&state, "https://app.example.com/cb").await;
    // An error after the redirect URI is trusted is delivered by the chosen mode.
    let (status, headers, page) = get(
        &state,
        &format!(
            "/authorize?client_id={id}&redirect_uri=https://app.example.com/cb&response_type=code&response_mode=form_post&scope=openid&state=a%22b"
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(headers.get("location").is_none());
    assert!(
        page.contains(r#"<form method="post" action="https:&#x2f;&#x2f;app.example.com&#x2f;cb">"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<input type="hidden" name="error" value="invalid_request">"#),
        "{page}"
    );
    assert!(
        page.contains(r#"name="state" value="a&quot;b""#),
        "the state is escaped: {page}"
    );
    assert!(
        page.contains(r#"name="iss" value="https:&#x2f;&#x2f;auth.example.com&#x2f;""#),
        "{page}"
    );
    // The one script on the page is the one the policy's hash allows.
    let script = page
        .split("<script>")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .unwrap();
    assert_eq!(page.matches("<script").count(), 1);
    let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
    let hash = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, digest.as_ref());
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert_eq!(
        csp,
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; form-action *; frame-ancestors 'none'"
        )
    );
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn registration_asks_the_homeserver_whether_the_name_is_free() {
    use axum::response::IntoResponse;
    use axum_extra::extract::cookie::{Cookie, PrivateCookieJar};

    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.oauth = crate::test_state::oauth_with(true);
    state.account.registration_email_required = false;
    let homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    homeserver.reserve("appservice_bot");
    state.homeserver = homeserver.clone();
    let jar =
        PrivateCookieJar::new(state.cookie_key.clone()).add(Cookie::new("mas-csrf", "csrf-value"));
    let cookie = jar.into_response().headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let register = |username: &str| {
        let app = router(&[Resource::Human], None, state.clone());
        let body = format!(
            "csrf=csrf-value&next=%2F&username={username}&password=correct+horse+battery+staple+again&password_confirm=correct+horse+battery+staple+again"
        );
        let request = Request::post("/register")
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let (status, page) = register("appservice_bot").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("This username is not available."), "{page}");

    homeserver.set_down(true);
    let (status, page) = register("newcomer").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.contains("homeserver cannot be reached"), "{page}");

    homeserver.set_down(false);
    let (status, _) = register("newcomer").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The homeserver learns of the new user through the job queue.
    let mut repo = state.repos.begin().await.unwrap();
    let jobs = repo
        .job()
        .claim(
            &SystemClock,
            &["provision-user"],
            10,
            chrono::Duration::seconds(30),
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
}

#[tokio::test]
async fn every_login_starts_a_new_browser_session() {
    use axum::response::IntoResponse;
    use axum_extra::extract::cookie::{Cookie, PrivateCookieJar};

    let (state, _dir) = state(Arc::new(Up)).await;
    let (version, hash) = state
        .passwords
        .hash("correct horse battery staple".to_owned())
        .await
        .unwrap();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let user = repo
        .user()
        .add(&mut rng, &SystemClock, "erin")
        .await
        .unwrap();
    repo.user_password()
        .add(&mut rng, &SystemClock, &user, version, hash, None)
        .await
        .unwrap();
    // A session the browser already has (someone else's machine, say).
    let earlier = repo
        .browser_session()
        .add(&mut rng, &SystemClock, &user, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let sealed = |jar: PrivateCookieJar| {
        jar.into_response()
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let cookies = sealed(
        PrivateCookieJar::new(state.cookie_key.clone())
            .add(Cookie::new("mas-session", earlier.id.to_string()))
            .add(Cookie::new("mas-csrf", "csrf-value")),
    );
    let app = router(&[Resource::Human], None, state.clone());
    let response = app
        .oneshot(
            Request::post("/login")
                .header("cookie", &cookies)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(
                    "csrf=csrf-value&next=%2F&username=erin&password=correct+horse+battery+staple",
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("mas-session="))
        .expect("a new session cookie");
    assert!(!cookies.contains(set.split(';').next().unwrap()), "{set}");
    let mut repo = state.repos.reader().await.unwrap();
    let sessions = repo
        .browser_session()
        .list(&user, true, mas_storage::Pagination::first(10))
        .await
        .unwrap();
    // Not reused, and not left open: the browser no longer holds its cookie.
    assert_eq!(sessions.edges.len(), 1, "{:?}", sessions.edges);
    assert_ne!(
        sessions.edges[0].id, earlier.id,
        "the earlier one was not reused"
    );
    let earlier = repo
        .browser_session()
        .lookup(earlier.id)
        .await
        .unwrap()
        .unwrap();
    assert!(earlier.finished_at.is_some(), "the earlier one ended");
}

#[tokio::test]
async fn a_consented_client_cannot_take_another_sessions_device() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let redirect = "https://app.example.com/cb";
    // From the configuration, so its errors come back as redirects.
    let app_client = static_client(&state, redirect).await;
    let other_client = client(&state, ClientAuthMethod::None, redirect).await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let user = repo
        .user()
        .add(&mut rng, &SystemClock, "frank")
        .await
        .unwrap();
    let browser = repo
        .browser_session()
        .add(&mut rng, &SystemClock, &user, None)
        .await
        .unwrap();
    let password = repo
        .user_password()
        .add(&mut rng, &SystemClock, &user, 1, "unused".to_owned(), None)
        .await
        .unwrap();
    repo.browser_session()
        .authenticate_with_password(&mut rng, &SystemClock, &browser, &password)
        .await
        .unwrap();
    // Consent remembered: the client holds a session of its own, on its own device.
    repo.session()
        .add(
            &mut rng,
            &SystemClock,
            app_client,
            Some(user.id),
            Some(browser.id),
            "urn:matrix:client:api:* urn:matrix:client:device:OWNDEVICE",
            None,
        )
        .await
        .unwrap();
    // Devices the person uses elsewhere: another client's, and a compatibility login's.
    repo.session()
        .add(
            &mut rng,
            &SystemClock,
            other_client,
            Some(user.id),
            None,
            "urn:matrix:client:api:* urn:matrix:client:device:ELEMENTX",
            None,
        )
        .await
        .unwrap();
    repo.compat_session()
        .add(
            &mut rng,
            &SystemClock,
            &user,
            Some("LEGACYDEV".to_owned()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    let cookies = sealed_cookies(
        &state,
        &[
            ("mas-session", browser.id.to_string()),
            ("mas-csrf", "csrf-value".to_string()),
        ],
    );
    let send = |request: Request<Body>| {
        let app = router(&[Resource::Human], None, state.clone());
        async move {
            let response = app.oneshot(request).await.unwrap();
            (
                response.status(),
                response
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
            )
        }
    };
    let authorize = |device: &str, prompt: &str| {
        Request::get(format!(
            "/authorize?client_id={app_client}&redirect_uri={redirect}&response_type=code&scope=urn:matrix:client:api:*%20urn:matrix:client:device:{device}&code_challenge={CHALLENGE}&code_challenge_method=S256&state=s{prompt}"
        ))
        .header("cookie", &cookies)
        .body(Body::empty())
        .unwrap()
    };

    // The attack: silently, with consent remembered, ask for a device someone else uses.
    for device in ["ELEMENTX", "LEGACYDEV", "BRANDNEW"] {
        let (status, location) = send(authorize(device, "&prompt=none")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{device}");
        let query = query_of(&location);
        assert_eq!(
            query.get("error").map(String::as_str),
            Some("consent_required"),
            "{device}: {location}"
        );
        assert!(!query.contains_key("code"), "{device}: {location}");
    }
    // Signing in again on its own device needs no page.
    let (_, location) = send(authorize("OWNDEVICE", "&prompt=none")).await;
    assert!(query_of(&location).contains_key("code"), "{location}");

    // Even when the person allows it on the page, another session's device is refused.
    for device in ["ELEMENTX", "LEGACYDEV"] {
        let (status, consent) = send(authorize(device, "")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(consent.starts_with("/consent/"), "{consent}");
        let (status, location) = send(
            Request::post(consent.as_str())
                .header("cookie", &cookies)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("csrf=csrf-value&action=allow"))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let query = query_of(&location);
        assert_eq!(
            query.get("error").map(String::as_str),
            Some("invalid_scope"),
            "{device}: {location}"
        );
        assert!(!query.contains_key("code"), "{device}: {location}");
    }
    // A new device, allowed on the page, gets its code.
    let (_, consent) = send(authorize("BRANDNEW", "")).await;
    let (_, location) = send(
        Request::post(consent.as_str())
            .header("cookie", &cookies)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("csrf=csrf-value&action=allow"))
            .unwrap(),
    )
    .await;
    assert!(query_of(&location).contains_key("code"), "{location}");

    // The device flow: a device asking for a device ID another session holds is refused
    // even when the person approves it.
    let mut repo = state.repos.begin().await.unwrap();
    let grant = repo
        .device_code_grant()
        .add(
            &mut rng,
            &SystemClock,
            mas_storage::repository::NewDeviceCodeGrant {
                client_id: app_client,
                scope: "urn:matrix:client:api:* urn:matrix:client:device:ELEMENTX".to_owned(),
                device_code: "device-code-takeover".to_owned(),
                user_code: "BCDFGHJK".to_owned(),
                expires_in: chrono::Duration::minutes(10),
                ip_address: None,
                user_agent: None,
            },
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    let app = router(&[Resource::Human], None, state.clone());
    let response = app
        .oneshot(
            Request::post(format!("/device/{}", grant.id))
                .header("cookie", &cookies)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("csrf=csrf-value&action=allow"))
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&bytes);
    assert!(page.contains("Device not connected"), "{page}");
    let mut repo = state.repos.reader().await.unwrap();
    let grant = repo
        .device_code_grant()
        .lookup(grant.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(grant.state, mas_data_model::DeviceCodeGrantState::Rejected),
        "{:?}",
        grant.state
    );
}

/// A request as it arrives from `peer`, with `cookies` if given.
pub(crate) fn from_peer(
    request: axum::http::request::Builder,
    peer: &str,
    body: Body,
) -> Request<Body> {
    let mut request = request.body(body).unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(
        peer.parse::<std::net::SocketAddr>().unwrap(),
    ));
    request
}

#[tokio::test]
async fn anonymous_requests_that_store_rows_are_throttled_per_address() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let public = client(&state, ClientAuthMethod::None, "https://app.example.com/cb").await;
    let uri = format!(
        "/authorize?client_id={public}&redirect_uri=https://app.example.com/cb&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let app = router(&[Resource::Human], None, state.clone());
    // The attack: one address asking for authorizations in a loop, each stored.
    let mut statuses = Vec::new();
    for _ in 0..70 {
        let response = app
            .clone()
            .oneshot(from_peer(
                Request::get(&uri),
                "203.0.113.5:1000",
                Body::empty(),
            ))
            .await
            .unwrap();
        statuses.push(response.status());
    }
    let allowed = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    // 60 at once, and one more for each second the loop took on a slow machine.
    assert!((60..=63).contains(&allowed), "{statuses:?}");
    assert!(
        statuses[60..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Another address is not held back.
    let response = app
        .clone()
        .oneshot(from_peer(
            Request::get(&uri),
            "203.0.113.6:1000",
            Body::empty(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn registration_and_user_code_guesses_are_throttled() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    let one_a_minute = crate::Limit {
        burst: 2,
        per_second: 1.0 / 60.0,
    };
    state.rate_limits = Arc::new(crate::RateLimits::new(
        crate::Limits {
            registration: one_a_minute,
            username_availability: crate::Limit {
                burst: 3,
                per_second: 1.0 / 60.0,
            },
            device_code_link: one_a_minute,
            ..crate::Limits::generous()
        },
        Vec::new(),
    ));
    state.oauth = crate::test_state::oauth_with(true);
    state.account.registration_email_required = false;
    let cookies = sealed_cookies(&state, &[("mas-csrf", "csrf-value".to_string())]);
    let register = |name: &str, peer: &str| {
        let app = router(&[Resource::Human], None, state.clone());
        let request = from_peer(
            Request::post("/register")
                .header("cookie", &cookies)
                .header("content-type", "application/x-www-form-urlencoded"),
            peer,
            Body::from(format!(
                "csrf=csrf-value&next=%2F&username={name}&password=correct+horse+battery+staple+{name}&password_confirm=correct+horse+battery+staple+{name}"
            )),
        );
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    // The attack: accounts made in a loop from one address...
    let peer = "198.51.100.40:2000";
    for name in ["bulk1", "bulk2"] {
        let (status, page) = register(name, peer).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    }
    let (status, page) = register("bulk3", peer).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Too many attempts"), "{page}");
    // ...and names probed for whether they are taken: three checks were made above.
    let (status, page) = register("bulk1", peer).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(!page.contains("taken"), "{page}");
    // Someone else registers as usual.
    let (status, _) = register("neighbour", "198.51.100.41:2000").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // User codes tried at /link by a signed-in person: throttled per address.
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let user = repo
        .user()
        .find_by_username("neighbour")
        .await
        .unwrap()
        .unwrap();
    let browser = repo
        .browser_session()
        .add(&mut rng, &SystemClock, &user, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let signed_in = sealed_cookies(
        &state,
        &[
            ("mas-session", browser.id.to_string()),
            ("mas-csrf", "csrf-value".to_string()),
        ],
    );
    let mut statuses = Vec::new();
    for guess in ["BCDFGHJK", "BCDFGHJL", "BCDFGHJM"] {
        let app = router(&[Resource::Human], None, state.clone());
        let request = from_peer(
            Request::post("/link")
                .header("cookie", &signed_in)
                .header("content-type", "application/x-www-form-urlencoded"),
            "198.51.100.41:2000",
            Body::from(format!("csrf=csrf-value&code={guess}")),
        );
        statuses.push(app.oneshot(request).await.unwrap().status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test]
async fn self_registered_clients_are_marked_unverified_on_the_approval_pages() {
    let (state, _dir) = state(Arc::new(Up)).await;
    // The attack: a stranger registers a device-flow client that calls itself Element.
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let mut params = crate::test_state::client_params(
        ClientAuthMethod::None,
        Vec::new(),
        &[mas_oauth_core::device::DEVICE_GRANT],
    );
    params.name = Some("Element".to_owned());
    params.client_uri = Some(Url::parse("https://app.element.io/").unwrap());
    let impostor = repo
        .client()
        .add_dynamic(&mut rng, &SystemClock, params.clone())
        .await
        .unwrap();
    let real = repo
        .client()
        .upsert_static(&SystemClock, Ulid::new(), params)
        .await
        .unwrap();
    let user = repo
        .user()
        .add(&mut rng, &SystemClock, "gwen")
        .await
        .unwrap();
    let browser = repo
        .browser_session()
        .add(&mut rng, &SystemClock, &user, None)
        .await
        .unwrap();
    let mut grants = Vec::new();
    for (client, code) in [(&impostor, "BCDFGHJK"), (&real, "BCDFGHJL")] {
        let grant = repo
            .device_code_grant()
            .add(
                &mut rng,
                &SystemClock,
                mas_storage::repository::NewDeviceCodeGrant {
                    client_id: client.id,
                    scope: "urn:matrix:client:api:*".to_owned(),
                    device_code: format!("device-code-{code}"),
                    user_code: code.to_owned(),
                    expires_in: chrono::Duration::minutes(10),
                    ip_address: None,
                    user_agent: None,
                },
            )
            .await
            .unwrap();
        grants.push(grant.id);
    }
    repo.save().await.unwrap();
    let cookies = sealed_cookies(&state, &[("mas-session", browser.id.to_string())]);
    let page = |grant: Ulid| {
        let app = router(&[Resource::Human], None, state.clone());
        let request = Request::get(format!("/device/{grant}"))
            .header("cookie", &cookies)
            .body(Body::empty())
            .unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    let impostor_page = page(grants[0]).await;
    assert!(
        impostor_page.contains("Unverified application"),
        "{impostor_page}"
    );
    assert!(
        impostor_page.contains("someone who sent you a code"),
        "{impostor_page}"
    );
    // The consent page of the code flow marks a registered client too.
    let web = client(&state, ClientAuthMethod::None, "https://app.example.com/cb").await;
    let mut repo = state.repos.begin().await.unwrap();
    let password = repo
        .user_password()
        .add(&mut rng, &SystemClock, &user, 1, "unused".to_owned(), None)
        .await
        .unwrap();
    repo.browser_session()
        .authenticate_with_password(&mut rng, &SystemClock, &browser, &password)
        .await
        .unwrap();
    let consent = pending_grant(&mut repo, &mut rng, &SystemClock, web).await;
    repo.save().await.unwrap();
    let app = router(&[Resource::Human], None, state.clone());
    let response = app
        .oneshot(
            Request::get(format!("/consent/{}", consent.id))
                .header("cookie", &cookies)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let consent_page = String::from_utf8_lossy(&bytes);
    assert!(
        consent_page.contains("Unverified application"),
        "{consent_page}"
    );
    assert!(
        !consent_page.contains("someone who sent you a code"),
        "{consent_page}"
    );
    // The administrator's own client is not marked.
    let real_page = page(grants[1]).await;
    assert!(real_page.contains("Allow Element"), "{real_page}");
    assert!(!real_page.contains("Unverified"), "{real_page}");
}

#[tokio::test]
async fn registration_tokens_are_asked_for_checked_and_counted() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.oauth = crate::test_state::oauth_with(true);
    state.account.registration_token_required = true;
    state.account.registration_email_required = false;
    state.homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    let now = mas_storage::Clock::now(&SystemClock);
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let mut add = async |value: &str, limit: Option<u32>, expires| {
        repo.registration_token()
            .add(&mut rng, &SystemClock, value, limit, expires)
            .await
            .unwrap()
    };
    let once = add("once", Some(1), None).await;
    add("expired", None, Some(now - chrono::Duration::seconds(1))).await;
    let revoked = add("revoked", None, None).await;
    repo.registration_token()
        .revoke(&SystemClock, revoked)
        .await
        .unwrap();
    repo.save().await.unwrap();

    // A browser with the form's CSRF cookie, and no session.
    let browser = crate::account_tests::cookies(&state, None);
    let send = async |username: &str, token: Option<&str>| {
        let mut form = format!(
            "csrf=csrf-value&next=%2F&username={username}&password=correct+horse+battery+staple+again&password_confirm=correct+horse+battery+staple+again"
        );
        if let Some(token) = token {
            form.push_str("&token=");
            form.push_str(token);
        }
        let answer = crate::account_tests::send(&state, &browser, "/register", Some(&form)).await;
        (answer.status, answer.body)
    };
    let accounts = async || {
        let mut repo = state.repos.reader().await.unwrap();
        repo.user()
            .count(&mas_storage::repository::UserFilter::default())
            .await
            .unwrap()
    };

    // The form asks for one.
    let form = crate::account_tests::send(&state, &browser, "/register", None).await;
    assert!(form.body.contains(r#"name="token""#), "{}", form.body);

    // Missing, wrong, expired, revoked: refused, each in words, and nothing made.
    for (token, status, said) in [
        (
            None,
            StatusCode::BAD_REQUEST,
            "A registration token is required.",
        ),
        (
            Some("wrong"),
            StatusCode::FORBIDDEN,
            "This registration token is not valid.",
        ),
        (
            Some("not%20even%20a%20token"),
            StatusCode::FORBIDDEN,
            "This registration token is not valid.",
        ),
        (
            Some("expired"),
            StatusCode::FORBIDDEN,
            "This registration token has expired.",
        ),
        (
            Some("revoked"),
            StatusCode::FORBIDDEN,
            "This registration token has been revoked.",
        ),
    ] {
        let (seen, page) = send("newcomer", token).await;
        assert_eq!(seen, status, "{token:?}");
        assert!(page.contains(said), "{token:?}: {page}");
        // The name typed stays in the form.
        assert!(page.contains(r#"value="newcomer""#), "{page}");
    }
    assert_eq!(accounts().await, 0);

    // A good one makes the account and counts the use...
    let (status, page) = send("newcomer", Some("once")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let mut repo = state.repos.reader().await.unwrap();
    let used = repo
        .registration_token()
        .lookup(once.id)
        .await
        .unwrap()
        .unwrap();
    drop(repo);
    assert_eq!(used.times_used, 1);
    assert!(used.last_used_at.is_some());
    // ...and once used up, it makes no more.
    let (status, page) = send("second", Some("once")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("This registration token has been used as many times as it allows."),
        "{page}"
    );
    assert_eq!(accounts().await, 1);
}

#[tokio::test]
async fn consent_grants_admin_scopes_to_the_users_the_policy_names() {
    for (listed, granted) in [(false, false), (true, true)] {
        let (mut state, _dir) = state(Arc::new(Up)).await;
        if listed {
            state.policy = Arc::new(mas_oauth_core::policy::Policy {
                admin_users: vec!["alice".to_owned()],
                ..mas_oauth_core::policy::Policy::default()
            });
        }
        let app_client = client(&state, ClientAuthMethod::None, "https://app.example.com/cb").await;
        let alice = crate::account_tests::signed_in(&state, "alice").await;
        let authorize = format!(
            "/authorize?client_id={app_client}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&response_type=code&scope=urn:matrix:client:api:*%20urn:synapse:admin:*&code_challenge={CHALLENGE}&code_challenge_method=S256&state=s"
        );
        let asked = crate::account_tests::send(&state, &alice.cookies, &authorize, None).await;
        let consent = asked.location().to_owned();
        assert!(consent.starts_with("/consent/"), "{consent}");
        let answer = crate::account_tests::send(
            &state,
            &alice.cookies,
            &consent,
            Some("csrf=csrf-value&action=allow"),
        )
        .await;
        let query = query_of(answer.location());
        assert_eq!(
            query.contains_key("code"),
            granted,
            "listed: {listed}: {query:?}"
        );
        if !granted {
            assert_eq!(
                query.get("error").map(String::as_str),
                Some("access_denied")
            );
        }
    }
}

#[tokio::test]
async fn requesters_the_policy_bans_cannot_consent_or_approve() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.policy = Arc::new(mas_oauth_core::policy::Policy {
        banned_user_agents: Some(
            mas_oauth_core::policy::StringMatch::new(mas_oauth_core::policy::StringLists {
                substrings: vec!["EvilBot".to_owned()],
                ..mas_oauth_core::policy::StringLists::default()
            })
            .unwrap(),
        ),
        ..mas_oauth_core::policy::Policy::default()
    });
    let app_client = client(&state, ClientAuthMethod::None, "https://app.example.com/cb").await;
    let alice = crate::account_tests::signed_in(&state, "alice").await;
    let authorize = format!(
        "/authorize?client_id={app_client}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let consent = crate::account_tests::send(&state, &alice.cookies, &authorize, None)
        .await
        .location()
        .to_owned();
    assert!(consent.starts_with("/consent/"), "{consent}");
    let ask = |agent: &'static str, form: Option<&'static str>| {
        let app = router(&[Resource::Human], None, state.clone());
        let request = match form {
            Some(form) => Request::post(consent.as_str())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form)),
            None => Request::get(consent.as_str()).body(Body::empty()),
        };
        let mut request = request.unwrap();
        request
            .headers_mut()
            .insert("cookie", alice.cookies.parse().unwrap());
        request
            .headers_mut()
            .insert("user-agent", agent.parse().unwrap());
        async move { app.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(ask("EvilBot/1.0", None).await, StatusCode::FORBIDDEN);
    let allow = Some("csrf=csrf-value&action=allow");
    assert_eq!(ask("EvilBot/1.0", allow).await, StatusCode::FORBIDDEN);
    assert_eq!(ask("Firefox/140", None).await, StatusCode::OK);
    assert_eq!(ask("Firefox/140", allow).await, StatusCode::SEE_OTHER);
}

/// `GET uri` from a browser whose `Accept-Language` is `accept`.
async fn get_in(
    state: &AppState,
    uri: &str,
    accept: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::get(uri);
    if let Some(accept) = accept {
        request = request.header("accept-language", accept);
    }
    ask(state, request.body(Body::empty()).unwrap()).await
}

/// The pages' answer to `request`.
async fn ask(
    state: &AppState,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router(&[Resource::Human], None, state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn pages_come_in_the_language_the_browser_asks_for() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let language_of = |headers: &axum::http::HeaderMap| {
        headers
            .get("content-language")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // The first language there is, by weight: Spanish is not, French is.
    let (status, headers, page) = get_in(&state, "/login", Some("es, fr-CH;q=0.9, de;q=0.8")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"<html lang="fr">"#), "{page}");
    assert_eq!(language_of(&headers).as_deref(), Some("fr"));
    assert!(
        headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("accept-language")),
        "caches keep one copy per language: {headers:?}"
    );
    assert!(page.contains("<title>Se connecter · "), "{page}");
    assert!(
        page.contains("<h1>Se connecter à auth.example.com</h1>"),
        "{page}"
    );
    assert!(page.contains(">Mot de passe</label>"), "{page}");
    assert!(!page.contains("Password"), "{page}");

    let (_, headers, page) = get_in(&state, "/login", Some("de-AT")).await;
    assert!(page.contains(r#"<html lang="de">"#), "{page}");
    assert_eq!(language_of(&headers).as_deref(), Some("de"));
    assert!(
        page.contains("<h1>Bei auth.example.com anmelden</h1>"),
        "{page}"
    );
    assert!(page.contains(">Passwort</label>"), "{page}");

    // Nothing asked for, or nothing there is: English.
    for accept in [None, Some("ja, zh;q=0.5")] {
        let (_, headers, page) = get_in(&state, "/login", accept).await;
        assert!(page.contains(r#"<html lang="en">"#), "{page}");
        assert_eq!(language_of(&headers).as_deref(), Some("en"));
        assert!(
            page.contains("<h1>Sign in to auth.example.com</h1>"),
            "{page}"
        );
        assert!(page.contains(">Password</label>"), "{page}");
    }

    // A request an application sent that cannot be carried out: what happened in French,
    // the protocol's words (English, as the specifications write them) for developers.
    let (status, _, page) = get_in(
        &state,
        "/authorize?client_id=nope&response_type=code",
        Some("fr"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("L’application qui vous a envoyé ici a fait une demande"),
        "{page}"
    );
    assert!(
        page.contains(r#"<code id="technical">unknown client</code>"#),
        "{page}"
    );

    // Sentences built around a value keep each language's word order and spaces.
    let alice = crate::account_tests::signed_in(&state, "alice").await;
    let request = Request::get("/login")
        .header("cookie", &alice.cookies)
        .header("accept-language", "de")
        .body(Body::empty())
        .unwrap();
    let (_, _, page) = ask(&state, request).await;
    assert!(
        page.contains(
            r#"Sie sind als <strong id="username">alice</strong> (@alice:example.com) angemeldet."#
        ),
        "{page}"
    );

    // Error pages too: registration is closed here.
    let (status, _, page) = get_in(&state, "/register", Some("fr")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Les inscriptions sont fermées"), "{page}");

    // And a refused form, with its error.
    let cookie = crate::account_tests::cookies(&state, None);
    let request = Request::post("/login")
        .header("cookie", &cookie)
        .header("accept-language", "de")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "csrf=csrf-value&next=%2F&username=nobody&password=wrong",
        ))
        .unwrap();
    let (status, _, page) = ask(&state, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        page.contains("Falscher Benutzername oder falsches Passwort."),
        "{page}"
    );
}
