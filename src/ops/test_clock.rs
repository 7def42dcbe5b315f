//! `POST /test/clock`: moves the clock of a server started with
//! `KRING_TEST_CLOCK=true`, then runs the scheduler, the delivery workers
//! and the export builder until nothing is due, so a contract test sees the effects at once. The
//! route exists only on such a server and is not part of the API spec.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use crate::http::Json;
use crate::http::time::parse_timestamp;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct MoveClock {
    /// Move forward by this many seconds.
    pub advance_seconds: Option<i64>,
    /// Or jump to this RFC 3339 time (never backwards).
    pub set: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ClockMoved {
    pub now: jiff::Timestamp,
    pub steps_fired: usize,
    pub deliveries: usize,
}

pub async fn move_clock(
    State(state): State<AppState>,
    Json(req): Json<MoveClock>,
) -> ApiResult<axum::Json<ClockMoved>> {
    let clock = state
        .test_clock
        .clone()
        .ok_or(ApiError::NotFound("route"))?;
    let now = clock.now_ms();
    let target = match (req.advance_seconds, req.set.as_deref()) {
        (Some(secs), None) if secs >= 0 => now + secs.saturating_mul(1000),
        (None, Some(at)) => parse_timestamp(at)
            .map_err(|m| ApiError::field("set", m))?
            .as_millisecond(),
        _ => {
            return Err(ApiError::field(
                "advance_seconds",
                "give advance_seconds (>= 0) or set",
            ));
        }
    };
    if target < now {
        return Err(ApiError::field("set", "the clock never goes backwards"));
    }
    clock.set(crate::clock::from_ms(target));
    crate::jobs::run_until_idle(&crate::erasure::run::Erasures, &state).await?;
    let mut fired = crate::jobs::silence::run_until_idle(&state).await?.fired;
    crate::jobs::run_until_idle(&crate::jobs::questionnaires::Questionnaires, &state).await?;
    let mut deliveries = crate::jobs::delivery::run_until_idle(&state).await?;
    crate::jobs::run_until_idle(&crate::jobs::exports::Builder, &state).await?;
    // The server's own job loops may hold a claim on something due (a step
    // being fired, a push being sent) that the runs above skipped: wait for
    // them (at most 10 s), then run once more, so the caller sees it all.
    for _ in 0..500 {
        let busy: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM deliveries
                     WHERE status = 'pending' AND lease_until > $1 AND not_before <= $1)
                  + (SELECT COUNT(*) FROM memberships
                     WHERE schedule_lease_until > $1 AND next_step_due_at <= $1)
                  + (SELECT COUNT(*) FROM exports
                     WHERE status = 'pending' AND lease_until > $1 AND build_due_at <= $1)",
        )
        .bind(target)
        .fetch_one(state.store.pool())
        .await?;
        if busy == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    fired += crate::jobs::silence::run_until_idle(&state).await?.fired;
    deliveries += crate::jobs::delivery::run_until_idle(&state).await?;
    crate::jobs::run_until_idle(&crate::jobs::exports::Builder, &state).await?;
    Ok(axum::Json(ClockMoved {
        now: crate::clock::from_ms(target),
        steps_fired: fired,
        deliveries,
    }))
}
