//! The pages around a person's account, driven through the real router: the way in
//! (`/`, `/login` for someone signed in) and the account pages themselves.

// A test tells one person's story from start to end.
#![allow(clippy::too_many_lines)]

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
    let mut cookies = vec![("mas-csrf", "csrf-value".to_owned())];
    cookies.extend(session.map(|s| ("mas-session", s.id.to_string())));
    crate::human_tests::sealed_cookies(state, &cookies)
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

/// A state whose homeserver is a mock the test can read, with `alice` known to it.
async fn with_homeserver() -> (AppState, Arc<mas_matrix::MockHomeserver>, tempfile::TempDir) {
    let (mut state, dir) = state(Arc::new(Up)).await;
    let homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    state.homeserver = homeserver.clone();
    (state, homeserver, dir)
}

/// Provisions `person` on the mock homeserver, with these devices.
async fn provision(homeserver: &mas_matrix::MockHomeserver, person: &Person, devices: &[&str]) {
    use mas_matrix::HomeserverConnection;
    homeserver
        .provision_user(&mas_matrix::ProvisionRequest::new(
            &person.user.username,
            person.user.id.to_string(),
        ))
        .await
        .unwrap();
    for device in devices {
        homeserver
            .upsert_device(&person.user.username, device, None)
            .await
            .unwrap();
    }
}

/// The payloads of the jobs queued on `queue`.
async fn queued(state: &AppState, queue: &str) -> Vec<serde_json::Value> {
    let mut repo = state.repos.begin().await.unwrap();
    let jobs = repo
        .job()
        .claim(
            state.clock.as_ref(),
            &[queue],
            100,
            chrono::Duration::seconds(30),
        )
        .await
        .unwrap();
    jobs.into_iter().map(|j| j.payload).collect()
}

#[tokio::test]
async fn the_account_page_shows_the_profile_and_changes_the_display_name() {
    let (state, homeserver, _dir) = with_homeserver().await;
    let nobody = send(&state, &cookies(&state, None), "/account/", None).await;
    assert_eq!(nobody.status, StatusCode::SEE_OTHER);
    assert_eq!(nobody.location(), "/login?next=%2Faccount%2F");

    let alice = signed_in(&state, "alice").await;
    provision(&homeserver, &alice, &[]).await;
    let page = send(&state, &alice.cookies, "/account/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in [
        "alice",
        "@alice:example.com",
        "Change password",
        "Deactivate",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    for (header, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(page.headers[header], value, "{header}");
    }

    // A form without its CSRF token changes nothing.
    let forged = send(
        &state,
        &alice.cookies,
        "/account/display-name",
        Some("csrf=other&display_name=Mallory"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(forged.body.contains("The form expired"), "{}", forged.body);
    assert_eq!(homeserver.user("alice").unwrap().displayname, None);

    // Too long, or with a line break: a page, nothing changed.
    let long = "x".repeat(257);
    for bad in [long.as_str(), "Alice%0AAdmin"] {
        let refused = send(
            &state,
            &alice.cookies,
            "/account/display-name",
            Some(&format!("csrf=csrf-value&display_name={bad}")),
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            refused.body.contains("cannot be used") || refused.body.contains("control character"),
            "{}",
            refused.body
        );
        assert!(refused.headers.contains_key("content-security-policy"));
    }
    assert_eq!(homeserver.user("alice").unwrap().displayname, None);

    let changed = send(
        &state,
        &alice.cookies,
        "/account/display-name",
        Some("csrf=csrf-value&display_name=Alice+Liddell"),
    )
    .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER);
    assert_eq!(changed.location(), "/account/?saved=display-name");
    assert_eq!(
        homeserver.user("alice").unwrap().displayname.as_deref(),
        Some("Alice Liddell")
    );
    let page = send(&state, &alice.cookies, "/account/?saved=display-name", None).await;
    assert!(page.body.contains("Alice Liddell"), "{}", page.body);
    assert!(page.body.contains("Your display name is changed."));

    // The homeserver down: a page that says so, not a 500.
    homeserver.set_down(true);
    let down = send(
        &state,
        &alice.cookies,
        "/account/display-name",
        Some("csrf=csrf-value&display_name=Other"),
    )
    .await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY);
    assert!(down.body.contains("homeserver"), "{}", down.body);
}

#[tokio::test]
async fn switched_off_changes_are_not_offered_and_refused() {
    let (mut state, homeserver, _dir) = with_homeserver().await;
    state.account = crate::AccountSwitches {
        displayname_change_allowed: false,
        password_change_allowed: false,
        account_deactivation_allowed: false,
        email_change_allowed: false,
        login_with_email_allowed: false,
        registration_token_required: false,
        registration_email_required: true,
        password_recovery_enabled: false,
    };
    let alice = signed_in(&state, "alice").await;
    provision(&homeserver, &alice, &[]).await;
    let page = send(&state, &alice.cookies, "/account/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    for hidden in ["Change password", "Deactivate", "New display name"] {
        assert!(!page.body.contains(hidden), "{hidden}: {}", page.body);
    }
    for (path, form) in [
        ("/account/display-name", "csrf=csrf-value&display_name=X"),
        (
            "/account/password",
            "csrf=csrf-value&current_password=a&new_password=b&new_password_confirm=b",
        ),
        ("/account/deactivate", "csrf=csrf-value&password=x"),
    ] {
        let refused = send(&state, &alice.cookies, path, Some(form)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            refused.body.contains("turned off"),
            "{path}: {}",
            refused.body
        );
    }
    assert_eq!(homeserver.user("alice").unwrap().displayname, None);
    let deep = send(
        &state,
        &alice.cookies,
        "/account/?action=org.matrix.account_deactivate",
        None,
    )
    .await;
    assert_eq!(deep.status, StatusCode::OK, "the profile, not deactivation");
}

/// A compatibility session on `device` for `person`.
async fn compat_session(
    state: &AppState,
    person: &Person,
    device: &str,
) -> mas_data_model::CompatSession {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let session = repo
        .compat_session()
        .add(
            &mut rng,
            &SystemClock,
            &person.user,
            Some(device.to_owned()),
            None,
            false,
            Some("Old phone".to_owned()),
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    session
}

#[tokio::test]
async fn sessions_are_listed_renamed_and_signed_out_down_to_the_homeserver() {
    let (state, homeserver, _dir) = with_homeserver().await;
    let alice = signed_in(&state, "alice").await;
    let bob = signed_in(&state, "bob").await;
    provision(&homeserver, &alice, &["PHONE", "LAPTOP"]).await;
    provision(&homeserver, &bob, &["BOBS"]).await;
    let phone = compat_session(&state, &alice, "PHONE").await;
    let bobs = compat_session(&state, &bob, "BOBS").await;
    let client = crate::human_tests::static_client(&state, "https://app.example.com/cb").await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let laptop = repo
        .session()
        .add(
            &mut rng,
            &SystemClock,
            client,
            Some(alice.user.id),
            None,
            "openid urn:matrix:client:api:* urn:matrix:client:device:LAPTOP",
            None,
        )
        .await
        .unwrap();
    repo.save().await.unwrap();

    let list = send(&state, &alice.cookies, "/account/sessions", None).await;
    assert_eq!(list.status, StatusCode::OK);
    for shown in [
        "Old phone",
        "Device PHONE",
        "Device LAPTOP",
        "(this browser)",
        &laptop.id.to_string(),
    ] {
        assert!(list.body.contains(shown), "{shown}: {}", list.body);
    }
    assert!(!list.body.contains("BOBS"), "{}", list.body);

    // The deep links Element opens land on the device's page.
    for action in [
        "org.matrix.session_view",
        "org.matrix.device_view",
        "org.matrix.session_end",
        "org.matrix.device_delete",
    ] {
        let deep = send(
            &state,
            &alice.cookies,
            &format!("/account/?action={action}&device_id=LAPTOP"),
            None,
        )
        .await;
        assert_eq!(deep.status, StatusCode::SEE_OTHER, "{action}");
        assert_eq!(deep.location(), format!("/account/sessions/{}", laptop.id));
    }
    for action in ["org.matrix.sessions_list", "org.matrix.devices_list"] {
        let deep = send(
            &state,
            &alice.cookies,
            &format!("/account/?action={action}"),
            None,
        )
        .await;
        assert_eq!(deep.location(), "/account/sessions", "{action}");
    }
    let page = send(
        &state,
        &alice.cookies,
        &format!("/account/sessions/{}", laptop.id),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Use your Matrix account"),
        "{}",
        page.body
    );
    assert!(page.body.contains("LAPTOP"), "{}", page.body);

    // Someone else's device, an odd device ID, a made-up session: a 404 page.
    let odd = send(
        &state,
        &alice.cookies,
        "/account/?action=org.matrix.device_view&device_id=%3Cscript%3Ex",
        None,
    )
    .await;
    assert_eq!(odd.status, StatusCode::NOT_FOUND);
    assert!(!odd.body.contains("<script>"), "{}", odd.body);
    for id in [
        bobs.id.to_string(),
        "not-an-id".to_owned(),
        ulid::Ulid::new().to_string(),
    ] {
        let view = send(
            &state,
            &alice.cookies,
            &format!("/account/sessions/{id}"),
            None,
        )
        .await;
        assert_eq!(view.status, StatusCode::NOT_FOUND, "{id}");
        let end = send(
            &state,
            &alice.cookies,
            &format!("/account/sessions/{id}/end"),
            Some("csrf=csrf-value"),
        )
        .await;
        assert_eq!(end.status, StatusCode::NOT_FOUND, "{id}");
    }
    let mut repo = state.repos.reader().await.unwrap();
    assert!(
        repo.compat_session()
            .lookup(bobs.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    drop(repo);
    assert!(homeserver.user("bob").unwrap().devices.contains_key("BOBS"));

    // Rename: stored, and the homeserver's device shows it.
    for bad in ["", "x%0Ay", &"y".repeat(101)] {
        let refused = send(
            &state,
            &alice.cookies,
            &format!("/account/sessions/{}/rename", laptop.id),
            Some(&format!("csrf=csrf-value&name={bad}")),
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let renamed = send(
        &state,
        &alice.cookies,
        &format!("/account/sessions/{}/rename", laptop.id),
        Some("csrf=csrf-value&name=Work+laptop"),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        homeserver.user("alice").unwrap().devices["LAPTOP"].as_deref(),
        Some("Work laptop")
    );
    let list = send(
        &state,
        &alice.cookies,
        "/account/sessions?saved=renamed",
        None,
    )
    .await;
    assert!(list.body.contains("Work laptop"), "{}", list.body);

    // Without its CSRF token a sign-out does nothing.
    let forged = send(
        &state,
        &alice.cookies,
        &format!("/account/sessions/{}/end", phone.id),
        Some("csrf=wrong"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(
        homeserver
            .user("alice")
            .unwrap()
            .devices
            .contains_key("PHONE")
    );

    let ended = send(
        &state,
        &alice.cookies,
        &format!("/account/sessions/{}/end", phone.id),
        Some("csrf=csrf-value"),
    )
    .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    assert_eq!(ended.location(), "/account/sessions?saved=ended");
    let mut repo = state.repos.reader().await.unwrap();
    assert!(
        !repo
            .compat_session()
            .lookup(phone.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    drop(repo);
    let devices = homeserver.user("alice").unwrap().devices;
    assert!(!devices.contains_key("PHONE"), "{devices:?}");
    assert!(devices.contains_key("LAPTOP"), "{devices:?}");
    let deletions = queued(&state, "delete-device").await;
    assert_eq!(deletions.len(), 1, "{deletions:?}");
    assert_eq!(deletions[0]["device_id"], "PHONE");

    // Signing out this browser from the list signs it out.
    let own = send(
        &state,
        &alice.cookies,
        &format!("/account/sessions/{}/end", alice.session.id),
        Some("csrf=csrf-value"),
    )
    .await;
    assert_eq!(own.location(), "/login");
    let after = send(&state, &alice.cookies, "/account/", None).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_can_sign_out_everywhere_else() {
    let (state, homeserver, _dir) = with_homeserver().await;
    let alice = signed_in(&state, "alice").await;
    provision(&homeserver, &alice, &["PHONE"]).await;
    let phone = compat_session(&state, &alice, "PHONE").await;
    // Another browser of alice's.
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let other = repo
        .browser_session()
        .add(&mut rng, &SystemClock, &alice.user, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let new = "a completely different passphrase";
    let change = |current: &str, new: &str, confirm: &str, everywhere: bool| {
        let mut form = format!(
            "csrf=csrf-value&current_password={}&new_password={}&new_password_confirm={}",
            crate::human::query_value(current),
            crate::human::query_value(new),
            crate::human::query_value(confirm)
        );
        if everywhere {
            form.push_str("&sign_out_others=on");
        }
        form
    };
    // (Strength is the password manager's, with its own tests; this state takes any.)
    for (form, status, says) in [
        (
            change("wrong", new, new, true),
            StatusCode::UNAUTHORIZED,
            "current password is wrong",
        ),
        (
            change(PASSWORD, new, "typo", true),
            StatusCode::BAD_REQUEST,
            "do not match",
        ),
    ] {
        let refused = send(&state, &alice.cookies, "/account/password", Some(&form)).await;
        assert_eq!(refused.status, status, "{says}");
        assert!(refused.body.contains(says), "{says}: {}", refused.body);
    }
    let changed = send(
        &state,
        &alice.cookies,
        "/account/password",
        Some(&change(PASSWORD, new, new, true)),
    )
    .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER);
    assert_eq!(changed.location(), "/account/?saved=password-everywhere");

    // The new password signs in; the old one no longer does.
    let sign_in = |password: &str| {
        format!(
            "csrf=csrf-value&next=%2F&username=alice&password={}",
            crate::human::query_value(password)
        )
    };
    let fresh = cookies(&state, None);
    let old = send(&state, &fresh, "/login", Some(&sign_in(PASSWORD))).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let ok = send(&state, &fresh, "/login", Some(&sign_in(new))).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);

    // Every other session ended; this browser stays signed in.
    let mut repo = state.repos.reader().await.unwrap();
    assert!(
        !repo
            .compat_session()
            .lookup(phone.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    assert!(
        !repo
            .browser_session()
            .lookup(other.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    assert!(
        repo.browser_session()
            .lookup(alice.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    drop(repo);
    assert_eq!(queued(&state, "sync-devices").await.len(), 1);
    let page = send(
        &state,
        &alice.cookies,
        "/account/?saved=password-everywhere",
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("every other session is signed out"));
}

#[tokio::test]
async fn sensitive_actions_ask_for_the_password_after_a_few_minutes() {
    let (mut state, homeserver, _dir) = with_homeserver().await;
    let clock = Arc::new(mas_storage::MockClock::new(chrono::Utc::now()));
    state.clock = clock.clone();
    let alice = signed_in(&state, "alice").await;
    provision(&homeserver, &alice, &["PHONE"]).await;

    // Just signed in: the reset is allowed at once.
    let page = send(&state, &alice.cookies, "/account/cross-signing-reset", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(r#"name="password""#), "{}", page.body);
    let deep = send(
        &state,
        &alice.cookies,
        "/account/?action=org.matrix.cross_signing_reset",
        None,
    )
    .await;
    assert_eq!(deep.location(), "/account/cross-signing-reset");
    let allowed = send(
        &state,
        &alice.cookies,
        "/account/cross-signing-reset",
        Some("csrf=csrf-value"),
    )
    .await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert!(allowed.body.contains("10 minutes"), "{}", allowed.body);
    assert!(
        homeserver
            .user("alice")
            .unwrap()
            .cross_signing_reset_allowed
    );

    // Ten minutes later, deactivation wants the password.
    clock.advance(chrono::Duration::minutes(10));
    let page = send(&state, &alice.cookies, "/account/deactivate", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"name="password""#), "{}", page.body);
    for form in [
        "csrf=csrf-value&erase=on",
        "csrf=csrf-value&erase=on&password=wrong",
    ] {
        let refused = send(&state, &alice.cookies, "/account/deactivate", Some(form)).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{form}");
        assert!(refused.body.contains("Wrong password"), "{}", refused.body);
    }
    let forged = send(
        &state,
        &alice.cookies,
        "/account/deactivate",
        Some(&format!(
            "csrf=nope&password={}",
            crate::human::query_value(PASSWORD)
        )),
    )
    .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    let mut repo = state.repos.reader().await.unwrap();
    assert!(
        repo.user()
            .lookup(alice.user.id)
            .await
            .unwrap()
            .unwrap()
            .is_valid()
    );
    drop(repo);

    let phone = compat_session(&state, &alice, "PHONE").await;
    let done = send(
        &state,
        &alice.cookies,
        "/account/deactivate",
        Some(&format!(
            "csrf=csrf-value&erase=on&password={}",
            crate::human::query_value(PASSWORD)
        )),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Your account is deactivated"));
    let mut repo = state.repos.reader().await.unwrap();
    let user = repo.user().lookup(alice.user.id).await.unwrap().unwrap();
    assert!(user.deactivated_at.is_some());
    assert!(
        !repo
            .compat_session()
            .lookup(phone.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    drop(repo);
    let jobs = queued(&state, "deactivate-user").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["erase"], true);
    // Nobody signs in to it any more.
    let again = send(
        &state,
        &cookies(&state, None),
        "/login",
        Some(&format!(
            "csrf=csrf-value&next=%2F&username=alice&password={}",
            crate::human::query_value(PASSWORD)
        )),
    )
    .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
}

/// Writes what the state's tracker noted, as the activity task does.
async fn write_activity(state: &AppState) -> u64 {
    let batch = state.activity.take();
    let mut repo = state.repos.reader().await.unwrap();
    repo.activity().record(&batch).await.unwrap()
}

#[tokio::test]
async fn sessions_show_their_last_activity_from_sign_ins_refreshes_and_the_homeserver() {
    let (state, homeserver, _dir) = with_homeserver().await;
    let alice = signed_in(&state, "alice").await;
    provision(&homeserver, &alice, &["PHONE"]).await;

    // A web sign-in from an address, with a user agent.
    let app = router(&[Resource::Human], None, state.clone());
    let mut request = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "TestBrowser/1.0")
        .header("cookie", cookies(&state, None))
        .body(Body::from(format!(
            "csrf=csrf-value&next=%2F&username=alice&password={}",
            crate::human::query_value(PASSWORD)
        )))
        .unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(
        "203.0.113.7:4000".parse::<std::net::SocketAddr>().unwrap(),
    ));
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // A legacy client's token, which the homeserver introspects.
    let phone = compat_session(&state, &alice, "PHONE").await;
    let token = {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let token = mas_oauth_core::tokens::generate(
            &mut rng,
            mas_data_model::TokenType::CompatAccessToken,
        );
        let mut repo = state.repos.begin().await.unwrap();
        repo.compat_access_token()
            .add(&mut rng, &SystemClock, &phone, &token, None)
            .await
            .unwrap();
        repo.save().await.unwrap();
        token
    };
    let api = router(&[Resource::OAuth], None, state.clone());
    for _ in 0..2 {
        let introspected = api
            .clone()
            .oneshot(
                Request::post("/oauth2/introspect")
                    .header("authorization", "Bearer homeserver-secret")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(format!("token={token}")))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(introspected.status(), StatusCode::OK);
    }
    // Nothing is written by the requests themselves: the task writes the batch.
    let mut repo = state.repos.reader().await.unwrap();
    let unwritten = repo
        .compat_session()
        .lookup(phone.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unwritten.last_activity.at, None);
    drop(repo);
    assert_eq!(
        write_activity(&state).await,
        2,
        "the new browser and the phone"
    );

    let list = send(&state, &alice.cookies, "/account/sessions", None).await;
    assert!(list.body.contains("from 203.0.113.7"), "{}", list.body);
    let phone_page = send(
        &state,
        &alice.cookies,
        &format!("/account/sessions/{}", phone.id),
        None,
    )
    .await;
    assert!(
        !phone_page.body.contains("not recorded"),
        "{}",
        phone_page.body
    );
    let mut repo = state.repos.reader().await.unwrap();
    let browsers = repo
        .browser_session()
        .list(&alice.user, true, mas_storage::Pagination::first(10))
        .await
        .unwrap();
    let new = browsers
        .edges
        .iter()
        .find(|s| s.id != alice.session.id)
        .unwrap();
    assert_eq!(new.user_agent.as_deref(), Some("TestBrowser/1.0"));
    assert_eq!(new.last_activity.ip.as_deref(), Some("203.0.113.7"));
    drop(repo);
    let page = send(
        &state,
        &alice.cookies,
        &format!("/account/sessions/{}", new.id),
        None,
    )
    .await;
    assert!(page.body.contains("TestBrowser&#x2f;1.0"), "{}", page.body);
}

#[tokio::test]
async fn signing_out_everywhere_else_keeps_only_this_browser() {
    let (mut state, homeserver, _dir) = with_homeserver().await;
    let clock = Arc::new(mas_storage::MockClock::new(chrono::Utc::now()));
    state.clock = clock.clone();
    let alice = signed_in(&state, "alice").await;
    let bob = signed_in(&state, "bob").await;
    provision(&homeserver, &alice, &["PHONE"]).await;
    provision(&homeserver, &bob, &["BOBS"]).await;
    let phone = compat_session(&state, &alice, "PHONE").await;
    let bobs = compat_session(&state, &bob, "BOBS").await;
    let list = send(&state, &alice.cookies, "/account/sessions", None).await;
    assert!(
        list.body.contains("Sign out everywhere else"),
        "{}",
        list.body
    );

    // Long after signing in: the password is asked for first.
    clock.advance(chrono::Duration::minutes(30));
    let page = send(&state, &alice.cookies, "/account/sign-out-others", None).await;
    assert!(page.body.contains(r#"name="password""#), "{}", page.body);
    let refused = send(
        &state,
        &alice.cookies,
        "/account/sign-out-others",
        Some("csrf=csrf-value&password=wrong"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let mut repo = state.repos.reader().await.unwrap();
    assert!(
        repo.compat_session()
            .lookup(phone.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    drop(repo);

    let done = send(
        &state,
        &alice.cookies,
        "/account/sign-out-others",
        Some(&format!(
            "csrf=csrf-value&password={}",
            crate::human::query_value(PASSWORD)
        )),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/account/sessions?saved=everywhere");
    let mut repo = state.repos.reader().await.unwrap();
    assert!(
        !repo
            .compat_session()
            .lookup(phone.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    assert!(
        repo.browser_session()
            .lookup(alice.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    assert!(
        repo.compat_session()
            .lookup(bobs.id)
            .await
            .unwrap()
            .unwrap()
            .is_active(),
        "bob's untouched"
    );
    drop(repo);
    let jobs = queued(&state, "sync-devices").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["user_id"], alice.user.id.to_string());
}

/// The code of the authentication a page redirected to, read as the mail job reads it.
async fn sent_code(state: &AppState, location: &str) -> (ulid::Ulid, String) {
    let id: ulid::Ulid = location
        .strip_prefix("/account/emails/")
        .unwrap()
        .parse()
        .unwrap();
    let mut repo = state.repos.reader().await.unwrap();
    let authentication = repo
        .user_email()
        .lookup_authentication(id)
        .await
        .unwrap()
        .unwrap();
    let code = state
        .encrypter
        .decrypt(&authentication.encrypted_code)
        .unwrap();
    (id, String::from_utf8(code).unwrap())
}

#[tokio::test]
async fn an_address_is_added_with_the_code_sent_to_it_and_removed() {
    let (state, homeserver, _dir) = with_homeserver().await;
    let alice = signed_in(&state, "alice").await;
    let bob = signed_in(&state, "bob").await;
    provision(&homeserver, &alice, &[]).await;
    let page = send(&state, &alice.cookies, "/account/", None).await;
    assert!(page.body.contains("Send a code"), "{}", page.body);

    for bad in ["not-an-address", "Alice <alice@example.com>", ""] {
        let refused = send(
            &state,
            &alice.cookies,
            "/account/emails",
            Some(&format!(
                "csrf=csrf-value&email={}",
                crate::human::query_value(bad)
            )),
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let forged = send(
        &state,
        &alice.cookies,
        "/account/emails",
        Some("csrf=nope&email=alice%40example.com"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(queued(&state, "send-email").await.is_empty());

    let asked = send(
        &state,
        &alice.cookies,
        "/account/emails",
        Some("csrf=csrf-value&email=alice%40example.com"),
    )
    .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    let (id, code) = sent_code(&state, asked.location()).await;
    assert_eq!(code.len(), 6);
    let jobs = queued(&state, "send-email").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["authentication_id"], id.to_string());
    assert!(
        !jobs[0].to_string().contains(&code),
        "the job carries no code"
    );

    let form = send(&state, &alice.cookies, asked.location(), None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("alice@example.com"), "{}", form.body);
    // Only the browser that asked may type the code.
    let elsewhere = send(&state, &bob.cookies, asked.location(), None).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = send(
        &state,
        &alice.cookies,
        asked.location(),
        Some(&format!("csrf=csrf-value&code={wrong}")),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("not the code"), "{}", refused.body);

    let added = send(
        &state,
        &alice.cookies,
        asked.location(),
        Some(&format!("csrf=csrf-value&code={code}")),
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    assert_eq!(added.location(), "/account/?saved=email-added");
    // The homeserver's copy of the addresses follows.
    let provisioning = queued(&state, "provision-user").await;
    assert_eq!(provisioning.len(), 1, "{provisioning:?}");
    assert_eq!(provisioning[0]["user_id"], alice.user.id.to_string());
    let again = send(
        &state,
        &alice.cookies,
        asked.location(),
        Some(&format!("csrf=csrf-value&code={code}")),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "a code works once");
    let page = send(&state, &alice.cookies, "/account/?saved=email-added", None).await;
    assert!(
        page.body.contains(r#"data-email="alice@example.com""#),
        "{}",
        page.body
    );

    // Bob asks for alice's address: the code is sent, adding it fails.
    let bobs = send(
        &state,
        &bob.cookies,
        "/account/emails",
        Some("csrf=csrf-value&email=ALICE%40example.com"),
    )
    .await;
    assert_eq!(bobs.status, StatusCode::SEE_OTHER);
    let (_, bobs_code) = sent_code(&state, bobs.location()).await;
    let taken = send(
        &state,
        &bob.cookies,
        bobs.location(),
        Some(&format!("csrf=csrf-value&code={bobs_code}")),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);

    // Removing: not bob's to remove; alice's own goes.
    let mut repo = state.repos.reader().await.unwrap();
    let address = repo.user_email().all(&alice.user).await.unwrap().remove(0);
    drop(repo);
    let not_his = send(
        &state,
        &bob.cookies,
        &format!("/account/emails/{}/remove", address.id),
        Some("csrf=csrf-value"),
    )
    .await;
    assert_eq!(not_his.status, StatusCode::NOT_FOUND);
    let removed = send(
        &state,
        &alice.cookies,
        &format!("/account/emails/{}/remove", address.id),
        Some("csrf=csrf-value"),
    )
    .await;
    assert_eq!(removed.location(), "/account/?saved=email-removed");
    let mut repo = state.repos.reader().await.unwrap();
    assert!(repo.user_email().all(&alice.user).await.unwrap().is_empty());
}

#[tokio::test]
async fn five_wrong_codes_spend_the_code() {
    let (state, homeserver, _dir) = with_homeserver().await;
    let alice = signed_in(&state, "alice").await;
    provision(&homeserver, &alice, &[]).await;
    let asked = send(
        &state,
        &alice.cookies,
        "/account/emails",
        Some("csrf=csrf-value&email=alice%40example.com"),
    )
    .await;
    let (_, code) = sent_code(&state, asked.location()).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = send(
            &state,
            &alice.cookies,
            asked.location(),
            Some(&format!("csrf=csrf-value&code={wrong}")),
        )
        .await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 400, 404]);
    let late = send(
        &state,
        &alice.cookies,
        asked.location(),
        Some(&format!("csrf=csrf-value&code={code}")),
    )
    .await;
    assert_eq!(
        late.status,
        StatusCode::NOT_FOUND,
        "the right code comes too late"
    );
    let mut repo = state.repos.reader().await.unwrap();
    assert!(repo.user_email().all(&alice.user).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_sign_in_checked_against_a_password_changed_meanwhile_is_refused() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let alice = signed_in(&state, "alice").await;
    let mut repo = state.repos.reader().await.unwrap();
    let old = repo
        .user_password()
        .active(&alice.user)
        .await
        .unwrap()
        .unwrap();
    drop(repo);
    // The old password was checked (with no connection held); then it changed.
    let (version, hash) = state
        .passwords
        .hash("a new passphrase here".to_owned())
        .await
        .unwrap();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    repo.user_password()
        .add(&mut rng, &SystemClock, &alice.user, version, hash, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let opened = crate::human::login::open_session(
        &state,
        &alice.user,
        old,
        mas_oauth_core::passwords::Verified::Current,
        None,
        None,
    )
    .await
    .unwrap();
    assert!(opened.is_none(), "no session from the replaced password");
}

#[tokio::test]
async fn an_email_address_signs_in_only_where_the_setting_allows_it() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    let alice = signed_in(&state, "alice").await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    repo.user_email()
        .add(&mut rng, &SystemClock, &alice.user, "alice@example.com")
        .await
        .unwrap();
    repo.save().await.unwrap();
    let sign_in = |who: &str, password: &str| {
        format!(
            "csrf=csrf-value&next=%2F&username={}&password={}",
            crate::human::query_value(who),
            crate::human::query_value(password)
        )
    };
    let fresh = cookies(&state, None);
    let wrong = "Wrong username or password.";

    // Off (the default): the form asks for a username, and an address is no username.
    let page = send(&state, &fresh, "/login", None).await;
    assert!(page.body.contains(">Username</label>"), "{}", page.body);
    let refused = send(
        &state,
        &fresh,
        "/login",
        Some(&sign_in("alice@example.com", PASSWORD)),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains(wrong), "{}", refused.body);

    state.account.login_with_email_allowed = true;
    let page = send(&state, &fresh, "/login", None).await;
    assert!(
        page.body.contains(">Username or email address</label>"),
        "{}",
        page.body
    );
    // The address, in any case, opens a session of its account.
    let ok = send(
        &state,
        &fresh,
        "/login",
        Some(&sign_in("Alice@Example.COM", PASSWORD)),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), "/");
    // The username still does.
    let ok = send(&state, &fresh, "/login", Some(&sign_in("alice", PASSWORD))).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    // A wrong password, and an address no account has, get the same answer as an
    // unknown username: nobody learns which addresses have accounts.
    for (who, password) in [
        ("alice@example.com", "not the password"),
        ("bob@example.com", PASSWORD),
        ("@alice:example.com", PASSWORD),
    ] {
        let refused = send(&state, &fresh, "/login", Some(&sign_in(who, password))).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{who}");
        assert!(refused.body.contains(wrong), "{who}: {}", refused.body);
    }
    // Once someone used up the account's attempts by its username, its address is
    // answered as an unknown one: the throttle does not tell whose address it is.
    let limit = |burst| crate::Limit {
        burst,
        per_second: 1.0 / 60.0,
    };
    state.rate_limits = Arc::new(crate::RateLimits::new(
        crate::Limits {
            login_per_ip: limit(100),
            login_per_account: limit(2),
            ..crate::Limits::generous()
        },
        Vec::new(),
    ));
    for _ in 0..2 {
        let tried = send(&state, &fresh, "/login", Some(&sign_in("alice", "guess"))).await;
        assert_eq!(tried.status, StatusCode::UNAUTHORIZED);
    }
    let tried = send(&state, &fresh, "/login", Some(&sign_in("alice", "guess"))).await;
    assert_eq!(tried.status, StatusCode::TOO_MANY_REQUESTS);
    let by_address = send(
        &state,
        &fresh,
        "/login",
        Some(&sign_in("alice@example.com", PASSWORD)),
    )
    .await;
    assert_eq!(by_address.status, StatusCode::UNAUTHORIZED);
    assert!(by_address.body.contains(wrong), "{}", by_address.body);
}
