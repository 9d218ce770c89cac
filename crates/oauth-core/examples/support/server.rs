//! A minimal OpenID Provider on plain hyper, built from `mas-oauth-core`: discovery, keys,
//! `/authorize` with a sign-in and consent form, the token endpoint (authorization code
//! with PKCE, refresh), userinfo, introspection and revocation. Where it keeps things is
//! the [`Backend`]'s business: `authorization_server.rs` keeps them in memory,
//! `authorization_server_sqlite.rs` in SQLite through `mas-storage-sql`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use chrono::Duration;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mas_data_model::{BrowserSession, User};
use mas_oauth_core::authorize::{self, AuthorizeError, Redirect};
use mas_oauth_core::client_auth::ClientCredentials;
use mas_oauth_core::grants::{self, GrantOutcome, Issuer};
use mas_oauth_core::params::Params;
use mas_oauth_core::passwords::PasswordManager;
use mas_oauth_core::policy::Policy;
use mas_oauth_core::store::{ClientStore, CodeStore, MatrixStore, SessionStore, UserStore};
use mas_oauth_core::{Endpoints, ErrorCode, KeyStore, OAuthError, ProviderMetadata, tokens};
use mas_storage::{Clock, Encrypter, StorageError, SystemClock};
use serde_json::{Value, json};
use url::Url;

/// Where the provider keeps its records: units of work over the core's storage traits,
/// and the people who may sign in.
pub trait Backend: Send + Sync + 'static {
    /// One unit of work.
    type Unit: Send;
    /// What the core's operations are given.
    type Store: ClientStore + CodeStore + SessionStore + UserStore + MatrixStore + ?Sized;
    /// The unit's storage.
    fn store(unit: &mut Self::Unit) -> &mut Self::Store;
    /// Starts a unit of work.
    fn begin(&self) -> impl Future<Output = Result<Self::Unit, StorageError>> + Send;
    /// Keeps what a unit did; dropping it instead undoes it.
    fn commit(&self, unit: Self::Unit) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// The user named `username` with their password hash: its scheme version and hash.
    fn password_of(
        &self,
        unit: &mut Self::Unit,
        username: &str,
    ) -> impl Future<Output = Result<Option<(User, u16, String)>, StorageError>> + Send;
    /// Starts a browser session for `user`, who has just given their password.
    fn sign_in(
        &self,
        unit: &mut Self::Unit,
        user: &User,
    ) -> impl Future<Output = Result<BrowserSession, StorageError>> + Send;
}

/// The provider: its backend, keys and rules.
pub struct Provider<B> {
    /// Where it keeps things.
    pub backend: B,
    /// Its endpoints, under its issuer.
    pub endpoints: Endpoints,
    /// The ID tokens' signing keys.
    pub keys: KeyStore,
    /// Encrypts client secrets.
    pub encrypter: Encrypter,
    /// Checks passwords.
    pub passwords: PasswordManager,
    /// A hash checked when there is no such user, so that a failed sign-in takes as
    /// long whether the account exists or not ([`decoy`]).
    pub decoy: (u16, String),
    /// Who may hold admin scopes, and the like.
    pub policy: Policy,
}

type Answer = Response<Full<Bytes>>;

/// Serves `provider` on `listener` until the task is dropped.
///
/// # Errors
/// When the listener fails.
pub async fn serve<B: Backend>(
    listener: tokio::net::TcpListener,
    provider: Arc<Provider<B>>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let provider = Arc::clone(&provider);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let provider = Arc::clone(&provider);
                async move { Ok::<_, Infallible>(provider.handle(request).await) }
            });
            // A client gets ten seconds to send its headers.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                eprintln!("connection ended: {error}");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_reply(status: StatusCode, value: &impl serde::Serialize) -> Answer {
    let body = serde_json::to_vec(value).unwrap_or_default();
    reply(status, "application/json", body)
}

fn oauth_error(error: &OAuthError) -> Answer {
    let status = StatusCode::from_u16(error.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({ "error": error.code.as_str(), "error_description": error.description });
    let mut answer = json_reply(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6749 §5.2: a client refused at the token endpoint is told how to authenticate.
        let challenge = HeaderValue::from_static(r#"Basic realm="example""#);
        answer
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    answer
}

fn page(status: StatusCode, body: &str) -> Answer {
    let html = format!("<!DOCTYPE html><html><body>{body}</body></html>");
    let mut answer = reply(status, "text/html; charset=utf-8", html);
    // A password form must not be framed by another site (clickjacking).
    let headers = answer.headers_mut();
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    let policy = HeaderValue::from_static("frame-ancestors 'none'");
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    answer
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Sends the answer to the client's redirect URI: a redirect, or a self-posting form.
fn deliver(redirect: &Redirect) -> Answer {
    if let Some(location) = redirect.location() {
        let mut response = reply(StatusCode::SEE_OTHER, "text/plain", "");
        if let Ok(value) = HeaderValue::from_str(location.as_str()) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    let mut fields = String::new();
    for (name, value) in &redirect.params {
        let (name, value) = (escape(name), escape(value));
        let input = [
            r#"<input type="hidden" name=""#,
            &name,
            r#"" value=""#,
            &value,
            r#"">"#,
        ];
        fields.extend(input);
    }
    page(
        StatusCode::OK,
        &format!(
            r#"<form method="post" action="{}">{fields}</form><script>document.forms[0].submit()</script>"#,
            escape(redirect.redirect_uri.as_str())
        ),
    )
}

fn storage_error(error: StorageError) -> OAuthError {
    OAuthError::from(error)
}

impl<B: Backend> Provider<B> {
    async fn handle(&self, request: Request<Incoming>) -> Answer {
        let (parts, body) = request.into_parts();
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let query = parts.uri.query().unwrap_or_default().to_owned();
        // Forms are small; a larger body is refused before it is read.
        let body = match http_body_util::Limited::new(body, 64 * 1024)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => return oauth_error(&OAuthError::invalid_request("the body is too large")),
        };
        let result = match (&parts.method, parts.uri.path()) {
            (&Method::GET, "/.well-known/openid-configuration") => Ok(self.discovery()),
            (&Method::GET, "/oauth2/keys.json") => {
                Ok(json_reply(StatusCode::OK, &self.keys.jwks()))
            }
            (&Method::GET, "/authorize") => self.authorize(query.as_bytes()).await,
            (&Method::POST, "/authorize") => self.consent(&body).await,
            (&Method::POST, "/oauth2/token") => self.token(authorization.as_deref(), &body).await,
            (&Method::GET | &Method::POST, "/oauth2/userinfo") => {
                self.userinfo(authorization.as_deref()).await
            }
            (&Method::POST, "/oauth2/introspect") => {
                self.introspect(authorization.as_deref(), &body).await
            }
            (&Method::POST, "/oauth2/revoke") => self.revoke(authorization.as_deref(), &body).await,
            _ => Ok(reply(StatusCode::NOT_FOUND, "text/plain", "not found")),
        };
        result.unwrap_or_else(|error| oauth_error(&error))
    }

    /// The discovery document, without what this provider does not serve.
    fn discovery(&self) -> Answer {
        let metadata = ProviderMetadata::new(&self.endpoints, &self.keys.algorithms(), false);
        let mut document = serde_json::to_value(metadata).unwrap_or_default();
        if let Some(fields) = document.as_object_mut() {
            for unserved in [
                "registration_endpoint",
                "device_authorization_endpoint",
                "account_management_uri",
                "account_management_actions_supported",
                "backchannel_logout_supported",
                "backchannel_logout_session_supported",
            ] {
                fields.remove(unserved);
            }
            let grants = json!(["authorization_code", "refresh_token"]);
            fields.insert("grant_types_supported".to_owned(), grants);
        }
        json_reply(StatusCode::OK, &document)
    }

    /// Checks the request, stores it as a grant, and asks the person.
    async fn authorize(&self, query: &[u8]) -> Result<Answer, OAuthError> {
        let params = Params::parse(query)?;
        let mut unit = self.backend.begin().await?;
        let store = B::store(&mut unit);
        let request = match authorize::validate(store, &self.endpoints.issuer, &params).await {
            Ok(request) => request,
            Err(AuthorizeError::Page(why)) => {
                return Ok(page(StatusCode::BAD_REQUEST, &escape(&why)));
            }
            Err(AuthorizeError::Redirect(redirect)) => return Ok(deliver(&redirect)),
        };
        if request.is_silent() {
            // Nobody is ever signed in here without the form.
            return Ok(deliver(&request.needs_interaction(
                &self.endpoints.issuer,
                ErrorCode::LoginRequired,
            )));
        }
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let grant = store
            .add_grant(&mut rng, &SystemClock, request.new_grant())
            .await?;
        self.backend.commit(unit).await?;
        Ok(page(
            StatusCode::OK,
            &format!(
                r#"<h1>Sign in</h1><p>Client {} asks for: {}</p>
<form method="post" action="/authorize"><input type="hidden" name="grant" value="{}">
<input name="username" placeholder="username"><input name="password" type="password">
<button name="action" value="allow">Allow</button><button name="action" value="deny">Deny</button></form>"#,
                request.client.id,
                escape(&request.scope.join(" ")),
                grant.id,
            ),
        ))
    }

    /// The person's answer: checks their password, then lets the core answer the client.
    async fn consent(&self, body: &[u8]) -> Result<Answer, OAuthError> {
        let form = Params::parse(body)?;
        let grant_id = form.require("grant")?;
        let username = form.require("username")?;
        let password = form.require("password")?.to_owned();
        let allow = form.require("action")? == "allow";
        let gone = || {
            page(
                StatusCode::NOT_FOUND,
                "This request was answered or has expired.",
            )
        };
        let Ok(grant_id) = grant_id.parse() else {
            return Ok(gone());
        };
        let clock = &SystemClock;
        // Read, then let go of the unit: no transaction stays open while the password
        // is hashed.
        let mut unit = self.backend.begin().await?;
        let grant = B::store(&mut unit).find_grant(grant_id).await?;
        let Some(grant) = grant.filter(|g| authorize::awaits_answer(g, clock.now())) else {
            return Ok(gone());
        };
        let found = self.backend.password_of(&mut unit, username).await?;
        drop(unit);
        let Some(user) = self.password_matches(found, password).await else {
            return Ok(page(
                StatusCode::UNAUTHORIZED,
                "Wrong username or password.",
            ));
        };
        let mut unit = self.backend.begin().await?;
        let browser = self.backend.sign_in(&mut unit, &user).await?;
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let answer = authorize::answer(
            B::store(&mut unit),
            &mut rng,
            clock,
            &self.policy,
            &self.endpoints.issuer,
            &browser,
            grant,
            allow,
        );
        let redirect = match answer.await {
            Ok(redirect) => redirect,
            // Answered meanwhile, from another tab.
            Err(StorageError::InvalidData { .. }) => return Ok(gone()),
            Err(error) => return Err(error.into()),
        };
        self.backend.commit(unit).await?;
        Ok(deliver(&redirect))
    }

    /// The user, when `password` is the one hashed in `found` and they may sign in.
    /// Without such a user the decoy hash is checked, so the answer takes as long;
    /// hashing runs off the executor.
    async fn password_matches(
        &self,
        found: Option<(User, u16, String)>,
        password: String,
    ) -> Option<User> {
        let (user, (version, hash)) = match found {
            Some((user, version, hash)) if user.is_valid() => (Some(user), (version, hash)),
            _ => (None, self.decoy.clone()),
        };
        let passwords = self.passwords.clone();
        let verify = tokio::task::spawn_blocking(move || {
            passwords.verify(version, &hash, &password, [0; 16]).is_ok()
        });
        let matches = verify.await.unwrap_or(false);
        user.filter(|_| matches)
    }

    /// Authenticates the client in a unit of its own, saved at once (an assertion's
    /// `jti` must stay spent whatever happens next).
    async fn client(
        &self,
        authorization: Option<&str>,
        form: &Params,
    ) -> Result<mas_data_model::Client, OAuthError> {
        let credentials = ClientCredentials::from_request(authorization, form)?;
        let audiences = [
            self.endpoints.token.as_str(),
            self.endpoints.issuer.as_str(),
        ];
        let mut unit = self.backend.begin().await?;
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let client = credentials
            .authenticate(
                B::store(&mut unit),
                &mut rng,
                &SystemClock,
                &self.encrypter,
                &audiences,
                None,
            )
            .await?;
        self.backend.commit(unit).await?;
        Ok(client)
    }

    async fn token(&self, authorization: Option<&str>, body: &[u8]) -> Result<Answer, OAuthError> {
        let form = Params::parse(body)?;
        let client = self.client(authorization, &form).await?;
        let issuer = Issuer {
            url: &self.endpoints.issuer,
            keys: &self.keys,
            access_token_ttl: Duration::minutes(5),
            policy: &self.policy,
        };
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut unit = self.backend.begin().await?;
        let store = B::store(&mut unit);
        let outcome = match form.require("grant_type")? {
            "authorization_code" => {
                let code = form.require("code")?;
                let redirect_uri = form.get("redirect_uri")?;
                let verifier = form.get("code_verifier")?;
                grants::authorization_code(
                    store,
                    &mut rng,
                    &SystemClock,
                    issuer,
                    &client,
                    code,
                    redirect_uri,
                    verifier,
                )
                .await?
            }
            "refresh_token" => {
                let token = form.require("refresh_token")?;
                let scope = form.get("scope")?;
                grants::refresh_token(store, &mut rng, &SystemClock, issuer, &client, token, scope)
                    .await?
            }
            other => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!("grant type `{other}` is not supported here"),
                ));
            }
        };
        match outcome {
            GrantOutcome::Issued(response) => {
                self.backend.commit(unit).await?;
                Ok(json_reply(StatusCode::OK, &response))
            }
            GrantOutcome::Refused { error, commit } => {
                if commit {
                    self.backend.commit(unit).await?;
                }
                Err(error)
            }
        }
    }

    async fn userinfo(&self, authorization: Option<&str>) -> Result<Answer, OAuthError> {
        let token = authorization.and_then(mas_oauth_core::resource::bearer);
        let mut unit = self.backend.begin().await?;
        let claims = match token {
            Some(token) => {
                grants::userinfo(B::store(&mut unit), &SystemClock, &self.policy, token).await?
            }
            None => None,
        };
        let Some(claims) = claims else {
            let mut answer = json_reply(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "invalid_token" }),
            );
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            return Ok(answer);
        };
        self.backend.commit(unit).await?;
        Ok(json_reply(StatusCode::OK, &claims))
    }

    async fn introspect(
        &self,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, OAuthError> {
        let form = Params::parse(body)?;
        let client = self.client(authorization, &form).await?;
        let asker = tokens::Asker::of(&client)?;
        let token = form.require("token")?;
        let hint = form.get("token_type_hint")?;
        let mut unit = self.backend.begin().await?;
        let store = B::store(&mut unit);
        let answer = tokens::introspect(store, &SystemClock, &self.policy, token, hint, asker);
        let answer = answer.await?;
        self.backend.commit(unit).await?;
        Ok(json_reply(StatusCode::OK, &answer))
    }

    async fn revoke(&self, authorization: Option<&str>, body: &[u8]) -> Result<Answer, OAuthError> {
        let form = Params::parse(body)?;
        let client = self.client(authorization, &form).await?;
        let token = form.require("token")?;
        let mut unit = self.backend.begin().await?;
        tokens::revoke(B::store(&mut unit), &SystemClock, &client, token).await?;
        self.backend.commit(unit).await?;
        Ok(json_reply(
            StatusCode::OK,
            &Value::Object(serde_json::Map::new()),
        ))
    }
}

/// What start-up may fail with.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// The issuer and endpoints of a provider listening at `address`.
///
/// # Errors
/// Never for a socket address.
pub fn endpoints_at(address: std::net::SocketAddr) -> Result<Endpoints, url::ParseError> {
    let base = Url::parse(&format!("http://{address}/"))?;
    Ok(Endpoints::new(base.clone(), &base))
}

/// A fresh RSA signing key, as the provider's only key.
///
/// # Errors
/// When the system's random source fails.
pub fn fresh_keys() -> Result<KeyStore, StartError> {
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = rand::rng();
    let key = rsa::PrivateKey::new(&mut rng, 2048)?;
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)?;
    Ok(KeyStore::from_pems([(None, pem.as_str())])?)
}

/// The example's one client: confidential, `client_secret_basic`, code and refresh.
#[must_use]
pub fn example_client(
    encrypter: &Encrypter,
    secret: &str,
    redirect_uri: Url,
) -> mas_storage::repository::ClientParams {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    mas_storage::repository::ClientParams {
        auth_method: mas_data_model::ClientAuthMethod::ClientSecretBasic,
        encrypted_secret: Some(encrypter.encrypt(&mut rng, secret.as_bytes())),
        jwks: None,
        jwks_uri: None,
        redirect_uris: vec![redirect_uri],
        grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
        name: Some("example".to_owned()),
        client_uri: None,
        logo_uri: None,
        policy_uri: None,
        tos_uri: None,
        application_type: None,
        contacts: Vec::new(),
        metadata: None,
    }
}

/// The hash of a random password, for [`Provider::decoy`].
///
/// # Errors
/// When hashing fails.
pub fn decoy(passwords: &PasswordManager) -> Result<(u16, String), StartError> {
    let unguessable = ulid::Ulid::new().to_string();
    Ok(passwords.hash(rand::random(), &unguessable)?)
}

/// Argon2id, the scheme new passwords are hashed with.
#[must_use]
pub fn password_manager() -> PasswordManager {
    let scheme = mas_oauth_core::passwords::Scheme {
        version: 1,
        algorithm: mas_oauth_core::passwords::Algorithm::Argon2id,
        secret: None,
        unicode_normalization: false,
    };
    PasswordManager::new(vec![scheme], 0)
}
