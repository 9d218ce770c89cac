//! Background work: a job worker that runs queued jobs with retries and backoff, a
//! periodic cleanup of spent tokens, dead grants and never-used registered clients, and
//! the writer of sessions' last activity. All survive any failure of a job or of the
//! database: they log it, wait, and go on; they stop only when told to.

mod activity;
mod cleanup;
mod email;
pub mod homeserver;
mod worker;

pub use self::activity::{ACTIVITY_INTERVAL, run_activity_writer, write_activity_once};
pub use self::cleanup::{CleanupConfig, Removed, UNUSED_CLIENT_AGE, cleanup_once, run_cleanup};
pub use self::email::EmailJobs;
pub use self::homeserver::HomeserverJobs;
pub use self::worker::{JobError, JobHandler, Worker, WorkerConfig};

/// Resolves when the shutdown signal is raised (or its sender is gone).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
