//! The `email` section, as the mail crate takes it.

use mas_config::RootConfig;
use mas_config::sections::{EmailSmtpMode, EmailTransport};
use mas_email::{Mailer, SmtpMode, TransportSettings};

/// The mailer the configuration describes.
pub(crate) fn mailer(config: &RootConfig) -> anyhow::Result<Mailer> {
    let email = &config.email;
    let settings = match email.transport {
        EmailTransport::Blackhole => TransportSettings::Blackhole,
        EmailTransport::Sendmail => TransportSettings::Sendmail {
            command: email.command.clone(),
        },
        EmailTransport::Smtp => TransportSettings::Smtp {
            mode: match email.mode {
                Some(EmailSmtpMode::Plain) => SmtpMode::Plain,
                Some(EmailSmtpMode::Starttls) => SmtpMode::StartTls,
                // `config check` requires a mode with `smtp`; TLS is the safe reading.
                Some(EmailSmtpMode::Tls) | None => SmtpMode::Tls,
            },
            hostname: email.hostname.clone().unwrap_or_default(),
            port: email.port,
            credentials: email
                .username
                .clone()
                .zip(email.password.as_ref().map(|p| p.expose().to_owned())),
        },
    };
    Ok(Mailer::new(settings, &email.from, &email.reply_to)?)
}

/// The name pages and mail call the service by: `branding.service_name`, else the host
/// of `http.public_base`.
pub(crate) fn service_name(config: &RootConfig) -> String {
    config.branding.service_name.clone().unwrap_or_else(|| {
        config
            .http
            .public_base
            .host_str()
            .unwrap_or("Matrix")
            .to_owned()
    })
}
