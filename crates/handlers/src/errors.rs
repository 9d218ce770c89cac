//! Error responses shared by every resource: always a typed body, never an empty one.

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryFutureExt;
use futures_util::future::{Either, MapOk, Ready, ready};
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

/// Admin API callers get the admin API's error shape.
fn is_admin_api(uri: &axum::http::Uri) -> bool {
    uri.path().contains("/api/admin/")
}

/// Unknown paths.
pub(crate) async fn not_found(uri: axum::http::Uri) -> Response {
    if is_matrix(&uri) {
        return unrecognized(StatusCode::NOT_FOUND);
    }
    if is_admin_api(&uri) {
        return crate::admin::AdminError::NotFound(
            "there is no such admin API endpoint".to_owned(),
        )
        .into_response();
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
    if is_admin_api(&uri) {
        return crate::admin::AdminError::MethodNotAllowed.into_response();
    }
    oauth_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "this endpoint does not accept that HTTP method",
    )
}

/// The CORS policy of API paths (discovery, OAuth, the compatibility layer): any origin,
/// any method, and whatever request headers the browser asks for, as MAS allows; browser
/// clients such as Element Web live on other origins. A preflight (`OPTIONS`) is answered
/// here without reaching the route.
///
/// The policy is fixed, so its headers are constants, and it is a plain service: the
/// generic `tower_http` layer built and joined its headers anew on every request, and
/// `from_fn` clones and boxes on every request. The requested headers are mirrored
/// rather than answered with `*`, because browsers never let `*` cover
/// `Authorization`, which logout and refresh send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CorsLayer;

impl<S> tower::Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Cors<S> {
        Cors { inner }
    }
}

/// The service [`CorsLayer`] makes.
#[derive(Debug, Clone)]
pub(crate) struct Cors<S> {
    inner: S,
}

const ANY: HeaderValue = HeaderValue::from_static("*");
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

impl<S> tower::Service<axum::extract::Request> for Cors<S>
where
    S: tower::Service<axum::extract::Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        Either<Ready<Result<Response, S::Error>>, MapOk<S::Future, fn(Response) -> Response>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        if request.method() == Method::OPTIONS {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ANY);
            if let Some(asked) = request
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            return Either::Left(ready(Ok(with_cors(response))));
        }
        Either::Right(
            self.inner
                .call(request)
                .map_ok(with_cors as fn(Response) -> Response),
        )
    }
}

/// The headers every answer on an API path carries.
fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY);
    headers.append(header::VARY, VARY);
    response
}

/// `OPTIONS` on an API path. A route must accept the method for [`cors`] to see a
/// browser's preflight at all; the middleware answers it before this runs.
pub(crate) async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}
