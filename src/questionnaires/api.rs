//! The member's routes: open questionnaires, one in their language,
//! answering or declining it, measurement on or off per circle, and their
//! own scores over time.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::circles::{access, record_activity};
use crate::clock::opt_from_ms;
use crate::error::{ApiError, ApiResult, Code, FieldError};
use crate::http::idempotency::{IdempotencyKey, Idempotent};
use crate::http::{Caller, Json};
use crate::outcomes::instrument::Instrument;
use crate::outcomes::scoring::{self, RawAnswers, Score};
use crate::state::AppState;

use super::views::{self, QuestionnaireSummary, QuestionnaireView, Row, SELECT};
use crate::outcomes::catalogue;

/// The caller's language (`nl` or `en`).
pub async fn locale_of(conn: &mut AnyConnection, account_id: &str) -> Result<String, sqlx::Error> {
    let locale: Option<String> = sqlx::query_scalar("SELECT locale FROM accounts WHERE id = $1")
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(locale.unwrap_or_else(|| "nl".to_owned()))
}

/// The definition a row was made with.
pub async fn instrument_of(conn: &mut AnyConnection, row: &Row) -> ApiResult<Instrument> {
    catalogue::at_version(
        conn,
        &row.organisation_id,
        &row.instrument_key,
        row.instrument_version,
    )
    .await?
    .ok_or_else(|| ApiError::Internal(format!("instrument {} unknown", row.instrument_key)))
}

/// The caller's questionnaire `id`, or 404.
async fn own(conn: &mut AnyConnection, caller: &Caller, id: &str) -> ApiResult<Row> {
    let sql = format!("{SELECT} WHERE q.id = $1 AND q.account_id = $2");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&caller.account_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.ok_or(ApiError::NotFound("questionnaire"))
}

/// Your open questionnaires.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "circle_name": "Samen sterk",
    "instrument": "who5",
    "title": "WHO-5 Welbevinden Index",
    "moment": "week_6",
    "status": "open",
    "due_at": "2026-04-13T09:00:00Z",
    "expires_at": "2026-04-27T09:00:00Z",
    "item_count": 5
}]}))]
pub struct QuestionnaireList {
    /// Questionnaires you can answer now, oldest first.
    pub items: Vec<QuestionnaireSummary>,
}

/// Members: your questionnaires that are open to answer.
///
/// Those of circles you are an active member of, with measurement on,
/// whose window has not closed; oldest first. Answering is voluntary:
/// decline one, or turn measurement off for a circle. Staff accounts get
/// an empty list.
#[utoipa::path(
    get, path = "/v1/me/questionnaires", tag = "questionnaires",
    operation_id = "me_questionnaires_list",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Your open questionnaires", body = QuestionnaireList),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<QuestionnaireList>> {
    let now = state.now_ms();
    let mut conn = state.store.pool().acquire().await?;
    let locale = locale_of(&mut conn, &caller.account_id).await?;
    let sql = format!(
        "{SELECT} JOIN memberships m ON m.id = q.membership_id
         WHERE q.account_id = $1 AND q.status IN ('scheduled', 'open') AND q.expires_at > $2
           AND m.left_at IS NULL AND m.measurement_off_at IS NULL AND c.archived_at IS NULL
         ORDER BY q.due_at, q.id LIMIT 50"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&caller.account_id)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let instrument = instrument_of(&mut conn, row).await?;
        items.push(views::summary(row, &instrument, &locale, now));
    }
    Ok(axum::Json(QuestionnaireList { items }))
}

/// Members: one of your questionnaires, in your language.
///
/// Its questions with their answer options in the order to show them, and
/// once answered your answers and score with its band in plain words. Any
/// status (also declined or expired). 404 for another account's.
#[utoipa::path(
    get, path = "/v1/me/questionnaires/{questionnaire_id}", tag = "questionnaires",
    operation_id = "me_questionnaire_get",
    security(("bearer" = [])),
    params(("questionnaire_id" = String, Path, description = "The questionnaire's id")),
    responses(
        (status = 200, description = "The questionnaire", body = QuestionnaireView),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<QuestionnaireView>> {
    let mut conn = state.store.pool().acquire().await?;
    let row = own(&mut conn, &caller, &id).await?;
    let locale = locale_of(&mut conn, &caller.account_id).await?;
    let instrument = instrument_of(&mut conn, &row).await?;
    let view = views::full(&mut conn, &row, &instrument, &locale, state.now_ms()).await?;
    Ok(axum::Json(view))
}

/// Your answers.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"answers": {
    "who5_1": "most_of_the_time", "who5_2": "more_than_half", "who5_3": "less_than_half",
    "who5_4": "some_of_the_time", "who5_5": "most_of_the_time"
}}))]
pub struct Answers {
    /// Item id → the chosen option's `value`; null (or leaving the item
    /// out) for a question you leave open. At least one must be answered.
    /// With too many left open the score is null, as the instrument's
    /// rules say.
    pub answers: BTreeMap<String, Option<String>>,
}

/// Why a questionnaire takes no answer or decline any more.
fn closed(row: &Row, now: i64) -> ApiError {
    use views::QuestionnaireStatus as S;
    match row.status_at(now) {
        S::Answered => ApiError::new(
            Code::QuestionnaireAnswered,
            "This questionnaire is already answered; answers cannot change.",
        ),
        S::Declined => ApiError::new(
            Code::QuestionnaireDeclined,
            "You declined this questionnaire.",
        ),
        _ => ApiError::new(
            Code::QuestionnaireExpired,
            "This questionnaire's window has closed.",
        ),
    }
}

/// Scores `answers`, or names each item that does not fit.
fn score(instrument: &Instrument, answers: &RawAnswers) -> ApiResult<Score> {
    if answers.values().all(Option::is_none) {
        return Err(ApiError::field(
            "answers",
            "answer at least one question, or decline the questionnaire",
        ));
    }
    scoring::score(instrument, answers).map_err(|e| {
        ApiError::Validation(
            e.problems
                .into_iter()
                .map(|p| FieldError::new(format!("answers.{}", p.item), p.message))
                .collect(),
        )
    })
}

/// Records the answers and score of `row` if it is still open, with the
/// activity they are; false when it was answered, declined or expired
/// first (the one gate, also against parallel submissions).
async fn record_answers(
    conn: &mut AnyConnection,
    row: &Row,
    instrument: &Instrument,
    answers: &RawAnswers,
    score: &Score,
    now: i64,
) -> ApiResult<bool> {
    let total = score.total.as_ref();
    let subscales: Vec<views::StoredSubscale> = score
        .subscales
        .iter()
        .map(|s| views::StoredSubscale {
            key: s.key.clone(),
            score: s.score,
            band: s.band.as_ref().map(|b| b.key.clone()),
        })
        .collect();
    let subscales =
        serde_json::to_string(&subscales).map_err(|e| ApiError::Internal(e.to_string()))?;
    let gate = sqlx::query(
        "UPDATE questionnaires SET status = 'answered', answered_at = $1, raw_score = $2,
                scaled_score = $3, band = $4, subscales = $5, next_action_at = NULL, lease_until = NULL
         WHERE id = $6 AND status IN ('scheduled', 'open') AND expires_at > $1",
    )
    .bind(now)
    .bind(total.map(|t| t.raw))
    .bind(total.map(|t| t.scaled))
    .bind(total.and_then(|t| t.band.as_ref()).map(|b| b.key.clone()))
    .bind(&subscales)
    .bind(&row.id)
    .execute(&mut *conn)
    .await?;
    if gate.rows_affected() != 1 {
        return Ok(false);
    }
    for item in &instrument.items {
        sqlx::query(
            "INSERT INTO questionnaire_answers (questionnaire_id, item_id, value) VALUES ($1, $2, $3)",
        )
        .bind(&row.id)
        .bind(&item.id)
        .bind(answers.get(&item.id).cloned().flatten())
        .execute(&mut *conn)
        .await?;
    }
    record_activity(conn, &row.membership_id, now).await?;
    Ok(true)
}

/// Members: answer a questionnaire.
///
/// Voluntary. Send the chosen option per question; questions left out
/// count as left open. Each unknown question or option is named in a 422.
/// Once answered it cannot change: a second submission answers 409
/// `questionnaire_answered` (retry with the same `Idempotency-Key` to get
/// the first answer again); 409 `questionnaire_declined` after declining
/// and `questionnaire_expired` after its window. Answering counts as
/// activity in the circle (it ends a silence). Answers the questionnaire
/// with your score and its band in plain words.
#[utoipa::path(
    post, path = "/v1/me/questionnaires/{questionnaire_id}/answers", tag = "questionnaires",
    operation_id = "me_questionnaire_answers_create",
    extensions(("x-problem-codes" = json!([Code::ValidationFailed, Code::QuestionnaireAnswered, Code::QuestionnaireDeclined, Code::QuestionnaireExpired]))),
    security(("bearer" = [])),
    params(("questionnaire_id" = String, Path, description = "The questionnaire's id"), IdempotencyKey),
    request_body = Answers,
    responses(
        (status = 200, description = "The answered questionnaire", body = QuestionnaireView),
    )
)]
pub async fn answer(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Answers>,
) -> ApiResult<Response> {
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let row = own(&mut tx, &caller, &id).await?;
    let instrument = instrument_of(&mut tx, &row).await?;
    let score = score(&instrument, &req.answers)?;
    if !record_answers(&mut tx, &row, &instrument, &req.answers, &score, now).await? {
        let row = own(&mut tx, &caller, &id).await?;
        return Err(closed(&row, now));
    }
    let row = own(&mut tx, &caller, &id).await?;
    let locale = locale_of(&mut tx, &caller.account_id).await?;
    let view = views::full(&mut tx, &row, &instrument, &locale, now).await?;
    idem.commit(tx, axum::Json(view)).await
}

/// Members: decline a questionnaire.
///
/// Voluntary, and recorded: you are never asked or reminded about it
/// again. 409 `questionnaire_answered`, `questionnaire_declined` or
/// `questionnaire_expired` when it is no longer open. Answers the
/// questionnaire, `declined`.
#[utoipa::path(
    post, path = "/v1/me/questionnaires/{questionnaire_id}/decline", tag = "questionnaires",
    operation_id = "me_questionnaire_decline",
    extensions(("x-problem-codes" = json!([Code::QuestionnaireAnswered, Code::QuestionnaireDeclined, Code::QuestionnaireExpired]))),
    security(("bearer" = [])),
    params(("questionnaire_id" = String, Path, description = "The questionnaire's id"), IdempotencyKey),
    responses(
        (status = 200, description = "The declined questionnaire", body = QuestionnaireView),
    )
)]
pub async fn decline(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let now = state.now_ms();
    let mut tx = idem.begin(&state.store).await?;
    let row = own(&mut tx, &caller, &id).await?;
    let declined = sqlx::query(
        "UPDATE questionnaires SET status = 'declined', declined_at = $1, next_action_at = NULL,
                lease_until = NULL
         WHERE id = $2 AND status IN ('scheduled', 'open') AND expires_at > $1",
    )
    .bind(now)
    .bind(&row.id)
    .execute(&mut *tx)
    .await?;
    let row = own(&mut tx, &caller, &id).await?;
    if declined.rows_affected() != 1 {
        return Err(closed(&row, now));
    }
    let instrument = instrument_of(&mut tx, &row).await?;
    let locale = locale_of(&mut tx, &caller.account_id).await?;
    let view = views::full(&mut tx, &row, &instrument, &locale, now).await?;
    idem.commit(tx, axum::Json(view)).await
}

/// Measurement in one circle, on or off.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"on": false}))]
pub struct MeasurementChoice {
    /// False turns measurement off: you are not asked or reminded again in
    /// this circle. True turns it back on.
    pub on: bool,
}

/// Your choice about measurement in a circle.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"on": false, "off_since": "2026-04-14T10:00:00Z"}))]
pub struct Measurement {
    /// Whether you are asked questionnaires in this circle.
    pub on: bool,
    /// Since when it is off; null while on.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub off_since: Option<jiff::Timestamp>,
}

/// Turns measurement off (keeping the first time) or on for a membership,
/// and moves its waiting questionnaires: off, nothing more is asked (an
/// asked one only expires); on, they are looked at again now.
async fn set_measurement(
    conn: &mut AnyConnection,
    membership_id: &str,
    on: bool,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    if on {
        sqlx::query(
            "UPDATE memberships SET measurement_off_at = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(membership_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE questionnaires SET next_action_at = $1
             WHERE membership_id = $2 AND status IN ('scheduled', 'open') AND expires_at > $1",
        )
        .bind(now)
        .bind(membership_id)
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query(
            "UPDATE memberships SET measurement_off_at = COALESCE(measurement_off_at, $1), updated_at = $1
             WHERE id = $2",
        )
        .bind(now)
        .bind(membership_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE questionnaires
             SET next_action_at = CASE WHEN status = 'open' THEN expires_at ELSE NULL END
             WHERE membership_id = $1 AND status IN ('scheduled', 'open')",
        )
        .bind(membership_id)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query_scalar("SELECT measurement_off_at FROM memberships WHERE id = $1")
        .bind(membership_id)
        .fetch_one(&mut *conn)
        .await
}

/// Members: turn measurement on or off for yourself in a circle.
///
/// Off is recorded, and you are never asked or reminded again in this
/// circle (questionnaires already made are no longer listed; your earlier
/// answers stay yours, in your export). On again: questionnaires whose
/// window is still open come back. Only members (403 `members_only`).
#[utoipa::path(
    put, path = "/v1/circles/{circle_id}/membership/measurement", tag = "questionnaires",
    operation_id = "circle_membership_measurement_set",
    extensions(("x-problem-codes" = json!([Code::MembersOnly]))),
    security(("bearer" = [])),
    params(("circle_id" = String, Path, description = "The circle's id")),
    request_body = MeasurementChoice,
    responses(
        (status = 200, description = "Your choice as it is now", body = Measurement),
    )
)]
pub async fn set(
    State(state): State<AppState>,
    idem: Idempotent,
    caller: Caller,
    Path(circle_id): Path<String>,
    Json(req): Json<MeasurementChoice>,
) -> ApiResult<Response> {
    let mut tx = idem.begin(&state.store).await?;
    let found = access(&mut tx, &caller, &circle_id).await?;
    let membership_id = found.member_membership_id()?.to_owned();
    let off = set_measurement(&mut tx, &membership_id, req.on, state.now_ms()).await?;
    let view = Measurement {
        on: off.is_none(),
        off_since: opt_from_ms(off),
    };
    idem.commit(tx, axum::Json(view)).await
}
