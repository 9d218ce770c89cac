//! Discovery: `/.well-known/openid-configuration` (and its RFC 8414 twin),
//! `/.well-known/webfinger` and the JWK set. Open to every origin (CORS).

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::errors::oauth_error;

pub(crate) fn router() -> Router<AppState> {
    use crate::errors::preflight;
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(metadata).options(preflight),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata).options(preflight),
        )
        .route("/.well-known/webfinger", get(webfinger).options(preflight))
        .route("/oauth2/keys.json", get(jwks).options(preflight))
        .layer(crate::errors::CorsLayer)
}

#[tracing::instrument(name = "handlers.discovery", skip_all)]
async fn metadata(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.oauth.metadata.clone())
}

#[tracing::instrument(name = "handlers.jwks", skip_all)]
async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.oauth.keys.jwks())
}

#[derive(Deserialize)]
struct WebfingerQuery {
    resource: Option<String>,
}

/// The issuer relation of OpenID Connect Discovery.
const ISSUER_REL: &str = "http://openid.net/specs/connect/1.0/issuer";

#[tracing::instrument(name = "handlers.webfinger", skip_all)]
async fn webfinger(
    State(state): State<AppState>,
    query: Result<Query<WebfingerQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(resource) = query
        .ok()
        .and_then(|Query(q)| q.resource)
        .filter(|r| !r.is_empty())
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the `resource` parameter is required",
        );
    };
    let body = json!({
        "subject": resource,
        "links": [{ "rel": ISSUER_REL, "href": state.oauth.endpoints.issuer.as_str() }],
    });
    (
        [(header::CONTENT_TYPE, "application/jrd+json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use crate::test_state::{Up, state};
    use crate::{Resource, router};

    async fn call(
        method: Method,
        uri: &str,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let app = router(&[Resource::Discovery], None, state(Arc::new(Up)).await.0);
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("origin", "https://app.example.com")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, body)
    }

    #[tokio::test]
    async fn discovery_documents_are_served_with_cors() {
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            let (status, headers, body) = call(Method::GET, path).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["issuer"], "https://auth.example.com/");
            assert_eq!(headers["access-control-allow-origin"], "*");
        }
        let (status, _, body) = call(Method::GET, "/oauth2/keys.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["keys"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn webfinger_points_at_the_issuer() {
        let (status, headers, body) =
            call(Method::GET, "/.well-known/webfinger?resource=acct:alice@example.com&rel=http://openid.net/specs/connect/1.0/issuer").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/jrd+json");
        assert_eq!(body["subject"], "acct:alice@example.com");
        assert_eq!(body["links"][0]["href"], "https://auth.example.com/");
        let (status, _, body) = call(Method::GET, "/.well-known/webfinger").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_request");
    }

    #[tokio::test]
    async fn wrong_methods_and_unknown_paths_get_json_errors() {
        let (status, _, body) = call(Method::DELETE, "/oauth2/keys.json").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "invalid_request");
        let (status, _, body) = call(Method::GET, "/oauth2/nothing-here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
    }
}
