//! The `captcha` section: the CAPTCHA `/register` asks people to solve, checked with the
//! provider before an account is made.

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::Issues;

/// The CAPTCHA providers, by MAS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptchaService {
    /// Google reCAPTCHA v2 (the checkbox).
    RecaptchaV2,
    /// Cloudflare Turnstile.
    CloudflareTurnstile,
    /// hCaptcha.
    #[serde(rename = "hcaptcha")]
    HCaptcha,
}

/// `captcha`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptchaConfig {
    /// The provider; none asks for no CAPTCHA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<CaptchaService>,
    /// The public key the page's widget uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_key: Option<String>,
    /// The secret key the answer is checked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<Secret>,
}

impl CaptchaConfig {
    /// Whether nothing is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub(crate) fn validate(&self, issues: &mut Issues) {
        if self.service.is_none() {
            return;
        }
        if self.site_key.as_deref().is_none_or(str::is_empty) {
            issues.push(
                &["captcha", "site_key"],
                "is required when a service is set",
            );
        }
        if self
            .secret_key
            .as_ref()
            .is_none_or(|s| s.expose().is_empty())
        {
            issues.push(
                &["captcha", "secret_key"],
                "is required when a service is set",
            );
        }
    }
}
