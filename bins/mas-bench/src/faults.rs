//! `mas-bench faults --postgres`: PostgreSQL goes away for 10 s under load. The server
//! reaches the database through a TCP proxy inside the bench that drops every connection
//! and refuses new ones for the outage (the database itself, which others may use, stays
//! up). Refresh chains load it throughout, and `/health` is asked every 20 ms. Printed:
//! how fast requests are refused while the database is away (p99 time to the 503), how
//! many answers were a 5xx other than 503, and how long after the database returned the
//! service served again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::chains::{self, Sample};

/// Chains at once.
const CHAINS: usize = 8;
/// Load before the outage, the outage, and load after it.
const BEFORE: Duration = Duration::from_secs(3);
const OUTAGE: Duration = Duration::from_secs(10);
const AFTER: Duration = Duration::from_secs(5);
/// How often `/health` is asked.
const HEALTH_EVERY: Duration = Duration::from_millis(20);

/// Where the bench's PostgreSQL listens, from `MAS_TEST_DATABASE_URL`.
pub(crate) async fn postgres_address() -> anyhow::Result<std::net::SocketAddr> {
    let url = std::env::var("MAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".to_owned());
    let url = url::Url::parse(&url).context("MAS_TEST_DATABASE_URL is not a URL")?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(5432);
    tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .with_context(|| format!("{host}:{port} does not resolve"))
}

/// `database` with its host and port replaced by the proxy's.
pub(crate) fn through(database: &str, proxy: std::net::SocketAddr) -> anyhow::Result<String> {
    let mut url = url::Url::parse(database)?;
    url.set_host(Some(&proxy.ip().to_string()))?;
    url.set_port(Some(proxy.port()))
        .map_err(|()| anyhow::anyhow!("{database} cannot have a port"))?;
    Ok(url.into())
}

/// Asks `/health` every [`HEALTH_EVERY`] until `until`.
async fn watch_health(base: String, start: Instant, until: Instant) -> Vec<Sample> {
    let http = reqwest::Client::new();
    let mut samples = Vec::new();
    while Instant::now() < until {
        let sent = Instant::now();
        let status = match http
            .get(format!("{base}health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        samples.push(Sample {
            at: start.elapsed(),
            latency: sent.elapsed(),
            status,
        });
        tokio::time::sleep(HEALTH_EVERY.saturating_sub(sent.elapsed())).await;
    }
    samples
}

/// Latencies (sorted) of the samples in `[from, to)` with `status`.
fn latencies(samples: &[Sample], status: u16, from: Duration, to: Duration) -> Vec<Duration> {
    let mut out: Vec<Duration> = samples
        .iter()
        .filter(|s| s.status == status && s.at >= from && s.at < to)
        .map(|s| s.latency)
        .collect();
    out.sort();
    out
}

/// The first sample at or after `from` with `status`: how long after `from` it arrived.
fn first_after(samples: &[Sample], status: u16, from: Duration) -> Option<Duration> {
    samples
        .iter()
        .find(|s| s.at >= from && s.status == status)
        .map(|s| s.at.saturating_sub(from))
}

/// How many samples of each status, as `503×120, 200×4000`.
fn statuses(samples: &[Sample]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for sample in samples {
        *counts.entry(sample.status).or_insert(0_usize) += 1;
    }
    counts
        .iter()
        .map(|(status, n)| {
            if *status == 0 {
                format!("no answer×{n}")
            } else {
                format!("{status}×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn faults(
    service: &crate::Service,
    proxy: Arc<mas_testing::CuttableProxy>,
) -> anyhow::Result<()> {
    let (first, tokens) = chains::seed(&service.database, CHAINS, 256).await?;
    let address = service.address();
    let warm_start = Instant::now();
    let (_, chain_tokens) = chains::run_all(
        address,
        first,
        &tokens,
        warm_start,
        warm_start + Duration::from_secs(1),
    )
    .await?;

    let start = Instant::now();
    let until = start + BEFORE + OUTAGE + AFTER;
    let outage = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((start + BEFORE).into()).await;
            proxy.cut();
            let cut_at = start.elapsed();
            tokio::time::sleep_until((start + BEFORE + OUTAGE).into()).await;
            proxy.restore();
            (cut_at, start.elapsed())
        })
    };
    let health = tokio::spawn(watch_health(service.base.clone(), start, until));
    let (samples, _) = chains::run_all(address, chain_tokens, &tokens, start, until).await?;
    let (cut_at, restored_at) = outage.await?;
    let health = health.await?;
    report(&samples, &health, cut_at, restored_at);
    println!(
        "chains that lost their token (a refresh stored as the connection dropped, its answer lost): {}",
        tokens.restarted()
    );
    Ok(())
}

/// Prints what the chains and `/health` saw around an outage from `cut_at` to
/// `restored_at`.
fn report(samples: &[Sample], health: &[Sample], cut_at: Duration, restored_at: Duration) {
    println!(
        "\n## PostgreSQL away for {} s under load: {CHAINS} refresh chains, /health every {} ms",
        OUTAGE.as_secs(),
        HEALTH_EVERY.as_millis()
    );
    println!(
        "refreshes: {} before, {} during, {} after the outage",
        statuses(
            &samples
                .iter()
                .copied()
                .filter(|s| s.at < cut_at)
                .collect::<Vec<_>>()
        ),
        statuses(
            &samples
                .iter()
                .copied()
                .filter(|s| s.at >= cut_at && s.at < restored_at)
                .collect::<Vec<_>>()
        ),
        statuses(
            &samples
                .iter()
                .copied()
                .filter(|s| s.at >= restored_at)
                .collect::<Vec<_>>()
        ),
    );
    let refused = latencies(samples, 503, cut_at, restored_at);
    // The answers after the first second of the outage: the gate is closed by then.
    let settled = latencies(samples, 503, cut_at + Duration::from_secs(1), restored_at);
    println!(
        "time to the 503 while away: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} answers); after its first second: p99 {:.2} ms",
        chains::quantile_ms(&refused, 0.5),
        chains::quantile_ms(&refused, 0.99),
        chains::quantile_ms(&refused, 1.0),
        refused.len(),
        chains::quantile_ms(&settled, 0.99),
    );
    let other_5xx = samples
        .iter()
        .chain(health)
        .filter(|s| s.status >= 500 && s.status != 503)
        .count();
    let no_answer = samples
        .iter()
        .chain(health)
        .filter(|s| s.status == 0)
        .count();
    println!("5xx other than 503: {other_5xx}; requests with no answer at all: {no_answer}");
    let ms = |d: Option<Duration>| {
        d.map_or("never".to_owned(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1000.0)
        })
    };
    println!(
        "first 503 {} after the cut; first 200 {} after the database returned",
        ms(first_after(samples, 503, cut_at)),
        ms(first_after(samples, 200, restored_at)),
    );
    let health_away = latencies(health, 503, cut_at, restored_at);
    println!(
        "/health: 503 {} after the cut, 200 again {} after the database returned; p99 of its 503s {:.2} ms; {}",
        ms(first_after(health, 503, cut_at)),
        ms(first_after(health, 200, restored_at)),
        chains::quantile_ms(&health_away, 0.99),
        statuses(health),
    );
}
