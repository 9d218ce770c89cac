//! `GET /health`: 200 once the database answers, 503 while it does not. The first line
//! of the plain-text body says which; the lines after it are detail for operators: the
//! revocation feed (while it is not live, introspection answers are not kept) and the
//! job worker of this process.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

#[tracing::instrument(name = "handlers.health", skip_all)]
async fn health(State(state): State<AppState>) -> (StatusCode, String) {
    let (status, database) = match state.health.check().await {
        Ok(()) => (StatusCode::OK, "reachable"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "unreachable"),
    };
    let first = if status == StatusCode::OK {
        "ok"
    } else {
        "database unreachable"
    };
    let feed = if state.repos.revocations().is_live() {
        "live"
    } else {
        "not live (introspection answers are not kept)"
    };
    let worker = state.worker.describe();
    (
        status,
        format!("{first}\ndatabase: {database}\nrevocation feed: {feed}\njob worker: {worker}\n"),
    )
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

    async fn body(app: axum::Router) -> String {
        let response = app
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn health_details_the_feed_and_the_worker_for_operators() {
        let switch = Arc::new(Switch(AtomicBool::new(true)));
        let (state, _dir) = state(switch.clone()).await;
        assert!(state.worker.is_elsewhere());
        let app = router(&[Resource::Health], None, state.clone());
        assert_eq!(
            body(app.clone()).await,
            "ok\ndatabase: reachable\nrevocation feed: live\njob worker: not in this process\n"
        );
        state.worker.started();
        assert!(body(app.clone()).await.contains("job worker: running\n"));
        state.worker.stopped();
        state.repos.revocations().set_live(false);
        switch.0.store(false, Ordering::SeqCst);
        assert_eq!(
            body(app).await,
            "database unreachable\ndatabase: unreachable\nrevocation feed: not live (introspection answers are not kept)\njob worker: stopped\n"
        );
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
