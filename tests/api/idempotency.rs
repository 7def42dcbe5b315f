//! Idempotency-Key: a retried POST returns the first response, never a duplicate.

use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, Person, Resp, TestApp};

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

/// Members whose first post or check-in answer may be lost.
async fn member_in_circle(app: &TestApp) -> (Person, String, String) {
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let member = app.member(&worker, &circle, "Zon").await;
    let token = member.token().expect("member token").to_owned();
    (worker, circle, token)
}

/// How many rows `table` holds.
async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

async fn post_with_key(app: &TestApp, circle: &str, token: &str, key: &str) -> Resp {
    app.request_with(
        Method::POST,
        &format!("/v1/circles/{circle}/posts"),
        Some(token),
        Some(json!({"body": "Goedemorgen"})),
        &[("idempotency-key", key)],
    )
    .await
}

/// The instance dies after the handler committed and before the client
/// heard back (the answer is lost): the retry replays what was committed.
async fn an_answer_lost_after_the_commit_is_replayed(backend: Backend) {
    let app = TestApp::spawn_long_tokens(backend).await;
    let (worker, circle, member) = member_in_circle(&app).await;
    let lose = || {
        app.state
            .faults
            .lose_next_answer
            .store(true, std::sync::atomic::Ordering::SeqCst)
    };

    lose();
    post_with_key(&app, &circle, &member, "lost-1")
        .await
        .expect_problem(500, "internal_error");
    let retry = post_with_key(&app, &circle, &member, "lost-1")
        .await
        .expect(201);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let feed = app
        .get(&format!("/v1/circles/{circle}/posts"), Some(&member))
        .await
        .expect(200);
    let items = feed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one post, not two");
    assert_eq!(
        items[0]["id"], retry.body["id"],
        "the replay names the stored post"
    );

    // A check-in, and "I'm OK" everywhere.
    let checkins = count(&app, "checkins").await;
    lose();
    let path = format!("/v1/circles/{circle}/checkins");
    let body = json!({"mood": 4, "wants_contact": true});
    let key = [("idempotency-key", "lost-2")];
    app.request_with(Method::POST, &path, Some(&member), Some(body.clone()), &key)
        .await
        .expect(500);
    app.request_with(Method::POST, &path, Some(&member), Some(body), &key)
        .await
        .expect(201);
    assert_eq!(count(&app, "checkins").await, checkins + 1);
    let alerts: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE reason = 'contact_request'")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(alerts, 1, "one contact request, not two");

    // Joining: the retry is refused (tokens are never replayed), and one
    // account was made.
    let code = app.invite(&worker, &circle, 5).await;
    let accounts = count(&app, "accounts").await;
    lose();
    let join = json!({"code": code, "pseudonym": "Maan", "consent_version": 1});
    let key = [("idempotency-key", "lost-3")];
    app.request_with(Method::POST, "/v1/join", None, Some(join.clone()), &key)
        .await
        .expect(500);
    app.request_with(Method::POST, "/v1/join", None, Some(join), &key)
        .await
        .expect_problem(409, "idempotency_replay_refused");
    assert_eq!(count(&app, "accounts").await, accounts + 1);
    app.stop().await;
}
both_backends!(an_answer_lost_after_the_commit_is_replayed);

/// The database refuses to keep the key's response (an outage between the
/// write and the key): the write is rolled back with it, and the retry runs
/// once more.
async fn a_key_that_cannot_be_kept_rolls_the_write_back(backend: Backend) {
    let app = TestApp::spawn_long_tokens(backend).await;
    let (_, circle, member) = member_in_circle(&app).await;
    let pool = app.state.store.pool();
    match backend {
        Backend::Sqlite => {
            sqlx::query(
                "CREATE TRIGGER refuse_responses BEFORE UPDATE OF response_body ON idempotency_keys
                 BEGIN SELECT RAISE(ABORT, 'injected fault: responses cannot be kept'); END",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        Backend::Postgres => {
            sqlx::query(
                "CREATE FUNCTION refuse_responses() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'injected fault: responses cannot be kept'; END $$",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER refuse_responses BEFORE UPDATE OF response_body ON idempotency_keys
                 FOR EACH ROW EXECUTE FUNCTION refuse_responses()",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
    post_with_key(&app, &circle, &member, "refused-1")
        .await
        .expect_problem(500, "internal_error");
    assert_eq!(count(&app, "posts").await, 0, "the post went with its key");

    sqlx::query(match backend {
        Backend::Sqlite => "DROP TRIGGER refuse_responses",
        Backend::Postgres => "DROP TRIGGER refuse_responses ON idempotency_keys",
    })
    .execute(pool)
    .await
    .unwrap();
    let retry = post_with_key(&app, &circle, &member, "refused-1")
        .await
        .expect(201);
    assert_eq!(
        retry.headers["idempotent-replayed"], "false",
        "it ran again"
    );
    assert_eq!(count(&app, "posts").await, 1);
    app.stop().await;
}
both_backends!(a_key_that_cannot_be_kept_rolls_the_write_back);

/// The caller cannot be looked up for a moment: the request fails rather
/// than running without its key.
async fn a_failed_caller_lookup_keeps_the_key(backend: Backend) {
    let app = TestApp::spawn_long_tokens(backend).await;
    let (_, circle, member) = member_in_circle(&app).await;
    app.state
        .faults
        .fail_next_caller_lookup
        .store(true, std::sync::atomic::Ordering::SeqCst);
    post_with_key(&app, &circle, &member, "lookup-1")
        .await
        .expect_problem(500, "internal_error");
    assert_eq!(count(&app, "posts").await, 0, "nothing ran unprotected");
    post_with_key(&app, &circle, &member, "lookup-1")
        .await
        .expect(201);
    post_with_key(&app, &circle, &member, "lookup-1")
        .await
        .expect(201);
    assert_eq!(count(&app, "posts").await, 1);
    app.stop().await;
}
both_backends!(a_failed_caller_lookup_keeps_the_key);

/// Ten copies of one request at once (a client retrying eagerly): one post,
/// and every copy answers with it.
async fn copies_sent_at_once_make_one_post(backend: Backend) {
    let app = TestApp::spawn_long_tokens(backend).await;
    let (_, circle, member) = member_in_circle(&app).await;
    let answers = futures_util::future::join_all(
        (0..10).map(|_| post_with_key(&app, &circle, &member, "burst-1")),
    )
    .await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status.as_u16(), 201, "{:?}", a.body);
            a.str("/id")
        })
        .collect();
    assert_eq!(ids.len(), 1, "every copy names the one post");
    assert_eq!(count(&app, "posts").await, 1);
    let fresh = answers
        .iter()
        .filter(|a| a.headers["idempotent-replayed"] == "false")
        .count();
    assert_eq!(fresh, 1, "one copy ran, the others were replays");
    app.stop().await;
}
both_backends!(copies_sent_at_once_make_one_post);

/// Every operation that documents `Idempotency-Key` keeps its key in its
/// own transaction (takes `Idempotent`), so a new creating handler cannot
/// quietly fall back to storing its response after the commit.
#[test]
fn every_documented_key_is_kept_in_the_write() {
    let mut checked = 0;
    let mut missing = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for (at, _) in source.match_indices("#[utoipa::path(") {
                let rest = &source[at..];
                let Some(fn_at) = rest.find("pub async fn ") else {
                    continue;
                };
                let annotation = &rest[..fn_at];
                if !annotation.contains("IdempotencyKey") {
                    continue;
                }
                checked += 1;
                let signature =
                    &rest[fn_at..rest[fn_at..].find('{').map_or(rest.len(), |e| fn_at + e)];
                if !signature.contains(": Idempotent,") {
                    missing.push(format!(
                        "{}: {}",
                        path.display(),
                        signature.lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(
        checked >= 15,
        "only {checked} operations document Idempotency-Key"
    );
    assert!(
        missing.is_empty(),
        "these do not take `Idempotent`: {missing:#?}"
    );
}
