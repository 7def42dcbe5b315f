//! Housekeeping: forget expired idempotency keys, access tokens and login
//! failures, so that those tables hold only what can still matter, let
//! access-log entries past their retention expire, and delete the documents
//! of exports past their download period.

use std::time::Duration;

use crate::jobs::Job;
use crate::state::AppState;

/// Sign-in failures and throttles older than this no longer count.
const LOGIN_MEMORY_MS: i64 = 86_400_000;

/// Housekeeping as a job: every 10 minutes. Every instance runs it, also
/// one with `KRING_RUN_JOBS=false`: the deletes are idempotent.
pub struct Upkeep;

impl Job for Upkeep {
    type Progress = u64;

    fn name(&self) -> &'static str {
        "upkeep"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(600)
    }

    async fn run_once(&self, state: &AppState) -> Result<u64, sqlx::Error> {
        upkeep_once(state).await
    }
}

/// One round of housekeeping; returns how many rows it removed.
pub async fn upkeep_once(state: &AppState) -> Result<u64, sqlx::Error> {
    let now = state.now_ms();
    let pool = state.store.pool();
    let mut removed = crate::http::idempotency::sweep(state).await?;
    removed += sqlx::query("DELETE FROM access_tokens WHERE expires_at < $1")
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
    removed += sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
        .bind(now - LOGIN_MEMORY_MS)
        .execute(pool)
        .await?
        .rows_affected();
    removed += sqlx::query("DELETE FROM login_throttles WHERE locked_at < $1")
        .bind(now - LOGIN_MEMORY_MS)
        .execute(pool)
        .await?
        .rows_affected();
    let retention_ms = i64::from(state.config.access_log_retention_days) * 86_400_000;
    removed += crate::access_log::chain::expire(&state.store, now - retention_ms).await?;
    removed += crate::exports::expire(state).await?;
    Ok(removed)
}
