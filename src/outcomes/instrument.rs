//! Instrument definitions as data: a validated questionnaire with its items,
//! answer scales, scoring, bands, missing-data rules, reliability and
//! licence, read from JSON (`instruments/*.json`, or an organisation's own).
//!
//! Scoring is described, never special-cased: an answer scale gives each
//! option a score, and a `reverse` item scores option *i* of *n* as the
//! scale scores option *n − 1 − i*. That mirror turns WHO-5's 5…0 into 0…5
//! and De Jong Gierveld's dichotomised 1/1/0 (ja, min of meer, nee) into
//! 0/1/1 for its positively worded items.
//!
//! The format's JSON Schema: [`super::schema`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A text in each locale Kring speaks. Both are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    pub nl: String,
    pub en: String,
}

impl Localized {
    /// The text in `locale` (`nl` or `en`); English for any other.
    pub fn get(&self, locale: &str) -> &str {
        if locale == "nl" { &self.nl } else { &self.en }
    }
}

/// A versioned questionnaire definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    /// Stable identifier, lower case: `who5`, `djg6`.
    pub key: String,
    /// Starts at 1; a changed wording or scoring is a new version, so
    /// stored answers keep the definition they were given under.
    pub version: u32,
    pub title: Localized,
    /// Shown before the items (the time frame, how to answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Localized>,
    /// Answer scales the items refer to by `id`.
    pub scales: Vec<AnswerScale>,
    /// The items, in the order they are asked.
    pub items: Vec<Item>,
    /// Subscales: named sums over some of the items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscales: Vec<Subscale>,
    pub scoring: Scoring,
    /// Whether a higher total means doing better (WHO-5) or worse
    /// (loneliness). Decides the direction of reliable change.
    pub higher_is_better: bool,
    /// Bands on the scaled total, ordered from worse to better; together
    /// they cover the scaled total's range without gaps or overlap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<Band>,
    /// The reliability used for reliable change (Jacobson–Truax).
    pub reliability: Reliability,
    /// A change of the scaled total that is meaningful, where the
    /// literature gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meaningful_change: Option<MeaningfulChange>,
    pub source: Source,
    pub licence: Licence,
}

/// An ordered list of answer options with their scores.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerScale {
    pub id: String,
    /// In the order they are shown.
    pub options: Vec<AnswerOption>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerOption {
    /// What an app submits for this option, e.g. `most_of_the_time`.
    pub value: String,
    pub label: Localized,
    /// Points for a forward item.
    pub score: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Unique within the instrument, e.g. `djg3` for item 3 of the source scale.
    pub id: String,
    pub text: Localized,
    /// The `id` of an answer scale.
    pub scale: String,
    /// Reverse scored: option *i* of *n* gets the score of option *n − 1 − i*.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscale {
    pub key: String,
    pub title: Localized,
    /// Item ids; the subscale score is the sum of their scores.
    pub items: Vec<String>,
    pub missing: MissingRule,
    /// Bands on the subscale score, ordered from worse to better.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<Band>,
}

/// The total: the sum of item scores (raw), times `multiplier` (scaled).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    /// The scaled total is the raw total times this (4 for WHO-5's 0–100).
    pub multiplier: i64,
    /// What the scaled total is called, e.g. "percentage score".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_label: Option<Localized>,
    pub missing: MissingRule,
}

/// When a score is missing. Missing items add nothing to a score that is
/// not missing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingRule {
    /// The score is missing when more than this many of its items are
    /// missing; 0 means missing when any item is.
    pub max_missing_items: u32,
}

/// A range of scores with a name, inclusive at both ends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub key: String,
    pub min: i64,
    pub max: i64,
    pub label: Localized,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reliability {
    /// A reliability coefficient strictly between 0 and 1.
    pub r: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeaningfulChange {
    /// In points of the scaled total.
    pub points: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The instrument's reference, to be shown with any figure from it.
    pub citation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the Dutch wording comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<String>,
    /// Where the reliability coefficient and meaningful change come from.
    pub psychometrics: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// The terms of use, in words.
    pub note: String,
    /// True when the instrument is disabled until an organisation records
    /// that it holds the authors' permission.
    pub permission_required: bool,
}

/// Why a definition was refused: every problem found, each naming its field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InstrumentError {
    #[error("{path}: {message}")]
    Json { path: String, message: String },
    #[error("{}", format_problems(.0))]
    Invalid(Vec<Problem>),
}

/// One problem with a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// A path such as `items[2].scale`.
    pub field: String,
    pub message: String,
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl InstrumentError {
    /// The problems, one per field (a JSON error is one problem).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Self::Json { path, message } => vec![Problem {
                field: path.clone(),
                message: message.clone(),
            }],
            Self::Invalid(problems) => problems.clone(),
        }
    }
}

impl Instrument {
    /// Reads and validates a definition.
    pub fn from_json(json: &str) -> Result<Self, InstrumentError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let instrument: Self =
            serde_path_to_error::deserialize(&mut de).map_err(|e| InstrumentError::Json {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        de.end().map_err(|e| InstrumentError::Json {
            path: ".".into(),
            message: e.to_string(),
        })?;
        let problems = instrument.problems();
        if problems.is_empty() {
            Ok(instrument)
        } else {
            Err(InstrumentError::Invalid(problems))
        }
    }

    /// Whether organisations may use it without recording a permission.
    pub fn enabled_by_default(&self) -> bool {
        !self.licence.permission_required
    }

    pub fn scale(&self, id: &str) -> Option<&AnswerScale> {
        self.scales.iter().find(|s| s.id == id)
    }

    pub fn item_index(&self, id: &str) -> Option<usize> {
        self.items.iter().position(|i| i.id == id)
    }

    /// The score of option `option` of item `item`, after reversal.
    pub fn option_score(&self, item: &Item, option: usize) -> Option<i64> {
        let options = &self.scale(&item.scale)?.options;
        let at = if item.reverse {
            options.len().checked_sub(option + 1)?
        } else {
            option
        };
        options.get(at).map(|o| o.score)
    }

    /// The lowest and highest raw sum of `items` (indexes).
    fn raw_range(&self, items: impl Iterator<Item = usize>) -> (i64, i64) {
        let mut range = (0i64, 0i64);
        for item in items.filter_map(|i| self.items.get(i)) {
            if let Some(scale) = self.scale(&item.scale) {
                let scores = scale.options.iter().map(|o| o.score);
                range.0 = range.0.saturating_add(scores.clone().min().unwrap_or(0));
                range.1 = range.1.saturating_add(scores.max().unwrap_or(0));
            }
        }
        range
    }

    /// The range of the scaled total.
    pub fn scaled_range(&self) -> (i64, i64) {
        let (lo, hi) = self.raw_range(0..self.items.len());
        let m = self.scoring.multiplier;
        (lo.saturating_mul(m), hi.saturating_mul(m))
    }

    /// The range of a subscale's score.
    pub fn subscale_range(&self, subscale: &Subscale) -> (i64, i64) {
        self.raw_range(subscale.items.iter().filter_map(|id| self.item_index(id)))
    }

    fn problems(&self) -> Vec<Problem> {
        let mut p = Problems::default();
        self.check_heading(&mut p);
        self.check_scales(&mut p);
        self.check_items(&mut p);
        let ranges_known = self.check_scoring(&mut p);
        self.check_subscales(&mut p, ranges_known);
        self.check_reliability_and_source(&mut p, ranges_known);
        p.0
    }

    /// Key, version, title and instructions.
    fn check_heading(&self, p: &mut Problems) {
        if self.key.is_empty()
            || !self
                .key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            p.add("key", "must be lower-case letters, digits, '_' or '-'");
        }
        if self.version == 0 {
            p.add("version", "must be 1 or more");
        }
        p.text("title", &self.title);
        if let Some(instructions) = &self.instructions {
            p.text("instructions", instructions);
        }
    }

    /// Answer scales: ids, options, values, labels and scores.
    fn check_scales(&self, p: &mut Problems) {
        if self.scales.is_empty() {
            p.add("scales", "must have at least one answer scale");
        }
        let mut scale_ids = BTreeSet::new();
        for (i, scale) in self.scales.iter().enumerate() {
            let at = format!("scales[{i}]");
            if scale.id.is_empty() {
                p.add(format!("{at}.id"), "must not be empty");
            } else if !scale_ids.insert(scale.id.as_str()) {
                p.add(
                    format!("{at}.id"),
                    format!("\"{}\" appears twice", scale.id),
                );
            }
            if scale.options.len() < 2 {
                p.add(format!("{at}.options"), "must have at least two options");
            }
            let mut values = BTreeSet::new();
            for (j, option) in scale.options.iter().enumerate() {
                let at = format!("{at}.options[{j}]");
                if option.value.is_empty() {
                    p.add(format!("{at}.value"), "must not be empty");
                } else if !values.insert(option.value.as_str()) {
                    p.add(
                        format!("{at}.value"),
                        format!("\"{}\" appears twice in this scale", option.value),
                    );
                }
                p.text(&format!("{at}.label"), &option.label);
                if option.score.unsigned_abs() > 1_000_000 {
                    p.add(
                        format!("{at}.score"),
                        "must be between -1000000 and 1000000",
                    );
                }
            }
            let distinct: BTreeSet<i64> = scale.options.iter().map(|o| o.score).collect();
            if scale.options.len() >= 2 && distinct.len() < 2 {
                p.add(
                    format!("{at}.options"),
                    "scores are all equal, so an answer would carry no information",
                );
            }
        }
    }

    /// Items: ids, texts and their scales.
    fn check_items(&self, p: &mut Problems) {
        if self.items.is_empty() {
            p.add("items", "must have at least one item");
        }
        let mut item_ids = BTreeSet::new();
        for (i, item) in self.items.iter().enumerate() {
            let at = format!("items[{i}]");
            if item.id.is_empty() {
                p.add(format!("{at}.id"), "must not be empty");
            } else if !item_ids.insert(item.id.as_str()) {
                p.add(format!("{at}.id"), format!("\"{}\" appears twice", item.id));
            }
            p.text(&format!("{at}.text"), &item.text);
            if self.scale(&item.scale).is_none() {
                p.add(
                    format!("{at}.scale"),
                    format!("\"{}\" is not the id of a scale", item.scale),
                );
            }
        }
    }

    /// The multiplier, the missing-data rule and the bands; true when the
    /// score ranges are known (every item has a scale and the multiplier
    /// is sound).
    fn check_scoring(&self, p: &mut Problems) -> bool {
        let multiplier_ok = (1..=1000).contains(&self.scoring.multiplier);
        if !multiplier_ok {
            p.add("scoring.multiplier", "must be between 1 and 1000");
        }
        // Score ranges rest on every item's scale and the multiplier; when
        // those are wrong, checks against the ranges would only echo that.
        let ranges_known =
            multiplier_ok && self.items.iter().all(|i| self.scale(&i.scale).is_some());
        if let Some(label) = &self.scoring.scaled_label {
            p.text("scoring.scaled_label", label);
        }
        p.missing(
            "scoring.missing.max_missing_items",
            self.scoring.missing,
            self.items.len(),
        );
        if ranges_known {
            p.bands(
                "bands",
                &self.bands,
                self.scaled_range(),
                self.higher_is_better,
            );
        }
        ranges_known
    }

    /// Subscales: keys, titles, items, missing-data rules and bands.
    fn check_subscales(&self, p: &mut Problems, ranges_known: bool) {
        let mut subscale_keys = BTreeSet::new();
        for (i, subscale) in self.subscales.iter().enumerate() {
            let at = format!("subscales[{i}]");
            if subscale.key.is_empty() {
                p.add(format!("{at}.key"), "must not be empty");
            } else if !subscale_keys.insert(subscale.key.as_str()) {
                p.add(
                    format!("{at}.key"),
                    format!("\"{}\" appears twice", subscale.key),
                );
            }
            p.text(&format!("{at}.title"), &subscale.title);
            if subscale.items.is_empty() {
                p.add(format!("{at}.items"), "must name at least one item");
            }
            let mut seen = BTreeSet::new();
            for (j, id) in subscale.items.iter().enumerate() {
                if self.item_index(id).is_none() {
                    p.add(
                        format!("{at}.items[{j}]"),
                        format!("\"{id}\" is not the id of an item"),
                    );
                } else if !seen.insert(id.as_str()) {
                    p.add(
                        format!("{at}.items[{j}]"),
                        format!("\"{id}\" appears twice"),
                    );
                }
            }
            p.missing(
                &format!("{at}.missing.max_missing_items"),
                subscale.missing,
                subscale.items.len(),
            );
            if ranges_known {
                p.bands(
                    &format!("{at}.bands"),
                    &subscale.bands,
                    self.subscale_range(subscale),
                    self.higher_is_better,
                );
            }
        }
    }

    /// Reliability, meaningful change, citations and licence.
    fn check_reliability_and_source(&self, p: &mut Problems, ranges_known: bool) {
        let r = self.reliability.r;
        if !(r.is_finite() && r > 0.0 && r < 1.0) {
            p.add("reliability.r", "must be strictly between 0 and 1");
        }
        if let Some(change) = self.meaningful_change.as_ref().filter(|_| ranges_known) {
            let (lo, hi) = self.scaled_range();
            #[allow(clippy::cast_precision_loss)] // ranges are small integers
            let span = (hi - lo) as f64;
            if !(change.points.is_finite() && change.points > 0.0 && change.points <= span) {
                p.add(
                    "meaningful_change.points",
                    format!("must be more than 0 and at most the scaled range ({span})"),
                );
            }
        }
        if self.source.citation.trim().is_empty() {
            p.add("source.citation", "must not be empty");
        }
        if self.source.psychometrics.trim().is_empty() {
            p.add("source.psychometrics", "must not be empty");
        }
        if self.licence.note.trim().is_empty() {
            p.add("licence.note", "must not be empty");
        }
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn text(&mut self, field: &str, text: &Localized) {
        for (locale, value) in [("nl", &text.nl), ("en", &text.en)] {
            if value.trim().is_empty() {
                self.add(format!("{field}.{locale}"), "must not be empty");
            }
        }
    }

    fn missing(&mut self, field: &str, rule: MissingRule, items: usize) {
        if usize::try_from(rule.max_missing_items).map_or(true, |m| m >= items) && items > 0 {
            self.add(
                field,
                format!("must be less than the number of items ({items}), or the score could rest on no answer"),
            );
        }
    }

    /// Bands cover `range` exactly, without overlap, ordered from worse to
    /// better (ascending scores when higher is better).
    fn bands(&mut self, field: &str, bands: &[Band], range: (i64, i64), higher_is_better: bool) {
        if bands.is_empty() {
            return;
        }
        let mut keys = BTreeSet::new();
        for (i, band) in bands.iter().enumerate() {
            if band.key.is_empty() {
                self.add(format!("{field}[{i}].key"), "must not be empty");
            } else if !keys.insert(band.key.as_str()) {
                self.add(
                    format!("{field}[{i}].key"),
                    format!("\"{}\" appears twice", band.key),
                );
            }
            if band.min > band.max {
                self.add(format!("{field}[{i}]"), "min is more than max");
            }
            self.text(&format!("{field}[{i}].label"), &band.label);
        }
        let ascending = bands.windows(2).all(|w| w[0].min < w[1].min);
        let descending = bands.windows(2).all(|w| w[0].min > w[1].min);
        if (higher_is_better && !ascending) || (!higher_is_better && !descending) {
            self.add(
                field,
                if higher_is_better {
                    "must be ordered from worse to better: ascending scores, as higher is better"
                } else {
                    "must be ordered from worse to better: descending scores, as higher is worse"
                },
            );
            return;
        }
        let mut sorted: Vec<&Band> = bands.iter().collect();
        sorted.sort_by_key(|b| b.min);
        let (lo, hi) = range;
        let mut expected = lo;
        for band in sorted {
            if band.min > expected {
                self.add(
                    field,
                    format!("scores {expected} to {} are in no band", band.min - 1),
                );
            } else if band.min < expected {
                self.add(
                    field,
                    format!(
                        "band \"{}\" starts at {} inside the previous band or below the lowest score {lo}",
                        band.key, band.min
                    ),
                );
            }
            expected = band.max.saturating_add(1);
        }
        if expected != hi.saturating_add(1) {
            self.add(
                field,
                format!(
                    "the bands end at {} but the scores end at {hi}",
                    expected - 1
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::{SHIPPED, shipped};

    #[test]
    fn the_shipped_definitions_load_and_validate() {
        let all = shipped().unwrap();
        let keys: Vec<_> = all.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["who5", "djg6"]);
        let (who5, djg) = (&all[0], &all[1]);

        assert_eq!(who5.items.len(), 5);
        assert_eq!(who5.scaled_range(), (0, 100));
        assert!(who5.higher_is_better);
        assert!(who5.enabled_by_default(), "WHO-5 is free to use");
        assert_eq!(
            who5.meaningful_change.as_ref().map(|m| m.points),
            Some(10.0)
        );
        assert_eq!(
            who5.scale("frequency").unwrap().options[0].label.nl,
            "Voortdurend"
        );

        let ids: Vec<_> = djg.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["djg3", "djg4", "djg7", "djg8", "djg9", "djg10"]);
        assert_eq!(djg.scaled_range(), (0, 6));
        assert!(!djg.higher_is_better);
        assert!(
            !djg.enabled_by_default(),
            "DJG needs the authors' permission"
        );
        let subscales: Vec<_> = djg
            .subscales
            .iter()
            .map(|s| (s.key.as_str(), s.items.clone()))
            .collect();
        assert_eq!(
            subscales,
            [
                (
                    "emotional",
                    vec!["djg3".into(), "djg9".into(), "djg10".into()]
                ),
                ("social", vec!["djg4".into(), "djg7".into(), "djg8".into()]),
            ]
        );
        assert!(djg.source.citation.contains("Research on Aging, 28(5)"));
    }

    #[test]
    fn reverse_items_mirror_the_scale() {
        let djg = Instrument::from_json(SHIPPED[1]).unwrap();
        let forward = &djg.items[0]; // djg3: ja 1, min of meer 1, nee 0
        let reverse = &djg.items[1]; // djg4: ja 0, min of meer 1, nee 1
        let scores = |item| {
            (0..3)
                .map(|o| djg.option_score(item, o))
                .collect::<Vec<_>>()
        };
        assert_eq!(scores(forward), [Some(1), Some(1), Some(0)]);
        assert_eq!(scores(reverse), [Some(0), Some(1), Some(1)]);
        assert_eq!(djg.option_score(reverse, 3), None);
    }

    /// The shipped WHO-5 with one change made to its JSON.
    fn who5_with(
        change: impl FnOnce(&mut serde_json::Value),
    ) -> Result<Instrument, InstrumentError> {
        let mut json: serde_json::Value = serde_json::from_str(SHIPPED[0]).unwrap();
        change(&mut json);
        Instrument::from_json(&json.to_string())
    }

    fn fields(result: Result<Instrument, InstrumentError>) -> Vec<String> {
        result
            .unwrap_err()
            .problems()
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn duplicate_and_dangling_ids_are_refused_by_field() {
        let err = who5_with(|j| j["items"][1]["id"] = "who5_1".into());
        assert_eq!(fields(err), ["items[1].id"]);
        let err = who5_with(|j| j["items"][2]["scale"] = "agreement".into());
        assert_eq!(fields(err), ["items[2].scale"]);
        let err = who5_with(|j| {
            j["subscales"] = serde_json::json!([{
                "key": "mood", "title": {"nl": "Stemming", "en": "Mood"},
                "items": ["who5_1", "who5_9", "who5_1"],
                "missing": {"max_missing_items": 3}
            }]);
        });
        assert_eq!(
            fields(err),
            [
                "subscales[0].items[1]",
                "subscales[0].items[2]",
                "subscales[0].missing.max_missing_items"
            ]
        );
        let err = who5_with(|j| j["scales"][0]["options"][1]["value"] = "all_of_the_time".into());
        assert_eq!(fields(err), ["scales[0].options[1].value"]);
    }

    #[test]
    fn bands_must_cover_the_range_in_order_without_overlap() {
        // A gap: 29–50 becomes 30–50.
        let err = who5_with(|j| j["bands"][1]["min"] = 30.into()).unwrap_err();
        assert_eq!(err.to_string(), "bands: scores 29 to 29 are in no band");
        // An overlap: 29–50 becomes 28–50.
        let err = who5_with(|j| j["bands"][1]["min"] = 28.into()).unwrap_err();
        assert!(
            err.to_string()
                .contains("starts at 28 inside the previous band"),
            "{err}"
        );
        // Short of the top: 51–100 becomes 51–96.
        let err = who5_with(|j| j["bands"][2]["max"] = 96.into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bands: the bands end at 96 but the scores end at 100"
        );
        // Worse to better: WHO-5 bands must ascend.
        let err = who5_with(|j| {
            let bands = j["bands"].as_array_mut().unwrap();
            bands.reverse();
        });
        assert_eq!(fields(err), ["bands"]);
        // Bands on the raw score instead of the percentage do not fit.
        let err = who5_with(|j| j["bands"][2]["max"] = 25.into());
        assert!(!fields(err).is_empty());
    }

    #[test]
    fn numbers_must_make_sense() {
        for r in [0.0, 1.0, 1.2, -0.1] {
            let err = who5_with(|j| j["reliability"]["r"] = r.into());
            assert_eq!(fields(err), ["reliability.r"], "r = {r}");
        }
        let err = who5_with(|j| j["scoring"]["multiplier"] = 0.into());
        assert_eq!(fields(err), ["scoring.multiplier"]);
        let err = who5_with(|j| j["meaningful_change"]["points"] = 0.into());
        assert_eq!(fields(err), ["meaningful_change.points"]);
        let err = who5_with(|j| j["scoring"]["missing"]["max_missing_items"] = 5.into());
        assert_eq!(fields(err), ["scoring.missing.max_missing_items"]);
        let err = who5_with(|j| {
            for option in j["scales"][0]["options"].as_array_mut().unwrap() {
                option["score"] = 1.into();
            }
        });
        assert_eq!(fields(err)[0], "scales[0].options");
    }

    #[test]
    fn both_locales_are_required_and_unknown_fields_refused() {
        let err = who5_with(|j| {
            j["items"][3]["text"].as_object_mut().unwrap().remove("nl");
        })
        .unwrap_err();
        assert!(
            matches!(&err, InstrumentError::Json { path, message }
                if path == "items[3].text" && message.contains("missing field `nl`")),
            "{err}"
        );
        let err = who5_with(|j| j["items"][3]["text"]["nl"] = " ".into());
        assert_eq!(fields(err), ["items[3].text.nl"]);
        let err = who5_with(|j| j["licence"]["free"] = true.into()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("licence.free: unknown field `free`"),
            "{err}"
        );
        assert!(Instrument::from_json("{} trailing").is_err());
        assert!(Instrument::from_json("").is_err());
    }

    #[test]
    fn several_problems_are_reported_together() {
        let err = who5_with(|j| {
            j["key"] = "WHO 5".into();
            j["version"] = 0.into();
            j["source"]["citation"] = "".into();
        });
        assert_eq!(fields(err), ["key", "version", "source.citation"]);
    }
}
