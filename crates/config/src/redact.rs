//! Hides secret values in a serialised configuration.

use serde_yaml::Value;

/// What replaces a secret in `config dump`.
pub(crate) const MARKER: &str = "[REDACTED]";

/// Keys whose values are secret wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "client_secret",
    "password",
    "secret_key",
    "ssl_key",
    "encryption",
    "dsn",
];

/// Replaces every secret in `value` (a whole configuration) by [`MARKER`].
pub(crate) fn redact(value: &mut Value) {
    walk(value, false);
}

fn walk(value: &mut Value, in_keys: bool) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let Some(key) = key.as_str() else { continue };
                let secret = SECRET_KEYS.contains(&key) || (in_keys && key == "key");
                if secret && !child.is_null() {
                    *child = Value::String(MARKER.to_owned());
                } else if key == "uri" {
                    redact_uri_password(child);
                } else {
                    walk(child, key == "keys" || key == "tls");
                }
            }
        }
        Value::Sequence(items) => {
            for item in items {
                walk(item, in_keys);
            }
        }
        _ => {}
    }
}

/// A database URI may carry a password: `postgresql://user:PASSWORD@host/db`.
fn redact_uri_password(value: &mut Value) {
    if let Some(masked) = value.as_str().and_then(mask_uri_password) {
        *value = Value::String(masked);
    }
}

/// The URI with its password (user-info or `password=` parameter) replaced by
/// `REDACTED`; `None` when it has no password.
pub(crate) fn mask_uri_password(text: &str) -> Option<String> {
    let mut url = url::Url::parse(text).ok()?;
    let mut masked = false;
    if url.password().is_some() {
        url.set_password(Some("REDACTED")).ok()?;
        masked = true;
    }
    if url.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "REDACTED".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        masked = true;
    }
    masked.then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_nested_secrets_and_uri_passwords() {
        let mut value: Value = serde_yaml::from_str(
            "secrets:\n  encryption: abc\n  keys:\n  - kid: k1\n    key: PEM\n\
             matrix:\n  secret: s3\n  homeserver: example.com\n\
             database:\n  uri: postgresql://u:hunter2@db/mas\n",
        )
        .unwrap();
        redact(&mut value);
        let out = serde_yaml::to_string(&value).unwrap();
        assert!(!out.contains("abc"), "{out}");
        assert!(!out.contains("PEM"), "{out}");
        assert!(!out.contains("s3"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("kid: k1"), "{out}");
        assert!(out.contains("example.com"), "{out}");
    }
}
