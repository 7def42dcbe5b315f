//! APNs end to end: Kring's real provider against a local APNs
//! (`push_mocks::MockApns`: HTTP/2 over TLS with a test CA, provider tokens
//! verified with the team's key, Apple's checks and reason codes). The
//! payload and headers, both environments, every class of response, the
//! provider token's reuse and refresh, and a stalled stream.

use std::collections::HashSet;

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::both_backends;
use crate::push::{World, assert_matches_payload_schema, world_with};
use crate::push_failures::{
    Expect, Held, a_held_push_holds_back_no_other, assert_outcomes, assert_paused_then_delivered,
    metrics,
};
use crate::support::{Backend, Person};
use kring::clock::Clock;
use kring::config::Config;
use push_mocks::{MockApns, Script};

/// The World of the push tests, with Kring's APNs provider pointed at a
/// local production and sandbox APNs that keep time with Kring's clock.
struct Apple {
    w: World,
    production: MockApns,
    sandbox: MockApns,
}

async fn apple(backend: Backend) -> Apple {
    apple_with(backend, |_| {}).await
}

async fn apple_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Apple {
    let production = MockApns::start().await;
    let sandbox = production.sandbox().await;
    let (p, s) = (production.clone(), sandbox.clone());
    let w = world_with(backend, move |c| {
        c.apns_key_file = Some(p.key_file.clone());
        c.apns_key_id = Some(p.key_id.clone());
        c.apns_team_id = Some(p.team_id.clone());
        c.apns_base_url = p.base.clone();
        c.apns_sandbox_base_url = s.base.clone();
        c.apns_extra_ca_file = Some(p.ca_file.clone());
        configure(c);
    })
    .await;
    let apple = Apple {
        w,
        production,
        sandbox,
    };
    apple.clock_ahead(0);
    apple
}

impl Apple {
    /// Apple's clock runs `secs` ahead of Kring's.
    fn clock_ahead(&self, secs: i64) {
        for mock in [&self.production, &self.sandbox] {
            let clock = self.w.app.clock.clone();
            mock.set_clock(move || clock.now().as_second() + secs);
        }
    }

    async fn register(&self, person: &Person, token: &str, environment: &str) -> String {
        self.w
            .app
            .post(
                "/v1/devices",
                person.token(),
                json!({"kind": "apns", "token": token, "topic": "nl.kring.app", "environment": environment}),
            )
            .await
            .expect(201)
            .str("/id")
    }

    /// An iPhone with a production token, registered for `person`.
    async fn iphone(&self, person: &Person) -> (String, String) {
        let token = self.production.device_token();
        let device = self.register(person, &token, "production").await;
        (token, device)
    }

    /// Nothing reached either APNs that a check refused.
    fn assert_nothing_rejected(&self) {
        assert_eq!(self.production.rejected(), Vec::<String>::new());
        assert_eq!(self.sandbox.rejected(), Vec::<String>::new());
    }
}

/// The payload beside `aps`, for the schema check.
fn kring_payload(payload: &Value) -> Value {
    let mut custom = payload.clone();
    custom.as_object_mut().unwrap().remove("aps");
    custom
}

async fn apns_delivers_the_one_model(backend: Backend) {
    let a = apple(backend).await;
    let w = &a.w;
    let (token, device) = a.iphone(&w.zon).await;
    let now = w.app.now_ms() / 1000;

    // A personal message: urgent, with "I'm OK", in the circle's thread.
    let notification = w.personal_message(&w.zon, "Hoe is het?").await;
    assert_eq!(w.deliver().await, 1);
    assert_eq!(w.delivery(&device).await.0, "delivered");
    let received = a.production.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.token, token);
    assert_eq!(r.topic, "nl.kring.app");
    assert_eq!(r.push_type, "alert");
    assert_eq!(r.priority, Some(10));
    assert_eq!(
        r.expiration,
        Some(u64::try_from(now).unwrap() + 72 * 3600),
        "the message's TTL (72 hours) as an absolute time"
    );
    assert_eq!(r.collapse_id, None);
    assert_eq!(r.jwt_kid, a.production.key_id);
    assert_eq!(r.jwt_iat, now);
    let aps = &r.payload["aps"];
    assert_eq!(aps["alert"]["title"], r.payload["title"]);
    assert_eq!(aps["alert"]["body"], "Hoe is het?");
    assert_eq!(aps["category"], "KRING_IM_OK");
    assert_eq!(aps["thread-id"], w.circle.as_str());
    assert_eq!(aps["badge"], 1);
    let payload = kring_payload(&r.payload);
    assert_matches_payload_schema(&payload);
    assert_eq!(payload["notification_id"], notification);
    assert_eq!(payload["kind"], "personal_message");
    assert_eq!(payload["actions"], json!(["im_ok"]));

    // New posts: a digest an hour later, low priority, collapsed per circle,
    // without the "I'm OK" button.
    let posts = format!("/v1/circles/{}/posts", w.circle);
    for text in ["Een", "Twee"] {
        w.app
            .post(&posts, w.maan.token(), json!({"body": text}))
            .await
            .expect(201);
    }
    w.app.advance(SignedDuration::from_hours(1));
    w.deliver().await;
    let received = a.production.received();
    assert_eq!(received.len(), 2, "one digest for two posts");
    let digest = &received[1];
    assert_eq!(digest.payload["kind"], "post_digest");
    assert_eq!(digest.priority, Some(5));
    assert_eq!(
        digest.collapse_id.as_deref(),
        Some(format!("digest:{}", w.circle).as_str())
    );
    assert!(digest.payload["aps"].get("category").is_none());
    assert_eq!(digest.payload["aps"]["badge"], 2);
    assert_matches_payload_schema(&kring_payload(&digest.payload));
    a.assert_nothing_rejected();
    a.w.app.stop().await;
}
both_backends!(apns_delivers_the_one_model);

async fn sandbox_and_production_tokens_go_to_their_hosts(backend: Backend) {
    let a = apple(backend).await;
    let w = &a.w;
    let production_token = a.production.device_token();
    let production_device = a.register(&w.zon, &production_token, "production").await;
    let sandbox_token = a.sandbox.device_token();
    let sandbox_device = a.register(&w.maan, &sandbox_token, "sandbox").await;
    // A development build that claims to be production: Apple does not know
    // its token on the production host.
    let ster = w.app.member(&w.worker, &w.circle, "Ster").await;
    let misfiled_device = a
        .register(&ster, &a.sandbox.device_token(), "production")
        .await;

    for person in [&w.zon, &w.maan] {
        for text in ["Hoe is het?", "Alles goed?", "Tot morgen"] {
            w.personal_message(person, text).await;
        }
    }
    w.personal_message(&ster, "Welkom!").await;
    w.deliver().await;

    let tokens =
        |mock: &MockApns| -> Vec<String> { mock.received().into_iter().map(|r| r.token).collect() };
    assert_eq!(tokens(&a.production), vec![production_token; 3]);
    assert_eq!(tokens(&a.sandbox), vec![sandbox_token; 3]);
    assert_eq!(w.delivery(&production_device).await.0, "delivered");
    assert_eq!(w.delivery(&sandbox_device).await.0, "delivered");
    assert_eq!(w.delivery(&misfiled_device).await.0, "dropped");
    let rejected = a.production.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].starts_with("BadDeviceToken"), "{rejected:?}");
    assert_eq!(a.sandbox.rejected(), Vec::<String>::new());
    // One HTTP/2 connection per host carries every message.
    assert_eq!(
        (a.production.connections(), a.sandbox.connections()),
        (1, 1)
    );
    a.w.app.stop().await;
}
both_backends!(sandbox_and_production_tokens_go_to_their_hosts);

async fn apns_responses_are_classified(backend: Backend) {
    let a = apple(backend).await;
    let w = &a.w;
    let now = w.app.now_ms();
    let cases = [
        ("ok", vec![], Expect::Delivered),
        (
            "unregistered",
            vec![Script::Refuse(410, "Unregistered")],
            Expect::Dropped,
        ),
        (
            "bad_token",
            vec![Script::Refuse(400, "BadDeviceToken")],
            Expect::Dropped,
        ),
        // A bug on our side: not retried.
        (
            "too_large",
            vec![Script::Refuse(413, "PayloadTooLarge")],
            Expect::Failed,
        ),
        (
            "throttled",
            vec![Script::Refuse(429, "TooManyRequests")],
            Expect::Backoff,
        ),
        (
            "throttled_after",
            vec![Script::RetryAfter(429, 90)],
            Expect::RetryAt(now + 90_000),
        ),
        (
            "token_updates",
            vec![Script::Refuse(429, "TooManyProviderTokenUpdates")],
            Expect::Backoff,
        ),
        (
            "error",
            vec![Script::Refuse(500, "InternalServerError")],
            Expect::Backoff,
        ),
        (
            "unavailable",
            vec![Script::Refuse(503, "ServiceUnavailable")],
            Expect::Backoff,
        ),
        ("stalled", vec![Script::Hang], Expect::Backoff),
    ];
    let mut devices = Vec::new();
    for (name, script, expect) in cases {
        let (token, device) = a.iphone(&w.zon).await;
        a.production.script(&token, script);
        devices.push((name, device, expect));
    }
    // A token of another app of the team, registered under this app's topic:
    // Apple's own check, not a script.
    let other_app = a.production.device_token_for("nl.kring.other");
    let not_for_topic = a.register(&w.zon, &other_app, "production").await;
    devices.push(("not_for_topic", not_for_topic, Expect::Dropped));

    let notification = w.personal_message(&w.zon, "Hoe is het?").await;
    w.deliver().await;
    assert_outcomes(w, &w.zon, now, &devices).await;
    let rejected = a.production.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].starts_with("DeviceTokenNotForTopic"));

    // Later every retry gets through, once.
    w.app.advance(SignedDuration::from_secs(91));
    w.deliver().await;
    let received = a.production.received();
    assert_eq!(received.len(), 7, "ok and six retries");
    assert!(
        received
            .iter()
            .all(|r| r.payload["notification_id"] == notification)
    );
    let tokens: HashSet<_> = received.iter().map(|r| r.token.clone()).collect();
    assert_eq!(tokens.len(), 7);

    // Our credentials refused: pause APNs, keep the token, alarm; deliver after the pause.
    let (token, device) = a.iphone(&w.maan).await;
    a.production
        .script(&token, vec![Script::Refuse(403, "InvalidProviderToken")]);
    w.personal_message(&w.maan, "Alles goed?").await;
    w.deliver().await;
    assert_paused_then_delivered(w, "apns", &w.maan, &device).await;
    a.w.app.stop().await;
}
both_backends!(apns_responses_are_classified);

async fn the_provider_token_is_reused_and_refreshed(backend: Backend) {
    let a = apple(backend).await;
    let w = &a.w;
    let mut phones = Vec::new();
    for _ in 0..3 {
        phones.push(a.iphone(&w.zon).await);
    }
    let start = w.app.now_ms() / 1000;
    let distinct = || -> Vec<i64> {
        let mut seen = Vec::new();
        let mut tokens = HashSet::new();
        for r in a.production.received() {
            if tokens.insert(r.provider_token.clone()) {
                seen.push(r.jwt_iat);
            }
        }
        seen
    };

    // Many messages, one token.
    for text in ["Een", "Twee", "Drie"] {
        w.personal_message(&w.zon, text).await;
    }
    w.deliver().await;
    assert_eq!(a.production.received_count(), 9);
    assert_eq!(distinct(), vec![start], "signed once, not per message");

    // 49 minutes on: still the same token.
    w.app.advance(SignedDuration::from_mins(49));
    w.personal_message(&w.zon, "Vier").await;
    w.deliver().await;
    assert_eq!(distinct(), vec![start]);

    // 51 minutes: a new one, before Apple would call it expired.
    w.app.advance(SignedDuration::from_mins(2));
    w.personal_message(&w.zon, "Vijf").await;
    w.deliver().await;
    let second = start + 51 * 60;
    assert_eq!(distinct(), vec![start, second]);
    assert_eq!(a.production.received_count(), 15);

    // Apple's clock 20 minutes ahead: at 45 minutes by ours the token is
    // over an hour old by Apple's. Refused as expired, signed anew, sent
    // again in the same attempt.
    a.clock_ahead(20 * 60);
    w.app.advance(SignedDuration::from_mins(45));
    let third = second + 45 * 60;
    w.personal_message(&w.zon, "Zes").await;
    w.deliver().await;
    assert_eq!(distinct(), vec![start, second, third]);
    for (_, device) in &phones {
        let (status, _, attempts) = w.delivery(device).await;
        assert_eq!((status.as_str(), attempts), ("delivered", 1));
    }
    // Each request in flight with the old token was refused once.
    let rejected = a.production.rejected();
    assert!((1..=3).contains(&rejected.len()), "{rejected:?}");
    assert!(
        rejected
            .iter()
            .all(|r| r.starts_with("ExpiredProviderToken")),
        "{rejected:?}"
    );

    // Apple's clock two hours ahead: even a new token is "expired". That is
    // ours to fix: APNs pauses, the tokens stay.
    a.clock_ahead(2 * 3600);
    w.app.advance(SignedDuration::from_mins(1));
    w.personal_message(&w.zon, "Zeven").await;
    w.deliver().await;
    for (_, device) in &phones {
        assert_eq!(w.delivery(device).await.0, "pending");
    }
    assert_eq!(w.device_ids(&w.zon).await.len(), 3);
    assert!(
        metrics(w)
            .await
            .contains(r#"kring_push_provider_paused{provider="apns"} 1"#)
    );
    // The clocks agree again: after the pause everything goes out.
    a.clock_ahead(0);
    w.app.advance(SignedDuration::from_mins(6));
    w.deliver().await;
    for (_, device) in &phones {
        assert_eq!(w.delivery(device).await.0, "delivered");
    }
    assert_eq!(a.production.received_count(), 21);
    a.w.app.stop().await;
}
both_backends!(the_provider_token_is_reused_and_refreshed);

async fn a_stalled_stream_does_not_hold_back_the_connection(backend: Backend) {
    // The client waits as long as the stream stalls: the test decides when
    // the slow send ends.
    let a = apple_with(backend, |c| c.push_timeout_ms = 120_000).await;
    let w = &a.w;
    let (slow_token, slow_device) = a.iphone(&w.zon).await;
    a.production.script(&slow_token, vec![Script::Stall]);
    let (fast_token, fast_device) = a.iphone(&w.maan).await;
    let held = Held {
        slow_device: &slow_device,
        fast_device: &fast_device,
        stalled: &|| a.production.stalled(),
        received: &|| a.production.received_count(),
        release: &|| a.production.release(),
    };
    a_held_push_holds_back_no_other(w, held).await;
    // Both streams on the one connection: multiplexed, not a second one.
    let received: Vec<_> = a
        .production
        .received()
        .into_iter()
        .map(|r| (r.token, r.connection))
        .collect();
    assert_eq!(received, vec![(fast_token, 1), (slow_token, 1)]);
    assert_eq!(a.production.connections(), 1);
    a.w.app.stop().await;
}
both_backends!(a_stalled_stream_does_not_hold_back_the_connection);
