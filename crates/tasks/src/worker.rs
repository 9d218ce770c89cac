//! The job worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeDelta;
use mas_data_model::Job;
use mas_storage::{Clock, JobWake, RepositoryFactory, StorageError};
use tokio::sync::watch;

/// Why a job did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt later (the homeserver was down, say).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (a malformed payload, say).
    #[error("{0}")]
    Fatal(String),
}

/// Runs the jobs of one queue.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The queue this handler serves.
    fn queue(&self) -> &'static str;

    /// Does the work of `job`.
    ///
    /// # Errors
    /// [`JobError::Retry`] to try again after a backoff, [`JobError::Fatal`] to give up.
    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

/// How the worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Jobs claimed at once.
    pub batch: u32,
    /// Extra time a claimed batch stays reserved beyond `job_timeout` per job.
    pub lease: Duration,
    /// Attempts before a job that keeps failing is given up.
    pub max_attempts: u32,
    /// The first retry delay; it doubles with each attempt.
    pub base_backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// How long one job may run before it counts as failed.
    pub job_timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch: 10,
            lease: Duration::from_mins(1),
            max_attempts: 10,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_mins(5),
            job_timeout: Duration::from_secs(30),
        }
    }
}

/// Claims and runs jobs until stopped.
pub struct Worker {
    factory: Arc<dyn RepositoryFactory>,
    clock: Arc<dyn Clock>,
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    config: WorkerConfig,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queues", &self.handlers.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker with no handlers yet.
    #[must_use]
    pub fn new(
        factory: Arc<dyn RepositoryFactory>,
        clock: Arc<dyn Clock>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            factory,
            clock,
            handlers: HashMap::new(),
            config,
        }
    }

    /// Adds the handler of one queue.
    #[must_use]
    pub fn with_handler(mut self, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(handler.queue(), handler);
        self
    }

    /// The delay before attempt `attempts + 1`: exponential, capped, with jitter so that
    /// many jobs failing together do not retry together.
    fn backoff(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(20);
        let delay = self
            .config
            .base_backoff
            .saturating_mul(1 << exponent)
            .min(self.config.max_backoff);
        let jitter = rand::random_range(0.8..1.2);
        delay.mul_f64(jitter)
    }

    /// Runs until `stop` turns true. Never returns early on errors.
    pub async fn run(self, mut wake: Box<dyn JobWake>, mut stop: watch::Receiver<bool>) {
        let queues: Vec<&'static str> = self.handlers.keys().copied().collect();
        tracing::info!(?queues, "job worker started");
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            match self.run_batch(&queues).await {
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        () = wake.wait() => {}
                        () = crate::stopped(&mut stop) => break,
                    }
                }
                Ok(_) => failures = 0,
                Err(error) => {
                    // The database is away: wait a little longer each time, then look again.
                    failures = failures.saturating_add(1);
                    let pause = self.backoff(failures).min(Duration::from_secs(10));
                    tracing::warn!(%error, ?pause, "job worker cannot reach the queue");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = crate::stopped(&mut stop) => break,
                    }
                }
            }
        }
        tracing::info!("job worker stopped");
    }

    /// Claims one batch and runs it; returns how many jobs ran.
    async fn run_batch(&self, queues: &[&str]) -> Result<usize, StorageError> {
        // The jobs of a batch run one after another: the lease must outlast all of them,
        // or another worker could claim (and run again) the last ones.
        let whole_batch = self.config.job_timeout.saturating_mul(self.config.batch);
        let lease = self.config.lease.saturating_add(whole_batch);
        let lease = TimeDelta::from_std(lease).unwrap_or(TimeDelta::MAX);
        let mut repo = self.factory.begin().await?;
        let jobs = repo
            .job()
            .claim(self.clock.as_ref(), queues, self.config.batch, lease)
            .await?;
        repo.save().await?;
        let count = jobs.len();
        for job in jobs {
            self.run_one(job).await?;
        }
        Ok(count)
    }

    #[tracing::instrument(name = "job", skip_all, fields(queue = %job.queue, id = %job.id, attempt = job.attempts))]
    async fn run_one(&self, job: Job) -> Result<(), StorageError> {
        let outcome = match self.handlers.get(job.queue.as_str()) {
            Some(handler) => {
                let handler = handler.clone();
                let shared = job.clone();
                // A task of its own: a panicking handler fails its job, not the worker.
                let task = tokio::spawn(async move { handler.run(&shared).await });
                let abort = task.abort_handle();
                match tokio::time::timeout(self.config.job_timeout, task).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(join)) => Err(JobError::Retry(format!("the job panicked: {join}"))),
                    Err(_) => {
                        abort.abort();
                        Err(JobError::Retry(format!(
                            "the job ran longer than {:?}",
                            self.config.job_timeout
                        )))
                    }
                }
            }
            None => Err(JobError::Fatal(format!(
                "no handler for queue {}",
                job.queue
            ))),
        };
        let clock = self.clock.as_ref();
        let counted = match &outcome {
            Ok(()) => "done",
            Err(JobError::Retry(_)) if job.attempts < self.config.max_attempts => "retry",
            Err(_) => "failed",
        };
        job_runs().add(
            1,
            &[
                opentelemetry::KeyValue::new("queue", job.queue.clone()),
                opentelemetry::KeyValue::new("outcome", counted),
            ],
        );
        let mut repo = self.factory.begin().await?;
        match outcome {
            Ok(()) => {
                repo.job().complete(clock, job).await?;
                tracing::debug!("job done");
            }
            Err(JobError::Retry(reason)) if job.attempts < self.config.max_attempts => {
                let delay = self.backoff(job.attempts);
                let retry_at = clock.now() + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
                tracing::warn!(%reason, ?delay, "job failed; will retry");
                repo.job().fail(clock, job, &reason, Some(retry_at)).await?;
            }
            Err(error) => {
                tracing::error!(%error, "job failed for good");
                repo.job()
                    .fail(clock, job, &error.to_string(), None)
                    .await?;
            }
        }
        repo.save().await
    }
}

/// `mas.jobs.runs`: job runs by queue and outcome (`done`, `retry`, `failed` for good). A
/// no-op until the application sets a meter provider.
fn job_runs() -> &'static opentelemetry::metrics::Counter<u64> {
    static INSTRUMENT: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> =
        std::sync::OnceLock::new();
    INSTRUMENT.get_or_init(|| {
        opentelemetry::global::meter("mas")
            .u64_counter("mas.jobs.runs")
            .with_description("Background job runs, by queue and outcome")
            .build()
    })
}
