//! The `passwords` section: local password authentication and hashing schemes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Secret, at_most_one};
use crate::Issues;

/// Whether passwords are accepted and how they are hashed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordsConfig {
    /// Whether users may log in with a password.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Hashing schemes; the highest version hashes new passwords, older ones verify.
    #[serde(default = "default_schemes")]
    pub schemes: Vec<PasswordScheme>,
    /// The zxcvbn score (0 to 4) a new password must reach.
    #[serde(default = "default_minimum_complexity")]
    pub minimum_complexity: u8,
}

fn default_true() -> bool {
    true
}
fn default_minimum_complexity() -> u8 {
    3
}
fn default_schemes() -> Vec<PasswordScheme> {
    vec![PasswordScheme {
        version: 1,
        algorithm: PasswordAlgorithm::Argon2id,
        cost: None,
        secret: None,
        secret_file: None,
        unicode_normalization: false,
    }]
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            schemes: default_schemes(),
            minimum_complexity: default_minimum_complexity(),
        }
    }
}

/// One versioned hashing scheme.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordScheme {
    /// The version stored beside each hash.
    pub version: u16,
    /// The hashing algorithm.
    pub algorithm: PasswordAlgorithm,
    /// The bcrypt cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    /// A pepper mixed into the hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// The pepper, read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Whether passwords are NFKC-normalised before hashing (as Synapse does).
    #[serde(default)]
    pub unicode_normalization: bool,
}

/// The password hashing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordAlgorithm {
    /// bcrypt (Synapse's).
    Bcrypt,
    /// Argon2id (the default).
    Argon2id,
    /// PBKDF2.
    Pbkdf2,
}

impl PasswordsConfig {
    pub(crate) fn validate(&self, issues: &mut Issues) {
        if !self.enabled {
            return;
        }
        if self.schemes.is_empty() {
            issues.push(
                &["passwords", "schemes"],
                "at least one scheme is required when passwords are enabled",
            );
        }
        if self.minimum_complexity > 4 {
            issues.push(
                &["passwords", "minimum_complexity"],
                "expected a score from 0 to 4",
            );
        }
        let mut versions = std::collections::HashSet::new();
        for (i, scheme) in self.schemes.iter().enumerate() {
            let at = ["passwords", "schemes", &i.to_string()].map(str::to_owned);
            if !versions.insert(scheme.version) {
                let mut p = at.to_vec();
                p.push("version".to_owned());
                issues.push(
                    &p,
                    format!("another scheme already has version {}", scheme.version),
                );
            }
            at_most_one(
                issues,
                &at,
                ("secret", scheme.secret.is_some()),
                ("secret_file", scheme.secret_file.is_some()),
            );
            if scheme.cost.is_some() && scheme.algorithm != PasswordAlgorithm::Bcrypt {
                let mut p = at.to_vec();
                p.push("cost".to_owned());
                issues.push(&p, "only meaningful with algorithm `bcrypt`");
            }
        }
    }
}
