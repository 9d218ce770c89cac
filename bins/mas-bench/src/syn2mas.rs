//! `mas-bench syn2mas`: the move of a large Synapse. A real Synapse is started once on a
//! fresh database so the schema is Synapse's own; the bench fills it with synthetic
//! users (a bcrypt hash each), two devices and two access tokens per user, and an
//! email address per user; then `mas-cli syn2mas migrate` (release build) moves it
//! into a fresh database here, and the bench prints the wall time and the command's
//! peak resident memory beside the targets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::sqlx::{self, Connection, PgConnection, SqliteConnection};

/// The targets of the issue that asked for this: seconds (PostgreSQL, SQLite) and MiB.
const TARGET_SECONDS_POSTGRES: f64 = 60.0;
const TARGET_SECONDS_SQLITE: f64 = 90.0;
const TARGET_MIB: f64 = 200.0;
const SERVER: &str = "bench.example";
/// Rows per INSERT while filling Synapse's database.
const FILL_BATCH: usize = 1000;

/// Where the tools are.
pub(crate) struct Syn2masOptions {
    pub(crate) postgres: bool,
    pub(crate) users: usize,
    pub(crate) cli: PathBuf,
    pub(crate) synapse_python: PathBuf,
}

pub(crate) async fn run(options: &Syn2masOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let homeserver = dir.path().join("homeserver.yaml");
    let status = Command::new(&options.synapse_python)
        .current_dir(dir.path())
        .args([
            "-m",
            "synapse.app.homeserver",
            "--server-name",
            SERVER,
            "--config-path",
        ])
        .arg(&homeserver)
        .args(["--generate-config", "--report-stats=no"])
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run Synapse's {}", options.synapse_python.display()))?;
    if !status.success() {
        bail!("Synapse could not generate its configuration");
    }
    let mut synapse_files = vec![homeserver];
    let (synapse_pg, mas_pg) = if options.postgres {
        let synapse = mas_testing::TestPostgres::create()
            .await
            .context("no PostgreSQL reachable (MAS_TEST_DATABASE_URL)")?;
        let mas = mas_testing::TestPostgres::create()
            .await
            .context("no PostgreSQL reachable (MAS_TEST_DATABASE_URL)")?;
        let file = synapse_database_file(dir.path(), synapse.url())?;
        synapse_files.push(file);
        (Some(synapse), Some(mas))
    } else {
        (None, None)
    };
    let schema_took = make_schema(options, dir.path(), &synapse_files).await?;
    let synapse_db = match &synapse_pg {
        Some(pg) => pg.url().to_owned(),
        None => format!("sqlite://{}", dir.path().join("homeserver.db").display()),
    };
    let filled = Instant::now();
    fill(&synapse_db, options.users).await?;
    println!(
        "syn2mas: Synapse's schema from a real Synapse in {:.1}s; {} users, {} devices, {} access tokens, {} emails written in {:.1}s",
        schema_took.as_secs_f64(),
        options.users,
        options.users * 2,
        options.users * 2,
        options.users,
        filled.elapsed().as_secs_f64()
    );

    let mas_db = match &mas_pg {
        Some(pg) => pg.url().to_owned(),
        None => format!("sqlite://{}", dir.path().join("mas.db").display()),
    };
    let config = dir.path().join("mas.yaml");
    let mut generate = cli(options, dir.path(), &mas_db);
    generate
        .args(["config", "generate", "--output"])
        .arg(&config);
    for file in &synapse_files {
        generate.arg("--synapse-config").arg(file);
    }
    run_quietly(&mut generate, "config generate --synapse-config")?;
    run_quietly(
        cli(options, dir.path(), &mas_db).args(["-c", "mas.yaml", "database", "migrate"]),
        "database migrate",
    )?;

    let (took, peak_mib, stdout) = measure(options, dir.path(), &synapse_files, &mas_db).await?;
    let moved = count_users(&mas_db).await?;
    if moved != options.users {
        bail!("{moved} users arrived, not {}", options.users);
    }
    for line in stdout.lines() {
        println!("  {line}");
    }
    let (route, target) = if options.postgres {
        ("PostgreSQL to PostgreSQL", TARGET_SECONDS_POSTGRES)
    } else {
        ("SQLite to SQLite", TARGET_SECONDS_SQLITE)
    };
    println!(
        "syn2mas migrate, {route}: {took:.1}s (target {target:.0}s, ratio {:.2}); peak RSS {peak_mib:.0} MiB (target {TARGET_MIB:.0} MiB, ratio {:.2}); {:.0} rows/s",
        took / target,
        peak_mib / TARGET_MIB,
        // Users, passwords, emails, sessions and access tokens.
        f64::from(u32::try_from(options.users * 7).unwrap_or(u32::MAX)) / took
    );
    drop((synapse_pg, mas_pg));
    Ok(())
}

/// Runs `syn2mas migrate`: its wall time in seconds, its peak resident memory in MiB
/// (the kernel's high-water mark, read every 20 ms), and what it printed.
async fn measure(
    options: &Syn2masOptions,
    dir: &Path,
    synapse_files: &[PathBuf],
    mas_db: &str,
) -> anyhow::Result<(f64, f64, String)> {
    let mut migrate = cli(options, dir, mas_db);
    migrate.args(["-c", "mas.yaml", "syn2mas", "migrate"]);
    for file in synapse_files {
        migrate.arg("--synapse-config").arg(file);
    }
    let started = Instant::now();
    let mut child = migrate
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut peak_mib: f64 = 0.0;
    while child.try_wait()?.is_none() {
        let (_, hwm) = crate::rss(child.id());
        if hwm.is_finite() {
            peak_mib = peak_mib.max(hwm);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let output = child.wait_with_output()?;
    let took = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "syn2mas migrate failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((took, peak_mib, stdout.into_owned()))
}

/// The `database` section that points Synapse at the PostgreSQL database `url`.
fn synapse_database_file(dir: &Path, url: &str) -> anyhow::Result<PathBuf> {
    let url = url::Url::parse(url)?;
    let file = dir.join("database.yaml");
    std::fs::write(
        &file,
        format!(
            "database:\n  name: psycopg2\n  allow_unsafe_locale: true\n  args:\n    user: {}\n    host: {}\n    port: {}\n    database: {}\n",
            if url.username().is_empty() {
                "postgres"
            } else {
                url.username()
            },
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432),
            url.path().trim_start_matches('/'),
        ),
    )?;
    Ok(file)
}

fn cli(options: &Syn2masOptions, dir: &Path, database: &str) -> Command {
    let mut command = Command::new(&options.cli);
    command
        .current_dir(dir)
        .env_remove("MAS_CONFIG")
        .env("MAS_DATABASE__URI", database)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run_quietly(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command.output()?;
    if !output.status.success() {
        bail!(
            "mas-cli {what} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Starts Synapse on its configuration until it answers `/health` (its schema is then
/// in place), and stops it.
async fn make_schema(
    options: &Syn2masOptions,
    dir: &Path,
    files: &[PathBuf],
) -> anyhow::Result<Duration> {
    let port = crate::free_port()?;
    let listener = dir.join("listener.yaml");
    std::fs::write(
        &listener,
        format!(
            "listeners:\n  - port: {port}\n    bind_addresses: ['127.0.0.1']\n    type: http\n    resources: [{{names: [client]}}]\n"
        ),
    )?;
    let mut command = Command::new(&options.synapse_python);
    command
        .current_dir(dir)
        .args(["-m", "synapse.app.homeserver"]);
    for file in files.iter().chain([&listener]) {
        command.arg("-c").arg(file);
    }
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let http = reqwest::Client::new();
    let outcome = loop {
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!(
                "Synapse exited with {status} (see {}/homeserver.log)",
                dir.display()
            ));
        }
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            && response.status() == 200
        {
            break Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_mins(2) {
            break Err(anyhow::anyhow!("Synapse did not answer /health in 120 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// Synthetic rows in Synapse's tables, in one transaction.
async fn fill(database: &str, users: usize) -> anyhow::Result<()> {
    let mut db = Db::connect(database).await?;
    db.execute("BEGIN".to_owned()).await?;
    // One real-looking bcrypt hash for everybody: the move copies hashes, never checks them.
    let hash = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    let now_ms: i64 = 1_765_000_000_000;
    let mut sql = String::new();
    for start in (0..users).step_by(FILL_BATCH) {
        let end = (start + FILL_BATCH).min(users);
        insert(
            &mut sql,
            "users (name, password_hash, creation_ts, admin, is_guest, deactivated)",
            start..end,
            |out, i| {
                let _ = write!(
                    out,
                    "('@user{i}:{SERVER}', '{hash}', {}, 0, 0, 0)",
                    1_600_000_000 + i
                );
            },
        );
        db.execute(sql.clone()).await?;
        insert(
            &mut sql,
            "user_threepids (user_id, medium, address, validated_at, added_at)",
            start..end,
            |out, i| {
                let _ = write!(
                    out,
                    "('@user{i}:{SERVER}', 'email', 'user{i}@{SERVER}', {now_ms}, {now_ms})"
                );
            },
        );
        db.execute(sql.clone()).await?;
        insert(
            &mut sql,
            "devices (user_id, device_id, display_name, last_seen, ip, user_agent)",
            start * 2..end * 2,
            |out, d| {
                let i = d / 2;
                let _ = write!(
                    out,
                    "('@user{i}:{SERVER}', 'DEVICE{d}', 'Phone {d}', {now_ms}, '198.51.100.{}', 'Element/1.{d}')",
                    d % 250
                );
            },
        );
        db.execute(sql.clone()).await?;
        insert(
            &mut sql,
            "access_tokens (id, user_id, device_id, token, last_validated)",
            start * 2..end * 2,
            |out, d| {
                let i = d / 2;
                let _ = write!(
                    out,
                    "({d}, '@user{i}:{SERVER}', 'DEVICE{d}', 'syt_dXNlcn{d:07}_{:020x}_0{d:05}', {now_ms})",
                    (d as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                );
            },
        );
        db.execute(sql.clone()).await?;
    }
    db.execute("COMMIT".to_owned()).await?;
    Ok(())
}

/// A connection to either database, for plain SQL.
enum Db {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Db {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        Ok(if url.starts_with("sqlite:") {
            Self::Sqlite(SqliteConnection::connect(url).await?)
        } else {
            Self::Postgres(PgConnection::connect(url).await?)
        })
    }

    async fn execute(&mut self, sql: String) -> anyhow::Result<()> {
        let query = sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
        match self {
            Self::Postgres(c) => query.execute(c).await.map(drop)?,
            Self::Sqlite(c) => query.execute(c).await.map(drop)?,
        }
        Ok(())
    }

    async fn count(&mut self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(match self {
            Self::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
            Self::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
        })
    }
}

/// `INSERT INTO target VALUES (row), ...` for the rows `range`.
fn insert(
    sql: &mut String,
    target: &str,
    range: std::ops::Range<usize>,
    mut row: impl FnMut(&mut String, usize),
) {
    sql.clear();
    let _ = write!(sql, "INSERT INTO {target} VALUES ");
    for (n, i) in range.enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        row(sql, i);
    }
}

async fn count_users(database: &str) -> anyhow::Result<usize> {
    let count = Db::connect(database)
        .await?
        .count("SELECT COUNT(*) FROM users")
        .await?;
    Ok(usize::try_from(count)?)
}
