//! Parsing of a full MAS file, merging of several files, environment overrides.

use figment::Jail;
use mas_config::sections::{ClientAuthMethod, HomeserverKind, PasswordAlgorithm, Resource};
use mas_config::{ConfigError, RootConfig};

use crate::fixture;

#[test]
fn a_full_mas_file_loads_with_its_values() {
    let config = mas_config::load(&[fixture("mas-full.yaml")]).unwrap();
    assert_eq!(
        config.http.public_base.as_str(),
        "https://auth.example.com/"
    );
    assert_eq!(config.http.listeners.len(), 2);
    assert_eq!(config.http.listeners[1].binds[0].port, Some(8081));
    assert!(
        config.http.listeners[0]
            .resources
            .contains(&Resource::Compat)
    );
    assert_eq!(config.matrix.kind, HomeserverKind::SynapseLegacy);
    assert_eq!(config.matrix.homeserver, "example.com");
    assert_eq!(config.clients.len(), 2);
    assert_eq!(
        config.clients[0].client_id.to_string(),
        "0000000000000000000SYNAPSE"
    );
    assert_eq!(
        config.clients[0].client_auth_method,
        ClientAuthMethod::ClientSecretBasic
    );
    assert_eq!(
        config.clients[0].client_secret.as_ref().unwrap().expose(),
        "SomeRandomSecret"
    );
    assert_eq!(
        config.passwords.schemes[0].algorithm,
        PasswordAlgorithm::Bcrypt
    );
    assert_eq!(config.database.max_connections, 20);
    assert_eq!(config.database.idle_timeout, Some(300));
    assert_eq!(config.experimental.access_token_ttl, 600);
    assert_eq!(config.experimental.compat_token_ttl, 900);
    assert!((config.rate_limiting.login.per_ip.per_second - 0.1).abs() < f64::EPSILON);
    // Untouched limiters keep MAS's defaults.
    assert_eq!(config.rate_limiting.login.per_account.burst, 1800);
    assert!(config.account.login_with_email_allowed);
    assert!(config.account.email_change_allowed);
    let policy = &config.policy.data;
    assert_eq!(policy.admin_users, ["root"]);
    assert!(policy.client_registration.allow_insecure_uris);
    let banned = policy.registration.banned_usernames.as_ref().unwrap();
    assert_eq!(banned.literals, ["admin"]);
    assert_eq!(banned.regexes, ["^bot-"]);
    assert_eq!(
        policy.allowed_domains.as_deref(),
        Some(&["example.com".to_owned(), "*.example.com".to_owned()][..])
    );
    assert_eq!(policy.requester.banned_ips, ["192.0.2.0/24"]);
}

#[test]
fn defaults_match_mas() {
    let config = RootConfig::from_yaml(crate::MINIMAL).unwrap();
    assert_eq!(config.http.public_base.as_str(), "http://[::]:8080/");
    assert_eq!(config.http.issuer().as_str(), "http://[::]:8080/");
    assert_eq!(config.http.listeners.len(), 2);
    assert_eq!(config.database.max_connections, 10);
    assert_eq!(config.database.connect_timeout, 30);
    assert_eq!(config.database.connection_uri().unwrap(), "postgresql://");
    assert_eq!(config.matrix.homeserver, "localhost:8008");
    assert_eq!(config.matrix.endpoint.as_str(), "http://localhost:8008/");
    assert_eq!(config.experimental.access_token_ttl, 300);
    assert_eq!(config.passwords.minimum_complexity, 3);
    assert_eq!(config.passwords.schemes.len(), 1);
}

#[test]
fn later_files_win_for_scalars_and_lists_concatenate() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "base.yaml",
            &format!(
                "{}clients:\n  - client_id: 0000000000000000000SYNAPSE\n    client_auth_method: none\n\
                 http:\n  public_base: https://one.example.com/\n  trusted_proxies: [10.0.0.0/8]\n",
                crate::MINIMAL
            ),
        )?;
        jail.create_file(
            "extra.yaml",
            "clients:\n  - client_id: 01J2ZQ9Y3XW6RMK1VF8H0N5D7B\n    client_auth_method: none\n\
             http:\n  public_base: https://two.example.com/\n",
        )?;
        let config = mas_config::load(&["base.yaml", "extra.yaml"]).unwrap();
        assert_eq!(config.clients.len(), 2, "lists concatenate across files");
        assert_eq!(config.http.public_base.as_str(), "https://two.example.com/");
        // A map key only the first file sets survives the merge.
        assert_eq!(config.http.trusted_proxies, vec!["10.0.0.0/8".to_owned()]);
        Ok(())
    });
}

#[test]
fn environment_overrides_single_keys() {
    Jail::expect_with(|jail| {
        jail.create_file("config.yaml", crate::MINIMAL)?;
        jail.set_env("MAS_HTTP__PUBLIC_BASE", "https://env.example.com/");
        jail.set_env("MAS_MATRIX__HOMESERVER", "env.example.com");
        jail.set_env("MAS_EXPERIMENTAL__ACCESS_TOKEN_TTL", "120");
        // Not configuration keys: no double underscore.
        jail.set_env("MAS_CONFIG", "config.yaml");
        jail.set_env("MAS_TEST_DATABASE_URL", "postgresql://x");
        let config = mas_config::load(&["config.yaml"]).unwrap();
        assert_eq!(config.http.public_base.as_str(), "https://env.example.com/");
        assert_eq!(config.matrix.homeserver, "env.example.com");
        assert_eq!(config.experimental.access_token_ttl, 120);
        Ok(())
    });
}

#[test]
fn an_invalid_environment_override_names_the_variable() {
    Jail::expect_with(|jail| {
        jail.create_file("config.yaml", crate::MINIMAL)?;
        jail.set_env("MAS_MATRIX__KIND", "synapse_legcy");
        let error = mas_config::load(&["config.yaml"]).unwrap_err();
        let messages = crate::messages(&error);
        assert_eq!(
            messages,
            vec![
                "MAS_MATRIX__KIND: matrix.kind: unknown value `synapse_legcy`; did you mean `synapse_legacy`?"
            ]
        );
        Ok(())
    });
}

#[test]
fn mas_config_lists_files_when_no_flag_is_given() {
    let from_env = mas_config::config_paths(&[], Some("a.yaml:b.yaml"));
    assert_eq!(
        from_env,
        vec![std::path::PathBuf::from("a.yaml"), "b.yaml".into()]
    );
    let flags = vec![std::path::PathBuf::from("c.yaml")];
    assert_eq!(mas_config::config_paths(&flags, Some("a.yaml")), flags);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let error = mas_config::load(&["/nonexistent/mas.yaml"]).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(
        error.to_string().contains("/nonexistent/mas.yaml"),
        "{error}"
    );
}

#[test]
fn dump_hides_secrets_unless_asked() {
    let config = mas_config::load(&[fixture("mas-full.yaml")]).unwrap();
    let dumped = config.to_yaml(false).unwrap();
    for secret in [
        "SomeRandomSecret",
        "AnotherRandomSecret",
        "db-password-not-to-leak",
        "mail-password",
        "0f0e0d0c",
    ] {
        assert!(!dumped.contains(secret), "{secret} leaked in:\n{dumped}");
    }
    assert!(dumped.contains("[REDACTED]"));
    let full = config.to_yaml(true).unwrap();
    assert!(full.contains("SomeRandomSecret"));
    // Debug output (what a log line would show) never holds a secret either.
    let debug = format!("{config:?}");
    assert!(!debug.contains("SomeRandomSecret") && !debug.contains("AnotherRandomSecret"));
}

#[test]
fn database_password_file_is_read_and_never_displayed() {
    Jail::expect_with(|jail| {
        jail.create_file("db-password", "s3cr3t/with?chars\n")?;
        jail.create_file(
            "config.yaml",
            &format!(
                "{}database:\n  host: db.example.com\n  username: mas\n  password_file: db-password\n  database: mas\n  ssl_key: KEY\n  ssl_certificate: CERT\n",
                crate::MINIMAL
            ),
        )?;
        let config = mas_config::load(&["config.yaml"]).unwrap();
        let uri = config.database.connection_uri().unwrap();
        assert!(uri.starts_with("postgresql://?"), "{uri}");
        assert!(
            uri.contains("host=db.example.com") && uri.contains("dbname=mas"),
            "{uri}"
        );
        assert!(
            uri.contains("password=s3cr3t%2Fwith%3Fchars&"),
            "newline trimmed, escaped: {uri}"
        );
        assert!(!config.database.display_uri().contains("s3cr3t"));
        let in_query = RootConfig::from_yaml(&format!(
            "{}database:\n  uri: postgresql:///mas?host=/run/pg&password=hunter2\n",
            crate::MINIMAL
        ))
        .unwrap();
        assert!(
            !in_query.database.display_uri().contains("hunter2"),
            "{}",
            in_query.database.display_uri()
        );
        let dumped = config.to_yaml(false).unwrap();
        assert!(!dumped.contains("KEY"), "{dumped}");
        Ok(())
    });
    let with_uri = RootConfig::from_yaml(&format!(
        "{}database:\n  uri: postgresql://mas:hunter2@db/mas\n",
        crate::MINIMAL
    ))
    .unwrap();
    assert_eq!(
        with_uri.database.display_uri(),
        "postgresql://mas:REDACTED@db/mas"
    );
}

#[test]
fn no_pool_timeouts_survive_a_dump_and_reload() {
    // Found by `properties::any_value_under_a_known_key_loads_or_is_refused`: `null` was
    // left out of the dump, and the reloaded file had the default timeouts again.
    let config = RootConfig::from_yaml(&format!(
        "{}database:\n  idle_timeout: null\n  max_lifetime: null\n",
        crate::MINIMAL
    ))
    .unwrap();
    assert_eq!(config.database.idle_timeout, None);
    assert_eq!(config.database.max_lifetime, None);
    for include_secrets in [true, false] {
        let dumped = config.to_yaml(include_secrets).unwrap();
        assert!(dumped.contains("idle_timeout: null"), "{dumped}");
        assert!(dumped.contains("max_lifetime: null"), "{dumped}");
    }
    let reloaded = RootConfig::from_yaml(&config.to_yaml(true).unwrap()).unwrap();
    assert_eq!(reloaded.database.idle_timeout, None);
    assert_eq!(reloaded.database.max_lifetime, None);
}

#[test]
fn every_key_without_effect_is_named_and_a_minimal_file_has_none() {
    let minimal = RootConfig::from_yaml(crate::MINIMAL).unwrap();
    assert_eq!(minimal.not_honoured(), Vec::<String>::new());
    let generated = mas_config::generate().unwrap();
    assert_eq!(generated.not_honoured(), Vec::<String>::new());

    // MAS's own full example: what it sets that does nothing here, each by key path.
    let full = mas_config::load(&[fixture("mas-full.yaml")]).unwrap();
    let notes = full.not_honoured().join("\n");
    // Its `policy` rules are all applied.
    assert!(!notes.contains("policy"), "{notes}");
    assert_eq!(full.admin_clients(), Ok(Vec::new()));
    let other_policy = RootConfig::from_yaml(&format!(
        "{}policy:\n  wasm_module: ./policy.wasm\n  data:\n    admin_clients: ['01J44QC8BCY7FCFM7WGHQGKMTJ']\n    admin_users: [alice]\n",
        crate::MINIMAL
    ))
    .unwrap();
    assert_eq!(
        other_policy.admin_clients(),
        Ok(vec!["01J44QC8BCY7FCFM7WGHQGKMTJ".parse().unwrap()])
    );
    let not_an_id = RootConfig::from_yaml(&format!(
        "{}policy:\n  data:\n    admin_clients: [my-client]\n",
        crate::MINIMAL
    ));
    let error = not_an_id.unwrap_err().to_string();
    assert!(error.contains("`my-client` is not a client ID"), "{error}");
    let notes = other_policy.not_honoured().join("\n");
    assert!(
        notes.contains("policy.wasm_module is accepted but has no effect"),
        "{notes}"
    );
    for (yaml, key) in [
        ("admin_clients: 7", "admin_clients"),
        ("registraton: {}", "registraton"),
        ("registration: {banned_names: {}}", "banned_names"),
        ("emails: {banned_addresses: {literal: [a]}}", "literal"),
    ] {
        let bad_policy =
            RootConfig::from_yaml(&format!("{}policy:\n  data:\n    {yaml}\n", crate::MINIMAL));
        let error = bad_policy.unwrap_err().to_string();
        assert!(error.contains(key), "{yaml}: {error}");
    }

    let extras = RootConfig::from_yaml(&format!(
        "{}\
http:\n  listeners:\n    - name: web\n      resources: [{{name: discovery}}, {{name: prometheus}}, {{name: adminapi}}, {{name: graphql}}, {{name: assets}}, {{name: connection-info}}]\n      binds: [{{address: '127.0.0.1:8080'}}]\n\
telemetry:\n  tracing: {{exporter: otlp, propagators: [tracecontext, jaeger]}}\n  metrics: {{exporter: otlp}}\n  sentry: {{dsn: 'https://key@sentry.example.com/1'}}\n\
branding: {{tos_uri: 'https://example.com/tos', logo_uri: 'https://example.com/logo.png'}}\n\
rate_limiting: {{account_recovery: {{per_ip: {{burst: 10, per_second: 1.0}}}}}}\n\
experimental: {{passkeys: {{enabled: true}}}}\n\
guest_invites: {{}}\n\
database: {{uri: 'postgresql://db', ssl_ca_file: /etc/ssl/ca.pem}}\n",
        crate::MINIMAL
    ))
    .unwrap();
    let notes = extras.not_honoured();
    for key in [
        "http.listeners[0].resources: `prometheus` serves nothing unless",
        "http.listeners[0].resources: `graphql`",
        "http.listeners[0].resources: `assets`",
        "http.listeners[0].resources: `connection-info`",
        "telemetry.tracing.propagators: `jaeger`",
        "telemetry.sentry.dsn",
        "branding.logo_uri",
        "experimental.passkeys",
        "guest_invites is accepted",
        "database.ssl_ca_file",
    ] {
        assert!(
            notes.iter().any(|n| n.starts_with(key)),
            "{key} not named in {notes:#?}"
        );
    }
    assert_eq!(notes.len(), 10, "{notes:#?}");
    assert!(
        !notes.iter().any(|n| n.contains("tos_uri")),
        "registration asks to accept the terms: {notes:#?}"
    );
    assert!(
        !notes.iter().any(|n| n.contains("rate_limiting")),
        "account recovery is throttled as configured: {notes:#?}"
    );
    assert!(!notes.iter().any(|n| n.contains("adminapi")), "{notes:#?}");
}

#[test]
fn a_captcha_needs_both_keys_and_open_registration() {
    let missing = RootConfig::from_yaml(&format!(
        "{}captcha:\n  service: hcaptcha\n  site_key: public\n",
        crate::MINIMAL
    ));
    let error = missing.unwrap_err().to_string();
    assert!(error.contains("captcha.secret_key: is required"), "{error}");
    let unknown = RootConfig::from_yaml(&format!(
        "{}captcha:\n  service: recaptcha_v3\n",
        crate::MINIMAL
    ));
    assert!(unknown.is_err());
    let closed = RootConfig::from_yaml(&format!(
        "{}captcha:\n  service: cloudflare_turnstile\n  site_key: public\n  secret_key: private\n",
        crate::MINIMAL
    ))
    .unwrap();
    assert_eq!(
        closed.captcha.service,
        Some(mas_config::sections::CaptchaService::CloudflareTurnstile)
    );
    let notes = closed.not_honoured();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("captcha.service is set, which has no effect")),
        "{notes:#?}"
    );
    let open = RootConfig::from_yaml(&format!(
        "{}captcha:\n  service: recaptcha_v2\n  site_key: public\n  secret_key: private\naccount:\n  password_registration_enabled: true\n  password_registration_email_required: false\n",
        crate::MINIMAL
    ))
    .unwrap();
    assert!(open.not_honoured().is_empty(), "{:#?}", open.not_honoured());
    // The secret is hidden in a dump.
    let dumped = open.to_yaml(false).unwrap();
    assert!(!dumped.contains("private"), "{dumped}");
}
