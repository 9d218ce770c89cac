//! Password checks off the async executor, on a few dedicated threads (one per core):
//! a burst of logins queues instead of starving the server, and because the same threads
//! do every hash, the memory argon2id needs (19 MiB a hash) is reused by the allocator
//! instead of piling up in the arenas of ever-new blocking threads.

use std::sync::{Arc, Mutex, OnceLock, mpsc};

use mas_oauth_core::passwords::{PasswordError, PasswordManager, Verified};
use tokio::sync::oneshot;

/// One unit of hashing work, run on a hashing thread.
type Work = Box<dyn FnOnce(&PasswordManager) + Send>;

/// Runs password hashing with bounded concurrency.
pub struct PasswordChecker {
    manager: Arc<PasswordManager>,
    work: Mutex<mpsc::Sender<Work>>,
    /// A hash to check unknown users against, so their answer takes as long as a real one.
    /// Made on a hashing thread after start, so it does not delay the first `/health`.
    decoy: Arc<OnceLock<Option<(u16, String)>>>,
    /// How long a failed check takes at least: the slowest configured scheme's hash.
    /// Without it, a user whose hash is still an imported bcrypt one (slow) would answer a
    /// wrong password later than an unknown user, whose decoy is argon2id, and so show
    /// that the account exists. Measured after start, beside the decoy.
    failure_floor: Arc<OnceLock<std::time::Duration>>,
}

impl std::fmt::Debug for PasswordChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChecker").finish_non_exhaustive()
    }
}

fn decoy_hash(manager: &PasswordManager) -> Option<(u16, String)> {
    manager
        .hash(salt(), "decoy password for unknown users")
        .ok()
}

/// `mas.password.queue.wait`, in seconds: how long a password check or hash waited for a
/// hashing thread.
fn queue_wait() -> &'static opentelemetry::metrics::Histogram<f64> {
    static INSTRUMENT: OnceLock<opentelemetry::metrics::Histogram<f64>> = OnceLock::new();
    INSTRUMENT.get_or_init(|| {
        opentelemetry::global::meter(crate::metrics::METER)
            .f64_histogram("mas.password.queue.wait")
            .with_unit("s")
            .with_description("How long password checks and hashes waited for a hashing thread")
            .with_boundaries(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .build()
    })
}

fn salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::make_rng::<rand::rngs::StdRng>(), &mut salt);
    salt
}

impl PasswordChecker {
    /// A checker running at most one hash per available core, each on its own thread.
    #[must_use]
    pub fn new(manager: PasswordManager) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let manager = Arc::new(manager);
        let (sender, receiver) = mpsc::channel::<Work>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..cores {
            let receiver = receiver.clone();
            let manager = manager.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next piece of work.
                        let next = receiver
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        let Ok(work) = next else { break };
                        work(&manager);
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        let decoy = Arc::new(OnceLock::new());
        let failure_floor = Arc::new(OnceLock::new());
        let (made, floor) = (decoy.clone(), failure_floor.clone());
        let _ = sender.send(Box::new(move |manager: &PasswordManager| {
            // The decoy is a hash with the newest scheme: its time is that scheme's.
            let start = std::time::Instant::now();
            let _ = made.set(decoy_hash(manager));
            let newest = start.elapsed();
            let _ = floor.set(newest.max(manager.older_schemes_hash_time()));
        }));
        Self {
            manager,
            work: Mutex::new(sender),
            decoy,
            failure_floor,
        }
    }

    /// Runs `f` on a hashing thread and waits for its answer without blocking the executor.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&PasswordManager) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (answer, answered) = oneshot::channel();
        let queued = std::time::Instant::now();
        let work: Work = Box::new(move |manager| {
            queue_wait().record(queued.elapsed().as_secs_f64(), &[]);
            let _ = answer.send(f(manager));
        });
        self.work
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(work)
            .map_err(|_| PasswordError::Hashing("no hashing thread is running".to_owned()))?;
        answered
            .await
            .map_err(|_| PasswordError::Hashing("the hashing thread stopped".to_owned()))?
    }

    /// Whether passwords can be used at all.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.manager.is_enabled()
    }

    /// The lowest zxcvbn score a new password needs.
    #[must_use]
    pub fn minimum_complexity(&self) -> u8 {
        self.manager.minimum_complexity()
    }

    /// Verifies `password` against a stored hash (see [`PasswordManager::verify`]). A
    /// failure answers no sooner than the slowest scheme would (see `failure_floor`),
    /// counted from the call, and waits without holding a hashing thread.
    ///
    /// # Errors
    /// As [`PasswordManager::verify`].
    pub async fn verify(
        &self,
        version: u16,
        hash: String,
        password: String,
    ) -> Result<Verified, PasswordError> {
        let asked = tokio::time::Instant::now();
        let verified = self
            .run(move |manager| manager.verify(version, &hash, &password, salt()))
            .await;
        if verified.is_err()
            && let Some(floor) = self.failure_floor.get()
        {
            tokio::time::sleep_until(asked + *floor).await;
        }
        verified
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
        self.run(move |manager| manager.hash(salt(), &password))
            .await
    }

    /// Spends the time of a real check, for a user who does not exist; always fails.
    pub async fn verify_decoy(&self, password: String) -> PasswordError {
        let decoy = match self.decoy.get() {
            Some(decoy) => decoy.clone(),
            // Asked before the start-up hash was ready: make one now, the same way.
            None => self
                .run(|manager| Ok(decoy_hash(manager)))
                .await
                .ok()
                .flatten(),
        };
        if let Some((version, hash)) = decoy {
            let _ = self.verify(version, hash, password).await;
        }
        PasswordError::Mismatch
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Accounts imported from Synapse keep their bcrypt hashes until their next login,
    /// while unknown users are checked against an argon2id decoy: without a floor, a
    /// wrong password would answer later for the first than for the second.
    #[tokio::test]
    async fn failures_take_as_long_as_the_slowest_scheme() {
        use std::time::{Duration, Instant};

        use mas_oauth_core::passwords::{Algorithm, Scheme};

        let scheme = |version, algorithm| Scheme {
            version,
            algorithm,
            secret: None,
            unicode_normalization: false,
        };
        let bcrypt = scheme(1, Algorithm::Bcrypt { cost: 12 });
        let checker = PasswordChecker::new(PasswordManager::new(
            vec![scheme(2, Algorithm::Argon2id), bcrypt.clone()],
            0,
        ));
        let waited = Instant::now();
        let floor = loop {
            if let Some(floor) = checker.failure_floor.get() {
                break *floor;
            }
            assert!(waited.elapsed() < Duration::from_mins(1), "no floor");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let bcrypt_alone = {
            let manager = PasswordManager::new(vec![bcrypt], 0);
            let start = Instant::now();
            manager.hash([1; 16], "a password").unwrap();
            start.elapsed()
        };
        // The floor is bcrypt's time, not argon2id's (a few times shorter).
        assert!(floor * 2 >= bcrypt_alone, "{floor:?} < {bcrypt_alone:?}");

        let start = Instant::now();
        assert_eq!(
            checker.verify_decoy("a guess".to_owned()).await,
            PasswordError::Mismatch
        );
        assert!(start.elapsed() >= floor, "{:?}", start.elapsed());
        let (version, hash) = checker.hash("the password".to_owned()).await.unwrap();
        let start = Instant::now();
        assert_eq!(
            checker
                .verify(version, hash.clone(), "a guess".to_owned())
                .await,
            Err(PasswordError::Mismatch)
        );
        assert!(start.elapsed() >= floor, "{:?}", start.elapsed());
        assert_eq!(
            checker
                .verify(version, hash, "the password".to_owned())
                .await,
            Ok(Verified::Current)
        );
    }

    #[tokio::test]
    async fn hashing_runs_on_its_own_threads_one_per_core_at_most() {
        let checker = Arc::new(PasswordChecker::new(PasswordManager::new(Vec::new(), 0)));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (checker, running, most) = (checker.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                checker
                    .run(move |_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(std::thread::current().name().map(str::to_owned))
                    })
                    .await
            }));
        }
        for task in tasks {
            let name = task.await.unwrap().unwrap().unwrap();
            assert!(name.starts_with("password-hash-"), "{name}");
        }
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= cores,
            "{most} hashes at once on {cores} cores"
        );
    }
}
