//! Push delivery through the API to local mock push services: devices,
//! producers, the inbox, quiet hours, digests, preferences, leases and TTLs.

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Person, TestApp};
use kring::config::Config;
use push_mocks::{MockFcm, MockWebPush, Subscription};

pub struct World {
    pub app: TestApp,
    pub webpush: MockWebPush,
    pub fcm: MockFcm,
    pub coordinator: Person,
    pub worker: Person,
    pub circle: String,
    pub zon: Person,
    pub maan: Person,
}

/// An organisation with a circle, a worker and two members, and Kring's
/// providers pointed at the mock Web Push and FCM services.
pub async fn world(backend: Backend) -> World {
    world_with(backend, |_| {}).await
}

/// The same, with some of Kring's configuration changed.
pub async fn world_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> World {
    let webpush = MockWebPush::start().await;
    let fcm = MockFcm::start().await;
    let (vapid, _) = kring::push::webpush::generate_vapid_keys().unwrap();
    let (key_file, fcm_base) = (fcm.key_file.clone(), fcm.base.clone());
    let app = TestApp::spawn_with_push(backend, move |c| {
        c.access_token_ttl_secs = 400 * 86_400;
        c.webpush_allowed_hosts = "127.0.0.1".into();
        c.webpush_allow_http = true;
        // Long enough for a send under full test-suite load; short enough for the "hang" cases.
        c.push_timeout_ms = 1500;
        c.vapid_private_key = Some(vapid);
        c.vapid_subject = "mailto:ops@kring.test".into();
        c.fcm_service_account_file = Some(key_file);
        c.fcm_token_url = Some(format!("{fcm_base}/token"));
        c.fcm_base_url = fcm_base;
        configure(c);
    })
    .await;
    let org = app
        .organisation("Buurtwerk", "anna@buurtwerk.example")
        .await;
    let worker = app.worker(&org, "sam@buurtwerk.example").await;
    let circle = app.circle(&worker, "Samen sterk").await;
    let zon = app.member(&worker, &circle, "Zon").await;
    let maan = app.member(&worker, &circle, "Maan").await;
    World {
        app,
        webpush,
        fcm,
        coordinator: org.coordinator,
        worker,
        circle,
        zon,
        maan,
    }
}

impl World {
    pub async fn register_webpush(&self, person: &Person, sub: &Subscription) -> String {
        self.app
            .post(
                "/v1/devices",
                person.token(),
                json!({"kind": "webpush", "endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}),
            )
            .await
            .expect(201)
            .str("/id")
    }

    pub async fn register_fcm(&self, person: &Person, token: &str) -> String {
        self.app
            .post(
                "/v1/devices",
                person.token(),
                json!({"kind": "fcm", "token": token}),
            )
            .await
            .expect(201)
            .str("/id")
    }

    pub async fn deliver(&self) -> usize {
        kring::jobs::delivery::run_until_idle(&self.app.state)
            .await
            .unwrap()
    }

    pub async fn personal_message(&self, to: &Person, text: &str) -> String {
        self.app
            .post(
                &format!(
                    "/v1/circles/{}/members/{}/messages",
                    self.circle,
                    to.membership()
                ),
                self.worker.token(),
                json!({"text": text}),
            )
            .await
            .expect(201)
            .str("/notification_id")
    }

    /// Status and due time of the delivery to one device.
    pub async fn delivery(&self, device_id: &str) -> (String, i64, i64) {
        sqlx::query_as("SELECT status, not_before, attempts FROM deliveries WHERE device_id = $1 ORDER BY created_at DESC LIMIT 1")
            .bind(device_id)
            .fetch_one(self.app.state.store.pool())
            .await
            .unwrap()
    }

    pub async fn device_ids(&self, person: &Person) -> Vec<String> {
        let r = self
            .app
            .get("/v1/devices", person.token())
            .await
            .expect(200);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The payload has exactly the committed schema's properties, with every required one.
pub fn assert_matches_payload_schema(payload: &Value) {
    let schema: Value =
        serde_json::from_str(include_str!("../../openapi/push-payload.schema.json")).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    let object = payload.as_object().expect("an object");
    for key in object.keys() {
        assert!(
            properties.contains_key(key),
            "{key} is not in the push payload schema"
        );
    }
    for required in schema["required"].as_array().unwrap() {
        let key = required.as_str().unwrap();
        assert!(
            object.contains_key(key),
            "required {key} missing from {payload}"
        );
        assert!(
            !object[key].is_null(),
            "required {key} is null in {payload}"
        );
    }
    // The kinds this server sends are the known ones of the open list.
    let kinds = schema
        .pointer("/properties/kind/anyOf/0/enum")
        .and_then(Value::as_array)
        .unwrap();
    assert!(
        kinds.contains(&object["kind"]),
        "unknown kind {}",
        object["kind"]
    );
}

async fn web_push_and_fcm_deliver_decrypted_payloads(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.zon, &sub).await;
    w.register_fcm(&w.maan, "fcm-token-maan-0000000000001")
        .await;
    app.patch(
        "/v1/me/notification-preferences",
        w.zon.token(),
        json!({"new_posts": "immediate"}),
    )
    .await
    .expect(200);

    // Maan posts: Zon (immediate) gets a new-post push over Web Push.
    let posts = format!("/v1/circles/{}/posts", w.circle);
    let post = app
        .post(&posts, w.maan.token(), json!({"body": "Hallo allemaal"}))
        .await
        .expect(201)
        .str("/id");
    // Zon replies: Maan gets a reply push over FCM.
    let reply = app
        .post(
            &posts,
            w.zon.token(),
            json!({"body": "Hoi Maan!", "reply_to_id": post}),
        )
        .await
        .expect(201)
        .str("/id");
    assert_eq!(w.deliver().await, 2);

    // The inbox is the truth; the push carries its id.
    let zon_inbox = app
        .get("/v1/notifications", w.zon.token())
        .await
        .expect(200);
    assert_eq!(zon_inbox.body["items"][0]["kind"], "new_post");
    let received = w.webpush.received();
    assert_eq!(received.len(), 1, "rejected: {:?}", w.webpush.rejected());
    let push = &received[0];
    assert_eq!(push.payload["kind"], "new_post");
    assert_eq!(
        push.payload["notification_id"],
        zon_inbox.body["items"][0]["id"]
    );
    assert_eq!(push.payload["post_id"], post);
    assert_eq!(push.payload["title"], "Nieuw bericht in Samen sterk");
    assert_eq!(push.payload["body"], "Maan schreef iets.");
    assert_eq!(push.payload["badge"], 1);
    assert_eq!(
        push.payload["deep_link"],
        format!("kring://circles/{}/posts/{post}", w.circle)
    );
    assert_eq!(push.ttl, "86400");
    assert_eq!(push.urgency.as_deref(), Some("low"));
    assert_eq!(push.vapid_sub, "mailto:ops@kring.test");
    assert_matches_payload_schema(&push.payload);

    let maan_inbox = app
        .get("/v1/notifications", w.maan.token())
        .await
        .expect(200);
    assert_eq!(maan_inbox.body["items"][0]["kind"], "reply");
    assert_eq!(
        maan_inbox.body["items"][0]["title"],
        "Zon reageerde op je bericht"
    );
    let fcm = w.fcm.received();
    assert_eq!(fcm.len(), 1);
    let message = &fcm[0].message["message"];
    assert_eq!(fcm[0].token, "fcm-token-maan-0000000000001");
    assert_eq!(message["data"]["kind"], "reply");
    assert_eq!(
        message["data"]["notification_id"],
        maan_inbox.body["items"][0]["id"]
    );
    assert_eq!(message["data"]["post_id"], reply);
    assert_eq!(
        message["notification"]["title"],
        "Zon reageerde op je bericht"
    );
    assert_eq!(message["android"]["priority"], "NORMAL");
    assert_eq!(message["android"]["ttl"], "86400s");
    // FCM data values are strings; as JSON they match the payload schema.
    let mut payload = serde_json::Map::new();
    for (k, v) in message["data"].as_object().unwrap() {
        let s = v.as_str().unwrap();
        payload.insert(
            k.clone(),
            serde_json::from_str(s).unwrap_or(Value::String(s.to_owned())),
        );
    }
    assert_matches_payload_schema(&Value::Object(payload));

    // A second FCM push reuses the cached OAuth token.
    app.post(
        &posts,
        w.zon.token(),
        json!({"body": "Nog iets", "reply_to_id": post}),
    )
    .await
    .expect(201);
    w.deliver().await;
    assert_eq!(w.fcm.received().len(), 2);
    assert_eq!(w.fcm.token_requests(), 1);

    // Outcomes are recorded and counted.
    let delivered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    assert_eq!(delivered, 3);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"kring_push_deliveries_total{provider="webpush",outcome="delivered"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kring_push_deliveries_total{provider="fcm",outcome="delivered"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kring_outbox_pending{provider="webpush"} 0"#),
        "{metrics}"
    );

    // Reading the inbox.
    let zon_inbox_id = zon_inbox.str("/items/0/id");
    assert_eq!(
        app.get("/v1/notifications/unread-count", w.zon.token())
            .await
            .expect(200)
            .body["unread_count"],
        1
    );
    let read = app
        .post(
            &format!("/v1/notifications/{zon_inbox_id}/read"),
            w.zon.token(),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(read.body["read"], true);
    // A sync from the earlier listing's token brings the change, once.
    let token = zon_inbox.str("/sync_token");
    let synced = app
        .get(&format!("/v1/notifications?since={token}"), w.zon.token())
        .await
        .expect(200);
    assert_eq!(synced.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(synced.body["items"][0]["id"], zon_inbox_id.as_str());
    assert_eq!(synced.body["items"][0]["read"], true);
    let token = synced.str("/sync_token");
    let again = app
        .get(&format!("/v1/notifications?since={token}"), w.zon.token())
        .await
        .expect(200);
    assert!(again.body["items"].as_array().unwrap().is_empty());
    // Tokens are the account's own.
    app.get(&format!("/v1/notifications?since={token}"), w.maan.token())
        .await
        .expect_problem(422, "validation_failed");
    app.post(
        &format!("/v1/notifications/{zon_inbox_id}/read"),
        w.maan.token(),
        json!({}),
    )
    .await
    .expect_problem(404, "not_found");
    let all = app
        .post("/v1/notifications/read-all", w.maan.token(), json!({}))
        .await
        .expect(200);
    assert_eq!(all.body["unread_count"], 0);
    w.app.stop().await;
}
both_backends!(web_push_and_fcm_deliver_decrypted_payloads);

async fn quiet_hours_digests_and_preferences(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.zon, &sub).await;
    let posts = format!("/v1/circles/{}/posts", w.circle);

    // 22:00 in Amsterdam (21:00Z): inside Zon's quiet hours (21:00–09:00).
    app.clock.set("2026-03-02T21:00:00Z".parse().unwrap());
    let first = app
        .post(&posts, w.maan.token(), json!({"body": "Een"}))
        .await
        .expect(201)
        .str("/id");
    app.post(&posts, w.maan.token(), json!({"body": "Twee"}))
        .await
        .expect(201);
    app.post(&posts, w.worker.token(), json!({"body": "Drie"}))
        .await
        .expect(201);
    w.deliver().await;
    assert!(
        w.webpush.received().is_empty(),
        "nothing during quiet hours"
    );

    // The inbox has one digest for the three posts, at once.
    let inbox = app
        .get("/v1/notifications", w.zon.token())
        .await
        .expect(200);
    assert_eq!(inbox.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(inbox.body["items"][0]["kind"], "post_digest");
    assert_eq!(inbox.body["items"][0]["item_count"], 3);
    assert_eq!(
        inbox.body["items"][0]["title"],
        "3 nieuwe berichten in Samen sterk"
    );

    // 08:59 local: still quiet. 09:00 local (08:00Z): one push with the count.
    app.clock.set("2026-03-03T07:59:00Z".parse().unwrap());
    w.deliver().await;
    assert!(w.webpush.received().is_empty());
    app.clock.set("2026-03-03T08:00:00Z".parse().unwrap());
    w.deliver().await;
    let received = w.webpush.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].payload["kind"], "post_digest");
    assert_eq!(
        received[0].payload["title"],
        "3 nieuwe berichten in Samen sterk"
    );
    assert!(
        received[0].topic.as_deref().is_some_and(|t| t.len() == 32),
        "digests collapse by topic"
    );

    // Reactions are on by default; off means no notification at all.
    app.put(
        &format!("/v1/posts/{first}/reactions/hug"),
        w.zon.token(),
        None,
    )
    .await
    .expect(200);
    let maan_inbox = app
        .get("/v1/notifications", w.maan.token())
        .await
        .expect(200);
    assert_eq!(maan_inbox.body["items"][0]["kind"], "reaction");
    assert_eq!(
        maan_inbox.body["items"][0]["title"],
        "Zon stuurde je een knuffel"
    );
    let before = app
        .get("/v1/notifications", w.maan.token())
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .len();
    app.patch(
        "/v1/me/notification-preferences",
        w.maan.token(),
        json!({"reactions": false, "new_posts": "off"}),
    )
    .await
    .expect(200);
    app.put(
        &format!("/v1/posts/{first}/reactions/heart"),
        w.zon.token(),
        None,
    )
    .await
    .expect(200);
    app.post(&posts, w.zon.token(), json!({"body": "Vier"}))
        .await
        .expect(201);
    let count = app
        .get("/v1/notifications", w.maan.token())
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        count, before,
        "no new items with reactions and new posts off"
    );
    let prefs = app
        .get("/v1/me/notification-preferences", w.maan.token())
        .await
        .expect(200);
    assert_eq!(
        prefs.body,
        json!({"new_posts": "off", "replies": true, "reactions": false})
    );
    app.patch(
        "/v1/me/notification-preferences",
        w.maan.token(),
        json!({"new_posts": "sometimes"}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // A personal message is urgent and offers "I'm OK".
    app.clock.set("2026-03-03T10:00:00Z".parse().unwrap());
    w.personal_message(&w.zon, "Ik dacht even aan je.").await;
    w.deliver().await;
    let last = w.webpush.received().pop().unwrap();
    assert_eq!(last.payload["kind"], "personal_message");
    assert_eq!(last.payload["body"], "Ik dacht even aan je.");
    assert_eq!(last.payload["actions"], json!(["im_ok"]));
    assert_eq!(last.urgency.as_deref(), Some("high"));
    app.post(
        &format!(
            "/v1/circles/{}/members/{}/messages",
            w.circle,
            w.maan.membership()
        ),
        w.zon.token(),
        json!({"text": "hoi"}),
    )
    .await
    .expect_problem(403, "staff_only");
    w.app.stop().await;
}
both_backends!(quiet_hours_digests_and_preferences);

async fn a_crashed_claim_is_retried_after_its_lease(backend: Backend) {
    let w = world(backend).await;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.zon, &sub).await;
    let notification = w.personal_message(&w.zon, "Hoe gaat het?").await;

    // A worker claims the delivery and dies before sending or recording.
    let claimed = kring::jobs::delivery::claim(&w.app.state, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(w.deliver().await, 0, "the lease still holds");
    assert!(w.webpush.received().is_empty());

    w.app.advance(SignedDuration::from_secs(61));
    assert_eq!(w.deliver().await, 1);
    let received = w.webpush.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].payload["notification_id"], notification);
    w.app.stop().await;
}
both_backends!(a_crashed_claim_is_retried_after_its_lease);

async fn devices_register_update_move_and_unregister(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let sub = w.webpush.subscribe();

    // Only known push services, never an arbitrary host (SSRF).
    for endpoint in [
        "https://evil.example/push/1",
        "http://169.254.169.254/latest/meta-data",
        "ftp://127.0.0.1/x",
        "not a url",
    ] {
        let r = app
            .post("/v1/devices", w.zon.token(), json!({"kind": "webpush", "endpoint": endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}))
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.fields(), vec!["endpoint"], "{endpoint}");
    }
    let r = app
        .post("/v1/devices", w.zon.token(), json!({"kind": "webpush", "endpoint": sub.endpoint, "keys": {"p256dh": "AAAA", "auth": "short"}}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.fields(), vec!["keys.p256dh", "keys.auth"]);
    app.post(
        "/v1/devices",
        w.zon.token(),
        json!({"kind": "carrier-pigeon", "token": "x"}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // APNs: register, register again (same device), refresh the token.
    let apns = json!({"kind": "apns", "token": "ab".repeat(32), "topic": "nl.kring.app", "environment": "sandbox", "label": "iPhone"});
    let first = app
        .post("/v1/devices", w.zon.token(), apns.clone())
        .await
        .expect(201);
    let id = first.str("/id");
    assert_eq!(first.body["kind"], "apns");
    assert_eq!(first.body["apns_environment"], "sandbox");
    assert!(first.body.get("token").is_none(), "tokens are not echoed");
    let again = app
        .post("/v1/devices", w.zon.token(), apns.clone())
        .await
        .expect(200);
    assert_eq!(again.str("/id"), id);
    let refreshed = json!({"kind": "apns", "token": "cd".repeat(32), "topic": "nl.kring.app", "environment": "production"});
    let r = app
        .put(
            &format!("/v1/devices/{id}"),
            w.zon.token(),
            Some(refreshed.clone()),
        )
        .await
        .expect(200);
    assert_eq!(r.body["apns_environment"], "production");
    app.put(
        &format!("/v1/devices/{id}"),
        w.maan.token(),
        Some(refreshed.clone()),
    )
    .await
    .expect_problem(404, "not_found");
    let wrong_kind = json!({"kind": "fcm", "token": "fcm-token-0000000000000000000"});
    app.put(
        &format!("/v1/devices/{id}"),
        w.zon.token(),
        Some(wrong_kind),
    )
    .await
    .expect_problem(409, "device_kind_changed");

    // The same token registered by another account moves to it.
    let moved = app
        .post("/v1/devices", w.maan.token(), refreshed)
        .await
        .expect(201);
    assert_ne!(moved.str("/id"), id);
    assert!(w.device_ids(&w.zon).await.is_empty());
    assert_eq!(w.device_ids(&w.maan).await, vec![moved.str("/id")]);

    // Unregister.
    let wp = w.register_webpush(&w.zon, &sub).await;
    assert_eq!(w.device_ids(&w.zon).await, vec![wp.clone()]);
    app.delete(&format!("/v1/devices/{wp}"), w.maan.token())
        .await
        .expect_problem(404, "not_found");
    app.delete(&format!("/v1/devices/{wp}"), w.zon.token())
        .await
        .expect(204);
    app.delete(&format!("/v1/devices/{wp}"), w.zon.token())
        .await
        .expect_problem(404, "not_found");
    assert!(w.device_ids(&w.zon).await.is_empty());

    // No devices, still an inbox: nothing is lost when push cannot happen.
    w.personal_message(&w.zon, "Denk aan je").await;
    w.deliver().await;
    let inbox = app
        .get("/v1/notifications", w.zon.token())
        .await
        .expect(200);
    assert_eq!(inbox.body["items"][0]["kind"], "personal_message");
    w.app.stop().await;
}
both_backends!(devices_register_update_move_and_unregister);

async fn expired_fcm_tokens_are_refreshed(backend: Backend) {
    let w = world(backend).await;
    // Tokens that are already stale when issued (inside gcp_auth's refresh margin).
    w.fcm.set_token_lifetime(5);
    w.register_fcm(&w.zon, "fcm-token-zon-00000000000000001")
        .await;
    w.personal_message(&w.zon, "Een").await;
    w.deliver().await;
    w.personal_message(&w.zon, "Twee").await;
    w.deliver().await;
    assert_eq!(w.fcm.received().len(), 2);
    assert_eq!(
        w.fcm.token_requests(),
        2,
        "a fresh token for each send once the old one expired"
    );
    w.app.stop().await;
}
both_backends!(expired_fcm_tokens_are_refreshed);

async fn racing_workers_claim_disjoint_deliveries(backend: Backend) {
    let w = world(backend).await;
    for i in 0..12 {
        w.register_fcm(&w.zon, &format!("fcm-token-race-{i:020}"))
            .await;
    }
    for i in 0..5 {
        w.personal_message(&w.zon, &format!("Bericht {i}")).await;
    }
    // 60 deliveries; two instances claim at the same moment.
    let state = &w.app.state;
    let (a, b) = tokio::join!(
        kring::jobs::delivery::claim(state, 40),
        kring::jobs::delivery::claim(state, 40)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: std::collections::HashSet<_> = a.iter().chain(b.iter()).cloned().collect();
    assert_eq!(all.len(), a.len() + b.len(), "no delivery claimed twice");
    assert_eq!(all.len(), 60, "every due delivery claimed once");
    w.app.stop().await;
}
both_backends!(racing_workers_claim_disjoint_deliveries);
