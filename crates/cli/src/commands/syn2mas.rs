//! `mas-cli syn2mas`: moving an existing Synapse here. `check` says what stands in the
//! way, before anything is written.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use mas_storage::RepositoryFactory;

/// The `syn2mas` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Syn2masCommand {
    /// Check Synapse's configuration and database against this service's; exit 1 when
    /// something must be fixed first. Writes nothing.
    Check {
        /// Synapse's configuration file (repeat for several).
        #[arg(long, value_name = "FILE", required = true)]
        synapse_config: Vec<PathBuf>,
        /// Synapse's database (`postgresql://...` or `sqlite://PATH`), instead of the
        /// one its configuration names.
        #[arg(long, value_name = "URI")]
        synapse_database_uri: Option<String>,
    },
}

impl Syn2masCommand {
    pub(crate) fn run(self, files: &[PathBuf]) -> anyhow::Result<()> {
        let Self::Check {
            synapse_config,
            synapse_database_uri,
        } = self;
        let ours = mas_config::load(files)?;
        let synapse = mas_syn2mas::SynapseConfig::load(&synapse_config)?;
        // A relative SQLite path is Synapse's: taken from where its configuration is.
        let base = synapse_config
            .first()
            .and_then(|f| f.parent())
            .map(PathBuf::from)
            .unwrap_or_default();
        let options = match synapse_database_uri {
            Some(uri) => mas_syn2mas::SynapseDatabaseOptions::from_uri(&uri)?,
            None => synapse.database_options(&base)?,
        };
        crate::block_on(async {
            let db = mas_syn2mas::SynapseDatabase::connect(options).await?;
            let target = crate::database::open(&ours, false).await?;
            let our_users = {
                let mut repo = target.reader().await?;
                repo.user()
                    .count(mas_storage::repository::UserFilter::default())
                    .await
                    .context(
                        "cannot count this service's users (run `mas-cli database migrate` first)",
                    )?
            };
            let report = mas_syn2mas::check(&synapse, &db, &ours, our_users).await?;
            db.close().await;
            let counts = &report.counts;
            println!(
                "Synapse: {} users to move ({} with a password), {} devices, {} access tokens, {} email addresses; {} guests and {} application service users stay",
                counts.users,
                counts.with_password,
                counts.devices,
                counts.access_tokens,
                counts.emails,
                counts.guests,
                counts.appservice_users
            );
            for warning in &report.warnings {
                println!("warning: {warning}");
            }
            for error in &report.errors {
                println!("error: {error}");
            }
            if report.errors.is_empty() {
                println!("check passed");
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "{} problem(s) to fix before a move",
                    report.errors.len()
                ))
            }
        })
    }
}
