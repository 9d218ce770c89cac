//! `/api/admin/v1/site-config` and `/api/admin/v1/version`: what this deployment offers
//! people, as it behaves (not as MAS would with the same file).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::Admin;
use crate::AppState;

/// What people may do here.
#[derive(Debug, Serialize, ToSchema)]
#[allow(clippy::struct_excessive_bools)] // One switch per behaviour, as MAS answers them.
pub(crate) struct SiteConfig {
    /// The Matrix server name users belong to.
    server_name: String,
    /// Whether people may log in with a password.
    password_login_enabled: bool,
    /// Whether people may create accounts with a password at `/register`.
    password_registration_enabled: bool,
    /// Whether such a registration proves an email address with a code.
    password_registration_email_required: bool,
    /// Whether such a registration needs a registration token.
    password_registration_token_required: bool,
    /// The older name of `password_registration_token_required`.
    #[schema(deprecated)]
    registration_token_required: bool,
    /// Whether people may change their email addresses.
    email_change_allowed: bool,
    /// Whether people may change their display name.
    displayname_change_allowed: bool,
    /// Whether people may change their password.
    password_change_allowed: bool,
    /// Whether people may set a new password with a link sent to their address.
    account_recovery_allowed: bool,
    /// Whether people may deactivate their own account.
    account_deactivation_allowed: bool,
    /// Whether registration asks for a CAPTCHA.
    captcha_enabled: bool,
    /// The lowest zxcvbn score (0 to 4) a new password needs.
    #[schema(minimum = 0, maximum = 4)]
    minimum_password_complexity: u8,
}

/// This build's version.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Version {
    /// The version, as semver.
    version: &'static str,
}

/// The routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(site_config))
        .routes(routes!(version))
}

/// Get what people may do here.
#[utoipa::path(
    get,
    path = "/api/admin/v1/site-config",
    tag = "server",
    operation_id = "siteConfig",
    responses((status = 200, description = "The site's configuration", body = SiteConfig)),
)]
#[tracing::instrument(name = "handlers.admin.site_config", skip_all)]
async fn site_config(_: Admin, State(state): State<AppState>) -> Json<SiteConfig> {
    let passwords = state.passwords.is_enabled();
    Json(SiteConfig {
        server_name: state.homeserver.homeserver().to_owned(),
        password_login_enabled: passwords,
        password_registration_enabled: state.oauth.registration_open,
        password_registration_email_required: state.oauth.registration_open
            && state.account.registration_email_required,
        password_registration_token_required: state.account.registration_token_required,
        registration_token_required: state.account.registration_token_required,
        email_change_allowed: state.account.email_change_allowed,
        displayname_change_allowed: state.account.displayname_change_allowed,
        password_change_allowed: passwords && state.account.password_change_allowed,
        account_recovery_allowed: passwords && state.account.password_recovery_enabled,
        account_deactivation_allowed: state.account.account_deactivation_allowed,
        captcha_enabled: state.oauth.registration_open && state.captcha.is_some(),
        minimum_password_complexity: state.passwords.minimum_complexity(),
    })
}

/// Get this build's version.
#[utoipa::path(
    get,
    path = "/api/admin/v1/version",
    tag = "server",
    operation_id = "version",
    responses((status = 200, description = "The version", body = Version)),
)]
#[tracing::instrument(name = "handlers.admin.version", skip_all)]
async fn version(_: Admin) -> Json<Version> {
    Json(Version {
        version: env!("CARGO_PKG_VERSION"),
    })
}
