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

impl AccountConfig {
    /// Whether `/register` is open: password registration is on (with passwords). It
    /// may still ask for a registration token: [`Self::registration_token_required`].
    #[must_use]
    pub fn password_registration_open(&self, passwords_enabled: bool) -> bool {
        passwords_enabled && self.password_registration_enabled
    }

    /// Whether `/register` asks for a registration token (either name of the key).
    #[must_use]
    pub fn registration_token_required(&self) -> bool {
        self.password_registration_token_required || self.registration_token_required
    }

    /// The keys set to something that cannot take effect, as warnings for the start-up
    /// log: recovery sets a password, so it needs passwords on.
    #[must_use]
    pub fn not_honoured(&self, passwords_enabled: bool) -> Vec<String> {
        let mut notes = Vec::new();
        if self.password_recovery_enabled && !passwords_enabled {
            notes.push(
                "account.password_recovery_enabled is true, which has no effect: passwords.enabled is false, and recovery sets a password"
                    .to_owned(),
            );
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::AccountConfig;

    /// The key each warning names.
    fn keys(warnings: &[String]) -> Vec<&str> {
        warnings
            .iter()
            .filter_map(|w| w.strip_prefix("account.")?.split(' ').next())
            .collect()
    }

    #[test]
    fn either_name_of_the_key_requires_a_registration_token() {
        let open = AccountConfig {
            password_registration_enabled: true,
            ..AccountConfig::default()
        };
        assert!(open.password_registration_open(true));
        assert!(!open.password_registration_open(false));
        assert!(!open.registration_token_required());
        for token in [
            AccountConfig {
                password_registration_token_required: true,
                ..open.clone()
            },
            AccountConfig {
                registration_token_required: true,
                ..open.clone()
            },
        ] {
            assert!(token.password_registration_open(true));
            assert!(token.registration_token_required());
        }
    }

    #[test]
    fn recovery_warns_only_without_passwords() {
        let account = AccountConfig::default();
        assert!(account.not_honoured(true).is_empty());
        assert!(account.not_honoured(false).is_empty());
        let recovery = AccountConfig {
            password_recovery_enabled: true,
            login_with_email_allowed: true,
            registration_token_required: true,
            password_change_allowed: false,
            email_change_allowed: false,
            password_registration_enabled: true,
            password_registration_email_required: false,
            ..AccountConfig::default()
        };
        assert!(
            recovery.not_honoured(true).is_empty(),
            "every key is honoured"
        );
        assert_eq!(
            keys(&recovery.not_honoured(false)),
            ["password_recovery_enabled"]
        );
    }
}
