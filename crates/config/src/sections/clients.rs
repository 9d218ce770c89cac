//! The `clients` section: OAuth 2.0 clients declared in the configuration.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};
use ulid::Ulid;
use url::Url;

use super::Secret;
use crate::{ConfigError, Issues};

/// A client the administrator declares; `config sync` stores it in the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client's ID, a ULID (e.g. `0000000000000000000SYNAPSE`).
    #[serde(deserialize_with = "deserialize_ulid")]
    pub client_id: Ulid,
    /// How the client authenticates at the token endpoint.
    pub client_auth_method: ClientAuthMethod,
    /// A name shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The client's home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<Url>,
    /// The client secret, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// The client secret, read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// The client's public keys (a JWK set), for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<figment::value::Value>,
    /// Where the client's public keys are published, for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<Url>,
    /// The redirect URIs the client may use, matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<Url>,
    /// Where the client hears that a person signed out (OpenID Connect Back-Channel
    /// Logout); not a MAS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<Url>,
}

/// Client authentication methods at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// A public client: no authentication.
    None,
    /// The secret in HTTP Basic authentication.
    ClientSecretBasic,
    /// The secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the secret (HMAC).
    ClientSecretJwt,
    /// A JWT signed with the client's private key.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// Whether this method needs a client secret.
    #[must_use]
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }

    /// The name of this method as the configuration and OAuth metadata spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

pub(crate) fn deserialize_ulid<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Ulid, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ulid::from_string(&text).map_err(|_| {
        serde::de::Error::custom("not a valid ULID (26 characters of Crockford base32)")
    })
}

impl ClientConfig {
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

    pub(crate) fn validate(&self, index: usize, issues: &mut Issues) {
        let index = index.to_string();
        let at = |key: &str| ["clients", index.as_str(), key].map(str::to_owned);
        let method = self.client_auth_method.as_str();
        let has_secret = self.client_secret.is_some() || self.client_secret_file.is_some();
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            issues.push(
                &at("client_secret_file"),
                "cannot be set together with `client_secret`",
            );
        }
        if self.client_auth_method.uses_secret() {
            if !has_secret {
                issues.push(
                    &at("client_secret"),
                    format!(
                        "required with client_auth_method `{method}` (or `client_secret_file`)"
                    ),
                );
            }
        } else if has_secret {
            let key = if self.client_secret.is_some() {
                "client_secret"
            } else {
                "client_secret_file"
            };
            issues.push(
                &at(key),
                format!("not allowed with client_auth_method `{method}`"),
            );
        }
        if self.client_auth_method == ClientAuthMethod::PrivateKeyJwt {
            match (self.jwks.is_some(), self.jwks_uri.is_some()) {
                (false, false) => issues.push(
                    &at("jwks"),
                    "`jwks` or `jwks_uri` is required with client_auth_method `private_key_jwt`",
                ),
                (true, true) => issues.push(&at("jwks_uri"), "cannot be set together with `jwks`"),
                _ => {}
            }
        } else {
            for (key, set) in [
                ("jwks", self.jwks.is_some()),
                ("jwks_uri", self.jwks_uri.is_some()),
            ] {
                if set {
                    issues.push(
                        &at(key),
                        format!("not allowed with client_auth_method `{method}`"),
                    );
                }
            }
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            super::check_http_url(issues, &at("backchannel_logout_uri"), uri, false);
            if uri.fragment().is_some() {
                issues.push(&at("backchannel_logout_uri"), "must not contain a fragment");
            }
        }
        for (i, uri) in self.redirect_uris.iter().enumerate() {
            if uri.fragment().is_some() {
                issues.push(
                    &["clients", index.as_str(), "redirect_uris", &i.to_string()],
                    "a redirect URI must not contain a fragment",
                );
            }
        }
    }
}

pub(crate) fn validate_unique_ids(clients: &[ClientConfig], issues: &mut Issues) {
    let mut seen = HashSet::new();
    for (i, client) in clients.iter().enumerate() {
        if !seen.insert(client.client_id) {
            issues.push(
                &["clients", &i.to_string(), "client_id"],
                format!("client `{}` is declared more than once", client.client_id),
            );
        }
    }
}
