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
    if let Some(text) = value.as_str() {
        let masked = mask_uri_password(text);
        *value = Value::String(masked);
    }
}

/// What stands in for a password inside a URI.
const URI_MARKER: &str = "REDACTED";

/// The URI with whatever may be a password replaced by `REDACTED`: the part of the
/// user-info after its first `:`, and the value of a `password=` parameter.
///
/// This reads the text instead of parsing a URL, because a password with an unencoded
/// `#`, `?`, `/` or `@` makes parsing fail, or succeed with the password taken for a
/// port, path or fragment, and both used to print it. The user-info is everything
/// between `://` and the last `@`: a password may contain `@` and `/`, a host cannot
/// contain `@`, so this can only hide too much (a later `@` in the path or query),
/// never too little. A `password=` value runs to the next `&`. Without a `://`, all
/// but the scheme is hidden, since no part can be told apart; SQLite URIs are kept
/// whole, as they hold a file path and never a credential.
pub(crate) fn mask_uri_password(text: &str) -> String {
    if text.starts_with("sqlite:") {
        return text.to_owned();
    }
    let Some(scheme_end) = text.find("://") else {
        return match text.split_once(':') {
            Some((scheme, _)) if is_scheme(scheme) => format!("{scheme}:{URI_MARKER}"),
            _ => URI_MARKER.to_owned(),
        };
    };
    if !is_scheme(&text[..scheme_end]) {
        return URI_MARKER.to_owned();
    }
    let start = scheme_end + 3;
    let mut hidden = Vec::new();
    if let Some(at) = text[start..].rfind('@').map(|i| start + i)
        && let Some(colon) = text[start..at].find(':')
    {
        hidden.push(start + colon + 1..at);
    }
    hidden.extend(password_parameters(text, start));
    hidden.retain(|range| !range.is_empty());
    hidden.sort_by_key(|range| range.start);
    let mut out = String::with_capacity(text.len());
    let mut shown_from = 0;
    for range in hidden {
        if range.end <= shown_from {
            continue;
        }
        if range.start >= shown_from {
            out.push_str(&text[shown_from..range.start]);
            out.push_str(URI_MARKER);
        }
        // An overlapping range extends the hidden run already written.
        shown_from = range.end;
    }
    out.push_str(&text[shown_from..]);
    out
}

/// The byte ranges of the values of `password=` parameters in `text[start..]`. Every
/// `?` and `&` is taken as the start of a parameter, even one inside a password, so
/// that an unencoded `?` before the real query cannot hide a parameter from this.
fn password_parameters(text: &str, start: usize) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    for (i, c) in text[start..].char_indices() {
        if c != '?' && c != '&' {
            continue;
        }
        let key_start = start + i + 1;
        let rest = &text[key_start..];
        let Some(eq) = rest
            .find(['=', '&', '?'])
            .filter(|&j| rest[j..].starts_with('='))
        else {
            continue;
        };
        // Keys are compared decoded, as the database driver decodes them.
        let key: String = url::form_urlencoded::parse(&rest.as_bytes()[..eq])
            .map(|(k, _)| k.into_owned())
            .collect();
        if key.eq_ignore_ascii_case("password") {
            let value_start = key_start + eq + 1;
            let value_end = text[value_start..]
                .find('&')
                .map_or(text.len(), |j| value_start + j);
            found.push(value_start..value_end);
        }
    }
    found
}

/// Whether `text` is a URI scheme (a letter, then letters, digits, `+`, `-` or `.`).
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
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

    #[test]
    fn masks_passwords_that_break_url_parsing() {
        let cases = [
            (
                "postgresql://mas:p#ss?w/rd@db.example/mas",
                "postgresql://mas:REDACTED@db.example/mas",
            ),
            // Parses as a URL, with the password read as port 12 and a fragment.
            (
                "postgresql://mas:12#ab@127.0.0.1/mas",
                "postgresql://mas:REDACTED@127.0.0.1/mas",
            ),
            (
                "postgres://u:a@b/c@db:5433/mas",
                "postgres://u:REDACTED@db:5433/mas",
            ),
            (
                "postgresql://mas:hunter2@db/mas",
                "postgresql://mas:REDACTED@db/mas",
            ),
            (
                "postgresql://:hunter2@db/mas",
                "postgresql://:REDACTED@db/mas",
            ),
            (
                "postgresql://mas@db/mas?sslmode=require",
                "postgresql://mas@db/mas?sslmode=require",
            ),
            (
                "postgresql:///mas?host=/run/pg&password=hun@ter2&sslmode=require",
                "postgresql:///mas?host=/run/pg&password=REDACTED&sslmode=require",
            ),
            (
                "postgresql://db/mas?pass%77ord=hunter2#x",
                "postgresql://db/mas?pass%77ord=REDACTED",
            ),
            (
                "postgresql://mas:pw?x@db/mas?password=hunter2",
                "postgresql://mas:REDACTED@db/mas?password=REDACTED",
            ),
            // A later `@` makes more hidden than needed, never less.
            (
                "postgresql://mas:pw@db/mas?application_name=a@b",
                "postgresql://mas:REDACTED@b",
            ),
            ("postgresql:mas:hunter2@db/mas", "postgresql:REDACTED"),
            ("mas:hunter2@db/mas", "mas:REDACTED"),
            ("hunter2", "REDACTED"),
            ("p w://mas:hunter2@db", "REDACTED"),
            ("sqlite://mas-data/mas.db", "sqlite://mas-data/mas.db"),
            ("postgresql://", "postgresql://"),
        ];
        for (uri, expected) in cases {
            assert_eq!(mask_uri_password(uri), expected, "{uri}");
        }
    }
}
