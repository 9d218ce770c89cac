//! OAuth 2.0 clients.

use chrono::{DateTime, Utc};
use ulid::Ulid;
use url::Url;

/// Client authentication methods at the token endpoint (RFC 7591 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuthMethod {
    /// A public client.
    None,
    /// The secret in HTTP Basic authentication.
    ClientSecretBasic,
    /// The secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the secret.
    ClientSecretJwt,
    /// A JWT signed with the client's private key.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// Every method, for parsing.
    pub const ALL: [Self; 5] = [
        Self::None,
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::ClientSecretJwt,
        Self::PrivateKeyJwt,
    ];

    /// The RFC 7591 name.
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

    /// Parses an RFC 7591 name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Where a client came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Declared in the configuration and synced by `config sync`.
    Static,
    /// Registered through dynamic client registration.
    Dynamic,
}

/// An OAuth 2.0 client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// The `client_id`.
    pub id: Ulid,
    /// Static (configuration) or dynamic (registration).
    pub kind: ClientKind,
    /// How it authenticates.
    pub auth_method: ClientAuthMethod,
    /// The secret, encrypted with the `secrets.encryption` key; never the plain secret.
    pub encrypted_secret: Option<String>,
    /// Its public keys (a JWK set) for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// Where its public keys are published.
    pub jwks_uri: Option<Url>,
    /// The redirect URIs it may use, matched exactly.
    pub redirect_uris: Vec<Url>,
    /// The grant types it may use.
    pub grant_types: Vec<String>,
    /// A name shown to users.
    pub name: Option<String>,
    /// Its home page.
    pub client_uri: Option<Url>,
    /// Its logo.
    pub logo_uri: Option<Url>,
    /// Its privacy policy.
    pub policy_uri: Option<Url>,
    /// Its terms of service.
    pub tos_uri: Option<Url>,
    /// The application type (`web` or `native`).
    pub application_type: Option<String>,
    /// Contact addresses.
    pub contacts: Vec<String>,
    /// Everything else of its registration metadata, as sent.
    pub metadata: Option<serde_json::Value>,
    /// When it was created or first synced.
    pub created_at: DateTime<Utc>,
}
