//! `GET /health`: 200 once the database answers, 503 while it does not.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

#[tracing::instrument(name = "handlers.health", skip_all)]
async fn health(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.health.check().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use mas_storage::{BoxFuture, Health, StorageError};
    use tower::ServiceExt;

    use crate::test_state::state;
    use crate::{Resource, router};

    struct Switch(AtomicBool);

    impl Health for Switch {
        fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
            let up = self.0.load(Ordering::SeqCst);
            Box::pin(async move {
                if up {
                    Ok(())
                } else {
                    Err(StorageError::Unavailable)
                }
            })
        }
    }

    async fn status(app: axum::Router, uri: &str) -> StatusCode {
        app.oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn health_follows_the_database() {
        let switch = Arc::new(Switch(AtomicBool::new(true)));
        let app = router(&[Resource::Health], None, state(switch.clone()).await.0);
        assert_eq!(status(app.clone(), "/health").await, StatusCode::OK);
        switch.0.store(false, Ordering::SeqCst);
        assert_eq!(
            status(app.clone(), "/health").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(app, "/nope").await, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn resources_mount_under_a_prefix_and_only_when_listed() {
        let health = Arc::new(Switch(AtomicBool::new(true)));
        let app = router(
            &[Resource::Health],
            Some("/auth/"),
            state(health.clone()).await.0,
        );
        assert_eq!(status(app.clone(), "/auth/health").await, StatusCode::OK);
        assert_eq!(status(app, "/health").await, StatusCode::NOT_FOUND);
        let app = router(&[], None, state(health).await.0);
        assert_eq!(status(app, "/health").await, StatusCode::NOT_FOUND);
    }
}
