//! Registration that proves an email address with a code, and account recovery by a
//! link sent to one, driven through the real router.

// A test tells one person's story from start to end.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;

use axum::http::StatusCode;
use mas_storage::SystemClock;
use mas_storage::jobs::EmailJob;

use crate::AppState;
use crate::account_tests::{Answer, PASSWORD, cookies, send, signed_in};
use crate::test_state::{Up, state};

const NEW_PASSWORD: &str = "a brand new and rather long passphrase";

/// The `name=value` of the cookie `name` the answer sets.
fn set_cookie(answer: &Answer, name: &str) -> Option<String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|v| v.starts_with(&format!("{name}=")) && v.len() > name.len() + 1)
        .map(str::to_owned)
}

/// The email jobs queued since the last call (claimed, so each is seen once).
async fn queued_mail(state: &AppState) -> Vec<EmailJob> {
    let mut repo = state.repos.begin().await.unwrap();
    let jobs = repo
        .job()
        .claim(
            &SystemClock,
            &[mas_storage::jobs::SEND_EMAIL_QUEUE],
            100,
            chrono::Duration::seconds(30),
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
    jobs.iter()
        .map(|j| EmailJob::from_payload(&j.payload).unwrap())
        .collect()
}

/// The code of the registration that job sends, as the message would carry it.
async fn code_of(state: &AppState, job: &EmailJob) -> String {
    let EmailJob::Registration {
        registration_id, ..
    } = job
    else {
        panic!("not a registration code: {job:?}");
    };
    let mut repo = state.repos.reader().await.unwrap();
    let registration = repo
        .user_registration()
        .lookup(*registration_id)
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(
        state
            .encrypter
            .decrypt(&registration.encrypted_code)
            .unwrap(),
    )
    .unwrap()
}

async fn users(state: &AppState) -> Vec<String> {
    let mut repo = state.repos.reader().await.unwrap();
    repo.user()
        .list(
            &mas_storage::repository::UserFilter::default(),
            mas_storage::Pagination::first(100),
        )
        .await
        .unwrap()
        .edges
        .into_iter()
        .map(|u| u.username)
        .collect()
}

fn registration_form(username: &str, email: &str, token: &str) -> String {
    let password = "correct+horse+battery+staple+again";
    format!(
        "csrf=csrf-value&next=%2Fconsent%2Fx&username={username}&email={email}&token={token}&password={password}&password_confirm={password}&accept_terms=on"
    )
}

#[tokio::test]
async fn registration_waits_for_the_code_sent_to_the_address() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.oauth = crate::test_state::oauth_with(true);
    state.homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    assert!(state.account.registration_email_required, "MAS's default");
    state.account.registration_token_required = true;
    state.tos_uri = Some("https://example.com/tos".into());
    let token = {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let mut repo = state.repos.begin().await.unwrap();
        let token = repo
            .registration_token()
            .add(&mut rng, &SystemClock, "just-once", Some(1), None)
            .await
            .unwrap();
        repo.save().await.unwrap();
        token
    };
    let browser = cookies(&state, None);

    let form = send(&state, &browser, "/register", None).await;
    assert!(form.body.contains(r#"name="email""#), "{}", form.body);
    assert!(
        form.body.contains(r#"name="accept_terms""#),
        "{}",
        form.body
    );
    assert!(
        form.body.contains("https:&#x2f;&#x2f;example.com&#x2f;tos"),
        "{}",
        form.body
    );

    let unticked = registration_form("newcomer", "new%40example.com", "just-once")
        .replace("&accept_terms=on", "");
    let answer = send(&state, &browser, "/register", Some(&unticked)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body.contains("Accept the terms of service"),
        "{}",
        answer.body
    );
    assert!(queued_mail(&state).await.is_empty());

    let bad = send(
        &state,
        &browser,
        "/register",
        Some(&registration_form(
            "newcomer",
            "not-an-address",
            "just-once",
        )),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("That is not an email address"),
        "{}",
        bad.body
    );

    // The form is right: nothing is made yet, a code goes to the address.
    let asked = send(
        &state,
        &browser,
        "/register",
        Some(&registration_form(
            "newcomer",
            "new%40example.com",
            "just-once",
        )),
    )
    .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    assert_eq!(asked.location(), "/register/verify?next=%2Fconsent%2Fx");
    assert!(users(&state).await.is_empty());
    let jobs = queued_mail(&state).await;
    assert_eq!(jobs.len(), 1);
    let code = code_of(&state, &jobs[0]).await;
    let registration = set_cookie(&asked, "mas-registration").expect("the registration cookie");
    let waiting = format!("{browser}; {registration}");

    let page = send(
        &state,
        &waiting,
        "/register/verify?next=%2Fconsent%2Fx",
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("new@example.com"), "{}", page.body);
    // Another browser cannot finish it.
    let elsewhere = send(&state, &browser, "/register/verify", None).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert!(elsewhere.body.contains("This code has expired"));

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let answer = send(
        &state,
        &waiting,
        "/register/verify?next=%2Fconsent%2Fx",
        Some(&format!("csrf=csrf-value&code={wrong}")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("not the code that was sent"));
    assert!(users(&state).await.is_empty());

    let answer = send(
        &state,
        &waiting,
        "/register/verify?next=%2Fconsent%2Fx",
        Some(&format!("csrf=csrf-value&code={code}")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), "/consent/x");
    assert!(set_cookie(&answer, "mas-session").is_some(), "signed in");
    assert_eq!(users(&state).await, ["newcomer"]);
    {
        let mut repo = state.repos.reader().await.unwrap();
        let user = repo
            .user()
            .find_by_username("newcomer")
            .await
            .unwrap()
            .unwrap();
        let emails = repo.user_email().all(&user).await.unwrap();
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0].email, "new@example.com");
        let token = repo
            .registration_token()
            .lookup(token.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.times_used, 1, "counted when the account is made");
    }
    // The code works once.
    let again = send(
        &state,
        &waiting,
        "/register/verify",
        Some(&format!("csrf=csrf-value&code={code}")),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(users(&state).await, ["newcomer"]);

    // Someone else registers with that address: they prove they read it, and are told
    // it has an account; nothing is made.
    state.account.registration_token_required = false;
    let asked = send(
        &state,
        &browser,
        "/register",
        Some(&registration_form("second", "NEW%40example.com", "")),
    )
    .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    let code = code_of(&state, &queued_mail(&state).await[0]).await;
    let waiting = format!(
        "{browser}; {}",
        set_cookie(&asked, "mas-registration").unwrap()
    );
    let answer = send(
        &state,
        &waiting,
        "/register/verify",
        Some(&format!("csrf=csrf-value&code={code}")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert!(
        answer.body.contains("already used by an account"),
        "{}",
        answer.body
    );
    assert_eq!(users(&state).await, ["newcomer"]);

    // Five wrong codes spend a registration.
    let asked = send(
        &state,
        &browser,
        "/register",
        Some(&registration_form("third", "third%40example.com", "")),
    )
    .await;
    let code = code_of(&state, &queued_mail(&state).await[0]).await;
    let waiting = format!(
        "{browser}; {}",
        set_cookie(&asked, "mas-registration").unwrap()
    );
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for attempt in 1..=5 {
        let answer = send(
            &state,
            &waiting,
            "/register/verify",
            Some(&format!("csrf=csrf-value&code={wrong}")),
        )
        .await;
        let expected = if attempt < 5 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(answer.status, expected, "attempt {attempt}");
    }
    let late = send(
        &state,
        &waiting,
        "/register/verify",
        Some(&format!("csrf=csrf-value&code={code}")),
    )
    .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    assert_eq!(users(&state).await, ["newcomer"]);
}

/// Adds `email` to `username`'s account.
async fn add_email(state: &AppState, user: &mas_data_model::User, email: &str) {
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    repo.user_email()
        .add(&mut rng, &SystemClock, user, email)
        .await
        .unwrap();
    repo.save().await.unwrap();
}

/// A recovery link for `user`, as the job makes one.
async fn ticket(state: &AppState, user: &mas_data_model::User, value: &str, minutes: i64) {
    let email = format!("{}@example.com", user.username);
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    let mut repo = state.repos.begin().await.unwrap();
    repo.user_recovery()
        .add(
            &mut rng,
            &SystemClock,
            user,
            &email,
            value,
            mas_storage::Clock::now(&SystemClock) + chrono::Duration::minutes(minutes),
        )
        .await
        .unwrap();
    repo.save().await.unwrap();
}

async fn password_of(state: &AppState, user: &mas_data_model::User) -> String {
    let mut repo = state.repos.reader().await.unwrap();
    repo.user_password()
        .active(user)
        .await
        .unwrap()
        .unwrap()
        .hashed_password
}

async fn session_open(state: &AppState, person: &crate::account_tests::Person) -> bool {
    let mut repo = state.repos.reader().await.unwrap();
    repo.browser_session()
        .lookup(person.session.id)
        .await
        .unwrap()
        .unwrap()
        .is_active()
}

#[tokio::test]
async fn recovery_answers_alike_for_any_address_and_its_link_works_once() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    // MAS's default strength: a weak password is refused.
    state.passwords = Arc::new(crate::PasswordChecker::new(
        mas_oauth_core::passwords::PasswordManager::new(
            vec![mas_oauth_core::passwords::Scheme {
                version: 1,
                algorithm: mas_oauth_core::passwords::Algorithm::Argon2id,
                secret: None,
                unicode_normalization: false,
            }],
            3,
        ),
    ));
    let alice = signed_in(&state, "alice").await;
    add_email(&state, &alice.user, "alice@example.com").await;
    let browser = cookies(&state, None);

    // Off by default: no link, no page.
    let login = send(&state, &browser, "/login", None).await;
    assert!(!login.body.contains(r#"id="forgot""#));
    let off = send(&state, &browser, "/recover", None).await;
    assert_eq!(off.status, StatusCode::NOT_FOUND);
    assert!(off.body.contains("Password recovery is off"));

    state.account.password_recovery_enabled = true;
    let login = send(&state, &browser, "/login", None).await;
    assert!(login.body.contains(r#"id="forgot""#), "{}", login.body);
    let form = send(&state, &browser, "/recover", None).await;
    assert_eq!(form.status, StatusCode::OK);

    // A known and an unknown address: the same page (but for the address typed), and
    // the same work queued.
    let known = send(
        &state,
        &browser,
        "/recover",
        Some("csrf=csrf-value&email=alice%40example.com"),
    )
    .await;
    let unknown = send(
        &state,
        &browser,
        "/recover",
        Some("csrf=csrf-value&email=nobody%40example.com"),
    )
    .await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(unknown.status, StatusCode::OK);
    assert!(
        known
            .body
            .contains("a link to set a new password is on its way")
    );
    assert_eq!(
        known.body.replace("alice@example.com", "ADDRESS"),
        unknown.body.replace("nobody@example.com", "ADDRESS")
    );
    let typed: Vec<String> = queued_mail(&state)
        .await
        .iter()
        .map(|job| {
            let EmailJob::Recovery {
                sealed_email,
                locale,
            } = job
            else {
                panic!("not a recovery: {job:?}");
            };
            assert_eq!(locale.as_deref(), Some("en"), "no Accept-Language: English");
            assert!(!sealed_email.contains('@'), "kept encrypted");
            String::from_utf8(state.encrypter.decrypt(sealed_email).unwrap()).unwrap()
        })
        .collect();
    assert_eq!(typed, ["alice@example.com", "nobody@example.com"]);
    // The message goes out in the language the browser asks for.
    {
        use tower::ServiceExt;
        let app = crate::router(&[crate::Resource::Human], None, state.clone());
        let request = axum::http::Request::post("/recover")
            .header("cookie", &browser)
            .header("accept-language", "de-CH, fr;q=0.5")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(
                "csrf=csrf-value&email=alice%40example.com",
            ))
            .unwrap();
        assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
        let jobs = queued_mail(&state).await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].locale(), Some("de"));
    }
    let bad = send(
        &state,
        &browser,
        "/recover",
        Some("csrf=csrf-value&email=alice"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(queued_mail(&state).await.is_empty());

    // The link.
    let value = "RecoveryTicketForAliceAbcdef0123";
    ticket(&state, &alice.user, value, 30).await;
    for dead in [
        "",
        "?ticket=nope",
        "?ticket=RecoveryTicketForAliceAbcdef0124",
    ] {
        let page = send(
            &state,
            &browser,
            &format!("/account/password/recovery{dead}"),
            None,
        )
        .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{dead}");
        assert!(page.body.contains("This link does not work any more"));
    }
    let page = send(
        &state,
        &browser,
        &format!("/account/password/recovery?ticket={value}"),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("alice@example.com"), "{}", page.body);

    let set = |new: &str, confirm: &str, everywhere: bool| {
        let mut form = format!(
            "csrf=csrf-value&ticket={value}&new_password={new}&new_password_confirm={confirm}"
        );
        if everywhere {
            form.push_str("&sign_out_everywhere=on");
        }
        form
    };
    let before = password_of(&state, &alice.user).await;
    let answer = send(
        &state,
        &browser,
        "/account/password/recovery",
        Some(&set("one+thing", "another+thing", true)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("do not match"));
    let answer = send(
        &state,
        &browser,
        "/account/password/recovery",
        Some(&set("alice", "alice", true)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("too easy to guess"));
    assert_eq!(password_of(&state, &alice.user).await, before);

    let new = NEW_PASSWORD.replace(' ', "+");
    let answer = send(
        &state,
        &browser,
        "/account/password/recovery",
        Some(&set(&new, &new, true)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("Your password is set"));
    assert!(
        answer
            .body
            .contains("Every session of the account has ended")
    );
    assert_ne!(password_of(&state, &alice.user).await, before);
    assert!(!session_open(&state, &alice).await, "signed out everywhere");
    // The new password signs in; the old one does not.
    let old = send(
        &state,
        &browser,
        "/login",
        Some(&format!(
            "csrf=csrf-value&next=%2F&username=alice&password={}",
            PASSWORD.replace(' ', "+")
        )),
    )
    .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let fresh = send(
        &state,
        &browser,
        "/login",
        Some(&format!(
            "csrf=csrf-value&next=%2F&username=alice&password={new}"
        )),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER, "{}", fresh.body);

    // Used: refused, and the password stays.
    let after = password_of(&state, &alice.user).await;
    let again = send(
        &state,
        &browser,
        "/account/password/recovery",
        Some(&set(&new, &new, false)),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(password_of(&state, &alice.user).await, after);

    // Expired: refused.
    let expired = "ExpiredTicketForAliceAbcdef01234";
    ticket(&state, &alice.user, expired, -1).await;
    let page = send(
        &state,
        &browser,
        &format!("/account/password/recovery?ticket={expired}"),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    // A link to an address the account no longer has is dead.
    let removed = "RemovedAddressTicketAbcdef012345";
    ticket(&state, &alice.user, removed, 30).await;
    let link = format!("/account/password/recovery?ticket={removed}");
    assert_eq!(
        send(&state, &browser, &link, None).await.status,
        StatusCode::OK
    );
    {
        let mut repo = state.repos.begin().await.unwrap();
        let address = repo
            .user_email()
            .find_by_email("alice@example.com")
            .await
            .unwrap()
            .unwrap();
        repo.user_email().remove(address).await.unwrap();
        repo.save().await.unwrap();
    }
    assert_eq!(
        send(&state, &browser, &link, None).await.status,
        StatusCode::NOT_FOUND
    );

    // Without the box ticked, the other sessions stay.
    let bob = signed_in(&state, "bob").await;
    add_email(&state, &bob.user, "bob@example.com").await;
    let kept = "KeptSessionsTicketAbcdef01234567";
    ticket(&state, &bob.user, kept, 30).await;
    let answer = send(
        &state,
        &browser,
        "/account/password/recovery",
        Some(&format!(
            "csrf=csrf-value&ticket={kept}&new_password={new}&new_password_confirm={new}"
        )),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(session_open(&state, &bob).await);
}

#[tokio::test]
async fn recovery_requests_are_throttled_per_address() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.account.password_recovery_enabled = true;
    state.rate_limits = Arc::new(crate::RateLimits::new(
        crate::Limits {
            recovery_per_address: crate::Limit {
                burst: 2,
                per_second: 1.0 / 3600.0,
            },
            ..crate::Limits::generous()
        },
        Vec::new(),
    ));
    let browser = cookies(&state, None);
    let ask = async |email: &str| {
        send(
            &state,
            &browser,
            "/recover",
            Some(&format!("csrf=csrf-value&email={email}")),
        )
        .await
    };
    assert_eq!(ask("carol%40example.com").await.status, StatusCode::OK);
    assert_eq!(ask("Carol%40Example.com").await.status, StatusCode::OK);
    let third = ask("carol%40example.com").await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(third.body.contains("Too many links were asked for"));
    // Another address is not held back.
    assert_eq!(ask("dave%40example.com").await.status, StatusCode::OK);
    assert_eq!(queued_mail(&state).await.len(), 3);
}

/// A policy with one rule of each kind (MAS's `policy.data` names in the comments).
fn strict_policy() -> mas_oauth_core::policy::Policy {
    use mas_oauth_core::policy::{PasswordRules, Policy, StringLists, StringMatch, domains};
    let lists = |f: fn(&mut StringLists)| {
        let mut lists = StringLists::default();
        f(&mut lists);
        Some(StringMatch::new(lists).unwrap())
    };
    Policy {
        // registration.banned_usernames.literals
        banned_usernames: lists(|l| l.literals = vec!["root".into()]),
        // allowed_domains
        allowed_domains: Some(domains(&["example.com".into(), "*.example.com".into()]).unwrap()),
        // emails.banned_addresses.prefixes
        banned_addresses: lists(|l| l.prefixes = vec!["spam@".into()]),
        // passwords
        passwords: PasswordRules {
            min_length: 12,
            require_number: true,
            ..PasswordRules::default()
        },
        // requester.banned_user_agents.substrings
        banned_user_agents: lists(|l| l.substrings = vec!["EvilBot".into()]),
        ..Policy::default()
    }
}

#[tokio::test]
async fn registration_and_new_addresses_follow_the_policy() {
    use axum::body::Body;
    use tower::ServiceExt;

    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.oauth = crate::test_state::oauth_with(true);
    state.homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    state.policy = Arc::new(strict_policy());
    let browser = cookies(&state, None);
    let form = |username: &str, email: &str, password: &str| {
        format!(
            "csrf=csrf-value&next=%2F&username={username}&email={email}&password={password}&password_confirm={password}"
        )
    };
    let good = "correct+horse+battery+staple+42";
    for (username, email, password, status, said) in [
        (
            "root",
            "root%40example.com",
            good,
            StatusCode::FORBIDDEN,
            "This username is not allowed here.",
        ),
        (
            "12345",
            "n%40example.com",
            good,
            StatusCode::FORBIDDEN,
            "at least one character other than a digit",
        ),
        (
            "alice",
            "alice%40elsewhere.net",
            good,
            StatusCode::FORBIDDEN,
            "Addresses of this domain are not allowed",
        ),
        (
            "alice",
            "alice%40a.b.example.com",
            good,
            StatusCode::FORBIDDEN,
            "Addresses of this domain are not allowed",
        ),
        (
            "alice",
            "spam%40example.com",
            good,
            StatusCode::FORBIDDEN,
            "This email address is not allowed here.",
        ),
        (
            "alice",
            "alice%40example.com",
            "correct+horse+battery+staple",
            StatusCode::BAD_REQUEST,
            "needs a digit",
        ),
    ] {
        let answer = send(
            &state,
            &browser,
            "/register",
            Some(&form(username, email, password)),
        )
        .await;
        assert_eq!(answer.status, status, "{username} {email}: {}", answer.body);
        assert!(answer.body.contains(said), "{said}: {}", answer.body);
    }
    assert!(
        queued_mail(&state).await.is_empty(),
        "nothing is sent for a refused form"
    );

    // A requester the policy turns away, by its user agent.
    let app = crate::router(&[crate::Resource::Human], None, state.clone());
    let request = axum::http::Request::post("/register")
        .header("cookie", &browser)
        .header("user-agent", "Mozilla/5.0 EvilBot/2.1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form("alice", "alice%40example.com", good)))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // What the policy allows goes on to the code: a subdomain the glob covers too.
    for (username, email) in [
        ("alice", "alice%40example.com"),
        ("bob", "bob%40team.example.com"),
    ] {
        let answer = send(
            &state,
            &browser,
            "/register",
            Some(&form(username, email, good)),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    }
    assert_eq!(queued_mail(&state).await.len(), 2);

    // The account page applies the same address rules.
    let carol = signed_in(&state, "carol").await;
    let refused = send(
        &state,
        &carol.cookies,
        "/account/emails",
        Some("csrf=csrf-value&email=carol%40elsewhere.net"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .body
            .contains("Addresses of this domain are not allowed")
    );
    let added = send(
        &state,
        &carol.cookies,
        "/account/emails",
        Some("csrf=csrf-value&email=carol%40example.com"),
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);

    // And a new password, on the account page, follows the password rules.
    let weak = send(
        &state,
        &carol.cookies,
        "/account/password",
        Some(&format!(
            "csrf=csrf-value&current_password={}&new_password=another+long+passphrase&new_password_confirm=another+long+passphrase",
            PASSWORD.replace(' ', "+")
        )),
    )
    .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.body.contains("needs a digit"), "{}", weak.body);
}

/// A stand-in for a CAPTCHA provider's `siteverify` endpoint, as documented: a form with
/// `secret`, `response` and `remoteip` in, `{"success": …}` out. `solved` passes, `down`
/// makes it fail with a 500; every form it got is kept.
async fn siteverify() -> (String, Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>) {
    use axum::extract::State as Seen;
    type Forms = Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>;
    let forms: Forms = Arc::default();
    let app = axum::Router::new()
        .route(
            "/siteverify",
            axum::routing::post(
                async |Seen(forms): Seen<Forms>, body: String| -> axum::response::Response {
                    use axum::response::IntoResponse;
                    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                    let answer = form
                        .iter()
                        .find(|(k, _)| k == "response")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    forms.lock().unwrap().push(form);
                    if answer == "down" {
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
axum::Json(serde_json::json!({
                        "success": answer == "solved" || answer == "elsewhere",
                        "hostname": if answer == "elsewhere" { "evil.example" } else { "auth.example.com" },
                        "error-codes": if answer.starts_with("solved") || answer == "elsewhere" { vec![] } else { vec!["invalid-input-response"] },
                    }))
                    .into_response()
                },
            ),
        )
        .with_state(Arc::clone(&forms));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/siteverify"), forms)
}

#[tokio::test]
async fn registration_asks_the_provider_whether_the_captcha_was_solved() {
    let (mut state, _dir) = state(Arc::new(Up)).await;
    state.oauth = crate::test_state::oauth_with(true);
    state.account.registration_email_required = false;
    state.homeserver = Arc::new(mas_matrix::MockHomeserver::new("example.com"));
    let (url, forms) = siteverify().await;
    state.captcha = Some(Arc::new(
        crate::Captcha::new(
            crate::CaptchaService::CloudflareTurnstile,
            "auth.example.com".to_owned(),
            "the-site-key".to_owned(),
            "the-secret-key".to_owned(),
        )
        .unwrap()
        .verifying_at(&url),
    ));
    let browser = cookies(&state, None);

    // The page shows the widget, and its policy lets the provider's script in.
    let page = send(&state, &browser, "/register", None).await;
    assert!(
        page.body.contains(r#"class="cf-turnstile""#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"data-sitekey="the-site-key""#));
    assert!(
        page.body
            .contains("challenges.cloudflare.com&#x2f;turnstile&#x2f;v0&#x2f;api.js"),
        "{}",
        page.body
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src https://challenges.cloudflare.com"),
        "{csp}"
    );
    assert!(
        csp.contains("frame-src https://challenges.cloudflare.com"),
        "{csp}"
    );

    let form = |answer: Option<&str>| {
        let mut form = "csrf=csrf-value&next=%2F&username=newcomer&password=correct+horse+battery+staple+again&password_confirm=correct+horse+battery+staple+again".to_owned();
        if let Some(answer) = answer {
            form.push_str("&cf-turnstile-response=");
            form.push_str(answer);
        }
        form
    };
    for (answer, status, said) in [
        (None, StatusCode::BAD_REQUEST, "Complete the CAPTCHA"),
        (
            Some("wrong"),
            StatusCode::BAD_REQUEST,
            "The CAPTCHA was not solved",
        ),
        (
            Some("down"),
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot be checked right now",
        ),
        // Solved, but on another site's page (a site key that takes any origin).
        (
            Some("elsewhere"),
            StatusCode::BAD_REQUEST,
            "The CAPTCHA was not solved",
        ),
    ] {
        let answer = send(&state, &browser, "/register", Some(&form(answer))).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert!(answer.body.contains(said), "{said}: {}", answer.body);
    }
    assert!(users(&state).await.is_empty());
    assert_eq!(forms.lock().unwrap().len(), 3, "no answer, no call");

    let made = send(&state, &browser, "/register", Some(&form(Some("solved")))).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    assert_eq!(users(&state).await, ["newcomer"]);
    let last = forms.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.contains(&("secret".to_owned(), "the-secret-key".to_owned())),
        "{last:?}"
    );
    assert!(
        last.contains(&("response".to_owned(), "solved".to_owned())),
        "{last:?}"
    );
}
