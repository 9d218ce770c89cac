//! The authorization-server examples, in memory and on SQLite, driven by the
//! `openidconnect` crate as a relying party would: discovery, a code flow with PKCE and
//! a nonce, the ID token checked against the published keys, userinfo, refresh, and a
//! replayed code; and, on SQLite, tokens that outlive a restart.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse,
};

#[path = "../../examples/authorization_server.rs"]
mod in_memory;
// Each example brings the shared server module, as it is built on its own.
#[allow(clippy::duplicate_mod)]
#[path = "../../examples/authorization_server_sqlite.rs"]
mod on_sqlite;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "a long enough password";
const SECRET: &str = "the example client's secret";

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A relying party of the provider at `issuer`, found by discovery.
struct RelyingParty {
    http: openidconnect::reqwest::Client,
    client: Client,
    issuer: String,
}

/// The grant ID the sign-in form carries.
fn grant_in(page: &str) -> String {
    let start = page
        .find(r#"name="grant" value=""#)
        .expect("a sign-in form")
        + 20;
    page[start..].split('"').next().unwrap().to_owned()
}

/// The query parameters of a redirect to the client.
fn query_of(response: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 303, "a redirect to the client");
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl RelyingParty {
    async fn discover(issuer: String, client_id: &str) -> Self {
        let http = openidconnect::reqwest::Client::builder()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let issuer_url = IssuerUrl::new(issuer.clone()).unwrap();
        let metadata = CoreProviderMetadata::discover_async(issuer_url, &http)
            .await
            .unwrap();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(client_id.to_owned()),
            Some(ClientSecret::new(SECRET.to_owned())),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
        Self {
            http,
            client,
            issuer,
        }
    }

    /// Alice answers the sign-in form of `grant` with `password`.
    async fn answer(&self, grant: String, password: &str, action: &str) -> reqwest::Response {
        let form = [
            ("grant", grant),
            ("username", "alice".to_owned()),
            ("password", password.to_owned()),
            ("action", action.to_owned()),
        ];
        let url = format!("{}authorize", self.issuer);
        self.http.post(url).form(&form).send().await.unwrap()
    }

    /// The sign-in form of a new authorization request, and the request's URL.
    async fn request(
        &self,
    ) -> (
        String,
        url::Url,
        CsrfToken,
        Nonce,
        openidconnect::PkceCodeVerifier,
    ) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, csrf, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        let page = self.http.get(url.clone()).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let grant = grant_in(&page.text().await.unwrap());
        (grant, url, csrf, nonce, verifier)
    }

    /// Alice signs in and allows a new request; the code is exchanged and its ID token
    /// checked. Returns the tokens, and the code with its verifier.
    async fn sign_in(&self) -> (CoreTokenResponse, String, String) {
        let (grant, _, csrf, nonce, verifier) = self.request().await;
        let verifier_text = verifier.secret().clone();
        let wrong = self
            .answer(grant.clone(), "not the password", "allow")
            .await;
        assert_eq!(wrong.status(), 401, "a wrong password is refused");
        let query = query_of(&self.answer(grant.clone(), PASSWORD, "allow").await);
        assert_eq!(param(&query, "state"), Some(csrf.secret().as_str()));
        assert_eq!(param(&query, "iss"), Some(self.issuer.as_str()));
        let code = param(&query, "code").expect("a code").to_owned();
        let again = self.answer(grant, PASSWORD, "allow").await;
        assert_eq!(again.status(), 404, "a request is answered once");

        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .unwrap();
        let id_token = tokens.id_token().expect("an ID token for `openid`");
        let claims = id_token
            .claims(&self.client.id_token_verifier(), &nonce)
            .unwrap();
        assert_eq!(claims.issuer().as_str(), self.issuer);
        assert!(claims.auth_time().is_some(), "when alice signed in");
        let info: CoreUserInfoClaims = self
            .client
            .user_info(
                tokens.access_token().clone(),
                Some(claims.subject().clone()),
            )
            .unwrap()
            .request_async(&self.http)
            .await
            .unwrap();
        assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));
        assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
        (tokens, code, verifier_text)
    }

    /// What userinfo answers for `token`: its status.
    async fn userinfo_status(&self, token: &str) -> u16 {
        let url = format!("{}oauth2/userinfo", self.issuer);
        let answer = self.http.get(url).bearer_auth(token).send().await.unwrap();
        answer.status().as_u16()
    }

    /// The whole story against one provider; returns a live access and refresh token.
    async fn story(&self) -> (String, String) {
        // A replayed code is refused and ends the session it opened (RFC 9700).
        let (first, code, verifier) = self.sign_in().await;
        let replay = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(openidconnect::PkceCodeVerifier::new(verifier))
            .request_async(&self.http)
            .await;
        match replay {
            Err(openidconnect::RequestTokenError::ServerResponse(refusal)) => assert_eq!(
                refusal.error(),
                &openidconnect::core::CoreErrorResponseType::InvalidGrant,
                "a code works once"
            ),
            other => panic!("a replayed code got {other:?}"),
        }
        let status = self.userinfo_status(first.access_token().secret()).await;
        assert_eq!(status, 401, "the replay ended the session");

        // A refresh gives a new pair.
        let (second, ..) = self.sign_in().await;
        let refresh = second.refresh_token().expect("a refresh token");
        let refreshed = self
            .client
            .exchange_refresh_token(refresh)
            .unwrap()
            .request_async(&self.http)
            .await
            .unwrap();
        let access = refreshed.access_token().secret();
        assert_ne!(access, second.access_token().secret());
        assert_eq!(self.userinfo_status(access).await, 200);

        // A refusal goes back to the client as `access_denied`.
        let (grant, ..) = self.request().await;
        let query = query_of(&self.answer(grant, PASSWORD, "deny").await);
        assert_eq!(param(&query, "error"), Some("access_denied"));

        // A stranger's redirect URI is never redirected to.
        let evil = format!(
            "{}authorize?client_id={}&response_type=code&scope=openid\
             &redirect_uri=https%3A%2F%2Fevil.example%2F",
            self.issuer,
            self.client.client_id().as_str()
        );
        let refused = self.http.get(evil).send().await.unwrap();
        assert_eq!(refused.status(), 400);
        let refresh = refreshed.refresh_token().expect("a refresh token");
        (access.clone(), refresh.secret().clone())
    }
}

async fn bind() -> (tokio::net::TcpListener, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

#[tokio::test]
async fn openidconnect_completes_a_code_flow_with_pkce_against_the_in_memory_example() {
    let (listener, address) = bind().await;
    let (provider, client_id) = in_memory::provider(address, PASSWORD, SECRET, REDIRECT).unwrap();
    let issuer = provider.endpoints.issuer.to_string();
    let server = tokio::spawn(in_memory::server::serve(listener, provider));
    let party = RelyingParty::discover(issuer, &client_id.to_string()).await;
    party.story().await;
    server.abort();
}

#[tokio::test]
async fn the_sqlite_example_does_the_same_and_keeps_its_sessions_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("example.db").display());
    let (listener, address) = bind().await;
    let provider = on_sqlite::provider(address, &uri, PASSWORD, SECRET, REDIRECT);
    let provider = provider.await.unwrap();
    let issuer = provider.endpoints.issuer.to_string();
    let server = tokio::spawn(on_sqlite::server::serve(listener, provider));
    let party = RelyingParty::discover(issuer, on_sqlite::CLIENT_ID).await;
    let (access, refresh) = party.story().await;
    server.abort();

    // Started again on the same database: alice's tokens still work.
    let (listener, address) = bind().await;
    let provider = on_sqlite::provider(address, &uri, PASSWORD, SECRET, REDIRECT);
    let provider = provider.await.unwrap();
    let issuer = provider.endpoints.issuer.to_string();
    let server = tokio::spawn(on_sqlite::server::serve(listener, provider));
    let party = RelyingParty::discover(issuer, on_sqlite::CLIENT_ID).await;
    assert_eq!(party.userinfo_status(&access).await, 200);
    let refreshed = party
        .client
        .exchange_refresh_token(&openidconnect::RefreshToken::new(refresh))
        .unwrap()
        .request_async(&party.http)
        .await
        .unwrap();
    assert_eq!(
        party
            .userinfo_status(refreshed.access_token().secret())
            .await,
        200
    );
    server.abort();
}
