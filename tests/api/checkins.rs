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

    // Incremental sync of check-ins: from the listing's token, only what
    // came after it.
    let token = all.str("/sync_token");
    let later = app
        .post(&format!("{path}/ok"), zon.token(), json!({}))
        .await
        .expect(201)
        .str("/id");
    let since = app
        .get(&format!("{path}?since={token}"), worker.token())
        .await
        .expect(200);
    let items = since.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], later.as_str());
    let next = since.str("/sync_token");
    let none = app
        .get(&format!("{path}?since={next}"), worker.token())
        .await
        .expect(200);
    assert!(none.body["items"].as_array().unwrap().is_empty());
    assert_eq!(none.str("/sync_token"), next);
    // Times are not tokens, and a token belongs to its circle.
    app.get(
        &format!("{path}?since=2026-03-04T11:30:00Z"),
        worker.token(),
    )
    .await
    .expect_problem(422, "validation_failed");
    let other = app.circle(&worker, "Ander").await;
    app.get(
        &format!("/v1/circles/{other}/checkins?since={token}"),
        worker.token(),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.stop().await;
}
both_backends!(checkins_and_im_ok);

/// A write that read the clock early and committed late (it waited for the
/// write lock) must still reach an app that synced in between: change
/// numbers are given when a reader asks, not from the writer's clock.
async fn syncs_catch_writes_that_commit_out_of_order(backend: Backend) {
    let app = TestApp::spawn_long_tokens(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let path = format!("/v1/circles/{circle}/checkins");
    app.post(&path, zon.token(), json!({"mood": 4}))
        .await
        .expect(201);
    let listed = app.get(&path, worker.token()).await.expect(200);
    let token = listed.str("/sync_token");
    let inbox_token = app
        .get("/v1/notifications", zon.token())
        .await
        .expect(200)
        .str("/sync_token");

    // Commits now, stamped an hour ago: before everything the app has seen.
    let hour_ago = app.now_ms() - 3_600_000;
    let mut tx = app.state.store.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO checkins (id, circle_id, membership_id, kind, mood, wants_contact, created_at)
         VALUES ('late-checkin', $1, $2, 'mood', 3, 0, $3)",
    )
    .bind(&circle)
    .bind(zon.membership())
    .bind(hour_ago)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notifications (id, account_id, kind, locale, title, body, deep_link, created_at, updated_at)
         VALUES ('late-note', $1, 'personal_message', 'nl', 'Hoi', 'Hoe gaat het?', 'kring://inbox', $2, $2)",
    )
    .bind(&zon.account_id)
    .bind(hour_ago)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let synced = app
        .get(&format!("{path}?since={token}"), worker.token())
        .await
        .expect(200);
    assert_eq!(synced.body["items"][0]["id"], "late-checkin");
    let inbox = app
        .get(
            &format!("/v1/notifications?since={inbox_token}"),
            zon.token(),
        )
        .await
        .expect(200);
    assert_eq!(inbox.body["items"][0]["id"], "late-note");
    app.stop().await;
}
both_backends!(syncs_catch_writes_that_commit_out_of_order);

/// Many members check in at once, more than the pool has connections: each
/// check-in reads its access before its transaction, so no request holds a
/// connection while it waits for another (on PostgreSQL, without read
/// caches, they once all did, and every request hung until the pool's
/// timeout).
async fn many_check_ins_at_once_all_land(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let mut members = Vec::new();
    for i in 0..40 {
        members.push(app.member(&worker, &circle, &format!("Lid {i}")).await);
    }
    let path = format!("/v1/circles/{circle}/checkins");
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all(members.iter().map(|m| {
        let (app, path) = (&app, &path);
        async move {
            let ok_path = format!("{path}/ok");
            let (plain, ok) = tokio::join!(
                app.post(path, m.token(), json!({"mood": 4})),
                app.post(&ok_path, m.token(), json!({})),
            );
            (plain.status.as_u16(), ok.status.as_u16())
        }
    }))
    .await;
    assert!(
        answers.iter().all(|&a| a == (201, 201)),
        "{answers:?} after {:?}",
        started.elapsed()
    );
    let listed = app
        .get(&format!("{path}?limit=100"), worker.token())
        .await
        .expect(200)
        .body;
    assert_eq!(listed["items"].as_array().unwrap().len(), 80);
    app.stop().await;
}
both_backends!(many_check_ins_at_once_all_land);
