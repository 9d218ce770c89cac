//! Background jobs kept in the database.

use chrono::{DateTime, Utc};
use ulid::Ulid;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting to be claimed (possibly not before `scheduled_at`).
    Available,
    /// Claimed by a worker.
    Running,
    /// Done.
    Completed,
    /// Gave up after its last attempt.
    Failed,
}

impl JobState {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Available,
            Self::Running,
            Self::Completed,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A queued job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's ID.
    pub id: Ulid,
    /// Which queue (kind of work) it belongs to.
    pub queue: String,
    /// Its arguments.
    pub payload: serde_json::Value,
    /// Where it stands.
    pub state: JobState,
    /// How many times it was claimed.
    pub attempts: u32,
    /// Not to run before this.
    pub scheduled_at: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The last error it failed with.
    pub last_error: Option<String>,
}
