//! Dynamic client registration (RFC 7591, MSC2966): a Matrix client registers itself.
//!
//! Rules, as MAS applies them: only the code flow; `client_uri` is required and HTTPS;
//! `logo_uri`, `tos_uri` and `policy_uri` live on the host of `client_uri`; redirect URIs
//! are HTTPS on that host, `http` on a loopback address, or a private-use scheme that is
//! the reversed domain of `client_uri` (`com.example.app:/callback`); no fragments.
//! `policy.data.client_registration` relaxes them ([`ClientRegistrationRules`]): plain
//! `http` anywhere, other hosts, or no `client_uri` (which, as in MAS, also lifts the host
//! checks).
//!
//! Registration needs no authentication, so what one request can make the service store
//! is bounded: the limits below, checked before anything else.

use mas_data_model::{Client, ClientAuthMethod};
use mas_storage::repository::ClientParams;
use mas_storage::{Clock, Encrypter, Rng};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::error::{ErrorCode, OAuthError};
use crate::policy::ClientRegistrationRules;
use crate::tokens::random_string;

/// The grant types a registered client may ask for.
const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    crate::device::DEVICE_GRANT,
];

/// The longest `client_name` (and localized `client_name#…`), in characters: any real
/// application's name fits, and the consent page shows it whole.
pub const MAX_NAME_CHARS: usize = 255;
/// The longest URI (`client_uri`, `logo_uri`, `tos_uri`, `policy_uri`, their localized
/// forms, each redirect URI), in bytes: what browsers and proxies reliably carry.
pub const MAX_URI_BYTES: usize = 2048;
/// The most redirect URIs one client registers (a few per platform is the norm).
pub const MAX_REDIRECT_URIS: usize = 20;
/// The most `contacts`.
pub const MAX_CONTACTS: usize = 10;
/// The longest contact, in characters (an email address is at most 254).
pub const MAX_CONTACT_CHARS: usize = 255;
/// The largest metadata document, as stored (compact JSON), in bytes. It is kept whole
/// beside the fields read from it, so a client costs at most about twice this.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// The human-readable fields RFC 7591 §2.2 lets a client localize as `field#tag`.
const LOCALIZABLE: &[&str] = &[
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
];

/// The metadata we read; anything else is kept as sent.
#[derive(Debug, Clone, Deserialize)]
struct Request {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    application_type: Option<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    client_uri: Option<String>,
    #[serde(default)]
    logo_uri: Option<String>,
    #[serde(default)]
    tos_uri: Option<String>,
    #[serde(default)]
    policy_uri: Option<String>,
    #[serde(default)]
    contacts: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    jwks: Option<Value>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    id_token_signed_response_alg: Option<String>,
}

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

fn redirect_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description)
}

/// Refuses a string over `max` characters (names) or bytes (URIs), naming the field.
fn check_len(field: &str, value: &str, max: usize, uri: bool) -> Result<(), OAuthError> {
    let (len, unit) = if uri {
        (value.len(), "bytes")
    } else {
        (value.chars().count(), "characters")
    };
    if len <= max {
        return Ok(());
    }
    let description = format!("{field} is longer than {max} {unit}");
    if field.starts_with("redirect_uris") {
        Err(redirect_error(description))
    } else {
        Err(metadata_error(description))
    }
}

/// The size limits, checked first so an oversized field is named rather than parsed.
fn check_sizes(request: &Request, body: &Value) -> Result<(), OAuthError> {
    if let Some(name) = &request.client_name {
        check_len("client_name", name, MAX_NAME_CHARS, false)?;
    }
    for (field, value) in [
        ("client_uri", &request.client_uri),
        ("logo_uri", &request.logo_uri),
        ("tos_uri", &request.tos_uri),
        ("policy_uri", &request.policy_uri),
        ("jwks_uri", &request.jwks_uri),
    ] {
        if let Some(value) = value {
            check_len(field, value, MAX_URI_BYTES, true)?;
        }
    }
    if let Some(object) = body.as_object() {
        for (key, value) in object {
            let Some((field, _tag)) = key.split_once('#') else {
                continue;
            };
            if !LOCALIZABLE.contains(&field) {
                continue;
            }
            let Some(value) = value.as_str() else {
                return Err(metadata_error(format!("{key} must be a string")));
            };
            if field == "client_name" {
                check_len(key, value, MAX_NAME_CHARS, false)?;
            } else {
                check_len(key, value, MAX_URI_BYTES, true)?;
            }
        }
    }
    if request.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(redirect_error(format!(
            "redirect_uris holds more than {MAX_REDIRECT_URIS} URIs"
        )));
    }
    for (i, uri) in request.redirect_uris.iter().enumerate() {
        check_len(&format!("redirect_uris[{i}]"), uri, MAX_URI_BYTES, true)?;
    }
    if request.contacts.len() > MAX_CONTACTS {
        return Err(metadata_error(format!(
            "contacts holds more than {MAX_CONTACTS} entries"
        )));
    }
    for (i, contact) in request.contacts.iter().enumerate() {
        check_len(&format!("contacts[{i}]"), contact, MAX_CONTACT_CHARS, false)?;
    }
    // Everything else (jwks, unknown members, long lists of grant types) is bounded here.
    if body.to_string().len() > MAX_METADATA_BYTES {
        return Err(metadata_error(format!(
            "the metadata is larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(())
}

fn is_loopback(url: &Url) -> bool {
    matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// Whether `host` is `base` or a subdomain of it (never for an empty base).
fn same_site(host: &str, base: &str) -> bool {
    !base.is_empty() && (host == base || host.ends_with(&format!(".{base}")))
}

/// Schemes no redirect or page of a client may use, whatever the policy relaxes: they
/// run code or read local files in the browser.
fn is_dangerous(url: &Url) -> bool {
    matches!(
        url.scheme(),
        "javascript" | "data" | "vbscript" | "file" | "blob" | "about" | "filesystem"
    )
}

fn check_redirect(
    raw: &str,
    client_host: Option<&str>,
    rules: ClientRegistrationRules,
) -> Result<Url, OAuthError> {
    let url = Url::parse(raw).map_err(|_| redirect_error(format!("`{raw}` is not a URL")))?;
    if url.fragment().is_some() {
        return Err(redirect_error("a redirect URI must not have a fragment"));
    }
    if is_dangerous(&url) {
        return Err(redirect_error(format!(
            "`{raw}`: the `{}` scheme is not allowed",
            url.scheme()
        )));
    }
    let on_site =
        |host: &str| !rules.hosts_checked() || client_host.is_some_and(|c| same_site(host, c));
    let site = client_host.unwrap_or("none");
    match url.scheme() {
        "https" => {
            let host = url.host_str().unwrap_or_default();
            if !on_site(host) {
                return Err(redirect_error(format!(
                    "`{raw}` is not on the host of client_uri ({site})"
                )));
            }
        }
        "http" if is_loopback(&url) => {}
        "http" if rules.allow_insecure_uris => {
            if !on_site(url.host_str().unwrap_or_default()) {
                return Err(redirect_error(format!(
                    "`{raw}` is not on the host of client_uri ({site})"
                )));
            }
        }
        "http" => {
            return Err(redirect_error(format!(
                "`{raw}`: plain http is only allowed on a loopback address"
            )));
        }
        scheme => {
            // A private-use scheme: the client's domain, reversed (RFC 8252 §7.1). With
            // insecure URIs and any host allowed, any scheme passes (as in MAS).
            let reversed: Vec<&str> = scheme.split('.').rev().collect();
            let domain = reversed.join(".");
            let reversed_site =
                scheme.contains('.') && client_host.is_some_and(|c| same_site(c, &domain));
            let anything_goes = rules.allow_insecure_uris && !rules.hosts_checked();
            if !reversed_site && !anything_goes {
                return Err(redirect_error(format!(
                    "`{raw}`: a custom scheme must be the reversed domain of client_uri ({site})"
                )));
            }
        }
    }
    Ok(url)
}

fn check_same_host(
    name: &str,
    raw: Option<&str>,
    client_host: Option<&str>,
    rules: ClientRegistrationRules,
) -> Result<Option<Url>, OAuthError> {
    let Some(raw) = raw else { return Ok(None) };
    let url = Url::parse(raw).map_err(|_| metadata_error(format!("{name} is not a URL")))?;
    if !is_web_page(&url) || !is_secure(&url, rules) {
        return Err(metadata_error(format!("{name} must be an https URL")));
    }
    let on_site = !rules.hosts_checked()
        || url
            .host_str()
            .zip(client_host)
            .is_some_and(|(h, c)| same_site(h, c));
    if !on_site {
        return Err(metadata_error(format!(
            "{name} must be on the host of client_uri"
        )));
    }
    Ok(Some(url))
}

/// Whether a URI is a web page at all: `http` or `https`, with a host.
fn is_web_page(url: &Url) -> bool {
    matches!(url.scheme(), "https" | "http") && url.host_str().is_some_and(|h| !h.is_empty())
}

/// Whether a web page is acceptable: https on a public host, unless
/// `allow_insecure_uris`.
fn is_secure(url: &Url, rules: ClientRegistrationRules) -> bool {
    rules.allow_insecure_uris
        || (url.scheme() == "https"
            && !matches!(
                url.host_str(),
                Some("localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]")
            ))
}

/// The client's authentication method and key material, and its ID token algorithm.
fn check_authentication(
    request: &Request,
    signing: &[crate::keys::SigningAlgorithm],
) -> Result<ClientAuthMethod, OAuthError> {
    let method = match request.token_endpoint_auth_method.as_deref() {
        None => ClientAuthMethod::None,
        Some(name) => ClientAuthMethod::parse(name).ok_or_else(|| {
            metadata_error(format!("unknown token_endpoint_auth_method `{name}`"))
        })?,
    };
    if let Some(alg) = request.id_token_signed_response_alg.as_deref()
        && !crate::keys::SigningAlgorithm::parse(alg).is_some_and(|a| signing.contains(&a))
    {
        return Err(metadata_error(format!(
            "ID tokens cannot be signed with `{alg}` here"
        )));
    }
    if request.jwks_uri.is_some() {
        return Err(metadata_error(
            "jwks_uri is not supported yet; send the keys inline (jwks)",
        ));
    }
    if method == ClientAuthMethod::PrivateKeyJwt && request.jwks.is_none() {
        return Err(metadata_error("private_key_jwt needs jwks"));
    }
    if let Some(kind) = request.application_type.as_deref()
        && kind != "web"
        && kind != "native"
    {
        return Err(metadata_error("application_type must be `web` or `native`"));
    }
    Ok(method)
}

/// Registration metadata that follows every rule and size limit, before anything is
/// stored: what [`register`] stores, and what a caller may inspect without a database.
#[derive(Debug, Clone)]
pub struct CheckedMetadata {
    /// How the client authenticates at the token endpoint.
    pub auth_method: ClientAuthMethod,
    /// The redirect URIs, parsed.
    pub redirect_uris: Vec<Url>,
    /// The grant types; `authorization_code` when none were asked for.
    pub grant_types: Vec<String>,
    /// The response types; `code` when none were asked for.
    pub response_types: Vec<String>,
    /// The client's home page: an https URL unless `allow_insecure_uris`; absent only
    /// with `allow_missing_client_uri`.
    pub client_uri: Option<Url>,
    /// `logo_uri`, on the host of `client_uri`.
    pub logo_uri: Option<Url>,
    /// `tos_uri`, on the host of `client_uri`.
    pub tos_uri: Option<Url>,
    /// `policy_uri`, on the host of `client_uri`.
    pub policy_uri: Option<Url>,
    request: Request,
}

/// Checks registration metadata against the rules and the size limits, storing nothing.
///
/// # Errors
/// `invalid_client_metadata` or `invalid_redirect_uri`, as [`register`].
pub fn check_metadata(
    body: &Value,
    signing: &[crate::keys::SigningAlgorithm],
    rules: ClientRegistrationRules,
) -> Result<CheckedMetadata, OAuthError> {
    let request: Request = serde_json::from_value(body.clone())
        .map_err(|e| metadata_error(format!("malformed metadata: {e}")))?;
    check_sizes(&request, body)?;
    let client_uri = match request.client_uri.as_deref() {
        Some(raw) => {
            let url = Url::parse(raw).map_err(|_| metadata_error("client_uri is not a URL"))?;
            if !is_web_page(&url) || !is_secure(&url, rules) {
                return Err(metadata_error("client_uri must be an https URL"));
            }
            Some(url)
        }
        None if rules.allow_missing_client_uri => None,
        None => return Err(metadata_error("client_uri is required")),
    };
    let client_host = client_uri
        .as_ref()
        .map(|u| u.host_str().unwrap_or_default().to_owned());
    let client_host = client_host.as_deref();
    let response_types = request
        .response_types
        .clone()
        .unwrap_or_else(|| vec!["code".to_owned()]);
    if response_types.iter().any(|r| r != "code") {
        return Err(metadata_error("only the response type `code` is supported"));
    }
    let grant_types = request
        .grant_types
        .clone()
        .unwrap_or_else(|| vec!["authorization_code".to_owned()]);
    if let Some(other) = grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(metadata_error(format!(
            "grant type `{other}` cannot be registered"
        )));
    }
    if grant_types.iter().any(|g| g == "authorization_code") && request.redirect_uris.is_empty() {
        return Err(redirect_error(
            "redirect_uris are required for the authorization code flow",
        ));
    }
    let redirect_uris = request
        .redirect_uris
        .iter()
        .map(|raw| check_redirect(raw, client_host, rules))
        .collect::<Result<Vec<_>, _>>()?;
    let page = |name: &str, raw: &Option<String>| {
        check_same_host(name, raw.as_deref(), client_host, rules)
    };
    let logo_uri = page("logo_uri", &request.logo_uri)?;
    let tos_uri = page("tos_uri", &request.tos_uri)?;
    let policy_uri = page("policy_uri", &request.policy_uri)?;
    let auth_method = check_authentication(&request, signing)?;
    Ok(CheckedMetadata {
        auth_method,
        redirect_uris,
        grant_types,
        response_types,
        client_uri,
        logo_uri,
        tos_uri,
        policy_uri,
        request,
    })
}

/// Registers a client from its metadata; returns it with the response body (the secret,
/// for confidential clients, is in the response only: it is stored encrypted).
///
/// # Errors
/// `invalid_client_metadata` or `invalid_redirect_uri` for metadata that breaks the rules
/// or the size limits ([`MAX_METADATA_BYTES`] and the others); nothing is stored then.
pub async fn register<S: crate::store::ClientStore + ?Sized>(
    repo: &mut S,
    rng: Rng<'_>,
    clock: &dyn Clock,
    encrypter: &Encrypter,
    signing: &[crate::keys::SigningAlgorithm],
    rules: ClientRegistrationRules,
    body: &Value,
) -> Result<(Client, Value), OAuthError> {
    let checked = check_metadata(body, signing, rules)?;
    let method = checked.auth_method;
    let secret = matches!(
        method,
        ClientAuthMethod::ClientSecretBasic
            | ClientAuthMethod::ClientSecretPost
            | ClientAuthMethod::ClientSecretJwt
    )
    .then(|| random_string(rng, 40));
    let request = checked.request;
    let params = ClientParams {
        auth_method: method,
        encrypted_secret: secret
            .as_ref()
            .map(|s| encrypter.encrypt(rng, s.as_bytes())),
        jwks: request.jwks,
        jwks_uri: None,
        redirect_uris: checked.redirect_uris,
        grant_types: checked.grant_types.clone(),
        name: request.client_name,
        client_uri: checked.client_uri,
        logo_uri: checked.logo_uri,
        policy_uri: checked.policy_uri,
        tos_uri: checked.tos_uri,
        application_type: request.application_type,
        contacts: request.contacts,
        metadata: Some(body.clone()),
    };
    let client = repo.register_client(rng, clock, params).await?;
    let response = response_body(
        body,
        &client,
        method,
        &checked.grant_types,
        &checked.response_types,
        secret,
    );
    Ok((client, response))
}

/// The registration response: the metadata as sent, completed with what was decided.
fn response_body(
    body: &Value,
    client: &Client,
    method: ClientAuthMethod,
    grant_types: &[String],
    response_types: &[String],
    secret: Option<String>,
) -> Value {
    let mut response = body.clone();
    if let Some(object) = response.as_object_mut() {
        object.insert("client_id".to_owned(), json!(client.id.to_string()));
        object.insert(
            "client_id_issued_at".to_owned(),
            json!(client.created_at.timestamp()),
        );
        object.insert(
            "token_endpoint_auth_method".to_owned(),
            json!(method.as_str()),
        );
        object.insert("grant_types".to_owned(), json!(grant_types));
        object.insert("response_types".to_owned(), json!(response_types));
        if let Some(secret) = secret {
            object.insert("client_secret".to_owned(), json!(secret));
            object.insert("client_secret_expires_at".to_owned(), json!(0));
        }
    }
    response
}
