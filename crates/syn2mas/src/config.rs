//! Synapse's `homeserver.yaml`, as far as a move needs it, and the starting configuration
//! it gives this service: the server name and address, password hashing (Synapse's
//! bcrypt with its pepper, upgraded to argon2id at the next sign-in), registration and
//! account switches, email, and Synapse's OpenID Connect providers as upstream providers
//! that keep Synapse's identity provider IDs. What cannot be carried over is named in a
//! warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mas_config::sections::{
    DiscoveryMode, EmailSmtpMode, EmailTransport, EmailVerification, ImportAction,
    OnBackchannelLogout, OnConflict, PasswordAlgorithm, PasswordScheme, PkceMethod, RootConfig,
    Secret, UpstreamAuthMethod, UpstreamProviderConfig,
};
use serde::Deserialize;
use url::Url;

/// Why Synapse's configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SynapseConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not YAML of the expected shape.
    #[error("{path} is not a Synapse configuration this tool understands: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_yaml::Error,
    },
}

fn yes() -> bool {
    true
}

/// A section Synapse turns on with `enabled`.
#[derive(Debug, Clone, Default, Deserialize)]
struct Switch {
    #[serde(default)]
    enabled: bool,
    /// SAML is on when it has a service provider configuration, `enabled` or not.
    #[serde(default)]
    sp_config: Option<serde_yaml::Value>,
}

/// `password_config`.
#[derive(Debug, Clone, Deserialize)]
struct PasswordSection {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "yes")]
    localdb_enabled: bool,
    #[serde(default)]
    pepper: Option<String>,
}

impl Default for PasswordSection {
    fn default() -> Self {
        Self {
            enabled: true,
            localdb_enabled: true,
            pepper: None,
        }
    }
}

/// `email`.
#[derive(Debug, Clone, Deserialize)]
struct EmailSection {
    #[serde(default)]
    smtp_host: Option<String>,
    #[serde(default)]
    smtp_port: Option<u16>,
    #[serde(default)]
    smtp_user: Option<String>,
    #[serde(default)]
    smtp_pass: Option<String>,
    #[serde(default)]
    require_transport_security: bool,
    #[serde(default = "yes")]
    enable_tls: bool,
    #[serde(default)]
    force_tls: bool,
    #[serde(default)]
    notif_from: Option<String>,
    #[serde(default)]
    app_name: Option<String>,
}

/// `user_mapping_provider.config` of an OpenID Connect provider.
#[derive(Debug, Clone, Default, Deserialize)]
struct MappingConfig {
    #[serde(default)]
    subject_claim: Option<String>,
    #[serde(default)]
    subject_template: Option<String>,
    #[serde(default)]
    localpart_template: Option<String>,
    #[serde(default)]
    display_name_template: Option<String>,
    #[serde(default)]
    email_template: Option<String>,
    #[serde(default)]
    confirm_localpart: bool,
}

/// `user_mapping_provider`.
#[derive(Debug, Clone, Default, Deserialize)]
struct MappingProvider {
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    config: MappingConfig,
}

/// One of `oidc_providers` (or the legacy `oidc_config`).
#[derive(Debug, Clone, Deserialize)]
#[allow(clippy::struct_excessive_bools)] // Synapse's switches.
struct OidcProvider {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    idp_id: Option<String>,
    #[serde(default)]
    idp_name: Option<String>,
    #[serde(default)]
    idp_brand: Option<String>,
    #[serde(default = "yes")]
    discover: bool,
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_path: Option<PathBuf>,
    #[serde(default)]
    client_secret_jwt_key: Option<serde_yaml::Value>,
    #[serde(default)]
    client_auth_method: Option<String>,
    #[serde(default)]
    pkce_method: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    authorization_endpoint: Option<Url>,
    #[serde(default)]
    token_endpoint: Option<Url>,
    #[serde(default)]
    userinfo_endpoint: Option<Url>,
    #[serde(default)]
    jwks_uri: Option<Url>,
    #[serde(default)]
    skip_verification: bool,
    #[serde(default)]
    user_profile_method: Option<String>,
    #[serde(default)]
    allow_existing_users: bool,
    #[serde(default)]
    user_mapping_provider: MappingProvider,
    #[serde(default)]
    attribute_requirements: Vec<serde_yaml::Value>,
    #[serde(default)]
    enable_registration: Option<bool>,
    #[serde(default)]
    backchannel_logout_enabled: bool,
}

/// Synapse's configuration: the keys a move needs; every other key is left alone.
#[derive(Debug, Clone, Deserialize)]
#[allow(clippy::struct_excessive_bools)] // Synapse's switches.
pub struct SynapseConfig {
    server_name: String,
    #[serde(default)]
    public_baseurl: Option<Url>,
    #[serde(default)]
    password_config: PasswordSection,
    #[serde(default)]
    bcrypt_rounds: Option<u32>,
    #[serde(default)]
    enable_registration: bool,
    #[serde(default)]
    enable_registration_captcha: bool,
    #[serde(default)]
    registration_requires_token: bool,
    #[serde(default)]
    registrations_require_3pid: Vec<String>,
    #[serde(default)]
    recaptcha_public_key: Option<String>,
    #[serde(default)]
    recaptcha_private_key: Option<String>,
    #[serde(default)]
    enable_3pid_changes: Option<bool>,
    #[serde(default = "yes")]
    enable_set_displayname: bool,
    #[serde(default)]
    email: Option<EmailSection>,
    #[serde(default)]
    oidc_config: Option<OidcProvider>,
    #[serde(default)]
    oidc_providers: Vec<OidcProvider>,
    #[serde(default)]
    cas_config: Option<Switch>,
    #[serde(default)]
    saml2_config: Option<Switch>,
    #[serde(default)]
    jwt_config: Option<Switch>,
    #[serde(default)]
    password_providers: Vec<serde_yaml::Value>,
    #[serde(default)]
    modules: Vec<serde_yaml::Value>,
    #[serde(default)]
    matrix_authentication_service: Option<Switch>,
    #[serde(default)]
    database: Option<DatabaseSection>,
    #[serde(default)]
    listeners: Vec<Listener>,
}

/// One of `listeners`: where a running Synapse answers (a UNIX socket `path` has no
/// port, and is not probed).
#[derive(Debug, Clone, Deserialize)]
struct Listener {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    bind_addresses: Vec<String>,
    #[serde(default)]
    bind_address: Option<String>,
}

/// `database`.
#[derive(Debug, Clone, Deserialize)]
struct DatabaseSection {
    name: String,
    #[serde(default)]
    args: DatabaseArgs,
}

/// `database.args`: psycopg2's connection keywords, or SQLite's `database` file.
#[derive(Debug, Clone, Default, Deserialize)]
struct DatabaseArgs {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    dbname: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
}

impl SynapseConfig {
    /// Reads Synapse's configuration files; like Synapse, a later file's top-level keys
    /// replace an earlier one's.
    ///
    /// # Errors
    /// [`SynapseConfigError`] when a file cannot be read or does not have the shape.
    pub fn load(files: &[impl AsRef<Path>]) -> Result<Self, SynapseConfigError> {
        let mut merged = serde_yaml::Mapping::new();
        let mut last = PathBuf::new();
        for file in files {
            let path = file.as_ref().to_path_buf();
            let text =
                std::fs::read_to_string(&path).map_err(|source| SynapseConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
            let value: serde_yaml::Value =
                serde_yaml::from_str(&text).map_err(|source| SynapseConfigError::Parse {
                    path: path.clone(),
                    source,
                })?;
            if let serde_yaml::Value::Mapping(map) = value {
                merged.extend(map);
            }
            last = path;
        }
        serde_yaml::from_value(serde_yaml::Value::Mapping(merged))
            .map_err(|source| SynapseConfigError::Parse { path: last, source })
    }

    /// Synapse's `server_name`: the part after the colon in its user IDs.
    #[must_use]
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Synapse's password pepper.
    #[must_use]
    pub fn pepper(&self) -> Option<&str> {
        self.password_config.pepper.as_deref()
    }

    /// Where Synapse's database is, from its `database` section (SQLite's
    /// `homeserver.db` when there is none, as in Synapse). A relative SQLite path is
    /// taken from `base`, the directory Synapse runs in.
    ///
    /// # Errors
    /// [`crate::SynapseDatabaseError::Unsupported`] for another database engine.
    pub fn database_options(
        &self,
        base: &Path,
    ) -> Result<crate::SynapseDatabaseOptions, crate::SynapseDatabaseError> {
        let Some(section) = &self.database else {
            return Ok(crate::SynapseDatabaseOptions::Sqlite(
                base.join("homeserver.db"),
            ));
        };
        let args = &section.args;
        match section.name.as_str() {
            "sqlite3" => {
                let file = args.database.as_deref().unwrap_or("homeserver.db");
                Ok(crate::SynapseDatabaseOptions::Sqlite(base.join(file)))
            }
            "psycopg2" | "psycopg" => {
                let mut options = sqlx::postgres::PgConnectOptions::new();
                if let Some(host) = &args.host {
                    options = options.host(host);
                }
                if let Some(port) = args.port {
                    options = options.port(port);
                }
                if let Some(user) = &args.user {
                    options = options.username(user);
                }
                if let Some(password) = &args.password {
                    options = options.password(password);
                }
                if let Some(name) = args.database.as_ref().or(args.dbname.as_ref()) {
                    options = options.database(name);
                }
                Ok(crate::SynapseDatabaseOptions::Postgres(Box::new(options)))
            }
            other => Err(crate::SynapseDatabaseError::Unsupported(format!(
                "database.name `{other}` is neither psycopg2 nor sqlite3"
            ))),
        }
    }

    /// Synapse's OpenID Connect providers that are on, with the ID Synapse stored their
    /// users' links under (`oidc` for the legacy `oidc_config`).
    fn providers(&self) -> BTreeMap<String, &OidcProvider> {
        let mut all = BTreeMap::new();
        if let Some(legacy) = &self.oidc_config
            && legacy.enabled == Some(true)
        {
            all.insert("oidc".to_owned(), legacy);
        }
        for provider in &self.oidc_providers {
            if provider.enabled == Some(false) {
                continue;
            }
            let id = provider.idp_id.as_deref().unwrap_or("oidc");
            // Synapse prefixes the IDs it stores with `oidc-`, unless already there.
            let id = if id.starts_with("oidc") {
                id.to_owned()
            } else {
                format!("oidc-{id}")
            };
            all.insert(id, provider);
        }
        all
    }

    /// Where a running Synapse would be listening, as `host:port` to connect to: each
    /// listener's addresses (a wildcard one reached on loopback).
    #[must_use]
    pub fn listener_addresses(&self) -> Vec<String> {
        let mut found = Vec::new();
        for listener in &self.listeners {
            let Some(port) = listener.port else { continue };
            let mut hosts: Vec<&str> = listener
                .bind_addresses
                .iter()
                .map(String::as_str)
                .chain(listener.bind_address.as_deref())
                .collect();
            // Synapse's default: both wildcards.
            if hosts.is_empty() {
                hosts.extend(["::", "0.0.0.0"]);
            }
            for host in hosts {
                let host = match host {
                    "" | "0.0.0.0" | "*" => "127.0.0.1",
                    "::" => "[::1]",
                    h if h.contains(':') && !h.starts_with('[') => {
                        found.push(format!("[{h}]:{port}"));
                        continue;
                    }
                    h => h,
                };
                found.push(format!("{host}:{port}"));
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// The login methods Synapse offers that this service cannot carry over, by the key
    /// that turns them on.
    #[must_use]
    pub fn unsupported_login_methods(&self) -> Vec<String> {
        let on = |s: &Option<Switch>| s.as_ref().is_some_and(|s| s.enabled);
        let mut found = Vec::new();
        if on(&self.cas_config) {
            found.push("cas_config (CAS)".to_owned());
        }
        if self
            .saml2_config
            .as_ref()
            .is_some_and(|s| s.enabled || s.sp_config.is_some())
        {
            found.push("saml2_config (SAML)".to_owned());
        }
        if on(&self.jwt_config) {
            found.push("jwt_config (JWT login)".to_owned());
        }
        if !self.password_providers.is_empty() {
            found.push("password_providers (for example LDAP)".to_owned());
        }
        if !self.modules.is_empty() {
            found.push(
                "modules (a module that checks passwords or adds login types is not carried over)"
                    .to_owned(),
            );
        }
        found
    }

    /// `config` (a fresh one, with its secrets) made to match this Synapse, and a warning
    /// for each Synapse setting that is not carried over.
    #[must_use]
    pub fn adjust(&self, mut config: RootConfig) -> (RootConfig, Vec<String>) {
        let mut warnings: Vec<String> = self
            .unsupported_login_methods()
            .into_iter()
            .map(|method| {
                format!(
                    "{method}: not carried over; people who sign in this way cannot after the move"
                )
            })
            .collect();
        config.matrix.homeserver.clone_from(&self.server_name);
        if let Some(base) = &self.public_baseurl {
            config.matrix.endpoint = base.clone();
        }
        if self.password_config.enabled && self.password_config.localdb_enabled {
            config.passwords.enabled = true;
            config.passwords.schemes = vec![
                // Synapse's hashes, checked as Synapse does (NFKC, then the pepper).
                PasswordScheme {
                    version: 1,
                    algorithm: PasswordAlgorithm::Bcrypt,
                    cost: self.bcrypt_rounds,
                    secret: self.password_config.pepper.clone().map(Secret::new),
                    secret_file: None,
                    unicode_normalization: true,
                },
                // Newer: a password is re-hashed with it at its next sign-in.
                PasswordScheme {
                    version: 2,
                    algorithm: PasswordAlgorithm::Argon2id,
                    cost: None,
                    secret: None,
                    secret_file: None,
                    unicode_normalization: false,
                },
            ];
            config.account.password_registration_enabled = self.enable_registration;
        } else {
            config.passwords.enabled = false;
        }
        if let Some(allowed) = self.enable_3pid_changes {
            config.account.email_change_allowed = allowed;
        }
        config.account.displayname_change_allowed = self.enable_set_displayname;
        // Synapse asks for an address only when told to; MAS's default always asks. A
        // phone number cannot be asked for here, so registration that required one keeps
        // requiring an address rather than requiring nothing.
        let email = self.registrations_require_3pid.iter().any(|m| m == "email");
        let phone = self
            .registrations_require_3pid
            .iter()
            .any(|m| m == "msisdn");
        config.account.password_registration_email_required = email || phone;
        if phone {
            warnings.push(
                "registrations_require_3pid: msisdn: phone numbers are not asked for; registration asks for an email address instead"
                    .to_owned(),
            );
        }
        config.account.password_registration_token_required = self.registration_requires_token;
        if self.enable_registration_captcha {
            if let (Some(public), Some(private)) =
                (&self.recaptcha_public_key, &self.recaptcha_private_key)
            {
                config.captcha.service = Some(mas_config::sections::CaptchaService::RecaptchaV2);
                config.captcha.site_key = Some(public.clone());
                config.captcha.secret_key = Some(Secret::new(private.clone()));
            } else {
                // Without the CAPTCHA, registration keeps at least the address check.
                config.account.password_registration_email_required = true;
                warnings.push(
                    "enable_registration_captcha: recaptcha_public_key and recaptcha_private_key are missing; no CAPTCHA is carried over, and registration asks for an email address"
                        .to_owned(),
                );
            }
        }
        if let Some(email) = &self.email {
            Self::adjust_email(&mut config, email, &mut warnings);
        }
        for (idp_id, provider) in self.providers() {
            if let Some(converted) = provider.convert(&idp_id, &mut warnings) {
                config.upstream_oauth2.providers.push(converted);
            }
        }
        if self
            .matrix_authentication_service
            .as_ref()
            .is_some_and(|s| s.enabled)
        {
            warnings.push(
                "matrix_authentication_service: already enabled; this Synapse delegates its logins already".to_owned(),
            );
        }
        (config, warnings)
    }

    fn adjust_email(config: &mut RootConfig, email: &EmailSection, warnings: &mut Vec<String>) {
        let Some(from) = &email.notif_from else {
            warnings.push("email: no notif_from; email left as `blackhole`".to_owned());
            return;
        };
        let app = email.app_name.as_deref().unwrap_or("Matrix");
        config.email.from = from.replace("%(app)s", app);
        config.email.transport = EmailTransport::Smtp;
        config.email.hostname = Some(
            email
                .smtp_host
                .clone()
                .unwrap_or_else(|| "localhost".to_owned()),
        );
        config.email.port = Some(email.smtp_port.unwrap_or(25));
        config.email.mode = Some(if email.force_tls {
            EmailSmtpMode::Tls
        } else if email.enable_tls || email.require_transport_security {
            EmailSmtpMode::Starttls
        } else {
            EmailSmtpMode::Plain
        });
        config.email.username.clone_from(&email.smtp_user);
        config.email.password = email.smtp_pass.clone().map(Secret::new);
        if !email.require_transport_security && email.enable_tls && !email.force_tls {
            warnings.push(
                "email: Synapse used STARTTLS only when offered; this service always requires it (`mode: starttls`)".to_owned(),
            );
        }
    }
}

impl OidcProvider {
    /// The provider here, keeping Synapse's ID for it; `None` (with a warning) when it
    /// cannot be carried over.
    fn convert(&self, idp_id: &str, warnings: &mut Vec<String>) -> Option<UpstreamProviderConfig> {
        let at = format!("oidc provider `{idp_id}`");
        if self.client_secret_jwt_key.is_some() {
            warnings.push(format!(
                "{at}: client_secret_jwt_key (a client secret signed for each request, as Sign in with Apple needs) is not supported; the provider is left out"
            ));
            return None;
        }
        if let Some(module) = &self.user_mapping_provider.module
            && !module.ends_with("JinjaOidcMappingProvider")
        {
            warnings.push(format!(
                "{at}: the user_mapping_provider module {module} is not carried over; its claims are mapped with the default templates"
            ));
        }
        if !self.attribute_requirements.is_empty() {
            warnings.push(format!(
                "{at}: attribute_requirements are not carried over; anyone the provider signs in may sign in here"
            ));
        }
        if self.enable_registration == Some(false) {
            warnings.push(format!(
                "{at}: enable_registration: false is not carried over; new people may register through it"
            ));
        }
        let has_secret = self.client_secret.is_some() || self.client_secret_path.is_some();
        let method = match self.client_auth_method.as_deref() {
            _ if !has_secret => UpstreamAuthMethod::None,
            Some("client_secret_post") => UpstreamAuthMethod::ClientSecretPost,
            Some("none") => UpstreamAuthMethod::None,
            _ => UpstreamAuthMethod::ClientSecretBasic,
        };
        let scopes = self
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["openid".to_owned()]);
        let openid = scopes.iter().any(|s| s == "openid");
        let imports = self.claims_imports(&at, warnings);
        Some(UpstreamProviderConfig {
            enabled: true,
            id: ulid::Ulid::new(),
            synapse_idp_id: Some(idp_id.to_owned()),
            issuer: Some(self.issuer.clone()),
            human_name: self.idp_name.clone(),
            brand_name: self.idp_brand.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone().map(Secret::new),
            client_secret_file: self.client_secret_path.clone(),
            token_endpoint_auth_method: method,
            sign_in_with_apple: None,
            token_endpoint_auth_signing_alg: None,
            id_token_signed_response_alg: "RS256".to_owned(),
            scope: scopes.join(" "),
            discovery_mode: if !self.discover {
                DiscoveryMode::Disabled
            } else if self.skip_verification {
                DiscoveryMode::Insecure
            } else {
                DiscoveryMode::Oidc
            },
            pkce_method: match self.pkce_method.as_deref() {
                Some("always") => PkceMethod::Always,
                Some("never") => PkceMethod::Never,
                _ => PkceMethod::Auto,
            },
            // Synapse asks the userinfo endpoint when told to, or without `openid`.
            fetch_userinfo: self.user_profile_method.as_deref() == Some("userinfo_endpoint")
                || !openid,
            userinfo_signed_response_alg: None,
            authorization_endpoint: self.authorization_endpoint.clone(),
            token_endpoint: self.token_endpoint.clone(),
            jwks_uri: self.jwks_uri.clone(),
            userinfo_endpoint: self.userinfo_endpoint.clone(),
            response_mode: None,
            claims_imports: imports,
            additional_authorization_parameters: BTreeMap::new(),
            forward_login_hint: false,
            on_backchannel_logout: if self.backchannel_logout_enabled {
                OnBackchannelLogout::LogoutAll
            } else {
                OnBackchannelLogout::DoNothing
            },
            registration_token_required: false,
        })
    }
    /// Synapse's user mapping as claim imports.
    fn claims_imports(
        &self,
        at: &str,
        warnings: &mut Vec<String>,
    ) -> mas_config::sections::ClaimsImports {
        let mapping = &self.user_mapping_provider.config;
        let subject = match (&mapping.subject_template, &mapping.subject_claim) {
            (Some(template), _) => Some(template.clone()),
            (None, Some(claim)) if claim != "sub" => Some(format!("{{{{ user.{claim} }}}}")),
            _ => None,
        };
        let mut imports = mas_config::sections::ClaimsImports::default();
        imports.subject.template = subject;
        match &mapping.localpart_template {
            Some(template) => {
                imports.localpart.template = Some(template.clone());
                imports.localpart.action = if mapping.confirm_localpart {
                    ImportAction::Suggest
                } else {
                    ImportAction::Require
                };
            }
            None => imports.localpart.action = ImportAction::Ignore,
        }
        if self.allow_existing_users {
            if imports.localpart.action == ImportAction::Require {
                imports.localpart.on_conflict = OnConflict::Add;
            } else {
                warnings.push(format!(
                    "{at}: allow_existing_users needs a localpart_template without confirm_localpart here; not carried over"
                ));
            }
        }
        if let Some(template) = &mapping.display_name_template {
            imports.displayname.action = ImportAction::Force;
            imports.displayname.template = Some(template.clone());
        }
        if let Some(template) = &mapping.email_template {
            imports.email.action = ImportAction::Force;
            imports.email.template = Some(template.clone());
            // Synapse took the provider's word for the address.
            imports.email.set_email_verification = EmailVerification::Always;
        }
        imports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOMESERVER: &str = r#"
server_name: example.com
public_baseurl: https://matrix.example.com/
pid_file: /data/homeserver.pid
listeners: [{port: 8008, type: http, resources: [{names: [client, federation]}]}]
database: {name: psycopg2, args: {user: synapse, database: synapse, host: localhost}}
password_config:
  pepper: "the pepper"
bcrypt_rounds: 14
enable_registration: true
enable_registration_captcha: true
recaptcha_public_key: the-site-key
recaptcha_private_key: the-secret-key
registration_requires_token: true
registrations_require_3pid: [email]
enable_3pid_changes: false
email:
  smtp_host: mail.example.com
  smtp_port: 587
  smtp_user: synapse
  smtp_pass: hunter2
  require_transport_security: true
  notif_from: "Your Friendly %(app)s homeserver <noreply@example.com>"
  app_name: Example Chat
oidc_providers:
  - idp_id: keycloak
    idp_name: Example Corp
    idp_brand: keycloak
    issuer: https://sso.example.com/realms/example
    client_id: synapse
    client_secret: s3cret
    client_auth_method: client_secret_post
    scopes: [openid, profile, email]
    allow_existing_users: true
    backchannel_logout_enabled: true
    user_mapping_provider:
      config:
        localpart_template: "{{ user.preferred_username }}"
        display_name_template: "{{ user.name }}"
        email_template: "{{ user.email }}"
  - idp_id: github
    idp_name: GitHub
    discover: false
    issuer: https://github.com/
    client_id: gh
    client_secret_path: /run/secrets/github
    authorization_endpoint: https://github.com/login/oauth/authorize
    token_endpoint: https://github.com/login/oauth/access_token
    userinfo_endpoint: https://api.github.com/user
    scopes: [read:user]
    user_mapping_provider:
      config:
        subject_claim: id
        localpart_template: "{{ user.login }}"
        confirm_localpart: true
    attribute_requirements: [{attribute: org, value: example}]
cas_config: {enabled: true, server_url: https://cas.example.com}
"#;

    fn load(text: &str) -> SynapseConfig {
        let dir = std::env::temp_dir().join(format!("syn2mas-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("homeserver.yaml");
        std::fs::write(&path, text).unwrap();
        SynapseConfig::load(&[path]).unwrap()
    }

    #[test]
    fn registration_never_comes_out_less_checked_than_synapse_had_it() {
        let base = "server_name: example.com\nenable_registration: true\n";
        let (open, _) = load(base).adjust(mas_config::RootConfig::default());
        assert!(
            !open.account.password_registration_email_required,
            "Synapse asked for nothing"
        );
        let (phone, warnings) = load(&format!("{base}registrations_require_3pid: [msisdn]\n"))
            .adjust(mas_config::RootConfig::default());
        assert!(phone.account.password_registration_email_required);
        assert!(
            warnings.iter().any(|w| w.contains("msisdn")),
            "{warnings:#?}"
        );
        let (keyless, warnings) = load(&format!("{base}enable_registration_captcha: true\n"))
            .adjust(mas_config::RootConfig::default());
        assert!(keyless.account.password_registration_email_required);
        assert_eq!(keyless.captcha.service, None);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("enable_registration_captcha"))
        );
    }

    #[test]
    fn a_synapse_configuration_becomes_a_starting_point_that_passes_the_checks() {
        let synapse = load(HOMESERVER);
        let (config, warnings) = synapse.adjust(mas_config::RootConfig::default());
        assert_eq!(config.matrix.homeserver, "example.com");
        assert_eq!(
            config.matrix.endpoint.as_str(),
            "https://matrix.example.com/"
        );
        let bcrypt = &config.passwords.schemes[0];
        assert_eq!(
            (bcrypt.version, bcrypt.algorithm),
            (1, PasswordAlgorithm::Bcrypt)
        );
        assert_eq!(
            bcrypt.secret.as_ref().map(Secret::expose),
            Some("the pepper")
        );
        assert!(bcrypt.unicode_normalization);
        assert_eq!(bcrypt.cost, Some(14));
        assert_eq!(
            config.passwords.schemes[1].algorithm,
            PasswordAlgorithm::Argon2id
        );
        assert!(config.account.password_registration_enabled);
        assert!(config.account.password_registration_email_required);
        assert!(config.account.registration_token_required());
        assert_eq!(
            config.captcha.service,
            Some(mas_config::sections::CaptchaService::RecaptchaV2)
        );
        assert_eq!(config.captcha.site_key.as_deref(), Some("the-site-key"));
        assert!(!config.account.email_change_allowed);
        assert_eq!(
            config.email.from,
            "Your Friendly Example Chat homeserver <noreply@example.com>"
        );
        assert_eq!(config.email.mode, Some(EmailSmtpMode::Starttls));
        assert_eq!(config.email.port, Some(587));

        let providers = &config.upstream_oauth2.providers;
        assert_eq!(providers.len(), 2);
        let github = &providers[0];
        assert_eq!(github.synapse_idp_id.as_deref(), Some("oidc-github"));
        assert_eq!(github.discovery_mode, DiscoveryMode::Disabled);
        assert!(
            github.fetch_userinfo,
            "no openid scope: Synapse asked userinfo"
        );
        assert_eq!(
            github.claims_imports.subject.template.as_deref(),
            Some("{{ user.id }}")
        );
        assert_eq!(
            github.claims_imports.localpart.action,
            ImportAction::Suggest
        );
        assert_eq!(
            github.token_endpoint_auth_method,
            UpstreamAuthMethod::ClientSecretBasic
        );
        let keycloak = &providers[1];
        assert_eq!(keycloak.synapse_idp_id.as_deref(), Some("oidc-keycloak"));
        assert_eq!(
            keycloak.token_endpoint_auth_method,
            UpstreamAuthMethod::ClientSecretPost
        );
        assert_eq!(
            keycloak.claims_imports.localpart.on_conflict,
            OnConflict::Add
        );
        assert_eq!(
            keycloak.on_backchannel_logout,
            OnBackchannelLogout::LogoutAll
        );
        assert_eq!(keycloak.scope, "openid profile email");

        for expected in ["cas_config", "attribute_requirements"] {
            assert!(
                warnings.iter().any(|w| w.contains(expected)),
                "{expected} in {warnings:#?}"
            );
        }
        // The keys this leaves for the person (secrets) aside, it passes `config check`.
        let mut full = config;
        full.matrix.secret = Some(Secret::new("s"));
        full.secrets.encryption = Some(Secret::new("0".repeat(64)));
        let yaml = full.to_yaml(true).unwrap();
        if let Err(error) = mas_config::RootConfig::from_yaml(&yaml) {
            panic!("{error}\n{yaml}");
        }
    }

    #[test]
    fn the_legacy_oidc_config_keeps_the_plain_oidc_id_and_later_files_win() {
        let synapse = load(
            "server_name: a.example\noidc_config: {enabled: true, issuer: 'https://idp.example/', client_id: c}\npassword_config: {enabled: false}\n",
        );
        let (config, warnings) = synapse.adjust(mas_config::RootConfig::default());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!config.passwords.enabled);
        let provider = &config.upstream_oauth2.providers[0];
        assert_eq!(provider.synapse_idp_id.as_deref(), Some("oidc"));
        assert_eq!(
            provider.token_endpoint_auth_method,
            UpstreamAuthMethod::None
        );
    }

    #[test]
    fn a_running_synapse_is_looked_for_on_each_listener() {
        let synapse = load(
            "server_name: a.example\nlisteners:\n  - {port: 8008, bind_addresses: ['::1', '127.0.0.1']}\n  - {port: 8448, bind_addresses: ['0.0.0.0', '::']}\n  - {port: 9000}\n  - {port: 9001, bind_addresses: ['fe80::1', '192.0.2.7']}\n  - {path: /run/synapse/main.sock, type: http}\n",
        );
        assert_eq!(
            synapse.listener_addresses(),
            [
                "127.0.0.1:8008",
                "127.0.0.1:8448",
                "127.0.0.1:9000",
                "192.0.2.7:9001",
                "[::1]:8008",
                "[::1]:8448",
                "[::1]:9000",
                "[fe80::1]:9001",
            ]
        );
    }
}
