//! The scheduler: each tick claims the memberships whose next step is due
//! (an indexed range scan: the cost follows what is due, not how many members
//! there are), fires each in its own transaction, and escalates alerts and
//! wakes snoozed ones.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::silence::engine;
use crate::state::AppState;
use crate::store::Backend;

/// How long a claim on a membership lasts.
pub const LEASE_MS: i64 = 60_000;
/// How many memberships one round claims.
pub const BATCH: i64 = 500;

/// What a tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub claimed: usize,
    pub fired: usize,
    pub escalated: usize,
    pub woken: usize,
}

/// Claims up to `limit` memberships with a due step.
pub async fn claim(state: &AppState, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let now = state.now_ms();
    let lock = match state.store.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    // The earliest due time is one index lookup whatever the query plan (a
    // `<= now LIMIT 1` probe may be planned as a scan on PostgreSQL).
    let earliest: Option<i64> = sqlx::query_scalar("SELECT MIN(next_step_due_at) FROM memberships")
        .fetch_one(state.store.pool())
        .await?;
    if earliest.is_none_or(|t| t > now) {
        return Ok(Vec::new());
    }
    let mut tx = state.store.begin().await?;
    let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE memberships SET schedule_lease_until = $1
         WHERE id IN (
             SELECT id FROM memberships
             WHERE next_step_due_at <= $2 AND (schedule_lease_until IS NULL OR schedule_lease_until < $2)
             ORDER BY next_step_due_at
             LIMIT $3
             {lock}
         )
         RETURNING id"
    )))
    .bind(now + LEASE_MS)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids)
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
    let mut total = Tick::default();
    loop {
        let t = tick(state).await?;
        total.claimed += t.claimed;
        total.fired += t.fired;
        total.escalated += t.escalated;
        total.woken += t.woken;
        if t.claimed == 0 && t.escalated == 0 && t.woken == 0 {
            return Ok(total);
        }
    }
}

/// The production loop: a tick a second; stops between ticks when cancelled.
pub async fn run(state: AppState, cancel: CancellationToken) {
    loop {
        if let Err(err) = tick(&state).await {
            tracing::warn!(error = %err, "scheduler tick failed; will retry");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
