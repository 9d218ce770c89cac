//! Error responses shared by every resource: always a typed body, never an empty one.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An OAuth-style JSON error: `{"error", "error_description"}` with a status.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// Matrix clients get Matrix errors: `M_UNRECOGNIZED`, as a homeserver answers.
fn is_matrix(uri: &axum::http::Uri) -> bool {
    uri.path().contains("/_matrix/")
}

fn unrecognized(status: StatusCode) -> Response {
    (
        status,
        Json(json!({ "errcode": "M_UNRECOGNIZED", "error": "Unrecognized request" })),
    )
        .into_response()
}

/// Unknown paths.
pub(crate) async fn not_found(uri: axum::http::Uri) -> Response {
    if is_matrix(&uri) {
        return unrecognized(StatusCode::NOT_FOUND);
    }
    oauth_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "there is no such endpoint",
    )
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    if is_matrix(&uri) {
        return unrecognized(StatusCode::METHOD_NOT_ALLOWED);
    }
    oauth_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "this endpoint does not accept that HTTP method",
    )
}

/// The CORS policy of API paths (discovery, OAuth, the compatibility layer): any origin,
/// method and header, as MAS has; browser clients live on other origins.
pub(crate) fn cors() -> tower_http::cors::CorsLayer {
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
}

/// `OPTIONS` on an API path. A route must accept the method for [`cors`] to see a
/// browser's preflight at all; the layer answers it before this runs, and a plain
/// `OPTIONS` gets an empty success.
pub(crate) async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}
