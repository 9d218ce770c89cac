//! Translation catalogues in Fluent, one per language, and the choice of a language
//! from the `Accept-Language` a browser sends. English is the reference: every other
//! catalogue has exactly its messages, which [`Catalogue::missing`] checks, and a message
//! a catalogue lacks falls back to English.

use fluent_bundle::FluentResource;
use fluent_bundle::concurrent::FluentBundle;
use fluent_langneg::{NegotiationStrategy, negotiate_languages};
use unic_langid::LanguageIdentifier;

pub use fluent_bundle::{FluentArgs, FluentValue};

/// The languages pages and mail come in, English first (the fallback).
pub const LANGUAGES: [&str; 3] = ["en", "fr", "de"];

/// A language of [`LANGUAGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Locale(usize);

impl Locale {
    /// English.
    pub const ENGLISH: Self = Self(0);

    /// The best language for an `Accept-Language` header (RFC 9110 §12.5.4): the first
    /// one asked for that there is, by quality, else English.
    #[must_use]
    pub fn negotiate(accept_language: Option<&str>) -> Self {
        let Some(header) = accept_language else {
            return Self::ENGLISH;
        };
        let requested = ranked(header);
        let available: Vec<LanguageIdentifier> = LANGUAGES
            .iter()
            .filter_map(|tag| tag.parse().ok())
            .collect();
        let chosen = negotiate_languages(
            &requested,
            &available,
            available.first(),
            NegotiationStrategy::Lookup,
        );
        chosen
            .first()
            .and_then(|id| available.iter().position(|a| a == *id))
            .map_or(Self::ENGLISH, Self)
    }

    /// The language with this tag (`en`, `fr`, `de`), if there is one.
    #[must_use]
    pub fn from_tag(tag: &str) -> Option<Self> {
        LANGUAGES.iter().position(|t| *t == tag).map(Self)
    }

    /// Its tag, for `<html lang>` and `Content-Language`.
    #[must_use]
    pub fn tag(self) -> &'static str {
        LANGUAGES[self.0]
    }
}

/// The languages of an `Accept-Language` header, by their weight (`q`), in the order
/// written among equals; those weighted 0 (not wanted) and tags that do not parse are
/// left out. (Fluent's negotiation reads order only.)
fn ranked(header: &str) -> Vec<LanguageIdentifier> {
    let mut weighted: Vec<(u16, LanguageIdentifier)> = header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let tag = parts.next()?.parse::<LanguageIdentifier>().ok()?;
            let weight = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(Some(1000), weight)?;
            (weight > 0).then_some((weight, tag))
        })
        .collect();
    weighted.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
    weighted.into_iter().map(|(_, tag)| tag).collect()
}

/// A weight (RFC 9110 §12.4.2: `0` to `1`, three decimals at most) in thousandths.
fn weight(q: &str) -> Option<u16> {
    let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Why catalogues cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// A catalogue is not valid Fluent, or defines a message twice.
    #[error("the {language} catalogue is broken: {reason}")]
    Broken {
        /// Its language.
        language: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The messages of every language.
pub struct Catalogue {
    bundles: Vec<FluentBundle<FluentResource>>,
    ids: Vec<Vec<String>>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("messages", &self.ids.first().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl Catalogue {
    /// Loads the Fluent sources, one per language of [`LANGUAGES`], in that order.
    ///
    /// # Errors
    /// [`CatalogueError::Broken`] for a source that does not parse or repeats a message.
    pub fn new(sources: [&str; LANGUAGES.len()]) -> Result<Self, CatalogueError> {
        let mut bundles = Vec::new();
        let mut ids = Vec::new();
        for (language, source) in LANGUAGES.into_iter().zip(sources) {
            let broken = |reason: String| CatalogueError::Broken { language, reason };
            let resource = FluentResource::try_new(source.to_owned())
                .map_err(|(_, errors)| broken(format!("{errors:?}")))?;
            let mut names: Vec<String> = resource
                .entries()
                .filter_map(|entry| match entry {
                    fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                    _ => None,
                })
                .collect();
            names.sort();
            let id: LanguageIdentifier = language.parse().map_err(|e| broken(format!("{e}")))?;
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // Pages are HTML: no Unicode isolation marks around arguments.
            bundle.set_use_isolating(false);
            bundle
                .add_resource(resource)
                .map_err(|errors| broken(format!("{errors:?}")))?;
            bundles.push(bundle);
            ids.push(names);
        }
        Ok(Self { bundles, ids })
    }

    /// The message `id` in `locale` (English when that catalogue lacks it, the ID itself
    /// when English does too), with `args` filled in.
    #[must_use]
    pub fn message(&self, locale: Locale, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        self.format(locale, id, args).0
    }

    /// [`Catalogue::message`], with what went wrong filling it in: an argument it names
    /// that `args` lacks, a message it refers to that does not exist, or `id` itself
    /// missing (the text then shows a placeholder).
    #[must_use]
    pub fn format(
        &self,
        locale: Locale,
        id: &str,
        args: Option<&FluentArgs<'_>>,
    ) -> (String, Vec<String>) {
        for bundle in [&self.bundles[locale.0], &self.bundles[0]] {
            if let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) {
                let mut errors = Vec::new();
                let text = bundle
                    .format_pattern(pattern, args, &mut errors)
                    .into_owned();
                return (text, errors.iter().map(ToString::to_string).collect());
            }
        }
        (id.to_owned(), vec![format!("no message {id}")])
    }

    /// Whether English has the message `id`.
    #[must_use]
    pub fn has(&self, id: &str) -> bool {
        self.bundles[0].has_message(id)
    }

    /// For each other language, the messages English has and it lacks, and those it has
    /// that English does not: both empty when the catalogues are complete.
    #[must_use]
    pub fn missing(&self) -> Vec<(&'static str, Vec<String>, Vec<String>)> {
        let english = &self.ids[0];
        LANGUAGES
            .iter()
            .zip(&self.ids)
            .skip(1)
            .map(|(language, ids)| {
                let lacks = english.iter().filter(|id| !ids.contains(id)).cloned();
                let extra = ids.iter().filter(|id| !english.contains(id)).cloned();
                (*language, lacks.collect(), extra.collect())
            })
            .collect()
    }
}

/// An argument value: text, or a number (which plural rules read).
#[must_use]
pub fn number(value: i64) -> FluentValue<'static> {
    FluentValue::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browsers_first_language_there_is_wins() {
        let pick = |header| Locale::negotiate(Some(header)).tag();
        assert_eq!(pick("fr-FR,fr;q=0.9,en;q=0.8"), "fr");
        assert_eq!(pick("de-CH, en;q=0.5"), "de");
        assert_eq!(pick("es-ES,es;q=0.9,de;q=0.7,fr;q=0.5"), "de");
        assert_eq!(pick("ja"), "en");
        assert_eq!(pick("en-GB"), "en");
        assert_eq!(pick("de;q=0.1, fr;q=0.9"), "fr");
        assert_eq!(pick(""), "en");
        assert_eq!(pick(";;;,,,q=oops"), "en");
        assert_eq!(pick("fr;q=0, de"), "de", "q=0 means not wanted");
        assert_eq!(
            pick("fr;q=2, de;q=0.5"),
            "de",
            "an impossible weight is ignored"
        );
        assert_eq!(pick("*"), "en");
        assert_eq!(pick("de;q=0.125, fr;q=0.13"), "fr");
        assert_eq!(pick("de;q=1.0, fr"), "de");
        assert_eq!(
            pick("de;q=0.1234, fr;q=0.1"),
            "fr",
            "four decimals is no weight"
        );
        assert_eq!(Locale::negotiate(None), Locale::ENGLISH);
        assert_eq!(Locale::from_tag("de").map(Locale::tag), Some("de"));
        assert_eq!(Locale::from_tag("xx"), None);
    }

    #[test]
    fn messages_fall_back_to_english_and_report_what_is_missing() {
        let catalogue = Catalogue::new([
            "hello = Hello { $name }\nonly-en = Only English\n",
            "hello = Bonjour { $name }\nonly-fr = Seulement\n",
            "hello = Hallo { $name }\nonly-en = Nur Englisch\n",
        ])
        .unwrap();
        let mut args = FluentArgs::new();
        args.set("name", "Ann");
        let fr = Locale::from_tag("fr").unwrap();
        assert_eq!(catalogue.message(fr, "hello", Some(&args)), "Bonjour Ann");
        assert_eq!(catalogue.message(fr, "only-en", None), "Only English");
        assert_eq!(catalogue.message(fr, "nowhere", None), "nowhere");
        let (text, errors) = catalogue.format(fr, "hello", None);
        assert_eq!(text, "Bonjour {$name}");
        assert_eq!(errors.len(), 1, "the missing argument is reported");
        assert_eq!(
            catalogue.missing(),
            [
                ("fr", vec!["only-en".to_owned()], vec!["only-fr".to_owned()]),
                ("de", vec![], vec![])
            ]
        );
        assert!(Catalogue::new(["a = {", "", ""]).is_err());
        assert!(Catalogue::new(["a = 1\na = 2\n", "", ""]).is_err());
    }
}
