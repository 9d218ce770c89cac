//! `mas-cli syn2mas`: moving an existing Synapse here. `check` says what stands in the
//! way, before anything is written; `migrate` moves users, passwords, emails, SSO links,
//! devices and tokens in one transaction.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mas_config::sections::{PasswordAlgorithm, RootConfig};
use mas_storage::RepositoryFactory;
use mas_storage::bulk::BulkWriter;
use mas_syn2mas::{SynapseConfig, SynapseDatabase, Tally, TargetState};

/// The `syn2mas` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Syn2masCommand {
    /// Check Synapse's configuration and database against this service's; exit 1 when
    /// something must be fixed first. Writes nothing.
    Check(Source),
    /// Move Synapse's users, passwords, emails, SSO links, devices and tokens into this
    /// service's empty database, all at once or not at all. Synapse must be stopped.
    Migrate {
        #[command(flatten)]
        source: Source,
        /// Do everything, then roll it back: nothing is written, the summary is the
        /// same.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where Synapse is, and what to do with users who cannot move.
#[derive(Debug, Args)]
pub(crate) struct Source {
    /// Synapse's configuration file (repeat for several).
    #[arg(long, value_name = "FILE", required = true)]
    synapse_config: Vec<PathBuf>,
    /// Synapse's database (`postgresql://...` or `sqlite://PATH`), instead of the
    /// one its configuration names.
    #[arg(long, value_name = "URI")]
    synapse_database_uri: Option<String>,
    /// Leave out users whose localpart this service cannot hold (such as uppercase
    /// letters), instead of refusing.
    #[arg(long)]
    skip_invalid_localparts: bool,
}

impl Syn2masCommand {
    pub(crate) fn run(self, files: &[PathBuf]) -> anyhow::Result<()> {
        let (source, dry_run) = match self {
            Self::Check(source) => (source, None),
            Self::Migrate { source, dry_run } => (source, Some(dry_run)),
        };
        let ours = mas_config::load(files)?;
        let synapse = SynapseConfig::load(&source.synapse_config)?;
        // A relative SQLite path is Synapse's: taken from where its configuration is.
        let base = source
            .synapse_config
            .first()
            .and_then(|f| f.parent())
            .map(PathBuf::from)
            .unwrap_or_default();
        let options = match &source.synapse_database_uri {
            Some(uri) => mas_syn2mas::SynapseDatabaseOptions::from_uri(uri)?,
            None => synapse.database_options(&base)?,
        };
        crate::block_on(async {
            let db = SynapseDatabase::connect(options).await?;
            let target = crate::database::open(&ours, false).await?;
            let state = target_state(&target).await?;
            let report = mas_syn2mas::check(
                &synapse,
                &db,
                &ours,
                &state,
                mas_syn2mas::CheckOptions {
                    skip_invalid_localparts: source.skip_invalid_localparts,
                    before_migrate: dry_run == Some(false),
                },
            )
            .await?;
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
            if !report.errors.is_empty() {
                db.close().await;
                anyhow::bail!("{} problem(s) to fix before a move", report.errors.len());
            }
            let Some(dry_run) = dry_run else {
                println!("check passed");
                db.close().await;
                return Ok(());
            };
            let result = migrate(&synapse, &db, &ours, &target, &source, dry_run).await;
            db.close().await;
            result
        })
    }
}

/// What this service's database holds that the checks look at.
async fn target_state(
    target: &mas_storage_sql::SqlRepositoryFactory,
) -> anyhow::Result<TargetState> {
    let mut repo = target.reader().await?;
    let users = repo
        .user()
        .count(&mas_storage::repository::UserFilter::default())
        .await
        .context("cannot count this service's users (run `mas-cli database migrate` first)")?;
    let stored_providers = repo
        .upstream_provider()
        .all()
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    Ok(TargetState {
        users,
        stored_providers,
    })
}

/// The move, after the checks passed.
async fn migrate(
    synapse: &SynapseConfig,
    db: &SynapseDatabase,
    ours: &RootConfig,
    target: &mas_storage_sql::SqlRepositoryFactory,
    source: &Source,
    dry_run: bool,
) -> anyhow::Result<()> {
    let options = mas_syn2mas::MigrateOptions {
        server_name: synapse.server_name().to_owned(),
        bcrypt_version: ours
            .passwords
            .schemes
            .iter()
            .find(|s| s.algorithm == PasswordAlgorithm::Bcrypt)
            .map(|s| s.version),
        providers: ours
            .upstream_oauth2
            .providers
            .iter()
            .filter_map(|p| Some((p.synapse_idp_id.clone()?, p.id)))
            .collect::<HashMap<_, _>>(),
        skip_invalid_localparts: source.skip_invalid_localparts,
        // Stored to the microsecond, as the repositories store times.
        now: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
    };
    let started = Instant::now();
    let mut writer: Box<dyn BulkWriter> = Box::new(target.bulk_writer().await?);
    let mut progress = Bars::default();
    // Ctrl-C drops the transaction, which rolls it back: say so rather than die silently.
    let outcome = tokio::select! {
        outcome = mas_syn2mas::migrate(db, writer.as_mut(), &options, &mut progress) => outcome,
        _ = tokio::signal::ctrl_c() => {
            progress.abandon();
            writer.rollback().await?;
            anyhow::bail!("interrupted: nothing was written, this service's database is as it was");
        }
    };
    let tallies = match outcome {
        Ok(tallies) => tallies,
        Err(error) => {
            progress.abandon();
            writer.rollback().await?;
            return Err(anyhow::Error::new(error).context(
                "the move stopped: nothing was written, this service's database is as it was",
            ));
        }
    };
    if dry_run {
        writer.rollback().await?;
    } else {
        writer
            .commit()
            .await
            .context("the move could not be committed: nothing was written")?;
    }
    print_summary(&tallies, started.elapsed());
    if dry_run {
        println!("dry run: everything was rolled back, nothing was written");
    } else {
        println!(
            "moved: switch Synapse to this service (matrix_authentication_service) and start both"
        );
    }
    Ok(())
}

/// The table printed at the end.
fn print_summary(tallies: &[Tally], elapsed: Duration) {
    println!(
        "{:<16} {:>10} {:>10} {:>9}",
        "", "moved", "left out", "seconds"
    );
    for tally in tallies {
        println!(
            "{:<16} {:>10} {:>10} {:>9.1}",
            tally.what,
            tally.moved,
            tally.skipped_total(),
            tally.elapsed.as_secs_f64()
        );
        for (why, count) in &tally.skipped {
            println!("  left out: {count} ({why})");
        }
    }
    println!("total time: {:.1}s", elapsed.as_secs_f64());
}

/// One progress bar per table, on the terminal only (hidden when output is piped).
#[derive(Default)]
struct Bars {
    current: Option<ProgressBar>,
}

impl Bars {
    fn abandon(&mut self) {
        if let Some(bar) = self.current.take() {
            bar.abandon();
        }
    }
}

impl mas_syn2mas::Progress for Bars {
    fn start(&mut self, table: &'static str, total: u64) {
        let bar = if total > 0 {
            ProgressBar::new(total)
        } else {
            ProgressBar::no_length()
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        let template = if total > 0 {
            "{prefix:>15} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)"
        } else {
            "{prefix:>15} {pos} ({per_sec})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(table);
        self.current = Some(bar);
    }

    fn advance(&mut self, rows: u64) {
        if let Some(bar) = &self.current {
            bar.inc(rows);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.current.take() {
            bar.finish();
        }
    }
}
