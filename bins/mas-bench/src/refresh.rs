//! `mas-bench refresh`: compatibility refresh chains at c=8. Every request is a write
//! (the presented token spent, its access token expired, a new pair stored), so this is
//! the service's write path at its simplest, and the tables grow for the whole run: the
//! rate over the first and the last fifth show whether it stays flat.

use std::time::{Duration, Instant};

use crate::chains::{self, Sample};

/// Chains at once, as the reference figure was measured.
const CHAINS: usize = 8;

/// The reference MAS's figures for the same load on such a machine.
const MAS_RATE: f64 = 2100.0;
const MAS_P99_MS: f64 = 7.6;

/// Completed refreshes per second among `samples` that arrived in `[from, to)`.
fn rate(samples: &[Sample], from: Duration, to: Duration) -> f64 {
    let done = samples
        .iter()
        .filter(|s| s.status == 200 && s.at >= from && s.at < to)
        .count();
    #[allow(clippy::cast_precision_loss)]
    let done = done as f64;
    done / to.saturating_sub(from).as_secs_f64()
}

pub(crate) async fn refresh(
    options: &crate::Options,
    service: &crate::Service,
) -> anyhow::Result<()> {
    let (first, tokens) = chains::seed(&service.database, CHAINS, 64).await?;
    let address = service.address();
    // A second of warm-up, not measured: the pool opens its connections, the
    // statements get prepared.
    let warm_start = Instant::now();
    let (_, chain_tokens) = chains::run_all(
        address,
        first,
        &tokens,
        warm_start,
        warm_start + Duration::from_secs(1),
    )
    .await?;

    let pid = service.child.id();
    let ticks = crate::clock_ticks();
    let postgres = crate::postgres_processes(service).await;
    let bench_start = crate::process_cpu_ms(std::process::id(), ticks);
    let cpu_start = crate::cpu_times(pid, &postgres, ticks);
    let span = Duration::from_secs(u64::from(options.seconds));
    let start = Instant::now();
    let (samples, _) = chains::run_all(address, chain_tokens, &tokens, start, start + span).await?;
    let took = start.elapsed();
    let postgres = crate::postgres_processes(service).await;
    let cpu_end = crate::cpu_times(pid, &postgres, ticks);
    let bench_cpu = crate::process_cpu_ms(std::process::id(), ticks) - bench_start;

    let mut latencies: Vec<Duration> = samples
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.latency)
        .collect();
    latencies.sort();
    let failed = samples.iter().filter(|s| s.status != 200).count();
    let fifth = took / 5;
    let load = crate::Load {
        rps: rate(&samples, Duration::ZERO, took),
        requests: samples.len() as u64,
        p50_ms: chains::quantile_ms(&latencies, 0.5),
        p99_ms: chains::quantile_ms(&latencies, 0.99),
        errors: failed as u64,
    };
    println!(
        "\n## Compat refresh chains, c={CHAINS}, {} s (the bench's own HTTP/1.1 client)",
        options.seconds
    );
    crate::print_load("POST /_matrix/client/v3/refresh", &load);
    let (early, late) = (
        rate(&samples, Duration::ZERO, fifth),
        rate(&samples, took.saturating_sub(fifth), took),
    );
    println!(
        "rate over the first fifth {early:.0}/s, the last fifth {late:.0}/s (last/first {:.2})",
        late / early
    );
    let seconds: Vec<f64> = (0..took.as_secs())
        .map(|n| rate(&samples, Duration::from_secs(n), Duration::from_secs(n + 1)))
        .collect();
    println!(
        "each second: {}",
        seconds
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    #[allow(clippy::cast_precision_loss)]
    let refreshes = (latencies.len().max(1)) as f64;
    let server = (cpu_end.hashing + cpu_end.server - cpu_start.hashing - cpu_start.server)
        / refreshes
        * 1000.0;
    let postgres_us = cpu_end
        .postgres
        .iter()
        .map(|(pid, end)| end - cpu_start.postgres.get(pid).copied().unwrap_or(0.0))
        .sum::<f64>()
        / refreshes
        * 1000.0;
    let postgres_figure = if !service.database.starts_with("postgres") {
        "none (SQLite)".to_owned()
    } else if cpu_end.postgres.is_empty() {
        "not visible from here".to_owned()
    } else {
        format!("{postgres_us:.0} µs")
    };
    println!(
        "CPU per refresh: server {server:.0} µs, PostgreSQL {postgres_figure}; the bench's client {:.0} µs",
        bench_cpu / refreshes * 1000.0
    );
    println!(
        "reference MAS at c={CHAINS}: about {MAS_RATE:.0}/s, p99 {MAS_P99_MS} ms; ratio {:.2}   (target >= 2)",
        load.rps / MAS_RATE
    );
    if tokens.restarted() > 0 {
        println!(
            "{} chains started again from a spare token",
            tokens.restarted()
        );
    }
    Ok(())
}
