//! OpenID Connect Back-Channel Logout, the provider's side: when a person signs out here,
//! each configured client that asked (`backchannel_logout_uri`) and had a session from
//! that browser session is sent a logout token naming it (`sid`). Best effort: the
//! person's page never waits for the clients, and a client that does not answer is
//! logged, not retried.

use mas_data_model::{BrowserSession, User};
use mas_storage::StorageError;

use crate::AppState;

/// Sends the logout tokens for `ended`, the browser sessions of `user` that just ended.
/// The sign-out is done by then: a failure here is logged, never shown.
pub(crate) async fn notify(state: &AppState, user: &User, ended: &[BrowserSession]) {
    if let Err(error) = send(state, user, ended).await {
        tracing::warn!(%error, "cannot tell the clients of a sign-out");
    }
}

async fn send(state: &AppState, user: &User, ended: &[BrowserSession]) -> Result<(), StorageError> {
    let mut repo = state.repos.reader().await?;
    let browsers: Vec<ulid::Ulid> = ended.iter().map(|b| b.id).collect();
    let sessions = super::oauth_sessions_from(repo.as_mut(), user, &browsers, false).await?;
    let notices = mas_oauth_core::grants::backchannel_logouts(
        repo.as_mut(),
        &state.oauth.endpoints.issuer,
        &state.oauth.keys,
        user,
        &sessions,
        state.clock.now(),
        || ulid::Ulid::new().to_string(),
    );
    for notice in notices.await? {
        let http = state.remote_keys.http().clone();
        let client_id = notice.client_id;
        tokio::spawn(async move {
            let answer = http
                .post(notice.uri)
                .form(&[("logout_token", notice.token)])
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(client = %client_id, "back-channel logout delivered");
                }
                Ok(response) => {
                    tracing::warn!(client = %client_id, status = %response.status(), "a client refused a back-channel logout");
                }
                Err(error) => {
                    tracing::warn!(client = %client_id, %error, "a back-channel logout could not be delivered");
                }
            }
        });
    }
    Ok(())
}
