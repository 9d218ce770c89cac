//! The `secrets` section: the encryption key and the signing keys.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Secret, at_most_one, exactly_one, path};
use crate::{ConfigError, Issues};

/// Key material of the service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// 32 bytes in hex: encrypts secrets stored in the database and cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Secret>,
    /// The encryption key, read from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_file: Option<PathBuf>,
    /// Signing keys (ID tokens, JWKS).
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// A directory whose every file is a signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_dir: Option<PathBuf>,
}

/// One signing key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key ID published in the JWKS; derived from the key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The private key in PEM, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// The private key in PEM or DER, from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted PKCS#8 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Password of an encrypted key, from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// The PEM labels of private keys we know how to read.
const KEY_LABELS: &[&str] = &[
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
];

impl SecretsConfig {
    /// The 32-byte encryption key, from `encryption` or `encryption_file`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Invalid`] when
    /// the key is not 64 hex characters.
    pub fn encryption_key(&self) -> Result<[u8; 32], ConfigError> {
        let (text, key) = match (&self.encryption, &self.encryption_file) {
            (Some(inline), _) => (inline.expose().to_owned(), "encryption"),
            (None, Some(path)) => (super::read_secret_file(path)?, "encryption_file"),
            (None, None) => {
                return Err(super::invalid(
                    &["secrets"],
                    "one of `encryption` or `encryption_file` is required",
                ));
            }
        };
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).map_err(|_| {
            super::invalid(&["secrets", key], "expected 64 hex characters (32 bytes)")
        })?;
        Ok(out)
    }

    pub(crate) fn validate(&self, issues: &mut Issues) {
        let at = path(&["secrets"]);
        exactly_one(
            issues,
            &at,
            ("encryption", self.encryption.is_some()),
            ("encryption_file", self.encryption_file.is_some()),
        );
        if let Some(key) = &self.encryption
            && !is_hex_32(key.expose())
        {
            issues.push(
                &["secrets", "encryption"],
                "expected 64 hex characters (32 bytes)",
            );
        }
        let mut kids = std::collections::HashSet::new();
        for (i, key) in self.keys.iter().enumerate() {
            let at = ["secrets", "keys", &i.to_string()].map(str::to_owned);
            exactly_one(
                issues,
                &at,
                ("key", key.key.is_some()),
                ("key_file", key.key_file.is_some()),
            );
            at_most_one(
                issues,
                &at,
                ("password", key.password.is_some()),
                ("password_file", key.password_file.is_some()),
            );
            if let Some(pem) = &key.key
                && !is_private_key_pem(pem.expose())
            {
                issues.push(
                    &["secrets", "keys", &i.to_string(), "key"],
                    "expected a PEM private key (PKCS#8, PKCS#1 or SEC1)",
                );
            }
            if let Some(kid) = &key.kid
                && !kids.insert(kid.as_str())
            {
                issues.push(
                    &["secrets", "keys", &i.to_string(), "kid"],
                    format!("another key already has kid `{kid}`"),
                );
            }
        }
    }
}

fn is_hex_32(text: &str) -> bool {
    let text = text.trim();
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_private_key_pem(text: &str) -> bool {
    pkcs8::der::pem::decode_vec(text.trim().as_bytes())
        .is_ok_and(|(label, der)| KEY_LABELS.contains(&label) && !der.is_empty())
}
