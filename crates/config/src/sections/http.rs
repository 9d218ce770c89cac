//! The `http` section: listeners, public base URL and issuer.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{Secret, at_most_one, check_http_url, path};
use crate::Issues;

/// Where the service listens and how it is reached from outside.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The sockets to listen on and what each serves.
    #[serde(default = "default_listeners")]
    pub listeners: Vec<ListenerConfig>,
    /// Proxies whose `X-Forwarded-For` is believed (CIDR ranges).
    #[serde(default = "default_trusted_proxies")]
    pub trusted_proxies: Vec<String>,
    /// The public URL the service is reached at; every link it makes starts with it.
    #[serde(default = "default_public_base")]
    pub public_base: Url,
    /// The OIDC issuer; defaults to `public_base`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Url>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listeners: default_listeners(),
            trusted_proxies: default_trusted_proxies(),
            public_base: default_public_base(),
            issuer: None,
        }
    }
}

fn default_public_base() -> Url {
    Url::parse("http://[::]:8080/").unwrap_or_else(|_| unreachable!("constant URL"))
}

fn default_trusted_proxies() -> Vec<String> {
    [
        "192.168.0.0/16",
        "172.16.0.0/12",
        "10.0.0.0/10",
        "127.0.0.1/8",
        "fd00::/8",
        "::1/128",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

fn default_listeners() -> Vec<ListenerConfig> {
    vec![
        ListenerConfig {
            name: Some("web".to_owned()),
            resources: vec![
                Resource::Discovery,
                Resource::Human,
                Resource::OAuth,
                Resource::Compat,
            ],
            prefix: None,
            binds: vec![BindConfig::address("[::]:8080")],
            proxy_protocol: false,
            tls: None,
        },
        ListenerConfig {
            name: Some("internal".to_owned()),
            resources: vec![Resource::Health],
            prefix: None,
            binds: vec![BindConfig {
                host: Some("localhost".to_owned()),
                port: Some(8081),
                ..BindConfig::default()
            }],
            proxy_protocol: false,
            tls: None,
        },
    ]
}

impl HttpConfig {
    /// The listeners' resources this release does not serve; `prometheus` is served
    /// when `metrics_exported` (`telemetry.metrics.exporter: prometheus`).
    pub(crate) fn not_honoured(&self, metrics_exported: bool) -> Vec<String> {
        let mut notes = Vec::new();
        for (i, listener) in self.listeners.iter().enumerate() {
            for resource in &listener.resources {
                let name = match resource {
                    Resource::Prometheus if metrics_exported => continue,
                    Resource::Prometheus => {
                        notes.push(format!(
                            "http.listeners[{i}].resources: `prometheus` serves nothing unless telemetry.metrics.exporter is `prometheus`"
                        ));
                        continue;
                    }
                    Resource::GraphQL { .. } => "graphql",
                    Resource::ConnectionInfo => "connection-info",
                    Resource::Assets { .. } => "assets",
                    _ => continue,
                };
                notes.push(format!(
                    "http.listeners[{i}].resources: `{name}` is accepted but not served by this release"
                ));
            }
        }
        notes
    }
}

impl HttpConfig {
    /// The issuer: `issuer` if set, else `public_base`.
    #[must_use]
    pub fn issuer(&self) -> &Url {
        self.issuer.as_ref().unwrap_or(&self.public_base)
    }

    pub(crate) fn validate(&self, issues: &mut Issues) {
        check_http_url(
            issues,
            &path(&["http", "public_base"]),
            &self.public_base,
            true,
        );
        if let Some(issuer) = &self.issuer {
            check_http_url(issues, &path(&["http", "issuer"]), issuer, false);
        }
        for (i, proxy) in self.trusted_proxies.iter().enumerate() {
            if !is_cidr(proxy) {
                issues.push(
                    &["http", "trusted_proxies", &i.to_string()],
                    "not an IP network in CIDR notation (e.g. 10.0.0.0/8)",
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, listener) in self.listeners.iter().enumerate() {
            let at = path(&["http", "listeners", &i.to_string()]);
            if let Some(name) = &listener.name
                && !names.insert(name.as_str())
            {
                let mut p = at.clone();
                p.push("name".to_owned());
                issues.push(&p, format!("another listener is already named `{name}`"));
            }
            listener.validate(&at, issues);
        }
    }
}

fn is_cidr(text: &str) -> bool {
    let (addr, len) = text.split_once('/').unwrap_or((text, ""));
    match addr.parse::<std::net::IpAddr>() {
        Ok(ip) if len.is_empty() => {
            let _ = ip;
            true
        }
        Ok(ip) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            len.parse::<u8>().is_ok_and(|l| l <= max)
        }
        Err(_) => false,
    }
}

/// One listener: a set of sockets serving a set of resources.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// A name for logs and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What this listener serves.
    pub resources: Vec<Resource>,
    /// A path prefix under which the resources are mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The sockets to listen on.
    pub binds: Vec<BindConfig>,
    /// Whether connections start with a PROXY protocol header.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// TLS termination on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

impl ListenerConfig {
    fn validate(&self, at: &[String], issues: &mut Issues) {
        let sub = |k: &str| {
            let mut p = at.to_vec();
            p.push(k.to_owned());
            p
        };
        if self.binds.is_empty() {
            issues.push(&sub("binds"), "at least one bind is required");
        }
        if self.resources.is_empty() {
            issues.push(&sub("resources"), "at least one resource is required");
        }
        if let Some(prefix) = &self.prefix
            && !prefix.starts_with('/')
        {
            issues.push(&sub("prefix"), "must start with a slash");
        }
        for (i, bind) in self.binds.iter().enumerate() {
            let mut p = sub("binds");
            p.push(i.to_string());
            bind.validate(&p, issues);
        }
        if let Some(tls) = &self.tls {
            let p = sub("tls");
            super::exactly_one(
                issues,
                &p,
                ("certificate", tls.certificate.is_some()),
                ("certificate_file", tls.certificate_file.is_some()),
            );
            super::exactly_one(
                issues,
                &p,
                ("key", tls.key.is_some()),
                ("key_file", tls.key_file.is_some()),
            );
            at_most_one(
                issues,
                &p,
                ("password", tls.password.is_some()),
                ("password_file", tls.password_file.is_some()),
            );
        }
    }
}

/// A resource a listener serves, tagged by `name` as in MAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Resource {
    /// `GET /health`.
    Health,
    /// Prometheus metrics.
    Prometheus,
    /// OpenID Connect discovery documents.
    Discovery,
    /// Pages for people (login, consent, account).
    Human,
    /// MAS's GraphQL API; accepted, not served here.
    #[serde(rename = "graphql")]
    GraphQL {
        /// Whether the GraphQL playground is served.
        #[serde(default)]
        playground: bool,
        /// Whether OAuth 2.0 access tokens may call it.
        #[serde(default)]
        undocumented_oauth2_access: bool,
        /// Who may introspect the schema: `public` or `authenticated_only`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        introspection: Option<String>,
    },
    /// The OAuth 2.0 / OIDC endpoints.
    #[serde(rename = "oauth")]
    OAuth,
    /// The Matrix client-server compatibility layer (`/_matrix/client/*/login`...).
    Compat,
    /// Static assets.
    Assets {
        /// A directory to serve them from instead of the built-in ones.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
    /// The administration API.
    #[serde(rename = "adminapi")]
    AdminApi,
    /// A debugging page showing what the service sees of the connection.
    ConnectionInfo,
}

/// One socket: an address, a host and port, a UNIX socket or an inherited descriptor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindConfig {
    /// `IP:PORT`, e.g. `[::]:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A host name to resolve (with `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port (with `host`, or alone for all interfaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// A UNIX socket path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// Permissions of the UNIX socket, in octal (e.g. `"660"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// An inherited file descriptor (socket activation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<u32>,
    /// The kind of the inherited descriptor: `tcp` or `unix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl BindConfig {
    /// A bind to one socket address.
    #[must_use]
    pub fn address(address: &str) -> Self {
        Self {
            address: Some(address.to_owned()),
            ..Self::default()
        }
    }

    fn validate(&self, at: &[String], issues: &mut Issues) {
        let forms = [
            self.address.is_some(),
            self.host.is_some() || self.port.is_some(),
            self.socket.is_some(),
            self.fd.is_some(),
        ];
        match forms.iter().filter(|f| **f).count() {
            0 => issues.push(
                at,
                "one of `address`, `host`/`port`, `socket` or `fd` is required",
            ),
            1 => {}
            _ => issues.push(
                at,
                "give only one of `address`, `host`/`port`, `socket` or `fd`",
            ),
        }
        if let Some(address) = &self.address
            && address.parse::<SocketAddr>().is_err()
        {
            let mut p = at.to_vec();
            p.push("address".to_owned());
            issues.push(
                &p,
                "not a socket address (e.g. `[::]:8080` or `127.0.0.1:8080`)",
            );
        }
        if self.host.is_some() && self.port.is_none() {
            issues.push(at, "`host` needs a `port`");
        }
        if let Some(mode) = &self.mode {
            let mut p = at.to_vec();
            p.push("mode".to_owned());
            if self.socket.is_none() {
                issues.push(&p, "only meaningful with `socket`");
            } else if u32::from_str_radix(mode, 8).map_or(true, |m| m > 0o777) {
                issues.push(&p, "expected octal permissions such as \"660\"");
            }
        }
        if let Some(kind) = &self.kind {
            if self.fd.is_none() {
                let mut p = at.to_vec();
                p.push("kind".to_owned());
                issues.push(&p, "only meaningful with `fd`");
            } else if kind != "tcp" && kind != "unix" {
                let mut p = at.to_vec();
                p.push("kind".to_owned());
                issues.push(&p, "expected `tcp` or `unix`");
            }
        }
    }
}

/// TLS certificate and key of a listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// PEM certificate chain, from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<PathBuf>,
    /// PEM private key, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// PEM private key, from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Password of an encrypted key, from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}
