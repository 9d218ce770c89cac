//! The metrics exporter: with `telemetry.metrics.exporter: prometheus`, an OpenTelemetry
//! meter provider whose reader renders Prometheus' text format, set as the global one
//! (the libraries' instruments come from it), and the database pool's gauges. And the
//! trace exporter (`telemetry.tracing`): `stdout` or OTLP over HTTP, fed by the spans of
//! `tracing` through `tracing-opentelemetry`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use mas_config::sections::{Exporter, Propagator, RootConfig};
use mas_storage_sql::SqlRepositoryFactory;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_prometheus_text_exporter::PrometheusExporter;
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// What the metrics need kept alive while the server runs.
pub(crate) struct Metrics {
    provider: SdkMeterProvider,
    /// What `/metrics` serves, with the Prometheus exporter.
    pub(crate) render: Option<mas_handlers::MetricsRender>,
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

/// How often the pushing exporters (`otlp`, `stdout`) send, unless
/// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds) says otherwise.
const PUSH_INTERVAL: Duration = Duration::from_mins(1);

/// Sets up the metrics exporter the configuration asks for (`prometheus`, or `otlp` or
/// `stdout`, which push every minute); `None` for `none`. Must be called on the
/// server's runtime, which runs the OTLP exporter's requests.
pub(crate) fn metrics(
    config: &RootConfig,
    db: &SqlRepositoryFactory,
) -> anyhow::Result<Option<Metrics>> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::metrics::PeriodicReader;

    let builder = SdkMeterProvider::builder().with_resource(resource());
    let interval = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(PUSH_INTERVAL, Duration::from_millis);
    let (provider, render) = match config.telemetry.metrics.exporter {
        Exporter::None => return Ok(None),
        Exporter::Prometheus => {
            let exporter = PrometheusExporter::builder().build();
            let provider = builder.with_reader(exporter.clone()).build();
            let render: mas_handlers::MetricsRender = Arc::new(move || {
                let mut out = Vec::new();
                exporter.export(&mut out).ok()?;
                String::from_utf8(out).ok()
            });
            (provider, Some(render))
        }
        Exporter::Stdout => {
            let reader = PeriodicReader::builder(opentelemetry_stdout::MetricExporter::default())
                .with_interval(interval)
                .build();
            (builder.with_reader(reader).build(), None)
        }
        Exporter::Otlp => {
            let endpoint = otlp_endpoint(config.telemetry.metrics.endpoint.as_ref(), "v1/metrics");
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(10))
                .with_http_client(OtlpClient::new(tokio::runtime::Handle::current()))
                .build()
                .context("telemetry.metrics: cannot build the OTLP exporter")?;
            let reader = PeriodicReader::builder(exporter)
                .with_interval(interval)
                .build();
            (builder.with_reader(reader).build(), None)
        }
    };
    opentelemetry::global::set_meter_provider(provider.clone());
    pool_gauges(&provider, db);
    let waiting = queue_gauge(&provider);
    Ok(Some(Metrics {
        provider,
        render,
        waiting,
    }))
}

/// An OTLP/HTTP endpoint: the configured URL (`http://localhost:4318/` by default),
/// with the signal's path (`v1/traces`, `v1/metrics`) added when it has none.
fn otlp_endpoint(configured: Option<&url::Url>, path: &str) -> String {
    match configured {
        Some(url) if url.path() != "/" => url.to_string(),
        Some(url) => {
            let mut endpoint = url.clone();
            endpoint.set_path(path);
            endpoint.into()
        }
        None => format!("http://localhost:4318/{path}"),
    }
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

/// The trace exporter, when `telemetry.tracing.exporter` is `stdout` or `otlp`: the
/// provider to flush at shutdown and the `tracing` layer that feeds it.
pub(crate) struct Traces {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

/// The `tracing` layer that turns this service's spans into OpenTelemetry spans.
pub(crate) type TraceLayer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::Registry,
    opentelemetry_sdk::trace::SdkTracer,
>;

impl Traces {
    /// Sends what is buffered and stops the exporter.
    pub(crate) fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "trace provider shutdown");
        }
    }
}

/// Sets up the trace exporter the configuration asks for, and the propagators that
/// read the caller's trace from incoming requests and pass it on to the homeserver.
/// `runtime` runs the exporter's HTTP requests (its batch thread has no runtime).
pub(crate) fn traces(
    config: &RootConfig,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<Option<(Traces, TraceLayer)>> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

    let tracing = &config.telemetry.tracing;
    let builder = SdkTracerProvider::builder()
        .with_resource(resource())
        // A caller's decision holds; new traces are kept at the configured rate.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            tracing.sample_rate.unwrap_or(1.0),
        ))));
    let provider = match tracing.exporter {
        Exporter::Stdout => builder
            .with_batch_exporter(opentelemetry_stdout::SpanExporter::default())
            .build(),
        Exporter::Otlp => {
            let endpoint = otlp_endpoint(tracing.endpoint.as_ref(), "v1/traces");
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(10))
                .with_http_client(OtlpClient::new(runtime))
                .build()
                .context("telemetry.tracing: cannot build the OTLP exporter")?;
            builder.with_batch_exporter(exporter).build()
        }
        Exporter::None | Exporter::Prometheus => return Ok(None),
    };
    set_propagators(&tracing.propagators);
    let tracer = provider.tracer("matrix-authentication-service");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false);
    Ok(Some((Traces { provider }, layer)))
}

/// The service's name and version, on its spans and metrics.
fn resource() -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder_empty()
        .with_attribute(KeyValue::new(
            "service.name",
            "matrix-authentication-service",
        ))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// W3C Trace Context unless the configuration names others; Baggage when asked.
/// (Jaeger's format is not read: `config check` says so.)
fn set_propagators(configured: &[Propagator]) {
    use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
    use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
    let mut propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    if configured.is_empty() || configured.contains(&Propagator::Tracecontext) {
        propagators.push(Box::new(TraceContextPropagator::new()));
    }
    if configured.contains(&Propagator::Baggage) {
        propagators.push(Box::new(BaggagePropagator::new()));
    }
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(propagators));
}

/// The OTLP exporter's HTTP client: this service's `reqwest`, its requests run on the
/// server's runtime.
#[derive(Debug)]
struct OtlpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl OtlpClient {
    fn new(runtime: tokio::runtime::Handle) -> Self {
        // The exporter's own timeout applies only to its own clients.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self { client, runtime }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let request = reqwest::Request::try_from(request)?;
        let url = request.url().clone();
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await?;
        // The SDK keeps quiet about failed exports: say it here, once per batch.
        let (status, body) = match sent {
            Ok(sent) => sent,
            Err(error) => {
                tracing::warn!(%url, error = %error, "cannot send telemetry to the collector");
                return Err(error.into());
            }
        };
        if !status.is_success() {
            tracing::warn!(%url, %status, "the collector refused telemetry");
        }
        let mut answer = opentelemetry_http::Response::new(body);
        *answer.status_mut() = status;
        Ok(answer)
    }
}
