//! Metrics: the HTTP requests each route served (a latency histogram by route, method
//! and status), and `GET /metrics` (the `prometheus` resource), which renders what the
//! exporter `cli` picked holds. Instruments are taken from OpenTelemetry's global meter
//! provider; with none set they cost nothing, and the request layer is not even
//! installed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::{KeyValue, StringValue};

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
/// and tokens), the method and the status. A plain service rather than `from_fn`,
/// which clones and boxes the route on every request: this runs on each one, the
/// homeserver's introspection included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrackLayer;

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

/// The service [`TrackLayer`] makes.
#[derive(Debug, Clone)]
pub(crate) struct Track<S> {
    inner: S,
}

impl<S, E> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(StringValue::from("unmatched"), |p| route_label(p.as_str()));
        Tracked {
            method: method_label(request.method()),
            started: Instant::now(),
            route: Some(route),
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request on its way, recorded in the latency histogram when it is answered.
    pub(crate) struct Tracked<F> {
        #[pin]
        inner: F,
        started: Instant,
        route: Option<StringValue>,
        method: &'static str,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some(route)) = (&result, this.route.take()) {
            request_duration().record(
                this.started.elapsed().as_secs_f64(),
                &[
                    KeyValue::new("http.route", route),
                    KeyValue::new("http.request.method", *this.method),
                    KeyValue::new(
                        "http.response.status_code",
                        i64::from(response.status().as_u16()),
                    ),
                ],
            );
        }
        Poll::Ready(result)
    }
}

/// The method as OpenTelemetry's HTTP convention names it: the standard ones by name,
/// any other as `_OTHER`, so no caller can mint series of its own.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The route's template as an attribute value, shared rather than copied: each thread
/// keeps one per route it has served (routes are the router's, a fixed few dozen).
fn route_label(route: &str) -> StringValue {
    thread_local! {
        static ROUTES: RefCell<HashMap<Box<str>, StringValue>> = RefCell::new(HashMap::new());
    }
    ROUTES.with_borrow_mut(|routes| {
        if let Some(known) = routes.get(route) {
            return known.clone();
        }
        let label = StringValue::from(Arc::<str>::from(route));
        routes.insert(route.into(), label.clone());
        label
    })
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
        // Nor is a made-up method.
        let made_up = Request::builder()
            .method("SECRET-TOKEN-METHOD")
            .uri("/health")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(made_up).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
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
        assert!(!text.to_lowercase().contains("secret-token"), "{text}");
    }

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        use axum::http::Method;
        assert_eq!(super::method_label(&Method::POST), "POST");
        assert_eq!(super::method_label(&Method::OPTIONS), "OPTIONS");
        let made_up = Method::from_bytes(b"SECRET-TOKEN-METHOD").unwrap();
        assert_eq!(super::method_label(&made_up), "_OTHER");
    }

    #[tokio::test]
    async fn without_an_exporter_metrics_is_not_found() {
        let (state, _dir) = state(Arc::new(Up)).await;
        let app = router(&[Resource::Health, Resource::Prometheus], None, state);
        assert_eq!(get(&app, "/metrics").await.0, StatusCode::NOT_FOUND);
    }
}
