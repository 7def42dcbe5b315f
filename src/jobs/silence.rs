//! The scheduler: each tick claims the memberships whose next step is due
//! (an indexed range scan: the cost follows what is due, not how many members
//! there are), fires each in its own transaction, and escalates alerts and
//! wakes snoozed ones.

use std::time::Duration;

use crate::jobs::{Job, Progress};
use crate::silence::engine;
use crate::state::AppState;
use crate::store::claim::Queue;

/// How long a claim on a membership lasts.
pub const LEASE_MS: i64 = 60_000;
/// How many memberships one round claims.
pub const BATCH: i64 = 500;

/// Memberships wait for their next step in `next_step_due_at` (indexed).
const SCHEDULE: Queue = Queue {
    table: "memberships",
    key: "id",
    due: "next_step_due_at",
    lease: "schedule_lease_until",
    lease_ms: LEASE_MS,
    waiting: None,
    claimable: None,
    on_claim: None,
};

/// What a tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub claimed: usize,
    pub fired: usize,
    pub escalated: usize,
    pub woken: usize,
}

impl Progress for Tick {
    fn is_idle(&self) -> bool {
        self.claimed == 0 && self.escalated == 0 && self.woken == 0
    }

    fn add(&mut self, other: Self) {
        self.claimed += other.claimed;
        self.fired += other.fired;
        self.escalated += other.escalated;
        self.woken += other.woken;
    }
}

/// The scheduler as a job: a tick a second while nothing is due.
pub struct Scheduler;

impl Job for Scheduler {
    type Progress = Tick;

    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn run_once(&self, state: &AppState) -> Result<Tick, sqlx::Error> {
        tick(state).await
    }
}

/// Claims up to `limit` memberships with a due step.
pub async fn claim(state: &AppState, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    state
        .store
        .claim_due(&SCHEDULE, state.now_ms(), limit, None)
        .await
}

/// One round: fire due steps, escalate and wake alerts.
pub async fn tick(state: &AppState) -> Result<Tick, sqlx::Error> {
    let mut result = Tick::default();
    let ids = claim(state, BATCH).await?;
    result.claimed = ids.len();
    for id in ids {
        let mut tx = state.store.begin().await?;
        if engine::fire_due(&mut tx, &id, state.now_ms()).await? {
            result.fired += 1;
        }
        tx.commit().await?;
    }
    let now = state.now_ms();
    let escalations: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM alerts WHERE escalate_at <= $1 AND escalated_at IS NULL AND status = 'open'
           AND acknowledged_at IS NULL",
    )
    .bind(now)
    .fetch_all(state.store.pool())
    .await?;
    for id in escalations {
        let mut tx = state.store.begin().await?;
        if engine::escalate(&mut tx, &id, now).await? {
            result.escalated += 1;
        }
        tx.commit().await?;
    }
    let snoozed: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM alerts WHERE status = 'snoozed' AND snoozed_until <= $1",
    )
    .bind(now)
    .fetch_all(state.store.pool())
    .await?;
    for id in snoozed {
        let mut tx = state.store.begin().await?;
        if engine::wake(&mut tx, &id, now).await? {
            result.woken += 1;
        }
        tx.commit().await?;
    }
    Ok(result)
}

/// Ticks until nothing is due: for tests.
pub async fn run_until_idle(state: &AppState) -> Result<Tick, sqlx::Error> {
    crate::jobs::run_until_idle(&Scheduler, state).await
}
