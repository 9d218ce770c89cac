//! Claim templates: what an upstream account's claims become here (the subject, the
//! localpart, the display name, an email address, the account's readable name), and the
//! extra authorization parameters, all minijinja templates with MAS's variables.

use std::collections::BTreeMap;

use mas_config::sections::{EmailVerification, ImportAction, UpstreamProviderConfig};
use minijinja::Environment;
use serde_json::Value;

/// Why the claims could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// A template does not parse or fails to render.
    #[error("the template of `{key}` failed: {reason}")]
    Template {
        /// The key path of the template under the provider.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// The subject came out empty.
    #[error(
        "the provider's answer has no subject (`claims_imports.subject.template` rendered nothing)"
    )]
    NoSubject,
    /// An attribute marked `require` came out empty.
    #[error("the provider's answer lacks the required {0}")]
    Missing(&'static str),
    /// The required address is one the provider does not vouch for.
    #[error("the provider has not verified the email address (`email_verified`)")]
    UnverifiedEmail,
}

/// One imported attribute and what the configuration says about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attribute {
    /// The rendered value; `None` when empty or ignored.
    pub value: Option<String>,
    /// What happens to it.
    #[serde(serialize_with = "action_name")]
    pub action: ImportAction,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature.
fn action_name<S: serde::Serializer>(action: &ImportAction, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match action {
        ImportAction::Ignore => "ignore",
        ImportAction::Suggest => "suggest",
        ImportAction::Force => "force",
        ImportAction::Require => "require",
    })
}

impl Attribute {
    /// The value to store whatever the person chooses (`force`, `require`).
    #[must_use]
    pub fn forced(&self) -> Option<&str> {
        match self.action {
            ImportAction::Force | ImportAction::Require => self.value.as_deref(),
            ImportAction::Ignore | ImportAction::Suggest => None,
        }
    }

    /// The value offered to the person (`suggest`).
    #[must_use]
    pub fn suggested(&self) -> Option<&str> {
        match self.action {
            ImportAction::Suggest => self.value.as_deref(),
            _ => None,
        }
    }
}

/// What the claims of an upstream account become.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    /// The upstream account's stable identifier.
    pub subject: String,
    /// The localpart of the Matrix ID.
    pub localpart: Attribute,
    /// The display name.
    pub displayname: Attribute,
    /// An email address.
    pub email: Attribute,
    /// A readable name of the upstream account.
    pub account_name: Option<String>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Claims are data, not markup: nothing is escaped.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // Synapse's filter, so that templates moved from its `oidc_providers` keep working.
    env.add_filter("localpart_from_email", |email: String| {
        email.split('@').next().unwrap_or_default().to_owned()
    });
    env
}

/// Renders `template` over `context`; an empty (or whitespace) result is `None`.
fn render(
    env: &Environment<'_>,
    key: &str,
    template: &str,
    context: &Value,
) -> Result<Option<String>, ClaimsError> {
    let rendered = env
        .render_str(template, context)
        .map_err(|e| ClaimsError::Template {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
    let trimmed = rendered.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// Imports the claims (`{"id_token_claims", "userinfo_claims", "user"}`) as `provider`
/// says.
///
/// # Errors
/// [`ClaimsError`] when a template fails, the subject is empty or a required attribute
/// is missing.
pub fn import(provider: &UpstreamProviderConfig, claims: &Value) -> Result<Imported, ClaimsError> {
    let env = environment();
    let imports = &provider.claims_imports;
    let subject = render(
        &env,
        "claims_imports.subject.template",
        imports
            .subject
            .template
            .as_deref()
            .unwrap_or("{{ user.sub }}"),
        claims,
    )?
    .ok_or(ClaimsError::NoSubject)?;
    let attribute = |name: &'static str,
                     action: ImportAction,
                     template: Option<&str>,
                     default: &str|
     -> Result<Attribute, ClaimsError> {
        let value = if action == ImportAction::Ignore {
            None
        } else {
            render(
                &env,
                &format!("claims_imports.{name}.template"),
                template.unwrap_or(default),
                claims,
            )?
        };
        if action == ImportAction::Require && value.is_none() {
            return Err(ClaimsError::Missing(name));
        }
        Ok(Attribute { value, action })
    };
    Ok(Imported {
        subject,
        localpart: attribute(
            "localpart",
            imports.localpart.action,
            imports.localpart.template.as_deref(),
            "{{ user.preferred_username }}",
        )?,
        displayname: attribute(
            "displayname",
            imports.displayname.action,
            imports.displayname.template.as_deref(),
            "{{ user.name }}",
        )?,
        email: {
            let action = imports.email.action;
            let mut email = attribute(
                "email",
                action,
                imports.email.template.as_deref(),
                "{{ user.email }}",
            )?;
            if !email_verified(provider, claims)
                && email.value.take().is_some()
                && action == ImportAction::Require
            {
                return Err(ClaimsError::UnverifiedEmail);
            }
            email
        },
        account_name: match &imports.account_name.template {
            Some(template) => render(
                &env,
                "claims_imports.account_name.template",
                template,
                claims,
            )?,
            None => None,
        },
    })
}

/// Whether the imported address counts as verified (`set_email_verification`): only
/// verified addresses are added to accounts here.
fn email_verified(provider: &UpstreamProviderConfig, claims: &Value) -> bool {
    match provider.claims_imports.email.set_email_verification {
        EmailVerification::Always => true,
        EmailVerification::Never => false,
        EmailVerification::Import => {
            matches!(
                claims.pointer("/user/email_verified"),
                Some(Value::Bool(true))
            ) || claims.pointer("/user/email_verified") == Some(&Value::from("true"))
        }
    }
}

/// The extra authorization parameters, rendered over the downstream request's query
/// (`params`) and whether the browser just signed out (`logged_out`); empty ones dropped.
///
/// # Errors
/// [`ClaimsError::Template`] when one fails.
pub fn authorization_parameters(
    provider: &UpstreamProviderConfig,
    params: &BTreeMap<String, String>,
    logged_out: bool,
) -> Result<Vec<(String, String)>, ClaimsError> {
    let env = environment();
    let context = serde_json::json!({ "params": params, "logged_out": logged_out });
    let mut templates = provider.additional_authorization_parameters.clone();
    if provider.forward_login_hint {
        templates
            .entry("login_hint".to_owned())
            .or_insert_with(|| "{{ params.login_hint }}".to_owned());
    }
    let mut out = Vec::new();
    for (name, template) in &templates {
        let key = format!("additional_authorization_parameters.{name}");
        if let Some(value) = render(&env, &key, template, &context)? {
            out.push((name.clone(), value));
        }
    }
    Ok(out)
}

/// The context templates see: the claims of the ID token and of the userinfo answer, and
/// `user`, both merged (the userinfo answer wins).
#[must_use]
pub fn context(id_token_claims: Option<Value>, userinfo_claims: Option<Value>) -> Value {
    let mut user = serde_json::Map::new();
    for claims in [&id_token_claims, &userinfo_claims].into_iter().flatten() {
        if let Value::Object(map) = claims {
            user.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    serde_json::json!({
        "id_token_claims": id_token_claims.unwrap_or(Value::Null),
        "userinfo_claims": userinfo_claims.unwrap_or(Value::Null),
        "user": user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> UpstreamProviderConfig {
        let base = "id: 01HFVBY12TMNTYTBV8W921M5FA\nissuer: https://sso.example.com/\nclient_id: c\ntoken_endpoint_auth_method: none\n";
        serde_yaml_from(&format!("{base}{yaml}"))
    }

    fn serde_yaml_from(yaml: &str) -> UpstreamProviderConfig {
        let value: serde_json::Value = yaml_to_json(yaml);
        serde_json::from_value(value).unwrap()
    }

    /// The tests' YAML is flat `key: value` lines and nested maps given as JSON.
    fn yaml_to_json(yaml: &str) -> Value {
        let mut map = serde_json::Map::new();
        for line in yaml.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line.split_once(": ").unwrap();
            let value = serde_json::from_str(value).unwrap_or(Value::String(value.to_owned()));
            map.insert(key.to_owned(), value);
        }
        Value::Object(map)
    }

    #[test]
    fn defaults_read_the_standard_claims_and_userinfo_wins() {
        let p = provider(
            r#"claims_imports: {"localpart": {"action": "require"}, "displayname": {"action": "suggest"}, "email": {"action": "force"}, "account_name": {"template": "@{{ user.preferred_username }}"}}"#,
        );
        let claims = context(
            Some(serde_json::json!({"sub": "abc", "preferred_username": "alice", "name": "Old"})),
            Some(
                serde_json::json!({"sub": "abc", "name": "Alice A.", "email": "a@example.com", "email_verified": true}),
            ),
        );
        let imported = import(&p, &claims).unwrap();
        assert_eq!(imported.subject, "abc");
        assert_eq!(imported.localpart.forced(), Some("alice"));
        assert_eq!(imported.displayname.suggested(), Some("Alice A."));
        assert_eq!(imported.displayname.forced(), None);
        assert_eq!(imported.email.forced(), Some("a@example.com"));
        assert_eq!(imported.account_name.as_deref(), Some("@alice"));
    }

    #[test]
    fn a_required_claim_that_is_missing_fails_and_ignored_ones_are_not_rendered() {
        let p = provider(r#"claims_imports: {"localpart": {"action": "require"}}"#);
        let claims = context(Some(serde_json::json!({"sub": "abc"})), None);
        assert_eq!(import(&p, &claims), Err(ClaimsError::Missing("localpart")));
        let claims = context(Some(serde_json::json!({"preferred_username": "x"})), None);
        assert_eq!(import(&p, &claims), Err(ClaimsError::NoSubject));
    }

    #[test]
    fn only_verified_addresses_are_imported() {
        let p = provider(r#"claims_imports: {"email": {"action": "force"}}"#);
        let claims = |verified: Value| {
            context(
                Some(
                    serde_json::json!({"sub": "abc", "email": "a@example.com", "email_verified": verified}),
                ),
                None,
            )
        };
        let email = |p: &UpstreamProviderConfig, c: &Value| import(p, c).unwrap().email.value;
        assert_eq!(
            email(&p, &claims(Value::Bool(true))).as_deref(),
            Some("a@example.com")
        );
        assert_eq!(email(&p, &claims(Value::Bool(false))), None);
        assert_eq!(
            email(&p, &claims(Value::Null)),
            None,
            "no claim: not verified"
        );
        let always = provider(
            r#"claims_imports: {"email": {"action": "force", "set_email_verification": "always"}}"#,
        );
        assert!(email(&always, &claims(Value::Bool(false))).is_some());
        let required = provider(r#"claims_imports: {"email": {"action": "require"}}"#);
        assert_eq!(
            import(&required, &claims(Value::Bool(false))),
            Err(ClaimsError::UnverifiedEmail)
        );
    }

    #[test]
    fn synapse_templates_keep_working() {
        let p = provider(
            r#"claims_imports: {"localpart": {"action": "require", "template": "{{ user.email | localpart_from_email }}"}}"#,
        );
        let claims = context(
            Some(serde_json::json!({"sub": "s", "email": "jo@example.com"})),
            None,
        );
        assert_eq!(import(&p, &claims).unwrap().localpart.forced(), Some("jo"));
    }

    #[test]
    fn github_style_numeric_ids_become_the_subject() {
        let p = provider(r#"claims_imports: {"subject": {"template": "{{ user.id }}"}}"#);
        let claims = context(None, Some(serde_json::json!({"id": 1234, "login": "octo"})));
        assert_eq!(import(&p, &claims).unwrap().subject, "1234");
    }

    #[test]
    fn extra_parameters_drop_empty_ones_and_forward_the_login_hint() {
        let p = provider(
            r#"additional_authorization_parameters: {"prompt": "{% if logged_out %}login{% endif %}", "kc_idp_hint": "saml"}
forward_login_hint: true"#,
        );
        let mut params = BTreeMap::new();
        params.insert("login_hint".to_owned(), "alice".to_owned());
        let out = authorization_parameters(&p, &params, false).unwrap();
        assert_eq!(
            out,
            vec![
                ("kc_idp_hint".to_owned(), "saml".to_owned()),
                ("login_hint".to_owned(), "alice".to_owned())
            ]
        );
        let out = authorization_parameters(&p, &BTreeMap::new(), true).unwrap();
        assert!(out.contains(&("prompt".to_owned(), "login".to_owned())));
        assert!(!out.iter().any(|(k, _)| k == "login_hint"));
    }

    #[test]
    fn every_example_of_the_sso_guide_loads_and_imports_typical_claims() {
        let guide = include_str!("../../../docs/setup/sso.md");
        let base = "matrix: {secret: s}\nsecrets: {encryption: '0000000000000000000000000000000000000000000000000000000000000000'}\n";
        let claims = context(
            Some(serde_json::json!({
                "sub": "abc", "preferred_username": "alice", "nickname": "alice",
                "name": "Alice", "email": "alice@example.com",
            })),
            Some(serde_json::json!({"id": 42, "login": "alice", "name": "Alice"})),
        );
        let mut examples = 0;
        for block in guide.split("```yaml\n").skip(1) {
            let yaml = block.split("```").next().unwrap();
            if !yaml.starts_with("upstream_oauth2:") {
                continue;
            }
            let config = mas_config::RootConfig::from_yaml(&format!("{base}{yaml}"))
                .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            for provider in &config.upstream_oauth2.providers {
                let imported = import(provider, &claims).unwrap();
                assert!(!imported.subject.is_empty());
                if let Some(localpart) = &imported.localpart.value {
                    assert_eq!(localpart, "alice", "{yaml}");
                }
            }
            examples += 1;
        }
        assert_eq!(
            examples, 7,
            "Keycloak, Google, GitHub, GitLab, Authentik, Dex, MAS"
        );
    }
}
