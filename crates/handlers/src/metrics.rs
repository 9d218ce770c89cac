//! Metrics: the HTTP requests each route served (a latency histogram by route, method
//! and status), and `GET /metrics` (the `prometheus` resource), which renders what the
//! exporter `cli` picked holds. Instruments are taken from OpenTelemetry's global meter
//! provider; with none set they cost nothing, and the request layer is not even
//! installed.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

use crate::AppState;

/// Renders the current metrics in Prometheus' text format; `None` when it failed.
pub type MetricsRender = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// The meter every instrument of the service comes from.
pub(crate) const METER: &str = "mas";

/// `http.server.request.duration`, in seconds (OpenTelemetry's HTTP convention).
fn request_duration() -> &'static Histogram<f64> {
    static INSTRUMENT: OnceLock<Histogram<f64>> = OnceLock::new();
    INSTRUMENT.get_or_init(|| {
        opentelemetry::global::meter(METER)
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("How long requests took, by route, method and status")
            .with_boundaries(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .build()
    })
}

/// `mas.login.attempts`: password sign-ins by where they came from and how they ended.
fn login_attempts() -> &'static Counter<u64> {
    static INSTRUMENT: OnceLock<Counter<u64>> = OnceLock::new();
    INSTRUMENT.get_or_init(|| {
        opentelemetry::global::meter(METER)
            .u64_counter("mas.login.attempts")
            .with_description("Password sign-ins, by kind (compat or web) and outcome")
            .build()
    })
}

/// Counts a password sign-in: `kind` is `compat` or `web`, `outcome` is `success`,
/// `failure` or `throttled`.
pub(crate) fn login_attempt(kind: &'static str, outcome: &'static str) {
    login_attempts().add(
        1,
        &[
            KeyValue::new("kind", kind),
            KeyValue::new("outcome", outcome),
        ],
    );
}

/// The request layer: the route's template (never the path itself, which may hold IDs
/// and tokens), the method and the status.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    request_duration().record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.route", route),
            KeyValue::new("http.request.method", method),
            KeyValue::new(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            ),
        ],
    );
    response
}

/// `GET /metrics`.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/metrics", axum::routing::get(metrics))
}

async fn metrics(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    let Some(render) = &state.metrics else {
        return crate::errors::not_found(uri).await;
    };
    match render() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the metrics could not be rendered\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use opentelemetry_prometheus_text_exporter::PrometheusExporter;
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use tower::ServiceExt;

    use crate::test_state::{Up, state};
    use crate::{Resource, router};

    async fn get(app: &axum::Router, path: &str) -> (StatusCode, String, String) {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_and_status_and_served_as_prometheus_text() {
        // The process's own provider, as `cli` sets it. nextest runs each test in a
        // process of its own; under `cargo test`, an instrument another test made first
        // may be a no-op, which the counts below would show.
        let exporter = PrometheusExporter::builder().build();
        let provider = SdkMeterProvider::builder()
            .with_reader(exporter.clone())
            .build();
        opentelemetry::global::set_meter_provider(provider);
        let (mut state, _dir) = state(Arc::new(Up)).await;
        state.metrics = Some(Arc::new(move || {
            let mut out = Vec::new();
            exporter.export(&mut out).ok()?;
            String::from_utf8(out).ok()
        }));
        state.measured = true;
        let app = router(&[Resource::Health, Resource::Prometheus], None, state);
        for _ in 0..2 {
            assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
        }
        assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
        // A path no route matches is not a series of its own (its text is anyone's).
        assert_eq!(
            get(&app, "/secret-token-in-a-path").await.0,
            StatusCode::NOT_FOUND
        );
        let (status, content_type, text) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        assert!(
            text.contains("# TYPE http_server_request_duration_seconds histogram"),
            "{text}"
        );
        let count = text
            .lines()
            .find(|l| {
                l.starts_with("http_server_request_duration_seconds_count{")
                    && l.contains(r#"http_route="/health""#)
                    && l.contains(r#"http_response_status_code="200""#)
                    && l.contains(r#"http_request_method="GET""#)
            })
            .unwrap_or_else(|| panic!("{text}"));
        assert!(count.ends_with(" 3"), "{count}");
        assert!(!text.contains("secret-token"), "{text}");
    }

    #[tokio::test]
    async fn without_an_exporter_metrics_is_not_found() {
        let (state, _dir) = state(Arc::new(Up)).await;
        let app = router(&[Resource::Health, Resource::Prometheus], None, state);
        assert_eq!(get(&app, "/metrics").await.0, StatusCode::NOT_FOUND);
    }
}
