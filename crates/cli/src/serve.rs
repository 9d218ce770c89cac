//! `mas-server` / `mas-cli server`: load the configuration, open the database, serve
//! every listener, and shut down gracefully on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mas_config::sections::{BindConfig, ListenerConfig, Resource as ConfigResource};
use mas_handlers::{AppState, Resource};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

mod connections;

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Flags of the `server` command.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct ServerArgs {
    /// Do not apply pending database migrations at start.
    #[arg(long)]
    no_migrate: bool,
    /// Do not store the configured clients in the database at start.
    #[arg(long)]
    no_sync: bool,
    /// Do not run the background job worker in this process.
    #[arg(long)]
    no_worker: bool,
}

/// Runs the service until a shutdown signal.
pub(crate) fn run(files: &[PathBuf], args: &ServerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The configuration first: it says where the traces go, which logging must know.
    let loaded = if files.is_empty() {
        crate::embedded::ensure_config()
            .and_then(|(path, created)| Ok((mas_config::load(&[&path])?, Some((path, created)))))
    } else {
        mas_config::load(files)
            .map(|config| (config, None))
            .map_err(Into::into)
    };
    let (config, embedded) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            crate::init_logging();
            return Err(error);
        }
    };
    let traces = start_logging(&config, &runtime)?;
    let result = runtime.block_on(serve(config, embedded, args));
    if let Some(traces) = traces {
        // Sends what is left while the runtime its requests run on is still up.
        traces.shutdown();
    }
    result
}

/// Starts logging, feeding the trace exporter the configuration asks for; the caller
/// shuts the exporter down after its work, while `runtime` (which runs the exporter's
/// requests) is still up.
fn start_logging(
    config: &mas_config::RootConfig,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Option<crate::telemetry::Traces>> {
    let (traces, layer) = crate::telemetry::traces(config, runtime.handle().clone())?.unzip();
    crate::init_logging_with(layer);
    Ok(traces)
}

/// `mas-cli worker`: runs the homeserver jobs until a shutdown signal.
pub(crate) fn run_worker(files: &[PathBuf]) -> anyhow::Result<()> {
    let config = match mas_config::load(files) {
        Ok(config) => config,
        Err(error) => {
            crate::init_logging();
            return Err(error.into());
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let traces = start_logging(&config, &runtime)?;
    let result = runtime.block_on(async {
        let db = crate::database::open(&config, false).await?;
        crate::database::require_current_schema(&db).await?;
        let homeserver = crate::homeserver::connect(&config)?;
        let mail = email_jobs(&config, &db)?;
        let stop_signal = shutdown_signal();
        let (stop_tx, stop_rx) = watch::channel(false);
        let running = tokio::spawn(worker(&db, &homeserver, mail, stop_rx).await);
        stop_signal.await;
        let _ = stop_tx.send(true);
        if let Err(error) = running.await {
            tracing::warn!(%error, "job worker failed");
        }
        db.close().await.context("cannot close the database pool")?;
        Ok(())
    });
    if let Some(traces) = traces {
        traces.shutdown();
    }
    result
}

async fn serve(
    config: mas_config::RootConfig,
    embedded: Option<(PathBuf, bool)>,
    args: &ServerArgs,
) -> anyhow::Result<()> {
    warn_not_honoured(&config);
    let db = crate::database::open(&config, !args.no_migrate).await?;
    crate::database::require_current_schema(&db).await?;
    if !args.no_sync {
        let report = crate::sync::run(&db, &config, false, false).await?;
        for line in report.to_string().lines() {
            tracing::info!("config sync: {line}");
        }
    }
    let metrics = crate::telemetry::metrics(&config, &db)?;
    let state = app_state(&config, &db, metrics.as_ref())?;
    // Revocations made by other replicas and by `mas-cli` reach the introspection cache
    // through this; until it hears them, nothing is cached.
    let revocation_feed = tokio::spawn(db.follow_revocations());

    let (stop_tx, stop_rx) = watch::channel(false);
    // Stopped after the listeners drained, so the last requests' activity is written.
    let (background_stop, background_stop_rx) = watch::channel(false);
    let waiting = metrics.as_ref().map(|m| Arc::clone(&m.waiting));
    let background = Background::spawn(&db, &state, &background_stop_rx, waiting);
    // The homeserver jobs run here by default, so one process is a whole deployment.
    let worker = if args.no_worker {
        None
    } else {
        Some(spawn_worker(&db, &state, email_jobs(&config, &db)?, stop_rx.clone()).await)
    };
    let stop_signal = shutdown_signal();
    let limits = connection_limits(&config)?;
    // One pool of slots for every listener: the descriptors it guards are the process's.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut servers = JoinSet::new();
    let mut addresses = Vec::new();
    // Where Synapse reaches this service directly: its discovery document and the
    // introspection endpoint, so a listener serving both.
    let mut for_synapse = None;
    for listener in &config.http.listeners {
        let resources = served_resources(listener);
        let serves_synapse =
            resources.contains(&Resource::Discovery) && resources.contains(&Resource::OAuth);
        let router = mas_handlers::router(&resources, listener.prefix.as_deref(), state.clone());
        for bind in &listener.binds {
            for tcp in bind_tcp(listener, bind).await? {
                let address = tcp.local_addr()?;
                addresses.push(address);
                if serves_synapse && for_synapse.is_none() {
                    for_synapse = Some(direct_url(address, listener.prefix.as_deref()));
                }
                tracing::info!(listener = listener.name.as_deref().unwrap_or(""), %address, "listening");
                servers.spawn(connections::serve(
                    tcp,
                    router.clone(),
                    limits,
                    Arc::clone(&slots),
                    stop_rx.clone(),
                ));
            }
        }
    }
    if addresses.is_empty() {
        bail!("no listener is configured (http.listeners is empty)");
    }

    if let Some((path, created)) = &embedded {
        log_embedded(&config, path, *created, for_synapse.as_deref());
    }

    stop_signal.await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(result) = servers.join_next().await {
            if let Err(error) = result {
                tracing::warn!(%error, "listener task failed");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some requests did not finish within {SHUTDOWN_GRACE:?}; closing anyway");
    }
    if let Some(worker) = worker
        && let Err(error) = worker.await
    {
        tracing::warn!(%error, "job worker failed");
    }
    let _ = background_stop.send(true);
    background.join().await;
    revocation_feed.abort();
    drop(state);
    if let Some(metrics) = metrics {
        // Its last push waits for requests that run on this runtime.
        tokio::task::block_in_place(|| metrics.shutdown());
    }
    db.close().await.context("cannot close the database pool")?;
    tracing::info!("stopped");
    Ok(())
}

/// The project's rule: a key that is accepted but does nothing yet says so at start.
fn warn_not_honoured(config: &mas_config::RootConfig) {
    for warning in config.not_honoured() {
        tracing::warn!("{warning}");
    }
}

/// The periodic tasks beside the listeners.
struct Background {
    cleanup: tokio::task::JoinHandle<()>,
    activity: tokio::task::JoinHandle<()>,
    /// Counts the job queue for the metrics, when they are on.
    queue_count: Option<tokio::task::JoinHandle<()>>,
}

impl Background {
    fn spawn(
        db: &mas_storage_sql::SqlRepositoryFactory,
        state: &AppState,
        stop: &watch::Receiver<bool>,
        waiting: Option<Arc<std::sync::atomic::AtomicI64>>,
    ) -> Self {
        let queue_count = waiting.map(|waiting| {
            tokio::spawn(crate::telemetry::count_waiting_jobs(
                db.clone(),
                waiting,
                stop.clone(),
            ))
        });
        let cleanup = tokio::spawn(mas_tasks::run_cleanup(
            Arc::new(db.clone()),
            Arc::new(mas_storage::SystemClock),
            mas_tasks::CleanupConfig::default(),
            stop.clone(),
        ));
        let activity = tokio::spawn(mas_tasks::run_activity_writer(
            Arc::clone(&state.activity),
            Arc::new(db.clone()),
            mas_tasks::ACTIVITY_INTERVAL,
            stop.clone(),
        ));
        Self {
            cleanup,
            activity,
            queue_count,
        }
    }

    /// Waits for them after the stop signal: the activity writer writes what the last
    /// requests noted before it ends.
    async fn join(self) {
        if let Err(error) = self.cleanup.await {
            tracing::warn!(%error, "background cleanup task failed");
        }
        if let Err(error) = self.activity.await {
            tracing::warn!(%error, "session activity writer failed");
        }
        if let Some(task) = self.queue_count {
            let _ = task.await;
        }
    }
}

/// The timeouts and the connection cap of the HTTP listeners. Integration tests shorten
/// them through an environment variable, which is not a configuration key.
fn connection_limits(
    config: &mas_config::RootConfig,
) -> anyhow::Result<connections::ConnectionLimits> {
    let mut limits = connections::ConnectionLimits::for_process(config.database.max_connections);
    if let Ok(spec) = std::env::var(connections::TEST_OVERRIDE_VAR) {
        limits = limits.with_overrides(&spec)?;
        tracing::warn!(
            "{} is set (for tests only): connection limits changed",
            connections::TEST_OVERRIDE_VAR
        );
    }
    tracing::info!(
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        max_connections = limits.max_connections,
        "client connection limits"
    );
    Ok(limits)
}

/// The CAPTCHA of `/register`, when `captcha.service` is set (validation made sure its
/// keys are).
fn captcha(config: &mas_config::RootConfig) -> anyhow::Result<Option<Arc<mas_handlers::Captcha>>> {
    use mas_config::sections::CaptchaService as Configured;
    use mas_handlers::CaptchaService;
    let settings = &config.captcha;
    let Some(service) = settings.service else {
        return Ok(None);
    };
    let service = match service {
        Configured::RecaptchaV2 => CaptchaService::RecaptchaV2,
        Configured::CloudflareTurnstile => CaptchaService::CloudflareTurnstile,
        Configured::HCaptcha => CaptchaService::HCaptcha,
    };
    let captcha = mas_handlers::Captcha::new(
        service,
        config
            .http
            .public_base
            .host_str()
            .unwrap_or_default()
            .to_owned(),
        settings.site_key.clone().unwrap_or_default(),
        settings
            .secret_key
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default(),
    )?;
    Ok(Some(Arc::new(captcha)))
}

/// `url` as a directory, so links resolve under it rather than beside its last segment.
fn directory_url(url: &mas_data_model::Url) -> mas_data_model::Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// The one start-up line of the embedded default: where its files are and what to tell
/// Synapse. The endpoint is the listener itself, not `http.public_base`: Synapse calls
/// the service directly, as docs/setup/homeserver.md and reverse-proxy.md say.
fn log_embedded(
    config: &mas_config::RootConfig,
    path: &std::path::Path,
    created: bool,
    direct: Option<&str>,
) {
    let endpoint = direct.unwrap_or(config.http.public_base.as_str());
    tracing::info!(
        "embedded default: config {} ({}), database {}; point Synapse's \
         matrix_authentication_service.endpoint at {endpoint} with secret = matrix.secret from \
         that file, and set matrix.homeserver there (now `{}`) to Synapse's server_name",
        path.display(),
        if created { "generated now" } else { "existing" },
        config.database.display_uri(),
        config.matrix.homeserver,
    );
}

/// The URL of a bound listener as a process on this host reaches it: a bind-all
/// address is reached on loopback.
fn direct_url(address: SocketAddr, prefix: Option<&str>) -> String {
    let ip = match address.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let prefix = prefix.unwrap_or("").trim_matches('/');
    let address = SocketAddr::new(ip, address.port());
    if prefix.is_empty() {
        format!("http://{address}/")
    } else {
        format!("http://{address}/{prefix}/")
    }
}

/// Starts the job worker of this process, and says so in `/health` until it ends.
async fn spawn_worker(
    db: &mas_storage_sql::SqlRepositoryFactory,
    state: &AppState,
    mail: Arc<dyn mas_tasks::JobHandler>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let run = worker(db, &state.homeserver, mail, stop).await;
    state.worker.started();
    let stopped = WorkerStopped(state.worker.clone());
    tokio::spawn(async move {
        // Dropped when the worker ends, even by a panic: /health then says so.
        let _stopped = stopped;
        run.await;
    })
}

/// Marks the worker stopped when dropped, with the task that runs it.
struct WorkerStopped(mas_handlers::WorkerStatus);

impl Drop for WorkerStopped {
    fn drop(&mut self) {
        self.0.stopped();
    }
}

/// The handler of the `send-email` queue, with the configured transport.
fn email_jobs(
    config: &mas_config::RootConfig,
    db: &mas_storage_sql::SqlRepositoryFactory,
) -> anyhow::Result<Arc<dyn mas_tasks::JobHandler>> {
    let mailer = crate::email::mailer(config).context("cannot set up the email transport")?;
    if config.email.transport == mas_config::sections::EmailTransport::Blackhole {
        tracing::warn!(
            "email.transport is blackhole: codes to verify email addresses are not delivered"
        );
    }
    Ok(Arc::new(mas_tasks::EmailJobs::new(
        Arc::new(db.clone()),
        Arc::new(mas_storage::SystemClock),
        mas_storage::Encrypter::new(&config.secrets.encryption_key()?),
        Arc::new(mailer),
        crate::email::service_name(config),
        directory_url(&config.http.public_base),
    )))
}

/// The job worker with every homeserver queue and the mail queue, ready to run until
/// `stop`.
pub(crate) async fn worker(
    db: &mas_storage_sql::SqlRepositoryFactory,
    homeserver: &Arc<dyn mas_matrix::HomeserverConnection>,
    mail: Arc<dyn mas_tasks::JobHandler>,
    stop: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + use<> {
    let repos: Arc<dyn mas_storage::RepositoryFactory> = Arc::new(db.clone());
    let mut worker = mas_tasks::Worker::new(
        repos.clone(),
        Arc::new(mas_storage::SystemClock),
        mas_tasks::WorkerConfig::default(),
    );
    for handler in mas_tasks::HomeserverJobs::all(&repos, homeserver) {
        worker = worker.with_handler(handler);
    }
    worker = worker.with_handler(mail);
    let wake = Box::new(db.job_waker(Duration::from_secs(1)).await);
    worker.run(wake, stop)
}

/// The throttles of `rate_limiting`, with `http.trusted_proxies`.
fn rate_limits(config: &mas_config::RootConfig) -> anyhow::Result<mas_handlers::RateLimits> {
    let limit = |l: mas_config::sections::RateLimiterConfig| mas_handlers::Limit {
        burst: l.burst,
        per_second: l.per_second,
    };
    let proxies = config
        .http
        .trusted_proxies
        .iter()
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| format!("http.trusted_proxies: `{p}` is not an IP network"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rates = &config.rate_limiting;
    Ok(mas_handlers::RateLimits::new(
        mas_handlers::Limits {
            login_per_ip: limit(rates.login.per_ip),
            login_per_account: limit(rates.login.per_account),
            registration: limit(rates.registration),
            username_availability: limit(rates.username_availability),
            device_code_link: limit(rates.device_code_link),
            email_per_ip: limit(rates.email_authentication.per_ip),
            email_per_address: limit(rates.email_authentication.per_address),
            emails_per_session: limit(rates.email_authentication.emails_per_session),
            email_attempts_per_session: limit(rates.email_authentication.attempt_per_session),
            recovery_per_ip: limit(rates.account_recovery.per_ip),
            recovery_per_address: limit(rates.account_recovery.per_address),
        },
        proxies,
    ))
}

/// How long a request to an upstream identity provider may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// The handlers' state: plain values and the concrete parts picked here.
fn app_state(
    config: &mas_config::RootConfig,
    db: &mas_storage_sql::SqlRepositoryFactory,
    metrics: Option<&crate::telemetry::Metrics>,
) -> anyhow::Result<AppState> {
    let activity = Arc::new(mas_storage::ActivityTracker::new());
    Ok(mas_handlers::AppParts {
        health: Arc::new(db.health()),
        oauth: Arc::new(crate::oauth::state(config)?),
        repos: Arc::new(db.clone()),
        clock: Arc::new(mas_storage::SystemClock),
        encrypter: mas_storage::Encrypter::new(&config.secrets.encryption_key()?),
        access_token_ttl: chrono::Duration::seconds(
            i64::try_from(config.experimental.access_token_ttl).unwrap_or(300),
        ),
        compat_token_ttl: chrono::Duration::seconds(
            i64::try_from(config.experimental.compat_token_ttl).unwrap_or(300),
        ),
        compat_sso_allowlist: config
            .experimental
            .compat_sso_redirect_allowlist
            .iter()
            .filter_map(|entry| url::Url::parse(entry).ok())
            .collect(),
        cookie_key: axum_extra::extract::cookie::Key::derive_from(
            &config.secrets.encryption_key()?,
        ),
        secure_cookies: config.http.public_base.scheme() == "https",
        passwords: Arc::new(mas_handlers::PasswordChecker::new(
            crate::oauth::password_manager(config)?,
        )),
        service_name: crate::email::service_name(config).into(),
        tos_uri: config.branding.tos_uri.as_ref().map(|u| u.as_str().into()),
        policy: Arc::new(crate::policy::build(config)?),
        captcha: captcha(config)?,
        matrix_secret: config.matrix.secret().ok().map(Into::into),
        remote_keys: Arc::new(mas_handlers::RemoteKeys::new()?),
        homeserver: crate::homeserver::connect(config)?,
        rate_limits: Arc::new(rate_limits(config)?),
        introspection_cache: Arc::new(
            mas_oauth_core::IntrospectionCache::new(
                mas_storage::RepositoryFactory::revocations(db).clone(),
                mas_oauth_core::introspection_cache::DEFAULT_CAPACITY,
            )
            .tracking(Arc::clone(&activity)),
        ),
        worker: mas_handlers::WorkerStatus::default(),
        account: mas_handlers::AccountSwitches {
            displayname_change_allowed: config.account.displayname_change_allowed,
            password_change_allowed: config.account.password_change_allowed,
            account_deactivation_allowed: config.account.account_deactivation_allowed,
            email_change_allowed: config.account.email_change_allowed,
            login_with_email_allowed: config.account.login_with_email_allowed,
            registration_token_required: config.account.registration_token_required(),
            registration_email_required: config.account.password_registration_email_required,
            password_recovery_enabled: config.account.password_recovery_enabled
                && config.passwords.enabled,
        },
        activity,
        upstreams: Arc::new(mas_upstream::Upstreams::new(UPSTREAM_TIMEOUT)?),
        metrics: metrics.and_then(|m| m.render.clone()),
        measured: metrics.is_some(),
    }
    .into())
}

/// The resources of a listener this build serves (the rest are named at start by
/// [`warn_not_honoured`]).
fn served_resources(listener: &ListenerConfig) -> Vec<Resource> {
    let mut served = Vec::new();
    for resource in &listener.resources {
        match resource {
            ConfigResource::Health => served.push(Resource::Health),
            ConfigResource::Discovery => served.push(Resource::Discovery),
            ConfigResource::OAuth => served.push(Resource::OAuth),
            ConfigResource::Human => served.push(Resource::Human),
            ConfigResource::Compat => served.push(Resource::Compat),
            ConfigResource::Prometheus => served.push(Resource::Prometheus),
            ConfigResource::AdminApi => served.push(Resource::AdminApi),
            _ => {}
        }
    }
    served
}

/// Opens the TCP sockets of one bind. A host name binds every address it resolves to.
async fn bind_tcp(
    listener: &ListenerConfig,
    bind: &BindConfig,
) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    if listener.tls.is_some() {
        bail!(
            "http.listeners: TLS on a listener is not supported yet; terminate TLS at the reverse proxy"
        );
    }
    if listener.proxy_protocol {
        bail!("http.listeners: proxy_protocol is not supported yet");
    }
    let addresses: Vec<SocketAddr> = if let Some(address) = &bind.address {
        vec![
            address
                .parse()
                .with_context(|| format!("invalid bind address {address}"))?,
        ]
    } else if let Some(port) = bind.port {
        match &bind.host {
            Some(host) => {
                let mut resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .with_context(|| format!("cannot resolve bind host {host}"))?
                    .collect();
                resolved.dedup();
                resolved
            }
            None => vec![SocketAddr::from(([0u16; 8], port))],
        }
    } else if bind.socket.is_some() || bind.fd.is_some() {
        bail!("http.listeners: UNIX socket and file-descriptor binds are not supported yet");
    } else {
        bail!("http.listeners: a bind has no address");
    };
    let mut sockets = Vec::new();
    for address in addresses {
        let socket = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is
/// called, not when it is first awaited: called before the listeners start, so a signal
/// that comes as soon as the service answers still stops it gracefully instead of
/// killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
