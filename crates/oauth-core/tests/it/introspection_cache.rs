//! The homeserver's introspection answered from memory: what it keeps never outlives the
//! token, a revocation made here or by another process, or a lost feed of announcements.

use std::time::Duration;

use chrono::Duration as Ttl;
use mas_data_model::{TokenType, User};
use mas_oauth_core::tokens::{Introspection, generate};
use mas_oauth_core::{IntrospectionCache, introspect_for_homeserver};
use mas_storage::{MockClock, RepositoryFactory};
use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sea_orm::ConnectionTrait;

fn options(uri: String) -> PoolOptions {
    PoolOptions {
        uri,
        max_connections: 4,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
    }
}

/// A migrated database: SQLite in a temporary directory, or a fresh PostgreSQL one.
enum Db {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] mas_testing::TestPostgres),
}

fn sqlite() -> (PoolOptions, Db) {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("mas.db").display());
    (options(uri), Db::Sqlite(dir))
}

async fn postgres() -> Option<(PoolOptions, Db)> {
    let pg = mas_testing::TestPostgres::create().await?;
    Some((options(pg.url().to_owned()), Db::Postgres(pg)))
}

async fn open(options: &PoolOptions) -> SqlRepositoryFactory {
    let factory = SqlRepositoryFactory::connect(options).await.unwrap();
    factory.migrate().await.unwrap();
    factory
}

/// A compat session for `user` on device `device` and a token for it, valid 5 minutes.
async fn compat_token(
    repos: &dyn RepositoryFactory,
    clock: &MockClock,
    rng: &mut StdRng,
    user: &User,
    device: &str,
) -> String {
    let mut repo = repos.begin().await.unwrap();
    let session = repo
        .compat_session()
        .add(rng, clock, user, Some(device.to_owned()), None, false, None)
        .await
        .unwrap();
    let token = generate(rng, TokenType::CompatAccessToken);
    repo.compat_access_token()
        .add(rng, clock, &session, &token, Some(Ttl::minutes(5)))
        .await
        .unwrap();
    repo.save().await.unwrap();
    token
}

async fn add_user(
    repos: &dyn RepositoryFactory,
    clock: &MockClock,
    rng: &mut StdRng,
    name: &str,
) -> User {
    let mut repo = repos.begin().await.unwrap();
    let user = repo.user().add(rng, clock, name).await.unwrap();
    repo.save().await.unwrap();
    user
}

async fn ask(
    cache: &IntrospectionCache,
    repos: &dyn RepositoryFactory,
    clock: &MockClock,
    token: &str,
) -> Introspection {
    let policy = mas_oauth_core::policy::Policy::default();
    let open = || repos.reader();
    introspect_for_homeserver(cache, open, clock, &policy, token, Some("access_token"))
        .await
        .unwrap()
        .to_introspection(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_answers_never_outlive_their_token_or_a_revocation() {
    let (options, _db) = sqlite();
    let repos = open(&options).await;
    // One process on its own database: it hears every revocation.
    repos.revocations().set_live(true);
    let cache = IntrospectionCache::new(repos.revocations().clone(), 64);
    let clock = MockClock::default();
    let mut rng = StdRng::seed_from_u64(7);
    let alice = add_user(&repos, &clock, &mut rng, "alice").await;
    let bob = add_user(&repos, &clock, &mut rng, "bob").await;

    // Kept: the row can vanish behind the service's back and the answer still comes,
    // with `expires_in` counted from now.
    let first = compat_token(&repos, &clock, &mut rng, &alice, "FIRST").await;
    let answer = ask(&cache, &repos, &clock, &first).await;
    assert!(answer.active);
    assert_eq!(answer.username.as_deref(), Some("alice"));
    assert_eq!(answer.device_id.as_deref(), Some("FIRST"));
    assert_eq!(answer.expires_in, Some(300));
    assert_eq!(cache.len(), 1);
    repos
        .connection()
        .execute_unprepared("DELETE FROM compat_access_tokens")
        .await
        .unwrap();
    clock.advance(Ttl::seconds(60));
    let kept = ask(&cache, &repos, &clock, &first).await;
    assert_eq!(kept.expires_in, Some(240));
    assert_eq!(
        Introspection {
            expires_in: None,
            ..kept
        },
        Introspection {
            expires_in: None,
            ..answer
        }
    );

    // Ending the session (a logout) drops it at once.
    let second = compat_token(&repos, &clock, &mut rng, &alice, "SECOND").await;
    assert!(ask(&cache, &repos, &clock, &second).await.active);
    let mut repo = repos.begin().await.unwrap();
    let session = repo
        .compat_session()
        .find_active_by_device(&alice, "SECOND")
        .await
        .unwrap()
        .unwrap();
    repo.compat_session().finish(&clock, session).await.unwrap();
    repo.save().await.unwrap();
    assert!(!ask(&cache, &repos, &clock, &second).await.active);

    // Locking the user drops every answer about them, and only those.
    let third = compat_token(&repos, &clock, &mut rng, &alice, "THIRD").await;
    let bobs = compat_token(&repos, &clock, &mut rng, &bob, "BOB").await;
    assert!(ask(&cache, &repos, &clock, &third).await.active);
    assert!(ask(&cache, &repos, &clock, &bobs).await.active);
    let mut repo = repos.begin().await.unwrap();
    repo.user().lock(&clock, alice.clone()).await.unwrap();
    repo.save().await.unwrap();
    assert!(!ask(&cache, &repos, &clock, &third).await.active);
    repos
        .connection()
        .execute_unprepared("DELETE FROM compat_access_tokens")
        .await
        .unwrap();
    assert!(
        ask(&cache, &repos, &clock, &bobs).await.active,
        "bob's answer was kept through alice's lock"
    );

    // A kept answer ends with its token.
    clock.advance(Ttl::minutes(5));
    assert!(!ask(&cache, &repos, &clock, &bobs).await.active);

    // Inactive answers are not kept: a token unknown a moment ago works once it exists.
    let carol = add_user(&repos, &clock, &mut rng, "carol").await;
    let mut repo = repos.begin().await.unwrap();
    let session = repo
        .compat_session()
        .add(&mut rng, &clock, &carol, None, None, false, None)
        .await
        .unwrap();
    let late = generate(&mut rng, TokenType::CompatAccessToken);
    assert!(!ask(&cache, &repos, &clock, &late).await.active);
    repo.compat_access_token()
        .add(&mut rng, &clock, &session, &late, None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    assert!(ask(&cache, &repos, &clock, &late).await.active);
    assert!(
        !ask(&cache, &repos, &clock, "mct_not_one_of_ours")
            .await
            .active
    );
}

/// A second pool on the database plays another replica, or `mas-cli`.
async fn revocations_from_another_process_drop_kept_answers(options: PoolOptions) {
    let here = open(&options).await;
    let other = open(&options).await;
    let cache = IntrospectionCache::new(here.revocations().clone(), 64);
    let clock = MockClock::default();
    let mut rng = StdRng::seed_from_u64(8);
    let alice = add_user(&other, &clock, &mut rng, "alice").await;
    let token = compat_token(&other, &clock, &mut rng, &alice, "DEV").await;

    // Until announcements are heard, nothing is kept.
    assert!(ask(&cache, &here, &clock, &token).await.active);
    assert!(cache.is_empty());
    let follower = tokio::spawn(here.follow_revocations());
    let mut kept = false;
    for _ in 0..500 {
        assert!(ask(&cache, &here, &clock, &token).await.active);
        if !cache.is_empty() {
            kept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(kept, "answers are kept once the feed is live");

    let mut repo = other.begin().await.unwrap();
    let session = repo
        .compat_session()
        .find_active_by_device(&alice, "DEV")
        .await
        .unwrap()
        .unwrap();
    repo.compat_session().finish(&clock, session).await.unwrap();
    repo.save().await.unwrap();
    let started = std::time::Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(5) {
        if !ask(&cache, &here, &clock, &token).await.active {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "the other process's logout reached this cache");
    eprintln!("heard after {:?}", started.elapsed());
    follower.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocations_from_another_process_drop_kept_answers() {
    let (options, _db) = sqlite();
    revocations_from_another_process_drop_kept_answers(options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocations_from_another_process_drop_kept_answers() {
    let Some((options, _db)) = postgres().await else {
        return;
    };
    revocations_from_another_process_drop_kept_answers(options).await;
}
