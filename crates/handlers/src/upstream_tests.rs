//! Signing in through an upstream provider, against a small provider served here that
//! signs whatever each test tells it to: the good path (first sign-in, registration with
//! imported claims, a returning sign-in), and each hostile answer refused with a page and
//! nothing stored.
#![allow(clippy::too_many_lines)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use mas_storage::SystemClock;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::test_state::{Up, state};
use crate::{AppState, Resource, router};

const CLIENT_ID: &str = "mas-at-upstream";
const PROVIDER_ID: &str = "01HFVBY12TMNTYTBV8W921M5FA";

/// What the provider answers at its token endpoint, and what it saw there.
#[derive(Default)]
struct Script {
    /// The token endpoint's answer: status and JSON body.
    token: Option<(u16, Value)>,
    /// The userinfo endpoint's answer.
    userinfo: Option<Value>,
    /// The forms the token endpoint received.
    token_requests: Vec<HashMap<String, String>>,
    /// The key set it publishes (replaced to rotate keys).
    jwks: Value,
}

/// The script, as the provider's handlers share it.
type Shared = Arc<Mutex<Script>>;

/// How a test builds the ID token of a trip from the provider and the trip's nonce.
type TokenMaker = Box<dyn Fn(&Provider, &str) -> String>;

/// The provider: its issuer, its signing keys, its script.
struct Provider {
    issuer: String,
    keys: Arc<crate::OAuthState>,
    script: Arc<Mutex<Script>>,
}

async fn provider() -> Provider {
    use axum::extract::{Form, State};
    use axum::routing::{get, post};
    let keys = crate::test_state::oauth();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/issuer", listener.local_addr().unwrap());
    let script = Arc::new(Mutex::new(Script {
        jwks: keys.keys.jwks(),
        ..Script::default()
    }));
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    });
    let app = axum::Router::new()
        .route(
            "/issuer/.well-known/openid-configuration",
            get(move || {
                let discovery = discovery.clone();
                async move { axum::Json(discovery) }
            }),
        )
        .route(
            "/issuer/jwks",
            get(
                |State(s): State<Shared>| async move { axum::Json(s.lock().unwrap().jwks.clone()) },
            ),
        )
        .route(
            "/issuer/token",
            post(
                |State(s): State<Shared>, Form(form): Form<HashMap<String, String>>| async move {
                    let mut script = s.lock().unwrap();
                    script.token_requests.push(form);
                    let (status, body) = script
                        .token
                        .clone()
                        .unwrap_or((500, json!({"error": "server_error"})));
                    (StatusCode::from_u16(status).unwrap(), axum::Json(body))
                },
            ),
        )
        .route(
            "/issuer/userinfo",
            get(|State(s): State<Shared>| async move {
                use axum::response::IntoResponse;
                // A string is a signed answer (a JWT), sent as is.
                match s.lock().unwrap().userinfo.clone().unwrap_or_default() {
                    Value::String(jwt) => {
                        ([(header::CONTENT_TYPE, "application/jwt")], jwt).into_response()
                    }
                    claims => axum::Json(claims).into_response(),
                }
            }),
        )
        .with_state(Arc::clone(&script));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Provider {
        issuer,
        keys,
        script,
    }
}

impl Provider {
    /// ID token claims that pass every check, for this nonce.
    fn claims(&self, nonce: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "upstream-alice",
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "sid": "upstream-session-1",
            "preferred_username": "alice",
            "name": "Alice Upstream",
            "email": "alice@upstream.example",
            "email_verified": true,
        })
    }

    /// The token endpoint answers with this ID token.
    fn answer_with(&self, id_token: &str) {
        self.script.lock().unwrap().token = Some((
            200,
            json!({"access_token": "upstream-at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}),
        ));
    }

    fn signed(&self, claims: &Value) -> String {
        self.keys
            .keys
            .sign(mas_oauth_core::SigningAlgorithm::Rs256, claims)
            .unwrap()
    }
}

/// Stores the provider as `config sync` would.
async fn configure(state: &AppState, provider: &Provider, extra: Value) {
    let mut config = json!({
        "id": PROVIDER_ID,
        "issuer": provider.issuer,
        "human_name": "Example SSO",
        "client_id": CLIENT_ID,
        "client_secret": "upstream-secret",
        "token_endpoint_auth_method": "client_secret_post",
        "scope": "openid profile email",
        "claims_imports": {
            "localpart": {"action": "suggest"},
            "displayname": {"action": "suggest"},
            "email": {"action": "suggest"},
            "account_name": {"template": "{{ user.preferred_username }}@upstream"},
        },
    });
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    let config: mas_upstream::UpstreamProviderConfig = serde_json::from_value(config).unwrap();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let sealed = state
        .encrypter
        .encrypt(&mut rng, config.secret().unwrap().unwrap().as_bytes());
    let mut repo = state.repos.begin().await.unwrap();
    repo.upstream_provider()
        .upsert(
            &SystemClock,
            config.id,
            mas_storage::repository::ProviderParams {
                ui_order: 0,
                issuer: config.issuer.clone(),
                human_name: config.human_name.clone(),
                client_id: config.client_id.clone(),
                encrypted_client_secret: Some(sealed),
                config: mas_upstream::Provider::stored_settings(&config),
            },
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
}

/// A service with the provider configured (`extra` over the defaults), and the provider.
async fn setup(extra: Value) -> (AppState, tempfile::TempDir, Provider) {
    let (state, dir) = state(Arc::new(Up)).await;
    let idp = provider().await;
    configure(&state, &idp, extra).await;
    (state, dir, idp)
}

/// A browser: keeps the cookies the service sets.
struct Browser {
    state: AppState,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new(state: &AppState) -> Self {
        Self {
            state: state.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let mut request = request;
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request
                .headers_mut()
                .insert(header::COOKIE, cookie.parse().unwrap());
        }
        let app = router(
            &[Resource::Human, Resource::Compat],
            None,
            self.state.clone(),
        );
        let response = app.oneshot(request).await.unwrap();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
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

    async fn get(&mut self, uri: &str) -> (StatusCode, HeaderMap, String) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// A whole trip to the provider, which answers honestly: the callback's answer.
    async fn honest_trip(&mut self, idp: &Provider, next: &str) -> (StatusCode, HeaderMap, String) {
        let request = self.start(next).await;
        idp.answer_with(&idp.signed(&idp.claims(&request["nonce"])));
        self.answer(&request["state"], "code=c").await
    }

    /// The provider's answer to the trip of `state`: `rest` after the state in the query.
    async fn answer(&mut self, state: &str, rest: &str) -> (StatusCode, HeaderMap, String) {
        self.get(&format!(
            "/upstream/callback/{PROVIDER_ID}?state={state}&{rest}"
        ))
        .await
    }

    /// Starts a trip: the provider's authorization URL's query.
    async fn start(&mut self, next: &str) -> HashMap<String, String> {
        let (status, headers, page) = self
            .get(&format!("/upstream/authorize/{PROVIDER_ID}?next={next}"))
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let location = url::Url::parse(location(&headers)).unwrap();
        location.query_pairs().into_owned().collect()
    }
}

fn location(headers: &HeaderMap) -> &str {
    headers.get(header::LOCATION).unwrap().to_str().unwrap()
}

fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

/// How many upstream accounts and users are stored.
async fn stored(state: &AppState) -> (usize, Option<mas_data_model::User>) {
    let mut repo = state.repos.reader().await.unwrap();
    let provider = repo
        .upstream_provider()
        .lookup(PROVIDER_ID.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let link = repo
        .upstream_link()
        .find_by_subject(&provider, "upstream-alice")
        .await
        .unwrap();
    let user = repo.user().find_by_username("alice").await.unwrap();
    (usize::from(link.is_some()), user)
}

#[tokio::test]
async fn a_first_sign_in_creates_the_account_and_the_next_signs_straight_in() {
    let (state, _dir, idp) = setup(json!({})).await;
    let mut browser = Browser::new(&state);

    let (status, _, page) = browser.get("/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("upstream/authorize/{PROVIDER_ID}?next="))
            && page.contains("Continue with Example SSO"),
        "the sign-in page has the provider's button: {page}"
    );

    let request = browser.start("/account/").await;
    assert_eq!(request["client_id"], CLIENT_ID);
    assert_eq!(request["response_type"], "code");
    assert_eq!(request["scope"], "openid profile email");
    assert_eq!(
        request["code_challenge_method"], "S256",
        "PKCE, as discovery lists S256"
    );
    assert_eq!(
        request["redirect_uri"],
        format!("https://auth.example.com/upstream/callback/{PROVIDER_ID}")
    );
    idp.answer_with(&idp.signed(&idp.claims(&request["nonce"])));
    idp.script.lock().unwrap().userinfo = Some(json!({"sub": "upstream-alice"}));

    let (status, headers, page) = browser.answer(&request["state"], "code=the-code").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let link_page = location(&headers).to_owned();
    assert!(link_page.starts_with("/upstream/link/"), "{link_page}");
    {
        let script = idp.script.lock().unwrap();
        let form = &script.token_requests[0];
        assert_eq!(form["code"], "the-code");
        assert_eq!(
            form["client_secret"], "upstream-secret",
            "client_secret_post"
        );
        assert_eq!(form["code_verifier"].len(), 43, "the PKCE verifier is sent");
    }

    let (status, _, page) = browser.get(&link_page).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("alice@upstream"), "the account name: {page}");
    assert!(
        page.contains("value=\"alice\""),
        "the suggested username: {page}"
    );
    assert!(page.contains("Alice Upstream") && page.contains("alice@upstream.example"));
    assert_eq!(
        stored(&state).await,
        (1, None),
        "the upstream account is recorded, no user yet"
    );

    // Another browser cannot finish this trip.
    let (status, _, _) = Browser::new(&state).get(&link_page).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let token = csrf(&page);
    let (status, headers, page) = browser
        .post(
            &link_page,
            &[
                ("csrf", &token),
                ("action", "register"),
                ("username", "alice"),
                ("import_displayname", "on"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(location(&headers), "/account/");
    let (_, user) = stored(&state).await;
    let user = user.expect("the account is created");
    {
        let mut repo = state.repos.reader().await.unwrap();
        let emails = repo.user_email().all(&user).await.unwrap();
        assert!(emails.is_empty(), "the unticked address is not added");
        let links = repo.upstream_link().all_for_user(&user).await.unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(
            links[0].human_account_name.as_deref(),
            Some("alice@upstream")
        );
    }
    let (status, _, page) = browser.get("/account/").await;
    assert_eq!(status, StatusCode::OK, "signed in: {page}");

    // The trip is used up.
    let (status, _, _) = browser.get(&link_page).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A returning sign-in, from a fresh browser, goes straight through.
    let mut other = Browser::new(&state);
    let (_, headers, _) = other.honest_trip(&idp, "/account/").await;
    let (status, headers, page) = other.get(location(&headers)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(location(&headers), "/account/");
    assert!(other.cookies.contains_key("mas-session"));
}

/// Runs one trip whose token endpoint answers `id_token` (built from the trip's nonce);
/// returns the callback's status and page.
async fn trip_with(
    state: &AppState,
    idp: &Provider,
    id_token: impl Fn(&Provider, &str) -> String,
) -> (StatusCode, String) {
    let mut browser = Browser::new(state);
    let request = browser.start("/account/").await;
    idp.answer_with(&id_token(idp, &request["nonce"]));
    let (status, _, page) = browser.answer(&request["state"], "code=c").await;
    (status, page)
}

fn with(claims: Value, changes: &Value) -> Value {
    let mut claims = claims;
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

#[tokio::test]
async fn hostile_id_tokens_are_refused_with_a_page_and_nothing_stored() {
    let (state, _dir, idp) = setup(json!({})).await;
    let stranger = crate::test_state::oauth();
    let now = chrono::Utc::now().timestamp();
    let earlier_nonce = Arc::new(Mutex::new(String::new()));
    let cases: Vec<(&str, TokenMaker)> = vec![
        (
            "wrong issuer",
            Box::new(|p, n| p.signed(&with(p.claims(n), &json!({"iss": "https://evil.example/"})))),
        ),
        (
            "wrong audience",
            Box::new(|p, n| p.signed(&with(p.claims(n), &json!({"aud": "someone-else"})))),
        ),
        (
            "missing nonce",
            Box::new(|p, n| p.signed(&with(p.claims(n), &json!({"nonce": null})))),
        ),
        (
            "expired",
            Box::new(move |p, n| {
                p.signed(&with(
                    p.claims(n),
                    &json!({"iat": now - 3600, "exp": now - 1800}),
                ))
            }),
        ),
        (
            "alg none",
            Box::new(|p, n| {
                let b64 = mas_oauth_core::jose::b64;
                format!(
                    "{}.{}.",
                    b64(br#"{"alg":"none","typ":"JWT"}"#),
                    b64(p.claims(n).to_string().as_bytes())
                )
            }),
        ),
        (
            "HS256 signed with the public key",
            Box::new(|p, n| {
                let public = p.keys.keys.jwks().to_string();
                mas_oauth_core::jose::sign_hmac("HS256", public.as_bytes(), &p.claims(n)).unwrap()
            }),
        ),
        (
            "a key not in the key set",
            Box::new(move |p, n| {
                stranger
                    .keys
                    .sign(mas_oauth_core::SigningAlgorithm::Rs256, &p.claims(n))
                    .unwrap()
            }),
        ),
        (
            "a nonce replayed from an earlier trip",
            Box::new({
                let earlier_nonce = Arc::clone(&earlier_nonce);
                move |p, _| p.signed(&p.claims(&earlier_nonce.lock().unwrap()))
            }),
        ),
    ];
    // The earlier trip whose nonce is replayed.
    let mut earlier = Browser::new(&state);
    *earlier_nonce.lock().unwrap() = earlier.start("/").await["nonce"].clone();
    for (name, token) in cases {
        let (status, page) = trip_with(&state, &idp, token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {page}");
        assert!(
            page.contains("Signing in with Example SSO did not work")
                && page.contains("ID token was refused"),
            "{name}: {page}"
        );
        assert_eq!(stored(&state).await, (0, None), "{name}: nothing stored");
    }
    // The same provider, answering honestly, works: the refusals were the tokens'.
    let (status, page) = trip_with(&state, &idp, |p, n| p.signed(&p.claims(n))).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
}

#[tokio::test]
async fn states_that_were_never_issued_or_already_used_and_provider_errors_are_refused() {
    let (state, _dir, idp) = setup(json!({})).await;
    let mut browser = Browser::new(&state);

    let (status, _, page) = browser
        .get(&format!(
            "/upstream/callback/{PROVIDER_ID}?state=never-issued&code=c"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("This sign-in cannot be completed"), "{page}");

    let request = browser.start("/").await;
    idp.answer_with(&idp.signed(&idp.claims(&request["nonce"])));
    let callback = format!(
        "/upstream/callback/{PROVIDER_ID}?state={}&code=c",
        request["state"]
    );
    let (status, _, _) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, page) = browser.get(&callback).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a state is used once: {page}"
    );
    assert_eq!(
        idp.script.lock().unwrap().token_requests.len(),
        1,
        "the replay never reached the provider"
    );

    let request = browser.start("/").await;
    let (status, _, page) = browser
        .answer(
            &request["state"],
            "error=access_denied&error_description=The+user+said+no",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("access_denied: The user said no"), "{page}");

    // A code the provider refuses.
    let request = browser.start("/").await;
    idp.script.lock().unwrap().token = Some((400, json!({"error": "invalid_grant"})));
    let (status, _, page) = browser.answer(&request["state"], "code=bad").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("invalid_grant"), "{page}");
    assert_eq!(
        stored(&state).await.0,
        1,
        "only the honest answer made an account record"
    );
}

#[tokio::test]
async fn rotated_keys_are_fetched_again_and_form_post_answers_work() {
    let (state, _dir, idp) = setup(
        json!({"response_mode": "form_post", "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    let mut browser = Browser::new(&state);
    // The keys are fetched (and kept) on a first trip.
    let request = browser.start("/").await;
    assert_eq!(request["response_mode"], "form_post");
    idp.answer_with(&idp.signed(&idp.claims(&request["nonce"])));
    let (status, _, page) = browser
        .post(
            &format!("/upstream/callback/{PROVIDER_ID}"),
            &[("state", &request["state"]), ("code", "c")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert!(
        !idp.script.lock().unwrap().token_requests[0].contains_key("client_secret"),
        "client_secret_basic sends the secret in the header"
    );

    // The provider rotates its keys: the kept set lacks the new one.
    let rotated = crate::test_state::oauth();
    idp.script.lock().unwrap().jwks = rotated.keys.jwks();
    let request = browser.start("/").await;
    idp.answer_with(
        &rotated
            .keys
            .sign(
                mas_oauth_core::SigningAlgorithm::Rs256,
                &idp.claims(&request["nonce"]),
            )
            .unwrap(),
    );
    let (status, _, page) = browser
        .post(
            &format!("/upstream/callback/{PROVIDER_ID}"),
            &[("state", &request["state"]), ("code", "c")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
}

#[tokio::test]
async fn a_provider_that_is_down_gets_a_page_and_no_trip_is_stored() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let idp = provider().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}/issuer", closed.local_addr().unwrap());
    drop(closed);
    let down = Provider {
        issuer,
        keys: Arc::clone(&idp.keys),
        script: Arc::clone(&idp.script),
    };
    configure(&state, &down, json!({})).await;
    let (status, _, page) = Browser::new(&state)
        .get(&format!("/upstream/authorize/{PROVIDER_ID}?next=/"))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("could not be reached"), "{page}");
    let removed = state
        .repos
        .begin()
        .await
        .unwrap()
        .upstream_session()
        .cleanup(chrono::Utc::now() + chrono::TimeDelta::days(1))
        .await
        .unwrap();
    assert_eq!(removed, 0, "no trip was stored");
}

#[tokio::test]
async fn forced_claims_and_on_conflict_link_to_an_existing_account() {
    let (state, _dir, idp) = setup(json!({"claims_imports": {
        "skip_confirmation": true,
        "localpart": {"action": "require", "on_conflict": "add"},
        "email": {"action": "force"},
    }}))
    .await;
    // alice exists already, with a password.
    let existing = {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = state.repos.begin().await.unwrap();
        let user = repo
            .user()
            .add(&mut rng, &SystemClock, "alice")
            .await
            .unwrap();
        repo.save().await.unwrap();
        user
    };
    let mut browser = Browser::new(&state);
    let (_, headers, _) = browser.honest_trip(&idp, "/account/").await;
    let (status, headers, page) = browser.get(location(&headers)).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "on_conflict add links and signs in: {page}"
    );
    assert_eq!(location(&headers), "/account/");
    let links = state
        .repos
        .reader()
        .await
        .unwrap()
        .upstream_link()
        .all_for_user(&existing)
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
}

#[tokio::test]
async fn legacy_clients_see_the_providers_and_go_straight_to_one() {
    let (state, _dir, _idp) =
        setup(json!({"synapse_idp_id": "oidc-example", "brand_name": "gitlab"})).await;
    let mut browser = Browser::new(&state);
    let (status, _, body) = browser.get("/_matrix/client/v3/login").await;
    assert_eq!(status, StatusCode::OK);
    let flows: Value = serde_json::from_str(&body).unwrap();
    let sso = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "m.login.sso")
        .unwrap();
    assert_eq!(
        sso["identity_providers"],
        json!([{"id": "oidc-example", "name": "Example SSO", "brand": "gitlab"}])
    );
    let (status, headers, _) = browser
        .get("/_matrix/client/v3/login/sso/redirect/oidc-example?redirectUrl=https%3A%2F%2Fapp.example%2F")
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let target = url::Url::parse(location(&headers)).unwrap();
    assert_eq!(target.path(), format!("/upstream/authorize/{PROVIDER_ID}"));
    let next: HashMap<_, _> = target.query_pairs().into_owned().collect();
    assert!(
        next["next"].starts_with("/complete-compat-sso/"),
        "{next:?}"
    );
}

/// A browser that signed up through the provider; returns the user.
async fn signed_up(
    state: &AppState,
    idp: &Provider,
    browser: &mut Browser,
) -> mas_data_model::User {
    let (_, headers, _) = browser.honest_trip(idp, "/account/").await;
    let link_page = location(&headers).to_owned();
    let (_, _, page) = browser.get(&link_page).await;
    let token = csrf(&page);
    let (status, _, page) = browser
        .post(
            &link_page,
            &[
                ("csrf", &token),
                ("action", "register"),
                ("username", "alice"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    stored(state).await.1.unwrap()
}

#[tokio::test]
async fn a_back_channel_logout_ends_the_sessions_the_providers_session_opened() {
    let (state, _dir, idp) = setup(json!({"on_backchannel_logout": "logout_all"})).await;
    let mut browser = Browser::new(&state);
    let user = signed_up(&state, &idp, &mut browser).await;
    // A legacy client signed in from that browser session.
    let (browser_session, device_session) = {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = state.repos.begin().await.unwrap();
        let sessions = repo
            .browser_session()
            .list(&user, true, mas_storage::Pagination::first(10))
            .await
            .unwrap()
            .edges;
        assert_eq!(sessions.len(), 1);
        let compat = repo
            .compat_session()
            .add(
                &mut rng,
                &SystemClock,
                &user,
                Some("DEVICEA".to_owned()),
                Some(sessions[0].id),
                false,
                None,
            )
            .await
            .unwrap();
        repo.save().await.unwrap();
        (sessions[0].id, compat.id)
    };
    let now = chrono::Utc::now().timestamp();
    let logout_claims = json!({
        "iss": idp.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": "logout-1",
        "sid": "upstream-session-1",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    let backchannel = format!("/upstream/backchannel-logout/{PROVIDER_ID}");

    // A token that is really an ID token (it has a nonce) ends nothing.
    let forged = idp.signed(&with(logout_claims.clone(), &json!({"nonce": "n"})));
    let (status, _, body) = browser
        .post(&backchannel, &[("logout_token", &forged)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "invalid_request");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("nonce"),
        "{body}"
    );
    let (status, _, _) = browser.get("/account/").await;
    assert_eq!(status, StatusCode::OK, "still signed in");

    // The provider's session named with another account's subject ends nothing.
    let stranger = idp.signed(&with(
        logout_claims.clone(),
        &json!({"sub": "someone-else"}),
    ));
    let (status, _, _) = browser
        .post(&backchannel, &[("logout_token", &stranger)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = browser.get("/account/").await;
    assert_eq!(status, StatusCode::OK, "still signed in");

    // The provider, disabled here since, can still end the sessions it opened.
    {
        let mut repo = state.repos.begin().await.unwrap();
        let provider = repo
            .upstream_provider()
            .lookup(PROVIDER_ID.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        repo.upstream_provider()
            .disable(&SystemClock, provider)
            .await
            .unwrap();
        repo.save().await.unwrap();
    }
    let token = idp.signed(&with(
        logout_claims.clone(),
        &json!({"sub": "upstream-alice"}),
    ));
    let (status, headers, body) = Browser::new(&state)
        .post(&backchannel, &[("logout_token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let mut repo = state.repos.reader().await.unwrap();
    let browser_after = repo
        .browser_session()
        .lookup(browser_session)
        .await
        .unwrap()
        .unwrap();
    assert!(!browser_after.is_active(), "the browser session ended");
    let device_after = repo
        .compat_session()
        .lookup(device_session)
        .await
        .unwrap()
        .unwrap();
    assert!(
        device_after.finished_at.is_some(),
        "logout_all ends the device's session too"
    );
    drop(repo);
    let (status, headers, _) = browser.get("/account/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location(&headers).starts_with("/login"), "signed out here");
}

#[tokio::test]
async fn trips_are_throttled_per_address() {
    let (state, _dir, _idp) = setup(json!({})).await;
    let app = router(&[Resource::Human], None, state.clone());
    let uri = format!("/upstream/authorize/{PROVIDER_ID}?next=/");
    let mut statuses = Vec::new();
    for _ in 0..70 {
        let request =
            crate::human_tests::from_peer(Request::get(&uri), "203.0.113.7:1000", Body::empty());
        statuses.push(app.clone().oneshot(request).await.unwrap().status());
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
}

#[tokio::test]
async fn an_answer_brought_by_another_browser_is_refused() {
    let (state, _dir, idp) = setup(json!({})).await;
    let mut owner = Browser::new(&state);
    let request = owner.start("/").await;
    idp.answer_with(&idp.signed(&idp.claims(&request["nonce"])));
    let callback = format!("/upstream/callback/{PROVIDER_ID}");
    let query = format!("{callback}?state={}&code=c", request["state"]);

    // Someone else's browser, sent the provider's answer: nothing is exchanged.
    let (status, _, page) = Browser::new(&state).get(&query).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let fields = [("state", request["state"].as_str()), ("code", "c")];
    // A form_post answer arrives without cookies: a page of ours posts it again, with them.
    let (status, headers, page) = Browser::new(&state).post(&callback, &fields).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains(r#"name="again" value="1""#) && page.contains(r#"name="code" value="c""#),
        "{page}"
    );
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'sha256-")
    );
    let again = [fields[0], fields[1], ("again", "1")];
    let (status, _, _) = Browser::new(&state).post(&callback, &again).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "still not the trip's browser"
    );
    assert!(idp.script.lock().unwrap().token_requests.is_empty());

    // Posted again from the browser that started it: taken.
    let (status, headers, page) = owner.post(&callback, &again).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert!(location(&headers).starts_with("/upstream/link/"));
    assert_eq!(idp.script.lock().unwrap().token_requests.len(), 1);
}

/// The forms a client's back-channel logout endpoint received.
type Received = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// A client's back-channel logout endpoint: its URL and what it receives.
async fn logout_listener() -> (String, Received) {
    use axum::extract::{Form, State};
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/logout", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route(
            "/logout",
            axum::routing::post(
                |State(r): State<Received>, Form(form): Form<HashMap<String, String>>| async move {
                    r.lock().unwrap().push(form);
                },
            ),
        )
        .with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (uri, received)
}

#[tokio::test]
async fn signing_out_sends_configured_clients_a_logout_token() {
    let (state, _dir) = state(Arc::new(Up)).await;
    let (uri, received) = logout_listener().await;
    let person = crate::account_tests::signed_in(&state, "alice").await;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let (configured, registered) = {
        let mut repo = state.repos.begin().await.unwrap();
        let metadata = json!({"backchannel_logout_uri": uri});
        let mut params = crate::test_state::client_params(
            mas_data_model::ClientAuthMethod::None,
            vec![url::Url::parse("https://app.example.com/cb").unwrap()],
            &["authorization_code"],
        );
        params.metadata = Some(metadata);
        let configured = ulid::Ulid::new();
        repo.client()
            .upsert_static(&SystemClock, configured, params.clone())
            .await
            .unwrap();
        // A registered client cannot make the service post anywhere.
        let registered = repo
            .client()
            .add_dynamic(&mut rng, &SystemClock, params)
            .await
            .unwrap()
            .id;
        for client in [configured, registered] {
            repo.session()
                .add(
                    &mut rng,
                    &SystemClock,
                    client,
                    Some(person.user.id),
                    Some(person.session.id),
                    "openid",
                    None,
                )
                .await
                .unwrap();
        }
        repo.save().await.unwrap();
        (configured, registered)
    };
    let answer =
        crate::account_tests::send(&state, &person.cookies, "/logout", Some("csrf=csrf-value"))
            .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let mut forms = Vec::new();
    for _ in 0..50 {
        forms = received.lock().unwrap().clone();
        if !forms.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Time for a second (wrong) one to arrive too.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(forms, received.lock().unwrap().clone());
    assert_eq!(forms.len(), 1, "one token, to the configured client only");
    let token = mas_oauth_core::jose::UnverifiedJws::parse(&forms[0]["logout_token"]).unwrap();
    token.verify_with_jwks(&state.oauth.keys.jwks()).unwrap();
    let claims = &token.payload;
    assert_eq!(claims["aud"], configured.to_string());
    assert_ne!(claims["aud"], registered.to_string());
    assert_eq!(claims["sid"], person.session.id.to_string());
    assert_eq!(claims["sub"], person.user.id.to_string());
    assert_eq!(claims["iss"], state.oauth.endpoints.issuer.as_str());
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn a_signed_userinfo_answer_is_checked() {
    let (state, _dir, idp) = setup(json!({
        "fetch_userinfo": true,
        "userinfo_signed_response_alg": "RS256",
    }))
    .await;
    let userinfo = json!({"sub": "upstream-alice", "preferred_username": "alice"});
    let stranger = crate::test_state::oauth();
    let cases = [
        (idp.signed(&userinfo), StatusCode::SEE_OTHER),
        // Plain JSON where a signed answer is expected.
        (String::new(), StatusCode::BAD_REQUEST),
        // Signed by a key the provider does not publish.
        (
            stranger
                .keys
                .sign(mas_oauth_core::SigningAlgorithm::Rs256, &userinfo)
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        // Another subject than the ID token's.
        (
            idp.signed(&json!({"sub": "someone-else"})),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (answer, expected) in cases {
        idp.script.lock().unwrap().userinfo = Some(if answer.is_empty() {
            userinfo.clone()
        } else {
            Value::String(answer)
        });
        let mut browser = Browser::new(&state);
        let (status, _, page) = browser.honest_trip(&idp, "/").await;
        assert_eq!(status, expected, "{page}");
        if expected == StatusCode::BAD_REQUEST {
            assert!(page.contains("userinfo answer was refused"), "{page}");
        }
    }
}

#[tokio::test]
async fn upstream_registration_asks_for_the_terms_and_follows_the_policy() {
    use mas_oauth_core::policy::{Policy, StringLists, StringMatch};

    let (mut state, _dir, idp) = setup(json!({})).await;
    state.tos_uri = Some("https://example.com/tos".into());
    state.policy = Arc::new(Policy {
        banned_usernames: Some(
            StringMatch::new(StringLists {
                literals: vec!["alice".to_owned()],
                ..StringLists::default()
            })
            .unwrap(),
        ),
        ..Policy::default()
    });
    let mut browser = Browser::new(&state);
    let (_, headers, _) = browser.honest_trip(&idp, "/account/").await;
    let link_page = location(&headers).to_owned();
    let (_, _, page) = browser.get(&link_page).await;
    assert!(page.contains(r#"name="accept_terms""#), "{page}");
    let token = csrf(&page);
    let register = |username: &'static str, accept: bool| {
        let mut form = vec![
            ("csrf", token.clone()),
            ("action", "register".to_owned()),
            ("username", username.to_owned()),
        ];
        if accept {
            form.push(("accept_terms", "on".to_owned()));
        }
        form
    };
    for (username, accept, status, said) in [
        (
            "alice2",
            false,
            StatusCode::BAD_REQUEST,
            "Accept the terms of service",
        ),
        (
            "alice",
            true,
            StatusCode::FORBIDDEN,
            "This username is not allowed here.",
        ),
    ] {
        let form = register(username, accept);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, _, page) = browser.post(&link_page, &form).await;
        assert_eq!(got, status, "{username}: {page}");
        assert!(page.contains(said), "{said}: {page}");
    }
    let named = async |name: &str| {
        let mut repo = state.repos.reader().await.unwrap();
        repo.user().find_by_username(name).await.unwrap()
    };
    assert!(named("alice").await.is_none() && named("alice2").await.is_none());
    let form = register("alice2", true);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (got, _, page) = browser.post(&link_page, &form).await;
    assert_eq!(got, StatusCode::SEE_OTHER, "{page}");
    let user = named("alice2").await.expect("the account is made");
    let mut repo = state.repos.reader().await.unwrap();
    assert_eq!(
        repo.user_registration()
            .accepted_terms(&user)
            .await
            .unwrap(),
        ["https://example.com/tos"]
    );
}
