//! What the API shows of questionnaires and scores, in the reader's
//! language.

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::clock::{from_ms, opt_from_ms};
use crate::outcomes::instrument::{Band, Instrument};

/// Where a questionnaire stands: `scheduled` (ready, not yet asked by a
/// message), `open` (asked), `answered`, `declined` or `expired` (its
/// window closed unanswered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionnaireStatus {
    /// Ready to answer; no message about it went out yet.
    Scheduled,
    /// Ready to answer; the member was asked.
    Open,
    /// Answered; the score is kept.
    Answered,
    /// The member chose not to answer it.
    Declined,
    /// Its window closed unanswered.
    Expired,
}

impl QuestionnaireStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "open" => Self::Open,
            "answered" => Self::Answered,
            "declined" => Self::Declined,
            "expired" => Self::Expired,
            _ => Self::Scheduled,
        }
    }
}

/// A questionnaire row with its circle.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: String,
    pub membership_id: String,
    pub circle_id: String,
    pub circle_name: String,
    pub organisation_id: String,
    pub instrument_key: String,
    pub instrument_version: i64,
    pub moment: String,
    pub due_at: i64,
    pub expires_at: i64,
    pub status: String,
    pub answered_at: Option<i64>,
    pub declined_at: Option<i64>,
    pub raw_score: Option<i64>,
    pub scaled_score: Option<i64>,
    pub band: Option<String>,
    pub subscales: Option<String>,
}

pub const SELECT: &str =
    "SELECT q.id, q.membership_id, q.circle_id, c.name AS circle_name, q.organisation_id,
        q.instrument_key, q.instrument_version, q.moment, q.due_at, q.expires_at, q.status,
        q.answered_at, q.declined_at, q.raw_score, q.scaled_score, q.band, q.subscales
 FROM questionnaires q JOIN circles c ON c.id = q.circle_id";

impl Row {
    /// The status as the member sees it now: past its window, an
    /// unanswered one is expired even before the job marked it.
    pub fn status_at(&self, now: i64) -> QuestionnaireStatus {
        match QuestionnaireStatus::parse(&self.status) {
            QuestionnaireStatus::Scheduled | QuestionnaireStatus::Open
                if now >= self.expires_at =>
            {
                QuestionnaireStatus::Expired
            }
            other => other,
        }
    }
}

/// A band, in plain words.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"key": "no_sign_of_low", "label": "Geen aanwijzing voor laag welbevinden"}))]
pub struct BandView {
    /// The band's key in the instrument (stable).
    pub key: String,
    /// What it means, in the reader's language.
    pub label: String,
}

pub fn band_view(bands: &[Band], key: Option<&str>, locale: &str) -> Option<BandView> {
    let key = key?;
    bands.iter().find(|b| b.key == key).map(|b| BandView {
        key: b.key.clone(),
        label: b.label.get(locale).to_owned(),
    })
}

/// A subscale's score, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"key": "emotional", "score": 1, "band": null}))]
pub struct StoredSubscale {
    /// The subscale's key in the instrument.
    pub key: String,
    /// Null when too many of its items were left open.
    pub score: Option<i64>,
    /// The band's key, if the subscale has bands.
    pub band: Option<String>,
}

/// A score, with its band in plain words.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "raw": 17, "score": 68, "score_label": "percentagescore (0–100)",
    "band": {"key": "no_sign_of_low", "label": "Geen aanwijzing voor laag welbevinden"},
    "subscales": []
}))]
pub struct ScoreView {
    /// The sum of the item scores; null when too many items were left open.
    pub raw: Option<i64>,
    /// The raw score times the instrument's multiplier (WHO-5: 0–100);
    /// null when too many items were left open.
    pub score: Option<i64>,
    /// What `score` is, in the reader's language (e.g. "percentage score
    /// (0–100)"); null when the score is the raw score.
    pub score_label: Option<String>,
    /// The band the score falls in, in plain words; null without a score
    /// or without bands.
    pub band: Option<BandView>,
    /// Subscales (De Jong Gierveld: emotional and social), if any.
    pub subscales: Vec<SubscaleView>,
}

/// A subscale's score, with its title and band in plain words.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"key": "social", "title": "Sociale eenzaamheid", "score": 1, "band": null}))]
pub struct SubscaleView {
    /// The subscale's key in the instrument.
    pub key: String,
    /// Its title in the reader's language.
    pub title: String,
    /// Null when too many of its items were left open.
    pub score: Option<i64>,
    /// Its band in plain words, if it has bands.
    pub band: Option<BandView>,
}

/// The score of an answered row, read with its instrument.
pub fn score_view(row: &Row, instrument: &Instrument, locale: &str) -> Option<ScoreView> {
    if row.status != "answered" {
        return None;
    }
    let stored: Vec<StoredSubscale> = row
        .subscales
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let subscales = instrument
        .subscales
        .iter()
        .map(|def| {
            let found = stored.iter().find(|s| s.key == def.key);
            SubscaleView {
                key: def.key.clone(),
                title: def.title.get(locale).to_owned(),
                score: found.and_then(|s| s.score),
                band: band_view(&def.bands, found.and_then(|s| s.band.as_deref()), locale),
            }
        })
        .collect();
    Some(ScoreView {
        raw: row.raw_score,
        score: row.scaled_score,
        score_label: instrument
            .scoring
            .scaled_label
            .as_ref()
            .map(|l| l.get(locale).to_owned()),
        band: band_view(&instrument.bands, row.band.as_deref(), locale),
        subscales,
    })
}

/// A questionnaire in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
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
}))]
pub struct QuestionnaireSummary {
    /// The questionnaire's id.
    pub id: String,
    /// The circle that asks it.
    pub circle_id: String,
    /// The circle's name.
    pub circle_name: String,
    /// The instrument's key (`who5`, `djg6`, …).
    pub instrument: String,
    /// The instrument's title in your language.
    pub title: String,
    /// The moment of the circle's plan (`intake`, `week_6`, `month_3`,
    /// `month_6`, `follow_up`, or a name the circle chose).
    pub moment: String,
    /// Where it stands.
    pub status: QuestionnaireStatus,
    /// The moment it became due.
    #[schema(value_type = String, format = DateTime)]
    pub due_at: jiff::Timestamp,
    /// After this it can no longer be answered.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: jiff::Timestamp,
    /// How many questions it has.
    pub item_count: usize,
}

pub fn summary(row: &Row, instrument: &Instrument, locale: &str, now: i64) -> QuestionnaireSummary {
    QuestionnaireSummary {
        id: row.id.clone(),
        circle_id: row.circle_id.clone(),
        circle_name: row.circle_name.clone(),
        instrument: row.instrument_key.clone(),
        title: instrument.title.get(locale).to_owned(),
        moment: row.moment.clone(),
        status: row.status_at(now),
        due_at: from_ms(row.due_at),
        expires_at: from_ms(row.expires_at),
        item_count: instrument.items.len(),
    }
}

/// An answer option.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"value": "most_of_the_time", "label": "Het grootste deel van de tijd"}))]
pub struct OptionView {
    /// What to send as the item's answer.
    pub value: String,
    /// What to show, in your language.
    pub label: String,
}

/// A question with its answer options, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "who5_1", "text": "Ik voelde me vrolijk en goedgehumeurd",
    "options": [{"value": "all_of_the_time", "label": "Voortdurend"}, {"value": "at_no_time", "label": "Nooit"}]}))]
pub struct ItemView {
    /// The item's id: the key of its answer.
    pub id: String,
    /// The question, in your language.
    pub text: String,
    /// The answers to choose from, in the order to show them.
    pub options: Vec<OptionView>,
}

/// One questionnaire, ready to answer (or with its score once answered).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
    "circle_id": "0194f1a2b3c47d5e8f901a2b3c4d5e6f",
    "circle_name": "Samen sterk",
    "instrument": "who5",
    "title": "WHO-5 Welbevinden Index",
    "moment": "week_6",
    "status": "answered",
    "due_at": "2026-04-13T09:00:00Z",
    "expires_at": "2026-04-27T09:00:00Z",
    "item_count": 1,
    "instructions": "Geef bij elk van de vijf uitspraken aan wat het best past bij hoe u zich de afgelopen twee weken hebt gevoeld.",
    "voluntary": "Invullen is vrijwillig. Je kunt een vragenlijst overslaan of metingen voor deze kring uitzetten.",
    "items": [{"id": "who5_1", "text": "Ik voelde me vrolijk en goedgehumeurd",
               "options": [{"value": "all_of_the_time", "label": "Voortdurend"}, {"value": "at_no_time", "label": "Nooit"}]}],
    "answered_at": "2026-04-14T10:00:00Z",
    "answers": {"who5_1": "all_of_the_time"},
    "result": {"raw": 5, "score": 20, "score_label": "percentagescore (0–100)",
               "band": {"key": "very_low", "label": "Zeer laag welbevinden"}, "subscales": []}
}))]
pub struct QuestionnaireView {
    #[serde(flatten)]
    pub summary: QuestionnaireSummary,
    /// How to answer (the time frame), in your language.
    pub instructions: Option<String>,
    /// That answering is voluntary, in your language.
    pub voluntary: String,
    /// The questions, in the order to ask them.
    pub items: Vec<ItemView>,
    /// When you answered it; null until then.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<jiff::Timestamp>,
    /// Your answers (item id → option value, null for one left open);
    /// empty until answered.
    pub answers: std::collections::BTreeMap<String, Option<String>>,
    /// Your score, once answered.
    pub result: Option<ScoreView>,
}

/// The sentence that says answering is voluntary.
pub fn voluntary(locale: &str) -> &'static str {
    if locale == "en" {
        "Answering is voluntary. You can skip a questionnaire or turn measurement off for this circle."
    } else {
        "Invullen is vrijwillig. Je kunt een vragenlijst overslaan of metingen voor deze kring uitzetten."
    }
}

/// The full view of a questionnaire, with its stored answers.
pub async fn full(
    conn: &mut AnyConnection,
    row: &Row,
    instrument: &Instrument,
    locale: &str,
    now: i64,
) -> Result<QuestionnaireView, sqlx::Error> {
    let answers: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT item_id, value FROM questionnaire_answers WHERE questionnaire_id = $1",
    )
    .bind(&row.id)
    .fetch_all(&mut *conn)
    .await?;
    let items = instrument
        .items
        .iter()
        .map(|item| ItemView {
            id: item.id.clone(),
            text: item.text.get(locale).to_owned(),
            options: instrument
                .scale(&item.scale)
                .map(|s| {
                    s.options
                        .iter()
                        .map(|o| OptionView {
                            value: o.value.clone(),
                            label: o.label.get(locale).to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    Ok(QuestionnaireView {
        summary: summary(row, instrument, locale, now),
        instructions: instrument
            .instructions
            .as_ref()
            .map(|i| i.get(locale).to_owned()),
        voluntary: voluntary(locale).to_owned(),
        items,
        answered_at: opt_from_ms(row.answered_at),
        answers: answers.into_iter().collect(),
        result: score_view(row, instrument, locale),
    })
}
