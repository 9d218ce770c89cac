//! `config generate`: a complete configuration with fresh secrets.

use pkcs8::LineEnding;
use rand::distr::{Alphanumeric, SampleString};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rsa::pkcs8::EncodePrivateKey;

use crate::ConfigError;
use crate::sections::{
    BindConfig, DatabaseConfig, KeyConfig, ListenerConfig, MatrixConfig, Resource, RootConfig,
    Secret, SecretsConfig,
};

/// Bits of the generated RSA key.
const RSA_BITS: usize = 2048;

/// A complete configuration with MAS's defaults and fresh secrets: a 32-byte encryption
/// key, an RSA 2048 key and an EC P-256 key (PKCS#8 PEM), and a homeserver secret.
///
/// # Errors
/// [`ConfigError::KeyGeneration`] if the system's random source fails.
pub fn generate() -> Result<RootConfig, ConfigError> {
    let mut rng = rand::rng();
    let mut encryption = [0u8; 32];
    rand::Rng::fill_bytes(&mut rng, &mut encryption);

    let rsa = rsa::PrivateKey::new(&mut rng, RSA_BITS)
        .map_err(|e| ConfigError::KeyGeneration(e.to_string()))?;
    let rsa_pem = rsa
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| ConfigError::KeyGeneration(e.to_string()))?;

    let ec_der =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
            .map_err(|_| {
                ConfigError::KeyGeneration("the system random source failed".to_owned())
            })?;
    let ec_pem = pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, ec_der.as_ref())
        .map_err(|e| ConfigError::KeyGeneration(e.to_string()))?;

    let key = |pem: &str, rng: &mut rand::rngs::ThreadRng| KeyConfig {
        kid: Some(Alphanumeric.sample_string(rng, 10)),
        key: Some(Secret::new(pem)),
        key_file: None,
        password: None,
        password_file: None,
    };
    let keys = vec![key(&rsa_pem, &mut rng), key(&ec_pem, &mut rng)];

    Ok(RootConfig {
        secrets: SecretsConfig {
            encryption: Some(Secret::new(hex::encode(encryption))),
            encryption_file: None,
            keys,
            keys_dir: None,
        },
        matrix: MatrixConfig {
            secret: Some(Secret::new(Alphanumeric.sample_string(&mut rng, 32))),
            ..MatrixConfig::default()
        },
        database: DatabaseConfig {
            uri: Some(Secret::new("postgresql://")),
            ..DatabaseConfig::default()
        },
        ..RootConfig::default()
    })
}

/// The embedded default used by `mas-server` with no configuration: SQLite in
/// `database_file`, one listener on 127.0.0.1:8080 serving everything, health included.
///
/// # Errors
/// As [`generate`].
pub fn generate_embedded(database_file: &str) -> Result<RootConfig, ConfigError> {
    let mut config = generate()?;
    config.database = DatabaseConfig::sqlite(database_file);
    config.http.public_base =
        url::Url::parse("http://localhost:8080/").map_err(|e| ConfigError::Write(e.to_string()))?;
    config.http.listeners = vec![ListenerConfig {
        name: Some("web".to_owned()),
        resources: vec![
            Resource::Discovery,
            Resource::Human,
            Resource::OAuth,
            Resource::Compat,
            Resource::Health,
        ],
        prefix: None,
        binds: vec![BindConfig::address("127.0.0.1:8080")],
        proxy_protocol: false,
        tls: None,
    }];
    Ok(config)
}

/// Comments placed before top-level sections of a generated file.
const SECTION_COMMENTS: &[(&str, &str)] = &[
    (
        "http",
        "# Where the service listens. `public_base` is the URL users and the homeserver reach it at.",
    ),
    (
        "database",
        "# `postgresql://user:password@host/db` for PostgreSQL, `sqlite://PATH` for the embedded database.",
    ),
    (
        "matrix",
        "# The homeserver. `secret` must equal `matrix_authentication_service.secret` in Synapse's config.",
    ),
    (
        "clients",
        "# OAuth 2.0 clients declared here are stored in the database by `mas-cli config sync`.",
    ),
    (
        "secrets",
        "# Keep these secret. `encryption` protects data at rest; `keys` sign ID tokens.",
    ),
    (
        "passwords",
        "# Password login; the highest scheme version hashes new passwords.",
    ),
    (
        "email",
        "# Outgoing mail: `blackhole` drops it; see docs/configuration.md for smtp and sendmail.",
    ),
    ("experimental", "# Token lifetimes in seconds."),
];

impl RootConfig {
    /// The YAML of a generated file: every section, secrets included, with comments.
    ///
    /// # Errors
    /// [`ConfigError::Write`] if serialisation fails.
    pub fn to_commented_yaml(&self) -> Result<String, ConfigError> {
        let yaml = self.to_yaml(true)?;
        let mut out = String::from(
            "# Configuration of the Matrix authentication service (MAS-compatible keys).\n\
             # Reference: docs/configuration.md. Check it with `mas-cli -c FILE config check`.\n",
        );
        for line in yaml.lines() {
            if let Some((_, comment)) = SECTION_COMMENTS.iter().find(|(key, _)| {
                line.strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with(':'))
            }) {
                out.push('\n');
                out.push_str(comment);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
        Ok(out)
    }
}
