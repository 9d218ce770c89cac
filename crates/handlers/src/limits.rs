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
    let uri_len = displayed_len(request.uri());
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

/// The length of `value` as displayed, without building the string (this runs on every
/// request, the homeserver's introspection included).
fn displayed_len(value: &impl std::fmt::Display) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter cannot fail.
    let _ = std::fmt::Write::write_fmt(&mut count, format_args!("{value}"));
    count.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counted_length_is_the_displayed_length() {
        for uri in [
            "/",
            "/oauth2/introspect?x=%20y",
            "https://example.com:8443/a/b?c=d",
        ] {
            let uri: axum::http::Uri = uri.parse().unwrap();
            assert_eq!(super::displayed_len(&uri), uri.to_string().len(), "{uri}");
        }
    }
}
