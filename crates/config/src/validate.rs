//! Semantic checks that serde cannot express, collected with their key paths.

use crate::ConfigError;
use crate::error::{ConfigIssue, origin_at, render_path};

/// The problems found while validating a configuration.
#[derive(Debug, Default)]
pub struct Issues {
    found: Vec<(Vec<String>, String)>,
}

impl Issues {
    /// Records a problem at the key path `path` (segments; list indices as numbers).
    pub fn push<S: ToString>(&mut self, path: &[S], message: impl Into<String>) {
        self.found.push((
            path.iter().map(ToString::to_string).collect(),
            message.into(),
        ));
    }

    /// Whether nothing was found.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Turns the findings into an error naming, where known, the origin of each value.
    pub(crate) fn into_result(self, figment: Option<&figment::Figment>) -> Result<(), ConfigError> {
        if self.found.is_empty() {
            return Ok(());
        }
        let issues = self
            .found
            .into_iter()
            .map(|(path, message)| ConfigIssue {
                origin: figment.and_then(|f| origin_at(f, &path)),
                path: render_path(&path),
                message,
            })
            .collect();
        Err(ConfigError::Invalid(issues))
    }
}
