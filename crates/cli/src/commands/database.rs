//! `mas-cli database migrate`.

use std::path::PathBuf;

use clap::Subcommand;

/// The `database` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DatabaseCommand {
    /// Apply pending schema migrations.
    Migrate,
}

impl DatabaseCommand {
    pub(crate) fn run(self, files: &[PathBuf]) -> anyhow::Result<()> {
        match self {
            Self::Migrate => {
                let config = mas_config::load(files)?;
                crate::block_on(async {
                    let factory = crate::database::open(&config, false).await?;
                    let applied = factory.migrate().await?;
                    if applied.is_empty() {
                        println!("database is up to date");
                    } else {
                        for name in &applied {
                            println!("applied {name}");
                        }
                    }
                    factory.close().await?;
                    Ok(())
                })
            }
        }
    }
}
