//! The signing keys from `secrets.keys`: RSA and EC P-256/P-384, in PKCS#8 or PKCS#1 PEM.
//! Published as a JWK set; used to sign ID tokens (RS256 is required by OpenID Connect).

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use serde_json::{Value, json};

use crate::jose::b64;

/// The JWS algorithms our keys sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (mandatory in OpenID Connect).
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
}

impl SigningAlgorithm {
    /// The JOSE name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
        }
    }

    /// Parses a JOSE name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Rs256, Self::Es256, Self::Es384]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}

/// Why a key could not be loaded or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not PEM, or a PEM label we do not read.
    #[error("key {index}: not a PEM private key (PKCS#8 or PKCS#1)")]
    NotPem {
        /// Position of the key in `secrets.keys`.
        index: usize,
    },
    /// The key material was refused (wrong type, too small, corrupt).
    #[error("key {index}: unsupported or invalid key ({reason})")]
    Rejected {
        /// Position of the key in `secrets.keys`.
        index: usize,
        /// What was wrong.
        reason: String,
    },
    /// OpenID Connect requires an RSA key for RS256.
    #[error("no RSA key: OpenID Connect requires one for RS256")]
    NoRsaKey,
    /// No key signs with the requested algorithm.
    #[error("no key for {0}")]
    NoKeyFor(&'static str),
    /// The signing operation failed.
    #[error("signing failed")]
    Signing,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, SigningAlgorithm),
}

struct Key {
    kid: String,
    pair: Pair,
    jwk: Value,
}

/// The service's signing keys.
pub struct KeyStore {
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field(
                "kids",
                &self.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Loads keys from PEM text, each with an optional `kid` (derived from the key's
    /// RFC 7638 thumbprint when absent).
    ///
    /// # Errors
    /// [`KeyError`] naming the first key that cannot be used, or [`KeyError::NoRsaKey`].
    pub fn from_pems<'a>(
        keys: impl IntoIterator<Item = (Option<&'a str>, &'a str)>,
    ) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let mut loaded = Vec::new();
        for (index, (kid, pem)) in keys.into_iter().enumerate() {
            let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
                .map_err(|_| KeyError::NotPem { index })?;
            let rejected = |e: ring::error::KeyRejected| KeyError::Rejected {
                index,
                reason: e.to_string(),
            };
            let pair = match label {
                "RSA PRIVATE KEY" => Pair::Rsa(RsaKeyPair::from_der(&der).map_err(rejected)?),
                "PRIVATE KEY" => {
                    if let Ok(rsa) = RsaKeyPair::from_pkcs8(&der) {
                        Pair::Rsa(rsa)
                    } else if let Ok(ec) =
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                    {
                        Pair::Ec(ec, SigningAlgorithm::Es256)
                    } else {
                        Pair::Ec(
                            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &der, &rng)
                                .map_err(rejected)?,
                            SigningAlgorithm::Es384,
                        )
                    }
                }
                _ => return Err(KeyError::NotPem { index }),
            };
            let (public, thumbprint_input) = public_jwk(&pair);
            let kid = kid.map_or_else(
                || {
                    b64(
                        ring::digest::digest(&ring::digest::SHA256, thumbprint_input.as_bytes())
                            .as_ref(),
                    )
                },
                str::to_owned,
            );
            let mut jwk = public;
            jwk["kid"] = Value::String(kid.clone());
            jwk["use"] = Value::String("sig".to_owned());
            loaded.push(Key { kid, pair, jwk });
        }
        if !loaded.iter().any(|k| matches!(k.pair, Pair::Rsa(_))) {
            return Err(KeyError::NoRsaKey);
        }
        Ok(Self { keys: loaded, rng })
    }

    /// The public keys as a JWK set (`/oauth2/keys.json`).
    #[must_use]
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// The algorithms the keys can sign with, RS256 first.
    #[must_use]
    pub fn algorithms(&self) -> Vec<SigningAlgorithm> {
        let mut algs = vec![SigningAlgorithm::Rs256];
        for key in &self.keys {
            if let Pair::Ec(_, alg) = key.pair
                && !algs.contains(&alg)
            {
                algs.push(alg);
            }
        }
        algs
    }

    /// Signs `claims` as a compact JWS with the first key for `alg`.
    ///
    /// # Errors
    /// [`KeyError::NoKeyFor`] when no key signs with `alg`, [`KeyError::Signing`].
    pub fn sign(&self, alg: SigningAlgorithm, claims: &Value) -> Result<String, KeyError> {
        let key = self
            .keys
            .iter()
            .find(|k| match (&k.pair, alg) {
                (Pair::Rsa(_), SigningAlgorithm::Rs256) => true,
                (Pair::Ec(_, a), _) => *a == alg,
                _ => false,
            })
            .ok_or(KeyError::NoKeyFor(alg.as_str()))?;
        let header = json!({ "alg": alg.as_str(), "typ": "JWT", "kid": key.kid });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match &key.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &self.rng,
                    input.as_bytes(),
                    &mut signature,
                )
                .map_err(|_| KeyError::Signing)?;
                signature
            }
            Pair::Ec(pair, _) => pair
                .sign(&self.rng, input.as_bytes())
                .map_err(|_| KeyError::Signing)?
                .as_ref()
                .to_vec(),
        };
        Ok(format!("{input}.{}", b64(&signature)))
    }
}

/// The public JWK of a pair, and the RFC 7638 thumbprint input (required members in
/// lexicographic order, no spaces).
fn public_jwk(pair: &Pair) -> (Value, String) {
    match pair {
        Pair::Rsa(rsa) => {
            let components: RsaPublicKeyComponents<Vec<u8>> = rsa.public().into();
            let (n, e) = (b64(&components.n), b64(&components.e));
            let thumbprint = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (
                json!({ "kty": "RSA", "alg": "RS256", "n": n, "e": e }),
                thumbprint,
            )
        }
        Pair::Ec(ec, alg) => {
            let point = ec.public_key().as_ref();
            let half = (point.len() - 1) / 2;
            let (x, y) = (b64(&point[1..=half]), b64(&point[1 + half..]));
            let crv = if *alg == SigningAlgorithm::Es256 {
                "P-256"
            } else {
                "P-384"
            };
            let thumbprint = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (
                json!({ "kty": "EC", "alg": alg.as_str(), "crv": crv, "x": x, "y": y }),
                thumbprint,
            )
        }
    }
}
