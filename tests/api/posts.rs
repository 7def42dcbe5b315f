//! Posts, replies, moderation, reactions, read positions and the feed.

use std::collections::HashSet;

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestApp};

async fn posting_replying_editing_deleting_and_hiding(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let maan = app.member(&worker, &circle, "Maan").await;
    let posts = format!("/v1/circles/{circle}/posts");

    let r = app
        .post(
            &posts,
            zon.token(),
            json!({"body": "  Vandaag een wandeling gemaakt.  "}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["body"], "Vandaag een wandeling gemaakt.");
    assert_eq!(r.body["author"]["pseudonym"], "Zon");
    assert_eq!(r.body["status"], "visible");
    let first = r.str("/id");

    app.advance(SignedDuration::from_mins(5));
    let reply = app
        .post(
            &posts,
            maan.token(),
            json!({"body": "Goed zo!", "reply_to_id": first}),
        )
        .await
        .expect(201);
    assert_eq!(reply.body["reply_to_id"], first);
    let reply_id = reply.str("/id");

    // Bad input.
    let r = app
        .post(&posts, zon.token(), json!({"body": "   "}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["body"]);
    app.post(&posts, zon.token(), json!({"body": "x".repeat(4001)}))
        .await
        .expect_problem(422, "validation_failed");
    // The limit counts what was sent, as the spec says, white space too.
    app.post(
        &posts,
        zon.token(),
        json!({"body": format!("{}  ", "x".repeat(3999))}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.post(&posts, zon.token(), json!({"body": "Hallo\r\n"}))
        .await
        .expect_problem(422, "validation_failed");
    app.post(
        &posts,
        zon.token(),
        json!({"body": "hi", "reply_to_id": "nope"}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // Only the author edits or deletes.
    app.patch(
        &format!("/v1/posts/{first}"),
        maan.token(),
        json!({"body": "mine now"}),
    )
    .await
    .expect_problem(403, "not_author");
    app.advance(SignedDuration::from_mins(1));
    let edited = app
        .patch(
            &format!("/v1/posts/{first}"),
            zon.token(),
            json!({"body": "Vandaag een lange wandeling gemaakt."}),
        )
        .await
        .expect(200);
    assert_eq!(edited.body["edited_at"], "2026-03-02T09:06:00Z");

    // Workers hide with a reason; members then see no body and no reason.
    app.post(
        &format!("/v1/posts/{reply_id}/hide"),
        zon.token(),
        json!({"reason": "x"}),
    )
    .await
    .expect_problem(403, "staff_only");
    let hidden = app
        .post(
            &format!("/v1/posts/{reply_id}/hide"),
            worker.token(),
            json!({"reason": "Persoonlijke gegevens"}),
        )
        .await
        .expect(200);
    assert_eq!(hidden.body["status"], "hidden");
    assert_eq!(hidden.body["hidden_reason"], "Persoonlijke gegevens");
    let as_member = app
        .get(&format!("/v1/posts/{reply_id}"), zon.token())
        .await
        .expect(200);
    assert_eq!(as_member.body["status"], "hidden");
    assert!(as_member.body["body"].is_null() && as_member.body["hidden_reason"].is_null());
    let visible_again = app
        .delete(&format!("/v1/posts/{reply_id}/hide"), worker.token())
        .await
        .expect(200);
    assert_eq!(visible_again.body["body"], "Goed zo!");

    // Delete leaves a tombstone without text.
    app.delete(&format!("/v1/posts/{first}"), zon.token())
        .await
        .expect(204);
    let gone = app
        .get(&format!("/v1/posts/{first}"), maan.token())
        .await
        .expect(200);
    assert_eq!(gone.body["status"], "deleted");
    assert!(gone.body["body"].is_null());
    app.patch(
        &format!("/v1/posts/{first}"),
        zon.token(),
        json!({"body": "back"}),
    )
    .await
    .expect_problem(409, "post_deleted");
    let feed = app.get(&posts, maan.token()).await.expect(200);
    let ids: Vec<&str> = feed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![reply_id.as_str()],
        "the normal feed leaves deleted posts out"
    );
    app.stop().await;
}
both_backends!(posting_replying_editing_deleting_and_hiding);

async fn reactions_read_positions_and_activity(backend: Backend) {
    let app = TestApp::spawn_long_tokens(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let maan = app.member(&worker, &circle, "Maan").await;
    let posts = format!("/v1/circles/{circle}/posts");

    let mut ids = Vec::new();
    for i in 0..3 {
        app.advance(SignedDuration::from_mins(1));
        ids.push(
            app.post(&posts, zon.token(), json!({"body": format!("post {i}")}))
                .await
                .expect(201)
                .str("/id"),
        );
    }
    let unread = |token: Option<String>| {
        let app = &app;
        let circle = circle.clone();
        async move {
            app.get(&format!("/v1/circles/{circle}"), token.as_deref())
                .await
                .expect(200)
                .body["unread_count"]
                .clone()
        }
    };
    assert_eq!(unread(Some(maan.access.clone())).await, 3);
    assert_eq!(
        unread(Some(zon.access.clone())).await,
        0,
        "your own posts are not unread"
    );

    let r = app
        .put(
            &format!("/v1/circles/{circle}/read-position"),
            maan.token(),
            Some(json!({"post_id": ids[1]})),
        )
        .await
        .expect(200);
    assert_eq!(r.body["unread_count"], 1);
    // Never backwards.
    let r = app
        .put(
            &format!("/v1/circles/{circle}/read-position"),
            maan.token(),
            Some(json!({"post_id": ids[0]})),
        )
        .await
        .expect(200);
    assert_eq!(r.body["unread_count"], 1);

    // Reactions: counted per kind, "mine" per viewer, idempotent, and activity.
    app.advance(SignedDuration::from_hours(30));
    let r = app
        .put(
            &format!("/v1/posts/{}/reactions/hug", ids[2]),
            maan.token(),
            None,
        )
        .await
        .expect(200);
    assert_eq!(
        r.body["reactions"],
        json!([{"kind": "hug", "count": 1, "mine": true}])
    );
    app.put(
        &format!("/v1/posts/{}/reactions/hug", ids[2]),
        maan.token(),
        None,
    )
    .await
    .expect(200);
    app.put(
        &format!("/v1/posts/{}/reactions/heart", ids[2]),
        worker.token(),
        None,
    )
    .await
    .expect(200);
    let seen = app
        .get(&format!("/v1/posts/{}", ids[2]), zon.token())
        .await
        .expect(200);
    assert_eq!(
        seen.body["reactions"],
        json!([{"kind": "heart", "count": 1, "mine": false}, {"kind": "hug", "count": 1, "mine": false}])
    );
    app.put(
        &format!("/v1/posts/{}/reactions/shrug", ids[2]),
        maan.token(),
        None,
    )
    .await
    .expect_problem(422, "validation_failed");
    let r = app
        .delete(&format!("/v1/posts/{}/reactions/hug", ids[2]), maan.token())
        .await
        .expect(200);
    assert_eq!(
        r.body["reactions"],
        json!([{"kind": "heart", "count": 1, "mine": false}])
    );

    // The worker sees each member's last activity: Maan reacted just now,
    // Zon last posted 30 hours ago.
    let members = app
        .get(&format!("/v1/circles/{circle}/members"), worker.token())
        .await
        .expect(200);
    let last = |name: &str| -> Value {
        members.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["pseudonym"] == name)
            .unwrap()["last_activity_at"]
            .clone()
    };
    assert_eq!(last("Maan"), "2026-03-03T15:03:00Z");
    assert_eq!(last("Zon"), "2026-03-02T09:03:00Z");
    app.stop().await;
}
both_backends!(reactions_read_positions_and_activity);

async fn feed_pages_and_since_sync_have_no_gaps_or_duplicates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let posts = format!("/v1/circles/{circle}/posts");

    // 25 posts, some sharing a millisecond.
    let mut created = Vec::new();
    for i in 0..25 {
        if i % 3 == 0 {
            app.advance(SignedDuration::from_secs(1));
        }
        created.push(
            app.post(&posts, zon.token(), json!({"body": format!("post {i}")}))
                .await
                .expect(201)
                .str("/id"),
        );
    }

    // Newest first, in pages of 10; new posts arriving meanwhile do not
    // disturb the pages already being read, and every page carries the
    // first page's sync token.
    let mut seen = Vec::new();
    let mut tokens = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut arrived = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("{posts}?limit=10&cursor={c}"),
            None => format!("{posts}?limit=10"),
        };
        let page = app.get(&path, zon.token()).await.expect(200);
        for p in page.body["items"].as_array().unwrap() {
            seen.push(p["id"].as_str().unwrap().to_owned());
        }
        tokens.insert(page.str("/sync_token"));
        arrived.push(
            app.post(&posts, zon.token(), json!({"body": "arriving meanwhile"}))
                .await
                .expect(201)
                .str("/id"),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected = created.clone();
    expected.reverse();
    assert_eq!(seen, expected, "every post once, newest first");
    assert_eq!(tokens.len(), 1, "one listing, one sync token");
    let token = tokens.into_iter().next().unwrap();

    // Incremental sync from the listing's token: exactly what changed after
    // it, oldest change first, including edits and tombstones.
    app.delete(&format!("/v1/posts/{}", created[0]), zon.token())
        .await
        .expect(204);
    app.patch(
        &format!("/v1/posts/{}", arrived[0]),
        zon.token(),
        json!({"body": "arriving meanwhile, edited"}),
    )
    .await
    .expect(200);
    let sync = |since: String| {
        let app = &app;
        let posts = &posts;
        let zon = &zon;
        async move {
            let mut synced = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("{posts}?since={since}&limit=2&cursor={c}"),
                    None => format!("{posts}?since={since}&limit=2"),
                };
                let page = app.get(&path, zon.token()).await.expect(200);
                for p in page.body["items"].as_array().unwrap() {
                    synced.push((
                        p["id"].as_str().unwrap().to_owned(),
                        p["status"].as_str().unwrap().to_owned(),
                    ));
                }
                match page.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => return (synced, page.str("/sync_token")),
                }
            }
        }
    };
    let (synced, next_token) = sync(token).await;
    let visible = |id: &String| (id.clone(), "visible".to_owned());
    assert_eq!(
        synced,
        vec![
            visible(&arrived[1]),
            visible(&arrived[2]),
            (created[0].clone(), "deleted".to_owned()),
            visible(&arrived[0]),
        ],
        "each change once, in the order it happened"
    );
    let (nothing, same_token) = sync(next_token.clone()).await;
    assert_eq!(nothing, vec![]);
    assert_eq!(same_token, next_token);

    // A token belongs to its circle.
    let other = app.circle(&worker, "Ander").await;
    app.get(
        &format!("/v1/circles/{other}/posts?since={next_token}"),
        worker.token(),
    )
    .await
    .expect_problem(422, "validation_failed");

    // Bad paging input is a clear 422.
    for q in [
        "limit=0",
        "limit=101",
        "cursor=%21%21",
        "since=yesterday",
        "since=2026-03-02T09:00:05Z",
        "limit=ten",
    ] {
        app.get(&format!("{posts}?{q}"), zon.token())
            .await
            .expect_problem(422, "validation_failed");
    }
    app.stop().await;
}
both_backends!(feed_pages_and_since_sync_have_no_gaps_or_duplicates);
