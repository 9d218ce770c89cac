//! The configuration sections, one module each, with MAS's keys and defaults.

mod account;
mod branding;
mod captcha;
mod clients;
mod database;
mod email;
mod experimental;
mod http;
mod matrix;
mod passwords;
mod policy;
mod rate_limiting;
mod secrets;
mod telemetry;
mod upstream_oauth2;

use std::fmt;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

pub use self::account::AccountConfig;
pub use self::branding::BrandingConfig;
pub use self::captcha::{CaptchaConfig, CaptchaService};
pub use self::clients::{ClientAuthMethod, ClientConfig};
pub use self::database::{DatabaseBackend, DatabaseConfig, PgSslMode};
pub use self::email::{EmailConfig, EmailSmtpMode, EmailTransport};
pub use self::experimental::ExperimentalConfig;
pub use self::http::{BindConfig, HttpConfig, ListenerConfig, Resource, TlsConfig};
pub use self::matrix::{HomeserverKind, MatrixConfig};
pub use self::passwords::{PasswordAlgorithm, PasswordScheme, PasswordsConfig};
pub use self::policy::{
    ClientRegistrationData, EmailsData, PasswordsData, PolicyConfig, PolicyData, RegistrationData,
    RequesterData, StringConstraints,
};
pub use self::rate_limiting::{RateLimiterConfig, RateLimitingConfig};
pub use self::secrets::{KeyConfig, SecretsConfig};
pub use self::telemetry::{Exporter, Propagator, TelemetryConfig};
pub use self::upstream_oauth2::{
    AttributeImport, ClaimsImports, DiscoveryMode, EmailImport, EmailVerification, ImportAction,
    LocalpartImport, OnBackchannelLogout, OnConflict, PkceMethod, ResponseMode, SIGNING_ALGORITHMS,
    TemplateOnly, UpstreamAuthMethod, UpstreamOAuth2Config, UpstreamProviderConfig,
};
use crate::Issues;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootConfig {
    /// Listeners, public base URL, issuer.
    #[serde(default)]
    pub http: HttpConfig,
    /// The database connection.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// The homeserver this service authenticates for.
    #[serde(default)]
    pub matrix: MatrixConfig,
    /// OAuth 2.0 clients declared in the configuration (static clients).
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Encryption key and signing keys.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Local password authentication.
    #[serde(default)]
    pub passwords: PasswordsConfig,
    /// What users may do with their account.
    #[serde(default)]
    pub account: AccountConfig,
    /// Outgoing email.
    #[serde(default)]
    pub email: EmailConfig,
    /// Names and links shown to users.
    #[serde(default)]
    pub branding: BrandingConfig,
    /// Limits on login, registration and recovery attempts.
    #[serde(default)]
    pub rate_limiting: RateLimitingConfig,
    /// Tracing, metrics and error reporting.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Settings MAS marks as experimental (token lifetimes among them).
    #[serde(default)]
    pub experimental: ExperimentalConfig,
    /// MAS's template settings; accepted, not used (our pages are built in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<figment::value::Value>,
    /// Upstream identity providers people sign in through (SSO).
    #[serde(default, skip_serializing_if = "UpstreamOAuth2Config::is_empty")]
    pub upstream_oauth2: UpstreamOAuth2Config,
    /// The CAPTCHA `/register` asks for.
    #[serde(default, skip_serializing_if = "CaptchaConfig::is_empty")]
    pub captcha: CaptchaConfig,
    /// MAS's OPA policy settings: the rules of `data` are applied without OPA.
    #[serde(default, skip_serializing_if = "is_default_policy")]
    pub policy: PolicyConfig,
    /// MAS's `oauth` section (device code grant switches); accepted now, honoured later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<figment::value::Value>,
    /// MAS's `guest_invites` section; accepted now, honoured later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_invites: Option<figment::value::Value>,
}

impl RootConfig {
    /// Checks the rules serde cannot express, recording each problem with its key path.
    pub fn validate(&self, issues: &mut Issues) {
        self.http.validate(issues);
        self.database.validate(issues);
        self.matrix.validate(issues);
        for (index, client) in self.clients.iter().enumerate() {
            client.validate(index, issues);
        }
        clients::validate_unique_ids(&self.clients, issues);
        self.upstream_oauth2.validate(issues);
        self.secrets.validate(issues);
        self.passwords.validate(issues);
        self.email.validate(issues);
        self.rate_limiting.validate(issues);
        self.captcha.validate(issues);
        self.telemetry.validate(issues);
        self.experimental.validate(issues);
        if let Err(why) = self.admin_clients() {
            issues.push(&["policy", "data", "admin_clients"], why);
        }
    }

    /// The clients whose `client_credentials` grant may carry `urn:mas:admin`
    /// (`policy.data.admin_clients`, as MAS reads it), by client ID.
    ///
    /// # Errors
    /// When an entry is not a ULID.
    pub fn admin_clients(&self) -> Result<Vec<Ulid>, String> {
        self.policy
            .data
            .admin_clients
            .iter()
            .map(|id| {
                id.parse::<Ulid>()
                    .map_err(|_| format!("`{id}` is not a client ID (a ULID)"))
            })
            .collect()
    }
}

impl RootConfig {
    /// What registration and recovery settings cannot do with the rest of the file: a
    /// CAPTCHA while registration is closed, codes and links a blackhole never delivers.
    fn registration_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.captcha.service.is_some()
            && !self
                .account
                .password_registration_open(self.passwords.enabled)
        {
            notes.push(
                "captcha.service is set, which has no effect: registration at /register is closed"
                    .to_owned(),
            );
        }
        if self.email.transport == email::EmailTransport::Blackhole {
            let account = &self.account;
            if account.password_registration_open(self.passwords.enabled)
                && account.password_registration_email_required
            {
                notes.push(
                    "account.password_registration_email_required is true while email.transport is blackhole: registrations at /register wait for codes that are never delivered"
                        .to_owned(),
                );
            }
            if account.password_recovery_enabled && self.passwords.enabled {
                notes.push(
                    "account.password_recovery_enabled is true while email.transport is blackhole: recovery links are never delivered"
                        .to_owned(),
                );
            }
        }
        notes
    }

    /// Every key that is accepted but has no effect in this release, each sentence
    /// naming its key path: logged at `warn` when the server starts and printed by
    /// `mas-cli config check`.
    #[must_use]
    pub fn not_honoured(&self) -> Vec<String> {
        let mut notes = self.account.not_honoured(self.passwords.enabled);
        notes.extend(self.policy.not_honoured());
        notes.extend(self.registration_notes());
        for provider in &self.upstream_oauth2.providers {
            notes.extend(provider.not_honoured());
        }
        notes.extend(
            self.http
                .not_honoured(self.telemetry.metrics.exporter == telemetry::Exporter::Prometheus),
        );
        notes.extend(self.telemetry.not_honoured());
        let database = &self.database;
        notes.extend(set_keys(
            "database",
            &[
                ("ssl_ca", database.ssl_ca.is_some()),
                ("ssl_ca_file", database.ssl_ca_file.is_some()),
                ("ssl_certificate", database.ssl_certificate.is_some()),
                (
                    "ssl_certificate_file",
                    database.ssl_certificate_file.is_some(),
                ),
                ("ssl_key", database.ssl_key.is_some()),
                ("ssl_key_file", database.ssl_key_file.is_some()),
            ],
            "is accepted but not applied by this release (ssl_mode is)",
        ));
        let branding = &self.branding;
        notes.extend(set_keys(
            "branding",
            &[
                ("policy_uri", branding.policy_uri.is_some()),
                ("imprint", branding.imprint.is_some()),
                ("logo_uri", branding.logo_uri.is_some()),
            ],
            "is accepted but not shown on any page by this release",
        ));
        let experimental = &self.experimental;
        notes.extend(set_keys(
            "experimental",
            &[
                (
                    "inactive_session_expiration",
                    experimental.inactive_session_expiration.is_some(),
                ),
                (
                    "plan_management_iframe_uri",
                    experimental.plan_management_iframe_uri.is_some(),
                ),
                ("session_limit", experimental.session_limit.is_some()),
                ("passkeys", experimental.passkeys.is_some()),
            ],
            "is accepted but has no effect in this release",
        ));
        for (key, set, why) in [
            (
                "templates",
                self.templates.is_some(),
                "the pages are built in",
            ),
            (
                "oauth",
                self.oauth.is_some(),
                "the device code grant is always offered",
            ),
            (
                "guest_invites",
                self.guest_invites.is_some(),
                "there are no guest invitations",
            ),
        ] {
            if set {
                notes.push(format!(
                    "{key} is accepted but has no effect in this release: {why}"
                ));
            }
        }
        notes
    }
}

fn is_default_policy(policy: &PolicyConfig) -> bool {
    *policy == PolicyConfig::default()
}

/// `section.key <what>` for each key that is set.
fn set_keys(section: &str, keys: &[(&str, bool)], what: &str) -> Vec<String> {
    keys.iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| format!("{section}.{key} {what}"))
        .collect()
}

/// A secret string: shown as `[REDACTED]` by `Debug`, so it never reaches a log line.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that must use it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Records an issue unless exactly one of two alternative keys is set.
pub(crate) fn exactly_one(
    issues: &mut Issues,
    parent: &[String],
    (a, a_set): (&str, bool),
    (b, b_set): (&str, bool),
) {
    match (a_set, b_set) {
        (true, true) => {
            let mut path = parent.to_vec();
            path.push(b.to_owned());
            issues.push(&path, format!("cannot be set together with `{a}`"));
        }
        (false, false) => {
            issues.push(parent, format!("one of `{a}` or `{b}` is required"));
        }
        _ => {}
    }
}

/// Records an issue when both of two alternative keys are set.
pub(crate) fn at_most_one(
    issues: &mut Issues,
    parent: &[String],
    a: (&str, bool),
    b: (&str, bool),
) {
    if a.1 && b.1 {
        let mut path = parent.to_vec();
        path.push(b.0.to_owned());
        issues.push(&path, format!("cannot be set together with `{}`", a.0));
    }
}

/// A secret given inline or in a file (`client_secret` / `client_secret_file`); the
/// inline value wins.
pub(crate) fn inline_or_file(
    inline: Option<&Secret>,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, crate::ConfigError> {
    match (inline, file) {
        (Some(inline), _) => Ok(Some(inline.expose().to_owned())),
        (None, Some(path)) => read_secret_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

/// Reads a secret from a file, without the trailing newline editors add.
pub(crate) fn read_secret_file(path: &std::path::Path) -> Result<String, crate::ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| crate::ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// A single-issue validation error.
pub(crate) fn invalid(path: &[&str], message: &str) -> crate::ConfigError {
    crate::ConfigError::Invalid(vec![crate::ConfigIssue {
        origin: None,
        path: crate::error::render_path(path),
        message: message.to_owned(),
    }])
}

/// Path segments as owned strings.
pub(crate) fn path(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_owned()).collect()
}

/// Checks that `value` is an absolute http(s) URL ending with a slash when `dir` is set.
pub(crate) fn check_http_url(issues: &mut Issues, at: &[String], value: &url::Url, dir: bool) {
    if !matches!(value.scheme(), "http" | "https") {
        issues.push(at, "must be an http:// or https:// URL");
    } else if dir && !value.path().ends_with('/') {
        issues.push(at, "must end with a slash");
    }
}
