//! `mas-cli config {check, dump, generate, sync}`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Parse and validate the configuration; exit 1 with every problem found.
    Check,
    /// Print the merged configuration with defaults filled in.
    Dump {
        /// Show secrets instead of `[REDACTED]`.
        #[arg(long)]
        include_secrets: bool,
        /// Write to this file instead of standard output (replaced by a new file readable
        /// by its owner only, as with `generate`).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a complete configuration with freshly generated secrets.
    Generate {
        /// Write to this file instead of standard output. It is replaced by a new file
        /// readable by its owner only (a symlink is replaced, not followed).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Start from this Synapse's configuration (repeat for several files): its server
        /// name, password hashing, registration, email and OpenID Connect providers.
        #[arg(long, value_name = "FILE")]
        synapse_config: Vec<PathBuf>,
    },
    /// Store the configured clients in the database (migrating it first).
    Sync {
        /// Delete static clients that are no longer in the configuration.
        #[arg(long)]
        prune: bool,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

impl ConfigCommand {
    pub(crate) fn run(self, files: &[PathBuf]) -> anyhow::Result<()> {
        match self {
            Self::Check => {
                let config = mas_config::load(files)?;
                crate::policy::build(&config)?;
                for warning in config.not_honoured() {
                    eprintln!("warning: {warning}");
                }
                eprintln!("Configuration file looks good");
                Ok(())
            }
            Self::Dump {
                include_secrets,
                output,
            } => {
                let config = mas_config::load(files)?;
                emit(&config.to_yaml(include_secrets)?, output.as_deref())
            }
            Self::Generate {
                output,
                synapse_config,
            } => {
                let mut config = mas_config::generate()?;
                if !synapse_config.is_empty() {
                    let synapse = mas_syn2mas::SynapseConfig::load(&synapse_config)?;
                    let (adjusted, warnings) = synapse.adjust(config);
                    config = adjusted;
                    for warning in &warnings {
                        eprintln!("warning: {warning}");
                    }
                    // Say now what `config check` would refuse, such as a provider whose
                    // secret file is missing.
                    if let Err(error) = mas_config::RootConfig::from_yaml(&config.to_yaml(true)?) {
                        eprintln!("warning: the result needs editing before use:\n{error}");
                    }
                }
                emit(&config.to_commented_yaml()?, output.as_deref())
            }
            Self::Sync { prune, dry_run } => {
                let config = mas_config::load(files)?;
                crate::block_on(async {
                    // A dry run changes nothing, the schema included.
                    let factory = crate::database::open(&config, !dry_run).await?;
                    crate::database::require_current_schema(&factory).await?;
                    let report = crate::sync::run(&factory, &config, prune, dry_run).await?;
                    println!("{report}");
                    factory.close().await?;
                    Ok(())
                })
            }
        }
    }
}

fn emit(text: &str, output: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = output {
        crate::embedded::replace_private(path, text)
            .with_context(|| format!("cannot write {}", path.display()))
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }
}
