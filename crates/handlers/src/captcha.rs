//! The CAPTCHA of `/register` (`captcha`): the page shows the provider's widget, and the
//! answer it puts in the form is checked with the provider's `siteverify` endpoint before
//! anything else about the form.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// The providers, with what differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaService {
    /// Google reCAPTCHA v2.
    RecaptchaV2,
    /// Cloudflare Turnstile.
    CloudflareTurnstile,
    /// hCaptcha.
    HCaptcha,
}

impl CaptchaService {
    /// Where answers are checked.
    fn verify_url(self) -> &'static str {
        match self {
            Self::RecaptchaV2 => "https://www.google.com/recaptcha/api/siteverify",
            Self::CloudflareTurnstile => {
                "https://challenges.cloudflare.com/turnstile/v0/siteverify"
            }
            Self::HCaptcha => "https://api.hcaptcha.com/siteverify",
        }
    }

    /// The form field the widget fills with its answer.
    pub(crate) fn field(self) -> &'static str {
        match self {
            Self::RecaptchaV2 => "g-recaptcha-response",
            Self::CloudflareTurnstile => "cf-turnstile-response",
            Self::HCaptcha => "h-captcha-response",
        }
    }

    /// The widget's script, and the class of the element it fills.
    pub(crate) fn widget(self) -> (&'static str, &'static str) {
        match self {
            Self::RecaptchaV2 => ("https://www.google.com/recaptcha/api.js", "g-recaptcha"),
            Self::CloudflareTurnstile => (
                "https://challenges.cloudflare.com/turnstile/v0/api.js",
                "cf-turnstile",
            ),
            Self::HCaptcha => ("https://js.hcaptcha.com/1/api.js", "h-captcha"),
        }
    }

    /// What the page's Content-Security-Policy must let in for the widget: its scripts,
    /// frames, styles and calls.
    pub(crate) fn sources(self) -> &'static str {
        match self {
            Self::RecaptchaV2 => {
                "https://www.google.com https://www.gstatic.com https://recaptcha.google.com"
            }
            Self::CloudflareTurnstile => "https://challenges.cloudflare.com",
            Self::HCaptcha => "https://hcaptcha.com https://*.hcaptcha.com",
        }
    }
}

/// Why an answer could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CaptchaError {
    /// The provider did not answer, or not as documented.
    #[error("the CAPTCHA provider could not be asked: {0}")]
    Unreachable(String),
}

/// The configured CAPTCHA.
pub struct Captcha {
    service: CaptchaService,
    /// The host of `http.public_base`, where the widget is shown.
    host: String,
    site_key: String,
    secret_key: String,
    verify_url: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Captcha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captcha")
            .field("service", &self.service)
            .field("site_key", &self.site_key)
            .finish_non_exhaustive()
    }
}

/// How long the provider has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Verdict {
    success: bool,
    /// Where the challenge was solved: a token solved on another site is refused.
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default, rename = "error-codes")]
    error_codes: Vec<String>,
}

impl Captcha {
    /// The CAPTCHA of `service` with these keys, shown on pages of `host`, checked at the
    /// provider's endpoint.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        service: CaptchaService,
        host: String,
        site_key: String,
        secret_key: String,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::outbound_client(TIMEOUT)?;
        Ok(Self {
            service,
            host,
            site_key,
            secret_key,
            verify_url: service.verify_url().to_owned(),
            http,
        })
    }

    /// The same, checking answers at `url` instead: a stand-in for the provider, or an
    /// egress proxy's address for it.
    #[must_use]
    pub fn verifying_at(mut self, url: &str) -> Self {
        url.clone_into(&mut self.verify_url);
        self
    }

    /// The provider.
    #[must_use]
    pub fn service(&self) -> CaptchaService {
        self.service
    }

    /// The public key the widget uses.
    #[must_use]
    pub fn site_key(&self) -> &str {
        &self.site_key
    }

    /// Whether the provider says `answer` (the widget's token) is a solved challenge,
    /// for a person at `ip`.
    ///
    /// # Errors
    /// [`CaptchaError::Unreachable`] when the provider cannot be asked.
    pub async fn verify(&self, answer: &str, ip: Option<IpAddr>) -> Result<bool, CaptchaError> {
        let mut form = vec![
            ("secret", self.secret_key.clone()),
            ("response", answer.to_owned()),
        ];
        if let Some(ip) = ip {
            form.push(("remoteip", ip.to_canonical().to_string()));
        }
        if self.service == CaptchaService::HCaptcha {
            form.push(("sitekey", self.site_key.clone()));
        }
        let response = self
            .http
            .post(&self.verify_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| CaptchaError::Unreachable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(CaptchaError::Unreachable(format!(
                "it answered {}",
                response.status()
            )));
        }
        let verdict: Verdict = response
            .json()
            .await
            .map_err(|e| CaptchaError::Unreachable(e.without_url().to_string()))?;
        if !verdict.success {
            tracing::info!(errors = ?verdict.error_codes, "CAPTCHA answer refused by the provider");
            return Ok(false);
        }
        // As MAS: only a challenge solved on this service's pages counts (a site key may
        // be set to accept solutions from anywhere).
        if verdict.hostname.as_deref() != Some(self.host.as_str()) {
            tracing::info!(hostname = ?verdict.hostname, "CAPTCHA solved on another site: refused");
            return Ok(false);
        }
        Ok(true)
    }
}
