//! Dynamic client registration metadata, the JSON body anyone may send to the
//! registration endpoint. Whatever the bytes, checking answers without panicking, with a
//! registration error when it refuses; metadata it accepts keeps the size limits, names
//! an https `client_uri`, and every redirect URI is one the rules allow: https on the
//! client's site, http on a loopback address, or the client's reversed domain as scheme.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mas_oauth_core::ErrorCode;
use mas_oauth_core::SigningAlgorithm;
use mas_oauth_core::policy::ClientRegistrationRules;
use mas_oauth_core::registration::{MAX_METADATA_BYTES, MAX_REDIRECT_URIS, check_metadata};
use serde_json::Value;
use url::Url;

const SIGNING: [SigningAlgorithm; 3] = [
    SigningAlgorithm::Rs256,
    SigningAlgorithm::Es256,
    SigningAlgorithm::Es384,
];

/// Whether `host` is `site` or one of its subdomains.
fn on_site(host: &str, site: &str) -> bool {
    host == site
        || host
            .strip_suffix(site)
            .is_some_and(|sub| sub.ends_with('.'))
}

fn allowed_redirect(uri: &Url, site: &str) -> bool {
    match uri.scheme() {
        "https" => uri.host_str().is_some_and(|h| on_site(h, site)),
        "http" => matches!(uri.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        scheme => {
            let domain: Vec<&str> = scheme.rsplit('.').collect();
            scheme.contains('.') && on_site(site, &domain.join("."))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // The strict rules (no `policy.data.client_registration` relaxation).
    let checked = match check_metadata(&body, &SIGNING, ClientRegistrationRules::default()) {
        Ok(checked) => checked,
        Err(e) => {
            assert!(
                matches!(
                    e.code,
                    ErrorCode::InvalidClientMetadata | ErrorCode::InvalidRedirectUri
                ),
                "{e}"
            );
            return;
        }
    };
    assert!(body.to_string().len() <= MAX_METADATA_BYTES);
    let client_uri = checked.client_uri.as_ref().expect("client_uri is required");
    assert_eq!(client_uri.scheme(), "https");
    let site = client_uri.host_str().unwrap_or_default();
    assert!(checked.redirect_uris.len() <= MAX_REDIRECT_URIS);
    if checked
        .grant_types
        .iter()
        .any(|g| g == "authorization_code")
    {
        assert!(!checked.redirect_uris.is_empty());
    }
    assert!(checked.response_types.iter().all(|r| r == "code"));
    for uri in &checked.redirect_uris {
        assert!(uri.fragment().is_none(), "{uri}");
        assert!(allowed_redirect(uri, site), "{uri} for a client on {site}");
    }
    for uri in [&checked.logo_uri, &checked.tos_uri, &checked.policy_uri]
        .into_iter()
        .flatten()
    {
        assert_eq!(uri.scheme(), "https");
        assert!(uri.host_str().is_some_and(|h| on_site(h, site)), "{uri}");
    }
});
