//! What the service needs from its database, as traits: implementations live in
//! `mas-storage-sql`; handlers and tasks only see these.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the traits stay usable as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached right now; the request may be retried later.
    #[error("the database is unavailable")]
    Unavailable,
    /// The database answered with an error.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Tells whether the database answers, for `/health`.
pub trait Health: Send + Sync {
    /// Succeeds when the database answered a trivial query in time.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when it did not answer in time or refused.
    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>>;
}
