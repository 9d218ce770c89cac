//! `mas-cli manage` verbs that change a user's standing: admin right, lock, sessions,
//! compatibility tokens, and provisioning on the homeserver.
//!
//! Each verb changes the database in one unit of work and queues the homeserver jobs that
//! follow from it in the same unit, so the worker inside `mas-server` carries them out
//! even if the homeserver is down right now.

use anyhow::{Context, bail};
use mas_config::RootConfig;
use mas_data_model::{TokenType, User};
use mas_storage::jobs::HomeserverJob;
use mas_storage::repository::{CompatSessionFilter, SessionFilter, UserFilter};
use mas_storage::{BoxRepository, Pagination, RepositoryFactory, SystemClock, accounts};

/// Opens the database and hands a unit of work over `username`'s account to `act`.
pub(super) async fn with_user<T>(
    config: &RootConfig,
    username: &str,
    act: impl AsyncFnOnce(&mut BoxRepository, User) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let factory = crate::database::open(config, false).await?;
    crate::database::require_current_schema(&factory).await?;
    let mut repo = factory.begin().await?;
    let user = repo
        .user()
        .find_by_username(username)
        .await?
        .with_context(|| format!("no user `{username}`"))?;
    let result = act(&mut repo, user).await?;
    repo.save().await?;
    factory.close().await?;
    Ok(result)
}

async fn schedule(repo: &mut BoxRepository, job: &HomeserverJob) -> anyhow::Result<()> {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    repo.job()
        .schedule(&mut rng, &SystemClock, job.to_job())
        .await?;
    Ok(())
}

/// `promote-admin` / `demote-admin`.
pub(crate) fn set_admin(config: &RootConfig, username: &str, admin: bool) -> anyhow::Result<()> {
    crate::block_on(async {
        let ended = with_user(config, username, async |repo, user| {
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            let (_, ended) =
                accounts::set_admin(repo.as_mut(), &mut rng, &SystemClock, user, admin).await?;
            Ok(ended)
        })
        .await?;
        if admin {
            println!("`{username}` may now request admin rights");
        } else {
            println!(
                "`{username}` may no longer request admin rights; ended {ended} session(s) that held an admin scope"
            );
            if config.policy.data.admin_users.iter().any(|u| u == username) {
                eprintln!(
                    "warning: `{username}` is in policy.data.admin_users, which still lets them request admin rights; remove the name there too"
                );
            }
        }
        Ok(())
    })
}

/// `list-admin-users`.
pub(crate) fn list_admins(config: &RootConfig) -> anyhow::Result<()> {
    crate::block_on(async {
        let factory = crate::database::open(config, false).await?;
        crate::database::require_current_schema(&factory).await?;
        let mut repo = factory.reader().await?;
        let filter = UserFilter {
            can_request_admin: Some(true),
            ..UserFilter::default()
        };
        let mut page = Pagination::first(100);
        let mut count = 0;
        loop {
            let users = repo.user().list(&filter, page).await?;
            for user in &users.edges {
                println!("{}", user.username);
                count += 1;
            }
            match users.edges.last() {
                Some(last) if users.has_next_page => page = Pagination::first(100).after(last.id),
                _ => break,
            }
        }
        eprintln!("{count} user(s) may request admin rights");
        drop(repo);
        factory.close().await?;
        Ok(())
    })
}

/// `kill-sessions`: ends every session of the user (browser, OAuth 2.0, compatibility)
/// and removes its devices from the homeserver.
pub(crate) fn kill_sessions(
    config: &RootConfig,
    username: &str,
    dry_run: bool,
) -> anyhow::Result<()> {
    crate::block_on(async {
        let (compat, oauth, browser) = with_user(config, username, async |repo, user| {
            let clock = &SystemClock;
            let compat_filter = CompatSessionFilter {
                user_id: Some(user.id),
                active: Some(true),
            };
            let oauth_filter = SessionFilter {
                user_id: Some(user.id),
                client_id: None,
                active: Some(true),
            };
            if dry_run {
                let compat = repo.compat_session().count(compat_filter).await?;
                let oauth = repo.session().count(oauth_filter).await?;
                let browser = repo
                    .browser_session()
                    .list(&user, true, Pagination::first(1000))
                    .await?
                    .edges
                    .len();
                // Nothing is saved in a dry run: the unit of work rolls back unchanged.
                return Ok((compat, oauth, browser as u64));
            }
            let (compat, oauth) =
                mas_storage::jobs::end_device_sessions(repo.as_mut(), clock, &user).await?;
            let browser = repo.browser_session().finish_all(clock, &user).await?;
            schedule(repo, &HomeserverJob::SyncDevices { user_id: user.id }).await?;
            Ok((compat, oauth, browser))
        })
        .await?;
        let verb = if dry_run { "would end" } else { "ended" };
        println!(
            "{verb} {compat} compatibility session(s), {oauth} OAuth 2.0 session(s) and {browser} browser session(s) of `{username}`"
        );
        Ok(())
    })
}

/// `lock-user [--deactivate]`.
pub(crate) fn lock_user(
    config: &RootConfig,
    username: &str,
    deactivate: bool,
) -> anyhow::Result<()> {
    crate::block_on(async {
        with_user(config, username, async |repo, user| {
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            let user = accounts::lock(repo.as_mut(), &mut rng, &SystemClock, user).await?;
            if deactivate {
                accounts::deactivate(repo.as_mut(), &mut rng, &SystemClock, user, false).await?;
            }
            Ok(())
        })
        .await?;
        if deactivate {
            println!("`{username}` is locked and deactivated");
        } else {
            println!("`{username}` is locked: it cannot log in and its sessions are ended");
        }
        Ok(())
    })
}

/// `unlock-user [--reactivate]`.
pub(crate) fn unlock_user(
    config: &RootConfig,
    username: &str,
    reactivate: bool,
) -> anyhow::Result<()> {
    crate::block_on(async {
        with_user(config, username, async |repo, user| {
            if user.deactivated_at.is_some() && !reactivate {
                bail!("`{username}` is deactivated: pass --reactivate to bring it back");
            }
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            let user = accounts::unlock(repo.as_mut(), &mut rng, &SystemClock, user).await?;
            if reactivate {
                accounts::reactivate(repo.as_mut(), &mut rng, &SystemClock, user).await?;
            }
            Ok(())
        })
        .await?;
        println!("`{username}` is unlocked");
        Ok(())
    })
}

/// `issue-compatibility-token`: a token for a Matrix device, as `/login` would hand out,
/// without a password. The device is queued for the homeserver, and also made at once.
pub(crate) fn issue_compatibility_token(
    config: &RootConfig,
    username: &str,
    device_id: Option<String>,
    admin: bool,
) -> anyhow::Result<()> {
    if let Some(device_id) = &device_id
        && !mas_oauth_core::tokens::valid_device_id(device_id)
    {
        bail!(
            "`{device_id}` is not a valid device ID: use 1-255 letters, digits, '-', '.', '_' or '~'"
        );
    }
    let device_id = device_id.unwrap_or_else(|| {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        mas_oauth_core::tokens::random_string(&mut rng, 10).to_uppercase()
    });
    let homeserver = crate::homeserver::connect(config)?;
    crate::block_on(async {
        let (token, user) = with_user(config, username, async |repo, user| {
            if !user.is_valid() {
                bail!("`{username}` is locked or deactivated");
            }
            let clock = &SystemClock;
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            let session = repo
                .compat_session()
                .add(
                    &mut rng,
                    clock,
                    &user,
                    Some(device_id.clone()),
                    None,
                    admin,
                    None,
                )
                .await?;
            let token = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatAccessToken);
            repo.compat_access_token()
                .add(&mut rng, clock, &session, &token, None)
                .await?;
            let job = HomeserverJob::ProvisionDevice {
                user_id: user.id,
                device_id: device_id.clone(),
                display_name: None,
            };
            schedule(repo, &job).await?;
            Ok((token, user))
        })
        .await?;
        match homeserver
            .upsert_device(&user.username, &device_id, None)
            .await
        {
            Ok(()) => eprintln!("Device {device_id} is ready on the homeserver"),
            Err(error) => eprintln!(
                "The homeserver could not be reached now ({error}); mas-server's worker will create device {device_id}"
            ),
        }
        if admin {
            eprintln!("This token carries homeserver admin rights");
        }
        println!("{token}");
        Ok(())
    })
}

/// `provision-all-users`: queues a provisioning job for every user.
pub(crate) fn provision_all_users(config: &RootConfig) -> anyhow::Result<()> {
    crate::block_on(async {
        let factory = crate::database::open(config, false).await?;
        crate::database::require_current_schema(&factory).await?;
        let filter = UserFilter::default();
        let mut page = Pagination::first(500);
        let mut count = 0;
        loop {
            // One unit of work per page, so a huge user base is not one giant transaction.
            let mut repo = factory.begin().await?;
            let users = repo.user().list(&filter, page).await?;
            for user in &users.edges {
                let job = if user.deactivated_at.is_some() {
                    HomeserverJob::DeactivateUser {
                        user_id: user.id,
                        erase: false,
                    }
                } else {
                    HomeserverJob::provision(user.id)
                };
                schedule(&mut repo, &job).await?;
                count += 1;
            }
            repo.save().await?;
            match users.edges.last() {
                Some(last) if users.has_next_page => page = Pagination::first(500).after(last.id),
                _ => break,
            }
        }
        println!("Queued provisioning of {count} user(s)");
        factory.close().await?;
        Ok(())
    })
}

/// `add-email`.
pub(crate) fn add_email(config: &RootConfig, username: &str, email: &str) -> anyhow::Result<()> {
    if !super::manage::valid_email(email) {
        bail!("`{email}` is not a valid email address");
    }
    crate::block_on(async {
        with_user(config, username, async |repo, user| {
            if repo.user_email().find_by_email(email).await?.is_some() {
                bail!("the email address `{email}` is already in use");
            }
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            repo.user_email()
                .add(&mut rng, &SystemClock, &user, email)
                .await?;
            let job = HomeserverJob::provision(user.id);
            schedule(repo, &job).await
        })
        .await?;
        println!("Added {email} to `{username}`");
        Ok(())
    })
}

/// `issue-user-registration-token [--token T] [--usage-limit N] [--expires-in SECONDS]`:
/// prints the token alone on stdout, what it allows on stderr.
pub(super) fn issue_registration_token(
    config: &RootConfig,
    token: Option<String>,
    usage_limit: Option<u32>,
    expires_in: Option<u64>,
) -> anyhow::Result<()> {
    use mas_data_model::RegistrationToken;
    if let Some(token) = &token
        && !RegistrationToken::is_valid_value(token)
    {
        bail!("--token: 1 to 64 letters, digits, `-`, `_`, `.` or `~`");
    }
    if usage_limit.is_some_and(|n| n == 0 || n > RegistrationToken::MAX_USAGE_LIMIT) {
        bail!(
            "--usage-limit: between 1 and {}",
            RegistrationToken::MAX_USAGE_LIMIT
        );
    }
    let ttl = super::expires_in(expires_in)?;
    crate::block_on(async {
        let factory = crate::database::open(config, false).await?;
        crate::database::require_current_schema(&factory).await?;
        let clock = &SystemClock;
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let value = token.unwrap_or_else(|| mas_oauth_core::tokens::random_string(&mut rng, 20));
        let mut repo = factory.begin().await?;
        let exists = || anyhow::anyhow!("a registration token with this value exists");
        let expires_at = ttl.map(|ttl| mas_storage::Clock::now(clock) + ttl);
        let issued = match repo
            .registration_token()
            .add(&mut rng, clock, &value, usage_limit, expires_at)
            .await
        {
            Err(mas_storage::StorageError::Conflict(_)) => return Err(exists()),
            other => other?,
        };
        repo.save().await?;
        factory.close().await?;
        let uses = issued
            .usage_limit
            .map_or_else(|| "any number of".to_owned(), |n| n.to_string());
        let until = issued
            .expires_at
            .map_or_else(|| "never expires".to_owned(), |at| format!("expires {at}"));
        eprintln!(
            "Registration token {}: {uses} registrations, {until}",
            issued.id
        );
        println!("{}", issued.token);
        Ok(())
    })
}
