//! Upstream identity providers and the links of users to them.

use chrono::{DateTime, Utc};
use ulid::Ulid;

/// An upstream OpenID Connect provider.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamOAuthProvider {
    /// The provider's ID.
    pub id: Ulid,
    /// Its place among the providers (the order of the sign-in buttons).
    pub ui_order: i32,
    /// Its issuer.
    pub issuer: Option<String>,
    /// A name shown on the login page.
    pub human_name: Option<String>,
    /// Our client ID there.
    pub client_id: String,
    /// Our client secret there, encrypted.
    pub encrypted_client_secret: Option<String>,
    /// Everything else of its configuration.
    pub config: serde_json::Value,
    /// When it was created or first synced.
    pub created_at: DateTime<Utc>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A link between a user and an account at an upstream provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOAuthLink {
    /// The link's ID.
    pub id: Ulid,
    /// The provider.
    pub provider_id: Ulid,
    /// The linked user, once linked.
    pub user_id: Option<Ulid>,
    /// The account's subject at the provider.
    pub subject: String,
    /// A readable name of the upstream account.
    pub human_account_name: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One trip of a person to an upstream provider and back.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamOAuthAuthorizationSession {
    /// Its ID.
    pub id: Ulid,
    /// The provider.
    pub provider_id: Ulid,
    /// The `state` sent to the provider, which its answer must carry back.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier, when PKCE is used.
    pub code_verifier: Option<String>,
    /// Where the person goes once signed in (a local path).
    pub next: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When the provider's answer arrived (it is used once).
    pub completed_at: Option<DateTime<Utc>>,
    /// The upstream account the answer named.
    pub link_id: Option<Ulid>,
    /// The ID token received, as sent.
    pub id_token: Option<String>,
    /// The claims received: `{"id_token_claims", "userinfo_claims", "user"}`.
    pub claims: Option<serde_json::Value>,
    /// The provider's session ID (`sid`), for back-channel logout.
    pub sid: Option<String>,
    /// When it signed someone in or registered them (it is used once).
    pub consumed_at: Option<DateTime<Utc>>,
    /// The browser session it opened.
    pub browser_session_id: Option<Ulid>,
}
