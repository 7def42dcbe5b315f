//! Every class of provider response, scripted on the mock services: what
//! happens to the token, when the retry comes, and that nothing is lost.

use jiff::SignedDuration;

use crate::both_backends;
use crate::push::world;
use crate::support::Backend;
use push_mocks::Script;

async fn web_push_responses_are_classified(backend: Backend) {
    let w = world(backend).await;
    let now = w.app.now_ms();
    let cases = [
        ("ok", vec![]),
        ("gone", vec![Script::Status(410)]),
        ("not_found", vec![Script::Status(404)]),
        ("throttled", vec![Script::RetryAfter(429, 120)]),
        ("error", vec![Script::Status(500)]),
        ("unavailable", vec![Script::Status(503)]),
        ("timeout", vec![Script::Hang]),
    ];
    let mut devices = Vec::new();
    for (name, script) in cases {
        let sub = w.webpush.subscribe();
        w.webpush.script(&sub, script);
        devices.push((name, w.register_webpush(&w.zon, &sub).await));
    }
    let notification = w.personal_message(&w.zon, "Hoe is het?").await;
    w.deliver().await;

    for (name, device) in &devices {
        let (status, not_before, _) = w.delivery(device).await;
        match *name {
            "ok" => assert_eq!(status, "delivered"),
            "gone" | "not_found" => assert_eq!(status, "dropped", "{name}"),
            "throttled" => {
                assert_eq!(status, "pending");
                assert_eq!(not_before, now + 120_000, "Retry-After is honoured");
            }
            _ => {
                assert_eq!(status, "pending", "{name}");
                assert!(
                    (now + 24_000..=now + 36_000).contains(&not_before),
                    "{name}: backoff {}",
                    not_before - now
                );
            }
        }
    }
    // Dead subscriptions are forgotten; the others stay.
    let left = w.device_ids(&w.zon).await;
    assert_eq!(left.len(), 5);
    for (name, device) in &devices {
        assert_eq!(
            left.contains(device),
            !matches!(*name, "gone" | "not_found"),
            "{name}"
        );
    }

    // Two minutes later every retry gets through: nothing lost.
    w.app.advance(SignedDuration::from_secs(121));
    w.deliver().await;
    let received = w.webpush.received();
    assert_eq!(received.len(), 5);
    assert!(
        received
            .iter()
            .all(|r| r.payload["notification_id"] == notification)
    );
    let subscriptions: std::collections::HashSet<_> =
        received.iter().map(|r| r.subscription.clone()).collect();
    assert_eq!(subscriptions.len(), 5, "one push per live subscription");
    for (name, device) in &devices {
        let (status, _, _) = w.delivery(device).await;
        let expected = if matches!(*name, "gone" | "not_found") {
            "dropped"
        } else {
            "delivered"
        };
        assert_eq!(status, expected, "{name}");
    }

    // Our VAPID credentials refused (403): pause the provider, keep the token.
    let sub = w.webpush.subscribe();
    w.webpush.script(&sub, vec![Script::Status(403)]);
    let device = w.register_webpush(&w.maan, &sub).await;
    w.personal_message(&w.maan, "Alles goed?").await;
    w.deliver().await;
    let (status, _, attempts) = w.delivery(&device).await;
    assert_eq!(
        (status.as_str(), attempts),
        ("pending", 0),
        "not the token's fault"
    );
    assert_eq!(w.device_ids(&w.maan).await, vec![device.clone()]);
    let metrics = w
        .app
        .client
        .get(format!("{}/metrics", w.app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"kring_push_provider_paused{provider="webpush"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kring_push_credential_failures_total{provider="webpush"} 1"#),
        "{metrics}"
    );
    // While paused nothing is sent; after the pause it goes out.
    w.app.advance(SignedDuration::from_secs(60));
    w.deliver().await;
    assert_eq!(w.delivery(&device).await.0, "pending");
    w.app.advance(SignedDuration::from_secs(241));
    w.deliver().await;
    assert_eq!(w.delivery(&device).await.0, "delivered");
    w.app.stop().await;
}
both_backends!(web_push_responses_are_classified);

async fn fcm_responses_are_classified(backend: Backend) {
    let w = world(backend).await;
    let now = w.app.now_ms();
    let cases = [
        ("ok", vec![]),
        ("unregistered", vec![Script::Status(404)]),
        ("invalid", vec![Script::Status(400)]),
        ("throttled", vec![Script::RetryAfter(429, 60)]),
        ("error", vec![Script::Status(500)]),
        ("unavailable", vec![Script::Status(503)]),
        ("timeout", vec![Script::Hang]),
    ];
    let mut devices = Vec::new();
    for (i, (name, script)) in cases.into_iter().enumerate() {
        let token = format!("fcm-token-{name}-{i:020}");
        w.fcm.script(&token, script);
        devices.push((name, w.register_fcm(&w.zon, &token).await));
    }
    w.personal_message(&w.zon, "Hoe is het?").await;
    w.deliver().await;
    for (name, device) in &devices {
        let (status, not_before, _) = w.delivery(device).await;
        match *name {
            "ok" => assert_eq!(status, "delivered"),
            "unregistered" | "invalid" => assert_eq!(status, "dropped", "{name}"),
            "throttled" => assert_eq!((status.as_str(), not_before), ("pending", now + 60_000)),
            _ => {
                assert_eq!(status, "pending", "{name}");
                assert!(
                    (now + 24_000..=now + 36_000).contains(&not_before),
                    "{name}"
                );
            }
        }
    }
    assert_eq!(w.device_ids(&w.zon).await.len(), 5);
    w.app.advance(SignedDuration::from_secs(61));
    w.deliver().await;
    assert_eq!(w.fcm.received().len(), 5);

    // FCM 401: our credentials; pause, keep the token.
    let token = "fcm-token-auth-0000000000000000";
    w.fcm.script(token, vec![Script::Status(401)]);
    let device = w.register_fcm(&w.maan, token).await;
    w.personal_message(&w.maan, "Alles goed?").await;
    w.deliver().await;
    assert_eq!(w.delivery(&device).await.0, "pending");
    assert_eq!(w.device_ids(&w.maan).await, vec![device.clone()]);
    w.app.advance(SignedDuration::from_secs(301));
    w.deliver().await;
    assert_eq!(w.delivery(&device).await.0, "delivered");
    w.app.stop().await;
}
both_backends!(fcm_responses_are_classified);

async fn retries_stop_at_the_ttl(backend: Backend) {
    let w = world(backend).await;
    let token = "fcm-token-flaky-000000000000000";
    w.fcm.script(token, vec![Script::Status(503); 200]);
    let device = w.register_fcm(&w.zon, token).await;
    let notification = w.personal_message(&w.zon, "Hoe is het?").await;
    // Personal messages live 72 hours; retry with backoff until then.
    for _ in 0..80 {
        w.deliver().await;
        w.app.advance(SignedDuration::from_hours(1));
    }
    let (status, _, attempts) = w.delivery(&device).await;
    assert_eq!(status, "expired");
    assert!(attempts > 5, "{attempts} attempts");
    assert!(w.fcm.received().is_empty());
    // The token is kept (the service was down, the token is fine) and the inbox item stays.
    assert_eq!(w.device_ids(&w.zon).await, vec![device]);
    let inbox = w
        .app
        .get("/v1/notifications", w.zon.token())
        .await
        .expect(200);
    assert!(
        inbox.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == notification),
        "the inbox item stays"
    );
    w.app.stop().await;
}
both_backends!(retries_stop_at_the_ttl);
