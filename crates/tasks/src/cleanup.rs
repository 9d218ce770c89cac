//! Periodic removal of spent tokens, so tables stay small and lookups stay fast.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use mas_storage::{Clock, RepositoryFactory, StorageError};
use tokio::sync::watch;

/// How often and how conservatively to clean up.
#[derive(Debug, Clone, Copy)]
pub struct CleanupConfig {
    /// Time between two passes.
    pub interval: Duration,
    /// How long a spent (expired, revoked, consumed) token is kept before deletion.
    pub retention: Duration,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_mins(10),
            retention: Duration::from_hours(1),
        }
    }
}

/// One pass: deletes access and refresh tokens spent before `now - retention`.
async fn pass(
    factory: &dyn RepositoryFactory,
    clock: &dyn Clock,
    retention: Duration,
) -> Result<(u64, u64), StorageError> {
    let before = clock.now() - TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
    let mut repo = factory.begin().await?;
    let access = repo.access_token().cleanup(before).await?;
    let refresh = repo.refresh_token().cleanup(before).await?;
    repo.client().cleanup_assertions(clock.now()).await?;
    // SSO logins: a login token lives a minute; a session whose token was never taken
    // up after five is abandoned, and the logins themselves go after the retention.
    let (abandoned, _) = repo
        .compat_sso_login()
        .cleanup(clock, clock.now() - TimeDelta::minutes(5), before)
        .await?;
    if abandoned > 0 {
        tracing::info!(
            abandoned,
            "ended compatibility sessions of abandoned SSO logins"
        );
    }
    repo.save().await?;
    Ok((access, refresh))
}

/// Cleans up every `interval` until `stop` turns true; failures are logged, never fatal.
pub async fn run_cleanup(
    factory: Arc<dyn RepositoryFactory>,
    clock: Arc<dyn Clock>,
    config: CleanupConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match pass(factory.as_ref(), clock.as_ref(), config.retention).await {
            Ok((access, refresh)) if access + refresh > 0 => {
                tracing::info!(access, refresh, "removed spent tokens");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "token cleanup failed; will try again"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            () = crate::stopped(&mut stop) => break,
        }
    }
}
