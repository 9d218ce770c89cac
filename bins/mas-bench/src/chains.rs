//! Compatibility refresh chains: each one a client on its own keep-alive connection that
//! refreshes, takes the refresh token it got back and refreshes again, as a legacy client
//! whose access tokens keep expiring does. What `refresh` loads the service with and what
//! `faults` keeps running through a database outage.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mas_data_model::TokenType;
use mas_storage::repository::NewCompatLogin;
use mas_storage::{RepositoryFactory, SystemClock};

/// One answer a chain got.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// When the answer arrived, from the start of the run.
    pub at: Duration,
    /// From sending the request to the whole answer.
    pub latency: Duration,
    /// The HTTP status; 0 when the connection failed instead.
    pub status: u16,
}

/// Refresh tokens the chains start from and fall back on.
pub(crate) struct Tokens {
    /// Spares for chains whose token stopped working (a refresh that was stored but
    /// whose answer never arrived).
    spares: Mutex<Vec<String>>,
    /// How many spares were taken.
    taken: std::sync::atomic::AtomicUsize,
}

impl Tokens {
    fn spare(&self) -> Option<String> {
        let token = self
            .spares
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if token.is_some() {
            self.taken
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        token
    }

    /// How many chains had to start again from a spare token.
    pub(crate) fn restarted(&self) -> usize {
        self.taken.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Stores `count` compatibility sessions of the seeded users, each with a refresh token,
/// straight into the database: the chains' first tokens, then the spares.
pub(crate) async fn seed(
    database: &str,
    chains: usize,
    spares: usize,
) -> anyhow::Result<(Vec<String>, Arc<Tokens>)> {
    let factory = crate::seeding_factory(database).await?;
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = factory.begin().await?;
    let mut tokens = Vec::with_capacity(chains + spares);
    for i in 0..chains + spares {
        let username = format!("user{}", i % crate::USERS);
        let user = repo
            .user()
            .find_by_username(&username)
            .await?
            .with_context(|| format!("{username} was not seeded"))?;
        let refresh = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatRefreshToken);
        let access = mas_oauth_core::tokens::generate(&mut rng, TokenType::CompatAccessToken);
        repo.compat_session()
            .add_with_tokens(
                &mut rng,
                &SystemClock,
                NewCompatLogin {
                    user: &user,
                    device_id: &format!("CHAIN{i}"),
                    human_name: None,
                    access_token: &access,
                    ttl: Some(chrono::Duration::minutes(5)),
                    refresh_token: Some(&refresh),
                },
            )
            .await?;
        tokens.push(refresh);
    }
    repo.save().await?;
    factory.close().await?;
    let spares = tokens.split_off(chains);
    Ok((
        tokens,
        Arc::new(Tokens {
            spares: Mutex::new(spares),
            taken: std::sync::atomic::AtomicUsize::new(0),
        }),
    ))
}

/// A keep-alive HTTP/1.1 connection to the server.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(address: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    /// One refresh: the status and the body.
    async fn refresh(&mut self, token: &str) -> anyhow::Result<(u16, Bytes)> {
        let request = hyper::Request::post("/_matrix/client/v3/refresh")
            .header(hyper::header::HOST, "127.0.0.1")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(format!(
                "{{\"refresh_token\":\"{token}\"}}"
            ))))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Runs one chain from `token` until `until`: every answer as a [`Sample`], and the
/// token it ended with. A 5xx keeps the token (nothing was stored); a 401 means the last
/// refresh was stored although its answer was lost, and the chain goes on from a spare.
pub(crate) async fn run(
    address: SocketAddr,
    mut token: String,
    tokens: Arc<Tokens>,
    start: Instant,
    until: Instant,
) -> anyhow::Result<(Vec<Sample>, String)> {
    let mut samples = Vec::new();
    let mut connection = None;
    while Instant::now() < until {
        let sent = Instant::now();
        let answer = match connection.as_mut() {
            Some(open) => Connection::refresh(open, &token).await,
            None => match Connection::open(address).await {
                Ok(open) => Connection::refresh(connection.insert(open), &token).await,
                Err(error) => Err(error),
            },
        };
        let status = match answer {
            Ok((200, body)) => {
                let answer: serde_json::Value =
                    serde_json::from_slice(&body).context("a refresh answer that is not JSON")?;
                answer["refresh_token"]
                    .as_str()
                    .context("a refresh answer without refresh_token")?
                    .clone_into(&mut token);
                200
            }
            Ok((401, _)) => {
                token = tokens
                    .spare()
                    .context("a chain lost its token and no spare is left")?;
                401
            }
            Ok((status, _)) => status,
            Err(_) => {
                connection = None;
                0
            }
        };
        samples.push(Sample {
            at: start.elapsed(),
            latency: sent.elapsed(),
            status,
        });
        if status != 200 {
            // Do not spin on a failing server.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok((samples, token))
}

/// Runs `tokens.len()` chains at once until `until`; their samples, and the tokens they
/// ended with (to go on from).
pub(crate) async fn run_all(
    address: SocketAddr,
    chains: Vec<String>,
    tokens: &Arc<Tokens>,
    start: Instant,
    until: Instant,
) -> anyhow::Result<(Vec<Sample>, Vec<String>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for token in chains {
        tasks.spawn(run(address, token, tokens.clone(), start, until));
    }
    let mut samples = Vec::new();
    let mut last = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (mut some, token) = done??;
        samples.append(&mut some);
        last.push(token);
    }
    samples.sort_by_key(|s| s.at);
    Ok((samples, last))
}

/// The `q` quantile of `latencies` (sorted) in ms.
pub(crate) fn quantile_ms(latencies: &[Duration], q: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
    latencies
        .get(index)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}
