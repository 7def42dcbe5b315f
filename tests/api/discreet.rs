//! Discreet pushes (issue 17, part 4): a lock screen that others see shows
//! "Kring: you have a new message" and nothing about the circle, a person
//! or a message when the circle is sensitive (by default) or the member
//! asks for it always; the inbox item keeps the full text.

use serde_json::{Value, json};

use crate::both_backends;
use crate::push::{World, assert_matches_payload_schema, world};
use crate::support::{Backend, Person};

/// What must never be on a discreet lock screen in this world.
const SECRETS: &[&str] = &["Samen sterk", "Zon", "Maan", "Worker", "schulden", "bank"];

/// The FCM `data` as JSON (its values are strings).
fn fcm_payload(message: &Value) -> Value {
    let mut payload = serde_json::Map::new();
    for (k, v) in message["message"]["data"].as_object().unwrap() {
        let s = v.as_str().unwrap();
        payload.insert(
            k.clone(),
            serde_json::from_str(s).unwrap_or(Value::String(s.to_owned())),
        );
    }
    Value::Object(payload)
}

/// A discreet push: the neutral text, flagged, and no trace of the circle,
/// a person or the message anywhere in what the provider received.
fn assert_discreet(payload: &Value, whole: &Value, message: &str) {
    assert_eq!(payload["discreet"], true, "{payload}");
    assert_eq!(payload["title"], "Kring");
    assert_eq!(payload["body"], "Je hebt een nieuw bericht.");
    let text = whole.to_string();
    for secret in SECRETS.iter().chain([&message]) {
        assert!(
            !text.contains(secret),
            "{secret:?} in a discreet push: {text}"
        );
    }
    assert_matches_payload_schema(payload);
}

async fn set_sensitive(w: &World, sensitive: bool) {
    let circle = w
        .app
        .patch(
            &format!("/v1/circles/{}", w.circle),
            w.worker.token(),
            json!({"sensitive": sensitive}),
        )
        .await
        .expect(200);
    assert_eq!(circle.body["sensitive"], sensitive);
}

async fn set_discreet(w: &World, person: &Person, setting: &str) {
    let me = w
        .app
        .patch(
            "/v1/me",
            person.token(),
            json!({"discreet_pushes": setting}),
        )
        .await
        .expect(200);
    assert_eq!(me.body["discreet_pushes"], setting);
}

/// The inbox item behind a push keeps the full text.
async fn inbox_body(w: &World, person: &Person, notification: &Value) -> String {
    let inbox = w
        .app
        .get("/v1/notifications", person.token())
        .await
        .expect(200);
    let item = inbox.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| &i["id"] == notification)
        .unwrap_or_else(|| panic!("{notification} not in {}", inbox.body))
        .clone();
    item["body"].as_str().unwrap().to_owned()
}

async fn sensitive_circles_get_discreet_pushes(backend: Backend) {
    let w = world(backend).await;
    let sub = w.webpush.subscribe();
    w.register_webpush(&w.zon, &sub).await;
    w.register_fcm(&w.maan, "fcm-token-maan-0000000000001")
        .await;
    let me = w.app.get("/v1/me", w.zon.token()).await.expect(200);
    assert_eq!(me.body["discreet_pushes"], "sensitive_circles");
    let circle = w
        .app
        .get(&format!("/v1/circles/{}", w.circle), w.zon.token())
        .await
        .expect(200);
    assert_eq!(circle.body["sensitive"], false);

    // An ordinary circle: the push says what it is about.
    w.personal_message(&w.zon, "Hoe gaat het met de schulden?")
        .await;
    w.deliver().await;
    let push = w.webpush.received().pop().expect("a push");
    assert_eq!(push.payload["discreet"], false);
    assert!(
        push.payload["body"].as_str().unwrap().contains("schulden"),
        "{}",
        push.payload
    );

    // The circle is marked sensitive: nothing about it on the lock screen,
    // for a personal message over Web Push ...
    set_sensitive(&w, true).await;
    let text = "Lukt het met de schuldhulp deze week?";
    w.personal_message(&w.zon, text).await;
    w.deliver().await;
    let push = w.webpush.received().pop().expect("a push");
    assert_discreet(&push.payload, &push.payload, text);
    assert_eq!(
        inbox_body(&w, &w.zon, &push.payload["notification_id"]).await,
        text,
        "the inbox keeps the full text"
    );

    // ... and for a reply over FCM (title, body and data alike).
    let posts = format!("/v1/circles/{}/posts", w.circle);
    let post = w
        .app
        .post(
            &posts,
            w.maan.token(),
            json!({"body": "Vandaag de brief van de bank"}),
        )
        .await
        .expect(201)
        .str("/id");
    w.app
        .post(
            &posts,
            w.zon.token(),
            json!({"body": "Sterkte met de bank", "reply_to_id": post}),
        )
        .await
        .expect(201);
    w.deliver().await;
    let fcm = w.fcm.received().pop().expect("a push");
    let payload = fcm_payload(&fcm.message);
    assert_eq!(payload["kind"], "reply");
    assert_discreet(&payload, &fcm.message, "Sterkte met de bank");
    assert_eq!(fcm.message["message"]["notification"]["title"], "Kring");

    // Zon wants the full text even from a sensitive circle.
    set_discreet(&w, &w.zon, "never").await;
    w.personal_message(&w.zon, "Tot donderdag!").await;
    w.deliver().await;
    let push = w.webpush.received().pop().expect("a push");
    assert_eq!(push.payload["discreet"], false);
    assert_eq!(push.payload["body"], "Tot donderdag!");

    // An ordinary circle again, but Maan wants every push discreet.
    set_sensitive(&w, false).await;
    set_discreet(&w, &w.maan, "always").await;
    let text = "Zullen we bellen over je schulden?";
    w.personal_message(&w.maan, text).await;
    w.deliver().await;
    let fcm = w.fcm.received().pop().expect("a push");
    assert_discreet(&fcm_payload(&fcm.message), &fcm.message, text);

    // Decided when sent: a push already waiting follows a setting changed
    // after its notification was made.
    w.personal_message(&w.maan, text).await;
    set_discreet(&w, &w.maan, "sensitive_circles").await;
    w.deliver().await;
    let fcm = w.fcm.received().pop().expect("a push");
    assert_eq!(fcm_payload(&fcm.message)["discreet"], false);

    // A setting that does not exist is refused, and changes nothing.
    w.app
        .patch(
            "/v1/me",
            w.maan.token(),
            json!({"discreet_pushes": "sometimes"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    w.app
        .patch(
            &format!("/v1/circles/{}", w.circle),
            w.worker.token(),
            json!({"sensitive": "yes"}),
        )
        .await
        .expect(422);
    let me = w.app.get("/v1/me", w.maan.token()).await.expect(200);
    assert_eq!(me.body["discreet_pushes"], "sensitive_circles");
    // Members do not decide what their circle is.
    w.app
        .patch(
            &format!("/v1/circles/{}", w.circle),
            w.zon.token(),
            json!({"sensitive": true}),
        )
        .await
        .expect(403);
    w.app.stop().await;
}
both_backends!(sensitive_circles_get_discreet_pushes);
