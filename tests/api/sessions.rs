//! Sessions under attack and under load: replays of sign-in responses, one-time
//! secrets kept for replay, refreshes and sign-ins racing each other, and codes
//! of staff who were removed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, PASSWORD, Person, TestApp};

/// Sessions of an account that are not revoked.
async fn live_sessions(app: &TestApp, account_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE account_id = $1 AND revoked_at IS NULL")
        .bind(account_id)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

/// A replay of a response that opened a session opens none: not after
/// logout-all, and not for another caller who sends the same key and body.
async fn replays_never_open_a_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;

    // Join: the invite code is shared with the circle and the pseudonym is
    // visible, so anyone can send the same body.
    let code = app.invite(&worker, &circle, 5).await;
    let body = json!({"code": code, "pseudonym": "Zon", "consent_version": 1});
    let key = [("idempotency-key", "join-7d1c")];
    let first = app
        .request_with(Method::POST, "/v1/join", None, Some(body.clone()), &key)
        .await
        .expect(201);
    let member = Person::from_auth(&first);
    app.post("/v1/auth/logout-all", member.token(), json!({}))
        .await
        .expect(204);
    let again = app
        .request_with(Method::POST, "/v1/join", None, Some(body.clone()), &key)
        .await
        .expect_problem(409, "idempotency_replay_refused");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert!(again.body.get("tokens").is_none(), "{}", again.body);
    assert_eq!(live_sessions(&app, &member.account_id).await, 0);
    let members = app
        .get(&format!("/v1/circles/{circle}/members"), worker.token())
        .await
        .expect(200);
    assert_eq!(
        members.body["items"].as_array().unwrap().len(),
        2,
        "the worker and one member: nothing was done twice"
    );

    // Recovery: the same, after the member signed out everywhere.
    let recovery = app
        .post(
            &format!(
                "/v1/circles/{circle}/members/{}/recovery-code",
                first.str("/membership/id")
            ),
            worker.token(),
            json!({}),
        )
        .await
        .expect(201)
        .str("/code");
    let key = [("idempotency-key", "recover-1")];
    let recovered = app
        .request_with(
            Method::POST,
            "/v1/auth/recover",
            None,
            Some(json!({"code": recovery})),
            &key,
        )
        .await
        .expect(200);
    let access = recovered.str("/tokens/access_token");
    app.post("/v1/auth/logout-all", Some(&access), json!({}))
        .await
        .expect(204);
    app.request_with(
        Method::POST,
        "/v1/auth/recover",
        None,
        Some(json!({"code": recovery})),
        &key,
    )
    .await
    .expect_problem(409, "idempotency_replay_refused");
    assert_eq!(live_sessions(&app, &member.account_id).await, 0);

    // Setup: a staff member's first sign-in.
    let setup_code = app
        .post(
            "/v1/organisation/staff",
            org.coordinator.token(),
            json!({"role": "worker", "email": "kim@buurtwerk.example", "display_name": "Kim"}),
        )
        .await
        .expect(201)
        .str("/setup_code");
    let body = json!({"code": setup_code, "password": PASSWORD});
    let key = [("idempotency-key", "setup-1")];
    let kim = app
        .request_with(
            Method::POST,
            "/v1/auth/setup",
            None,
            Some(body.clone()),
            &key,
        )
        .await
        .expect(200);
    let kim = Person::from_auth(&kim);
    app.post("/v1/auth/logout-all", kim.token(), json!({}))
        .await
        .expect(204);
    app.request_with(Method::POST, "/v1/auth/setup", None, Some(body), &key)
        .await
        .expect_problem(409, "idempotency_replay_refused");
    assert_eq!(live_sessions(&app, &kim.account_id).await, 0);

    // Sign-in and refresh sent with a bearer token and a key: a retry opens
    // no second session either.
    let body = json!({"login": "anna@buurtwerk.example", "password": PASSWORD});
    let key = [("idempotency-key", "login-1")];
    app.request_with(
        Method::POST,
        "/v1/auth/login",
        org.coordinator.token(),
        Some(body.clone()),
        &key,
    )
    .await
    .expect(200);
    let before = live_sessions(&app, &org.coordinator.account_id).await;
    app.request_with(
        Method::POST,
        "/v1/auth/login",
        org.coordinator.token(),
        Some(body),
        &key,
    )
    .await
    .expect_problem(409, "idempotency_replay_refused");
    assert_eq!(
        live_sessions(&app, &org.coordinator.account_id).await,
        before
    );
    app.stop().await;
}
both_backends!(replays_never_open_a_session);

/// Every route whose response carries a secret, sent with an
/// Idempotency-Key: the stored replays hold none of those secrets.
async fn stored_replays_hold_no_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let coordinator = org.coordinator.token();
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let mut secrets: Vec<String> = Vec::new();
    let mut keep = |r: &crate::support::Resp, pointers: &[&str]| {
        for p in pointers {
            let s = r.str(p);
            secrets.push(s.replace('-', ""));
            secrets.push(s);
        }
    };
    let staff = app
        .request_with(
            Method::POST,
            "/v1/organisation/staff",
            coordinator,
            Some(
                json!({"role": "worker", "email": "kim@buurtwerk.example", "display_name": "Kim"}),
            ),
            &[("idempotency-key", "k-staff")],
        )
        .await
        .expect(201);
    keep(&staff, &["/setup_code"]);
    let kim = staff.str("/account/id");
    // (path, token, body, where its secret is)
    let calls = [
        (
            format!("/v1/organisation/staff/{kim}/setup-code"),
            &org.coordinator.access,
            json!({}),
            "/setup_code",
        ),
        (
            format!("/v1/circles/{circle}/invites"),
            &worker.access,
            json!({"max_uses": 3}),
            "/code",
        ),
    ];
    let mut results = Vec::new();
    for (i, (path, token, body, pointer)) in calls.into_iter().enumerate() {
        let key = format!("k-{i}");
        let r = app
            .request_with(
                Method::POST,
                &path,
                Some(token),
                Some(body),
                &[("idempotency-key", &key)],
            )
            .await
            .expect(201);
        keep(&r, &[pointer]);
        results.push(r);
    }
    let invite = results[1].str("/code");
    let joined = app
        .request_with(
            Method::POST,
            "/v1/join",
            None,
            Some(json!({"code": invite, "pseudonym": "Zon", "consent_version": 1})),
            &[("idempotency-key", "k-join")],
        )
        .await
        .expect(201);
    keep(&joined, &["/tokens/access_token", "/tokens/refresh_token"]);
    let recovery = app
        .request_with(
            Method::POST,
            &format!(
                "/v1/circles/{circle}/members/{}/recovery-code",
                joined.str("/membership/id")
            ),
            worker.token(),
            Some(json!({})),
            &[("idempotency-key", "k-recovery")],
        )
        .await
        .expect(201);
    keep(&recovery, &["/code"]);
    let recovered = app
        .request_with(
            Method::POST,
            "/v1/auth/recover",
            None,
            Some(json!({"code": recovery.str("/code")})),
            &[("idempotency-key", "k-recover")],
        )
        .await
        .expect(200);
    keep(
        &recovered,
        &["/tokens/access_token", "/tokens/refresh_token"],
    );
    // Refresh and sign-in take no key, but a client may send one with a
    // bearer token.
    let refreshed = app
        .request_with(
            Method::POST,
            "/v1/auth/refresh",
            Some(&recovered.str("/tokens/access_token")),
            Some(json!({"refresh_token": recovered.str("/tokens/refresh_token")})),
            &[("idempotency-key", "k-refresh")],
        )
        .await
        .expect(200);
    keep(&refreshed, &["/access_token", "/refresh_token"]);
    let signed_in = app
        .request_with(
            Method::POST,
            "/v1/auth/login",
            worker.token(),
            Some(json!({"login": "sam@buurtwerk.example", "password": PASSWORD})),
            &[("idempotency-key", "k-login")],
        )
        .await
        .expect(200);
    keep(
        &signed_in,
        &["/tokens/access_token", "/tokens/refresh_token"],
    );

    let stored: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT idem_key, response_body FROM idempotency_keys ORDER BY idem_key")
            .fetch_all(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(stored.len(), 8, "every request kept its key: {stored:?}");
    for (key, body) in &stored {
        let body = body.as_deref().unwrap_or_default();
        for secret in &secrets {
            assert!(
                !body.contains(secret.as_str()),
                "key {key} stored a secret: {body}"
            );
        }
        assert!(
            !body.contains("kra_") && !body.contains("krr_"),
            "key {key} stored a token: {body}"
        );
    }

    // And a retry of any of them is refused, never answered with a new secret.
    app.request_with(
        Method::POST,
        &format!("/v1/circles/{circle}/invites"),
        worker.token(),
        Some(json!({"max_uses": 3})),
        &[("idempotency-key", "k-1")],
    )
    .await
    .expect_problem(409, "idempotency_replay_refused");
    app.request_with(
        Method::POST,
        "/v1/organisation/staff",
        coordinator,
        Some(json!({"role": "worker", "email": "kim@buurtwerk.example", "display_name": "Kim"})),
        &[("idempotency-key", "k-staff")],
    )
    .await
    .expect_problem(409, "idempotency_replay_refused");
    app.stop().await;
}
both_backends!(stored_replays_hold_no_secret);

/// Twenty refreshes of one refresh token at once (an app whose requests
/// all found their access token expired): no 5xx, the session stays, and
/// every caller gets the same working pair.
async fn concurrent_refreshes_keep_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zonnebloem").await;

    let mut calls = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = format!("{}/v1/auth/refresh", app.base);
        let body = json!({"refresh_token": member.refresh});
        calls.push(tokio::spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut pairs = Vec::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
        pairs.push((
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(
        pairs.iter().all(|p| *p == pairs[0]),
        "every caller got the same pair"
    );
    assert_eq!(live_sessions(&app, &member.account_id).await, 1);
    let (access, refresh) = pairs[0].clone();
    app.get("/v1/me", Some(&access)).await.expect(200);
    let next = app
        .post("/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await
        .expect(200);
    app.get("/v1/me", Some(&next.str("/access_token")))
        .await
        .expect(200);
    app.stop().await;
}
both_backends!(concurrent_refreshes_keep_the_session);

/// Forty sign-ins for one e-mail at once, one with the right password: at
/// most `KRING_LOGIN_MAX_FAILURES` wrong guesses are checked, the rest are
/// throttled before their password is looked at.
async fn parallel_guesses_are_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let max = app.state.config.login_max_failures as usize;

    let mut calls = Vec::new();
    for i in 0..40 {
        let client = app.client.clone();
        let url = format!("{}/v1/auth/login", app.base);
        let password = if i == 20 {
            PASSWORD
        } else {
            "a wrong password"
        };
        let body = json!({"login": "anna@buurtwerk.example", "password": password});
        calls.push(tokio::spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let (mut wrong, mut right, mut throttled) = (0, 0, 0);
    for call in calls {
        match call.await.unwrap() {
            (401, body) => {
                assert_eq!(body["code"], "invalid_credentials");
                wrong += 1;
            }
            (200, _) => right += 1,
            (429, body) => {
                assert_eq!(body["code"], "too_many_requests");
                throttled += 1;
            }
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert!(
        wrong <= max,
        "{wrong} wrong passwords were checked; the limit is {max}"
    );
    assert!(right <= 1);
    assert_eq!(wrong + right + throttled, 40);
    // The limit is reached: the right password does not get in now.
    if wrong == max {
        app.post(
            "/v1/auth/login",
            None,
            json!({"login": "anna@buurtwerk.example", "password": PASSWORD}),
        )
        .await
        .expect_problem(429, "too_many_requests");
    }
    app.stop().await;
}
both_backends!(parallel_guesses_are_throttled);

/// A removed staff member's unused setup code no longer sets a password.
async fn removing_staff_revokes_their_setup_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let made = app
        .post(
            "/v1/organisation/staff",
            org.coordinator.token(),
            json!({"role": "worker", "email": "kim@buurtwerk.example", "display_name": "Kim"}),
        )
        .await
        .expect(201);
    let code = made.str("/setup_code");
    app.delete(
        &format!("/v1/organisation/staff/{}", made.str("/account/id")),
        org.coordinator.token(),
    )
    .await
    .expect(204);
    app.post(
        "/v1/auth/setup",
        None,
        json!({"code": code, "password": PASSWORD}),
    )
    .await
    .expect_problem(410, "code_revoked");
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
            .bind(made.str("/account/id"))
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(hash, None, "no password was set");
    assert_eq!(live_sessions(&app, &made.str("/account/id")).await, 0);
    app.stop().await;
}
both_backends!(removing_staff_revokes_their_setup_code);
