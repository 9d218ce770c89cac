//! Errors of configuration loading, each naming where the bad value came from.

use std::fmt;
use std::path::PathBuf;

use figment::error::{Actual, Kind};

/// One problem found in the configuration: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file or environment variable the offending value came from, when known.
    pub origin: Option<String>,
    /// The key path, e.g. `clients[2].client_id`.
    pub path: String,
    /// What was expected, in words. Never contains a secret value.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a configuration could not be loaded, validated or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file named on the command line could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No configuration file was given.
    #[error("no configuration file given: pass -c/--config FILE or set MAS_CONFIG")]
    NoFile,
    /// The configuration was read but is not valid.
    #[error("{}", render_issues(.0))]
    Invalid(Vec<ConfigIssue>),
    /// Writing or serialising a configuration failed.
    #[error("cannot write configuration: {0}")]
    Write(String),
    /// Generating key material failed.
    #[error("cannot generate keys: {0}")]
    KeyGeneration(String),
}

impl ConfigError {
    /// The individual problems, when the configuration was invalid.
    #[must_use]
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            Self::Invalid(issues) => issues,
            _ => &[],
        }
    }
}

fn render_issues(issues: &[ConfigIssue]) -> String {
    let mut out = String::from("invalid configuration:");
    for issue in issues {
        out.push_str("\n  ");
        out.push_str(&issue.to_string());
    }
    out
}

/// Renders a figment key path (`["clients", "2", "client_id"]`) as `clients[2].client_id`.
pub(crate) fn render_path<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for segment in segments {
        let segment = segment.as_ref();
        if segment.parse::<usize>().is_ok() {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Names the kind of a value without showing it: the value could be a secret.
fn describe(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_) => "a number",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "nothing",
        Actual::Seq => "a list",
        Actual::Map => "a map",
        _ => "a value of another kind",
    }
}

/// The closest candidate to `got`, if one is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(got: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(got, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn expected_list(expected: &[&str]) -> String {
    expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turns figment's deserialisation errors into issues, with the origin of each.
pub(crate) fn from_figment(figment: &figment::Figment, error: figment::Error) -> Vec<ConfigIssue> {
    error
        .into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let message = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    match did_you_mean(field, expected) {
                        Some(hint) => format!("unknown key; did you mean `{hint}`?"),
                        None if expected.is_empty() => "unknown key".to_owned(),
                        None => format!("unknown key; expected one of {}", expected_list(expected)),
                    }
                }
                Kind::MissingField(field) => {
                    path.push(field.to_string());
                    "missing required key".to_owned()
                }
                Kind::UnknownVariant(got, expected) => match did_you_mean(got, expected) {
                    Some(hint) => format!("unknown value `{got}`; did you mean `{hint}`?"),
                    None => format!(
                        "unknown value `{got}`; expected one of {}",
                        expected_list(expected)
                    ),
                },
                Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                    format!("expected {expected}, found {}", describe(actual))
                }
                Kind::InvalidLength(len, expected) => {
                    format!("expected {expected}, found {len} items")
                }
                Kind::DuplicateField(field) => {
                    path.push((*field).to_owned());
                    "key given twice".to_owned()
                }
                Kind::Message(message) => message.clone(),
                other => other.to_string(),
            };
            let origin = e
                .metadata
                .as_ref()
                .and_then(|m| origin_of(m, &path))
                .or_else(|| origin_at(figment, &path));
            ConfigIssue {
                origin,
                path: render_path(&path),
                message,
            }
        })
        .collect()
}

/// The file or environment variable a value came from; `None` for inline sources.
fn origin_of(metadata: &figment::Metadata, path: &[String]) -> Option<String> {
    if let Some(figment::Source::File(file)) = &metadata.source {
        Some(file.display().to_string())
    } else if metadata.name.contains("environment") {
        // figment names the variable `MATRIX.KIND`; people set `MAS_MATRIX__KIND`.
        Some(format!(
            "{}{}",
            crate::ENV_PREFIX,
            path.join("__").to_ascii_uppercase()
        ))
    } else {
        None
    }
}

/// Finds which provider (file or environment variable) supplied the value at `path`.
pub(crate) fn origin_at<S: AsRef<str>>(figment: &figment::Figment, path: &[S]) -> Option<String> {
    let mut segments = path.iter().map(AsRef::as_ref);
    let first = segments.next()?;
    let mut value = figment.find_value(first).ok()?;
    let mut reached = vec![first.to_owned()];
    for segment in segments {
        let next = match &value {
            figment::value::Value::Dict(_, dict) => dict.get(segment).cloned(),
            figment::value::Value::Array(_, items) => segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).cloned()),
            _ => None,
        };
        match next {
            Some(next) => {
                value = next;
                reached.push(segment.to_owned());
            }
            None => break,
        }
    }
    let metadata = figment.get_metadata(value.tag())?;
    origin_of(metadata, &reached)
}
