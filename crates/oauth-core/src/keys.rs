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
    /// A password-protected key did not decrypt (wrong password, or an unknown cipher).
    #[error("key {index}: cannot decrypt it with the configured password")]
    Decrypt {
        /// Position of the key in `secrets.keys`.
        index: usize,
    },
}

/// Decrypts a password-protected PKCS#8 key (`ENCRYPTED PRIVATE KEY`, PBES2) into the
/// plain `PRIVATE KEY` PEM that [`KeyStore::from_pems`] reads. `index` names the key in
/// errors.
///
/// # Errors
/// [`KeyError::NotPem`] when it is not such a PEM; [`KeyError::Decrypt`] when the
/// password is wrong or the cipher unsupported.
pub fn decrypt_pkcs8_pem(index: usize, pem: &str, password: &[u8]) -> Result<String, KeyError> {
    let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|_| KeyError::NotPem { index })?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(KeyError::NotPem { index });
    }
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
        .map_err(|_| KeyError::NotPem { index })?;
    let plain = info
        .decrypt(password)
        .map_err(|_| KeyError::Decrypt { index })?;
    let pem = plain
        .to_pem("PRIVATE KEY", pkcs8::der::pem::LineEnding::LF)
        .map_err(|_| KeyError::Decrypt { index })?;
    Ok(pem.to_string())
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
    skipped: Vec<(usize, String)>,
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
        let mut skipped = Vec::new();
        for (index, (kid, pem)) in keys.into_iter().enumerate() {
            let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
                .map_err(|_| KeyError::NotPem { index })?;
            let rejected = |e: ring::error::KeyRejected| KeyError::Rejected {
                index,
                reason: e.to_string(),
            };
            let pair = match label {
                "RSA PRIVATE KEY" => Pair::Rsa(RsaKeyPair::from_der(&der).map_err(rejected)?),
                "EC PRIVATE KEY" => match sec1(&der) {
                    Sec1::Key {
                        curve,
                        private,
                        public,
                    } => {
                        let (alg, signing) = match curve {
                            Curve::P256 => {
                                (&ECDSA_P256_SHA256_FIXED_SIGNING, SigningAlgorithm::Es256)
                            }
                            Curve::P384 => {
                                (&ECDSA_P384_SHA384_FIXED_SIGNING, SigningAlgorithm::Es384)
                            }
                        };
                        let pair = EcdsaKeyPair::from_private_key_and_public_key(
                            alg, private, public, &rng,
                        )
                        .map_err(rejected)?;
                        Pair::Ec(pair, signing)
                    }
                    Sec1::Unsupported(what) => {
                        skipped.push((index, what));
                        continue;
                    }
                    Sec1::Malformed => return Err(KeyError::NotPem { index }),
                },
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
        Ok(Self {
            keys: loaded,
            rng,
            skipped,
        })
    }

    /// Keys that were left out (by position) because this service cannot sign with their
    /// type, such as the secp256k1 key MAS generates. Worth a warning, not a failure.
    #[must_use]
    pub fn skipped(&self) -> &[(usize, String)] {
        &self.skipped
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

/// The curves we sign with.
enum Curve {
    P256,
    P384,
}

/// What a SEC1 `ECPrivateKey` (RFC 5915) holds.
enum Sec1<'a> {
    Key {
        curve: Curve,
        private: &'a [u8],
        public: &'a [u8],
    },
    Unsupported(String),
    Malformed,
}

/// One DER element: its tag, its contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 2 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Reads an `EC PRIVATE KEY`: version 1, the private scalar, the curve (`[0]`) and the
/// public point (`[1]`), which ring needs to build the key pair.
fn sec1(der: &[u8]) -> Sec1<'_> {
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    let Some((0x30, body, _)) = der_element(der) else {
        return Sec1::Malformed;
    };
    let Some((0x02, [1], rest)) = der_element(body) else {
        return Sec1::Malformed;
    };
    let Some((0x04, private, mut rest)) = der_element(rest) else {
        return Sec1::Malformed;
    };
    let (mut curve, mut public) = (None, None);
    while let Some((tag, value, next)) = der_element(rest) {
        match tag {
            0xa0 => {
                curve = der_element(value)
                    .filter(|(t, _, _)| *t == 0x06)
                    .map(|(_, oid, _)| oid);
            }
            // A BIT STRING with no unused bits: skip that leading byte.
            0xa1 => {
                public = der_element(value)
                    .filter(|(t, v, _)| *t == 0x03 && v.first() == Some(&0))
                    .map(|(_, v, _)| &v[1..]);
            }
            _ => {}
        }
        rest = next;
    }
    let curve = match curve {
        Some(P256) => Curve::P256,
        Some(P384) => Curve::P384,
        Some(_) => {
            return Sec1::Unsupported(
                "an EC key on a curve this service does not sign with".to_owned(),
            );
        }
        None => return Sec1::Unsupported("an EC key that does not name its curve".to_owned()),
    };
    match public {
        Some(public) => Sec1::Key {
            curve,
            private,
            public,
        },
        None => Sec1::Unsupported("an EC key without its public point".to_owned()),
    }
}
