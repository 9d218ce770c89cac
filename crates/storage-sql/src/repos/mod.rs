//! The repository implementations, one module per area.

pub(crate) mod compat;
pub(crate) mod job;
pub(crate) mod oauth2;
pub(crate) mod personal;
pub(crate) mod upstream;
pub(crate) mod user;

use std::sync::atomic::{AtomicBool, Ordering};

use mas_storage::StorageError;
use sea_orm::{DatabaseExecutor, DbErr};

/// What every repository holds: the connection or transaction of its unit of work.
pub(crate) struct Repo<'c> {
    pub(crate) conn: DatabaseExecutor<'c>,
    /// Set when a statement failed. PostgreSQL aborts the transaction then (and a later
    /// COMMIT silently rolls back), so the unit of work refuses to report a save.
    pub(crate) failed: &'c AtomicBool,
}

impl Repo<'_> {
    /// Maps a database error and marks the unit of work as failed.
    pub(crate) fn db_err(&self, error: DbErr) -> StorageError {
        self.failed.store(true, Ordering::Relaxed);
        crate::conv::db_err(error)
    }
}
