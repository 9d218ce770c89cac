//! The `telemetry` section: tracing, metrics and Sentry.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::Issues;

/// Observability settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Trace export.
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Metrics export.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Error reporting to Sentry.
    #[serde(default)]
    pub sentry: SentryConfig,
}

/// Trace export.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// `none`, `stdout` or `otlp`.
    #[serde(default)]
    pub exporter: Exporter,
    /// The OTLP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Url>,
    /// Context propagators: `tracecontext`, `baggage`, `jaeger`.
    #[serde(default)]
    pub propagators: Vec<Propagator>,
    /// The fraction of traces kept (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
}

/// Metrics export.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `none`, `stdout`, `otlp` or `prometheus`.
    #[serde(default)]
    pub exporter: Exporter,
    /// The OTLP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Url>,
}

/// Sentry error reporting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentryConfig {
    /// The Sentry DSN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
    /// The environment name reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The fraction of errors reported (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
    /// The fraction of transactions traced (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces_sample_rate: Option<f64>,
}

/// Where telemetry goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exporter {
    /// Nowhere.
    #[default]
    None,
    /// Printed on standard output.
    Stdout,
    /// OpenTelemetry protocol.
    Otlp,
    /// A Prometheus scrape endpoint (metrics only).
    Prometheus,
}

/// Trace context propagation formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagator {
    /// W3C Trace Context.
    Tracecontext,
    /// W3C Baggage.
    Baggage,
    /// Jaeger.
    Jaeger,
}

impl TelemetryConfig {
    /// The telemetry settings that do nothing in this release (nothing is exported).
    pub(crate) fn not_honoured(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.tracing.propagators.contains(&Propagator::Jaeger) {
            notes.push(
                "telemetry.tracing.propagators: `jaeger` is accepted but not read nor sent by this release (W3C `tracecontext` and `baggage` are)"
                    .to_owned(),
            );
        }
        if self.sentry.dsn.is_some() {
            notes.push(
                "telemetry.sentry.dsn is accepted but this release reports nothing to Sentry"
                    .to_owned(),
            );
        }
        notes
    }

    pub(crate) fn validate(&self, issues: &mut Issues) {
        if self.tracing.exporter == Exporter::Prometheus {
            issues.push(
                &["telemetry", "tracing", "exporter"],
                "expected `none`, `stdout` or `otlp`",
            );
        }
        let rates = [
            (
                ["telemetry", "tracing", "sample_rate"],
                self.tracing.sample_rate,
            ),
            (
                ["telemetry", "sentry", "sample_rate"],
                self.sentry.sample_rate,
            ),
            (
                ["telemetry", "sentry", "traces_sample_rate"],
                self.sentry.traces_sample_rate,
            ),
        ];
        for (at, rate) in rates {
            if let Some(rate) = rate
                && !(0.0..=1.0).contains(&rate)
            {
                issues.push(&at, "must be between 0.0 and 1.0");
            }
        }
    }
}
