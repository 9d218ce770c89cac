//! The token, introspection and revocation endpoints, driven through the real router on
//! a real (SQLite) database.

#![allow(clippy::too_many_lines)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use mas_data_model::ClientAuthMethod;
use mas_storage::SystemClock;
use serde_json::{Value, json};
use tower::ServiceExt;
use ulid::Ulid;

use crate::test_state::{Up, state};
use crate::{AppState, Resource, router};

const SECRET: &str = "s3cret-client-secret";

struct Harness {
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let (state, dir) = state(Arc::new(Up)).await;
        Self { state, _dir: dir }
    }

    async fn client(&self, method: ClientAuthMethod, jwks: Option<Value>) -> Ulid {
        self.client_with(method, jwks, None).await
    }

    async fn client_with(
        &self,
        method: ClientAuthMethod,
        jwks: Option<Value>,
        jwks_uri: Option<url::Url>,
    ) -> Ulid {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = self.state.repos.begin().await.unwrap();
        let sealed = method_uses_secret(method)
            .then(|| self.state.encrypter.encrypt(&mut rng, SECRET.as_bytes()));
        let mut params =
            crate::test_state::client_params(method, Vec::new(), &["client_credentials"]);
        params.encrypted_secret = sealed;
        params.jwks = jwks;
        params.jwks_uri = jwks_uri;
        let client = repo
            .client()
            .add_dynamic(&mut rng, &SystemClock, params)
            .await
            .unwrap();
        repo.save().await.unwrap();
        client.id
    }

    async fn post(
        &self,
        path: &str,
        auth: Option<String>,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.send(
            Method::POST,
            path,
            auth,
            Some("application/x-www-form-urlencoded"),
            body.as_bytes().to_vec(),
        )
        .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<String>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let app = router(&[Resource::OAuth], None, self.state.clone());
        let mut request = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = app
            .oneshot(request.body(Body::from(body)).unwrap())
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
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn method_uses_secret(method: ClientAuthMethod) -> bool {
    matches!(
        method,
        ClientAuthMethod::ClientSecretBasic
            | ClientAuthMethod::ClientSecretPost
            | ClientAuthMethod::ClientSecretJwt
    )
}

fn basic(id: Ulid, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn hs256_assertion(client: Ulid, aud: &str, jti: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = json!({"iss": client.to_string(), "sub": client.to_string(), "aud": aud, "exp": now + 60, "iat": now, "jti": jti});
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    )
}

#[tokio::test]
async fn client_credentials_introspection_and_revocation() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let (status, headers, body) = h
        .post(
            "/oauth2/token",
            Some(basic(client, SECRET)),
            "grant_type=client_credentials&scope=urn:mas:graphql:*",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "urn:mas:graphql:*");
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mat_"));

    let (status, _, answer) = h
        .post(
            "/oauth2/introspect",
            Some(basic(client, SECRET)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], client.to_string());
    assert_eq!(answer["scope"], "urn:mas:graphql:*");
    assert_eq!(answer["token_type"], "access_token");
    assert!(answer["exp"].as_i64().unwrap() > chrono::Utc::now().timestamp());

    let (status, _, _) = h
        .post(
            "/oauth2/revoke",
            Some(basic(client, SECRET)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, answer) = h
        .post(
            "/oauth2/introspect",
            Some(basic(client, SECRET)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(answer, json!({"active": false}));

    // Garbage and tokens with a broken checksum are simply inactive.
    let damaged = format!("{}x{}", &token[..10], &token[11..]);
    for bogus in ["nonsense", damaged.as_str()] {
        let (status, _, answer) = h
            .post(
                "/oauth2/introspect",
                Some(basic(client, SECRET)),
                &format!("token={bogus}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, json!({"active": false}));
    }
}

#[tokio::test]
async fn every_client_authentication_method() {
    let h = Harness::new().await;
    let token_url = "https://auth.example.com/oauth2/token";

    let post_client = h.client(ClientAuthMethod::ClientSecretPost, None).await;
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            None,
            &format!(
                "grant_type=client_credentials&client_id={post_client}&client_secret={SECRET}"
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let jwt_client = h.client(ClientAuthMethod::ClientSecretJwt, None).await;
    let assertion = hs256_assertion(jwt_client, token_url, "jti-1");
    let form = format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let (status, _, body) = h.post("/oauth2/token", None, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = h.post("/oauth2/token", None, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "a replayed assertion"
    );
    let wrong_aud = hs256_assertion(jwt_client, "https://elsewhere.example.com/token", "jti-2");
    let (status, _, _) = h
        .post("/oauth2/token", None, &form.replace(&assertion, &wrong_aud))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an assertion for another audience"
    );

    // private_key_jwt: the client's keys are published inline; it signs with them.
    let client_keys = crate::test_state::oauth();
    let pk_client = h
        .client(
            ClientAuthMethod::PrivateKeyJwt,
            Some(client_keys.keys.jwks()),
        )
        .await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": pk_client.to_string(), "sub": pk_client.to_string(), "aud": token_url, "exp": now + 60, "jti": "pk-1"});
    let signed = client_keys
        .keys
        .sign(mas_oauth_core::SigningAlgorithm::Es256, &claims)
        .unwrap();
    let (status, _, body) = h
        .post("/oauth2/token", None, &form.replace(&assertion, &signed))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Signed by someone else's key: refused.
    let stranger = crate::test_state::oauth().keys.sign(mas_oauth_core::SigningAlgorithm::Rs256, &json!({"iss": pk_client.to_string(), "sub": pk_client.to_string(), "aud": token_url, "exp": now + 60, "jti": "pk-2"})).unwrap();
    let (status, headers, _) = h
        .post("/oauth2/token", None, &form.replace(&assertion, &stranger))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    // The assertion's lifetime: `exp` required, `nbf` honoured, 30 s of leeway either
    // way, and no assertion may live more than an hour.
    let lifetimes = [
        (
            json!({"exp": now - 120}),
            StatusCode::UNAUTHORIZED,
            "expired",
        ),
        (
            json!({"exp": now - 10}),
            StatusCode::OK,
            "expired within the leeway",
        ),
        (
            json!({"exp": now + 60, "nbf": now + 120}),
            StatusCode::UNAUTHORIZED,
            "not yet valid",
        ),
        (
            json!({"exp": now + 60, "nbf": now + 10}),
            StatusCode::OK,
            "nbf within the leeway",
        ),
        (
            json!({"exp": now + 7200}),
            StatusCode::UNAUTHORIZED,
            "lives two hours",
        ),
        (json!({}), StatusCode::UNAUTHORIZED, "no exp"),
    ];
    for (n, (times, expected, why)) in lifetimes.into_iter().enumerate() {
        let mut claims = json!({"iss": pk_client.to_string(), "sub": pk_client.to_string(), "aud": token_url, "jti": format!("life-{n}")});
        claims
            .as_object_mut()
            .unwrap()
            .extend(times.as_object().unwrap().clone());
        let signed = client_keys
            .keys
            .sign(mas_oauth_core::SigningAlgorithm::Es256, &claims)
            .unwrap();
        let (status, _, body) = h
            .post("/oauth2/token", None, &form.replace(&assertion, &signed))
            .await;
        assert_eq!(status, expected, "{why}: {body}");
    }

    // A request that fails after authenticating still spends the assertion's `jti`.
    let spent = client_keys
        .keys
        .sign(
            mas_oauth_core::SigningAlgorithm::Es256,
            &json!({"iss": pk_client.to_string(), "sub": pk_client.to_string(), "aud": token_url, "exp": now + 60, "jti": "spent-by-failure"}),
        )
        .unwrap();
    let failing = form.replace(&assertion, &spent).replace(
        "grant_type=client_credentials",
        "grant_type=authorization_code&code=nope",
    );
    let (status, _, body) = h.post("/oauth2/token", None, &failing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, body) = h
        .post("/oauth2/token", None, &form.replace(&assertion, &spent))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "the jti was spent by the failed request"
    );

    // Wrong secret, wrong method, unknown client: the same answer each time.
    let basic_client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    for (auth, body) in [
        (
            Some(basic(basic_client, "guess")),
            "grant_type=client_credentials".to_owned(),
        ),
        (
            None,
            format!(
                "grant_type=client_credentials&client_id={basic_client}&client_secret={SECRET}"
            ),
        ),
        (
            Some(basic(Ulid::new(), SECRET)),
            "grant_type=client_credentials".to_owned(),
        ),
    ] {
        let (status, _, answer) = h.post("/oauth2/token", auth, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer,
            json!({"error": "invalid_client", "error_description": "client authentication failed"})
        );
    }

    // A public client may not use client_credentials, nor introspect.
    let public = h.client(ClientAuthMethod::None, None).await;
    let (status, _, answer) = h
        .post(
            "/oauth2/token",
            None,
            &format!("grant_type=client_credentials&client_id={public}"),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    let (status, _, _) = h
        .post(
            "/oauth2/introspect",
            None,
            &format!("token=x&client_id={public}"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hostile_and_malformed_requests_get_json_errors() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));

    let (status, _, body) = h
        .send(
            Method::POST,
            "/oauth2/token",
            auth.clone(),
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("invalid_request"))
    );
    // A body of no declared type is not guessed at (an empty one is an empty form:
    // `an_empty_body_without_content_type_is_an_empty_form`).
    let (status, _, body) = h
        .send(
            Method::POST,
            "/oauth2/token",
            auth.clone(),
            None,
            b"grant_type=client_credentials".to_vec(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("invalid_request"))
    );

    let huge = format!(
        "grant_type=client_credentials&scope={}",
        "a".repeat(2 * 1024 * 1024)
    );
    let (status, _, body) = h.post("/oauth2/token", auth.clone(), &huge).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request"))
    );

    let cases = [
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "parameter `grant_type` is repeated",
        ),
        ("scope=x", "parameter `grant_type` is required"),
        (
            "grant_type=client_credentials&scope=a%00b",
            "contains a control character",
        ),
    ];
    for (form, message) in cases {
        let (status, _, body) = h.post("/oauth2/token", auth.clone(), form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form}");
        assert_eq!(body["error"], "invalid_request", "{form}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains(message),
            "{form}: {body}"
        );
    }
    let (status, _, body) = h
        .send(
            Method::POST,
            "/oauth2/token",
            auth.clone(),
            Some("application/x-www-form-urlencoded"),
            vec![0xff, 0xfe],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    let (status, _, body) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            "grant_type=password&username=a&password=b",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            "grant_type=client_credentials&scope=openid",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    for scope in [
        "urn:synapse:admin:*",
        "urn:mas:admin",
        "made:up",
        "urn:matrix:client:device:bad!id",
    ] {
        let (status, _, body) = h
            .post(
                "/oauth2/token",
                auth.clone(),
                &format!("grant_type=client_credentials&scope={scope}"),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_scope")),
            "{scope}"
        );
    }

    let (status, _, body) = h
        .send(Method::GET, "/oauth2/token", None, None, Vec::new())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("invalid_request"))
    );
}

/// RFC 6749 §5.2: a request with no body lacks required parameters, which is 400
/// `invalid_request` naming one, not 415; a body of no declared type or of another type
/// stays 415.
#[tokio::test]
async fn an_empty_body_without_content_type_is_an_empty_form() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));

    for (path, missing) in [
        ("/oauth2/token", Some("grant_type")),
        ("/oauth2/introspect", Some("token")),
        ("/oauth2/revoke", Some("token")),
        // Every parameter here is optional: what matters is that the answer is the
        // endpoint's own, as for an empty form.
        ("/oauth2/device", None),
    ] {
        let (status, _, body) = h
            .send(Method::POST, path, auth.clone(), None, Vec::new())
            .await;
        let (form_status, _, form_body) = h.post(path, auth.clone(), "").await;
        assert_ne!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}: {body}");
        assert_eq!(
            (status, &body["error"]),
            (form_status, &form_body["error"]),
            "{path}"
        );
        if let Some(missing) = missing {
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_request")),
                "{path}"
            );
            let description = body["error_description"].as_str().unwrap();
            assert!(description.contains(missing), "{path}: {description}");
        }

        for (content_type, payload) in [
            (None, b"token=x".to_vec()),
            (Some("application/json"), Vec::new()),
            (Some("text/plain"), b"token=x".to_vec()),
        ] {
            let (status, _, body) = h
                .send(Method::POST, path, auth.clone(), content_type, payload)
                .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("invalid_request")),
                "{path} {content_type:?}"
            );
        }
    }

    // Without credentials either, the client is what is missing first.
    let (status, _, body) = h
        .send(Method::POST, "/oauth2/token", None, None, Vec::new())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

/// A fulfilled grant (as after consent) for `client`, consented `minutes_ago`.
async fn consented_code(h: &Harness, client: Ulid, code: &str, minutes_ago: i64) {
    consented_code_with(
        h,
        client,
        code,
        minutes_ago,
        "urn:matrix:client:api:*",
        None,
    )
    .await;
}

/// As [`consented_code`], for a given scope.
async fn consented_code_with_scope(
    h: &Harness,
    client: Ulid,
    code: &str,
    minutes_ago: i64,
    scope: &str,
) {
    consented_code_with(h, client, code, minutes_ago, scope, None).await;
}

/// As [`consented_code`], for a given scope and PKCE challenge.
async fn consented_code_with(
    h: &Harness,
    client: Ulid,
    code: &str,
    minutes_ago: i64,
    scope: &str,
    pkce: Option<mas_data_model::Pkce>,
) {
    let clock =
        mas_storage::MockClock::new(chrono::Utc::now() - chrono::Duration::minutes(minutes_ago));
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = h.state.repos.begin().await.unwrap();
    let existing = repo.user().find_by_username("alice").await.unwrap();
    let user = match existing {
        Some(user) => user,
        None => repo.user().add(&mut rng, &clock, "alice").await.unwrap(),
    };
    let grant = repo
        .authorization_grant()
        .add(
            &mut rng,
            &clock,
            mas_storage::repository::NewAuthorizationGrant {
                client_id: client,
                redirect_uri: url::Url::parse("https://app.example.com/cb").unwrap(),
                scope: scope.to_owned(),
                state: None,
                nonce: None,
                response_mode: mas_data_model::ResponseMode::Query,
                response_type_id_token: false,
                pkce,
                max_age: None,
                login_hint: None,
                prompt: None,
            },
        )
        .await
        .unwrap();
    let session = repo
        .session()
        .add(
            &mut rng,
            &clock,
            client,
            Some(user.id),
            None,
            &grant.scope,
            None,
        )
        .await
        .unwrap();
    repo.authorization_grant()
        .fulfill(&clock, grant, &session, code)
        .await
        .unwrap();
    repo.save().await.unwrap();
}

#[tokio::test]
async fn codes_expire_and_refresh_retries_differ_from_theft() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));
    let exchange = |code: &str| {
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb"
        )
    };

    consented_code(&h, client, "stale-code", 11).await;
    let (status, _, body) = h
        .post("/oauth2/token", auth.clone(), &exchange("stale-code"))
        .await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (StatusCode::BAD_REQUEST, Some("the code has expired"))
    );

    consented_code(&h, client, "fresh-code", 1).await;
    let (status, _, first) = h
        .post("/oauth2/token", auth.clone(), &exchange("fresh-code"))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let introspect = |token: &str| format!("token={token}");

    // The client refreshes but never gets (or uses) the answer, then retries.
    let (status, _, lost) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            &format!("grant_type=refresh_token&refresh_token={r1}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{lost}");
    let (status, _, retry) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            &format!("grant_type=refresh_token&refresh_token={r1}"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a retry of the last refresh is answered: {retry}"
    );
    assert_ne!(
        retry["refresh_token"], lost["refresh_token"],
        "tokens are hashed at rest: a fresh pair, not the same one"
    );
    let (_, _, lost_access) = h
        .post(
            "/oauth2/introspect",
            auth.clone(),
            &introspect(lost["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(lost_access["active"], false, "the unused answer is revoked");
    let (_, _, used) = h
        .post(
            "/oauth2/introspect",
            auth.clone(),
            &introspect(retry["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(used["active"], true);

    // Now the retried answer is in use: presenting the first refresh token again is theft.
    let (status, _, stolen) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            &format!("grant_type=refresh_token&refresh_token={r1}"),
        )
        .await;
    assert_eq!(
        (status, stolen["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (_, _, after) = h
        .post(
            "/oauth2/introspect",
            auth.clone(),
            &introspect(retry["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(after["active"], false, "the whole session ended");
}

async fn register(h: &Harness, metadata: &Value) -> (StatusCode, Value) {
    let (status, _, body) = h
        .send(
            Method::POST,
            "/oauth2/registration",
            None,
            Some("application/json"),
            metadata.to_string().into_bytes(),
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn dynamic_registration_follows_the_matrix_rules() {
    let h = Harness::new().await;
    let native = json!({
        "client_name": "Element X",
        "client_uri": "https://element.example.com/",
        "application_type": "native",
        "redirect_uris": ["com.example.element:/callback", "http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name#fr": "Element X (fr)"
    });
    let (status, body) = register(&h, &native).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id: Ulid = body["client_id"].as_str().unwrap().parse().unwrap();
    assert!(
        body.get("client_secret").is_none(),
        "a public client gets no secret"
    );
    assert_eq!(
        body["client_name#fr"], "Element X (fr)",
        "unknown metadata is kept"
    );
    let mut repo = h.state.repos.reader().await.unwrap();
    let stored = repo.client().lookup(id).await.unwrap().unwrap();
    assert_eq!(stored.redirect_uris.len(), 2);
    assert_eq!(stored.auth_method, ClientAuthMethod::None);

    let web = json!({
        "client_uri": "https://app.example.com/",
        "redirect_uris": ["https://app.example.com/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "logo_uri": "https://cdn.app.example.com/logo.png"
    });
    let (status, body) = register(&h, &web).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["client_secret"].as_str().unwrap();
    let id: Ulid = body["client_id"].as_str().unwrap().parse().unwrap();
    // The returned secret works at the token endpoint; the stored one is encrypted.
    let mut repo = h.state.repos.reader().await.unwrap();
    let stored = repo.client().lookup(id).await.unwrap().unwrap();
    assert!(!stored.encrypted_secret.as_deref().unwrap().contains(secret));
    let (status, _, answer) = h
        .post("/oauth2/introspect", Some(basic(id, secret)), "token=x")
        .await;
    assert_eq!(
        (status, answer["active"].as_bool()),
        (StatusCode::OK, Some(false))
    );

    let refused = [
        (
            json!({"redirect_uris": ["https://app.example.com/cb"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "http://app.example.com/", "redirect_uris": ["https://app.example.com/cb"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://evil.example.net/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["http://app.example.com/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["com.evil.app:/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_uri": "https://app.example.com/"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "tos_uri": "https://elsewhere.example.net/tos"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "client_name": "bad\u{0000}name"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "logo_uri": "https://elsewhere.example.net/logo.png"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "policy_uri": "https://elsewhere.example.net/policy"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example.com/jwks.json"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "application_type": "desktop"}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (metadata, error) in refused {
        let (status, body) = register(&h, &metadata).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{metadata}: {body}"
        );
    }
    let (status, _, body) = h
        .send(
            Method::POST,
            "/oauth2/registration",
            None,
            Some("application/x-www-form-urlencoded"),
            b"a=b".to_vec(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("invalid_request"))
    );
    let (status, _, body) = h
        .send(
            Method::POST,
            "/oauth2/registration",
            None,
            Some("application/json"),
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata"))
    );
    // Past 1 MiB the body is not read at all.
    let mut huge = json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"]});
    huge["client_name"] = Value::String("x".repeat(1 << 20));
    let (status, body) = register(&h, &huge).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request")),
        "{body}"
    );
}

/// Signs `claims` with HS256 under `secret`, as a `client_secret_jwt` client does.
fn hs256_sign(claims: &Value, secret: &str) -> String {
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT"})),
        b64(claims)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    )
}

#[tokio::test]
async fn assertion_times_at_the_edges_of_time_are_refused_not_panicked_on() {
    let h = Harness::new().await;
    let (status, body) = register(
        &h,
        &json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "client_secret_jwt"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let token_url = "https://auth.example.com/oauth2/token";
    let now = chrono::Utc::now().timestamp();
    let (latest, earliest) = (
        chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp(),
        chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp(),
    );
    let mut serial = 0;
    let mut try_token = |claim: &str, value: &Value| {
        serial += 1;
        let mut claims = json!({"iss": client, "sub": client, "aud": token_url, "exp": now + 60, "iat": now, "jti": format!("edge-{serial}")});
        claims[claim] = value.clone();
        let assertion = hs256_sign(&claims, &secret);
        // The grant fails after authentication (no such refresh token), so a 401 can
        // only come from the assertion.
        format!(
            "grant_type=refresh_token&refresh_token=mar_nothing&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        )
    };

    // A sane assertion authenticates, and so does one whose `nbf` or `iat` is the
    // earliest representable time (once a subtraction that overflowed): the refusal is
    // about the grant.
    for (claim, value) in [
        ("exp", json!(now + 60)),
        ("nbf", json!(earliest)),
        ("iat", json!(earliest)),
    ] {
        let (status, _, body) = h
            .post("/oauth2/token", None, &try_token(claim, &value))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{claim} = {value}: {body}"
        );
    }

    let edges = [
        ("exp", json!(i64::MAX)),
        ("exp", json!(i64::MIN)),
        ("exp", json!(u64::MAX)),
        ("exp", json!(latest)),
        ("exp", json!(earliest)),
        ("exp", json!(1e300)),
        ("exp", json!(-1e300)),
        ("exp", json!(1.5e18)),
        ("exp", json!("soon")),
        ("exp", Value::Null),
        ("nbf", json!(i64::MAX)),
        ("nbf", json!(i64::MIN)),
        ("nbf", json!(latest)),
        ("nbf", json!(1e300)),
        ("nbf", json!(-1e300)),
        ("nbf", json!("later")),
        ("iat", json!(i64::MAX)),
        ("iat", json!(i64::MIN)),
        ("iat", json!(latest)),
        ("iat", json!(1e300)),
        ("iat", json!(-1e300)),
        ("iat", json!([])),
    ];
    for (claim, value) in edges {
        let (status, _, body) = h
            .post("/oauth2/token", None, &try_token(claim, &value))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{claim} = {value}: {body}"
        );
    }
}

/// Registration is anonymous: no field, list or document may be large enough to make a
/// registration store more than a few tens of KiB. Refusals name the field and store
/// nothing; metadata at the limits is accepted.
#[tokio::test]
async fn registration_metadata_is_bounded() {
    let h = Harness::new().await;
    let base = || json!({"client_uri": "https://app.example.com/", "redirect_uris": ["https://app.example.com/cb"]});
    let with = |key: &str, value: Value| {
        let mut metadata = base();
        metadata[key] = value;
        metadata
    };
    let long_uri = |bytes: usize| {
        let prefix = "https://app.example.com/";
        Value::String(format!("{prefix}{}", "a".repeat(bytes - prefix.len())))
    };
    let many_uris = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!(format!("https://app.example.com/cb{i}")))
                .collect(),
        )
    };
    let many_contacts = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!(format!("ops{i}@example.com")))
                .collect(),
        )
    };
    // Just under the 1 MiB body limit, so the metadata rules (not the reader) refuse it.
    let megabyte = || Value::String("x".repeat(1_000_000));
    let refused = [
        (
            with("client_name", megabyte()),
            "invalid_client_metadata",
            "client_name",
        ),
        (
            with("client_name", json!("é".repeat(256))),
            "invalid_client_metadata",
            "client_name",
        ),
        (
            with("client_name#fr", json!("n".repeat(256))),
            "invalid_client_metadata",
            "client_name#fr",
        ),
        (
            with("client_name#fr", json!(["not", "a", "string"])),
            "invalid_client_metadata",
            "client_name#fr",
        ),
        (
            with("redirect_uris", many_uris(1000)),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            with("redirect_uris", many_uris(21)),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            with("redirect_uris", json!([long_uri(2049)])),
            "invalid_redirect_uri",
            "redirect_uris[0]",
        ),
        (
            with("client_uri", long_uri(2049)),
            "invalid_client_metadata",
            "client_uri",
        ),
        (
            with("logo_uri", long_uri(2049)),
            "invalid_client_metadata",
            "logo_uri",
        ),
        (
            with("tos_uri#de", long_uri(2049)),
            "invalid_client_metadata",
            "tos_uri#de",
        ),
        (
            with("contacts", many_contacts(11)),
            "invalid_client_metadata",
            "contacts",
        ),
        (
            with("contacts", json!(["a".repeat(256)])),
            "invalid_client_metadata",
            "contacts[0]",
        ),
        (
            with("software_statement", megabyte()),
            "invalid_client_metadata",
            "metadata",
        ),
        (
            with(
                "jwks",
                json!({"keys": [{"kty": "oct", "k": "k".repeat(17_000)}]}),
            ),
            "invalid_client_metadata",
            "metadata",
        ),
        (
            with(
                "grant_types",
                Value::Array(vec![json!("authorization_code"); 1000]),
            ),
            "invalid_client_metadata",
            "metadata",
        ),
    ];
    for (metadata, error, field) in refused {
        let (status, body) = register(&h, &metadata).await;
        // Shortened: an accepted registration echoes the whole metadata.
        let shown = metadata.to_string().chars().take(120).collect::<String>();
        let answer = body.to_string().chars().take(200).collect::<String>();
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{shown}: {answer}"
        );
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(field), "{shown}: {description}");
    }
    let mut repo = h.state.repos.reader().await.unwrap();
    let stored = repo
        .client()
        .list(mas_storage::Pagination::first(10))
        .await
        .unwrap();
    assert!(
        stored.edges.is_empty(),
        "a refused registration stores nothing"
    );
    drop(repo);

    let mut at_limits = with("redirect_uris", many_uris(20));
    at_limits["client_name"] = json!("é".repeat(255));
    at_limits["client_name#fr"] = json!("n".repeat(255));
    at_limits["logo_uri"] = long_uri(2048);
    at_limits["contacts"] = many_contacts(10);
    let (status, body) = register(&h, &at_limits).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_resource_server_seeing_a_token_makes_its_refresh_token_spent() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));
    consented_code(&h, client, "seen-code", 1).await;
    let (status, _, first) = h
        .post("/oauth2/token", auth.clone(), "grant_type=authorization_code&code=seen-code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb")
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (_, _, second) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            &format!("grant_type=refresh_token&refresh_token={r1}"),
        )
        .await;
    let a2 = second["access_token"].as_str().unwrap().to_owned();
    // Only introspection touches the new access token: that alone marks it in use...
    let (_, _, seen) = h
        .post("/oauth2/introspect", auth.clone(), &format!("token={a2}"))
        .await;
    assert_eq!(seen["active"], true);
    // ...so presenting the old refresh token again is a theft, not a retry.
    let (status, _, reused) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            &format!("grant_type=refresh_token&refresh_token={r1}"),
        )
        .await;
    assert_eq!(
        (status, reused["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (_, _, after) = h
        .post("/oauth2/introspect", auth.clone(), &format!("token={a2}"))
        .await;
    assert_eq!(after["active"], false, "the session ended");
}

#[tokio::test]
async fn a_client_may_ask_for_es256_id_tokens() {
    let h = Harness::new().await;
    let metadata = json!({
        "client_uri": "https://app.example.com/",
        "redirect_uris": ["https://app.example.com/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "id_token_signed_response_alg": "ES256"
    });
    let (status, registered) = register(&h, &metadata).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let client: Ulid = registered["client_id"].as_str().unwrap().parse().unwrap();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();
    consented_code_with_scope(&h, client, "es-code", 1, "openid").await;
    let (status, _, tokens) = h
        .post(
            "/oauth2/token",
            Some(basic(client, &secret)),
            "grant_type=authorization_code&code=es-code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id_token =
        mas_oauth_core::jose::UnverifiedJws::parse(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id_token.alg(), "ES256");
    id_token
        .verify_with_jwks(&h.state.oauth.keys.jwks())
        .unwrap();

    let unsupported = json!({
        "client_uri": "https://app.example.com/",
        "redirect_uris": ["https://app.example.com/cb"],
        "id_token_signed_response_alg": "PS256"
    });
    let (status, body) = register(&h, &unsupported).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata"))
    );
}

#[tokio::test]
async fn homeserver_introspects_compatibility_tokens_with_its_secret() {
    let h = Harness::new().await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let token =
        mas_oauth_core::tokens::generate(&mut rng, mas_data_model::TokenType::CompatAccessToken);
    let mut repo = h.state.repos.begin().await.unwrap();
    let user = repo
        .user()
        .add(&mut rng, &SystemClock, "alice")
        .await
        .unwrap();
    let session = repo
        .compat_session()
        .add(
            &mut rng,
            &SystemClock,
            &user,
            Some("ABCDEFGH".to_owned()),
            None,
            true,
            None,
        )
        .await
        .unwrap();
    repo.compat_access_token()
        .add(&mut rng, &SystemClock, &session, &token, None)
        .await
        .unwrap();
    repo.save().await.unwrap();

    let ask = |auth: &str, device_header: bool| {
        let app = router(&[Resource::OAuth], None, h.state.clone());
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/oauth2/introspect")
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded");
        if device_header {
            request = request.header("x-mas-supports-device-id", "1");
        }
        let request = request.body(Body::from(format!("token={token}"))).unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };

    let (status, answer) = ask("Bearer homeserver-secret", true).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["sub"], user.id.to_string());
    assert_eq!(answer["device_id"], "ABCDEFGH");
    assert_eq!(answer["client_id"], "legacy");
    // It reads the device from `device_id`, so the scope leaves it out, as MAS's does.
    let mut scope: Vec<&str> = answer["scope"].as_str().unwrap().split(' ').collect();
    scope.sort_unstable();
    assert_eq!(
        scope,
        [
            "urn:matrix:client:api:*",
            "urn:matrix:org.matrix.msc2967.client:api:*",
            "urn:synapse:admin:*",
        ]
    );

    // A homeserver that does not say it reads `device_id` finds the device in the
    // scope too; `device_id` is there all the same, as with MAS.
    let (_, answer) = ask("Bearer homeserver-secret", false).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["device_id"], "ABCDEFGH");
    let scope: Vec<&str> = answer["scope"].as_str().unwrap().split(' ').collect();
    for expected in [
        "urn:matrix:client:device:ABCDEFGH",
        "urn:matrix:org.matrix.msc2967.client:device:ABCDEFGH",
    ] {
        assert!(
            scope.contains(&expected),
            "{expected} missing from {scope:?}"
        );
    }

    // The wrong secret is refused in OAuth's own words, and says nothing about the token.
    let (status, answer) = ask("Bearer not-the-secret", true).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "invalid_client");
    assert!(answer.get("active").is_none());

    // An ordinary client never learns about compatibility tokens.
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let (status, answer) = ask(&basic(client, SECRET), true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"active": false}));

    // Locking the user ends what the homeserver accepts.
    let mut repo = h.state.repos.begin().await.unwrap();
    repo.user().lock(&SystemClock, user).await.unwrap();
    repo.save().await.unwrap();
    let (status, answer) = ask("Bearer homeserver-secret", true).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"active": false}));
}

#[tokio::test]
async fn private_key_jwt_keys_are_fetched_from_jwks_uri() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let h = Harness::new().await;
    let client_keys = crate::test_state::oauth();
    let published = client_keys.keys.jwks();
    // The right keys, padded past the size bound: only the bound refuses them.
    let mut padded = published.clone();
    padded["padding"] = Value::String("x".repeat(1 << 20));
    let hits = Arc::new(AtomicUsize::new(0));
    let key_server = axum::Router::new()
        .route(
            "/jwks.json",
            axum::routing::get({
                let hits = hits.clone();
                move || async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    axum::Json(published)
                }
            }),
        )
        .route(
            "/huge.json",
            axum::routing::get(move || async move { axum::Json(padded) }),
        )
        .route(
            "/elsewhere.json",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/jwks.json") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, key_server).await });

    let token_url = "https://auth.example.com/oauth2/token";
    let now = chrono::Utc::now().timestamp();
    let try_token = |client: Ulid, jti: &str| {
        let claims = json!({"iss": client.to_string(), "sub": client.to_string(), "aud": token_url, "exp": now + 60, "jti": jti});
        let signed = client_keys
            .keys
            .sign(mas_oauth_core::SigningAlgorithm::Es256, &claims)
            .unwrap();
        format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={signed}"
        )
    };

    let client = h
        .client_with(
            ClientAuthMethod::PrivateKeyJwt,
            None,
            Some(format!("{base}/jwks.json").parse().unwrap()),
        )
        .await;
    for jti in ["remote-1", "remote-2"] {
        let (status, _, body) = h.post("/oauth2/token", None, &try_token(client, jti)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["access_token"].as_str().unwrap().starts_with("mat_"));
    }
    // The second request was answered from the cache.
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Assertions signed with keys the set lacks are refused without fetching it again:
    // a set fetched under a minute ago is not refetched for a key-id miss.
    let strangers = crate::test_state::oauth();
    for n in 0..5 {
        let claims = json!({"iss": client.to_string(), "sub": client.to_string(), "aud": token_url, "exp": now + 60, "jti": format!("stranger-{n}")});
        let signed = strangers
            .keys
            .sign(mas_oauth_core::SigningAlgorithm::Es256, &claims)
            .unwrap();
        let (status, _, body) = h
            .post(
                "/oauth2/token",
                None,
                &format!(
                    "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={signed}"
                ),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{body}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Keys that cannot be had (missing, oversized, behind a redirect, unreachable) leave
    // the client unauthenticated, in OAuth's words.
    for path in ["missing.json", "huge.json", "elsewhere.json"] {
        let client = h
            .client_with(
                ClientAuthMethod::PrivateKeyJwt,
                None,
                Some(format!("{base}/{path}").parse().unwrap()),
            )
            .await;
        let (status, _, body) = h
            .post("/oauth2/token", None, &try_token(client, path))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{path}: {body}"
        );
    }
    let unreachable = h
        .client_with(
            ClientAuthMethod::PrivateKeyJwt,
            None,
            Some("http://127.0.0.1:9/jwks.json".parse().unwrap()),
        )
        .await;
    let (status, _, _) = h
        .post("/oauth2/token", None, &try_token(unreachable, "nowhere"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_failing_jwks_uri_is_not_fetched_for_every_request() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let h = Harness::new().await;
    let client_keys = crate::test_state::oauth();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = |answer: fn() -> axum::response::Response| {
        let hits = hits.clone();
        axum::routing::get(move || async move {
            hits.fetch_add(1, Ordering::SeqCst);
            // Slow enough that concurrent requests all arrive while it is in flight.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            answer()
        })
    };
    let key_server = axum::Router::new()
        .route(
            "/broken.json",
            counted(|| {
                axum::response::IntoResponse::into_response(StatusCode::INTERNAL_SERVER_ERROR)
            }),
        )
        .route(
            "/garbage.json",
            counted(|| axum::response::IntoResponse::into_response("<html>not keys</html>")),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, key_server).await });

    let token_url = "https://auth.example.com/oauth2/token";
    let now = chrono::Utc::now().timestamp();
    for path in ["broken.json", "garbage.json"] {
        hits.store(0, Ordering::SeqCst);
        // A client from the configuration, as only those may have a jwks_uri.
        let client = Ulid::new();
        let mut params = crate::test_state::client_params(
            ClientAuthMethod::PrivateKeyJwt,
            Vec::new(),
            &["client_credentials"],
        );
        params.jwks_uri = Some(format!("{base}/{path}").parse().unwrap());
        let mut repo = h.state.repos.begin().await.unwrap();
        repo.client()
            .upsert_static(&SystemClock, client, params)
            .await
            .unwrap();
        repo.save().await.unwrap();

        let form = |n: usize| {
            let claims = json!({"iss": client.to_string(), "sub": client.to_string(), "aud": token_url, "exp": now + 60, "jti": format!("{path}-{n}")});
            let signed = client_keys
                .keys
                .sign(mas_oauth_core::SigningAlgorithm::Es256, &claims)
                .unwrap();
            format!(
                "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={signed}"
            )
        };
        // Twenty at once, then twenty one after the other.
        let mut concurrent = tokio::task::JoinSet::new();
        for n in 0..20 {
            let app = router(&[Resource::OAuth], None, h.state.clone());
            let body = form(n);
            concurrent.spawn(async move {
                let request = Request::post("/oauth2/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap();
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (status, serde_json::from_slice::<Value>(&bytes).unwrap())
            });
        }
        let mut answers = concurrent.join_all().await;
        for n in 20..40 {
            let (status, _, body) = h.post("/oauth2/token", None, &form(n)).await;
            answers.push((status, body));
        }
        for (status, body) in answers {
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_client")),
                "{path}: {body}"
            );
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "{path}: one fetch, then the failure is remembered"
        );
    }
}

#[tokio::test]
async fn tokens_of_locked_users_stop_working() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let token = mas_oauth_core::tokens::generate(&mut rng, mas_data_model::TokenType::AccessToken);
    let mut repo = h.state.repos.begin().await.unwrap();
    let user = repo
        .user()
        .add(&mut rng, &SystemClock, "carol")
        .await
        .unwrap();
    let session = repo
        .session()
        .add(
            &mut rng,
            &SystemClock,
            client,
            Some(user.id),
            None,
            "openid urn:matrix:client:api:* urn:matrix:client:device:CAROLDEV",
            None,
        )
        .await
        .unwrap();
    repo.access_token()
        .add(&mut rng, &SystemClock, &session, &token, None)
        .await
        .unwrap();
    repo.save().await.unwrap();

    let bearer = format!("Bearer {token}");
    let (status, _, claims) = h
        .send(
            Method::GET,
            "/oauth2/userinfo",
            Some(bearer.clone()),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claims}");
    assert_eq!(claims["sub"], user.id.to_string());
    let (_, _, answer) = h
        .post(
            "/oauth2/introspect",
            Some(basic(client, SECRET)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "carol");
    // A client sees the scope as granted, without the homeserver's twins or device_id.
    assert_eq!(
        answer["scope"],
        "openid urn:matrix:client:api:* urn:matrix:client:device:CAROLDEV"
    );
    assert!(answer.get("device_id").is_none());
    // The homeserver sees both spellings.
    let app = router(&[Resource::OAuth], None, h.state.clone());
    let request = Request::post("/oauth2/introspect")
        .header("authorization", "Bearer homeserver-secret")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-mas-supports-device-id", "1")
        .body(Body::from(format!("token={token}")))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let seen: Value = serde_json::from_slice(&bytes).unwrap();
    // As with MAS, an OAuth 2.0 session's device is in its scope only.
    assert!(seen.get("device_id").is_none(), "{seen}");
    assert!(
        seen["scope"]
            .as_str()
            .unwrap()
            .contains("urn:matrix:org.matrix.msc2967.client:device:CAROLDEV"),
        "{seen}"
    );

    let mut repo = h.state.repos.begin().await.unwrap();
    repo.user().lock(&SystemClock, user).await.unwrap();
    repo.save().await.unwrap();
    let (_, _, answer) = h
        .post(
            "/oauth2/introspect",
            Some(basic(client, SECRET)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(answer, json!({"active": false}));
    let (status, headers, body) = h
        .send(
            Method::GET,
            "/oauth2/userinfo",
            Some(bearer),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

#[tokio::test]
async fn pkce_cannot_be_downgraded_or_guessed() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));
    let exchange = |code: &str, verifier: &str| {
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb{verifier}"
        )
    };
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let refused = |body: &Value| {
        matches!(
            body["error"].as_str(),
            Some("invalid_grant" | "invalid_request")
        )
    };

    // A verifier for a code issued without a challenge: a downgrade attempt.
    consented_code(&h, client, "no-challenge", 1).await;
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            &exchange("no-challenge", &format!("&code_verifier={verifier}")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(refused(&body), "{body}");

    let pkce = || {
        Some(mas_data_model::Pkce {
            method: "S256".to_owned(),
            challenge: challenge.to_owned(),
        })
    };
    // Missing, wrong and malformed verifiers for a code that has a challenge.
    for (code, extra) in [
        ("missing", String::new()),
        ("wrong", format!("&code_verifier={}", "x".repeat(43))),
        ("malformed", "&code_verifier=short".to_owned()),
    ] {
        consented_code_with(&h, client, code, 1, "openid", pkce()).await;
        let (status, _, body) = h
            .post("/oauth2/token", auth.clone(), &exchange(code, &extra))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{code}: {body}");
        assert!(refused(&body), "{code}: {body}");
    }
    // The right verifier (RFC 7636's own example pair) is accepted.
    consented_code_with(&h, client, "right", 1, "openid", pkce()).await;
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            auth,
            &exchange("right", &format!("&code_verifier={verifier}")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn codes_are_bound_to_their_client_and_user_and_refresh_cannot_widen() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let other = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let exchange = |code: &str, redirect: &str| {
        format!("grant_type=authorization_code&code={code}&redirect_uri={redirect}")
    };
    let registered = "https%3A%2F%2Fapp.example.com%2Fcb";
    let invalid_grant = |status: StatusCode, body: &Value| {
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{body}"
        );
    };

    consented_code(&h, client, "bound-code", 1).await;
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(basic(other, SECRET)),
            &exchange("bound-code", registered),
        )
        .await;
    invalid_grant(status, &body);
    consented_code(&h, client, "redirect-code", 1).await;
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(basic(client, SECRET)),
            &exchange("redirect-code", "https%3A%2F%2Fapp.example.com%2Fcb%2F"),
        )
        .await;
    invalid_grant(status, &body);

    // Refreshing may narrow the scope, never widen it.
    consented_code_with_scope(
        &h,
        client,
        "scoped-code",
        1,
        "openid urn:matrix:client:api:*",
    )
    .await;
    let (status, _, tokens) = h
        .post(
            "/oauth2/token",
            Some(basic(client, SECRET)),
            &exchange("scoped-code", registered),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(basic(client, SECRET)),
            &format!("grant_type=refresh_token&refresh_token={refresh}&scope=openid%20email"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(basic(client, SECRET)),
            &format!("grant_type=refresh_token&refresh_token={refresh}&scope=openid"),
        )
        .await;
    // A narrower scope is accepted; the answer tells the scope the tokens really carry,
    // which is the session's (scopes live on the session, not on each token).
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "openid urn:matrix:client:api:*");

    // A locked user's pending code exchanges for nothing.
    consented_code(&h, client, "locked-code", 1).await;
    let mut repo = h.state.repos.begin().await.unwrap();
    let alice = repo
        .user()
        .find_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    repo.user().lock(&SystemClock, alice).await.unwrap();
    repo.save().await.unwrap();
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(basic(client, SECRET)),
            &exchange("locked-code", registered),
        )
        .await;
    invalid_grant(status, &body);

    // So does a deactivated user's.
    consented_code(&h, client, "deactivated-code", 1).await;
    let mut repo = h.state.repos.begin().await.unwrap();
    let alice = repo
        .user()
        .find_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    let alice = repo.user().unlock(alice).await.unwrap();
    repo.user().deactivate(&SystemClock, alice).await.unwrap();
    repo.save().await.unwrap();
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(basic(client, SECRET)),
            &exchange("deactivated-code", registered),
        )
        .await;
    invalid_grant(status, &body);

    // One authentication method per request.
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(basic(client, SECRET)),
            &format!("grant_type=client_credentials&client_secret={SECRET}"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{body}"
    );
}

/// A public client that may use the device authorization grant.
async fn device_client(h: &Harness) -> mas_data_model::Client {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = h.state.repos.begin().await.unwrap();
    let client = repo
        .client()
        .add_dynamic(
            &mut rng,
            &SystemClock,
            crate::test_state::client_params(
                ClientAuthMethod::None,
                Vec::new(),
                &[mas_oauth_core::device::DEVICE_GRANT],
            ),
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    client
}

#[tokio::test]
async fn a_device_polling_too_fast_is_told_to_slow_down() {
    let h = Harness::new().await;
    let client = device_client(&h).await;
    let start = async || {
        let (status, _, body) = h
            .post(
                "/oauth2/device",
                None,
                &format!("client_id={}&scope=openid", client.id),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["interval"], 5);
        body["device_code"].as_str().unwrap().to_owned()
    };
    let poll = async |device_code: &str| {
        let (status, _, body) = h
            .post(
                "/oauth2/token",
                None,
                &format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code\
                     &client_id={}&device_code={device_code}",
                    client.id
                ),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        body["error"].as_str().unwrap().to_owned()
    };
    let first = start().await;
    assert_eq!(poll(&first).await, "authorization_pending");
    assert_eq!(poll(&first).await, "slow_down");
    assert_eq!(poll(&first).await, "slow_down", "still too soon");
    // The pace is kept per device code.
    let second = start().await;
    assert_eq!(poll(&second).await, "authorization_pending");
}

#[tokio::test]
async fn a_device_scope_makes_the_device_on_the_homeserver_before_the_tokens() {
    let mut h = Harness::new().await;
    let homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    h.state.homeserver = homeserver.clone();
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));
    let scope = "urn:matrix:client:api:* urn:matrix:client:device:NEXTGEN";
    consented_code_with_scope(&h, client, "dev-code", 1, scope).await;
    let exchange = "grant_type=authorization_code&code=dev-code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb";

    // The homeserver is down: the client is told to come back, and the code is not spent.
    homeserver.set_down(true);
    let (status, _, body) = h.post("/oauth2/token", auth.clone(), exchange).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable")
        ),
        "{body}"
    );
    assert!(homeserver.user("alice").is_none());

    homeserver.set_down(false);
    // A code that will be refused makes no device: one taken by someone without its
    // verifier, or sent with another redirect URI.
    let pkce = mas_data_model::Pkce {
        method: "S256".to_owned(),
        challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
    };
    let stolen_scope = "urn:matrix:client:api:* urn:matrix:client:device:STOLEN";
    consented_code_with(&h, client, "stolen", 1, stolen_scope, Some(pkce)).await;
    let stolen = exchange.replace("dev-code", "stolen");
    for attempt in [
        format!("{stolen}&code_verifier={}", "x".repeat(43)),
        format!("{stolen}&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
            .replace("app.example.com", "evil.example"),
    ] {
        let (status, _, body) = h.post("/oauth2/token", auth.clone(), &attempt).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            homeserver.user("alice").is_none(),
            "no device for a refused code"
        );
    }

    let (status, _, tokens) = h.post("/oauth2/token", auth.clone(), exchange).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let devices = homeserver.user("alice").unwrap().devices;
    assert!(devices.contains_key("NEXTGEN"), "{devices:?}");

    // Logging out through revocation takes the device away again.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _, _) = h
        .post("/oauth2/revoke", auth.clone(), &format!("token={refresh}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(homeserver.user("alice").unwrap().devices.is_empty());

    // A scope without a device asks nothing of the homeserver, even when it is down.
    homeserver.set_down(true);
    consented_code(&h, client, "plain-code", 1).await;
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            auth,
            &exchange.replace("dev-code", "plain-code"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Introspection as the homeserver asks it: its secret, a hint, and the device header.
async fn homeserver_introspects(h: &Harness, token: &str, hint: Option<&str>) -> Value {
    let body = match hint {
        Some(hint) => format!("token={token}&token_type_hint={hint}"),
        None => format!("token={token}"),
    };
    let (status, _, answer) = h
        .post(
            "/oauth2/introspect",
            Some("Bearer homeserver-secret".to_owned()),
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

#[tokio::test]
async fn refresh_tokens_never_pass_for_access_tokens() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));
    consented_code(&h, client, "refresh-as-access", 1).await;
    let (status, _, tokens) = h
        .post("/oauth2/token", auth.clone(), "grant_type=authorization_code&code=refresh-as-access&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb")
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // The attack: the refresh token sent to the homeserver as a bearer token. Synapse
    // hints `access_token`; with or without a hint, the answer is inactive.
    for hint in [Some("access_token"), None, Some("refresh_token")] {
        assert_eq!(
            homeserver_introspects(&h, refresh, hint).await,
            json!({"active": false}),
            "hint {hint:?}"
        );
    }
    // The access token of the same session still works for the homeserver.
    let seen = homeserver_introspects(&h, access, Some("access_token")).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert!(seen.get("exp").is_some(), "{seen}");

    // The client itself may ask about its refresh token, unless its hint says otherwise.
    let ask = |body: String| {
        let auth = auth.clone();
        let h = &h;
        async move { h.post("/oauth2/introspect", auth, &body).await.2 }
    };
    let own = ask(format!("token={refresh}&token_type_hint=refresh_token")).await;
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(own["token_type"], "refresh_token");
    assert_eq!(
        ask(format!("token={refresh}&token_type_hint=access_token")).await,
        json!({"active": false})
    );
    assert_eq!(
        ask(format!("token={access}&token_type_hint=refresh_token")).await,
        json!({"active": false})
    );

    // A compatibility refresh token is never active for the homeserver either.
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let compat_access =
        mas_oauth_core::tokens::generate(&mut rng, mas_data_model::TokenType::CompatAccessToken);
    let compat_refresh =
        mas_oauth_core::tokens::generate(&mut rng, mas_data_model::TokenType::CompatRefreshToken);
    let mut repo = h.state.repos.begin().await.unwrap();
    let user = repo
        .user()
        .find_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    let session = repo
        .compat_session()
        .add(
            &mut rng,
            &SystemClock,
            &user,
            Some("COMPATDEV".to_owned()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    let stored = repo
        .compat_access_token()
        .add(&mut rng, &SystemClock, &session, &compat_access, None)
        .await
        .unwrap();
    repo.compat_refresh_token()
        .add(&mut rng, &SystemClock, &session, &stored, &compat_refresh)
        .await
        .unwrap();
    repo.save().await.unwrap();
    for hint in [Some("access_token"), None] {
        assert_eq!(
            homeserver_introspects(&h, &compat_refresh, hint).await,
            json!({"active": false}),
            "hint {hint:?}"
        );
    }
    let seen = homeserver_introspects(&h, &compat_access, Some("access_token")).await;
    assert_eq!(seen["active"], true, "{seen}");
}

#[tokio::test]
async fn clients_learn_nothing_about_other_clients_tokens() {
    let h = Harness::new().await;
    let owner = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let stranger = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    consented_code(&h, owner, "owned-code", 1).await;
    let (status, _, tokens) = h
        .post("/oauth2/token", Some(basic(owner, SECRET)), "grant_type=authorization_code&code=owned-code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb")
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // The attack: another (for example anonymously registered) client asks who uses
    // the owner's tokens.
    for token in [access, refresh] {
        let (status, _, answer) = h
            .post(
                "/oauth2/introspect",
                Some(basic(stranger, SECRET)),
                &format!("token={token}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, json!({"active": false}));
    }
    // Nor did its question count as the token being used: the owner's lost-answer
    // retry of the refresh still gets a fresh pair instead of ending the session.
    let mut repo = h.state.repos.begin().await.unwrap();
    let stored = repo
        .access_token()
        .find_by_token(access)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.first_used_at, None);
    drop(repo);

    // The owner and the homeserver still get their answers.
    let (_, _, answer) = h
        .post(
            "/oauth2/introspect",
            Some(basic(owner, SECRET)),
            &format!("token={access}"),
        )
        .await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["username"], "alice");
    let seen = homeserver_introspects(&h, access, None).await;
    assert_eq!(seen["active"], true, "{seen}");
}

#[tokio::test]
async fn an_admin_scope_lasts_only_as_long_as_the_right_to_it() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));
    consented_code_with_scope(
        &h,
        client,
        "admin-code",
        1,
        "urn:matrix:client:api:* urn:synapse:admin:*",
    )
    .await;
    let mut repo = h.state.repos.begin().await.unwrap();
    let alice = repo
        .user()
        .find_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    let alice = repo
        .user()
        .set_can_request_admin(alice, true)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let (status, _, tokens) = h
        .post("/oauth2/token", auth.clone(), "grant_type=authorization_code&code=admin-code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb")
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let seen = homeserver_introspects(&h, access, Some("access_token")).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert!(
        seen["scope"]
            .as_str()
            .unwrap()
            .contains("urn:synapse:admin:*")
    );

    // The attack: the admin is demoted (the flag alone, as another tool might), and
    // keeps using and refreshing the admin token. The homeserver's kept answer goes too.
    let mut repo = h.state.repos.begin().await.unwrap();
    repo.user()
        .set_can_request_admin(alice, false)
        .await
        .unwrap();
    repo.save().await.unwrap();
    assert_eq!(
        homeserver_introspects(&h, access, Some("access_token")).await,
        json!({"active": false})
    );
    let (status, _, refused) = h
        .post(
            "/oauth2/token",
            auth.clone(),
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{refused}"
    );
}

#[tokio::test]
async fn a_tolerated_refresh_replay_leaves_one_branch_alive() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let auth = Some(basic(client, SECRET));
    consented_code(&h, client, "branch-code", 1).await;
    let (status, _, first) = h
        .post("/oauth2/token", auth.clone(), "grant_type=authorization_code&code=branch-code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb")
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let refresh = |token: String| {
        let auth = auth.clone();
        let h = &h;
        async move {
            let (status, _, body) = h
                .post(
                    "/oauth2/token",
                    auth,
                    &format!("grant_type=refresh_token&refresh_token={token}"),
                )
                .await;
            (status, body)
        }
    };
    let active = |token: String| {
        let auth = auth.clone();
        let h = &h;
        async move {
            h.post("/oauth2/introspect", auth, &format!("token={token}"))
                .await
                .2["active"]
                == true
        }
    };
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    // rt1 -> t2; then rt1 again before t2 was used: tolerated as a retry, giving t3.
    let (_, t2) = refresh(rt1.clone()).await;
    let (status, t3) = refresh(rt1.clone()).await;
    assert_eq!(status, StatusCode::OK, "{t3}");
    let t2_refresh = t2["refresh_token"].as_str().unwrap().to_owned();
    let t3_access = t3["access_token"].as_str().unwrap().to_owned();
    // The attack: the branch the replay replaced is refreshed as well. It is refused,
    // and since two parties hold the session, the session ends (RFC 9700 §4.14).
    let (status, refused) = refresh(t2_refresh).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{refused}"
    );
    assert!(!active(t3_access).await, "no branch outlives the other");
    assert!(
        !active(t2["access_token"].as_str().unwrap().to_owned()).await,
        "the replaced branch's access token is dead"
    );

    // Without the attack, the surviving branch goes on: rt1 -> t5, rt1 again -> t6,
    // and t6 refreshes as usual while t5's refresh token is refused.
    consented_code(&h, client, "branch-code-2", 1).await;
    let (_, second) = {
        let (status, _, body) = h
            .post("/oauth2/token", auth.clone(), "grant_type=authorization_code&code=branch-code-2&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb")
            .await;
        (status, body)
    };
    let rt4 = second["refresh_token"].as_str().unwrap().to_owned();
    let (_, t5) = refresh(rt4.clone()).await;
    let (_, t6) = refresh(rt4).await;
    let (status, t7) = refresh(t6["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the surviving branch refreshes: {t7}"
    );
    assert!(active(t7["access_token"].as_str().unwrap().to_owned()).await);
    let (status, _) = refresh(t5["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the replaced branch never does"
    );
}

/// An introspection answer for `auth`, with or without `X-MAS-Supports-Device-Id: 1`.
async fn introspect_as(h: &Harness, auth: &str, token: &str, reads_device_id: bool) -> Value {
    let app = router(&[Resource::OAuth], None, h.state.clone());
    let mut request = Request::post("/oauth2/introspect")
        .header("authorization", auth)
        .header("content-type", "application/x-www-form-urlencoded");
    if reads_device_id {
        request = request.header("x-mas-supports-device-id", "1");
    }
    let request = request.body(Body::from(format!("token={token}"))).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The answer's keys, sorted.
fn sorted_keys(answer: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn introspection_answers_the_keys_mas_answers_for_each_kind() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let owner = basic(client, SECRET);
    let homeserver = "Bearer homeserver-secret";
    consented_code(&h, client, "keys-code", 1).await;
    let (status, _, tokens) = h
        .post("/oauth2/token", Some(owner.clone()), "grant_type=authorization_code&code=keys-code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb")
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _, machine) = h
        .post(
            "/oauth2/token",
            Some(owner.clone()),
            "grant_type=client_credentials&scope=urn:mas:graphql:*",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{machine}");
    let machine = machine["access_token"].as_str().unwrap();

    // A compatibility session (as a Matrix login or `issue-compatibility-token` makes),
    // with a token that expires and one that does not, and a personal token.
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let compat_expiring =
        mas_oauth_core::tokens::generate(&mut rng, mas_data_model::TokenType::CompatAccessToken);
    let compat_lasting =
        mas_oauth_core::tokens::generate(&mut rng, mas_data_model::TokenType::CompatAccessToken);
    let personal =
        mas_oauth_core::tokens::generate(&mut rng, mas_data_model::TokenType::PersonalAccessToken);
    let mut repo = h.state.repos.begin().await.unwrap();
    let alice = repo
        .user()
        .find_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    let session = repo
        .compat_session()
        .add(
            &mut rng,
            &SystemClock,
            &alice,
            Some("KEYSDEV".to_owned()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    for (token, ttl) in [
        (&compat_expiring, Some(chrono::Duration::minutes(5))),
        (&compat_lasting, None),
    ] {
        repo.compat_access_token()
            .add(&mut rng, &SystemClock, &session, token, ttl)
            .await
            .unwrap();
    }
    let personal_session = repo
        .personal_session()
        .add(
            &mut rng,
            &SystemClock,
            mas_data_model::PersonalSessionOwner::User(alice.id),
            &alice,
            "keys",
            "urn:matrix:client:api:*",
        )
        .await
        .unwrap();
    repo.personal_access_token()
        .add(
            &mut rng,
            &SystemClock,
            &personal_session,
            &personal,
            Some(chrono::Duration::days(1)),
        )
        .await
        .unwrap();
    repo.save().await.unwrap();

    let oauth_access = [
        "active",
        "client_id",
        "exp",
        "expires_in",
        "iat",
        "jti",
        "nbf",
        "scope",
        "sub",
        "token_type",
        "username",
    ];
    let compat_expiring_keys = [
        "active",
        "client_id",
        "device_id",
        "exp",
        "expires_in",
        "iat",
        "nbf",
        "scope",
        "sub",
        "token_type",
        "username",
    ];
    let cases: [(&str, &str, &str, bool, &[&str]); 9] = [
        (
            "OAuth access, homeserver",
            homeserver,
            access,
            true,
            &oauth_access,
        ),
        (
            "OAuth access, homeserver without the header",
            homeserver,
            access,
            false,
            &oauth_access,
        ),
        (
            "OAuth access, owning client",
            &owner,
            access,
            false,
            &oauth_access,
        ),
        (
            "OAuth refresh, owning client",
            &owner,
            refresh,
            false,
            &[
                "active",
                "client_id",
                "iat",
                "jti",
                "nbf",
                "scope",
                "sub",
                "token_type",
                "username",
            ],
        ),
        (
            "client_credentials access, owning client",
            &owner,
            machine,
            false,
            &[
                "active",
                "client_id",
                "exp",
                "expires_in",
                "iat",
                "jti",
                "nbf",
                "scope",
                "token_type",
            ],
        ),
        (
            "compat access, homeserver",
            homeserver,
            &compat_expiring,
            true,
            &compat_expiring_keys,
        ),
        (
            "compat access, homeserver without the header",
            homeserver,
            &compat_expiring,
            false,
            &compat_expiring_keys,
        ),
        (
            "compat access without expiry, homeserver",
            homeserver,
            &compat_lasting,
            true,
            &[
                "active",
                "client_id",
                "device_id",
                "iat",
                "nbf",
                "scope",
                "sub",
                "token_type",
                "username",
            ],
        ),
        (
            "personal access, homeserver",
            homeserver,
            &personal,
            true,
            &[
                "active",
                "exp",
                "expires_in",
                "iat",
                "nbf",
                "scope",
                "sub",
                "token_type",
                "username",
            ],
        ),
    ];
    for (kind, auth, token, reads_device_id, expected) in cases {
        let answer = introspect_as(&h, auth, token, reads_device_id).await;
        assert_eq!(sorted_keys(&answer), expected, "{kind}: {answer}");
        assert_eq!(answer["nbf"], answer["iat"], "{kind}: {answer}");
        let token_type = if token.starts_with("mar_") {
            "refresh_token"
        } else {
            "access_token"
        };
        assert_eq!(answer["token_type"], token_type, "{kind}: {answer}");
        if token.starts_with("mct_") {
            assert_eq!(answer["client_id"], "legacy", "{kind}: {answer}");
            assert_eq!(answer["device_id"], "KEYSDEV", "{kind}: {answer}");
        } else if token.starts_with("mat_") || token.starts_with("mar_") {
            assert_eq!(answer["client_id"], client.to_string(), "{kind}: {answer}");
        }
    }
}

/// Posts a form to the OAuth router as the peer `peer` would.
async fn post_from(
    h: &Harness,
    peer: &str,
    path: &str,
    auth: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap) {
    let app = router(&[Resource::OAuth], None, h.state.clone());
    let request = crate::human_tests::from_peer(
        Request::post(path)
            .header("authorization", auth)
            .header("content-type", "application/x-www-form-urlencoded"),
        peer,
        Body::from(body.to_owned()),
    );
    let response = app.oneshot(request).await.unwrap();
    (response.status(), response.headers().clone())
}

#[tokio::test]
async fn guessing_client_secrets_is_throttled_per_address_and_client() {
    let h = Harness::new().await;
    let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let other = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
    let grant = "grant_type=client_credentials&scope=urn:mas:graphql:*";
    let attacker = "198.51.100.7:4000";
    // Thirty wrong guesses get the protocol's answer, and the one after them too (it is
    // the one that finds the budget spent)...
    for guess in 0..31 {
        let (status, _) = post_from(
            &h,
            attacker,
            "/oauth2/token",
            &basic(client, &format!("guess{guess}")),
            grant,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {guess}");
    }
    // ...then that client ID waits at that address, even with the right secret, at
    // every endpoint that authenticates clients.
    for (path, body) in [
        ("/oauth2/token", grant),
        ("/oauth2/introspect", "token=mat_x"),
        ("/oauth2/revoke", "token=mat_x"),
    ] {
        let (status, headers) = post_from(&h, attacker, path, &basic(client, SECRET), body).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=10).contains(&wait), "{wait}");
    }
    // Another client at that address, and the same client from another address, go on.
    let (status, _) = post_from(&h, attacker, "/oauth2/token", &basic(other, SECRET), grant).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post_from(
        &h,
        "198.51.100.8:4000",
        "/oauth2/token",
        &basic(client, SECRET),
        grant,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..40 {
        let (status, _) = post_from(
            &h,
            "198.51.100.9:4000",
            "/oauth2/token",
            &basic(client, SECRET),
            grant,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    // The homeserver's secret: wrong guesses run out the same way, but the right secret
    // always passes, so no one sharing its address can hold the homeserver back.
    for guess in 0..31 {
        let (status, _) = post_from(
            &h,
            attacker,
            "/oauth2/introspect",
            &format!("Bearer guess{guess}"),
            "token=mat_x",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {guess}");
    }
    let (status, _) = post_from(
        &h,
        attacker,
        "/oauth2/introspect",
        "Bearer guess-again",
        "token=mat_x",
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = post_from(
        &h,
        attacker,
        "/oauth2/introspect",
        "Bearer homeserver-secret",
        "token=mat_x",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn admin_users_of_the_policy_hold_admin_scopes_without_the_flag() {
    // Alice's account has no `can_request_admin`; only the policy names her.
    for (listed, expected) in [(true, StatusCode::OK), (false, StatusCode::BAD_REQUEST)] {
        let mut h = Harness::new().await;
        if listed {
            h.state.policy = Arc::new(mas_oauth_core::policy::Policy {
                admin_users: vec!["alice".to_owned()],
                ..mas_oauth_core::policy::Policy::default()
            });
        }
        let client = h.client(ClientAuthMethod::ClientSecretBasic, None).await;
        let auth = Some(basic(client, SECRET));
        consented_code_with_scope(
            &h,
            client,
            "policy-admin",
            1,
            "urn:matrix:client:api:* urn:synapse:admin:*",
        )
        .await;
        let (status, _, tokens) = h
            .post("/oauth2/token", auth.clone(), "grant_type=authorization_code&code=policy-admin&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb")
            .await;
        assert_eq!(status, expected, "listed: {listed}: {tokens}");
        if !listed {
            assert_eq!(tokens["error"], "invalid_grant");
            continue;
        }
        // Held at every use: introspection and refresh.
        let access = tokens["access_token"].as_str().unwrap();
        let seen = homeserver_introspects(&h, access, Some("access_token")).await;
        assert_eq!(seen["active"], true, "{seen}");
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let (status, _, refreshed) = h
            .post(
                "/oauth2/token",
                auth,
                &format!("grant_type=refresh_token&refresh_token={refresh}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{refreshed}");
    }
}

#[tokio::test]
async fn client_registration_rules_relax_only_what_the_policy_says() {
    use mas_oauth_core::policy::{ClientRegistrationRules, Policy};

    let insecure = json!({
        "client_uri": "http://app.example.com/",
        "redirect_uris": ["http://app.example.com/cb"],
        "token_endpoint_auth_method": "none"
    });
    let elsewhere = json!({
        "client_uri": "https://app.example.com/",
        "redirect_uris": ["https://login.example.net/cb"],
        "tos_uri": "https://legal.example.net/tos",
        "token_endpoint_auth_method": "none"
    });
    let anonymous = json!({
        "redirect_uris": ["https://app.example.com/cb"],
        "token_endpoint_auth_method": "none"
    });
    let with = async |rules: ClientRegistrationRules| {
        let mut h = Harness::new().await;
        h.state.policy = Arc::new(Policy {
            client_registration: rules,
            ..Policy::default()
        });
        h
    };
    // Strict by default: each is refused.
    let strict = with(ClientRegistrationRules::default()).await;
    for (metadata, error) in [
        (&insecure, "invalid_client_metadata"),
        (&elsewhere, "invalid_redirect_uri"),
        (&anonymous, "invalid_client_metadata"),
    ] {
        let (status, body) = register(&strict, metadata).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{metadata}: {body}");
        assert_eq!(body["error"], error, "{body}");
    }
    // Each relaxation lets its own case through, and only that one.
    let insecure_ok = with(ClientRegistrationRules {
        allow_insecure_uris: true,
        ..ClientRegistrationRules::default()
    })
    .await;
    assert_eq!(
        register(&insecure_ok, &insecure).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        register(&insecure_ok, &elsewhere).await.0,
        StatusCode::BAD_REQUEST
    );
    // Insecure is not hostless: a client_uri without a host checks nothing against.
    for client_uri in ["file:///", "urn:example:app", "javascript:alert(1)"] {
        let hostless = json!({
            "client_uri": client_uri,
            "redirect_uris": ["https://attacker.example./cb"],
            "token_endpoint_auth_method": "none"
        });
        let (status, body) = register(&insecure_ok, &hostless).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{client_uri}: {body}");
    }
    let mismatch_ok = with(ClientRegistrationRules {
        allow_host_mismatch: true,
        ..ClientRegistrationRules::default()
    })
    .await;
    assert_eq!(
        register(&mismatch_ok, &elsewhere).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        register(&mismatch_ok, &insecure).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        register(&mismatch_ok, &anonymous).await.0,
        StatusCode::BAD_REQUEST
    );
    let missing_ok = with(ClientRegistrationRules {
        allow_missing_client_uri: true,
        ..ClientRegistrationRules::default()
    })
    .await;
    let (status, body) = register(&missing_ok, &anonymous).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id: Ulid = body["client_id"].as_str().unwrap().parse().unwrap();
    let mut repo = missing_ok.state.repos.reader().await.unwrap();
    assert_eq!(
        repo.client().lookup(id).await.unwrap().unwrap().client_uri,
        None
    );
    assert_eq!(
        register(&missing_ok, &insecure).await.0,
        StatusCode::BAD_REQUEST
    );

    // Everything relaxed: any host and any private-use scheme, but never a scheme that
    // runs code in the browser.
    let anything = with(ClientRegistrationRules {
        allow_insecure_uris: true,
        allow_host_mismatch: true,
        allow_missing_client_uri: true,
    })
    .await;
    let custom = json!({"redirect_uris": ["myapp:/cb"], "token_endpoint_auth_method": "none"});
    assert_eq!(register(&anything, &custom).await.0, StatusCode::CREATED);
    for redirect in [
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
    ] {
        let metadata = json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none"});
        let (status, body) = register(&anything, &metadata).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{redirect}: {body}");
        assert_eq!(body["error"], "invalid_redirect_uri");
    }
}

#[tokio::test]
async fn a_device_approved_in_a_browser_that_then_signed_out_gets_no_tokens_and_no_device() {
    let mut h = Harness::new().await;
    let homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    h.state.homeserver = homeserver.clone();
    let client = device_client(&h).await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = h.state.repos.begin().await.unwrap();
    let user = repo
        .user()
        .add(&mut rng, &SystemClock, "alice")
        .await
        .unwrap();
    repo.save().await.unwrap();

    // A device code, approved by alice in a browser that, when `signed_out`, has ended
    // since; then the device polls.
    let approve_then_poll = async |device: &str, signed_out: bool| {
        let scope = format!("urn:matrix:client:api:* urn:matrix:client:device:{device}");
        let (status, _, body) = h
            .post(
                "/oauth2/device",
                None,
                &format!(
                    "client_id={}&scope={}",
                    client.id,
                    crate::human::query_value(&scope)
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let device_code = body["device_code"].as_str().unwrap().to_owned();
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = h.state.repos.begin().await.unwrap();
        let browser = repo
            .browser_session()
            .add(&mut rng, &SystemClock, &user, None)
            .await
            .unwrap();
        let grant = repo
            .device_code_grant()
            .find_by_device_code(&device_code)
            .await
            .unwrap()
            .unwrap();
        repo.device_code_grant()
            .fulfill(&SystemClock, grant, browser.id)
            .await
            .unwrap()
            .unwrap();
        if signed_out {
            repo.browser_session()
                .finish(&SystemClock, browser)
                .await
                .unwrap();
        }
        repo.save().await.unwrap();
        h.post(
            "/oauth2/token",
            None,
            &format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code\
                 &client_id={}&device_code={device_code}",
                client.id
            ),
        )
        .await
    };

    let (status, _, body) = approve_then_poll("WITHDRAWN", true).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        homeserver.user("alice").is_none(),
        "no device for a withdrawn approval"
    );

    let (status, _, body) = approve_then_poll("KEPT", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let devices = homeserver.user("alice").unwrap().devices;
    assert_eq!(devices.keys().collect::<Vec<_>>(), ["KEPT"]);
}
