//! OpenID Connect Back-Channel Logout 1.0: the logout token a provider posts when a
//! person's session there ends, checked before anything is ended here.

use serde_json::Value;

use crate::{Provider, UpstreamError, Upstreams};

/// The `events` member that makes a JWT a logout token.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How far a token's `iat` may be from our clock (either way).
const SKEW_SECONDS: i64 = 300;

/// What a logout token names: the provider's session, its user, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// The upstream account (`sub`).
    pub sub: Option<String>,
    /// The provider's session (`sid`).
    pub sid: Option<String>,
}

fn refused(reason: impl Into<String>) -> UpstreamError {
    UpstreamError::LogoutToken(reason.into())
}

impl Upstreams {
    /// Checks a logout token: its signature (the ID tokens' algorithm, against the
    /// provider's keys, fetched again once for a key the kept set lacks), `iss`, `aud`,
    /// `iat`, `exp`, the logout event, `sub` or `sid`, and no `nonce`.
    ///
    /// # Errors
    /// [`UpstreamError::LogoutToken`] naming the failed check; [`UpstreamError`] when the
    /// provider's keys cannot be fetched.
    pub async fn check_logout_token(
        &self,
        provider: &Provider,
        token: &str,
    ) -> Result<LogoutToken, UpstreamError> {
        let config = &provider.config;
        let endpoints = self.endpoints(config).await?;
        let claims = self
            .verify_signed(
                provider,
                &endpoints,
                token,
                &config.id_token_signed_response_alg,
            )
            .await?
            .map_err(refused)?;
        check_claims(provider, &claims, chrono::Utc::now().timestamp())
    }
}

/// The claim checks of section 2.6 of the specification.
fn check_claims(
    provider: &Provider,
    claims: &Value,
    now: i64,
) -> Result<LogoutToken, UpstreamError> {
    let config = &provider.config;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    if let Some(issuer) = &config.issuer
        && text("iss").as_deref() != Some(issuer.as_str())
    {
        return Err(refused("its issuer is not the provider's"));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == config.client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| *a == *config.client_id),
        _ => false,
    };
    if !audience_ok {
        return Err(refused("it is not meant for this service"));
    }
    match claims.get("iat").and_then(Value::as_i64) {
        Some(iat) if (iat - now).abs() <= SKEW_SECONDS => {}
        Some(_) => return Err(refused("it was not issued just now (`iat`)")),
        None => return Err(refused("it has no `iat`")),
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => {}
        Some(_) => return Err(refused("it has expired")),
        None => return Err(refused("it has no `exp`")),
    }
    let event = claims
        .get("events")
        .and_then(|e| e.get(LOGOUT_EVENT))
        .is_some_and(Value::is_object);
    if !event {
        return Err(refused("it carries no back-channel logout event"));
    }
    if claims.get("nonce").is_some() {
        return Err(refused(
            "it has a `nonce` (an ID token, not a logout token?)",
        ));
    }
    let (sub, sid) = (text("sub"), text("sid"));
    if sub.is_none() && sid.is_none() {
        return Err(refused("it names neither `sub` nor `sid`"));
    }
    Ok(LogoutToken { sub, sid })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn provider() -> Provider {
        Provider::from_stored(
            &json!({"id": "01HFVBY12TMNTYTBV8W921M5FA", "issuer": "https://idp.example/", "client_id": "mas", "token_endpoint_auth_method": "none"}),
            None,
        )
        .unwrap()
    }

    fn good() -> Value {
        json!({
            "iss": "https://idp.example/", "aud": ["mas", "other"], "iat": 1000, "exp": 1120, "jti": "j",
            "sid": "s1", "events": {LOGOUT_EVENT: {}},
        })
    }

    #[test]
    fn each_claim_rule_is_checked() {
        let p = provider();
        assert_eq!(
            check_claims(&p, &good(), 1000).unwrap(),
            LogoutToken {
                sub: None,
                sid: Some("s1".to_owned())
            }
        );
        let cases = [
            ("iss", json!("https://evil.example/"), "issuer"),
            ("aud", json!("someone-else"), "not meant"),
            ("iat", json!(1), "not issued just now"),
            ("exp", json!(999), "expired"),
            ("exp", Value::Null, "no `exp`"),
            (
                "events",
                json!({"other": {}}),
                "no back-channel logout event",
            ),
            ("nonce", json!("n"), "nonce"),
            ("sid", Value::Null, "neither"),
        ];
        for (claim, value, expected) in cases {
            let mut claims = good();
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(claim);
            } else {
                claims[claim] = value;
            }
            let error = check_claims(&p, &claims, 1000).unwrap_err().to_string();
            assert!(error.contains(expected), "{claim}: {error}");
        }
    }
}
