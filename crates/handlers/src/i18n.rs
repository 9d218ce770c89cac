//! The pages' words: one Fluent catalogue per language (`locales/*.ftl`), and the
//! language of the request being answered, negotiated from `Accept-Language` by
//! [`negotiate`] around every page handler. Code writes a message as `tr!("id")` or
//! `tr!("id", name = value)`; templates as `{{ t("id", name=value) }}`, and `lang()` for
//! `<html lang>`. A message ID handed to a helper that fills it in later is written
//! `msg!("id")`, so that the test that every ID used exists finds it.

use std::sync::LazyLock;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use mas_i18n::{Catalogue, CatalogueError, FluentArgs, Locale};

static CATALOGUE: LazyLock<Result<Catalogue, CatalogueError>> = LazyLock::new(|| {
    Catalogue::new([
        include_str!("../locales/en.ftl"),
        include_str!("../locales/fr.ftl"),
        include_str!("../locales/de.ftl"),
    ])
});

tokio::task_local! {
    /// The language of the page being rendered.
    static LOCALE: Locale;
}

/// The pages' catalogue.
///
/// # Errors
/// When a built-in catalogue does not load (a test catches it first).
pub(crate) fn catalogue() -> Result<&'static Catalogue, &'static CatalogueError> {
    CATALOGUE.as_ref()
}

/// The language of the request being answered (English outside a page request).
pub(crate) fn locale() -> Locale {
    LOCALE.try_with(|l| *l).unwrap_or(Locale::ENGLISH)
}

/// A message ID that a helper fills in later (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Msg(pub(crate) &'static str);

/// `id` in the request's language, with `args`.
pub(crate) fn message(id: &str, args: Option<&FluentArgs<'_>>) -> String {
    match catalogue() {
        Ok(catalogue) => {
            let (text, errors) = catalogue.format(locale(), id, args);
            if !errors.is_empty() {
                tracing::error!(id, ?errors, "a page message was not filled in");
                // Tests render the pages: a page that names a message or an argument
                // wrongly fails them.
                #[cfg(test)]
                panic!("the message {id} was not filled in: {errors:?}");
            }
            text
        }
        Err(error) => {
            tracing::error!(%error, "the pages' catalogue does not load");
            id.to_owned()
        }
    }
}

/// A page message in the request's language: `tr!("id")`, `tr!("id", name = value)`.
macro_rules! tr {
    ($id:expr) => {
        $crate::i18n::message($id, None)
    };
    ($id:expr, $($name:ident = $value:expr),+ $(,)?) => {{
        let mut args = mas_i18n::FluentArgs::new();
        $(args.set(stringify!($name), mas_i18n::FluentValue::from($value));)+
        $crate::i18n::message($id, Some(&args))
    }};
}

/// A message ID for later: `msg!("id")`.
macro_rules! msg {
    ($id:literal) => {
        $crate::i18n::Msg($id)
    };
}

/// Why the policy refuses, in the request's language.
pub(crate) fn violation(violation: &mas_oauth_core::policy::Violation) -> String {
    use mas_oauth_core::policy::Violation as V;
    match violation {
        V::UsernameAllNumeric => tr!("violation-username-all-numeric"),
        V::UsernameBanned | V::UsernameNotAllowed => tr!("violation-username"),
        V::EmailDomainNotAllowed | V::EmailDomainBanned => tr!("violation-email-domain"),
        V::EmailNotAllowed | V::EmailBanned => tr!("violation-email"),
        V::PasswordTooShort(n) => tr!(
            "violation-password-too-short",
            min = i64::try_from(*n).unwrap_or(i64::MAX)
        ),
        V::PasswordNeedsLowercase => tr!("violation-password-lowercase"),
        V::PasswordNeedsUppercase => tr!("violation-password-uppercase"),
        V::PasswordNeedsNumber => tr!("violation-password-digit"),
        V::RequesterBanned => tr!("violation-requester"),
    }
}

/// Why a registration token cannot be used, in the request's language.
pub(crate) fn token_refusal(refusal: mas_data_model::TokenRefusal) -> String {
    use mas_data_model::TokenRefusal as R;
    match refusal {
        R::Revoked => tr!("token-revoked"),
        R::Expired => tr!("token-expired"),
        R::UsedUp => tr!("token-used-up"),
    }
}

/// The template function `t(id, **args)`: the message in the request's language. The
/// template escapes it like any other text.
#[allow(clippy::needless_pass_by_value)] // minijinja hands functions their arguments so.
pub(crate) fn template_message(id: &str, kwargs: minijinja::value::Kwargs) -> String {
    let mut args = FluentArgs::new();
    for name in kwargs.args() {
        let Ok(value) = kwargs.get::<minijinja::Value>(name) else {
            continue;
        };
        match i64::try_from(value.clone()) {
            Ok(n) if value.kind() == minijinja::value::ValueKind::Number => {
                args.set(name.to_owned(), mas_i18n::FluentValue::from(n));
            }
            _ => args.set(name.to_owned(), value.to_string()),
        }
    }
    message(id, Some(&args))
}

/// The template function `lang()`: the request's language tag.
pub(crate) fn template_lang() -> &'static str {
    locale().tag()
}

/// Answers the request in the language its `Accept-Language` asks for (of those there
/// are), saying which in `Content-Language`.
pub(crate) async fn negotiate(request: Request, next: Next) -> Response {
    let asked = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let locale = Locale::negotiate(asked);
    let mut response = LOCALE.scope(locale, next.run(request)).await;
    let headers = response.headers_mut();
    let is_page = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if is_page {
        headers.insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(locale.tag()),
        );
        headers.append(header::VARY, HeaderValue::from_static("accept-language"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The message IDs a source file uses: the literal first argument of `tr!(`,
    /// `msg!(` and `t(`.
    fn ids_in(source: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for opener in ["tr!(", "msg!(", "t("] {
            for (at, _) in source.match_indices(opener) {
                let before = source[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = source[at + opener.len()..].trim_start();
                if let Some(literal) = rest.strip_prefix('"')
                    && let Some(end) = literal.find('"')
                {
                    ids.push(literal[..end].to_owned());
                }
            }
        }
        ids
    }

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_catalogue_has_every_message_english_has() {
        let catalogue = super::catalogue().unwrap();
        for (language, lacks, extra) in catalogue.missing() {
            assert!(lacks.is_empty(), "{language} lacks {lacks:?}");
            assert!(extra.is_empty(), "{language} has unknown {extra:?}");
        }
    }

    /// Each message of a Fluent source, with the variables (`$name`) it uses.
    fn variables(source: &str) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut messages = std::collections::BTreeMap::<String, Vec<String>>::new();
        let mut current = None;
        for line in source.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if !line.starts_with(' ')
                && let Some((id, _)) = line.split_once(" = ")
            {
                current = Some(id.to_owned());
            }
            let Some(id) = &current else { continue };
            let names = messages.entry(id.clone()).or_default();
            for (at, _) in line.match_indices('$') {
                let name: String = line[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        for names in messages.values_mut() {
            names.sort();
        }
        messages
    }

    #[test]
    fn translations_fill_in_the_same_arguments_as_english() {
        let english = variables(include_str!("../locales/en.ftl"));
        for (language, source) in [
            ("fr", include_str!("../locales/fr.ftl")),
            ("de", include_str!("../locales/de.ftl")),
        ] {
            for (id, names) in variables(source) {
                assert_eq!(Some(&names), english.get(&id), "{language}: {id}");
            }
        }
    }

    #[test]
    fn every_message_the_pages_use_is_in_the_catalogue() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        files(&root.join("src"), &mut paths);
        files(&root.join("templates"), &mut paths);
        let catalogue = super::catalogue().unwrap();
        let mut used = 0;
        for path in paths {
            let source = std::fs::read_to_string(&path).unwrap();
            for id in ids_in(&source) {
                // This file's own examples.
                if path.ends_with("i18n.rs") {
                    continue;
                }
                used += 1;
                assert!(
                    catalogue.has(&id),
                    "{} uses {id:?}, which en.ftl lacks",
                    path.display()
                );
            }
        }
        assert!(
            used > 300,
            "only {used} messages found: is the scan broken?"
        );
    }
}
