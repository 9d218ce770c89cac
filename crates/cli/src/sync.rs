//! `config sync`: makes the static clients and the upstream providers in the database
//! match the configuration.

use std::fmt;

use anyhow::Context;
use mas_config::sections::{
    ClientAuthMethod as ConfigAuthMethod, ClientConfig, UpstreamProviderConfig,
};
use mas_data_model::{Client, ClientAuthMethod, ClientKind, UpstreamOAuthProvider};
use mas_storage::repository::{ClientParams, ProviderParams};
use mas_storage::{Clock, Encrypter, Repository, RepositoryFactory, StorageError, SystemClock};
use mas_storage_sql::SqlRepositoryFactory;

/// The grant types a static client may use.
const STATIC_GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    mas_oauth_core::device::DEVICE_GRANT,
];

/// What happened (or would happen) to one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Not in the database before.
    Created,
    /// In the database with other values; the names of the fields that differ.
    Updated(Vec<String>),
    /// Already as configured.
    Unchanged,
    /// In the database but no longer configured, and `--prune` was given.
    Deleted,
    /// In the database but no longer configured; kept without `--prune`.
    Kept,
    /// A provider disabled: `enabled: false`, or no longer configured with `--prune`
    /// (its links stay, so enabling it again restores them).
    Disabled,
}

/// The outcome of a sync, one line per client.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Each client and its change, in ID order.
    pub(crate) changes: Vec<(String, Change)>,
    /// Each upstream provider and its change, in ID order.
    pub(crate) providers: Vec<(String, Change)>,
    /// Whether nothing was written.
    pub(crate) dry_run: bool,
}

impl Report {
    /// Whether the sync changed (or would change) anything.
    pub(crate) fn changed(&self) -> bool {
        self.changes.iter().chain(&self.providers).any(|(_, c)| {
            matches!(
                c,
                Change::Created | Change::Updated(_) | Change::Deleted | Change::Disabled
            )
        })
    }

    fn count(&self, f: impl Fn(&Change) -> bool) -> usize {
        self.changes.iter().filter(|(_, c)| f(c)).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = if self.dry_run { "would be " } else { "" };
        let lines = [
            ("client", &self.changes, "kept (use --prune to delete it)"),
            (
                "upstream provider",
                &self.providers,
                "kept enabled (use --prune to disable it)",
            ),
        ];
        for (noun, changes, kept) in lines {
            for (id, change) in changes {
                write!(f, "{noun} {id}: ")?;
                match change {
                    Change::Created => writeln!(f, "{would}created")?,
                    Change::Updated(fields) => {
                        writeln!(f, "{would}updated ({})", fields.join(", "))?;
                    }
                    Change::Unchanged => writeln!(f, "unchanged")?,
                    Change::Deleted => writeln!(f, "{would}deleted")?,
                    Change::Disabled => writeln!(f, "{would}disabled")?,
                    Change::Kept => writeln!(f, "no longer in the configuration, {kept}")?,
                }
            }
        }
        let counts = (
            self.count(|c| *c == Change::Created),
            self.count(|c| matches!(c, Change::Updated(_))),
            self.count(|c| *c == Change::Deleted),
            self.count(|c| matches!(c, Change::Unchanged | Change::Kept)),
        );
        if !self.changed() {
            write!(f, "static clients: no change")?;
        } else if self.dry_run {
            write!(
                f,
                "static clients: would create {}, update {}, delete {}; {} unchanged",
                counts.0, counts.1, counts.2, counts.3
            )?;
        } else {
            write!(
                f,
                "static clients: {} created, {} updated, {} deleted, {} unchanged",
                counts.0, counts.1, counts.2, counts.3
            )?;
        }
        if self.dry_run {
            write!(f, "\ndry run: nothing was written")?;
        }
        Ok(())
    }
}

fn auth_method(method: ConfigAuthMethod) -> ClientAuthMethod {
    match method {
        ConfigAuthMethod::None => ClientAuthMethod::None,
        ConfigAuthMethod::ClientSecretBasic => ClientAuthMethod::ClientSecretBasic,
        ConfigAuthMethod::ClientSecretPost => ClientAuthMethod::ClientSecretPost,
        ConfigAuthMethod::ClientSecretJwt => ClientAuthMethod::ClientSecretJwt,
        ConfigAuthMethod::PrivateKeyJwt => ClientAuthMethod::PrivateKeyJwt,
    }
}

/// The stored form of a configured client, with its secret still in plain text.
fn desired(client: &ClientConfig) -> anyhow::Result<(ClientParams, Option<String>)> {
    let jwks = client
        .jwks
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .context("clients: jwks is not valid JSON")?;
    let params = ClientParams {
        auth_method: auth_method(client.client_auth_method),
        encrypted_secret: None,
        jwks,
        jwks_uri: client.jwks_uri.clone(),
        redirect_uris: client.redirect_uris.clone(),
        grant_types: STATIC_GRANT_TYPES.iter().map(|g| (*g).to_owned()).collect(),
        name: client.client_name.clone(),
        client_uri: client.client_uri.clone(),
        logo_uri: None,
        policy_uri: None,
        tos_uri: None,
        application_type: None,
        contacts: Vec::new(),
        metadata: client
            .backchannel_logout_uri
            .as_ref()
            .map(|uri| serde_json::json!({ "backchannel_logout_uri": uri })),
    };
    let secret = client
        .secret()
        .with_context(|| format!("client {}", client.client_id))?;
    Ok((params, secret))
}

/// The fields in which a stored client differs from the desired one.
fn differences(stored: &Client, want: &ClientParams, same_secret: bool) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let checks = [
        ("client_auth_method", stored.auth_method == want.auth_method),
        ("client_secret", same_secret),
        ("jwks", stored.jwks == want.jwks),
        ("jwks_uri", stored.jwks_uri == want.jwks_uri),
        ("redirect_uris", stored.redirect_uris == want.redirect_uris),
        ("grant_types", stored.grant_types == want.grant_types),
        ("client_name", stored.name == want.name),
        ("client_uri", stored.client_uri == want.client_uri),
        ("backchannel_logout_uri", stored.metadata == want.metadata),
    ];
    for (name, same) in checks {
        if !same {
            fields.push(name);
        }
    }
    fields
}

/// Brings the static clients of `repo` in line with `clients`. The caller saves the unit
/// of work, or drops it for a dry run.
pub(crate) async fn sync_clients(
    repo: &mut dyn Repository,
    clock: &dyn Clock,
    encrypter: &Encrypter,
    clients: &[ClientConfig],
    prune: bool,
) -> anyhow::Result<Report> {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let stored = repo.client().all_static().await?;
    let mut report = Report::default();
    for client in clients {
        let id = client.client_id;
        let (mut params, secret) = desired(client)?;
        let existing = match stored.iter().find(|c| c.id == id) {
            Some(existing) => Some(existing.clone()),
            None => match repo.client().lookup(id).await? {
                Some(dynamic) if dynamic.kind == ClientKind::Dynamic => anyhow::bail!(
                    "client {id}: a dynamically registered client already has this ID"
                ),
                other => other,
            },
        };
        let change = if let Some(existing) = existing {
            let stored_secret = existing
                .encrypted_secret
                .as_deref()
                .and_then(|sealed| encrypter.decrypt(sealed).ok())
                .and_then(|plain| String::from_utf8(plain).ok());
            let same_secret = stored_secret == secret;
            // Keep the stored ciphertext when the secret is the same: a fresh nonce would
            // make every sync look like a change.
            params.encrypted_secret = if same_secret {
                existing.encrypted_secret.clone()
            } else {
                secret.map(|s| encrypter.encrypt(&mut rng, s.as_bytes()))
            };
            let fields = differences(&existing, &params, same_secret);
            if fields.is_empty() {
                Change::Unchanged
            } else {
                repo.client().upsert_static(clock, id, params).await?;
                Change::Updated(fields.into_iter().map(str::to_owned).collect())
            }
        } else {
            params.encrypted_secret = secret.map(|s| encrypter.encrypt(&mut rng, s.as_bytes()));
            repo.client().upsert_static(clock, id, params).await?;
            Change::Created
        };
        report.changes.push((id.to_string(), change));
    }
    for old in stored {
        if clients.iter().any(|c| c.client_id == old.id) {
            continue;
        }
        let id = old.id.to_string();
        if prune {
            repo.client().delete(old).await?;
            report.changes.push((id, Change::Deleted));
        } else {
            report.changes.push((id, Change::Kept));
        }
    }
    report.changes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(report)
}

/// The stored form of a configured provider, with its secret still in plain text.
fn desired_provider(
    provider: &UpstreamProviderConfig,
    ui_order: i32,
) -> anyhow::Result<(ProviderParams, Option<String>)> {
    let secret = provider
        .secret()
        .with_context(|| format!("upstream provider {}", provider.id))?;
    Ok((
        ProviderParams {
            ui_order,
            issuer: provider.issuer.clone(),
            human_name: provider.human_name.clone(),
            client_id: provider.client_id.clone(),
            encrypted_client_secret: None,
            config: mas_upstream::Provider::stored_settings(provider),
        },
        secret,
    ))
}

/// The settings in which a stored provider differs from the desired one.
fn provider_differences(
    stored: &UpstreamOAuthProvider,
    want: &ProviderParams,
    same_secret: bool,
) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    if !same_secret {
        fields.push("client_secret".to_owned());
    }
    if stored.ui_order != want.ui_order {
        fields.push("position".to_owned());
    }
    let (Some(old), Some(new)) = (stored.config.as_object(), want.config.as_object()) else {
        fields.push("settings".to_owned());
        return fields;
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    fields.extend(
        keys.into_iter()
            .filter(|k| old.get(*k) != new.get(*k))
            .cloned(),
    );
    fields
}

/// Brings the upstream providers of `repo` in line with `providers`: each is stored with
/// its secret encrypted; one with `enabled: false` is disabled; one no longer configured
/// is disabled with `prune`, kept otherwise. A disabled provider keeps its links.
pub(crate) async fn sync_providers(
    repo: &mut dyn Repository,
    clock: &dyn Clock,
    encrypter: &Encrypter,
    providers: &[UpstreamProviderConfig],
    prune: bool,
) -> anyhow::Result<Vec<(String, Change)>> {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let stored = repo.upstream_provider().all().await?;
    let mut changes = Vec::new();
    for (position, provider) in providers.iter().enumerate() {
        let ui_order = i32::try_from(position).unwrap_or(i32::MAX);
        let (mut params, secret) = desired_provider(provider, ui_order)?;
        let existing = stored.iter().find(|p| p.id == provider.id);
        let mut change = if let Some(existing) = existing {
            let stored_secret = existing
                .encrypted_client_secret
                .as_deref()
                .and_then(|sealed| encrypter.decrypt(sealed).ok())
                .and_then(|plain| String::from_utf8(plain).ok());
            let same_secret = stored_secret == secret;
            params.encrypted_client_secret = if same_secret {
                existing.encrypted_client_secret.clone()
            } else {
                secret.map(|s| encrypter.encrypt(&mut rng, s.as_bytes()))
            };
            let mut fields = provider_differences(existing, &params, same_secret);
            if existing.disabled_at.is_some()
                && provider.enabled
                && !fields.iter().any(|f| f == "enabled")
            {
                fields.push("enabled".to_owned());
            }
            if fields.is_empty() {
                Change::Unchanged
            } else {
                Change::Updated(fields)
            }
        } else {
            params.encrypted_client_secret =
                secret.map(|s| encrypter.encrypt(&mut rng, s.as_bytes()));
            Change::Created
        };
        let stored_now = match change {
            Change::Unchanged => existing.cloned(),
            _ => Some(
                repo.upstream_provider()
                    .upsert(clock, provider.id, params)
                    .await?,
            ),
        };
        if !provider.enabled
            && let Some(current) = stored_now
            && (current.disabled_at.is_none() || change != Change::Unchanged)
        {
            repo.upstream_provider().disable(clock, current).await?;
            if change == Change::Unchanged {
                change = Change::Disabled;
            }
        }
        changes.push((provider.id.to_string(), change));
    }
    for old in stored {
        if providers.iter().any(|p| p.id == old.id) {
            continue;
        }
        let id = old.id.to_string();
        if old.disabled_at.is_some() {
            changes.push((id, Change::Unchanged));
        } else if prune {
            repo.upstream_provider().disable(clock, old).await?;
            changes.push((id, Change::Disabled));
        } else {
            changes.push((id, Change::Kept));
        }
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(changes)
}

/// How many times a sync is tried when it loses a race to create a client.
const SYNC_ATTEMPTS: u32 = 3;

/// Runs a sync in one unit of work, saved unless `dry_run`.
///
/// Replicas starting together on one PostgreSQL database sync the same clients at the
/// same moment. Both find a new client missing and insert it; the second insert waits
/// for the first transaction and is then refused by the primary key. That sync is run
/// again in a fresh unit of work, which finds the client stored (SQLite's write lock
/// already makes syncs take turns).
pub(crate) async fn run(
    factory: &SqlRepositoryFactory,
    config: &mas_config::RootConfig,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let encrypter = Encrypter::new(&config.secrets.encryption_key()?);
    let mut attempt = 1;
    loop {
        match run_once(factory, config, &encrypter, prune, dry_run).await {
            Err(error) if attempt < SYNC_ATTEMPTS && lost_a_race(&error) => {
                tracing::info!(%error, "config sync: another process stored a client first; syncing again");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Whether a sync failed on a unique value that another writer took first.
fn lost_a_race(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<StorageError>(),
        Some(StorageError::Conflict(_))
    )
}

async fn run_once(
    factory: &SqlRepositoryFactory,
    config: &mas_config::RootConfig,
    encrypter: &Encrypter,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let mut repo = factory.begin().await?;
    let mut report = sync_clients(
        repo.as_mut(),
        &SystemClock,
        encrypter,
        &config.clients,
        prune,
    )
    .await?;
    report.providers = sync_providers(
        repo.as_mut(),
        &SystemClock,
        encrypter,
        &config.upstream_oauth2.providers,
        prune,
    )
    .await?;
    report.dry_run = dry_run;
    if !dry_run {
        repo.save().await?;
    }
    Ok(report)
}
