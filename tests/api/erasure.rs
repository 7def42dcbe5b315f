//! Erasure (issue 17, part 3): a member with data in every table asks to be
//! forgotten; after the grace period the job erases them, and no table and
//! no API response (feeds, sync, other people's inboxes, the overview,
//! alerts, member lists, warm caches) holds a trace of the person, while
//! the other members' data is intact. On both databases.

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::both_backends;
use crate::push::{World, world};
use crate::support::{Backend, PASSWORD, Person};
use kring::store::Backend as StoreBackend;

const PSEUDONYM: &str = "Klaproos";
const LOGIN: &str = "klaproos.tuin";
const POST: &str = "Mijn geheime tuinbericht";
const REPLY: &str = "Ik ben bang voor de deurwaarder";
const NOTE: &str = "Slaap slecht door de brieven";
const RESOLUTION: &str = "Klaproos gebeld, gaat iets beter";
const MESSAGE: &str = "Hoe gaat het met de tuin?";
const FCM_TOKEN: &str = "fcm-token-klaproos-00000000001";

/// Every text value in every table of the database, one per line.
async fn everything_stored(w: &World) -> String {
    let pool = w.app.state.store.pool();
    let tables: Vec<String> = match w.app.state.store.backend() {
        StoreBackend::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        ),
        StoreBackend::Postgres => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        ),
    }
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() >= 25, "only {tables:?}");
    let mut all = String::new();
    for table in tables {
        let columns: Vec<String> = match w.app.state.store.backend() {
            StoreBackend::Sqlite => sqlx::query_scalar("SELECT name FROM pragma_table_info($1)"),
            StoreBackend::Postgres => sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1",
            ),
        }
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        for column in columns {
            let value = match w.app.state.store.backend() {
                // Hashes are blobs: as hex, which no secret here can match.
                StoreBackend::Sqlite => format!(
                    "CASE WHEN typeof(\"{column}\") = 'blob' THEN hex(\"{column}\")
                          ELSE CAST(\"{column}\" AS TEXT) END"
                ),
                StoreBackend::Postgres => format!("CAST(\"{column}\" AS TEXT)"),
            };
            let values: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {value} FROM \"{table}\""
            )))
            .fetch_all(pool)
            .await
            .unwrap();
            for v in values.into_iter().flatten() {
                all.push_str(&format!("{table}.{column}: {v}\n"));
            }
        }
    }
    all
}

/// The lines of `haystack` holding any of `secrets`.
fn traces(haystack: &str, secrets: &[&str]) -> Vec<String> {
    haystack
        .lines()
        .filter(|l| secrets.iter().any(|s| l.contains(s)))
        .map(str::to_owned)
        .collect()
}

/// Klaproos joins with a login name, and leaves data everywhere: posts, a
/// reply and a reaction that notify Maan, check-ins with a note and a
/// contact request (an alert the worker resolves with a note), a personal
/// message, devices, preferences, a recovery code, an idempotency key.
async fn klaproos(w: &World) -> Person {
    let app = &w.app;
    let code = app.invite(&w.worker, &w.circle, 1).await;
    let r = app
        .post(
            "/v1/join",
            None,
            json!({"code": code, "pseudonym": PSEUDONYM, "consent_version": 1,
                   "login_name": LOGIN, "password": PASSWORD}),
        )
        .await
        .expect(201);
    let mut k = Person::from_auth(&r);
    k.membership_id = Some(r.str("/membership/id"));
    let sub = w.webpush.subscribe();
    w.register_webpush(&k, &sub).await;
    w.register_fcm(&k, FCM_TOKEN).await;
    app.patch(
        "/v1/me/notification-preferences",
        k.token(),
        json!({"reactions": false}),
    )
    .await
    .expect(200);

    let posts = format!("/v1/circles/{}/posts", w.circle);
    let mine = app
        .post(&posts, k.token(), json!({"body": POST}))
        .await
        .expect(201)
        .str("/id");
    app.post(
        &posts,
        w.maan.token(),
        json!({"body": "Wat mooi!", "reply_to_id": mine}),
    )
    .await
    .expect(201);
    let maans = app
        .post(
            &posts,
            w.maan.token(),
            json!({"body": "Vandaag naar de markt"}),
        )
        .await
        .expect(201)
        .str("/id");
    app.request_with(
        reqwest::Method::POST,
        &posts,
        k.token(),
        Some(json!({"body": REPLY, "reply_to_id": maans})),
        &[("idempotency-key", "klaproos-reply-1")],
    )
    .await
    .expect(201);
    app.put(&format!("/v1/posts/{maans}/reactions/hug"), k.token(), None)
        .await
        .expect(200);
    let check_ins = format!("/v1/circles/{}/checkins", w.circle);
    app.post(&check_ins, k.token(), json!({"mood": 2, "note": NOTE}))
        .await
        .expect(201);
    app.post(
        &check_ins,
        k.token(),
        json!({"mood": 1, "wants_contact": true}),
    )
    .await
    .expect(201);
    let alerts = app
        .get("/v1/alerts?status=open", w.worker.token())
        .await
        .expect(200);
    let alert = alerts.body["items"][0]["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/alerts/{alert}/resolve"),
        w.worker.token(),
        json!({"outcome": "reached", "note": RESOLUTION}),
    )
    .await
    .expect(200);
    w.personal_message(&k, MESSAGE).await;
    app.post(
        &format!(
            "/v1/circles/{}/members/{}/recovery-code",
            w.circle,
            k.membership()
        ),
        w.worker.token(),
        json!({}),
    )
    .await
    .expect(201);
    w.deliver().await;
    // A copy of all of it, built and waiting for download.
    app.post("/v1/me/export", k.token(), json!({}))
        .await
        .expect(202);
    kring::jobs::run_until_idle(&kring::jobs::exports::Builder, &app.state)
        .await
        .unwrap();
    k
}

/// What Maan, the worker and the coordinator see through the API.
async fn everything_shown(w: &World, feed_token: &str) -> String {
    let app = &w.app;
    let c = &w.circle;
    let mut shown = Vec::new();
    for (path, who) in [
        (format!("/v1/circles/{c}/posts"), &w.maan),
        (format!("/v1/circles/{c}/posts?since={feed_token}"), &w.maan),
        ("/v1/notifications".to_owned(), &w.maan),
        (format!("/v1/circles/{c}/posts"), &w.worker),
        (format!("/v1/circles/{c}/members"), &w.worker),
        (format!("/v1/circles/{c}/overview"), &w.worker),
        (format!("/v1/circles/{c}/checkins"), &w.worker),
        (format!("/v1/circles/{c}/outcomes"), &w.worker),
        ("/v1/alerts".to_owned(), &w.worker),
        ("/v1/notifications".to_owned(), &w.worker),
        ("/v1/organisation/access-log".to_owned(), &w.coordinator),
    ] {
        let body = app.get(&path, who.token()).await.expect(200).body;
        shown.push(format!("{path}: {body}"));
    }
    shown.join("\n")
}

async fn an_erased_member_leaves_no_trace(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let posts = format!("/v1/circles/{}/posts", w.circle);
    let before = app
        .get(&posts, w.maan.token())
        .await
        .expect(200)
        .str("/sync_token");
    let k = klaproos(&w).await;
    // Her intake questionnaire, answered: its id is in the questionnaire
    // and each answer, and nowhere else.
    let questionnaire = app
        .get("/v1/me/questionnaires", k.token())
        .await
        .expect(200)
        .str("/items/0/id");
    app.post(
        &format!("/v1/me/questionnaires/{questionnaire}/answers"),
        k.token(),
        json!({"answers": {"who5_1": "at_no_time", "who5_2": "some_of_the_time"}}),
    )
    .await
    .expect(200);
    let secrets = [
        PSEUDONYM,
        LOGIN,
        POST,
        REPLY,
        NOTE,
        RESOLUTION,
        MESSAGE,
        FCM_TOKEN,
        questionnaire.as_str(),
    ];
    // The worker's app holds a copy of her check-ins.
    let check_ins = format!("/v1/circles/{}/checkins", w.circle);
    let copied = app.get(&check_ins, w.worker.token()).await.expect(200);
    let her_check_ins: Vec<String> = copied.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["membership_id"] == k.membership())
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(her_check_ins.len(), 2);
    let check_ins_token = copied.str("/sync_token");
    // The seeding left the person everywhere (the search can find them).
    let stored = everything_stored(&w).await;
    for secret in secrets {
        assert!(stored.contains(secret), "{secret} was never stored");
    }
    let shown = everything_shown(&w, &before).await;
    assert!(!traces(&shown, &[PSEUDONYM, POST, REPLY]).is_empty());

    // She asks; it is scheduled, and can be seen.
    app.post(
        "/v1/me/erasure",
        k.token(),
        json!({"confirmation": "ik weet het niet"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let asked = app
        .post(
            "/v1/me/erasure",
            k.token(),
            json!({"confirmation": "  Wis mijn gegevens "}),
        )
        .await
        .expect(202);
    assert_eq!(asked.body["status"], "scheduled");
    app.post(
        "/v1/me/erasure",
        k.token(),
        json!({"confirmation": "wis mijn gegevens"}),
    )
    .await
    .expect_problem(409, "erasure_scheduled");
    app.get("/v1/me/erasure", k.token()).await.expect(200);
    // Her worker sees that she is leaving, and when.
    let members = app
        .get(
            &format!("/v1/circles/{}/members", w.circle),
            w.worker.token(),
        )
        .await
        .expect(200)
        .body;
    let leaving: Vec<&Value> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["leaving_at"].is_null())
        .collect();
    assert_eq!(leaving.len(), 1, "{members}");
    assert_eq!(leaving[0]["id"], k.membership());
    assert_eq!(leaving[0]["leaving_at"], asked.body["due_at"]);
    // Nothing happens during the grace period.
    app.clock.advance(SignedDuration::from_hours(24 * 7 - 1));
    let erased = kring::jobs::run_until_idle(&kring::erasure::run::Erasures, &app.state)
        .await
        .unwrap();
    assert_eq!(erased, 0);
    app.get(&posts, k.token()).await.expect(200);

    // Then it runs, once.
    app.clock.advance(SignedDuration::from_hours(2));
    let erased = kring::jobs::run_until_idle(&kring::erasure::run::Erasures, &app.state)
        .await
        .unwrap();
    assert_eq!(erased, 1);
    let again = kring::jobs::run_until_idle(&kring::erasure::run::Erasures, &app.state)
        .await
        .unwrap();
    assert_eq!(again, 0);

    // No table holds a trace of her.
    let stored = everything_stored(&w).await;
    assert_eq!(traces(&stored, &secrets), Vec::<String>::new());
    // No answer shows one, caches warm or not.
    let shown = everything_shown(&w, &before).await;
    assert_eq!(traces(&shown, &secrets), Vec::<String>::new());
    // She is signed out everywhere and cannot sign in.
    app.get(&posts, k.token())
        .await
        .expect_problem(401, "invalid_token");
    app.post(
        "/v1/auth/login",
        None,
        json!({"login": LOGIN, "password": PASSWORD}),
    )
    .await
    .expect(401);

    // Her posts are tombstones a synced app receives; Maan's are intact.
    let synced = app
        .get(&format!("{posts}?since={before}&limit=100"), w.maan.token())
        .await
        .expect(200)
        .body;
    let items = synced["items"].as_array().unwrap();
    let status_of = |body: &str| -> Vec<Value> {
        items
            .iter()
            .filter(|p| p["body"] == body)
            .map(|p| p["status"].clone())
            .collect()
    };
    assert_eq!(status_of("Vandaag naar de markt"), [json!("visible")]);
    assert_eq!(status_of("Wat mooi!"), [json!("visible")]);
    let tombstones = items
        .iter()
        .filter(|p| p["status"] == "removed" && p["body"].is_null())
        .count();
    assert_eq!(tombstones, 2, "{synced}");
    // Her check-ins reach the worker's app as tombstones to drop, with
    // nothing she said; a fresh listing no longer shows them.
    let synced = app
        .get(
            &format!("{check_ins}?since={check_ins_token}&limit=100"),
            w.worker.token(),
        )
        .await
        .expect(200)
        .body;
    let removed: Vec<&Value> = synced["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["removed_at"].is_string())
        .collect();
    let mut removed_ids: Vec<String> = removed
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    removed_ids.sort();
    let mut expected = her_check_ins.clone();
    expected.sort();
    assert_eq!(removed_ids, expected, "{synced}");
    assert!(
        removed
            .iter()
            .all(|c| c["mood"].is_null() && c["note"].is_null() && c["wants_contact"] == false),
        "{synced}"
    );
    assert_eq!(traces(&synced.to_string(), &secrets), Vec::<String>::new());
    let listed = app.get(&check_ins, w.worker.token()).await.expect(200).body;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !her_check_ins.contains(&c["id"].as_str().unwrap().to_owned())),
        "{listed}"
    );
    // The access log still verifies.
    kring::access_log::verify::verify(&app.state.store)
        .await
        .unwrap()
        .unwrap();
    w.app.stop().await;
}
both_backends!(an_erased_member_leaves_no_trace);

/// Cancelled in the grace period: nothing is erased. With `keep_posts`, a
/// coordinator's request keeps the posts under "former member".
async fn erasure_can_be_cancelled_or_keep_posts(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let posts = format!("/v1/circles/{}/posts", w.circle);
    app.post(&posts, w.zon.token(), json!({"body": "Blijft staan"}))
        .await
        .expect(201);
    app.post(
        "/v1/me/erasure",
        w.zon.token(),
        json!({"confirmation": "erase my data"}),
    )
    .await
    .expect(202);
    app.delete("/v1/me/erasure", w.zon.token())
        .await
        .expect(204);
    app.get("/v1/me/erasure", w.zon.token())
        .await
        .expect_problem(404, "not_found");
    app.clock.advance(SignedDuration::from_hours(24 * 8));
    let erased = kring::jobs::run_until_idle(&kring::erasure::run::Erasures, &app.state)
        .await
        .unwrap();
    assert_eq!(erased, 0);
    app.get(&posts, w.zon.token()).await.expect(200);

    // Staff cannot ask for themselves; workers cannot ask for others.
    app.post(
        "/v1/me/erasure",
        w.worker.token(),
        json!({"confirmation": "erase my data"}),
    )
    .await
    .expect(403);
    let path = format!("/v1/organisation/members/{}/erasure", w.zon.account_id);
    app.post(&path, w.worker.token(), json!({}))
        .await
        .expect(403);
    app.post(
        &format!("/v1/organisation/members/{}/erasure", w.worker.account_id),
        w.coordinator.token(),
        json!({}),
    )
    .await
    .expect_problem(404, "not_found");
    // The coordinator, on Zon's behalf, keeping her posts.
    let asked = app
        .post(&path, w.coordinator.token(), json!({"keep_posts": true}))
        .await
        .expect(202);
    assert_eq!(asked.body["keep_posts"], true);
    // Zon sees it in her app.
    app.get("/v1/me/erasure", w.zon.token()).await.expect(200);
    app.clock.advance(SignedDuration::from_hours(24 * 8));
    let erased = kring::jobs::run_until_idle(&kring::erasure::run::Erasures, &app.state)
        .await
        .unwrap();
    assert_eq!(erased, 1);
    let feed = app.get(&posts, w.maan.token()).await.expect(200).body;
    let kept = &feed["items"][0];
    assert_eq!(kept["body"], "Blijft staan");
    assert_eq!(kept["author"]["pseudonym"], "Oud-lid");
    assert!(!feed.to_string().contains("\"Zon\""), "{feed}");
    w.app.stop().await;
}
both_backends!(erasure_can_be_cancelled_or_keep_posts);

/// An instance that claimed an erasure and crashed: nobody else erases in
/// the meantime, and once its lease has run out the next claim does it.
async fn a_crashed_erasure_is_done_after_its_lease(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    app.post(
        "/v1/me/erasure",
        w.zon.token(),
        json!({"confirmation": "erase my data"}),
    )
    .await
    .expect(202);
    app.clock.advance(SignedDuration::from_hours(24 * 7 + 1));
    // The crashed instance's claim.
    let claimed = app
        .state
        .store
        .claim_due(&kring::erasure::run::QUEUE, app.now_ms(), 10, None)
        .await
        .unwrap();
    assert_eq!(claimed, std::slice::from_ref(&w.zon.account_id));
    let erasures = || kring::jobs::run_until_idle(&kring::erasure::run::Erasures, &app.state);
    assert_eq!(erasures().await.unwrap(), 0, "held by the lease");
    app.get("/v1/me", w.zon.token()).await.expect(200);
    app.clock.advance(SignedDuration::from_mins(6));
    assert_eq!(erasures().await.unwrap(), 1);
    app.get("/v1/me", w.zon.token())
        .await
        .expect_problem(401, "invalid_token");
    w.app.stop().await;
}
both_backends!(a_crashed_erasure_is_done_after_its_lease);
