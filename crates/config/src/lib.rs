//! Configuration of the Matrix authentication service.
//!
//! The file format is the one of element-hq/matrix-authentication-service (MAS): the same
//! sections, keys and defaults, so a MAS deployment's `config.yaml` loads unchanged.
//! Files are merged in order (maps key by key, a later scalar wins, lists concatenate),
//! then `MAS_<SECTION>__<KEY>` environment variables override single values.

mod error;
mod generate;
mod redact;
pub mod sections;
mod validate;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Yaml};

pub use self::error::{ConfigError, ConfigIssue};
pub use self::generate::{generate, generate_embedded};
pub use self::sections::RootConfig;
pub use self::validate::Issues;

/// The environment variable prefix of overrides, as in MAS.
pub const ENV_PREFIX: &str = "MAS_";

/// Builds the layered configuration source: `files` in order, then environment overrides.
///
/// # Errors
/// [`ConfigError::NoFile`] when `files` is empty, [`ConfigError::Read`] when one of
/// them cannot be read.
pub fn figment<P: AsRef<Path>>(files: &[P]) -> Result<Figment, ConfigError> {
    if files.is_empty() {
        return Err(ConfigError::NoFile);
    }
    let mut figment = Figment::new();
    for file in files {
        let file = file.as_ref();
        // figment silently treats a missing file as empty; a typo in a path must not.
        std::fs::File::open(file).map_err(|source| ConfigError::Read {
            path: file.to_path_buf(),
            source,
        })?;
        figment = figment.admerge(Yaml::file_exact(file));
    }
    unreadable_overrides()?;
    Ok(figment.merge(env_overrides()))
}

/// Refuses the overrides figment 0.10 cannot read: in a quoted value, it finds the first
/// backslash escape by counting characters but cuts the text by bytes, so non-ASCII text
/// before it makes it panic or drop characters.
fn unreadable_overrides() -> Result<(), ConfigError> {
    let issues: Vec<ConfigIssue> = std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            let value = value.into_string().ok()?;
            let key = name.strip_prefix(ENV_PREFIX)?;
            if !key.contains("__") || !misread_escape(&value) {
                return None;
            }
            Some(ConfigIssue {
                path: key.to_ascii_lowercase().replace("__", "."),
                message: "a quoted value with a backslash escape after non-ASCII text cannot be \
                          read from the environment; write it without escapes, or in a \
                          configuration file"
                    .to_owned(),
                origin: Some(name),
            })
        })
        .collect();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(issues))
    }
}

/// Whether a quoted string in `value` has non-ASCII text before its first backslash: the
/// shape figment misreads (see [`unreadable_overrides`]). Strings are found as figment's
/// parser finds them: from a quote to the next quote that no backslash escapes.
fn misread_escape(value: &str) -> bool {
    let mut rest = value;
    while let Some(open) = rest.find('"') {
        let inner = &rest[open + 1..];
        let mut end = inner.len();
        let mut escaped = false;
        for (at, c) in inner.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = at;
                break;
            }
        }
        let string = &inner[..end];
        if string
            .find('\\')
            .is_some_and(|slash| !string[..slash].is_ascii())
        {
            return true;
        }
        rest = inner.get(end + 1..).unwrap_or("");
    }
    false
}

/// `MAS_SECTION__KEY=value` overrides. Variables without a double underscore
/// (`MAS_CONFIG`, `MAS_TEST_DATABASE_URL`, ...) are not configuration keys.
fn env_overrides() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

/// Loads, merges and validates the configuration from `files` and the environment.
///
/// # Errors
/// See [`figment`] and [`RootConfig::from_figment`].
pub fn load<P: AsRef<Path>>(files: &[P]) -> Result<RootConfig, ConfigError> {
    RootConfig::from_figment(&figment(files)?)
}

impl RootConfig {
    /// Extracts and validates the configuration from a prepared figment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem found, each naming its key path and
    /// the file or variable it came from.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let config: Self = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(error::from_figment(figment, e)))?;
        let mut issues = Issues::default();
        config.validate(&mut issues);
        issues.into_result(Some(figment))?;
        Ok(config)
    }

    /// Parses and validates a configuration from YAML text alone (no environment).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] as [`RootConfig::from_figment`].
    pub fn from_yaml(yaml: &str) -> Result<Self, ConfigError> {
        Self::from_figment(&Figment::from(Yaml::string(yaml)))
    }

    /// Serialises this configuration as YAML; secrets are replaced by a marker unless
    /// `include_secrets` is set.
    ///
    /// # Errors
    /// [`ConfigError::Write`] if serialisation fails.
    pub fn to_yaml(&self, include_secrets: bool) -> Result<String, ConfigError> {
        let mut value =
            serde_yaml::to_value(self).map_err(|e| ConfigError::Write(e.to_string()))?;
        if !include_secrets {
            redact::redact(&mut value);
        }
        serde_yaml::to_string(&value).map_err(|e| ConfigError::Write(e.to_string()))
    }
}

/// The list of configuration files: the `-c` flags if any, else `MAS_CONFIG`
/// (colon-separated), else the given fallback.
#[must_use]
pub fn config_paths(flags: &[PathBuf], env: Option<&str>) -> Vec<PathBuf> {
    if !flags.is_empty() {
        return flags.to_vec();
    }
    env.map(|v| {
        v.split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_escapes_after_non_ascii_text_are_spotted() {
        use super::misread_escape;
        for misread in [
            r#""é\n""#,
            r#"["x\n", "é\n"]"#,
            r#"{a="ü\t"}"#,
            "\"\u{10cac}\\\u{11347}\"",
        ] {
            assert!(misread_escape(misread), "{misread}");
        }
        for fine in [
            "é\\n",
            r#""\né""#,
            r#""é""#,
            r#"["é", "\n"]"#,
            "plain",
            r#""a\"é\n""#,
        ] {
            assert!(!misread_escape(fine), "{fine}");
        }
    }
}
