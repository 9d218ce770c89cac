//! What lets a cache of token answers stay correct: a record of which sessions, users and
//! clients lost their tokens, and when.
//!
//! A reader takes a [`Ticket`] *before* it reads the database, and may keep what it read
//! for as long as [`Revocations::is_current`] says so. The storage implementation calls
//! [`Revocations::record`] after a unit of work that ended a session, revoked a token,
//! or locked or deactivated a user has committed, and also for such commits announced by
//! other processes. Anything read before that record is stale from then on; anything
//! read after it saw the committed change. [`Revocations::forget_all`] covers the case
//! where announcements may have been missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ulid::Ulid;

/// How long a cached answer may be kept at most, whatever happens. It bounds the harm of
/// a change nobody announced (an administrator editing rows by hand), and it is how long
/// the record of a revoked key must be kept.
pub const MAX_AGE: Duration = Duration::from_mins(1);

/// Records kept before old ones (older than [`MAX_AGE`]) are first swept; after a sweep
/// the next one waits until the record has doubled.
const SWEEP_ABOVE: usize = 4096;

/// When a reader started reading: what a cached answer is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    at: Instant,
}

/// The record of revocations, shared by the storage that writes it and the caches that
/// read it. Cloning shares the record.
#[derive(Debug, Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
    max_age: Duration,
}

#[derive(Debug)]
struct Inner {
    /// Moves on every record; tickets carry the value they saw.
    epoch: AtomicU64,
    /// Tickets older than this are stale, whatever their keys.
    floor: AtomicU64,
    /// The epoch of the latest record: a ticket at least as new needs no look at the
    /// keys, which keeps the common case free of the lock.
    latest: AtomicU64,
    /// Whether announcements from other processes are being heard. While they are not,
    /// nothing read may be kept.
    live: AtomicBool,
    /// Each revoked key, with the epoch of its latest revocation and when it happened.
    revoked: Mutex<Record>,
}

#[derive(Debug)]
struct Record {
    keys: HashMap<Ulid, (u64, Instant)>,
    /// The size at which old keys are swept next.
    sweep_at: usize,
}

impl Revocations {
    /// An empty record. `live` says whether every change is already heard (one process
    /// on its own database); otherwise caching starts when [`Self::set_live`] is called.
    #[must_use]
    pub fn new(live: bool) -> Self {
        Self::with_max_age(live, MAX_AGE)
    }

    /// As [`Self::new`], keeping answers at most `max_age` (for tests).
    #[must_use]
    pub fn with_max_age(live: bool, max_age: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                epoch: AtomicU64::new(1),
                floor: AtomicU64::new(0),
                latest: AtomicU64::new(0),
                live: AtomicBool::new(live),
                revoked: Mutex::new(Record {
                    keys: HashMap::new(),
                    sweep_at: SWEEP_ABOVE,
                }),
            }),
            max_age,
        }
    }

    /// A ticket for a read about to start.
    #[must_use]
    pub fn ticket(&self) -> Ticket {
        // The time first: a ticket must not look younger than the epoch it carries, or a
        // record it depends on could be swept while it still counts.
        let at = Instant::now();
        Ticket {
            epoch: self.inner.epoch.load(Ordering::SeqCst),
            at,
        }
    }

    /// Whether an answer read under `ticket`, which depends on `keys`, still holds.
    #[must_use]
    pub fn is_current(&self, ticket: &Ticket, keys: &[Ulid]) -> bool {
        if !self.inner.live.load(Ordering::SeqCst)
            || ticket.epoch < self.inner.floor.load(Ordering::SeqCst)
            || ticket.at.elapsed() >= self.max_age
        {
            return false;
        }
        if self.inner.latest.load(Ordering::SeqCst) <= ticket.epoch {
            return true;
        }
        let revoked = self.revoked();
        keys.iter().all(|key| {
            revoked
                .keys
                .get(key)
                .is_none_or(|(epoch, _)| *epoch <= ticket.epoch)
        })
    }

    /// Marks everything read before now about `keys` as stale. Call it after the change
    /// committed (or was announced).
    pub fn record(&self, keys: &[Ulid]) {
        if keys.is_empty() {
            return;
        }
        // The epoch moves under the lock, so a reader checking at the same time sees the
        // new epoch and the key together; the time is read after the epoch moved, so the
        // record is never older than a ticket that predates it.
        let mut revoked = self.revoked();
        let epoch = self.inner.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let now = Instant::now();
        for key in keys {
            revoked.keys.insert(*key, (epoch, now));
        }
        self.inner.latest.store(epoch, Ordering::SeqCst);
        if revoked.keys.len() > revoked.sweep_at {
            // A ticket older than `max_age` is stale anyway, so older records can go.
            let max_age = self.max_age;
            revoked
                .keys
                .retain(|_, (_, at)| now.duration_since(*at) < max_age);
            revoked.sweep_at = SWEEP_ABOVE.max(revoked.keys.len() * 2);
        }
    }

    /// Marks everything read before now as stale, for when announcements may have been
    /// missed.
    pub fn forget_all(&self) {
        let _guard = self.revoked();
        let epoch = self.inner.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.floor.store(epoch, Ordering::SeqCst);
    }

    /// Says whether announcements are being heard. Going live forgets everything read
    /// before, since what was announced in between is unknown.
    pub fn set_live(&self, live: bool) {
        if live {
            self.forget_all();
        }
        self.inner.live.store(live, Ordering::SeqCst);
    }

    /// Whether answers may be kept right now.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::SeqCst)
    }

    fn revoked(&self) -> std::sync::MutexGuard<'_, Record> {
        // The map holds no invariant a panicking writer could break halfway.
        self.inner
            .revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_after_the_ticket_makes_it_stale_for_that_key_only() {
        let revocations = Revocations::new(true);
        let (session, other) = (Ulid::new(), Ulid::new());
        let ticket = revocations.ticket();
        assert!(revocations.is_current(&ticket, &[session, other]));
        revocations.record(&[session]);
        assert!(!revocations.is_current(&ticket, &[session]));
        assert!(!revocations.is_current(&ticket, &[other, session]));
        assert!(revocations.is_current(&ticket, &[other]));
        // A read that starts after the record saw the committed change.
        let later = revocations.ticket();
        assert!(revocations.is_current(&later, &[session]));
    }

    #[test]
    fn forget_all_makes_every_earlier_ticket_stale() {
        let revocations = Revocations::new(true);
        let ticket = revocations.ticket();
        revocations.forget_all();
        assert!(!revocations.is_current(&ticket, &[]));
        assert!(revocations.is_current(&revocations.ticket(), &[]));
    }

    #[test]
    fn nothing_is_current_until_live_and_going_live_forgets() {
        let revocations = Revocations::new(false);
        let before = revocations.ticket();
        assert!(!revocations.is_current(&before, &[]));
        revocations.set_live(true);
        assert!(!revocations.is_current(&before, &[]));
        assert!(revocations.is_current(&revocations.ticket(), &[]));
        revocations.set_live(false);
        assert!(!revocations.is_current(&revocations.ticket(), &[]));
    }

    #[test]
    fn tickets_expire_and_old_records_are_swept() {
        let revocations = Revocations::with_max_age(true, Duration::from_millis(20));
        let ticket = revocations.ticket();
        let first = Ulid::new();
        revocations.record(&[first]);
        std::thread::sleep(Duration::from_millis(30));
        assert!(!revocations.is_current(&ticket, &[]));
        let keys: Vec<Ulid> = (0..=SWEEP_ABOVE).map(|_| Ulid::new()).collect();
        revocations.record(&keys);
        let revoked = revocations.revoked();
        assert!(
            !revoked.keys.contains_key(&first),
            "a record older than max_age is swept"
        );
        assert_eq!(revoked.keys.len(), keys.len());
    }
}
