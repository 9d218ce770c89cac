//! Password checks off the async executor: each runs on a blocking thread, and at most
//! one per core runs at once, so a burst of logins queues instead of starving the server.

use std::sync::Arc;

use mas_oauth_core::passwords::{PasswordError, PasswordManager, Verified};
use tokio::sync::Semaphore;

/// Runs password hashing with bounded concurrency.
#[derive(Debug)]
pub struct PasswordChecker {
    manager: Arc<PasswordManager>,
    permits: Semaphore,
    /// A hash to check unknown users against, so their answer takes as long as a real one.
    decoy: Option<(u16, String)>,
}

fn salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::make_rng::<rand::rngs::StdRng>(), &mut salt);
    salt
}

impl PasswordChecker {
    /// A checker running at most one hash per available core.
    #[must_use]
    pub fn new(manager: PasswordManager) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let decoy = manager
            .hash(salt(), "decoy password for unknown users")
            .ok();
        Self {
            manager: Arc::new(manager),
            permits: Semaphore::new(cores),
            decoy,
        }
    }

    /// Whether passwords can be used at all.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.manager.is_enabled()
    }

    /// Verifies `password` against a stored hash (see [`PasswordManager::verify`]).
    ///
    /// # Errors
    /// As [`PasswordManager::verify`].
    pub async fn verify(
        &self,
        version: u16,
        hash: String,
        password: String,
    ) -> Result<Verified, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Disabled)?;
        let manager = self.manager.clone();
        tokio::task::spawn_blocking(move || manager.verify(version, &hash, &password, salt()))
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))?
    }

    /// Whether `password` is strong enough for a new account (see
    /// [`PasswordManager::is_strong_enough`]).
    #[must_use]
    pub fn is_strong_enough(&self, password: &str, user_inputs: &[&str]) -> bool {
        self.manager.is_strong_enough(password, user_inputs)
    }

    /// Hashes a new password with the newest scheme, as [`Self::verify`] runs.
    ///
    /// # Errors
    /// As [`PasswordManager::hash`].
    pub async fn hash(&self, password: String) -> Result<(u16, String), PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Disabled)?;
        let manager = self.manager.clone();
        tokio::task::spawn_blocking(move || manager.hash(salt(), &password))
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))?
    }

    /// Spends the time of a real check, for a user who does not exist; always fails.
    pub async fn verify_decoy(&self, password: String) -> PasswordError {
        if let Some((version, hash)) = self.decoy.clone() {
            let _ = self.verify(version, hash, password).await;
        }
        PasswordError::Mismatch
    }
}
