//! The outcome report as the API shows it (JSON; [`super::csv`] writes the
//! same as CSV): the instrument with its licence and recorded permission,
//! the selection, the formulas and the figures per moment
//! ([`MomentFigures`], computed by [`super::report`]).

use serde::Serialize;
use utoipa::ToSchema;

use std::collections::BTreeMap;

use super::catalogue::{self, Available};
use crate::clock::from_ms;

/// A text in both of Kring's locales.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"nl": "WHO-5 Welbevinden Index", "en": "WHO-5 Well-Being Index"}))]
pub struct Texts {
    /// Dutch.
    pub nl: String,
    /// English.
    pub en: String,
}

impl From<&super::instrument::Localized> for Texts {
    fn from(l: &super::instrument::Localized) -> Self {
        Self {
            nl: l.nl.clone(),
            en: l.en.clone(),
        }
    }
}

/// A permission an organisation recorded for an instrument's licence.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "statement": "Written permission of the authors, e-mail of 3 March 2026",
    "recorded_by": "0193a5b0c0de7a11b2c3d4e5f6a7b8c9",
    "recorded_at": "2026-03-04T10:00:00Z"
}))]
pub struct RecordedPermission {
    /// What permission, from whom and when, in the coordinator's words.
    pub statement: String,
    /// The coordinator who recorded it.
    pub recorded_by: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: jiff::Timestamp,
}

impl From<&catalogue::Permission> for RecordedPermission {
    fn from(p: &catalogue::Permission) -> Self {
        Self {
            statement: p.statement.clone(),
            recorded_by: p.recorded_by.clone(),
            recorded_at: from_ms(p.recorded_at),
        }
    }
}

/// An instrument's licence and whether the organisation recorded the
/// permission it asks for.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "note": "Free to use, citing the source.",
    "citation": "WHO-Five Well-being Index (WHO-5). Psychiatric Research Unit, Hillerød.",
    "permission_required": false,
    "permission": null
}))]
pub struct LicenceStatus {
    /// The terms of use, in words.
    pub note: String,
    /// How to cite the instrument.
    pub citation: String,
    /// True when the instrument may be used only with the authors' permission.
    pub permission_required: bool,
    /// The permission the organisation recorded; null when none.
    pub permission: Option<RecordedPermission>,
}

impl From<&Available> for LicenceStatus {
    fn from(a: &Available) -> Self {
        Self {
            note: a.instrument.licence.note.clone(),
            citation: a.instrument.source.citation.clone(),
            permission_required: a.instrument.licence.permission_required,
            permission: a.permission.as_ref().map(RecordedPermission::from),
        }
    }
}

/// The instrument a report is about.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "key": "who5", "version": 1,
    "title": {"nl": "WHO-5 Welbevinden Index", "en": "WHO-5 Well-Being Index"},
    "higher_is_better": true, "reliability": 0.85, "bands": ["very_low", "low", "no_sign_of_low"],
    "licence": {"note": "Free to use, citing the source.", "citation": "WHO-5, Psychiatric Research Unit, Hillerød.",
                "permission_required": false, "permission": null}
}))]
pub struct ReportInstrument {
    /// Its key.
    pub key: String,
    /// The definition's version whose bands and reliability the report uses.
    pub version: u32,
    /// Its title.
    pub title: Texts,
    /// Whether a higher score is better (it decides which change is improvement).
    pub higher_is_better: bool,
    /// The reliability r used for reliable change.
    pub reliability: f64,
    /// Its bands' keys, from worse to better.
    pub bands: Vec<String>,
    /// Its licence, and the organisation's recorded permission.
    pub licence: LicenceStatus,
}

/// How the figures are computed, in words.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "effect_size": "d = mean change from intake / SD at intake (within-group effect size, paired members)",
    "reliable_change": "RCI = change / (√2 · SD at intake · √(1 − r)); |RCI| > 1.96 is reliable change (Jacobson & Truax, 1991)",
    "mean_change": "mean of (score at the moment − score at intake) over members with both; 95 % CI = mean ± t(n − 1, 0.975) · SD / √n",
    "comparison": null
}))]
pub struct Formulas {
    /// The within-group effect size.
    pub effect_size: String,
    /// Reliable change.
    pub reliable_change: String,
    /// Mean change from intake and its interval.
    pub mean_change: String,
    /// The between-group difference; null without a comparison cohort.
    pub comparison: Option<String>,
}

/// The mean change's formula, as computed by [`stats::mean_change`].
pub const MEAN_CHANGE_FORMULA: &str = "mean of (score at the moment − score at intake) over members with both; 95 % CI = mean ± t(n − 1, 0.975) · SD / √n";

/// The comparison cohort shown beside the members.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0194f1e0a1b27c3d8e9f0a1b2c3d4e5f",
    "description": "Face-to-face groups Noord, 2025",
    "label": "Non-randomised comparison: the online and face-to-face cohorts were not assigned at random, so a difference may come from who joined each rather than from the format."
}))]
pub struct ComparisonInfo {
    /// The cohort's id.
    pub id: String,
    /// Its description.
    pub description: String,
    /// Every comparison's caveat: it is not randomised.
    pub label: String,
}

/// The selection a report covers.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"circle_ids": [], "joined_from": "2026-01-01T00:00:00Z", "joined_until": null}))]
pub struct Selection {
    /// The circles; empty for all of the organisation's.
    pub circle_ids: Vec<String>,
    /// Members who joined at or after this time; null for no bound.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub joined_from: Option<jiff::Timestamp>,
    /// Members who joined before this time; null for no bound.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub joined_until: Option<jiff::Timestamp>,
}

/// An outcome report: per moment of the measurement plans, who was asked
/// and answered, the scores, their change from intake and, with a
/// comparison cohort, the difference.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "instrument": {
        "key": "who5", "version": 1,
        "title": {"nl": "WHO-5 Welbevinden Index", "en": "WHO-5 Well-Being Index"},
        "higher_is_better": true, "reliability": 0.85, "bands": ["very_low", "low", "no_sign_of_low"],
        "licence": {"note": "Free to use, citing the source.", "citation": "WHO-5, Psychiatric Research Unit, Hillerød.",
                    "permission_required": false, "permission": null}
    },
    "selection": {"circle_ids": [], "joined_from": null, "joined_until": null},
    "min_cell": 10,
    "formulas": {
        "effect_size": "d = mean change from intake / SD at intake (within-group effect size, paired members)",
        "reliable_change": "RCI = change / (√2 · SD at intake · √(1 − r)); |RCI| > 1.96 is reliable change (Jacobson & Truax, 1991)",
        "mean_change": "mean of (score at the moment − score at intake) over members with both; 95 % CI = mean ± t(n − 1, 0.975) · SD / √n",
        "comparison": null
    },
    "comparison": null,
    "moments": [{
        "moment": "intake", "anchor": "join", "offset_days": 0,
        "invited": {"value": 30}, "answered": {"value": 30}, "not_answered": {"value": 0},
        "response_rate": {"value": 100.0},
        "score": {"n": {"value": 30}, "without_score": {"value": 0}, "mean": {"value": 40.53}, "sd": {"value": 15.2}}
    }],
    "generated_at": "2026-11-21T10:00:00Z"
}))]
pub struct OutcomeReport {
    /// The instrument, its licence and recorded permission.
    pub instrument: ReportInstrument,
    /// What the report covers.
    pub selection: Selection,
    /// Cells resting on fewer members than this are suppressed; 1 in a
    /// circle's own report (nothing is hidden).
    pub min_cell: u64,
    /// How the figures are computed.
    pub formulas: Formulas,
    /// The comparison cohort; null without one.
    pub comparison: Option<ComparisonInfo>,
    /// The moments, intake first, then in the order of the plans.
    pub moments: Vec<MomentFigures>,
    /// When the report was computed.
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: jiff::Timestamp,
}

/// Why a cell is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Suppressed {
    /// It rests on fewer than `min_cell` members.
    FewerThanK,
    /// It would let another hidden cell be recovered by subtraction.
    ProtectsAnotherCell,
}

/// A count of members: `value` is null when it is hidden (`suppressed`
/// says why).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"value": 24}))]
pub struct Count {
    /// The count; null when suppressed.
    pub value: Option<u64>,
    /// Why the value is hidden; absent when it is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
}

/// A figure (a mean, SD, percentage, effect size), rounded to two
/// decimals: `value` is null when it is hidden (`suppressed` says why) or
/// cannot be computed (too few members, no spread; `suppressed` absent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"value": 52.33}))]
pub struct Figure {
    /// The figure; null when suppressed or not computable.
    pub value: Option<f64>,
    /// Why the value is hidden; absent when it is shown or not computable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppressed>,
}

/// A part of the members: how many, and their percentage of the whole.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"count": {"value": 12}, "percent": {"value": 50.0}}))]
pub struct Share {
    /// How many members.
    pub count: Count,
    /// Their percentage of the whole.
    pub percent: Figure,
}

/// The scaled scores of the members who answered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"n": {"value": 24}, "without_score": {"value": 0}, "mean": {"value": 44.5}, "sd": {"value": 14.2}}))]
pub struct ScoreFigures {
    /// Members with a score (answered, and scored under the missing-data rule).
    pub n: Count,
    /// Members who answered but left too many items out to be scored.
    pub without_score: Count,
    /// Mean scaled score.
    pub mean: Figure,
    /// Sample SD (n − 1) of the scaled score.
    pub sd: Figure,
}

/// Reliable change (Jacobson–Truax) of the paired members.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "improved": {"count": {"value": 10}, "percent": {"value": 50.0}},
    "unchanged": {"count": {"value": 10}, "percent": {"value": 50.0}},
    "deteriorated": {"count": {"value": 0}, "percent": {"value": 0.0}}
}))]
pub struct ReliableChange {
    /// Reliably better (|RCI| > 1.96 in the better direction).
    pub improved: Share,
    /// No reliable change.
    pub unchanged: Share,
    /// Reliably worse.
    pub deteriorated: Share,
}

/// Moves between bands of the paired members.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"n": {"value": 20}, "without_band": {"value": 0}, "to_better": {"count": {"value": 8}, "percent": {"value": 40.0}}, "other": {"value": 12}}))]
pub struct BandMoves {
    /// Paired members with a band at both moments.
    pub n: Count,
    /// Paired members without a band at one of the moments.
    pub without_band: Count,
    /// Those whose band is better than at intake.
    pub to_better: Share,
    /// Those in the same or a worse band (n − to_better).
    pub other: Count,
}

/// The difference in mean change with the comparison cohort.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "value": {"value": 6.4}, "ci_low": {"value": -5.6}, "ci_high": {"value": 18.4},
    "df": {"value": 6.52}, "comparison_change": 4.0, "derived_from_moments": false
}))]
pub struct Difference {
    /// Mean change online − mean change face-to-face.
    pub value: Figure,
    /// Lower end of its 95 % CI.
    pub ci_low: Figure,
    /// Upper end of its 95 % CI.
    pub ci_high: Figure,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: Figure,
    /// The comparison cohort's mean change used.
    pub comparison_change: Option<f64>,
    /// True when the cohort's change is the difference of its moment means
    /// (no paired change recorded), with the moments treated as independent.
    pub derived_from_moments: bool,
}

/// Change from intake, of members scored at intake and at this moment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "n": {"value": 20}, "mean": {"value": 10.4}, "ci_low": {"value": 5.1}, "ci_high": {"value": 15.7},
    "sd": {"value": 11.3}, "effect_size": {"value": 0.72},
    "reliable_change": {
        "improved": {"count": {"value": 10}, "percent": {"value": 50.0}},
        "unchanged": {"count": {"value": 10}, "percent": {"value": 50.0}},
        "deteriorated": {"count": {"value": 0}, "percent": {"value": 0.0}}
    },
    "without_intake": {"value": 0}, "intake_only": {"value": 10},
    "band_moves": {"n": {"value": 20}, "without_band": {"value": 0}, "to_better": {"count": {"value": 8}, "percent": {"value": 40.0}}, "other": {"value": 12}}
}))]
pub struct Change {
    /// Paired members: scored at intake and at this moment.
    pub n: Count,
    /// Members scored at this moment but not at intake.
    pub without_intake: Count,
    /// Members scored at intake but not at this moment (not yet invited,
    /// not answered, or not scored).
    pub intake_only: Count,
    /// Mean change (this moment − intake).
    pub mean: Figure,
    /// Lower end of the mean change's 95 % CI (t, n − 1).
    pub ci_low: Figure,
    /// Upper end of the mean change's 95 % CI.
    pub ci_high: Figure,
    /// SD of the change.
    pub sd: Figure,
    /// Within-group effect size d (see `formulas.effect_size`).
    pub effect_size: Figure,
    /// Reliable change (see `formulas.reliable_change`).
    pub reliable_change: ReliableChange,
    /// For instruments with bands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band_moves: Option<BandMoves>,
    /// With a comparison cohort that recorded this moment and intake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<Difference>,
}

/// The comparison cohort's recorded change from intake.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"n": 25, "mean": 4.0, "sd": 12.0}))]
pub struct CohortChange {
    /// Members with both moments.
    pub n: u64,
    /// Mean change.
    pub mean: f64,
    /// SD of the change.
    pub sd: f64,
}

/// The comparison cohort at this moment, as its coordinator recorded it
/// (aggregates of people outside Kring: never suppressed).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"n": 25, "mean": 50.0, "sd": 16.0, "change": {"n": 25, "mean": 4.0, "sd": 12.0}}))]
pub struct CohortFigures {
    /// Members measured.
    pub n: u64,
    /// Mean scaled score.
    pub mean: f64,
    /// SD of the scaled score.
    pub sd: f64,
    /// The paired change from intake, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<CohortChange>,
    /// Members per band, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band_counts: Option<BTreeMap<String, u64>>,
}

/// Every figure of one moment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "moment": "week_6", "anchor": "join", "offset_days": 42,
    "invited": {"value": 30}, "answered": {"value": 24}, "not_answered": {"value": null, "suppressed": "fewer_than_k"},
    "response_rate": {"value": 80.0},
    "score": {"n": {"value": 24}, "without_score": {"value": 0}, "mean": {"value": 52.5}, "sd": {"value": 16.1}}
}))]
pub struct MomentFigures {
    /// The moment's name (`intake`, `week_6`, …).
    pub moment: String,
    /// `join` or `circle_end`; absent for a moment no plan names any more.
    pub anchor: Option<String>,
    /// Days after the anchor.
    pub offset_days: Option<i64>,
    /// Members prompted to answer.
    pub invited: Count,
    /// Members who answered.
    pub answered: Count,
    /// Invited members who did not (yet) answer.
    pub not_answered: Count,
    /// Answered / invited, in percent.
    pub response_rate: Figure,
    /// The scaled scores.
    pub score: ScoreFigures,
    /// Change from intake; absent at intake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// The comparison cohort at this moment, when it recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<CohortFigures>,
}
