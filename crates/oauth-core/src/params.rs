//! Request parameters (form bodies, queries) checked the way OAuth requires: a repeated
//! parameter is an error, and no value may carry NUL or other control characters.

use crate::error::OAuthError;

/// Decoded `application/x-www-form-urlencoded` parameters.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a form body or query string.
    ///
    /// # Errors
    /// `invalid_request` when a name or value holds a control character (NUL included)
    /// or the bytes are not UTF-8.
    pub fn parse(raw: &[u8]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(raw).is_err() {
            return Err(OAuthError::invalid_request(
                "the parameters are not valid UTF-8",
            ));
        }
        let mut pairs = Vec::new();
        for (name, value) in url::form_urlencoded::parse(raw) {
            if name.chars().chain(value.chars()).any(char::is_control) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` contains a control character",
                    name.escape_default()
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, if present and not empty.
    ///
    /// # Errors
    /// `invalid_request` when `name` is given more than once.
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{name}` is repeated"
            )));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// The value of a required parameter.
    ///
    /// # Errors
    /// `invalid_request` when it is missing, empty or repeated.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter `{name}` is required")))
    }
}
