//! `config generate`: the output is valid, complete and round-trips.

use mas_config::RootConfig;

#[test]
fn generated_config_passes_check_and_round_trips() {
    let generated = mas_config::generate().unwrap();
    let yaml = generated.to_commented_yaml().unwrap();
    assert!(yaml.starts_with("# Configuration of the Matrix authentication service"));
    let parsed = RootConfig::from_yaml(&yaml).unwrap();
    assert_eq!(
        parsed.to_yaml(true).unwrap(),
        generated.to_yaml(true).unwrap()
    );
    assert!(
        yaml.contains("\n# Keep these secret."),
        "sections carry comments:\n{yaml}"
    );
}

#[test]
fn generated_secrets_are_fresh_and_well_formed() {
    let one = mas_config::generate().unwrap();
    let two = mas_config::generate().unwrap();
    let encryption = one.secrets.encryption.as_ref().unwrap().expose();
    assert_eq!(encryption.len(), 64);
    assert!(encryption.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(
        encryption,
        two.secrets.encryption.as_ref().unwrap().expose()
    );
    assert_ne!(
        one.matrix.secret.as_ref().unwrap().expose(),
        two.matrix.secret.as_ref().unwrap().expose()
    );
    let keys: Vec<&str> = one
        .secrets
        .keys
        .iter()
        .map(|k| k.key.as_ref().unwrap().expose())
        .collect();
    assert_eq!(keys.len(), 2);
    // Both PKCS#8; the RSA key is larger than the EC one, and ring accepts the EC key.
    for key in &keys {
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    }
    let (_, rsa_der) = pkcs8::der::pem::decode_vec(keys[0].as_bytes()).unwrap();
    let (_, ec_der) = pkcs8::der::pem::decode_vec(keys[1].as_bytes()).unwrap();
    ring::signature::RsaKeyPair::from_pkcs8(&rsa_der).unwrap();
    let rsa = ring::signature::RsaKeyPair::from_pkcs8(&rsa_der).unwrap();
    assert_eq!(rsa.public().modulus_len(), 256, "RSA 2048");
    ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &ec_der,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    assert_ne!(one.secrets.keys[0].kid, one.secrets.keys[1].kid);
}

#[test]
fn the_embedded_default_uses_sqlite_and_loopback() {
    let config = mas_config::generate_embedded("mas-data/mas.db").unwrap();
    assert_eq!(
        config.database.backend(),
        mas_config::sections::DatabaseBackend::Sqlite
    );
    assert_eq!(
        config.database.connection_uri().unwrap(),
        "sqlite://mas-data/mas.db"
    );
    assert_eq!(config.http.listeners.len(), 1);
    assert_eq!(
        config.http.listeners[0].binds[0].address.as_deref(),
        Some("127.0.0.1:8080")
    );
    let yaml = config.to_commented_yaml().unwrap();
    RootConfig::from_yaml(&yaml).unwrap();
}
