//! Building the OAuth 2.0 provider's fixed parts from the configuration.

use anyhow::{Context, bail};
use mas_config::RootConfig;
use mas_handlers::OAuthState;
use mas_oauth_core::{Endpoints, KeyStore};

/// Loads the signing keys of `secrets.keys` (inline or from files) and `secrets.keys_dir`.
pub(crate) fn load_keys(config: &RootConfig) -> anyhow::Result<KeyStore> {
    let mut pems: Vec<(Option<String>, String)> = Vec::new();
    if let Some(dir) = &config.secrets.keys_dir {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("secrets.keys_dir: cannot read {}", dir.display()))?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("secrets.keys_dir: cannot read {}", file.display()))?;
            pems.push((None, pem));
        }
    }
    for (index, key) in config.secrets.keys.iter().enumerate() {
        let pem = match (&key.key, &key.key_file) {
            (Some(inline), _) => inline.expose().to_owned(),
            (None, Some(file)) => std::fs::read_to_string(file).with_context(|| {
                format!(
                    "secrets.keys[{index}].key_file: cannot read {}",
                    file.display()
                )
            })?,
            (None, None) => bail!("secrets.keys[{index}]: one of `key` or `key_file` is required"),
        };
        let password = match (&key.password, &key.password_file) {
            (Some(inline), _) => Some(inline.expose().as_bytes().to_vec()),
            (None, Some(file)) => Some(std::fs::read(file).with_context(|| {
                format!(
                    "secrets.keys[{index}].password_file: cannot read {}",
                    file.display()
                )
            })?),
            (None, None) => None,
        };
        let pem = match password {
            // The file is the password; a final newline (as `echo` leaves) is not part of it.
            Some(password) => {
                let password = password.strip_suffix(b"\n").unwrap_or(&password);
                mas_oauth_core::decrypt_pkcs8_pem(index, &pem, password)
                    .map_err(|e| anyhow::anyhow!("secrets.keys: {e}"))?
            }
            None if pem.contains("ENCRYPTED PRIVATE KEY") => bail!(
                "secrets.keys[{index}]: the key is password-protected; set `password` or `password_file`"
            ),
            None => pem,
        };
        pems.push((key.kid.clone(), pem));
    }
    let store = KeyStore::from_pems(pems.iter().map(|(kid, pem)| (kid.as_deref(), pem.as_str())))
        .context("secrets.keys")?;
    for (index, what) in store.skipped() {
        tracing::warn!("secrets.keys: key {index} is {what}; it is not published or used");
    }
    Ok(store)
}

/// The provider's endpoints, keys and discovery document.
pub(crate) fn state(config: &RootConfig) -> anyhow::Result<OAuthState> {
    let keys = load_keys(config)?;
    let endpoints = Endpoints::new(config.http.issuer().clone(), &config.http.public_base);
    let registration_open = config
        .account
        .password_registration_open(config.passwords.enabled);
    let mut state = OAuthState::new(endpoints, keys, registration_open);
    state.admin_clients = config
        .admin_clients()
        .map_err(|why| anyhow::anyhow!("policy.data.admin_clients: {why}"))?;
    Ok(state)
}

/// The password manager for `passwords` (disabled: no schemes).
pub(crate) fn password_manager(
    config: &RootConfig,
) -> anyhow::Result<mas_oauth_core::passwords::PasswordManager> {
    use mas_config::sections::PasswordAlgorithm;
    use mas_oauth_core::passwords::{Algorithm, PasswordManager, Scheme};
    let passwords = &config.passwords;
    if !passwords.enabled {
        return Ok(PasswordManager::new(
            Vec::new(),
            passwords.minimum_complexity,
        ));
    }
    let mut schemes = Vec::new();
    for (index, scheme) in passwords.schemes.iter().enumerate() {
        let secret = match (&scheme.secret, &scheme.secret_file) {
            (Some(inline), _) => Some(inline.expose().as_bytes().to_vec()),
            (None, Some(file)) => Some(std::fs::read(file).with_context(|| {
                format!(
                    "passwords.schemes[{index}].secret_file: cannot read {}",
                    file.display()
                )
            })?),
            (None, None) => None,
        };
        let algorithm = match scheme.algorithm {
            PasswordAlgorithm::Argon2id => Algorithm::Argon2id,
            PasswordAlgorithm::Bcrypt => Algorithm::Bcrypt {
                cost: scheme.cost.unwrap_or(12),
            },
            PasswordAlgorithm::Pbkdf2 => Algorithm::Pbkdf2,
        };
        schemes.push(Scheme {
            version: scheme.version,
            algorithm,
            secret,
            unicode_normalization: scheme.unicode_normalization,
        });
    }
    Ok(PasswordManager::new(schemes, passwords.minimum_complexity))
}
