//! Check-ins and their visibility.

use jiff::SignedDuration;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp};

async fn checkins_and_im_ok(backend: Backend) {
    let app = TestApp::spawn_long_tokens(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let maan = app.member(&worker, &circle, "Maan").await;
    let path = format!("/v1/circles/{circle}/checkins");

    app.advance(SignedDuration::from_hours(50));
    let r = app
        .post(
            &path,
            zon.token(),
            json!({"mood": 2, "note": "Zware dag.", "wants_contact": true}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["kind"], "mood");
    assert_eq!(r.body["mood"], 2);
    assert_eq!(r.body["wants_contact"], true);
    assert_eq!(r.body["pseudonym"], "Zon");

    app.advance(SignedDuration::from_hours(1));
    let ok = app
        .post(&format!("{path}/ok"), maan.token(), json!({}))
        .await
        .expect(201);
    assert_eq!(ok.body["kind"], "ok");
    assert!(ok.body["mood"].is_null());

    let r = app
        .post(
            &path,
            zon.token(),
            json!({"mood": 6, "note": "x".repeat(1001)}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["mood", "note"]);
    app.post(&path, zon.token(), json!({"mood": "good"}))
        .await
        .expect_problem(422, "validation_failed");
    // Workers do not check in.
    app.post(&format!("{path}/ok"), worker.token(), json!({}))
        .await
        .expect_problem(403, "members_only");

    // Check-ins are activity.
    let members = app
        .get(&format!("/v1/circles/{circle}/members"), worker.token())
        .await
        .expect(200);
    let zon_row = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["pseudonym"] == "Zon")
        .unwrap()
        .clone();
    assert_eq!(zon_row["last_activity_at"], "2026-03-04T11:00:00Z");

    // Workers-only (the default): members see only their own.
    let own = app.get(&path, zon.token()).await.expect(200);
    assert_eq!(own.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(own.body["items"][0]["pseudonym"], "Zon");
    let all = app.get(&path, worker.token()).await.expect(200);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(all.body["items"][0]["kind"], "ok", "newest first");

    // Shared with the circle: everyone sees all.
    app.patch(
        &format!("/v1/circles/{circle}"),
        worker.token(),
        json!({"checkin_visibility": "circle"}),
    )
    .await
    .expect(200);
    let shared = app.get(&path, zon.token()).await.expect(200);
    assert_eq!(shared.body["items"].as_array().unwrap().len(), 2);

    // Incremental sync of check-ins.
    let since = app
        .get(
            &format!("{path}?since=2026-03-04T11:30:00Z"),
            worker.token(),
        )
        .await
        .expect(200);
    assert_eq!(since.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(since.body["items"][0]["kind"], "ok");
    app.stop().await;
}
both_backends!(checkins_and_im_ok);
