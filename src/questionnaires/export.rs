//! A member's questionnaires in their export (`DataExport.questionnaires`):
//! every one made for them, with its answers and scores.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::clock::{from_ms, opt_from_ms};

use super::views::StoredSubscale;

/// A questionnaire made for you, with your answers and score.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportQuestionnaire {
    /// The questionnaire's id.
    pub id: String,
    /// The circle that asked it.
    pub circle_id: String,
    /// The instrument's key (`who5`, …).
    pub instrument: String,
    /// The version of the instrument's definition it was asked with.
    pub instrument_version: i64,
    /// The moment of the circle's plan.
    pub moment: String,
    /// `scheduled`, `open`, `answered`, `declined` or `expired`.
    pub status: String,
    /// How many messages asked or reminded you of it (at most 3).
    pub prompts_sent: i64,
    /// When it became due.
    #[schema(value_type = String, format = DateTime)]
    pub due_at: jiff::Timestamp,
    /// When its window closed or closes.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    /// When you answered it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<jiff::Timestamp>,
    /// When you declined it.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub declined_at: Option<jiff::Timestamp>,
    /// Your answers: item id → option value (null for one left open).
    pub answers: BTreeMap<String, Option<String>>,
    /// The raw total score; null if not answered or too many items were left open.
    pub raw_score: Option<i64>,
    /// The scaled total score (WHO-5: 0–100).
    pub scaled_score: Option<i64>,
    /// The key of the band the score fell in.
    pub band: Option<String>,
    /// Subscale scores, if the instrument has subscales.
    pub subscales: Vec<StoredSubscale>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    circle_id: String,
    instrument_key: String,
    instrument_version: i64,
    moment: String,
    status: String,
    prompts_sent: i64,
    due_at: i64,
    expires_at: i64,
    answered_at: Option<i64>,
    declined_at: Option<i64>,
    raw_score: Option<i64>,
    scaled_score: Option<i64>,
    band: Option<String>,
    subscales: Option<String>,
}

/// Every questionnaire of `account_id`, oldest first.
pub async fn of_account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<ExportQuestionnaire>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, circle_id, instrument_key, instrument_version, moment, status, prompts_sent,
                due_at, expires_at, answered_at, declined_at, raw_score, scaled_score, band, subscales
         FROM questionnaires WHERE account_id = $1 ORDER BY due_at, id",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    let answers: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT a.questionnaire_id, a.item_id, a.value FROM questionnaire_answers a
         JOIN questionnaires q ON q.id = a.questionnaire_id WHERE q.account_id = $1",
    )
    .bind(account_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_questionnaire: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for (q, item, value) in answers {
        by_questionnaire.entry(q).or_default().insert(item, value);
    }
    Ok(rows
        .into_iter()
        .map(|r| ExportQuestionnaire {
            answers: by_questionnaire.remove(&r.id).unwrap_or_default(),
            subscales: r
                .subscales
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
            id: r.id,
            circle_id: r.circle_id,
            instrument: r.instrument_key,
            instrument_version: r.instrument_version,
            moment: r.moment,
            status: r.status,
            prompts_sent: r.prompts_sent,
            due_at: from_ms(r.due_at),
            expires_at: from_ms(r.expires_at),
            answered_at: opt_from_ms(r.answered_at),
            declined_at: opt_from_ms(r.declined_at),
            raw_score: r.raw_score,
            scaled_score: r.scaled_score,
            band: r.band,
        })
        .collect())
}
