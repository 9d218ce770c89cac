//! `GET /authorize`: checks the request, records it, and sends the person to log in
//! and consent.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum_extra::extract::cookie::PrivateCookieJar;
use mas_oauth_core::ErrorCode;
use mas_oauth_core::authorize::{AuthorizeError, Redirect, validate};
use mas_oauth_core::params::Params;

use super::consent::{Step, decide, step};
use super::{
    PageResult, deliver, deliver_error, deliver_unattended, error_page, see_other, throttled,
};
use crate::AppState;
use crate::rate_limit::{ClientIp, PerAddress};

#[tracing::instrument(name = "handlers.authorize", skip_all)]
pub(super) async fn get(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
    jar: PrivateCookieJar,
) -> PageResult {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(error) => {
            return Ok(super::request_error_page(
                &state,
                &tr!("authorize-bad-request"),
                &error.description,
            ));
        }
    };
    let issuer = state.oauth.endpoints.issuer.clone();
    let mut repo = state.repos.begin().await?;
    let request = match validate(repo.as_mut(), &issuer, &params).await {
        Ok(request) => request,
        Err(AuthorizeError::Page(detail)) => {
            return Ok(super::request_error_page(
                &state,
                &tr!("authorize-bad-request"),
                &detail,
            ));
        }
        Err(AuthorizeError::Redirect(redirect)) => {
            return refused(&state, repo.as_mut(), &params, &redirect).await;
        }
    };
    let refuse = |code| {
        let redirect = request.needs_interaction(&issuer, code);
        deliver_error(&state, &request.client, &redirect)
    };
    // Each request stores a grant before anyone has signed in.
    if let Some(message) = throttled(
        &state,
        PerAddress::AnonymousRequest,
        ip,
        msg!("throttle-from-address-sign-ins"),
    ) {
        return Ok(error_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &tr!("authorize-too-many-requests"),
            &message,
        ));
    }
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let grant = repo
        .authorization_grant()
        .add(&mut rng, state.clock.as_ref(), request.new_grant())
        .await?;
    if request.is_silent() {
        // Answered at once, or not at all; an unanswered grant is rolled back.
        let Step::Ask(found) = step(&state, repo.as_mut(), &jar, &grant.id.to_string()).await?
        else {
            return Ok(refuse(ErrorCode::LoginRequired));
        };
        let (session, grant) = *found;
        if !mas_oauth_core::authorize::consent_remembered(repo.as_mut(), session.user_id, &grant)
            .await?
        {
            return Ok(refuse(ErrorCode::ConsentRequired));
        }
        let redirect = decide(&state, repo, &session, grant, true).await?;
        return Ok(deliver_unattended(&state, &request.client, &redirect));
    }
    repo.save().await?;
    // The consent page sends the person to log in first when needed.
    Ok(see_other(&state, &format!("/consent/{}", grant.id)))
}

/// An error found after the redirect URI was checked against the client named in the
/// request: delivered as that client may be trusted with.
async fn refused(
    state: &AppState,
    repo: &mut dyn mas_storage::Repository,
    params: &Params,
    redirect: &Redirect,
) -> PageResult {
    let client = match params.get("client_id").ok().flatten().map(str::parse) {
        Some(Ok(id)) => repo.client().lookup(id).await?,
        _ => None,
    };
    Ok(match client {
        Some(client) => deliver_error(state, &client, redirect),
        None => deliver(redirect),
    })
}
