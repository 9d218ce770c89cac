//! Authorization requests (`/authorize`): who asks, where the answer goes, what for.
//! Redirect URIs match exactly (RFC 8252's loopback port exception only); only the code
//! flow exists; PKCE is S256 only and required for public clients.

use chrono::TimeDelta;
use mas_data_model::{Client, ClientAuthMethod, Pkce, ResponseMode};
use mas_storage::{Clock, Rng, StorageError};
use url::Url;

use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::store::{CodeStore, MatrixStore, SessionStore, UserStore};
use crate::tokens::parse_scope;

/// How long after the authorization request the person may still consent; the code
/// then lives [`crate::grants::CODE_LIFETIME`].
pub const APPROVAL_WINDOW: TimeDelta = TimeDelta::hours(1);

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: Client,
    /// Where the answer goes (one of the client's registered URIs).
    pub redirect_uri: Url,
    /// How the answer is returned.
    pub response_mode: ResponseMode,
    /// The client's `state`.
    pub state: Option<String>,
    /// The client's `nonce`.
    pub nonce: Option<String>,
    /// The requested scope.
    pub scope: Vec<String>,
    /// The PKCE challenge.
    pub pkce: Option<Pkce>,
    /// The `prompt` values.
    pub prompt: Vec<String>,
    /// `max_age`, in seconds.
    pub max_age: Option<u32>,
    /// `login_hint`.
    pub login_hint: Option<String>,
}

impl AuthorizationRequest {
    /// The grant to store for it, which the person then answers.
    #[must_use]
    pub fn new_grant(&self) -> mas_storage::repository::NewAuthorizationGrant {
        mas_storage::repository::NewAuthorizationGrant {
            client_id: self.client.id,
            redirect_uri: self.redirect_uri.clone(),
            scope: self.scope.join(" "),
            state: self.state.clone(),
            nonce: self.nonce.clone(),
            response_mode: self.response_mode,
            response_type_id_token: false,
            pkce: self.pkce.clone(),
            max_age: self.max_age,
            login_hint: self.login_hint.clone(),
            prompt: (!self.prompt.is_empty()).then(|| self.prompt.join(" ")),
        }
    }

    /// Whether the client asked for an answer without any page (`prompt=none`): it is
    /// answered at once, or refused with [`AuthorizationRequest::needs_interaction`].
    #[must_use]
    pub fn is_silent(&self) -> bool {
        self.prompt.iter().any(|p| p == "none")
    }

    /// The refusal of a silent request that needs the person: `code` is
    /// `login_required` (nobody signed in, or a newer sign-in needed) or
    /// `consent_required` (not consented to before).
    #[must_use]
    pub fn needs_interaction(&self, issuer: &Url, code: ErrorCode) -> Redirect {
        let error = OAuthError::new(code, "the user must interact with the service");
        Redirect::error(
            self.redirect_uri.clone(),
            self.response_mode,
            self.state.as_deref(),
            issuer,
            &error,
        )
    }
}

/// Why an authorization request was refused.
#[derive(Debug, Clone)]
pub enum AuthorizeError {
    /// The client or the redirect URI cannot be trusted: tell the person, not the client.
    Page(String),
    /// Tell the client, at its verified redirect URI.
    Redirect(Redirect),
}

/// An answer to send to a client's redirect URI.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// The verified redirect URI.
    pub redirect_uri: Url,
    /// How to deliver it.
    pub response_mode: ResponseMode,
    /// The parameters, `state` and `iss` included.
    pub params: Vec<(String, String)>,
}

impl Redirect {
    /// An error answer.
    #[must_use]
    pub fn error(
        redirect_uri: Url,
        response_mode: ResponseMode,
        state: Option<&str>,
        issuer: &Url,
        error: &OAuthError,
    ) -> Self {
        let mut params = vec![
            ("error".to_owned(), error.code.as_str().to_owned()),
            ("error_description".to_owned(), error.description.clone()),
        ];
        if let Some(state) = state {
            params.push(("state".to_owned(), state.to_owned()));
        }
        params.push(("iss".to_owned(), issuer.to_string()));
        Self {
            redirect_uri,
            response_mode,
            params,
        }
    }

    /// The URL to redirect to, for the query and fragment modes.
    #[must_use]
    pub fn location(&self) -> Option<Url> {
        let mut url = self.redirect_uri.clone();
        match self.response_mode {
            ResponseMode::Query => {
                url.query_pairs_mut().extend_pairs(&self.params);
                Some(url)
            }
            ResponseMode::Fragment => {
                let fragment = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&self.params)
                    .finish();
                url.set_fragment(Some(&fragment));
                Some(url)
            }
            ResponseMode::FormPost => None,
        }
    }
}

/// Whether `given` is one of `registered`: equal, or both loopback `http` URIs that differ
/// only in the port (RFC 8252 §7.3: native apps listen on a port chosen at run time).
#[must_use]
pub fn redirect_uri_matches(registered: &[Url], given: &Url) -> bool {
    registered.iter().any(|r| {
        if r == given {
            return true;
        }
        let loopback = |u: &Url| {
            u.scheme() == "http"
                && matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
        };
        if loopback(r) && loopback(given) {
            let (mut a, mut b) = (r.clone(), given.clone());
            let _ = a.set_port(None);
            let _ = b.set_port(None);
            a == b
        } else {
            false
        }
    })
}

fn valid_challenge(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The PKCE challenge: S256 only, required for public clients.
fn parse_pkce(params: &Params, client: &Client) -> Result<Option<Pkce>, OAuthError> {
    let pkce = match (
        params.get("code_challenge")?,
        params.get("code_challenge_method")?,
    ) {
        (Some(challenge), Some("S256")) if valid_challenge(challenge) => Some(Pkce {
            method: "S256".to_owned(),
            challenge: challenge.to_owned(),
        }),
        (Some(_), Some("S256")) => {
            return Err(OAuthError::invalid_request(
                "the code_challenge is malformed",
            ));
        }
        (Some(_), _) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) => None,
    };
    if pkce.is_none() && client.auth_method == ClientAuthMethod::None {
        return Err(OAuthError::invalid_request(
            "public clients must use PKCE (code_challenge with S256)",
        ));
    }
    Ok(pkce)
}

/// `prompt` values and `max_age`.
fn parse_prompt(params: &Params) -> Result<(Vec<String>, Option<u32>), OAuthError> {
    let prompt: Vec<String> = params
        .get("prompt")?
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(unknown) = prompt.iter().find(|p| {
        !matches!(
            p.as_str(),
            "none" | "login" | "consent" | "create" | "select_account"
        )
    }) {
        return Err(OAuthError::invalid_request(format!(
            "unknown prompt value `{unknown}`"
        )));
    }
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match params.get("max_age")? {
        Some(age) => Some(
            age.parse::<u32>()
                .map_err(|_| OAuthError::invalid_request("max_age must be a number of seconds"))?,
        ),
        None => None,
    };
    Ok((prompt, max_age))
}

/// The client and its verified redirect URI; failures can only be shown to the person.
async fn client_and_redirect<S: crate::store::ClientStore + ?Sized>(
    repo: &mut S,
    params: &Params,
) -> Result<(Client, Url), AuthorizeError> {
    let page = |e: OAuthError| AuthorizeError::Page(e.description);
    let client_id = params.get("client_id").map_err(page)?.ok_or_else(|| {
        AuthorizeError::Page("the request names no client (client_id)".to_owned())
    })?;
    let client_id: ulid::Ulid = client_id
        .parse()
        .map_err(|_| AuthorizeError::Page("unknown client".to_owned()))?;
    let client = repo
        .find_client(client_id)
        .await
        .map_err(|e| AuthorizeError::Page(OAuthError::from(e).description))?
        .ok_or_else(|| AuthorizeError::Page("unknown client".to_owned()))?;
    let redirect_uri = match params.get("redirect_uri").map_err(page)? {
        Some(given) => {
            let given = Url::parse(given)
                .map_err(|_| AuthorizeError::Page("the redirect URI is not a URL".to_owned()))?;
            if !redirect_uri_matches(&client.redirect_uris, &given) {
                return Err(AuthorizeError::Page(
                    "the redirect URI is not registered for this client".to_owned(),
                ));
            }
            given
        }
        None => match client.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(AuthorizeError::Page(
                    "the request must name its redirect URI".to_owned(),
                ));
            }
        },
    };
    Ok((client, redirect_uri))
}

/// Validates `/authorize` parameters.
///
/// # Errors
/// [`AuthorizeError::Page`] when the client or redirect URI is unknown or unregistered;
/// [`AuthorizeError::Redirect`] for every other problem.
pub async fn validate<S: crate::store::ClientStore + ?Sized>(
    repo: &mut S,
    issuer: &Url,
    params: &Params,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let (client, redirect_uri) = client_and_redirect(repo, params).await?;
    let state = params.get("state").ok().flatten().map(str::to_owned);
    let mode_param = params.get("response_mode").ok().flatten();
    let response_mode = mode_param
        .and_then(ResponseMode::parse)
        .unwrap_or(ResponseMode::Query);
    let fail = |error: OAuthError| {
        AuthorizeError::Redirect(Redirect::error(
            redirect_uri.clone(),
            response_mode,
            state.as_deref(),
            issuer,
            &error,
        ))
    };
    if mode_param.is_some_and(|m| ResponseMode::parse(m).is_none()) {
        return Err(fail(OAuthError::invalid_request("unknown response_mode")));
    }
    for name in [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "max_age",
        "login_hint",
    ] {
        params.get(name).map_err(fail)?;
    }
    match params.get("response_type").map_err(fail)? {
        Some("code") => {}
        Some(_) => {
            return Err(fail(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only the authorization code flow (response_type=code) is supported",
            )));
        }
        None => {
            return Err(fail(OAuthError::invalid_request(
                "response_type is required",
            )));
        }
    }
    if params.get("request").ok().flatten().is_some()
        || params.get("request_uri").ok().flatten().is_some()
    {
        return Err(fail(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        )));
    }
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(fail(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code flow",
        )));
    }
    let scope = parse_scope(params.get("scope").map_err(fail)?).map_err(fail)?;
    if scope.is_empty() {
        return Err(fail(OAuthError::new(
            ErrorCode::InvalidScope,
            "a scope is required",
        )));
    }
    let pkce = parse_pkce(params, &client).map_err(fail)?;
    let (prompt, max_age) = parse_prompt(params).map_err(fail)?;
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        response_mode,
        state,
        nonce: params.get("nonce").ok().flatten().map(str::to_owned),
        scope,
        pkce,
        prompt,
        max_age,
        login_hint: params.get("login_hint").ok().flatten().map(str::to_owned),
    })
}

/// Whether `prompt` (space-separated) holds `value`.
fn prompts(grant: &mas_data_model::AuthorizationGrant, value: &str) -> bool {
    grant
        .prompt
        .as_deref()
        .is_some_and(|p| p.split(' ').any(|p| p == value))
}

/// Whether an authorization grant still waits for the person's answer at `now`: not
/// answered, cancelled or exchanged yet, and within [`APPROVAL_WINDOW`] of the request.
#[must_use]
pub fn awaits_answer(
    grant: &mas_data_model::AuthorizationGrant,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    grant.fulfilled_at.is_none()
        && grant.cancelled_at.is_none()
        && grant.exchanged_at.is_none()
        && now <= grant.created_at + APPROVAL_WINDOW
}

/// Whether the client asked for a new account (`prompt=create`): a person who is not
/// signed in is then sent to register rather than to sign in, where registration is open.
#[must_use]
pub fn asks_for_new_account(grant: &mas_data_model::AuthorizationGrant) -> bool {
    prompts(grant, "create")
}

/// Whether the person must sign in again before answering: no sign-in on record
/// (`last_sign_in` is `None`), `prompt=login` with a sign-in older than the request, or
/// a sign-in older than the request's `max_age` at `now` (OpenID Connect Core §3.1.2.1).
#[must_use]
pub fn needs_new_sign_in(
    grant: &mas_data_model::AuthorizationGrant,
    last_sign_in: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let Some(last) = last_sign_in else {
        return true;
    };
    let relogin = prompts(grant, "login") && last < grant.created_at;
    let too_old = grant
        .max_age
        .is_some_and(|age| last + TimeDelta::seconds(i64::from(age)) < now);
    relogin || too_old
}

/// Whether the person already consented to what the grant asks, so it is answered
/// without a page: an open session of theirs with this client covers its scope (device
/// scopes included), and the client did not ask to be shown anyway (`prompt=consent`).
/// The newest 50 sessions are looked at.
///
/// # Errors
/// When storage fails.
pub async fn consent_remembered<S: SessionStore + ?Sized>(
    repo: &mut S,
    user_id: ulid::Ulid,
    grant: &mas_data_model::AuthorizationGrant,
) -> Result<bool, StorageError> {
    if prompts(grant, "consent") {
        return Ok(false);
    }
    let open = repo.open_sessions(user_id, grant.client_id, 50).await?;
    Ok(open
        .iter()
        .any(|s| crate::tokens::consent_covers(&s.scope, &grant.scope)))
}

/// Why a person's answer to a client's request (a consent, or a device's request) does
/// not grant it, if it does not: the person denied it, it asks for admin rights the
/// account may not request, or it names a Matrix device another session holds (a
/// token for it would speak for that device at the homeserver).
///
/// # Errors
/// When storage fails.
pub async fn refusal<S: UserStore + MatrixStore + ?Sized>(
    repo: &mut S,
    policy: &crate::policy::Policy,
    user_id: ulid::Ulid,
    scope: &str,
    client_id: ulid::Ulid,
    allow: bool,
) -> Result<Option<OAuthError>, StorageError> {
    if !allow {
        return Ok(Some(OAuthError::new(
            ErrorCode::AccessDenied,
            "the user denied the request",
        )));
    }
    let user = repo.find_user(user_id).await?;
    let may_admin = user.is_some_and(|u| policy.may_request_admin(&u));
    if !may_admin && scope.split(' ').any(crate::tokens::is_admin_scope) {
        return Ok(Some(OAuthError::new(
            ErrorCode::AccessDenied,
            "this account may not grant administrative access",
        )));
    }
    let held = repo.device_held_elsewhere(user_id, scope, client_id);
    Ok(held.await?.map(|device| {
        OAuthError::new(
            ErrorCode::InvalidScope,
            format!("the device `{device}` belongs to another session"),
        )
    }))
}

/// Carries out the person's answer to a stored grant, signed in as `browser`: when
/// they allow it and [`refusal`] finds nothing against it, a session for the client and a
/// single-use code ([`crate::grants::CODE_LIFETIME`]) sent back in the redirect, with
/// `state` and `iss`; otherwise the grant is cancelled and the redirect carries the
/// error. Either way the caller saves its unit of work and sends the redirect.
///
/// # Errors
/// When storage fails; [`StorageError::InvalidData`] when the grant was answered
/// already (a second tab, a double submit).
#[allow(clippy::too_many_arguments)] // The answer, and the usual clock, rng and rules.
pub async fn answer<S: CodeStore + SessionStore + UserStore + MatrixStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    policy: &crate::policy::Policy,
    issuer: &Url,
    browser: &mas_data_model::BrowserSession,
    grant: mas_data_model::AuthorizationGrant,
    allow: bool,
) -> Result<Redirect, StorageError> {
    let (redirect_uri, mode, state) = (
        grant.redirect_uri.clone(),
        grant.response_mode,
        grant.state.clone(),
    );
    let refused = refusal(
        repo,
        policy,
        browser.user_id,
        &grant.scope,
        grant.client_id,
        allow,
    );
    if let Some(error) = refused.await? {
        repo.cancel_grant(clock, grant).await?;
        return Ok(Redirect::error(
            redirect_uri,
            mode,
            state.as_deref(),
            issuer,
            &error,
        ));
    }
    let session = repo
        .add_session(
            rng,
            clock,
            grant.client_id,
            Some(browser.user_id),
            Some(browser.id),
            &grant.scope,
            None,
        )
        .await?;
    let code = crate::tokens::random_string(rng, 32);
    repo.fulfill_grant(clock, grant, &session, &code).await?;
    let mut params = vec![("code".to_owned(), code)];
    if let Some(state) = state {
        params.push(("state".to_owned(), state));
    }
    params.push(("iss".to_owned(), issuer.to_string()));
    Ok(Redirect {
        redirect_uri,
        response_mode: mode,
        params,
    })
}

#[cfg(test)]
mod answer_tests {
    use chrono::{DateTime, Utc};
    use mas_data_model::{AuthorizationGrant, ResponseMode};

    use super::{APPROVAL_WINDOW, asks_for_new_account, awaits_answer, needs_new_sign_in};

    fn grant(prompt: Option<&str>, max_age: Option<u32>) -> AuthorizationGrant {
        AuthorizationGrant {
            id: ulid::Ulid::nil(),
            client_id: ulid::Ulid::nil(),
            redirect_uri: url::Url::parse("https://app.example.com/cb").unwrap(),
            scope: "openid".to_owned(),
            state: None,
            nonce: None,
            response_mode: ResponseMode::Query,
            response_type_id_token: false,
            code: None,
            max_age,
            login_hint: None,
            prompt: prompt.map(str::to_owned),
            created_at: at(0),
            fulfilled_at: None,
            exchanged_at: None,
            cancelled_at: None,
            session_id: None,
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_grant_awaits_an_answer_until_answered_or_the_window_closes() {
        let window = APPROVAL_WINDOW.num_seconds();
        let pending = grant(None, None);
        assert!(awaits_answer(&pending, at(window)));
        assert!(!awaits_answer(&pending, at(window + 1)));
        for answered in [
            AuthorizationGrant {
                fulfilled_at: Some(at(1)),
                ..grant(None, None)
            },
            AuthorizationGrant {
                cancelled_at: Some(at(1)),
                ..grant(None, None)
            },
            AuthorizationGrant {
                exchanged_at: Some(at(1)),
                ..grant(None, None)
            },
        ] {
            assert!(!awaits_answer(&answered, at(2)));
        }
    }

    #[test]
    fn prompt_login_and_max_age_ask_for_a_newer_sign_in() {
        let plain = grant(None, None);
        assert!(
            needs_new_sign_in(&plain, None, at(5)),
            "no sign-in on record"
        );
        assert!(!needs_new_sign_in(&plain, Some(at(-86_400)), at(5)));
        let login = grant(Some("consent login"), None);
        assert!(needs_new_sign_in(&login, Some(at(-1)), at(5)));
        assert!(
            !needs_new_sign_in(&login, Some(at(0)), at(5)),
            "signed in with the request"
        );
        let recent = grant(None, Some(60));
        assert!(!needs_new_sign_in(&recent, Some(at(0)), at(60)));
        assert!(needs_new_sign_in(&recent, Some(at(0)), at(61)));
        assert!(needs_new_sign_in(&grant(None, Some(0)), Some(at(0)), at(1)));
        assert!(asks_for_new_account(&grant(Some("create"), None)));
        assert!(!asks_for_new_account(&grant(Some("created"), None)));
        assert!(!asks_for_new_account(&plain));
    }
}
