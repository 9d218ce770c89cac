//! The pages around a person's account, driven through the real router: the way in
//! (`/`, `/login` for someone signed in) and the account pages themselves.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use mas_data_model::{BrowserSession, User};
use mas_storage::{BoxRepository, RepositoryFactory, StorageError, SystemClock};
use tower::ServiceExt;

use crate::test_state::{Up, state};
use crate::{AppState, Resource, router};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A person with a password and a browser signed in as them.
pub(crate) struct Person {
    pub(crate) user: User,
    pub(crate) session: BrowserSession,
    pub(crate) cookies: String,
}

/// A response as a test reads it.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    /// The `Location` header.
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// `username` with a password, signed in (by password, now) in a new browser.
pub(crate) async fn signed_in(state: &AppState, username: &str) -> Person {
    let (version, hash) = state.passwords.hash(PASSWORD.to_owned()).await.unwrap();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let user = repo
        .user()
        .add(&mut rng, &SystemClock, username)
        .await
        .unwrap();
    let password = repo
        .user_password()
        .add(&mut rng, &SystemClock, &user, version, hash, None)
        .await
        .unwrap();
    let session = repo
        .browser_session()
        .add(&mut rng, &SystemClock, &user, None)
        .await
        .unwrap();
    repo.browser_session()
        .authenticate_with_password(&mut rng, &SystemClock, &session, &password)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let cookies = cookies(state, Some(&session));
    Person {
        user,
        session,
        cookies,
    }
}

/// The cookies of a browser with this session (if any) and the CSRF token `csrf-value`.
pub(crate) fn cookies(state: &AppState, session: Option<&BrowserSession>) -> String {
    use axum::response::IntoResponse;
    use axum_extra::extract::cookie::{Cookie, PrivateCookieJar};
    let mut jar = PrivateCookieJar::new(state.cookie_key.clone())
        .add(Cookie::new("mas-csrf", "csrf-value"));
    if let Some(session) = session {
        jar = jar.add(Cookie::new("mas-session", session.id.to_string()));
    }
    jar.into_response()
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends a request to the pages with these cookies; `form` makes it a POST.
pub(crate) async fn send(state: &AppState, cookies: &str, uri: &str, form: Option<&str>) -> Answer {
    let app = router(&[Resource::Human], None, state.clone());
    let request = match form {
        Some(form) => Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookies)
            .body(Body::from(form.to_owned())),
        None => Request::get(uri)
            .header("cookie", cookies)
            .body(Body::empty()),
    };
    let response = app.oneshot(request.unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A database that cannot be reached.
struct Down(mas_storage::Revocations);

#[async_trait::async_trait]
impl RepositoryFactory for Down {
    async fn begin(&self) -> Result<BoxRepository, StorageError> {
        Err(StorageError::Unavailable)
    }
    async fn reader(&self) -> Result<BoxRepository, StorageError> {
        Err(StorageError::Unavailable)
    }
    fn revocations(&self) -> &mas_storage::Revocations {
        &self.0
    }
}

#[tokio::test]
async fn the_root_sends_people_to_their_account_or_to_sign_in() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let nobody = send(&state, &cookies(&state, None), "/", None).await;
    assert_eq!(nobody.status, StatusCode::SEE_OTHER);
    assert_eq!(nobody.location(), "/login");

    let alice = signed_in(&state, "alice").await;
    let answer = send(&state, &alice.cookies, "/", None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/account/");
}

#[tokio::test]
async fn someone_signed_in_is_offered_to_continue_or_sign_out() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let alice = signed_in(&state, "alice").await;
    let page = send(&state, &alice.cookies, "/login?next=%2Flink", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Continue as alice"), "{}", page.body);
    assert!(page.body.contains("@alice:example.com"), "{}", page.body);
    // minijinja escapes the slash.
    assert!(page.body.contains(r#"href="&#x2f;link""#), "{}", page.body);
    assert!(!page.body.contains(r#"name="password""#), "{}", page.body);

    // A flow that needs the password again asks for it, the name filled in.
    let again = send(
        &state,
        &alice.cookies,
        "/login?reauth=true&next=%2Flink",
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains(r#"name="password""#), "{}", again.body);
    assert!(again.body.contains(r#"value="alice""#), "{}", again.body);

    // Signing out from there comes back to the sign-in form, still headed for `next`.
    let out = send(
        &state,
        &alice.cookies,
        "/logout",
        Some("csrf=csrf-value&next=%2Flink"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login?next=%2Flink");
    let mut repo = state.repos.reader().await.unwrap();
    let session = repo
        .browser_session()
        .lookup(alice.session.id)
        .await
        .unwrap()
        .unwrap();
    assert!(session.finished_at.is_some());
}

#[tokio::test]
async fn a_consent_that_wants_a_fresh_sign_in_asks_for_the_password_again() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let alice = signed_in(&state, "alice").await;
    let client = crate::human_tests::static_client(&state, "https://app.example.com/cb").await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    // Asked after alice signed in, with prompt=login.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let grant = repo
        .authorization_grant()
        .add(
            &mut rng,
            &SystemClock,
            mas_storage::repository::NewAuthorizationGrant {
                client_id: client,
                redirect_uri: url::Url::parse("https://app.example.com/cb").unwrap(),
                scope: "openid".to_owned(),
                state: None,
                nonce: None,
                response_mode: mas_data_model::ResponseMode::Query,
                response_type_id_token: false,
                pkce: None,
                max_age: None,
                login_hint: None,
                prompt: Some("login".to_owned()),
            },
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    let answer = send(
        &state,
        &alice.cookies,
        &format!("/consent/{}", grant.id),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.location(),
        format!("/login?reauth=true&next=%2Fconsent%2F{}", grant.id)
    );
}

#[tokio::test]
async fn pages_without_their_database_say_so_in_a_page() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    let revocations = state.repos.revocations().clone();
    state.repos = Arc::new(Down(revocations));
    for uri in ["/", "/login", "/link", "/device/01J2ZQ9Y3XW6RMK1VF8H0N5D7B"] {
        let answer = send(&state, &cookies(&state, None), uri, None).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert!(
            answer.body.contains("Temporarily unavailable"),
            "{uri}: {}",
            answer.body
        );
        assert_eq!(
            answer.headers["content-type"], "text/html; charset=utf-8",
            "{uri}"
        );
        assert!(
            answer.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
}
