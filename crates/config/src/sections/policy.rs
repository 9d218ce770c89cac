//! The `policy` section: MAS's OPA settings. The rules of `data` are applied by this
//! service directly (no OPA); the module and entrypoints are accepted and have no
//! effect. Unknown keys are refused, naming the key.

use serde::{Deserialize, Serialize};

/// `policy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The compiled OPA module MAS loads (no effect here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_module: Option<String>,
    /// MAS's entrypoint for client registration (no effect here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_registration_entrypoint: Option<String>,
    /// MAS's entrypoint for registration (no effect here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_entrypoint: Option<String>,
    /// MAS's entrypoint for authorization grants (no effect here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_grant_entrypoint: Option<String>,
    /// MAS's entrypoint for compatibility logins (no effect here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat_login_entrypoint: Option<String>,
    /// MAS's entrypoint for email addresses (no effect here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_entrypoint: Option<String>,
    /// MAS's entrypoint for passwords (no effect here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_entrypoint: Option<String>,
    /// The rules.
    #[serde(default, skip_serializing_if = "PolicyData::is_empty")]
    pub data: PolicyData,
}

/// MAS's string constraints: a value matches when any entry of any list does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringConstraints {
    /// Exact values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub literals: Vec<String>,
    /// Values that contain one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substrings: Vec<String>,
    /// Regular expressions, matched anywhere unless anchored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regexes: Vec<String>,
    /// Values that start with one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Values that end with one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suffixes: Vec<String>,
}

/// `policy.data.client_registration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)] // MAS's switches, one each.
pub struct ClientRegistrationData {
    /// Plain `http` and loopback URIs are allowed.
    #[serde(default)]
    pub allow_insecure_uris: bool,
    /// URIs may be on other hosts than `client_uri`.
    #[serde(default)]
    pub allow_host_mismatch: bool,
    /// `client_uri` may be missing.
    #[serde(default)]
    pub allow_missing_client_uri: bool,
    /// Removed from MAS in 0.13 (contacts are not required); accepted, no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_missing_contacts: Option<bool>,
}

/// `policy.data.registration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationData {
    /// When set, only matching usernames may register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_usernames: Option<StringConstraints>,
    /// Matching usernames may not register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_usernames: Option<StringConstraints>,
}

/// `policy.data.emails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailsData {
    /// When set, only matching addresses may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_addresses: Option<StringConstraints>,
    /// Matching addresses may not be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_addresses: Option<StringConstraints>,
}

/// `policy.data.passwords`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)] // One switch per rule.
pub struct PasswordsData {
    /// The fewest characters a new password has.
    #[serde(default)]
    pub min_length: usize,
    /// A new password needs a lowercase letter.
    #[serde(default)]
    pub require_lowercase: bool,
    /// A new password needs an uppercase letter.
    #[serde(default)]
    pub require_uppercase: bool,
    /// A new password needs a digit.
    #[serde(default)]
    pub require_number: bool,
}

/// `policy.data.requester`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequesterData {
    /// Addresses and networks turned away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned_ips: Vec<String>,
    /// User agents turned away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_user_agents: Option<StringConstraints>,
}

/// `policy.data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyData {
    /// Usernames that may request admin rights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_users: Vec<String>,
    /// Clients whose `client_credentials` grant may carry `urn:mas:admin`, by ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_clients: Vec<String>,
    /// What dynamic client registration may relax.
    #[serde(default, skip_serializing_if = "is_default")]
    pub client_registration: ClientRegistrationData,
    /// Who may register.
    #[serde(default, skip_serializing_if = "is_default")]
    pub registration: RegistrationData,
    /// Which addresses may be used.
    #[serde(default, skip_serializing_if = "is_default")]
    pub emails: EmailsData,
    /// When set, only addresses of these domains (globs) may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
    /// Addresses of these domains (globs) may not be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned_domains: Vec<String>,
    /// What new passwords must hold.
    #[serde(default, skip_serializing_if = "is_default")]
    pub passwords: PasswordsData,
    /// Who is turned away.
    #[serde(default, skip_serializing_if = "is_default")]
    pub requester: RequesterData,
}

/// Whether a part of `data` is as if it were absent (left out of `config dump`).
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl PolicyData {
    /// Whether nothing is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl PolicyConfig {
    /// The keys that are accepted and have no effect, by name.
    #[must_use]
    pub fn not_honoured(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for (key, set) in [
            ("wasm_module", self.wasm_module.is_some()),
            (
                "client_registration_entrypoint",
                self.client_registration_entrypoint.is_some(),
            ),
            ("register_entrypoint", self.register_entrypoint.is_some()),
            (
                "authorization_grant_entrypoint",
                self.authorization_grant_entrypoint.is_some(),
            ),
            (
                "compat_login_entrypoint",
                self.compat_login_entrypoint.is_some(),
            ),
            ("email_entrypoint", self.email_entrypoint.is_some()),
            ("password_entrypoint", self.password_entrypoint.is_some()),
        ] {
            if set {
                notes.push(format!(
                    "policy.{key} is accepted but has no effect: the rules of policy.data are applied without OPA"
                ));
            }
        }
        if self
            .data
            .client_registration
            .allow_missing_contacts
            .is_some()
        {
            notes.push(
                "policy.data.client_registration.allow_missing_contacts has no effect: contacts are never required (as in MAS since 0.13)"
                    .to_owned(),
            );
        }
        notes
    }
}
