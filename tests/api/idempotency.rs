//! Idempotency-Key: a retried POST returns the first response, never a duplicate.

use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp};

async fn retries_return_the_first_response(backend: Backend) {
    let app = TestApp::spawn_long_tokens(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let code = app.invite(&worker, &circle, 5).await;

    // Joining twice with the same key (the first response was lost): one
    // account, one membership. The tokens are never kept for replay, so the
    // retry is refused instead of opening a session (see sessions.rs).
    let body = json!({"code": code, "pseudonym": "Zon", "consent_version": 1});
    let key = [("idempotency-key", "join-7d1c")];
    let first = app
        .request_with(Method::POST, "/v1/join", None, Some(body.clone()), &key)
        .await
        .expect(201);
    assert_eq!(first.headers["idempotent-replayed"], "false");
    let again = app
        .request_with(Method::POST, "/v1/join", None, Some(body.clone()), &key)
        .await
        .expect_problem(409, "idempotency_replay_refused");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let member = first.str("/tokens/access_token");
    app.get("/v1/me", Some(&member)).await.expect(200);
    let members = app
        .get(&format!("/v1/circles/{circle}/members"), worker.token())
        .await
        .expect(200);
    assert_eq!(
        members.body["items"].as_array().unwrap().len(),
        2,
        "the worker and one member"
    );

    // Tokens are never stored for replay.
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT response_body FROM idempotency_keys WHERE response_body IS NOT NULL",
    )
    .fetch_all(app.state.store.pool())
    .await
    .unwrap();
    assert!(!stored.is_empty());
    for body in &stored {
        assert!(
            !body.contains("kra_") && !body.contains("krr_"),
            "a token was stored: {body}"
        );
    }

    // The same key with another body is refused.
    let other = json!({"code": code, "pseudonym": "Maan", "consent_version": 1});
    app.request_with(Method::POST, "/v1/join", None, Some(other), &key)
        .await
        .expect_problem(422, "idempotency_key_reused");

    // Without a token, a protected route answers 401 whatever the key did before.
    for body in [json!({"name": "Een"}), json!({"name": "Twee"})] {
        app.request_with(
            Method::POST,
            "/v1/circles",
            None,
            Some(body),
            &[("idempotency-key", "anon-1")],
        )
        .await
        .expect_problem(401, "unauthenticated");
    }

    // A post retried: one post.
    let path = format!("/v1/circles/{circle}/posts");
    let key = [("idempotency-key", "post-1")];
    let p1 = app
        .request_with(
            Method::POST,
            &path,
            Some(&member),
            Some(json!({"body": "Hallo"})),
            &key,
        )
        .await
        .expect(201);
    let p2 = app
        .request_with(
            Method::POST,
            &path,
            Some(&member),
            Some(json!({"body": "Hallo"})),
            &key,
        )
        .await
        .expect(201);
    assert_eq!(p1.str("/id"), p2.str("/id"));
    let feed = app.get(&path, Some(&member)).await.expect(200);
    assert_eq!(feed.body["items"].as_array().unwrap().len(), 1);

    // Keys belong to one account: the worker's "post-1" is a different request.
    let w = app
        .request_with(
            Method::POST,
            &path,
            worker.token(),
            Some(json!({"body": "Hallo"})),
            &key,
        )
        .await
        .expect(201);
    assert_ne!(w.str("/id"), p1.str("/id"));

    // A key is forgotten after 24 hours.
    app.advance(SignedDuration::from_hours(25));
    let p3 = app
        .request_with(
            Method::POST,
            &path,
            Some(&member),
            Some(json!({"body": "Hallo"})),
            &key,
        )
        .await
        .expect(201);
    assert_ne!(p3.str("/id"), p1.str("/id"));

    // Upkeep forgets old keys.
    app.advance(SignedDuration::from_hours(25));
    let removed = kring::upkeep_once(&app.state).await.unwrap();
    assert!(removed >= 3, "removed {removed}");
    app.stop().await;
}
both_backends!(retries_return_the_first_response);
