//! The delivery worker: claims due deliveries from the outbox, sends them
//! with bounded concurrency per provider, and records each outcome as soon
//! as its send ends.
//!
//! A claim is a lease: a worker that crashes between claiming and recording
//! loses it when the lease runs out, and the delivery is retried. Delivery is
//! therefore at least once; the payload's `notification_id` lets apps drop
//! duplicates. To keep duplicates rare, outcomes are written in group
//! commits ([`record`]); a transaction the database refuses is written
//! again outcome by outcome, each retried with backoff while it waits in
//! memory. A push the provider accepted goes out again only if the process
//! dies between the provider's answer and that write's commit, or if the
//! database stays unwritable for longer than the retries. A send that
//! panics is logged and goes out again when its lease runs out.
//!
//! No head-of-line blocking: the production loop ([`run`], the [`Delivery`]
//! job's steps) gives each provider `KRING_PUSH_CONCURRENCY` send slots and
//! claims a provider's deliveries only while it has free slots, starting
//! each at once. A slow endpoint holds one slot (for at most
//! `KRING_PUSH_TIMEOUT_MS`), and the loop goes on claiming for the others. A
//! claimed delivery never waits for a slot, so its lease covers only its own
//! send and recording.

mod claimed;
mod record;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::jobs::{Job, catch_panic};
use crate::push::{Attempt, DeviceKind, Outcome};
use crate::state::AppState;
use crate::store::claim::Queue;
use claimed::{Claimed, load};
use record::{Finished, Recorder};

pub use claimed::actions_for;
pub use record::{CREDENTIAL_PAUSE_MS, backoff_ms};

/// The job's name in logs.
const NAME: &str = "delivery";
/// How long a claim lasts before another worker may take the delivery over,
/// at least: a longer `KRING_PUSH_TIMEOUT_MS` lengthens it (see [`lease_ms`]).
pub const LEASE_MS: i64 = 60_000;
/// What a claim leaves for recording the outcome after a send that took
/// the whole push timeout.
const RECORD_MARGIN_MS: i64 = 30_000;
/// The most deliveries one claim takes.
pub const BATCH: i64 = 200;
/// How often an idle loop looks for due deliveries.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// How long a claim lasts: [`LEASE_MS`], or longer when a send may take
/// longer than that (a slow provider under a large `KRING_PUSH_TIMEOUT_MS`),
/// so that no second worker sends a delivery whose first send is still
/// under way.
pub fn lease_ms(config: &crate::config::Config) -> i64 {
    let timeout = i64::try_from(config.push_timeout_ms).unwrap_or(i64::MAX / 2);
    LEASE_MS.max(timeout.saturating_add(RECORD_MARGIN_MS))
}

/// The outbox: pending deliveries wait for `not_before` (indexed).
const OUTBOX: Queue = Queue {
    table: "deliveries",
    key: "id",
    due: "not_before",
    lease: "lease_until",
    lease_ms: LEASE_MS,
    waiting: Some("status = 'pending'"),
    // A provider paused for refusing our credentials keeps its deliveries
    // waiting (the probe still sees them: they are due).
    claimable: Some(
        "NOT EXISTS (SELECT 1 FROM provider_pauses p
                     WHERE p.provider = deliveries.provider AND p.paused_until > $2)",
    ),
    // Each claim counts as an attempt: the backoff grows with it.
    on_claim: Some("attempts = attempts + 1, updated_at = $2"),
};

/// Claims up to `limit` due deliveries for this worker; returns their ids.
pub async fn claim(state: &AppState, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    claim_for(state, None, limit).await
}

/// Claims up to `limit` due deliveries, of one provider (device kind) or of
/// any.
async fn claim_for(
    state: &AppState,
    provider: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let only = provider.map(|provider| ("provider", provider));
    let outbox = Queue {
        lease_ms: lease_ms(&state.config),
        ..OUTBOX
    };
    state
        .store
        .claim_due(&outbox, state.now_ms(), limit, only)
        .await
}

/// Send slots: at most `KRING_PUSH_CONCURRENCY` sends in flight per
/// provider (device kind), counted from claim to recorded outcome.
struct Slots(Vec<(&'static str, Arc<Semaphore>)>);

impl Slots {
    fn new(state: &AppState) -> Self {
        let per_provider = state.config.push_concurrency.max(1);
        Self(
            [DeviceKind::Apns, DeviceKind::Fcm, DeviceKind::WebPush]
                .map(|kind| (kind.as_str(), Arc::new(Semaphore::new(per_provider))))
                .into(),
        )
    }

    fn of(&self, provider: &str) -> Option<Arc<Semaphore>> {
        self.0
            .iter()
            .find(|(name, _)| *name == provider)
            .map(|(_, slots)| slots.clone())
    }
}

/// Sends one claimed delivery, unless there is nothing left to send, and
/// records what came of it. The slot is held until the outcome is recorded,
/// so outcomes waiting for the database are bounded by the slots.
async fn handle(
    state: &AppState,
    recorder: &Recorder,
    row: Claimed,
    slot: Option<OwnedSemaphorePermit>,
) {
    let now = state.now_ms();
    // Nothing to send: the device is gone, the item was read meanwhile, or
    // the message outlived its TTL.
    let skip = if row.device_removed_at.is_some() {
        Some("dropped")
    } else if row.read_at.is_some() || row.alert_resolved > 0 {
        // Read meanwhile, or news about an alert resolved before its push
        // time (the inbox keeps it).
        Some("superseded")
    } else if row.expires_at <= now {
        Some("expired")
    } else {
        None
    };
    let finished = match (row.target(), row.message(now), skip) {
        (Some(target), Some(message), None) => {
            let provider = state.push.for_kind(target.kind()).clone();
            let attempt = provider.send(&message, &target).await;
            report(state, &row, provider.name(), &attempt);
            Finished::Sent(attempt)
        }
        _ => Finished::Skipped(skip.unwrap_or("failed")),
    };
    // The time of the outcome, kept across retries of its write.
    let at = state.now_ms();
    recorder.record(at, row, finished).await;
    drop(slot);
}

/// Delivery as a [`Job`]. A whole round ([`Job::run_once`]) claims up to
/// [`BATCH`] due deliveries of any provider and waits for every send it
/// started; a production step only starts sends, which go on in `sends`
/// while later steps claim more.
pub struct Delivery {
    slots: Slots,
    recorder: Recorder,
    /// Sends the production steps started and that have not ended.
    sends: JoinSet<()>,
}

impl Delivery {
    pub fn new(state: &AppState) -> Self {
        Self {
            slots: Slots::new(state),
            recorder: Recorder::start(state),
            sends: JoinSet::new(),
        }
    }
}

impl Job for Delivery {
    type Progress = usize;

    fn name(&self) -> &'static str {
        NAME
    }

    fn interval(&self) -> Duration {
        IDLE_POLL
    }

    /// Claims what is due, sends it and records every outcome; returns how
    /// many deliveries it handled.
    async fn run_once(&self, state: &AppState) -> Result<usize, sqlx::Error> {
        let ids = claim(state, BATCH).await?;
        let claimed = load(state, &ids).await?;
        let handled = claimed.len();
        let mut sends = JoinSet::new();
        for row in claimed {
            let slots = self.slots.of(&row.provider);
            let slot = async move {
                match slots {
                    Some(slots) => slots.acquire_owned().await.ok(),
                    None => None,
                }
            };
            spawn_send(&mut sends, state, &self.recorder, row, slot);
        }
        while sends.join_next().await.is_some() {}
        Ok(handled)
    }

    /// Starts what is due for the providers with free slots; returns how
    /// many sends it started.
    async fn step(&mut self, state: &AppState) -> Result<usize, sqlx::Error> {
        let started = start_due(state, &self.slots, &self.recorder, &mut self.sends).await;
        while self.sends.try_join_next().is_some() {}
        started
    }

    /// A send ended: its slot is free for the next step.
    async fn settled(&mut self) {
        if self.sends.join_next().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// Lets every send in flight end and be recorded (each within
    /// `KRING_PUSH_TIMEOUT_MS` and the recording retries): dropping one
    /// would abort it unrecorded.
    async fn drain(&mut self) {
        while self.sends.join_next().await.is_some() {}
    }
}

/// Rounds until nothing is due: for tests and `KRING_TEST_CLOCK`. Returns
/// how many deliveries they handled.
pub async fn run_until_idle(state: &AppState) -> Result<usize, sqlx::Error> {
    crate::jobs::run_until_idle(&Delivery::new(state), state).await
}

/// The production loop: claims and starts due deliveries while sends are in
/// flight, whenever a slot frees up or something may have become due. When
/// cancelled it claims nothing more and returns once every send in flight
/// has ended and been recorded.
pub async fn run(state: AppState, cancel: CancellationToken) {
    crate::jobs::run(Delivery::new(&state), state, cancel).await;
}

/// Sends and records one claimed delivery in a task of its own, once `slot`
/// gives it a send slot. A panic there is logged with the delivery; the
/// delivery keeps its lease and goes out again when the lease runs out.
fn spawn_send(
    sends: &mut JoinSet<()>,
    state: &AppState,
    recorder: &Recorder,
    row: Claimed,
    slot: impl Future<Output = Option<OwnedSemaphorePermit>> + Send + 'static,
) {
    let state = state.clone();
    let recorder = recorder.clone();
    sends.spawn(async move {
        let id = row.id.clone();
        let slot = slot.await;
        if catch_panic(handle(&state, &recorder, row, slot))
            .await
            .is_none()
        {
            tracing::error!(job = NAME, delivery_id = %id,
                "a push send panicked; it goes out again when its lease runs out");
            state.metrics.job_panicked(NAME);
        }
    });
}

/// Claims, for each provider with free slots, as many due deliveries as it
/// has free slots, and starts them. Returns how many it started.
async fn start_due(
    state: &AppState,
    slots: &Slots,
    recorder: &Recorder,
    sends: &mut JoinSet<()>,
) -> Result<usize, sqlx::Error> {
    let mut started = 0;
    for (provider, free) in &slots.0 {
        let limit = free.available_permits().min(BATCH as usize);
        if limit == 0 {
            continue;
        }
        let ids = claim_for(state, Some(provider), limit as i64).await?;
        for row in load(state, &ids).await? {
            // Only this loop takes slots, so the ones counted are still free.
            let slot = free.clone().try_acquire_owned().ok();
            spawn_send(sends, state, recorder, row, std::future::ready(slot));
            started += 1;
        }
    }
    Ok(started)
}

/// Counts and logs a send's outcome, once, whether or not recording it
/// needs retries.
fn report(state: &AppState, row: &Claimed, provider_name: &str, attempt: &Attempt) {
    state
        .metrics
        .delivery(provider_name, attempt.outcome.label());
    match &attempt.outcome {
        Outcome::Delivered => {}
        Outcome::Retry { retry_after } => {
            // A provider's throttle or outage, or a transport error (no
            // status): the delivery goes out again later.
            tracing::info!(delivery_id = %row.id, provider = provider_name, status = ?attempt.status,
                reason = ?attempt.reason, retry_after = ?retry_after, attempts = row.attempts,
                "push will be retried");
        }
        Outcome::Failed => {
            tracing::warn!(delivery_id = %row.id, provider = provider_name, status = ?attempt.status,
                reason = ?attempt.reason, "push refused for good");
        }
        Outcome::DropToken => {
            tracing::info!(delivery_id = %row.id, device_id = %row.device_id, provider = provider_name,
                reason = ?attempt.reason, "push token is dead; device removed");
        }
        Outcome::FixCredentials => {
            state
                .metrics
                .credential_failures
                .get_or_create(&crate::metrics::ProviderLabels {
                    provider: row.provider.clone(),
                })
                .inc();
            tracing::error!(provider = provider_name, kind = %row.provider, status = ?attempt.status,
                reason = ?attempt.reason, "push credentials refused: provider paused; fix the configuration");
        }
    }
}
