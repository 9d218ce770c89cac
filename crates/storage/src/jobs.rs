//! The background jobs (homeserver work, outgoing mail): their queue names and payloads,
//! shared by whoever schedules them (handlers, the CLI) and the worker that runs them
//! (`mas-tasks`).

use std::collections::BTreeSet;

use mas_data_model::{CompatSession, Session, User};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::repository::{CompatSessionFilter, NewJob, SessionFilter};
use crate::{Pagination, Repository, StorageError};

/// One piece of homeserver work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HomeserverJob {
    /// Creates or updates the user (display name, emails, lock state).
    ProvisionUser {
        /// The user.
        user_id: Ulid,
        /// A display name to set, when one was chosen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        /// An avatar (an `mxc://` URI) to set, when one was chosen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        avatar_url: Option<String>,
    },
    /// Creates a device, or renames it.
    ProvisionDevice {
        /// The user.
        user_id: Ulid,
        /// The device.
        device_id: String,
        /// Its display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
    },
    /// Deletes a device.
    DeleteDevice {
        /// The user.
        user_id: Ulid,
        /// The device.
        device_id: String,
    },
    /// Makes the homeserver's devices of the user exactly those of its open sessions.
    SyncDevices {
        /// The user.
        user_id: Ulid,
    },
    /// Deactivates the user on the homeserver.
    DeactivateUser {
        /// The user.
        user_id: Ulid,
        /// Whether its data is erased too.
        erase: bool,
    },
    /// Reactivates the user on the homeserver.
    ReactivateUser {
        /// The user.
        user_id: Ulid,
    },
}

impl HomeserverJob {
    /// Every queue a homeserver job may be on.
    pub const QUEUES: [&'static str; 6] = [
        "provision-user",
        "provision-device",
        "delete-device",
        "sync-devices",
        "deactivate-user",
        "reactivate-user",
    ];

    /// Provisions the user as it stands (no new display name or avatar).
    #[must_use]
    pub fn provision(user_id: Ulid) -> Self {
        Self::ProvisionUser {
            user_id,
            display_name: None,
            avatar_url: None,
        }
    }

    /// The queue this job goes on.
    #[must_use]
    pub fn queue(&self) -> &'static str {
        let index = match self {
            Self::ProvisionUser { .. } => 0,
            Self::ProvisionDevice { .. } => 1,
            Self::DeleteDevice { .. } => 2,
            Self::SyncDevices { .. } => 3,
            Self::DeactivateUser { .. } => 4,
            Self::ReactivateUser { .. } => 5,
        };
        Self::QUEUES[index]
    }

    /// The user it is about.
    #[must_use]
    pub fn user_id(&self) -> Ulid {
        match self {
            Self::ProvisionUser { user_id, .. }
            | Self::ProvisionDevice { user_id, .. }
            | Self::DeleteDevice { user_id, .. }
            | Self::SyncDevices { user_id }
            | Self::DeactivateUser { user_id, .. }
            | Self::ReactivateUser { user_id } => *user_id,
        }
    }

    /// The job to schedule, due now.
    #[must_use]
    pub fn to_job(&self) -> NewJob {
        NewJob {
            queue: self.queue().to_owned(),
            payload: serde_json::to_value(self).unwrap_or_default(),
            run_at: None,
        }
    }

    /// Reads a job back from its queue and payload.
    ///
    /// # Errors
    /// When the queue is not a homeserver queue or the payload does not fit it.
    pub fn from_job(queue: &str, payload: &serde_json::Value) -> Result<Self, String> {
        let fields: Fields = serde_json::from_value(payload.clone())
            .map_err(|e| format!("unreadable payload: {e}"))?;
        let user_id = fields.user_id;
        let device_id = || {
            fields
                .device_id
                .clone()
                .ok_or_else(|| format!("no device_id in a {queue} job"))
        };
        Ok(match queue {
            "provision-user" => Self::ProvisionUser {
                user_id,
                display_name: fields.display_name.clone(),
                avatar_url: fields.avatar_url.clone(),
            },
            "provision-device" => Self::ProvisionDevice {
                user_id,
                device_id: device_id()?,
                display_name: fields.display_name.clone(),
            },
            "delete-device" => Self::DeleteDevice {
                user_id,
                device_id: device_id()?,
            },
            "sync-devices" => Self::SyncDevices { user_id },
            "deactivate-user" => Self::DeactivateUser {
                user_id,
                erase: fields.erase.unwrap_or(false),
            },
            "reactivate-user" => Self::ReactivateUser { user_id },
            other => return Err(format!("{other} is not a homeserver queue")),
        })
    }
}

/// Every field any payload has; the queue says which ones matter.
#[derive(Deserialize)]
struct Fields {
    user_id: Ulid,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    erase: Option<bool>,
}

/// The user's open sessions: compatibility sessions and OAuth 2.0 sessions.
///
/// # Errors
/// When the database cannot be read.
pub async fn open_sessions<R: Repository + ?Sized>(
    repo: &mut R,
    user_id: Ulid,
) -> Result<(Vec<CompatSession>, Vec<Session>), StorageError> {
    const PAGE: usize = 100;
    let mut compat = Vec::new();
    let mut page = Pagination::first(PAGE);
    loop {
        let filter = CompatSessionFilter {
            user_id: Some(user_id),
            active: Some(true),
        };
        let sessions = repo.compat_session().list(filter, page).await?;
        let last = sessions.edges.last().map(|s| s.id);
        compat.extend(sessions.edges);
        match last {
            Some(last) if sessions.has_next_page => page = Pagination::first(PAGE).after(last),
            _ => break,
        }
    }
    let mut oauth = Vec::new();
    let mut page = Pagination::first(PAGE);
    loop {
        let filter = SessionFilter {
            user_id: Some(user_id),
            client_id: None,
            active: Some(true),
        };
        let sessions = repo.session().list(filter, page).await?;
        let last = sessions.edges.last().map(|s| s.id);
        oauth.extend(sessions.edges);
        match last {
            Some(last) if sessions.has_next_page => page = Pagination::first(PAGE).after(last),
            _ => break,
        }
    }
    Ok((compat, oauth))
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
    let (compat, oauth) = open_sessions(repo, user.id).await?;
    let mut devices: BTreeSet<String> = compat.into_iter().filter_map(|s| s.device_id).collect();
    devices.extend(
        oauth
            .iter()
            .filter_map(|s| mas_data_model::device_of(&s.scope)),
    );
    Ok(devices)
}

/// The device `scope` names, when an open session of the user that `client_id` does
/// not own uses it: a compatibility session, or another client's OAuth 2.0 session. A
/// client may sign in again on its own device; it may not take over someone else's.
///
/// # Errors
/// When the database cannot be read.
pub async fn device_held_elsewhere<R: Repository + ?Sized>(
    repo: &mut R,
    user_id: Ulid,
    scope: &str,
    client_id: Ulid,
) -> Result<Option<String>, StorageError> {
    let Some(device) = mas_data_model::device_of(scope) else {
        return Ok(None);
    };
    let (compat, oauth) = open_sessions(repo, user_id).await?;
    let held = compat
        .iter()
        .any(|s| s.device_id.as_deref() == Some(device.as_str()))
        || oauth.iter().any(|s| {
            s.client_id != client_id
                && s.scope
                    .split(' ')
                    .filter_map(mas_data_model::device_of)
                    .any(|d| d == device)
        });
    Ok(held.then_some(device))
}

/// Ends every open OAuth 2.0 and compatibility session of the user (what `logout/all`,
/// `kill-sessions` and a deactivation do); returns how many of each. Its devices are
/// the caller's to queue for removal.
///
/// # Errors
/// When the database cannot be written.
pub async fn end_device_sessions(
    repo: &mut dyn Repository,
    clock: &dyn crate::Clock,
    user: &User,
) -> Result<(u64, u64), StorageError> {
    let compat = repo
        .compat_session()
        .finish_all(
            clock,
            CompatSessionFilter {
                user_id: Some(user.id),
                active: Some(true),
            },
        )
        .await?;
    let oauth = repo
        .session()
        .finish_all(
            clock,
            SessionFilter {
                user_id: Some(user.id),
                client_id: None,
                active: Some(true),
            },
        )
        .await?;
    Ok((compat, oauth))
}

/// Ends the user's open sessions that hold an admin scope (after the user lost the right
/// to request one): OAuth 2.0 and personal sessions with `urn:synapse:admin:*` or
/// `urn:mas:admin`, and compatibility sessions made with the homeserver's admin rights.
/// Returns how many.
///
/// # Errors
/// Whatever the storage says.
pub async fn end_admin_sessions(
    repo: &mut dyn Repository,
    clock: &dyn crate::Clock,
    user: &User,
) -> Result<u64, StorageError> {
    let (compat, oauth) = open_sessions(repo, user.id).await?;
    let mut ended = 0;
    for session in compat {
        if session.is_synapse_admin {
            repo.compat_session().finish(clock, session).await?;
            ended += 1;
        }
    }
    for session in oauth {
        if session.scope.split(' ').any(mas_data_model::is_admin_scope) {
            repo.session().finish(clock, session).await?;
            ended += 1;
        }
    }
    ended += revoke_personal_sessions(repo, clock, user, |scope| {
        scope.split(' ').any(mas_data_model::is_admin_scope)
    })
    .await?;
    Ok(ended)
}

/// Revokes the user's open personal sessions whose scope `revoke` picks; returns how
/// many.
///
/// # Errors
/// Whatever the storage says.
pub async fn revoke_personal_sessions(
    repo: &mut dyn Repository,
    clock: &dyn crate::Clock,
    user: &User,
    revoke: impl Fn(&str) -> bool + Send,
) -> Result<u64, StorageError> {
    let mut ended = 0;
    let mut pagination = crate::Pagination::first(100);
    loop {
        let page = repo.personal_session().list(user, pagination).await?;
        let last = page.edges.last().map(|s| s.id);
        for session in page.edges {
            if session.revoked_at.is_none() && revoke(&session.scope) {
                repo.personal_session().revoke(clock, session).await?;
                ended += 1;
            }
        }
        match last {
            Some(after) if page.has_next_page => pagination = pagination.after(after),
            _ => break,
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_through_their_queue() {
        let user_id = Ulid::new();
        let jobs = [
            HomeserverJob::ProvisionUser {
                user_id,
                display_name: Some("Alice".to_owned()),
                avatar_url: Some("mxc://example.com/abc".to_owned()),
            },
            HomeserverJob::ProvisionDevice {
                user_id,
                device_id: "DEV".to_owned(),
                display_name: None,
            },
            HomeserverJob::DeleteDevice {
                user_id,
                device_id: "DEV".to_owned(),
            },
            HomeserverJob::SyncDevices { user_id },
            HomeserverJob::DeactivateUser {
                user_id,
                erase: true,
            },
            HomeserverJob::ReactivateUser { user_id },
        ];
        for job in jobs {
            let new = job.to_job();
            assert_eq!(
                HomeserverJob::from_job(&new.queue, &new.payload).unwrap(),
                job
            );
        }
        // What `register-user` queued before this type existed still reads.
        let old = serde_json::json!({"user_id": user_id.to_string(), "username": "alice", "display_name": null, "emails": []});
        assert_eq!(
            HomeserverJob::from_job("provision-user", &old).unwrap(),
            HomeserverJob::provision(user_id)
        );
        assert!(HomeserverJob::from_job("delete-device", &old).is_err());
    }
}

/// The queue of [`EmailJob`]s.
pub const SEND_EMAIL_QUEUE: &str = "send-email";

/// A message to send. The job names what to send only: codes stay encrypted in their
/// rows until the job reads them, and a recovery link is made by the job itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EmailJob {
    /// The code of an email authentication (adding an address to an account).
    Verification {
        /// The authentication whose code to send.
        authentication_id: Ulid,
        /// The language of the browser that asked (`en`, `fr`, `de`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
    },
    /// The code of a registration waiting for it.
    Registration {
        /// The registration whose code to send.
        registration_id: Ulid,
        /// The language of the browser that asked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
    },
    /// A recovery link, to whichever account has this address: the job finds out, so
    /// asking costs the same whether an account has it or not.
    Recovery {
        /// The address typed, encrypted with the service's key: jobs are kept, and an
        /// address someone typed (maybe someone else's) is not kept readable.
        sealed_email: String,
        /// The language of the browser that asked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
    },
}

/// The payload of the email jobs queued before there were kinds of them.
#[derive(Deserialize)]
struct VerificationOnly {
    authentication_id: Ulid,
}

impl EmailJob {
    /// Reads a job's payload back.
    ///
    /// # Errors
    /// When the payload is not an email job's.
    pub fn from_payload(payload: &serde_json::Value) -> Result<Self, String> {
        if payload.get("kind").is_none()
            && let Ok(VerificationOnly { authentication_id }) =
                serde_json::from_value(payload.clone())
        {
            return Ok(Self::Verification {
                authentication_id,
                locale: None,
            });
        }
        serde_json::from_value(payload.clone()).map_err(|e| format!("unreadable payload: {e}"))
    }

    /// The language of the browser that asked, if it said.
    #[must_use]
    pub fn locale(&self) -> Option<&str> {
        match self {
            Self::Verification { locale, .. }
            | Self::Registration { locale, .. }
            | Self::Recovery { locale, .. } => locale.as_deref(),
        }
    }

    /// The job to schedule.
    #[must_use]
    pub fn to_job(&self) -> NewJob {
        NewJob {
            queue: SEND_EMAIL_QUEUE.to_owned(),
            payload: serde_json::to_value(self).unwrap_or_default(),
            run_at: None,
        }
    }
}

#[cfg(test)]
mod email_tests {
    use super::EmailJob;

    #[test]
    fn email_jobs_read_back_including_those_queued_before_kinds() {
        let id = ulid::Ulid::new();
        for job in [
            EmailJob::Verification {
                authentication_id: id,
                locale: None,
            },
            EmailJob::Registration {
                registration_id: id,
                locale: Some("fr".to_owned()),
            },
            EmailJob::Recovery {
                sealed_email: "sealed".to_owned(),
                locale: Some("de".to_owned()),
            },
        ] {
            assert_eq!(EmailJob::from_payload(&job.to_job().payload), Ok(job));
        }
        let old = serde_json::json!({"authentication_id": id.to_string()});
        assert_eq!(
            EmailJob::from_payload(&old),
            Ok(EmailJob::Verification {
                authentication_id: id,
                locale: None
            })
        );
        assert!(EmailJob::from_payload(&serde_json::json!({"kind": "nope"})).is_err());
        assert!(EmailJob::from_payload(&serde_json::json!({})).is_err());
    }
}
