//! The `upstream_oauth2` section: identity providers people sign in through (SSO).
//!
//! The keys are MAS's. `config sync` stores each provider in the database (its secret
//! encrypted) as the JSON form of [`UpstreamProviderConfig`] without the secret, and the
//! server reads them from there.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ulid::Ulid;
use url::Url;

use super::Secret;
use crate::{ConfigError, Issues};

/// The section: a list of providers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamOAuth2Config {
    /// The providers, shown on the sign-in page in this order.
    #[serde(default)]
    pub providers: Vec<UpstreamProviderConfig>,
}

/// One upstream OpenID Connect (or plain OAuth 2.0) provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)] // MAS's independent switches.
pub struct UpstreamProviderConfig {
    /// Whether people may sign in through it (disabled providers keep their links).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Its ID, a ULID.
    #[serde(deserialize_with = "super::clients::deserialize_ulid")]
    pub id: Ulid,
    /// The ID Synapse knew it by (`oidc-<idp_id>`, or `oidc` for `oidc_config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapse_idp_id: Option<String>,
    /// The issuer; its discovery document must name exactly this issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The name on its sign-in button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_name: Option<String>,
    /// A brand (`google`, `github`, ...) pages may show an icon for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_name: Option<String>,
    /// Our client ID at the provider.
    pub client_id: String,
    /// Our client secret there, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// Our client secret there, read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// How we authenticate at its token endpoint.
    pub token_endpoint_auth_method: UpstreamAuthMethod,
    /// Sign in with Apple's key settings (`team_id`, `key_id`, `private_key[_file]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_with_apple: Option<serde_json::Value>,
    /// The algorithm of our client assertion (`client_secret_jwt`, `private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// The algorithm its ID tokens must be signed with.
    #[serde(default = "rs256")]
    pub id_token_signed_response_alg: String,
    /// The scope asked for.
    #[serde(default = "openid")]
    pub scope: String,
    /// How its endpoints are found.
    #[serde(default)]
    pub discovery_mode: DiscoveryMode,
    /// Whether PKCE is used.
    #[serde(default)]
    pub pkce_method: PkceMethod,
    /// Whether claims are also read from its userinfo endpoint.
    #[serde(default)]
    pub fetch_userinfo: bool,
    /// The algorithm of a signed userinfo answer; unset: plain JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_signed_response_alg: Option<String>,
    /// Overrides the discovered authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<Url>,
    /// Overrides the discovered token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<Url>,
    /// Overrides the discovered key set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<Url>,
    /// Overrides the discovered userinfo endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<Url>,
    /// How the provider sends the answer back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mode: Option<ResponseMode>,
    /// What is taken from the claims, and how.
    #[serde(default)]
    pub claims_imports: ClaimsImports,
    /// More authorization parameters; each value a template over `params` and `logged_out`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_authorization_parameters: BTreeMap<String, String>,
    /// Forwards a client's `login_hint` (same as `login_hint: "{{ params.login_hint }}"`).
    #[serde(default)]
    pub forward_login_hint: bool,
    /// What a back-channel logout from the provider ends.
    #[serde(default)]
    pub on_backchannel_logout: OnBackchannelLogout,
    /// Whether registering through it needs a registration token.
    #[serde(default)]
    pub registration_token_required: bool,
}

fn yes() -> bool {
    true
}

fn rs256() -> String {
    "RS256".to_owned()
}

fn openid() -> String {
    "openid".to_owned()
}

/// How we authenticate at a provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamAuthMethod {
    /// No authentication (a public client).
    None,
    /// The secret in HTTP Basic authentication.
    ClientSecretBasic,
    /// The secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the secret.
    ClientSecretJwt,
    /// A JWT signed with one of our keys (`secrets.keys`).
    PrivateKeyJwt,
    /// Apple's variant: a JWT signed with the key Apple issued.
    SignInWithApple,
}

impl UpstreamAuthMethod {
    /// The method's name as the configuration spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::SignInWithApple => "sign_in_with_apple",
        }
    }

    fn uses_secret(self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }

    fn signs(self) -> bool {
        matches!(self, Self::ClientSecretJwt | Self::PrivateKeyJwt)
    }
}

/// How a provider's endpoints are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryMode {
    /// OpenID Connect discovery, its document checked strictly.
    #[default]
    Oidc,
    /// Discovery without the strict checks.
    Insecure,
    /// No discovery: the endpoints are configured.
    Disabled,
}

/// Whether PKCE is used with a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PkceMethod {
    /// When its discovery document lists S256.
    #[default]
    Auto,
    /// Always, with S256.
    Always,
    /// Never.
    Never,
}

/// How a provider sends the answer to our callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// In the query of a redirect.
    Query,
    /// In a form the browser posts.
    FormPost,
}

/// What a back-channel logout from the provider ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBackchannelLogout {
    /// Nothing: the request is checked and logged.
    #[default]
    DoNothing,
    /// The browser sessions the provider's session started.
    LogoutBrowserOnly,
    /// Those browser sessions and every client session started from them.
    LogoutAll,
}

/// What happens to one imported attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportAction {
    /// Not imported.
    #[default]
    Ignore,
    /// Offered; the person may decline.
    Suggest,
    /// Imported when present.
    Force,
    /// Imported; the sign-in fails without it.
    Require,
}

/// What happens when the imported localpart belongs to an existing account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// The sign-in fails.
    #[default]
    Fail,
    /// The upstream account is linked to it, whatever links it has.
    Add,
    /// The upstream account replaces its link to this provider.
    Replace,
    /// The upstream account is linked only if it has no link to this provider.
    Set,
}

/// How claims are turned into the account's attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsImports {
    /// The stable identifier of the upstream account.
    #[serde(default)]
    pub subject: TemplateOnly,
    /// Creates the account without the confirmation page.
    #[serde(default)]
    pub skip_confirmation: bool,
    /// The Matrix ID's localpart.
    #[serde(default)]
    pub localpart: LocalpartImport,
    /// The display name.
    #[serde(default)]
    pub displayname: AttributeImport,
    /// An email address.
    #[serde(default)]
    pub email: EmailImport,
    /// A readable name of the upstream account, shown on the account pages.
    #[serde(default)]
    pub account_name: TemplateOnly,
}

/// An attribute that only has a template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateOnly {
    /// The template over the claims (`{{ user.sub }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// An imported attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeImport {
    /// What happens to it.
    #[serde(default)]
    pub action: ImportAction,
    /// The template over the claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// The imported email address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailImport {
    /// What happens to it.
    #[serde(default)]
    pub action: ImportAction,
    /// The template over the claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Whether the provider is believed that the address is the person's.
    #[serde(default)]
    pub set_email_verification: EmailVerification,
}

/// Whether an imported address counts as verified. Only verified addresses are added
/// to accounts here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailVerification {
    /// As the provider's `email_verified` claim says (no claim: not verified).
    #[default]
    Import,
    /// Always: the provider only has addresses it verified.
    Always,
    /// Never: no address is imported.
    Never,
}

/// The imported localpart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalpartImport {
    /// What happens to it.
    #[serde(default)]
    pub action: ImportAction,
    /// The template over the claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// When it belongs to an existing account.
    #[serde(default)]
    pub on_conflict: OnConflict,
}

/// The JWS algorithms this service can check or produce.
pub const SIGNING_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256", "HS384",
    "HS512",
];

impl UpstreamProviderConfig {
    /// The client secret, from `client_secret` or `client_secret_file`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read.
    pub fn secret(&self) -> Result<Option<String>, ConfigError> {
        super::inline_or_file(
            self.client_secret.as_ref(),
            self.client_secret_file.as_deref(),
        )
    }

    /// The name of its button: `human_name`, else the issuer's host, else its ID.
    #[must_use]
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.human_name {
            return name.clone();
        }
        self.issuer
            .as_deref()
            .and_then(|i| Url::parse(i).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| self.id.to_string())
    }

    /// The templates with their key paths under the provider, for checking.
    #[must_use]
    pub fn templates(&self) -> Vec<(String, &str)> {
        let imports = &self.claims_imports;
        let mut all: Vec<(String, &str)> = [
            ("claims_imports.subject.template", &imports.subject.template),
            (
                "claims_imports.localpart.template",
                &imports.localpart.template,
            ),
            (
                "claims_imports.displayname.template",
                &imports.displayname.template,
            ),
            ("claims_imports.email.template", &imports.email.template),
            (
                "claims_imports.account_name.template",
                &imports.account_name.template,
            ),
        ]
        .into_iter()
        .filter_map(|(key, t)| t.as_deref().map(|t| (key.to_owned(), t)))
        .collect();
        for (name, value) in &self.additional_authorization_parameters {
            all.push((
                format!("additional_authorization_parameters.{name}"),
                value.as_str(),
            ));
        }
        all
    }

    /// Keys that are accepted but have no effect in this release, for the start-up log.
    #[must_use]
    pub fn not_honoured(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.registration_token_required {
            notes.push(format!(
                "upstream_oauth2.providers[{}].registration_token_required is not honoured yet: \
                 people register through this provider without a token",
                self.id
            ));
        }
        if self.token_endpoint_auth_method == UpstreamAuthMethod::SignInWithApple {
            notes.push(format!(
                "upstream_oauth2.providers[{}]: Sign in with Apple is not supported by this \
                 release; its button leads to an error page",
                self.id
            ));
        }
        notes
    }

    pub(crate) fn validate(&self, index: usize, issues: &mut Issues) {
        let index = index.to_string();
        let at = |keys: &[&str]| {
            let mut path = vec!["upstream_oauth2", "providers", index.as_str()];
            path.extend_from_slice(keys);
            super::path(&path)
        };
        self.validate_endpoints(&at, issues);
        self.validate_client_auth(&at, issues);
        for (key, alg) in [
            (
                "id_token_signed_response_alg",
                Some(&self.id_token_signed_response_alg),
            ),
            (
                "userinfo_signed_response_alg",
                self.userinfo_signed_response_alg.as_ref(),
            ),
        ] {
            if let Some(alg) = alg
                && !SIGNING_ALGORITHMS.contains(&alg.as_str())
            {
                issues.push(
                    &at(&[key]),
                    format!("`{alg}` is not one of {}", SIGNING_ALGORITHMS.join(", ")),
                );
            }
            // An HMAC is keyed with the client secret: without one, anyone could sign.
            if let Some(alg) = alg
                && alg.starts_with("HS")
                && !self.token_endpoint_auth_method.uses_secret()
            {
                issues.push(
                    &at(&[key]),
                    format!(
                        "`{alg}` is keyed with the client secret, which token_endpoint_auth_method `{}` does not use",
                        self.token_endpoint_auth_method.as_str()
                    ),
                );
            }
        }
        self.claims_imports
            .validate(&at(&["claims_imports"]), issues);
        let env = minijinja::Environment::new();
        for (key, template) in self.templates() {
            if let Err(error) = env.template_from_str(template) {
                let keys: Vec<&str> = key.split('.').collect();
                issues.push(&at(&keys), format!("the template does not parse: {error}"));
            }
        }
    }

    fn validate_endpoints(&self, at: &dyn Fn(&[&str]) -> Vec<String>, issues: &mut Issues) {
        if self.discovery_mode == DiscoveryMode::Disabled {
            for (key, set) in [
                (
                    "authorization_endpoint",
                    self.authorization_endpoint.is_some(),
                ),
                ("token_endpoint", self.token_endpoint.is_some()),
            ] {
                if !set {
                    issues.push(&at(&[key]), "required when `discovery_mode` is `disabled`");
                }
            }
            if self.scope.split(' ').any(|s| s == "openid") && self.jwks_uri.is_none() {
                issues.push(
                    &at(&["jwks_uri"]),
                    "required when `discovery_mode` is `disabled` and the scope has `openid` \
                     (the ID token's signature is checked against it)",
                );
            }
        } else {
            match self.issuer.as_deref().map(Url::parse) {
                None => issues.push(
                    &at(&["issuer"]),
                    "required unless `discovery_mode` is `disabled`",
                ),
                Some(Err(_)) => issues.push(&at(&["issuer"]), "must be a URL"),
                Some(Ok(url)) => super::check_http_url(issues, &at(&["issuer"]), &url, false),
            }
        }
    }

    fn validate_client_auth(&self, at: &dyn Fn(&[&str]) -> Vec<String>, issues: &mut Issues) {
        let method = self.token_endpoint_auth_method;
        let name = method.as_str();
        let has_secret = self.client_secret.is_some() || self.client_secret_file.is_some();
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            issues.push(
                &at(&["client_secret_file"]),
                "cannot be set together with `client_secret`",
            );
        }
        if method.uses_secret() && !has_secret {
            issues.push(
                &at(&["client_secret"]),
                format!(
                    "required with token_endpoint_auth_method `{name}` (or `client_secret_file`)"
                ),
            );
        } else if !method.uses_secret() && has_secret {
            issues.push(
                &at(&["client_secret"]),
                format!("not allowed with token_endpoint_auth_method `{name}`"),
            );
        }
        match (&self.token_endpoint_auth_signing_alg, method.signs()) {
            (None, true) => issues.push(
                &at(&["token_endpoint_auth_signing_alg"]),
                format!("required with token_endpoint_auth_method `{name}`"),
            ),
            (Some(_), false) => issues.push(
                &at(&["token_endpoint_auth_signing_alg"]),
                format!("not allowed with token_endpoint_auth_method `{name}`"),
            ),
            (Some(alg), true) => {
                let hmac = alg.starts_with("HS");
                if !SIGNING_ALGORITHMS.contains(&alg.as_str())
                    || hmac != (method == UpstreamAuthMethod::ClientSecretJwt)
                {
                    issues.push(
                        &at(&["token_endpoint_auth_signing_alg"]),
                        format!("`{alg}` cannot be used with token_endpoint_auth_method `{name}`"),
                    );
                }
            }
            (None, false) => {}
        }
        if (method == UpstreamAuthMethod::SignInWithApple) != self.sign_in_with_apple.is_some() {
            issues.push(
                &at(&["sign_in_with_apple"]),
                "required with token_endpoint_auth_method `sign_in_with_apple`, and only with it",
            );
        }
    }
}

impl ClaimsImports {
    fn validate(&self, at: &[String], issues: &mut Issues) {
        let under = |keys: &[&str]| {
            let mut path = at.to_vec();
            path.extend(keys.iter().map(|k| (*k).to_owned()));
            path
        };
        if self.skip_confirmation {
            if self.localpart.action != ImportAction::Require {
                issues.push(
                    &under(&["localpart", "action"]),
                    "must be `require` when `skip_confirmation` is true",
                );
            }
            for (key, action) in [
                ("displayname", self.displayname.action),
                ("email", self.email.action),
            ] {
                if action == ImportAction::Suggest {
                    issues.push(
                        &under(&[key, "action"]),
                        "must not be `suggest` when `skip_confirmation` is true",
                    );
                }
            }
        }
        if self.localpart.on_conflict != OnConflict::Fail
            && !matches!(
                self.localpart.action,
                ImportAction::Force | ImportAction::Require
            )
        {
            issues.push(
                &under(&["localpart", "on_conflict"]),
                "needs `localpart.action` to be `force` or `require`",
            );
        }
    }
}

impl UpstreamOAuth2Config {
    pub(crate) fn validate(&self, issues: &mut Issues) {
        let mut ids = HashSet::new();
        let mut idp_ids = HashSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            provider.validate(i, issues);
            let index = i.to_string();
            if !ids.insert(provider.id) {
                issues.push(
                    &["upstream_oauth2", "providers", &index, "id"],
                    format!("provider `{}` is declared more than once", provider.id),
                );
            }
            if let Some(idp) = &provider.synapse_idp_id
                && !idp_ids.insert(idp.as_str())
            {
                issues.push(
                    &["upstream_oauth2", "providers", &index, "synapse_idp_id"],
                    format!("`{idp}` is used by two providers"),
                );
            }
        }
    }

    /// Whether no provider is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::RootConfig;

    /// The rest of a configuration that loads.
    const BASE: &str = "matrix: {secret: s}\nsecrets: {encryption: '0000000000000000000000000000000000000000000000000000000000000000'}\n";

    fn load(yaml: &str) -> Result<RootConfig, crate::ConfigError> {
        RootConfig::from_yaml(&format!("{BASE}{yaml}"))
    }

    fn problems(yaml: &str) -> Vec<String> {
        match load(yaml) {
            Ok(_) => Vec::new(),
            Err(error) => error
                .issues()
                .iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect(),
        }
    }

    const GOOD: &str = r"
upstream_oauth2:
  providers:
    - id: 01HFVBY12TMNTYTBV8W921M5FA
      synapse_idp_id: oidc-keycloak
      issuer: https://sso.example.com/realms/matrix
      human_name: Example SSO
      brand_name: keycloak
      client_id: mas
      client_secret: secret
      token_endpoint_auth_method: client_secret_basic
      scope: openid profile email
      claims_imports:
        skip_confirmation: true
        localpart:
          action: require
          template: '{{ user.preferred_username }}'
          on_conflict: add
        displayname:
          action: force
        email:
          action: require
          set_email_verification: always
    - id: 01HFVBY12TMNTYTBV8W921M5FB
      discovery_mode: disabled
      client_id: github-client
      client_secret_file: /run/secrets/github
      token_endpoint_auth_method: client_secret_post
      scope: read:user
      authorization_endpoint: https://github.com/login/oauth/authorize
      token_endpoint: https://github.com/login/oauth/access_token
      userinfo_endpoint: https://api.github.com/user
      fetch_userinfo: true
";

    #[test]
    fn mas_shaped_providers_load_with_their_defaults() {
        let config = load(GOOD).unwrap();
        let providers = &config.upstream_oauth2.providers;
        assert_eq!(providers.len(), 2);
        assert!(providers[0].enabled);
        assert_eq!(providers[0].id_token_signed_response_alg, "RS256");
        assert_eq!(providers[1].scope, "read:user");
        assert_eq!(providers[0].display_name(), "Example SSO");
        assert_eq!(providers[1].display_name(), "01HFVBY12TMNTYTBV8W921M5FB");
        assert!(providers[0].not_honoured().is_empty());
    }

    #[test]
    fn each_mistake_is_named_by_its_key_path() {
        let yaml = r"
upstream_oauth2:
  providers:
    - id: 01HFVBY12TMNTYTBV8W921M5FA
      client_id: a
      token_endpoint_auth_method: client_secret_post
      id_token_signed_response_alg: none
      claims_imports:
        skip_confirmation: true
        displayname:
          action: suggest
    - id: 01HFVBY12TMNTYTBV8W921M5FA
      discovery_mode: disabled
      client_id: b
      client_secret: s
      token_endpoint_auth_method: private_key_jwt
      userinfo_signed_response_alg: HS256
      claims_imports:
        localpart:
          on_conflict: add
        email:
          template: '{{ user.email'
";
        let found = problems(yaml);
        for expected in [
            "upstream_oauth2.providers[0].issuer: required unless `discovery_mode` is `disabled`",
            "upstream_oauth2.providers[0].client_secret: required with token_endpoint_auth_method `client_secret_post`",
            "upstream_oauth2.providers[0].id_token_signed_response_alg: `none` is not one of",
            "upstream_oauth2.providers[0].claims_imports.localpart.action: must be `require`",
            "upstream_oauth2.providers[0].claims_imports.displayname.action: must not be `suggest`",
            "upstream_oauth2.providers[1].authorization_endpoint: required when",
            "upstream_oauth2.providers[1].token_endpoint: required when",
            "upstream_oauth2.providers[1].jwks_uri: required when",
            "upstream_oauth2.providers[1].client_secret: not allowed with token_endpoint_auth_method `private_key_jwt`",
            "upstream_oauth2.providers[1].token_endpoint_auth_signing_alg: required with",
            "upstream_oauth2.providers[1].claims_imports.localpart.on_conflict: needs",
            "upstream_oauth2.providers[1].id: provider `01HFVBY12TMNTYTBV8W921M5FA` is declared more than once",
            "upstream_oauth2.providers[1].claims_imports.email.template: the template does not parse",
            "upstream_oauth2.providers[1].userinfo_signed_response_alg: `HS256` is keyed with the client secret",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn a_misspelt_key_is_refused() {
        let found = problems(
            r"
upstream_oauth2:
  providers:
    - id: 01HFVBY12TMNTYTBV8W921M5FA
      issuer: https://sso.example.com/
      client_id: a
      token_endpoint_auth_method: none
      fetch_user_info: true
",
        );
        assert!(
            found.iter().any(|f| f.contains("fetch_user_info")),
            "{found:?}"
        );
    }
}
