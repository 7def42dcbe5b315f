//! Sync tokens from the future or out of range: the app is told to start
//! over, never handed a silent gap or the whole stream again.

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp};

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

async fn tokens_ahead_or_out_of_range_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let posts = format!("/v1/circles/{circle}/posts");
    app.post(&posts, zon.token(), json!({"body": "Hallo"}))
        .await
        .expect(201);
    app.post(
        &format!("/v1/circles/{circle}/checkins"),
        zon.token(),
        json!({"mood": 4}),
    )
    .await
    .expect(201);

    // The feed: a token the server has not reached (a restore from an
    // older backup) says start over.
    let token = app
        .get(&posts, zon.token())
        .await
        .expect(200)
        .str("/sync_token");
    app.get(&format!("{posts}?since={token}"), zon.token())
        .await
        .expect(200);
    let ahead = base64_url(&format!("1000.1000.{circle}"));
    let r = app
        .get(&format!("{posts}?since={ahead}"), zon.token())
        .await
        .expect_problem(410, "resync_required");
    assert!(r.body["detail"].as_str().unwrap().contains("sync_token"));
    // A later page of a sync whose cursor is ahead, too.
    app.get(
        &format!("{posts}?since={token}&cursor={ahead}"),
        zon.token(),
    )
    .await
    .expect_problem(410, "resync_required");

    // The inbox and the check-ins, likewise.
    for (path, ahead) in [
        (
            "/v1/notifications".to_owned(),
            base64_url(&format!("1000.{}", zon.account_id)),
        ),
        (
            format!("/v1/circles/{circle}/checkins"),
            base64_url(&format!("1000.{circle}")),
        ),
    ] {
        let token = app
            .get(&path, zon.token())
            .await
            .expect(200)
            .str("/sync_token");
        app.get(&format!("{path}?since={token}"), zon.token())
            .await
            .expect(200);
        app.get(&format!("{path}?since={ahead}"), zon.token())
            .await
            .expect_problem(410, "resync_required");
    }

    // A position no counter reaches is not a token at all, on every list.
    let max = i64::MAX;
    let absurd = [
        (posts.clone(), base64_url(&format!("{max}.{max}.{circle}"))),
        (
            "/v1/notifications".to_owned(),
            base64_url(&format!("{max}.{}", zon.account_id)),
        ),
        (
            format!("/v1/circles/{circle}/checkins"),
            base64_url(&format!("{max}.{circle}")),
        ),
    ];
    for (path, since) in absurd {
        let r = app
            .get(&format!("{path}?since={since}"), zon.token())
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), vec!["since"], "{path}");
    }
    app.stop().await;
}
both_backends!(tokens_ahead_or_out_of_range_are_refused);
