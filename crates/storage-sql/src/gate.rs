//! Failing fast while the database is away. Once a statement finds the database
//! unreachable, units of work and health checks answer `Unavailable` at once instead of
//! each waiting out the pool's acquire timeout; one background probe pings the database
//! until it answers, and reopens the gate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::DatabaseConnection;

/// How often the probe pings while the database is away.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How long one ping may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the database is known to be away, shared by the factory, its units of work
/// and its health check.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gate(Arc<State>);

#[derive(Debug, Default)]
struct State {
    away: AtomicBool,
}

impl Gate {
    /// Whether requests should be refused without trying the database.
    pub(crate) fn is_away(&self) -> bool {
        self.0.away.load(Ordering::Acquire)
    }

    /// Records that `db` could not be reached, and starts the one probe that reopens
    /// the gate once it answers. Outside a Tokio runtime nothing is recorded: no probe
    /// could reopen it.
    pub(crate) fn mark_away(&self, db: &DatabaseConnection) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.0.away.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("database unreachable: refusing requests that need it until it answers");
        let (gate, db) = (self.clone(), db.clone());
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                if matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, db.ping()).await,
                    Ok(Ok(()))
                ) {
                    gate.0.away.store(false, Ordering::Release);
                    tracing::info!("database reachable again");
                    return;
                }
            }
        });
    }
}
