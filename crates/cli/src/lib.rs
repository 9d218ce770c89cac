//! The `mas-cli` and `mas-server` command trees, and the wiring of concrete parts:
//! this is the only crate that picks implementations.

mod commands;
mod database;
mod email;
mod embedded;
mod homeserver;
mod oauth;
mod policy;
mod serve;
mod sync;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `mas-cli`: administration of the Matrix authentication service.
#[derive(Debug, Parser)]
#[command(
    name = "mas-cli",
    version,
    about = "Administer the Matrix authentication service"
)]
pub struct CliOptions {
    /// Configuration file; repeat to merge several (later files win, lists concatenate).
    #[arg(short, long = "config", global = true, value_name = "FILE")]
    config: Vec<PathBuf>,
    /// How log lines on standard error are written.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "MAS_LOG_FORMAT",
        default_value_t
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, print, generate or sync the configuration.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Manage the database schema.
    #[command(subcommand)]
    Database(commands::database::DatabaseCommand),
    /// Manage users.
    #[command(subcommand)]
    Manage(commands::manage::ManageCommand),
    /// Run the service (as `mas-server` does).
    Server(serve::ServerArgs),
    /// Run only the background job worker (for a `mas-server --no-worker` deployment).
    Worker,
    /// Check the configuration against the running homeserver and say what to fix.
    Doctor(commands::doctor::DoctorArgs),
    /// Move an existing Synapse's accounts here: check what stands in the way, then
    /// migrate.
    #[command(subcommand)]
    Syn2mas(commands::syn2mas::Syn2masCommand),
}

impl Command {
    /// Whether the command reads a configuration it was not told about. `server` has
    /// its own fallback (it creates the embedded default), `config generate` reads none.
    fn reads_config(&self) -> bool {
        !matches!(
            self,
            Self::Server(_) | Self::Config(commands::config::ConfigCommand::Generate { .. })
        )
    }
}

/// `mas-server`: runs the service.
#[derive(Debug, Parser)]
#[command(
    name = "mas-server",
    version,
    about = "Run the Matrix authentication service"
)]
pub struct ServerOptions {
    /// Configuration file; repeat to merge several. Without one (and without
    /// `MAS_CONFIG`), runs on the embedded default in `./mas-data/`.
    #[arg(short, long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// How log lines on standard error are written.
    #[arg(long, value_enum, env = "MAS_LOG_FORMAT", default_value_t)]
    log_format: LogFormat,
    #[command(flatten)]
    server: serve::ServerArgs,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event (coloured on a terminal).
    #[default]
    Text,
    /// For log collectors: one JSON object per line.
    Json,
}

/// The format chosen on the command line, read when logging starts.
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// The configuration files named by `-c` flags, else by `MAS_CONFIG`.
fn config_files(flags: &[PathBuf]) -> Vec<PathBuf> {
    mas_config::config_paths(flags, std::env::var("MAS_CONFIG").ok().as_deref())
}

/// Entry point of the `mas-cli` binary.
#[must_use]
pub fn mas_cli_main() -> ExitCode {
    let options = CliOptions::parse();
    let _ = LOG_FORMAT.set(options.log_format);
    let mut files = config_files(&options.config);
    if files.is_empty()
        && options.command.reads_config()
        && let Some(path) = embedded::existing_config()
    {
        // The embedded default's file, as `mas-server` would use it: printed, so the
        // administrator knows which secrets and database the command acts on.
        eprintln!("using ./{}", path.display());
        files.push(path);
    }
    let result = match options.command {
        Command::Config(command) => command.run(&files),
        Command::Database(command) => command.run(&files),
        Command::Manage(command) => command.run(&files),
        Command::Server(args) => serve::run(&files, &args),
        Command::Worker => serve::run_worker(&files),
        Command::Syn2mas(command) => command.run(&files),
        Command::Doctor(args) => mas_config::load(&files)
            .map_err(anyhow::Error::from)
            .and_then(|config| commands::doctor::run(&config, &args)),
    };
    report(result)
}

/// Entry point of the `mas-server` binary.
#[must_use]
pub fn mas_server_main() -> ExitCode {
    let options = ServerOptions::parse();
    let _ = LOG_FORMAT.set(options.log_format);
    report(serve::run(&config_files(&options.config), &options.server))
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an admin command's async part on a small runtime, with logging.
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    init_logging();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?
        .block_on(future)
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`), as text or JSON
/// (`--log-format`).
fn init_logging() {
    init_logging_with(None);
}

/// As [`init_logging`], and feeds the service's spans to the trace exporter when there
/// is one: its own spans (requests, handlers, database and homeserver calls), whatever
/// `RUST_LOG` shows.
fn init_logging_with(traces: Option<telemetry::TraceLayer>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sea_orm_migration=warn,sqlx=warn")
    });
    let _ = match traces {
        // One global filter: per-layer filters cost every event and span some work,
        // which the hot paths feel (the introspection benchmark lost 7% with them).
        None => tracing_subscriber::registry()
            .with(filter)
            .with(fmt_layer())
            .try_init(),
        Some(traces) => {
            // The request span is at `debug` (logs show requests only when asked to).
            let spans = tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target("mas_handlers", tracing::Level::DEBUG)
                .with_target("mas_storage_sql", tracing::Level::INFO)
                .with_target("mas_oauth_core", tracing::Level::INFO)
                .with_target("mas_matrix", tracing::Level::INFO)
                .with_target("mas_tasks", tracing::Level::INFO);
            tracing_subscriber::registry()
                .with(traces.with_filter(spans))
                .with(fmt_layer().with_filter(filter))
                .try_init()
        }
    };
}

/// The log lines on standard error, as text or JSON (`--log-format`).
fn fmt_layer<S>() -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match LOG_FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        // The event's fields at the top level beside `timestamp`, `level` and
        // `target`; the spans it happened in under `spans`.
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
    }
}
