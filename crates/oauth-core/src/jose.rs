//! Compact JSON Web Signatures (RFC 7515) and public JSON Web Keys (RFC 7517), as far as
//! OpenID Connect needs them: RS256/384/512, PS256/384/512, ES256/384 and HS256/384/512.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

/// Encodes bytes as unpadded base64url.
#[must_use]
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The ring HMAC algorithm of a JOSE name.
fn hmac_algorithm(alg: &str) -> Result<ring::hmac::Algorithm, JwsError> {
    match alg {
        "HS256" => Ok(ring::hmac::HMAC_SHA256),
        "HS384" => Ok(ring::hmac::HMAC_SHA384),
        "HS512" => Ok(ring::hmac::HMAC_SHA512),
        other => Err(JwsError::UnsupportedAlgorithm(other.to_owned())),
    }
}

/// Signs `claims` as a compact JWS with an HMAC algorithm and a shared secret
/// (`client_secret_jwt` towards another provider).
///
/// # Errors
/// [`JwsError::UnsupportedAlgorithm`] for non-HMAC algorithms.
pub fn sign_hmac(alg: &str, secret: &[u8], claims: &Value) -> Result<String, JwsError> {
    let key = ring::hmac::Key::new(hmac_algorithm(alg)?, secret);
    let header = serde_json::json!({ "alg": alg, "typ": "JWT" });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let tag = ring::hmac::sign(&key, input.as_bytes());
    Ok(format!("{input}.{}", b64(tag.as_ref())))
}

/// Why a JWS could not be read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts with a JSON header and payload.
    #[error("malformed JWT")]
    Malformed,
    /// The algorithm is not one we accept here (`none` among them).
    #[error("unsupported signing algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// No key fits the header (`kid`, key type).
    #[error("no matching key")]
    NoKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug, Clone)]
pub struct UnverifiedJws {
    /// The protected header.
    pub header: Value,
    /// The payload, as JSON.
    pub payload: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl UnverifiedJws {
    /// Splits and decodes `token` without checking anything yet.
    ///
    /// # Errors
    /// [`JwsError::Malformed`].
    pub fn parse(token: &str) -> Result<Self, JwsError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwsError::Malformed)
        };
        let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| JwsError::Malformed)?;
        let payload: Value =
            serde_json::from_slice(&decode(p)?).map_err(|_| JwsError::Malformed)?;
        if !header.is_object() || !payload.is_object() {
            return Err(JwsError::Malformed);
        }
        Ok(Self {
            header,
            payload,
            signing_input: format!("{h}.{p}"),
            signature: decode(s)?,
        })
    }

    /// The `alg` header.
    #[must_use]
    pub fn alg(&self) -> &str {
        self.header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Verifies an HMAC signature (`client_secret_jwt`) with `secret`.
    ///
    /// # Errors
    /// [`JwsError::UnsupportedAlgorithm`] for non-HMAC algorithms, [`JwsError::BadSignature`].
    pub fn verify_hmac(&self, secret: &[u8]) -> Result<(), JwsError> {
        let key = ring::hmac::Key::new(hmac_algorithm(self.alg())?, secret);
        // ring compares in constant time.
        ring::hmac::verify(&key, self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JwsError::BadSignature)
    }

    /// Verifies an asymmetric signature (`private_key_jwt`) against a JWK set.
    ///
    /// # Errors
    /// [`JwsError::NoKey`] when no key of the set fits, [`JwsError::BadSignature`].
    pub fn verify_with_jwks(&self, jwks: &Value) -> Result<(), JwsError> {
        let mut tried = false;
        for jwk in self.candidate_keys(jwks) {
            let Some(result) =
                jwk.verify(self.alg(), self.signing_input.as_bytes(), &self.signature)
            else {
                continue;
            };
            tried = true;
            if result.is_ok() {
                return Ok(());
            }
        }
        if tried {
            Err(JwsError::BadSignature)
        } else {
            Err(JwsError::NoKey)
        }
    }

    /// Whether `jwks` has a key the header could name, without checking the signature.
    /// A miss may mean the signer rotated its keys after the set was fetched.
    #[must_use]
    pub fn has_key_in(&self, jwks: &Value) -> bool {
        self.candidate_keys(jwks).next().is_some()
    }

    /// The keys of `jwks` the header allows: the `kid` it names, if any, of a type that
    /// can verify its `alg`.
    fn candidate_keys<'a>(&'a self, jwks: &'a Value) -> impl Iterator<Item = PublicJwk> + 'a {
        let kid = self.header.get("kid").and_then(Value::as_str);
        jwks.get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|key| serde_json::from_value::<PublicJwk>(key.clone()).ok())
            .filter(move |jwk| kid.is_none() || jwk.kid.as_deref() == kid)
            .filter(|jwk| jwk.fits(self.alg()))
    }
}

/// The public members of a JWK we can verify with.
#[derive(Debug, Deserialize)]
struct PublicJwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl PublicJwk {
    /// Whether this key's type (and curve) can verify `alg`.
    fn fits(&self, alg: &str) -> bool {
        match (self.kty.as_str(), alg) {
            ("RSA", "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512") => true,
            ("EC", "ES256") => self.crv.as_deref() == Some("P-256"),
            ("EC", "ES384") => self.crv.as_deref() == Some("P-384"),
            _ => false,
        }
    }

    /// `None` when this key cannot verify `alg` at all.
    fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> Option<Result<(), ()>> {
        let decode = |v: &Option<String>| v.as_deref().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        match (self.kty.as_str(), alg) {
            ("RSA", "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512") => {
                let params = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                let components = RsaPublicKeyComponents {
                    n: decode(&self.n)?,
                    e: decode(&self.e)?,
                };
                Some(components.verify(params, message, sig).map_err(|_| ()))
            }
            ("EC", "ES256" | "ES384") => {
                let (params, curve) = if alg == "ES256" {
                    (&signature::ECDSA_P256_SHA256_FIXED, "P-256")
                } else {
                    (&signature::ECDSA_P384_SHA384_FIXED, "P-384")
                };
                if self.crv.as_deref() != Some(curve) {
                    return None;
                }
                let mut point = vec![4u8];
                point.extend(decode(&self.x)?);
                point.extend(decode(&self.y)?);
                Some(
                    UnparsedPublicKey::new(params, point)
                        .verify(message, sig)
                        .map_err(|_| ()),
                )
            }
            _ => None,
        }
    }
}
