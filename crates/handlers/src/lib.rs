//! HTTP handlers, grouped by the resources a listener can serve.

mod health;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use mas_storage::Health;
use tower_http::trace::TraceLayer;

/// What the handlers need from the rest of the service.
#[derive(Clone)]
pub struct AppState {
    /// The database's health.
    pub health: Arc<dyn Health>,
}

/// A resource this build serves; a listener mounts the ones its configuration lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `GET /health`.
    Health,
}

/// The router of one listener: the given resources, under an optional path prefix.
pub fn router(resources: &[Resource], prefix: Option<&str>, state: AppState) -> Router {
    let mut router = Router::new();
    for resource in resources {
        router = match resource {
            Resource::Health => router.merge(health::router()),
        };
    }
    let router = router.fallback(not_found).with_state(state);
    let router = match prefix.map(|p| p.trim_end_matches('/')) {
        Some(prefix) if !prefix.is_empty() => {
            Router::new().nest(prefix, router).fallback(not_found)
        }
        _ => router,
    };
    router.layer(TraceLayer::new_for_http())
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "Not found\n")
}
