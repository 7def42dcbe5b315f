//! The job runner: a round or a push send that panics is logged with the
//! job's name, and the work goes on; the one claim of due work.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::SignedDuration;
use kring::jobs::Job;
use kring::push::{Attempt, DeviceTarget, Provider, Providers, PushMessage};
use kring::state::AppState;
use kring::store::claim::Queue;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::util::SubscriberInitExt;

use crate::both_backends;
use crate::push::{world, world_with};
use crate::support::{Backend, TestApp};

/// What the code under test logs on this thread, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures this thread's logs until the guard is dropped.
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || logs.clone())
            .with_ansi(false)
            .finish()
            .set_default()
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// A job whose first round panics and whose second fails; the third stops
/// the loop.
struct Flaky {
    rounds: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Job for Flaky {
    type Progress = usize;

    fn name(&self) -> &'static str {
        "flaky"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(1)
    }

    async fn run_once(&self, _state: &AppState) -> Result<usize, sqlx::Error> {
        match self.rounds.fetch_add(1, Ordering::SeqCst) {
            0 => panic!("the first round breaks"),
            1 => Err(sqlx::Error::PoolTimedOut),
            _ => {
                self.stop.cancel();
                Ok(0)
            }
        }
    }
}

#[tokio::test]
async fn a_panicking_round_is_logged_and_the_loop_goes_on() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let logs = Logs::default();
    let rounds = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let job = Flaky {
        rounds: rounds.clone(),
        stop: stop.clone(),
    };
    {
        let _capture = logs.capture();
        tokio::time::timeout(
            Duration::from_secs(10),
            kring::jobs::run(job, app.state.clone(), stop),
        )
        .await
        .expect("the loop goes on after a panic and stops when cancelled");
    }
    assert_eq!(rounds.load(Ordering::SeqCst), 3, "every round ran");
    let panicked = logs.lines_with("panicked");
    assert_eq!(panicked.len(), 1, "the panic is logged once: {panicked:?}");
    assert!(panicked[0].contains("ERROR") && panicked[0].contains(r#"job="flaky""#));
    let metrics = app.state.metrics.encode().unwrap();
    assert!(
        metrics.contains(r#"kring_job_panics_total{job="flaky"} 1"#),
        "the panic is counted: {metrics}"
    );
    let failed = logs.lines_with("failed");
    assert_eq!(failed.len(), 1, "the failure is logged once: {failed:?}");
    assert!(failed[0].contains(r#"job="flaky""#) && failed[0].contains("pool timed out"));
    app.stop().await;
}

/// A provider that panics on its first send, then hands sends to `inner`.
struct PanicsOnce {
    inner: Arc<dyn Provider>,
    sends: AtomicUsize,
}

impl Provider for PanicsOnce {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn send<'a>(
        &'a self,
        message: &'a PushMessage,
        target: &'a DeviceTarget,
    ) -> BoxFuture<'a, Attempt> {
        if self.sends.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("the first send breaks");
        }
        self.inner.send(message, target)
    }
}

async fn a_panicking_send_is_logged_and_sent_after_its_lease(backend: Backend) {
    let w = world(backend).await;
    let device = w.register_fcm(&w.zon, "fcm-token-panics-once-0001").await;
    let mut state = w.app.state.clone();
    state.push = Arc::new(Providers {
        fcm: Arc::new(PanicsOnce {
            inner: w.app.state.push.fcm.clone(),
            sends: AtomicUsize::new(0),
        }),
        ..(*w.app.state.push).clone()
    });
    w.personal_message(&w.zon, "Hoe gaat het?").await;

    let logs = Logs::default();
    let handled = {
        let _capture = logs.capture();
        kring::jobs::delivery::run_until_idle(&state).await.unwrap()
    };
    assert_eq!(handled, 1);
    let panicked = logs.lines_with("panicked");
    assert_eq!(panicked.len(), 1, "the panic is logged once: {panicked:?}");
    assert!(panicked[0].contains("ERROR") && panicked[0].contains(r#"job="delivery""#));
    let metrics = state.metrics.encode().unwrap();
    assert!(
        metrics.contains(r#"kring_job_panics_total{job="delivery"} 1"#),
        "the panic is counted: {metrics}"
    );
    assert_eq!(w.fcm.received_count(), 0);
    assert_eq!(w.delivery(&device).await.0, "pending", "nothing recorded");

    // The delivery keeps its lease, then goes out.
    assert_eq!(
        kring::jobs::delivery::run_until_idle(&state).await.unwrap(),
        0
    );
    w.app.advance(SignedDuration::from_secs(61));
    assert_eq!(
        kring::jobs::delivery::run_until_idle(&state).await.unwrap(),
        1
    );
    assert_eq!(w.fcm.received_count(), 1);
    assert_eq!(w.delivery(&device).await.0, "delivered");
    w.app.stop().await;
}
both_backends!(
    a_panicking_send_is_logged_and_sent_after_its_lease,
    flavor = "current_thread"
);

/// A table of chores, due at `due_at`, claimed under `lease_until`.
const CHORES: Queue = Queue {
    table: "chores",
    key: "id",
    due: "due_at",
    lease: "lease_until",
    lease_ms: 1000,
    waiting: Some("done = 0"),
    claimable: Some("kind <> 'blocked'"),
    on_claim: Some("tries = tries + 1, claimed_at = $2"),
};

async fn claim_due_takes_due_unleased_rows_earliest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = &app.state.store;
    sqlx::query(
        "CREATE TABLE chores (id TEXT PRIMARY KEY, kind TEXT NOT NULL, done BIGINT NOT NULL,
             due_at BIGINT, lease_until BIGINT, tries BIGINT NOT NULL DEFAULT 0, claimed_at BIGINT)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    for (id, kind, done, due_at) in [
        ("early", "x", 0, Some(50)),
        ("later", "x", 0, Some(100)),
        ("other", "y", 0, Some(150)),
        ("blocked", "blocked", 0, Some(10)),
        ("done", "x", 1, Some(20)),
        ("future", "x", 0, Some(5000)),
        ("never", "x", 0, None),
    ] {
        sqlx::query("INSERT INTO chores (id, kind, done, due_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(kind)
            .bind(done)
            .bind(due_at)
            .execute(store.pool())
            .await
            .unwrap();
    }
    let claim = async |now: i64, limit: i64, only: Option<&str>| {
        let mut ids = store
            .claim_due(&CHORES, now, limit, only.map(|kind| ("kind", kind)))
            .await
            .unwrap();
        ids.sort();
        ids
    };

    assert!(claim(5, 10, None).await.is_empty(), "nothing due yet");
    assert_eq!(
        claim(200, 1, None).await,
        ["early"],
        "earliest first, up to the limit"
    );
    assert_eq!(
        claim(200, 10, Some("y")).await,
        ["other"],
        "only the kind asked for"
    );
    assert_eq!(
        claim(200, 10, None).await,
        ["later"],
        "leased rows are skipped"
    );
    assert!(claim(1000, 10, None).await.is_empty(), "leases hold");
    assert_eq!(
        claim(1201, 10, Some("x")).await,
        ["early", "later"],
        "a lease that ran out is claimed again"
    );
    let rows: Vec<(String, i64, Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT id, tries, claimed_at, lease_until FROM chores ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let claimed: Vec<_> = rows.into_iter().filter(|r| r.1 > 0).collect();
    assert_eq!(
        claimed,
        [
            ("early".to_owned(), 2, Some(1201), Some(2201)),
            ("later".to_owned(), 2, Some(1201), Some(2201)),
            ("other".to_owned(), 1, Some(200), Some(1200)),
        ],
        "each claim sets the lease and its other assignments"
    );
    app.stop().await;
}
both_backends!(claim_due_takes_due_unleased_rows_earliest_first);

/// A push that will be retried (a provider's 503, a send that timed out) is
/// logged with its delivery, provider, status and reason, and never with
/// the device token.
async fn a_retried_push_is_logged_without_its_token(backend: Backend) {
    let w = world_with(backend, |c| c.push_timeout_ms = 300).await;
    let down = "fcm-token-down-00000000000000001";
    let hangs = "fcm-token-hangs-0000000000000001";
    w.fcm.script(down, vec![push_mocks::Script::Status(503)]);
    w.fcm.script(hangs, vec![push_mocks::Script::Hang]);
    w.register_fcm(&w.zon, down).await;
    w.register_fcm(&w.zon, hangs).await;
    w.personal_message(&w.zon, "Hoe gaat het?").await;

    let logs = Logs::default();
    let handled = {
        let _capture = logs.capture();
        kring::jobs::delivery::run_until_idle(&w.app.state)
            .await
            .unwrap()
    };
    assert_eq!(handled, 2);
    let retried = logs.lines_with("will be retried");
    assert_eq!(retried.len(), 2, "both retries are logged: {retried:?}");
    assert!(retried.iter().all(|l| l.contains("provider=\"fcm\"")));
    assert!(
        retried.iter().any(|l| l.contains("status=Some(503)")),
        "{retried:?}"
    );
    assert!(retried.iter().any(|l| l.contains("timeout")), "{retried:?}");
    let everything = logs.lines_with("");
    assert!(
        everything
            .iter()
            .all(|l| !l.contains(down) && !l.contains(hangs)),
        "a device token was logged"
    );
    w.app.stop().await;
}
both_backends!(
    a_retried_push_is_logged_without_its_token,
    flavor = "current_thread"
);

/// A claimed delivery stays with its worker for at least the push timeout
/// and a margin to record the outcome: with `KRING_PUSH_TIMEOUT_MS` at two
/// minutes, no second worker takes it over after the usual minute.
async fn a_delivery_lease_outlasts_the_push_timeout(backend: Backend) {
    let w = world_with(backend, |c| c.push_timeout_ms = 120_000).await;
    w.register_fcm(&w.zon, "fcm-token-slow-000000000000000001")
        .await;
    w.personal_message(&w.zon, "Hoe gaat het?").await;
    let state = &w.app.state;
    assert_eq!(
        kring::jobs::delivery::claim(state, 10).await.unwrap().len(),
        1
    );
    w.app.advance(SignedDuration::from_secs(61));
    assert!(
        kring::jobs::delivery::claim(state, 10)
            .await
            .unwrap()
            .is_empty(),
        "taken over while its send may still be under way"
    );
    w.app.advance(SignedDuration::from_secs(90));
    assert_eq!(
        kring::jobs::delivery::claim(state, 10).await.unwrap().len(),
        1,
        "taken over once the send and its recording must have ended"
    );
    w.app.stop().await;
}
both_backends!(a_delivery_lease_outlasts_the_push_timeout);
