//! `mas-cli doctor`: checks the configuration against the running homeserver and says
//! what to fix. Each check prints one line; the command fails if any check failed.

use std::time::Duration;

use mas_config::RootConfig;
use mas_config::sections::HomeserverKind;
use serde_json::Value;

/// How one check went.
enum Outcome {
    Ok(String),
    Warn(String),
    Fail(String),
}

struct Report {
    failed: bool,
}

impl Report {
    fn print(&mut self, what: &str, outcome: Outcome) {
        match outcome {
            Outcome::Ok(detail) => println!("ok    {what}: {detail}"),
            Outcome::Warn(fix) => println!("warn  {what}: {fix}"),
            Outcome::Fail(fix) => {
                self.failed = true;
                println!("FAIL  {what}: {fix}");
            }
        }
    }
}

/// Runs every check; `Err` when one failed.
/// `doctor`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// Also send a test message to this address through the configured `email`
    /// transport, and say whether the mail server took it.
    #[arg(long, value_name = "ADDRESS")]
    send_test_email: Option<String>,
}

/// Checks the `email` transport: connects to an SMTP relay, and sends a test message
/// when asked.
async fn check_email(config: &RootConfig, to: Option<&str>) -> Outcome {
    let mailer = match crate::email::mailer(config) {
        Ok(mailer) => mailer,
        Err(error) => return Outcome::Fail(format!("{error:#}")),
    };
    let transport = config.email.transport;
    if let Err(error) = mailer.test_connection().await {
        return Outcome::Fail(format!(
            "{error}: check email.hostname, email.port, email.mode and the credentials"
        ));
    }
    let Some(to) = to else {
        return match transport {
            mas_config::sections::EmailTransport::Blackhole => Outcome::Warn(
                "transport blackhole: mail is dropped, so email addresses cannot be verified"
                    .to_owned(),
            ),
            mas_config::sections::EmailTransport::Smtp => {
                Outcome::Ok("the SMTP server answers".to_owned())
            }
            mas_config::sections::EmailTransport::Sendmail => {
                Outcome::Ok("sendmail (not run until a message is sent)".to_owned())
            }
        };
    };
    let message = match mas_email::Template::Test.render(
        &crate::email::service_name(config),
        mas_email::Locale::ENGLISH,
    ) {
        Ok(message) => message,
        Err(error) => return Outcome::Fail(error.to_string()),
    };
    match mailer.send(to, &message).await {
        Ok(()) if transport == mas_config::sections::EmailTransport::Blackhole => Outcome::Warn(
            format!("transport blackhole: the test message to {to} was dropped"),
        ),
        Ok(()) => Outcome::Ok(format!("a test message to {to} was accepted")),
        Err(error) => Outcome::Fail(format!("the test message to {to} was not sent: {error}")),
    }
}

pub(crate) fn run(config: &RootConfig, args: &DoctorArgs) -> anyhow::Result<()> {
    crate::block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut report = Report { failed: false };
        let issuer = config
            .http
            .issuer
            .clone()
            .unwrap_or_else(|| config.http.public_base.clone());
        report.print("issuer", check_issuer(&issuer));
        let secret = config.matrix.secret().ok();
        report.print(
            "matrix.secret",
            match &secret {
                Some(s) if s.len() >= 16 => Outcome::Ok("set".to_owned()),
                Some(_) => Outcome::Warn("set, but short: use at least 16 random characters".to_owned()),
                None => Outcome::Fail(
                    "missing: set matrix.secret (or secret_file) to the secret Synapse is configured with".to_owned(),
                ),
            },
        );
        let endpoint = &config.matrix.endpoint;
        let versions = get(&http, endpoint, "_matrix/client/versions", None).await;
        let reachable = matches!(versions, Ok((200, _)));
        report.print(
            "homeserver reachable",
            match versions {
                Ok((200, _)) => Outcome::Ok(format!("{endpoint} answers")),
                Ok((status, _)) => Outcome::Fail(format!(
                    "{endpoint}_matrix/client/versions answered {status}: is matrix.endpoint Synapse's client listener?"
                )),
                Err(e) => Outcome::Fail(format!(
                    "cannot reach {endpoint} ({e}): check matrix.endpoint and that Synapse runs"
                )),
            },
        );
        if reachable {
            let outcome = check_server_name(&http, config, secret.as_deref()).await;
            report.print("matrix.homeserver", outcome);
        }
        if reachable && let Some(secret) = &secret {
            let outcome = check_secret(&http, config, secret).await;
            report.print("homeserver accepts the secret", outcome);
            let outcome = check_discovery(&http, config, &issuer).await;
            report.print("homeserver delegates to this service", outcome);
        }
        let own = get(
            &http,
            &config.http.public_base,
            ".well-known/openid-configuration",
            None,
        )
        .await;
        report.print(
            "this service's discovery document",
            match own {
                Ok((200, body)) if body.get("issuer").and_then(Value::as_str) == Some(issuer.as_str()) => {
                    Outcome::Ok(format!("served at {}", config.http.public_base))
                }
                Ok((200, body)) => Outcome::Fail(format!(
                    "the issuer served is {}, the configuration says {issuer}: another instance answers at http.public_base",
                    body.get("issuer").unwrap_or(&Value::Null)
                )),
                Ok((status, _)) => Outcome::Fail(format!(
                    "{}.well-known/openid-configuration answered {status}: does a listener serve the `discovery` resource?",
                    config.http.public_base
                )),
                Err(_) => Outcome::Warn(format!(
                    "nothing answers at {} (is mas-server running, and is http.public_base its public address?)",
                    config.http.public_base
                )),
            },
        );
        report.print(
            "email",
            check_email(config, args.send_test_email.as_deref()).await,
        );
        if report.failed {
            anyhow::bail!("some checks failed; see above");
        }
        println!("all checks passed");
        Ok(())
    })
}

fn check_issuer(issuer: &url::Url) -> Outcome {
    let local = matches!(
        issuer.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "[::]" | "0.0.0.0")
    );
    if issuer.scheme() != "https" && !local {
        return Outcome::Warn(format!(
            "{issuer} is plain http on a public name: clients expect https (set http.public_base)"
        ));
    }
    if issuer.host_str() == Some("[::]") || issuer.host_str() == Some("0.0.0.0") {
        return Outcome::Fail(format!(
            "{issuer} is a bind-all address, not one clients can reach: set http.public_base"
        ));
    }
    Outcome::Ok(issuer.to_string())
}

async fn check_secret(http: &reqwest::Client, config: &RootConfig, secret: &str) -> Outcome {
    let endpoint = &config.matrix.endpoint;
    if config.matrix.kind == HomeserverKind::SynapseLegacy {
        // An endpoint that needs an admin token (server_version answers anyone).
        let path = "_synapse/admin/v1/username_available?username=mas-doctor-check";
        return match get(http, endpoint, path, Some(secret)).await {
            Ok((200 | 400, _)) => Outcome::Ok("the admin API accepts matrix.secret".to_owned()),
            Ok((401 | 403, _)) => Outcome::Fail(
                "the admin API refuses matrix.secret: it must equal experimental_features.msc3861.admin_token".to_owned(),
            ),
            Ok((status, _)) => Outcome::Fail(format!("the admin API answered {status}")),
            Err(e) => Outcome::Fail(e),
        };
    }
    let path = "_synapse/mas/is_localpart_available?localpart=mas-doctor-check";
    match get(http, endpoint, path, Some(secret)).await {
        Ok((200 | 400, _)) => Outcome::Ok("/_synapse/mas/ accepts matrix.secret".to_owned()),
        Ok((403, _)) => Outcome::Fail(
            "Synapse refuses matrix.secret: it must equal matrix_authentication_service.secret in homeserver.yaml".to_owned(),
        ),
        Ok((404, _)) => Outcome::Fail(
            "Synapse has no /_synapse/mas/ API: enable matrix_authentication_service in homeserver.yaml (Synapse 1.136 or later), or set matrix.kind: synapse_legacy for the msc3861 generation".to_owned(),
        ),
        Ok((status, _)) => Outcome::Fail(format!("/_synapse/mas/ answered {status}")),
        Err(e) => Outcome::Fail(e),
    }
}

async fn check_discovery(
    http: &reqwest::Client,
    config: &RootConfig,
    issuer: &url::Url,
) -> Outcome {
    let endpoint = &config.matrix.endpoint;
    let mut last = String::from("no auth_metadata endpoint answered");
    for path in [
        "_matrix/client/v1/auth_metadata",
        "_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
        "_matrix/client/unstable/org.matrix.msc2965/auth_issuer",
    ] {
        match get(http, endpoint, path, None).await {
            Ok((200, body)) => {
                let seen = body.get("issuer").and_then(Value::as_str).unwrap_or("");
                return if seen == issuer.as_str() {
                    Outcome::Ok(format!("Synapse announces issuer {seen}"))
                } else {
                    Outcome::Fail(format!(
                        "Synapse announces issuer `{seen}`, this service is {issuer}: point Synapse at http.public_base (endpoint / issuer in homeserver.yaml)"
                    ))
                };
            }
            Ok((status, _)) => last = format!("{path} answered {status}"),
            Err(e) => last = e,
        }
    }
    Outcome::Fail(format!(
        "{last}: Synapse does not delegate to this service, or cannot fetch its discovery document"
    ))
}

/// Whether `matrix.homeserver` is Synapse's own server name. A mismatch goes unnoticed
/// elsewhere: this service would hand out user IDs on a name Synapse does not serve.
async fn check_server_name(
    http: &reqwest::Client,
    config: &RootConfig,
    secret: Option<&str>,
) -> Outcome {
    let endpoint = &config.matrix.endpoint;
    let configured = config.matrix.homeserver.as_str();
    // Synapse names itself in its signing-key document, unauthenticated, on any
    // listener with the `keys` or `federation` resource (its default listener has one).
    if let Ok((200, body)) = get(http, endpoint, "_matrix/key/v2/server", None).await
        && let Some(name) = body.get("server_name").and_then(Value::as_str)
    {
        return if name == configured {
            Outcome::Ok(format!("equals Synapse's server_name {name}"))
        } else {
            Outcome::Fail(format!(
                "Synapse's server_name is `{name}`, matrix.homeserver is `{configured}`: set matrix.homeserver to `{name}` (else this service names users @alice:{configured}, Synapse @alice:{name})"
            ))
        };
    }
    // The older generation's admin API refuses to look up a user ID on a name that is
    // not its own, which tells a mismatch apart without naming the right value.
    if config.matrix.kind == HomeserverKind::SynapseLegacy
        && let Some(secret) = secret
    {
        let mut url = endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                "_synapse",
                "admin",
                "v2",
                "users",
                &format!("@mas-doctor-check:{configured}"),
            ]);
        }
        match get_url(http, url, Some(secret)).await {
            // A 404 counts only as "no such user": an unknown path is M_UNRECOGNIZED.
            Ok((200, _)) => {
                return Outcome::Ok(format!("Synapse takes `{configured}` as its own name"));
            }
            Ok((404, body))
                if body.get("errcode").and_then(Value::as_str) == Some("M_NOT_FOUND") =>
            {
                return Outcome::Ok(format!("Synapse takes `{configured}` as its own name"));
            }
            Ok((400, _)) => {
                return Outcome::Fail(format!(
                    "Synapse does not take `{configured}` as its own name: set matrix.homeserver to server_name from homeserver.yaml"
                ));
            }
            _ => {}
        }
    }
    Outcome::Warn(format!(
        "cannot learn Synapse's server name ({endpoint}_matrix/key/v2/server is not served): check that matrix.homeserver (`{configured}`) equals server_name in homeserver.yaml, or add `keys` to the resources of that Synapse listener"
    ))
}

/// GET `path` under `base`, with an optional bearer token; the status and JSON body.
async fn get(
    http: &reqwest::Client,
    base: &url::Url,
    path: &str,
    bearer: Option<&str>,
) -> Result<(u16, Value), String> {
    let url = base.join(path).map_err(|e| e.to_string())?;
    get_url(http, url, bearer).await
}

/// GET `url`, with an optional bearer token; the status and JSON body.
async fn get_url(
    http: &reqwest::Client,
    url: url::Url,
    bearer: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut request = http.get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            "no answer within 5 s".to_owned()
        } else {
            "connection failed".to_owned()
        }
    })?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}
