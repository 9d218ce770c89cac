//! `syn2mas migrate`: Synapse's users, passwords, emails, SSO links, devices and tokens,
//! streamed out of its database and written here in batches through a [`BulkWriter`].
//! Everything is one transaction on our side: the caller commits, or rolls back for a
//! dry run or after an error.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mas_data_model::{CompatSession, LastActivity, Password, UpstreamOAuthLink, User, UserEmail};
use mas_storage::bulk::{BulkWriter, ImportedCompatAccessToken, ImportedCompatRefreshToken};
use mas_storage::{BoxFuture, StorageError};
use sqlx::FromRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use ulid::Ulid;

use crate::database::{SynapseDatabase, SynapseDatabaseError};

/// Rows written per batch: one `COPY` on PostgreSQL.
const BATCH: usize = 5000;

/// How a move goes.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Synapse's `server_name`.
    pub server_name: String,
    /// The `passwords.schemes` version of the bcrypt scheme that verifies Synapse's
    /// hashes; `None` when there is none (then no user may have a password).
    pub bcrypt_version: Option<u16>,
    /// Synapse's `auth_provider` names (`oidc-<idp_id>`) and the providers here that
    /// carry them as `synapse_idp_id`.
    pub providers: HashMap<String, Ulid>,
    /// Leave out users whose localpart cannot be held here, rather than refuse.
    pub skip_invalid_localparts: bool,
    /// The time deactivations and locks are dated (Synapse keeps none).
    pub now: DateTime<Utc>,
}

/// Told how far the move is, one table after another.
pub trait Progress {
    /// A table starts; about `total` rows will be read.
    fn start(&mut self, table: &'static str, total: u64);
    /// `rows` more rows were read (moved or left out).
    fn advance(&mut self, rows: u64);
    /// The table is done.
    fn finish(&mut self);
}

/// What happened to one kind of row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The kind, as the summary names it.
    pub what: &'static str,
    /// Rows written here.
    pub moved: u64,
    /// Rows read and left out, and why.
    pub skipped: Vec<(String, u64)>,
    /// How long the table took.
    pub elapsed: Duration,
}

impl Tally {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            ..Self::default()
        }
    }

    fn skip(&mut self, why: &str) {
        if let Some(entry) = self.skipped.iter_mut().find(|(w, _)| w == why) {
            entry.1 += 1;
        } else {
            self.skipped.push((why.to_owned(), 1));
        }
    }

    /// How many rows were left out, for every reason.
    #[must_use]
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().map(|(_, n)| n).sum()
    }
}

/// Why a move stopped. Nothing is committed after any of these.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Synapse's database could not be read.
    #[error(transparent)]
    Synapse(#[from] SynapseDatabaseError),
    /// This service's database refused a write.
    #[error("writing to this service's database: {0}")]
    Storage(#[from] StorageError),
    /// This service's database already holds users.
    #[error("this service's database already holds {0} users; a move needs an empty one")]
    NotEmpty(u64),
    /// Users whose localpart cannot be held here (some of them named).
    #[error(
        "{total} users have a localpart this service cannot hold (lowercase letters, digits and ._=-/+ only), for example {}; move the others with --skip-invalid-localparts",
        names.join(", ")
    )]
    InvalidLocalparts {
        /// Some of their user IDs.
        names: Vec<String>,
        /// How many there are.
        total: u64,
    },
    /// A user has a password hash and no bcrypt scheme is configured to verify it.
    #[error("{0} has a password, but passwords.schemes has no bcrypt scheme to verify it")]
    NoBcryptScheme(String),
}

/// The localpart of `user_id` when it is one of `server_name`'s users and can be held
/// here.
pub(crate) fn localpart<'a>(user_id: &'a str, server_name: &str) -> Option<&'a str> {
    let local = user_id
        .strip_prefix('@')?
        .strip_suffix(server_name)?
        .strip_suffix(':')?;
    mas_data_model::is_valid_localpart(local).then_some(local)
}

/// A moved user, as later tables need it.
#[derive(Debug, Clone, Copy)]
struct Moved {
    id: Ulid,
    admin: bool,
    /// Deactivated users keep no devices, tokens or addresses.
    active: bool,
}

/// What the passes learn and the later ones use.
#[derive(Default)]
struct State {
    /// Synapse user ID → the user here (only users who moved).
    users: HashMap<String, Moved>,
    /// Synapse user IDs deliberately left out (guests, application services', invalid).
    left_out: HashSet<String>,
    /// (user here, device ID) → compatibility session.
    sessions: HashMap<(Ulid, String), Ulid>,
    /// Synapse refresh token ID → (session, access token here) of the access token
    /// issued with it.
    refreshable: HashMap<i64, (Ulid, Ulid)>,
}

impl State {
    /// The moved user of `user_id`, deactivated or not, or why they did not move.
    fn moved(&self, user_id: &str) -> Result<Moved, &'static str> {
        match self.users.get(user_id) {
            Some(user) => Ok(*user),
            None if self.left_out.contains(user_id) => Err("user not moved"),
            None => Err("unknown user"),
        }
    }

    /// The moved, active user of `user_id`, or the reason a row of theirs stays behind.
    fn owner(&self, user_id: &str) -> Result<Moved, &'static str> {
        self.moved(user_id).and_then(|user| {
            if user.active {
                Ok(user)
            } else {
                Err("deactivated user")
            }
        })
    }
}

fn from_millis(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

fn new_id(at: DateTime<Utc>) -> Ulid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or_default();
    Ulid::from_parts(millis, rand_bits())
}

/// 80 random bits for a ULID, from the ULID crate's own generator.
fn rand_bits() -> u128 {
    Ulid::new().random()
}

/// What every table's pass works with.
struct Move<'a> {
    db: &'a SynapseDatabase,
    writer: &'a mut dyn BulkWriter,
    options: &'a MigrateOptions,
    progress: &'a mut dyn Progress,
}

/// A row type and the writer's method for it.
trait Row: Sized + Sync {
    fn write<'a>(
        writer: &'a mut dyn BulkWriter,
        rows: &'a [Self],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
}

macro_rules! rows {
    ($($row:ty => $method:ident),* $(,)?) => {
        $(
            impl Row for $row {
                fn write<'a>(
                    writer: &'a mut dyn BulkWriter,
                    rows: &'a [Self],
                ) -> BoxFuture<'a, Result<(), StorageError>> {
                    writer.$method(rows)
                }
            }
        )*
    };
}

rows! {
    User => users,
    Password => passwords,
    UserEmail => emails,
    UpstreamOAuthLink => links,
    CompatSession => compat_sessions,
    ImportedCompatAccessToken => compat_access_tokens,
    ImportedCompatRefreshToken => compat_refresh_tokens,
}

/// Rows of one kind waiting to be written.
struct Batch<T> {
    rows: Vec<T>,
}

impl<T: Row> Batch<T> {
    fn new() -> Self {
        Self {
            rows: Vec::with_capacity(BATCH),
        }
    }

    /// Adds a row; true when the batch is full and should be written.
    fn push(&mut self, row: T) -> bool {
        self.rows.push(row);
        self.rows.len() >= BATCH
    }

    /// Writes the rows waiting; how many there were.
    async fn flush(&mut self, writer: &mut dyn BulkWriter) -> Result<u64, MigrateError> {
        T::write(writer, &self.rows).await?;
        let written = self.rows.len() as u64;
        self.rows.clear();
        Ok(written)
    }
}

/// Moves Synapse's accounts into `writer`'s transaction. The caller commits (or rolls
/// back) afterwards; on an error nothing should be committed.
///
/// # Errors
/// [`MigrateError`]: the first thing that went wrong.
pub async fn migrate(
    db: &SynapseDatabase,
    writer: &mut dyn BulkWriter,
    options: &MigrateOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<Tally>, MigrateError> {
    let present = writer.count_users().await?;
    if present > 0 {
        return Err(MigrateError::NotEmpty(present));
    }
    let counts = db.counts().await?;
    let mut state = State::default();
    let mut tallies = Vec::new();
    let mut mv = Move {
        db,
        writer,
        options,
        progress,
    };
    let mv = &mut mv;
    mv.progress.start(
        "users",
        u64::try_from(counts.users + counts.guests + counts.appservice_users).unwrap_or_default(),
    );
    tallies.extend(users(mv, &mut state).await?);
    mv.progress.finish();
    mv.progress
        .start("emails", u64::try_from(counts.emails).unwrap_or_default());
    tallies.push(emails(mv, &state).await?);
    mv.progress.finish();
    mv.progress.start("upstream links", 0);
    tallies.push(links(mv, &state).await?);
    mv.progress.finish();
    mv.progress
        .start("devices", u64::try_from(counts.devices).unwrap_or_default());
    tallies.push(devices(mv, &mut state).await?);
    mv.progress.finish();
    mv.progress.start(
        "access tokens",
        u64::try_from(counts.access_tokens).unwrap_or_default(),
    );
    tallies.push(access_tokens(mv, &mut state).await?);
    mv.progress.finish();
    mv.progress.start("refresh tokens", 0);
    tallies.push(refresh_tokens(mv, &state).await?);
    mv.progress.finish();
    Ok(tallies)
}

/// Users and their password hashes.
async fn users(mv: &mut Move<'_>, state: &mut State) -> Result<[Tally; 2], MigrateError> {
    type Columns = (
        Option<String>,
        Option<String>,
        Option<i64>,
        i32,
        i32,
        Option<String>,
        i32,
        i32,
    );
    let (db, options) = (mv.db, mv.options);
    let (writer, progress) = (&mut *mv.writer, &mut *mv.progress);
    let started = Instant::now();
    let mut tally = Tally::new("users");
    let mut passwords = Tally::new("passwords");
    let mut invalid = Vec::new();
    let mut invalid_total = 0;
    let (mut batch, mut hashes) = (Batch::new(), Batch::new());
    let mut rows = db.stream::<Columns>(
        "SELECT name, password_hash, creation_ts, \
           CASE WHEN admin <> 0 THEN 1 ELSE 0 END, CASE WHEN is_guest <> 0 THEN 1 ELSE 0 END, \
           appservice_id, CASE WHEN deactivated <> 0 THEN 1 ELSE 0 END, \
           CASE WHEN locked THEN 1 ELSE 0 END \
         FROM users",
    );
    while let Some((name, hash, created, admin, guest, appservice, deactivated, locked)) =
        rows.try_next().await.map_err(SynapseDatabaseError::from)?
    {
        progress.advance(1);
        let Some(name) = name else {
            tally.skip("no user ID");
            continue;
        };
        let local = match moving(&name, guest != 0, appservice.is_some(), options) {
            Ok(local) => local,
            Err(why) => {
                if why == INVALID && !options.skip_invalid_localparts {
                    invalid_total += 1;
                    if invalid.len() < 20 {
                        invalid.push(name.clone());
                    }
                } else {
                    tally.skip(why);
                }
                state.left_out.insert(name);
                continue;
            }
        };
        let created_at = created
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .unwrap_or(options.now);
        let id = new_id(created_at);
        let deactivated = deactivated != 0;
        let user = User {
            id,
            username: local.to_owned(),
            created_at,
            locked_at: (locked != 0).then_some(options.now),
            deactivated_at: deactivated.then_some(options.now),
            can_request_admin: admin != 0,
        };
        if let Some(hash) = password(hash, &user, &name, options, &mut passwords)? {
            hashes.push(hash);
        }
        state.users.insert(
            name,
            Moved {
                id,
                admin: admin != 0,
                active: !deactivated,
            },
        );
        // A user has one password at most: written after the users, the hashes never
        // refer to a user still waiting.
        if batch.push(user) {
            tally.moved += batch.flush(writer).await?;
            passwords.moved += hashes.flush(writer).await?;
        }
    }
    drop(rows);
    if invalid_total > 0 {
        return Err(MigrateError::InvalidLocalparts {
            names: invalid,
            total: invalid_total,
        });
    }
    tally.moved += batch.flush(writer).await?;
    passwords.moved += hashes.flush(writer).await?;
    tally.elapsed = started.elapsed();
    passwords.elapsed = Duration::ZERO;
    Ok([tally, passwords])
}

/// The password hash of a moving user, if it moves: Synapse drops a deactivated user's,
/// but a hash left behind must not make a deactivated account usable again.
fn password(
    hash: Option<String>,
    user: &User,
    user_id: &str,
    options: &MigrateOptions,
    tally: &mut Tally,
) -> Result<Option<Password>, MigrateError> {
    let Some(hashed_password) = hash.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    if user.deactivated_at.is_some() {
        tally.skip("deactivated user");
        return Ok(None);
    }
    let version = options
        .bcrypt_version
        .ok_or_else(|| MigrateError::NoBcryptScheme(user_id.to_owned()))?;
    Ok(Some(Password {
        id: new_id(user.created_at),
        user_id: user.id,
        hashed_password,
        version,
        upgraded_from_id: None,
        created_at: user.created_at,
    }))
}

/// Why a user is left out.
const INVALID: &str = "localpart not allowed here";

/// The localpart of a user who moves, or why they do not.
fn moving<'a>(
    name: &'a str,
    guest: bool,
    appservice: bool,
    options: &MigrateOptions,
) -> Result<&'a str, &'static str> {
    if guest {
        return Err("guest");
    }
    if appservice {
        return Err("application service's user");
    }
    localpart(name, &options.server_name).ok_or(INVALID)
}

/// One pass over a query of Synapse's: each row becomes a row here, or the reason it
/// stays behind.
async fn pass<C, T, F>(
    mv: &mut Move<'_>,
    what: &'static str,
    sql: &'static str,
    mut each: F,
) -> Result<Tally, MigrateError>
where
    C: Send + Unpin + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow>,
    T: Row,
    F: FnMut(C) -> Result<T, &'static str>,
{
    let (db, writer, progress) = (mv.db, &mut *mv.writer, &mut *mv.progress);
    let started = Instant::now();
    let mut tally = Tally::new(what);
    let mut batch = Batch::new();
    let mut rows = db.stream::<C>(sql);
    while let Some(columns) = rows.try_next().await.map_err(SynapseDatabaseError::from)? {
        progress.advance(1);
        match each(columns) {
            Ok(row) => {
                if batch.push(row) {
                    tally.moved += batch.flush(writer).await?;
                }
            }
            Err(why) => tally.skip(why),
        }
    }
    tally.moved += batch.flush(writer).await?;
    tally.elapsed = started.elapsed();
    Ok(tally)
}

/// Email addresses (Synapse keeps only confirmed ones); other media stay behind.
async fn emails(mv: &mut Move<'_>, state: &State) -> Result<Tally, MigrateError> {
    let options = mv.options;
    let mut seen = HashSet::new();
    let sql = "SELECT user_id, address, validated_at FROM user_threepids WHERE medium = 'email'";
    pass(
        mv,
        "email addresses",
        sql,
        |(user_id, address, validated_at): (String, String, Option<i64>)| {
            let user = state.owner(&user_id)?;
            // Addresses are unique here whatever their case; Synapse's older rows are not.
            if !seen.insert(address.to_lowercase()) {
                return Err("address already moved for another user (case differs)");
            }
            let created_at = from_millis(validated_at).unwrap_or(options.now);
            Ok(UserEmail {
                id: new_id(created_at),
                user_id: user.id,
                email: address,
                created_at,
            })
        },
    )
    .await
}

/// SSO links (`user_external_ids`), to the provider carrying the `synapse_idp_id`.
async fn links(mv: &mut Move<'_>, state: &State) -> Result<Tally, MigrateError> {
    let options = mv.options;
    let sql = "SELECT user_id, auth_provider, external_id FROM user_external_ids";
    pass(
        mv,
        "upstream links",
        sql,
        |(user_id, provider, subject): (String, String, String)| {
            // Deactivated users keep their links, so a sign-in through the provider finds
            // the account and is refused, rather than making a new one.
            let user = state.moved(&user_id)?;
            let provider_id = options
                .providers
                .get(&provider)
                .ok_or("no provider here with that synapse_idp_id")?;
            Ok(UpstreamOAuthLink {
                id: new_id(options.now),
                provider_id: *provider_id,
                user_id: Some(user.id),
                subject,
                human_account_name: None,
                created_at: options.now,
            })
        },
    )
    .await
}

/// Devices, as compatibility sessions. A device starts when its first token was last
/// checked (Synapse keeps no creation time), else when it was last seen.
async fn devices(mv: &mut Move<'_>, state: &mut State) -> Result<Tally, MigrateError> {
    type Columns = (
        String,
        String,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let options = mv.options;
    // Hidden devices are cross-signing keys, not devices anyone signs in with.
    let sql = "SELECT d.user_id, d.device_id, d.display_name, d.last_seen, d.ip, d.user_agent, t.first \
         FROM devices d LEFT JOIN ( \
           SELECT user_id, device_id, MIN(last_validated) AS first FROM access_tokens \
           WHERE device_id IS NOT NULL GROUP BY user_id, device_id \
         ) t ON t.user_id = d.user_id AND t.device_id = d.device_id \
         WHERE CASE WHEN d.hidden THEN 1 ELSE 0 END = 0";
    pass(mv, "devices", sql, |columns: Columns| {
        let (user_id, device_id, name, last_seen, ip, user_agent, first) = columns;
        let user = state.owner(&user_id)?;
        let last_active_at = from_millis(last_seen);
        let created_at = from_millis(first).or(last_active_at).unwrap_or(options.now);
        let id = new_id(created_at);
        state.sessions.insert((user.id, device_id.clone()), id);
        Ok(CompatSession {
            human_name: name,
            user_agent,
            last_activity: LastActivity {
                at: last_active_at,
                // Synapse writes `-` when it had no address.
                ip: ip.filter(|ip| ip != "-"),
            },
            ..session(id, user, Some(device_id), created_at)
        })
    })
    .await
}

/// Refresh tokens still usable (the last of their chain, not expired), each with the
/// access token issued with it.
async fn refresh_tokens(mv: &mut Move<'_>, state: &State) -> Result<Tally, MigrateError> {
    let options = mv.options;
    let sql = "SELECT id, token, next_token_id, expiry_ts FROM refresh_tokens";
    pass(
        mv,
        "refresh tokens",
        sql,
        |(id, token, next, expiry): (i64, String, Option<i64>, Option<i64>)| {
            // The newer token of the chain moves; this one Synapse took already.
            if next.is_some() {
                return Err("already used");
            }
            if from_millis(expiry).is_some_and(|at| at <= options.now) {
                return Err("expired");
            }
            let (session_id, access_token_id) = state
                .refreshable
                .get(&id)
                .copied()
                .ok_or("its access token did not move")?;
            Ok(ImportedCompatRefreshToken {
                id: new_id(options.now),
                session_id,
                access_token_id,
                token,
                created_at: options.now,
            })
        },
    )
    .await
}

/// An open compatibility session of `user`, started at `created_at`, with nothing seen
/// yet.
fn session(
    id: Ulid,
    user: Moved,
    device_id: Option<String>,
    created_at: DateTime<Utc>,
) -> CompatSession {
    CompatSession {
        id,
        user_id: user.id,
        device_id,
        browser_session_id: None,
        created_at,
        finished_at: None,
        is_synapse_admin: user.admin,
        user_agent: None,
        last_activity: LastActivity::default(),
        human_name: None,
    }
}

/// Access tokens (not the ones an admin used to act as someone): each to its device's
/// session, or to a session of its own when it has no device.
async fn access_tokens(mv: &mut Move<'_>, state: &mut State) -> Result<Tally, MigrateError> {
    type Columns = (
        String,
        Option<String>,
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let (db, options) = (mv.db, mv.options);
    let (writer, progress) = (&mut *mv.writer, &mut *mv.progress);
    let started = Instant::now();
    let mut tally = Tally::new("access tokens");
    let mut sessions = Batch::new();
    let mut batch = Batch::new();
    let mut rows = db.stream::<Columns>(
        "SELECT user_id, device_id, token, valid_until_ms, last_validated, refresh_token_id \
         FROM access_tokens WHERE puppets_user_id IS NULL",
    );
    while let Some((user_id, device_id, token, valid_until, last_validated, refresh_id)) =
        rows.try_next().await.map_err(SynapseDatabaseError::from)?
    {
        progress.advance(1);
        let user = match state.owner(&user_id) {
            Ok(user) => user,
            Err(why) => {
                tally.skip(why);
                continue;
            }
        };
        let expires_at = from_millis(valid_until);
        // A refreshable token lives minutes: with Synapse stopped for the move, most have
        // run out, and still the refresh token issued with it must find it here.
        if refresh_id.is_none() && expires_at.is_some_and(|at| at <= options.now) {
            tally.skip("expired");
            continue;
        }
        let created_at = from_millis(last_validated).unwrap_or(options.now);
        let known = device_id
            .as_ref()
            .and_then(|d| state.sessions.get(&(user.id, d.clone())).copied());
        let session_id = if let Some(id) = known {
            id
        } else {
            let id = new_id(created_at);
            if let Some(device) = &device_id {
                state.sessions.insert((user.id, device.clone()), id);
            }
            sessions.push(session(id, user, device_id, created_at));
            id
        };
        let id = new_id(created_at);
        if let Some(refresh_id) = refresh_id {
            state.refreshable.insert(refresh_id, (session_id, id));
        }
        let row = ImportedCompatAccessToken {
            id,
            session_id,
            token,
            created_at,
            expires_at,
        };
        // Sessions of their own are fewer than the tokens: written first, none waits
        // behind a token of its own.
        if batch.push(row) {
            sessions.flush(writer).await?;
            tally.moved += batch.flush(writer).await?;
        }
    }
    sessions.flush(writer).await?;
    tally.moved += batch.flush(writer).await?;
    tally.elapsed = started.elapsed();
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::localpart;

    #[test]
    fn localparts_are_taken_from_this_servers_user_ids_only() {
        assert_eq!(
            localpart("@alice:example.com", "example.com"),
            Some("alice")
        );
        assert_eq!(
            localpart("@a.b=c/d+e_f-1:example.com", "example.com"),
            Some("a.b=c/d+e_f-1")
        );
        assert_eq!(localpart("@Alice:example.com", "example.com"), None);
        assert_eq!(localpart("@alice:other.example", "example.com"), None);
        assert_eq!(localpart("@alice:sub.example.com", "example.com"), None);
        assert_eq!(localpart("alice:example.com", "example.com"), None);
        assert_eq!(localpart("@:example.com", "example.com"), None);
    }
}
