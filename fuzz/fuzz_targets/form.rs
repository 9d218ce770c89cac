//! Form bodies and query strings (`Params`) and the client authentication read from them
//! with the `Authorization` header. The input is the header, a newline, then the body; with
//! no newline, the body alone. A body is refused exactly when it is not UTF-8 or a name or
//! value holds a control character; otherwise every parameter reads back as sent (a
//! repeated one is an error), also after re-encoding; client credentials never disagree
//! with the `client_id` of the form, and only the header gives `client_secret_basic`.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use mas_data_model::ClientAuthMethod;
use mas_oauth_core::client_auth::ClientCredentials;
use mas_oauth_core::params::Params;

/// Checks `params` against the pairs of `raw` decoded independently.
fn check_reads_back(params: &Params, raw: &[u8]) {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(raw) {
        seen.entry(name.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    for (name, values) in &seen {
        match (params.get(name), values.as_slice()) {
            (Ok(got), [value]) => {
                assert_eq!(
                    got,
                    (!value.is_empty()).then_some(value.as_str()),
                    "{name:?}"
                );
            }
            (Err(_), [_, _, ..]) => {}
            (got, values) => panic!("{name:?} read as {got:?}, sent {values:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (authorization, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let Ok(params) = Params::parse(body) else {
        let refused_rightly = std::str::from_utf8(body).is_err()
            || url::form_urlencoded::parse(body)
                .any(|(n, v)| n.chars().chain(v.chars()).any(char::is_control));
        assert!(refused_rightly, "refused {body:?}");
        return;
    };
    assert!(std::str::from_utf8(body).is_ok());
    assert!(
        !url::form_urlencoded::parse(body)
            .any(|(n, v)| n.chars().chain(v.chars()).any(char::is_control)),
        "accepted a control character in {body:?}"
    );
    check_reads_back(&params, body);

    // The same pairs, encoded again, read back the same.
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(url::form_urlencoded::parse(body))
        .finish();
    match Params::parse(encoded.as_bytes()) {
        Ok(again) => check_reads_back(&again, body),
        Err(e) => panic!("{encoded:?}, re-encoded from an accepted body, refused: {e}"),
    }

    if let Ok(credentials) = ClientCredentials::from_request(authorization, &params) {
        if let Ok(Some(form_id)) = params.get("client_id") {
            assert_eq!(credentials.client_id, form_id);
        }
        assert_eq!(
            credentials.method == ClientAuthMethod::ClientSecretBasic,
            authorization.is_some(),
            "{:?} with header {authorization:?}",
            credentials.method
        );
    }
});
