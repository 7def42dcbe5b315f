//! `POST /test/clock`: moves the clock of a server started with
//! `KRING_TEST_CLOCK=true`, then runs the scheduler and the delivery workers
//! until nothing is due, so a contract test sees the effects at once. The
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
    let fired = crate::jobs::silence::run_until_idle(&state).await?.fired;
    let deliveries = crate::jobs::delivery::run_until_idle(&state).await?;
    Ok(axum::Json(ClockMoved {
        now: crate::clock::from_ms(target),
        steps_fired: fired,
        deliveries,
    }))
}
