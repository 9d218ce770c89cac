//! Every class of configuration error, each with its key path and origin.

use figment::Jail;
use mas_config::RootConfig;

use crate::{MINIMAL, messages};

fn errors_of(extra: &str) -> Vec<String> {
    let yaml = format!("{MINIMAL}{extra}");
    messages(&RootConfig::from_yaml(&yaml).unwrap_err())
}

#[test]
fn an_unknown_key_suggests_the_close_one() {
    assert_eq!(
        errors_of("http:\n  listners: []\n"),
        vec!["http.listners: unknown key; did you mean `listeners`?"]
    );
}

#[test]
fn an_unknown_key_without_a_close_match_lists_the_keys() {
    let errors = errors_of("matrix_extra: 1\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("matrix_extra: unknown key"),
        "{errors:?}"
    );
}

#[test]
fn an_invalid_ulid_names_the_list_index() {
    let errors = errors_of(
        "clients:\n  - client_id: 0000000000000000000SYNAPSE\n    client_auth_method: none\n\
         \x20 - client_id: 01J2ZQ9Y3XW6RMK1VF8H0N5D7B\n    client_auth_method: none\n\
         \x20 - client_id: not-a-ulid\n    client_auth_method: none\n",
    );
    assert_eq!(
        errors,
        vec!["clients[2].client_id: not a valid ULID (26 characters of Crockford base32)"]
    );
}

#[test]
fn a_missing_required_key_is_named() {
    assert_eq!(
        errors_of("clients:\n  - client_id: 0000000000000000000SYNAPSE\n"),
        vec!["clients[0].client_auth_method: missing required key"]
    );
}

#[test]
fn an_unknown_enum_value_suggests_the_close_one() {
    assert_eq!(
        errors_of("email:\n  transport: smpt\n"),
        vec!["email.transport: unknown value `smpt`; did you mean `smtp`?"]
    );
}

#[test]
fn a_wrong_type_never_shows_the_value() {
    let errors = messages(
        &RootConfig::from_yaml(
            "matrix:\n  secret: [hunter2]\nsecrets:\n  encryption: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        )
        .unwrap_err(),
    );
    assert_eq!(
        errors,
        vec!["matrix.secret: expected a string, found a list"]
    );
}

#[test]
fn a_malformed_secret_is_reported_without_its_value() {
    let errors = messages(
        &RootConfig::from_yaml("matrix:\n  secret: s\nsecrets:\n  encryption: hunter2hunter2\n")
            .unwrap_err(),
    );
    assert_eq!(
        errors,
        vec!["secrets.encryption: expected 64 hex characters (32 bytes)"]
    );
}

#[test]
fn required_secrets_are_reported_together() {
    let errors = messages(&RootConfig::from_yaml("{}").unwrap_err());
    assert_eq!(
        errors,
        vec![
            "matrix: one of `secret` or `secret_file` is required",
            "secrets: one of `encryption` or `encryption_file` is required",
        ]
    );
}

#[test]
fn client_auth_method_rules() {
    let errors = errors_of(
        "clients:\n\
         \x20 - client_id: 0000000000000000000SYNAPSE\n    client_auth_method: client_secret_basic\n\
         \x20 - client_id: 01J2ZQ9Y3XW6RMK1VF8H0N5D7B\n    client_auth_method: none\n    client_secret: x\n\
         \x20 - client_id: 01J2ZQ9Y3XW6RMK1VF8H0N5D7C\n    client_auth_method: private_key_jwt\n\
         \x20 - client_id: 01J2ZQ9Y3XW6RMK1VF8H0N5D7D\n    client_auth_method: client_secret_post\n    client_secret: x\n    client_secret_file: /x\n\
         \x20 - client_id: 0000000000000000000SYNAPSE\n    client_auth_method: none\n",
    );
    assert_eq!(
        errors,
        vec![
            "clients[0].client_secret: required with client_auth_method `client_secret_basic` (or `client_secret_file`)",
            "clients[1].client_secret: not allowed with client_auth_method `none`",
            "clients[2].jwks: `jwks` or `jwks_uri` is required with client_auth_method `private_key_jwt`",
            "clients[3].client_secret_file: cannot be set together with `client_secret`",
            "clients[4].client_id: client `0000000000000000000SYNAPSE` is declared more than once",
        ]
    );
}

#[test]
fn listener_binds_are_checked() {
    let errors = errors_of(
        "http:\n  listeners:\n    - name: web\n      resources: [{name: health}]\n      binds:\n\
         \x20       - address: nowhere\n        - {}\n        - host: localhost\n",
    );
    assert_eq!(
        errors,
        vec![
            "http.listeners[0].binds[0].address: not a socket address (e.g. `[::]:8080` or `127.0.0.1:8080`)",
            "http.listeners[0].binds[1]: one of `address`, `host`/`port`, `socket` or `fd` is required",
            "http.listeners[0].binds[2]: `host` needs a `port`",
        ]
    );
}

#[test]
fn an_unknown_resource_suggests_the_close_one() {
    let errors = errors_of(
        "http:\n  listeners:\n    - resources: [{name: helth}]\n      binds: [{address: '127.0.0.1:1'}]\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("http.listeners[0].resources[0]")
            && errors[0].contains("did you mean `health`?"),
        "{errors:?}"
    );
}

#[test]
fn urls_ranges_and_numbers_are_checked() {
    let errors = errors_of(
        "http:\n  public_base: https://auth.example.com/sub\n  trusted_proxies: [10.0.0.0/99]\n\
         database:\n  uri: mysql://x\n  max_connections: 0\n\
         experimental:\n  access_token_ttl: 5\n\
         rate_limiting:\n  registration:\n    burst: 3\n    per_second: 0\n",
    );
    assert_eq!(
        errors,
        vec![
            "http.public_base: must end with a slash",
            "http.trusted_proxies[0]: not an IP network in CIDR notation (e.g. 10.0.0.0/8)",
            "database.uri: expected a `postgresql://...` or `sqlite://PATH` URI",
            "database.max_connections: must be at least 1",
            "rate_limiting.registration.per_second: must be a number above 0 and at most 1e9",
            "experimental.access_token_ttl: expected a number of seconds from 60 to 86400",
        ]
    );
}

#[test]
fn an_error_names_the_file_the_value_came_from() {
    Jail::expect_with(|jail| {
        jail.create_file("base.yaml", MINIMAL)?;
        jail.create_file(
            "clients.yaml",
            "clients:\n  - client_id: 0000000000000000000SYNAPSE\n    client_auth_method: client_secret_basic\n",
        )?;
        let error = mas_config::load(&["base.yaml", "clients.yaml"]).unwrap_err();
        let messages = messages(&error);
        assert_eq!(messages.len(), 1);
        assert!(
            messages[0].contains("clients.yaml: clients[0].client_secret: required"),
            "{messages:?}"
        );
        let error = mas_config::load(&["base.yaml", "bad.yaml"]);
        assert!(error.is_err());
        jail.create_file("typo.yaml", "passwords:\n  enabeld: true\n")?;
        let error = mas_config::load(&["base.yaml", "typo.yaml"]).unwrap_err();
        let messages = crate::messages(&error);
        assert!(
            messages[0]
                .ends_with("typo.yaml: passwords.enabeld: unknown key; did you mean `enabled`?"),
            "{messages:?}"
        );
        Ok(())
    });
}

#[test]
fn resource_entries_and_socket_modes_are_checked() {
    let errors = errors_of(
        "http:\n  listeners:\n\
         \x20   - resources: [{name: graphql, playgroud: true}]\n      binds: [{address: '127.0.0.1:1'}]\n\
         \x20   - resources: []\n      binds: [{socket: /run/mas.sock, mode: '999'}]\n",
    );
    assert_eq!(
        errors.len(),
        1,
        "serde stops at the first structural error: {errors:?}"
    );
    assert!(
        errors[0].contains("playgroud") && errors[0].contains("did you mean `playground`?"),
        "{errors:?}"
    );

    let errors = errors_of(
        "http:\n  listeners:\n    - resources: []\n      binds: [{socket: /run/mas.sock, mode: '999'}]\n",
    );
    assert_eq!(
        errors,
        vec![
            "http.listeners[0].resources: at least one resource is required",
            "http.listeners[0].binds[0].mode: expected octal permissions such as \"660\"",
        ]
    );
}

#[test]
fn database_password_pairs_and_client_certificates_are_checked() {
    let errors = errors_of(
        "database:\n  host: db\n  password: a\n  password_file: /run/secrets/db\n  ssl_key_file: /k.pem\n",
    );
    assert_eq!(
        errors,
        vec![
            "database.password_file: cannot be set together with `password`",
            "database: a client certificate (`ssl_certificate`) and key (`ssl_key`) go together",
        ]
    );
}
