//! Waking job workers: `LISTEN` on PostgreSQL, a poll interval on SQLite.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::repos::job::CHANNEL;

/// A listener on `channel` over a connection of its own, outside `db`'s pool: a
/// listening connection is held for good, and taking it from the pool would leave one
/// fewer for requests (or none, with a small `max_connections`).
pub(crate) async fn listen(
    db: &DatabaseConnection,
    channel: &str,
) -> Result<PgListener, sea_orm::sqlx::Error> {
    let options = db.get_postgres_connection_pool().connect_options();
    let own = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with((*options).clone())
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Waits until a job may be waiting: a notification (PostgreSQL) or the poll interval.
pub struct JobWaker {
    listener: Option<PgListener>,
    poll: Duration,
    /// The listening connection was lost: notifications may have been missed.
    lost: bool,
}

impl std::fmt::Debug for JobWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobWaker")
            .field("listening", &self.listener.is_some())
            .field("poll", &self.poll)
            .field("lost", &self.lost)
            .finish()
    }
}

impl JobWaker {
    /// A waker for `db` that wakes at least every `poll`. On PostgreSQL it also listens for
    /// jobs scheduled by any replica; if listening fails it falls back to polling.
    pub async fn new(db: &DatabaseConnection, poll: Duration) -> Self {
        let listener = if db.get_database_backend() == DbBackend::Postgres {
            match listen(db, CHANNEL).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    tracing::warn!(%error, "cannot LISTEN for jobs; polling instead");
                    None
                }
            }
        } else {
            None
        };
        Self {
            listener,
            poll,
            lost: false,
        }
    }

    /// Returns when a job was scheduled somewhere, or after the poll interval.
    pub async fn wait(&mut self) {
        let Some(listener) = &mut self.listener else {
            tokio::time::sleep(self.poll).await;
            return;
        };
        if self.lost {
            // This call reconnects and listens again. Whatever was scheduled while no one
            // listened is found by the queue check that follows this return.
            self.lost = !matches!(
                tokio::time::timeout(Duration::from_secs(1), listener.try_recv()).await,
                Ok(Ok(_)) | Err(_)
            );
            return;
        }
        match tokio::time::timeout(self.poll, listener.try_recv()).await {
            // Notified, or the poll interval passed.
            Ok(Ok(Some(_))) | Err(_) => {}
            // The connection was lost: look at the queue now, listen again next time.
            Ok(Ok(None)) => self.lost = true,
            Ok(Err(error)) => {
                tracing::debug!(%error, "job notifications unavailable");
                self.lost = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl mas_storage::JobWake for JobWaker {
    fn wait(&mut self) -> mas_storage::BoxFuture<'_, ()> {
        Box::pin(JobWaker::wait(self))
    }
}
