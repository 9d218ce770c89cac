//! The metrics exporter: with `telemetry.metrics.exporter: prometheus`, an OpenTelemetry
//! meter provider whose reader renders Prometheus' text format, set as the global one
//! (the libraries' instruments come from it), and the database pool's gauges.

use std::sync::Arc;

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
    let render: mas_handlers::MetricsRender = Arc::new(move || {
        let mut out = Vec::new();
        exporter.export(&mut out).ok()?;
        String::from_utf8(out).ok()
    });
    Some(Metrics { provider, render })
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
