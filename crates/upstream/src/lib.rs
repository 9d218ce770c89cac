//! Sign-in through upstream identity providers (MAS's `upstream_oauth2`): discovery and
//! key caches, the authorization code flow with state, nonce and PKCE, ID token checks
//! (issuer, audience, nonce, expiry, algorithm, signature) with the `openidconnect`
//! crate, the userinfo endpoint, and the claim templates. It knows no web framework and
//! no database: handlers keep the state between the two legs.

pub mod claims;
mod discovery;
mod flow;
mod logout;

pub use mas_config::sections::{
    ImportAction, OnBackchannelLogout, OnConflict, UpstreamProviderConfig,
};
use ulid::Ulid;

pub use self::claims::{Attribute, ClaimsError, Imported};
pub use self::discovery::Upstreams;
pub use self::flow::{Answer, Started};
pub use self::logout::LogoutToken;

/// Why a trip to a provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The provider did not answer, or not in time, or not with what was asked.
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    /// Its configuration (or its discovery document) cannot be used.
    #[error("the identity provider is misconfigured: {0}")]
    Configuration(String),
    /// Its token endpoint refused the code.
    #[error("the identity provider refused to exchange the code: {0}")]
    TokenRefused(String),
    /// The ID token failed a check.
    #[error("the identity provider's ID token was refused: {0}")]
    IdToken(String),
    /// The userinfo answer failed a check.
    #[error("the identity provider's userinfo answer was refused: {0}")]
    UserInfo(String),
    /// A back-channel logout token failed a check.
    #[error("the logout token was refused: {0}")]
    LogoutToken(String),
}

/// A provider as the flow uses it: its settings and its client secret in plain text.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its ID.
    pub id: Ulid,
    /// Its settings.
    pub config: UpstreamProviderConfig,
    /// Our client secret there.
    pub client_secret: Option<String>,
}

impl Provider {
    /// A provider from its stored settings (the JSON `config sync` wrote).
    ///
    /// # Errors
    /// [`UpstreamError::Configuration`] when the settings do not read.
    pub fn from_stored(
        config: &serde_json::Value,
        client_secret: Option<String>,
    ) -> Result<Self, UpstreamError> {
        let config: UpstreamProviderConfig = serde_json::from_value(config.clone())
            .map_err(|e| UpstreamError::Configuration(format!("stored settings: {e}")))?;
        Ok(Self {
            id: config.id,
            config,
            client_secret,
        })
    }

    /// The settings as stored: everything but the secret.
    #[must_use]
    pub fn stored_settings(config: &UpstreamProviderConfig) -> serde_json::Value {
        let mut config = config.clone();
        config.client_secret = None;
        config.client_secret_file = None;
        serde_json::to_value(&config).unwrap_or_default()
    }

    /// The identity provider ID legacy Matrix clients know it by: `synapse_idp_id` when
    /// set (as Synapse spelled it), `oidc-<ULID>` otherwise.
    #[must_use]
    pub fn matrix_idp_id(config: &UpstreamProviderConfig) -> String {
        config
            .synapse_idp_id
            .clone()
            .unwrap_or_else(|| format!("oidc-{}", config.id))
    }
}
