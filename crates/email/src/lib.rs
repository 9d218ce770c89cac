//! Outgoing mail: a [`Mailer`] over one of MAS's transports (dropped, SMTP, a sendmail
//! command), and the messages the service sends, each in plain text and HTML from
//! templates built into the binary. It knows nothing of the configuration files: `cli`
//! turns the `email` section into [`TransportSettings`].

use std::sync::LazyLock;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSendmailTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mas_i18n::{Catalogue, FluentArgs};
use minijinja::Environment;

pub use mas_i18n::Locale;

/// How long an SMTP exchange may take before it counts as failed (and is retried).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// An address that is not a mailbox.
    #[error("not an email address: {0}")]
    InvalidAddress(String),
    /// The message could not be put together.
    #[error("cannot build the message: {0}")]
    Message(String),
    /// The transport failed; `transient` when trying again later may succeed.
    #[error("the mail transport failed: {message}")]
    Transport {
        /// What went wrong.
        message: String,
        /// Whether a later try may succeed (a server away, a 4xx answer).
        transient: bool,
    },
}

impl EmailError {
    /// Whether sending again later may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transport {
                transient: true,
                ..
            }
        )
    }
}

/// SMTP connection security (`email.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// No TLS (port 25 unless told otherwise).
    Plain,
    /// Plain, upgraded with STARTTLS (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// How mail leaves (`email.transport` and its keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSettings {
    /// Mail is dropped, with a log line.
    Blackhole,
    /// An SMTP relay.
    Smtp {
        /// Connection security.
        mode: SmtpMode,
        /// The server's host name (and TLS name).
        hostname: String,
        /// The port, when not the mode's usual one.
        port: Option<u16>,
        /// User name and password, when the relay wants them.
        credentials: Option<(String, String)>,
    },
    /// A local sendmail command (`sendmail` when none is given).
    Sendmail {
        /// The command.
        command: Option<String>,
    },
}

enum Transport {
    Blackhole,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Sendmail(AsyncSendmailTransport<Tokio1Executor>),
}

/// Sends the service's mail.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    reply_to: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match self.transport {
            Transport::Blackhole => "blackhole",
            Transport::Smtp(_) => "smtp",
            Transport::Sendmail(_) => "sendmail",
        };
        f.debug_struct("Mailer")
            .field("transport", &transport)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

fn mailbox(text: &str) -> Result<Mailbox, EmailError> {
    text.parse()
        .map_err(|_| EmailError::InvalidAddress(text.to_owned()))
}

/// Whether `address` is one mailbox a message can be sent to.
#[must_use]
pub fn is_valid_address(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
}

impl Mailer {
    /// A mailer over `settings`, sending as `from` with `reply_to` (mailboxes such as
    /// `Name <user@example.com>`). Nothing is connected until the first message.
    ///
    /// # Errors
    /// When a mailbox does not parse, or the SMTP host name is not a valid TLS name.
    pub fn new(
        settings: TransportSettings,
        from: &str,
        reply_to: &str,
    ) -> Result<Self, EmailError> {
        let transport = match settings {
            TransportSettings::Blackhole => Transport::Blackhole,
            TransportSettings::Sendmail { command } => Transport::Sendmail(match command {
                Some(command) => AsyncSendmailTransport::new_with_command(command),
                None => AsyncSendmailTransport::new(),
            }),
            TransportSettings::Smtp {
                mode,
                hostname,
                port,
                credentials,
            } => {
                let mut builder = match mode {
                    SmtpMode::Plain => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&hostname)
                    }
                    SmtpMode::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&hostname)
                            .map_err(|e| transport_error(&e))?
                    }
                    SmtpMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&hostname)
                        .map_err(|e| transport_error(&e))?,
                };
                if let Some(port) = port {
                    builder = builder.port(port);
                }
                if let Some((user, password)) = credentials {
                    builder = builder.credentials(Credentials::new(user, password));
                }
                Transport::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build())
            }
        };
        Ok(Self {
            transport,
            from: mailbox(from)?,
            reply_to: mailbox(reply_to)?,
        })
    }

    /// Sends `message` to `to`.
    ///
    /// # Errors
    /// An invalid recipient, or the transport's failure ([`EmailError::is_transient`]
    /// says whether to try again).
    pub async fn send(&self, to: &str, message: &Rendered) -> Result<(), EmailError> {
        let email = Message::builder()
            .from(self.from.clone())
            .reply_to(self.reply_to.clone())
            .to(mailbox(to)?)
            .subject(&message.subject)
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| EmailError::Message(e.to_string()))?;
        match &self.transport {
            Transport::Blackhole => {
                // Not the subject: it carries the code.
                tracing::info!("email.transport is blackhole: a message was dropped");
                Ok(())
            }
            Transport::Smtp(smtp) => smtp
                .send(email)
                .await
                .map(|_| ())
                .map_err(|e| transport_error(&e)),
            Transport::Sendmail(sendmail) => {
                sendmail
                    .send(email)
                    .await
                    .map_err(|e| EmailError::Transport {
                        message: e.to_string(),
                        transient: true,
                    })
            }
        }
    }

    /// Whether the SMTP relay answers and accepts the credentials; other transports have
    /// nothing to check and answer `Ok`.
    ///
    /// # Errors
    /// The relay's failure.
    pub async fn test_connection(&self) -> Result<(), EmailError> {
        match &self.transport {
            Transport::Smtp(smtp) => match smtp.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(EmailError::Transport {
                    message: "the SMTP server did not accept the connection".to_owned(),
                    transient: true,
                }),
                Err(e) => Err(transport_error(&e)),
            },
            Transport::Blackhole | Transport::Sendmail(_) => Ok(()),
        }
    }
}

fn transport_error(error: &lettre::transport::smtp::Error) -> EmailError {
    EmailError::Transport {
        message: error.to_string(),
        // A refusal of the message itself (5xx) will not change; the rest may.
        transient: !error.is_permanent(),
    }
}

/// A message ready to send: subject, plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// The messages the service sends.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "template", rename_all = "snake_case")]
pub enum Template {
    /// A code that proves the person reads this address.
    Verification {
        /// The account's username.
        username: String,
        /// The code to type on the page.
        code: String,
    },
    /// A code that finishes a registration.
    Registration {
        /// The username asked for.
        username: String,
        /// The code to type on the page.
        code: String,
    },
    /// A link that sets a new password.
    Recovery {
        /// The account's username.
        username: String,
        /// The link to open.
        link: String,
        /// How many minutes it works.
        minutes: i64,
    },
    /// `mas-cli doctor --send-test-email`.
    Test,
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("message.txt", include_str!("../templates/message.txt")),
        ("message.html", include_str!("../templates/message.html")),
    ] {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, name, "a built-in email template does not parse");
        }
    }
    env
});

/// The mail's words, in every language of [`mas_i18n::LANGUAGES`].
static CATALOGUE: LazyLock<Result<Catalogue, mas_i18n::CatalogueError>> = LazyLock::new(|| {
    Catalogue::new([
        include_str!("../locales/en.ftl"),
        include_str!("../locales/fr.ftl"),
        include_str!("../locales/de.ftl"),
    ])
});

/// The catalogue of the mail's words (for completeness checks).
///
/// # Errors
/// When a built-in catalogue is broken.
pub fn catalogue() -> Result<&'static Catalogue, EmailError> {
    CATALOGUE
        .as_ref()
        .map_err(|e| EmailError::Message(e.to_string()))
}

impl Template {
    /// The message, for a service called `service_name`, in `locale`.
    ///
    /// # Errors
    /// When a built-in template or catalogue fails to load or render.
    pub fn render(&self, service_name: &str, locale: Locale) -> Result<Rendered, EmailError> {
        let catalogue = catalogue()?;
        let mut args = FluentArgs::new();
        args.set("service", service_name);
        let say = |id: &str, args: &FluentArgs<'_>| catalogue.message(locale, id, Some(args));
        let greeting = |username: &str| {
            let mut args = FluentArgs::new();
            args.set("username", username);
            say("greeting", &args)
        };
        let (subject, before, code, link, after) = match self {
            Self::Verification { username, code } | Self::Registration { username, code } => {
                let kind = if matches!(self, Self::Verification { .. }) {
                    "verification"
                } else {
                    "registration"
                };
                args.set("code", code.as_str());
                let mistake = if kind == "registration" {
                    "registration-mistake"
                } else {
                    "code-mistake"
                };
                (
                    say(&format!("{kind}-subject"), &args),
                    vec![greeting(username), say(&format!("{kind}-intro"), &args)],
                    Some(code.as_str()),
                    None,
                    vec![say("code-validity", &args), say(mistake, &args)],
                )
            }
            Self::Recovery {
                username,
                link,
                minutes,
            } => {
                args.set("minutes", mas_i18n::number(*minutes));
                (
                    say("recovery-subject", &args),
                    vec![greeting(username), say("recovery-intro", &args)],
                    None,
                    Some(link.as_str()),
                    vec![
                        say("recovery-validity", &args),
                        say("recovery-mistake", &args),
                    ],
                )
            }
            Self::Test => (
                say("test-subject", &args),
                vec![say("test-intro", &args), say("test-outro", &args)],
                None,
                None,
                Vec::new(),
            ),
        };
        let context = minijinja::context! { before, code, link, after, lang => locale.tag() };
        let render = |kind: &str| {
            TEMPLATES
                .get_template(&format!("message.{kind}"))
                .and_then(|t| t.render(&context))
                .map_err(|e| EmailError::Message(e.to_string()))
        };
        Ok(Rendered {
            subject,
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_in_text_and_escaped_html() {
        let rendered = Template::Verification {
            username: "<alice>".to_owned(),
            code: "123456".to_owned(),
        }
        .render("Example", Locale::ENGLISH)
        .unwrap();
        assert_eq!(rendered.subject, "Your code for Example: 123456");
        assert!(rendered.text.contains("123456"), "{}", rendered.text);
        assert!(
            rendered.text.contains("<alice>"),
            "plain text is not escaped"
        );
        assert!(rendered.html.contains("&lt;alice&gt;"), "{}", rendered.html);
        assert!(!rendered.html.contains("<alice>"));
    }

    #[test]
    fn every_message_comes_in_every_language_with_nothing_missing() {
        let catalogue = catalogue().unwrap();
        for (language, lacks, extra) in catalogue.missing() {
            assert!(lacks.is_empty(), "{language} lacks {lacks:?}");
            assert!(
                extra.is_empty(),
                "{language} has more than English: {extra:?}"
            );
        }
        let templates = [
            Template::Verification {
                username: "ann".to_owned(),
                code: "123456".to_owned(),
            },
            Template::Registration {
                username: "ann".to_owned(),
                code: "123456".to_owned(),
            },
            Template::Recovery {
                username: "ann".to_owned(),
                link: "https://auth.example.com/account/password/recovery?ticket=x".to_owned(),
                minutes: 30,
            },
            Template::Test,
        ];
        for tag in mas_i18n::LANGUAGES {
            let locale = Locale::from_tag(tag).unwrap();
            for template in &templates {
                let rendered = template.render("Example", locale).unwrap();
                // No message ID left standing in for a missing message.
                for id in ["-subject", "-intro", "-validity", "-mistake", "greeting"] {
                    assert!(!rendered.text.contains(id), "{tag}: {}", rendered.text);
                    assert!(
                        !rendered.subject.contains(id),
                        "{tag}: {}",
                        rendered.subject
                    );
                }
                assert!(rendered.html.contains(&format!("<html lang=\"{tag}\">")));
            }
        }
        let french = Template::Recovery {
            username: "ann".to_owned(),
            link: "https://auth.example.com/r?ticket=x".to_owned(),
            minutes: 30,
        }
        .render("Example", Locale::from_tag("fr").unwrap())
        .unwrap();
        assert_eq!(
            french.subject,
            "Choisir un nouveau mot de passe pour Example"
        );
        assert!(
            french.text.contains("dans les 30 minutes qui viennent"),
            "{}",
            french.text
        );
        assert!(french.text.contains("https://auth.example.com/r?ticket=x"));
        let german = Template::Registration {
            username: "ann".to_owned(),
            code: "654321".to_owned(),
        }
        .render("Example", Locale::from_tag("de").unwrap())
        .unwrap();
        assert_eq!(german.subject, "Ihr Code für Example: 654321");
        assert!(german.text.starts_with("Hallo ann,"), "{}", german.text);
    }

    #[test]
    fn mailboxes_are_checked_when_the_mailer_is_made() {
        let made = Mailer::new(TransportSettings::Blackhole, "not a mailbox", "a@b.example");
        assert!(matches!(made, Err(EmailError::InvalidAddress(_))));
        assert!(
            Mailer::new(
                TransportSettings::Blackhole,
                "\"Service\" <root@localhost>",
                "root@localhost"
            )
            .is_ok()
        );
        assert!(is_valid_address("alice@example.com"));
        assert!(!is_valid_address("alice"));
        assert!(!is_valid_address("Alice <alice@example.com>"));
    }

    #[tokio::test]
    async fn a_relay_that_is_not_there_is_a_transient_failure() {
        let mailer = Mailer::new(
            TransportSettings::Smtp {
                mode: SmtpMode::Plain,
                hostname: "127.0.0.1".to_owned(),
                port: Some(9),
                credentials: None,
            },
            "root@localhost",
            "root@localhost",
        )
        .unwrap();
        let message = Template::Test.render("Example", Locale::ENGLISH).unwrap();
        let error = mailer
            .send("alice@example.com", &message)
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(mailer.test_connection().await.unwrap_err().is_transient());
    }
}
