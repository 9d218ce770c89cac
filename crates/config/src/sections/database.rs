//! The `database` section: PostgreSQL (production) or SQLite (embedded default).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Secret, at_most_one, path};
use crate::{ConfigError, Issues};

/// How to reach the database and how large the pool is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A connection URI: `postgresql://...` or `sqlite://PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<Secret>,
    /// PostgreSQL host name (instead of `uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// PostgreSQL port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Directory of the PostgreSQL UNIX socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// PostgreSQL user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// PostgreSQL password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// PostgreSQL password, read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PostgreSQL database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// TLS mode towards PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<PgSslMode>,
    /// CA certificate (PEM), inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca: Option<String>,
    /// CA certificate (PEM), from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca_file: Option<PathBuf>,
    /// Client certificate (PEM), inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certificate: Option<String>,
    /// Client certificate (PEM), from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certificate_file: Option<PathBuf>,
    /// Client key (PEM), inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key: Option<Secret>,
    /// Client key (PEM), from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key_file: Option<PathBuf>,
    /// Largest number of pooled connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Connections kept open when idle.
    #[serde(default)]
    pub min_connections: u32,
    /// Seconds start-up keeps trying to reach an unreachable database. (Requests never
    /// wait this long: they fail within about a second while the database is away.)
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
    /// Seconds an idle connection is kept; `None` (`null`) for no limit. Written out as
    /// `null` rather than left out: left out, it would read back as the default.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Option<u64>,
    /// Seconds a connection lives at most; `None` (`null`) for no limit, written as `null`.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: Option<u64>,
}

#[allow(clippy::unnecessary_wraps)]
fn default_idle_timeout() -> Option<u64> {
    Some(600)
}
#[allow(clippy::unnecessary_wraps)]
fn default_max_lifetime() -> Option<u64> {
    Some(1800)
}
fn default_max_connections() -> u32 {
    10
}
fn default_connect_timeout() -> u64 {
    30
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            uri: None,
            host: None,
            port: None,
            socket: None,
            username: None,
            password: None,
            password_file: None,
            database: None,
            ssl_mode: None,
            ssl_ca: None,
            ssl_ca_file: None,
            ssl_certificate: None,
            ssl_certificate_file: None,
            ssl_key: None,
            ssl_key_file: None,
            max_connections: default_max_connections(),
            min_connections: 0,
            connect_timeout: default_connect_timeout(),
            idle_timeout: default_idle_timeout(),
            max_lifetime: default_max_lifetime(),
        }
    }
}

/// PostgreSQL's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgSslMode {
    /// No TLS.
    Disable,
    /// TLS if the server insists.
    Allow,
    /// TLS if the server offers it.
    Prefer,
    /// TLS always, certificate unchecked.
    Require,
    /// TLS with the CA checked.
    VerifyCa,
    /// TLS with the CA and host name checked.
    VerifyFull,
}

/// Which database engine a configuration selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    /// PostgreSQL, for production.
    Postgres,
    /// SQLite, the embedded default.
    Sqlite,
}

impl DatabaseConfig {
    /// A configuration for an SQLite database file.
    #[must_use]
    pub fn sqlite(file: &str) -> Self {
        Self {
            uri: Some(Secret::new(format!("sqlite://{file}"))),
            ..Self::default()
        }
    }

    /// Which backend this configuration selects.
    #[must_use]
    pub fn backend(&self) -> DatabaseBackend {
        match &self.uri {
            Some(uri) if uri.expose().starts_with("sqlite:") => DatabaseBackend::Sqlite,
            _ => DatabaseBackend::Postgres,
        }
    }

    /// The connection URI, built from the separate keys when `uri` is not set.
    /// The result holds the password: never log it; [`Self::display_uri`] is for logs.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when `password_file` cannot be read.
    pub fn connection_uri(&self) -> Result<String, ConfigError> {
        if let Some(uri) = &self.uri {
            return Ok(uri.expose().to_owned());
        }
        let file_password = match &self.password_file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let mut url = url::Url::parse("postgresql://").unwrap_or_else(|_| unreachable!("constant"));
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(host) = &self.host {
            query.append_pair("host", host);
        } else if let Some(socket) = &self.socket {
            query.append_pair("host", &socket.to_string_lossy());
        }
        if let Some(port) = self.port {
            query.append_pair("port", &port.to_string());
        }
        if let Some(user) = &self.username {
            query.append_pair("user", user);
        }
        if let Some(password) = &self.password {
            query.append_pair("password", password.expose());
        } else if let Some(password) = &file_password {
            query.append_pair("password", password.trim_end_matches(['\r', '\n']));
        }
        if let Some(database) = &self.database {
            query.append_pair("dbname", database);
        }
        if let Some(mode) = self.ssl_mode {
            let mode = serde_yaml::to_value(mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            query.append_pair("sslmode", &mode);
        }
        let query = query.finish();
        if !query.is_empty() {
            url.set_query(Some(&query));
        }
        Ok(url.to_string())
    }

    /// The connection URI with any password hidden, for logs and messages, even when the
    /// URI does not parse (see `mask_uri_password`).
    #[must_use]
    pub fn display_uri(&self) -> String {
        let Some(uri) = &self.uri else {
            let host = self.host.as_deref().unwrap_or("localhost");
            let database = self.database.as_deref().unwrap_or("");
            return format!("postgresql://{host}/{database}");
        };
        crate::redact::mask_uri_password(uri.expose())
    }

    pub(crate) fn validate(&self, issues: &mut Issues) {
        let at = path(&["database"]);
        if let Some(uri) = &self.uri {
            let separate = [
                ("host", self.host.is_some()),
                ("port", self.port.is_some()),
                ("socket", self.socket.is_some()),
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("password_file", self.password_file.is_some()),
                ("database", self.database.is_some()),
            ];
            for (key, set) in separate {
                if set {
                    issues.push(&["database", key], "cannot be set together with `uri`");
                }
            }
            let text = uri.expose();
            let known = ["postgres://", "postgresql://", "sqlite:"];
            if !known.iter().any(|p| text.starts_with(p)) {
                issues.push(
                    &["database", "uri"],
                    "expected a `postgresql://...` or `sqlite://PATH` URI",
                );
            }
        }
        let exclusive = [
            (
                ("host", self.host.is_some()),
                ("socket", self.socket.is_some()),
            ),
            (
                ("password", self.password.is_some()),
                ("password_file", self.password_file.is_some()),
            ),
            (
                ("ssl_ca", self.ssl_ca.is_some()),
                ("ssl_ca_file", self.ssl_ca_file.is_some()),
            ),
            (
                ("ssl_certificate", self.ssl_certificate.is_some()),
                ("ssl_certificate_file", self.ssl_certificate_file.is_some()),
            ),
            (
                ("ssl_key", self.ssl_key.is_some()),
                ("ssl_key_file", self.ssl_key_file.is_some()),
            ),
        ];
        for (a, b) in exclusive {
            at_most_one(issues, &at, a, b);
        }
        let has_cert = self.ssl_certificate.is_some() || self.ssl_certificate_file.is_some();
        let has_key = self.ssl_key.is_some() || self.ssl_key_file.is_some();
        if has_cert != has_key {
            issues.push(
                &at,
                "a client certificate (`ssl_certificate`) and key (`ssl_key`) go together",
            );
        }
        if self.max_connections == 0 {
            issues.push(&["database", "max_connections"], "must be at least 1");
        }
        if self.min_connections > self.max_connections {
            issues.push(
                &["database", "min_connections"],
                "cannot exceed `max_connections`",
            );
        }
    }
}
