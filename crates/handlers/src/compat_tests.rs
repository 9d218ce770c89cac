//! The compatibility layer through the real router, on SQLite, with the in-memory
//! homeserver (which can be switched off to play an outage).
#![allow(clippy::too_many_lines)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mas_matrix::MockHomeserver;
use mas_storage::SystemClock;
use mas_storage::repository::CompatSessionFilter;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::test_state::{Up, state};
use crate::{AppState, Resource, router};

const PASSWORD: &str = "correct horse battery staple";

struct Harness {
    state: AppState,
    homeserver: Arc<MockHomeserver>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let (mut state, dir) = state(Arc::new(Up)).await;
        let homeserver = Arc::new(MockHomeserver::new("example.com"));
        state.homeserver = homeserver.clone();
        Self {
            state,
            homeserver,
            _dir: dir,
        }
    }

    /// A user with [`PASSWORD`].
    async fn user(&self, username: &str) -> mas_data_model::User {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let (version, hash) = self
            .state
            .passwords
            .hash(PASSWORD.to_owned())
            .await
            .unwrap();
        let mut repo = self.state.repos.begin().await.unwrap();
        let user = repo
            .user()
            .add(&mut rng, &SystemClock, username)
            .await
            .unwrap();
        repo.user_password()
            .add(&mut rng, &SystemClock, &user, version, hash, None)
            .await
            .unwrap();
        repo.save().await.unwrap();
        user
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let app = router(
            &[Resource::Compat, Resource::OAuth],
            None,
            self.state.clone(),
        );
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app
            .oneshot(request.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn login(&self, body: &Value) -> (StatusCode, Value) {
        self.call("POST", "/_matrix/client/v3/login", None, body.to_string())
            .await
    }

    /// What the homeserver learns when it introspects `token`.
    async fn introspect(&self, token: &str) -> Value {
        let app = router(&[Resource::OAuth], None, self.state.clone());
        let request = Request::post("/oauth2/introspect")
            .header("authorization", "Bearer homeserver-secret")
            .header("x-mas-supports-device-id", "1")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn open_sessions(&self, user: &mas_data_model::User) -> u64 {
        let mut repo = self.state.repos.reader().await.unwrap();
        repo.compat_session()
            .count(CompatSessionFilter {
                user_id: Some(user.id),
                active: Some(true),
            })
            .await
            .unwrap()
    }
}

/// Login throttles of `(burst, per_second)` per address and per account, believing
/// `X-Forwarded-For` from `trusted`; every other limit out of the way.
fn login_limits(
    per_ip: (u32, f64),
    per_account: (u32, f64),
    trusted: Vec<ipnet::IpNet>,
) -> Arc<crate::RateLimits> {
    let limit = |(burst, per_second)| crate::Limit { burst, per_second };
    Arc::new(crate::RateLimits::new(
        crate::Limits {
            login_per_ip: limit(per_ip),
            login_per_account: limit(per_account),
            ..crate::Limits::generous()
        },
        trusted,
    ))
}

fn password_login(user: &str) -> Value {
    json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": PASSWORD,
    })
}

#[tokio::test]
async fn a_password_login_provisions_the_device_then_hands_out_its_token() {
    let h = Harness::new().await;
    let (status, flows) = h
        .call("GET", "/_matrix/client/v3/login", None, Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flows["flows"][0], json!({"type": "m.login.password"}));

    let alice = h.user("alice").await;
    let mut body = password_login("alice");
    body["initial_device_display_name"] = json!("Alice's phone");
    let (status, answer) = h.login(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["user_id"], "@alice:example.com");
    assert_eq!(answer["home_server"], "example.com");
    assert!(answer.get("refresh_token").is_none());
    assert!(answer.get("expires_in_ms").is_none());
    let token = answer["access_token"].as_str().unwrap();
    assert!(token.starts_with("mct_"), "{token}");
    let device = answer["device_id"].as_str().unwrap();
    assert_eq!(device.len(), 10);
    assert!(device.chars().all(|c| c.is_ascii_uppercase()), "{device}");

    // The homeserver did not know alice: she was provisioned, then her device.
    let on_homeserver = h.homeserver.user("alice").unwrap();
    assert_eq!(on_homeserver.sub, alice.id.to_string());
    assert_eq!(
        on_homeserver.devices.get(device),
        Some(&Some("Alice's phone".to_owned()))
    );
    let seen = h.introspect(token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["username"], "alice");
    assert_eq!(seen["device_id"], device);

    // The full Matrix ID, the legacy `user` field and the r0 prefix work too.
    for body in [
        password_login("@alice:example.com"),
        json!({"type": "m.login.password", "user": "alice", "password": PASSWORD}),
    ] {
        let (status, answer) = h
            .call("POST", "/_matrix/client/r0/login", None, body.to_string())
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    assert_eq!(h.open_sessions(&alice).await, 3);
}

#[tokio::test]
async fn login_mistakes_get_matrix_errors() {
    let h = Harness::new().await;
    h.user("alice").await;
    let mut wrong = password_login("alice");
    wrong["password"] = json!("not it");
    let mut bad_device = password_login("alice");
    bad_device["device_id"] = json!("has space");
    let cases = [
        (wrong.to_string(), StatusCode::FORBIDDEN, "M_FORBIDDEN"),
        (password_login("nobody").to_string(), StatusCode::FORBIDDEN, "M_FORBIDDEN"),
        (password_login("@alice:elsewhere.org").to_string(), StatusCode::FORBIDDEN, "M_FORBIDDEN"),
        (json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}}).to_string(), StatusCode::BAD_REQUEST, "M_MISSING_PARAM"),
        (json!({"type": "m.login.password", "password": PASSWORD}).to_string(), StatusCode::BAD_REQUEST, "M_MISSING_PARAM"),
        (json!({"type": "m.login.password", "identifier": {"type": "m.id.phone", "number": "1"}, "password": PASSWORD}).to_string(), StatusCode::BAD_REQUEST, "M_UNKNOWN"),
        (json!({"type": "m.login.magic"}).to_string(), StatusCode::BAD_REQUEST, "M_UNKNOWN"),
        (bad_device.to_string(), StatusCode::BAD_REQUEST, "M_INVALID_PARAM"),
        ("{not json".to_owned(), StatusCode::BAD_REQUEST, "M_NOT_JSON"),
        ("[1, 2]".to_owned(), StatusCode::BAD_REQUEST, "M_BAD_JSON"),
        (json!({"type": 7}).to_string(), StatusCode::BAD_REQUEST, "M_BAD_JSON"),
        (password_login("ali\u{0000}ce").to_string(), StatusCode::BAD_REQUEST, "M_BAD_JSON"),
        (
            json!({"type": "m.login.password", "password": "x".repeat(100_000)}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
        ),
    ];
    for (body, status, errcode) in cases {
        let (got, answer) = h
            .call("POST", "/_matrix/client/v3/login", None, body.clone())
            .await;
        assert_eq!(
            (got, answer["errcode"].as_str()),
            (status, Some(errcode)),
            "{body:.80}: {answer}"
        );
        assert!(answer["error"].is_string(), "{answer}");
    }
}

#[tokio::test]
async fn locked_and_deactivated_users_are_told_so_after_the_password() {
    let h = Harness::new().await;
    let carol = h.user("carol").await;
    let dave = h.user("dave").await;
    let mut repo = h.state.repos.begin().await.unwrap();
    repo.user().lock(&SystemClock, carol).await.unwrap();
    repo.user().deactivate(&SystemClock, dave).await.unwrap();
    repo.save().await.unwrap();
    let (status, answer) = h.login(&password_login("carol")).await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_USER_LOCKED"))
    );
    let (status, answer) = h.login(&password_login("dave")).await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_USER_DEACTIVATED"))
    );
    // A wrong password says nothing about the account's state.
    let mut wrong = password_login("carol");
    wrong["password"] = json!("nope");
    let (status, _) = h.login(&wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_homeserver_outage_fails_the_login_and_keeps_what_worked() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let mut on_device = password_login("alice");
    on_device["device_id"] = json!("PHONE");
    let (status, first) = h.login(&on_device).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let working = first["access_token"].as_str().unwrap();

    h.homeserver.set_down(true);
    let (status, answer) = h.login(&on_device).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["errcode"], "M_UNKNOWN");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("homeserver is unreachable"),
        "{answer}"
    );
    let (status, _) = h.login(&password_login("alice")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Nothing was stored, and the session already on that device still works.
    assert_eq!(h.open_sessions(&alice).await, 1);
    assert_eq!(h.introspect(working).await["active"], true);

    // Back up: logging in on the same device replaces the session there.
    h.homeserver.set_down(false);
    let (status, second) = h.login(&on_device).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(h.open_sessions(&alice).await, 1);
    assert_eq!(h.introspect(working).await["active"], false);
    let replacement = second["access_token"].as_str().unwrap();
    assert_eq!(h.introspect(replacement).await["device_id"], "PHONE");
}

#[tokio::test]
async fn refresh_rotates_and_a_spent_refresh_token_is_refused() {
    let h = Harness::new().await;
    h.user("alice").await;
    let mut body = password_login("alice");
    body["refresh_token"] = json!(true);
    let (status, first) = h.login(&body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["expires_in_ms"], 300_000);
    let refresh = first["refresh_token"].as_str().unwrap();
    assert!(refresh.starts_with("mcr_"), "{refresh}");

    let (status, second) = h
        .call(
            "POST",
            "/_matrix/client/v3/refresh",
            None,
            json!({"refresh_token": refresh}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["expires_in_ms"], 300_000);
    let old_access = first["access_token"].as_str().unwrap();
    let new_access = second["access_token"].as_str().unwrap();
    assert_eq!(h.introspect(old_access).await["active"], false);
    assert_eq!(h.introspect(new_access).await["active"], true);

    for spent in [refresh, "mcr_notevenachecksum", old_access] {
        let (status, answer) = h
            .call(
                "POST",
                "/_matrix/client/r0/refresh",
                None,
                json!({"refresh_token": spent}).to_string(),
            )
            .await;
        assert_eq!(
            (
                status,
                answer["errcode"].as_str(),
                answer["soft_logout"].as_bool()
            ),
            (
                StatusCode::UNAUTHORIZED,
                Some("M_UNKNOWN_TOKEN"),
                Some(false)
            ),
            "{spent}"
        );
    }
    // The replay above left one branch: the second answer's, which refreshes on.
    assert_eq!(h.introspect(new_access).await["active"], true);
    let (status, third) = h
        .call(
            "POST",
            "/_matrix/client/v3/refresh",
            None,
            json!({"refresh_token": second["refresh_token"]}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(
        h.introspect(third["access_token"].as_str().unwrap()).await["active"],
        true
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_deletes_the_device() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let (_, first) = h.login(&password_login("alice")).await;
    let (_, second) = h.login(&password_login("alice")).await;
    let token = first["access_token"].as_str().unwrap();
    let device = first["device_id"].as_str().unwrap();
    assert_eq!(h.homeserver.user("alice").unwrap().devices.len(), 2);

    let (status, answer) = h
        .call("POST", "/_matrix/client/v3/logout", Some(token), "{}")
        .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({})));
    assert_eq!(h.introspect(token).await["active"], false);
    assert!(
        !h.homeserver
            .user("alice")
            .unwrap()
            .devices
            .contains_key(device)
    );
    assert_eq!(h.open_sessions(&alice).await, 1);
    // A logged-out token is unknown from then on.
    let (status, answer) = h
        .call("POST", "/_matrix/client/v3/logout", Some(token), "{}")
        .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_UNKNOWN_TOKEN"))
    );
    let (status, answer) = h
        .call("POST", "/_matrix/client/v3/logout", None, "{}")
        .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_MISSING_TOKEN"))
    );

    // logout/all ends every session of the user, and the homeserver keeps no device.
    let (_, third) = h.login(&password_login("alice")).await;
    let (status, _) = h
        .call(
            "POST",
            "/_matrix/client/v3/logout/all",
            third["access_token"].as_str(),
            "{}",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.open_sessions(&alice).await, 0);
    for answer in [&second, &third] {
        let token = answer["access_token"].as_str().unwrap();
        assert_eq!(h.introspect(token).await["active"], false);
    }
    assert!(h.homeserver.user("alice").unwrap().devices.is_empty());
}

#[tokio::test]
async fn a_logout_while_the_homeserver_is_down_leaves_a_job() {
    let h = Harness::new().await;
    h.user("alice").await;
    let (_, login) = h.login(&password_login("alice")).await;
    let token = login["access_token"].as_str().unwrap();
    h.homeserver.set_down(true);
    let (status, _) = h
        .call("POST", "/_matrix/client/v3/logout", Some(token), "{}")
        .await;
    assert_eq!(status, StatusCode::OK, "the logout itself does not need it");
    assert_eq!(h.introspect(token).await["active"], false);
    let mut repo = h.state.repos.begin().await.unwrap();
    let jobs = repo
        .job()
        .claim(
            &SystemClock,
            &["delete-device"],
            10,
            chrono::Duration::seconds(30),
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload["device_id"], login["device_id"]);
}

#[tokio::test]
async fn sso_login_hands_back_a_one_time_login_token() {
    use axum_extra::extract::cookie::{Cookie, PrivateCookieJar};
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let (_, flows) = h
        .call("GET", "/_matrix/client/v3/login", None, Body::empty())
        .await;
    let kinds: Vec<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["m.login.password", "m.login.sso", "m.login.token"]);

    // The client sends the browser to the redirect endpoint: it lands on this service.
    let app = router(&[Resource::Compat, Resource::Human], None, h.state.clone());
    let response = app
        .clone()
        .oneshot(
            Request::get(
                "/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fclient.example.org%2Fback%3Fx%3D1",
            )
            .body(Body::empty())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        page.starts_with("https://auth.example.com/complete-compat-sso/"),
        "{page}"
    );
    let path = page.trim_start_matches("https://auth.example.com");

    // Not signed in: the page sends the person to log in first.
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );

    // Signed in (a browser session in the encrypted cookie), with a CSRF token.
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = h.state.repos.begin().await.unwrap();
    let browser = repo
        .browser_session()
        .add(&mut rng, &SystemClock, &alice, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let jar = PrivateCookieJar::new(h.state.cookie_key.clone())
        .add(Cookie::new("mas-session", browser.id.to_string()))
        .add(Cookie::new("mas-csrf", "csrf-value"));
    let encrypted = {
        use axum::response::IntoResponse;
        jar.into_response()
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let response = app
        .clone()
        .oneshot(
            Request::get(path)
                .header("cookie", &encrypted)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&html);
    // The destination is named whole, scheme and path included.
    assert!(
        html.contains(
            r#"<strong id="destination">https:&#x2f;&#x2f;client.example.org&#x2f;back</strong>"#
        ),
        "{html}"
    );
    assert!(html.contains("alice"), "{html}");

    let post = |csrf: &'static str| {
        Request::post(path)
            .header("cookie", &encrypted)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}&action=continue")))
            .unwrap()
    };
    let response = app.clone().oneshot(post("forged")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "a forged form");
    let response = app.clone().oneshot(post("csrf-value")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let back = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(back.host_str(), Some("client.example.org"));
    let pairs: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(pairs["x"], "1", "the client's own query is kept");
    let login_token = pairs["loginToken"].clone();
    // Completing twice is refused: the page has expired.
    let response = app.clone().oneshot(post("csrf-value")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The client exchanges the token once, and gets a device on the homeserver.
    let body = json!({"type": "m.login.token", "token": login_token});
    let (status, answer) = h.login(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["user_id"], "@alice:example.com");
    let device = answer["device_id"].as_str().unwrap();
    assert!(
        h.homeserver
            .user("alice")
            .unwrap()
            .devices
            .contains_key(device)
    );
    assert_eq!(
        h.introspect(answer["access_token"].as_str().unwrap()).await["device_id"],
        device
    );
    let (status, answer) = h.login(&body).await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN")),
        "a login token is good once"
    );
    let (status, answer) = h
        .login(&json!({"type": "m.login.token", "token": "made-up"}))
        .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN"))
    );

    // A redirect endpoint call without a usable redirectUrl is a Matrix error.
    let (status, answer) = h
        .call(
            "GET",
            "/_matrix/client/v3/login/sso/redirect",
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(
        (status, answer["errcode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("M_MISSING_PARAM"))
    );
}

#[tokio::test]
async fn too_many_attempts_get_m_limit_exceeded_and_unknown_paths_m_unrecognized() {
    let mut h = Harness::new().await;
    h.state.rate_limits = login_limits((100, 1.0), (2, 1.0 / 60.0), Vec::new());
    h.user("alice").await;
    let mut wrong = password_login("alice");
    wrong["password"] = json!("guess");
    for _ in 0..2 {
        let (status, _) = h.login(&wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // The account's bucket is dry: even the right password waits.
    let (status, answer) = h.login(&password_login("alice")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["errcode"], "M_LIMIT_EXCEEDED");
    let wait = answer["retry_after_ms"].as_u64().unwrap();
    assert!((1..=60_000).contains(&wait), "{wait}");

    for (method, path, status) in [
        ("GET", "/_matrix/client/v3/sync", StatusCode::NOT_FOUND),
        (
            "PUT",
            "/_matrix/client/v3/login",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "GET",
            "/_matrix/client/r0/logout",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let (got, answer) = h.call(method, path, None, Body::empty()).await;
        assert_eq!(
            (got, answer["errcode"].as_str()),
            (status, Some("M_UNRECOGNIZED")),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn starting_sso_logins_is_throttled_per_address() {
    let mut h = Harness::new().await;
    h.state.rate_limits = login_limits((2, 1.0 / 60.0), (100, 1.0), Vec::new());
    let app = router(&[Resource::Compat], None, h.state.clone());
    let start = |peer: &str| {
        let mut request = Request::get(
            "/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fclient.example.org%2F",
        )
        .body(Body::empty())
        .unwrap();
        request.extensions_mut().insert(axum::extract::ConnectInfo(
            peer.parse::<std::net::SocketAddr>().unwrap(),
        ));
        app.clone().oneshot(request)
    };
    for _ in 0..2 {
        let response = start("198.51.100.7:4000").await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let response = start("198.51.100.7:4001").await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer["errcode"], "M_LIMIT_EXCEEDED");
    assert!(answer["retry_after_ms"].as_u64().unwrap() > 0);
    // Another address is not held back.
    let response = start("198.51.100.8:4000").await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_hanging_homeserver_fails_the_login_within_seconds() {
    // A homeserver that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut h = Harness::new().await;
    h.state.homeserver = Arc::new(
        mas_matrix::SynapseModern::new(
            "example.com",
            url::Url::parse(&format!("http://{address}/")).unwrap(),
            "secret",
        )
        .unwrap(),
    );
    let alice = h.user("alice").await;
    let started = std::time::Instant::now();
    let (status, answer) = h.login(&password_login("alice")).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["errcode"], "M_UNKNOWN");
    assert!(took < std::time::Duration::from_secs(9), "{took:?}");
    assert_eq!(h.open_sessions(&alice).await, 0, "nothing is left behind");
}

#[tokio::test]
async fn password_logins_never_carry_admin_rights_and_web_clients_get_cors() {
    let h = Harness::new().await;
    let admin = h.user("admin").await;
    let mut repo = h.state.repos.begin().await.unwrap();
    repo.user()
        .set_can_request_admin(admin, true)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let (status, answer) = h.login(&password_login("admin")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let seen = h.introspect(answer["access_token"].as_str().unwrap()).await;
    let scope = seen["scope"].as_str().unwrap();
    assert!(!scope.contains("urn:synapse:admin:*"), "{scope}");

    // A browser client on another origin asks first; the answer lets it in, on the
    // compatibility paths and on the OAuth token endpoint alike.
    for path in [
        "/_matrix/client/v3/login",
        "/_matrix/client/r0/logout",
        "/_matrix/client/v3/refresh",
        "/oauth2/token",
    ] {
        let app = router(&[Resource::Compat, Resource::OAuth], None, h.state.clone());
        let response = app
            .oneshot(
                Request::builder()
                    .method("OPTIONS")
                    .uri(path)
                    .header("origin", "https://app.element.io")
                    .header("access-control-request-method", "POST")
                    .header(
                        "access-control-request-headers",
                        "content-type,authorization",
                    )
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "*",
            "{path}"
        );
        // Browsers never let a `*` here cover `Authorization`: it must be named.
        assert_eq!(
            response.headers()["access-control-allow-headers"],
            "content-type,authorization",
            "{path}"
        );
    }
}

#[tokio::test]
async fn concurrent_logins_on_one_device_leave_one_open_session() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let mut body = password_login("alice");
    body["device_id"] = json!("SHARED");
    let (first, second) = tokio::join!(h.login(&body), h.login(&body));
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(second.0, StatusCode::OK, "{}", second.1);
    assert_eq!(h.open_sessions(&alice).await, 1);
    let mut live = 0;
    for answer in [&first.1, &second.1] {
        if h.introspect(answer["access_token"].as_str().unwrap()).await["active"] == true {
            live += 1;
        }
    }
    assert_eq!(live, 1, "the later login replaced the earlier one");
}

/// A compat password login as it arrives from `peer`, with `X-Forwarded-For` if given.
async fn login_from(
    app: &axum::Router,
    peer: &str,
    forwarded: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    let mut request = Request::post("/_matrix/client/v3/login");
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let mut request = request.body(Body::from(body.to_string())).unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(
        peer.parse::<std::net::SocketAddr>().unwrap(),
    ));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn people_behind_a_local_proxy_on_a_dual_stack_socket_have_their_own_buckets() {
    let mut h = Harness::new().await;
    h.state.rate_limits = login_limits(
        (3, 1.0 / 60.0),
        (100, 1.0),
        vec!["127.0.0.0/8".parse().unwrap()],
    );
    h.user("alice").await;
    h.user("bob").await;
    let app = router(&[Resource::Compat], None, h.state.clone());
    let mut wrong = password_login("mallory");
    wrong["password"] = json!("guess");
    // The attack: an nginx on 127.0.0.1 reaches the default `[::]:8080` bind, so its
    // address arrives IPv4-mapped. Three bad logins from one person behind it...
    let proxy = "[::ffff:127.0.0.1]:40000";
    for _ in 0..3 {
        let (status, answer) = login_from(&app, proxy, Some("203.0.113.66"), &wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    }
    let (status, answer) = login_from(&app, proxy, Some("203.0.113.66"), &wrong).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    // ...lock out that person only, not everyone else behind the same proxy.
    let (status, answer) =
        login_from(&app, proxy, Some("198.51.100.20"), &password_login("alice")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // IPv6 clients are one bucket per /64: another address in the same /64 waits...
    for _ in 0..3 {
        let (status, _) = login_from(&app, "[2001:db8:1:2::10]:5000", None, &wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, answer) = login_from(
        &app,
        "[2001:db8:1:2::ffff]:5000",
        None,
        &password_login("bob"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    // ...and the next /64 does not.
    let (status, answer) = login_from(
        &app,
        "[2001:db8:1:3::10]:5000",
        None,
        &password_login("bob"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn overlong_usernames_are_refused_before_any_bucket() {
    let h = Harness::new().await;
    h.user("alice").await;
    // The attack: login attempts naming megabyte-long accounts, each of which used to
    // be kept as a bucket key. Now a clear error, and no bucket.
    let long = "a".repeat(60 * 1024);
    let mut body = password_login(&long);
    body["password"] = json!("guess");
    for _ in 0..3 {
        let (status, answer) = h.login(&body).await;
        assert_eq!(
            (status, answer["errcode"].as_str()),
            (StatusCode::BAD_REQUEST, Some("M_INVALID_USERNAME")),
            "{answer}"
        );
    }
    assert_eq!(h.state.rate_limits.account_buckets(), 0);
    let (status, _) = h.login(&password_login("alice")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.state.rate_limits.account_buckets(), 1);
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn request_logs_name_the_path_never_the_query() {
    let h = Harness::new().await;
    h.user("alice").await;
    let (status, answer) = h.login(&password_login("alice")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The attack: a live token in the query string, as legacy clients may send it, and
    // secrets of the OAuth flows; the service logs at debug level.
    let guard = tracing::subscriber::set_default(subscriber);
    let (status, _) = h
        .call(
            "POST",
            &format!("/_matrix/client/v3/logout?access_token={token}&state=s3cret-state&nonce=s3cret-nonce"),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    drop(guard);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("/_matrix/client/v3/logout"), "{text}");
    for secret in [
        token.as_str(),
        "s3cret-state",
        "s3cret-nonce",
        "access_token=",
    ] {
        assert!(!text.contains(secret), "{secret} in the logs: {text}");
    }
}

#[tokio::test]
async fn sso_logins_go_only_where_the_allow_list_says() {
    let mut h = Harness::new().await;
    h.state.compat_sso_allowlist = Arc::from([
        url::Url::parse("https://app.example/").unwrap(),
        url::Url::parse("io.element.app:/callback").unwrap(),
        url::Url::parse("https://web.example/app").unwrap(),
    ]);
    let app = router(&[Resource::Compat], None, h.state.clone());
    let start = |target: &str| {
        let uri = format!(
            "/_matrix/client/v3/login/sso/redirect?redirectUrl={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        );
        app.clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
    };
    for allowed in [
        "https://app.example/",
        "https://app.example/cb?x=1",
        "io.element.app:/callback",
        "https://web.example/app",
        "https://web.example/app/sso",
    ] {
        let response = start(allowed).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{allowed}");
    }
    // The attack: a login token sent to an address of the attacker's choosing.
    for refused in [
        "https://app.example.evil/",
        "https://evil.example/",
        "http://app.example/",
        "https://app.example:8443/",
        "io.element.app:/other",
        "https://web.example/app-evil/",
    ] {
        let response = start(refused).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{refused}");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["errcode"], "M_FORBIDDEN", "{refused}");
    }
}

#[tokio::test]
async fn a_login_checked_against_a_password_changed_meanwhile_restores_nothing() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let mut repo = h.state.repos.reader().await.unwrap();
    let old = repo.user_password().active(&alice).await.unwrap().unwrap();
    drop(repo);
    // The old password was checked (with no connection held); then it changed.
    let (version, hash) = h
        .state
        .passwords
        .hash("a new passphrase here".to_owned())
        .await
        .unwrap();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = h.state.repos.begin().await.unwrap();
    let new = repo
        .user_password()
        .add(&mut rng, &SystemClock, &alice, version, hash, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    // An upgrade of the old hash would have put the old password back.
    let upgrade = mas_oauth_core::passwords::Verified::Upgrade {
        version: 1,
        hash: old.hashed_password.clone(),
    };
    let stored = crate::compat::store_login(
        &h.state, &alice, &old, upgrade, "DEVICE", None, false, false, None,
    )
    .await
    .unwrap();
    assert!(stored.is_none(), "no login, no upgrade");
    let mut repo = h.state.repos.reader().await.unwrap();
    assert_eq!(
        repo.user_password()
            .active(&alice)
            .await
            .unwrap()
            .unwrap()
            .id,
        new.id
    );
}

#[tokio::test]
async fn requesters_the_policy_bans_cannot_log_in() {
    let mut h = Harness::new().await;
    h.user("alice").await;
    h.state.policy = Arc::new(mas_oauth_core::policy::Policy {
        banned_networks: mas_oauth_core::policy::networks(&["203.0.113.0/24".to_owned()]).unwrap(),
        ..mas_oauth_core::policy::Policy::default()
    });
    let app = router(&[Resource::Compat], None, h.state.clone());
    let (status, body) = login_from(&app, "203.0.113.9:4000", None, &password_login("alice")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errcode"], "M_FORBIDDEN");
    assert_eq!(
        body["error"],
        "Login denied by the policy enforced by this service"
    );
    let (status, body) =
        login_from(&app, "198.51.100.9:4000", None, &password_login("alice")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
