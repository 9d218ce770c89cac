//! The `email` section: how outgoing mail is sent.

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::Issues;

/// Sender addresses and the mail transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The `From:` mailbox.
    #[serde(default = "default_mailbox")]
    pub from: String,
    /// The `Reply-To:` mailbox.
    #[serde(default = "default_mailbox")]
    pub reply_to: String,
    /// How mail leaves: dropped, SMTP or a sendmail command.
    #[serde(default)]
    pub transport: EmailTransport,
    /// SMTP connection security.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EmailSmtpMode>,
    /// SMTP server host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// SMTP server port (defaults by mode: 25, 465, 587).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// SMTP user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The sendmail command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

fn default_mailbox() -> String {
    "\"Authentication Service\" <root@localhost>".to_owned()
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            from: default_mailbox(),
            reply_to: default_mailbox(),
            transport: EmailTransport::Blackhole,
            mode: None,
            hostname: None,
            port: None,
            username: None,
            password: None,
            command: None,
        }
    }
}

/// Mail transports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTransport {
    /// Mail is dropped.
    #[default]
    Blackhole,
    /// An SMTP relay.
    Smtp,
    /// A local sendmail command.
    Sendmail,
}

/// SMTP connection security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailSmtpMode {
    /// No TLS.
    Plain,
    /// Plain, upgraded with STARTTLS.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

impl EmailConfig {
    pub(crate) fn validate(&self, issues: &mut Issues) {
        for (key, value) in [("from", &self.from), ("reply_to", &self.reply_to)] {
            if !looks_like_mailbox(value) {
                issues.push(
                    &["email", key],
                    "expected a mailbox like `Name <user@example.com>`",
                );
            }
        }
        let smtp_only = [
            ("mode", self.mode.is_some()),
            ("hostname", self.hostname.is_some()),
            ("port", self.port.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
        ];
        match self.transport {
            EmailTransport::Blackhole => {}
            EmailTransport::Smtp => {
                if self.mode.is_none() {
                    issues.push(
                        &["email", "mode"],
                        "required with transport `smtp`: plain, starttls or tls",
                    );
                }
                if self.hostname.is_none() {
                    issues.push(&["email", "hostname"], "required with transport `smtp`");
                }
                if self.username.is_some() != self.password.is_some() {
                    issues.push(&["email"], "`username` and `password` go together");
                }
                if self.command.is_some() {
                    issues.push(
                        &["email", "command"],
                        "only meaningful with transport `sendmail`",
                    );
                }
            }
            EmailTransport::Sendmail => {
                if self.command.is_none() {
                    issues.push(&["email", "command"], "required with transport `sendmail`");
                }
                for (key, set) in smtp_only {
                    if set {
                        issues.push(&["email", key], "only meaningful with transport `smtp`");
                    }
                }
            }
        }
    }
}

/// `user@host` or `Name <user@host>`; the mail library checks the rest when sending.
fn looks_like_mailbox(text: &str) -> bool {
    let address = match (text.rfind('<'), text.ends_with('>')) {
        (Some(start), true) => &text[start + 1..text.len() - 1],
        (None, false) => text,
        _ => return false,
    };
    let mut parts = address.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None) if !l.is_empty() && !d.is_empty())
}
