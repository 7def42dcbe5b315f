//! Sign-in, tokens, sessions and recovery.

use jiff::SignedDuration;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, PASSWORD, TestApp};

async fn staff_sign_in_and_throttling(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;

    let me = app.get("/v1/me", org.coordinator.token()).await.expect(200);
    assert_eq!(me.body["role"], "coordinator");
    assert_eq!(me.body["email"], "anna@buurtwerk.example");

    // E-mail is case-insensitive.
    app.post(
        "/v1/auth/login",
        None,
        json!({"login": "Anna@Buurtwerk.example", "password": PASSWORD}),
    )
    .await
    .expect(200);

    // Five failures in the window, then 429 even with the right password.
    for _ in 0..5 {
        app.post(
            "/v1/auth/login",
            None,
            json!({"login": "anna@buurtwerk.example", "password": "wrong password"}),
        )
        .await
        .expect_problem(401, "invalid_credentials");
    }
    let throttled = app
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "anna@buurtwerk.example", "password": PASSWORD}),
        )
        .await
        .expect_problem(429, "too_many_requests");
    let retry_after: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_after > 0 && retry_after <= 900,
        "retry-after {retry_after}"
    );

    // An unknown account fails the same way, and is throttled the same way.
    app.post(
        "/v1/auth/login",
        None,
        json!({"login": "nobody@example.org", "password": PASSWORD}),
    )
    .await
    .expect_problem(401, "invalid_credentials");

    // After the window the right password works again.
    app.advance(SignedDuration::from_secs(901));
    let coordinator = app
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "anna@buurtwerk.example", "password": PASSWORD}),
        )
        .await
        .expect(200)
        .str("/tokens/access_token");

    // A setup code works once.
    let made = app
        .post(
            "/v1/organisation/staff",
            Some(&coordinator),
            json!({"role": "worker", "email": "sam@buurtwerk.example", "display_name": "Sam"}),
        )
        .await
        .expect(201);
    let code = made.str("/setup_code");
    app.post(
        "/v1/auth/setup",
        None,
        json!({"code": code, "password": "short"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.post(
        "/v1/auth/setup",
        None,
        json!({"code": code, "password": PASSWORD}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/auth/setup",
        None,
        json!({"code": code, "password": PASSWORD}),
    )
    .await
    .expect_problem(410, "code_used");
    app.post(
        "/v1/auth/setup",
        None,
        json!({"code": "AAAA-AAAA-AAAA", "password": PASSWORD}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.stop().await;
}
both_backends!(staff_sign_in_and_throttling);

async fn access_tokens_expire_and_refresh_rotates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zonnebloem").await;

    // 15 minutes later the access token has expired.
    app.advance(SignedDuration::from_secs(901));
    app.get("/v1/me", member.token())
        .await
        .expect_problem(401, "token_expired");

    // Refresh: a new pair that works.
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": member.refresh}),
        )
        .await
        .expect(200);
    let access2 = r.str("/access_token");
    let refresh2 = r.str("/refresh_token");
    assert_ne!(refresh2, member.refresh);
    app.get("/v1/me", Some(&access2)).await.expect(200);

    // A retry of the same refresh within 30 s (the app lost the response)
    // gets the same pair again.
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": member.refresh}),
        )
        .await
        .expect(200);
    let refresh3 = r.str("/refresh_token");
    let access3 = r.str("/access_token");
    assert_eq!((&access3, &refresh3), (&access2, &refresh2));
    app.get("/v1/me", Some(&access3)).await.expect(200);

    // Later, the old token again is reuse: the whole session is revoked.
    app.advance(SignedDuration::from_secs(60));
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": member.refresh}),
    )
    .await
    .expect_problem(401, "refresh_token_reused");
    app.get("/v1/me", Some(&access3))
        .await
        .expect_problem(401, "invalid_token");
    app.post("/v1/auth/refresh", None, json!({"refresh_token": refresh3}))
        .await
        .expect_problem(401, "session_revoked");
    app.post("/v1/auth/refresh", None, json!({"refresh_token": refresh2}))
        .await
        .expect_problem(401, "session_revoked");
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": "krr_not-a-token"}),
    )
    .await
    .expect_problem(401, "invalid_refresh_token");
    app.stop().await;
}
both_backends!(access_tokens_expire_and_refresh_rotates);

async fn logout_here_or_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let phone = app
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "anna@buurtwerk.example", "password": PASSWORD}),
        )
        .await
        .expect(200)
        .str("/tokens/access_token");
    let laptop = app
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "anna@buurtwerk.example", "password": PASSWORD}),
        )
        .await
        .expect(200)
        .str("/tokens/access_token");

    app.post("/v1/auth/logout", Some(&phone), json!({}))
        .await
        .expect(204);
    app.get("/v1/me", Some(&phone))
        .await
        .expect_problem(401, "invalid_token");
    app.get("/v1/me", Some(&laptop)).await.expect(200);

    app.post("/v1/auth/logout-all", Some(&laptop), json!({}))
        .await
        .expect(204);
    app.get("/v1/me", Some(&laptop))
        .await
        .expect_problem(401, "invalid_token");
    app.get("/v1/me", org.coordinator.token())
        .await
        .expect_problem(401, "invalid_token");
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": org.coordinator.refresh}),
    )
    .await
    .expect_problem(401, "session_revoked");
    app.stop().await;
}
both_backends!(logout_here_or_everywhere);

async fn recovery_code_moves_a_member_to_a_new_phone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zonnebloem").await;
    let other = app.member(&worker, &circle, "Regenboog").await;

    // Members cannot issue recovery codes.
    app.post(
        &format!(
            "/v1/circles/{circle}/members/{}/recovery-code",
            member.membership()
        ),
        other.token(),
        json!({}),
    )
    .await
    .expect_problem(403, "staff_only");

    let r = app
        .post(
            &format!(
                "/v1/circles/{circle}/members/{}/recovery-code",
                member.membership()
            ),
            worker.token(),
            json!({}),
        )
        .await
        .expect(201);
    let code = r.str("/code");
    assert!(
        code.chars()
            .all(|c| c == '-' || kring::secrets::CODE_ALPHABET.contains(&(c as u8)))
    );

    // On the new phone; typed in lower case with spaces.
    let typed = code.to_lowercase().replace('-', " ");
    let r = app
        .post("/v1/auth/recover", None, json!({"code": typed}))
        .await
        .expect(200);
    assert_eq!(r.str("/account/id"), member.account_id);
    let new_access = r.str("/tokens/access_token");
    app.get(&format!("/v1/circles/{circle}"), Some(&new_access))
        .await
        .expect(200);

    // The old phone is signed out; the code is spent.
    app.get("/v1/me", member.token())
        .await
        .expect_problem(401, "invalid_token");
    app.post("/v1/auth/recover", None, json!({"code": code}))
        .await
        .expect_problem(410, "code_used");

    // Codes expire (after 24 hours; tests/api/recovery.rs checks the edge).
    let code = app
        .post(
            &format!(
                "/v1/circles/{circle}/members/{}/recovery-code",
                other.membership()
            ),
            worker.token(),
            json!({}),
        )
        .await
        .expect(201)
        .str("/code");
    app.advance(SignedDuration::from_hours(73));
    app.post("/v1/auth/recover", None, json!({"code": code}))
        .await
        .expect_problem(410, "code_expired");
    app.stop().await;
}
both_backends!(recovery_code_moves_a_member_to_a_new_phone);

async fn members_may_choose_a_login_name(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let code = app.invite(&worker, &circle, 3).await;

    let r = app
        .post(
            "/v1/join",
            None,
            json!({"code": code, "pseudonym": "Zon", "consent_version": 1, "login_name": "zon52"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["password"]);

    app.post(
        "/v1/join",
        None,
        json!({"code": code, "pseudonym": "Zon", "consent_version": 1, "login_name": "Zon52", "password": PASSWORD}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/auth/login",
        None,
        json!({"login": "zon52", "password": PASSWORD}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/join",
        None,
        json!({"code": code, "pseudonym": "Maan", "consent_version": 1, "login_name": "zon52", "password": PASSWORD}),
    )
    .await
    .expect_problem(409, "login_name_taken");

    // Settings: quiet hours, time zone, reminder time.
    let member = app
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "zon52", "password": PASSWORD}),
        )
        .await
        .expect(200)
        .str("/tokens/access_token");
    let r = app
        .patch(
            "/v1/me",
            Some(&member),
            json!({"quiet_hours": {"start": "22:30", "end": "08:00"}, "time_zone": "Europe/London",
                   "preferred_reminder_time": "10:15", "locale": "en"}),
        )
        .await
        .expect(200);
    assert_eq!(
        r.body["quiet_hours"],
        json!({"start": "22:30", "end": "08:00"})
    );
    assert_eq!(r.body["time_zone"], "Europe/London");
    assert_eq!(r.body["preferred_reminder_time"], "10:15");
    assert_eq!(r.body["locale"], "en");
    let r = app
        .patch(
            "/v1/me",
            Some(&member),
            json!({"preferred_reminder_time": null}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["preferred_reminder_time"], serde_json::Value::Null);
    let r = app
        .patch(
            "/v1/me",
            Some(&member),
            json!({"quiet_hours": {"start": "25:00", "end": "08:00"}, "time_zone": "Mars/Base", "locale": "fr"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["locale", "time_zone", "quiet_hours.start"]);
    app.stop().await;
}
both_backends!(members_may_choose_a_login_name);

async fn coordinators_remove_staff(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zon").await;

    let staff = app
        .get("/v1/organisation/staff", worker.token())
        .await
        .expect(200);
    assert_eq!(staff.body["items"].as_array().unwrap().len(), 2);

    app.delete(
        &format!("/v1/organisation/staff/{}", worker.account_id),
        worker.token(),
    )
    .await
    .expect_problem(403, "coordinator_only");
    app.delete(
        &format!("/v1/organisation/staff/{}", org.coordinator.account_id),
        org.coordinator.token(),
    )
    .await
    .expect_problem(409, "cannot_remove_self");
    app.delete(
        &format!("/v1/organisation/staff/{}", member.account_id),
        org.coordinator.token(),
    )
    .await
    .expect_problem(404, "not_found");
    app.delete(
        &format!("/v1/organisation/staff/{}", worker.account_id),
        org.coordinator.token(),
    )
    .await
    .expect(204);

    // Signed out, cannot sign in, out of the circle; the circle goes on.
    app.get("/v1/me", worker.token())
        .await
        .expect_problem(401, "invalid_token");
    app.post(
        "/v1/auth/login",
        None,
        json!({"login": "sam@buurtwerk.example", "password": PASSWORD}),
    )
    .await
    .expect_problem(401, "invalid_credentials");
    let members = app
        .get(&format!("/v1/circles/{circle}/members"), member.token())
        .await
        .expect(200);
    assert_eq!(members.body["items"].as_array().unwrap().len(), 1);
    let staff = app
        .get("/v1/organisation/staff", org.coordinator.token())
        .await
        .expect(200);
    assert_eq!(staff.body["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}
both_backends!(coordinators_remove_staff);
