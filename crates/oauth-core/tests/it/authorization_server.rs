//! The authorization-server example, in memory, driven by the `openidconnect` crate as a
//! relying party would: discovery, a code flow with PKCE and a nonce, the ID token
//! checked against the published keys, userinfo, refresh, and a replayed code.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

#[path = "../../examples/authorization_server.rs"]
mod example;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "a long enough password";

/// The grant ID the sign-in form carries.
fn grant_in(page: &str) -> String {
    let start = page
        .find(r#"name="grant" value=""#)
        .expect("a sign-in form")
        + 20;
    page[start..].split('"').next().unwrap().to_owned()
}

/// The query parameters of a redirect.
fn query_of(response: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 303, "a redirect to the client");
    let location = response.headers()["location"].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    url.query_pairs().into_owned().collect()
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // One relying party's whole story.
async fn openidconnect_completes_a_code_flow_with_pkce_against_the_in_memory_example() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let secret = "the example client's secret";
    let (provider, client_id) = example::provider(address, PASSWORD, secret, REDIRECT).unwrap();
    let issuer = provider.endpoints.issuer.to_string();
    let server = tokio::spawn(example::server::serve(listener, provider));

    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.to_string()),
        Some(ClientSecret::new(secret.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());

    // The person signs in and allows the request.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let page = http.get(url.clone()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let grant = grant_in(&page.text().await.unwrap());
    let answer = |grant: String, password: &'static str, action: &'static str| {
        let form = [
            ("grant", grant),
            ("username", "alice".to_owned()),
            ("password", password.to_owned()),
            ("action", action.to_owned()),
        ];
        http.post(format!("{issuer}authorize")).form(&form).send()
    };
    let wrong = answer(grant.clone(), "not the password", "allow")
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401, "a wrong password is refused");
    let query = query_of(&answer(grant.clone(), PASSWORD, "allow").await.unwrap());
    assert_eq!(param(&query, "state"), Some(csrf.secret().as_str()));
    assert_eq!(param(&query, "iss"), Some(issuer.as_str()));
    let code = param(&query, "code").expect("a code").to_owned();
    let again = answer(grant, PASSWORD, "allow").await.unwrap();
    assert_eq!(again.status(), 404, "a request is answered once");

    // The code, with its verifier, for tokens; the ID token checks out.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token for `openid`");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.issuer().as_str(), issuer);
    assert!(claims.auth_time().is_some(), "when alice signed in");
    let info: openidconnect::core::CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));

    // A refresh gives a new pair; the old refresh token is spent.
    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );

    // The code a second time: refused, and the session it opened ends (RFC 9700).
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert!(replay.is_err(), "a code works once");
    let userinfo = format!("{issuer}oauth2/userinfo");
    let ended = http
        .get(&userinfo)
        .bearer_auth(refreshed.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 401, "the replay ended the session");

    // A refusal goes back to the client as `access_denied`.
    let page = http.get(url).send().await.unwrap().text().await.unwrap();
    let denied = answer(grant_in(&page), PASSWORD, "deny").await.unwrap();
    let query = query_of(&denied);
    assert_eq!(param(&query, "error"), Some("access_denied"));

    // A stranger's redirect URI is never redirected to.
    let evil = format!(
        "{issuer}authorize?client_id={client_id}&response_type=code&scope=openid\
         &redirect_uri=https%3A%2F%2Fevil.example%2F"
    );
    let refused = http.get(evil).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    server.abort();
}
