//! The `rate_limiting` section: token buckets for sensitive operations.

use serde::{Deserialize, Serialize};

use crate::Issues;

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimiterConfig {
    /// How many requests may come at once.
    pub burst: u32,
    /// How many requests per second refill the bucket.
    pub per_second: f64,
}

const fn limiter(burst: u32, per_second: f64) -> RateLimiterConfig {
    RateLimiterConfig { burst, per_second }
}

macro_rules! limiter_group {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident = ($burst:expr, $rate:expr)),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fdoc])*
                pub $field: RateLimiterConfig,
            )*
        }

        impl $name {
            fn each(&self) -> Vec<(&'static str, RateLimiterConfig)> {
                vec![$((stringify!($field), self.$field)),*]
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: limiter($burst, $rate)),* }
            }
        }
    };
}

limiter_group!(
    /// Limits on account recovery emails.
    AccountRecoveryLimits {
        /// Per client IP.
        per_ip = (3, 3.0 / 3600.0),
        /// Per email address.
        per_address = (3, 1.0 / 3600.0),
    }
);

limiter_group!(
    /// Limits on password login attempts.
    LoginLimits {
        /// Per client IP.
        per_ip = (3, 3.0 / 60.0),
        /// Per account.
        per_account = (1800, 1800.0 / 3600.0),
    }
);

limiter_group!(
    /// Limits on email verification.
    EmailAuthenticationLimits {
        /// Per client IP.
        per_ip = (5, 1.0 / 60.0),
        /// Per email address.
        per_address = (3, 1.0 / 3600.0),
        /// Emails sent per session.
        emails_per_session = (2, 1.0 / 300.0),
        /// Code attempts per session.
        attempt_per_session = (10, 1.0 / 60.0),
    }
);

fn registration() -> RateLimiterConfig {
    limiter(3, 3.0 / 3600.0)
}
fn username_availability() -> RateLimiterConfig {
    limiter(3, 1.0)
}
fn device_code_link() -> RateLimiterConfig {
    limiter(10, 1.0 / 60.0)
}

/// All rate limiters, with MAS's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingConfig {
    /// Account recovery.
    #[serde(default)]
    pub account_recovery: AccountRecoveryLimits,
    /// Password login.
    #[serde(default)]
    pub login: LoginLimits,
    /// Registration per IP.
    #[serde(default = "registration")]
    pub registration: RateLimiterConfig,
    /// Email verification.
    #[serde(default)]
    pub email_authentication: EmailAuthenticationLimits,
    /// Username availability checks per IP.
    #[serde(default = "username_availability")]
    pub username_availability: RateLimiterConfig,
    /// Device-code links per IP.
    #[serde(default = "device_code_link")]
    pub device_code_link: RateLimiterConfig,
}

impl Default for RateLimitingConfig {
    fn default() -> Self {
        Self {
            account_recovery: AccountRecoveryLimits::default(),
            login: LoginLimits::default(),
            registration: registration(),
            email_authentication: EmailAuthenticationLimits::default(),
            username_availability: username_availability(),
            device_code_link: device_code_link(),
        }
    }
}

impl RateLimitingConfig {
    pub(crate) fn validate(&self, issues: &mut Issues) {
        let mut all: Vec<(Vec<&str>, RateLimiterConfig)> = Vec::new();
        for (name, l) in self.account_recovery.each() {
            all.push((vec!["account_recovery", name], l));
        }
        for (name, l) in self.login.each() {
            all.push((vec!["login", name], l));
        }
        for (name, l) in self.email_authentication.each() {
            all.push((vec!["email_authentication", name], l));
        }
        all.push((vec!["registration"], self.registration));
        all.push((vec!["username_availability"], self.username_availability));
        all.push((vec!["device_code_link"], self.device_code_link));
        for (at, l) in all {
            let mut p = vec!["rate_limiting"];
            p.extend(at);
            if l.burst == 0 {
                let mut q = p.clone();
                q.push("burst");
                issues.push(&q, "must be at least 1");
            }
            if !(l.per_second.is_finite() && l.per_second > 0.0 && l.per_second <= 1e9) {
                p.push("per_second");
                issues.push(&p, "must be a number above 0 and at most 1e9");
            }
        }
    }
}
