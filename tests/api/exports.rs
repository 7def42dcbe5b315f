//! Exports (issue 17, part 2): a member's copy of everything Kring holds
//! about them holds every source and no secret or other member's content;
//! one export at a time, also under parallel requests; the download
//! expires; a coordinator can start one on a member's behalf (logged, and
//! the member sees it); others get 404; a build that crashed is retried
//! after its lease, and one that keeps failing ends as `failed`.

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::access_log::{World, entries, verify};
use crate::both_backends;
use crate::support::{Backend, PASSWORD, Person, Resp, TestApp};

/// Runs the export builder until nothing is pending.
async fn build(app: &TestApp) -> usize {
    kring::jobs::run_until_idle(&kring::jobs::exports::Builder, &app.state)
        .await
        .unwrap()
}

async fn start(app: &TestApp, who: &Person) -> Resp {
    app.post("/v1/me/export", who.token(), json!({})).await
}

/// Starts an export as `who`, builds it and downloads it.
async fn export_of(app: &TestApp, who: &Person) -> (String, Value) {
    let r = start(app, who).await.expect(202);
    assert_eq!(r.body["status"], "pending");
    let id = r.str("/id");
    assert_eq!(
        r.headers.get("location").unwrap().to_str().unwrap(),
        format!("/v1/me/exports/{id}")
    );
    app.get(&format!("/v1/me/exports/{id}/download"), who.token())
        .await
        .expect_problem(409, "export_not_ready");
    assert_eq!(build(app).await, 1);
    let r = app
        .get(&format!("/v1/me/exports/{id}"), who.token())
        .await
        .expect(200);
    assert_eq!(r.body["status"], "ready");
    assert!(r.body["ready_at"].is_string());
    let download = r.str("/download");
    let raw = app
        .client
        .get(format!("{}{download}", app.base))
        .bearer_auth(&who.access)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(
        raw.headers().get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(raw.headers().get("cache-control").unwrap(), "no-store");
    let text = raw.text().await.unwrap();
    (text, r.body)
}

/// A member who chose a login name and password (so a hash exists).
async fn member_with_password(app: &TestApp, staff: &Person, circle: &str) -> Person {
    let code = app.invite(staff, circle, 1).await;
    let version = app
        .get(&format!("/v1/invites/{code}"), None)
        .await
        .expect(200)
        .body["agreement"]["version"]
        .clone();
    let r = app
        .post(
            "/v1/join",
            None,
            json!({"code": code, "pseudonym": "Ster", "consent_version": version,
                   "time_zone": "Europe/Amsterdam", "locale": "en",
                   "login_name": "ster-login", "password": PASSWORD}),
        )
        .await
        .expect(201);
    let mut p = Person::from_auth(&r);
    p.membership_id = Some(r.str("/membership/id"));
    p
}

async fn the_export_holds_everything_and_no_secret(backend: Backend) {
    let w = World::new(backend).await;
    let (app, c) = (&w.app, &w.circle);
    let ster = member_with_password(app, &w.worker, c).await;
    let posts = format!("/v1/circles/{c}/posts");

    // Another member's post, which ster replies to and reacts to.
    let maan_post = app
        .post(
            &posts,
            w.maan.token(),
            json!({"body": "Maan deelt iets heel persoonlijks"}),
        )
        .await
        .expect(201)
        .str("/id");
    let own = app
        .post(
            &posts,
            ster.token(),
            json!({"body": "Ster schrijft over haar week", "reply_to_id": maan_post}),
        )
        .await
        .expect(201)
        .str("/id");
    app.put(
        &format!("/v1/posts/{maan_post}/reactions/heart"),
        ster.token(),
        None,
    )
    .await
    .expect(200);
    // Settings.
    app.patch(
        "/v1/me/notification-preferences",
        ster.token(),
        json!({"replies": false}),
    )
    .await
    .expect(200);
    // A check-in asking for contact: an alert, which the worker resolves
    // with a note.
    app.post(
        &format!("/v1/circles/{c}/checkins"),
        ster.token(),
        json!({"mood": 2, "note": "Ster slaapt slecht", "wants_contact": true}),
    )
    .await
    .expect(201);
    let alert = app
        .get("/v1/alerts", w.worker.token())
        .await
        .expect(200)
        .str("/items/0/id");
    app.post(
        &format!("/v1/alerts/{alert}/resolve"),
        w.worker.token(),
        json!({"outcome": "reached", "note": "Gebeld, het gaat iets beter"}),
    )
    .await
    .expect(200);
    // A device, a personal message (an inbox item), a recovery code.
    let device_token = "fcm-token-of-ster-0123456789abcdef";
    app.post(
        "/v1/devices",
        ster.token(),
        json!({"kind": "fcm", "token": device_token, "label": "Telefoon van Ster"}),
    )
    .await
    .expect(201);
    let membership = ster.membership();
    app.post(
        &format!("/v1/circles/{c}/members/{membership}/messages"),
        w.worker.token(),
        json!({"text": "Ik denk aan je, Ster."}),
    )
    .await
    .expect(201);
    let code = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/circles/{c}/members/{membership}/recovery-code"),
            w.worker.token(),
            None,
        )
        .await
        .expect(201)
        .str("/code");
    // Staff read ster's check-ins: access-log entries.
    w.read_checkins(&w.worker).await;

    let (text, _) = export_of(app, &ster).await;
    let doc: Value = serde_json::from_str(&text).unwrap();

    // Every source.
    assert_eq!(doc["format"], "kring-export/1");
    assert_eq!(doc["language"], "en");
    let summary = doc["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("This is everything Kring holds"),
        "{summary}"
    );
    assert!(summary.contains("Samen sterk"), "{summary}");
    assert_eq!(doc["account"]["id"], ster.account_id.as_str());
    assert_eq!(doc["account"]["login_name"], "ster-login");
    assert_eq!(doc["account"]["organisation_name"], "Buurtwerk");
    assert_eq!(doc["account"]["notification_preferences"]["replies"], false);
    let m = &doc["memberships"][0];
    assert_eq!(m["pseudonym"], "Ster");
    assert_eq!(m["consent"]["version"], 1);
    assert!(m["consent"]["consented_at"].is_string());
    assert!(
        m["consent"]["agreement_text"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let posts = doc["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["id"], own.as_str());
    assert_eq!(posts[0]["body"], "Ster schrijft over haar week");
    assert_eq!(posts[0]["reply_to_id"], maan_post.as_str());
    assert_eq!(doc["reactions"][0]["post_id"], maan_post.as_str());
    assert_eq!(doc["reactions"][0]["kind"], "heart");
    assert_eq!(doc["checkins"][0]["note"], "Ster slaapt slecht");
    assert_eq!(doc["checkins"][0]["wants_contact"], true);
    let kinds: Vec<&str> = doc["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"personal_message"), "{kinds:?}");
    assert!(kinds.contains(&"recovery_code_issued"), "{kinds:?}");
    assert!(text.contains("Ik denk aan je, Ster."));
    assert_eq!(doc["devices"][0]["kind"], "fcm");
    assert_eq!(doc["devices"][0]["label"], "Telefoon van Ster");
    assert!(!doc["sessions"].as_array().unwrap().is_empty());
    assert_eq!(doc["recovery_codes"][0]["issued_by"], "Worker");
    let a = &doc["alerts"][0];
    assert_eq!(a["id"], alert.as_str());
    assert_eq!(a["reason"], "contact_request");
    assert_eq!(a["status"], "resolved");
    assert_eq!(a["resolution_outcome"], "reached");
    assert_eq!(a["resolution_note"], "Gebeld, het gaat iets beter");
    assert_eq!(a["resolved_by"], "Worker");
    let access = doc["access_log"].as_array().unwrap();
    assert!(
        access
            .iter()
            .any(|e| e["kind"] == "checkins" && e["action"] == "list"),
        "{access:?}"
    );
    assert!(
        access
            .iter()
            .any(|e| e["kind"] == "recovery_code" && e["staff_name"] == "Worker")
    );

    // No secret and no other member's content anywhere in the text.
    let pool = app.state.store.pool();
    let mut secrets: Vec<String> = vec![
        "Maan deelt iets heel persoonlijks".into(),
        device_token.into(),
        code.clone(),
        code.replace('-', ""),
        ster.access.clone(),
        ster.refresh.clone(),
        PASSWORD.into(),
        "argon2".into(),
    ];
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
        .bind(&ster.account_id)
        .fetch_one(pool)
        .await
        .unwrap();
    secrets.push(hash);
    let token_hashes: Vec<String> = sqlx::query_scalar(
        "SELECT t.token_hash FROM access_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE s.account_id = $1
         UNION ALL
         SELECT r.token_hash FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
         WHERE s.account_id = $1
         UNION ALL
         SELECT code_hash FROM account_codes WHERE account_id = $1
         UNION ALL
         SELECT token_key FROM devices WHERE account_id = $1",
    )
    .bind(&ster.account_id)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(token_hashes.len() >= 4);
    secrets.extend(token_hashes);
    let session_ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM sessions WHERE account_id = $1")
            .bind(&ster.account_id)
            .fetch_all(pool)
            .await
            .unwrap();
    secrets.extend(session_ids);
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !text.to_lowercase().contains(&secret.to_lowercase()),
            "a secret or another member's content is in the export: {secret}"
        );
    }
    w.app.stop().await;
}
both_backends!(the_export_holds_everything_and_no_secret);

/// Dutch members get a Dutch summary.
async fn the_summary_is_in_the_members_language(backend: Backend) {
    let w = World::new(backend).await;
    let (text, _) = export_of(&w.app, &w.zon).await;
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["language"], "nl");
    let summary = doc["summary"].as_str().unwrap();
    assert!(summary.starts_with("Dit zijn alle gegevens"), "{summary}");
    w.app.stop().await;
}
both_backends!(the_summary_is_in_the_members_language);

async fn one_export_at_a_time_even_in_parallel(backend: Backend) {
    let w = World::new(backend).await;
    let app = &w.app;
    let answers = futures_util::future::join_all((0..8).map(|_| start(app, &w.zon))).await;
    let created = answers.iter().filter(|r| r.status == 202).count();
    assert_eq!(created, 1, "{answers:?}");
    for r in answers.into_iter().filter(|r| r.status != 202) {
        r.expect_problem(409, "export_in_progress");
    }
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM exports WHERE account_id = $1")
        .bind(&w.zon.account_id)
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
    // Another member is not held up; a retry with the same key replays.
    let key = [("idempotency-key", "export-maan-1")];
    let first = app
        .request_with(
            reqwest::Method::POST,
            "/v1/me/export",
            w.maan.token(),
            Some(json!({})),
            &key,
        )
        .await
        .expect(202);
    let again = app
        .request_with(
            reqwest::Method::POST,
            "/v1/me/export",
            w.maan.token(),
            Some(json!({})),
            &key,
        )
        .await
        .expect(202);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    // Once built, a new export may start.
    assert_eq!(build(app).await, 2);
    app.advance(SignedDuration::from_secs(1));
    start(app, &w.zon).await.expect(202);
    let list = app.get("/v1/me/exports", w.zon.token()).await.expect(200);
    let statuses: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "ready"]);
    w.app.stop().await;
}
both_backends!(one_export_at_a_time_even_in_parallel);

async fn the_download_expires(backend: Backend) {
    let w = World::with(backend, |c| c.export_ttl_hours = 2).await;
    let app = &w.app;
    let (_, export) = export_of(app, &w.zon).await;
    let id = export["id"].as_str().unwrap();
    let ready_at: jiff::Timestamp = export["ready_at"].as_str().unwrap().parse().unwrap();
    let expires_at: jiff::Timestamp = export["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        expires_at.duration_since(ready_at),
        SignedDuration::from_hours(2)
    );
    let status = format!("/v1/me/exports/{id}");
    app.advance(SignedDuration::from_mins(119));
    app.get(&format!("{status}/download"), w.zon.token())
        .await
        .expect(200);
    // Past its time it is expired at once, before upkeep has run…
    app.advance(SignedDuration::from_mins(1));
    let r = app.get(&status, w.zon.token()).await.expect(200);
    assert_eq!(r.body["status"], "expired");
    assert!(r.body["download"].is_null());
    app.get(&format!("{status}/download"), w.zon.token())
        .await
        .expect_problem(410, "export_expired");
    // …and upkeep deletes the document.
    kring::upkeep_once(&app.state).await.unwrap();
    let (state, doc): (String, Option<String>) =
        sqlx::query_as("SELECT status, document FROM exports WHERE id = $1")
            .bind(id)
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(state, "expired");
    assert_eq!(doc, None);
    let r = app.get(&status, w.zon.token()).await.expect(200);
    assert_eq!(r.body["status"], "expired");
    w.app.stop().await;
}
both_backends!(the_download_expires);

async fn a_coordinator_exports_on_a_members_behalf(backend: Backend) {
    let w = World::new(backend).await;
    let app = &w.app;
    let coordinator = &w.org.coordinator;
    let zon = &w.zon.account_id;
    let start_for = format!("/v1/organisation/members/{zon}/export");

    // Only coordinators, only members of their organisation.
    app.post(&start_for, w.worker.token(), json!({}))
        .await
        .expect_problem(403, "coordinator_only");
    app.post(&start_for, w.zon.token(), json!({}))
        .await
        .expect_problem(403, "coordinator_only");
    app.post(
        &format!("/v1/organisation/members/{}/export", w.worker.account_id),
        coordinator.token(),
        json!({}),
    )
    .await
    .expect_problem(404, "not_found");
    let other = app.organisation("Elders", "bo@elders.example").await;
    app.post(&start_for, other.coordinator.token(), json!({}))
        .await
        .expect_problem(404, "not_found");
    assert!(entries(app).await.is_empty());

    let r = app
        .post(&start_for, coordinator.token(), json!({}))
        .await
        .expect(202);
    assert_eq!(r.body["requested_by"], "coordinator");
    let id = r.str("/id");
    // Logged, on the member's behalf.
    let logged = entries(app).await;
    assert_eq!(logged.len(), 1);
    let e = &logged[0];
    assert_eq!((e.kind.as_str(), e.action.as_str()), ("export", "export"));
    assert_eq!(e.subject_account_id, *zon);
    assert_eq!(e.on_behalf_of.as_deref(), Some(zon.as_str()));
    assert_eq!(e.actor_account_id, coordinator.account_id);
    // The member's own request waits for it.
    start(app, &w.zon)
        .await
        .expect_problem(409, "export_in_progress");

    // The member sees the entry and the export.
    let log = app
        .get("/v1/me/access-log", w.zon.token())
        .await
        .expect(200);
    let mine = &log.body["items"][0];
    assert_eq!(mine["kind"], "export");
    assert_eq!(mine["action"], "export");
    assert_eq!(mine["on_your_behalf"], true);
    assert_eq!(mine["staff"]["role"], "coordinator");
    let list = app.get("/v1/me/exports", w.zon.token()).await.expect(200);
    assert_eq!(list.body["items"][0]["id"], id.as_str());

    // The coordinator fetches it once built; the download is logged.
    let status = format!("/v1/organisation/members/{zon}/exports/{id}");
    let r = app.get(&status, coordinator.token()).await.expect(200);
    assert_eq!(r.body["status"], "pending");
    app.get(&format!("{status}/download"), coordinator.token())
        .await
        .expect_problem(409, "export_not_ready");
    assert_eq!(entries(app).await.len(), 1, "reading the status is not");
    build(app).await;
    let r = app.get(&status, coordinator.token()).await.expect(200);
    assert_eq!(r.body["download"], format!("{status}/download"));
    let doc = app
        .get(&format!("{status}/download"), coordinator.token())
        .await
        .expect(200);
    assert_eq!(doc.body["account"]["id"], zon.as_str());
    let logged = entries(app).await;
    assert_eq!(logged.len(), 2);
    assert_eq!(
        (logged[1].kind.as_str(), logged[1].action.as_str()),
        ("export", "read")
    );
    // The member downloads it too.
    app.get(&format!("/v1/me/exports/{id}/download"), w.zon.token())
        .await
        .expect(200);

    // Nobody else sees it: another member, a worker, another coordinator.
    for who in [&w.maan, &w.worker, coordinator] {
        app.get(&format!("/v1/me/exports/{id}"), who.token())
            .await
            .expect_problem(404, "not_found");
        app.get(&format!("/v1/me/exports/{id}/download"), who.token())
            .await
            .expect_problem(404, "not_found");
    }
    let maan = &w.maan.account_id;
    app.get(
        &format!("/v1/organisation/members/{maan}/exports/{id}"),
        coordinator.token(),
    )
    .await
    .expect_problem(404, "not_found");
    app.get(&status, other.coordinator.token())
        .await
        .expect_problem(404, "not_found");
    // Staff cannot export their own account.
    start(app, &w.worker)
        .await
        .expect_problem(403, "export_members_only");
    assert!(verify(app).await.is_ok());
    w.app.stop().await;
}
both_backends!(a_coordinator_exports_on_a_members_behalf);

/// An instance that claimed a build and crashed holds it only until its
/// lease runs out; then another builds it, once.
async fn a_crashed_build_is_retried_after_its_lease(backend: Backend) {
    let w = World::new(backend).await;
    let app = &w.app;
    let id = start(app, &w.zon).await.expect(202).str("/id");
    let claimed = app
        .state
        .store
        .claim_due(&kring::exports::QUEUE, app.now_ms(), 10, None)
        .await
        .unwrap();
    assert_eq!(claimed, std::slice::from_ref(&id));
    // The crashed instance never finishes; nobody else may take it yet.
    assert_eq!(build(app).await, 0);
    app.advance(SignedDuration::from_millis(kring::exports::LEASE_MS - 1));
    assert_eq!(build(app).await, 0);
    let r = app
        .get(&format!("/v1/me/exports/{id}"), w.zon.token())
        .await
        .expect(200);
    assert_eq!(r.body["status"], "pending");
    app.advance(SignedDuration::from_millis(2));
    assert_eq!(build(app).await, 1);
    let (status, attempts): (String, i64) =
        sqlx::query_as("SELECT status, attempts FROM exports WHERE id = $1")
            .bind(&id)
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("ready", 2));
    assert_eq!(build(app).await, 0, "built once");

    // A build that keeps failing gives up after its last attempt, so the
    // member can ask again.
    let id = start(app, &w.maan).await.expect(202).str("/id");
    sqlx::query("UPDATE exports SET attempts = $1 WHERE id = $2")
        .bind(kring::exports::MAX_ATTEMPTS)
        .bind(&id)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(build(app).await, 1);
    let r = app
        .get(&format!("/v1/me/exports/{id}"), w.maan.token())
        .await
        .expect(200);
    assert_eq!(r.body["status"], "failed");
    app.get(&format!("/v1/me/exports/{id}/download"), w.maan.token())
        .await
        .expect_problem(409, "export_failed");
    start(app, &w.maan).await.expect(202);
    w.app.stop().await;
}
both_backends!(a_crashed_build_is_retried_after_its_lease);
