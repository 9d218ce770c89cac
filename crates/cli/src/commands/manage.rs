//! `mas-cli manage ...`: user administration.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mas_config::RootConfig;
use mas_matrix::HomeserverConnection;
use mas_oauth_core::passwords::PasswordManager;

use super::users;
use mas_storage::jobs::HomeserverJob;
use mas_storage::{RepositoryFactory, SystemClock};

/// The `manage` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ManageCommand {
    /// Create a user, with an optional password, emails and admin right.
    RegisterUser(RegisterUser),
    /// Set a user's password.
    SetPassword {
        /// The user's username (Matrix localpart).
        username: String,
        /// The new password.
        password: String,
        /// Accept a password below `passwords.minimum_complexity`.
        #[arg(long)]
        ignore_complexity: bool,
    },
    /// Add an email address to a user.
    AddEmail {
        /// The user's username.
        username: String,
        /// The address.
        email: String,
    },
    /// Let a user request homeserver admin rights.
    PromoteAdmin {
        /// The user's username.
        username: String,
    },
    /// Take away a user's right to request homeserver admin rights.
    DemoteAdmin {
        /// The user's username.
        username: String,
    },
    /// List the users who may request admin rights.
    #[command(alias = "list-admins")]
    ListAdminUsers,
    /// End every session of a user and remove its devices from the homeserver.
    KillSessions {
        /// The user's username.
        username: String,
        /// Only say what would be ended.
        #[arg(long)]
        dry_run: bool,
    },
    /// Lock a user: no login, and its tokens stop working.
    LockUser {
        /// The user's username.
        username: String,
        /// Deactivate it too, here and on the homeserver.
        #[arg(long)]
        deactivate: bool,
    },
    /// Unlock a user.
    UnlockUser {
        /// The user's username.
        username: String,
        /// Reactivate a deactivated user too.
        #[arg(long)]
        reactivate: bool,
    },
    /// Issue a compatibility access token (as `/login` would) for a user.
    IssueCompatibilityToken {
        /// The user's username.
        username: String,
        /// The device ID; a random one when left out.
        #[arg(value_name = "DEVICE_ID")]
        device: Option<String>,
        /// The device ID, as a flag.
        #[arg(long, conflicts_with = "device")]
        device_id: Option<String>,
        /// Give the token homeserver admin rights.
        #[arg(long)]
        yes_i_want_to_grant_synapse_admin_privileges: bool,
    },
    /// Queue a homeserver provisioning job for every user.
    ProvisionAllUsers,
    /// Issue a personal access token (`mpt_`) for a user, printed alone on stdout: for
    /// scripts and bots, accepted by the homeserver like the user's other tokens.
    IssuePersonalAccessToken {
        /// The user's username.
        username: String,
        /// What the token is for.
        #[arg(long, default_value = "Issued with mas-cli")]
        name: String,
        /// A scope (repeat for several); `urn:matrix:client:api:*` when left out. Admin
        /// scopes need a user who may request admin rights.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Seconds until the token stops working; it never expires when left out.
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
    },
    /// Issue a registration token, which `/register` asks for when
    /// `account.password_registration_token_required`; printed alone on stdout.
    IssueUserRegistrationToken {
        /// The token's value (1 to 64 letters, digits, `-`, `_`, `.`, `~`); a random one
        /// when left out.
        #[arg(long)]
        token: Option<String>,
        /// How many registrations it allows; no limit when left out.
        #[arg(long, value_name = "N")]
        usage_limit: Option<u32>,
        /// Seconds until it stops working; it never expires when left out.
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
    },
    /// Revoke a personal access token, given the token or its session's ID.
    RevokePersonalAccessToken {
        /// The token (`mpt_...`) or the personal session's ID.
        token_or_session: String,
    },
}

/// Flags of `register-user`, as MAS spells them.
#[derive(Debug, Args)]
pub(crate) struct RegisterUser {
    /// The username (Matrix localpart).
    #[arg(value_name = "USERNAME", required_unless_present = "username_flag")]
    username: Option<String>,
    /// The username, as a flag.
    #[arg(long = "username", id = "username_flag", conflicts_with = "username")]
    username_flag: Option<String>,
    /// The password; without it the user can only log in through an upstream provider.
    #[arg(short, long)]
    password: Option<String>,
    /// An email address (repeat for several).
    #[arg(short, long)]
    email: Vec<String>,
    /// Allow the user to request homeserver admin rights.
    #[arg(short, long)]
    admin: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
    /// The display name to set on the homeserver.
    #[arg(short, long)]
    display_name: Option<String>,
    /// Accept a password below `passwords.minimum_complexity`.
    #[arg(long)]
    ignore_password_complexity: bool,
}

/// Whether `localpart` is a valid Matrix user localpart, as MAS accepts them.
pub(crate) use mas_data_model::is_valid_localpart as valid_localpart;

pub(crate) fn valid_email(email: &str) -> bool {
    let mut parts = email.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None)
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
    )
}

fn salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::make_rng::<rand::rngs::StdRng>(), &mut salt);
    salt
}

impl ManageCommand {
    pub(crate) fn run(self, files: &[PathBuf]) -> anyhow::Result<()> {
        let config = mas_config::load(files)?;
        let passwords = crate::oauth::password_manager(&config)?;
        match self {
            Self::RegisterUser(args) => register_user(&config, &passwords, args),
            Self::SetPassword {
                username,
                password,
                ignore_complexity,
            } => set_password(&config, &passwords, &username, &password, ignore_complexity),
            Self::AddEmail { username, email } => users::add_email(&config, &username, &email),
            Self::PromoteAdmin { username } => users::set_admin(&config, &username, true),
            Self::DemoteAdmin { username } => users::set_admin(&config, &username, false),
            Self::ListAdminUsers => users::list_admins(&config),
            Self::KillSessions { username, dry_run } => {
                users::kill_sessions(&config, &username, dry_run)
            }
            Self::LockUser {
                username,
                deactivate,
            } => users::lock_user(&config, &username, deactivate),
            Self::UnlockUser {
                username,
                reactivate,
            } => users::unlock_user(&config, &username, reactivate),
            Self::IssueCompatibilityToken {
                username,
                device,
                device_id,
                yes_i_want_to_grant_synapse_admin_privileges,
            } => users::issue_compatibility_token(
                &config,
                &username,
                device.or(device_id),
                yes_i_want_to_grant_synapse_admin_privileges,
            ),
            Self::ProvisionAllUsers => users::provision_all_users(&config),
            Self::IssuePersonalAccessToken {
                username,
                name,
                scopes,
                expires_in,
            } => super::personal::issue(&config, &username, &name, &scopes, expires_in),
            Self::IssueUserRegistrationToken {
                token,
                usage_limit,
                expires_in,
            } => users::issue_registration_token(&config, token, usage_limit, expires_in),
            Self::RevokePersonalAccessToken { token_or_session } => {
                super::personal::revoke(&config, &token_or_session)
            }
        }
    }
}

fn register_user(
    config: &RootConfig,
    passwords: &PasswordManager,
    args: RegisterUser,
) -> anyhow::Result<()> {
    let username = args.username.or(args.username_flag).unwrap_or_default();
    if !valid_localpart(&username) {
        bail!(
            "`{username}` is not a valid username: use lowercase letters, digits and . _ = - / + (at most 255)"
        );
    }
    for email in &args.email {
        if !valid_email(email) {
            bail!("`{email}` is not a valid email address");
        }
    }
    let hashed = match &args.password {
        Some(password) => {
            if !passwords.is_enabled() {
                bail!("passwords are disabled in the configuration (passwords.enabled)");
            }
            if !args.ignore_password_complexity
                && !passwords.is_strong_enough(password, &[&username])
            {
                bail!(
                    "the password is too weak (passwords.minimum_complexity is {}); choose a longer one or pass --ignore-password-complexity",
                    config.passwords.minimum_complexity
                );
            }
            Some(passwords.hash(salt(), password)?)
        }
        None => None,
    };
    let homeserver = crate::homeserver::connect(config)?;
    crate::block_on(async {
        let factory = crate::database::open(config, false).await?;
        crate::database::require_current_schema(&factory).await?;
        // As MAS does, the name is checked here first, then with the homeserver, which has
        // the last word (its own users, application services' namespaces, its rules),
        // before anything is shown or asked.
        if factory
            .reader()
            .await?
            .user()
            .find_by_username(&username)
            .await?
            .is_some()
        {
            bail!("the username `{username}` is taken");
        }
        ask_homeserver(homeserver.as_ref(), &config.matrix.endpoint, &username).await?;
        println!("Username: {username}");
        println!(
            "Password: {}",
            if hashed.is_some() { "set" } else { "none" }
        );
        for email in &args.email {
            println!("Email: {email}");
        }
        println!(
            "Can request admin: {}",
            if args.admin { "yes" } else { "no" }
        );
        if let Some(name) = &args.display_name {
            println!("Display name: {name}");
        }
        if !args.yes && !confirm()? {
            bail!("cancelled: nothing was created");
        }
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let clock = SystemClock;
        let mut repo = factory.begin().await?;
        // Checked again: someone may have taken it while the question was open.
        if repo.user().find_by_username(&username).await?.is_some() {
            bail!("the username `{username}` is taken");
        }
        let mut user = repo.user().add(&mut rng, &clock, &username).await?;
        if let Some((version, hash)) = hashed {
            repo.user_password()
                .add(&mut rng, &clock, &user, version, hash, None)
                .await?;
        }
        for email in &args.email {
            if repo.user_email().find_by_email(email).await?.is_some() {
                bail!("the email address `{email}` belongs to another user");
            }
            repo.user_email()
                .add(&mut rng, &clock, &user, email)
                .await?;
        }
        if args.admin {
            user = repo.user().set_can_request_admin(user, true).await?;
        }
        // The homeserver learns of the user from this job (display name, emails).
        let job = HomeserverJob::ProvisionUser {
            user_id: user.id,
            display_name: args.display_name.clone(),
            avatar_url: None,
        };
        repo.job().schedule(&mut rng, &clock, job.to_job()).await?;
        repo.save().await?;
        println!("User `{}` created (id {})", user.username, user.id);
        factory.close().await?;
        Ok(())
    })
}

/// Asks the homeserver whether a new user may take `username`, as web registration
/// does; a refusal or no answer stops the command, since the homeserver would refuse
/// to provision the user later.
async fn ask_homeserver(
    homeserver: &dyn HomeserverConnection,
    endpoint: &url::Url,
    username: &str,
) -> anyhow::Result<()> {
    match homeserver.check_localpart(username).await {
        Ok(None) => Ok(()),
        Ok(Some(reason)) => bail!("the homeserver refuses the username `{username}`: {reason}"),
        Err(error) => bail!(
            "cannot ask the homeserver at {endpoint} (matrix.endpoint) whether `{username}` is available: {error}"
        ),
    }
}

fn set_password(
    config: &RootConfig,
    passwords: &PasswordManager,
    username: &str,
    password: &str,
    ignore_complexity: bool,
) -> anyhow::Result<()> {
    if !passwords.is_enabled() {
        bail!("passwords are disabled in the configuration (passwords.enabled)");
    }
    if !ignore_complexity && !passwords.is_strong_enough(password, &[username]) {
        bail!(
            "the password is too weak (passwords.minimum_complexity is {}); choose a longer one or pass --ignore-complexity",
            config.passwords.minimum_complexity
        );
    }
    let (version, hash) = passwords.hash(salt(), password)?;
    crate::block_on(async {
        let factory = crate::database::open(config, false).await?;
        crate::database::require_current_schema(&factory).await?;
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = factory.begin().await?;
        let user = repo
            .user()
            .find_by_username(username)
            .await?
            .with_context(|| format!("no user `{username}`"))?;
        repo.user_password()
            .add(&mut rng, &SystemClock, &user, version, hash, None)
            .await?;
        repo.save().await?;
        println!("Password of `{username}` changed");
        factory.close().await?;
        Ok(())
    })
}

/// Asks for confirmation on a terminal; refuses to guess in a script.
fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("not a terminal: pass --yes to confirm");
    }
    print!("Create this user? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts_follow_the_matrix_rules() {
        assert!(valid_localpart("alice"));
        assert!(valid_localpart("a.b_c=d-e/f+g9"));
        assert!(!valid_localpart("Alice"));
        assert!(!valid_localpart(""));
        assert!(!valid_localpart("al ice"));
        assert!(!valid_localpart("al\0ice"));
        assert!(!valid_localpart("@alice:example.com"));
        assert!(!valid_localpart(&"a".repeat(256)));
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(valid_email("alice@example.com"));
        assert!(!valid_email("alice"));
        assert!(!valid_email("alice@localhost"));
        assert!(!valid_email("a@b@c.com"));
        assert!(!valid_email("al ice@example.com"));
    }
}
