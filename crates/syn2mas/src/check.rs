//! `syn2mas check`: what stands in the way of a move, before anything is written. Errors
//! must be fixed; warnings are for reading.

use mas_config::sections::{PasswordAlgorithm, RootConfig};

use crate::SynapseConfig;
use crate::database::{
    SynapseCounts, SynapseDatabase, SynapseDatabaseError, TESTED_SCHEMA_VERSIONS,
};

/// The outcome of the checks.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// What must be fixed before a move.
    pub errors: Vec<String>,
    /// What a move would leave behind or change.
    pub warnings: Vec<String>,
    /// What Synapse's database holds.
    pub counts: SynapseCounts,
}

/// What this service's database holds, for the checks.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// How many users (a move needs none).
    pub users: u64,
    /// The upstream providers stored by `config sync`, enabled or not.
    pub stored_providers: Vec<ulid::Ulid>,
}

/// How strict the checks are.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Users whose localpart cannot be held here are a warning (they are left out)
    /// instead of an error.
    pub skip_invalid_localparts: bool,
    /// A move is about to start: a Synapse still running is an error, not a warning.
    pub before_migrate: bool,
}

/// Checks Synapse's configuration and database against this service's configuration
/// (`ours`) and database (`target`).
///
/// # Errors
/// [`SynapseDatabaseError`] when Synapse's database cannot be read.
pub async fn check(
    synapse: &SynapseConfig,
    db: &SynapseDatabase,
    ours: &RootConfig,
    target: &TargetState,
    options: CheckOptions,
) -> Result<CheckReport, SynapseDatabaseError> {
    let mut report = CheckReport::default();
    if let Some(running) = still_running(synapse, db).await? {
        if options.before_migrate {
            report.errors.push(format!(
                "{running}: stop Synapse (and its workers) first, or what it writes during the move is lost"
            ));
        } else {
            report
                .warnings
                .push(format!("{running}: stop it before `syn2mas migrate`"));
        }
    }
    for method in synapse.unsupported_login_methods() {
        if method.starts_with("modules") {
            report.warnings.push(method);
        } else {
            report.errors.push(format!(
                "{method}: this login method cannot be carried over"
            ));
        }
    }
    let version = db.schema_version().await?;
    if !TESTED_SCHEMA_VERSIONS.contains(&version) {
        report.errors.push(format!(
            "Synapse's database has schema version {version}; this release reads versions {}..={} (Synapse 1.156 to 1.163)",
            TESTED_SCHEMA_VERSIONS.start(),
            TESTED_SCHEMA_VERSIONS.end()
        ));
        return Ok(report);
    }
    for provider in db.linked_providers().await? {
        let configured = ours
            .upstream_oauth2
            .providers
            .iter()
            .find(|p| p.synapse_idp_id.as_deref() == Some(provider.as_str()));
        match configured {
            None => report.errors.push(format!(
                "users are linked to the identity provider `{provider}` in Synapse, but no upstream_oauth2 provider here has `synapse_idp_id: {provider}`"
            )),
            Some(p) if !target.stored_providers.contains(&p.id) => report.errors.push(format!(
                "the provider {} (`synapse_idp_id: {provider}`) is configured but not in the database yet: run `mas-cli config sync`",
                p.id
            )),
            Some(_) => {}
        }
    }
    let (names, total) = db.invalid_localparts(synapse.server_name(), 10).await?;
    if total > 0 {
        let message = format!(
            "{total} users have a localpart this service cannot hold (lowercase letters, digits and ._=-/+ only), for example {}",
            names.join(", ")
        );
        if options.skip_invalid_localparts {
            report
                .warnings
                .push(format!("{message}: they are not moved"));
        } else {
            report.errors.push(format!(
                "{message}: rename them in Synapse, or leave them out with --skip-invalid-localparts"
            ));
        }
    }
    report.counts = db.counts().await?;
    let counts = &report.counts;
    if counts.with_password > 0 {
        check_passwords(synapse, ours, counts.with_password, &mut report.errors);
    }
    if target.users > 0 {
        report.errors.push(format!(
            "this service's database already holds {} users; a move needs an empty one",
            target.users
        ));
    }
    if counts.guests > 0 {
        report
            .warnings
            .push(format!("{} guest users are not moved", counts.guests));
    }
    if counts.appservice_users > 0 {
        report.warnings.push(format!(
            "{} application services' users are not moved (their application service keeps them)",
            counts.appservice_users
        ));
    }
    Ok(report)
}

/// Why Synapse looks like it is still running, if it does: something answers on one of
/// its listeners, or other sessions are connected to its PostgreSQL database.
async fn still_running(
    synapse: &SynapseConfig,
    db: &SynapseDatabase,
) -> Result<Option<String>, SynapseDatabaseError> {
    for address in synapse.listener_addresses() {
        let connect = tokio::net::TcpStream::connect(address.as_str());
        if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
            return Ok(Some(format!(
                "Synapse seems to be running: something answers on its listener {address}"
            )));
        }
    }
    let others = db.other_clients().await?;
    if !others.is_empty() {
        let mut names: Vec<&str> = others
            .iter()
            .map(|n| if n.is_empty() { "unnamed" } else { n.as_str() })
            .collect();
        names.sort_unstable();
        names.dedup();
        return Ok(Some(format!(
            "Synapse seems to be running: {} other clients are connected to its database ({})",
            others.len(),
            names.join(", ")
        )));
    }
    Ok(None)
}

/// Synapse's hashes must verify here: a bcrypt scheme with Synapse's pepper.
fn check_passwords(
    synapse: &SynapseConfig,
    ours: &RootConfig,
    users: i64,
    errors: &mut Vec<String>,
) {
    if !ours.passwords.enabled {
        errors.push(format!(
            "{users} users have a password in Synapse, but passwords.enabled is false here"
        ));
        return;
    }
    let Some(bcrypt) = ours
        .passwords
        .schemes
        .iter()
        .find(|s| s.algorithm == PasswordAlgorithm::Bcrypt)
    else {
        errors.push(format!(
            "{users} users have a bcrypt password in Synapse, but passwords.schemes has no bcrypt scheme (see `config generate --synapse-config`)"
        ));
        return;
    };
    let ours_pepper = bcrypt.secret.as_ref().map(|s| s.expose().to_owned());
    if ours_pepper.as_deref() != synapse.pepper() {
        errors.push(
            "the bcrypt scheme's secret is not Synapse's password_config.pepper: the moved passwords would not verify".to_owned(),
        );
    }
}
