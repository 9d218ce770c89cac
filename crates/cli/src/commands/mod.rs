//! Subcommands other than `server`.

pub(crate) mod config;
pub(crate) mod database;
pub(crate) mod doctor;
pub(crate) mod manage;
pub(crate) mod personal;
pub(crate) mod syn2mas;
pub(crate) mod users;

/// `--expires-in SECONDS` as a lifetime: 1 second to 10 years, `None` for never.
pub(crate) fn expires_in(seconds: Option<u64>) -> anyhow::Result<Option<chrono::Duration>> {
    match seconds {
        None => Ok(None),
        Some(seconds @ 1..=315_360_000) => Ok(Some(chrono::Duration::seconds(
            i64::try_from(seconds).map_err(|_| anyhow::anyhow!("--expires-in: too large"))?,
        ))),
        Some(_) => anyhow::bail!("--expires-in: between 1 second and 10 years"),
    }
}
