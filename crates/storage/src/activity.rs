//! Last activity of sessions, kept in memory and written in batches: a login, a refresh
//! or an introspection notes when (and from where) a session was used without adding a
//! database write to the request; a task writes what was noted every few seconds.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ulid::Ulid;

/// Which table a session lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionKind {
    /// A browser session of the pages.
    Browser,
    /// An OAuth 2.0 session.
    OAuth2,
    /// A compatibility session.
    Compat,
    /// A personal session.
    Personal,
}

/// One session's last activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Which table.
    pub kind: SessionKind,
    /// The session.
    pub id: Ulid,
    /// When it was last used.
    pub at: DateTime<Utc>,
    /// From which address, when known; an unknown one keeps the address stored.
    pub ip: Option<String>,
}

/// What is noted of one session until the next write: when, and from where.
type Noted = HashMap<(SessionKind, Ulid), (DateTime<Utc>, Option<String>)>;

/// Activity noted since the last write, one entry per session (the newest wins).
#[derive(Debug, Default)]
pub struct ActivityTracker {
    pending: Mutex<Noted>,
}

/// Sessions noted at most between two writes; past it, notes of new sessions are dropped
/// until the next write (a flood of sessions must not grow memory without bound).
pub const MAX_PENDING: usize = 64 * 1024;

impl ActivityTracker {
    /// A tracker with nothing noted.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that a session was used at `at`, from `ip` when known.
    pub fn record(&self, kind: SessionKind, id: Ulid, at: DateTime<Utc>, ip: Option<String>) {
        // A poisoned lock only means another note panicked: the map is still sound.
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() >= MAX_PENDING && !pending.contains_key(&(kind, id)) {
            return;
        }
        let entry = pending.entry((kind, id)).or_insert((at, None));
        if at >= entry.0 {
            entry.0 = at;
        }
        if ip.is_some() {
            entry.1 = ip;
        }
    }

    /// Everything noted since the last call, oldest session first.
    #[must_use]
    pub fn take(&self) -> Vec<Activity> {
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut batch: Vec<Activity> = pending
            .into_iter()
            .map(|((kind, id), (at, ip))| Activity { kind, id, at, ip })
            .collect();
        batch.sort_by_key(|a| (a.kind, a.id));
        batch
    }

    /// Puts back a batch that could not be written, unless newer notes replaced it.
    pub fn restore(&self, batch: Vec<Activity>) {
        for activity in batch {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pending.len() >= MAX_PENDING {
                return;
            }
            let entry = pending
                .entry((activity.kind, activity.id))
                .or_insert((activity.at, None));
            if entry.1.is_none() {
                entry.1 = activity.ip;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_note_of_a_session_wins_and_an_unknown_address_keeps_the_known_one() {
        let tracker = ActivityTracker::new();
        let id = Ulid::new();
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let t1 = DateTime::from_timestamp(2_000, 0).unwrap();
        tracker.record(SessionKind::Compat, id, t1, Some("10.0.0.1".to_owned()));
        tracker.record(SessionKind::Compat, id, t0, None);
        tracker.record(SessionKind::OAuth2, id, t0, None);
        let batch = tracker.take();
        assert_eq!(
            batch,
            [
                Activity {
                    kind: SessionKind::OAuth2,
                    id,
                    at: t0,
                    ip: None
                },
                Activity {
                    kind: SessionKind::Compat,
                    id,
                    at: t1,
                    ip: Some("10.0.0.1".to_owned())
                },
            ]
        );
        assert!(tracker.take().is_empty(), "taken once");

        tracker.record(SessionKind::Compat, id, t1, None);
        tracker.restore(batch);
        let again = tracker.take();
        assert_eq!(again.len(), 2);
        assert_eq!(again[1].ip.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn notes_are_bounded_between_writes() {
        let tracker = ActivityTracker::new();
        let at = DateTime::from_timestamp(1_000, 0).unwrap();
        for _ in 0..MAX_PENDING + 10 {
            tracker.record(SessionKind::Browser, Ulid::new(), at, None);
        }
        assert_eq!(tracker.take().len(), MAX_PENDING);
    }
}
