//! Changes to a user's standing that the CLI, the account pages and the admin API all
//! make: each one changes the rows and queues the homeserver work that follows from it,
//! in the caller's unit of work, so both happen or neither does.

use mas_data_model::User;

use crate::jobs::HomeserverJob;
use crate::{Clock, Repository, Rng, StorageError};

async fn schedule(
    repo: &mut dyn Repository,
    rng: Rng<'_>,
    clock: &dyn Clock,
    job: &HomeserverJob,
) -> Result<(), StorageError> {
    repo.job().schedule(rng, clock, job.to_job()).await?;
    Ok(())
}

/// Ends every session of the user (OAuth 2.0, compatibility, browser, personal) and
/// queues the removal of its devices; returns how many device sessions ended.
///
/// # Errors
/// Whatever the storage says.
pub async fn end_all_sessions(
    repo: &mut dyn Repository,
    rng: Rng<'_>,
    clock: &dyn Clock,
    user: &User,
) -> Result<u64, StorageError> {
    let (compat, oauth) = crate::jobs::end_device_sessions(repo, clock, user).await?;
    repo.browser_session().finish_all(clock, user).await?;
    // Personal tokens too: an unlock must bring back nothing handed out before.
    crate::jobs::revoke_personal_sessions(repo, clock, user, |_| true).await?;
    if compat + oauth > 0 {
        schedule(
            repo,
            rng,
            clock,
            &HomeserverJob::SyncDevices { user_id: user.id },
        )
        .await?;
    }
    Ok(compat + oauth)
}

/// Locks the user and ends its sessions, so unlocking later revives no token handed out
/// before the lock; the homeserver learns of the lock.
///
/// # Errors
/// Whatever the storage says.
pub async fn lock(
    repo: &mut dyn Repository,
    rng: Rng<'_>,
    clock: &dyn Clock,
    user: User,
) -> Result<User, StorageError> {
    let user = if user.locked_at.is_none() {
        repo.user().lock(clock, user).await?
    } else {
        user
    };
    end_all_sessions(repo, rng, clock, &user).await?;
    let job = HomeserverJob::provision(user.id);
    schedule(repo, rng, clock, &job).await?;
    Ok(user)
}

/// Lifts a lock (a deactivated user stays deactivated); the homeserver learns of it.
///
/// # Errors
/// Whatever the storage says.
pub async fn unlock(
    repo: &mut dyn Repository,
    rng: Rng<'_>,
    clock: &dyn Clock,
    user: User,
) -> Result<User, StorageError> {
    let user = repo.user().unlock(user).await?;
    let job = HomeserverJob::provision(user.id);
    schedule(repo, rng, clock, &job).await?;
    Ok(user)
}

/// Deactivates the user: every session ends, and the homeserver deactivates it too,
/// erasing its data when `erase` is set.
///
/// # Errors
/// Whatever the storage says.
pub async fn deactivate(
    repo: &mut dyn Repository,
    rng: Rng<'_>,
    clock: &dyn Clock,
    user: User,
    erase: bool,
) -> Result<User, StorageError> {
    end_all_sessions(repo, rng, clock, &user).await?;
    let user = if user.deactivated_at.is_none() {
        repo.user().deactivate(clock, user).await?
    } else {
        user
    };
    let job = HomeserverJob::DeactivateUser {
        user_id: user.id,
        erase,
    };
    schedule(repo, rng, clock, &job).await?;
    Ok(user)
}

/// Reactivates a deactivated user (a locked user stays locked), here and on the
/// homeserver.
///
/// # Errors
/// Whatever the storage says.
pub async fn reactivate(
    repo: &mut dyn Repository,
    rng: Rng<'_>,
    clock: &dyn Clock,
    user: User,
) -> Result<User, StorageError> {
    if user.deactivated_at.is_none() {
        return Ok(user);
    }
    let user = repo.user().reactivate(user).await?;
    schedule(
        repo,
        rng,
        clock,
        &HomeserverJob::ReactivateUser { user_id: user.id },
    )
    .await?;
    Ok(user)
}

/// Grants or removes the right to request admin scopes. Removing it ends the sessions
/// that hold one, as tokens granted while the user was an admin must not outlive the
/// right; returns the user and how many sessions ended.
///
/// # Errors
/// Whatever the storage says.
pub async fn set_admin(
    repo: &mut dyn Repository,
    rng: Rng<'_>,
    clock: &dyn Clock,
    user: User,
    admin: bool,
) -> Result<(User, u64), StorageError> {
    let user = repo.user().set_can_request_admin(user, admin).await?;
    if admin {
        return Ok((user, 0));
    }
    let ended = crate::jobs::end_admin_sessions(repo, clock, &user).await?;
    if ended > 0 {
        schedule(
            repo,
            rng,
            clock,
            &HomeserverJob::SyncDevices { user_id: user.id },
        )
        .await?;
    }
    Ok((user, ended))
}
