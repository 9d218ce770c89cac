//! The `experimental` section: token lifetimes and MAS's other experimental settings.

use serde::{Deserialize, Serialize};

use crate::Issues;

/// Settings MAS files under "experimental".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentalConfig {
    /// Lifetime of OAuth 2.0 access tokens, in seconds.
    #[serde(default = "default_ttl")]
    pub access_token_ttl: u64,
    /// Lifetime of compatibility-layer access tokens, in seconds.
    #[serde(default = "default_ttl")]
    pub compat_token_ttl: u64,
    /// Ending inactive sessions; accepted now, honoured by a later release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_session_expiration: Option<figment::value::Value>,
    /// The plan management page; accepted now, honoured by a later release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_management_iframe_uri: Option<String>,
    /// Session count limits; accepted now, honoured by a later release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_limit: Option<figment::value::Value>,
    /// Passkeys; accepted now, honoured by a later release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkeys: Option<figment::value::Value>,
    /// Where legacy SSO logins may send their login token (not a MAS key; like
    /// Synapse's `sso.client_whitelist`): absolute URLs, matched by scheme, host, port
    /// and path prefix. Empty: any destination, named on the confirmation page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compat_sso_redirect_allowlist: Vec<String>,
}

fn default_ttl() -> u64 {
    300
}

impl Default for ExperimentalConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: default_ttl(),
            compat_token_ttl: default_ttl(),
            inactive_session_expiration: None,
            plan_management_iframe_uri: None,
            session_limit: None,
            passkeys: None,
            compat_sso_redirect_allowlist: Vec::new(),
        }
    }
}

impl ExperimentalConfig {
    pub(crate) fn validate(&self, issues: &mut Issues) {
        for (i, entry) in self.compat_sso_redirect_allowlist.iter().enumerate() {
            if url::Url::parse(entry).is_err() {
                issues.push(
                    &[
                        "experimental".to_owned(),
                        format!("compat_sso_redirect_allowlist[{i}]"),
                    ],
                    "expected an absolute URL",
                );
            }
        }
        for (key, ttl) in [
            ("access_token_ttl", self.access_token_ttl),
            ("compat_token_ttl", self.compat_token_ttl),
        ] {
            if !(60..=86_400).contains(&ttl) {
                issues.push(
                    &["experimental", key],
                    "expected a number of seconds from 60 to 86400",
                );
            }
        }
    }
}
