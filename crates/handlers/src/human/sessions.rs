//! `/account/sessions`: one list of a person's browser sessions, OAuth 2.0 sessions and
//! compatibility sessions, each with its last activity, a page of its own, a rename for
//! devices and a sign-out that reaches the homeserver.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::PrivateCookieJar;
use chrono::{DateTime, Utc};
use mas_data_model::{BrowserSession, CompatSession, LastActivity, Session, User};
use mas_storage::jobs::HomeserverJob;
use mas_storage::repository::{CompatSessionFilter, SessionFilter};
use mas_storage::{Pagination, Repository, StorageError};
use serde::Serialize;

use super::account::{field, notice, person, posted};
use super::login::PageForm;
use super::{
    PageResult, ScopeInWords, csrf_token, describe_scopes, error_page, forget_session, render,
    see_other,
};
use crate::AppState;

/// How many sessions of each kind the list shows.
const SHOWN: usize = 100;

/// Synapse's limit on device display names, in characters.
const MAX_DEVICE_NAME: usize = 100;

/// An open session of the person's, of any kind.
enum Owned {
    Browser(BrowserSession),
    OAuth(Session),
    Compat(CompatSession),
}

impl Owned {
    fn id(&self) -> ulid::Ulid {
        match self {
            Self::Browser(s) => s.id,
            Self::OAuth(s) => s.id,
            Self::Compat(s) => s.id,
        }
    }

    fn device_id(&self) -> Option<String> {
        match self {
            Self::Browser(_) => None,
            Self::OAuth(s) => mas_data_model::device_of(&s.scope),
            Self::Compat(s) => s.device_id.clone(),
        }
    }
}

/// A session as the pages show it.
#[derive(Serialize)]
struct Row {
    id: String,
    kind: String,
    name: String,
    device_id: Option<String>,
    client_uri: Option<String>,
    scopes: Vec<ScopeInWords>,
    created_at: String,
    last_active_at: Option<String>,
    last_active_ip: Option<String>,
    user_agent: Option<String>,
    current: bool,
    renamable: bool,
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn activity(last: &LastActivity) -> (Option<String>, Option<String>) {
    (last.at.map(when), last.ip.clone())
}

/// The row of a session; OAuth 2.0 sessions are named by their client.
async fn row(
    repo: &mut dyn Repository,
    owned: &Owned,
    current: Option<ulid::Ulid>,
) -> Result<Row, StorageError> {
    let device_id = owned.device_id();
    Ok(match owned {
        Owned::Browser(s) => {
            let (last_active_at, last_active_ip) = activity(&s.last_activity);
            Row {
                id: s.id.to_string(),
                kind: tr!("sessions-kind-browser"),
                name: tr!("sessions-browser-name"),
                device_id,
                client_uri: None,
                scopes: Vec::new(),
                created_at: when(s.created_at),
                last_active_at,
                last_active_ip,
                user_agent: s.user_agent.clone(),
                current: current == Some(s.id),
                renamable: false,
            }
        }
        Owned::OAuth(s) => {
            let client = repo.client().lookup(s.client_id).await?;
            let client_name = client
                .as_ref()
                .and_then(|c| c.name.clone())
                .unwrap_or_else(|| s.client_id.to_string());
            let (last_active_at, last_active_ip) = activity(&s.last_activity);
            Row {
                id: s.id.to_string(),
                kind: tr!("sessions-kind-application"),
                name: s.human_name.clone().unwrap_or(client_name),
                renamable: device_id.is_some(),
                device_id,
                client_uri: client.and_then(|c| c.client_uri).map(|u| u.to_string()),
                scopes: describe_scopes(&s.scope),
                created_at: when(s.created_at),
                last_active_at,
                last_active_ip,
                user_agent: s.user_agent.clone(),
                current: false,
            }
        }
        Owned::Compat(s) => {
            let (last_active_at, last_active_ip) = activity(&s.last_activity);
            Row {
                id: s.id.to_string(),
                kind: tr!("sessions-matrix-client"),
                name: s
                    .human_name
                    .clone()
                    .or_else(|| device_id.clone())
                    .unwrap_or_else(|| tr!("sessions-matrix-client")),
                renamable: device_id.is_some(),
                device_id,
                client_uri: None,
                scopes: Vec::new(),
                created_at: when(s.created_at),
                last_active_at,
                last_active_ip,
                user_agent: s.user_agent.clone(),
                current: false,
            }
        }
    })
}

/// The person's open session with this ID, of any kind; `None` for anyone else's, a
/// finished one, or an ID that is not one.
async fn owned(
    repo: &mut dyn Repository,
    user: &User,
    id: &str,
) -> Result<Option<Owned>, StorageError> {
    let Ok(id) = id.parse::<ulid::Ulid>() else {
        return Ok(None);
    };
    if let Some(s) = repo.compat_session().lookup(id).await? {
        return Ok((s.user_id == user.id && s.is_active()).then_some(Owned::Compat(s)));
    }
    if let Some(s) = repo.session().lookup(id).await? {
        return Ok((s.user_id == Some(user.id) && s.is_active()).then_some(Owned::OAuth(s)));
    }
    if let Some(s) = repo.browser_session().lookup(id).await? {
        return Ok((s.user_id == user.id && s.is_active()).then_some(Owned::Browser(s)));
    }
    Ok(None)
}

fn not_found(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::NOT_FOUND,
        &tr!("sessions-no-such-session"),
        &tr!("sessions-no-such-session-detail"),
    )
}

/// A deep link to a device (`device_id=`): that device's session page.
pub(super) async fn open_device(
    state: &AppState,
    user: &User,
    device_id: Option<&str>,
) -> PageResult {
    let Some(device_id) = device_id.filter(|d| !d.is_empty()) else {
        return Ok(see_other(state, "/account/sessions"));
    };
    let mut repo = state.repos.reader().await?;
    let (compat, oauth) = mas_storage::jobs::open_sessions(repo.as_mut(), user.id).await?;
    let found = compat
        .iter()
        .find(|s| s.device_id.as_deref() == Some(device_id))
        .map(|s| s.id)
        .or_else(|| {
            oauth
                .iter()
                .find(|s| mas_data_model::device_of(&s.scope).as_deref() == Some(device_id))
                .map(|s| s.id)
        });
    Ok(match found {
        Some(id) => see_other(state, &format!("/account/sessions/{id}")),
        None => error_page(
            state,
            StatusCode::NOT_FOUND,
            &tr!("sessions-no-such-device"),
            &tr!("sessions-no-such-device-detail"),
        ),
    })
}

#[tracing::instrument(name = "handlers.account.sessions", skip_all)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<
        axum::extract::Query<std::collections::HashMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
    jar: PrivateCookieJar,
) -> PageResult {
    let (current, user) = person(&state, &jar, "/account/sessions").await?;
    let mut repo = state.repos.reader().await?;
    // The newest: a device signed in just now is the one to see.
    let page = Pagination::last(SHOWN);
    let mut owned: Vec<Owned> = Vec::new();
    owned.extend(
        repo.browser_session()
            .list(&user, true, page)
            .await?
            .edges
            .into_iter()
            .map(Owned::Browser),
    );
    let oauth = SessionFilter {
        user_id: Some(user.id),
        client_id: None,
        active: Some(true),
    };
    owned.extend(
        repo.session()
            .list(oauth, page)
            .await?
            .edges
            .into_iter()
            .map(Owned::OAuth),
    );
    let compat = CompatSessionFilter {
        user_id: Some(user.id),
        active: Some(true),
    };
    owned.extend(
        repo.compat_session()
            .list(compat, page)
            .await?
            .edges
            .into_iter()
            .map(Owned::Compat),
    );
    let oauth_total = repo.session().count(oauth).await?;
    let total = oauth_total + repo.compat_session().count(compat).await?;
    let mut rows = Vec::with_capacity(owned.len());
    for session in &owned {
        rows.push(row(repo.as_mut(), session, Some(current.id)).await?);
    }
    let devices = owned
        .iter()
        .filter(|o| !matches!(o, Owned::Browser(_)))
        .count();
    let hidden = usize::try_from(total)
        .unwrap_or(usize::MAX)
        .saturating_sub(devices);
    let saved = query.ok().and_then(|q| q.0.get("saved").cloned());
    let (jar, csrf) = csrf_token(&state, jar);
    let page = render(
        StatusCode::OK,
        "sessions.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf,
            base => state.page_path("/"),
            username => &user.username,
            sessions => rows,
            hidden,
            notice => notice(saved.as_deref()),
        },
    );
    Ok((jar, page).into_response())
}

#[tracing::instrument(name = "handlers.account.session", skip_all)]
pub(super) async fn view(
    State(state): State<AppState>,
    Path(id): Path<String>,
    jar: PrivateCookieJar,
) -> PageResult {
    let back = format!("/account/sessions/{}", super::query_value(&id));
    let (current, user) = person(&state, &jar, &back).await?;
    let mut repo = state.repos.reader().await?;
    let Some(session) = owned(repo.as_mut(), &user, &id).await? else {
        return Ok(not_found(&state));
    };
    let row = row(repo.as_mut(), &session, Some(current.id)).await?;
    let (jar, csrf) = csrf_token(&state, jar);
    let page = render(
        StatusCode::OK,
        "session.html",
        minijinja::context! {
            service_name => &*state.service_name, csrf,
            base => state.page_path("/"),
            username => &user.username,
            session => row,
            max_name => MAX_DEVICE_NAME,
        },
    );
    Ok((jar, page).into_response())
}

#[tracing::instrument(name = "handlers.account.session.end", skip_all)]
pub(super) async fn end(
    State(state): State<AppState>,
    Path(id): Path<String>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (current, user) = posted(&state, &jar, &form, "/account/sessions").await?;
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let Some(session) = owned(repo.as_mut(), &user, &id).await? else {
        return Ok(not_found(&state));
    };
    let device_id = session.device_id();
    let this_browser = session.id() == current.id;
    let mut ended_browser = None;
    match session {
        Owned::Browser(s) => {
            ended_browser = Some(repo.browser_session().finish(clock, s).await?);
        }
        Owned::OAuth(s) => {
            repo.session().finish(clock, s).await?;
        }
        Owned::Compat(s) => {
            repo.compat_session().finish(clock, s).await?;
        }
    }
    // Queued with the sign-out itself, so the device goes even if the call below fails.
    if let Some(device_id) = &device_id {
        let job = HomeserverJob::DeleteDevice {
            user_id: user.id,
            device_id: device_id.clone(),
        };
        repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    }
    repo.save().await?;
    tracing::info!(user = %user.id, session = %id, "session signed out by its owner");
    if let Some(device_id) = device_id {
        crate::devices::delete_device_now(&state, &user, &device_id).await;
    }
    if let Some(ended) = ended_browser {
        super::rp_logout::notify(&state, &user, &[ended]).await;
    }
    if this_browser {
        return Ok((forget_session(jar), see_other(&state, "/login")).into_response());
    }
    Ok(see_other(&state, "/account/sessions?saved=ended"))
}

#[tracing::instrument(name = "handlers.account.session.rename", skip_all)]
pub(super) async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    jar: PrivateCookieJar,
    PageForm(form): PageForm,
) -> PageResult {
    let (_, user) = posted(&state, &jar, &form, "/account/sessions").await?;
    let name = field(&form, "name").trim();
    if name.is_empty()
        || name.chars().count() > MAX_DEVICE_NAME
        || name.chars().any(char::is_control)
    {
        return Ok(error_page(
            &state,
            StatusCode::BAD_REQUEST,
            &tr!("sessions-name-invalid"),
            &tr!("sessions-name-invalid-detail", max = MAX_DEVICE_NAME),
        ));
    }
    let clock = state.clock.as_ref();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await?;
    let session = owned(repo.as_mut(), &user, &id).await?;
    let Some((session, device_id)) = session.and_then(|s| s.device_id().map(|device| (s, device)))
    else {
        return Ok(not_found(&state));
    };
    match &session {
        Owned::OAuth(s) => {
            repo.session()
                .set_human_name(s.id, Some(name.to_owned()))
                .await?;
        }
        Owned::Compat(s) => {
            repo.compat_session()
                .set_human_name(s.id, Some(name.to_owned()))
                .await?;
        }
        Owned::Browser(_) => return Ok(not_found(&state)),
    }
    // The homeserver's copy of the name follows through the queue if the call fails.
    let job = HomeserverJob::ProvisionDevice {
        user_id: user.id,
        device_id: device_id.clone(),
        display_name: Some(name.to_owned()),
    };
    repo.job().schedule(&mut rng, clock, job.to_job()).await?;
    repo.save().await?;
    let renamed = state
        .homeserver
        .update_device_display_name(&user.username, &device_id, name);
    if let Err(error) = crate::devices::within_deadline(renamed).await {
        tracing::warn!(%error, "device rename left to the job queue");
    }
    Ok(see_other(&state, "/account/sessions?saved=renamed"))
}
