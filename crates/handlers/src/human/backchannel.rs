//! `POST /upstream/backchannel-logout/{provider}`: OpenID Connect Back-Channel Logout
//! 1.0. A provider posts a logout token when a person's session there ends; once it is
//! checked, `on_backchannel_logout` says what ends here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mas_data_model::{BrowserSession, UpstreamOAuthProvider, User};
use mas_storage::StorageError;
use mas_storage::repository::CompatSessionFilter;

use super::PageResult;
use super::login::PageForm;
use super::upstream::load_any_provider;
use crate::AppState;

/// A back-channel logout refused, as the specification asks: 400 with an OAuth error.
fn logout_refused(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({
            "error": "invalid_request",
            "error_description": description,
        })),
    )
        .into_response()
}

/// `POST /upstream/backchannel-logout/{provider}`: the provider says a person's session
/// there ended. The token is checked; then `on_backchannel_logout` says what ends here.
#[tracing::instrument(name = "handlers.upstream.backchannel_logout", skip_all)]
pub(super) async fn backchannel_logout(
    State(state): State<AppState>,
    Path(id): Path<String>,
    PageForm(form): PageForm,
) -> PageResult {
    let Some((stored, provider)) = load_any_provider(&state, &id, true).await? else {
        return Ok(logout_refused("unknown provider"));
    };
    let Some(token) = form.get("logout_token").ok().flatten() else {
        return Ok(logout_refused("logout_token is missing"));
    };
    let token = match state.upstreams.check_logout_token(&provider, token).await {
        Ok(token) => token,
        Err(error) => {
            tracing::warn!(provider = %provider.id, %error, "back-channel logout refused");
            return Ok(logout_refused(&error.to_string()));
        }
    };
    let policy = provider.config.on_backchannel_logout;
    let ended = match policy {
        mas_upstream::OnBackchannelLogout::DoNothing => 0,
        mas_upstream::OnBackchannelLogout::LogoutBrowserOnly => {
            end_from_upstream(&state, &stored, &token, false).await?
        }
        mas_upstream::OnBackchannelLogout::LogoutAll => {
            end_from_upstream(&state, &stored, &token, true).await?
        }
    };
    tracing::info!(provider = %provider.id, ?policy, ended, "back-channel logout");
    Ok((
        StatusCode::OK,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
    )
        .into_response())
}

/// Ends the browser sessions the provider's session (or account) opened here, and with
/// `everything` the client sessions started from them, their devices removed from the
/// homeserver. Returns how many sessions ended.
async fn end_from_upstream(
    state: &AppState,
    stored: &UpstreamOAuthProvider,
    token: &mas_upstream::LogoutToken,
    everything: bool,
) -> Result<u64, StorageError> {
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let link = match &token.sub {
        Some(sub) => repo.upstream_link().find_by_subject(stored, sub).await?,
        None => None,
    };
    if token.sub.is_some() && link.is_none() {
        // An upstream account never seen here has no sessions here.
        return Ok(0);
    }
    let mut trips = repo
        .upstream_session()
        .find_for_logout(stored, token.sid.as_deref(), link.as_ref())
        .await?;
    // With both, the provider's session must also be this account's.
    if let (Some(_), Some(link)) = (&token.sid, &link) {
        trips.retain(|t| t.link_id == Some(link.id));
    }
    let mut ended = 0;
    let mut devices: Vec<(User, String)> = Vec::new();
    for browser_id in trips.iter().filter_map(|t| t.browser_session_id) {
        let Some(browser) = repo
            .browser_session()
            .lookup(browser_id)
            .await?
            .filter(BrowserSession::is_active)
        else {
            continue;
        };
        let owner = if everything {
            repo.user().lookup(browser.user_id).await?
        } else {
            None
        };
        if let Some(user) = owner {
            let sessions =
                super::oauth_sessions_from(repo.as_mut(), &user, &[browser_id], true).await?;
            for session in sessions {
                if let Some(device) = mas_data_model::device_of(&session.scope) {
                    devices.push((user.clone(), device));
                }
                repo.session().finish(clock, session).await?;
                ended += 1;
            }
            let compat = CompatSessionFilter {
                user_id: Some(user.id),
                active: Some(true),
            };
            let page = mas_storage::Pagination::first(1000);
            let sessions = repo.compat_session().list(compat, page).await?.edges;
            for session in sessions
                .into_iter()
                .filter(|s| s.browser_session_id == Some(browser_id))
            {
                if let Some(device) = session.device_id.clone() {
                    devices.push((user.clone(), device));
                }
                repo.compat_session().finish(clock, session).await?;
                ended += 1;
            }
        }
        repo.browser_session().finish(clock, browser).await?;
        ended += 1;
    }
    // Queued with the sign-outs, so the devices go even if the calls below fail.
    for (user, device_id) in &devices {
        let job = mas_storage::jobs::HomeserverJob::DeleteDevice {
            user_id: user.id,
            device_id: device_id.clone(),
        };
        repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    }
    repo.save().await?;
    for (user, device_id) in &devices {
        crate::devices::delete_device_now(state, user, device_id).await;
    }
    Ok(ended)
}
