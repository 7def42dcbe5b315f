//! Scores over time: a member's own (`GET /v1/me/outcomes`) and, for a
//! circle's staff, each member's with the change since intake (logged in
//! the access log, kind `outcomes`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::access_log::{Action, Audit, Kind, Subject};
use crate::circles::access;
use crate::clock::from_ms;
use crate::error::{ApiResult, Code};
use crate::http::Caller;
use crate::state::AppState;

use super::api::{instrument_of, locale_of};
use super::views::{self, BandView, Row, SELECT};

/// One answered moment.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "moment": "intake", "answered_at": "2026-03-02T10:00:00Z", "raw": 9, "score": 36,
    "band": {"key": "low", "label": "Laag welbevinden"}
}))]
pub struct Point {
    /// The moment of the circle's plan.
    pub moment: String,
    /// When it was answered.
    #[schema(value_type = String, format = DateTime)]
    pub answered_at: jiff::Timestamp,
    /// The raw total; null when too many items were left open.
    pub raw: Option<i64>,
    /// The scaled total (WHO-5: 0–100); null when too many items were left
    /// open.
    pub score: Option<i64>,
    /// The band in plain words in the reader's language.
    pub band: Option<BandView>,
}

/// One instrument's scores in one circle, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f", "circle_name": "Samen sterk",
    "instrument": "who5", "title": "WHO-5 Welbevinden Index",
    "score_label": "percentagescore (0–100)", "higher_is_better": true,
    "points": [{"moment": "intake", "answered_at": "2026-03-02T10:00:00Z", "raw": 9, "score": 36,
                "band": {"key": "low", "label": "Laag welbevinden"}}],
    "change_since_intake": null
}))]
pub struct Series {
    /// The circle that asked.
    pub circle_id: String,
    /// The circle's name.
    pub circle_name: String,
    /// The instrument's key.
    pub instrument: String,
    /// The instrument's title in the reader's language.
    pub title: String,
    /// What `score` is, in the reader's language; null when it is the raw
    /// score.
    pub score_label: Option<String>,
    /// Whether a higher score means doing better (WHO-5) or worse
    /// (loneliness).
    pub higher_is_better: bool,
    /// The answered moments, oldest first.
    pub points: Vec<Point>,
    /// The latest score minus the intake score; null without both.
    pub change_since_intake: Option<i64>,
}

/// Groups answered rows (ordered by circle, instrument, answer time) into
/// series, in `locale`.
async fn series(conn: &mut AnyConnection, rows: &[Row], locale: &str) -> ApiResult<Vec<Series>> {
    let mut out: Vec<Series> = Vec::new();
    for row in rows {
        let instrument = instrument_of(conn, row).await?;
        let point = Point {
            moment: row.moment.clone(),
            answered_at: from_ms(row.answered_at.unwrap_or(row.due_at)),
            raw: row.raw_score,
            score: row.scaled_score,
            band: views::band_view(&instrument.bands, row.band.as_deref(), locale),
        };
        match out.last_mut() {
            Some(s) if s.circle_id == row.circle_id && s.instrument == row.instrument_key => {
                s.points.push(point);
            }
            _ => out.push(Series {
                circle_id: row.circle_id.clone(),
                circle_name: row.circle_name.clone(),
                instrument: row.instrument_key.clone(),
                title: instrument.title.get(locale).to_owned(),
                score_label: instrument
                    .scoring
                    .scaled_label
                    .as_ref()
                    .map(|l| l.get(locale).to_owned()),
                higher_is_better: instrument.higher_is_better,
                points: vec![point],
                change_since_intake: None,
            }),
        }
    }
    for s in &mut out {
        s.change_since_intake = change(&s.points);
    }
    Ok(out)
}

/// The latest score minus the intake score.
fn change(points: &[Point]) -> Option<i64> {
    let intake = points.iter().find(|p| p.moment == "intake")?.score?;
    let latest = points.iter().rev().find(|p| p.moment != "intake")?.score?;
    Some(latest - intake)
}

/// Your scores over time.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f", "circle_name": "Samen sterk",
    "instrument": "who5", "title": "WHO-5 Welbevinden Index",
    "score_label": "percentagescore (0–100)", "higher_is_better": true,
    "points": [{"moment": "intake", "answered_at": "2026-03-02T10:00:00Z", "raw": 9, "score": 36,
                "band": {"key": "low", "label": "Laag welbevinden"}},
               {"moment": "week_6", "answered_at": "2026-04-14T10:00:00Z", "raw": 14, "score": 56,
                "band": {"key": "no_sign_of_low", "label": "Geen aanwijzing voor laag welbevinden"}}],
    "change_since_intake": 20
}]}))]
pub struct MyOutcomes {
    /// Per circle and instrument, your answered moments.
    pub items: Vec<Series>,
}

/// Members: your scores over time.
///
/// Per circle and instrument, every questionnaire you answered, oldest
/// first, with the band in plain words in your language and the change
/// since intake. Only you and your circle's workers see these; reports
/// show only anonymous group figures.
#[utoipa::path(
    get, path = "/v1/me/outcomes", tag = "questionnaires",
    operation_id = "me_outcomes_list",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your scores", body = MyOutcomes),
    )
)]
pub async fn mine(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<MyOutcomes>> {
    let mut conn = state.store.pool().acquire().await?;
    let locale = locale_of(&mut conn, &caller.account_id).await?;
    let sql = format!(
        "{SELECT} WHERE q.account_id = $1 AND q.status = 'answered'
         ORDER BY c.name, q.circle_id, q.instrument_key, q.answered_at, q.id"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&caller.account_id)
        .fetch_all(&mut *conn)
        .await?;
    let items = series(&mut conn, &rows, &locale).await?;
    Ok(axum::Json(MyOutcomes { items }))
}

/// One member's scores in the circle.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "membership_id": "0194f1c0d1e27f3a8b9c0d1e2f3a4b5c", "pseudonym": "Zon",
    "series": [{
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f", "circle_name": "Samen sterk",
        "instrument": "who5", "title": "WHO-5 Well-Being Index",
        "score_label": "percentage score (0–100)", "higher_is_better": true,
        "points": [{"moment": "intake", "answered_at": "2026-03-02T10:00:00Z", "raw": 9, "score": 36,
                    "band": {"key": "low", "label": "Poor well-being"}}],
        "change_since_intake": null
    }]
}))]
pub struct MemberOutcomes {
    /// The member's membership.
    pub membership_id: String,
    /// Their pseudonym in the circle.
    pub pseudonym: String,
    /// Per instrument, their answered moments and the change since intake.
    pub series: Vec<Series>,
}

/// The circle's members' scores.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "membership_id": "0194f1c0d1e27f3a8b9c0d1e2f3a4b5c", "pseudonym": "Zon",
    "series": [{
        "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f", "circle_name": "Samen sterk",
        "instrument": "who5", "title": "WHO-5 Well-Being Index",
        "score_label": "percentage score (0–100)", "higher_is_better": true,
        "points": [{"moment": "intake", "answered_at": "2026-03-02T10:00:00Z", "raw": 9, "score": 36,
                    "band": {"key": "low", "label": "Poor well-being"}}],
        "change_since_intake": null
    }]
}]}))]
pub struct CircleOutcomes {
    /// Active members with at least one answered questionnaire, by
    /// pseudonym.
    pub items: Vec<MemberOutcomes>,
}

/// Staff: each member's scores and trend in the circle.
///
/// Workers of the circle and coordinators of its organisation. Per active
/// member with answers: their scores per moment, bands in your language,
/// and the change since intake. Logged in the access log (kind
/// `outcomes`, action `list`, one entry per member shown).
#[utoipa::path(
    get, path = "/v1/circles/{circle_id}/outcomes", tag = "questionnaires",
    operation_id = "circle_outcomes_list",
    extensions(("x-problem-codes" = json!([Code::StaffOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    responses(
        (status = 200, description = "The members' scores", body = CircleOutcomes),
    )
)]
pub async fn circle(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path(circle_id): Path<String>,
) -> ApiResult<axum::Json<CircleOutcomes>> {
    let mut conn = state.store.pool().acquire().await?;
    access(&mut conn, &caller, &circle_id)
        .await?
        .require_staff()?;
    let locale = locale_of(&mut conn, &caller.account_id).await?;
    let sql = format!(
        "{SELECT} JOIN memberships m ON m.id = q.membership_id
         WHERE q.circle_id = $1 AND q.status = 'answered' AND m.left_at IS NULL
         ORDER BY m.pseudonym, q.membership_id, q.instrument_key, q.answered_at, q.id"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&circle_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut by_member: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for row in rows {
        by_member
            .entry(row.membership_id.clone())
            .or_default()
            .push(row);
    }
    let mut items = Vec::new();
    for (membership_id, rows) in by_member {
        let pseudonym: String =
            sqlx::query_scalar("SELECT pseudonym FROM memberships WHERE id = $1")
                .bind(&membership_id)
                .fetch_one(&mut *conn)
                .await?;
        items.push(MemberOutcomes {
            series: series(&mut conn, &rows, &locale).await?,
            membership_id,
            pseudonym,
        });
    }
    items.sort_by(|a, b| a.pseudonym.cmp(&b.pseudonym));
    audit.shown(
        Kind::Outcomes,
        Action::List,
        items.iter().map(|m| Subject::membership(&m.membership_id)),
    );
    Ok(axum::Json(CircleOutcomes { items }))
}
