//! Property tests of configuration loading: hostile YAML, arbitrary values under the known
//! keys and hostile environment overrides never panic the loader; each gives a
//! configuration or a list of issues. A configuration that loads, written out again,
//! loads to the same configuration, and so does a generated one.

use std::sync::OnceLock;

use figment::Jail;
use mas_config::{ConfigError, RootConfig};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_yaml::{Mapping, Value};

use crate::MINIMAL;

/// Key paths of the file format, leaves and whole sections, where values are put.
const KNOWN_KEYS: &[&[&str]] = &[
    &["http"],
    &["http", "public_base"],
    &["http", "issuer"],
    &["http", "trusted_proxies"],
    &["http", "listeners"],
    &["database"],
    &["database", "uri"],
    &["database", "host"],
    &["database", "port"],
    &["database", "max_connections"],
    &["database", "min_connections"],
    &["database", "connect_timeout"],
    &["database", "idle_timeout"],
    &["database", "ssl_mode"],
    &["matrix", "kind"],
    &["matrix", "homeserver"],
    &["matrix", "secret"],
    &["matrix", "secret_file"],
    &["matrix", "endpoint"],
    &["clients"],
    &["secrets", "encryption"],
    &["secrets", "encryption_file"],
    &["secrets", "keys"],
    &["passwords", "enabled"],
    &["passwords", "schemes"],
    &["passwords", "minimum_complexity"],
    &["account", "password_registration_enabled"],
    &["email", "transport"],
    &["email", "from"],
    &["email", "port"],
    &["branding", "service_name"],
    &["branding", "policy_uri"],
    &["rate_limiting", "login"],
    &["rate_limiting", "login", "per_ip", "burst"],
    &["rate_limiting", "login", "per_ip", "per_second"],
    &["telemetry"],
    &["experimental", "access_token_ttl"],
    &["experimental", "compat_sso_redirect_allowlist"],
    &["templates"],
    &["upstream_oauth2"],
    &["policy"],
];

/// Names that occur inside sections (listeners, clients, keys, schemes), so that maps
/// built from them get past the unknown-key check and reach the values' own checks.
const INNER_KEYS: &[&str] = &[
    "name",
    "resources",
    "binds",
    "address",
    "host",
    "port",
    "socket",
    "tls",
    "prefix",
    "client_id",
    "client_auth_method",
    "client_secret",
    "redirect_uris",
    "jwks",
    "kid",
    "key",
    "key_file",
    "password",
    "version",
    "algorithm",
    "cost",
    "secret",
    "per_ip",
    "burst",
    "per_second",
    "playground",
    "path",
];

/// Text made of YAML's indicators, directives, tags, anchors and odd scalars, known key
/// names, and any character at all.
fn hostile_yaml() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &[
        ": ",
        "- ",
        "\n",
        "  ",
        "    ",
        "{",
        "}",
        "[",
        "]",
        ", ",
        "&a ",
        "*a",
        "<<: ",
        "!!str ",
        "!!binary ",
        "!!map ",
        "!custom ",
        "? ",
        "|\n",
        ">-\n",
        "'",
        "\"",
        "# ",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "%TAG ! tag:x,2000:\n",
        "~",
        "null",
        "true",
        "no",
        "0x1F",
        "0o17",
        ".nan",
        "-.inf",
        "1e999",
        "-0",
        "18446744073709551616",
        "\t",
        "\\u0000",
        "http",
        "matrix",
        "clients",
        "secrets",
        "database",
        "listeners",
        "public_base",
        "homeserver",
        "encryption",
        "keys",
        "client_id",
        "https://x.example/",
        "sqlite://x",
    ];
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(PIECES).prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ],
        0..60,
    )
    .prop_map(|pieces| pieces.concat())
}

/// Short strings of parsers' favourite characters and anything else.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9:/._%@\\[\\]-]{0,24}",
        "(https?|sqlite|postgresql)://[a-z0-9.:@/-]{0,20}",
        any::<String>(),
    ]
}

/// A YAML scalar of any kind, strings from [`hostile_string`].
fn any_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        (0u64..100_000).prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|n| Value::Number(n.into())),
        hostile_string().prop_map(Value::String),
    ]
}

/// Any YAML value: mostly scalars, else lists and maps keyed by known or hostile names.
fn any_value() -> impl Strategy<Value = Value> {
    let nested = any_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            proptest::collection::vec(
                (
                    prop_oneof![
                        3 => proptest::sample::select(INNER_KEYS).prop_map(str::to_owned),
                        1 => hostile_string(),
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|pairs| {
                Value::Mapping(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (Value::String(k), v))
                        .collect::<Mapping>(),
                )
            }),
        ]
    });
    prop_oneof![2 => any_scalar(), 1 => nested]
}

/// Puts `value` at `path` in `doc`, making maps of whatever is in the way.
fn set(doc: &mut Value, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *doc = value;
        return;
    };
    if !doc.is_mapping() {
        *doc = Value::Mapping(Mapping::new());
    }
    let map = doc.as_mapping_mut().unwrap();
    let key = Value::String((*first).to_owned());
    if !map.contains_key(&key) {
        map.insert(key.clone(), Value::Null);
    }
    set(map.get_mut(&key).unwrap(), rest, value);
}

/// A configuration made by `config generate`, once: RSA key generation is slow.
fn generated_yaml() -> &'static str {
    static YAML: OnceLock<String> = OnceLock::new();
    YAML.get_or_init(|| mas_config::generate().unwrap().to_commented_yaml().unwrap())
}

/// Written out with its secrets and loaded again, `config` is the same configuration.
fn reloads_the_same(config: &RootConfig) -> Result<(), TestCaseError> {
    let written = config.to_yaml(true).unwrap();
    match RootConfig::from_yaml(&written) {
        Ok(again) => prop_assert_eq!(again.to_yaml(true).unwrap(), written),
        Err(e) => prop_assert!(
            false,
            "{}\nwritten from a loaded configuration: {}",
            written,
            e
        ),
    }
    Ok(())
}

/// `yaml` gives a configuration that reloads the same, or a non-empty list of issues.
fn loads_or_is_refused(yaml: &str) -> Result<(), TestCaseError> {
    match RootConfig::from_yaml(yaml) {
        Ok(config) => reloads_the_same(&config),
        Err(ConfigError::Invalid(issues)) => {
            prop_assert!(!issues.is_empty());
            Ok(())
        }
        Err(other) => {
            prop_assert!(false, "YAML text answered {:?}", other);
            Ok(())
        }
    }
}

/// Environment overrides of single keys: the variable and the key path it names.
const ENV_KEYS: &[(&str, &str)] = &[
    ("MAS_MATRIX__HOMESERVER", "matrix.homeserver"),
    ("MAS_MATRIX__KIND", "matrix.kind"),
    ("MAS_MATRIX__ENDPOINT", "matrix.endpoint"),
    ("MAS_HTTP__PUBLIC_BASE", "http.public_base"),
    ("MAS_DATABASE__PORT", "database.port"),
    ("MAS_DATABASE__MAX_CONNECTIONS", "database.max_connections"),
    ("MAS_PASSWORDS__ENABLED", "passwords.enabled"),
    ("MAS_SECRETS__ENCRYPTION", "secrets.encryption"),
    (
        "MAS_EXPERIMENTAL__ACCESS_TOKEN_TTL",
        "experimental.access_token_ttl",
    ),
    (
        "MAS_RATE_LIMITING__LOGIN__PER_IP__PER_SECOND",
        "rate_limiting.login.per_ip.per_second",
    ),
];

/// Loads `MINIMAL` from a file with `vars` set, in a jail that restores the environment.
fn load_with_env(vars: &[(&str, &str)]) -> Result<RootConfig, ConfigError> {
    let mut outcome = None;
    Jail::expect_with(|jail| {
        jail.create_file("config.yaml", MINIMAL)?;
        for (name, value) in vars {
            jail.set_env(name, value);
        }
        outcome = Some(mas_config::load(&["config.yaml"]));
        Ok(())
    });
    outcome.unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_yaml_loads_or_is_refused(text in hostile_yaml()) {
        loads_or_is_refused(&text)?;
        loads_or_is_refused(&format!("{MINIMAL}{text}"))?;
    }

    #[test]
    fn any_value_under_a_known_key_loads_or_is_refused(
        path in proptest::sample::select(KNOWN_KEYS),
        value in any_value(),
        on_generated in any::<bool>(),
    ) {
        let base = if on_generated { generated_yaml() } else { MINIMAL };
        let mut doc: Value = serde_yaml::from_str(base).unwrap();
        set(&mut doc, path, value);
        loads_or_is_refused(&serde_yaml::to_string(&doc).unwrap())?;
    }

    #[test]
    fn a_hostile_environment_override_loads_or_names_its_variable(
        (name, key) in proptest::sample::select(ENV_KEYS),
        value in hostile_string().prop_filter("no NUL in the environment", |v| !v.contains('\0')),
    ) {
        match load_with_env(&[(name, &value)]) {
            Ok(config) => reloads_the_same(&config)?,
            Err(ConfigError::Invalid(issues)) => {
                prop_assert!(!issues.is_empty());
                for issue in issues.iter().filter(|i| i.path.starts_with(key)) {
                    prop_assert_eq!(issue.origin.as_deref(), Some(name), "{}", issue);
                }
            }
            Err(other) => prop_assert!(false, "{} answered {:?}", name, other),
        }
    }

    #[test]
    fn a_valid_environment_override_is_the_value_loaded(
        ttl in 60u64..=86_400,
        homeserver in "[a-z]{1,12}\\.example\\.org",
        burst in 1u32..,
        per_second in 0.001f64..1000.0,
    ) {
        let ttl_text = ttl.to_string();
        let burst_text = burst.to_string();
        let per_second_text = per_second.to_string();
        // A limiter is given whole, as in MAS: both of its keys.
        let config = load_with_env(&[
            ("MAS_EXPERIMENTAL__ACCESS_TOKEN_TTL", &ttl_text),
            ("MAS_MATRIX__HOMESERVER", &homeserver),
            ("MAS_RATE_LIMITING__LOGIN__PER_IP__BURST", &burst_text),
            ("MAS_RATE_LIMITING__LOGIN__PER_IP__PER_SECOND", &per_second_text),
        ]);
        let config = config.unwrap();
        prop_assert_eq!(config.experimental.access_token_ttl, ttl);
        prop_assert_eq!(&config.matrix.homeserver, &homeserver);
        prop_assert_eq!(config.rate_limiting.login.per_ip.burst, burst);
        // Exactly the number written, not a near one.
        prop_assert_eq!(config.rate_limiting.login.per_ip.per_second.to_bits(), per_second.to_bits());
        reloads_the_same(&config)?;
    }
}

proptest! {
    // Each case generates an RSA key: a few cases say what is needed.
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn a_generated_configuration_loads_and_reloads_the_same(embedded in any::<bool>()) {
        let generated = if embedded {
            mas_config::generate_embedded("mas-data/mas.db").unwrap()
        } else {
            mas_config::generate().unwrap()
        };
        let loaded = RootConfig::from_yaml(&generated.to_commented_yaml().unwrap()).unwrap();
        prop_assert_eq!(loaded.to_yaml(true).unwrap(), generated.to_yaml(true).unwrap());
        reloads_the_same(&loaded)?;
    }
}
