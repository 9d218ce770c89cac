//! Revocations reach the record of the process that made them at commit, and the record
//! of every other process on the same database soon after: what keeps the introspection
//! cache correct across replicas and `mas-cli`.

use std::time::Duration;

use mas_storage::repository::{CompatRotation, CompatSessionFilter, NewCompatLogin};
use mas_storage::{MockClock, RepositoryFactory, Revocations, Ticket};
use ulid::Ulid;

use crate::cases::rng;
use crate::harness::TestDb;

/// Waits (up to 5 s) until `ticket` is stale for `keys` in `revocations`.
async fn becomes_stale(revocations: &Revocations, ticket: &Ticket, keys: &[Ulid]) -> bool {
    for _ in 0..500 {
        if !revocations.is_current(ticket, keys) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

pub async fn revocations_reach_every_process(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    // This process follows what others announce; `other` plays a second replica or a
    // `mas-cli` command.
    let here = &db.factory;
    let other = db.second_pool().await;
    let follower = tokio::spawn(here.follow_revocations());
    let record = here.revocations().clone();
    assert!(
        crate::harness::until_live(&record).await,
        "the follower started hearing announcements"
    );

    let mut repo = here.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let bob = repo.user().add(&mut rng, &clock, "bob").await.unwrap();
    let session = repo
        .compat_session()
        .add(
            &mut rng,
            &clock,
            &alice,
            Some("DEV".into()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    let ticket = record.ticket();
    assert!(record.is_current(&ticket, &[alice.id, bob.id, session.id]));

    // Made here: stale as soon as `save` returns, nothing to wait for.
    let mut repo = here.begin().await.unwrap();
    repo.compat_session()
        .finish(&clock, session.clone())
        .await
        .unwrap();
    repo.save().await.unwrap();
    assert!(!record.is_current(&ticket, &[session.id]));
    assert!(record.is_current(&ticket, &[alice.id, bob.id]));

    // A unit of work that is dropped announces nothing.
    let ticket = record.ticket();
    let mut repo = other.begin().await.unwrap();
    repo.user().lock(&clock, bob.clone()).await.unwrap();
    drop(repo);
    // Made elsewhere: heard within the poll interval (SQLite) or at once (PostgreSQL).
    let mut repo = other.begin().await.unwrap();
    repo.user().lock(&clock, alice.clone()).await.unwrap();
    repo.save().await.unwrap();
    assert!(becomes_stale(&record, &ticket, &[alice.id]).await);
    assert!(
        record.is_current(&ticket, &[bob.id]),
        "the rolled-back lock of bob was not announced"
    );

    // A compatibility refresh elsewhere (one statement on PostgreSQL, no transaction)
    // expires the old access token: its session's answers go stale here too.
    let mut repo = other.begin().await.unwrap();
    let refreshing = repo
        .compat_session()
        .add_with_tokens(
            &mut rng,
            &clock,
            NewCompatLogin {
                user: &bob,
                device_id: "REFRESH",
                human_name: None,
                access_token: "mct_before",
                ttl: None,
                refresh_token: Some("mcr_before"),
            },
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    let ticket = record.ticket();
    let rotated = other
        .reader()
        .await
        .unwrap()
        .compat_refresh_token()
        .rotate(
            &mut rng,
            &clock,
            CompatRotation {
                presented: "mcr_before",
                access_token: "mct_after",
                ttl: None,
                refresh_token: "mcr_after",
            },
        )
        .await
        .unwrap();
    assert!(rotated.is_some());
    assert!(becomes_stale(&record, &ticket, &[refreshing.session.id]).await);

    // Ending every compat session of no one in particular is announced as "everything".
    let ticket = record.ticket();
    let mut repo = other.begin().await.unwrap();
    let carol = repo.user().add(&mut rng, &clock, "carol").await.unwrap();
    repo.compat_session()
        .add(&mut rng, &clock, &carol, None, None, false, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let mut repo = other.begin().await.unwrap();
    let ended = repo
        .compat_session()
        .finish_all(&clock, CompatSessionFilter::default())
        .await
        .unwrap();
    // Carol's, and Bob's refreshed one.
    assert_eq!(ended, 2);
    repo.save().await.unwrap();
    assert!(becomes_stale(&record, &ticket, &[bob.id]).await);

    follower.abort();
}
