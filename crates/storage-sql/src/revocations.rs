//! Telling every process about revocations, so each can drop the introspection answers it
//! cached: `NOTIFY` on PostgreSQL (delivered at commit to every listening replica), a
//! small log table on SQLite (read every [`SQLITE_POLL`] by the server, written by
//! `mas-cli` commands as well as by the server itself).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mas_storage::Revocations;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use ulid::Ulid;

/// The PostgreSQL notification channel revocations are announced on.
pub(crate) const CHANNEL: &str = "mas_revocations";

/// How often a server on SQLite reads the log for changes made by other processes.
pub const SQLITE_POLL: Duration = Duration::from_millis(50);

/// Rows kept in the SQLite log; a reader that falls further behind forgets everything.
const LOG_ROWS: i64 = 1000;

/// More keys than this in one unit of work are announced as "everything".
const MAX_KEYS: usize = 200;

/// How long to wait before listening again after the connection was lost.
const RETRY: Duration = Duration::from_secs(1);

/// Silence on the channel after which the listener checks it still hears.
const PING_EVERY: Duration = Duration::from_secs(30);

/// How long a ping may take to come back before the connection counts as lost.
const PING_DEADLINE: Duration = Duration::from_secs(5);

/// The payload of a ping; every process ignores it.
const PING: &str = "ping";

/// What one unit of work revoked, announced when it commits.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    keys: Vec<Ulid>,
    all: bool,
}

/// The revocations of one unit of work, shared by the repositories it hands out.
#[derive(Debug, Default)]
pub(crate) struct PendingRevocations(Mutex<Pending>);

impl PendingRevocations {
    /// Adds `revoked` to what the unit of work announces when it commits.
    pub(crate) fn add(&self, revoked: Pending) {
        let mut pending = self.lock();
        pending.keys.extend(revoked.keys);
        pending.all |= revoked.all;
    }

    /// Takes what was noted; `None` when nothing was.
    pub(crate) fn take(&self) -> Option<Pending> {
        let pending = std::mem::take(&mut *self.lock());
        (pending.all || !pending.keys.is_empty()).then_some(pending)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pending {
    /// Tokens depending on `keys` (session, user or client ids) lost validity.
    pub(crate) fn of(keys: Vec<Ulid>) -> Self {
        Self { keys, all: false }
    }

    /// A revocation too broad to name by keys.
    pub(crate) fn everything() -> Self {
        Self {
            keys: Vec::new(),
            all: true,
        }
    }

    /// Applies this to the local record.
    pub(crate) fn apply(&self, revocations: &Revocations) {
        if self.all || self.keys.len() > MAX_KEYS {
            revocations.forget_all();
        } else {
            revocations.record(&self.keys);
        }
    }

    /// The announcement: `*` or the keys separated by commas.
    fn payload(&self) -> String {
        if self.all || self.keys.len() > MAX_KEYS {
            return "*".to_owned();
        }
        let mut out = String::with_capacity(self.keys.len() * 27);
        for (i, key) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&key.to_string());
        }
        out
    }

    /// Announces this inside the unit of work's transaction, so other processes hear of
    /// it exactly when (and if) it commits.
    pub(crate) async fn announce<C: ConnectionTrait>(&self, conn: &C) -> Result<(), DbErr> {
        let payload = self.payload();
        match conn.get_database_backend() {
            DbBackend::Postgres => {
                conn.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_notify($1, $2)",
                    [CHANNEL.into(), payload.into()],
                ))
                .await?;
            }
            backend => {
                conn.execute_raw(Statement::from_sql_and_values(
                    backend,
                    "INSERT INTO revocation_log (keys) VALUES (?)",
                    [payload.into()],
                ))
                .await?;
                conn.execute_raw(Statement::from_sql_and_values(
                    backend,
                    "DELETE FROM revocation_log WHERE id <= (SELECT MAX(id) FROM revocation_log) - ?",
                    [LOG_ROWS.into()],
                ))
                .await?;
            }
        }
        Ok(())
    }
}

/// Applies one announcement (see [`Pending::payload`]) to `revocations`. Anything that
/// does not read as a list of ids counts as "everything".
fn apply_payload(payload: &str, revocations: &Revocations) {
    let keys: Result<Vec<Ulid>, _> = payload.split(',').map(Ulid::from_string).collect();
    match keys {
        Ok(keys) => revocations.record(&keys),
        Err(_) => revocations.forget_all(),
    }
}

/// Hears revocations announced by every process on `db` and applies them to
/// `revocations`, which is live only while they are being heard. Runs until dropped.
pub async fn follow(db: DatabaseConnection, revocations: Revocations) {
    if db.get_database_backend() == DbBackend::Postgres {
        follow_postgres(&db, &revocations).await;
    } else {
        follow_log(&db, &revocations).await;
    }
}

async fn follow_postgres(db: &DatabaseConnection, revocations: &Revocations) {
    loop {
        match crate::waker::listen(db, CHANNEL).await {
            Ok(mut listener) => {
                // Whatever was announced before this point is unknown: forget it all.
                revocations.set_live(true);
                hear(db, &mut listener, revocations).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for revocations; caching paused");
            }
        }
        revocations.set_live(false);
        tokio::time::sleep(RETRY).await;
    }
}

/// Applies what `listener` hears until it stops hearing. A connection can die without an
/// error (a firewall dropping an idle one): after [`PING_EVERY`] of silence this process
/// announces a ping itself, and if nothing arrives within [`PING_DEADLINE`] the
/// connection counts as lost.
async fn hear(db: &DatabaseConnection, listener: &mut PgListener, revocations: &Revocations) {
    let mut pinged = false;
    loop {
        let wait = if pinged { PING_DEADLINE } else { PING_EVERY };
        match tokio::time::timeout(wait, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                pinged = false;
                if notification.payload() != PING {
                    apply_payload(notification.payload(), revocations);
                }
            }
            Ok(Ok(None)) => {
                tracing::warn!("revocation announcements lost; caching paused");
                return;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "revocation announcements lost; caching paused");
                return;
            }
            Err(_) if pinged => {
                tracing::warn!("no answer to a revocation ping; caching paused");
                return;
            }
            Err(_) => {
                let ping = db
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pg_notify($1, $2)",
                        [CHANNEL.into(), PING.into()],
                    ))
                    .await;
                if let Err(error) = ping {
                    tracing::warn!(%error, "cannot ping the revocation channel; caching paused");
                    return;
                }
                pinged = true;
            }
        }
    }
}

async fn follow_log(db: &DatabaseConnection, revocations: &Revocations) {
    let backend = db.get_database_backend();
    let mut last: Option<i64> = None;
    loop {
        let result = match last {
            None => db
                .query_one_raw(Statement::from_string(
                    backend,
                    "SELECT COALESCE(MAX(id), 0) AS id FROM revocation_log",
                ))
                .await
                .and_then(|row| row.map(|r| r.try_get::<i64>("", "id")).transpose())
                .map(|id| {
                    last = Some(id.unwrap_or(0));
                    revocations.set_live(true);
                }),
            Some(seen) => read_log(db, seen, revocations).await.map(|newest| {
                last = Some(newest);
            }),
        };
        if let Err(error) = result {
            if revocations.is_live() {
                tracing::warn!(%error, "cannot read the revocation log; caching paused");
            }
            revocations.set_live(false);
            last = None;
        }
        tokio::time::sleep(SQLITE_POLL).await;
    }
}

/// Applies the log rows after `seen`; returns the newest id read.
async fn read_log(
    db: &DatabaseConnection,
    seen: i64,
    revocations: &Revocations,
) -> Result<i64, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT id, keys FROM revocation_log WHERE id > ? ORDER BY id",
            [seen.into()],
        ))
        .await?;
    let mut newest = seen;
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        let keys: String = row.try_get("", "keys")?;
        if id != newest + 1 {
            // Rows were trimmed before this reader saw them.
            revocations.forget_all();
        }
        apply_payload(&keys, revocations);
        newest = id;
    }
    Ok(newest)
}
