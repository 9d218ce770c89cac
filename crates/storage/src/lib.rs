//! What the service needs from its database, as traits: implementations live in
//! `mas-storage-sql`; handlers and tasks only see these.
//!
//! A [`Repository`] is a unit of work: everything done through it is committed by
//! [`Repository::save`] or rolled back when it is dropped. Time and randomness are
//! injected ([`Clock`], `&mut dyn Rng`) so tests are deterministic. Tokens are passed in
//! plain and stored only as hashes by the implementation.

pub mod accounts;
pub mod activity;
pub mod bulk;
mod clock;
mod encrypter;
pub mod jobs;
mod pagination;
pub mod repository;
mod revocations;

use std::future::Future;
use std::pin::Pin;

pub use self::activity::{Activity, ActivityTracker, SessionKind};
pub use self::clock::{Clock, MockClock, SystemClock};
pub use self::encrypter::{DecryptError, Encrypter};
pub use self::pagination::{Page, Pagination, PaginationDirection};
pub use self::repository::{BoxRepository, Repository, RepositoryFactory};
pub use self::revocations::{MAX_AGE as MAX_CACHE_AGE, Revocations, Ticket};

/// A boxed future, so the traits stay usable as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The random source handed to repository methods that create things.
pub type Rng<'a> = &'a mut (dyn rand::Rng + Send);

/// A new ULID for a record created at `at`: that time, and 80 random bits from `rng`.
pub fn new_id(rng: Rng<'_>, at: chrono::DateTime<chrono::Utc>) -> ulid::Ulid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or_default();
    let mut random = [0u8; 16];
    rng.fill_bytes(&mut random);
    ulid::Ulid::from_parts(millis, u128::from_le_bytes(random))
}

/// The SHA-256 of a secret (a token, a code): what a store keeps and looks up by, never
/// the secret itself.
#[must_use]
pub fn secret_hash(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached right now; the request may be retried later.
    #[error("the database is unavailable")]
    Unavailable,
    /// The change conflicts with what is stored (a unique value already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A statement of this unit of work failed earlier, so nothing of it was saved.
    #[error("the unit of work had a failed statement and was rolled back")]
    Aborted,
    /// A stored row could not be turned into a domain value (corrupt or foreign data).
    #[error("invalid stored data in {table}: {reason}")]
    InvalidData {
        /// The table the row came from.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The database answered with an error.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Waits until queued jobs may be waiting, so workers need not poll in a tight loop.
pub trait JobWake: Send {
    /// Returns when a job was scheduled somewhere, or after the poll interval.
    fn wait(&mut self) -> BoxFuture<'_, ()>;
}

/// Tells whether the database answers, for `/health`.
pub trait Health: Send + Sync {
    /// Succeeds when the database answered a trivial query in time.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when it did not answer in time or refused.
    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>>;
}
