//! A resource server: an axum API whose `GET /whoami` accepts the service's access tokens,
//! asking its introspection endpoint and caching the answers for a minute.
//!
//! ```sh
//! MAS_ISSUER=http://127.0.0.1:8080/ RS_CLIENT_ID=… RS_CLIENT_SECRET=… \
//!     cargo run -p mas-oauth-core --example resource_server
//! ```
//!
//! `RS_CLIENT_ID` is a static client of the service (`clients:`, `client_secret_basic`);
//! `LISTEN` (default `127.0.0.1:8090`) is where the API listens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mas_oauth_core::resource::{Introspection, IntrospectionCache, bearer, request_body};

struct Api {
    http: reqwest::Client,
    introspection: String,
    client_id: String,
    client_secret: String,
    cache: IntrospectionCache,
}

impl Api {
    /// What the service says of `token`, from the cache when it can.
    async fn introspect(&self, token: &str) -> Result<Introspection, reqwest::Error> {
        let now = chrono::Utc::now();
        if let Some(known) = self.cache.get(token, now) {
            return Ok(known);
        }
        let answer = self
            .http
            .post(&self.introspection)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(request_body(token))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let answer =
            Introspection::from_json(&answer).unwrap_or_else(|_| Introspection::inactive());
        self.cache.insert(token, answer.clone(), now);
        Ok(answer)
    }
}

async fn whoami(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let answer = match token {
        Some(token) => api.introspect(token).await,
        None => Ok(Introspection::inactive()),
    };
    match answer {
        Ok(answer) if answer.active => Json(answer).into_response(),
        Ok(_) => {
            let challenge = HeaderValue::from_static(r#"Bearer error="invalid_token""#);
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
            )
                .into_response()
        }
        Err(error) => {
            eprintln!("cannot ask the service: {error}");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let issuer = url::Url::parse(&var("MAS_ISSUER")?)?;
    let api = Api {
        http: reqwest::Client::new(),
        introspection: issuer.join("oauth2/introspect")?.to_string(),
        client_id: var("RS_CLIENT_ID")?,
        client_secret: var("RS_CLIENT_SECRET")?,
        cache: IntrospectionCache::new(10_000, chrono::Duration::minutes(1)),
    };
    let listen = var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".to_owned());
    let app = Router::new()
        .route("/whoami", get(whoami))
        .with_state(Arc::new(api));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{listen}/whoami");
    axum::serve(listener, app).await?;
    Ok(())
}
