//! `mas-bench web-login`: the sign-in form (`POST /login`) at c=16, against the argon2id
//! ceiling like the compatibility login; and `mas-bench mixed`: compatibility refresh
//! chains alone, then beside that load, to show whether sign-ins hold up other writes
//! (a sign-in that hashed inside a transaction held a connection, and on SQLite the
//! write lock, for the whole hash).

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::chains;

/// Refresh chains of the mixed run.
const CHAINS: usize = 8;

/// The browser's CSRF cookie and the token the form carries, from one `GET /login`.
async fn csrf(base: &str) -> anyhow::Result<(String, String)> {
    let response = reqwest::Client::new()
        .get(format!("{base}login"))
        .send()
        .await?
        .error_for_status()?;
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("mas-csrf="))
        .and_then(|v| v.split(';').next())
        .context("GET /login set no CSRF cookie")?
        .to_owned();
    let page = response.text().await?;
    let marker = r#"name="csrf" value=""#;
    let start = page
        .find(marker)
        .context("the sign-in form has no CSRF field")?
        + marker.len();
    let end = page[start..]
        .find('"')
        .context("the CSRF field is cut short")?;
    Ok((cookie, page[start..start + end].to_owned()))
}

/// A wrk script posting the sign-in form for each seeded user in turn.
async fn script(service: &crate::Service) -> anyhow::Result<std::path::PathBuf> {
    let (cookie, csrf) = csrf(&service.base).await?;
    let users: Vec<String> = (0..crate::USERS).map(|i| format!("\"user{i}\"")).collect();
    let password: String =
        url::form_urlencoded::byte_serialize(crate::PASSWORD.as_bytes()).collect();
    crate::write_script(
        service.dir.path(),
        "web-login.lua",
        &format!(
            "local users = {{{}}}
local i = 0
wrk.method = \"POST\"
wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"
wrk.headers[\"Cookie\"] = \"{cookie}\"
request = function()
  i = i % #users + 1
  return wrk.format(nil, \"/login\", nil, \"csrf={csrf}&next=%2F&username=\" .. users[i] .. \"&password={password}\")
end
",
            users.join(",")
        ),
    )
}

pub(crate) async fn web_login(
    options: &crate::Options,
    service: &crate::Service,
) -> anyhow::Result<()> {
    let script = script(service).await?;
    println!("\n## Web sign-in (the form), c=16, {} s", options.seconds);
    crate::login_load(options, service, "POST /login", &script, 0.85).await
}

pub(crate) async fn mixed(
    options: &crate::Options,
    service: &crate::Service,
) -> anyhow::Result<()> {
    let script = script(service).await?;
    let (first, tokens) = chains::seed(&service.database, CHAINS, 64).await?;
    let address = service.address();
    let span = Duration::from_secs(u64::from(options.seconds));
    let warm = Instant::now();
    let (_, chain_tokens) =
        chains::run_all(address, first, &tokens, warm, warm + Duration::from_secs(1)).await?;

    let p99 = |samples: &[chains::Sample]| {
        let mut latencies: Vec<Duration> = samples
            .iter()
            .filter(|s| s.status == 200)
            .map(|s| s.latency)
            .collect();
        latencies.sort();
        let failed = samples.iter().filter(|s| s.status != 200).count();
        (
            latencies.len(),
            failed,
            chains::quantile_ms(&latencies, 0.5),
            chains::quantile_ms(&latencies, 0.99),
        )
    };
    let start = Instant::now();
    let (alone, chain_tokens) =
        chains::run_all(address, chain_tokens, &tokens, start, start + span).await?;
    let (alone_n, alone_failed, alone_p50, alone_p99) = p99(&alone);

    let base = service.base.clone();
    let seconds = options.seconds;
    let logins = tokio::task::spawn_blocking(move || crate::wrk(&base, 16, seconds, &script));
    // wrk's threads connect first; the chains start with the load.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let (mixed, _) = chains::run_all(
        address,
        chain_tokens,
        &tokens,
        start,
        start + span.saturating_sub(Duration::from_millis(400)),
    )
    .await?;
    let logins = logins.await??;
    let (mixed_n, mixed_failed, mixed_p50, mixed_p99) = p99(&mixed);

    println!(
        "\n## Mixed: compat refresh chains (c={CHAINS}) alone, then beside web sign-ins (c=16), {} s each",
        options.seconds
    );
    println!(
        "refresh alone:            {alone_n} done, {alone_failed} failed, p50 {alone_p50:.2} ms, p99 {alone_p99:.2} ms"
    );
    println!(
        "refresh beside sign-ins:  {mixed_n} done, {mixed_failed} failed, p50 {mixed_p50:.2} ms, p99 {mixed_p99:.2} ms"
    );
    crate::print_load("POST /login (meanwhile)", &logins);
    println!(
        "refresh p99 grew by {:.2} ms   (target <= 5 ms)",
        mixed_p99 - alone_p99
    );
    Ok(())
}
