//! Every class of provider response, scripted on the mock services: what
//! happens to the token, when the retry comes, and that nothing is lost;
//! and faults around a send: a recording that fails, an endpoint that hangs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use tokio_util::sync::CancellationToken;

use crate::both_backends;
use crate::push::{World, world, world_with};
use crate::support::{Backend, Person};
use push_mocks::Script;

async fn web_push_responses_are_classified(backend: Backend) {
    let w = world(backend).await;
    let now = w.app.now_ms();
    let cases = [
        ("ok", vec![], Expect::Delivered),
        ("gone", vec![Script::Status(410)], Expect::Dropped),
        ("not_found", vec![Script::Status(404)], Expect::Dropped),
        (
            "throttled",
            vec![Script::RetryAfter(429, 120)],
            Expect::RetryAt(now + 120_000),
        ),
        ("error", vec![Script::Status(500)], Expect::Backoff),
        ("unavailable", vec![Script::Status(503)], Expect::Backoff),
        ("timeout", vec![Script::Hang], Expect::Backoff),
    ];
    let mut devices = Vec::new();
    for (name, script, expect) in cases {
        let sub = w.webpush.subscribe();
        w.webpush.script(&sub, script);
        devices.push((name, w.register_webpush(&w.zon, &sub).await, expect));
    }
    let notification = w.personal_message(&w.zon, "Hoe is het?").await;
    w.deliver().await;
    assert_outcomes(&w, &w.zon, now, &devices).await;

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
    for (name, device, _) in &devices {
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
    assert_paused_then_delivered(&w, "webpush", &w.maan, &device).await;
    w.app.stop().await;
}

both_backends!(web_push_responses_are_classified);

async fn fcm_responses_are_classified(backend: Backend) {
    let w = world(backend).await;
    let now = w.app.now_ms();
    let cases = [
        ("ok", vec![], Expect::Delivered),
        ("unregistered", vec![Script::Status(404)], Expect::Dropped),
        ("invalid", vec![Script::Status(400)], Expect::Dropped),
        (
            "throttled",
            vec![Script::RetryAfter(429, 60)],
            Expect::RetryAt(now + 60_000),
        ),
        ("error", vec![Script::Status(500)], Expect::Backoff),
        ("unavailable", vec![Script::Status(503)], Expect::Backoff),
        ("timeout", vec![Script::Hang], Expect::Backoff),
    ];
    let mut devices = Vec::new();
    for (i, (name, script, expect)) in cases.into_iter().enumerate() {
        let token = format!("fcm-token-{name}-{i:020}");
        w.fcm.script(&token, script);
        devices.push((name, w.register_fcm(&w.zon, &token).await, expect));
    }
    w.personal_message(&w.zon, "Hoe is het?").await;
    w.deliver().await;
    assert_outcomes(&w, &w.zon, now, &devices).await;
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

/// Polls `check` until it holds. The deadline only turns a hang into a
/// failure; nothing here measures time.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The lease on the newest delivery to a device (set while a worker holds it).
async fn lease_until(w: &World, device_id: &str) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT lease_until FROM deliveries WHERE device_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(device_id)
    .fetch_one(w.app.state.store.pool())
    .await
    .unwrap()
}

/// `kring_push_record_failures_total` from `/metrics` (0 when absent).
async fn record_failures(w: &World) -> u64 {
    metrics(w)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("kring_push_record_failures_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Makes every change of a delivery's status fail (the claim, which only
/// takes a lease, still works): the database refuses to record outcomes.
async fn fail_recording(w: &World, backend: Backend) {
    let statements: &[&'static str] = match backend {
        Backend::Sqlite => &[
            "CREATE TRIGGER kring_test_fault BEFORE UPDATE OF status ON deliveries
             WHEN NEW.status <> OLD.status
             BEGIN SELECT RAISE(ABORT, 'injected fault: recording fails'); END",
        ],
        Backend::Postgres => &[
            "CREATE FUNCTION kring_test_fault() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'injected fault: recording fails'; END $$",
            "CREATE TRIGGER kring_test_fault BEFORE UPDATE ON deliveries FOR EACH ROW
             WHEN (NEW.status <> OLD.status) EXECUTE FUNCTION kring_test_fault()",
        ],
    };
    for sql in statements {
        sqlx::query(*sql)
            .execute(w.app.state.store.pool())
            .await
            .unwrap();
    }
}

async fn recover_recording(w: &World, backend: Backend) {
    let sql = match backend {
        Backend::Sqlite => "DROP TRIGGER kring_test_fault",
        Backend::Postgres => "DROP TRIGGER kring_test_fault ON deliveries",
    };
    sqlx::query(sql)
        .execute(w.app.state.store.pool())
        .await
        .unwrap();
}

async fn a_failed_recording_does_not_resend(backend: Backend) {
    let w = world(backend).await;
    let mut devices = Vec::new();
    for _ in 0..5 {
        let sub = w.webpush.subscribe();
        devices.push(w.register_webpush(&w.zon, &sub).await);
    }
    let notification = w.personal_message(&w.zon, "Hoe is het?").await;

    // The pushes go out, then the database refuses to record them (a brief
    // outage), until the test sees the refusal and ends the outage.
    fail_recording(&w, backend).await;
    let state = w.app.state.clone();
    let worker = tokio::spawn(async move { kring::jobs::delivery::run_until_idle(&state).await });
    eventually("all sent and a recording refused", async || {
        worker.is_finished() || (w.webpush.received_count() == 5 && record_failures(&w).await > 0)
    })
    .await;
    recover_recording(&w, backend).await;
    let first = worker.await.unwrap();

    // Whatever the worker kept of its leases runs out; every delivery that
    // is still due goes out again.
    w.app.advance(SignedDuration::from_secs(61));
    w.deliver().await;
    let received = w.webpush.received();
    let subscriptions: HashSet<_> = received.iter().map(|r| r.subscription.clone()).collect();
    assert_eq!(
        (received.len(), subscriptions.len()),
        (5, 5),
        "each accepted push exactly once (first run: {first:?})"
    );
    assert!(
        received
            .iter()
            .all(|r| r.payload["notification_id"] == notification)
    );
    for device in &devices {
        assert_eq!(w.delivery(device).await.0, "delivered");
    }
    w.app.stop().await;
}
both_backends!(a_failed_recording_does_not_resend);

async fn a_hanging_endpoint_does_not_hold_back_other_pushes(backend: Backend) {
    // The client waits as long as the endpoint hangs: the test, not a
    // timeout, decides when the slow send ends.
    let w = world_with(backend, |c| c.push_timeout_ms = 120_000).await;
    let slow = w.webpush.subscribe();
    w.webpush.script(&slow, vec![Script::Stall]);
    let slow_device = w.register_webpush(&w.zon, &slow).await;
    let fast = w.webpush.subscribe();
    let fast_device = w.register_webpush(&w.maan, &fast).await;
    let held = Held {
        slow_device: &slow_device,
        fast_device: &fast_device,
        stalled: &|| w.webpush.stalled(),
        received: &|| w.webpush.received_count(),
        release: &|| w.webpush.release(),
    };
    a_held_push_holds_back_no_other(&w, held).await;
    let received: Vec<_> = w
        .webpush
        .received()
        .into_iter()
        .map(|r| r.subscription)
        .collect();
    assert_eq!(received, vec![fast.id.clone(), slow.id.clone()]);
    w.app.stop().await;
}
both_backends!(a_hanging_endpoint_does_not_hold_back_other_pushes);

/// A push service that holds one push (a `Script::Stall`) while another goes
/// through.
pub struct Held<'a> {
    /// Zon's device, whose push the service holds.
    pub slow_device: &'a str,
    /// Maan's device, whose push goes through.
    pub fast_device: &'a str,
    /// How many requests the service holds.
    pub stalled: &'a dyn Fn() -> usize,
    /// How many pushes the service has accepted.
    pub received: &'a dyn Fn() -> usize,
    /// Lets the held request through.
    pub release: &'a dyn Fn(),
}

/// The running worker sends Zon a push that the service holds; a newer push
/// to Maan is delivered and recorded while the first is still leased. Then
/// the worker, cancelled, lets the held send finish and records it before
/// it returns (dropping it would abort the send unrecorded).
pub async fn a_held_push_holds_back_no_other(w: &World, held: Held<'_>) {
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(kring::jobs::delivery::run(
        w.app.state.clone(),
        cancel.clone(),
    ));
    w.personal_message(&w.zon, "Hoe is het?").await;
    eventually("the slow push reached the service", async || {
        (held.stalled)() == 1
    })
    .await;

    w.personal_message(&w.maan, "Alles goed?").await;
    eventually(
        "the fast push is delivered while the slow one is in flight",
        async || w.delivery(held.fast_device).await.0 == "delivered",
    )
    .await;
    assert_eq!((held.stalled)(), 1, "the slow push still hangs");
    assert_eq!((held.received)(), 1);
    assert_eq!(w.delivery(held.slow_device).await.0, "pending");
    assert!(
        lease_until(w, held.slow_device).await.is_some(),
        "the slow push is still leased, not recorded"
    );

    cancel.cancel();
    (held.release)();
    tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .expect("the worker drains and stops")
        .unwrap();
    assert_eq!(w.delivery(held.slow_device).await.0, "delivered");
    assert_eq!(lease_until(w, held.slow_device).await, None);
}

/// After our credentials were refused for the delivery to `device` (of
/// `person`): the provider is paused (metrics), the token kept and the
/// attempt not counted; nothing goes out during the 5-minute pause, and
/// the push after it.
pub async fn assert_paused_then_delivered(
    w: &World,
    provider: &str,
    person: &Person,
    device: &str,
) {
    let (status, _, attempts) = w.delivery(device).await;
    assert_eq!(
        (status.as_str(), attempts),
        ("pending", 0),
        "not the token's fault"
    );
    assert_eq!(w.device_ids(person).await, vec![device.to_owned()]);
    let metrics = metrics(w).await;
    for line in [
        format!(r#"kring_push_provider_paused{{provider="{provider}"}} 1"#),
        format!(r#"kring_push_credential_failures_total{{provider="{provider}"}} 1"#),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    w.app.advance(SignedDuration::from_secs(60));
    w.deliver().await;
    assert_eq!(w.delivery(device).await.0, "pending");
    w.app.advance(SignedDuration::from_secs(241));
    w.deliver().await;
    assert_eq!(w.delivery(device).await.0, "delivered");
}

/// The server's `/metrics` page.
pub async fn metrics(w: &World) -> String {
    let url = format!("{}/metrics", w.app.base);
    let response = w.app.client.get(url).send().await.unwrap();
    response.text().await.unwrap()
}

/// What the first attempt at a delivery should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Delivered,
    /// The token is dead: the delivery dropped, the device removed.
    Dropped,
    /// Refused for good.
    Failed,
    /// Retried at this time (the service's `Retry-After`).
    RetryAt(i64),
    /// Retried after the first backoff (30 s ± 20%).
    Backoff,
}

/// Each `(name, device, expected)` of `person`'s devices, after the first
/// attempt made at `now`: the delivery's state and due time, and that
/// exactly the dropped devices are gone.
pub async fn assert_outcomes(
    w: &World,
    person: &Person,
    now: i64,
    devices: &[(&str, String, Expect)],
) {
    let left = w.device_ids(person).await;
    for (name, device, expect) in devices {
        let (status, not_before, _) = w.delivery(device).await;
        match expect {
            Expect::Delivered => assert_eq!(status, "delivered", "{name}"),
            Expect::Dropped => assert_eq!(status, "dropped", "{name}"),
            Expect::Failed => assert_eq!(status, "failed", "{name}"),
            Expect::RetryAt(at) => {
                assert_eq!((status.as_str(), not_before), ("pending", *at), "{name}");
            }
            Expect::Backoff => {
                assert_eq!(status, "pending", "{name}");
                assert!(
                    (now + 24_000..=now + 36_000).contains(&not_before),
                    "{name}: backoff {}",
                    not_before - now
                );
            }
        }
        assert_eq!(left.contains(device), *expect != Expect::Dropped, "{name}");
    }
}
