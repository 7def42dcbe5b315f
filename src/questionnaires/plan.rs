//! A circle's measurement plan: which instrument at which moment, counted
//! from each member's join or from the circle's end.
//!
//! **The default plan** (written when a circle is made, and by migration
//! 0015 for circles made before): WHO-5 at `intake` (join, 0 days),
//! `week_6` (join, 42 days), `month_3` (join, 91 days), `month_6` (join,
//! 182 days) and `follow_up` (91 days after the circle's end; only once the
//! circle has an `ends_at`). Staff replace it with `PUT
//! /v1/circles/{circle_id}/measurement-plan`; an empty plan turns
//! measurement off for the circle.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::circles::access;
use crate::clock::opt_from_ms;
use crate::error::{ApiResult, Code, Validator};
use crate::http::idempotency::Idempotent;
use crate::http::time::parse_timestamp;
use crate::http::{Caller, Json};
use crate::state::AppState;

use crate::outcomes::catalogue;

/// The longest offset a moment may have: ten years.
const MAX_OFFSET_DAYS: i64 = 3650;
/// The most moments a plan may hold.
const MAX_MOMENTS: usize = 24;

/// What a moment is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The member's join.
    Join,
    /// The circle's end (`ends_at`); a moment counted from it waits until
    /// the circle has one.
    CircleEnd,
}

impl Anchor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::CircleEnd => "circle_end",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "circle_end" {
            Self::CircleEnd
        } else {
            Self::Join
        }
    }
}

/// The default plan: (instrument, moment, anchor, offset in days).
pub const DEFAULT_PLAN: &[(&str, &str, Anchor, i64)] = &[
    ("who5", "intake", Anchor::Join, 0),
    ("who5", "week_6", Anchor::Join, 42),
    ("who5", "month_3", Anchor::Join, 91),
    ("who5", "month_6", Anchor::Join, 182),
    ("who5", "follow_up", Anchor::CircleEnd, 91),
];

/// One moment of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"instrument": "who5", "moment": "week_6", "anchor": "join", "offset_days": 42}))]
pub struct PlannedMoment {
    /// The instrument's key (`who5`, `djg6`, or one of the organisation's
    /// own). One whose licence asks for permission needs that permission
    /// recorded by the organisation.
    #[schema(value_type = crate::openapi::InstrumentKey)]
    pub instrument: String,
    /// The moment's name, 1 to 40 lower-case letters, digits and `_`,
    /// starting with a letter; `intake` is always counted from the join at
    /// 0 days.
    #[schema(value_type = crate::openapi::MomentName)]
    pub moment: String,
    /// What the offset counts from.
    pub anchor: Anchor,
    /// Days after the anchor, 0 to 3650.
    #[schema(minimum = 0, maximum = 3650)]
    pub offset_days: i64,
}

/// A circle's measurement plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "ends_at": "2027-06-30T00:00:00Z",
    "moments": [
        {"instrument": "who5", "moment": "intake", "anchor": "join", "offset_days": 0},
        {"instrument": "who5", "moment": "week_6", "anchor": "join", "offset_days": 42},
        {"instrument": "who5", "moment": "month_3", "anchor": "join", "offset_days": 91},
        {"instrument": "who5", "moment": "month_6", "anchor": "join", "offset_days": 182},
        {"instrument": "who5", "moment": "follow_up", "anchor": "circle_end", "offset_days": 91}
    ]
}))]
pub struct MeasurementPlan {
    /// The circle's end, if it has one: moments anchored at `circle_end`
    /// count from it. Null: no end (those moments never come).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<String>,
    /// The moments; empty turns measurement off for the circle (nothing
    /// new is asked; questionnaires already made stay answerable until
    /// they expire). At most 24.
    #[schema(max_items = 24)]
    pub moments: Vec<PlannedMoment>,
}

/// Writes the default plan for a new circle, in its transaction.
pub async fn write_default(conn: &mut AnyConnection, circle_id: &str) -> Result<(), sqlx::Error> {
    let moments: Vec<PlannedMoment> = DEFAULT_PLAN
        .iter()
        .map(|&(instrument, moment, anchor, offset_days)| PlannedMoment {
            instrument: instrument.to_owned(),
            moment: moment.to_owned(),
            anchor,
            offset_days,
        })
        .collect();
    write_moments(conn, circle_id, &moments).await
}

async fn write_moments(
    conn: &mut AnyConnection,
    circle_id: &str,
    moments: &[PlannedMoment],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM measurement_moments WHERE circle_id = $1")
        .bind(circle_id)
        .execute(&mut *conn)
        .await?;
    for m in moments {
        sqlx::query(
            "INSERT INTO measurement_moments (circle_id, instrument_key, moment, anchor, offset_days)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(circle_id)
        .bind(&m.instrument)
        .bind(&m.moment)
        .bind(m.anchor.as_str())
        .bind(m.offset_days)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Replaces the plan and the circle's end: the one writer of both.
async fn replace(
    conn: &mut AnyConnection,
    circle_id: &str,
    ends_at: Option<i64>,
    moments: &[PlannedMoment],
    now: i64,
) -> Result<(), sqlx::Error> {
    write_moments(conn, circle_id, moments).await?;
    sqlx::query("UPDATE circles SET ends_at = $1, updated_at = $2 WHERE id = $3")
        .bind(ends_at)
        .bind(now)
        .bind(circle_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn load(conn: &mut AnyConnection, circle_id: &str) -> ApiResult<MeasurementPlan> {
    let ends_at: Option<i64> = sqlx::query_scalar("SELECT ends_at FROM circles WHERE id = $1")
        .bind(circle_id)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT instrument_key, moment, anchor, offset_days FROM measurement_moments
         WHERE circle_id = $1 ORDER BY anchor DESC, offset_days, instrument_key, moment",
    )
    .bind(circle_id)
    .fetch_all(&mut *conn)
    .await?;
    let moments = rows
        .into_iter()
        .map(|(instrument, moment, anchor, offset_days)| PlannedMoment {
            instrument,
            moment,
            anchor: Anchor::parse(&anchor),
            offset_days,
        })
        .collect();
    Ok(MeasurementPlan {
        ends_at: opt_from_ms(ends_at).map(|t| t.to_string()),
        moments,
    })
}

/// A moment's name, as every part of outcome measurement names moments
/// ([`crate::outcomes::cohorts::valid_moment_name`]).
fn valid_name(name: &str) -> Result<(), String> {
    if crate::outcomes::cohorts::valid_moment_name(name) {
        Ok(())
    } else {
        Err("must be 1 to 40 lower-case letters, digits and _, starting with a letter".into())
    }
}

/// Checks each moment's shape; `Err` lists every field that failed.
fn check_moments(v: &mut Validator, moments: &[PlannedMoment]) {
    if moments.len() > MAX_MOMENTS {
        v.fail("moments", format!("at most {MAX_MOMENTS} moments"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, m) in moments.iter().enumerate() {
        let at = format!("moments[{i}]");
        v.check(&format!("{at}.moment"), valid_name(&m.moment));
        if !(0..=MAX_OFFSET_DAYS).contains(&m.offset_days) {
            v.fail(&format!("{at}.offset_days"), "must be 0 to 3650");
        }
        if m.moment == "intake" && (m.anchor != Anchor::Join || m.offset_days != 0) {
            v.fail(
                &format!("{at}.moment"),
                "intake is always at the join (anchor join, offset_days 0)",
            );
        }
        if !seen.insert((m.instrument.clone(), m.moment.clone())) {
            v.fail(
                &format!("{at}.moment"),
                "this instrument is already planned at this moment",
            );
        }
    }
}

/// Staff: the circle's measurement plan.
///
/// Workers of the circle and coordinators of its organisation. Which
/// questionnaires members are asked, when, and the circle's end. A new
/// circle starts with the default plan (WHO-5 at intake, 6 weeks, 3 and 6
/// months after joining, and 3 months after the circle's end once it has
/// one).
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/measurement-plan", tag = "questionnaires",
    operation_id = "circle_measurement_plan_get",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    responses(
        (status = 200, description = "The plan", body = MeasurementPlan),
    )
)]
pub async fn get_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(circle_id): Path<String>,
) -> ApiResult<axum::Json<MeasurementPlan>> {
    let mut conn = state.store.pool().acquire().await?;
    access(&mut conn, &caller, &circle_id)
        .await?
        .require_staff()?;
    Ok(axum::Json(load(&mut conn, &circle_id).await?))
}

/// Staff: replace the circle's measurement plan and its end.
///
/// Workers of the circle and coordinators of its organisation. The whole
/// plan is replaced; an empty `moments` turns measurement off for the
/// circle. Only instruments the organisation may use: one whose licence
/// asks for permission (`djg6`) needs the permission recorded first (422
/// naming the moment otherwise). Questionnaires already made are kept; a
/// new moment is asked of members for whom it is still to come or whose
/// answering window is still open.
#[utoipa::path(
    put, path = "/v1/circles/{circle_id}/measurement-plan", tag = "questionnaires",
    operation_id = "circle_measurement_plan_replace",
    extensions(("x-problem-codes" = json!([Code::StaffOnly, Code::ValidationFailed]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    request_body = MeasurementPlan,
    responses(
        (status = 200, description = "The plan as it is now", body = MeasurementPlan),
    )
)]
pub async fn replace_plan(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Path(circle_id): Path<String>,
    Json(req): Json<MeasurementPlan>,
) -> ApiResult<axum::response::Response> {
    let mut v = Validator::default();
    let ends_at = req.ends_at.as_deref().and_then(|s| {
        v.check("ends_at", parse_timestamp(s))
            .map(|t| t.as_millisecond())
    });
    check_moments(&mut v, &req.moments);
    let mut tx = idem.begin(&state.store).await?;
    let found = access(&mut tx, &caller, &circle_id).await?;
    found.require_staff()?;
    for (i, m) in req.moments.iter().enumerate() {
        if let Some(why) =
            catalogue::refusal(&mut tx, &found.organisation_id, &m.instrument).await?
        {
            v.fail(&format!("moments[{i}].instrument"), why);
        }
    }
    v.finish()?;
    replace(&mut tx, &circle_id, ends_at, &req.moments, state.now_ms()).await?;
    let plan = load(&mut tx, &circle_id).await?;
    idem.commit(tx, axum::Json(plan)).await
}
