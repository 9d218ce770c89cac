//! `mas-cli manage issue-personal-access-token` / `revoke-personal-access-token`:
//! personal access tokens (`mpt_`) for scripts and bots, which the homeserver's
//! introspection accepts like any other token of the user.

use anyhow::{Context, bail};
use mas_config::RootConfig;
use mas_oauth_core::tokens::PersonalRefusal;
use mas_storage::{RepositoryFactory, SystemClock};

/// The scope when none is given: the Matrix client-server API.
const DEFAULT_SCOPE: &str = "urn:matrix:client:api:*";

/// The checked scope of a new token, space-separated.
fn token_scope(scopes: &[String]) -> anyhow::Result<String> {
    let joined = if scopes.is_empty() {
        DEFAULT_SCOPE.to_owned()
    } else {
        scopes.join(" ")
    };
    mas_oauth_core::tokens::personal_scope(&joined)
        .map_err(|e| anyhow::anyhow!("--scope: {}", e.description))
}

/// `issue-personal-access-token USERNAME [--name NAME] [--scope S]... [--expires-in N]`:
/// prints the token alone on stdout.
pub(crate) fn issue(
    config: &RootConfig,
    username: &str,
    name: &str,
    scopes: &[String],
    expires_in: Option<u64>,
) -> anyhow::Result<()> {
    let scope = token_scope(scopes)?;
    if name.trim().is_empty() || name.len() > 255 {
        bail!("--name: give 1 to 255 characters");
    }
    let ttl = super::expires_in(expires_in)?;
    let policy = crate::policy::build(config)?;
    crate::block_on(async {
        let (session, access, token) =
            super::users::with_user(config, username, async |repo, user| {
                let mut rng = rand::make_rng::<rand::rngs::StdRng>();
                let started = mas_oauth_core::tokens::start_personal_session(
                    repo.as_mut(),
                    &mut rng,
                    &SystemClock,
                    &policy,
                    mas_data_model::PersonalSessionOwner::User(user.id),
                    &user,
                    name,
                    &scope,
                    ttl,
                );
                match started.await? {
                    Ok((session, issued)) => Ok((session, issued.access, issued.token)),
                    Err(PersonalRefusal::ActorInactive) => {
                        bail!("`{username}` is locked or deactivated")
                    }
                    Err(PersonalRefusal::AdminNotAllowed(admin)) => bail!(
                        "`{username}` may not request admin rights, so a token cannot carry `{admin}` (see `manage promote-admin`)"
                    ),
                }
            })
            .await?;
        let until = access
            .expires_at
            .map_or_else(|| "never expires".to_owned(), |at| format!("expires {at}"));
        eprintln!(
            "Personal session {} of `{username}` (\"{name}\"): scope `{scope}`, {until}",
            session.id
        );
        println!("{token}");
        Ok(())
    })
}

/// `revoke-personal-access-token TOKEN|SESSION_ID`: ends the session, and so its token.
pub(crate) fn revoke(config: &RootConfig, token_or_session: &str) -> anyhow::Result<()> {
    crate::block_on(async {
        let factory = crate::database::open(config, false).await?;
        crate::database::require_current_schema(&factory).await?;
        let mut repo = factory.begin().await?;
        let session_id = if token_or_session.starts_with("mpt_") {
            // The token itself is never echoed: it may be valid.
            repo.personal_access_token()
                .find_by_token(token_or_session)
                .await?
                .context("no such personal access token")?
                .session_id
        } else {
            // Not echoed either: it may be another kind of token, pasted by mistake.
            token_or_session
                .parse::<mas_data_model::Ulid>()
                .context("that is neither a personal access token (mpt_...) nor a session ID")?
        };
        let session = repo
            .personal_session()
            .lookup(session_id)
            .await?
            .with_context(|| format!("no personal session {session_id}"))?;
        let owner = match session.owner {
            mas_data_model::PersonalSessionOwner::User(id) => repo
                .user()
                .lookup(id)
                .await?
                .map_or_else(|| id.to_string(), |u| u.username),
            mas_data_model::PersonalSessionOwner::Client(id) => format!("client {id}"),
        };
        let already = session.revoked_at.is_some();
        if !already {
            repo.personal_session()
                .revoke(&SystemClock, session.clone())
                .await?;
        }
        repo.save().await?;
        factory.close().await?;
        if already {
            println!("personal session {session_id} of `{owner}` was already revoked");
        } else {
            println!("revoked personal session {session_id} of `{owner}`");
        }
        Ok(())
    })
}
