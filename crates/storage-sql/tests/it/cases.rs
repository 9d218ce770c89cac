//! One function per repository (or behaviour), run on both backends.

use chrono::Duration;
use mas_data_model::{
    AuthenticationMethod, ClientAuthMethod, ClientKind, DeviceCodeGrantState, JobState, Pkce,
    ResponseMode,
};
use mas_storage::repository::{
    ClientParams, CompatRotation, CompatSessionFilter, NewAuthorizationGrant, NewCompatLogin,
    NewDeviceCodeGrant, NewJob, ProviderParams, RegistrationTokenFilter, SessionFilter, UserFilter,
    UserState,
};
use mas_storage::{Clock, MockClock, Pagination, RepositoryFactory, StorageError};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sea_orm::{ConnectionTrait, Statement};
use url::Url;

use crate::harness::TestDb;

pub fn rng() -> StdRng {
    StdRng::seed_from_u64(42)
}

pub fn client_params(auth_method: ClientAuthMethod) -> ClientParams {
    ClientParams {
        auth_method,
        encrypted_secret: None,
        jwks: None,
        jwks_uri: None,
        redirect_uris: vec![Url::parse("https://app.example.com/cb").unwrap()],
        grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
        name: Some("App".to_owned()),
        client_uri: Some(Url::parse("https://app.example.com/").unwrap()),
        logo_uri: None,
        policy_uri: None,
        tos_uri: None,
        application_type: Some("web".to_owned()),
        contacts: vec!["ops@example.com".to_owned()],
        metadata: Some(serde_json::json!({"software_id": "x"})),
    }
}

pub async fn migrations_are_idempotent(db: &TestDb) {
    mas_storage_sql::migrate(db.db()).await.unwrap();
    mas_storage_sql::migrate(db.db()).await.unwrap();
    assert!(
        mas_storage_sql::pending_migrations(db.db())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn users(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    assert!(alice.is_valid());
    assert_eq!(
        repo.user().lookup(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        repo.user().find_by_username("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(repo.user().find_by_username("bob").await.unwrap(), None);
    repo.save().await.unwrap();

    let mut repo = db.factory.begin().await.unwrap();
    let duplicate = repo.user().add(&mut rng, &clock, "alice").await;
    assert!(
        matches!(duplicate, Err(StorageError::Conflict(_))),
        "{duplicate:?}"
    );
    drop(repo);

    let mut repo = db.factory.begin().await.unwrap();
    clock.advance(Duration::seconds(10));
    let locked = repo.user().lock(&clock, alice.clone()).await.unwrap();
    assert_eq!(locked.locked_at, Some(clock_now(&clock)));
    assert!(!locked.is_valid());
    let relocked = repo.user().lock(&clock, locked.clone()).await.unwrap();
    assert_eq!(
        relocked.locked_at, locked.locked_at,
        "locking twice keeps the first time"
    );
    let deactivated = repo.user().deactivate(&clock, relocked).await.unwrap();
    assert!(deactivated.deactivated_at.is_some());
    let admin = repo
        .user()
        .set_can_request_admin(deactivated, true)
        .await
        .unwrap();
    assert!(admin.can_request_admin);
    assert_eq!(
        repo.user().lookup(alice.id).await.unwrap(),
        Some(admin.clone())
    );
    let unlocked = repo.user().unlock(admin).await.unwrap();
    let reactivated = repo.user().reactivate(unlocked).await.unwrap();
    assert!(reactivated.is_valid());
    assert_eq!(
        repo.user().lookup(alice.id).await.unwrap(),
        Some(reactivated)
    );
    repo.save().await.unwrap();
}

fn clock_now(clock: &MockClock) -> chrono::DateTime<chrono::Utc> {
    mas_storage::Clock::now(clock)
}

pub async fn user_listing_and_pagination(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let mut users = Vec::new();
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        clock.advance(Duration::seconds(1));
        users.push(repo.user().add(&mut rng, &clock, name).await.unwrap());
    }
    let u2 = repo.user().lock(&clock, users[1].clone()).await.unwrap();
    repo.user()
        .set_can_request_admin(users[4].clone(), true)
        .await
        .unwrap();
    repo.save().await.unwrap();

    let mut repo = db.factory.reader().await.unwrap();
    let all = UserFilter::default();
    assert_eq!(repo.user().count(&all).await.unwrap(), 5);
    let locked = UserFilter {
        state: Some(UserState::Locked),
        ..UserFilter::default()
    };
    assert_eq!(repo.user().count(&locked).await.unwrap(), 1);
    let active = UserFilter {
        state: Some(UserState::Active),
        ..UserFilter::default()
    };
    assert_eq!(repo.user().count(&active).await.unwrap(), 4);
    let admins = UserFilter {
        can_request_admin: Some(true),
        ..UserFilter::default()
    };
    assert_eq!(repo.user().count(&admins).await.unwrap(), 1);

    let first = repo.user().list(&all, Pagination::first(2)).await.unwrap();
    let names: Vec<_> = first.edges.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["u1", "u2"]);
    assert!(first.has_next_page && !first.has_previous_page);
    let next = repo
        .user()
        .list(&all, Pagination::first(2).after(first.edges[1].id))
        .await
        .unwrap();
    let names: Vec<_> = next.edges.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["u3", "u4"]);
    assert!(next.has_next_page && next.has_previous_page);
    let last = repo.user().list(&all, Pagination::last(2)).await.unwrap();
    let names: Vec<_> = last.edges.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(
        names,
        ["u4", "u5"],
        "a backward page still reads oldest first"
    );
    assert!(last.has_previous_page && !last.has_next_page);
    let before = repo
        .user()
        .list(&all, Pagination::last(10).before(users[2].id))
        .await
        .unwrap();
    assert_eq!(before.edges.len(), 2);
    assert!(!before.has_previous_page);
    let locked_page = repo
        .user()
        .list(&locked, Pagination::first(10))
        .await
        .unwrap();
    assert_eq!(locked_page.edges, vec![u2]);
}

pub async fn passwords_and_emails(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let bob = repo.user().add(&mut rng, &clock, "bob").await.unwrap();
    assert_eq!(repo.user_password().active(&alice).await.unwrap(), None);
    let first = repo
        .user_password()
        .add(&mut rng, &clock, &alice, 1, "$2b$12$old".to_owned(), None)
        .await
        .unwrap();
    clock.advance(Duration::seconds(1));
    let upgraded = repo
        .user_password()
        .add(
            &mut rng,
            &clock,
            &alice,
            2,
            "$argon2id$new".to_owned(),
            Some(&first),
        )
        .await
        .unwrap();
    let active = repo.user_password().active(&alice).await.unwrap().unwrap();
    assert_eq!(active, upgraded);
    assert_eq!(active.upgraded_from_id, Some(first.id));
    assert_eq!(active.version, 2);
    // The login path's one read: the user with the newest password, or none.
    let (found, current) = repo
        .user_password()
        .find_user_with_active("alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, current), (alice.clone(), Some(upgraded.clone())));
    let (found, current) = repo
        .user_password()
        .find_user_with_active("bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, current), (bob.clone(), None));
    assert!(
        repo.user_password()
            .find_user_with_active("nobody")
            .await
            .unwrap()
            .is_none()
    );

    let email = repo
        .user_email()
        .add(&mut rng, &clock, &alice, "Alice@Example.com")
        .await
        .unwrap();
    assert_eq!(
        repo.user_email().lookup(email.id).await.unwrap(),
        Some(email.clone())
    );
    assert_eq!(
        repo.user_email()
            .find_by_email("alice@example.COM")
            .await
            .unwrap(),
        Some(email.clone()),
        "addresses match without regard to case"
    );
    repo.save().await.unwrap();
    let mut repo = db.factory.begin().await.unwrap();
    let taken = repo
        .user_email()
        .add(&mut rng, &clock, &bob, "ALICE@example.com")
        .await;
    assert!(matches!(taken, Err(StorageError::Conflict(_))), "{taken:?}");
    drop(repo);
    let mut repo = db.factory.begin().await.unwrap();
    let second = repo
        .user_email()
        .add(&mut rng, &clock, &alice, "a2@example.com")
        .await
        .unwrap();
    assert_eq!(
        repo.user_email().all(&alice).await.unwrap(),
        vec![email.clone(), second]
    );
    repo.user_email().remove(email).await.unwrap();
    assert_eq!(repo.user_email().all(&alice).await.unwrap().len(), 1);
    assert!(repo.user_email().all(&bob).await.unwrap().is_empty());
    repo.save().await.unwrap();
}

pub async fn browser_sessions(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let password = repo
        .user_password()
        .add(&mut rng, &clock, &alice, 1, "hash".to_owned(), None)
        .await
        .unwrap();
    let session = repo
        .browser_session()
        .add(&mut rng, &clock, &alice, Some("Firefox".to_owned()))
        .await
        .unwrap();
    assert_eq!(
        repo.browser_session().lookup(session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        repo.browser_session()
            .last_authentication(&session)
            .await
            .unwrap(),
        None
    );
    let by_password = repo
        .browser_session()
        .authenticate_with_password(&mut rng, &clock, &session, &password)
        .await
        .unwrap();
    assert_eq!(
        by_password.method,
        AuthenticationMethod::Password {
            password_id: password.id
        }
    );
    clock.advance(Duration::seconds(1));
    let link_id = ulid::Ulid::new();
    let upstream = repo
        .browser_session()
        .authenticate_with_upstream(&mut rng, &clock, &session, link_id)
        .await
        .unwrap();
    assert_eq!(
        repo.browser_session()
            .last_authentication(&session)
            .await
            .unwrap(),
        Some(upstream)
    );

    let at = clock_now(&clock);
    repo.browser_session()
        .record_activity(session.id, at, Some("10.0.0.1".to_owned()))
        .await
        .unwrap();
    let seen = repo
        .browser_session()
        .lookup(session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.last_activity.at, Some(at));
    assert_eq!(seen.last_activity.ip.as_deref(), Some("10.0.0.1"));

    let other = repo
        .browser_session()
        .add(&mut rng, &clock, &alice, None)
        .await
        .unwrap();
    let finished = repo
        .browser_session()
        .finish(&clock, session)
        .await
        .unwrap();
    assert!(!finished.is_active());
    let open = repo
        .browser_session()
        .list(&alice, true, Pagination::first(10))
        .await
        .unwrap();
    assert_eq!(
        open.edges.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![other.id]
    );
    let all = repo
        .browser_session()
        .list(&alice, false, Pagination::first(10))
        .await
        .unwrap();
    assert_eq!(all.edges.len(), 2);
    assert_eq!(
        repo.browser_session()
            .finish_all(&clock, &alice)
            .await
            .unwrap(),
        1
    );
    assert!(
        repo.browser_session()
            .list(&alice, true, Pagination::first(10))
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    repo.save().await.unwrap();
}

pub async fn registration_tokens(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let limited = repo
        .registration_token()
        .add(&mut rng, &clock, "ONCE", Some(1), None)
        .await
        .unwrap();
    let expiring = repo
        .registration_token()
        .add(
            &mut rng,
            &clock,
            "SOON",
            None,
            Some(clock_now(&clock) + Duration::hours(1)),
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    let mut repo = db.factory.begin().await.unwrap();
    assert!(matches!(
        repo.registration_token()
            .add(&mut rng, &clock, "ONCE", None, None)
            .await,
        Err(StorageError::Conflict(_))
    ));
    drop(repo);

    let mut repo = db.factory.begin().await.unwrap();
    assert_eq!(
        repo.registration_token()
            .find_by_token("ONCE")
            .await
            .unwrap(),
        Some(limited.clone())
    );
    let used = repo
        .registration_token()
        .use_token(&clock, &limited)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.times_used, 1);
    assert!(!used.is_valid(clock_now(&clock)));
    assert_eq!(
        repo.registration_token()
            .use_token(&clock, &limited)
            .await
            .unwrap(),
        None,
        "limit reached"
    );
    assert!(
        repo.registration_token()
            .use_token(&clock, &expiring)
            .await
            .unwrap()
            .is_some()
    );
    clock.advance(Duration::hours(2));
    assert_eq!(
        repo.registration_token()
            .use_token(&clock, &expiring)
            .await
            .unwrap(),
        None,
        "expired"
    );
    let unlimited = repo
        .registration_token()
        .add(&mut rng, &clock, "MANY", None, None)
        .await
        .unwrap();
    let revoked = repo
        .registration_token()
        .revoke(&clock, unlimited.clone())
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        repo.registration_token()
            .use_token(&clock, &unlimited)
            .await
            .unwrap(),
        None,
        "revoked"
    );
    assert_eq!(
        repo.registration_token().lookup(revoked.id).await.unwrap(),
        Some(revoked.clone())
    );
    let all = RegistrationTokenFilter::at(clock_now(&clock));
    let page = repo
        .registration_token()
        .list(all, Pagination::first(10))
        .await
        .unwrap();
    assert_eq!(page.edges.len(), 3);
    // ONCE: used up; SOON: used, expired; MANY: revoked, never used.
    for (filter, expected) in [
        (
            RegistrationTokenFilter {
                used: Some(true),
                ..all
            },
            2,
        ),
        (
            RegistrationTokenFilter {
                used: Some(false),
                ..all
            },
            1,
        ),
        (
            RegistrationTokenFilter {
                revoked: Some(true),
                ..all
            },
            1,
        ),
        (
            RegistrationTokenFilter {
                expired: Some(true),
                ..all
            },
            1,
        ),
        (
            RegistrationTokenFilter {
                expired: Some(false),
                ..all
            },
            2,
        ),
        (
            RegistrationTokenFilter {
                valid: Some(true),
                ..all
            },
            0,
        ),
        (
            RegistrationTokenFilter {
                valid: Some(false),
                ..all
            },
            3,
        ),
    ] {
        assert_eq!(
            repo.registration_token().count(filter).await.unwrap(),
            expected,
            "{filter:?}"
        );
    }
    // Lifting the revocation and a limit makes one valid again.
    let back = repo
        .registration_token()
        .unrevoke(revoked.clone())
        .await
        .unwrap();
    assert_eq!(back.revoked_at, None);
    let renewed = repo
        .registration_token()
        .set_limits(
            limited,
            Some(5),
            Some(clock_now(&clock) + Duration::days(1)),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.registration_token().lookup(renewed.id).await.unwrap(),
        Some(renewed.clone())
    );
    let valid = RegistrationTokenFilter {
        valid: Some(true),
        ..all
    };
    assert_eq!(repo.registration_token().count(valid).await.unwrap(), 2);
    repo.save().await.unwrap();
}

pub async fn clients(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let id: ulid::Ulid = "0000000000000000000SYNAPSE".parse().unwrap();
    let mut repo = db.factory.begin().await.unwrap();
    let mut params = client_params(ClientAuthMethod::ClientSecretBasic);
    params.encrypted_secret = Some("sealed".to_owned());
    let created = repo
        .client()
        .upsert_static(&clock, id, params.clone())
        .await
        .unwrap();
    assert_eq!(created.kind, ClientKind::Static);
    assert_eq!(
        repo.client().lookup(id).await.unwrap(),
        Some(created.clone())
    );

    clock.advance(Duration::hours(1));
    params
        .redirect_uris
        .push(Url::parse("http://127.0.0.1/cb").unwrap());
    let updated = repo
        .client()
        .upsert_static(&clock, id, params)
        .await
        .unwrap();
    assert_eq!(
        updated.created_at, created.created_at,
        "an update keeps the creation time"
    );
    assert_eq!(updated.redirect_uris.len(), 2);
    assert_eq!(
        repo.client().lookup(id).await.unwrap(),
        Some(updated.clone())
    );

    let dynamic = repo
        .client()
        .add_dynamic(&mut rng, &clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    assert_eq!(dynamic.kind, ClientKind::Dynamic);
    assert_eq!(
        repo.client().lookup(dynamic.id).await.unwrap(),
        Some(dynamic.clone())
    );
    assert_eq!(
        repo.client().all_static().await.unwrap(),
        vec![updated.clone()]
    );
    let clash = repo
        .client()
        .upsert_static(&clock, dynamic.id, client_params(ClientAuthMethod::None))
        .await;
    assert!(matches!(clash, Err(StorageError::Conflict(_))), "{clash:?}");
    assert_eq!(
        repo.client()
            .list(Pagination::first(10))
            .await
            .unwrap()
            .edges
            .len(),
        2
    );

    // Client assertions: a jti is accepted once per client until it expires.
    let expires = clock_now(&clock) + Duration::minutes(5);
    assert!(
        repo.client()
            .record_assertion(&mut rng, &clock, id, "jti-1", expires)
            .await
            .unwrap()
    );
    assert!(
        !repo
            .client()
            .record_assertion(&mut rng, &clock, id, "jti-1", expires)
            .await
            .unwrap(),
        "a replay"
    );
    assert!(
        repo.client()
            .record_assertion(&mut rng, &clock, dynamic.id, "jti-1", expires)
            .await
            .unwrap()
    );
    assert_eq!(
        repo.client()
            .cleanup_assertions(expires + Duration::seconds(1))
            .await
            .unwrap(),
        2
    );
    assert!(
        repo.client()
            .record_assertion(&mut rng, &clock, id, "jti-1", expires)
            .await
            .unwrap()
    );

    // Deleting a client takes its sessions and tokens with it.
    let session = repo
        .session()
        .add(&mut rng, &clock, id, None, None, "openid", None)
        .await
        .unwrap();
    repo.access_token()
        .add(&mut rng, &clock, &session, "mat_gone", None)
        .await
        .unwrap();
    repo.client().delete(updated).await.unwrap();
    assert_eq!(repo.client().lookup(id).await.unwrap(), None);
    assert_eq!(repo.session().lookup(session.id).await.unwrap(), None);
    assert_eq!(
        repo.access_token().find_by_token("mat_gone").await.unwrap(),
        None
    );
    repo.save().await.unwrap();
}

pub async fn authorization_grants(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let client = repo
        .client()
        .add_dynamic(&mut rng, &clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    let pkce = Pkce {
        method: "S256".to_owned(),
        challenge: "abc".to_owned(),
    };
    let grant = repo
        .authorization_grant()
        .add(
            &mut rng,
            &clock,
            NewAuthorizationGrant {
                client_id: client.id,
                redirect_uri: Url::parse("https://app.example.com/cb").unwrap(),
                scope: "openid urn:matrix:client:api:*".to_owned(),
                state: Some("st".to_owned()),
                nonce: Some("n".to_owned()),
                response_mode: ResponseMode::Query,
                response_type_id_token: false,
                pkce: Some(pkce.clone()),
                max_age: Some(60),
                login_hint: Some("alice".to_owned()),
                prompt: Some("consent".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(grant.code.as_ref().unwrap().pkce, Some(pkce));
    assert_eq!(
        repo.authorization_grant().lookup(grant.id).await.unwrap(),
        Some(grant.clone())
    );
    assert_eq!(
        repo.authorization_grant()
            .find_by_code("the-code")
            .await
            .unwrap(),
        None,
        "no code exists before consent"
    );

    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let session = repo
        .session()
        .add(
            &mut rng,
            &clock,
            client.id,
            Some(alice.id),
            None,
            &grant.scope,
            None,
        )
        .await
        .unwrap();
    let fulfilled = repo
        .authorization_grant()
        .fulfill(&clock, grant, &session, "the-code")
        .await
        .unwrap();
    assert_eq!(fulfilled.session_id, Some(session.id));
    assert_eq!(
        repo.authorization_grant()
            .find_by_code("the-code")
            .await
            .unwrap(),
        Some(fulfilled.clone())
    );
    assert_eq!(
        repo.authorization_grant()
            .find_by_code("other")
            .await
            .unwrap(),
        None
    );
    let exchanged = repo
        .authorization_grant()
        .exchange(&clock, fulfilled.clone())
        .await
        .unwrap();
    assert!(exchanged.unwrap().exchanged_at.is_some());
    assert_eq!(
        repo.authorization_grant()
            .exchange(&clock, fulfilled)
            .await
            .unwrap(),
        None,
        "a code is single-use"
    );

    let other = repo
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
                response_mode: ResponseMode::FormPost,
                response_type_id_token: true,
                pkce: None,
                max_age: None,
                login_hint: None,
                prompt: None,
            },
        )
        .await
        .unwrap();
    let cancelled = repo
        .authorization_grant()
        .cancel(&clock, other)
        .await
        .unwrap();
    assert_eq!(
        repo.authorization_grant()
            .lookup(cancelled.id)
            .await
            .unwrap(),
        Some(cancelled.clone())
    );
    // A grant is answered once: neither consent nor refusal after a refusal, and no
    // refusal after a consent (its code would be cancelled under the client's feet).
    let mut grants = repo.authorization_grant();
    let again = grants.cancel(&clock, cancelled.clone()).await;
    assert!(
        matches!(again, Err(StorageError::InvalidData { .. })),
        "{again:?}"
    );
    let late = grants.fulfill(&clock, cancelled, &session, "late").await;
    assert!(
        matches!(late, Err(StorageError::InvalidData { .. })),
        "{late:?}"
    );
    let consented = grants.find_by_code("the-code").await.unwrap().unwrap();
    let refused = grants.cancel(&clock, consented).await;
    assert!(
        matches!(refused, Err(StorageError::InvalidData { .. })),
        "{refused:?}"
    );
    drop(grants);
    repo.save().await.unwrap();
}

pub async fn oauth2_sessions_and_tokens(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let client = repo
        .client()
        .add_dynamic(&mut rng, &clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let browser = repo
        .browser_session()
        .add(&mut rng, &clock, &alice, None)
        .await
        .unwrap();
    let session = repo
        .session()
        .add(
            &mut rng,
            &clock,
            client.id,
            Some(alice.id),
            Some(browser.id),
            "openid",
            Some("UA".to_owned()),
        )
        .await
        .unwrap();
    clock.advance(Duration::seconds(1));
    let machine = repo
        .session()
        .add(
            &mut rng,
            &clock,
            client.id,
            None,
            None,
            "urn:mas:admin",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        repo.session().lookup(session.id).await.unwrap(),
        Some(session.clone())
    );
    let mine = SessionFilter {
        user_id: Some(alice.id),
        ..SessionFilter::default()
    };
    assert_eq!(repo.session().count(mine).await.unwrap(), 1);
    let of_client = SessionFilter {
        client_id: Some(client.id),
        ..SessionFilter::default()
    };
    assert_eq!(
        repo.session()
            .list(of_client, Pagination::first(10))
            .await
            .unwrap()
            .edges,
        vec![session.clone(), machine.clone()]
    );

    let access = repo
        .access_token()
        .add(
            &mut rng,
            &clock,
            &session,
            "mat_access",
            Some(Duration::minutes(5)),
        )
        .await
        .unwrap();
    assert_eq!(
        access.expires_at,
        Some(access.created_at + Duration::minutes(5))
    );
    assert_eq!(
        repo.access_token()
            .find_by_token("mat_access")
            .await
            .unwrap(),
        Some(access.clone())
    );
    assert_eq!(
        repo.access_token().lookup(access.id).await.unwrap(),
        Some(access.clone())
    );
    assert!(access.is_valid(clock_now(&clock)));
    let used = repo
        .access_token()
        .mark_used(&clock, access.clone())
        .await
        .unwrap();
    assert!(used.first_used_at.is_some());
    assert_eq!(
        repo.access_token()
            .find_by_token("mat_access")
            .await
            .unwrap(),
        Some(used.clone())
    );
    let refresh = repo
        .refresh_token()
        .add(&mut rng, &clock, &session, &access, "mar_refresh")
        .await
        .unwrap();
    assert_eq!(
        repo.refresh_token()
            .find_by_token("mar_refresh")
            .await
            .unwrap(),
        Some(refresh.clone())
    );
    assert_eq!(
        repo.refresh_token().lookup(refresh.id).await.unwrap(),
        Some(refresh.clone())
    );

    // Rotation: the old token is consumed once, pointing at its successor.
    let access2 = repo
        .access_token()
        .add(&mut rng, &clock, &session, "mat_access2", None)
        .await
        .unwrap();
    let refresh2 = repo
        .refresh_token()
        .add(&mut rng, &clock, &session, &access2, "mar_refresh2")
        .await
        .unwrap();
    let consumed = repo
        .refresh_token()
        .consume(&clock, refresh.clone(), &refresh2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(consumed.next_token_id, Some(refresh2.id));
    assert!(!consumed.is_valid());
    assert_eq!(
        repo.refresh_token()
            .consume(&clock, refresh, &refresh2)
            .await
            .unwrap(),
        None
    );

    let revoked = repo.access_token().revoke(&clock, used).await.unwrap();
    assert!(!revoked.is_valid(clock_now(&clock)));
    assert_eq!(
        repo.access_token()
            .revoke_all_in_session(&clock, session.id)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        repo.refresh_token()
            .revoke_all_in_session(&clock, session.id)
            .await
            .unwrap(),
        2
    );
    assert!(
        repo.refresh_token()
            .lookup(refresh2.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    clock.advance(Duration::hours(1));
    let at = clock_now(&clock);
    repo.session()
        .record_activity(session.id, at, Some("192.0.2.1".to_owned()))
        .await
        .unwrap();
    assert_eq!(
        repo.session()
            .lookup(session.id)
            .await
            .unwrap()
            .unwrap()
            .last_activity
            .at,
        Some(at)
    );
    let finished = repo.session().finish(&clock, session).await.unwrap();
    assert!(!finished.is_active());
    let open = SessionFilter {
        active: Some(true),
        ..SessionFilter::default()
    };
    assert_eq!(repo.session().count(open).await.unwrap(), 1);
    assert_eq!(
        repo.session().finish_all(&clock, of_client).await.unwrap(),
        1
    );
    assert_eq!(repo.session().count(open).await.unwrap(), 0);

    clock.advance(Duration::hours(1));
    assert_eq!(
        repo.access_token()
            .cleanup(clock_now(&clock))
            .await
            .unwrap(),
        2,
        "revoked tokens are cleaned up"
    );
    assert_eq!(repo.access_token().lookup(access.id).await.unwrap(), None);
    repo.save().await.unwrap();
}

pub async fn refresh_token_cleanup_keeps_replay_evidence(db: &TestDb) {
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
    let mut tokens = Vec::new();
    for i in 0..4 {
        let access = repo
            .access_token()
            .add(&mut rng, &clock, &session, &format!("mat_{i}"), None)
            .await
            .unwrap();
        tokens.push(
            repo.refresh_token()
                .add(&mut rng, &clock, &session, &access, &format!("mar_{i}"))
                .await
                .unwrap(),
        );
    }
    for pair in tokens.windows(2) {
        repo.refresh_token()
            .consume(&clock, pair[0].clone(), &pair[1])
            .await
            .unwrap()
            .unwrap();
    }
    clock.advance(Duration::days(1));
    // Tokens 0 and 1 are consumed with consumed successors: gone. Token 2 is consumed but
    // its successor is live: kept, so presenting it again is recognised. Token 3 is live.
    assert_eq!(
        repo.refresh_token()
            .cleanup(clock_now(&clock))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        repo.refresh_token().lookup(tokens[0].id).await.unwrap(),
        None
    );
    assert!(
        repo.refresh_token()
            .find_by_token("mar_2")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        repo.refresh_token()
            .find_by_token("mar_3")
            .await
            .unwrap()
            .is_some()
    );
    repo.save().await.unwrap();
}

pub async fn device_code_grants(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let client = repo
        .client()
        .add_dynamic(&mut rng, &clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let browser = repo
        .browser_session()
        .add(&mut rng, &clock, &alice, None)
        .await
        .unwrap();
    let new = |user_code: &str, device_code: &str| NewDeviceCodeGrant {
        client_id: client.id,
        scope: "openid".to_owned(),
        device_code: device_code.to_owned(),
        user_code: user_code.to_owned(),
        expires_in: Duration::minutes(10),
        ip_address: Some("203.0.113.9".to_owned()),
        user_agent: Some("TV".to_owned()),
    };
    let grant = repo
        .device_code_grant()
        .add(&mut rng, &clock, new("ABCD-EFGH", "dev-1"))
        .await
        .unwrap();
    assert_eq!(grant.state, DeviceCodeGrantState::Pending);
    assert_eq!(grant.expires_at, grant.created_at + Duration::minutes(10));
    // Polls closer together than the interval are refused and not recorded.
    let gap = Duration::seconds(4);
    let mut polls = Vec::new();
    for advance in [0, 3, 1, 0] {
        clock.advance(Duration::seconds(advance));
        polls.push(
            repo.device_code_grant()
                .record_poll(&clock, &grant, gap)
                .await
                .unwrap(),
        );
    }
    // First poll; 3 s later too soon; 4 s after the first allowed; at once again too soon.
    assert_eq!(polls, [true, false, true, false]);
    assert_eq!(
        repo.device_code_grant()
            .find_by_user_code("ABCD-EFGH")
            .await
            .unwrap(),
        Some(grant.clone())
    );
    assert_eq!(
        repo.device_code_grant()
            .find_by_device_code("dev-1")
            .await
            .unwrap(),
        Some(grant.clone())
    );
    assert_eq!(
        repo.device_code_grant().lookup(grant.id).await.unwrap(),
        Some(grant.clone())
    );
    repo.save().await.unwrap();
    let mut repo = db.factory.begin().await.unwrap();
    assert!(matches!(
        repo.device_code_grant()
            .add(&mut rng, &clock, new("ABCD-EFGH", "dev-2"))
            .await,
        Err(StorageError::Conflict(_))
    ));
    drop(repo);

    let mut repo = db.factory.begin().await.unwrap();
    let session = repo
        .session()
        .add(
            &mut rng,
            &clock,
            client.id,
            Some(alice.id),
            None,
            "openid",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        repo.device_code_grant()
            .exchange(&clock, grant.clone(), &session)
            .await
            .unwrap(),
        None,
        "not yet approved"
    );
    let fulfilled = repo
        .device_code_grant()
        .fulfill(&clock, grant.clone(), browser.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fulfilled.state, DeviceCodeGrantState::Fulfilled);
    assert_eq!(
        repo.device_code_grant()
            .reject(&clock, fulfilled.clone(), browser.id)
            .await
            .unwrap(),
        None
    );
    let exchanged = repo
        .device_code_grant()
        .exchange(&clock, fulfilled.clone(), &session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exchanged.state, DeviceCodeGrantState::Exchanged);
    assert_eq!(exchanged.session_id, Some(session.id));
    assert_eq!(
        repo.device_code_grant()
            .exchange(&clock, fulfilled, &session)
            .await
            .unwrap(),
        None
    );

    let other = repo
        .device_code_grant()
        .add(&mut rng, &clock, new("WXYZ-1234", "dev-3"))
        .await
        .unwrap();
    let rejected = repo
        .device_code_grant()
        .reject(&clock, other, browser.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rejected.state, DeviceCodeGrantState::Rejected);
    repo.save().await.unwrap();
}

pub async fn compat_sessions_and_tokens(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let session = repo
        .compat_session()
        .add(
            &mut rng,
            &clock,
            &alice,
            Some("DEVICE1".to_owned()),
            None,
            false,
            Some("Phone".to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.compat_session().lookup(session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        repo.compat_session()
            .find_active_by_device(&alice, "DEVICE1")
            .await
            .unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        repo.compat_session()
            .find_active_by_device(&alice, "OTHER")
            .await
            .unwrap(),
        None
    );
    repo.save().await.unwrap();
    // One open session per user and device: a second one conflicts (and spoils its
    // unit of work, which is rolled back).
    let mut other = db.factory.begin().await.unwrap();
    let second = other
        .compat_session()
        .add(
            &mut rng,
            &clock,
            &alice,
            Some("DEVICE1".to_owned()),
            None,
            false,
            None,
        )
        .await;
    assert!(
        matches!(second, Err(StorageError::Conflict(_))),
        "{second:?}"
    );
    drop(other);
    let mut repo = db.factory.begin().await.unwrap();

    let access = repo
        .compat_access_token()
        .add(
            &mut rng,
            &clock,
            &session,
            "mct_a",
            Some(Duration::minutes(5)),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.compat_access_token()
            .find_by_token("mct_a")
            .await
            .unwrap(),
        Some(access.clone())
    );
    assert_eq!(
        repo.compat_access_token().lookup(access.id).await.unwrap(),
        Some(access.clone())
    );
    // The introspection lookup: token, session and user from one joined row.
    assert_eq!(
        repo.compat_access_token()
            .find_with_session("mct_a")
            .await
            .unwrap(),
        Some((access.clone(), session.clone(), alice.clone()))
    );
    assert_eq!(
        repo.compat_access_token()
            .find_with_session("mct_unknown")
            .await
            .unwrap(),
        None
    );
    let refresh = repo
        .compat_refresh_token()
        .add(&mut rng, &clock, &session, &access, "mcr_r")
        .await
        .unwrap();
    assert_eq!(
        repo.compat_refresh_token()
            .find_by_token("mcr_r")
            .await
            .unwrap(),
        Some(refresh.clone())
    );
    assert_eq!(
        repo.compat_refresh_token()
            .lookup(refresh.id)
            .await
            .unwrap(),
        Some(refresh.clone())
    );
    // Exchanged once; its access token expires with it.
    let rotation = CompatRotation {
        presented: "mcr_r",
        access_token: "mct_b",
        ttl: None,
        refresh_token: "mcr_s",
    };
    assert!(
        repo.compat_refresh_token()
            .rotate(&mut rng, &clock, rotation)
            .await
            .unwrap()
            .is_some()
    );
    let rotation = CompatRotation {
        access_token: "mct_c",
        refresh_token: "mcr_t",
        ..rotation
    };
    assert!(
        repo.compat_refresh_token()
            .rotate(&mut rng, &clock, rotation)
            .await
            .unwrap()
            .is_none()
    );
    let expired = repo
        .compat_access_token()
        .lookup(access.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!expired.is_valid(clock_now(&clock)));

    let at = clock_now(&clock);
    repo.compat_session()
        .record_activity(session.id, at, None)
        .await
        .unwrap();
    let filter = CompatSessionFilter {
        user_id: Some(alice.id),
        active: Some(true),
    };
    assert_eq!(repo.compat_session().count(filter).await.unwrap(), 1);
    let second = repo
        .compat_session()
        .add(
            &mut rng,
            &clock,
            &alice,
            Some("DEVICE2".to_owned()),
            None,
            true,
            None,
        )
        .await
        .unwrap();
    assert!(second.is_synapse_admin);
    let finished = repo.compat_session().finish(&clock, session).await.unwrap();
    assert!(!finished.is_active());
    assert_eq!(
        repo.compat_session()
            .find_active_by_device(&alice, "DEVICE1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.compat_session()
            .list(filter, Pagination::first(10))
            .await
            .unwrap()
            .edges,
        vec![second]
    );
    assert_eq!(
        repo.compat_session()
            .finish_all(&clock, filter)
            .await
            .unwrap(),
        1
    );
    assert_eq!(repo.compat_session().count(filter).await.unwrap(), 0);

    let login = repo
        .compat_sso_login()
        .add(
            &mut rng,
            &clock,
            "login-token",
            Url::parse("https://client.example.com/sso").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.compat_sso_login()
            .find_by_token("login-token")
            .await
            .unwrap(),
        Some(login.clone())
    );
    assert_eq!(
        repo.compat_sso_login()
            .exchange(&clock, login.clone())
            .await
            .unwrap(),
        None,
        "not fulfilled yet"
    );
    let sso_session = repo
        .compat_session()
        .add(
            &mut rng,
            &clock,
            &alice,
            Some("SSO".to_owned()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    let fulfilled = repo
        .compat_sso_login()
        .fulfill(&clock, login.clone(), &sso_session, "handed-out")
        .await
        .unwrap()
        .expect("not fulfilled before");
    assert_eq!(
        repo.compat_sso_login()
            .fulfill(&clock, login, &sso_session, "second")
            .await
            .unwrap(),
        None,
        "a login is completed once"
    );
    // The token the client gets is the one set at completion; the first one is dead.
    assert!(
        repo.compat_sso_login()
            .find_by_token("login-token")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        repo.compat_sso_login()
            .find_by_token("handed-out")
            .await
            .unwrap()
            .map(|l| l.id),
        Some(fulfilled.id)
    );
    assert!(
        repo.compat_sso_login()
            .exchange(&clock, fulfilled.clone())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        repo.compat_sso_login()
            .exchange(&clock, fulfilled.clone())
            .await
            .unwrap(),
        None
    );
    assert!(
        repo.compat_sso_login()
            .lookup(fulfilled.id)
            .await
            .unwrap()
            .unwrap()
            .exchanged_at
            .is_some()
    );

    // Cleanup: a completed login whose token nobody took ends its session; an
    // exchanged one keeps its session; old logins are deleted.
    let abandoned_session = repo
        .compat_session()
        .add(
            &mut rng,
            &clock,
            &alice,
            Some("SSO2".to_owned()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    let started = repo
        .compat_sso_login()
        .add(
            &mut rng,
            &clock,
            "placeholder-2",
            Url::parse("https://client.example.com/sso").unwrap(),
        )
        .await
        .unwrap();
    repo.compat_sso_login()
        .fulfill(&clock, started, &abandoned_session, "never-taken")
        .await
        .unwrap()
        .unwrap();
    clock.advance(Duration::minutes(10));
    let (ended, deleted) = repo
        .compat_sso_login()
        .cleanup(
            &clock,
            mas_storage::Clock::now(&clock) - Duration::minutes(5),
            mas_storage::Clock::now(&clock) - Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!((ended, deleted), (1, 0));
    assert!(
        !repo
            .compat_session()
            .lookup(abandoned_session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    assert!(
        repo.compat_session()
            .lookup(sso_session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active(),
        "the exchanged login's session stays"
    );
    clock.advance(Duration::hours(2));
    let (_, deleted) = repo
        .compat_sso_login()
        .cleanup(
            &clock,
            mas_storage::Clock::now(&clock) - Duration::minutes(5),
            mas_storage::Clock::now(&clock) - Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    repo.save().await.unwrap();
}

pub async fn personal_sessions(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let admin = repo.user().add(&mut rng, &clock, "admin").await.unwrap();
    let bot = repo.user().add(&mut rng, &clock, "bot").await.unwrap();
    let session = repo
        .personal_session()
        .add(
            &mut rng,
            &clock,
            mas_data_model::PersonalSessionOwner::User(admin.id),
            &bot,
            "CI bot",
            "urn:matrix:client:api:*",
        )
        .await
        .unwrap();
    assert_eq!(
        repo.personal_session().lookup(session.id).await.unwrap(),
        Some(session.clone())
    );
    let token = repo
        .personal_access_token()
        .add(
            &mut rng,
            &clock,
            &session,
            "mpt_x",
            Some(Duration::days(30)),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.personal_access_token()
            .find_by_token("mpt_x")
            .await
            .unwrap(),
        Some(token.clone())
    );
    assert_eq!(
        repo.personal_access_token().lookup(token.id).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(
        repo.personal_access_token()
            .active_for_session(&session)
            .await
            .unwrap(),
        Some(token.clone())
    );
    let revoked = repo
        .personal_access_token()
        .revoke(&clock, token)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        repo.personal_access_token()
            .active_for_session(&session)
            .await
            .unwrap(),
        None
    );

    // A client may own a session too; filters tell the owners apart.
    let client = ulid::Ulid::new();
    let owned_by_client = repo
        .personal_session()
        .add(
            &mut rng,
            &clock,
            mas_data_model::PersonalSessionOwner::Client(client),
            &bot,
            "deploy",
            "urn:mas:admin",
        )
        .await
        .unwrap();
    assert_eq!(
        repo.personal_session()
            .lookup(owned_by_client.id)
            .await
            .unwrap()
            .unwrap()
            .owner,
        mas_data_model::PersonalSessionOwner::Client(client)
    );
    let by = |owner_user_id, owner_client_id| mas_storage::repository::PersonalSessionFilter {
        owner_user_id,
        owner_client_id,
        actor_user_id: Some(bot.id),
        active: Some(true),
    };
    for (filter, expected) in [
        (by(Some(admin.id), None), vec![session.id]),
        (by(None, Some(client)), vec![owned_by_client.id]),
        (by(Some(bot.id), None), vec![]),
        (by(None, None), {
            let mut both = vec![session.id, owned_by_client.id];
            both.sort();
            both
        }),
    ] {
        let page = repo
            .personal_session()
            .list_by(filter, Pagination::first(10))
            .await
            .unwrap();
        let ids: Vec<_> = page.edges.iter().map(|s| s.id).collect();
        assert_eq!(ids, expected, "{filter:?}");
        assert_eq!(
            repo.personal_session().count(filter).await.unwrap(),
            expected.len() as u64
        );
    }
    repo.personal_session()
        .revoke(&clock, owned_by_client)
        .await
        .unwrap();
    let of_bot = repo
        .personal_session()
        .list(&bot, Pagination::first(5))
        .await
        .unwrap()
        .edges;
    assert_eq!(of_bot.len(), 2);
    assert!(of_bot.contains(&session));
    assert!(
        repo.personal_session()
            .list(&admin, Pagination::first(5))
            .await
            .unwrap()
            .edges
            .is_empty()
    );
    let revoked = repo
        .personal_session()
        .revoke(&clock, session)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    repo.save().await.unwrap();
}

pub async fn upstream_providers_and_links(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let id = ulid::Ulid::new();
    let params = ProviderParams {
        ui_order: 0,
        issuer: Some("https://idp.example.com/".to_owned()),
        human_name: Some("IdP".to_owned()),
        client_id: "mas".to_owned(),
        encrypted_client_secret: Some("sealed".to_owned()),
        config: serde_json::json!({"scope": "openid"}),
    };
    let provider = repo
        .upstream_provider()
        .upsert(&clock, id, params.clone())
        .await
        .unwrap();
    assert_eq!(
        repo.upstream_provider().lookup(id).await.unwrap(),
        Some(provider.clone())
    );
    clock.advance(Duration::minutes(1));
    let updated = repo
        .upstream_provider()
        .upsert(
            &clock,
            id,
            ProviderParams {
                ui_order: 0,
                human_name: Some("Renamed".to_owned()),
                ..params
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.created_at, provider.created_at);
    assert_eq!(
        repo.upstream_provider().all().await.unwrap(),
        vec![updated.clone()]
    );

    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let link = repo
        .upstream_link()
        .add(
            &mut rng,
            &clock,
            &updated,
            "sub-1",
            Some("alice@idp".to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.upstream_link()
            .find_by_subject(&updated, "sub-1")
            .await
            .unwrap(),
        Some(link.clone())
    );
    repo.save().await.unwrap();
    let mut repo = db.factory.begin().await.unwrap();
    assert!(matches!(
        repo.upstream_link()
            .add(&mut rng, &clock, &updated, "sub-1", None)
            .await,
        Err(StorageError::Conflict(_))
    ));
    drop(repo);
    let mut repo = db.factory.begin().await.unwrap();
    let linked = repo.upstream_link().associate(link, &alice).await.unwrap();
    assert_eq!(
        repo.upstream_link().lookup(linked.id).await.unwrap(),
        Some(linked.clone())
    );
    assert_eq!(
        repo.upstream_link().all_for_user(&alice).await.unwrap(),
        vec![linked.clone()]
    );
    let disabled = repo
        .upstream_provider()
        .disable(&clock, updated)
        .await
        .unwrap();
    assert!(disabled.disabled_at.is_some());
    repo.upstream_provider().delete(disabled).await.unwrap();
    assert_eq!(
        repo.upstream_link().lookup(linked.id).await.unwrap(),
        None,
        "links go with the provider"
    );
    repo.save().await.unwrap();
}

/// A provider as `config sync` stores one, with nothing but a client ID.
pub async fn stored_provider(
    repo: &mut mas_storage::BoxRepository,
    clock: &dyn Clock,
    id: ulid::Ulid,
) -> mas_data_model::UpstreamOAuthProvider {
    repo.upstream_provider()
        .upsert(
            clock,
            id,
            ProviderParams {
                ui_order: 0,
                issuer: None,
                human_name: None,
                client_id: "mas".to_owned(),
                encrypted_client_secret: None,
                config: serde_json::json!({}),
            },
        )
        .await
        .unwrap()
}

pub async fn upstream_trips(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let provider = stored_provider(&mut repo, &clock, ulid::Ulid::new()).await;
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let trip = repo
        .upstream_session()
        .add(
            &mut rng,
            &clock,
            &provider,
            "state-1".to_owned(),
            "nonce-1".to_owned(),
            Some("verifier".to_owned()),
            "/account/".to_owned(),
        )
        .await
        .unwrap();
    let abandoned = repo
        .upstream_session()
        .add(
            &mut rng,
            &clock,
            &provider,
            "state-2".to_owned(),
            "nonce-2".to_owned(),
            None,
            "/".to_owned(),
        )
        .await
        .unwrap();
    assert_eq!(
        repo.upstream_session()
            .find_by_state(&provider, "state-1")
            .await
            .unwrap(),
        Some(trip.clone())
    );
    let claimed = repo
        .upstream_session()
        .claim(&clock, trip.clone())
        .await
        .unwrap()
        .expect("the first answer is taken");
    assert!(
        repo.upstream_session()
            .claim(&clock, trip)
            .await
            .unwrap()
            .is_none(),
        "an answer is taken once"
    );
    let link = repo
        .upstream_link()
        .add(&mut rng, &clock, &provider, "sub-1", None)
        .await
        .unwrap();
    let link = repo.upstream_link().associate(link, &alice).await.unwrap();
    let answered = repo
        .upstream_session()
        .record_answer(
            claimed,
            mas_storage::repository::UpstreamAnswer {
                link: link.clone(),
                id_token: Some("a.b.c".to_owned()),
                claims: serde_json::json!({"user": {"sub": "sub-1"}}),
                sid: Some("sid-1".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        repo.upstream_session().lookup(answered.id).await.unwrap(),
        Some(answered.clone())
    );
    let browser = repo
        .browser_session()
        .add(&mut rng, &clock, &alice, None)
        .await
        .unwrap();
    let used = repo
        .upstream_session()
        .consume(&clock, answered.clone(), &browser)
        .await
        .unwrap()
        .expect("used once");
    assert_eq!(used.browser_session_id, Some(browser.id));
    assert!(
        repo.upstream_session()
            .consume(&clock, answered, &browser)
            .await
            .unwrap()
            .is_none()
    );
    let by_sid = repo
        .upstream_session()
        .find_for_logout(&provider, Some("sid-1"), None)
        .await
        .unwrap();
    assert_eq!(by_sid, vec![used.clone()]);
    let by_link = repo
        .upstream_session()
        .find_for_logout(&provider, None, Some(&link))
        .await
        .unwrap();
    assert_eq!(by_link, vec![used.clone()]);
    assert!(
        repo.upstream_session()
            .find_for_logout(&provider, Some("other"), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        repo.upstream_link()
            .unlink_user(&provider, &alice)
            .await
            .unwrap(),
        1
    );
    clock.advance(Duration::hours(2));
    let removed = repo
        .upstream_session()
        .cleanup(clock.now() - Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(removed, 1, "only the trip that signed no one in goes");
    assert!(
        repo.upstream_session()
            .lookup(abandoned.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        repo.upstream_session()
            .lookup(used.id)
            .await
            .unwrap()
            .is_some()
    );

    // Listing and removing links; the trips that came back with one stay, detached.
    let of_provider = mas_storage::repository::UpstreamOAuthLinkFilter {
        provider_id: Some(provider.id),
        ..Default::default()
    };
    let by_subject = mas_storage::repository::UpstreamOAuthLinkFilter {
        subject: Some(link.subject.clone()),
        ..Default::default()
    };
    assert_eq!(repo.upstream_link().count(&of_provider).await.unwrap(), 1);
    let listed = repo
        .upstream_link()
        .list(&by_subject, Pagination::first(5))
        .await
        .unwrap();
    assert_eq!(listed.edges.len(), 1);
    repo.upstream_link()
        .remove(listed.edges[0].clone())
        .await
        .unwrap();
    assert_eq!(repo.upstream_link().count(&of_provider).await.unwrap(), 0);
    let detached = repo
        .upstream_session()
        .lookup(used.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detached.link_id, None);
    assert_eq!(repo.upstream_provider().count(Some(true)).await.unwrap(), 1);
    assert_eq!(
        repo.upstream_provider().count(Some(false)).await.unwrap(),
        0
    );
    let page = repo
        .upstream_provider()
        .list(None, Pagination::first(5))
        .await
        .unwrap();
    assert_eq!(page.edges, vec![provider.clone()]);
    repo.save().await.unwrap();
}

pub async fn jobs(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let now_job = repo
        .job()
        .schedule(
            &mut rng,
            &clock,
            NewJob {
                queue: "provision".to_owned(),
                payload: serde_json::json!({"user": "alice"}),
                run_at: None,
            },
        )
        .await
        .unwrap();
    let later = repo
        .job()
        .schedule(
            &mut rng,
            &clock,
            NewJob {
                queue: "provision".to_owned(),
                payload: serde_json::json!(1),
                run_at: Some(clock_now(&clock) + Duration::minutes(5)),
            },
        )
        .await
        .unwrap();
    repo.job()
        .schedule(
            &mut rng,
            &clock,
            NewJob {
                queue: "other".to_owned(),
                payload: serde_json::json!(null),
                run_at: None,
            },
        )
        .await
        .unwrap();
    repo.save().await.unwrap();

    let mut repo = db.factory.begin().await.unwrap();
    // Waiting: due or not, any queue.
    assert_eq!(repo.job().count_waiting().await.unwrap(), 3);
    let claimed = repo
        .job()
        .claim(&clock, &["provision"], 10, Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![now_job.id],
        "only due jobs of the queue"
    );
    assert_eq!(repo.job().count_waiting().await.unwrap(), 2);
    assert_eq!(claimed[0].state, JobState::Running);
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[0].payload, serde_json::json!({"user": "alice"}));
    assert!(
        repo.job()
            .claim(&clock, &["provision"], 10, Duration::seconds(30))
            .await
            .unwrap()
            .is_empty()
    );

    // The worker died: once its lease runs out the job is claimed again.
    clock.advance(Duration::seconds(31));
    let again = repo
        .job()
        .claim(&clock, &["provision"], 1, Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(again[0].id, now_job.id);
    assert_eq!(again[0].attempts, 2);
    let retry_at = clock_now(&clock) + Duration::seconds(10);
    let failed = repo
        .job()
        .fail(&clock, again[0].clone(), "homeserver down", Some(retry_at))
        .await
        .unwrap();
    assert_eq!(failed.state, JobState::Available);
    assert!(
        repo.job()
            .claim(&clock, &["provision"], 1, Duration::seconds(30))
            .await
            .unwrap()
            .is_empty()
    );
    clock.advance(Duration::minutes(6));
    let due = repo
        .job()
        .claim(&clock, &["provision"], 10, Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![now_job.id, later.id]
    );
    let done = repo.job().complete(&clock, due[0].clone()).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    let gave_up = repo
        .job()
        .fail(&clock, due[1].clone(), "bad payload", None)
        .await
        .unwrap();
    assert_eq!(gave_up.state, JobState::Failed);
    let stored = repo.job().lookup(later.id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Failed);
    assert_eq!(stored.last_error.as_deref(), Some("bad payload"));
    assert!(
        repo.job()
            .claim(&clock, &["provision"], 10, Duration::seconds(30))
            .await
            .unwrap()
            .is_empty()
    );
    repo.save().await.unwrap();
}

pub async fn dropped_unit_of_work_rolls_back(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    repo.user().add(&mut rng, &clock, "ghost").await.unwrap();
    drop(repo);
    let mut reader = db.factory.reader().await.unwrap();
    assert_eq!(reader.user().find_by_username("ghost").await.unwrap(), None);
    let mut repo = db.factory.begin().await.unwrap();
    repo.user().add(&mut rng, &clock, "kept").await.unwrap();
    repo.save().await.unwrap();
    assert!(
        reader
            .user()
            .find_by_username("kept")
            .await
            .unwrap()
            .is_some()
    );

    // After a failed statement the unit of work cannot be saved, on either backend:
    // PostgreSQL would silently roll back at COMMIT, SQLite would keep half of it.
    let mut repo = db.factory.begin().await.unwrap();
    repo.user().add(&mut rng, &clock, "half").await.unwrap();
    assert!(matches!(
        repo.user().add(&mut rng, &clock, "kept").await,
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(repo.save().await, Err(StorageError::Aborted)));
    assert_eq!(reader.user().find_by_username("half").await.unwrap(), None);
}

pub async fn tokens_are_stored_as_hashes(db: &TestDb) {
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
    let token = "mat_PLAINTEXTSECRETPLAINTEXTSECR_000000";
    repo.access_token()
        .add(&mut rng, &clock, &session, token, None)
        .await
        .unwrap();
    repo.save().await.unwrap();

    let backend = db.db().get_database_backend();
    let rows = db
        .db()
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT token_hash FROM oauth2_access_tokens",
        ))
        .await
        .unwrap();
    let stored: Vec<u8> = rows[0].try_get_by_index(0).unwrap();
    let expected = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    assert_eq!(
        stored,
        expected.as_ref(),
        "the column holds SHA-256 of the token"
    );
    assert!(!String::from_utf8_lossy(&stored).contains("PLAINTEXT"));
}

/// A login's session and tokens are stored together or not at all, from a reader (one
/// statement on PostgreSQL) or inside a transaction.
pub async fn compat_logins_are_stored_whole(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    repo.save().await.unwrap();
    let login = |device_id, access_token, refresh_token| NewCompatLogin {
        user: &alice,
        device_id,
        human_name: Some("Phone"),
        access_token,
        ttl: Some(Duration::minutes(5)),
        refresh_token,
    };
    let alices = CompatSessionFilter {
        user_id: Some(alice.id),
        active: None,
    };

    let mut reader = db.factory.reader().await.unwrap();
    let stored = reader
        .compat_session()
        .add_with_tokens(&mut rng, &clock, login("D1", "mct_1", Some("mcr_1")))
        .await
        .unwrap();
    reader.save().await.unwrap();
    assert_eq!(stored.session.device_id.as_deref(), Some("D1"));
    assert_eq!(stored.session.human_name.as_deref(), Some("Phone"));
    assert!(!stored.session.is_synapse_admin);
    assert_eq!(
        stored.access_token.expires_at,
        Some(clock.now() + Duration::minutes(5))
    );
    let mut repo = db.factory.reader().await.unwrap();
    assert_eq!(
        repo.compat_session()
            .find_active_by_device(&alice, "D1")
            .await
            .unwrap(),
        Some(stored.session.clone())
    );
    assert_eq!(
        repo.compat_access_token()
            .find_with_session("mct_1")
            .await
            .unwrap(),
        Some((
            stored.access_token.clone(),
            stored.session.clone(),
            alice.clone()
        ))
    );
    assert_eq!(
        repo.compat_refresh_token()
            .find_by_token("mcr_1")
            .await
            .unwrap(),
        stored.refresh_token.clone()
    );
    assert!(stored.refresh_token.is_some());

    // A device with an open session conflicts, and nothing of the second login stays.
    let again = repo
        .compat_session()
        .add_with_tokens(&mut rng, &clock, login("D1", "mct_2", Some("mcr_2")))
        .await;
    assert!(matches!(again, Err(StorageError::Conflict(_))), "{again:?}");
    // A token that cannot be stored (its hash is taken) leaves no session behind either:
    // the session's row was written first.
    let clash = repo
        .compat_session()
        .add_with_tokens(&mut rng, &clock, login("D2", "mct_1", None))
        .await;
    assert!(clash.is_err(), "{clash:?}");
    // Nor does a refresh token that cannot be stored, written after the other two rows.
    let late_clash = repo
        .compat_session()
        .add_with_tokens(&mut rng, &clock, login("D5", "mct_5", Some("mcr_1")))
        .await;
    assert!(late_clash.is_err(), "{late_clash:?}");
    let mut repo = db.factory.reader().await.unwrap();
    assert_eq!(repo.compat_session().count(alices).await.unwrap(), 1);
    for token in ["mct_2", "mct_5"] {
        assert_eq!(
            repo.compat_access_token()
                .find_by_token(token)
                .await
                .unwrap(),
            None,
            "{token}"
        );
    }
    assert_eq!(
        repo.compat_refresh_token()
            .find_by_token("mcr_2")
            .await
            .unwrap(),
        None
    );

    // Inside a transaction: kept when it commits, gone when it is dropped.
    let mut txn = db.factory.begin().await.unwrap();
    let kept = txn
        .compat_session()
        .add_with_tokens(&mut rng, &clock, login("D3", "mct_3", None))
        .await
        .unwrap();
    assert_eq!(kept.refresh_token, None);
    txn.save().await.unwrap();
    let mut txn = db.factory.begin().await.unwrap();
    txn.compat_session()
        .add_with_tokens(&mut rng, &clock, login("D4", "mct_4", None))
        .await
        .unwrap();
    drop(txn);
    let mut repo = db.factory.reader().await.unwrap();
    assert_eq!(repo.compat_session().count(alices).await.unwrap(), 2);
    assert_eq!(
        repo.compat_access_token()
            .find_by_token("mct_3")
            .await
            .unwrap(),
        Some(kept.access_token)
    );
    assert_eq!(
        repo.compat_access_token()
            .find_by_token("mct_4")
            .await
            .unwrap(),
        None
    );
}

/// A dynamically registered client, registered at `clock`'s time.
async fn registered(
    repo: &mut mas_storage::BoxRepository,
    rng: &mut StdRng,
    clock: &MockClock,
) -> mas_data_model::Client {
    repo.client()
        .add_dynamic(rng, clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap()
}

/// An authorization request of `client`, made at `clock`'s time.
async fn requested(
    repo: &mut mas_storage::BoxRepository,
    rng: &mut StdRng,
    clock: &MockClock,
    client: ulid::Ulid,
) -> mas_data_model::AuthorizationGrant {
    let grant = NewAuthorizationGrant {
        client_id: client,
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
    };
    repo.authorization_grant()
        .add(rng, clock, grant)
        .await
        .unwrap()
}

/// A device authorization of `client`, started at `clock`'s time, living ten minutes.
async fn device_started(
    repo: &mut mas_storage::BoxRepository,
    rng: &mut StdRng,
    clock: &MockClock,
    client: ulid::Ulid,
    user_code: &str,
) -> mas_data_model::DeviceCodeGrant {
    let grant = NewDeviceCodeGrant {
        client_id: client,
        scope: "openid".to_owned(),
        device_code: format!("device-{user_code}"),
        user_code: user_code.to_owned(),
        expires_in: Duration::minutes(10),
        ip_address: None,
        user_agent: None,
    };
    repo.device_code_grant()
        .add(rng, clock, grant)
        .await
        .unwrap()
}

/// The periodic cleanup (one real pass, default retention of an hour) deletes the grants
/// nobody can use any more, expired device grants and registered clients never used, and
/// nothing else: grants may wait an hour for consent, then their code lives ten minutes.
pub async fn cleanup_of_grants_and_unused_clients(db: &TestDb) {
    let now = clock_now(&MockClock::default()) + Duration::days(2);
    let clock = MockClock::new(now);
    let ago = |minutes: i64| MockClock::new(now - Duration::minutes(minutes));
    let day_ago = ago(25 * 60);
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();

    let static_id: ulid::Ulid = "0000000000000000000SYNAPSE".parse().unwrap();
    repo.client()
        .upsert_static(&day_ago, static_id, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    let used = registered(&mut repo, &mut rng, &day_ago).await;
    let session = repo
        .session()
        .add(&mut rng, &day_ago, used.id, None, None, "openid", None)
        .await
        .unwrap();
    let session = repo.session().finish(&day_ago, session).await.unwrap();
    let unused = registered(&mut repo, &mut rng, &day_ago).await;
    let abandoned = registered(&mut repo, &mut rng, &day_ago).await;
    let waiting = registered(&mut repo, &mut rng, &day_ago).await;
    let tv = registered(&mut repo, &mut rng, &day_ago).await;
    let tv_live = registered(&mut repo, &mut rng, &day_ago).await;
    let fresh = registered(&mut repo, &mut rng, &ago(23 * 60)).await;

    // Grants. Kept: one waiting 30 minutes for consent; a code given 5 minutes ago; one
    // exchanged, made 2 h 09 min ago (replay evidence for the retention past the code's
    // last possible use). Deleted: the same made 2 h 11 min ago, one refused then, and one
    // abandoned a day ago.
    let pending = requested(&mut repo, &mut rng, &ago(30), waiting.id).await;
    let at = ago(50);
    let unexchanged = requested(&mut repo, &mut rng, &at, used.id).await;
    at.advance(Duration::minutes(45));
    let unexchanged = repo
        .authorization_grant()
        .fulfill(&at, unexchanged, &session, "code-fresh")
        .await
        .unwrap();
    let mut exchanged = Vec::new();
    for (minutes, code) in [(129, "code-129"), (131, "code-131")] {
        let at = ago(minutes);
        let grant = requested(&mut repo, &mut rng, &at, used.id).await;
        let grant = repo
            .authorization_grant()
            .fulfill(&at, grant, &session, code)
            .await
            .unwrap();
        at.advance(Duration::minutes(1));
        exchanged.push(
            repo.authorization_grant()
                .exchange(&at, grant)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let refused = requested(&mut repo, &mut rng, &ago(131), used.id).await;
    let refused = repo
        .authorization_grant()
        .cancel(&ago(130), refused)
        .await
        .unwrap();
    let stale = requested(&mut repo, &mut rng, &day_ago, abandoned.id).await;

    // Device grants live ten minutes. Kept: a live one; one expired 59 minutes ago.
    // Deleted: one expired 61 minutes ago, one a day ago.
    let live = device_started(&mut repo, &mut rng, &ago(5), tv_live.id, "LIVE-LIVE").await;
    let recent = device_started(&mut repo, &mut rng, &ago(69), used.id, "RCNT-RCNT").await;
    let expired = device_started(&mut repo, &mut rng, &ago(71), used.id, "EXPD-EXPD").await;
    let old = device_started(&mut repo, &mut rng, &day_ago, tv.id, "OLDD-OLDD").await;
    repo.save().await.unwrap();

    let retention = std::time::Duration::from_hours(1);
    let removed = mas_tasks::cleanup_once(&db.factory, &clock, retention)
        .await
        .unwrap();
    assert_eq!(
        removed,
        mas_tasks::Removed {
            authorization_grants: 3,
            device_code_grants: 2,
            unused_clients: 1,
            ..mas_tasks::Removed::default()
        }
    );
    assert_eq!(
        mas_tasks::cleanup_once(&db.factory, &clock, retention)
            .await
            .unwrap(),
        mas_tasks::Removed::default(),
        "a second pass finds nothing more"
    );

    let mut repo = db.factory.begin().await.unwrap();
    for (grant, kept) in [
        (&pending, true),
        (&unexchanged, true),
        (&exchanged[0], true),
        (&exchanged[1], false),
        (&refused, false),
        (&stale, false),
    ] {
        assert_eq!(
            repo.authorization_grant()
                .lookup(grant.id)
                .await
                .unwrap()
                .is_some(),
            kept,
            "grant created at {}",
            grant.created_at
        );
    }
    assert!(
        repo.authorization_grant()
            .find_by_code("code-129")
            .await
            .unwrap()
            .is_some_and(|g| g.exchanged_at.is_some()),
        "a replay of that code is still recognised"
    );
    for (grant, kept) in [
        (&live, true),
        (&recent, true),
        (&expired, false),
        (&old, false),
    ] {
        assert_eq!(
            repo.device_code_grant()
                .lookup(grant.id)
                .await
                .unwrap()
                .is_some(),
            kept,
            "device grant expiring at {}",
            grant.expires_at
        );
    }
    for (id, kept, what) in [
        (static_id, true, "static"),
        (used.id, true, "used"),
        (waiting.id, true, "waiting for consent"),
        (tv_live.id, true, "with a live device grant"),
        (fresh.id, true, "registered 23 hours ago"),
        (unused.id, false, "unused"),
        // An app that started a sign-in keeps its registration (Element X reuses it even
        // after an abandoned first sign-in), though the grants themselves are gone.
        (abandoned.id, true, "with only a dead grant"),
        (tv.id, true, "with only a dead device grant"),
    ] {
        assert_eq!(
            repo.client().lookup(id).await.unwrap().is_some(),
            kept,
            "client {what}"
        );
    }
    assert!(
        repo.session().lookup(session.id).await.unwrap().is_some(),
        "deleting grants leaves sessions alone"
    );
    repo.save().await.unwrap();
}

/// An upgrade from before clients recorded their first use: a client that already has a
/// grant counts as used, so cleaning up its old grants does not make it look unused.
pub async fn clients_in_use_before_the_upgrade_stay_in_use(db: &TestDb) {
    use mas_migrations::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let now = clock_now(&MockClock::default()) + Duration::days(2);
    let day_ago = MockClock::new(now - Duration::hours(25));
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let used = registered(&mut repo, &mut rng, &day_ago).await;
    requested(&mut repo, &mut rng, &day_ago, used.id).await;
    let unused = registered(&mut repo, &mut rng, &day_ago).await;
    repo.save().await.unwrap();
    // As a database of the previous version holds it: no first use recorded anywhere.
    db.db()
        .execute_unprepared("UPDATE oauth2_clients SET first_used_at = NULL")
        .await
        .unwrap();
    // Back to before `m20261127_000007_client_first_use` (the migrations after it go
    // too), then up again.
    let since = mas_migrations::Migrator::migrations()
        .iter()
        .rev()
        .position(|m| m.name() == "m20261127_000007_client_first_use")
        .unwrap();
    mas_migrations::Migrator::down(db.db(), Some(u32::try_from(since + 1).unwrap()))
        .await
        .unwrap();
    mas_storage_sql::migrate(db.db()).await.unwrap();

    let removed = mas_tasks::cleanup_once(
        &db.factory,
        &MockClock::new(now),
        std::time::Duration::from_hours(1),
    )
    .await
    .unwrap();
    assert_eq!(
        (removed.authorization_grants, removed.unused_clients),
        (1, 1)
    );
    let mut repo = db.factory.begin().await.unwrap();
    assert!(repo.client().lookup(used.id).await.unwrap().is_some());
    assert!(repo.client().lookup(unused.id).await.unwrap().is_none());
    repo.save().await.unwrap();
}

/// A compatibility refresh is one write, all or nothing: the presented token is spent,
/// its access token expires, the new pair belongs to the same session; nothing changes
/// for a token that is unknown, spent, or of an ended session or user.
pub async fn compat_refresh_rotates_whole(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let bob = repo.user().add(&mut rng, &clock, "bob").await.unwrap();
    repo.save().await.unwrap();
    let mut reader = db.factory.reader().await.unwrap();
    let login = |user, device_id, access_token, refresh_token| NewCompatLogin {
        user,
        device_id,
        human_name: None,
        access_token,
        ttl: Some(Duration::minutes(5)),
        refresh_token: Some(refresh_token),
    };
    let first = reader
        .compat_session()
        .add_with_tokens(&mut rng, &clock, login(&alice, "A", "mct_a1", "mcr_a1"))
        .await
        .unwrap();
    let rotation = |presented, access_token, refresh_token| CompatRotation {
        presented,
        access_token,
        ttl: Some(Duration::minutes(10)),
        refresh_token,
    };
    let ticket = db.factory.revocations().ticket();
    clock.advance(Duration::seconds(30));
    let rotated = reader
        .compat_refresh_token()
        .rotate(&mut rng, &clock, rotation("mcr_a1", "mct_a2", "mcr_a2"))
        .await
        .unwrap()
        .expect("an unused token of an open session rotates");
    // The old access token's cached answers are stale in this process at once.
    assert!(
        !db.factory
            .revocations()
            .is_current(&ticket, &[first.session.id])
    );
    assert_eq!(rotated.access_token.session_id, first.session.id);
    assert_eq!(rotated.refresh_token.session_id, first.session.id);
    assert_eq!(
        rotated.refresh_token.access_token_id,
        rotated.access_token.id
    );
    assert_eq!(
        rotated.access_token.expires_at,
        Some(clock.now() + Duration::minutes(10))
    );
    let mut repo = db.factory.reader().await.unwrap();
    let (access, session, user) = repo
        .compat_access_token()
        .find_with_session("mct_a2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (access, session.id, user.id),
        (rotated.access_token.clone(), first.session.id, alice.id)
    );
    assert_eq!(
        repo.compat_refresh_token()
            .find_by_token("mcr_a2")
            .await
            .unwrap(),
        Some(rotated.refresh_token.clone())
    );
    let spent = repo
        .compat_refresh_token()
        .find_by_token("mcr_a1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spent.consumed_at, Some(clock.now()));
    let old_access = repo
        .compat_access_token()
        .lookup(first.access_token.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old_access.expires_at, Some(clock.now()));
    assert!(!old_access.is_valid(clock.now()));

    // Spent, unknown: refused, and no token of theirs is stored.
    for (presented, access_token) in [("mcr_a1", "mct_x1"), ("mcr_unknown", "mct_x2")] {
        let refused = reader
            .compat_refresh_token()
            .rotate(&mut rng, &clock, rotation(presented, access_token, "mcr_x"))
            .await
            .unwrap();
        assert!(refused.is_none(), "{presented}");
        assert_eq!(
            repo.compat_access_token()
                .find_by_token(access_token)
                .await
                .unwrap(),
            None
        );
    }

    // A locked user's, a deactivated user's and a finished session's tokens do not rotate,
    // and stay unused.
    let bobs = reader
        .compat_session()
        .add_with_tokens(&mut rng, &clock, login(&bob, "B", "mct_b1", "mcr_b1"))
        .await
        .unwrap();
    let ended = reader
        .compat_session()
        .add_with_tokens(&mut rng, &clock, login(&alice, "E", "mct_e1", "mcr_e1"))
        .await
        .unwrap();
    let mut txn = db.factory.begin().await.unwrap();
    let bob = txn.user().lock(&clock, bob).await.unwrap();
    txn.compat_session()
        .finish(&clock, ended.session)
        .await
        .unwrap();
    txn.save().await.unwrap();
    for (presented, why) in [("mcr_b1", "locked"), ("mcr_e1", "finished session")] {
        let refused = reader
            .compat_refresh_token()
            .rotate(&mut rng, &clock, rotation(presented, "mct_y", "mcr_y"))
            .await
            .unwrap();
        assert!(refused.is_none(), "{why}");
    }
    let mut txn = db.factory.begin().await.unwrap();
    let bob = txn.user().unlock(bob).await.unwrap();
    txn.user().deactivate(&clock, bob).await.unwrap();
    txn.save().await.unwrap();
    let refused = reader
        .compat_refresh_token()
        .rotate(&mut rng, &clock, rotation("mcr_b1", "mct_y", "mcr_y"))
        .await
        .unwrap();
    assert!(refused.is_none(), "deactivated");
    for token in ["mcr_b1", "mcr_e1"] {
        let stored = repo
            .compat_refresh_token()
            .find_by_token(token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.consumed_at, None, "{token}");
    }
    assert!(
        repo.compat_access_token()
            .lookup(bobs.access_token.id)
            .await
            .unwrap()
            .unwrap()
            .is_valid(clock.now())
    );
    assert_eq!(
        repo.compat_access_token()
            .find_by_token("mct_y")
            .await
            .unwrap(),
        None
    );

    // Inside a transaction: kept when it commits, undone when it is dropped.
    let mut txn = db.factory.begin().await.unwrap();
    assert!(
        txn.compat_refresh_token()
            .rotate(&mut rng, &clock, rotation("mcr_a2", "mct_a3", "mcr_a3"))
            .await
            .unwrap()
            .is_some()
    );
    drop(txn);
    assert_eq!(
        repo.compat_refresh_token()
            .find_by_token("mcr_a2")
            .await
            .unwrap()
            .unwrap()
            .consumed_at,
        None
    );
    let mut txn = db.factory.begin().await.unwrap();
    assert!(
        txn.compat_refresh_token()
            .rotate(&mut rng, &clock, rotation("mcr_a2", "mct_a3", "mcr_a3"))
            .await
            .unwrap()
            .is_some()
    );
    txn.save().await.unwrap();
    assert!(
        repo.compat_access_token()
            .find_by_token("mct_a3")
            .await
            .unwrap()
            .is_some()
    );
}

/// A person renames a device from their account: the name is kept on the session, of
/// either kind, and can be cleared.
pub async fn devices_are_renamed_on_their_session(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let compat = repo
        .compat_session()
        .add(
            &mut rng,
            &clock,
            &alice,
            Some("D1".to_owned()),
            None,
            false,
            Some("Phone".to_owned()),
        )
        .await
        .unwrap();
    let client = repo
        .client()
        .add_dynamic(&mut rng, &clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    let oauth = repo
        .session()
        .add(
            &mut rng,
            &clock,
            client.id,
            Some(alice.id),
            None,
            "urn:matrix:client:device:D2",
            None,
        )
        .await
        .unwrap();
    repo.save().await.unwrap();

    let mut repo = db.factory.begin().await.unwrap();
    repo.compat_session()
        .set_human_name(compat.id, Some("Work phone".to_owned()))
        .await
        .unwrap();
    repo.session()
        .set_human_name(oauth.id, Some("Laptop".to_owned()))
        .await
        .unwrap();
    repo.save().await.unwrap();
    let mut repo = db.factory.reader().await.unwrap();
    let compat = repo
        .compat_session()
        .lookup(compat.id)
        .await
        .unwrap()
        .unwrap();
    let oauth_read = repo.session().lookup(oauth.id).await.unwrap().unwrap();
    assert_eq!(compat.human_name.as_deref(), Some("Work phone"));
    assert_eq!(oauth_read.human_name.as_deref(), Some("Laptop"));

    let mut repo = db.factory.begin().await.unwrap();
    repo.session().set_human_name(oauth.id, None).await.unwrap();
    repo.save().await.unwrap();
    let mut repo = db.factory.reader().await.unwrap();
    let oauth = repo.session().lookup(oauth.id).await.unwrap().unwrap();
    assert_eq!(oauth.human_name, None);
}

/// Last activity written in batches: one statement per kind, the address kept when a
/// note has none, sessions that are gone skipped.
pub async fn activity_is_written_in_batches(db: &TestDb) {
    use mas_storage::{Activity, SessionKind};
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let browser = repo
        .browser_session()
        .add(&mut rng, &clock, &alice, None)
        .await
        .unwrap();
    let compat = repo
        .compat_session()
        .add(
            &mut rng,
            &clock,
            &alice,
            Some("D1".to_owned()),
            None,
            false,
            None,
        )
        .await
        .unwrap();
    let client = repo
        .client()
        .add_dynamic(&mut rng, &clock, client_params(ClientAuthMethod::None))
        .await
        .unwrap();
    let oauth = repo
        .session()
        .add(
            &mut rng,
            &clock,
            client.id,
            Some(alice.id),
            None,
            "openid",
            None,
        )
        .await
        .unwrap();
    repo.save().await.unwrap();

    let t1 = clock_now(&clock) + Duration::seconds(10);
    let t2 = t1 + Duration::seconds(10);
    let note = |kind, id, at, ip: Option<&str>| Activity {
        kind,
        id,
        at,
        ip: ip.map(str::to_owned),
    };
    let mut reader = db.factory.reader().await.unwrap();
    let updated = reader
        .activity()
        .record(&[
            note(SessionKind::Browser, browser.id, t1, Some("10.0.0.1")),
            note(SessionKind::Compat, compat.id, t1, Some("10.0.0.2")),
            note(SessionKind::OAuth2, oauth.id, t1, Some("2001:db8::1")),
            note(SessionKind::Compat, ulid::Ulid::new(), t1, Some("10.0.0.9")),
        ])
        .await
        .unwrap();
    assert_eq!(updated, 3, "the unknown session is skipped");
    // A later note without an address keeps the stored one.
    reader
        .activity()
        .record(&[note(SessionKind::Compat, compat.id, t2, None)])
        .await
        .unwrap();
    let browser = reader
        .browser_session()
        .lookup(browser.id)
        .await
        .unwrap()
        .unwrap();
    let compat = reader
        .compat_session()
        .lookup(compat.id)
        .await
        .unwrap()
        .unwrap();
    let oauth = reader.session().lookup(oauth.id).await.unwrap().unwrap();
    assert_eq!(browser.last_activity.at, Some(t1));
    assert_eq!(browser.last_activity.ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(compat.last_activity.at, Some(t2));
    assert_eq!(compat.last_activity.ip.as_deref(), Some("10.0.0.2"));
    assert_eq!(oauth.last_activity.ip.as_deref(), Some("2001:db8::1"));

    // A batch larger than one statement's rows.
    let many: Vec<Activity> = (0..2500)
        .map(|i| {
            note(
                SessionKind::Browser,
                if i == 2499 {
                    browser.id
                } else {
                    ulid::Ulid::new()
                },
                t2,
                None,
            )
        })
        .collect();
    assert_eq!(reader.activity().record(&many).await.unwrap(), 1);
    let browser = reader
        .browser_session()
        .lookup(browser.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(browser.last_activity.at, Some(t2));
}

/// Codes sent to an address before it joins an account: started by a browser session,
/// wrong codes counted, completed once.
pub async fn email_authentications(db: &TestDb) {
    let clock = MockClock::default();
    let mut rng = rng();
    let mut repo = db.factory.begin().await.unwrap();
    let alice = repo.user().add(&mut rng, &clock, "alice").await.unwrap();
    let session = repo
        .browser_session()
        .add(&mut rng, &clock, &alice, None)
        .await
        .unwrap();
    let expires = clock_now(&clock) + Duration::hours(1);
    let started = repo
        .user_email()
        .start_authentication(
            &mut rng,
            &clock,
            &session,
            "Alice@Example.com",
            "sealed-code".to_owned(),
            expires,
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    assert!(started.is_pending(clock_now(&clock)));
    assert!(!started.is_pending(expires));

    let mut repo = db.factory.begin().await.unwrap();
    let found = repo
        .user_email()
        .lookup_authentication(started.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, started);
    let once = repo.user_email().record_attempt(found).await.unwrap();
    let twice = repo.user_email().record_attempt(once).await.unwrap();
    assert_eq!(twice.attempts, 2);
    let done = repo
        .user_email()
        .complete_authentication(&clock, twice.clone())
        .await
        .unwrap()
        .unwrap();
    assert!(done.completed_at.is_some());
    assert!(!done.is_pending(clock_now(&clock)));
    assert_eq!(
        repo.user_email()
            .complete_authentication(&clock, twice)
            .await
            .unwrap(),
        None,
        "completed once"
    );
    repo.save().await.unwrap();
    let mut repo = db.factory.reader().await.unwrap();
    assert_eq!(
        repo.user_email()
            .lookup_authentication(ulid::Ulid::new())
            .await
            .unwrap(),
        None
    );

    // The cleanup takes those expired before its cut-off, and only those.
    let mut repo = db.factory.begin().await.unwrap();
    assert_eq!(
        repo.user_email()
            .cleanup_authentications(expires)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        repo.user_email()
            .cleanup_authentications(expires + Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    repo.save().await.unwrap();
}
