//! `mas-bench`: starts a release `mas-server` on SQLite or PostgreSQL, loads it with `wrk`
//! from a second process on loopback, and prints requests/s, p50 and p99 beside the
//! ceilings measured in the same run, before and after each load: a trivial hyper
//! handler for introspection, and the argon2id ceiling (every core hashing for 3 s) for
//! login. Figures, not pass/fail: the numbers go in docs/benchmarks.md.
//!
//! ```text
//! cargo build --release --bin mas-server --bin mas-bench
//! target/release/mas-bench [all|introspection|compat-login|web-login|mixed|refresh|startup] [--postgres] [--seconds N] [--tokens N]
//! target/release/mas-bench faults --postgres
//! target/release/mas-bench syn2mas [--postgres] [--users N]   # moving a Synapse
//! ```

mod chains;
mod faults;
mod refresh;
mod syn2mas;
mod web_login;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mas_data_model::TokenType;
use mas_oauth_core::passwords::{Algorithm, PasswordManager, Scheme};
use mas_storage::{RepositoryFactory, SystemClock};
use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};

/// The shared secret the bench's homeserver would use.
const SECRET: &str = "bench-homeserver-secret-0123456789";
const PASSWORD: &str = "bench password that is long enough";
/// Users logging in during the login bench (spread so no one account is hot).
const USERS: usize = 32;
/// Distinct compatibility tokens introspected, unless `--tokens` says otherwise.
const TOKENS: usize = 2000;

struct Options {
    what: String,
    /// Run the server with the Prometheus metrics exporter on.
    metrics: bool,
    /// For `syn2mas`: Synapse's users to move, the `mas-cli` to run, Synapse's Python.
    users: usize,
    cli: PathBuf,
    synapse_python: PathBuf,
    postgres: bool,
    seconds: u32,
    server: PathBuf,
    tokens: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut what = "all".to_owned();
    let mut postgres = false;
    let mut metrics = false;
    let mut seconds = 10;
    let mut tokens = TOKENS;
    let mut server = std::env::current_exe()?.with_file_name("mas-server");
    let mut cli = std::env::current_exe()?.with_file_name("mas-cli");
    let mut users = 100_000;
    let mut synapse_python = PathBuf::from(
        std::env::var("SYNAPSE_PYTHON")
            .unwrap_or_else(|_| "/var/tmp/mas-synapse/modern/bin/python".to_owned()),
    );
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--postgres" => postgres = true,
            "--metrics" => metrics = true,
            "--seconds" => {
                seconds = args
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds needs a number")?;
            }
            "--tokens" => {
                tokens = args
                    .next()
                    .context("--tokens needs a number")?
                    .parse()
                    .context("--tokens needs a number")?;
            }
            "--server" => server = args.next().context("--server needs a path")?.into(),
            "--cli" => cli = args.next().context("--cli needs a path")?.into(),
            "--synapse-python" => {
                synapse_python = args.next().context("--synapse-python needs a path")?.into();
            }
            "--users" => {
                users = args
                    .next()
                    .context("--users needs a number")?
                    .parse()
                    .context("--users needs a number")?;
            }
            "all" | "introspection" | "compat-login" | "web-login" | "mixed" | "refresh"
            | "startup" | "faults" | "syn2mas" => {
                what = arg;
            }
            other => bail!(
                "unknown argument `{other}`; usage: mas-bench [all|introspection|compat-login|web-login|mixed|refresh|startup|faults|syn2mas] [--postgres] [--metrics] [--seconds N] [--tokens N] [--server PATH] [--cli PATH] [--users N] [--synapse-python PATH]"
            ),
        }
    }
    if what == "faults" && !postgres {
        bail!("faults plays a PostgreSQL outage: run it with --postgres");
    }
    if what == "syn2mas" && !cli.exists() {
        bail!(
            "no mas-cli at {}: run `cargo build --release --bin mas-cli` first, or pass --cli",
            cli.display()
        );
    }
    if what != "syn2mas" && !server.exists() {
        bail!(
            "no mas-server at {}: run `cargo build --release --bin mas-server` first, or pass --server",
            server.display()
        );
    }
    Ok(Options {
        what,
        metrics,
        users,
        cli,
        synapse_python,
        postgres,
        seconds,
        server,
        tokens: tokens.max(USERS),
    })
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    let uses_wrk = matches!(
        options.what.as_str(),
        "all" | "introspection" | "compat-login" | "web-login" | "mixed"
    );
    if uses_wrk && Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is needed as the load generator: apt-get install wrk");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&options))
}

/// A started `mas-server` and what it needs.
struct Service {
    child: Child,
    dir: tempfile::TempDir,
    base: String,
    port: u16,
    /// The database, reached directly (the server may reach it through a proxy).
    database: String,
    _postgres: Option<mas_testing::TestPostgres>,
}

impl Service {
    /// Where the server listens.
    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn server_command(server: &Path, dir: &Path, port: u16, database: &str) -> Command {
    let mut command = Command::new(server);
    command
        .current_dir(dir)
        .args(["-c", "config.yaml"])
        .env_remove("MAS_CONFIG")
        .env("RUST_LOG", "warn")
        .env("MAS_HTTP__PUBLIC_BASE", format!("http://127.0.0.1:{port}/"))
        .env(
            "MAS_HTTP__LISTENERS",
            format!(
                "[{{name=\"web\",resources=[{{name=\"health\"}},{{name=\"discovery\"}},{{name=\"oauth\"}},{{name=\"compat\"}},{{name=\"human\"}}],binds=[{{address=\"127.0.0.1:{port}\"}}]}}]"
            ),
        )
        .env("MAS_DATABASE__URI", database)
        .env("MAS_DATABASE__MAX_CONNECTIONS", "16")
        // The login bench measures this service, not a homeserver: devices are skipped.
        .env("MAS_MATRIX__KIND", "synapse_read_only")
        .env("MAS_MATRIX__SECRET", SECRET)
        .env("MAS_RATE_LIMITING__LOGIN__PER_IP__BURST", "100000000")
        .env("MAS_RATE_LIMITING__LOGIN__PER_IP__PER_SECOND", "100000")
        .env("MAS_RATE_LIMITING__LOGIN__PER_ACCOUNT__BURST", "100000000")
        .env("MAS_RATE_LIMITING__LOGIN__PER_ACCOUNT__PER_SECOND", "100000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// Waits for `/health`; the time it took.
async fn healthy(base: &str, child: &mut Child, within: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let http = reqwest::Client::new();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("mas-server exited with {status}");
        }
        if let Ok(response) = http.get(format!("{base}health")).send().await
            && response.status() == 200
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            bail!("mas-server did not answer /health within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Starts the server on a fresh database, reaching PostgreSQL through `proxy` if given.
async fn start_service(options: &Options, proxy: Option<SocketAddr>) -> anyhow::Result<Service> {
    let dir = tempfile::tempdir()?;
    let config = mas_config::generate()?;
    std::fs::write(dir.path().join("config.yaml"), config.to_yaml(true)?)?;
    let (database, postgres) = if options.postgres {
        let pg = mas_testing::TestPostgres::create()
            .await
            .context("no PostgreSQL reachable (MAS_TEST_DATABASE_URL)")?;
        (pg.url().to_owned(), Some(pg))
    } else {
        (
            format!("sqlite://{}", dir.path().join("mas.db").display()),
            None,
        )
    };
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}/");
    let server_database = match proxy {
        Some(proxy) => faults::through(&database, proxy)?,
        None => database.clone(),
    };
    let mut command = server_command(&options.server, dir.path(), port, &server_database);
    if options.metrics {
        // Measured requests, and /metrics served beside them.
        command.env("MAS_TELEMETRY__METRICS__EXPORTER", "prometheus").env(
            "MAS_HTTP__LISTENERS",
            format!(
                "[{{name=\"web\",resources=[{{name=\"health\"}},{{name=\"discovery\"}},{{name=\"oauth\"}},{{name=\"compat\"}},{{name=\"human\"}},{{name=\"prometheus\"}}],binds=[{{address=\"127.0.0.1:{port}\"}}]}}]"
            ),
        );
    }
    let mut child = command.spawn()?;
    healthy(&base, &mut child, Duration::from_mins(1)).await?;
    Ok(Service {
        child,
        dir,
        base,
        port,
        database,
        _postgres: postgres,
    })
}

/// A small pool for writing the benches' rows straight to the database.
async fn seeding_factory(database: &str) -> anyhow::Result<SqlRepositoryFactory> {
    Ok(SqlRepositoryFactory::connect(&PoolOptions {
        uri: database.to_owned(),
        max_connections: 2,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
    })
    .await?)
}

/// The users and tokens the benches use, written straight to the database.
async fn seed(database: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let factory = seeding_factory(database).await?;
    let manager = default_passwords();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let (version, hash) = manager.hash([7; 16], PASSWORD)?;
    let mut repo = factory.begin().await?;
    let mut tokens = Vec::with_capacity(count);
    for i in 0..USERS {
        let user = repo
            .user()
            .add(&mut rng, &SystemClock, &format!("user{i}"))
            .await?;
        repo.user_password()
            .add(&mut rng, &SystemClock, &user, version, hash.clone(), None)
            .await?;
        for j in 0..count / USERS {
            let session = repo
                .compat_session()
                .add(
                    &mut rng,
                    &SystemClock,
                    &user,
                    Some(format!("DEV{i}X{j}")),
                    None,
                    false,
                    None,
                )
                .await?;
            let token = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatAccessToken);
            repo.compat_access_token()
                .add(&mut rng, &SystemClock, &session, &token, None)
                .await?;
            tokens.push(token);
        }
    }
    repo.save().await?;
    factory.close().await?;
    Ok(tokens)
}

/// The scheme `mas-cli config generate` writes: argon2id at MAS's parameters.
fn default_passwords() -> PasswordManager {
    PasswordManager::new(
        vec![Scheme {
            version: 1,
            algorithm: Algorithm::Argon2id,
            secret: None,
            unicode_normalization: false,
        }],
        0,
    )
}

/// What `wrk` measured.
#[derive(Debug, Default)]
struct Load {
    rps: f64,
    requests: u64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_latency(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(output: &str) -> Load {
    let mut load = Load::default();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => load.rps = n.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => load.requests = n.parse().unwrap_or(0),
            ["50%", v] => load.p50_ms = parse_latency(v).unwrap_or(f64::NAN),
            ["99%", v] => load.p99_ms = parse_latency(v).unwrap_or(f64::NAN),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors = n.parse().unwrap_or(0),
            _ if line.contains("Socket errors") => {
                load.errors += line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    load
}

/// Runs `wrk` with a Lua script against `url`.
fn wrk(url: &str, connections: u32, seconds: u32, script: &Path) -> anyhow::Result<Load> {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "10s",
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(parse_wrk(&text))
}

fn write_script(dir: &Path, name: &str, body: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::File::create(&path)?.write_all(body.as_bytes())?;
    Ok(path)
}

/// The hyper ceiling: the cheapest possible answer, served by this process.
async fn trivial_server() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(hyper::body::Bytes::from_static(
                            b"{\"active\":false}",
                        )),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

fn print_load(name: &str, load: &Load) {
    if load.errors > 0 {
        println!(
            "WARNING: {} failed requests in the run below: its figures are not valid",
            load.errors
        );
    }
    println!(
        "{name:<32} {:>9.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms   errors {}",
        load.rps, load.p50_ms, load.p99_ms, load.errors
    );
}

/// Resident memory of a process: (current, peak) in MiB.
fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn introspection(
    options: &Options,
    service: &Service,
    tokens: &[String],
) -> anyhow::Result<()> {
    // Check the path answers what the homeserver needs before loading it.
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}oauth2/introspect", service.base))
        .bearer_auth(SECRET)
        .form(&[("token", tokens[0].as_str())])
        .send()
        .await?
        .json()
        .await?;
    if answer["active"] != true {
        bail!("a seeded token does not introspect as active: {answer}");
    }
    let list: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    let script = write_script(
        service.dir.path(),
        "introspect.lua",
        &format!(
            "local tokens = {{{}}}
local i = 0
wrk.method = \"POST\"
wrk.headers[\"Authorization\"] = \"Bearer {SECRET}\"
wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"
request = function()
  i = i % #tokens + 1
  return wrk.format(nil, \"/oauth2/introspect\", nil, \"token=\" .. tokens[i])
end
",
            list.join(",")
        ),
    )?;
    // Steady state is what the loads below measure, so every token is asked about once
    // first: these are the answers read from the database (and then kept).
    let first = first_pass(&service.base, tokens, 64).await?;
    let ceiling_address = trivial_server().await?;
    let ceiling_url = format!("http://{ceiling_address}/oauth2/introspect");
    // The ceiling before and after the load, compared with their mean, as for login:
    // the host's speed drifts between runs of a few seconds.
    // CPU per answer, of the service and of the trivial handler (this process, which
    // does nothing else meanwhile): unlike the rates, it hardly moves with the host's
    // speed from one run to the next, so it tells two builds apart.
    let ticks = clock_ticks();
    let server = service.child.id();
    let own = std::process::id();
    let cpu = |pid| process_cpu_ms(pid, ticks);
    let trivial_start = cpu(own);
    let before = wrk(&ceiling_url, 64, options.seconds, &script)?;
    let trivial_cpu = cpu(own) - trivial_start;
    let server_start = cpu(server);
    let load = wrk(&service.base, 64, options.seconds, &script)?;
    let server_cpu = cpu(server) - server_start;
    let after = wrk(&ceiling_url, 64, options.seconds, &script)?;
    println!(
        "\n## Homeserver introspection of compat tokens, c=64, {} s",
        options.seconds
    );
    print_load("first ask of each token (reads)", &first);
    print_load("trivial hyper handler, before", &before);
    print_load("POST /oauth2/introspect", &load);
    print_load("trivial hyper handler, after", &after);
    println!(
        "ratio to the ceiling (the mean of both): {:.2}   (target >= 0.5, p99 <= 5 ms on PostgreSQL)",
        load.rps / f64::midpoint(before.rps, after.rps)
    );
    let per_request = |ms: f64, load: &Load| {
        ms * 1000.0 / f64::from(u32::try_from(load.requests.max(1)).unwrap_or(u32::MAX))
    };
    let (trivial_us, server_us) = (
        per_request(trivial_cpu, &before),
        per_request(server_cpu, &load),
    );
    println!(
        "CPU per answer: introspection {server_us:.1} us, trivial handler {trivial_us:.1} us (before); ratio {:.2}",
        trivial_us / server_us
    );
    Ok(())
}

/// Asks about each token once, `concurrency` at a time, from this process: what a
/// homeserver's first question about a token costs, read from the database.
async fn first_pass(base: &str, tokens: &[String], concurrency: usize) -> anyhow::Result<Load> {
    let http = reqwest::Client::new();
    let url = format!("{base}oauth2/introspect");
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tokens: std::sync::Arc<[String]> = tokens.into();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, url, next, tokens) = (http.clone(), url.clone(), next.clone(), tokens.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while let Some(token) =
                tokens.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            {
                let asked = Instant::now();
                let answer = http
                    .post(&url)
                    .bearer_auth(SECRET)
                    .form(&[("token", token.as_str())])
                    .send()
                    .await;
                let active = match answer {
                    Ok(response) => response
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|a| a["active"] == true),
                    Err(_) => false,
                };
                latencies.push(asked.elapsed());
                errors += u64::from(!active);
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::with_capacity(tokens.len());
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (mut some, failed) = done?;
        latencies.append(&mut some);
        errors += failed;
    }
    let took = start.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies
            .get(index)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    #[allow(clippy::cast_precision_loss)]
    Ok(Load {
        rps: latencies.len() as f64 / took,
        requests: latencies.len() as u64,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        errors,
    })
}

/// The argon2id ceiling: hashes per second with every core hashing for `span` (as under
/// load, they share memory bandwidth), and the time of one hash.
fn argon2_ceiling(cores: usize, span: Duration) -> anyhow::Result<(f64, Duration)> {
    let manager = std::sync::Arc::new(default_passwords());
    let (version, hash) = manager.hash([1; 16], PASSWORD)?;
    // Each thread hashes once before the clock starts: the first hash on a thread grows
    // its 19 MiB of working memory, which the server's threads did long ago.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(cores + 1));
    let workers: Vec<_> = (0..cores)
        .map(|_| {
            let (manager, hash, barrier) = (manager.clone(), hash.clone(), barrier.clone());
            std::thread::spawn(move || {
                let _ = manager.verify(version, &hash, PASSWORD, [2; 16]);
                barrier.wait();
                let start = Instant::now();
                let mut done: u32 = 0;
                while start.elapsed() < span {
                    let _ = manager.verify(version, &hash, PASSWORD, [2; 16]);
                    done += 1;
                }
                (done, start.elapsed())
            })
        })
        .collect();
    barrier.wait();
    let mut ceiling = 0.0;
    let mut hashes = 0;
    let mut busy = Duration::ZERO;
    for worker in workers {
        let (done, took) = worker.join().unwrap_or((0, span));
        ceiling += f64::from(done) / took.as_secs_f64();
        hashes += done;
        busy += took;
    }
    Ok((ceiling, busy / hashes.max(1)))
}

/// CPU time spent so far, in ms: the server's hashing threads, the rest of the server,
/// and the PostgreSQL processes that serve it.
#[derive(Debug, Default, Clone)]
struct CpuTimes {
    hashing: f64,
    server: f64,
    /// Per process, so that a backend started during the load counts from zero.
    postgres: std::collections::HashMap<u32, f64>,
}

/// Time on the CPU of one task (a thread, or a single-threaded process), from the
/// scheduler's counter in nanoseconds.
fn on_cpu_ms(task: &Path) -> f64 {
    std::fs::read_to_string(task.join("schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time of a whole process in ms, the threads that exited included.
fn process_cpu_ms(pid: u32, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 14th and 15th fields of the line.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|n| n.parse::<f64>().ok())
        .sum();
    ticks * 1000.0 / ticks_per_second
}

fn cpu_times(server: u32, postgres: &[u32], ticks_per_second: f64) -> CpuTimes {
    let mut hashing = 0.0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{server}/task")) {
        for task in tasks.flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            // The hashing threads live as long as the server: their own counters are
            // exact. The rest is the whole process minus them.
            if name.starts_with("password-hash") {
                hashing += on_cpu_ms(&path);
            }
        }
    }
    CpuTimes {
        hashing,
        server: process_cpu_ms(server, ticks_per_second) - hashing,
        postgres: postgres
            .iter()
            .map(|&pid| (pid, on_cpu_ms(Path::new(&format!("/proc/{pid}")))))
            .collect(),
    }
}

/// The PostgreSQL processes serving the bench's database, and those writing WAL and
/// checkpoints for every database; empty when they cannot be seen from here (SQLite,
/// or a server in another PID namespace).
async fn postgres_processes(service: &Service) -> Vec<u32> {
    use sea_orm::ConnectionTrait;
    if !service.database.starts_with("postgres") {
        return Vec::new();
    }
    let Ok(db) = sea_orm::Database::connect(service.database.as_str()).await else {
        return Vec::new();
    };
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
        ))
        .await
        .unwrap_or_default();
    let _ = db.close().await;
    rows.iter()
        .filter_map(|row| row.try_get_by_index::<i32>(0).ok())
        .filter_map(|pid| u32::try_from(pid).ok())
        .filter(|pid| Path::new(&format!("/proc/{pid}/schedstat")).exists())
        .collect()
}

async fn compat_login(options: &Options, service: &Service) -> anyhow::Result<()> {
    let users: Vec<String> = (0..USERS).map(|i| format!("\"user{i}\"")).collect();
    let script = write_script(
        service.dir.path(),
        "login.lua",
        &format!(
            "local users = {{{}}}
local i = 0
wrk.method = \"POST\"
wrk.headers[\"Content-Type\"] = \"application/json\"
request = function()
  i = i % #users + 1
  local body = '{{\"type\":\"m.login.password\",\"identifier\":{{\"type\":\"m.id.user\",\"user\":\"' .. users[i] .. '\"}},\"password\":\"{PASSWORD}\"}}'
  return wrk.format(nil, \"/_matrix/client/v3/login\", nil, body)
end
",
            users.join(",")
        ),
    )?;
    println!("\n## Compat password login, c=16, {} s", options.seconds);
    login_load(
        options,
        service,
        "POST /_matrix/client/v3/login",
        &script,
        0.95,
    )
    .await
}

/// Password logins from `script` at c=16, against the argon2id ceiling measured before
/// and after; `target` is the ratio aimed at.
pub(crate) async fn login_load(
    options: &Options,
    service: &Service,
    label: &str,
    script: &Path,
    target: f64,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    // Measured before and after the load, which is compared with their mean: a shared
    // host's speed drifts by more than the effect being measured.
    let span = Duration::from_secs(3);
    let (before, per_hash_before) = argon2_ceiling(cores, span)?;
    let pid = service.child.id();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss(pid).0);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let ticks = clock_ticks();
    let cpu_start = cpu_times(pid, &postgres_processes(service).await, ticks);
    let load = wrk(&service.base, 16, options.seconds, script)?;
    // Backends the pool opened during the load are counted from their start.
    let postgres = postgres_processes(service).await;
    let cpu_end = cpu_times(pid, &postgres, ticks);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(f64::NAN);
    let (after, _) = rss(pid);
    let (after_rate, per_hash_after) = argon2_ceiling(cores, span)?;
    let ceiling = f64::midpoint(before, after_rate);
    println!(
        "argon2id with all {cores} cores hashing: {:.1} ms per hash before the load, {:.1} ms after; ceiling {ceiling:.1} logins/s (their mean)",
        per_hash_before.as_secs_f64() * 1000.0,
        per_hash_after.as_secs_f64() * 1000.0,
    );
    print_load(label, &load);
    println!(
        "ratio to the argon2id ceiling: {:.2}   (target >= {target}, p99 <= 250 ms)",
        load.rps / ceiling
    );
    // Failed requests did not log in (and make the run invalid, as printed above).
    let ok = load.requests.saturating_sub(load.errors).max(1);
    let logins = f64::from(u32::try_from(ok).unwrap_or(u32::MAX));
    let hashing = (cpu_end.hashing - cpu_start.hashing) / logins;
    let server = (cpu_end.server - cpu_start.server) / logins;
    let postgres = cpu_end
        .postgres
        .iter()
        .map(|(pid, end)| end - cpu_start.postgres.get(pid).copied().unwrap_or(0.0))
        .sum::<f64>()
        / logins;
    let postgres_figure = if !service.database.starts_with("postgres") {
        "none (SQLite)".to_owned()
    } else if cpu_end.postgres.is_empty() {
        "not visible from here".to_owned()
    } else {
        format!("{postgres:.2} ms")
    };
    println!(
        "CPU per login: hashing {hashing:.2} ms, rest of the server {server:.2} ms, PostgreSQL {postgres_figure}"
    );
    // What the ratio tends to on a steady host: it cannot exceed hashing's share of the
    // CPU a login takes, and unlike the ratio this share does not move with the host's
    // speed between the ceiling and the load.
    println!(
        "hashing's share of that CPU: {:.3}",
        hashing / (hashing + server + postgres)
    );
    println!("RSS under load: peak {peak:.1} MiB, after {after:.1} MiB   (target <= 150 MiB)");
    Ok(())
}

async fn startup(options: &Options, service: &mut Service) -> anyhow::Result<()> {
    // Restart on the migrated database: what an operator's restart costs.
    let _ = service.child.kill();
    let _ = service.child.wait();
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}/");
    let mut timings = Vec::new();
    for _ in 0..5 {
        let mut child =
            server_command(&options.server, service.dir.path(), port, &service.database).spawn()?;
        timings.push(healthy(&base, &mut child, Duration::from_secs(30)).await?);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (idle, _) = rss(child.id());
        println!(
            "start to /health {:>7.1} ms   idle RSS {idle:.1} MiB",
            timings.last().map_or(0.0, |t| t.as_secs_f64() * 1000.0)
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    timings.sort();
    println!(
        "median start to /health: {:.1} ms   (target <= 50 ms on SQLite; idle RSS <= 20 MiB)",
        timings[timings.len() / 2].as_secs_f64() * 1000.0
    );
    Ok(())
}

async fn run(options: &Options) -> anyhow::Result<()> {
    if options.what == "syn2mas" {
        return syn2mas::run(&syn2mas::Syn2masOptions {
            postgres: options.postgres,
            users: options.users,
            cli: options.cli.clone(),
            synapse_python: options.synapse_python.clone(),
        })
        .await;
    }
    let proxy = if options.what == "faults" {
        let target = faults::postgres_address().await?;
        Some(std::sync::Arc::new(
            mas_testing::CuttableProxy::start(target).await,
        ))
    } else {
        None
    };
    let mut service = start_service(options, proxy.as_ref().map(|p| p.address())).await?;
    println!(
        "mas-bench: {} on {}{}, {} cores, wrk from a second process on loopback",
        options.server.display(),
        if options.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if options.metrics {
            ", Prometheus metrics on"
        } else {
            ""
        },
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    );
    let tokens = seed(&service.database, options.tokens).await?;
    if matches!(options.what.as_str(), "all" | "introspection") {
        introspection(options, &service, &tokens).await?;
    }
    if matches!(options.what.as_str(), "all" | "compat-login") {
        compat_login(options, &service).await?;
    }
    if matches!(options.what.as_str(), "all" | "web-login") {
        web_login::web_login(options, &service).await?;
    }
    if matches!(options.what.as_str(), "all" | "refresh") {
        refresh::refresh(options, &service).await?;
    }
    if matches!(options.what.as_str(), "all" | "mixed") {
        web_login::mixed(options, &service).await?;
    }
    if let Some(proxy) = proxy {
        faults::faults(&service, proxy).await?;
    }
    if matches!(options.what.as_str(), "all" | "startup") {
        println!("\n## Start-up");
        startup(options, &mut service).await?;
    }
    Ok(())
}
