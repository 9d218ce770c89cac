//! Waking job workers: `LISTEN` on PostgreSQL, a poll interval on SQLite.

use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{DatabaseConnection, DbBackend};

use crate::repos::job::CHANNEL;

/// Waits until a job may be waiting: a notification (PostgreSQL) or the poll interval.
pub struct JobWaker {
    listener: Option<PgListener>,
    poll: Duration,
}

impl std::fmt::Debug for JobWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobWaker")
            .field("listening", &self.listener.is_some())
            .field("poll", &self.poll)
            .finish()
    }
}

impl JobWaker {
    /// A waker for `db` that wakes at least every `poll`. On PostgreSQL it also listens for
    /// jobs scheduled by any replica; if listening fails it falls back to polling.
    pub async fn new(db: &DatabaseConnection, poll: Duration) -> Self {
        let listener = if db.get_database_backend() == DbBackend::Postgres {
            match PgListener::connect_with(db.get_postgres_connection_pool()).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => Some(listener),
                    Err(error) => {
                        tracing::warn!(%error, "cannot LISTEN for jobs; polling instead");
                        None
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "cannot LISTEN for jobs; polling instead");
                    None
                }
            }
        } else {
            None
        };
        Self { listener, poll }
    }

    /// Returns when a job was scheduled somewhere, or after the poll interval.
    pub async fn wait(&mut self) {
        match &mut self.listener {
            Some(listener) => {
                // A broken connection is re-established by the listener on the next call;
                // either way the worker looks at the queue again.
                let _ = tokio::time::timeout(self.poll, listener.recv()).await;
            }
            None => tokio::time::sleep(self.poll).await,
        }
    }
}

impl mas_storage::JobWake for JobWaker {
    fn wait(&mut self) -> mas_storage::BoxFuture<'_, ()> {
        Box::pin(JobWaker::wait(self))
    }
}
