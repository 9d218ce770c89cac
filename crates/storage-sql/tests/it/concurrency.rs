//! Races between units of work: exactly one wins, on both backends.

use chrono::Duration;
use mas_data_model::ClientAuthMethod;
use mas_data_model::ResponseMode;
use mas_storage::repository::{CompatRotation, NewAuthorizationGrant, NewCompatLogin, NewJob};
use mas_storage::{MockClock, RepositoryFactory};
use url::Url;

use crate::cases::{client_params, rng};
use crate::harness::TestDb;

/// Runs `attempt` in two tasks over two pools at once; returns how many reported success.
async fn race<F, Fut>(db: &TestDb, attempt: F) -> usize
where
    F: Fn(mas_storage_sql::SqlRepositoryFactory) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let pools = [db.second_pool().await, db.second_pool().await];
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let mut tasks = Vec::new();
    for pool in pools {
        let attempt = attempt.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            attempt(pool).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        if task.await.unwrap() {
            wins += 1;
        }
    }
    wins
}

pub async fn a_code_is_exchanged_once(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let client = repo
        .client()
        .add_dynamic(&mut rng, &clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    let grant = repo
        .authorization_grant()
        .add(
            &mut rng,
            &clock,
            NewAuthorizationGrant {
                client_id: client.id,
                redirect_uri: Url::parse("https://app.example.com/cb").unwrap(),
                scope: "openid".to_owned(),
                state: None,
                nonce: None,
                response_mode: ResponseMode::Query,
                response_type_id_token: false,
                pkce: None,
                max_age: None,
                login_hint: None,
                prompt: None,
            },
        )
        .await
        .unwrap();
    let session = repo
        .session()
        .add(&mut rng, &clock, client.id, None, None, "openid", None)
        .await
        .unwrap();
    repo.authorization_grant()
        .fulfill(&clock, grant, &session, "race-code")
        .await
        .unwrap();
    repo.save().await.unwrap();

    let wins = race(db, |pool| async move {
        let clock = MockClock::default();
        let mut repo = pool.begin().await.unwrap();
        let grant = repo
            .authorization_grant()
            .find_by_code("race-code")
            .await
            .unwrap()
            .unwrap();
        // Widen the window between read and write.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let won = repo
            .authorization_grant()
            .exchange(&clock, grant)
            .await
            .unwrap()
            .is_some();
        repo.save().await.unwrap();
        won
    })
    .await;
    assert_eq!(wins, 1);
}

pub async fn a_refresh_token_is_consumed_once(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let client = repo
        .client()
        .add_dynamic(&mut rng, &clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    let session = repo
        .session()
        .add(&mut rng, &clock, client.id, None, None, "openid", None)
        .await
        .unwrap();
    let access = repo
        .access_token()
        .add(&mut rng, &clock, &session, "mat_race", None)
        .await
        .unwrap();
    repo.refresh_token()
        .add(&mut rng, &clock, &session, &access, "mar_race")
        .await
        .unwrap();
    repo.save().await.unwrap();

    let wins = race(db, |pool| async move {
        let clock = MockClock::default();
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = pool.begin().await.unwrap();
        let old = repo
            .refresh_token()
            .find_by_token("mar_race")
            .await
            .unwrap()
            .unwrap();
        let session = repo
            .session()
            .lookup(old.session_id)
            .await
            .unwrap()
            .unwrap();
        let new_token = format!("mar_{}", ulid::Ulid::new());
        let access = repo
            .access_token()
            .add(
                &mut rng,
                &clock,
                &session,
                &format!("mat_{}", ulid::Ulid::new()),
                None,
            )
            .await
            .unwrap();
        let next = repo
            .refresh_token()
            .add(&mut rng, &clock, &session, &access, &new_token)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let won = repo
            .refresh_token()
            .consume(&clock, old, &next)
            .await
            .unwrap()
            .is_some();
        if won {
            repo.save().await.unwrap();
        }
        won
    })
    .await;
    assert_eq!(wins, 1);
}

/// Two compatibility refreshes with one token at once, each on its own pool without a
/// transaction (as the handler does): one gets the next pair, the other nothing.
pub async fn a_compat_refresh_token_is_rotated_once(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    repo.compat_session()
        .add_with_tokens(
            &mut rng,
            &clock,
            NewCompatLogin {
                user: &alice,
                device_id: "RACE",
                human_name: None,
                access_token: "mct_race",
                ttl: Some(Duration::minutes(5)),
                refresh_token: Some("mcr_race"),
            },
        )
        .await
        .unwrap();
    repo.save().await.unwrap();

    let stored = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = stored.clone();
    let wins = race(db, move |pool| {
        let record = record.clone();
        async move {
            let clock = MockClock::default();
            let mut rng = rand::make_rng::<rand::rngs::StdRng>();
            let access_token = format!("mct_{}", ulid::Ulid::new());
            let rotated = pool
                .reader()
                .await
                .unwrap()
                .compat_refresh_token()
                .rotate(
                    &mut rng,
                    &clock,
                    CompatRotation {
                        presented: "mcr_race",
                        access_token: &access_token,
                        ttl: None,
                        refresh_token: &format!("mcr_{}", ulid::Ulid::new()),
                    },
                )
                .await
                .unwrap();
            record.lock().unwrap().push(access_token);
            rotated.is_some()
        }
    })
    .await;
    assert_eq!(wins, 1);
    // The loser stored nothing.
    let mut repo = db.factory.reader().await.unwrap();
    let mut found = 0;
    let tokens = stored.lock().unwrap().clone();
    for token in tokens {
        found += usize::from(
            repo.compat_access_token()
                .find_by_token(&token)
                .await
                .unwrap()
                .is_some(),
        );
    }
    assert_eq!(found, 1);
}

pub async fn jobs_are_claimed_once(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    for i in 0..10 {
        repo.job()
            .schedule(
                &mut rng,
                &clock,
                NewJob {
                    queue: "q".to_owned(),
                    payload: serde_json::json!(i),
                    run_at: None,
                },
            )
            .await
            .unwrap();
    }
    repo.save().await.unwrap();
    let claimed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = claimed.clone();
    race(db, move |pool| {
        let seen = seen.clone();
        async move {
            let clock = MockClock::default();
            let mut repo = pool.begin().await.unwrap();
            let jobs = repo
                .job()
                .claim(&clock, &["q"], 6, Duration::seconds(30))
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            repo.save().await.unwrap();
            seen.lock().unwrap().extend(jobs.into_iter().map(|j| j.id));
            true
        }
    })
    .await;
    let mut ids = claimed.lock().unwrap().clone();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no job went to both workers");
    assert_eq!(total, 10, "between them the workers claimed every job");
}

pub async fn registration_token_limit_holds(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    repo.registration_token()
        .add(&mut rng, &clock, "LAST-SEAT", Some(1), None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    let wins = race(db, |pool| async move {
        let clock = MockClock::default();
        let mut repo = pool.begin().await.unwrap();
        let token = repo
            .registration_token()
            .find_by_token("LAST-SEAT")
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let won = repo
            .registration_token()
            .use_token(&clock, &token)
            .await
            .unwrap()
            .is_some();
        repo.save().await.unwrap();
        won
    })
    .await;
    assert_eq!(wins, 1);
}
