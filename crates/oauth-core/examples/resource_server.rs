//! A resource server: an axum API whose `GET /whoami` takes the service's access tokens
//! issued to its front ends (`API_CLIENTS`, comma-separated IDs), asking the service at
//! `MAS_ISSUER` as its `client_secret_basic` static client `RS_CLIENT_ID` (secret
//! `RS_CLIENT_SECRET`), with answers cached a minute; it listens on `LISTEN` (:8090).
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, extract::State, routing::get};
use mas_oauth_core::resource::{self, TokenCache, TokenInfo};

struct Api {
    http: reqwest::Client,
    endpoint: String,
    authorization: String,
    clients: Vec<String>,
    cache: TokenCache,
}

/// What the service says of `token`: `503` when it cannot be asked, `502` for a bad answer.
async fn ask(api: &Api, token: &str) -> Result<TokenInfo, StatusCode> {
    let request = (api.http.post(&api.endpoint))
        .header(header::AUTHORIZATION, &api.authorization)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(resource::request_body(token));
    let down = |_: reqwest::Error| StatusCode::SERVICE_UNAVAILABLE;
    let answer = request.send().await.map_err(down)?;
    let answer = answer.error_for_status().map_err(down)?;
    answer.json().await.map_err(|_| StatusCode::BAD_GATEWAY)
}

/// A `401` with RFC 6750's challenge: an error code only when a token was sent.
fn unauthorized(sent: bool) -> Response {
    let challenge = ["Bearer", r#"Bearer error="invalid_token""#][usize::from(sent)];
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    let value = header::HeaderValue::from_static(challenge);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, value);
    response
}

async fn whoami(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = sent.and_then(resource::bearer) else {
        return unauthorized(false);
    };
    if !resource::is_access_token(token) {
        return unauthorized(true);
    }
    let now = chrono::Utc::now();
    let info = match api.cache.get(token, now) {
        Some(known) => known,
        None => match ask(&api, token).await {
            Ok(info) => {
                api.cache.insert(token, info.clone(), now);
                info
            }
            Err(status) => return status.into_response(),
        },
    };
    if info.issued_to(&api.clients) {
        Json(info).into_response()
    } else {
        unauthorized(true)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // The endpoint as the service advertises it: its issuer may not be its base URL.
    let issuer = var("MAS_ISSUER")?;
    let discovery = issuer.trim_end_matches('/').to_owned() + "/.well-known/openid-configuration";
    let metadata: serde_json::Value = http.get(discovery).send().await?.json().await?;
    let endpoint = metadata["introspection_endpoint"]
        .as_str()
        .ok_or("no endpoint")?;
    let (id, secret) = (var("RS_CLIENT_ID")?, var("RS_CLIENT_SECRET")?);
    let api = Api {
        http,
        endpoint: endpoint.to_owned(),
        authorization: resource::basic_authorization(&id, &secret),
        clients: var("API_CLIENTS")?.split(',').map(str::to_owned).collect(),
        cache: TokenCache::new(10_000, chrono::Duration::minutes(1)),
    };
    let listen = var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".to_owned());
    let app = Router::new().route("/whoami", get(whoami));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{listen}/whoami");
    axum::serve(listener, app.with_state(Arc::new(api))).await?;
    Ok(())
}
