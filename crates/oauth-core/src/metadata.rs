//! Discovery metadata (RFC 8414, OpenID Connect Discovery), with MAS's extensions for
//! Matrix (`account_management_uri`, `account_management_actions_supported`).

use serde::Serialize;

use crate::keys::SigningAlgorithm;
use url::Url;

/// Where each endpoint lives, derived from the public base URL with MAS's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The issuer identifier.
    pub issuer: Url,
    /// `/authorize`.
    pub authorization: Url,
    /// `/oauth2/token`.
    pub token: Url,
    /// `/oauth2/keys.json`.
    pub jwks: Url,
    /// `/oauth2/registration`.
    pub registration: Url,
    /// `/oauth2/userinfo`.
    pub userinfo: Url,
    /// `/oauth2/revoke`.
    pub revocation: Url,
    /// `/oauth2/introspect`.
    pub introspection: Url,
    /// `/oauth2/device`.
    pub device_authorization: Url,
    /// `/account/`.
    pub account_management: Url,
    /// `/link`: where a person enters a device's code.
    pub device_link: Url,
    /// The public base every page and endpoint hangs from (ends with a slash).
    pub base: Url,
}

impl Endpoints {
    /// The endpoints of a service reached at `public_base` (which ends with a slash).
    #[must_use]
    pub fn new(issuer: Url, public_base: &Url) -> Self {
        let at = |path: &str| {
            public_base
                .join(path)
                .unwrap_or_else(|_| public_base.clone())
        };
        Self {
            issuer,
            authorization: at("authorize"),
            token: at("oauth2/token"),
            jwks: at("oauth2/keys.json"),
            registration: at("oauth2/registration"),
            userinfo: at("oauth2/userinfo"),
            revocation: at("oauth2/revoke"),
            introspection: at("oauth2/introspect"),
            device_authorization: at("oauth2/device"),
            account_management: at("account/"),
            device_link: at("link"),
            base: public_base.clone(),
        }
    }
}

/// The client authentication methods every authenticated endpoint accepts.
pub const CLIENT_AUTH_METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
];

/// The JWS algorithms accepted for client assertions.
pub const CLIENT_ASSERTION_ALGS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384",
];

/// The account management actions MAS advertises (MSC4191), stable and unstable names.
pub const ACCOUNT_ACTIONS: &[&str] = &[
    "org.matrix.profile",
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    "org.matrix.cross_signing_reset",
    "org.matrix.sessions_list",
    "org.matrix.session_view",
    "org.matrix.session_end",
];

/// The discovery document.
#[derive(Debug, Clone, Serialize)]
// The booleans are fields of the wire format, not state flags.
#[allow(clippy::struct_excessive_bools)]
pub struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    registration_endpoint: String,
    device_authorization_endpoint: String,
    scopes_supported: Vec<&'static str>,
    response_types_supported: Vec<&'static str>,
    response_modes_supported: Vec<&'static str>,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: &'static [&'static str],
    token_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    revocation_endpoint: String,
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    revocation_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    introspection_endpoint: String,
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    code_challenge_methods_supported: Vec<&'static str>,
    userinfo_endpoint: String,
    subject_types_supported: Vec<&'static str>,
    id_token_signing_alg_values_supported: Vec<&'static str>,
    display_values_supported: Vec<&'static str>,
    claim_types_supported: Vec<&'static str>,
    claims_supported: Vec<&'static str>,
    claims_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    prompt_values_supported: Vec<&'static str>,
    account_management_uri: String,
    account_management_actions_supported: &'static [&'static str],
    authorization_response_iss_parameter_supported: bool,
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
}

impl ProviderMetadata {
    /// The document for these endpoints and ID token algorithms. `registration_open`
    /// says whether password registration (`prompt=create`) is offered.
    #[must_use]
    pub fn new(
        endpoints: &Endpoints,
        signing: &[SigningAlgorithm],
        registration_open: bool,
    ) -> Self {
        // RS256 always; the others when a key signs with them and a client asks for it.
        let signing: Vec<&'static str> = signing.iter().map(|a| a.as_str()).collect();
        let mut prompts = vec!["none", "login", "consent"];
        if registration_open {
            prompts.push("create");
        }
        Self {
            issuer: endpoints.issuer.to_string(),
            authorization_endpoint: endpoints.authorization.to_string(),
            token_endpoint: endpoints.token.to_string(),
            jwks_uri: endpoints.jwks.to_string(),
            registration_endpoint: endpoints.registration.to_string(),
            device_authorization_endpoint: endpoints.device_authorization.to_string(),
            scopes_supported: vec!["openid", "email"],
            // Only the code flow: every implicit and hybrid type is refused (RFC 9700).
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["form_post", "query", "fragment"],
            grant_types_supported: vec![
                "authorization_code",
                "refresh_token",
                "client_credentials",
                crate::device::DEVICE_GRANT,
            ],
            token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
            token_endpoint_auth_signing_alg_values_supported: CLIENT_ASSERTION_ALGS,
            revocation_endpoint: endpoints.revocation.to_string(),
            revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
            revocation_endpoint_auth_signing_alg_values_supported: CLIENT_ASSERTION_ALGS,
            introspection_endpoint: endpoints.introspection.to_string(),
            introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
            introspection_endpoint_auth_signing_alg_values_supported: CLIENT_ASSERTION_ALGS,
            code_challenge_methods_supported: vec!["S256"],
            userinfo_endpoint: endpoints.userinfo.to_string(),
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: signing.clone(),
            display_values_supported: vec!["page"],
            claim_types_supported: vec!["normal"],
            claims_supported: vec![
                "iss",
                "sub",
                "aud",
                "iat",
                "exp",
                "nonce",
                "auth_time",
                "at_hash",
                "sid",
            ],
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            prompt_values_supported: prompts,
            account_management_uri: endpoints.account_management.to_string(),
            account_management_actions_supported: ACCOUNT_ACTIONS,
            authorization_response_iss_parameter_supported: true,
            // Sent to configured clients that give a `backchannel_logout_uri`.
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
        }
    }
}
