//! The job queue.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mas_data_model::Job;
use ulid::Ulid;

use crate::{Clock, Rng, StorageError};

/// A job to schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The kind of work.
    pub queue: String,
    /// Its arguments.
    pub payload: serde_json::Value,
    /// Not before this; `None` for now.
    pub run_at: Option<DateTime<Utc>>,
}

/// The job queue. Claiming is safe with many workers: each job goes to one of them.
///
/// Every method fails with [`StorageError::Unavailable`] when the database cannot be
/// reached and [`StorageError::Backend`] on other database errors.
#[async_trait]
pub trait JobRepository: Send {
    /// Queues a job; workers waiting on its queue are woken when the unit of work commits.
    async fn schedule(
        &mut self,
        rng: Rng<'_>,
        clock: &dyn Clock,
        job: NewJob,
    ) -> Result<Job, StorageError>;
    /// The job with this ID.
    async fn lookup(&mut self, id: Ulid) -> Result<Option<Job>, StorageError>;
    /// Claims up to `count` due jobs of the given queues for `lease`, oldest first. A
    /// running job whose lease ran out (its worker died) can be claimed again.
    async fn claim(
        &mut self,
        clock: &dyn Clock,
        queues: &[&str],
        count: u32,
        lease: Duration,
    ) -> Result<Vec<Job>, StorageError>;
    /// Marks a job done.
    async fn complete(&mut self, clock: &dyn Clock, job: Job) -> Result<Job, StorageError>;
    /// How many jobs wait to be claimed (due or not), for the metrics.
    async fn count_waiting(&mut self) -> Result<u64, StorageError>;
    /// Records a failure: back in the queue at `retry_at`, or failed for good when `None`.
    async fn fail(
        &mut self,
        clock: &dyn Clock,
        job: Job,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<Job, StorageError>;
}
