//! Redirect URI matching at `/authorize`. The input is lines of URIs: the registered ones,
//! then the one a request names. A request's URI matches exactly when it is a registered
//! one, or both are loopback http URIs that differ in the port alone (RFC 8252 §7.3):
//! stated here on the text of the URIs, independently of the matcher.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mas_oauth_core::authorize::redirect_uri_matches;
use url::{Position, Url};

fn loopback_http(uri: &Url) -> bool {
    uri.scheme() == "http" && matches!(uri.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// The URI as written, less its port. Parts alone cannot say it: `p:///` and `p:/` have
/// the same scheme, host, path and query, and are different URIs.
fn without_port(uri: &Url) -> String {
    format!(
        "{}{}",
        &uri[..Position::AfterHost],
        &uri[Position::AfterPort..]
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let Some(Ok(given)) = lines.pop().map(Url::parse) else {
        return;
    };
    let registered: Vec<Url> = lines
        .into_iter()
        .filter_map(|l| Url::parse(l).ok())
        .collect();
    let expected = registered.iter().any(|r| {
        r.as_str() == given.as_str()
            || (loopback_http(r)
                && loopback_http(&given)
                && without_port(r) == without_port(&given))
    });
    assert_eq!(
        redirect_uri_matches(&registered, &given),
        expected,
        "given {given}, registered {registered:?}"
    );
    if expected && !loopback_http(&given) {
        assert!(registered.contains(&given), "{given} is not registered");
    }
});
