//! The metrics exporter: with `telemetry.metrics.exporter: prometheus`, an OpenTelemetry
//! meter provider whose reader renders Prometheus' text format, set as the global one
//! (the libraries' instruments come from it), and the database pool's gauges.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mas_config::sections::{Exporter, RootConfig};
use mas_storage_sql::SqlRepositoryFactory;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_prometheus_text_exporter::PrometheusExporter;
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// What the metrics need kept alive while the server runs.
pub(crate) struct Metrics {
    provider: SdkMeterProvider,
    /// What `/metrics` serves.
    pub(crate) render: mas_handlers::MetricsRender,
    /// The job queue's depth as last counted (-1 before the first count), which
    /// [`count_waiting_jobs`] keeps up to date.
    pub(crate) waiting: Arc<AtomicI64>,
}

impl Metrics {
    /// Flushes and stops the provider.
    pub(crate) fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "metrics provider shutdown");
        }
    }
}

/// Sets up the exporter the configuration asks for; `None` when it asks for none this
/// version exports.
pub(crate) fn metrics(config: &RootConfig, db: &SqlRepositoryFactory) -> Option<Metrics> {
    if config.telemetry.metrics.exporter != Exporter::Prometheus {
        return None;
    }
    let exporter = PrometheusExporter::builder().build();
    let provider = SdkMeterProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_attribute(KeyValue::new(
                    "service.name",
                    "matrix-authentication-service",
                ))
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .with_reader(exporter.clone())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    pool_gauges(&provider, db);
    let waiting = queue_gauge(&provider);
    let render: mas_handlers::MetricsRender = Arc::new(move || {
        let mut out = Vec::new();
        exporter.export(&mut out).ok()?;
        String::from_utf8(out).ok()
    });
    Some(Metrics {
        provider,
        render,
        waiting,
    })
}

/// `mas.db.connections`: the pool's connections by `state` (`in_use`, `idle`), read at
/// each scrape.
fn pool_gauges(provider: &SdkMeterProvider, db: &SqlRepositoryFactory) {
    let db = db.clone();
    let counts = move || db.pool_usage();
    // Registered with the provider, which keeps the callback for its lifetime.
    let _gauge = provider
        .meter("mas")
        .i64_observable_gauge("mas.db.connections")
        .with_description("Database connections of this process, by state")
        .with_callback(move |observer| {
            let (size, idle) = counts();
            let idle = i64::try_from(idle).unwrap_or(i64::MAX);
            // Read apart, the two may disagree for a moment.
            let in_use = (i64::from(size) - idle).max(0);
            observer.observe(in_use, &[KeyValue::new("state", "in_use")]);
            observer.observe(idle, &[KeyValue::new("state", "idle")]);
        })
        .build();
}

/// `mas.jobs.waiting`: jobs waiting to be claimed, as last counted. A gauge callback
/// cannot wait for the database, so a task counts (see [`count_waiting_jobs`]).
fn queue_gauge(provider: &SdkMeterProvider) -> Arc<AtomicI64> {
    let waiting = Arc::new(AtomicI64::new(-1));
    let read = Arc::clone(&waiting);
    let _gauge = provider
        .meter("mas")
        .i64_observable_gauge("mas.jobs.waiting")
        .with_description("Background jobs waiting to be claimed, counted every 15 s")
        .with_callback(move |observer| {
            let count = read.load(Ordering::Relaxed);
            if count >= 0 {
                observer.observe(count, &[]);
            }
        })
        .build();
    waiting
}

/// How often the job queue is counted for the metrics.
const QUEUE_COUNT_INTERVAL: Duration = Duration::from_secs(15);

/// Counts the waiting jobs every [`QUEUE_COUNT_INTERVAL`] until `stop`.
pub(crate) async fn count_waiting_jobs(
    db: SqlRepositoryFactory,
    waiting: Arc<AtomicI64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use mas_storage::RepositoryFactory as _;
    loop {
        let counted = async {
            let mut repo = db.reader().await?;
            repo.job().count_waiting().await
        }
        .await;
        match counted {
            Ok(count) => waiting.store(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed),
            Err(error) => tracing::debug!(%error, "cannot count the waiting jobs"),
        }
        tokio::select! {
            () = tokio::time::sleep(QUEUE_COUNT_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}
