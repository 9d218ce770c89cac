//! Limits on the request line and headers, answered with a typed body: 414 for a URI
//! over 8 KiB, 431 for headers over 64 KiB. (Beyond what the HTTP parser buffers at all,
//! it answers 431 itself, without a body.)

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

/// The longest request target accepted.
pub(crate) const MAX_URI: usize = 8 * 1024;
/// The most header bytes accepted.
pub(crate) const MAX_HEADERS: usize = 64 * 1024;

/// Refuses oversized URIs and headers before any handler runs.
pub(crate) async fn enforce(request: Request, next: Next) -> Response {
    let uri_len = request.uri().to_string().len();
    if uri_len > MAX_URI {
        return crate::errors::oauth_error(
            StatusCode::URI_TOO_LONG,
            "invalid_request",
            "the request URI is too long",
        );
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADERS {
        return crate::errors::oauth_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request",
            "the request headers are too large",
        );
    }
    next.run(request).await
}
