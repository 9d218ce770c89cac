//! The job worker and the cleanup loop against a real database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mas_data_model::{Job, JobState};
use mas_storage::repository::NewJob;
use mas_storage::{RepositoryFactory, SystemClock};
use mas_storage_sql::{PoolOptions, SqlRepositoryFactory};
use mas_tasks::{JobError, JobHandler, Worker, WorkerConfig};
use tokio::sync::watch;

/// What a test handler does with each attempt.
#[derive(Clone, Copy)]
enum Script {
    Succeed,
    FailTwiceThenSucceed,
    Fatal,
    Panic,
    AlwaysRetry,
}

struct Recorder {
    queue: &'static str,
    script: Script,
    attempts: AtomicU32,
    done: Mutex<Vec<serde_json::Value>>,
}

impl Recorder {
    fn new(queue: &'static str, script: Script) -> Arc<Self> {
        Arc::new(Self {
            queue,
            script,
            attempts: AtomicU32::new(0),
            done: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl JobHandler for Recorder {
    fn queue(&self) -> &'static str {
        self.queue
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        match self.script {
            Script::FailTwiceThenSucceed if attempt <= 2 => {
                return Err(JobError::Retry("homeserver unreachable".to_owned()));
            }
            Script::Succeed | Script::FailTwiceThenSucceed => {}
            Script::Fatal => return Err(JobError::Fatal("bad payload".to_owned())),
            Script::Panic => panic!("handler bug"),
            Script::AlwaysRetry => return Err(JobError::Retry("still down".to_owned())),
        }
        self.done.lock().unwrap().push(job.payload.clone());
        Ok(())
    }
}

fn fast() -> WorkerConfig {
    WorkerConfig {
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_attempts: 3,
        ..WorkerConfig::default()
    }
}

async fn sqlite() -> (SqlRepositoryFactory, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let factory = SqlRepositoryFactory::connect(&PoolOptions {
        uri: format!("sqlite://{}", dir.path().join("mas.db").display()),
        max_connections: 4,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
    })
    .await
    .unwrap();
    factory.migrate().await.unwrap();
    (factory, dir)
}

async fn schedule(
    factory: &SqlRepositoryFactory,
    queue: &str,
    payload: serde_json::Value,
) -> ulid::Ulid {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = factory.begin().await.unwrap();
    let job = repo
        .job()
        .schedule(
            &mut rng,
            &SystemClock,
            NewJob {
                queue: queue.to_owned(),
                payload,
                run_at: None,
            },
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    job.id
}

/// As [`schedule`], but `None` while the database is unavailable.
async fn try_schedule(
    factory: &SqlRepositoryFactory,
    queue: &str,
    payload: serde_json::Value,
) -> Option<ulid::Ulid> {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let new = NewJob {
        queue: queue.to_owned(),
        payload,
        run_at: None,
    };
    let mut repo = match factory.begin().await {
        Ok(repo) => repo,
        Err(mas_storage::StorageError::Unavailable) => return None,
        Err(error) => panic!("{error}"),
    };
    let job = match repo.job().schedule(&mut rng, &SystemClock, new).await {
        Ok(job) => job,
        Err(mas_storage::StorageError::Unavailable) => return None,
        Err(error) => panic!("{error}"),
    };
    match repo.save().await {
        Ok(()) => Some(job.id),
        Err(mas_storage::StorageError::Unavailable) => None,
        Err(error) => panic!("{error}"),
    }
}

async fn state_of(factory: &SqlRepositoryFactory, id: ulid::Ulid) -> Job {
    factory
        .reader()
        .await
        .unwrap()
        .job()
        .lookup(id)
        .await
        .unwrap()
        .unwrap()
}

/// Polls until `check` holds; a hang detector, not a speed target.
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start(
    factory: &SqlRepositoryFactory,
    worker: Worker,
    poll: Duration,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = watch::channel(false);
    let factory = factory.clone();
    let task = tokio::spawn(async move {
        let wake = factory.job_waker(poll).await;
        worker.run(Box::new(wake), stopped).await;
    });
    (stop, task)
}

fn worker(factory: &SqlRepositoryFactory, handlers: &[Arc<Recorder>]) -> Worker {
    let mut worker = Worker::new(Arc::new(factory.clone()), Arc::new(SystemClock), fast());
    for handler in handlers {
        worker = worker.with_handler(handler.clone());
    }
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_succeed_retry_with_backoff_and_give_up() {
    let (factory, _dir) = sqlite().await;
    let ok = Recorder::new("ok", Script::Succeed);
    let flaky = Recorder::new("flaky", Script::FailTwiceThenSucceed);
    let fatal = Recorder::new("fatal", Script::Fatal);
    let stubborn = Recorder::new("stubborn", Script::AlwaysRetry);
    let panicky = Recorder::new("panicky", Script::Panic);
    let ok_id = schedule(&factory, "ok", serde_json::json!({"n": 1})).await;
    let flaky_id = schedule(&factory, "flaky", serde_json::json!(2)).await;
    let fatal_id = schedule(&factory, "fatal", serde_json::json!(3)).await;
    let stubborn_id = schedule(&factory, "stubborn", serde_json::json!(4)).await;
    let panic_id = schedule(&factory, "panicky", serde_json::json!(5)).await;
    let handlers = [
        ok.clone(),
        flaky.clone(),
        fatal.clone(),
        stubborn.clone(),
        panicky.clone(),
    ];
    let (stop, task) = start(
        &factory,
        worker(&factory, &handlers),
        Duration::from_millis(50),
    );

    eventually("the ok job completes", async || {
        state_of(&factory, ok_id).await.state == JobState::Completed
    })
    .await;
    assert_eq!(*ok.done.lock().unwrap(), vec![serde_json::json!({"n": 1})]);
    eventually("the flaky job completes on its third attempt", async || {
        state_of(&factory, flaky_id).await.state == JobState::Completed
    })
    .await;
    assert_eq!(state_of(&factory, flaky_id).await.attempts, 3);
    eventually("the fatal job fails at once", async || {
        state_of(&factory, fatal_id).await.state == JobState::Failed
    })
    .await;
    assert_eq!(fatal.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(
        state_of(&factory, fatal_id).await.last_error.as_deref(),
        Some("bad payload")
    );
    eventually("the stubborn job gives up after max_attempts", async || {
        state_of(&factory, stubborn_id).await.state == JobState::Failed
    })
    .await;
    assert_eq!(stubborn.attempts.load(Ordering::SeqCst), 3);
    eventually("the panicking job is failed, not the worker", async || {
        state_of(&factory, panic_id).await.state == JobState::Failed
    })
    .await;
    assert!(
        state_of(&factory, panic_id)
            .await
            .last_error
            .unwrap()
            .contains("panicked")
    );

    // The worker is still alive after all that: a new job still runs.
    let again = schedule(&factory, "ok", serde_json::json!("again")).await;
    eventually("a later job runs", async || {
        state_of(&factory, again).await.state == JobState::Completed
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakes_the_worker_and_survives_an_outage() {
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
    let options = PoolOptions {
        uri: url.to_string(),
        max_connections: 4,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: None,
        max_lifetime: None,
    };
    let factory = SqlRepositoryFactory::connect(&options).await.unwrap();
    factory.migrate().await.unwrap();
    let ok = Recorder::new("ok", Script::Succeed);
    // A poll interval far longer than the test: only NOTIFY can wake the worker in time.
    let (stop, task) = start(
        &factory,
        worker(&factory, std::slice::from_ref(&ok)),
        Duration::from_hours(1),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let other_replica = SqlRepositoryFactory::connect(&options).await.unwrap();
    let id = schedule(&other_replica, "ok", serde_json::json!("notified")).await;
    eventually("the notified job runs", async || {
        state_of(&factory, id).await.state == JobState::Completed
    })
    .await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    // The other replica may have seen its connection die: it then answers Unavailable at
    // once (as a 503) until its probe finds the database back, and the job is scheduled
    // as a client's retry would.
    let mut scheduled = None;
    eventually("the other replica takes writes again", async || {
        scheduled = try_schedule(&other_replica, "ok", serde_json::json!("after the outage")).await;
        scheduled.is_some()
    })
    .await;
    let id = scheduled.unwrap();
    eventually("a job after the outage runs", async || {
        // This replica, too, may answer Unavailable for a moment.
        match factory.reader().await {
            Ok(mut repo) => repo
                .job()
                .lookup(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|job| job.state == JobState::Completed),
            Err(_) => false,
        }
    })
    .await;
    assert!(
        ok.done
            .lock()
            .unwrap()
            .contains(&serde_json::json!("after the outage"))
    );
    assert!(!task.is_finished(), "the worker survived the outage");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_spent_tokens_in_the_background() {
    let (factory, _dir) = sqlite().await;
    let clock = mas_storage::MockClock::new(chrono::Utc::now() - chrono::Duration::days(1));
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = factory.begin().await.unwrap();
    let params = mas_storage::repository::ClientParams {
        auth_method: mas_data_model::ClientAuthMethod::None,
        encrypted_secret: None,
        jwks: None,
        jwks_uri: None,
        redirect_uris: Vec::new(),
        grant_types: Vec::new(),
        name: None,
        client_uri: None,
        logo_uri: None,
        policy_uri: None,
        tos_uri: None,
        application_type: None,
        contacts: Vec::new(),
        metadata: None,
    };
    let client = repo
        .client()
        .add_dynamic(&mut rng, &clock, params)
        .await
        .unwrap();
    let session = repo
        .session()
        .add(&mut rng, &clock, client.id, None, None, "openid", None)
        .await
        .unwrap();
    repo.access_token()
        .add(
            &mut rng,
            &clock,
            &session,
            "mat_old",
            Some(chrono::Duration::minutes(5)),
        )
        .await
        .unwrap();
    let live = repo
        .access_token()
        .add(&mut rng, &clock, &session, "mat_live", None)
        .await
        .unwrap();
    repo.save().await.unwrap();
    // Issued a day ago with a 5-minute lifetime: to the system clock it is long spent.
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(mas_tasks::run_cleanup(
        Arc::new(factory.clone()),
        Arc::new(SystemClock),
        mas_tasks::CleanupConfig {
            interval: Duration::from_millis(50),
            retention: Duration::from_mins(1),
        },
        stopped,
    ));
    eventually("the expired token is deleted", async || {
        factory
            .reader()
            .await
            .unwrap()
            .access_token()
            .find_by_token("mat_old")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    let mut reader = factory.reader().await.unwrap();
    assert_eq!(
        reader.access_token().lookup(live.id).await.unwrap(),
        Some(live)
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Runs one homeserver job of `job` through the handler of its queue.
async fn run_homeserver_job(
    factory: &SqlRepositoryFactory,
    homeserver: &Arc<mas_matrix::MockHomeserver>,
    job: &mas_storage::jobs::HomeserverJob,
) -> Result<(), JobError> {
    let repos: Arc<dyn RepositoryFactory> = Arc::new(factory.clone());
    let hs: Arc<dyn mas_matrix::HomeserverConnection> = homeserver.clone();
    let handlers = mas_tasks::HomeserverJobs::all(&repos, &hs);
    let new = job.to_job();
    let handler = handlers.iter().find(|h| h.queue() == new.queue).unwrap();
    let stored = Job {
        id: ulid::Ulid::new(),
        queue: new.queue.clone(),
        payload: new.payload.clone(),
        state: JobState::Running,
        attempts: 1,
        scheduled_at: chrono::Utc::now(),
        created_at: chrono::Utc::now(),
        last_error: None,
    };
    handler.run(&stored).await
}

#[tokio::test]
async fn homeserver_jobs_follow_the_state_of_when_they_run() {
    use mas_matrix::HomeserverConnection as _;
    use mas_storage::jobs::HomeserverJob;

    let (factory, _dir) = sqlite().await;
    let homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = factory.begin().await.unwrap();
    let alice = repo
        .user()
        .add(&mut rng, &SystemClock, "alice")
        .await
        .unwrap();
    repo.save().await.unwrap();

    // A device job for a user the homeserver has never seen provisions the user first,
    // but only while a session still uses the device.
    let device = HomeserverJob::ProvisionDevice {
        user_id: alice.id,
        device_id: "PHONE".to_owned(),
        display_name: None,
    };
    run_homeserver_job(&factory, &homeserver, &device)
        .await
        .unwrap();
    assert!(homeserver.user("alice").is_none(), "no session: skipped");
    let mut repo = factory.begin().await.unwrap();
    let session = repo
        .compat_session()
        .add(
            &mut rng,
            &SystemClock,
            &alice,
            Some("PHONE".to_owned()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    run_homeserver_job(&factory, &homeserver, &device)
        .await
        .unwrap();
    assert!(
        homeserver
            .user("alice")
            .unwrap()
            .devices
            .contains_key("PHONE")
    );

    // A deletion queued by an earlier logout leaves the device alone while a new
    // session uses it, and deletes it once none does.
    let delete = HomeserverJob::DeleteDevice {
        user_id: alice.id,
        device_id: "PHONE".to_owned(),
    };
    run_homeserver_job(&factory, &homeserver, &delete)
        .await
        .unwrap();
    assert!(
        homeserver
            .user("alice")
            .unwrap()
            .devices
            .contains_key("PHONE")
    );
    let mut repo = factory.begin().await.unwrap();
    repo.compat_session()
        .finish(&SystemClock, session)
        .await
        .unwrap();
    repo.save().await.unwrap();
    run_homeserver_job(&factory, &homeserver, &delete)
        .await
        .unwrap();
    assert!(homeserver.user("alice").unwrap().devices.is_empty());

    // Deactivation and reactivation follow the user's state, whatever order they run in.
    let deactivate = HomeserverJob::DeactivateUser {
        user_id: alice.id,
        erase: false,
    };
    let reactivate = HomeserverJob::ReactivateUser { user_id: alice.id };
    run_homeserver_job(&factory, &homeserver, &deactivate)
        .await
        .unwrap();
    assert!(
        !homeserver.query_user("alice").await.unwrap().deactivated,
        "still active here"
    );
    let mut repo = factory.begin().await.unwrap();
    let alice = repo.user().deactivate(&SystemClock, alice).await.unwrap();
    repo.save().await.unwrap();
    run_homeserver_job(&factory, &homeserver, &reactivate)
        .await
        .unwrap();
    run_homeserver_job(&factory, &homeserver, &deactivate)
        .await
        .unwrap();
    assert!(homeserver.query_user("alice").await.unwrap().deactivated);

    // An outage is worth another try; the queue keeps the job.
    homeserver.set_down(true);
    let sync = HomeserverJob::SyncDevices { user_id: alice.id };
    assert!(matches!(
        run_homeserver_job(&factory, &homeserver, &sync).await,
        Err(JobError::Retry(_))
    ));
}

#[tokio::test]
async fn a_user_the_homeserver_never_had_is_deactivated_and_reactivated() {
    use mas_matrix::HomeserverConnection as _;
    use mas_storage::jobs::HomeserverJob;

    let (factory, _dir) = sqlite().await;
    let homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    // A user the homeserver never had: its deactivation has nothing to do there, and
    // its reactivation makes it; reactivating an active user is no call at all.
    let mut repo = factory.begin().await.unwrap();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let bob = repo
        .user()
        .add(&mut rng, &SystemClock, "bob")
        .await
        .unwrap();
    let bob = repo.user().deactivate(&SystemClock, bob).await.unwrap();
    repo.save().await.unwrap();
    run_homeserver_job(
        &factory,
        &homeserver,
        &HomeserverJob::DeactivateUser {
            user_id: bob.id,
            erase: true,
        },
    )
    .await
    .unwrap();
    // Provisioning a deactivated user would hand the homeserver its emails back.
    let provision = HomeserverJob::ProvisionUser {
        user_id: bob.id,
        display_name: Some("Bob".to_owned()),
        avatar_url: None,
    };
    run_homeserver_job(&factory, &homeserver, &provision)
        .await
        .unwrap();
    assert!(homeserver.user("bob").is_none());
    let mut repo = factory.begin().await.unwrap();
    repo.user().reactivate(bob.clone()).await.unwrap();
    repo.save().await.unwrap();
    let reactivate_bob = HomeserverJob::ReactivateUser { user_id: bob.id };
    run_homeserver_job(&factory, &homeserver, &reactivate_bob)
        .await
        .unwrap();
    assert!(!homeserver.query_user("bob").await.unwrap().deactivated);
    run_homeserver_job(&factory, &homeserver, &reactivate_bob)
        .await
        .unwrap();
}

/// A sendmail command that keeps each message it is given in `dir`, and the messages
/// kept there so far.
fn kept_mail(dir: &std::path::Path) -> (String, impl Fn() -> Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("sendmail.sh");
    let kept = dir.join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat > \"{}/$(date +%s%N)\"\n", kept.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let read = move || {
        let mut names: Vec<_> = std::fs::read_dir(&kept)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    };
    (script.display().to_string(), read)
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // One story: three addresses, one message.
async fn recovery_links_go_only_to_active_accounts_that_have_the_address() {
    use mas_storage::jobs::EmailJob;

    let (factory, dir) = sqlite().await;
    let (sendmail, kept) = kept_mail(dir.path());
    let mailer = mas_email::Mailer::new(
        mas_email::TransportSettings::Sendmail {
            command: Some(sendmail),
        },
        "auth@example.com",
        "auth@example.com",
    )
    .unwrap();
    let repos: Arc<dyn RepositoryFactory> = Arc::new(factory.clone());
    let jobs = mas_tasks::EmailJobs::new(
        Arc::clone(&repos),
        Arc::new(SystemClock),
        mas_storage::Encrypter::new(&[3; 32]),
        Arc::new(mailer),
        "Example".to_owned(),
        "https://auth.example.com/prefix/".parse().unwrap(),
    );
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = factory.begin().await.unwrap();
    let alice = repo
        .user()
        .add(&mut rng, &SystemClock, "alice")
        .await
        .unwrap();
    repo.user_email()
        .add(&mut rng, &SystemClock, &alice, "Alice@Example.com")
        .await
        .unwrap();
    let bob = repo
        .user()
        .add(&mut rng, &SystemClock, "bob")
        .await
        .unwrap();
    repo.user_email()
        .add(&mut rng, &SystemClock, &bob, "bob@example.com")
        .await
        .unwrap();
    repo.user().lock(&SystemClock, bob).await.unwrap();
    repo.save().await.unwrap();

    let encrypter = mas_storage::Encrypter::new(&[3; 32]);
    let run = async |email: &str, locale: Option<&str>| {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let new = EmailJob::Recovery {
            sealed_email: encrypter.encrypt(&mut rng, email.as_bytes()),
            locale: locale.map(str::to_owned),
        }
        .to_job();
        let stored = Job {
            id: ulid::Ulid::new(),
            queue: new.queue.clone(),
            payload: new.payload.clone(),
            state: JobState::Running,
            attempts: 1,
            scheduled_at: chrono::Utc::now(),
            created_at: chrono::Utc::now(),
            last_error: None,
        };
        jobs.run(&stored).await.unwrap();
    };
    // No account has it, or a locked one does: nothing is sent.
    run("nobody@example.com", None).await;
    run("bob@example.com", None).await;
    assert!(kept().is_empty(), "{:?}", kept());

    // Typed in another case: the link goes to the address as the account has it.
    run("alice@example.com", None).await;
    let messages = kept();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert!(message.contains("To: Alice@Example.com"), "{message}");
    assert!(
        message.contains("Subject: Set a new password for Example"),
        "{message}"
    );
    let decoded = message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = decoded
        .find("https://auth.example.com/prefix/account/password/recovery?ticket=")
        .expect("a link under the public base");
    let ticket: String = decoded[start..]
        .split_once("ticket=")
        .unwrap()
        .1
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    assert_eq!(ticket.len(), 32);
    let mut repo = factory.reader().await.unwrap();
    let stored = repo
        .user_recovery()
        .find_by_ticket(&ticket)
        .await
        .unwrap()
        .expect("the ticket is stored (as its hash)");
    assert_eq!(stored.user_id, alice.id);

    // Asked from a French browser: the message is in French.
    run("alice@example.com", Some("fr")).await;
    let messages = kept();
    assert_eq!(messages.len(), 2);
    let french = messages[1].replace("=\r\n", "").replace("=\n", "");
    assert!(french.contains("lang=3D\"fr\""), "{french}");
    assert!(french.contains("Bonjour alice,"), "{french}");
    assert!(stored.is_usable(chrono::Utc::now()));
    let lifetime = stored.expires_at - stored.created_at;
    assert!(
        (lifetime - mas_data_model::RecoveryTicket::LIFETIME).abs() < chrono::Duration::seconds(1),
        "{lifetime}"
    );
}
