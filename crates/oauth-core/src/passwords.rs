//! Password hashing with versioned schemes, as `passwords.schemes` declares them: the
//! highest version hashes new passwords, older ones still verify (and a successful login
//! re-hashes with the newest). Argon2id by default; bcrypt and PBKDF2 to verify hashes
//! imported from Synapse or elsewhere.
//!
//! Hashing is deliberately slow: callers run these functions on a blocking thread with
//! bounded concurrency, never on the async executor.

use std::fmt;

use argon2::{Argon2, PasswordHasher as _};
use unicode_normalization::UnicodeNormalization;

/// A hashing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Argon2id with the library's (OWASP-recommended) default parameters.
    Argon2id,
    /// bcrypt with a cost (Synapse's default is 12).
    Bcrypt {
        /// The log2 work factor.
        cost: u32,
    },
    /// PBKDF2-SHA256 in PHC format.
    Pbkdf2,
}

/// One versioned scheme.
#[derive(Clone)]
pub struct Scheme {
    /// The version stored beside each hash.
    pub version: u16,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// A pepper: Argon2's secret input; appended to the password for bcrypt and PBKDF2,
    /// as Synapse does.
    pub secret: Option<Vec<u8>>,
    /// NFKC-normalise passwords before hashing (what Synapse does).
    pub unicode_normalization: bool,
}

impl fmt::Debug for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheme")
            .field("version", &self.version)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("unicode_normalization", &self.unicode_normalization)
            .finish()
    }
}

/// Why a password operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The password does not match.
    #[error("wrong password")]
    Mismatch,
    /// The hash was made by a scheme version that is no longer configured.
    #[error("unknown password scheme version {0}")]
    UnknownVersion(u16),
    /// Password login is disabled, or no scheme is configured.
    #[error("passwords are disabled")]
    Disabled,
    /// The stored hash is not in a format the scheme reads.
    #[error("the stored hash is malformed")]
    MalformedHash,
    /// Hashing failed (bad parameters).
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Hashes and verifies passwords, and judges their strength.
#[derive(Debug, Clone)]
pub struct PasswordManager {
    /// Newest version first.
    schemes: Vec<Scheme>,
    minimum_complexity: u8,
}

/// The outcome of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The hash uses the newest scheme.
    Current,
    /// The hash uses an older scheme: store this re-hash with the newest.
    Upgrade {
        /// The newest scheme's version.
        version: u16,
        /// The new hash.
        hash: String,
    },
}

impl PasswordManager {
    /// A manager for `schemes` (any order); empty means passwords are disabled.
    #[must_use]
    pub fn new(mut schemes: Vec<Scheme>, minimum_complexity: u8) -> Self {
        schemes.sort_by_key(|s| std::cmp::Reverse(s.version));
        Self {
            schemes,
            minimum_complexity,
        }
    }

    /// Whether passwords can be used at all.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        !self.schemes.is_empty()
    }

    /// The lowest zxcvbn score (0 to 4) a new password needs.
    #[must_use]
    pub fn minimum_complexity(&self) -> u8 {
        self.minimum_complexity
    }

    /// Hashes a new password with the newest scheme; returns its version and the hash.
    /// `salt` is 16 random bytes from the caller's random source.
    ///
    /// # Errors
    /// [`PasswordError::Disabled`] without schemes, [`PasswordError::Hashing`].
    pub fn hash(&self, salt: [u8; 16], password: &str) -> Result<(u16, String), PasswordError> {
        let scheme = self.schemes.first().ok_or(PasswordError::Disabled)?;
        Ok((scheme.version, hash_with(scheme, salt, password)?))
    }

    /// Checks `password` against a hash made by scheme `version`; on success says whether
    /// it should be re-hashed with the newest scheme (`salt` is used for that re-hash).
    ///
    /// # Errors
    /// [`PasswordError::Mismatch`], [`PasswordError::UnknownVersion`],
    /// [`PasswordError::MalformedHash`].
    pub fn verify(
        &self,
        version: u16,
        hash: &str,
        password: &str,
        salt: [u8; 16],
    ) -> Result<Verified, PasswordError> {
        let newest = self.schemes.first().ok_or(PasswordError::Disabled)?;
        let scheme = self
            .schemes
            .iter()
            .find(|s| s.version == version)
            .ok_or(PasswordError::UnknownVersion(version))?;
        verify_with(scheme, hash, password)?;
        if scheme.version == newest.version {
            Ok(Verified::Current)
        } else {
            Ok(Verified::Upgrade {
                version: newest.version,
                hash: hash_with(newest, salt, password)?,
            })
        }
    }

    /// The longest one hash takes with any scheme older than the newest (checking a
    /// password costs one hash). With the newest scheme's time, it is how long a failed
    /// check must take so that its timing tells neither which scheme a stored hash uses
    /// nor whether the account exists. Measured by hashing a sample once per scheme.
    #[must_use]
    pub fn older_schemes_hash_time(&self) -> std::time::Duration {
        self.schemes
            .iter()
            .skip(1)
            .map(|scheme| {
                let start = std::time::Instant::now();
                let _ = hash_with(scheme, [0; 16], "a sample password, for timing");
                start.elapsed()
            })
            .max()
            .unwrap_or_default()
    }

    /// Whether `password` is strong enough: its zxcvbn score reaches the configured
    /// minimum. `user_inputs` (the username, say) count as guessable words.
    #[must_use]
    pub fn is_strong_enough(&self, password: &str, user_inputs: &[&str]) -> bool {
        let score = zxcvbn::zxcvbn(password, user_inputs).score();
        u8::from(score) >= self.minimum_complexity
    }
}

fn prepare(scheme: &Scheme, password: &str) -> Vec<u8> {
    let mut bytes: Vec<u8> = if scheme.unicode_normalization {
        password.nfkc().collect::<String>().into_bytes()
    } else {
        password.as_bytes().to_vec()
    };
    if !matches!(scheme.algorithm, Algorithm::Argon2id)
        && let Some(pepper) = &scheme.secret
    {
        bytes.extend_from_slice(pepper);
    }
    bytes
}

fn argon2(scheme: &Scheme) -> Result<Argon2<'_>, PasswordError> {
    match &scheme.secret {
        Some(secret) => Argon2::new_with_secret(
            secret,
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::default(),
        )
        .map_err(|e| PasswordError::Hashing(e.to_string())),
        None => Ok(Argon2::default()),
    }
}

fn hash_with(scheme: &Scheme, salt: [u8; 16], password: &str) -> Result<String, PasswordError> {
    let input = prepare(scheme, password);
    match scheme.algorithm {
        Algorithm::Argon2id => argon2(scheme)?
            .hash_password_with_salt(&input, &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hashing(e.to_string())),
        Algorithm::Bcrypt { cost } => bcrypt::hash_with_salt(&input, cost, salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hashing(e.to_string())),
        Algorithm::Pbkdf2 => pbkdf2::Pbkdf2::default()
            .hash_password_with_salt(&input, &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hashing(e.to_string())),
    }
}

thread_local! {
    /// The working memory of argon2id on this thread (19 MiB at MAS's parameters), kept
    /// between checks: the few threads that hash reuse it instead of allocating it anew,
    /// which the allocator would otherwise let pile up.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Memory kept between checks at most; a stored hash with a larger cost gets a one-off
/// allocation.
const KEEP_BLOCKS: usize = 4 * 19_456;

/// Verifies an argon2id PHC string, with this thread's kept working memory.
fn verify_argon2id(scheme: &Scheme, hash: &str, input: &[u8]) -> Result<(), PasswordError> {
    use subtle::ConstantTimeEq;

    let parsed = argon2::PasswordHash::new(hash).map_err(|_| PasswordError::MalformedHash)?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return Err(PasswordError::MalformedHash);
    }
    let params = argon2::Params::try_from(&parsed).map_err(|_| PasswordError::MalformedHash)?;
    let version = match parsed.version {
        Some(v) => argon2::Version::try_from(v).map_err(|_| PasswordError::MalformedHash)?,
        None => argon2::Version::default(),
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(PasswordError::MalformedHash);
    };
    let blocks = params.block_count();
    let hasher = match &scheme.secret {
        Some(secret) => {
            Argon2::new_with_secret(secret, argon2::Algorithm::Argon2id, version, params)
                .map_err(|e| PasswordError::Hashing(e.to_string()))?
        }
        None => Argon2::new(argon2::Algorithm::Argon2id, version, params),
    };
    let mut out = vec![0u8; expected.len()];
    let computed = if blocks <= KEEP_BLOCKS {
        ARGON2_MEMORY.with_borrow_mut(|memory| {
            if memory.len() < blocks {
                memory.resize(blocks, argon2::Block::default());
            }
            hasher.hash_password_into_with_memory(
                input,
                salt.as_ref(),
                &mut out,
                &mut memory[..blocks],
            )
        })
    } else {
        hasher.hash_password_into(input, salt.as_ref(), &mut out)
    };
    computed.map_err(|e| PasswordError::Hashing(e.to_string()))?;
    if bool::from(out.as_slice().ct_eq(expected.as_ref())) {
        Ok(())
    } else {
        Err(PasswordError::Mismatch)
    }
}

fn verify_with(scheme: &Scheme, hash: &str, password: &str) -> Result<(), PasswordError> {
    let input = prepare(scheme, password);
    match scheme.algorithm {
        Algorithm::Argon2id => verify_argon2id(scheme, hash, &input),
        Algorithm::Bcrypt { .. } => match bcrypt::verify(&input, hash) {
            Ok(true) => Ok(()),
            Ok(false) => Err(PasswordError::Mismatch),
            Err(_) => Err(PasswordError::MalformedHash),
        },
        Algorithm::Pbkdf2 => {
            use pbkdf2::PasswordVerifier;
            let parsed =
                pbkdf2::phc::PasswordHash::new(hash).map_err(|_| PasswordError::MalformedHash)?;
            match pbkdf2::Pbkdf2::default().verify_password(&input, &parsed) {
                Ok(()) => Ok(()),
                Err(pbkdf2::password_hash::Error::PasswordInvalid) => Err(PasswordError::Mismatch),
                Err(_) => Err(PasswordError::MalformedHash),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(version: u16, algorithm: Algorithm) -> Scheme {
        Scheme {
            version,
            algorithm,
            secret: None,
            unicode_normalization: false,
        }
    }

    #[test]
    fn argon2id_round_trips_with_a_phc_string() {
        let manager = PasswordManager::new(vec![scheme(1, Algorithm::Argon2id)], 3);
        let (version, hash) = manager
            .hash([7; 16], "correct horse battery staple")
            .unwrap();
        assert_eq!(version, 1);
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            manager.verify(1, &hash, "correct horse battery staple", [8; 16]),
            Ok(Verified::Current)
        );
        assert_eq!(
            manager.verify(1, &hash, "wrong", [8; 16]),
            Err(PasswordError::Mismatch)
        );
        assert_eq!(
            manager.verify(2, &hash, "x", [8; 16]),
            Err(PasswordError::UnknownVersion(2))
        );
        assert_eq!(
            manager.verify(1, "garbage", "x", [8; 16]),
            Err(PasswordError::MalformedHash)
        );
    }

    #[test]
    fn old_schemes_verify_and_are_upgraded() {
        let old = PasswordManager::new(vec![scheme(1, Algorithm::Bcrypt { cost: 4 })], 0);
        let (_, bcrypt_hash) = old.hash([1; 16], "hunter2").unwrap();
        assert!(bcrypt_hash.starts_with("$2b$04$"));
        let manager = PasswordManager::new(
            vec![
                scheme(2, Algorithm::Argon2id),
                scheme(1, Algorithm::Bcrypt { cost: 4 }),
            ],
            0,
        );
        let Verified::Upgrade { version, hash } =
            manager.verify(1, &bcrypt_hash, "hunter2", [2; 16]).unwrap()
        else {
            panic!("an old hash is upgraded");
        };
        assert_eq!(version, 2);
        assert_eq!(
            manager.verify(2, &hash, "hunter2", [3; 16]),
            Ok(Verified::Current)
        );
        assert_eq!(
            manager.verify(1, &bcrypt_hash, "hunter3", [2; 16]),
            Err(PasswordError::Mismatch)
        );
    }

    #[test]
    fn pbkdf2_and_peppers_and_normalisation() {
        let pbkdf2 = PasswordManager::new(vec![scheme(1, Algorithm::Pbkdf2)], 0);
        let (_, hash) = pbkdf2.hash([4; 16], "pässword").unwrap();
        assert!(hash.starts_with("$pbkdf2-sha256$"), "{hash}");
        assert_eq!(
            pbkdf2.verify(1, &hash, "pässword", [0; 16]),
            Ok(Verified::Current)
        );

        let peppered = Scheme {
            secret: Some(b"pepper".to_vec()),
            ..scheme(1, Algorithm::Argon2id)
        };
        let with = PasswordManager::new(vec![peppered], 0);
        let without = PasswordManager::new(vec![scheme(1, Algorithm::Argon2id)], 0);
        let (_, hash) = with.hash([5; 16], "secret").unwrap();
        assert_eq!(
            with.verify(1, &hash, "secret", [0; 16]),
            Ok(Verified::Current)
        );
        assert_eq!(
            without.verify(1, &hash, "secret", [0; 16]),
            Err(PasswordError::Mismatch)
        );

        // NFKC: the ligature "ﬁ" and "fi" are the same password.
        let normalising = PasswordManager::new(
            vec![Scheme {
                unicode_normalization: true,
                ..scheme(1, Algorithm::Pbkdf2)
            }],
            0,
        );
        let (_, hash) = normalising.hash([6; 16], "\u{FB01}sh").unwrap();
        assert_eq!(
            normalising.verify(1, &hash, "fish", [0; 16]),
            Ok(Verified::Current)
        );
    }

    #[test]
    fn complexity_uses_zxcvbn_scores() {
        let manager = PasswordManager::new(vec![scheme(1, Algorithm::Argon2id)], 3);
        assert!(!manager.is_strong_enough("password", &[]));
        assert!(!manager.is_strong_enough("alice2024", &["alice"]));
        assert!(manager.is_strong_enough("correct horse battery staple", &[]));
        assert!(!PasswordManager::new(Vec::new(), 0).is_enabled());
    }
}
