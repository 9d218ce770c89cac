//! The admin API through the router, as a script or Element's admin console calls it:
//! tokens from the token endpoint and personal tokens, MAS's shapes and pagination, and
//! typed 4xx answers to bad input that change nothing.
// Each test follows one story through; splitting them would hide the order it needs.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use mas_data_model::{ClientAuthMethod, TokenType, User};
use mas_storage::{Repository, SystemClock};
use serde_json::{Value, json};
use tower::ServiceExt;
use ulid::Ulid;

use crate::test_state::Up;
use crate::{AppState, Resource, router};

const SECRET: &str = "admin-client-secret";

struct Harness {
    state: AppState,
    _dir: tempfile::TempDir,
    /// A client listed in `policy.data.admin_clients`.
    admin_client: Ulid,
    /// A client that is not.
    other_client: Ulid,
}

impl Harness {
    async fn new() -> Self {
        let (mut state, dir) = crate::test_state::state(Arc::new(Up)).await;
        let admin_client = add_client(&state).await;
        let other_client = add_client(&state).await;
        let mut oauth = crate::test_state::oauth();
        Arc::get_mut(&mut oauth).unwrap().admin_clients = vec![admin_client];
        state.oauth = oauth;
        Self {
            state,
            _dir: dir,
            admin_client,
            other_client,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let app = router(
            &[Resource::OAuth, Resource::AdminApi],
            None,
            self.state.clone(),
        );
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
        let response = app.oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(&body.to_string()))
            .await
    }

    /// The token endpoint's answer to a `client_credentials` grant.
    async fn client_token(&self, client: Ulid, scope: &str) -> (StatusCode, Value) {
        let app = router(&[Resource::OAuth], None, self.state.clone());
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{SECRET}"));
        let request = Request::post("/oauth2/token")
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "grant_type=client_credentials&scope={}",
                scope.replace(':', "%3A").replace(' ', "+")
            )))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// An admin token from the admin client.
    async fn admin_token(&self) -> String {
        let (status, body) = self.client_token(self.admin_client, "urn:mas:admin").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn repo(&self) -> Box<dyn Repository> {
        self.state.repos.begin().await.unwrap()
    }

    async fn add_user(&self, username: &str) -> User {
        let mut repo = self.repo().await;
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let user = repo
            .user()
            .add(&mut rng, &SystemClock, username)
            .await
            .unwrap();
        repo.save().await.unwrap();
        user
    }

    async fn user_count(&self) -> u64 {
        self.repo()
            .await
            .user()
            .count(&mas_storage::repository::UserFilter::default())
            .await
            .unwrap()
    }

    /// The payloads of the jobs waiting on `queue`, claimed so they are seen once.
    async fn jobs(&self, queue: &str) -> Vec<Value> {
        let mut repo = self.repo().await;
        let jobs = repo
            .job()
            .claim(&SystemClock, &[queue], 100, chrono::Duration::minutes(5))
            .await
            .unwrap();
        repo.save().await.unwrap();
        jobs.into_iter().map(|j| j.payload).collect()
    }
}

async fn add_client(state: &AppState) -> Ulid {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    let mut params = crate::test_state::client_params(
        ClientAuthMethod::ClientSecretBasic,
        Vec::new(),
        &["client_credentials"],
    );
    params.encrypted_secret = Some(state.encrypter.encrypt(&mut rng, SECRET.as_bytes()));
    let client = repo
        .client()
        .add_dynamic(&mut rng, &SystemClock, params)
        .await
        .unwrap();
    repo.save().await.unwrap();
    client.id
}

fn title(body: &Value) -> &str {
    body["errors"][0]["title"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn only_tokens_with_the_admin_scope_get_in() {
    let h = Harness::new().await;
    let (status, body) = h.call(Method::GET, "/api/admin/v1/users", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(title(&body).contains("access token is required"), "{body}");

    for bogus in ["nonsense", "mat_000000000000000000000000000000_000000"] {
        let (status, body) = h.get("/api/admin/v1/users", bogus).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(title(&body), "the access token is not valid");
    }

    // Another deployment's token is unknown here, however well-formed.
    let elsewhere = Harness::new().await;
    let foreign = elsewhere.admin_token().await;
    let (status, _) = h.get("/api/admin/v1/users", &foreign).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A client not named in policy.data.admin_clients cannot get the scope at all...
    let (status, body) = h.client_token(h.other_client, "urn:mas:admin").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");
    // ...nor can the admin client get the homeserver's admin scope, which needs a user.
    let (status, body) = h
        .client_token(h.admin_client, "urn:mas:admin urn:synapse:admin:*")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    // A valid token without the scope is refused as such.
    let (status, body) = h.client_token(h.admin_client, "urn:mas:graphql:*").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let unscoped = body["access_token"].as_str().unwrap();
    let (status, body) = h.get("/api/admin/v1/users", unscoped).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(title(&body).contains("urn:mas:admin"));

    let token = h.admin_token().await;
    let (status, body) = h.get("/api/admin/v1/users", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["count"], 0);

    // A personal token of a user who may request admin works; once the right is
    // removed, it stops working.
    let alice = h.add_user("alice").await;
    let mut repo = h.repo().await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let alice = repo
        .user()
        .set_can_request_admin(alice, true)
        .await
        .unwrap();
    let session = repo
        .personal_session()
        .add(
            &mut rng,
            &SystemClock,
            mas_data_model::PersonalSessionOwner::User(alice.id),
            &alice,
            "script",
            "urn:mas:admin",
        )
        .await
        .unwrap();
    let personal = mas_oauth_core::tokens::generate(&mut rng, TokenType::PersonalAccessToken);
    repo.personal_access_token()
        .add(&mut rng, &SystemClock, &session, &personal, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let (status, body) = h.get("/api/admin/v1/version", &personal).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let (status, _) = h
        .post(
            &format!("/api/admin/v1/users/{}/set-admin", alice.id),
            &token,
            &json!({"admin": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h.get("/api/admin/v1/version", &personal).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The document and its page need no token.
    let (status, document) = h.call(Method::GET, "/api/spec.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let (status, page) = h.call(Method::GET, "/api/doc/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    // As a browser shows it, with the escaped slashes read back.
    let page = page.as_str().unwrap().replace("&#x2f;", "/");
    assert!(
        page.contains("<span class=\"method\">POST</span>/api/admin/v1/users/{id}/deactivate"),
        "{page}"
    );
}

#[tokio::test]
async fn users_come_in_pages_with_links_and_filters() {
    let h = Harness::new().await;
    let token = h.admin_token().await;
    let mut ids = Vec::new();
    for name in ["ann", "bob", "cat", "dan", "eve"] {
        ids.push(h.add_user(name).await.id);
        // Lists go by ID, and IDs of one millisecond are in no particular order.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }

    let (status, first) = h.get("/api/admin/v1/users?page[first]=2", &token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["meta"]["count"], 5);
    let names: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["attributes"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ann", "bob"]);
    let ann = &first["data"][0];
    assert_eq!(ann["type"], "user");
    assert_eq!(ann["id"], ids[0].to_string());
    assert_eq!(
        ann["links"]["self"],
        format!("/api/admin/v1/users/{}", ids[0])
    );
    assert_eq!(ann["meta"]["page"]["cursor"], ids[0].to_string());
    assert_eq!(ann["attributes"]["admin"], false);
    assert_eq!(ann["attributes"]["locked_at"], Value::Null);
    assert!(first["links"].get("prev").is_none());

    // Following `next` twice walks to the end.
    let next = first["links"]["next"].as_str().unwrap();
    let (_, second) = h.get(next, &token).await;
    assert_eq!(second["data"][0]["attributes"]["username"], "cat");
    assert!(second["links"]["prev"].is_string());
    let (_, third) = h
        .get(second["links"]["next"].as_str().unwrap(), &token)
        .await;
    assert_eq!(third["data"].as_array().unwrap().len(), 1);
    assert!(third["links"].get("next").is_none());

    // Both ends: the last two of the first four, as cursor connections read it.
    let (_, middle) = h
        .get("/api/admin/v1/users?page[first]=4&page[last]=2", &token)
        .await;
    let names: Vec<&str> = middle["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["attributes"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cat", "dan"]);
    assert!(middle["links"]["prev"].is_string() && middle["links"]["next"].is_string());

    let (_, last) = h.get("/api/admin/v1/users?page[last]=2", &token).await;
    assert_eq!(last["data"][1]["attributes"]["username"], "eve");
    assert_eq!(last["data"][0]["attributes"]["username"], "dan");

    // Filters combine, are kept in the links, and count what they match.
    let (status, _) = h
        .post(
            &format!("/api/admin/v1/users/{}/lock", ids[1]),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, locked) = h
        .get(
            "/api/admin/v1/users?filter[status]=locked&page[first]=1",
            &token,
        )
        .await;
    assert_eq!(locked["meta"]["count"], 1);
    assert_eq!(locked["data"][0]["attributes"]["username"], "bob");
    assert!(
        locked["links"]["first"]
            .as_str()
            .unwrap()
            .contains("filter%5Bstatus%5D=locked")
    );
    let (_, active) = h
        .get("/api/admin/v1/users?filter[status]=active", &token)
        .await;
    assert_eq!(active["meta"]["count"], 4);
    // Deactivated users are locked out too, and counted so (as MAS does).
    h.call(
        Method::POST,
        &format!("/api/admin/v1/users/{}/deactivate", ids[2]),
        Some(&token),
        None,
    )
    .await;
    let (_, locked) = h
        .get("/api/admin/v1/users?filter[status]=locked", &token)
        .await;
    assert_eq!(locked["meta"]["count"], 2, "{locked}");
    let (_, deactivated) = h
        .get("/api/admin/v1/users?filter[status]=deactivated", &token)
        .await;
    assert_eq!(deactivated["meta"]["count"], 1);
    let (_, found) = h.get("/api/admin/v1/users?filter[search]=a", &token).await;
    let found: Vec<&str> = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["attributes"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["ann", "cat", "dan"]);
    // LIKE's wildcards match only themselves.
    let (_, wild) = h
        .get("/api/admin/v1/users?filter[search]=%25", &token)
        .await;
    assert_eq!(wild["meta"]["count"], 0);
    // No username holds a NUL character; asking is no error (nor a database one).
    let (status, nul) = h
        .get("/api/admin/v1/users?filter[search]=a%00", &token)
        .await;
    assert_eq!(
        (status, &nul["meta"]["count"]),
        (StatusCode::OK, &json!(0)),
        "{nul}"
    );
    let (_, guests) = h
        .get("/api/admin/v1/users?filter[legacy-guest]=true", &token)
        .await;
    assert_eq!(guests["meta"]["count"], 0);

    let (_, only) = h.get("/api/admin/v1/users?count=only", &token).await;
    assert_eq!(only["meta"]["count"], 5);
    assert!(only.get("data").is_none());
    let (_, uncounted) = h
        .get("/api/admin/v1/users?count=false&page[first]=2", &token)
        .await;
    assert!(uncounted.get("meta").is_none());
    assert_eq!(uncounted["data"].as_array().unwrap().len(), 2);
    // Following a link asks the same question: still no count.
    let next = uncounted["links"]["next"].as_str().unwrap();
    assert!(next.ends_with("&count=false"), "{next}");
    let (_, still) = h.get(next, &token).await;
    assert!(still.get("meta").is_none(), "{still}");
    // Shortcuts for filters that match nothing keep the asked shape too.
    let (_, none) = h
        .get(
            "/api/admin/v1/users?filter[legacy-guest]=true&count=only",
            &token,
        )
        .await;
    assert_eq!(none, json!({"meta": {"count": 0}, "links": none["links"]}));

    let (status, one) = h.get("/api/admin/v1/users/by-username/eve", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["data"]["id"], ids[4].to_string());
    assert_eq!(
        one["links"]["self"],
        format!("/api/admin/v1/users/{}", ids[4])
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_changes_nothing() {
    let h = Harness::new().await;
    let token = h.admin_token().await;
    let alice = h.add_user("alice").await;
    let long = "A".repeat(300);
    for (path, why) in [
        ("/api/admin/v1/users?page[after]=nope", "not a valid ID"),
        (
            "/api/admin/v1/users?page[before]=01ARZ3NDEKTSV4RRFFQ69G5FA",
            "not a valid ID",
        ),
        ("/api/admin/v1/users?filter[nope]=1", "unknown field"),
        ("/api/admin/v1/users?sort=username", "unknown parameter"),
        ("/api/admin/v1/users?page[first]=0", "1 to 1000"),
        ("/api/admin/v1/users?page[first]=1001", "1 to 1000"),
        ("/api/admin/v1/users?page[first]=-1", "invalid"),
        (
            "/api/admin/v1/users?page[first]=2&page[last]=0",
            "1 to 1000",
        ),
        (
            "/api/admin/v1/users?filter[status]=sleeping",
            "unknown variant",
        ),
        ("/api/admin/v1/users?filter[admin]=maybe", "invalid"),
        ("/api/admin/v1/users?count=sometimes", "unknown variant"),
        ("/api/admin/v1/users/not-an-id", "not a valid ID"),
        (
            "/api/admin/v1/users/01arz3ndektsv4rrffq69g5fav",
            "not a valid ID",
        ),
        ("/api/admin/v1/user-emails?filter[user]=x", "not a valid ID"),
        (
            "/api/admin/v1/oauth2-sessions?filter[client]=x",
            "not a valid ID",
        ),
    ] {
        let (status, body) = h.get(path, &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(title(&body).contains(why), "{path}: {body}");
    }
    let (status, body) = h.get(&format!("/api/admin/v1/users/{long}"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        title(&body).len() < 200,
        "the title echoes a bounded part: {body}"
    );

    let unknown = Ulid::new();
    let (status, body) = h
        .get(&format!("/api/admin/v1/users/{unknown}"), &token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(title(&body), format!("user {unknown} not found"));
    let (status, body) = h.get("/api/admin/v1/users/by-username/%FF", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!title(&body).is_empty(), "{body}");
    let (status, _) = h.get("/api/admin/v1/nothing-here", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = h
        .call(Method::DELETE, "/api/admin/v1/users", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(!title(&body).is_empty());

    for (path, body) in [
        ("/api/admin/v1/users", "{"),
        ("/api/admin/v1/users", r#"{"username": 7}"#),
        ("/api/admin/v1/users", r#"{"username": "Not Valid"}"#),
        (
            "/api/admin/v1/users",
            r#"{"username": "x", "avatar_url": "https://a/b"}"#,
        ),
        (
            &format!("/api/admin/v1/users/{}/set-password", alice.id),
            r#"{"password": ""}"#,
        ),
        (
            "/api/admin/v1/user-emails",
            r#"{"user_id": "x", "email": "a@example.com"}"#,
        ),
        (
            "/api/admin/v1/user-emails",
            &format!(r#"{{"user_id": "{}", "email": "no-at-sign"}}"#, alice.id),
        ),
        (
            &format!("/api/admin/v1/users/{}/set-admin", alice.id),
            r#"{"admin": "yes"}"#,
        ),
        (
            &format!("/api/admin/v1/users/{}/deactivate", alice.id),
            "[1]",
        ),
        // serde would read a struct from an array of its fields; the API does not.
        ("/api/admin/v1/users", r#"["bob", false, null, null]"#),
        (
            "/api/admin/v1/user-registration-tokens",
            "[null, null, null]",
        ),
    ] {
        let (status, answer) = h.call(Method::POST, path, Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert!(!title(&answer).is_empty());
    }
    let (status, body) = h
        .post("/api/admin/v1/users", &token, &json!({"username": "alice"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = h
        .post(
            &format!("/api/admin/v1/users/{unknown}/lock"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nothing of the above changed anything.
    assert_eq!(h.user_count().await, 1);
    let (_, alice_now) = h
        .get(&format!("/api/admin/v1/users/{}", alice.id), &token)
        .await;
    assert_eq!(alice_now["data"]["attributes"]["admin"], false);
    assert_eq!(
        alice_now["data"]["attributes"]["deactivated_at"],
        Value::Null
    );
    assert!(h.jobs("provision-user").await.is_empty());
}

#[tokio::test]
async fn a_user_is_created_and_managed_through_its_whole_life() {
    let h = Harness::new().await;
    let token = h.admin_token().await;
    let (status, created) = h
        .post(
            "/api/admin/v1/users",
            &token,
            &json!({"username": "zoe", "displayname": "Zoe Z", "avatar_url": "mxc://example.com/zoe_1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["data"]["attributes"]["username"], "zoe");
    let provision = h.jobs("provision-user").await;
    assert_eq!(
        provision,
        [json!({"user_id": id, "display_name": "Zoe Z", "avatar_url": "mxc://example.com/zoe_1"})]
    );

    let user_path = format!("/api/admin/v1/users/{id}");
    // Under passwords.minimum_complexity 3, a weak password is refused unless the
    // check is skipped.
    let mut strict = h.state.clone();
    strict.passwords = Arc::new(crate::PasswordChecker::new(
        mas_oauth_core::passwords::PasswordManager::new(
            vec![mas_oauth_core::passwords::Scheme {
                version: 1,
                algorithm: mas_oauth_core::passwords::Algorithm::Argon2id,
                secret: None,
                unicode_normalization: false,
            }],
            3,
        ),
    ));
    let strict = Harness {
        state: strict,
        _dir: tempfile::tempdir().unwrap(),
        admin_client: h.admin_client,
        other_client: h.other_client,
    };
    let weak = json!({"password": "zoe12345"});
    let (status, body) = strict
        .post(&format!("{user_path}/set-password"), &token, &weak)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(title(&body).contains("too weak"));
    let skipped = json!({"password": "zoe12345", "skip_password_check": true});
    let (status, _) = strict
        .post(&format!("{user_path}/set-password"), &token, &skipped)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h
        .post(
            &format!("{user_path}/set-password"),
            &token,
            &json!({"password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut repo = h.repo().await;
    let user = repo
        .user()
        .lookup(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let password = repo.user_password().active(&user).await.unwrap().unwrap();
    drop(repo);
    assert!(password.hashed_password.starts_with("$argon2id$"));

    // Sessions end with a lock; the homeserver hears of it.
    let mut repo = h.repo().await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let compat = repo
        .compat_session()
        .add(
            &mut rng,
            &SystemClock,
            &user,
            Some("ZOEDEVICE".into()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    let personal = repo
        .personal_session()
        .add(
            &mut rng,
            &SystemClock,
            mas_data_model::PersonalSessionOwner::User(user.id),
            &user,
            "bot",
            "urn:matrix:client:api:*",
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    let (status, locked) = h
        .post(&format!("{user_path}/lock"), &token, &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{locked}");
    assert!(locked["data"]["attributes"]["locked_at"].is_string());
    let (_, session) = h
        .get(
            &format!("/api/admin/v1/compat-sessions/{}", compat.id),
            &token,
        )
        .await;
    assert!(
        session["data"]["attributes"]["finished_at"].is_string(),
        "{session}"
    );
    // Personal tokens end too: unlocking must revive nothing.
    let personal = h
        .repo()
        .await
        .personal_session()
        .lookup(personal.id)
        .await
        .unwrap()
        .unwrap();
    assert!(personal.revoked_at.is_some());
    assert_eq!(h.jobs("sync-devices").await.len(), 1);
    assert_eq!(h.jobs("provision-user").await.len(), 1);

    let (_, unlocked) = h
        .post(&format!("{user_path}/unlock"), &token, &json!({}))
        .await;
    assert_eq!(unlocked["data"]["attributes"]["locked_at"], Value::Null);

    let (status, admin) = h
        .post(
            &format!("{user_path}/set-admin"),
            &token,
            &json!({"admin": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(admin["data"]["attributes"]["admin"], true);
    // Removing the right ends what holds an admin scope, a compatibility session made
    // with the homeserver's admin rights included; other sessions stay.
    let mut repo = h.repo().await;
    let mut admin_device = None;
    for (device, synapse_admin) in [("ADMINDEV", true), ("PLAINDEV", false)] {
        let session = repo
            .compat_session()
            .add(
                &mut rng,
                &SystemClock,
                &user,
                Some(device.into()),
                None,
                synapse_admin,
                None,
            )
            .await
            .unwrap();
        admin_device.get_or_insert(session.id);
    }
    repo.save().await.unwrap();
    let (status, _) = h
        .post(
            &format!("{user_path}/set-admin"),
            &token,
            &json!({"admin": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, open) = h
        .get(
            &format!("/api/admin/v1/compat-sessions?filter[user]={id}&filter[status]=active"),
            &token,
        )
        .await;
    assert_eq!(open["meta"]["count"], 1, "{open}");
    assert_ne!(open["data"][0]["id"], admin_device.unwrap().to_string());
    assert_eq!(h.jobs("sync-devices").await.len(), 1);

    // Deactivation takes no body; the homeserver erases by default.
    let (status, gone) = h
        .call(
            Method::POST,
            &format!("{user_path}/deactivate"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert!(gone["data"]["attributes"]["deactivated_at"].is_string());
    assert_eq!(
        h.jobs("deactivate-user").await,
        [json!({"user_id": id, "erase": true})]
    );
    let (_, back) = h
        .post(&format!("{user_path}/reactivate"), &token, &json!({}))
        .await;
    assert_eq!(back["data"]["attributes"]["deactivated_at"], Value::Null);
    assert_eq!(h.jobs("reactivate-user").await.len(), 1);
}

#[tokio::test]
async fn email_addresses_and_sessions_are_managed() {
    let h = Harness::new().await;
    let token = h.admin_token().await;
    let ann = h.add_user("ann").await;
    let (status, added) = h
        .post(
            "/api/admin/v1/user-emails",
            &token,
            &json!({"user_id": ann.id, "email": "Ann@Example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["data"]["type"], "user-email");
    assert_eq!(added["data"]["attributes"]["user_id"], ann.id.to_string());
    let (status, _) = h
        .post(
            "/api/admin/v1/user-emails",
            &token,
            &json!({"user_id": ann.id, "email": "ann@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, listed) = h
        .get(
            &format!("/api/admin/v1/user-emails?filter[user]={}", ann.id),
            &token,
        )
        .await;
    assert_eq!(listed["meta"]["count"], 1);
    let (_, by_address) = h
        .get(
            "/api/admin/v1/user-emails?filter[email]=ANN%40example.com",
            &token,
        )
        .await;
    assert_eq!(by_address["meta"]["count"], 1);
    let email_path = format!(
        "/api/admin/v1/user-emails/{}",
        added["data"]["id"].as_str().unwrap()
    );
    let (status, _) = h
        .call(Method::DELETE, &email_path, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h.get(&email_path, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(h.jobs("provision-user").await.len(), 2);

    // Each kind of session is listed by user and status, and finished once.
    let mut repo = h.repo().await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let browser = repo
        .browser_session()
        .add(&mut rng, &SystemClock, &ann, Some("Firefox".into()))
        .await
        .unwrap();
    let compat = repo
        .compat_session()
        .add(
            &mut rng,
            &SystemClock,
            &ann,
            Some("ANNDEVICE".into()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    let oauth = repo
        .session()
        .add(
            &mut rng,
            &SystemClock,
            h.other_client,
            Some(ann.id),
            Some(browser.id),
            "urn:matrix:client:api:* urn:matrix:client:device:OAUTHDEV",
            None,
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    for (kind, id, device) in [
        ("user-sessions", browser.id, None),
        ("compat-sessions", compat.id, Some("ANNDEVICE")),
        ("oauth2-sessions", oauth.id, Some("OAUTHDEV")),
    ] {
        let (status, listed) = h
            .get(
                &format!(
                    "/api/admin/v1/{kind}?filter[user]={}&filter[status]=active",
                    ann.id
                ),
                &token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{kind}: {listed}");
        assert_eq!(listed["meta"]["count"], 1, "{kind}: {listed}");
        assert_eq!(listed["data"][0]["id"], id.to_string());
        let path = format!("/api/admin/v1/{kind}/{id}/finish");
        let (status, finished) = h.post(&path, &token, &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {finished}");
        assert!(finished["data"]["attributes"]["finished_at"].is_string());
        let (status, again) = h.post(&path, &token, &json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{kind}: {again}");
        let (_, open) = h
            .get(
                &format!("/api/admin/v1/{kind}?filter[status]=active"),
                &token,
            )
            .await;
        // The admin client's own session is the one still open among OAuth sessions.
        let still_open = u64::from(kind == "oauth2-sessions");
        assert_eq!(open["meta"]["count"], still_open, "{kind}: {open}");
        let deleted = h.jobs("delete-device").await;
        match device {
            Some(device) => assert_eq!(
                deleted,
                [json!({"user_id": ann.id, "device_id": device})],
                "{kind}"
            ),
            None => assert!(deleted.is_empty(), "{kind}"),
        }
    }
    let (_, oauth_now) = h
        .get(
            &format!("/api/admin/v1/oauth2-sessions/{}", oauth.id),
            &token,
        )
        .await;
    assert_eq!(
        oauth_now["data"]["attributes"]["client_id"],
        h.other_client.to_string()
    );
    assert_eq!(
        oauth_now["data"]["attributes"]["user_session_id"],
        browser.id.to_string()
    );

    let (status, site) = h.get("/api/admin/v1/site-config", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(site["server_name"], "example.com");
    assert_eq!(site["password_login_enabled"], true);
    // Registration is closed here, recovery off (MAS's defaults).
    assert_eq!(site["password_registration_email_required"], false);
    assert_eq!(site["account_recovery_allowed"], false);
}

#[tokio::test]
async fn personal_sessions_are_issued_listed_regenerated_and_revoked() {
    let h = Harness::new().await;
    let token = h.admin_token().await;
    let ann = h.add_user("ann").await;
    let bob = h.add_user("bob").await;
    let mut repo = h.repo().await;
    let ann = repo.user().set_can_request_admin(ann, true).await.unwrap();
    repo.save().await.unwrap();
    let create = |actor: Ulid, scope: &str| json!({"actor_user_id": actor, "human_name": "deploy bot", "scope": scope, "expires_in": 3600});

    let (status, created) = h
        .post(
            "/api/admin/v1/personal-sessions",
            &token,
            &create(ann.id, "urn:mas:admin urn:matrix:client:api:*"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let attributes = &created["data"]["attributes"];
    assert_eq!(attributes["owner_client_id"], h.admin_client.to_string());
    assert_eq!(attributes["owner_user_id"], Value::Null);
    assert_eq!(attributes["actor_user_id"], ann.id.to_string());
    assert!(attributes["expires_at"].is_string());
    let first = attributes["access_token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("mpt_"));
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    // The token works, and is never shown again.
    let (status, _) = h.get("/api/admin/v1/version", &first).await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = h
        .get(&format!("/api/admin/v1/personal-sessions/{id}"), &token)
        .await;
    assert!(
        again["data"]["attributes"].get("access_token").is_none(),
        "{again}"
    );
    assert_eq!(
        again["data"]["attributes"]["scope"],
        "urn:mas:admin urn:matrix:client:api:*"
    );

    // What cannot be issued.
    let carl = h.add_user("carl").await;
    let mut repo = h.repo().await;
    repo.user()
        .lock(&mas_storage::SystemClock, carl.clone())
        .await
        .unwrap();
    repo.save().await.unwrap();
    for (body, expected) in [
        (create(bob.id, "urn:mas:admin"), StatusCode::FORBIDDEN),
        (create(carl.id, "openid"), StatusCode::CONFLICT),
        (create(bob.id, "made:up"), StatusCode::BAD_REQUEST),
        (
            create(bob.id, "urn:matrix:client:device:ABC"),
            StatusCode::BAD_REQUEST,
        ),
        (create(bob.id, ""), StatusCode::BAD_REQUEST),
        (create(Ulid::new(), "openid"), StatusCode::NOT_FOUND),
        (
            json!({"actor_user_id": bob.id, "human_name": " ", "scope": "openid"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"actor_user_id": bob.id, "human_name": "x", "scope": "openid", "expires_in": 0}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, answer) = h
            .post("/api/admin/v1/personal-sessions", &token, &body)
            .await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    // The personal token of ann, acting for herself, owns what it makes.
    let (status, own) = h
        .post(
            "/api/admin/v1/personal-sessions",
            &first,
            &create(bob.id, "urn:matrix:client:api:*"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    assert_eq!(
        own["data"]["attributes"]["owner_user_id"],
        ann.id.to_string()
    );

    let (_, of_bob) = h
        .get(
            &format!(
                "/api/admin/v1/personal-sessions?filter[actor_user]={}",
                bob.id
            ),
            &token,
        )
        .await;
    assert_eq!(of_bob["meta"]["count"], 1, "{of_bob}");
    let (_, by_client) = h
        .get(
            &format!(
                "/api/admin/v1/personal-sessions?filter[owner_client]={}",
                h.admin_client
            ),
            &token,
        )
        .await;
    assert_eq!(by_client["meta"]["count"], 1);
    assert!(by_client["data"][0]["attributes"]["expires_at"].is_string());

    // Regenerating replaces the token: the old one stops, the new one works.
    let (status, regenerated) = h
        .call(
            Method::POST,
            &format!("/api/admin/v1/personal-sessions/{id}/regenerate"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{regenerated}");
    let second = regenerated["data"]["attributes"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    assert_eq!(regenerated["data"]["attributes"]["expires_at"], Value::Null);
    assert_eq!(
        h.get("/api/admin/v1/version", &first).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/api/admin/v1/version", &second).await.0,
        StatusCode::OK
    );

    // Revoking ends it, once.
    let revoke = format!("/api/admin/v1/personal-sessions/{id}/revoke");
    let (status, revoked) = h.post(&revoke, &token, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["data"]["attributes"]["revoked_at"].is_string());
    assert_eq!(
        h.post(&revoke, &token, &json!({})).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        h.get("/api/admin/v1/version", &second).await.0,
        StatusCode::UNAUTHORIZED
    );
    let regenerate = format!("/api/admin/v1/personal-sessions/{id}/regenerate");
    assert_eq!(
        h.post(&regenerate, &token, &json!({})).await.0,
        StatusCode::CONFLICT
    );
    let (_, revoked_list) = h
        .get(
            "/api/admin/v1/personal-sessions?filter[status]=revoked",
            &token,
        )
        .await;
    assert_eq!(revoked_list["meta"]["count"], 1);
}

#[tokio::test]
async fn upstream_links_and_providers_are_managed() {
    let h = Harness::new().await;
    let token = h.admin_token().await;
    let ann = h.add_user("ann").await;
    let bob = h.add_user("bob").await;
    let mut repo = h.repo().await;
    let mut providers = Vec::new();
    for (name, brand) in [("Company SSO", "keycloak"), ("Old SSO", "gitlab")] {
        let provider = repo
            .upstream_provider()
            .upsert(
                &SystemClock,
                Ulid::new(),
                mas_storage::repository::ProviderParams {
                    ui_order: 0,
                    issuer: Some("https://sso.example.com/".to_owned()),
                    human_name: Some(name.to_owned()),
                    client_id: "mas".to_owned(),
                    encrypted_client_secret: None,
                    config: json!({"brand_name": brand}),
                },
            )
            .await
            .unwrap();
        providers.push(provider);
    }
    let old = repo
        .upstream_provider()
        .disable(&SystemClock, providers.pop().unwrap())
        .await
        .unwrap();
    repo.save().await.unwrap();
    let sso = &providers[0];

    let (_, enabled) = h
        .get(
            "/api/admin/v1/upstream-oauth-providers?filter[enabled]=true",
            &token,
        )
        .await;
    assert_eq!(enabled["meta"]["count"], 1, "{enabled}");
    let attributes = &enabled["data"][0]["attributes"];
    assert_eq!(attributes["human_name"], "Company SSO");
    assert_eq!(attributes["brand_name"], "keycloak");
    assert_eq!(attributes["disabled_at"], Value::Null);
    let (_, disabled) = h
        .get(
            &format!("/api/admin/v1/upstream-oauth-providers/{}", old.id),
            &token,
        )
        .await;
    assert!(disabled["data"]["attributes"]["disabled_at"].is_string());

    let link = |user: Ulid, subject: &str| json!({"user_id": user, "provider_id": sso.id, "subject": subject, "human_account_name": "ann@sso"});
    let (status, created) = h
        .post(
            "/api/admin/v1/upstream-oauth-links",
            &token,
            &link(ann.id, "sub-ann"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"]["attributes"]["user_id"], ann.id.to_string());
    assert_eq!(created["data"]["attributes"]["subject"], "sub-ann");
    // The account is ann's: bob cannot have it, nor can ann have it twice.
    for user in [bob.id, ann.id] {
        let (status, _) = h
            .post(
                "/api/admin/v1/upstream-oauth-links",
                &token,
                &link(user, "sub-ann"),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
    for (body, expected) in [
        (link(Ulid::new(), "x"), StatusCode::NOT_FOUND),
        (
            json!({"user_id": ann.id, "provider_id": Ulid::new(), "subject": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (link(ann.id, ""), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = h
            .post("/api/admin/v1/upstream-oauth-links", &token, &body)
            .await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    // A recorded account linked to no one is linked: 200.
    let mut repo = h.repo().await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    repo.upstream_link()
        .add(&mut rng, &SystemClock, sso, "sub-bob", None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let (status, linked) = h
        .post(
            "/api/admin/v1/upstream-oauth-links",
            &token,
            &link(bob.id, "sub-bob"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(linked["data"]["attributes"]["user_id"], bob.id.to_string());

    let (_, by_subject) = h
        .get(
            "/api/admin/v1/upstream-oauth-links?filter[subject]=sub-bob",
            &token,
        )
        .await;
    assert_eq!(by_subject["meta"]["count"], 1);
    let (_, of_provider) = h
        .get(
            &format!(
                "/api/admin/v1/upstream-oauth-links?filter[provider]={}",
                sso.id
            ),
            &token,
        )
        .await;
    assert_eq!(of_provider["meta"]["count"], 2);

    let path = format!(
        "/api/admin/v1/upstream-oauth-links/{}",
        created["data"]["id"].as_str().unwrap()
    );
    let (status, _) = h.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(h.get(&path, &token).await.0, StatusCode::NOT_FOUND);
    // Once the link is gone, the account can go to bob.
    let (status, _) = h
        .post(
            "/api/admin/v1/upstream-oauth-links",
            &token,
            &link(bob.id, "sub-ann"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn registration_tokens_are_managed() {
    let h = Harness::new().await;
    let token = h.admin_token().await;
    let base = "/api/admin/v1/user-registration-tokens";
    let (status, random) = h.call(Method::POST, base, Some(&token), None).await;
    assert_eq!(status, StatusCode::CREATED, "{random}");
    let attributes = &random["data"]["attributes"];
    assert_eq!(attributes["token"].as_str().unwrap().len(), 20);
    assert_eq!(attributes["valid"], true);
    assert_eq!(attributes["times_used"], 0);
    assert_eq!(random["data"]["type"], "user-registration_token");

    let (status, chosen) = h
        .post(
            base,
            &token,
            // `3.0` is an integer to JSON Schema, so it is one here too.
            &json!({"token": "SPRING-2027", "usage_limit": 3.0}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{chosen}");
    assert_eq!(chosen["data"]["attributes"]["usage_limit"], 3);
    for (body, expected) in [
        (json!({"token": "SPRING-2027"}), StatusCode::CONFLICT),
        (json!({"token": "has space"}), StatusCode::BAD_REQUEST),
        (json!({"usage_limit": 0}), StatusCode::BAD_REQUEST),
        (json!({"expires_at": "tomorrow"}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = h.post(base, &token, &body).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }

    // PUT: a field left out is kept, null clears it.
    let path = format!("{base}/{}", chosen["data"]["id"].as_str().unwrap());
    // RFC 3339 allows a lower-case `t` and `z`.
    let past = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dt%H:%M:%Sz")
        .to_string();
    let (status, expired) = h
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(&json!({"expires_at": past}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{expired}");
    assert_eq!(expired["data"]["attributes"]["usage_limit"], 3);
    assert_eq!(expired["data"]["attributes"]["valid"], false);
    let (_, count) = h.get(&format!("{base}?filter[expired]=true"), &token).await;
    assert_eq!(count["meta"]["count"], 1);
    let (_, count) = h.get(&format!("{base}?filter[valid]=true"), &token).await;
    assert_eq!(count["meta"]["count"], 1);
    let (_, cleared) = h
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(r#"{"expires_at": null, "usage_limit": null}"#),
        )
        .await;
    assert_eq!(cleared["data"]["attributes"]["expires_at"], Value::Null);
    assert_eq!(cleared["data"]["attributes"]["usage_limit"], Value::Null);
    assert_eq!(cleared["data"]["attributes"]["valid"], true);

    let (status, revoked) = h.post(&format!("{path}/revoke"), &token, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["data"]["attributes"]["revoked_at"].is_string());
    assert_eq!(revoked["data"]["attributes"]["valid"], false);
    assert_eq!(
        h.post(&format!("{path}/revoke"), &token, &json!({}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (_, count) = h.get(&format!("{base}?filter[revoked]=true"), &token).await;
    assert_eq!(count["meta"]["count"], 1);
    let (status, back) = h
        .post(&format!("{path}/unrevoke"), &token, &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(back["data"]["attributes"]["valid"], true);
    assert_eq!(
        h.post(&format!("{path}/unrevoke"), &token, &json!({}))
            .await
            .0,
        StatusCode::CONFLICT
    );
}
