//! Writes the last activity of sessions that the handlers noted in memory, every few
//! seconds and once more at shutdown.

use std::sync::Arc;
use std::time::Duration;

use mas_storage::{ActivityTracker, RepositoryFactory, StorageError};
use tokio::sync::watch;

/// How often noted activity is written.
pub const ACTIVITY_INTERVAL: Duration = Duration::from_secs(5);

/// Writes what `tracker` noted since the last call; what cannot be written is put back
/// for the next try. Returns how many sessions were updated.
///
/// # Errors
/// When the database cannot be written.
pub async fn write_activity_once(
    tracker: &ActivityTracker,
    factory: &dyn RepositoryFactory,
) -> Result<u64, StorageError> {
    let batch = tracker.take();
    if batch.is_empty() {
        return Ok(0);
    }
    // Each statement stands on its own: no transaction to hold.
    let written = match factory.reader().await {
        Ok(mut repo) => repo.activity().record(&batch).await,
        Err(error) => Err(error),
    };
    match written {
        Ok(updated) => Ok(updated),
        Err(error) => {
            tracker.restore(batch);
            Err(error)
        }
    }
}

/// Writes noted activity every `interval` until told to stop, then once more.
pub async fn run_activity_writer(
    tracker: Arc<ActivityTracker>,
    factory: Arc<dyn RepositoryFactory>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(interval) => false,
            () = crate::stopped(&mut stop) => true,
        };
        // An outage is logged by the storage gate; the notes wait for the next try.
        if let Err(error) = write_activity_once(&tracker, factory.as_ref()).await
            && !matches!(error, StorageError::Unavailable)
        {
            tracing::warn!(%error, "cannot write session activity; will try again");
        }
        if stopping {
            break;
        }
    }
}
