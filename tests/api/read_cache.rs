//! The read caches (a token's caller, access to a circle, a circle's first
//! feed page) never show what a committed write changed. Run with the caches
//! on for both databases: every write is followed at once by the read it
//! changes, from a reader whose earlier read filled the cache.

use kring::circles::AccessCache;
use kring::http::auth::TokenCache;
use kring::posts::FirstPageCache;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Org, PASSWORD, Person, TestApp};

fn items(r: &Value) -> Vec<Value> {
    r["items"].as_array().expect("items").clone()
}

/// A server with the read caches on, and a circle with a worker and two
/// members.
struct Circle {
    app: TestApp,
    org: Org,
    worker: Person,
    circle: String,
    zon: Person,
    maan: Person,
    /// The circle's feed.
    posts: String,
}

impl Circle {
    async fn new(backend: Backend) -> Self {
        let app = TestApp::spawn_with(backend, |c| {
            c.read_cache = kring::config::ReadCache::On;
        })
        .await;
        let org = app
            .organisation("Buurtwerk", "anna@buurtwerk.example")
            .await;
        let worker = app.worker(&org, "sam@buurtwerk.example").await;
        let circle = app.circle(&worker, "Samen sterk").await;
        let zon = app.member(&worker, &circle, "Zon").await;
        let maan = app.member(&worker, &circle, "Maan").await;
        let posts = format!("/v1/circles/{circle}/posts");
        Self {
            app,
            org,
            worker,
            circle,
            zon,
            maan,
            posts,
        }
    }
}

async fn writes_are_seen_at_once_through_the_caches(backend: Backend) {
    let Circle {
        app,
        org,
        worker,
        circle,
        zon,
        maan,
        posts,
    } = Circle::new(backend).await;
    let feed = |token: Option<&str>| {
        let app = &app;
        let posts = posts.clone();
        let token = token.map(str::to_owned);
        async move { app.get(&posts, token.as_deref()).await.expect(200).body }
    };

    // Reading fills the caches.
    assert!(items(&feed(zon.token()).await).is_empty());
    let caches = &app.state.caches;
    assert!(
        !caches.shelf::<TokenCache>().0.is_empty(),
        "the token was cached"
    );
    assert!(
        !caches.shelf::<AccessCache>().0.is_empty(),
        "the access was cached"
    );
    assert!(
        !caches.shelf::<FirstPageCache>().0.is_empty(),
        "the first page was cached"
    );

    // A new post.
    let post = app
        .post(&posts, maan.token(), json!({"body": "Hallo allemaal"}))
        .await
        .expect(201)
        .str("/id");
    let page = feed(zon.token()).await;
    assert_eq!(items(&page).len(), 1);
    assert_eq!(page["items"][0]["body"], "Hallo allemaal");

    // An edit.
    app.patch(
        &format!("/v1/posts/{post}"),
        maan.token(),
        json!({"body": "Hallo iedereen"}),
    )
    .await
    .expect(200);
    assert_eq!(
        feed(zon.token()).await["items"][0]["body"],
        "Hallo iedereen"
    );

    // Reactions: counted for everyone, "mine" for the one who gave it.
    app.put(
        &format!("/v1/posts/{post}/reactions/hug"),
        zon.token(),
        None,
    )
    .await
    .expect(200);
    let reactions = |page: &Value| page["items"][0]["reactions"].clone();
    assert_eq!(
        reactions(&feed(zon.token()).await),
        json!([{"kind": "hug", "count": 1, "mine": true}])
    );
    assert_eq!(
        reactions(&feed(maan.token()).await),
        json!([{"kind": "hug", "count": 1, "mine": false}])
    );
    app.put(
        &format!("/v1/posts/{post}/reactions/hug"),
        maan.token(),
        None,
    )
    .await
    .expect(200);
    assert_eq!(
        reactions(&feed(zon.token()).await),
        json!([{"kind": "hug", "count": 2, "mine": true}])
    );
    app.delete(&format!("/v1/posts/{post}/reactions/hug"), zon.token())
        .await
        .expect(200);
    assert_eq!(
        reactions(&feed(zon.token()).await),
        json!([{"kind": "hug", "count": 1, "mine": false}])
    );

    // Hiding: members see no body, staff still do.
    app.post(
        &format!("/v1/posts/{post}/hide"),
        worker.token(),
        json!({"reason": "Privégegevens"}),
    )
    .await
    .expect(200);
    let page = feed(zon.token()).await;
    assert_eq!(page["items"][0]["status"], "hidden");
    assert_eq!(page["items"][0]["body"], Value::Null);
    let page = feed(worker.token()).await;
    assert_eq!(page["items"][0]["body"], "Hallo iedereen");
    assert_eq!(page["items"][0]["hidden_reason"], "Privégegevens");
    app.delete(&format!("/v1/posts/{post}/hide"), worker.token())
        .await
        .expect(200);
    assert_eq!(feed(zon.token()).await["items"][0]["status"], "visible");

    // A new pseudonym shows on the author's posts.
    app.patch(
        &format!("/v1/circles/{circle}/membership"),
        maan.token(),
        json!({"pseudonym": "Ster"}),
    )
    .await
    .expect(200);
    assert_eq!(
        feed(zon.token()).await["items"][0]["author"]["pseudonym"],
        "Ster"
    );

    // A delete.
    app.delete(&format!("/v1/posts/{post}"), maan.token())
        .await
        .expect(204);
    assert!(items(&feed(zon.token()).await).is_empty());

    // Leaving: the circle is gone for the one who left, at once.
    let check_in = format!("/v1/circles/{circle}/checkins");
    app.post(&check_in, maan.token(), json!({"mood": 3}))
        .await
        .expect(201);
    app.post(
        &format!("/v1/circles/{circle}/membership/leave"),
        maan.token(),
        json!({}),
    )
    .await
    .expect(204);
    app.get(&posts, maan.token())
        .await
        .expect_problem(404, "not_found");
    app.post(&check_in, maan.token(), json!({"mood": 3}))
        .await
        .expect_problem(404, "not_found");

    // A worker taken off the circle loses it at once.
    let second = app.worker(&org, "kim@buurtwerk.example").await;
    app.post(
        &format!("/v1/circles/{circle}/workers"),
        org.coordinator.token(),
        json!({"account_id": second.account_id, "pseudonym": "Kim"}),
    )
    .await
    .expect(201);
    feed(second.token()).await;
    app.delete(
        &format!("/v1/circles/{circle}/workers/{}", second.account_id),
        org.coordinator.token(),
    )
    .await
    .expect(204);
    app.get(&posts, second.token())
        .await
        .expect_problem(404, "not_found");

    // Tokens: signing out, and removal from the organisation.
    let laptop = app
        .post(
            "/v1/auth/login",
            None,
            json!({"login": "sam@buurtwerk.example", "password": PASSWORD}),
        )
        .await
        .expect(200)
        .str("/tokens/access_token");
    feed(Some(&laptop)).await;
    app.post("/v1/auth/logout", Some(&laptop), json!({}))
        .await
        .expect(204);
    app.get(&posts, Some(&laptop))
        .await
        .expect_problem(401, "invalid_token");
    feed(worker.token()).await;
    app.delete(
        &format!("/v1/organisation/staff/{}", worker.account_id),
        org.coordinator.token(),
    )
    .await
    .expect(204);
    app.get(&posts, worker.token())
        .await
        .expect_problem(401, "invalid_token");
    app.stop().await;
}
both_backends!(writes_are_seen_at_once_through_the_caches);

async fn caches_are_off_by_default_on_postgresql(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    app.get("/v1/circles", org.coordinator.token())
        .await
        .expect(200);
    // Several instances may share PostgreSQL; their writes would go unseen.
    assert_eq!(
        app.state.caches.shelf::<TokenCache>().0.is_empty(),
        backend == Backend::Postgres
    );
    app.stop().await;
}
both_backends!(caches_are_off_by_default_on_postgresql);

/// The first page's posts are serialized once per page and audience; they
/// must read exactly as the same posts freshly rendered by a sync, for
/// members, for whoever reacted, for workers and for coordinators.
async fn cached_pages_match_fresh_rendering(backend: Backend) {
    let Circle {
        app,
        org,
        worker,
        zon,
        maan,
        posts,
        ..
    } = Circle::new(backend).await;
    let from_start = app
        .get(&posts, zon.token())
        .await
        .expect(200)
        .str("/sync_token");

    let mut ids = Vec::new();
    for (i, author) in [&zon, &maan, &zon, &maan, &worker].into_iter().enumerate() {
        let reply_to = ids.first().cloned().filter(|_| i == 3);
        let id = app
            .post(
                &posts,
                author.token(),
                json!({"body": format!("Bericht {i}"), "reply_to_id": reply_to}),
            )
            .await
            .expect(201)
            .str("/id");
        ids.push(id);
    }
    for (post, who, kind) in [
        (&ids[0], &zon, "hug"),
        (&ids[0], &maan, "hug"),
        (&ids[0], &maan, "heart"),
        (&ids[1], &worker, "strong"),
        (&ids[2], &zon, "thanks"),
    ] {
        app.put(
            &format!("/v1/posts/{post}/reactions/{kind}"),
            who.token(),
            None,
        )
        .await
        .expect(200);
    }
    app.post(
        &format!("/v1/posts/{}/hide", ids[3]),
        worker.token(),
        json!({"reason": "Privégegevens"}),
    )
    .await
    .expect(200);

    for viewer in [&zon, &maan, &worker, &org.coordinator] {
        let first = app.get(&posts, viewer.token()).await.expect(200).body;
        // Twice: the second is served from the cache.
        let again = app.get(&posts, viewer.token()).await.expect(200).body;
        assert_eq!(first, again);
        let synced = app
            .get(
                &format!("{posts}?since={from_start}&limit=100"),
                viewer.token(),
            )
            .await
            .expect(200)
            .body;
        let fresh: std::collections::HashMap<String, Value> = items(&synced)
            .into_iter()
            .map(|p| (p["id"].as_str().expect("id").to_owned(), p))
            .collect();
        assert_eq!(items(&first).len(), ids.len());
        for post in items(&first) {
            let id = post["id"].as_str().expect("id");
            assert_eq!(Some(&post), fresh.get(id), "post {id}");
        }
    }
    // What the viewers saw differs where it should.
    let first = |body: Value| items(&body).into_iter().find(|p| p["id"] == ids[3]);
    let hidden_for_member = first(app.get(&posts, zon.token()).await.expect(200).body);
    assert_eq!(hidden_for_member.expect("post")["body"], Value::Null);
    let hidden_for_staff = first(app.get(&posts, worker.token()).await.expect(200).body);
    assert_eq!(hidden_for_staff.expect("post")["body"], "Bericht 3");
    app.stop().await;
}
both_backends!(cached_pages_match_fresh_rendering);

/// Readers keep refilling the cache while a writer posts and another member
/// reacts: every post must be in the feed as soon as its 201 has arrived,
/// whatever the readers stored meanwhile (the cache notes the generation
/// before it reads and the writer bumps it after it commits).
async fn racing_readers_never_hide_a_committed_post(backend: Backend) {
    let Circle {
        app,
        zon,
        maan,
        posts,
        ..
    } = Circle::new(backend).await;
    let app = std::sync::Arc::new(app);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (app, posts, token, done) = (
                app.clone(),
                posts.clone(),
                maan.access.clone(),
                done.clone(),
            );
            tokio::spawn(async move {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    app.get(&posts, Some(&token)).await.expect(200);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    // Another member keeps reacting, so the page is invalidated all the
    // time and readers are mid-read whenever the writer commits.
    let first = app
        .post(&posts, maan.token(), json!({"body": "Hallo"}))
        .await
        .expect(201)
        .str("/id");
    let reacting = {
        let (app, token, done) = (app.clone(), maan.access.clone(), done.clone());
        let hug = format!("/v1/posts/{first}/reactions/hug");
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                app.put(&hug, Some(&token), None).await.expect(200);
                app.delete(&hug, Some(&token)).await.expect(200);
            }
        })
    };
    for i in 0..100 {
        let id = app
            .post(&posts, zon.token(), json!({"body": format!("Bericht {i}")}))
            .await
            .expect(201)
            .str("/id");
        let page = app.get(&posts, maan.token()).await.expect(200).body;
        assert_eq!(
            page["items"][0]["id"],
            id.as_str(),
            "post {i} is not in the feed"
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reacting.await.expect("reacting");
    for reader in readers {
        assert!(reader.await.expect("reader") > 0);
    }
    match std::sync::Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => panic!("the readers still hold the app"),
    }
}
both_backends!(racing_readers_never_hide_a_committed_post);

/// The writes that own their cache marks (circle settings, a member's own
/// membership, coming back with an invite), each followed at once by the
/// read it changes, from readers whose earlier reads filled the caches.
async fn settings_and_memberships_are_seen_through_the_caches(backend: Backend) {
    let Circle {
        app,
        worker,
        circle,
        zon,
        maan,
        ..
    } = Circle::new(backend).await;
    let check_ins = format!("/v1/circles/{circle}/checkins");
    let pseudonyms = |r: &Value| -> Vec<String> {
        items(r)
            .iter()
            .map(|c| c["pseudonym"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    app.post(&check_ins, zon.token(), json!({"mood": 4}))
        .await
        .expect(201);
    app.post(&check_ins, maan.token(), json!({"mood": 2}))
        .await
        .expect(201);

    // Check-ins are for workers only: Zon sees her own (and fills her
    // cached access to the circle).
    let seen = app.get(&check_ins, zon.token()).await.expect(200).body;
    assert_eq!(pseudonyms(&seen), ["Zon"]);
    // The circle shares check-ins with everyone now: Zon sees Maan's too.
    app.patch(
        &format!("/v1/circles/{circle}"),
        worker.token(),
        json!({"checkin_visibility": "circle"}),
    )
    .await
    .expect(200);
    let seen = app.get(&check_ins, zon.token()).await.expect(200).body;
    assert_eq!(pseudonyms(&seen).len(), 2, "{seen}");

    // A new name on her own membership is the name of her next check-in.
    app.patch(
        &format!("/v1/circles/{circle}/membership"),
        zon.token(),
        json!({"pseudonym": "Zonnetje"}),
    )
    .await
    .expect(200);
    let mine = app
        .post(&check_ins, zon.token(), json!({"mood": 5}))
        .await
        .expect(201);
    assert_eq!(mine.body["pseudonym"], "Zonnetje");

    // Maan leaves and comes back under another name with a new invite: her
    // access, and the name on her check-ins, are the new ones at once.
    app.post(
        &format!("/v1/circles/{circle}/membership/leave"),
        maan.token(),
        json!({}),
    )
    .await
    .expect(204);
    app.get(&check_ins, maan.token()).await.expect(404);
    let code = app.invite(&worker, &circle, 1).await;
    app.post(
        "/v1/join",
        maan.token(),
        json!({"code": code, "pseudonym": "Maanlicht", "consent_version": 1}),
    )
    .await
    .expect(201);
    let back = app
        .post(&check_ins, maan.token(), json!({"mood": 3}))
        .await
        .expect(201);
    assert_eq!(back.body["pseudonym"], "Maanlicht");
    app.stop().await;
}
both_backends!(settings_and_memberships_are_seen_through_the_caches);
