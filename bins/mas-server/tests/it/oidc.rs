//! The whole OpenID Connect flow against the real `mas-server`, driven by a relying party
//! no one here wrote (the `openidconnect` crate) and a cookie-keeping HTTP client playing
//! the browser. Runs on SQLite and on PostgreSQL.

use std::time::Duration;

use mas_storage::{RepositoryFactory, SystemClock};
use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};

use crate::start_configured;

const CLIENT_ID: &str = "01J2ZQ9Y3XW6RMK1VF8H0N5D7B";
const CLIENT_SECRET: &str = "relying-party-secret";
const REDIRECT: &str = "http://127.0.0.1/callback";
const PASSWORD: &str = "correct horse battery staple";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &std::path::Path, uri: &str, port: u16) {
    let generated = mas_config::generate().unwrap();
    let keys =
        serde_yaml::to_string(&serde_yaml::to_value(&generated.secrets.keys).unwrap()).unwrap();
    let keys: String = keys.lines().flat_map(|l| ["    ", l, "\n"]).collect();
    let text = format!(
        "http:
  public_base: http://127.0.0.1:{port}/
  listeners:
    - name: web
      resources: [{{name: discovery}}, {{name: oauth}}, {{name: human}}, {{name: health}}]
      binds: [{{address: '127.0.0.1:{port}'}}]
database:
  uri: {uri}
matrix:
  secret: test-secret
# One test signs in several times a minute from one address.
rate_limiting:
  login:
    per_ip: {{burst: 100, per_second: 10}}
secrets:
  encryption: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
  keys:
{keys}clients:
  - client_id: {CLIENT_ID}
    client_auth_method: client_secret_basic
    client_secret: {CLIENT_SECRET}
    client_name: Test RP
    redirect_uris: [{REDIRECT}]
"
    );
    std::fs::write(dir.join("config.yaml"), text).unwrap();
}

async fn create_user(uri: &str) {
    let factory = SqlRepositoryFactory::connect(&PoolOptions {
        uri: uri.to_owned(),
        max_connections: 2,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
    })
    .await
    .unwrap();
    let manager = mas_oauth_core::passwords::PasswordManager::new(
        vec![mas_oauth_core::passwords::Scheme {
            version: 1,
            algorithm: mas_oauth_core::passwords::Algorithm::Argon2id,
            secret: None,
            unicode_normalization: false,
        }],
        0,
    );
    let (version, hash) = manager.hash([3; 16], PASSWORD).unwrap();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = factory.begin().await.unwrap();
    let user = repo
        .user()
        .add(&mut rng, &SystemClock, "alice")
        .await
        .unwrap();
    repo.user_password()
        .add(&mut rng, &SystemClock, &user, version, hash, None)
        .await
        .unwrap();
    repo.user_email()
        .add(&mut rng, &SystemClock, &user, "alice@example.com")
        .await
        .unwrap();
    repo.save().await.unwrap();
    factory.close().await.unwrap();
}

/// The value of a hidden form field in a page.
fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    let raw = page[start..].split('"').next().unwrap();
    // Undo the HTML escaping a browser would undo.
    raw.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 303, "{response:?}");
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// A person with a browser: follows the authorization URL, logs in, consents, and
/// returns where the service finally sends them (the client's redirect URI), and the
/// browser, signed in.
async fn browse(base: &str, authorize_url: &str) -> (url::Url, reqwest::Client) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let absolute = |path: String| match path.strip_prefix('/') {
        Some(local) => format!("{base}{local}"),
        None => path,
    };
    let consent = absolute(location(&browser.get(authorize_url).send().await.unwrap()));
    assert!(consent.contains("/consent/"), "{consent}");
    let login = absolute(location(&browser.get(&consent).send().await.unwrap()));
    assert!(login.contains("/login?next="), "{login}");
    let page = browser
        .get(&login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = [
        ("csrf", field(&page, "csrf")),
        ("next", field(&page, "next")),
        ("username", "alice".to_owned()),
        ("password", "wrong password".to_owned()),
    ];
    let refused = browser
        .post(format!("{base}login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Wrong username or password")
    );
    let mut form = form;
    PASSWORD.clone_into(&mut form[3].1);
    let back = absolute(location(
        &browser
            .post(format!("{base}login"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    ));
    assert_eq!(back, consent);
    let page = browser
        .get(&consent)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Test RP") && page.contains("alice"), "{page}");
    let allow = [
        ("csrf", field(&page, "csrf")),
        ("action", "allow".to_owned()),
    ];
    let done = location(&browser.post(&consent).form(&allow).send().await.unwrap());
    (url::Url::parse(&done).unwrap(), browser)
}

/// A person approving a device: opens the verification link, logs in, confirms the code
/// and allows the device.
async fn approve_device(base: &str, verification: &str) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let absolute = |path: String| match path.strip_prefix('/') {
        Some(local) => format!("{base}{local}"),
        None => path,
    };
    let login = absolute(location(&browser.get(verification).send().await.unwrap()));
    assert!(login.contains("/login?next="), "{login}");
    let page = browser
        .get(&login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = [
        ("csrf", field(&page, "csrf")),
        ("next", field(&page, "next")),
        ("username", "alice".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let link = absolute(location(
        &browser
            .post(format!("{base}login"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    ));
    assert!(link.contains("/link?code="), "{link}");
    let page = browser
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = [
        ("csrf", field(&page, "csrf")),
        ("code", field(&page, "code")),
    ];
    let device = absolute(location(
        &browser
            .post(format!("{base}link"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    ));
    assert!(device.contains("/device/"), "{device}");
    let page = browser
        .get(&device)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let allow = [
        ("csrf", field(&page, "csrf")),
        ("action", "allow".to_owned()),
    ];
    let done = browser
        .post(&device)
        .form(&allow)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(done.contains("Device connected"), "{done}");
}

async fn the_whole_flow(uri: &str) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(dir.path(), uri, port);
    let server = start_configured(dir.path(), &["-c", "config.yaml"]);
    create_user(uri).await;
    let base = format!("http://127.0.0.1:{port}/");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(base.clone()).unwrap(), &http)
            .await
            .expect("discovery and the JWK set are valid for the relying party");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(CLIENT_ID.to_owned()),
        Some(ClientSecret::new(CLIENT_SECRET.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap())
    .set_introspection_url(IntrospectionUrl::new(format!("{base}oauth2/introspect")).unwrap());
    // An authorization URL with PKCE, asking for `scope` (beside `openid`).
    let authorize =
        |scope: Option<&str>, prompt: Option<CoreAuthPrompt>, max_age: Option<Duration>| {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            let mut request = client.authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            );
            if let Some(scope) = scope {
                request = request.add_scope(Scope::new(scope.to_owned()));
            }
            if let Some(prompt) = prompt {
                request = request.add_prompt(prompt);
            }
            if let Some(max_age) = max_age {
                request = request.set_max_age(max_age);
            }
            let (url, csrf, nonce) = request.set_pkce_challenge(challenge).url();
            (url, csrf, nonce, verifier)
        };

    let (authorize_url, csrf, nonce, verifier) = authorize(Some("email"), None, None);

    let (callback, browser) = browse(&base, authorize_url.as_str()).await;
    assert_eq!(callback.as_str().split('?').next(), Some(REDIRECT));
    let query: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
    assert_eq!(query.get("state"), Some(csrf.secret()));
    assert_eq!(
        query.get("iss"),
        Some(&base),
        "RFC 9207: the response names its issuer"
    );
    let code = query["code"].clone();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchanges for tokens");
    let id_token = tokens.id_token().expect("an ID token for the openid scope");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("the ID token verifies against the JWK set");
    let expected_hash = claims.access_token_hash().expect("at_hash");
    let actual_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(expected_hash, &actual_hash);
    assert!(claims.auth_time().is_some());
    let subject = claims.subject().to_string();

    // Consent is remembered while that session is open: the same browser asking again,
    // even silently (prompt=none), goes straight back to the client with a code.
    let (silent_url, silent_state, _, silent_verifier) =
        authorize(Some("email"), Some(CoreAuthPrompt::None), None);
    let answer = location(&browser.get(silent_url.as_str()).send().await.unwrap());
    let answer = url::Url::parse(&answer).unwrap();
    assert_eq!(
        answer.as_str().split('?').next(),
        Some(REDIRECT),
        "{answer}"
    );
    let query: std::collections::HashMap<_, _> = answer.query_pairs().into_owned().collect();
    assert_eq!(query.get("state"), Some(silent_state.secret()));
    let silent_tokens = client
        .exchange_code(AuthorizationCode::new(query["code"].clone()))
        .unwrap()
        .set_pkce_verifier(silent_verifier)
        .request_async(&http)
        .await
        .expect("the silently issued code exchanges for tokens");
    // prompt=consent asks again; a browser without a session cannot be silent.
    let (ask_url, ..) = authorize(None, Some(CoreAuthPrompt::Consent), None);
    let consent = location(&browser.get(ask_url.as_str()).send().await.unwrap());
    assert!(consent.starts_with("/consent/"), "{consent}");
    let page = browser
        .get(format!("{base}{}", &consent[1..]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Allow"));
    let stranger = location(&http.get(silent_url.as_str()).send().await.unwrap());
    assert!(stranger.contains("error=login_required"), "{stranger}");
    // Silently asking for more than was allowed is `consent_required`.
    let (more_url, ..) = authorize(
        Some("urn:matrix:client:api:*"),
        Some(CoreAuthPrompt::None),
        None,
    );
    let more = location(&browser.get(more_url.as_str()).send().await.unwrap());
    assert!(more.contains("error=consent_required"), "{more}");
    // Allowing an admin scope needs `can_request_admin`, which alice lacks.
    let (admin_url, ..) = authorize(Some("urn:synapse:admin:*"), None, None);
    let consent = location(&browser.get(admin_url.as_str()).send().await.unwrap());
    let consent = format!("{base}{}", &consent[1..]);
    let page = browser
        .get(&consent)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("urn:synapse:admin:*"), "{page}");
    let allow = [
        ("csrf", field(&page, "csrf")),
        ("action", "allow".to_owned()),
    ];
    let denied = location(&browser.post(&consent).form(&allow).send().await.unwrap());
    assert!(
        denied.starts_with(REDIRECT) && denied.contains("error=access_denied"),
        "{denied}"
    );
    // prompt=login and max_age=0 want a login newer than the request: the consent page
    // sends the signed-in browser to give its password again.
    for (fresh, ..) in [
        authorize(None, Some(CoreAuthPrompt::Login), None),
        authorize(None, None, Some(Duration::ZERO)),
    ] {
        let consent = location(&browser.get(fresh.as_str()).send().await.unwrap());
        assert!(consent.starts_with("/consent/"), "{consent}");
        let login = location(
            &browser
                .get(format!("{base}{}", &consent[1..]))
                .send()
                .await
                .unwrap(),
        );
        assert!(
            login.starts_with("/login?reauth=true&next="),
            "{fresh}: {login}"
        );
    }
    // Ending the silent session: with the first one ended below, consent is asked again.
    let revoked = http
        .post(format!("{base}oauth2/revoke"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[(
            "token",
            silent_tokens.refresh_token().unwrap().secret().as_str(),
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    // The code is single-use: a replay fails and ends the session it opened.
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert!(replay.is_err());

    // The session ended with the replay: start again for the rest of the story.
    let (authorize_url, _, nonce, verifier) = authorize(Some("email"), None, None);
    let (callback, _) = browse(&base, authorize_url.as_str()).await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    tokens
        .id_token()
        .unwrap()
        .claims(&id_verifier, &nonce)
        .unwrap();

    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo answers");
    assert_eq!(userinfo.subject().as_str(), subject);
    assert_eq!(
        userinfo.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert_eq!(
        userinfo.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );

    let introspection = client
        .introspect(tokens.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(introspection.active());
    assert_eq!(introspection.username(), Some("alice"));

    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await
        .expect("the refresh token rotates");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        tokens.refresh_token().unwrap().secret()
    );
    // Use the new access token, then present the old refresh token again: a theft.
    let _: CoreUserInfoClaims = client
        .user_info(refreshed.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let reused = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http)
        .await;
    assert!(reused.is_err(), "a reused refresh token is refused");
    let after = client
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(!after.active(), "and the whole session ended with it");

    // Revocation, in a fresh session.
    let (authorize_url, _, _, verifier) = authorize(None, None, None);
    let (callback, _) = browse(&base, authorize_url.as_str()).await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    // The crate refuses revocation over plain HTTP (our test server), so this one request
    // is made by hand, exactly as RFC 7009 describes it.
    let revoked = http
        .post(format!("{base}oauth2/revoke"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("token", tokens.refresh_token().unwrap().secret().as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let after = client
        .introspect(tokens.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(
        !after.active(),
        "revoking the refresh token ends the session"
    );

    // The device flow (RFC 8628): the device asks, the person approves elsewhere.
    let device_client = client.clone().set_device_authorization_url(
        openidconnect::DeviceAuthorizationUrl::new(format!("{base}oauth2/device")).unwrap(),
    );
    let details: openidconnect::core::CoreDeviceAuthorizationResponse = device_client
        .exchange_device_code()
        .add_scope(Scope::new("openid".to_owned()))
        .request_async(&http)
        .await
        .expect("the device authorization endpoint answers");
    assert_eq!(details.user_code().secret().len(), 9);
    let complete = details
        .verification_uri_complete()
        .expect("a complete URI")
        .secret()
        .clone();
    approve_device(&base, &complete).await;
    let device_tokens = device_client
        .exchange_device_access_token(&details)
        .unwrap()
        .request_async(&http, tokio::time::sleep, Some(Duration::from_mins(1)))
        .await
        .expect("the device gets its tokens once approved");
    let introspection = client
        .introspect(device_tokens.access_token())
        .request_async(&http)
        .await
        .unwrap();
    assert!(introspection.active());
    assert_eq!(introspection.username(), Some("alice"));

    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    the_whole_flow(&uri).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_flow_on_postgres() {
    let Some(pg) = mas_testing::TestPostgres::create().await else {
        return;
    };
    the_whole_flow(pg.url()).await;
}
