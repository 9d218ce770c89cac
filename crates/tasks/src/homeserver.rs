//! Runs the homeserver jobs of [`HomeserverJob`] against a [`HomeserverConnection`].
//!
//! Each job reads what it needs fresh from the database when it runs, so a job that is
//! retried after an outage applies the state of that moment, not of when it was queued.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use mas_data_model::{Job, User};
use mas_matrix::{FieldAction, HomeserverConnection, HomeserverError, ProvisionRequest};
use mas_storage::jobs::HomeserverJob;
use mas_storage::repository::{CompatSessionFilter, SessionFilter};
use mas_storage::{Pagination, Repository, RepositoryFactory, StorageError};

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
    if error.is_transient() {
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
) -> Result<ProvisionRequest, StorageError> {
    let emails = repo.user_email().all(user).await?;
    let mut request = ProvisionRequest::new(&user.username, user.id.to_string());
    request.emails = FieldAction::Set(emails.into_iter().map(|e| e.email).collect());
    request.locked = Some(user.locked_at.is_some());
    if let Some(name) = display_name {
        request.displayname = FieldAction::Set(name);
    }
    Ok(request)
}

/// The device IDs of the user's open sessions: compatibility sessions and OAuth sessions
/// with a device scope.
///
/// # Errors
/// When the database cannot be read.
pub async fn open_devices(
    repo: &mut dyn Repository,
    user: &User,
) -> Result<BTreeSet<String>, StorageError> {
    const PAGE: usize = 100;
    let mut devices = BTreeSet::new();
    let mut page = Pagination::first(PAGE);
    loop {
        let sessions = repo
            .compat_session()
            .list(
                CompatSessionFilter {
                    user_id: Some(user.id),
                    active: Some(true),
                },
                page,
            )
            .await?;
        devices.extend(sessions.edges.iter().filter_map(|s| s.device_id.clone()));
        match sessions.edges.last() {
            Some(last) if sessions.has_next_page => page = Pagination::first(PAGE).after(last.id),
            _ => break,
        }
    }
    let mut page = Pagination::first(PAGE);
    loop {
        let sessions = repo
            .session()
            .list(
                SessionFilter {
                    user_id: Some(user.id),
                    client_id: None,
                    active: Some(true),
                },
                page,
            )
            .await?;
        devices.extend(
            sessions
                .edges
                .iter()
                .filter_map(|s| mas_oauth_core::tokens::device_of(&s.scope)),
        );
        match sessions.edges.last() {
            Some(last) if sessions.has_next_page => page = Pagination::first(PAGE).after(last.id),
            _ => break,
        }
    }
    Ok(devices)
}

#[async_trait]
impl JobHandler for HomeserverJobs {
    fn queue(&self) -> &'static str {
        self.queue
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let work = HomeserverJob::from_job(&job.queue, &job.payload).map_err(JobError::Fatal)?;
        // Read everything first, then let go of the connection before calling out.
        let mut repo = self.repos.reader().await.map_err(|e| storage(&e))?;
        let user = self.user(repo.as_mut(), &work).await?;
        let hs = self.homeserver.as_ref();
        let localpart = user.username.as_str();
        match work {
            HomeserverJob::ProvisionUser { display_name, .. } => {
                let request = provision_request(repo.as_mut(), &user, display_name)
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
                drop(repo);
                hs.upsert_device(localpart, &device_id, display_name.as_deref())
                    .await
                    .map_err(|e| homeserver(&e))?;
            }
            HomeserverJob::DeleteDevice { device_id, .. } => {
                drop(repo);
                match hs.delete_device(localpart, &device_id).await {
                    // Already gone with its user: nothing left to do.
                    Ok(()) | Err(HomeserverError::UserNotFound) => {}
                    Err(other) => return Err(homeserver(&other)),
                }
            }
            HomeserverJob::SyncDevices { .. } => {
                let devices = open_devices(repo.as_mut(), &user)
                    .await
                    .map_err(|e| storage(&e))?;
                drop(repo);
                hs.sync_devices(localpart, &devices)
                    .await
                    .map_err(|e| homeserver(&e))?;
            }
            HomeserverJob::DeactivateUser { erase, .. } => {
                drop(repo);
                hs.delete_user(localpart, erase)
                    .await
                    .map_err(|e| homeserver(&e))?;
            }
            HomeserverJob::ReactivateUser { .. } => {
                drop(repo);
                hs.reactivate_user(localpart)
                    .await
                    .map_err(|e| homeserver(&e))?;
            }
        }
        Ok(())
    }
}
