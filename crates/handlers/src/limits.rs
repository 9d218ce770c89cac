//! Limits on the request line and headers, answered with a typed body: 414 for a URI
//! over 8 KiB, 431 for headers over 64 KiB. (Beyond what the HTTP parser buffers at all,
//! it answers 431 itself, without a body.)

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};

/// The longest request target accepted.
pub(crate) const MAX_URI: usize = 8 * 1024;
/// The most header bytes accepted.
pub(crate) const MAX_HEADERS: usize = 64 * 1024;

/// Refuses oversized URIs and headers before any handler runs. A plain service rather
/// than `from_fn`, which clones and boxes on every request (this runs on each one, the
/// homeserver's introspection included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LimitsLayer;

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Limits<S> {
        Limits { inner }
    }
}

/// The service [`LimitsLayer`] makes.
#[derive(Debug, Clone)]
pub(crate) struct Limits<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Limits<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match refusal(&request) {
            Some(refused) => Either::Left(ready(Ok(refused))),
            None => Either::Right(self.inner.call(request)),
        }
    }
}

/// The answer to a request over the limits, if it is.
fn refusal(request: &Request) -> Option<Response> {
    if displayed_len(request.uri()) > MAX_URI {
        return Some(crate::errors::oauth_error(
            StatusCode::URI_TOO_LONG,
            "invalid_request",
            "the request URI is too long",
        ));
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADERS {
        return Some(crate::errors::oauth_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request",
            "the request headers are too large",
        ));
    }
    None
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
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use crate::test_state::{Up, state};
    use crate::{Resource, router};

    async fn status_and_error(request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let (state, _dir) = state(Arc::new(Up)).await;
        let app = router(&[Resource::Discovery, Resource::OAuth], None, state);
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn oversized_uris_and_headers_are_refused_with_a_typed_body() {
        let long = format!("/oauth2/keys.json?pad={}", "a".repeat(super::MAX_URI));
        let request = Request::get(long).body(Body::empty()).unwrap();
        let (status, body) = status_and_error(request).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert_eq!(body["error"], "invalid_request");

        let mut request = Request::post("/oauth2/introspect")
            .body(Body::from("token=x"))
            .unwrap();
        for i in 0..70 {
            request.headers_mut().insert(
                axum::http::HeaderName::try_from(format!("x-pad-{i}")).unwrap(),
                "b".repeat(1024).parse().unwrap(),
            );
        }
        let (status, body) = status_and_error(request).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(body["error"], "invalid_request");

        // Just under both limits, the request reaches its route.
        let near = format!("/oauth2/keys.json?pad={}", "a".repeat(super::MAX_URI - 100));
        let (status, body) =
            status_and_error(Request::get(near).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["keys"].is_array());
    }

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
