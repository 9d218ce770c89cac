//! The `matrix` section: the homeserver this service authenticates for.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{Secret, check_http_url, exactly_one, path};
use crate::{ConfigError, Issues};

/// The homeserver, how to reach it and the secret shared with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Which homeserver API to speak.
    #[serde(default)]
    pub kind: HomeserverKind,
    /// The homeserver's server name (the part after `:` in user IDs).
    #[serde(default = "default_homeserver")]
    pub homeserver: String,
    /// The secret shared with the homeserver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// The shared secret, read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Where the service reaches the homeserver's APIs.
    #[serde(default = "default_endpoint")]
    pub endpoint: Url,
}

fn default_homeserver() -> String {
    "localhost:8008".to_owned()
}

fn default_endpoint() -> Url {
    Url::parse("http://localhost:8008/").unwrap_or_else(|_| unreachable!("constant URL"))
}

impl Default for MatrixConfig {
    fn default() -> Self {
        Self {
            kind: HomeserverKind::default(),
            homeserver: default_homeserver(),
            secret: None,
            secret_file: None,
            endpoint: default_endpoint(),
        }
    }
}

/// The homeserver API generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HomeserverKind {
    /// Synapse; the modern `/_synapse/mas/` API.
    #[default]
    Synapse,
    /// Synapse 1.136 and later, named explicitly.
    SynapseModern,
    /// The `experimental_features.msc3861` generation, through the admin API.
    SynapseLegacy,
    /// Synapse, queried but never changed.
    SynapseReadOnly,
}

impl MatrixConfig {
    /// The secret shared with the homeserver, from `secret` or `secret_file`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read.
    pub fn secret(&self) -> Result<String, ConfigError> {
        match (&self.secret, &self.secret_file) {
            (Some(inline), _) => Ok(inline.expose().to_owned()),
            (None, Some(path)) => super::read_secret_file(path),
            (None, None) => Err(super::invalid(
                &["matrix"],
                "one of `secret` or `secret_file` is required",
            )),
        }
    }

    pub(crate) fn validate(&self, issues: &mut Issues) {
        let at = path(&["matrix"]);
        exactly_one(
            issues,
            &at,
            ("secret", self.secret.is_some()),
            ("secret_file", self.secret_file.is_some()),
        );
        if self.homeserver.is_empty() {
            issues.push(&["matrix", "homeserver"], "must not be empty");
        }
        check_http_url(
            issues,
            &path(&["matrix", "endpoint"]),
            &self.endpoint,
            false,
        );
    }
}
