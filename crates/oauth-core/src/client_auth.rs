//! Client authentication at the token, introspection and revocation endpoints: `none`,
//! `client_secret_basic`, `client_secret_post`, `client_secret_jwt` and `private_key_jwt`.
//! A client must use the method it registered; secrets are compared in constant time;
//! assertions are single-use (`jti`) and must name us as their audience.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeDelta, Utc};
use mas_data_model::{Client, ClientAuthMethod};
use mas_storage::{Clock, Encrypter, Rng};
use serde_json::Value;
use subtle::ConstantTimeEq;
use ulid::Ulid;

use crate::error::{ErrorCode, OAuthError};
use crate::jose::UnverifiedJws;
use crate::params::Params;
use crate::store::ClientStore;

/// The only client assertion type (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far clocks may disagree when checking assertion lifetimes.
const LEEWAY_SECONDS: i64 = 30;
/// How far ahead an assertion's `exp` may be.
const MAX_ASSERTION_LIFETIME: TimeDelta = TimeDelta::hours(1);

/// What a request presented to authenticate its client.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The method the request used.
    pub method: ClientAuthMethod,
    /// The client it claims to be.
    pub client_id: String,
    secret: Option<String>,
    assertion: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("method", &self.method)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

impl ClientCredentials {
    /// Reads the credentials from the `Authorization` header and the form.
    ///
    /// # Errors
    /// `invalid_request` when several methods are mixed or a parameter is malformed,
    /// `invalid_client` when no client is named at all.
    pub fn from_request(authorization: Option<&str>, form: &Params) -> Result<Self, OAuthError> {
        let form_id = form.get("client_id")?;
        let form_secret = form.get("client_secret")?;
        let assertion_type = form.get("client_assertion_type")?;
        let assertion = form.get("client_assertion")?;

        if let Some(header) = authorization {
            let Some(encoded) = header
                .strip_prefix("Basic ")
                .or_else(|| header.strip_prefix("basic "))
            else {
                return Err(OAuthError::invalid_client());
            };
            if form_secret.is_some() || assertion.is_some() {
                return Err(OAuthError::invalid_request(
                    "use only one client authentication method",
                ));
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(OAuthError::invalid_client)?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(OAuthError::invalid_client)?;
            let (id, secret) = (
                form_decode(id).ok_or_else(OAuthError::invalid_client)?,
                form_decode(secret).ok_or_else(OAuthError::invalid_client)?,
            );
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Authorization header",
                ));
            }
            return Ok(Self {
                method: ClientAuthMethod::ClientSecretBasic,
                client_id: id,
                secret: Some(secret),
                assertion: None,
            });
        }

        if let Some(assertion) = assertion {
            if assertion_type != Some(JWT_BEARER) {
                return Err(OAuthError::invalid_request(format!(
                    "client_assertion_type must be {JWT_BEARER}"
                )));
            }
            if form_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use only one client authentication method",
                ));
            }
            let jws = UnverifiedJws::parse(assertion).map_err(|_| OAuthError::invalid_client())?;
            let subject = jws
                .payload
                .get("sub")
                .and_then(Value::as_str)
                .ok_or_else(OAuthError::invalid_client)?;
            if form_id.is_some_and(|f| f != subject) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the assertion",
                ));
            }
            let method = if jws.alg().starts_with("HS") {
                ClientAuthMethod::ClientSecretJwt
            } else {
                ClientAuthMethod::PrivateKeyJwt
            };
            return Ok(Self {
                method,
                client_id: subject.to_owned(),
                secret: None,
                assertion: Some(assertion.to_owned()),
            });
        }

        let client_id = form_id.ok_or_else(OAuthError::invalid_client)?.to_owned();
        Ok(match form_secret {
            Some(secret) => Self {
                method: ClientAuthMethod::ClientSecretPost,
                client_id,
                secret: Some(secret.to_owned()),
                assertion: None,
            },
            None => Self {
                method: ClientAuthMethod::None,
                client_id,
                secret: None,
                assertion: None,
            },
        })
    }

    /// Checks the credentials against the stored client.
    ///
    /// `audiences` are the URLs an assertion may name as `aud` (the endpoint and the
    /// issuer). `remote_keys` is the key set fetched from the client's `jwks_uri` (see
    /// [`remote_jwks_uri`]); the caller fetches it, so no HTTP happens in here. Every
    /// failure is the same `invalid_client`, so nothing is learnt from it.
    ///
    /// # Errors
    /// `invalid_client`; `temporarily_unavailable` when the database is away.
    pub async fn authenticate<S: ClientStore + ?Sized>(
        &self,
        repo: &mut S,
        rng: Rng<'_>,
        clock: &dyn Clock,
        encrypter: &Encrypter,
        audiences: &[&str],
        remote_keys: Option<&Value>,
    ) -> Result<Client, OAuthError> {
        let id: Ulid = self
            .client_id
            .parse()
            .map_err(|_| OAuthError::invalid_client())?;
        let client = repo
            .find_client(id)
            .await?
            .ok_or_else(OAuthError::invalid_client)?;
        if client.auth_method != self.method {
            tracing::info!(client = %client.id, expected = client.auth_method.as_str(), used = self.method.as_str(), "wrong client authentication method");
            return Err(OAuthError::invalid_client());
        }
        let stored_secret = || -> Result<Vec<u8>, OAuthError> {
            let sealed = client
                .encrypted_secret
                .as_deref()
                .ok_or_else(OAuthError::invalid_client)?;
            encrypter.decrypt(sealed).map_err(|error| {
                tracing::error!(%error, client = %client.id, "cannot decrypt a client secret");
                OAuthError::invalid_client()
            })
        };
        match self.method {
            ClientAuthMethod::None => {}
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
                let given = self.secret.as_deref().unwrap_or_default();
                if !constant_time_eq(given.as_bytes(), &stored_secret()?) {
                    return Err(OAuthError::invalid_client());
                }
            }
            ClientAuthMethod::ClientSecretJwt | ClientAuthMethod::PrivateKeyJwt => {
                let assertion = self.assertion.as_deref().unwrap_or_default();
                let jws =
                    UnverifiedJws::parse(assertion).map_err(|_| OAuthError::invalid_client())?;
                if self.method == ClientAuthMethod::ClientSecretJwt {
                    jws.verify_hmac(&stored_secret()?)
                        .map_err(|_| OAuthError::invalid_client())?;
                } else {
                    let key_set = client.jwks.as_ref().or(remote_keys).ok_or_else(|| {
                        OAuthError::new(
                            ErrorCode::InvalidClient,
                            "the keys published at the client's jwks_uri could not be fetched",
                        )
                    })?;
                    jws.verify_with_jwks(key_set)
                        .map_err(|_| OAuthError::invalid_client())?;
                }
                let expires_at =
                    check_assertion_claims(&jws.payload, &client, clock.now(), audiences)?;
                let jti = jws
                    .payload
                    .get("jti")
                    .and_then(Value::as_str)
                    .ok_or_else(OAuthError::invalid_client)?;
                if !repo
                    .record_client_assertion(rng, clock, client.id, jti, expires_at)
                    .await?
                {
                    tracing::warn!(client = %client.id, "client assertion replayed");
                    return Err(OAuthError::invalid_client());
                }
            }
        }
        Ok(client)
    }

    /// Whether the assertion names a key `jwks` does not have (false without an
    /// assertion): the caller may fetch the client's `jwks_uri` again, as the client may
    /// have rotated its keys.
    #[must_use]
    pub fn assertion_key_missing_from(&self, jwks: &Value) -> bool {
        self.assertion
            .as_deref()
            .and_then(|assertion| UnverifiedJws::parse(assertion).ok())
            .is_some_and(|jws| !jws.has_key_in(jwks))
    }
}

/// Where a `private_key_jwt` client publishes its keys, when it has no inline key set:
/// the caller fetches them before [`ClientCredentials::authenticate`].
#[must_use]
pub fn remote_jwks_uri(client: &Client) -> Option<&url::Url> {
    if client.auth_method == ClientAuthMethod::PrivateKeyJwt && client.jwks.is_none() {
        client.jwks_uri.as_ref()
    } else {
        None
    }
}

/// Compares secrets in constant time. Both sides are hashed first, so neither the content
/// nor the length leaks through timing.
#[must_use]
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let given = ring::digest::digest(&ring::digest::SHA256, given);
    let expected = ring::digest::digest(&ring::digest::SHA256, expected);
    given.as_ref().ct_eq(expected.as_ref()).into()
}

/// `iss` and `sub` name the client, `aud` names us, and it has not expired; returns `exp`.
fn check_assertion_claims(
    claims: &Value,
    client: &Client,
    now: DateTime<Utc>,
    audiences: &[&str],
) -> Result<DateTime<Utc>, OAuthError> {
    let id = client.id.to_string();
    let str_claim = |name: &str| claims.get(name).and_then(Value::as_str);
    if str_claim("iss") != Some(id.as_str()) || str_claim("sub") != Some(id.as_str()) {
        return Err(OAuthError::invalid_client());
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences.contains(&aud.as_str()),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.contains(&a)),
        _ => false,
    };
    if !aud_ok {
        return Err(OAuthError::invalid_client());
    }
    let leeway = TimeDelta::seconds(LEEWAY_SECONDS);
    // `now` is a real clock reading, so these bounds are far from chrono's limits; the
    // claims are not, and are only ever compared, never added to.
    let (Some(earliest), Some(latest), Some(longest)) = (
        now.checked_sub_signed(leeway),
        now.checked_add_signed(leeway),
        now.checked_add_signed(MAX_ASSERTION_LIFETIME),
    ) else {
        return Err(OAuthError::invalid_client());
    };
    let exp = numeric_date(claims, "exp")?.ok_or_else(OAuthError::invalid_client)?;
    // Assertions are short-lived: an expired one, or one valid for hours, is refused.
    if exp < earliest || exp > longest {
        return Err(OAuthError::invalid_client());
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > latest) {
        return Err(OAuthError::invalid_client());
    }
    if numeric_date(claims, "iat")?.is_some_and(|iat| iat > latest) {
        return Err(OAuthError::invalid_client());
    }
    // Cannot overflow: `exp` is at most an hour from now.
    exp.checked_add_signed(leeway)
        .ok_or_else(OAuthError::invalid_client)
}

/// A time claim (RFC 7519 `NumericDate`) as a date: `None` when absent, `invalid_client`
/// when present but not whole seconds chrono can represent (floats, strings, `null` and
/// out-of-range numbers included), so a malformed `nbf` or `iat` is never just ignored.
fn numeric_date(claims: &Value, name: &str) -> Result<Option<DateTime<Utc>>, OAuthError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    value
        .as_i64()
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .map(Some)
        .ok_or_else(OAuthError::invalid_client)
}

#[cfg(test)]
mod tests {
    use super::ClientCredentials;
    use crate::params::Params;

    #[test]
    fn debug_output_hides_secrets_and_assertions() {
        let form = Params::parse(b"client_id=app&client_secret=hunter2-very-secret").unwrap();
        let credentials = ClientCredentials::from_request(None, &form).unwrap();
        let shown = format!("{credentials:?}");
        assert!(shown.contains("app"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");

        let form = Params::parse(
            b"client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJlLXNlY3JldA",
        )
        .unwrap();
        let credentials = ClientCredentials::from_request(None, &form).unwrap();
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("c2lnbmF0dXJlLXNlY3JldA"), "{shown}");
    }
}
