//! Periodic removal of spent tokens, dead grants and never-used registered clients, so
//! tables stay small, lookups stay fast, and anonymous requests cannot fill the disk.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mas_oauth_core::authorize::APPROVAL_WINDOW;
use mas_oauth_core::grants::CODE_LIFETIME;
use mas_storage::{Clock, RepositoryFactory, StorageError};
use tokio::sync::watch;

/// How long a dynamically registered client may go without starting an authorization
/// before it is deleted. A Matrix client registers just before it sends the person to
/// `/authorize`, so a client in use starts one within seconds; a day leaves room for one
/// that registers ahead, while bounding what a flood of registrations keeps.
pub const UNUSED_CLIENT_AGE: TimeDelta = TimeDelta::hours(24);

/// How often and how conservatively to clean up.
#[derive(Debug, Clone, Copy)]
pub struct CleanupConfig {
    /// Time between two passes.
    pub interval: Duration,
    /// How long a spent (expired, revoked, consumed) token or grant is kept before deletion.
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

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// OAuth 2.0 access tokens.
    pub access_tokens: u64,
    /// OAuth 2.0 refresh tokens.
    pub refresh_tokens: u64,
    /// Authorization grants.
    pub authorization_grants: u64,
    /// Device code grants.
    pub device_code_grants: u64,
    /// Dynamically registered clients never used.
    pub unused_clients: u64,
    /// Codes sent to verify email addresses, expired.
    pub email_authentications: u64,
    /// Trips to upstream providers that never signed anyone in.
    pub upstream_trips: u64,
    /// Registrations whose code expired, finished or not.
    pub registrations: u64,
    /// Recovery links that expired, used or not.
    pub recovery_tickets: u64,
}

impl Removed {
    fn any(self) -> bool {
        self.access_tokens
            + self.refresh_tokens
            + self.authorization_grants
            + self.device_code_grants
            + self.unused_clients
            + self.email_authentications
            + self.upstream_trips
            + self.registrations
            + self.recovery_tickets
            > 0
    }
}

/// `at - delta`, or the earliest time when that is out of range (a huge retention keeps
/// everything rather than panicking).
fn earlier(at: DateTime<Utc>, delta: TimeDelta) -> DateTime<Utc> {
    at.checked_sub_signed(delta)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One pass, in one transaction: deletes what was spent before `now - retention`.
///
/// # Errors
/// Any storage error; nothing is deleted then.
pub async fn cleanup_once(
    factory: &dyn RepositoryFactory,
    clock: &dyn Clock,
    retention: Duration,
) -> Result<Removed, StorageError> {
    let now = clock.now();
    let before = earlier(
        now,
        TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX),
    );
    let mut repo = factory.begin().await?;
    let access_tokens = repo.access_token().cleanup(before).await?;
    let refresh_tokens = repo.refresh_token().cleanup(before).await?;
    repo.client().cleanup_assertions(now).await?;
    // SSO logins: a login token lives a minute; a session whose token was never taken
    // up after five is abandoned, and the logins themselves go after the retention.
    let (abandoned, _) = repo
        .compat_sso_login()
        .cleanup(clock, earlier(now, TimeDelta::minutes(5)), before)
        .await?;
    if abandoned > 0 {
        tracing::info!(
            abandoned,
            "ended compatibility sessions of abandoned SSO logins"
        );
    }
    // A grant can be approved for APPROVAL_WINDOW, then its code exchanged for
    // CODE_LIFETIME: past both it is dead. An exchanged grant is what recognises a replayed
    // code, so it is kept for the retention beyond the code's last possible use.
    let authorization_grants = repo
        .authorization_grant()
        .cleanup(earlier(before, APPROVAL_WINDOW + CODE_LIFETIME))
        .await?;
    let device_code_grants = repo.device_code_grant().cleanup(before).await?;
    // A client that ever started an authorization is kept (apps reuse their
    // registration), even once its grants are gone.
    let unused_clients = repo
        .client()
        .cleanup_unused(earlier(now, UNUSED_CLIENT_AGE))
        .await?;
    // Each holds an address someone typed, maybe someone else's: kept no longer than
    // the retention past its code's expiry.
    let email_authentications = repo.user_email().cleanup_authentications(before).await?;
    // A trip lasts half an hour; one that opened a browser session is kept with it, for
    // the provider's back-channel logout.
    let upstream_trips = repo.upstream_session().cleanup(before).await?;
    // Each holds an address and a password hash, or a way to set a password.
    let registrations = repo.user_registration().cleanup(before).await?;
    let recovery_tickets = repo.user_recovery().cleanup(before).await?;
    repo.save().await?;
    Ok(Removed {
        access_tokens,
        refresh_tokens,
        authorization_grants,
        device_code_grants,
        unused_clients,
        email_authentications,
        upstream_trips,
        registrations,
        recovery_tickets,
    })
}

/// Cleans up every `interval` until `stop` turns true; failures are logged, never fatal.
pub async fn run_cleanup(
    factory: Arc<dyn RepositoryFactory>,
    clock: Arc<dyn Clock>,
    config: CleanupConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match cleanup_once(factory.as_ref(), clock.as_ref(), config.retention).await {
            Ok(removed) if removed.any() => {
                let Removed {
                    access_tokens,
                    refresh_tokens,
                    authorization_grants,
                    device_code_grants,
                    unused_clients,
                    email_authentications,
                    upstream_trips,
                    registrations,
                    recovery_tickets,
                } = removed;
                tracing::info!(
                    access_tokens,
                    refresh_tokens,
                    authorization_grants,
                    device_code_grants,
                    unused_clients,
                    email_authentications,
                    upstream_trips,
                    registrations,
                    recovery_tickets,
                    "removed spent rows"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cleanup failed; will try again"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            () = crate::stopped(&mut stop) => break,
        }
    }
}
