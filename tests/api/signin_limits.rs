//! Sign-in under load: password hashing runs a few at a time, one client
//! address cannot try name after name, and a wrong code costs no hash.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, Resp, TestApp};

const PASSWORD: &str = "lang genoeg wachtwoord";

/// `n` members who sign in with `lidN` and [`PASSWORD`], inserted directly.
async fn accounts_with_passwords(app: &TestApp, n: usize) {
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let hash = kring::secrets::hash_password(PASSWORD).unwrap();
    for i in 0..n {
        sqlx::query(
            "INSERT INTO accounts (id, organisation_id, role, login_name, password_hash, locale, time_zone, created_at)
             VALUES ($1, $2, 'member', $3, $4, 'nl', 'Europe/Amsterdam', $5)",
        )
        .bind(format!("acct{i}"))
        .bind(&org.id)
        .bind(format!("lid{i}"))
        .bind(&hash)
        .bind(app.now_ms())
        .execute(app.state.store.pool())
        .await
        .unwrap();
    }
}

async fn login(
    app: &TestApp,
    login: impl AsRef<str>,
    password: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let login = login.as_ref();
    app.request_with(
        Method::POST,
        "/v1/auth/login",
        None,
        Some(json!({"login": login, "password": password})),
        headers,
    )
    .await
}

/// One hash at a time and two waiting: of twelve sign-ins sent at once,
/// the ones beyond the queue get 503 `busy` with `Retry-After`, the others
/// get in, and nothing else goes wrong.
async fn sign_ins_beyond_the_hashing_queue_are_told_to_retry(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.hash_concurrency = 1;
        c.hash_queue = 2;
    })
    .await;
    accounts_with_passwords(&app, 12).await;
    let hashed_before = app.state.metrics.password_hashes.get();
    let answers = futures_util::future::join_all(
        (0..12).map(|i| login(&app, format!("lid{i}"), PASSWORD, &[])),
    )
    .await;
    let mut busy = 0;
    for answer in &answers {
        match answer.status.as_u16() {
            200 => {}
            503 => {
                assert_eq!(answer.body["code"], "busy");
                let retry: u64 = answer.headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                busy += 1;
            }
            other => panic!("unexpected {other}: {:?}", answer.body),
        }
    }
    assert!(
        busy >= 1,
        "twelve at once do not fit one running and two waiting"
    );
    assert!(
        busy <= 9,
        "at least the running one and the two waiting get in"
    );
    assert_eq!(app.state.metrics.password_hashes_refused.get(), busy as u64);
    assert_eq!(
        app.state.metrics.password_hashes.get() - hashed_before,
        12 - busy as u64,
        "a refused sign-in computed no hash"
    );
    // The burst is over: everyone gets in.
    for i in 0..12 {
        login(&app, &format!("lid{i}"), PASSWORD, &[])
            .await
            .expect(200);
    }
    app.stop().await;
}
both_backends!(sign_ins_beyond_the_hashing_queue_are_told_to_retry);

/// One address trying a different name each time is stopped after
/// `KRING_LOGIN_MAX_FAILURES_PER_ADDRESS` failures, also when the attempts
/// arrive at once; another address is not.
async fn one_address_cannot_try_name_after_name(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.login_max_failures_per_address = 5;
        c.client_address_header = Some("X-Forwarded-For".into());
    })
    .await;
    accounts_with_passwords(&app, 1).await;
    // The last address is the one the proxy appended; the first is what
    // the client claimed.
    let from = |addr: &'static str| [("x-forwarded-for", addr)];
    let app_ref = &app;
    let answers = futures_util::future::join_all((0..12).map(|i| async move {
        let headers = from("10.9.9.9, 203.0.113.7");
        login(app_ref, format!("guess{i}@example.org"), "raden", &headers).await
    }))
    .await;
    let checked = answers.iter().filter(|a| a.status == 401).count();
    let refused = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!(
        (checked, refused),
        (5, 7),
        "five names were tried, the rest refused"
    );
    // Even the right password waits out the window from that address ...
    login(&app, "lid0", PASSWORD, &from("10.9.9.9, 203.0.113.7"))
        .await
        .expect_problem(429, "too_many_requests");
    // ... while the same person from another address gets in.
    login(&app, "lid0", PASSWORD, &from("10.9.9.9, 203.0.113.8"))
        .await
        .expect(200);
    app.stop().await;
}
both_backends!(one_address_cannot_try_name_after_name);

/// Without a configured header the connection's own address counts: a
/// client cannot escape the throttle by sending a made-up header.
async fn the_peer_address_counts_without_a_proxy(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.login_max_failures_per_address = 3).await;
    accounts_with_passwords(&app, 1).await;
    for i in 0..3 {
        let forged = format!("198.51.100.{i}");
        login(
            &app,
            &format!("guess{i}"),
            "raden",
            &[("x-forwarded-for", &forged)],
        )
        .await
        .expect_problem(401, "invalid_credentials");
    }
    login(
        &app,
        "another",
        "raden",
        &[("x-forwarded-for", "198.51.100.99")],
    )
    .await
    .expect_problem(429, "too_many_requests");
    app.stop().await;
}
both_backends!(the_peer_address_counts_without_a_proxy);

/// Joining or setting a password with a wrong code is refused before any
/// password is hashed.
async fn a_wrong_code_costs_no_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let code = app.invite(&worker, &circle, 1).await;
    let hashed = || app.state.metrics.password_hashes.get();
    let before = hashed();
    let join = |code: String| {
        json!({"code": code, "pseudonym": "Zon", "consent_version": 1,
               "login_name": "zon", "password": PASSWORD})
    };
    app.post("/v1/join", None, join("KX4M-7TQD-9HCA".into()))
        .await
        .expect_problem(404, "not_found");
    app.post(
        "/v1/auth/setup",
        None,
        json!({"code": "KX4M-7TQD-9HCA", "password": PASSWORD}),
    )
    .await
    .expect(422);
    assert_eq!(hashed(), before, "no hash for a wrong code");
    // The right code: one hash, and the account is made.
    app.post("/v1/join", None, join(code.clone()))
        .await
        .expect(201);
    assert_eq!(hashed(), before + 1);
    // Used up now: refused without hashing.
    app.post("/v1/join", None, join(code)).await.expect(410);
    assert_eq!(hashed(), before + 1);
    app.stop().await;
}
both_backends!(a_wrong_code_costs_no_hash);
