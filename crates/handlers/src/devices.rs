//! Devices on the homeserver, made before the tokens that use them are handed out.

use std::time::Duration;

use mas_data_model::User;
use mas_matrix::{HomeserverError, ProvisionRequest};

use crate::AppState;

/// Past the connector's own per-call timeout, a last bound on a whole exchange with the
/// homeserver (which may take two or three calls).
pub(crate) const DEADLINE: Duration = Duration::from_secs(8);

/// `call`'s answer, or `Unreachable` when the homeserver takes longer than [`DEADLINE`].
pub(crate) async fn within_deadline<T>(
    call: impl Future<Output = Result<T, HomeserverError>>,
) -> Result<T, HomeserverError> {
    tokio::time::timeout(DEADLINE, call)
        .await
        .unwrap_or_else(|_| Err(HomeserverError::Unreachable("no answer in time".to_owned())))
}

/// Upserts the device, provisioning the user first if the homeserver does not know it
/// yet (its provisioning job may still be queued). Bounded by [`DEADLINE`].
pub(crate) async fn ensure_device(
    state: &AppState,
    user: &User,
    device_id: &str,
    display_name: Option<&str>,
) -> Result<(), HomeserverError> {
    let hs = state.homeserver.as_ref();
    let work = async {
        match hs
            .upsert_device(&user.username, device_id, display_name)
            .await
        {
            Err(HomeserverError::UserNotFound) => {
                // The user's provisioning job may be creating it at this very moment, and
                // the loser of that race is refused ("User ID already taken"): whatever
                // provisioning answered, the device is what counts.
                let provisioned = hs
                    .provision_user(&ProvisionRequest::new(&user.username, user.id.to_string()))
                    .await;
                match hs
                    .upsert_device(&user.username, device_id, display_name)
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(error) => Err(provisioned.err().unwrap_or(error)),
                }
            }
            other => other,
        }
    };
    within_deadline(work).await
}

/// Deletes the device at once, so the homeserver forgets the tokens it cached for it. A
/// failure is only logged: the caller has queued a job that retries.
pub(crate) async fn delete_device_now(state: &AppState, user: &User, device_id: &str) {
    // A session still open on the device (a new login with the same ID) keeps it.
    let open = match state.repos.reader().await {
        Ok(mut repo) => mas_storage::jobs::open_devices(repo.as_mut(), user).await,
        Err(error) => Err(error),
    };
    match open {
        Ok(open) if open.contains(device_id) => return,
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "device deletion left to the job queue");
            return;
        }
    }
    let deletion = state.homeserver.delete_device(&user.username, device_id);
    match within_deadline(deletion).await {
        Ok(()) | Err(HomeserverError::UserNotFound) => {}
        Err(error) => tracing::warn!(%error, "device deletion left to the job queue"),
    }
}

/// Makes the homeserver's devices of `user` those of its open sessions at once, after a
/// unit of work that ended several of them committed; a failure is only logged, as the
/// caller queued a `SyncDevices` job that retries.
pub(crate) async fn sync_devices_now(state: &AppState, user: &User) {
    // What is open now, read after the commit: a login that slipped in keeps its device.
    let open = match state.repos.reader().await {
        Ok(mut repo) => mas_storage::jobs::open_devices(repo.as_mut(), user).await,
        Err(error) => Err(error),
    };
    let open = match open {
        Ok(open) => open,
        Err(error) => {
            tracing::warn!(%error, "device removal left to the job queue");
            return;
        }
    };
    let sync = state.homeserver.sync_devices(&user.username, &open);
    if let Err(error) = within_deadline(sync).await {
        tracing::warn!(%error, "device removal left to the job queue");
    }
}
