//! The `account` section: what users may do with their account.

use serde::{Deserialize, Serialize};

/// Self-service permissions, with MAS's defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)]
pub struct AccountConfig {
    /// Users may change their email addresses.
    #[serde(default = "yes")]
    pub email_change_allowed: bool,
    /// Users may change their display name.
    #[serde(default = "yes")]
    pub displayname_change_allowed: bool,
    /// Users may register with a password.
    #[serde(default)]
    pub password_registration_enabled: bool,
    /// Registration with a password requires an email address.
    #[serde(default = "yes")]
    pub password_registration_email_required: bool,
    /// Users may change their password.
    #[serde(default = "yes")]
    pub password_change_allowed: bool,
    /// Users may recover their account by email.
    #[serde(default)]
    pub password_recovery_enabled: bool,
    /// Users may deactivate their account.
    #[serde(default = "yes")]
    pub account_deactivation_allowed: bool,
    /// Users may log in with their email address.
    #[serde(default)]
    pub login_with_email_allowed: bool,
    /// Registration requires a registration token.
    #[serde(default)]
    pub password_registration_token_required: bool,
    /// The older name of `password_registration_token_required`.
    #[serde(default)]
    pub registration_token_required: bool,
}

fn yes() -> bool {
    true
}

impl Default for AccountConfig {
    fn default() -> Self {
        Self {
            email_change_allowed: true,
            displayname_change_allowed: true,
            password_registration_enabled: false,
            password_registration_email_required: true,
            password_change_allowed: true,
            password_recovery_enabled: false,
            account_deactivation_allowed: true,
            login_with_email_allowed: false,
            password_registration_token_required: false,
            registration_token_required: false,
        }
    }
}
