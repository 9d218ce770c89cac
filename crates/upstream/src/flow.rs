//! The two legs of the authorization code flow: the request that sends a person to the
//! provider, and the exchange of the code that comes back, with the ID token checked and
//! the userinfo endpoint asked when configured.

use mas_config::sections::{PkceMethod, ResponseMode, UpstreamAuthMethod};
use mas_oauth_core::KeyStore;
use mas_oauth_core::jose::{JwsError, UnverifiedJws};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm,
    CoreTokenResponse,
};
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};
use serde_json::Value;
use url::Url;

use crate::discovery::{Endpoints, Keys};
use crate::{Provider, UpstreamError, Upstreams};

/// A trip about to start: where to send the person, and what to keep for the answer.
#[derive(Debug, Clone)]
pub struct Started {
    /// The provider's authorization URL with our request.
    pub url: Url,
    /// The `state` the answer must carry.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier, when PKCE is used.
    pub code_verifier: Option<String>,
}

/// What a provider's answer brought, checked.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The ID token, as sent.
    pub id_token: Option<String>,
    /// `{"id_token_claims", "userinfo_claims", "user"}`.
    pub claims: Value,
    /// The provider's session ID (`sid` of the ID token).
    pub sid: Option<String>,
}

/// The client of the flow: endpoints set, and our secret where the method sends it.
fn client(
    provider: &Provider,
    endpoints: &Endpoints,
    redirect_uri: &Url,
    keys: &Keys,
) -> CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
> {
    let config = &provider.config;
    let client = CoreClient::new(
        ClientId::new(config.client_id.clone()),
        issuer(provider, endpoints),
        keys.set.clone(),
    )
    .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
    .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
    .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()))
    .disable_openid_scope();
    let secret = provider.client_secret.clone().map(ClientSecret::new);
    match (config.token_endpoint_auth_method, secret) {
        (UpstreamAuthMethod::ClientSecretBasic, Some(secret)) => client
            .set_client_secret(secret)
            .set_auth_type(AuthType::BasicAuth),
        (UpstreamAuthMethod::ClientSecretPost, Some(secret)) => client
            .set_client_secret(secret)
            .set_auth_type(AuthType::RequestBody),
        // The others send the client ID in the body, with an assertion or nothing.
        _ => client.set_auth_type(AuthType::RequestBody),
    }
}

/// The issuer ID tokens must name; a provider configured without one (plain OAuth 2.0)
/// gets a stand-in, and its ID tokens (rare) are not checked for an issuer.
fn issuer(provider: &Provider, endpoints: &Endpoints) -> IssuerUrl {
    provider
        .config
        .issuer
        .as_deref()
        .and_then(|i| IssuerUrl::new(i.to_owned()).ok())
        .unwrap_or_else(|| IssuerUrl::from_url(endpoints.token.clone()))
}

impl Upstreams {
    /// Starts a trip: the authorization URL with a fresh state, nonce and (as
    /// `pkce_method` says) PKCE challenge, the configured scope and response mode, and
    /// `extra` parameters.
    ///
    /// # Errors
    /// [`UpstreamError`] when the provider's endpoints cannot be found.
    pub async fn start(
        &self,
        provider: &Provider,
        redirect_uri: &Url,
        extra: Vec<(String, String)>,
    ) -> Result<Started, UpstreamError> {
        let config = &provider.config;
        if config.token_endpoint_auth_method == UpstreamAuthMethod::SignInWithApple {
            return Err(UpstreamError::Configuration(
                "Sign in with Apple is not supported by this release".to_owned(),
            ));
        }
        let endpoints = self.endpoints(config).await?;
        // The request leg checks no signature.
        let no_keys = Keys {
            set: openidconnect::core::CoreJsonWebKeySet::new(Vec::new()),
            fetched_at: std::time::Instant::now(),
        };
        let client = client(provider, &endpoints, redirect_uri, &no_keys);
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in config.scope.split(' ').filter(|s| !s.is_empty()) {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
        let pkce = match config.pkce_method {
            PkceMethod::Always => true,
            PkceMethod::Never => false,
            PkceMethod::Auto => endpoints.pkce_s256,
        };
        let mut code_verifier = None;
        if pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            code_verifier = Some(verifier.secret().clone());
        }
        if config.response_mode == Some(ResponseMode::FormPost) {
            request = request.add_extra_param("response_mode", "form_post");
        }
        for (name, value) in extra {
            request = request.add_extra_param(name, value);
        }
        let (url, state, nonce) = request.url();
        Ok(Started {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            code_verifier,
        })
    }

    /// Exchanges `code` at the token endpoint and checks what comes back: the ID token
    /// (signature with the configured algorithm against the provider's keys, issuer,
    /// audience, expiry, `nonce`) and, when `fetch_userinfo` is set, the userinfo answer
    /// (its subject must be the ID token's). `signer` signs `private_key_jwt` assertions.
    ///
    /// # Errors
    /// [`UpstreamError`] naming the check that failed.
    pub async fn finish(
        &self,
        provider: &Provider,
        redirect_uri: &Url,
        code: &str,
        nonce: &str,
        code_verifier: Option<&str>,
        signer: &KeyStore,
    ) -> Result<Answer, UpstreamError> {
        let config = &provider.config;
        let endpoints = self.endpoints(config).await?;
        let keys = self.keys(config, &endpoints, false).await?;
        let client = client(provider, &endpoints, redirect_uri, &keys);
        let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(verifier) = code_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        if let Some(assertion) = Self::assertion(provider, &endpoints, signer)? {
            request = request
                .add_extra_param(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .add_extra_param("client_assertion", assertion);
        }
        let response: CoreTokenResponse =
            request
                .request_async(&self.http)
                .await
                .map_err(|e| match e {
                    RequestTokenError::ServerResponse(answer) => {
                        UpstreamError::TokenRefused(match answer.error_description() {
                            Some(description) => format!("{}: {description}", answer.error()),
                            None => answer.error().to_string(),
                        })
                    }
                    RequestTokenError::Request(e) => UpstreamError::Unreachable(e.to_string()),
                    other => UpstreamError::TokenRefused(other.to_string()),
                })?;
        let wants_id_token = config.scope.split(' ').any(|s| s == "openid");
        let (id_token, id_token_claims) = match response.id_token() {
            Some(token) => {
                let (raw, claims) = self
                    .check_id_token(provider, &endpoints, keys, token, nonce)
                    .await?;
                (Some(raw), Some(claims))
            }
            None if wants_id_token => {
                return Err(UpstreamError::IdToken(
                    "the token endpoint sent no ID token".to_owned(),
                ));
            }
            None => (None, None),
        };
        let userinfo_claims = if config.fetch_userinfo {
            let claims = self
                .userinfo(provider, &endpoints, response.access_token().secret())
                .await?;
            let subject = |c: &Option<Value>| c.as_ref().and_then(|c| c.get("sub").cloned());
            if id_token_claims.is_some()
                && subject(&id_token_claims) != subject(&Some(claims.clone()))
            {
                return Err(UpstreamError::UserInfo(
                    "its subject is not the ID token's".to_owned(),
                ));
            }
            Some(claims)
        } else {
            None
        };
        let sid = id_token_claims
            .as_ref()
            .and_then(|c| c.get("sid"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Answer {
            id_token,
            claims: crate::claims::context(id_token_claims, userinfo_claims),
            sid,
        })
    }

    /// Checks an ID token; a signature that fails against kept keys is tried once more
    /// against a fresh key set (the provider may have rotated its keys). Returns the token
    /// as sent and its claims.
    async fn check_id_token(
        &self,
        provider: &Provider,
        endpoints: &Endpoints,
        keys: std::sync::Arc<Keys>,
        token: &CoreIdToken,
        nonce: &str,
    ) -> Result<(String, Value), UpstreamError> {
        let config = &provider.config;
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(Value::String(config.id_token_signed_response_alg.clone()))
                .map_err(|_| {
                    UpstreamError::Configuration(format!(
                        "unknown id_token_signed_response_alg `{}`",
                        config.id_token_signed_response_alg
                    ))
                })?;
        let nonce = Nonce::new(nonce.to_owned());
        let verify = |keys: &Keys| {
            let client_id = ClientId::new(config.client_id.clone());
            let issuer = issuer(provider, endpoints);
            let verifier = match (&provider.client_secret, alg.clone()) {
                (
                    Some(secret),
                    CoreJwsSigningAlgorithm::HmacSha256
                    | CoreJwsSigningAlgorithm::HmacSha384
                    | CoreJwsSigningAlgorithm::HmacSha512,
                ) => CoreIdTokenVerifier::new_confidential_client(
                    client_id,
                    ClientSecret::new(secret.clone()),
                    issuer,
                    keys.set.clone(),
                ),
                _ => CoreIdTokenVerifier::new_public_client(client_id, issuer, keys.set.clone()),
            }
            .set_allowed_algs([alg.clone()])
            .require_issuer_match(config.issuer.is_some());
            token.claims(&verifier, &nonce).map(|_| ())
        };
        if let Err(first) = verify(&keys) {
            let retried = if matches!(
                first,
                openidconnect::ClaimsVerificationError::SignatureVerification(_)
            ) && keys.fetched_at.elapsed() >= self.keys_refetch_after
            {
                let fresh = self.keys(config, endpoints, true).await?;
                verify(&fresh)
            } else {
                Err(first)
            };
            retried.map_err(|e| UpstreamError::IdToken(e.to_string()))?;
        }
        let raw = serde_json::to_value(token)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| UpstreamError::IdToken("cannot be read back".to_owned()))?;
        let claims = UnverifiedJws::parse(&raw)
            .map_err(|e| UpstreamError::IdToken(e.to_string()))?
            .payload;
        Ok((raw, claims))
    }

    /// The client assertion of the JWT methods, or `None` for the others.
    fn assertion(
        provider: &Provider,
        endpoints: &Endpoints,
        signer: &KeyStore,
    ) -> Result<Option<String>, UpstreamError> {
        let config = &provider.config;
        let method = config.token_endpoint_auth_method;
        if !matches!(
            method,
            UpstreamAuthMethod::ClientSecretJwt | UpstreamAuthMethod::PrivateKeyJwt
        ) {
            return Ok(None);
        }
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": config.client_id,
            "sub": config.client_id,
            "aud": endpoints.token.as_str(),
            "jti": ulid::Ulid::new().to_string(),
            "iat": now,
            "exp": now + 300,
        });
        let alg = config
            .token_endpoint_auth_signing_alg
            .as_deref()
            .unwrap_or("RS256");
        let assertion = if method == UpstreamAuthMethod::ClientSecretJwt {
            let secret = provider.client_secret.as_deref().ok_or_else(|| {
                UpstreamError::Configuration("client_secret_jwt needs a client secret".to_owned())
            })?;
            mas_oauth_core::jose::sign_hmac(alg, secret.as_bytes(), &claims)
                .map_err(|e| UpstreamError::Configuration(e.to_string()))?
        } else {
            let alg = mas_oauth_core::SigningAlgorithm::parse(alg).ok_or_else(|| {
                UpstreamError::Configuration(format!(
                    "our keys cannot sign with `{alg}` (RS256, ES256 or ES384)"
                ))
            })?;
            signer
                .sign(alg, &claims)
                .map_err(|e| UpstreamError::Configuration(e.to_string()))?
        };
        Ok(Some(assertion))
    }

    /// The userinfo answer: JSON, or a JWT checked against the provider's keys when
    /// `userinfo_signed_response_alg` is set.
    async fn userinfo(
        &self,
        provider: &Provider,
        endpoints: &Endpoints,
        access_token: &str,
    ) -> Result<Value, UpstreamError> {
        let config = &provider.config;
        let url = endpoints.userinfo.as_ref().ok_or_else(|| {
            UpstreamError::Configuration(
                "`fetch_userinfo` is set but there is no userinfo endpoint".to_owned(),
            )
        })?;
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(access_token)
            .header("accept", "application/json, application/jwt")
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("userinfo: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(UpstreamError::UserInfo(format!("it answered {status}")));
        }
        let body = response
            .text()
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("userinfo: {e}")))?;
        let Some(alg) = &config.userinfo_signed_response_alg else {
            return serde_json::from_str(&body)
                .map_err(|_| UpstreamError::UserInfo("not a JSON object".to_owned()))
                .and_then(|v: Value| {
                    if v.is_object() {
                        Ok(v)
                    } else {
                        Err(UpstreamError::UserInfo("not a JSON object".to_owned()))
                    }
                });
        };
        self.verify_signed(provider, endpoints, body.trim(), alg)
            .await?
            .map_err(|reason| {
                UpstreamError::UserInfo(format!("not a valid signed answer: {reason}"))
            })
    }

    /// The payload of a JWT the provider signed with `alg`: HMAC with our client
    /// secret, or its keys (fetched again once for a key the kept set lacks). The inner
    /// error says why the token is refused; the outer one, why it could not be checked.
    pub(crate) async fn verify_signed(
        &self,
        provider: &Provider,
        endpoints: &Endpoints,
        token: &str,
        alg: &str,
    ) -> Result<Result<Value, String>, UpstreamError> {
        let jws = match UnverifiedJws::parse(token) {
            Ok(jws) => jws,
            Err(error) => return Ok(Err(error.to_string())),
        };
        if jws.alg() != alg {
            return Ok(Err(format!("signed with `{}`, not `{alg}`", jws.alg())));
        }
        let verified = if alg.starts_with("HS") {
            let secret = provider.client_secret.as_deref().ok_or_else(|| {
                UpstreamError::Configuration(format!("`{alg}` needs a client secret"))
            })?;
            jws.verify_hmac(secret.as_bytes())
        } else {
            let config = &provider.config;
            let keys = self.keys(config, endpoints, false).await?;
            match jws.verify_with_jwks(&keys.as_json()) {
                Err(JwsError::NoKey) => {
                    let fresh = self.keys(config, endpoints, true).await?;
                    jws.verify_with_jwks(&fresh.as_json())
                }
                other => other,
            }
        };
        Ok(verified.map(|()| jws.payload).map_err(|e| e.to_string()))
    }
}
