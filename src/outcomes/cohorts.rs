//! Comparison cohorts: a face-to-face group known only by the aggregate
//! figures a coordinator recorded per moment (n, mean, SD, optionally the
//! paired change and counts per band), shown beside the online members in
//! the outcome report (`comparison_cohort_id`).

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::catalogue;
use super::instrument::Instrument;
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::{Caller, Json};
use crate::secrets::new_id;
use crate::state::AppState;

/// Moments per cohort at most.
const MAX_MOMENTS: usize = 20;

/// A cohort's paired change from intake.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"n": 25, "mean": 4.0, "sd": 12.0}))]
pub struct ChangeFigures {
    /// Members measured at intake and at this moment (at least 2, at most
    /// the moment's n).
    #[schema(minimum = 2)]
    pub n: i64,
    /// Their mean change (this moment − intake), in the instrument's scaled score.
    pub mean: f64,
    /// The SD of that change (0 or more).
    #[schema(minimum = 0)]
    pub sd: f64,
}

/// A cohort's figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "moment": "week_6", "n": 25, "mean": 50.0, "sd": 16.0,
    "change": {"n": 25, "mean": 4.0, "sd": 12.0},
    "band_counts": {"very_low": 3, "low": 10, "no_sign_of_low": 12}
}))]
pub struct CohortMomentFigures {
    /// The moment, named as in the measurement plans (`intake`, `week_6`,
    /// …): lower case letters, digits and `_`, starting with a letter.
    #[schema(value_type = crate::openapi::MomentName)]
    pub moment: String,
    /// Members measured (at least 2).
    #[schema(minimum = 2)]
    pub n: i64,
    /// Mean scaled score, within the instrument's range.
    pub mean: f64,
    /// SD of the scaled score (0 or more).
    #[schema(minimum = 0)]
    pub sd: f64,
    /// The paired change from intake, when known; never at intake. Without
    /// it the report derives the change from the moment means.
    #[serde(default)]
    pub change: Option<ChangeFigures>,
    /// Members per band (the instrument's band keys), summing to `n`; only
    /// for instruments with bands.
    #[serde(default)]
    pub band_counts: Option<BTreeMap<String, i64>>,
}

/// A new comparison cohort.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "instrument": "who5",
    "description": "Face-to-face groups Noord, 2025 (paper questionnaires)",
    "moments": [
        {"moment": "intake", "n": 30, "mean": 45.0, "sd": 15.0},
        {"moment": "week_6", "n": 25, "mean": 50.0, "sd": 16.0, "change": {"n": 25, "mean": 4.0, "sd": 12.0}}
    ]
}))]
pub struct CreateCohort {
    /// The instrument's key; one the organisation can see.
    #[schema(value_type = crate::openapi::InstrumentKey)]
    pub instrument: String,
    /// Who the cohort was, when and how it was measured (1 to 1,000 characters).
    #[schema(value_type = crate::openapi::Statement)]
    pub description: String,
    /// Its figures, one per moment (1 to 20, each moment once).
    #[schema(min_items = 1, max_items = 20)]
    pub moments: Vec<CohortMomentFigures>,
}

/// A comparison cohort.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
    "instrument": "who5",
    "description": "Face-to-face groups Noord, 2025 (paper questionnaires)",
    "created_by": "0193a5b0c0de7a11b2c3d4e5f6a7b8c9",
    "created_at": "2026-11-21T10:00:00Z",
    "moments": [
        {"moment": "intake", "n": 30, "mean": 45.0, "sd": 15.0, "change": null, "band_counts": null},
        {"moment": "week_6", "n": 25, "mean": 50.0, "sd": 16.0, "change": {"n": 25, "mean": 4.0, "sd": 12.0}, "band_counts": null}
    ]
}))]
pub struct Cohort {
    /// The cohort's id (`comparison_cohort_id` of the report).
    pub id: String,
    /// The instrument's key.
    pub instrument: String,
    /// Its description.
    pub description: String,
    /// The coordinator who recorded it.
    pub created_by: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// Its figures per moment.
    pub moments: Vec<CohortMomentFigures>,
}

/// The organisation's comparison cohorts, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
    "instrument": "who5",
    "description": "Face-to-face groups Noord, 2025 (paper questionnaires)",
    "created_by": "0193a5b0c0de7a11b2c3d4e5f6a7b8c9",
    "created_at": "2026-11-21T10:00:00Z",
    "moments": [{"moment": "intake", "n": 30, "mean": 45.0, "sd": 15.0, "change": null, "band_counts": null}]
}]}))]
pub struct CohortList {
    /// Every cohort.
    pub items: Vec<Cohort>,
}

/// A moment's name as measurement plans name them.
pub fn valid_moment_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks one moment's figures against the instrument, recording problems
/// under `moments[i]`.
fn check_moment(v: &mut Validator, i: usize, m: &CohortMomentFigures, instrument: &Instrument) {
    let at = |field: &str| format!("moments[{i}].{field}");
    if !valid_moment_name(&m.moment) {
        v.fail(
            &at("moment"),
            "must be a moment name such as intake or week_6: lower case letters, digits and _",
        );
    }
    if m.n < 2 {
        v.fail(&at("n"), "must be at least 2");
    }
    let (low, high) = instrument.scaled_range();
    #[allow(clippy::cast_precision_loss)] // score ranges are small
    let (low, high) = (low as f64, high as f64);
    if !(m.mean.is_finite() && m.mean >= low && m.mean <= high) {
        v.fail(&at("mean"), format!("must be within {low} to {high}"));
    }
    if !(m.sd.is_finite() && m.sd >= 0.0 && m.sd <= high - low) {
        v.fail(&at("sd"), format!("must be 0 to {}", high - low));
    }
    if let Some(c) = &m.change {
        if m.moment == super::report::INTAKE {
            v.fail(&at("change"), "intake has no change from intake");
        }
        if c.n < 2 || c.n > m.n {
            v.fail(
                &at("change.n"),
                "must be at least 2 and at most the moment's n",
            );
        }
        if !(c.mean.is_finite() && c.mean.abs() <= high - low) {
            v.fail(&at("change.mean"), "must be a possible change of the score");
        }
        if !(c.sd.is_finite() && c.sd >= 0.0 && c.sd <= high - low) {
            v.fail(&at("change.sd"), format!("must be 0 to {}", high - low));
        }
    }
    if let Some(counts) = &m.band_counts {
        check_bands(v, &at("band_counts"), counts, m.n, instrument);
    }
}

fn check_bands(
    v: &mut Validator,
    field: &str,
    counts: &BTreeMap<String, i64>,
    n: i64,
    instrument: &Instrument,
) {
    if instrument.bands.is_empty() {
        v.fail(field, "the instrument has no bands");
        return;
    }
    for (key, count) in counts {
        if !instrument.bands.iter().any(|b| &b.key == key) {
            let keys: Vec<&str> = instrument.bands.iter().map(|b| b.key.as_str()).collect();
            v.fail(
                &format!("{field}.{key}"),
                format!("is not a band of the instrument ({})", keys.join(", ")),
            );
        }
        if *count < 0 {
            v.fail(&format!("{field}.{key}"), "must be 0 or more");
        }
    }
    if counts.values().sum::<i64>() != n {
        v.fail(field, "the counts must add up to n");
    }
}

fn check(req: &CreateCohort, instrument: Option<&Instrument>) -> ApiResult<()> {
    let mut v = Validator::default();
    let description = req.description.trim();
    if description.is_empty() || description.chars().count() > 1000 {
        v.fail("description", "must be 1 to 1,000 characters");
    }
    if req.moments.is_empty() || req.moments.len() > MAX_MOMENTS {
        v.fail("moments", format!("must hold 1 to {MAX_MOMENTS} moments"));
    }
    let mut seen = HashSet::new();
    for (i, m) in req.moments.iter().enumerate() {
        if !seen.insert(m.moment.as_str()) {
            v.fail(&format!("moments[{i}].moment"), "is given twice");
        }
        if let Some(instrument) = instrument {
            check_moment(&mut v, i, m, instrument);
        }
    }
    match instrument {
        None => {
            v.fail("instrument", "no instrument has this key");
            Err(v.into_error())
        }
        Some(_) => v.finish(),
    }
}

#[derive(sqlx::FromRow)]
struct CohortRow {
    id: String,
    instrument_key: String,
    description: String,
    created_by: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct FigureRow {
    moment: String,
    n: i64,
    mean: f64,
    sd: f64,
    change_n: Option<i64>,
    change_mean: Option<f64>,
    change_sd: Option<f64>,
    band_counts: Option<String>,
}

impl From<FigureRow> for CohortMomentFigures {
    fn from(r: FigureRow) -> Self {
        Self {
            moment: r.moment,
            n: r.n,
            mean: r.mean,
            sd: r.sd,
            change: match (r.change_n, r.change_mean, r.change_sd) {
                (Some(n), Some(mean), Some(sd)) => Some(ChangeFigures { n, mean, sd }),
                _ => None,
            },
            band_counts: r.band_counts.and_then(|j| serde_json::from_str(&j).ok()),
        }
    }
}

/// The figures of cohort `id`, by moment name.
pub async fn figures(conn: &mut AnyConnection, id: &str) -> ApiResult<Vec<CohortMomentFigures>> {
    let rows: Vec<FigureRow> = sqlx::query_as(
        "SELECT moment, n, mean, sd, change_n, change_mean, change_sd, band_counts
         FROM comparison_figures WHERE cohort_id = $1 ORDER BY moment",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

const SELECT: &str = "SELECT id, instrument_key, description, created_by, created_at
                      FROM comparison_cohorts";

async fn load(conn: &mut AnyConnection, row: CohortRow) -> ApiResult<Cohort> {
    let moments = figures(conn, &row.id).await?;
    Ok(Cohort {
        id: row.id,
        instrument: row.instrument_key,
        description: row.description,
        created_by: row.created_by,
        created_at: from_ms(row.created_at),
        moments,
    })
}

async fn find(conn: &mut AnyConnection, organisation_id: &str, id: &str) -> ApiResult<Cohort> {
    let row: Option<CohortRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE id = $1 AND organisation_id = $2"
    )))
    .bind(id)
    .bind(organisation_id)
    .fetch_optional(&mut *conn)
    .await?;
    load(conn, row.ok_or(ApiError::NotFound("comparison cohort"))?).await
}

async fn insert_figures(
    conn: &mut AnyConnection,
    id: &str,
    m: &CohortMomentFigures,
) -> ApiResult<()> {
    let bands = match &m.band_counts {
        Some(b) => Some(serde_json::to_string(b).map_err(|e| ApiError::Internal(e.to_string()))?),
        None => None,
    };
    // PostgreSQL through sqlx's Any driver refuses a NULL bound for a
    // DOUBLE PRECISION parameter once the statement was prepared with a
    // number there, so an absent change is written as literal NULLs.
    let change = m.change.unwrap_or(ChangeFigures {
        n: 0,
        mean: 0.0,
        sd: 0.0,
    });
    let sql = if m.change.is_some() {
        "INSERT INTO comparison_figures (cohort_id, moment, n, mean, sd, band_counts, change_n,
                                         change_mean, change_sd)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    } else {
        "INSERT INTO comparison_figures (cohort_id, moment, n, mean, sd, band_counts)
         VALUES ($1, $2, $3, $4, $5, $6)"
    };
    let query = sqlx::query(sql)
        .bind(id)
        .bind(&m.moment)
        .bind(m.n)
        .bind(m.mean)
        .bind(m.sd)
        .bind(bands);
    let query = if m.change.is_some() {
        query.bind(change.n).bind(change.mean).bind(change.sd)
    } else {
        query
    };
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Coordinators: record a face-to-face comparison cohort.
///
/// Its aggregate figures per moment, for one instrument: n (at least 2),
/// mean and SD of the scaled score, optionally the paired change from
/// intake (n, mean, SD) and the counts per band (summing to n). Moments
/// are named as in the measurement plans; the report's difference of
/// mean change needs the cohort's `intake` and the later moment. Every
/// figure is checked (422 naming the field). A cohort never changes:
/// delete it and record it again. Send an `Idempotency-Key`: a retry never
/// records it twice.
#[utoipa::path(
    post, path = "/v1/organisation/comparison-cohorts", tag = "outcomes",
    operation_id = "organisation_comparison_cohorts_create",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(IdempotencyKey),
    request_body = CreateCohort,
    responses((status = 201, description = "The cohort", body = Cohort))
)]
pub async fn create(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Json(req): Json<CreateCohort>,
) -> ApiResult<Response> {
    caller.require_coordinator()?;
    let mut conn = state.store.pool().acquire().await?;
    let available = catalogue::find(&mut conn, &caller.organisation_id, &req.instrument).await?;
    drop(conn);
    check(&req, available.as_ref().map(|a| &a.instrument))?;
    let id = new_id();
    let mut tx = idem.begin(&state.store).await?;
    sqlx::query(
        "INSERT INTO comparison_cohorts (id, organisation_id, instrument_key, description,
                                         created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&caller.organisation_id)
    .bind(&req.instrument)
    .bind(req.description.trim())
    .bind(&caller.account_id)
    .bind(state.now_ms())
    .execute(&mut *tx)
    .await?;
    for m in &req.moments {
        insert_figures(&mut tx, &id, m).await?;
    }
    let cohort = find(&mut tx, &caller.organisation_id, &id).await?;
    idem.commit(tx, (StatusCode::CREATED, axum::Json(cohort)))
        .await
}

/// Coordinators: the organisation's comparison cohorts, newest first.
///
/// Each with its figures. Changes nothing.
#[utoipa::path(
    get, path = "/v1/organisation/comparison-cohorts", tag = "outcomes",
    operation_id = "organisation_comparison_cohorts_list",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    responses((status = 200, description = "The cohorts", body = CohortList))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<CohortList>> {
    caller.require_coordinator()?;
    let mut conn = state.store.pool().acquire().await?;
    let rows: Vec<CohortRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE organisation_id = $1 ORDER BY created_at DESC, id DESC"
    )))
    .bind(&caller.organisation_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(load(&mut conn, row).await?);
    }
    Ok(axum::Json(CohortList { items }))
}

/// Coordinators: one comparison cohort.
///
/// 404 for a cohort of another organisation. Changes nothing.
#[utoipa::path(
    get, path = "/v1/organisation/comparison-cohorts/{cohort_id}", tag = "outcomes",
    operation_id = "organisation_comparison_cohort_get",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(("cohort_id" = String, Path, description = "The cohort's id")),
    responses((status = 200, description = "The cohort", body = Cohort))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(cohort_id): Path<String>,
) -> ApiResult<axum::Json<Cohort>> {
    caller.require_coordinator()?;
    let mut conn = state.store.pool().acquire().await?;
    Ok(axum::Json(
        find(&mut conn, &caller.organisation_id, &cohort_id).await?,
    ))
}

/// Coordinators: delete a comparison cohort and its figures.
///
/// Reports can no longer compare with it. 404 for a cohort of another
/// organisation or one already deleted.
#[utoipa::path(
    delete, path = "/v1/organisation/comparison-cohorts/{cohort_id}", tag = "outcomes",
    operation_id = "organisation_comparison_cohort_delete",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(("cohort_id" = String, Path, description = "The cohort's id")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(cohort_id): Path<String>,
) -> ApiResult<Response> {
    caller.require_coordinator()?;
    let mut tx = state.store.begin().await?;
    let owned: Option<String> = sqlx::query_scalar(
        "SELECT id FROM comparison_cohorts WHERE id = $1 AND organisation_id = $2",
    )
    .bind(&cohort_id)
    .bind(&caller.organisation_id)
    .fetch_optional(&mut *tx)
    .await?;
    owned.ok_or(ApiError::NotFound("comparison cohort"))?;
    sqlx::query("DELETE FROM comparison_figures WHERE cohort_id = $1")
        .bind(&cohort_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM comparison_cohorts WHERE id = $1")
        .bind(&cohort_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
