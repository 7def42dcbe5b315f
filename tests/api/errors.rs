//! Bad input gets a clear 4xx problem, never a 5xx or a panic.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp};

async fn bad_requests_get_clear_problems(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let token = worker.token();

    // Malformed JSON.
    let r = app
        .client
        .post(format!("{}/v1/circles", app.base))
        .bearer_auth(&worker.access)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "malformed_json");

    // Not JSON at all.
    let r = app
        .client
        .post(format!("{}/v1/circles", app.base))
        .bearer_auth(&worker.access)
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Too large (the default limit is 64 KiB).
    let r = app
        .post(
            "/v1/circles",
            token,
            json!({"name": "x", "theme": "y".repeat(100_000)}),
        )
        .await
        .expect_problem(413, "payload_too_large");
    assert!(r.body["detail"].as_str().unwrap().len() > 5);

    // Missing and mistyped fields name the field.
    let r = app
        .post("/v1/circles", token, json!({"theme": "no name"}))
        .await
        .expect_problem(422, "validation_failed");
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("name"),
        "{}",
        r.body
    );
    let r = app
        .post(
            "/v1/circles",
            token,
            json!({"name": "x", "rhythm_days": "two"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["rhythm_days"]);
    let r = app
        .post("/v1/circles", token, json!({"name": "x", "escalation_policy": {"steps": [{"after_hours": "soon", "action": "nudge"}]}}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["escalation_policy.steps[0].after_hours"]);
    app.post("/v1/circles", token, json!([1, 2, 3]))
        .await
        .expect_problem(422, "validation_failed");

    // Unknown routes and methods.
    app.get("/v1/nothing-here", token)
        .await
        .expect_problem(404, "not_found");
    app.request(Method::PUT, "/v1/me", token, Some(json!({})))
        .await
        .expect_problem(405, "method_not_allowed");

    // Malformed auth headers.
    let r = app
        .client
        .get(format!("{}/v1/me", app.base))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.get("/v1/me", Some("kra_made-up"))
        .await
        .expect_problem(401, "invalid_token");

    // Bad Idempotency-Key.
    let long = "k".repeat(300);
    app.request_with(
        Method::POST,
        "/v1/circles",
        token,
        Some(json!({"name": "x"})),
        &[("idempotency-key", &long)],
    )
    .await
    .expect_problem(400, "invalid_idempotency_key");

    // Ids that do not exist, or are garbage, are 404.
    for path in [
        "/v1/circles/nope",
        "/v1/posts/%00%01",
        "/v1/circles/..%2F..%2Fetc/posts",
    ] {
        app.get(path, token).await.expect_problem(404, "not_found");
    }

    // NUL characters never reach the database.
    let circle = app.circle(&worker, "Samen sterk").await;
    let r = app
        .post(
            &format!("/v1/circles/{circle}/posts"),
            token,
            json!({"body": "ok", "reply_to_id": "a\u{0}b"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["reply_to_id"]);
    app.post(
        "/v1/auth/login",
        None,
        json!({"login": "\u{0}", "password": "x"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.get("/v1/posts/%00", token)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("/v1/circles/{circle}/posts?cursor=%00"), token)
        .await
        .expect_problem(400, "invalid_query");
    let nul_cursor = base64_url("1:a\u{0}b");
    app.get(
        &format!("/v1/circles/{circle}/posts?cursor={nul_cursor}"),
        token,
    )
    .await
    .expect_problem(422, "validation_failed");

    // The test clock exists only on servers started with KRING_TEST_CLOCK.
    app.post("/test/clock", None, json!({"advance_seconds": 86400}))
        .await
        .expect_problem(404, "not_found");

    // Health.
    app.get("/healthz", None).await.expect(200);
    let ready = app.get("/readyz", None).await.expect(200);
    assert_eq!(ready.body["status"], "ok");
    app.stop().await;
}
both_backends!(bad_requests_get_clear_problems);

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// JSON is read as the spec (JSON Schema) reads it: found by schemathesis.
async fn bodies_are_read_as_the_spec_reads_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zonnebloem").await;
    let membership = format!("/v1/circles/{circle}/membership");

    // A body is an object: serde alone would read `[null, null]` as the
    // fields of `UpdateMembership` in order, and change nothing.
    let r = app
        .patch(&membership, member.token(), json!([null, null]))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "");
    // So is every object inside it.
    app.patch(
        "/v1/me",
        member.token(),
        json!({"quiet_hours": ["22:00", "08:00"]}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // `4.0` is the integer 4.
    let r = app
        .post(
            &format!("/v1/circles/{circle}/checkins"),
            member.token(),
            json!({"mood": 4.0}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["mood"], 4);
    app.post(
        &format!("/v1/circles/{circle}/checkins"),
        member.token(),
        json!({"mood": 4.5}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // A tag is a name, not the index of a variant.
    app.post(
        "/v1/devices",
        member.token(),
        json!({"kind": 0, "token": "a".repeat(64), "topic": "nl.kring.app", "environment": "sandbox"}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // Limits count characters as sent; white space at the ends is trimmed
    // after that, and a blank name is refused.
    let r = app
        .patch(
            &membership,
            member.token(),
            json!({"pseudonym": format!(" {} ", "z".repeat(38))}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["pseudonym"], "z".repeat(38));
    app.patch(
        &membership,
        member.token(),
        json!({"pseudonym": format!(" {}", "z".repeat(40))}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.patch(&membership, member.token(), json!({"pseudonym": "  z  "}))
        .await
        .expect_problem(422, "validation_failed");
    app.patch(
        &format!("/v1/circles/{circle}"),
        worker.token(),
        json!({"name": " \t "}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // Local times are two digits each: `+9:30` is not 09:30.
    app.patch(
        "/v1/me",
        member.token(),
        json!({"preferred_reminder_time": "+9:30"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.stop().await;
}
both_backends!(bodies_are_read_as_the_spec_reads_them);

/// A key named twice in one object is refused, not read as its last value.
async fn duplicate_keys_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let send = |method: Method, path: &str, body: &'static str| {
        app.client
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(&worker.access)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (method, path, body, field) in [
        (
            Method::POST,
            "/v1/circles",
            r#"{"name": "Samen sterk", "name": "Iets anders"}"#,
            "name",
        ),
        (
            Method::PATCH,
            "/v1/me",
            r#"{"quiet_hours": {"start": "22:00", "end": "08:00", "start": "23:00"}}"#,
            "quiet_hours.start",
        ),
        (
            Method::POST,
            "/v1/circles",
            r#"{"name": "x", "escalation_policy": {"steps": [{"after_hours": 48, "action": "nudge", "action": "alert_worker"}]}}"#,
            "escalation_policy.steps[0].action",
        ),
    ] {
        let r = send(method, path, body).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "duplicate_key", "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{problem}"
        );
    }
    // The same keys in different objects are fine.
    let r = send(
        Method::PATCH,
        "/v1/me",
        r#"{"quiet_hours": {"start": "22:00", "end": "08:00"}, "time_zone": "Europe/Amsterdam"}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let circles = app.get("/v1/circles", worker.token()).await.expect(200);
    assert_eq!(circles.body["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}
both_backends!(duplicate_keys_are_refused);
