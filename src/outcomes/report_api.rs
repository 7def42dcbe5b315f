//! The outcome reports over HTTP: the organisation's (coordinators; small
//! cells suppressed, `KRING_REPORT_MIN_CELL`) and a circle's own (its
//! workers and coordinators; unsuppressed, access-logged). Reads the rows,
//! lets [`super::report`] compute, and answers JSON or, with
//! `Accept: text/csv`, [`super::csv`].

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use sqlx::AnyConnection;
use utoipa::IntoParams;

use super::catalogue;
use super::report::{self, CohortMoment, MomentDef, Row};
use super::report_view::{
    ComparisonInfo, Formulas, MEAN_CHANGE_FORMULA, OutcomeReport, ReportInstrument, Selection,
};
use super::stats;
use crate::access_log::{Action, Audit, Kind, Subject};
use crate::clock::from_ms;
use crate::error::{ApiError, ApiResult, Code, Validator};
use crate::http::{Caller, Query};
use crate::state::AppState;

/// The report's filters. `circle_id` may be repeated or a comma-separated
/// list.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The instrument's key (`who5`, `djg6`, or one the organisation imported).
    #[param(example = "who5", pattern = "^[a-z0-9_-]{1,64}$")]
    pub instrument: String,
    /// Only these circles (repeat the parameter or separate ids with commas);
    /// all of the organisation's circles when absent.
    #[param(pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub circle_id: Option<Vec<String>>,
    /// Only members who joined at or after this time (RFC 3339, or a date
    /// `YYYY-MM-DD` meaning its start in UTC).
    #[param(example = "2026-01-01", pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub joined_from: Option<String>,
    /// Only members who joined before this time (exclusive; RFC 3339 or a date).
    #[param(example = "2027-01-01", pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub joined_until: Option<String>,
    /// A comparison cohort of the same instrument to show side by side.
    #[param(pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub comparison_cohort_id: Option<String>,
}

/// The circle report's filters: those of [`ReportQuery`] but the circles.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CircleReportQuery {
    /// The instrument's key (`who5`, `djg6`, or one the organisation imported).
    #[param(example = "who5", pattern = "^[a-z0-9_-]{1,64}$")]
    pub instrument: String,
    /// Only members who joined at or after this time (RFC 3339, or a date
    /// `YYYY-MM-DD` meaning its start in UTC).
    #[param(example = "2026-01-01", pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub joined_from: Option<String>,
    /// Only members who joined before this time (exclusive; RFC 3339 or a date).
    #[param(example = "2027-01-01", pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub joined_until: Option<String>,
    /// A comparison cohort of the same instrument to show side by side.
    #[param(pattern = "^[^\\x00-\\x1f\\x7f]*$")]
    pub comparison_cohort_id: Option<String>,
}

/// The filters as parsed.
struct Filters {
    instrument: String,
    circle_ids: Vec<String>,
    joined_from: Option<i64>,
    joined_until: Option<i64>,
    cohort_id: Option<String>,
}

/// A time given as RFC 3339 or as a date (its start in UTC).
fn parse_time(input: &str) -> Result<i64, String> {
    if let Ok(t) = input.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    input
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_millisecond())
        .ok_or_else(|| "must be an RFC 3339 time or a date such as 2026-01-01".to_owned())
}

fn parse_filters(pairs: Vec<(String, String)>, allow_circles: bool) -> ApiResult<Filters> {
    let mut v = Validator::default();
    let mut filters = Filters {
        instrument: String::new(),
        circle_ids: Vec::new(),
        joined_from: None,
        joined_until: None,
        cohort_id: None,
    };
    for (name, value) in pairs {
        match name.as_str() {
            "instrument" => filters.instrument = value,
            "circle_id" if allow_circles => filters.circle_ids.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            "joined_from" => filters.joined_from = v.check("joined_from", parse_time(&value)),
            "joined_until" => filters.joined_until = v.check("joined_until", parse_time(&value)),
            "comparison_cohort_id" => filters.cohort_id = Some(value),
            other => v.fail(other, "is not a parameter of this report"),
        }
    }
    if filters.instrument.is_empty() {
        v.fail(
            "instrument",
            "is required: the key of an instrument, such as who5",
        );
    }
    if let (Some(from), Some(until)) = (filters.joined_from, filters.joined_until)
        && from >= until
    {
        v.fail("joined_until", "must be after joined_from");
    }
    v.finish()?;
    Ok(filters)
}

#[derive(sqlx::FromRow)]
struct QuestionnaireRow {
    membership_id: String,
    circle_id: String,
    moment: String,
    status: String,
    scaled_score: Option<i64>,
    band: Option<String>,
}

#[derive(sqlx::FromRow)]
struct MomentRow {
    circle_id: String,
    moment: String,
    anchor: String,
    offset_days: i64,
}

#[derive(sqlx::FromRow)]
struct CohortRow {
    id: String,
    instrument_key: String,
    description: String,
}

/// The questionnaires of the selection.
async fn questionnaires(
    conn: &mut AnyConnection,
    organisation_id: &str,
    f: &Filters,
) -> ApiResult<Vec<Row>> {
    let rows: Vec<QuestionnaireRow> = sqlx::query_as(
        "SELECT q.membership_id, q.circle_id, q.moment, q.status, q.scaled_score, q.band
         FROM questionnaires q JOIN memberships m ON m.id = q.membership_id
         WHERE q.organisation_id = $1 AND q.instrument_key = $2
           AND m.joined_at >= $3 AND m.joined_at < $4",
    )
    .bind(organisation_id)
    .bind(&f.instrument)
    .bind(f.joined_from.unwrap_or(i64::MIN))
    .bind(f.joined_until.unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    #[allow(clippy::cast_precision_loss)] // scores are small integers
    let rows = rows
        .into_iter()
        .filter(|r| f.circle_ids.is_empty() || f.circle_ids.contains(&r.circle_id))
        .map(|r| {
            let answered = r.status == "answered";
            Row {
                membership_id: r.membership_id,
                moment: r.moment,
                invited: r.status != "scheduled",
                answered,
                scaled: r.scaled_score.filter(|_| answered).map(|s| s as f64),
                band: r.band.filter(|_| answered),
            }
        })
        .collect();
    Ok(rows)
}

/// The moments the selection's plans name for the instrument; a name used
/// with several offsets takes the earliest.
async fn moments(
    conn: &mut AnyConnection,
    organisation_id: &str,
    f: &Filters,
) -> ApiResult<Vec<MomentDef>> {
    let rows: Vec<MomentRow> = sqlx::query_as(
        "SELECT mm.circle_id, mm.moment, mm.anchor, mm.offset_days
         FROM measurement_moments mm JOIN circles c ON c.id = mm.circle_id
         WHERE c.organisation_id = $1 AND mm.instrument_key = $2",
    )
    .bind(organisation_id)
    .bind(&f.instrument)
    .fetch_all(&mut *conn)
    .await?;
    let mut defs: Vec<MomentDef> = rows
        .into_iter()
        .filter(|r| f.circle_ids.is_empty() || f.circle_ids.contains(&r.circle_id))
        .map(|r| MomentDef {
            name: r.moment,
            anchor: Some(r.anchor),
            offset_days: Some(r.offset_days),
        })
        .collect();
    report::order_moments(&mut defs);
    let mut seen = HashSet::new();
    defs.retain(|d| seen.insert(d.name.clone()));
    Ok(defs)
}

/// The comparison cohort `id` of the organisation with its figures; a 422
/// naming `comparison_cohort_id` when there is none or it measured another
/// instrument.
async fn cohort(
    conn: &mut AnyConnection,
    organisation_id: &str,
    id: &str,
    instrument: &str,
) -> ApiResult<(ComparisonInfo, Vec<CohortMoment>)> {
    let row: Option<CohortRow> = sqlx::query_as(
        "SELECT id, instrument_key, description FROM comparison_cohorts
         WHERE id = $1 AND organisation_id = $2",
    )
    .bind(id)
    .bind(organisation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or_else(|| {
        ApiError::field("comparison_cohort_id", "no comparison cohort has this id")
    })?;
    if row.instrument_key != instrument {
        return Err(ApiError::field(
            "comparison_cohort_id",
            format!("the cohort was measured with {}", row.instrument_key),
        ));
    }
    let figures = super::cohorts::figures(conn, id).await?;
    let moments = figures.into_iter().map(cohort_moment).collect();
    Ok((
        ComparisonInfo {
            id: row.id,
            description: row.description,
            label: stats::COMPARISON_LABEL.to_owned(),
        },
        moments,
    ))
}

fn cohort_moment(f: super::cohorts::CohortMomentFigures) -> CohortMoment {
    let n = |x: i64| u64::try_from(x).unwrap_or(0);
    CohortMoment {
        moment: f.moment,
        n: n(f.n),
        mean: f.mean,
        sd: f.sd,
        change: f.change.map(|c| (n(c.n), c.mean, c.sd)),
        band_counts: f
            .band_counts
            .map(|b| b.into_iter().map(|(k, v)| (k, n(v))).collect()),
    }
}

/// Checks that every circle of the filter is the organisation's.
async fn check_circles(
    conn: &mut AnyConnection,
    organisation_id: &str,
    circle_ids: &[String],
) -> ApiResult<()> {
    let known: Vec<String> =
        sqlx::query_scalar("SELECT id FROM circles WHERE organisation_id = $1")
            .bind(organisation_id)
            .fetch_all(&mut *conn)
            .await?;
    match circle_ids.iter().find(|c| !known.contains(c)) {
        Some(c) => Err(ApiError::field(
            "circle_id",
            format!("{c} is not a circle of your organisation"),
        )),
        None => Ok(()),
    }
}

/// Computes a report; also returns its rows (for the access log).
async fn build(
    state: &AppState,
    organisation_id: &str,
    filters: &Filters,
    min_cell: u64,
) -> ApiResult<(OutcomeReport, Vec<Row>)> {
    let mut conn = state.store.pool().acquire().await?;
    let available = catalogue::find(&mut conn, organisation_id, &filters.instrument)
        .await?
        .ok_or_else(|| ApiError::field("instrument", "no instrument has this key"))?;
    check_circles(&mut conn, organisation_id, &filters.circle_ids).await?;
    let (comparison, cohort_moments) = match &filters.cohort_id {
        Some(id) => {
            let (info, moments) =
                cohort(&mut conn, organisation_id, id, &filters.instrument).await?;
            (Some(info), moments)
        }
        None => (None, Vec::new()),
    };
    let rows = questionnaires(&mut conn, organisation_id, filters).await?;
    let defs = moments(&mut conn, organisation_id, filters).await?;
    drop(conn);
    let instrument = &available.instrument;
    let figures = report::compute(&report::Input {
        instrument,
        moments: defs,
        rows: &rows,
        cohort: &cohort_moments,
        min_cell,
    });
    let report = OutcomeReport {
        instrument: ReportInstrument {
            key: instrument.key.clone(),
            version: instrument.version,
            title: (&instrument.title).into(),
            higher_is_better: instrument.higher_is_better,
            reliability: instrument.reliability.r,
            bands: instrument.bands.iter().map(|b| b.key.clone()).collect(),
            licence: (&available).into(),
        },
        selection: Selection {
            circle_ids: filters.circle_ids.clone(),
            joined_from: filters.joined_from.map(from_ms),
            joined_until: filters.joined_until.map(from_ms),
        },
        min_cell,
        formulas: Formulas {
            effect_size: stats::EFFECT_SIZE_FORMULA.to_owned(),
            reliable_change: stats::RELIABLE_CHANGE_FORMULA.to_owned(),
            mean_change: MEAN_CHANGE_FORMULA.to_owned(),
            comparison: comparison
                .as_ref()
                .map(|_| stats::COMPARISON_FORMULA.to_owned()),
        },
        comparison,
        moments: figures,
        generated_at: from_ms(state.now_ms()),
    };
    Ok((report, rows))
}

/// JSON, or CSV when the caller accepts `text/csv`.
fn answer(headers: &HeaderMap, report: &OutcomeReport, filename: &str) -> Response {
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}.csv\""),
                ),
            ],
            super::csv::write(report),
        )
            .into_response()
    } else {
        (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(report.clone()),
        )
            .into_response()
    }
}

/// Coordinators: the organisation's outcome report for one instrument.
///
/// Per moment of the measurement plans (intake first, then by anchor and
/// offset): members invited and answered and the response rate; mean and
/// SD of the scaled score; the mean change from intake with its 95 % CI,
/// the within-group effect size d and reliable change (Jacobson–Truax) of
/// the members who answered both; for instruments with bands the share
/// moving to a better band; with `comparison_cohort_id`, the face-to-face
/// cohort beside it and the between-group difference of mean change with
/// its CI (non-randomised). Filters: circles (`circle_id`, repeated or
/// comma-separated), join period (`joined_from`, `joined_until`).
///
/// Anonymity: a cell resting on fewer than `KRING_REPORT_MIN_CELL` members
/// (default 10) is null with `suppressed: fewer_than_k`; cells that would
/// let a hidden one be recovered by subtraction are null with
/// `suppressed: protects_another_cell`. With `Accept: text/csv` the same
/// figures as a flat table (`moment,anchor,offset_days,figure,value,suppressed`):
/// a suppressed figure has an empty value and its reason in `suppressed`.
/// Not access-logged: it shows aggregates only. 422 for an unknown
/// instrument, circle or cohort, or a cohort of another instrument. Changes
/// nothing.
#[utoipa::path(
    get, path = "/v1/organisation/outcomes", tag = "outcomes",
    operation_id = "organisation_outcomes_get",
    extensions(("x-problem-codes" = json!([Code::CoordinatorOnly]))),
    security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "The report: JSON, or CSV with `Accept: text/csv`",
         content((OutcomeReport = "application/json"), (String = "text/csv"))),
    )
)]
pub async fn organisation_report(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    caller.require_coordinator()?;
    let filters = parse_filters(pairs, true)?;
    let k = u64::from(state.config.report_min_cell);
    let (report, _) = build(&state, &caller.organisation_id, &filters, k).await?;
    Ok(answer(
        &headers,
        &report,
        &format!("kring-outcomes-{}", filters.instrument),
    ))
}

/// Staff of a circle: the circle's own outcome report, unsuppressed.
///
/// The circle's workers and the organisation's coordinators: the figures
/// of the organisation report for this circle alone, with nothing hidden
/// (`min_cell` 1: staff know the members anyway). Logged in the access log
/// (kind `outcomes`, action `list`, one entry per member whose answers it
/// uses). Same parameters as `organisation_outcomes_get` but the circles,
/// and JSON or CSV the same way. 404 for anyone else, 403 `staff_only` for
/// the circle's members. Changes nothing.
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/outcomes/report", tag = "outcomes",
    operation_id = "circle_outcomes_report_get",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id"), CircleReportQuery),
    responses(
        (status = 200, description = "The report: JSON, or CSV with `Accept: text/csv`",
         content((OutcomeReport = "application/json"), (String = "text/csv"))),
    )
)]
pub async fn circle_report(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    headers: HeaderMap,
    Path(circle_id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let mut conn = state.store.pool().acquire().await?;
    let access = crate::circles::access(&mut conn, &caller, &circle_id).await?;
    access.require_staff()?;
    drop(conn);
    let mut filters = parse_filters(pairs, false)?;
    filters.circle_ids = vec![access.circle_id.clone()];
    let (report, rows) = build(&state, &caller.organisation_id, &filters, 1).await?;
    audit.shown(
        Kind::Outcomes,
        Action::List,
        rows.iter()
            .filter(|r| r.answered)
            .map(|r| Subject::membership(r.membership_id.clone())),
    );
    Ok(answer(
        &headers,
        &report,
        &format!("kring-outcomes-{}-{}", filters.instrument, access.circle_id),
    ))
}
