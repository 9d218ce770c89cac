//! Encryption of secrets at rest (client secrets, upstream secrets) with the
//! `secrets.encryption` key: ChaCha20-Poly1305 with a random nonce per value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Encrypts and decrypts short secrets for storage.
#[derive(Clone)]
pub struct Encrypter {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for Encrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encrypter([REDACTED])")
    }
}

/// Why a stored secret could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// Not base64, or too short to hold a nonce.
    #[error("the stored value is malformed")]
    Malformed,
    /// Wrong key, or the value was tampered with.
    #[error("the stored value does not decrypt with this key")]
    Mismatch,
}

impl Encrypter {
    /// An encrypter with a 32-byte key.
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is valid for ChaCha20-Poly1305"));
        Self {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        }
    }

    /// Encrypts `plain` with a fresh nonce from `rng`; the result is base64 text.
    pub fn encrypt(&self, rng: crate::Rng<'_>, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut buffer = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buffer,
            )
            .unwrap_or_else(|_| unreachable!("sealing only fails on absurd lengths"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        STANDARD_NO_PAD.encode(out)
    }

    /// Decrypts a value made by [`Encrypter::encrypt`].
    ///
    /// # Errors
    /// [`DecryptError`] when the value is malformed or was encrypted with another key.
    pub fn decrypt(&self, stored: &str) -> Result<Vec<u8>, DecryptError> {
        let bytes = STANDARD_NO_PAD
            .decode(stored)
            .map_err(|_| DecryptError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(DecryptError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| DecryptError::Malformed)?;
        let mut buffer = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut buffer)
            .map_err(|_| DecryptError::Mismatch)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_another_key() {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let encrypter = Encrypter::new(&[7; 32]);
        let sealed = encrypter.encrypt(&mut rng, b"client secret");
        assert!(!sealed.contains("client secret"));
        assert_ne!(
            sealed,
            encrypter.encrypt(&mut rng, b"client secret"),
            "fresh nonce each time"
        );
        assert_eq!(encrypter.decrypt(&sealed).unwrap(), b"client secret");
        assert!(matches!(
            Encrypter::new(&[8; 32]).decrypt(&sealed),
            Err(DecryptError::Mismatch)
        ));
        assert!(matches!(
            encrypter.decrypt("!!"),
            Err(DecryptError::Malformed)
        ));
    }
}
