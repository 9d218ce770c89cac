//! The storage conformance suite: every case runs on SQLite and on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod bulk;
mod cases;
mod concurrency;
mod harness;
mod revocations;

/// Declares each case once per backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::harness::sqlite().await;
                    crate::$module::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::harness::postgres().await else { return };
                    crate::$module::$name(&db).await;
                }
            )*
        }
    };
}

conformance!(
    cases::migrations_are_idempotent,
    cases::users,
    cases::user_listing_and_pagination,
    cases::passwords_and_emails,
    cases::browser_sessions,
    cases::registration_tokens,
    cases::clients,
    cases::authorization_grants,
    cases::oauth2_sessions_and_tokens,
    cases::refresh_token_cleanup_keeps_replay_evidence,
    cases::device_code_grants,
    cases::cleanup_of_grants_and_unused_clients,
    cases::clients_in_use_before_the_upgrade_stay_in_use,
    cases::compat_sessions_and_tokens,
    cases::compat_logins_are_stored_whole,
    cases::compat_refresh_rotates_whole,
    cases::devices_are_renamed_on_their_session,
    cases::activity_is_written_in_batches,
    cases::email_authentications,
    cases::personal_sessions,
    cases::upstream_providers_and_links,
    cases::upstream_trips,
    cases::jobs,
    cases::dropped_unit_of_work_rolls_back,
    cases::tokens_are_stored_as_hashes,
    bulk::bulk_rows_read_back_through_the_repositories,
    bulk::a_rolled_back_bulk_write_leaves_nothing,
    concurrency::a_code_is_exchanged_once,
    concurrency::a_refresh_token_is_consumed_once,
    concurrency::a_compat_refresh_token_is_rotated_once,
    concurrency::jobs_are_claimed_once,
    concurrency::registration_token_limit_holds,
    revocations::revocations_reach_every_process,
);

/// Replicas starting together on a fresh PostgreSQL database: both migrate, in turn, even
/// with a pool of a single connection each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_together_take_turns() {
    let Some(pg) = mas_testing::TestPostgres::create().await else {
        return;
    };
    let options = crate::harness::one_connection(pg.url());
    let a = mas_storage_sql::SqlRepositoryFactory::connect(&options)
        .await
        .unwrap();
    let b = mas_storage_sql::SqlRepositoryFactory::connect(&options)
        .await
        .unwrap();
    let all = a.pending_migrations().await.unwrap().len();
    assert!(all >= 3, "{all}");
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        ra.len() + rb.len(),
        all,
        "each migration ran once: {ra:?} {rb:?}"
    );
    assert!(
        ra.is_empty() || rb.is_empty(),
        "one replica did all of it: {ra:?} {rb:?}"
    );
    assert!(a.pending_migrations().await.unwrap().is_empty());
}

/// The connections that `LISTEN` (for jobs and for revocations) are their own, so even a
/// pool of one connection still serves units of work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_leave_the_pool_to_requests() {
    use mas_storage::RepositoryFactory;
    let Some(pg) = mas_testing::TestPostgres::create().await else {
        return;
    };
    let options = crate::harness::one_connection(pg.url());
    let factory = mas_storage_sql::SqlRepositoryFactory::connect(&options)
        .await
        .unwrap();
    factory.migrate().await.unwrap();
    let _waker = factory.job_waker(std::time::Duration::from_mins(1)).await;
    let follower = tokio::spawn(factory.follow_revocations());
    assert!(crate::harness::until_live(factory.revocations()).await);
    let clock = mas_storage::MockClock::default();
    let mut repo = factory.begin().await.unwrap();
    let user = repo
        .user()
        .add(&mut crate::cases::rng(), &clock, "alice")
        .await
        .unwrap();
    repo.user().lock(&clock, user).await.unwrap();
    repo.save().await.unwrap();
    follower.abort();
}

/// While PostgreSQL is away, requests that need it are refused at once, not each after
/// the pool's acquire timeout; once it answers again, units of work resume by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_refused_at_once_until_it_answers_again() {
    use std::time::{Duration, Instant};

    use mas_storage::{Health, RepositoryFactory, StorageError};
    let Some(pg) = mas_testing::TestPostgres::create().await else {
        return;
    };
    let target = tokio::net::lookup_host(("127.0.0.1", 5432))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = mas_testing::CuttableProxy::start(target).await;
    let mut url = url::Url::parse(pg.url()).unwrap();
    url.set_port(Some(proxy.address().port())).unwrap();
    let mut options = crate::harness::one_connection(url.as_str());
    options.max_connections = 4;
    let factory = mas_storage_sql::SqlRepositoryFactory::connect(&options)
        .await
        .unwrap();
    factory.migrate().await.unwrap();
    let health = factory.health();
    assert!(health.check().await.is_ok());
    let id = ulid::Ulid::new();
    let mut repo = factory.reader().await.unwrap();
    assert!(repo.user().lookup(id).await.unwrap().is_none());
    drop(repo);

    // The outage: the first statement finds out (it may wait for the pool)...
    proxy.cut();
    let mut repo = factory.reader().await.unwrap();
    assert!(matches!(
        repo.user().lookup(id).await,
        Err(StorageError::Unavailable)
    ));
    drop(repo);
    // ...and everyone after it is told at once. Each of these would otherwise wait out
    // the one-second acquire timeout.
    let started = Instant::now();
    for _ in 0..20 {
        assert!(matches!(
            factory.begin().await.map(drop),
            Err(StorageError::Unavailable)
        ));
        assert!(matches!(
            factory.reader().await.map(drop),
            Err(StorageError::Unavailable)
        ));
        assert!(matches!(
            health.check().await,
            Err(StorageError::Unavailable)
        ));
    }
    let refused_in = started.elapsed();
    assert!(
        refused_in < Duration::from_secs(5),
        "60 refusals took {refused_in:?}"
    );

    // Back: the probe reopens the gate, and work resumes without a restart.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    let repo = loop {
        match factory.begin().await {
            Ok(repo) => break repo,
            Err(StorageError::Unavailable) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("still refused: {error}"),
        }
    };
    let mut repo = repo;
    assert!(repo.user().lookup(id).await.unwrap().is_none());
    repo.save().await.unwrap();
    assert!(health.check().await.is_ok());
}
