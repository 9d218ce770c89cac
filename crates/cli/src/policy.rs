//! `policy.data` made into the rules the handlers apply; a value that cannot be used is
//! named by its key path, at start and by `config check`.

use anyhow::Context;
use mas_config::RootConfig;
use mas_config::sections::StringConstraints;
use mas_oauth_core::policy::{
    ClientRegistrationRules, PasswordRules, Policy, StringLists, StringMatch, domains, networks,
};

fn matcher(
    constraints: Option<&StringConstraints>,
    path: &str,
) -> anyhow::Result<Option<StringMatch>> {
    constraints
        .map(|c| {
            StringMatch::new(StringLists {
                literals: c.literals.clone(),
                substrings: c.substrings.clone(),
                regexes: c.regexes.clone(),
                prefixes: c.prefixes.clone(),
                suffixes: c.suffixes.clone(),
            })
            .with_context(|| format!("policy.data.{path}"))
        })
        .transpose()
}

/// The rules of `policy.data`.
///
/// # Errors
/// A regex, domain pattern or network that does not parse, named by its key path.
pub(crate) fn build(config: &RootConfig) -> anyhow::Result<Policy> {
    let data = &config.policy.data;
    let registration = &data.client_registration;
    Ok(Policy {
        admin_users: data.admin_users.clone(),
        client_registration: ClientRegistrationRules {
            allow_insecure_uris: registration.allow_insecure_uris,
            allow_host_mismatch: registration.allow_host_mismatch,
            allow_missing_client_uri: registration.allow_missing_client_uri,
        },
        allowed_usernames: matcher(
            data.registration.allowed_usernames.as_ref(),
            "registration.allowed_usernames",
        )?,
        banned_usernames: matcher(
            data.registration.banned_usernames.as_ref(),
            "registration.banned_usernames",
        )?,
        allowed_addresses: matcher(
            data.emails.allowed_addresses.as_ref(),
            "emails.allowed_addresses",
        )?,
        banned_addresses: matcher(
            data.emails.banned_addresses.as_ref(),
            "emails.banned_addresses",
        )?,
        allowed_domains: data
            .allowed_domains
            .as_deref()
            .map(domains)
            .transpose()
            .context("policy.data.allowed_domains")?,
        banned_domains: domains(&data.banned_domains).context("policy.data.banned_domains")?,
        passwords: PasswordRules {
            min_length: data.passwords.min_length,
            require_lowercase: data.passwords.require_lowercase,
            require_uppercase: data.passwords.require_uppercase,
            require_number: data.passwords.require_number,
        },
        banned_networks: networks(&data.requester.banned_ips)
            .context("policy.data.requester.banned_ips")?,
        banned_user_agents: matcher(
            data.requester.banned_user_agents.as_ref(),
            "requester.banned_user_agents",
        )?,
    })
}
