//! One member's answers to an instrument, scored: raw and scaled total,
//! subscales and their bands, each absent when the instrument's
//! missing-data rule says so. Missing items add nothing to a score that is
//! not missing.

use std::collections::BTreeMap;

use super::instrument::{Band, Instrument, Localized, MissingRule};

/// Answers as submitted: item id → option value, or `None` for an item the
/// member left open. Items that are not in the map are missing too.
pub type RawAnswers = BTreeMap<String, Option<String>>;

/// A band a score falls in.
#[derive(Debug, Clone, PartialEq)]
pub struct BandRef {
    pub key: String,
    /// Its place in the definition, 0 being the worst band.
    pub rank: usize,
    pub label: Localized,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TotalScore {
    /// The sum of item scores.
    pub raw: i64,
    /// `raw` times the instrument's multiplier (WHO-5: 0–100).
    pub scaled: i64,
    /// Absent when the instrument has no bands.
    pub band: Option<BandRef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscaleScore {
    pub key: String,
    /// Absent when too many of its items are missing.
    pub score: Option<i64>,
    pub band: Option<BandRef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Absent when too many items are missing.
    pub total: Option<TotalScore>,
    /// In the instrument's order.
    pub subscales: Vec<SubscaleScore>,
    pub answered: usize,
    pub missing: usize,
}

/// Answers that do not fit the instrument; each problem names its item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| format!("{}: {}", p.item, p.message)).collect::<Vec<_>>().join("; "))]
pub struct AnswerError {
    pub problems: Vec<AnswerProblem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnswerProblem {
    pub item: String,
    pub message: String,
}

/// Scores `answers`; an unknown item or option is an error (a 422 at the
/// API), not a missing answer.
pub fn score(instrument: &Instrument, answers: &RawAnswers) -> Result<Score, AnswerError> {
    let mut problems = Vec::new();
    for id in answers.keys() {
        if instrument.item_index(id).is_none() {
            problems.push(AnswerProblem {
                item: id.clone(),
                message: format!("is not an item of {}", instrument.key),
            });
        }
    }
    // Per item, its score, or None when missing.
    let mut item_scores: Vec<Option<i64>> = Vec::with_capacity(instrument.items.len());
    for item in &instrument.items {
        let Some(Some(value)) = answers.get(&item.id) else {
            item_scores.push(None);
            continue;
        };
        let options = instrument
            .scale(&item.scale)
            .map(|s| s.options.as_slice())
            .unwrap_or_default();
        match options.iter().position(|o| &o.value == value) {
            Some(at) => item_scores.push(instrument.option_score(item, at)),
            None => {
                problems.push(AnswerProblem {
                    item: item.id.clone(),
                    message: format!(
                        "\"{value}\" is not one of its options ({})",
                        options
                            .iter()
                            .map(|o| o.value.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
                item_scores.push(None);
            }
        }
    }
    if !problems.is_empty() {
        return Err(AnswerError { problems });
    }

    let answered = item_scores.iter().flatten().count();
    let total = sum(&item_scores, instrument.scoring.missing).map(|raw| {
        let scaled = raw.saturating_mul(instrument.scoring.multiplier);
        TotalScore {
            raw,
            scaled,
            band: band_of(&instrument.bands, scaled),
        }
    });
    let subscales = instrument
        .subscales
        .iter()
        .map(|subscale| {
            let scores: Vec<Option<i64>> = subscale
                .items
                .iter()
                .map(|id| {
                    instrument
                        .item_index(id)
                        .and_then(|i| item_scores.get(i).copied().flatten())
                })
                .collect();
            let score = sum(&scores, subscale.missing);
            SubscaleScore {
                key: subscale.key.clone(),
                score,
                band: score.and_then(|s| band_of(&subscale.bands, s)),
            }
        })
        .collect();
    Ok(Score {
        total,
        subscales,
        answered,
        missing: item_scores.len() - answered,
    })
}

/// The sum of the answered scores, or None when more are missing than
/// `rule` allows.
fn sum(scores: &[Option<i64>], rule: MissingRule) -> Option<i64> {
    let missing = scores.iter().filter(|s| s.is_none()).count();
    let allowed = usize::try_from(rule.max_missing_items).unwrap_or(usize::MAX);
    (missing <= allowed && missing < scores.len()).then(|| scores.iter().flatten().sum())
}

/// The band `score` falls in, with its rank (0 = worst).
pub fn band_of(bands: &[Band], score: i64) -> Option<BandRef> {
    bands
        .iter()
        .enumerate()
        .find(|(_, b)| b.min <= score && score <= b.max)
        .map(|(rank, b)| BandRef {
            key: b.key.clone(),
            rank,
            label: b.label.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::shipped;

    fn instruments() -> (Instrument, Instrument) {
        let mut all = shipped().unwrap().into_iter();
        (all.next().unwrap(), all.next().unwrap())
    }

    fn answers(pairs: &[(&str, &str)]) -> RawAnswers {
        pairs
            .iter()
            .map(|(item, value)| (item.to_string(), Some(value.to_string())))
            .collect()
    }

    /// WHO-5 answers with these item scores (5 = all of the time … 0 = at no time).
    fn who5(scores: [i64; 5]) -> RawAnswers {
        const VALUES: [&str; 6] = [
            "at_no_time",
            "some_of_the_time",
            "less_than_half",
            "more_than_half",
            "most_of_the_time",
            "all_of_the_time",
        ];
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                (
                    format!("who5_{}", i + 1),
                    Some(VALUES[usize::try_from(s).unwrap()].to_string()),
                )
            })
            .collect()
    }

    #[test]
    fn who5_all_answered_sums_and_scales_by_four() {
        let (who5_def, _) = instruments();
        // 5 + 4 + 3 + 2 + 1 = 15 raw; 15 × 4 = 60 %.
        let score = score(&who5_def, &who5([5, 4, 3, 2, 1])).unwrap();
        let total = score.total.unwrap();
        assert_eq!((total.raw, total.scaled), (15, 60));
        assert_eq!(total.band.unwrap().key, "no_sign_of_low");
        assert_eq!((score.answered, score.missing), (5, 0));
        assert!(score.subscales.is_empty());
    }

    #[test]
    fn who5_boundaries_raw_12_and_13_percent_28_and_32() {
        let (who5_def, _) = instruments();
        let band = |scores| {
            let total = score(&who5_def, &who5(scores)).unwrap().total.unwrap();
            (total.raw, total.scaled, total.band.unwrap().key)
        };
        // raw 12 → 48 %: below 13 raw, poor well-being.
        assert_eq!(band([3, 3, 2, 2, 2]), (12, 48, "low".into()));
        // raw 13 → 52 %: no longer poor.
        assert_eq!(band([3, 3, 3, 2, 2]), (13, 52, "no_sign_of_low".into()));
        // raw 7 → 28 %: at most 28 %, very low.
        assert_eq!(band([2, 2, 1, 1, 1]), (7, 28, "very_low".into()));
        // raw 8 → 32 %: above 28 %, poor but not very low.
        assert_eq!(band([2, 2, 2, 1, 1]), (8, 32, "low".into()));
        // The extremes.
        assert_eq!(band([0, 0, 0, 0, 0]), (0, 0, "very_low".into()));
        assert_eq!(band([5, 5, 5, 5, 5]), (25, 100, "no_sign_of_low".into()));
    }

    #[test]
    fn who5_any_missing_item_leaves_no_total() {
        let (who5_def, _) = instruments();
        let mut raw = who5([5, 5, 5, 5, 5]);
        raw.insert("who5_3".into(), None);
        let score = score(&who5_def, &raw).unwrap();
        assert_eq!(score.total, None);
        assert_eq!((score.answered, score.missing), (4, 1));
        raw.remove("who5_3");
        assert_eq!(
            score_of(&who5_def, &raw).total,
            None,
            "an absent item is missing too"
        );
    }

    fn score_of(instrument: &Instrument, raw: &RawAnswers) -> Score {
        score(instrument, raw).unwrap()
    }

    #[test]
    fn djg_negative_items_score_yes_and_more_or_less_positive_items_no_and_more_or_less() {
        let (_, djg) = instruments();
        // Emotional items 3, 9, 10 (negative): yes → 1, more or less → 1, no → 0.
        // Social items 4, 7, 8 (positive, reverse): no → 1, more or less → 1, yes → 0.
        let raw = answers(&[
            ("djg3", "yes"),          // 1
            ("djg9", "more_or_less"), // 1
            ("djg10", "no"),          // 0
            ("djg4", "no"),           // 1
            ("djg7", "more_or_less"), // 1
            ("djg8", "yes"),          // 0
        ]);
        let score = score_of(&djg, &raw);
        let total = score.total.unwrap();
        // 1 + 1 + 0 + 1 + 1 + 0 = 4: moderately lonely (2–4).
        assert_eq!((total.raw, total.scaled), (4, 4));
        let band = total.band.unwrap();
        assert_eq!((band.key.as_str(), band.rank), ("moderately_lonely", 1));
        assert_eq!(band.label.nl, "Matig eenzaam");
        assert_eq!(
            score.subscales,
            vec![
                SubscaleScore {
                    key: "emotional".into(),
                    score: Some(2),
                    band: None
                },
                SubscaleScore {
                    key: "social".into(),
                    score: Some(2),
                    band: None
                },
            ]
        );
    }

    #[test]
    fn djg_extremes_and_bands() {
        let (_, djg) = instruments();
        let total = |raw: &RawAnswers| score_of(&djg, raw).total.unwrap();
        // Nobody lonely: no on negatives, yes on positives → 0.
        let none = answers(&[
            ("djg3", "no"),
            ("djg9", "no"),
            ("djg10", "no"),
            ("djg4", "yes"),
            ("djg7", "yes"),
            ("djg8", "yes"),
        ]);
        assert_eq!(total(&none).raw, 0);
        assert_eq!(total(&none).band.unwrap().key, "not_lonely");
        // Everything more or less: 1 point each → 6, severely lonely.
        let all = answers(&[
            ("djg3", "more_or_less"),
            ("djg9", "more_or_less"),
            ("djg10", "more_or_less"),
            ("djg4", "more_or_less"),
            ("djg7", "more_or_less"),
            ("djg8", "more_or_less"),
        ]);
        assert_eq!(total(&all).raw, 6);
        let band = total(&all).band.unwrap();
        assert_eq!((band.key.as_str(), band.rank), ("severely_lonely", 0));
    }

    #[test]
    fn djg_one_missing_keeps_the_total_but_not_its_subscale() {
        let (_, djg) = instruments();
        let mut raw = answers(&[
            ("djg3", "yes"), // 1
            ("djg9", "yes"), // 1
            ("djg4", "no"),  // 1
            ("djg7", "no"),  // 1
            ("djg8", "no"),  // 1
        ]);
        raw.insert("djg10".into(), None);
        let score = score_of(&djg, &raw);
        // Five answered items, 1 each: 5, severely lonely; the missing item adds nothing.
        let total = score.total.unwrap();
        assert_eq!(total.raw, 5);
        assert_eq!(total.band.unwrap().key, "severely_lonely");
        assert_eq!(score.subscales[0].key, "emotional");
        assert_eq!(score.subscales[0].score, None, "item 10 is emotional");
        assert_eq!(score.subscales[1].score, Some(3));
        assert_eq!((score.answered, score.missing), (5, 1));
    }

    #[test]
    fn djg_two_missing_leave_no_total() {
        let (_, djg) = instruments();
        let raw = answers(&[
            ("djg3", "yes"),
            ("djg9", "yes"),
            ("djg10", "yes"),
            ("djg4", "no"),
        ]);
        let score = score_of(&djg, &raw);
        assert_eq!(score.total, None);
        assert_eq!(score.subscales[0].score, Some(3));
        assert_eq!(score.subscales[1].score, None);
        assert_eq!(score.missing, 2);
    }

    #[test]
    fn unknown_items_and_options_are_errors_naming_the_item() {
        let (who5_def, djg) = instruments();
        let mut raw = who5([1, 1, 1, 1, 1]);
        raw.insert("who5_6".into(), Some("at_no_time".into()));
        let err = score(&who5_def, &raw).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].item, "who5_6");

        let raw = answers(&[("djg3", "sometimes"), ("djg4", "ja")]);
        let err = score(&djg, &raw).unwrap_err();
        let items: Vec<_> = err.problems.iter().map(|p| p.item.as_str()).collect();
        assert_eq!(items, ["djg3", "djg4"]);
        assert!(
            err.to_string()
                .contains("djg3: \"sometimes\" is not one of its options (yes, more_or_less, no)"),
            "{err}"
        );
    }
}
