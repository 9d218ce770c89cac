//! Runs the homeserver jobs of [`HomeserverJob`] against a [`HomeserverConnection`].
//!
//! Each job reads what it needs fresh from the database when it runs, so a job that is
//! retried after an outage applies the state of that moment, not of when it was queued.

use std::sync::Arc;

use async_trait::async_trait;
use mas_data_model::{Job, User};
use mas_matrix::{FieldAction, HomeserverConnection, HomeserverError, ProvisionRequest};
use mas_storage::jobs::HomeserverJob;
use mas_storage::{Repository, RepositoryFactory, StorageError};

use crate::{JobError, JobHandler};

/// Runs one homeserver queue.
pub struct HomeserverJobs {
    queue: &'static str,
    repos: Arc<dyn RepositoryFactory>,
    homeserver: Arc<dyn HomeserverConnection>,
}

impl std::fmt::Debug for HomeserverJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeserverJobs")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl HomeserverJobs {
    /// One handler per homeserver queue.
    #[must_use]
    pub fn all(
        repos: &Arc<dyn RepositoryFactory>,
        homeserver: &Arc<dyn HomeserverConnection>,
    ) -> Vec<Arc<dyn JobHandler>> {
        HomeserverJob::QUEUES
            .iter()
            .map(|queue| {
                Arc::new(Self {
                    queue,
                    repos: repos.clone(),
                    homeserver: homeserver.clone(),
                }) as Arc<dyn JobHandler>
            })
            .collect()
    }

    async fn user(&self, repo: &mut dyn Repository, job: &HomeserverJob) -> Result<User, JobError> {
        repo.user()
            .lookup(job.user_id())
            .await
            .map_err(|e| storage(&e))?
            .ok_or_else(|| JobError::Fatal(format!("user {} is gone", job.user_id())))
    }
}

fn storage(error: &StorageError) -> JobError {
    JobError::Retry(format!("storage: {error}"))
}

fn homeserver(error: &HomeserverError) -> JobError {
    if error.worth_retrying() {
        JobError::Retry(error.to_string())
    } else {
        JobError::Fatal(error.to_string())
    }
}

/// The user as the homeserver should hold it, read from the database.
///
/// # Errors
/// When the database cannot be read.
pub async fn provision_request(
    repo: &mut dyn Repository,
    user: &User,
    display_name: Option<String>,
    avatar_url: Option<String>,
) -> Result<ProvisionRequest, StorageError> {
    let emails = repo.user_email().all(user).await?;
    let mut request = ProvisionRequest::new(&user.username, user.id.to_string());
    request.emails = FieldAction::Set(emails.into_iter().map(|e| e.email).collect());
    request.locked = Some(user.locked_at.is_some());
    if let Some(name) = display_name {
        request.displayname = FieldAction::Set(name);
    }
    if let Some(avatar) = avatar_url {
        request.avatar_url = FieldAction::Set(avatar);
    }
    Ok(request)
}

#[async_trait]
impl JobHandler for HomeserverJobs {
    fn queue(&self) -> &'static str {
        self.queue
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let work = HomeserverJob::from_job(&job.queue, &job.payload).map_err(JobError::Fatal)?;
        // Read everything first, then let go of the connection before calling out. What
        // the job does follows the state of now, not of when it was queued: jobs on
        // different queues may run in any order.
        let mut repo = self.repos.reader().await.map_err(|e| storage(&e))?;
        let user = self.user(repo.as_mut(), &work).await?;
        let open = mas_storage::jobs::open_devices(repo.as_mut(), &user)
            .await
            .map_err(|e| storage(&e))?;
        let hs = self.homeserver.as_ref();
        let localpart = user.username.as_str();
        match work {
            HomeserverJob::ProvisionUser {
                display_name,
                avatar_url,
                ..
            } => {
                // Provisioning would hand the homeserver back the emails its deactivation
                // removed.
                if user.deactivated_at.is_some() {
                    tracing::info!("the user is deactivated; not provisioned");
                    return Ok(());
                }
                let request = provision_request(repo.as_mut(), &user, display_name, avatar_url)
                    .await
                    .map_err(|e| storage(&e))?;
                drop(repo);
                let created = hs
                    .provision_user(&request)
                    .await
                    .map_err(|e| homeserver(&e))?;
                tracing::info!(created, "user provisioned on the homeserver");
            }
            HomeserverJob::ProvisionDevice {
                device_id,
                display_name,
                ..
            } => {
                let request = provision_request(repo.as_mut(), &user, None, None)
                    .await
                    .map_err(|e| storage(&e))?;
                drop(repo);
                if !open.contains(&device_id) {
                    tracing::info!("the device's session ended before it was made; skipped");
                    return Ok(());
                }
                let name = display_name.as_deref();
                match hs.upsert_device(localpart, &device_id, name).await {
                    // The user's own provisioning job has not run yet: do its part first.
                    Err(HomeserverError::UserNotFound) => {
                        // Racing the user's own provisioning job is fine: the device is
                        // what counts.
                        let provisioned = hs.provision_user(&request).await;
                        if let Err(error) = hs.upsert_device(localpart, &device_id, name).await {
                            return Err(homeserver(&provisioned.err().unwrap_or(error)));
                        }
                    }
                    other => other.map_err(|e| homeserver(&e))?,
                }
            }
            HomeserverJob::DeleteDevice { device_id, .. } => {
                drop(repo);
                // Logged in again on the same device since: it stays.
                if open.contains(&device_id) {
                    tracing::info!("the device is in use again; not deleted");
                    return Ok(());
                }
                match hs.delete_device(localpart, &device_id).await {
                    // Already gone with its user: nothing left to do.
                    Ok(()) | Err(HomeserverError::UserNotFound) => {}
                    Err(other) => return Err(homeserver(&other)),
                }
            }
            HomeserverJob::SyncDevices { .. } => {
                drop(repo);
                hs.sync_devices(localpart, &open)
                    .await
                    .map_err(|e| homeserver(&e))?;
            }
            HomeserverJob::DeactivateUser { erase, .. } => {
                drop(repo);
                if user.deactivated_at.is_none() {
                    tracing::info!("the user was reactivated since; not deactivated");
                    return Ok(());
                }
                match hs.delete_user(localpart, erase).await {
                    // Never provisioned there (its provisioning is skipped from now on):
                    // nothing to deactivate.
                    Err(HomeserverError::UserNotFound) => {
                        tracing::info!("the user is not on the homeserver; nothing to deactivate");
                    }
                    other => other.map_err(|e| homeserver(&e))?,
                }
            }
            HomeserverJob::ReactivateUser { .. } => reactivate(repo, hs, &user).await?,
        }
        Ok(())
    }
}

/// Reactivates the user on the homeserver, unless it was deactivated again since.
async fn reactivate(
    mut repo: mas_storage::BoxRepository,
    hs: &dyn HomeserverConnection,
    user: &User,
) -> Result<(), JobError> {
    if user.deactivated_at.is_some() {
        tracing::info!("the user was deactivated since; not reactivated");
        return Ok(());
    }
    let request = provision_request(repo.as_mut(), user, None, None)
        .await
        .map_err(|e| storage(&e))?;
    drop(repo);
    let localpart = user.username.as_str();
    // Synapse fails on reactivating an active user (its deactivation job may not have
    // run yet, and now never will): ask first.
    let result = match hs.query_user(localpart).await {
        Ok(there) if !there.deactivated => {
            tracing::info!("the user is active on the homeserver; nothing to do");
            return Ok(());
        }
        Ok(_) => hs.reactivate_user(localpart).await,
        Err(error) => Err(error),
    };
    match result {
        // Never provisioned there: the reactivated user is made now.
        Err(HomeserverError::UserNotFound) => {
            hs.provision_user(&request)
                .await
                .map_err(|e| homeserver(&e))?;
            tracing::info!("the user was not on the homeserver; provisioned");
            Ok(())
        }
        other => other.map_err(|e| homeserver(&e)),
    }
}
