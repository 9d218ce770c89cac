//! Keys, signatures and discovery metadata.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use mas_oauth_core::jose::{JwsError, UnverifiedJws};
use mas_oauth_core::{Endpoints, KeyError, KeyStore, ProviderMetadata, SigningAlgorithm};
use serde_json::json;

mod authorization_server;
mod introspection_cache;
mod properties;

fn generated_pems() -> Vec<String> {
    let config = mas_config::generate().unwrap();
    config
        .secrets
        .keys
        .iter()
        .map(|k| k.key.as_ref().unwrap().expose().to_owned())
        .collect()
}

#[test]
fn generated_keys_load_and_publish_public_parts_only() {
    let pems = generated_pems();
    let store = KeyStore::from_pems(
        pems.iter()
            .map(|p| (Some("k1"), p.as_str()))
            .take(1)
            .chain(pems.iter().skip(1).map(|p| (None, p.as_str()))),
    )
    .unwrap();
    let jwks = store.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["kid"], "k1");
    assert_eq!(keys[0]["use"], "sig");
    assert_eq!(keys[1]["kty"], "EC");
    assert_eq!(keys[1]["crv"], "P-256");
    for key in keys {
        assert!(
            key.get("d").is_none() && key.get("p").is_none(),
            "no private member: {key}"
        );
    }
    // A missing kid is the RFC 7638 thumbprint: 43 base64url characters, stable.
    let derived = keys[1]["kid"].as_str().unwrap();
    assert_eq!(derived.len(), 43);
    let again = KeyStore::from_pems([(None, pems[1].as_str()), (None, pems[0].as_str())]).unwrap();
    assert_eq!(again.jwks()["keys"][0]["kid"], derived);
    assert_eq!(
        store.algorithms(),
        vec![SigningAlgorithm::Rs256, SigningAlgorithm::Es256]
    );
}

#[test]
fn signatures_verify_against_the_published_keys() {
    let pems = generated_pems();
    let store = KeyStore::from_pems(pems.iter().map(|p| (None, p.as_str()))).unwrap();
    let claims = json!({"iss": "https://auth.example.com/", "sub": "alice"});
    for alg in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256] {
        let jwt = store.sign(alg, &claims).unwrap();
        let parsed = UnverifiedJws::parse(&jwt).unwrap();
        assert_eq!(parsed.alg(), alg.as_str());
        assert_eq!(parsed.payload, claims);
        parsed.verify_with_jwks(&store.jwks()).unwrap();
        // Another store's keys do not verify it.
        let other =
            KeyStore::from_pems(generated_pems().iter().map(|p| (None, p.as_str()))).unwrap();
        let mut foreign = other.jwks();
        assert_eq!(
            parsed.verify_with_jwks(&foreign),
            Err(JwsError::NoKey),
            "no key has that kid"
        );
        // Same kid, other key material: the signature is refused.
        let kid = parsed.header["kid"].clone();
        for key in foreign["keys"].as_array_mut().unwrap() {
            key["kid"] = kid.clone();
        }
        assert_eq!(
            parsed.verify_with_jwks(&foreign),
            Err(JwsError::BadSignature)
        );
    }
    assert_eq!(
        store.sign(SigningAlgorithm::Es384, &claims),
        Err(KeyError::NoKeyFor("ES384"))
    );
}

#[test]
fn pkcs1_rsa_keys_load_and_ec_only_is_refused() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let mut rng = rand::rng();
    let rsa = rsa::PrivateKey::new(&mut rng, 2048).unwrap();
    let pkcs1 = rsa.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    KeyStore::from_pems([(None, pkcs1.as_str())]).unwrap();
    let pems = generated_pems();
    assert_eq!(
        KeyStore::from_pems([(None, pems[1].as_str())]).unwrap_err(),
        KeyError::NoRsaKey
    );
    assert_eq!(
        KeyStore::from_pems([(None, "not a key")]).unwrap_err(),
        KeyError::NotPem { index: 0 }
    );
}

#[test]
fn hmac_assertions_verify_in_constant_time_and_none_is_refused() {
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let payload = json!({"iss": "client"});
    let input = format!("{}.{}", b64(&header), b64(&payload));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
    let tag = ring::hmac::sign(&key, input.as_bytes());
    let jwt = format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    );
    let parsed = UnverifiedJws::parse(&jwt).unwrap();
    parsed.verify_hmac(b"secret").unwrap();
    assert_eq!(parsed.verify_hmac(b"guess"), Err(JwsError::BadSignature));

    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&payload));
    let parsed = UnverifiedJws::parse(&none).unwrap();
    assert!(matches!(
        parsed.verify_hmac(b"secret"),
        Err(JwsError::UnsupportedAlgorithm(_))
    ));
    assert_eq!(
        parsed.verify_with_jwks(&json!({"keys": []})),
        Err(JwsError::NoKey)
    );
    assert_eq!(
        UnverifiedJws::parse("a.b").unwrap_err(),
        JwsError::Malformed
    );
}

#[test]
fn discovery_advertises_the_code_flow_only_and_mas_extensions() {
    let base = url::Url::parse("https://auth.example.com/").unwrap();
    let endpoints = Endpoints::new(base.clone(), &base);
    let doc = serde_json::to_value(ProviderMetadata::new(
        &endpoints,
        &[SigningAlgorithm::Rs256, SigningAlgorithm::Es256],
        false,
    ))
    .unwrap();
    assert_eq!(doc["issuer"], "https://auth.example.com/");
    assert_eq!(
        doc["token_endpoint"],
        "https://auth.example.com/oauth2/token"
    );
    assert_eq!(doc["jwks_uri"], "https://auth.example.com/oauth2/keys.json");
    assert_eq!(
        doc["authorization_endpoint"],
        "https://auth.example.com/authorize"
    );
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        doc["account_management_uri"],
        "https://auth.example.com/account/"
    );
    assert!(
        doc["account_management_actions_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("org.matrix.session_end"))
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    assert_eq!(
        doc["registration_endpoint"],
        "https://auth.example.com/oauth2/registration"
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        "https://auth.example.com/oauth2/device"
    );
    assert!(
        !doc["prompt_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("create"))
    );
}

/// DER: a TLV with a short or two-byte length.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if value.len() < 0x80 {
        out.push(u8::try_from(value.len()).unwrap());
    } else {
        out.push(0x81);
        out.push(u8::try_from(value.len()).unwrap());
    }
    out.extend_from_slice(value);
    out
}

/// A SEC1 `EC PRIVATE KEY` PEM (as OpenSSL and MAS write them), built from ring's key.
fn sec1_pem(curve_oid: &[u8]) -> String {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    // The private scalar: the 32 bytes after the OCTET STRING header inside ring's PKCS#8.
    let der = pkcs8.as_ref();
    let at = der.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
    let scalar = &der[at..at + 32];
    let mut public = vec![0];
    public.extend_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
    let mut body = tlv(0x02, &[1]);
    body.extend(tlv(0x04, scalar));
    body.extend(tlv(0xa0, &tlv(0x06, curve_oid)));
    body.extend(tlv(0xa1, &tlv(0x03, &public)));
    pkcs8::der::pem::encode_string("EC PRIVATE KEY", pkcs8::LineEnding::LF, &tlv(0x30, &body))
        .unwrap()
}

#[test]
fn mas_style_sec1_keys_load_and_unsupported_curves_are_skipped() {
    let rsa = generated_pems().remove(0);
    let p256 = sec1_pem(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
    assert!(p256.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let k256 = sec1_pem(&[0x2b, 0x81, 0x04, 0x00, 0x0a]);
    let store = KeyStore::from_pems([
        (Some("rsa"), rsa.as_str()),
        (Some("p256"), p256.as_str()),
        (Some("k256"), k256.as_str()),
    ])
    .unwrap();
    let jwks = store.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        ["rsa", "p256"],
        "the secp256k1 key is left out, not fatal"
    );
    assert_eq!(store.skipped().len(), 1);
    assert_eq!(store.skipped()[0].0, 2);
    let jwt = store
        .sign(SigningAlgorithm::Es256, &json!({"sub": "x"}))
        .unwrap();
    UnverifiedJws::parse(&jwt)
        .unwrap()
        .verify_with_jwks(&store.jwks())
        .unwrap();
}

#[test]
fn password_protected_keys_decrypt_with_their_password_only() {
    let plain = include_str!("../fixtures/p256-plain.pem");
    // The same P-256 key, encrypted by OpenSSL with PBKDF2 and with scrypt.
    for encrypted in [
        include_str!("../fixtures/p256-pbkdf2-aes256.pem"),
        include_str!("../fixtures/p256-scrypt-aes256.pem"),
    ] {
        let pem = mas_oauth_core::decrypt_pkcs8_pem(3, encrypted, b"correct-horse").unwrap();
        assert_eq!(pem.trim(), plain.trim(), "the very key OpenSSL encrypted");
        let wrong = mas_oauth_core::decrypt_pkcs8_pem(3, encrypted, b"wrong horse").unwrap_err();
        assert!(matches!(wrong, KeyError::Decrypt { index: 3 }), "{wrong}");
        assert!(!wrong.to_string().contains("horse"));
    }
    // A key that is not encrypted is not this function's business.
    assert!(matches!(
        mas_oauth_core::decrypt_pkcs8_pem(0, plain, b"correct-horse"),
        Err(KeyError::NotPem { index: 0 })
    ));
}

#[test]
fn debug_output_hides_key_material_and_peppers() {
    let pems = generated_pems();
    let store = KeyStore::from_pems(pems.iter().map(|p| (Some("k1"), p.as_str()))).unwrap();
    let shown = format!("{store:?}");
    // Neither the PEM nor any line of its base64 body appears.
    for pem in &pems {
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!shown.contains(line), "{shown}");
        }
    }
    assert!(!shown.contains("PRIVATE"), "{shown}");

    let scheme = mas_oauth_core::passwords::Scheme {
        version: 1,
        algorithm: mas_oauth_core::passwords::Algorithm::Argon2id,
        secret: Some(b"the-pepper-value".to_vec()),
        unicode_normalization: false,
    };
    let shown = format!("{scheme:?}");
    assert!(!shown.contains("the-pepper-value"), "{shown}");
    assert!(
        !shown.contains("116, 104, 101"),
        "not as bytes either: {shown}"
    );
    assert!(shown.contains("[REDACTED]"), "{shown}");
}
