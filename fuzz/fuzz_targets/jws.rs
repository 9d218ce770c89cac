//! The JWS parser and verifiers, for client assertions (`private_key_jwt`,
//! `client_secret_jwt`). The input is three lines: a compact token, an HMAC key and a JWK
//! set. Nothing panics; only an HMAC algorithm verifies with a secret and only an
//! asymmetric one against a key set, so `none` never does; a key set with no key for the
//! header answers `NoKey`; and a token signed here verifies with its key and no other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mas_oauth_core::jose::{JwsError, UnverifiedJws, b64};
use serde_json::{Value, json};

const HMAC: [&str; 3] = ["HS256", "HS384", "HS512"];
const ASYMMETRIC: [&str; 5] = ["RS256", "RS384", "RS512", "ES256", "ES384"];

fn check_parsed(token: &str, key: &[u8], key_set: &Value) {
    let Ok(jws) = UnverifiedJws::parse(token) else {
        return;
    };
    assert!(jws.header.is_object() && jws.payload.is_object());
    let alg = jws.alg().to_owned();
    match jws.verify_hmac(key) {
        Ok(()) => assert!(HMAC.contains(&alg.as_str()), "{alg} verified as HMAC"),
        Err(JwsError::UnsupportedAlgorithm(named)) => {
            assert_eq!(named, alg);
            assert!(!HMAC.contains(&alg.as_str()));
        }
        Err(JwsError::BadSignature) => assert!(HMAC.contains(&alg.as_str())),
        Err(other) => panic!("verify_hmac answered {other:?}"),
    }
    let verified = jws.verify_with_jwks(key_set);
    if verified.is_ok() {
        assert!(
            ASYMMETRIC.contains(&alg.as_str()),
            "{alg} verified by a JWK"
        );
    }
    if !jws.has_key_in(key_set) {
        assert_eq!(verified, Err(JwsError::NoKey));
    }
}

/// Signs `payload` with `key` and checks that exactly `key` verifies it.
fn check_signed(payload: &str, key: &[u8]) {
    let (alg, ring_alg) = match key.len() % 3 {
        0 => ("HS256", ring::hmac::HMAC_SHA256),
        1 => ("HS384", ring::hmac::HMAC_SHA384),
        _ => ("HS512", ring::hmac::HMAC_SHA512),
    };
    let header = json!({ "alg": alg, "typ": "JWT" });
    let claims = json!({ "sub": payload, "aud": [payload] });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = ring::hmac::sign(&ring::hmac::Key::new(ring_alg, key), input.as_bytes());
    let token = format!("{input}.{}", b64(signature.as_ref()));
    let Ok(jws) = UnverifiedJws::parse(&token) else {
        panic!("a token signed here does not parse: {token}");
    };
    assert_eq!(jws.payload, claims);
    assert_eq!(jws.verify_hmac(key), Ok(()), "{token}");
    // HMAC pads short keys with zero bytes, so `key` and `key` + NUL are the same key;
    // changing a byte never is.
    let mut other = key.to_vec();
    match other.first_mut() {
        Some(first) => *first ^= 1,
        None => other.push(1),
    }
    assert_eq!(jws.verify_hmac(&other), Err(JwsError::BadSignature));
    let forged = format!(
        "{}.{}",
        b64(b"{\"alg\":\"none\"}"),
        &token[token.find('.').map_or(0, |i| i + 1)..]
    );
    if let Ok(forged) = UnverifiedJws::parse(&forged) {
        assert!(forged.verify_hmac(key).is_err());
        assert!(forged.verify_with_jwks(&json!({ "keys": [] })).is_err());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let token = lines.next().unwrap_or_default();
    let key = lines.next().unwrap_or_default().as_bytes();
    let jwks = serde_json::from_str(lines.next().unwrap_or_default()).unwrap_or(Value::Null);
    check_parsed(token, key, &jwks);
    check_signed(token, key);
});
