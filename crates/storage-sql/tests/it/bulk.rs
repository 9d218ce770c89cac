//! The bulk writer `syn2mas migrate` writes through: what it writes reads back through
//! the repositories exactly as if the service had written it, and a rollback leaves
//! nothing.

use chrono::{DateTime, TimeZone, Utc};
use mas_data_model::{CompatSession, LastActivity, Password, UpstreamOAuthLink, User, UserEmail};
use mas_storage::RepositoryFactory;
use mas_storage::bulk::{BulkWriter, ImportedCompatAccessToken, ImportedCompatRefreshToken};
use mas_storage::repository::UserFilter;
use ulid::Ulid;

use crate::harness::TestDb;

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn user(name: &str, created: DateTime<Utc>) -> User {
    User {
        id: Ulid::new(),
        username: name.to_owned(),
        created_at: created,
        locked_at: None,
        deactivated_at: None,
        can_request_admin: false,
    }
}

pub async fn bulk_rows_read_back_through_the_repositories(db: &TestDb) {
    let clock = mas_storage::MockClock::default();
    let provider_id = Ulid::new();
    let mut repo = db.factory.begin().await.unwrap();
    let provider = crate::cases::stored_provider(&mut repo, &clock, provider_id).await;
    repo.save().await.unwrap();

    let created = at(1_700_000_000_123);
    let mut alice = user("alice", created);
    alice.can_request_admin = true;
    let mut bob = user("bob", created);
    bob.locked_at = Some(at(1_750_000_000_000));
    bob.deactivated_at = Some(at(1_750_000_000_000));
    // Enough users for more than one SQLite statement.
    let many: Vec<User> = (0..2500)
        .map(|i| user(&format!("user{i}"), created))
        .collect();
    let session = CompatSession {
        id: Ulid::new(),
        user_id: alice.id,
        device_id: Some("PHONE".to_owned()),
        browser_session_id: None,
        // Every character COPY's text format gives a meaning to.
        human_name: Some("Alice's \\ phone\twith\nnewline\r and ünïcode".to_owned()),
        created_at: created,
        finished_at: None,
        is_synapse_admin: true,
        user_agent: Some("Element/1.0".to_owned()),
        last_activity: LastActivity {
            at: Some(at(1_760_000_000_456)),
            ip: Some("203.0.113.9".to_owned()),
        },
    };
    let deviceless = CompatSession {
        id: Ulid::new(),
        device_id: None,
        is_synapse_admin: false,
        human_name: None,
        user_agent: None,
        last_activity: LastActivity::default(),
        ..session.clone()
    };
    let access = ImportedCompatAccessToken {
        id: Ulid::new(),
        session_id: session.id,
        token: "syt_YWxpY2U_abcdefghijklmnopqrst_0abcde".to_owned(),
        created_at: created,
        expires_at: Some(at(4_000_000_000_000)),
    };
    let refresh = ImportedCompatRefreshToken {
        id: Ulid::new(),
        session_id: session.id,
        access_token_id: access.id,
        token: "syr_YWxpY2U_abcdefghijklmnopqrst_1abcde".to_owned(),
        created_at: created,
    };

    let mut writer: Box<dyn BulkWriter> = Box::new(db.factory.bulk_writer().await.unwrap());
    assert_eq!(writer.count_users().await.unwrap(), 0);
    writer.users(&[alice.clone(), bob.clone()]).await.unwrap();
    writer.users(&many).await.unwrap();
    writer
        .passwords(&[Password {
            id: Ulid::new(),
            user_id: alice.id,
            hashed_password: "$2b$12$abcdefghijklmnopqrstuuVWXYZ".to_owned(),
            version: 1,
            upgraded_from_id: None,
            created_at: created,
        }])
        .await
        .unwrap();
    writer
        .emails(&[UserEmail {
            id: Ulid::new(),
            user_id: alice.id,
            email: "Alice@Example.com".to_owned(),
            created_at: created,
        }])
        .await
        .unwrap();
    writer
        .links(&[UpstreamOAuthLink {
            id: Ulid::new(),
            provider_id,
            user_id: Some(alice.id),
            subject: "github|42".to_owned(),
            human_account_name: Some("alice@github".to_owned()),
            created_at: created,
        }])
        .await
        .unwrap();
    writer
        .compat_sessions(&[session.clone(), deviceless.clone()])
        .await
        .unwrap();
    writer
        .compat_access_tokens(std::slice::from_ref(&access))
        .await
        .unwrap();
    writer
        .compat_refresh_tokens(std::slice::from_ref(&refresh))
        .await
        .unwrap();
    assert_eq!(writer.count_users().await.unwrap(), 2502);
    writer.commit().await.unwrap();

    let mut repo = db.factory.reader().await.unwrap();
    assert_eq!(
        repo.user().count(&UserFilter::default()).await.unwrap(),
        2502
    );
    let found = repo
        .user()
        .find_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, alice.id);
    assert_eq!(found.created_at, created);
    assert!(found.can_request_admin);
    assert!(found.is_valid());
    let found_bob = repo.user().find_by_username("bob").await.unwrap().unwrap();
    assert_eq!(found_bob.locked_at, bob.locked_at);
    assert_eq!(found_bob.deactivated_at, bob.deactivated_at);
    assert!(!found_bob.is_valid());
    let password = repo.user_password().active(&found).await.unwrap().unwrap();
    assert_eq!(password.version, 1);
    assert!(password.hashed_password.starts_with("$2b$12$"));
    // Found whatever the case, as addresses added here are.
    let email = repo
        .user_email()
        .find_by_email("alice@example.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (email.user_id, email.email.as_str()),
        (alice.id, "Alice@Example.com")
    );
    let link = repo
        .upstream_link()
        .find_by_subject(&provider, "github|42")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.user_id, Some(alice.id));
    assert_eq!(link.human_account_name.as_deref(), Some("alice@github"));
    let token = repo
        .compat_access_token()
        .find_by_token(&access.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((token.id, token.session_id), (access.id, session.id));
    assert_eq!(token.expires_at, access.expires_at);
    assert!(token.is_valid(Utc::now()));
    let stored = repo
        .compat_session()
        .lookup(session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.device_id.as_deref(), Some("PHONE"));
    assert_eq!(stored.human_name, session.human_name);
    assert!(stored.is_synapse_admin && stored.is_active());
    assert_eq!(stored.last_activity, session.last_activity);
    assert_eq!(stored.user_agent.as_deref(), Some("Element/1.0"));
    let none = repo
        .compat_session()
        .lookup(deviceless.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(none.device_id, None);
    let rt = repo
        .compat_refresh_token()
        .find_by_token(&refresh.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rt.access_token_id, rt.consumed_at), (access.id, None));
    drop(repo);

    // A second move into a database that now holds users: the writer says so.
    let mut writer = db.factory.bulk_writer().await.unwrap();
    assert_eq!(writer.count_users().await.unwrap(), 2502);
    // The same username again is a conflict, and rolls back whole.
    let error = writer
        .users(&[user("carol", created), user("alice", created)])
        .await;
    assert!(
        matches!(error, Err(mas_storage::StorageError::Conflict(_))),
        "{error:?}"
    );
    drop(writer);
    let mut repo = db.factory.reader().await.unwrap();
    assert!(
        repo.user()
            .find_by_username("carol")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn a_rolled_back_bulk_write_leaves_nothing(db: &TestDb) {
    let mut writer: Box<dyn BulkWriter> = Box::new(db.factory.bulk_writer().await.unwrap());
    writer.users(&[user("dave", at(0))]).await.unwrap();
    assert_eq!(writer.count_users().await.unwrap(), 1);
    writer.rollback().await.unwrap();
    let mut repo = db.factory.reader().await.unwrap();
    assert_eq!(repo.user().count(&UserFilter::default()).await.unwrap(), 0);
    drop(repo);
    // And the database takes writes again, from the service and from another move.
    let mut writer: Box<dyn BulkWriter> = Box::new(db.factory.bulk_writer().await.unwrap());
    writer.users(&[user("dave", at(0))]).await.unwrap();
    writer.commit().await.unwrap();
    let mut repo = db.factory.begin().await.unwrap();
    let mut rng = crate::cases::rng();
    repo.user()
        .add(&mut rng, &mas_storage::MockClock::default(), "erin")
        .await
        .unwrap();
    repo.save().await.unwrap();
}
