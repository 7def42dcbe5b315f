//! The outcome report as the API shows it (JSON; [`super::csv`] writes the
//! same as CSV): the instrument with its licence and recorded permission,
//! the selection, the formulas and the figures per moment
//! ([`super::report::MomentFigures`]).

use serde::Serialize;
use utoipa::ToSchema;

use super::catalogue::{self, Available};
use super::report::MomentFigures;
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
